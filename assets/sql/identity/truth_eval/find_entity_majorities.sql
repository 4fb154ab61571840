-- Each predicted entity's size and majority person (ties: the lowest person id).
SELECT entity, size, person AS majority_person, n AS majority_n FROM (
    SELECT *, sum(n) OVER (PARTITION BY entity) AS size,
           row_number() OVER (PARTITION BY entity ORDER BY n DESC, person) AS rk
    FROM _eval_cell) WHERE rk = 1
