-- How many traced mentions each (predicted entity, true person) pair holds.
SELECT entity, person, count(*) AS n FROM _eval_traced
WHERE person IS NOT NULL GROUP BY ALL
