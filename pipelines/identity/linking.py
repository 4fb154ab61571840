"""Who is who: persons and enterprises linked into stable entities (one reconcile run).

Persons: a valid citizen ID is a deterministic key. Everything else (missing, invalid or
contradicted IDs; passports and permits) is matched by the Splink model against the ID holders;
a unit with no single confident match stays an entity of its own. Only the units of mentions the
run touched are linked again; the registry keeps everyone else's. Enterprises: USCC, the
organisation code inside it, and customs codes (via the customs registration) are keys.
"""

from __future__ import annotations

from pipelines.identity import person_model, registry
from pipelines.identity.mentions import own_value_condition

ID_UNIT = "doc_type = '1' AND key_state = 'valid'"


def unit_expr(alias: str = "") -> str:
    """SQL: a mention's linking unit (its valid document key, else the mention itself)."""
    a = f"{alias}." if alias else ""
    return f"CASE WHEN {a}key_state = 'valid' THEN {a}doc_key ELSE 'mention:' || {a}mention_id END"


def link_persons(con, run_id: str, now, model_version: str) -> dict:
    """Link the units of `_touched` mentions; refresh their (and their entities') person_links."""
    con.execute("""CREATE OR REPLACE TEMP TABLE _prev AS SELECT DISTINCT entity_id
        FROM ident.person_links WHERE mention_id IN (SELECT mention_id FROM _touched)""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _mu AS
        SELECT mention_id, {unit_expr()} AS unit, ({ID_UNIT}) AS is_id FROM ident.person_mentions
        WHERE mention_id IN (SELECT mention_id FROM _touched)""")
    # the model's two sides: one row per ID holder (the population register's record first) ...
    anchors = f"""SELECT doc_key AS unique_id, arg_max(name_simplified, rank_) AS name_simplified,
            arg_max(name_pinyin, rank_) AS name_pinyin, arg_max(birth_date, rank_) AS birth_date,
            arg_max(sex, rank_) AS sex, arg_max(division, rank_) AS division
        FROM (SELECT *, (resource = 'PS_POP_BASIC')::INT * 1e12 + epoch(gxsj) AS rank_
              FROM ident.person_mentions WHERE {ID_UNIT}) GROUP BY doc_key"""
    # ... and one row per touched unit that is not an ID (its latest mention; what a contradicted
    # ID states about birth and sex is not evidence)
    trusted = "m.key_state <> 'contradicted' OR {own}"
    candidates = f"""SELECT u.unit AS unique_id,
            arg_max(m.name_simplified, m.gxsj) AS name_simplified,
            arg_max(m.name_pinyin, m.gxsj) AS name_pinyin,
            arg_max(CASE WHEN {trusted.format(own=own_value_condition('birth_date'))}
                         THEN m.birth_date END, m.gxsj) AS birth_date,
            arg_max(CASE WHEN {trusted.format(own=own_value_condition('sex'))}
                         THEN m.sex END, m.gxsj) AS sex,
            arg_max(m.division, m.gxsj) AS division
        FROM ident.person_mentions m JOIN _mu u USING (mention_id) WHERE NOT u.is_id
        GROUP BY u.unit"""
    matches = person_model.predict_links(con, anchors, candidates)
    con.execute("CREATE OR REPLACE TEMP TABLE _matches (unit VARCHAR, root VARCHAR, p DOUBLE)")
    if matches:
        con.executemany("INSERT INTO _matches VALUES (?, ?, ?)", matches)
    con.execute("""CREATE OR REPLACE TEMP TABLE _units AS
        SELECT DISTINCT u.unit, coalesce(x.root, u.unit) AS root,
               CASE WHEN x.p IS NOT NULL THEN 'probabilistic'
                    WHEN u.unit LIKE 'mention:%' THEN 'own' ELSE 'key' END AS method,
               coalesce(x.p, 1.0) AS p
        FROM _mu u LEFT JOIN _matches x USING (unit)""")
    a = registry.assign(con, "person", run_id, now)
    # links of every mention whose unit was (re)assigned, and none for mentions that are gone
    con.execute(f"""DELETE FROM ident.person_links
        WHERE mention_id IN (SELECT mention_id FROM _touched) OR mention_id IN (
            SELECT m.mention_id FROM ident.person_mentions m
            JOIN _assigned a ON a.unit = {unit_expr('m')})""")
    con.execute(f"""INSERT INTO ident.person_links
        SELECT m.mention_id, r.entity_id, r.method, r.p, ?, ?
        FROM ident.person_mentions m
        JOIN ident.registry r ON r.kind = 'person' AND r.unit = {unit_expr('m')}
        ANTI JOIN ident.person_links l ON l.mention_id = m.mention_id""",
                [model_version, run_id])
    # the persons whose golden records must be recomputed: every entity a touched unit left or
    # joined, and the former entities of mentions that are gone
    con.execute("""CREATE OR REPLACE TEMP TABLE _affected AS
        SELECT entity_id FROM _assigned UNION SELECT prior FROM _assigned WHERE prior IS NOT NULL
        UNION SELECT entity_id FROM _prev""")
    return {"units": con.execute("SELECT count(*) FROM _units").fetchall()[0][0],
            "probabilistic_links": len(matches), "created": a.created, "merged": a.merged,
            "split": a.split, "entities": a.entities}


ENTERPRISE_UNITS = """
    -- every enterprise code a current record carries, with the USCC the record pairs it with
    SELECT 'uscc:' || TYSHXYDM AS unit, 'uscc:' || TYSHXYDM AS root FROM cur.cu_ent_reg
        WHERE gb32100_ok(TYSHXYDM)
    UNION SELECT 'hgbm:' || HGBM, CASE WHEN gb32100_ok(TYSHXYDM) THEN 'uscc:' || TYSHXYDM
        ELSE 'hgbm:' || HGBM END FROM cur.cu_ent_reg
    UNION SELECT 'uscc:' || TYSHXYDM, 'uscc:' || TYSHXYDM FROM cur.ca_social_org
        WHERE gb32100_ok(TYSHXYDM)
    UNION SELECT 'uscc:' || TYSHXYDM, 'uscc:' || TYSHXYDM FROM cur.cu_penalty
        WHERE gb32100_ok(TYSHXYDM)
    UNION SELECT 'uscc:' || TYSHXYDM, 'uscc:' || TYSHXYDM FROM cur.cu_decl_monthly
        WHERE gb32100_ok(TYSHXYDM)"""


def link_enterprises(con, run_id: str, now) -> dict:
    """Enterprise units (USCC; customs codes through the registration that pairs them) into the
    registry — all of them each run: they are few. A customs code no registration names stays a
    unit of its own."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _units AS
        SELECT unit, min(root) AS root, 'key' AS method, 1.0 AS p
        FROM ({ENTERPRISE_UNITS}) GROUP BY unit""")
    con.execute("""INSERT INTO _units SELECT DISTINCT 'hgbm:' || HGBM, 'hgbm:' || HGBM, 'key', 1.0
        FROM (SELECT HGBM FROM cur.cu_penalty UNION SELECT HGBM FROM cur.cu_decl_monthly)
        WHERE HGBM IS NOT NULL AND 'hgbm:' || HGBM NOT IN (SELECT unit FROM _units)""")
    a = registry.assign(con, "enterprise", run_id, now)
    return {"units": con.execute("SELECT count(*) FROM _units").fetchall()[0][0],
            "created": a.created, "merged": a.merged, "split": a.split, "entities": a.entities}
