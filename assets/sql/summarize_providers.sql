-- Per provider, over everything delivered so far: validity (rows passing every rule), timeliness
-- (cycle periods on time / late / still missing) and objections. From the scorecard's months.
WITH s AS (
    SELECT provider, sum(rows_received) AS rows_received, sum(rows_quarantined) AS quarantined,
           sum(batches_expected) AS expected, sum(batches_on_time) AS on_time,
           sum(batches_late) AS late, sum(batches_rejected) AS rejected
    FROM ops.scorecard WHERE period_kind = 'month' GROUP BY provider
), m AS (  -- missing: periods overdue and undelivered now
    SELECT r.provider, count(*) AS missing FROM ops.timeliness t
    JOIN (SELECT DISTINCT provider, resource FROM ops.scorecard) r USING (resource)
    WHERE t.status = 'missing' GROUP BY ALL
), o AS (
    SELECT provider, count(*) AS raised,
           count(*) FILTER (WHERE status IN ('raised', 'accepted', 'verifying')) AS open,
           count(*) FILTER (WHERE status = 'corrected') AS corrected,
           count(*) FILTER (WHERE status IN ('confirmed', 'rejected')) AS other_closed
    FROM ops.objections GROUP BY provider
)
SELECT s.provider, s.rows_received AS "rows",
       CASE WHEN s.rows_received > 0
            THEN printf('%.2f%%', 100.0 * (s.rows_received - s.quarantined) / s.rows_received)
       END AS validity,
       printf('%d/%d', s.on_time, s.expected) AS on_time, s.late AS late,
       coalesce(m.missing, 0) AS missing, s.rejected AS rejected_batches,
       coalesce(o.raised, 0) AS objections, coalesce(o.open, 0) AS open,
       coalesce(o.corrected, 0) AS corrected, coalesce(o.other_closed, 0) AS confirmed_or_rejected
FROM s LEFT JOIN m USING (provider) LEFT JOIN o USING (provider)
ORDER BY s.provider;
