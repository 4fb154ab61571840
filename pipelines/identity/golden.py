"""Golden records by authority, with every value's provenance and history.

catalogs/identity/golden.yaml says, per field, where candidate values come from and which provider
is the authority. Each run computes every candidate (gold values are never overwritten: a changed
or vanished candidate gets valid_to = the run's time, a new one a new row), ranks them —
authority, then recency, then quality, then match confidence — and marks why rank 1 won.
Read the golden record now from gold.person / gold.enterprise, or as of a past moment with
gold_as_of(kind, t).
"""

from __future__ import annotations

import functools

import yaml

from pipelines import paths
from pipelines.catalog.model import Catalog
from pipelines.catalog.sql_gen import record_key_expr

GOLDEN = paths.CATALOGS / "identity" / "golden.yaml"


@functools.cache
def golden_config() -> dict:
    return yaml.safe_load(GOLDEN.read_text(encoding="utf-8"))


def _code_map(catalog: Catalog, table: str) -> str:
    t = catalog.code_tables[table]
    pairs = {**{k: k for k in t.values}, **t.variants}
    return "MAP {" + ", ".join(f"'{k}': '{v}'" for k, v in pairs.items()) + "}"


def _candidate_sql(catalog: Catalog, kind: str, field: str, authority: list[str],
                   src: dict, only_affected: bool = False) -> str:
    r = catalog.resource(src["resource"])
    auth = authority.index(r.provider) if r.provider in authority else len(authority)
    value = f"CAST(({src['value']}) AS VARCHAR)"
    if src.get("code_table"):
        value = f"coalesce({_code_map(catalog, src['code_table'])}[trim({value})], {value})"
    as_of = src.get("as_of", "_gxsj")
    quality = src.get("quality", "1.0")
    key = record_key_expr(r)
    table = f"cur.{r.key}"
    if kind == "person":
        link = (f"JOIN ident.person_links l ON l.mention_id = "
                f"'{r.code}|{src['role']}|' || {key}")
        entity, confidence = "l.entity_id", "l.match_probability"
        if only_affected:  # the affected persons' records, gathered once per resource
            table = f"_aff_{r.key}"
            link += " AND l.entity_id IN (SELECT entity_id FROM _affected)"
    else:
        link = f"JOIN ident.enterprise_units l ON l.unit = {src['unit']}"
        entity, confidence = "l.entity_id", "1.0"
    if src.get("aggregate"):  # a figure over all the entity's records: provenance = the resource
        return f"""SELECT '{kind}' AS kind, {entity} AS entity_id, '{field}' AS field,
                {src['value']} AS value, '{r.provider}' AS provider, '{r.code}' AS resource,
                max(_batch_id) AS batch_id, NULL AS record_key, max(_gxsj) AS as_of,
                1.0 AS confidence, {auth} AS auth, 1.0 AS quality, bool_or(_disputed) AS disputed
            FROM {table} {link} GROUP BY {entity}"""
    return f"""SELECT '{kind}' AS kind, {entity} AS entity_id, '{field}' AS field,
            {value} AS value, '{r.provider}' AS provider, '{r.code}' AS resource,
            _batch_id AS batch_id, {key} AS record_key, {as_of} AS as_of,
            {confidence} AS confidence, {auth} AS auth, {quality} AS quality,
            _disputed AS disputed
        FROM {table} {link} WHERE ({src['value']}) IS NOT NULL"""


def build_golden(con, catalog: Catalog, now, full: bool = True) -> dict:
    """Recompute candidates, rank them, and fold the result into gold.field_values' history.
    Not `full`: persons in `_affected` only (enterprises are few: always all of them)."""
    con.execute("""CREATE OR REPLACE TEMP MACRO entity_of(mention) AS
        (SELECT entity_id FROM ident.person_links WHERE mention_id = mention)""")
    if not full:
        _gather_affected_records(con, catalog)
    parts = [_candidate_sql(catalog, kind, field, spec["authority"], src, not full)
             for kind, fields in golden_config().items()
             for field, spec in fields.items() for src in spec["from"]]
    con.execute("CREATE OR REPLACE TEMP TABLE _cand AS " + "\nUNION ALL\n".join(parts))
    con.execute("""CREATE OR REPLACE TEMP TABLE _ranked AS
        SELECT *, row_number() OVER w AS rank,
               lead(auth) OVER w AS next_auth, lead(as_of) OVER w AS next_as_of,
               lead(quality) OVER w AS next_quality, lead(confidence) OVER w AS next_confidence
        FROM _cand
        WINDOW w AS (PARTITION BY kind, entity_id, field ORDER BY auth, as_of DESC NULLS LAST,
                     quality DESC, confidence DESC, resource, record_key)""")
    con.execute("""CREATE OR REPLACE TEMP TABLE _gv AS
        SELECT kind, entity_id, field, value, provider, resource, batch_id, record_key, as_of,
               confidence, CAST(rank AS INTEGER) AS rank,
               CASE WHEN rank > 1 THEN NULL
                    WHEN next_auth IS NULL THEN 'sole'
                    WHEN next_auth > auth THEN 'authority'
                    WHEN next_as_of IS DISTINCT FROM as_of THEN 'recency'
                    WHEN next_quality <> quality OR next_confidence <> confidence THEN 'quality'
                    ELSE 'order' END AS rule,
               coalesce(disputed, false) AS disputed,
               md5(concat_ws('|', kind, entity_id, field, value, provider, resource, record_key,
                             CAST(as_of AS VARCHAR), rank, coalesce(disputed, false)))
                   AS digest
        FROM _ranked""")
    # a digest names its entity, so comparing within the recomputed entities is exact
    scope = "true" if full else ("(kind = 'enterprise' OR entity_id IN "
                                 "(SELECT entity_id FROM _affected))")
    closed = con.execute(f"""UPDATE gold.field_values SET valid_to = ?
        WHERE valid_to IS NULL AND {scope} AND digest NOT IN (SELECT digest FROM _gv)""", [now]
                         ).fetchall()[0][0]
    added = con.execute(f"""INSERT INTO gold.field_values
        SELECT kind, entity_id, field, value, provider, resource, batch_id, record_key, as_of,
               confidence, rank, rule, disputed, false, ?, NULL, digest
        FROM _gv WHERE digest NOT IN (SELECT digest FROM gold.field_values
                                      WHERE valid_to IS NULL AND {scope})""", [now]
                        ).fetchall()[0][0]
    _create_views(con)
    return {"candidates": con.execute("SELECT count(*) FROM _gv").fetchall()[0][0],
            "closed": closed, "added": added}


def _gather_affected_records(con, catalog: Catalog) -> None:
    """`_aff_<resource>`: the current records naming an affected person, one scan per resource
    (instead of one per golden field and source)."""
    con.execute("""CREATE OR REPLACE TEMP TABLE _aff_keys AS
        SELECT DISTINCT m.resource, m.record_key FROM ident.person_mentions m
        JOIN ident.person_links l USING (mention_id)
        WHERE l.entity_id IN (SELECT entity_id FROM _affected)""")
    for code in sorted({src["resource"] for src in _person_sources()}):
        r = catalog.resource(code)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _aff_{r.key} AS SELECT * FROM cur.{r.key}
            WHERE {record_key_expr(r)} IN (SELECT record_key FROM _aff_keys
                                           WHERE resource = '{code}')""")


def _person_sources() -> list[dict]:
    return [src for spec in golden_config()["person"].values() for src in spec["from"]]


def _create_views(con) -> None:
    """gold.person and gold.enterprise: one row per entity, its golden values as columns."""
    for kind, fields in golden_config().items():
        cols = ", ".join(f"max(value) FILTER (WHERE field = '{f}') AS \"{f}\"" for f in fields)
        con.execute(f"""CREATE OR REPLACE VIEW gold.{kind} AS
            SELECT entity_id, {cols},
                   list(DISTINCT field) FILTER (WHERE disputed) AS disputed_fields,
                   list(DISTINCT field) FILTER (WHERE in_conflict) AS conflict_fields
            FROM gold.field_values WHERE kind = '{kind}' AND rank = 1 AND valid_to IS NULL
            GROUP BY entity_id""")


def as_of(con, kind: str, moment) -> list[tuple]:
    """Golden values (entity, field, value, provider, resource, record key) as the hub knew them
    at `moment`."""
    return con.execute("""SELECT entity_id, field, value, provider, resource, record_key
        FROM gold.field_values WHERE kind = ? AND rank = 1 AND valid_from <= ?
          AND (valid_to IS NULL OR valid_to > ?) ORDER BY ALL""", [kind, moment, moment]
                       ).fetchall()
