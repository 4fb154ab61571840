-- Each true person's size and home entity, the one holding most of its mentions (ties: the
-- lowest entity id).
SELECT person, size, entity AS home_entity, n AS home_n FROM (
    SELECT *, sum(n) OVER (PARTITION BY person) AS size,
           row_number() OVER (PARTITION BY person ORDER BY n DESC, entity) AS rk
    FROM _eval_cell) WHERE rk = 1
