-- Each contract rule's results over one period [$start, $end] (batches by arrival date).
SELECT b.provider, cr.resource, cr.rule_id, cr.family, cr.severity,
       sum(cr.checked) AS checked, sum(cr.failed) AS failed
FROM ops.contract_results cr JOIN ops.batches b USING (resource, batch_id)
WHERE b.arrived_on BETWEEN $start AND $end
GROUP BY ALL ORDER BY cr.resource, cr.rule_id
