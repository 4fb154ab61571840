-- Twin pairs some predicted entity holds both of, once a pair however many entities do (the
-- lowest such entity). $persons: the truth's persons.
WITH twins AS (SELECT person_id, twin_group FROM read_parquet($persons)
               WHERE twin_group IS NOT NULL),
t AS (SELECT DISTINCT c.entity, c.person, tw.twin_group
      FROM _eval_cell c JOIN twins tw ON tw.person_id = c.person)
SELECT a.person, b.person, min(a.entity) FROM t a JOIN t b
    ON a.entity = b.entity AND a.twin_group = b.twin_group AND a.person < b.person
GROUP BY 1, 2 ORDER BY 1, 2
