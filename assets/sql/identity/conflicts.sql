-- Conflicts between sources about one entity, one SELECT per kind, all with the same columns.
-- $today and $grace_<kind> are bound by pipelines/identity/conflicts.py.
WITH links AS (SELECT mention_id, entity_id FROM ident.person_links),
ps AS (  -- the population register's current record of each person
    SELECT l.entity_id, p.*, 'PS_POP_BASIC|subject|' || p.GMSFHM AS mid
    FROM cur.ps_pop_basic p JOIN links l ON l.mention_id = 'PS_POP_BASIC|subject|' || p.GMSFHM),
death AS (
    SELECT l.entity_id, c.* FROM cur.ca_cremation c
    JOIN links l ON l.mention_id = 'CA_CREMATION|deceased|' || c.HHZMBH),
marriage AS (  -- each person's latest marriage registration
    SELECT * FROM (
        SELECT l.entity_id, m.*, row_number() OVER (PARTITION BY l.entity_id
                                                    ORDER BY m.DJRQ DESC, m.YWBH DESC) AS k
        FROM (SELECT *, 'CA_MARRIAGE|husband|' || YWBH AS mid FROM cur.ca_marriage
              UNION ALL  -- two equi-joins: an IN list in the join condition is a nested loop
              SELECT *, 'CA_MARRIAGE|wife|' || YWBH FROM cur.ca_marriage) m
        JOIN links l ON l.mention_id = m.mid)
    WHERE k = 1),
move AS (  -- each person's latest hukou move
    SELECT * FROM (
        SELECT l.entity_id, v.*, row_number() OVER (PARTITION BY l.entity_id
                                                    ORDER BY v.QYRQ DESC, v.YWLSH DESC) AS k
        FROM cur.ps_hukou_move v JOIN links l ON l.mention_id = 'PS_HUKOU_MOVE|subject|' || v.YWLSH)
    WHERE k = 1)

SELECT 'death_vs_active' AS kind, 'person' AS entity_kind, ps.entity_id, ps.HJDZ_XZQHDM AS region,
    'RYZTDM=' || ps.RYZTDM AS a_value, 'PS' AS a_provider, 'PS_POP_BASIC' AS a_resource,
    ps.GMSFHM AS a_record_key, ps._batch_id AS a_batch_id, ps._gxsj AS a_as_of,
    'SWRQ=' || d.SWRQ || ', HHRQ=' || d.HHRQ AS b_value, 'CA' AS b_provider,
    'CA_CREMATION' AS b_resource, d.HHZMBH AS b_record_key, d._batch_id AS b_batch_id,
    d._gxsj AS b_as_of, 'PS' AS responsible_provider,
    '火化登记于 ' || d.HHRQ || '，户籍人员状态仍为正常' AS detail_zh,
    'cremated on ' || d.HHRQ || ', still active in the population register' AS detail_en
FROM ps JOIN death d USING (entity_id)
WHERE ps.RYZTDM = '0' AND d.HHRQ <= $today - $grace_death_vs_active

UNION ALL
SELECT 'marital_mismatch', 'person', ps.entity_id, ps.HJDZ_XZQHDM,
    'HYZKDM=' || ps.HYZKDM, 'PS', 'PS_POP_BASIC', ps.GMSFHM, ps._batch_id, ps._gxsj,
    'YWLXDM=' || m.YWLXDM || ' (' || m.YWBH || ')', 'CA', 'CA_MARRIAGE', m.YWBH, m._batch_id,
    m._gxsj, 'PS',
    '婚姻登记（' || m.DJRQ || '）与户籍婚姻状况不一致',
    'marriage registration of ' || m.DJRQ || ' contradicts the population record''s marital status'
FROM ps JOIN marriage m USING (entity_id)
WHERE m.DJRQ <= $today - $grace_marital_mismatch AND ps.RYZTDM = '0' AND (
      (m.YWLXDM IN ('1', '3') AND left(ps.HYZKDM, 1) NOT IN ('2', '3'))  -- married (or since widowed)
   OR (m.YWLXDM IN ('2', '4') AND left(ps.HYZKDM, 1) <> '4'))  -- divorced: a remarriage is a later record

UNION ALL
SELECT 'hukou_two_regions', 'person', ps.entity_id, ps.HJDZ_XZQHDM,
    'HJDZ_XZQHDM=' || ps.HJDZ_XZQHDM, 'PS', 'PS_POP_BASIC', ps.GMSFHM, ps._batch_id, ps._gxsj,
    'QRD_XZQHDM=' || v.QRD_XZQHDM || ' (' || v.QYRQ || ')', 'PS', 'PS_HUKOU_MOVE', v.YWLSH,
    v._batch_id, v._gxsj, 'PS',
    '已迁入 ' || v.QRD_XZQHDM || '（' || v.QYRQ || '），本地户籍仍为正常',
    'moved in to ' || v.QRD_XZQHDM || ' on ' || v.QYRQ || ', still registered here as active'
FROM ps JOIN move v USING (entity_id)
WHERE ps.RYZTDM = '0' AND left(v.QRD_XZQHDM, 4) <> left(ps.HJDZ_XZQHDM, 4)
  AND v.QYRQ <= $today - $grace_hukou_two_regions AND v._gxsj > ps._gxsj

UNION ALL
SELECT 'customs_of_deregistered', 'enterprise', u.entity_id, r.ZS_XZQHDM,
    'BAZTDM=' || r.BAZTDM, 'CU', 'CU_ENT_REG', r.HGBM, r._batch_id, r._gxsj,
    o.status, o.provider, o.resource, o.record_key, o.batch_id, o.as_of, 'CU',
    '企业已在' || o.resource || '注销，海关备案仍有效',
    'deregistered in ' || o.resource || ', customs registration still active'
FROM cur.cu_ent_reg r JOIN ident.enterprise_units u ON u.unit = 'hgbm:' || r.HGBM
JOIN (SELECT uu.entity_id, 'BAZTDM=' || x.BAZTDM AS status, 'CU' AS provider,
             'CU_ENT_REG' AS resource, x.HGBM AS record_key, x._batch_id AS batch_id,
             x._gxsj AS as_of
      FROM cur.cu_ent_reg x JOIN ident.enterprise_units uu ON uu.unit = 'hgbm:' || x.HGBM
      WHERE x.BAZTDM IN ('2', '3')
      UNION ALL
      SELECT uu.entity_id, 'DJZTDM=' || s.DJZTDM, 'CA', 'CA_SOCIAL_ORG', s.TYSHXYDM,
             s._batch_id, s._gxsj
      FROM cur.ca_social_org s JOIN ident.enterprise_units uu ON uu.unit = 'uscc:' || s.TYSHXYDM
      WHERE s.DJZTDM IN ('2', '3')) o ON o.entity_id = u.entity_id
WHERE r.BAZTDM = '1' AND o.record_key <> r.HGBM
  AND CAST(o.as_of AS DATE) <= $today - $grace_customs_of_deregistered AND o.as_of > r._gxsj

UNION ALL
SELECT 'subsistence_after_death', 'person', l.entity_id, s.JZ_XZQHDM,
    'BZNY=' || s.BZNY || ' BZZTDM=' || s.BZZTDM, 'CA', 'CA_SUBSISTENCE',
    s.GMSFHM || '|' || s.BZNY, s._batch_id, s._gxsj,
    'SWRQ=' || dd.death_date, dd.provider, dd.resource, dd.record_key, dd.batch_id, dd.as_of, 'CA',
    '死亡（' || dd.death_date || '）后 ' || s.BZNY || ' 仍在保',
    'assistance for ' || s.BZNY || ' still active after death on ' || dd.death_date
FROM cur.ca_subsistence s
JOIN links l ON l.mention_id = 'CA_SUBSISTENCE|subject|' || s.GMSFHM || '|' || s.BZNY
JOIN (SELECT entity_id, CAST(value AS DATE) AS death_date, provider, resource, record_key,
             batch_id, as_of
      FROM gold.field_values WHERE kind = 'person' AND field = 'death_date' AND rank = 1
        AND valid_to IS NULL) dd ON dd.entity_id = l.entity_id
WHERE s.BZZTDM = '1'
  AND strptime(s.BZNY || '01', '%Y%m%d') > date_trunc('month', dd.death_date) + INTERVAL 1 MONTH
  AND dd.death_date <= $today - $grace_subsistence_after_death
