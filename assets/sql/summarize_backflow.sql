-- Per resource: what every backflow run so far received and where each row went.
-- received = staged + quarantined + superseded holds per batch (checked at load).
WITH b AS (
    SELECT resource,
           count(*) FILTER (WHERE status = 'loaded')   AS batches,
           count(*) FILTER (WHERE status = 'rejected') AS rejected_now,
           coalesce(sum(received), 0)    AS received,
           coalesce(sum(staged), 0)      AS staged,
           coalesce(sum(quarantined), 0) AS quarantined,
           coalesce(sum(superseded), 0)  AS superseded,
           coalesce(sum(deleted_by_snapshot), 0) AS deleted_by_snapshot
    FROM ops.batches GROUP BY resource
), i AS (
    SELECT resource, count(*) AS incidents FROM ops.incidents GROUP BY resource
), r AS (
    SELECT resource, sum(elapsed_s) AS elapsed_s FROM ops.resource_runs GROUP BY resource
), j AS (
    SELECT resource, count(*) AS rejections FROM ops.rejections GROUP BY resource
)
SELECT b.resource, b.batches, b.received, b.staged, b.quarantined, b.superseded,
       b.deleted_by_snapshot, coalesce(i.incidents, 0) AS incidents,
       coalesce(j.rejections, 0) AS rejections, round(coalesce(r.elapsed_s, 0), 1) AS elapsed_s
FROM b LEFT JOIN i USING (resource) LEFT JOIN r USING (resource) LEFT JOIN j USING (resource)
ORDER BY b.resource;
