"""Who is who: persons and enterprises linked into stable entities (one reconcile run).

Persons: a valid citizen ID is a deterministic key. Everything else (missing, invalid or
contradicted IDs; passports and permits) is matched by the Splink model against the ID holders;
a unit with no single confident match stays an entity of its own. Enterprises: USCC, the
organisation code inside it, and customs codes (via the customs registration) are keys.
"""

from __future__ import annotations

from pipelines.lib.identity import link, registry

ID_UNIT = "doc_type = '1' AND key_state = 'valid'"
UNIT_EXPR = f"CASE WHEN key_state = 'valid' THEN doc_key ELSE 'mention:' || mention_id END"


def link_persons(con, run_id: str, now, model_version: str) -> dict:
    """ident.person_mentions -> ident.person_links (and the registry); returns counts."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _mu AS
        SELECT mention_id, {UNIT_EXPR} AS unit, ({ID_UNIT}) AS is_id FROM ident.person_mentions""")
    # the model's two sides: one row per ID holder (the population register's record first) ...
    anchors = f"""SELECT doc_key AS unique_id, arg_max(name_simplified, rank_) AS name_simplified,
            arg_max(name_pinyin, rank_) AS name_pinyin, arg_max(birth_date, rank_) AS birth_date,
            arg_max(sex, rank_) AS sex, arg_max(division, rank_) AS division
        FROM (SELECT *, (resource = 'PS_POP_BASIC')::INT * 1e12 + epoch(gxsj) AS rank_
              FROM ident.person_mentions WHERE {ID_UNIT}) GROUP BY doc_key"""
    # ... and one row per unit that is not an ID (its latest mention)
    candidates = f"""SELECT u.unit AS unique_id, arg_max(m.name_simplified, m.gxsj) AS name_simplified,
            arg_max(m.name_pinyin, m.gxsj) AS name_pinyin, arg_max(m.birth_date, m.gxsj) AS birth_date,
            arg_max(m.sex, m.gxsj) AS sex, arg_max(m.division, m.gxsj) AS division
        FROM ident.person_mentions m JOIN _mu u USING (mention_id) WHERE NOT u.is_id
        GROUP BY u.unit"""
    matches = link.predict_links(con, anchors, candidates)
    con.execute("CREATE OR REPLACE TEMP TABLE _matches (unit VARCHAR, root VARCHAR, p DOUBLE)")
    if matches:
        con.executemany("INSERT INTO _matches VALUES (?, ?, ?)", matches)
    con.execute("""CREATE OR REPLACE TEMP TABLE _units AS
        SELECT DISTINCT u.unit, coalesce(x.root, u.unit) AS root
        FROM _mu u LEFT JOIN _matches x USING (unit)""")
    a = registry.assign(con, "person", run_id, now)
    con.execute("DELETE FROM ident.person_links")
    con.execute("""INSERT INTO ident.person_links
        SELECT u.mention_id, s.entity_id,
               CASE WHEN x.p IS NOT NULL THEN 'probabilistic'
                    WHEN u.unit LIKE 'mention:%' THEN 'own' ELSE 'key' END,
               coalesce(x.p, 1.0), ?, ?
        FROM _mu u JOIN _assigned s USING (unit) LEFT JOIN _matches x USING (unit)""",
                [model_version, run_id])
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
    registry. A customs code no registration names stays a unit of its own."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _units AS
        SELECT unit, min(root) AS root FROM ({ENTERPRISE_UNITS}) GROUP BY unit""")
    con.execute("""INSERT INTO _units SELECT DISTINCT 'hgbm:' || HGBM, 'hgbm:' || HGBM
        FROM (SELECT HGBM FROM cur.cu_penalty UNION SELECT HGBM FROM cur.cu_decl_monthly)
        WHERE HGBM IS NOT NULL AND 'hgbm:' || HGBM NOT IN (SELECT unit FROM _units)""")
    a = registry.assign(con, "enterprise", run_id, now)
    con.execute("CREATE OR REPLACE TABLE ident.enterprise_units AS SELECT unit, entity_id "
                "FROM _assigned")
    return {"units": con.execute("SELECT count(*) FROM _units").fetchall()[0][0],
            "created": a.created, "merged": a.merged, "split": a.split, "entities": a.entities}
