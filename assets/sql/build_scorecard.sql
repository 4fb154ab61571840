-- Provider scorecard for one period [$start, $end] (a day or a month), one row per resource.
-- Inputs: ops.* tables, `res` (resource, resource_name, provider, provider_name, update_cycle)
-- and `tl` (resource, period, due, status on_time|late|missing) registered by pipelines/governance/scorecard.py.
-- Batches count in the period they arrived in (the hub's business date); a cycle period counts in
-- the period its delivery was due; objections by the day raised / closed, open and overdue at the
-- end of the period (or today, if sooner).
WITH
b AS (SELECT resource, count(*) AS n, sum(received) AS received, sum(staged) AS staged,
             sum(quarantined) AS quarantined, sum(superseded) AS superseded
      FROM ops.batches WHERE status = 'loaded' AND arrived_on BETWEEN $start AND $end GROUP BY ALL),
rj AS (SELECT resource, count(*) AS n FROM ops.rejections
       WHERE arrived_on BETWEEN $start AND $end GROUP BY ALL),
t AS (SELECT resource, count(*) AS expected, count(*) FILTER (WHERE status = 'on_time') AS on_time,
             count(*) FILTER (WHERE status = 'late') AS late,
             count(*) FILTER (WHERE status = 'missing') AS missing
      FROM tl WHERE due BETWEEN $start AND $end GROUP BY ALL),
c AS (SELECT cr.resource, sum(cr.checked) AS req_checked, sum(cr.failed) AS req_failed
      FROM ops.contract_results cr JOIN ops.batches bt USING (resource, batch_id)
      WHERE cr.family = 'required' AND bt.arrived_on BETWEEN $start AND $end GROUP BY ALL),
i AS (SELECT inc.resource, count(*) FILTER (WHERE kind = 'oversharing_forbidden_field') AS overshare
      FROM ops.incidents inc JOIN ops.batches bt USING (resource, batch_id)
      WHERE bt.arrived_on BETWEEN $start AND $end GROUP BY ALL),
d AS (SELECT sd.resource, count(DISTINCT sd.batch_id) AS drift
      FROM ops.schema_drift sd LEFT JOIN ops.batches bt USING (resource, batch_id)
      LEFT JOIN ops.rejections r USING (resource, batch_id)
      WHERE coalesce(bt.arrived_on, r.arrived_on) BETWEEN $start AND $end GROUP BY ALL),
o AS (SELECT resource,
             count(*) FILTER (WHERE raised_on BETWEEN $start AND $end) AS opened,
             count(*) FILTER (WHERE closed_on BETWEEN $start AND $end) AS closed,
             count(*) FILTER (WHERE raised_on <= least($end, $today)
                              AND (closed_on IS NULL OR closed_on > least($end, $today))) AS open,
             count(*) FILTER (WHERE raised_on <= least($end, $today)
                              AND (closed_on IS NULL OR closed_on > least($end, $today))
                              AND least($end, $today) > resolve_due) AS overdue
      FROM ops.objections GROUP BY ALL)
SELECT res.provider, res.provider_name, res.resource, res.resource_name, res.update_cycle,
       coalesce(t.expected, 0) AS batches_expected, coalesce(b.n, 0) AS batches_received,
       coalesce(t.on_time, 0) AS batches_on_time, coalesce(t.late, 0) AS batches_late,
       coalesce(t.missing, 0) AS batches_missing, coalesce(rj.n, 0) AS batches_rejected,
       coalesce(b.received, 0) AS rows_received, coalesce(b.staged, 0) AS rows_staged,
       coalesce(b.quarantined, 0) AS rows_quarantined, coalesce(b.superseded, 0) AS rows_superseded,
       CASE WHEN c.req_checked > 0 THEN 1 - c.req_failed / c.req_checked END AS completeness,
       CASE WHEN b.received > 0 THEN (b.received - b.quarantined) / b.received END AS validity,
       coalesce(d.drift, 0) AS drift_incidents, coalesce(i.overshare, 0) AS overshare_incidents,
       coalesce(o.opened, 0) AS objections_opened, coalesce(o.closed, 0) AS objections_closed,
       coalesce(o.open, 0) AS objections_open, coalesce(o.overdue, 0) AS objections_overdue
FROM res LEFT JOIN b USING (resource) LEFT JOIN rj USING (resource) LEFT JOIN t USING (resource)
LEFT JOIN c USING (resource) LEFT JOIN i USING (resource) LEFT JOIN d USING (resource)
LEFT JOIN o USING (resource)
ORDER BY res.provider, res.resource
