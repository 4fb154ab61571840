-- Pair counts as sums of n*(n-1)/2 over groups, never enumerated pairs: pairs in the same cell
-- (true positives); pairs predicted (within an entity) and mentions with their entity's majority;
-- true pairs (within a person) and mentions in their person's home entity.
SELECT (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM _eval_cell),
       (SELECT coalesce(sum(size * (size - 1) // 2), 0) FROM _eval_entity),
       (SELECT coalesce(sum(majority_n), 0) FROM _eval_entity),
       (SELECT coalesce(sum(size * (size - 1) // 2), 0) FROM _eval_person),
       (SELECT coalesce(sum(home_n), 0) FROM _eval_person)
