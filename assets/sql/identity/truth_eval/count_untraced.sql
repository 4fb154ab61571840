-- The mentions naming no simulated person (a foreign spouse's passport, a record the truth does
-- not know), by source and role.
SELECT resource, role, count(*) FROM _eval_mention WHERE person IS NULL
GROUP BY ALL ORDER BY 1, 2
