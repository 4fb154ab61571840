-- Every person mention with the simulated person it really names (NULL: none), its predicted
-- entity and the key its record has in the truth. Subject and deceased mentions through the truth
-- record's entity (P<n>); husband and wife through the marriage (M<n>); legal representatives
-- through the enterprise (E<n>/O<n>); a subject mention without a truth record (CA_SUBSISTENCE:
-- the simulator adds those to snapshots only) through the citizen ID keying it.
-- The warehouse keys a record by the delivered values, the truth by the clean ones: the citizen
-- ID leading the key of PS_POP_BASIC and CA_SUBSISTENCE records is folded (full-width digits and
-- X, spaces, lower-case x) and a 15-digit one upgraded (_eval_upgrade_15_to_18, a temp macro of
-- pipelines/identity/truth_eval.py) before matching.
-- $records, $marriages, $enterprises, $persons: the truth's parquet files.
WITH m AS (
    SELECT pm.mention_id, pm.resource, pm.role, pm.record_key,
           pl.mention_id IS NOT NULL AS linked,
           -- an unlinked mention is an entity of its own: it is not merged with anyone
           coalesce(pl.entity_id, 'unlinked:' || pm.mention_id) AS entity,
           coalesce(pl.method, 'unlinked') AS method,
           CASE WHEN pm.resource IN ('PS_POP_BASIC', 'CA_SUBSISTENCE')
                THEN split_part(pm.record_key, '|', 1) END AS delivered_id,
           -- id_space inserts ASCII spaces only (a regex: 2 s at 1.5M mentions)
           upper(replace(translate(delivered_id, '０１２３４５６７８９Ｘｘ', '0123456789Xx'), ' ', ''))
               AS key_id,
           substr(pm.record_key, length(split_part(pm.record_key, '|', 1)) + 1)
               AS key_rest
    FROM ident.person_mentions pm LEFT JOIN ident.person_links pl USING (mention_id)
), m15 AS (
    SELECT *, CASE WHEN regexp_full_match(key_id, '[0-9]{15}')
                   THEN substr(key_id, 1, 6) || '19' || substr(key_id, 7) END AS first17
    FROM m
), k AS (
    SELECT * EXCLUDE (first17, key_id),
           CASE WHEN first17 IS NOT NULL THEN _eval_upgrade_15_to_18(first17)
                ELSE key_id END AS clean_id
    FROM m15
), truth_record AS (  -- one entity per clean key (min() only guards the join)
    SELECT resource, key, min(entity_id) AS entity_id
    FROM read_parquet($records) WHERE key IS NOT NULL GROUP BY ALL
)
SELECT k.mention_id, k.resource, k.role, k.linked, k.entity, k.method,
       k.record_key, k.delivered_id,
       coalesce(k.clean_id || k.key_rest, k.record_key) AS clean_key,
       CASE k.role
           WHEN 'husband' THEN mar.husband_id
           WHEN 'wife' THEN mar.wife_id
           WHEN 'legal_rep' THEN ent.legal_rep_id
           ELSE CASE WHEN r.entity_id LIKE 'P%' THEN r.entity_id
                     WHEN r.entity_id IS NULL THEN by_id.person_id END
       END AS person
FROM k
LEFT JOIN truth_record r
    ON r.resource = k.resource AND r.key = coalesce(k.clean_id || k.key_rest,
                                                    k.record_key)
LEFT JOIN read_parquet($marriages) mar ON mar.entity_id = r.entity_id
LEFT JOIN read_parquet($enterprises) ent ON ent.entity_id = r.entity_id
LEFT JOIN (SELECT person_id, gmsfhm FROM read_parquet($persons)) by_id
    ON k.role IN ('subject', 'deceased') AND by_id.gmsfhm = k.clean_id
