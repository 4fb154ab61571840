"""Person mentions: every person a current warehouse record names, in linking form.

Where persons are named is data (catalogs/identity/person_mentions.yaml). IDs are folded and
upgraded in SQL (gb11643_to18); names are normalised in Python once per distinct spelling and
kept in ident.name_forms (opencc and pypinyin are Python-only; a million records hold far fewer
distinct names, and a day's batch almost none that are new).

A run rebuilds only the mentions of records that changed since the last run (temp table
`_changed(resource, record_key)`; the first run sees every record as changed), plus the mentions
that share a document with them, whose key may now be contradicted or no longer so.
"""

from __future__ import annotations

import functools

import pyarrow as pa
import yaml

from pipelines import paths
from pipelines.catalog.model import Catalog
from pipelines.governance.contracts.sql_macros import MACROS
from pipelines.identity.names import normalise_name
from pipelines.catalog.sql_gen import record_key_expr

SOURCES = paths.CATALOGS / "identity" / "person_mentions.yaml"
CITIZEN_ID = "1"


@functools.cache
def sources() -> list[dict]:
    return yaml.safe_load(SOURCES.read_text(encoding="utf-8"))


def _raw_select(catalog: Catalog, src: dict) -> str:
    r = catalog.resource(src["resource"])
    key = record_key_expr(r)
    opt = {k: src.get(k) or "NULL" for k in ("sex", "birth_date", "division")}
    return f"""SELECT '{r.code}|{src['role']}|' || {key} AS mention_id, '{r.code}' AS resource,
            '{r.provider}' AS provider, '{src['role']}' AS role, {key} AS record_key,
            _batch_id AS batch_id, _gxsj AS gxsj,
            coalesce(NULLIF(trim(CAST({src.get('doc_type') or "NULL"} AS VARCHAR)), ''),
                     '{CITIZEN_ID}') AS doc_type,
            CAST({src['doc_no']} AS VARCHAR) AS doc_raw, CAST({src['name']} AS VARCHAR) AS name_raw,
            CAST({opt['sex']} AS VARCHAR) AS sex_raw, CAST({opt['birth_date']} AS DATE) AS birth_raw,
            CAST({opt['division']} AS VARCHAR) AS division
        FROM cur.{r.key}
        WHERE {key} IN (SELECT record_key FROM _rebuild WHERE resource = '{r.code}')"""


def _sex_variants(catalog: Catalog) -> str:
    table = catalog.code_tables["SEX"]
    pairs = {**{k: k for k in table.values}, **table.variants}
    return "MAP {" + ", ".join(f"'{k}': '{v}'" for k, v in pairs.items()) + "}"


def own_value_condition(field: str, alias: str = "m") -> str:
    """SQL: the mention's record states `field` itself (not read from its ID number)."""
    return " OR ".join(f"({alias}.resource = '{s['resource']}' AND {alias}.role = '{s['role']}')"
                       for s in sources() if s.get(field)) or "false"


def build_mentions(con, catalog: Catalog) -> int:
    """Rebuild the mentions of the records in `_changed` (and of those sharing a document with
    them); leaves `_touched(mention_id)` = every mention removed or rebuilt. Returns the count
    rebuilt."""
    for m in MACROS:
        con.execute(m.replace("CREATE OR REPLACE MACRO", "CREATE OR REPLACE TEMP MACRO"))
    # documents named by the changed records before the change (their mentions as stored)
    con.execute("""CREATE OR REPLACE TEMP TABLE _old AS SELECT m.mention_id, m.doc_key
        FROM ident.person_mentions m JOIN _changed c USING (resource, record_key)""")
    con.execute("CREATE OR REPLACE TEMP TABLE _rebuild AS SELECT resource, record_key FROM _changed")
    union = "\nUNION ALL\n".join(_raw_select(catalog, s) for s in sources())
    con.execute(f"CREATE OR REPLACE TEMP TABLE _raw_mentions AS {union}")
    # ... and after it: every other record naming one of those documents is re-judged too
    con.execute("""INSERT INTO _rebuild SELECT DISTINCT m.resource, m.record_key
        FROM ident.person_mentions m
        WHERE m.doc_key IN (SELECT doc_key FROM _old UNION
                            SELECT doc_type || ':' || gb11643_to18(doc_raw) FROM _raw_mentions)
          AND (m.resource, m.record_key) NOT IN (SELECT resource, record_key FROM _changed)""")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _raw_mentions AS {union}")
    _add_name_forms(con)
    con.register("_division_now", _division_now())  # a renamed division compares as today's code
    con.execute("""CREATE OR REPLACE TEMP TABLE _touched AS
        SELECT mention_id FROM ident.person_mentions
        WHERE (resource, record_key) IN (SELECT resource, record_key FROM _rebuild)
        UNION SELECT mention_id FROM _raw_mentions""")
    con.execute("""DELETE FROM ident.person_mentions
        WHERE (resource, record_key) IN (SELECT resource, record_key FROM _rebuild)""")
    con.execute(f"""
        INSERT INTO ident.person_mentions
        WITH d AS (
            SELECT m.*, CASE WHEN doc_type = '{CITIZEN_ID}' THEN gb11643_to18(doc_raw)
                ELSE regexp_replace(upper(gb11643_norm(doc_raw)), '[-‐‑–—()（）]', '', 'g')
                END AS doc_no
            FROM _raw_mentions m),
        k AS (
            SELECT d.*, CASE
                WHEN doc_no IS NULL OR doc_no = '' THEN 'missing'
                WHEN doc_type = '{CITIZEN_ID}' AND gb11643_ok18(doc_no) THEN 'valid'
                WHEN doc_type <> '{CITIZEN_ID}' AND regexp_full_match(doc_no, '[A-Z0-9]{{5,20}}')
                    THEN 'valid'
                ELSE 'invalid' END AS key_state
            FROM d)
        SELECT mention_id, resource, provider, role, record_key, batch_id, gxsj, doc_type,
            NULLIF(doc_no, ''), CASE WHEN key_state = 'valid' THEN doc_type || ':' || doc_no END,
            key_state, n.name, n.name_simplified, n.name_pinyin, n.name_flags,
            coalesce({_sex_variants(catalog)}[trim(sex_raw)],
                     CASE WHEN doc_type = '{CITIZEN_ID}' AND key_state = 'valid'
                          THEN gb11643_sex(doc_no) END),
            coalesce(birth_raw, CASE WHEN doc_type = '{CITIZEN_ID}' AND key_state = 'valid'
                                     THEN gb11643_birth(doc_no) END),
            coalesce(dv.now_code, k.division)
        FROM k LEFT JOIN ident.name_forms n USING (name_raw)
        LEFT JOIN _division_now dv ON dv.code = k.division""")
    con.unregister("_division_now")
    n = con.execute("SELECT count(*) FROM _raw_mentions").fetchall()[0][0]
    con.execute("DROP TABLE _raw_mentions")
    _mark_contradicted(con)
    return n


@functools.cache
def _division_now() -> pa.Table:
    from pipelines.catalog.divisions import DivisionTable

    table = DivisionTable.load()
    codes = table.codes()
    return pa.table({"code": codes, "now_code": [table.current_code(c) for c in codes]})


def _add_name_forms(con) -> None:
    names = [n for (n,) in con.execute("""SELECT DISTINCT name_raw FROM _raw_mentions
        WHERE name_raw IS NOT NULL AND name_raw NOT IN (SELECT name_raw FROM ident.name_forms)"""
                                       ).fetchall()]
    if not names:
        return
    forms = [normalise_name(n) for n in names]
    con.register("_names", pa.table({
        "name_raw": names, "name": [f.value for f in forms],
        "name_simplified": [f.simplified for f in forms],
        "name_pinyin": [f.pinyin for f in forms],
        "name_flags": pa.array([sorted(f.flags) for f in forms], pa.list_(pa.string()))}))
    con.execute("INSERT INTO ident.name_forms SELECT * FROM _names")
    con.unregister("_names")


def _mark_contradicted(con) -> None:
    """A valid ID whose holder, by the population register, is someone else: the name differs
    in characters and in sound, or the sex differs. Such a key is not trusted for linking (nor is
    what it states: the linker ignores the birth date and sex read from it)."""
    con.execute("""
        UPDATE ident.person_mentions m SET key_state = 'contradicted'
        FROM (SELECT doc_key, any_value(name_simplified) AS name_simplified,
                     any_value(name_pinyin) AS name_pinyin, any_value(sex) AS sex
              FROM ident.person_mentions WHERE resource = 'PS_POP_BASIC' AND key_state = 'valid'
                AND mention_id IN (SELECT mention_id FROM _touched)
              GROUP BY doc_key) p
        WHERE m.doc_key = p.doc_key AND m.resource <> 'PS_POP_BASIC' AND m.key_state = 'valid'
          AND m.mention_id IN (SELECT mention_id FROM _touched)
          AND ((m.name_simplified <> p.name_simplified AND m.name_pinyin <> p.name_pinyin)
               OR m.sex <> p.sex)""")
