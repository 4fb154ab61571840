-- Twins (same parents, birth date and address: the classic false merge) of whom both are
-- traced. $persons: the truth's persons.
WITH twins AS (SELECT person_id, twin_group FROM read_parquet($persons)
               WHERE twin_group IS NOT NULL)
SELECT count(*) FROM twins a JOIN twins b
    ON a.twin_group = b.twin_group AND a.person_id < b.person_id
WHERE a.person_id IN (SELECT person FROM _eval_person)
  AND b.person_id IN (SELECT person FROM _eval_person)
