-- Each traced mention's outcome: correct when in the entity holding most of its person's
-- mentions, that person being the entity's majority; wrongly_merged when in an entity where
-- another person is the majority; left_apart when in a fragment of its own person beside that
-- person's home entity. NULL for a mention naming no simulated person.
SELECT m.*, CASE WHEN e.majority_person IS NULL THEN NULL
                 WHEN e.majority_person <> m.person THEN 'wrongly_merged'
                 WHEN p.home_entity = m.entity THEN 'correct'
                 ELSE 'left_apart' END AS outcome
FROM _eval_traced m
LEFT JOIN _eval_entity e ON e.entity = m.entity AND m.person IS NOT NULL
LEFT JOIN _eval_person p ON p.person = m.person
