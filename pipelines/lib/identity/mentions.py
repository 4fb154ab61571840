"""Person mentions: every person a current warehouse record names, in linking form.

Where persons are named is data (catalogs/identity/person_mentions.yaml). IDs are folded and
upgraded in SQL (gb11643_to18); names are normalised in Python once per distinct spelling (opencc
and pypinyin are Python-only, and a million records hold far fewer distinct names).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pyarrow as pa
import yaml

from pipelines.lib.catalog import Catalog
from pipelines.lib.contracts.sql_macros import MACROS
from pipelines.lib.identity.names import normalise_name
from pipelines.lib.sql_gen import record_key_expr

SOURCES = Path(__file__).resolve().parents[3] / "catalogs" / "identity" / "person_mentions.yaml"
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
        FROM cur.{r.key}"""


def _sex_variants(catalog: Catalog) -> str:
    table = catalog.code_tables["SEX"]
    pairs = {**{k: k for k in table.values}, **table.variants}
    return "MAP {" + ", ".join(f"'{k}': '{v}'" for k, v in pairs.items()) + "}"


def build_mentions(con, catalog: Catalog) -> int:
    """(Re)build ident.person_mentions from the current views; returns the number of mentions."""
    for m in MACROS:
        con.execute(m.replace("CREATE OR REPLACE MACRO", "CREATE OR REPLACE TEMP MACRO"))
    union = "\nUNION ALL\n".join(_raw_select(catalog, s) for s in sources())
    con.execute(f"CREATE OR REPLACE TEMP TABLE _raw_mentions AS {union}")
    names = [n for (n,) in con.execute(
        "SELECT DISTINCT name_raw FROM _raw_mentions WHERE name_raw IS NOT NULL").fetchall()]
    forms = [normalise_name(n) for n in names]
    con.register("_names", pa.table({
        "name_raw": names, "name": [f.value for f in forms],
        "name_simplified": [f.simplified for f in forms],
        "name_pinyin": [f.pinyin for f in forms],
        "name_flags": pa.array([sorted(f.flags) for f in forms], pa.list_(pa.string()))}))
    con.execute("DELETE FROM ident.person_mentions")
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
            division
        FROM k LEFT JOIN _names n USING (name_raw)""")
    con.unregister("_names")
    con.execute("DROP TABLE _raw_mentions")
    _mark_contradicted(con)
    return con.execute("SELECT count(*) FROM ident.person_mentions").fetchall()[0][0]


def _mark_contradicted(con) -> None:
    """A valid ID whose holder, by the population register, is someone else: the name differs
    in characters and in sound, or the sex differs. Such a key is not trusted for linking, nor
    is what it states (birth date, and sex where the record gives none of its own)."""
    own_sex = " OR ".join(f"(m.resource = '{s['resource']}' AND m.role = '{s['role']}')"
                          for s in sources() if s.get("sex")) or "false"
    own_birth = " OR ".join(f"(m.resource = '{s['resource']}' AND m.role = '{s['role']}')"
                            for s in sources() if s.get("birth_date")) or "false"
    con.execute(f"""
        UPDATE ident.person_mentions m SET key_state = 'contradicted',
            sex = CASE WHEN {own_sex} THEN m.sex END,
            birth_date = CASE WHEN {own_birth} THEN m.birth_date END
        FROM (SELECT doc_key, any_value(name_simplified) AS name_simplified,
                     any_value(name_pinyin) AS name_pinyin, any_value(sex) AS sex
              FROM ident.person_mentions WHERE resource = 'PS_POP_BASIC' AND key_state = 'valid'
              GROUP BY doc_key) p
        WHERE m.doc_key = p.doc_key AND m.resource <> 'PS_POP_BASIC' AND m.key_state = 'valid'
          AND ((m.name_simplified <> p.name_simplified AND m.name_pinyin <> p.name_pinyin)
               OR m.sex <> p.sex)""")
