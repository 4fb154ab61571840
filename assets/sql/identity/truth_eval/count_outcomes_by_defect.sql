-- Traced mentions a simulated defect touched, by defect code, then by outcome (truth_eval.OUTCOMES'
-- order). A mention counts once per defect code, however often that defect was injected.
-- A record about several things (a marriage names two people, an enterprise record names the
-- enterprise first) has fields describing each role's person: only their defects touch the
-- mention (NF_ the husband, NV_ the wife, FDDBR_ the legal representative). Subject and deceased
-- records are about the person, so any of their defects does.
-- Damage to the ID keying the record (GMSFHM; pipelines/sim/defects.py) made a warehouse record of
-- its own (the key is stored as delivered): it touches that mention, not the clean one of other
-- deliveries, and only if the delivered ID shows it. The other defects of that field
-- (id_bad_checksum, missing_key) leave a key that cannot be traced, or none: they touch no traced
-- mention. $defects: the truth's defects.
WITH touched AS (
    SELECT DISTINCT m.mention_id, d.defect_code, m.outcome
    FROM _eval_mention m
    JOIN (SELECT DISTINCT resource, key, defect_code, field
          FROM read_parquet($defects) WHERE key IS NOT NULL) d
        ON d.resource = m.resource AND d.key = m.clean_key
    WHERE m.person IS NOT NULL
      AND (d.field IS NULL OR CASE m.role
                                  WHEN 'husband' THEN d.field LIKE 'NF_%'
                                  WHEN 'wife' THEN d.field LIKE 'NV_%'
                                  WHEN 'legal_rep' THEN d.field LIKE 'FDDBR_%'
                                  ELSE true END)
      AND CASE WHEN d.field IS DISTINCT FROM 'GMSFHM' OR m.delivered_id IS NULL THEN true
               WHEN d.defect_code = 'id_15_digit' THEN length(m.delivered_id) = 15
               WHEN d.defect_code = 'id_fullwidth'
                   THEN m.delivered_id <> translate(m.delivered_id, '０１２３４５６７８９Ｘｘ',
                                                    '0123456789Xx')
               WHEN d.defect_code = 'id_space' THEN contains(m.delivered_id, ' ')
               WHEN d.defect_code = 'id_lowercase_x' THEN m.delivered_id LIKE '%x%'
               ELSE false END)
SELECT defect_code, count(*),
       count(*) FILTER (WHERE outcome = 'correct'),
       count(*) FILTER (WHERE outcome = 'wrongly_merged'),
       count(*) FILTER (WHERE outcome = 'left_apart')
FROM touched
GROUP BY ALL ORDER BY 1
