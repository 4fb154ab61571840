-- The simulator's recorded anomalies (subsistence paid after death) against the hub's open
-- subsistence_after_death conflicts, in persons, for persons this node receives subsistence
-- records of: (true, found, found and true). $anomalies, $persons: the truth's parquet files.
WITH truth AS (
    SELECT DISTINCT p.gmsfhm FROM read_parquet($anomalies) a
    JOIN read_parquet($persons) p USING (person_id)
    WHERE a.kind = 'subsistence_paid_after_death'
      AND '1:' || p.gmsfhm IN (SELECT doc_key FROM ident.person_mentions
                               WHERE resource = 'CA_SUBSISTENCE')),
found AS (
    SELECT DISTINCT substr(m.doc_key, 3) AS gmsfhm FROM gold.conflicts c
    JOIN ident.person_links l ON l.entity_id = c.entity_id
    JOIN ident.person_mentions m USING (mention_id)
    WHERE c.kind = 'subsistence_after_death' AND c.status = 'open'
      AND m.doc_key LIKE '1:%')
SELECT (SELECT count(*) FROM truth), (SELECT count(*) FROM found),
       (SELECT count(*) FROM truth JOIN found USING (gmsfhm))
