-- Mentions in all, traced to a true person, unlinked; true persons; predicted entities holding
-- a traced mention.
SELECT count(*), count(person), count(*) FILTER (WHERE NOT linked),
       count(DISTINCT person), count(DISTINCT entity) FILTER (WHERE person IS NOT NULL)
FROM _eval_mention
