"""The analysts' tiers hold what the responsibility list grants and nothing more: for every
department × purpose × tier, each table's columns are exactly the fields the list shares with
that department for that purpose (read from the YAML by tests/release_rule.py, not through the
hub's catalogue classes), golden values come only from sources the department may receive, N
fields never appear, and the statistical tier shows no identifier in clear."""

import re

import duckdb
import pytest
import yaml

from pipelines.catalog.model import load_catalog
from pipelines.workbench.masking import MASKING_FILE
from pipelines.workbench.pseudonym import pseudonym
from pipelines.workbench.tier_build import build_tier
from pipelines.workbench.tier_plan import TierRefused, plan_tier
from identifier_scan import ID_PATTERN, valid_citizen_ids
from release_rule import golden, may_receive, resources, shared

pytestmark = pytest.mark.integration

KEY = b"tier-test-pseudonym-key-0123456789abcdef"
CONSUMERS = [c["code"] for c in yaml.safe_load((MASKING_FILE.parents[1] / "consumers.yaml")
                                                .read_text(encoding="utf-8"))]
PURPOSES = [p["code"] for p in yaml.safe_load((MASKING_FILE.parents[1] / "purposes.yaml")
                                               .read_text(encoding="utf-8"))]
MASKS = yaml.safe_load(MASKING_FILE.read_text(encoding="utf-8"))
TECHNICAL = re.compile(r"^_")


@pytest.fixture(scope="module")
def tiers(served_sim_world, tmp_path_factory):
    """Every department × purpose × tier built from the served world's snapshot:
    {(tier, dept, purpose): path} (None where the list grants nothing)."""
    s, _, _ = served_sim_world
    snapshot = s.published_current.resolve()
    out_dir = tmp_path_factory.mktemp("tiers")
    with duckdb.connect(str(snapshot), read_only=True) as con:
        cols = {}
        for schema, table, column in con.execute(
                "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                "ORDER BY column_index").fetchall():
            cols.setdefault((schema, table), []).append(column)
    cat = load_catalog()
    built, by_signature = {}, {}
    for dept in CONSUMERS:
        for purpose in PURPOSES:
            for tier in ("statistical", "identified"):
                try:
                    plan = plan_tier(cat, tier, dept, purpose,
                                     lambda s_, t: cols.get((s_, t), []))
                except TierRefused:
                    built[(tier, dept, purpose)] = None
                    continue
                path = by_signature.get(plan.signature)
                if path is None:
                    path = by_signature[plan.signature] = build_tier(
                        snapshot, plan, out_dir / f"{plan.signature}.duckdb", KEY,
                        tuple(MASKS["compound_surnames"]))
                built[(tier, dept, purpose)] = path
    return snapshot, built


def columns_of(path) -> dict[tuple[str, str], set[str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        out: dict = {}
        for s, t, c in con.execute("SELECT schema_name, table_name, column_name FROM "
                                   "duckdb_columns() WHERE database_name = current_database()"
                                   ).fetchall():
            out.setdefault((s, t), set()).add(c)
    return out


def expected_fields(code: str, dept: str, purpose: str, tier: str) -> set[str]:
    r = resources()[code]
    masks = MASKS["resources"].get(code, {}) if tier == "statistical" else {}
    out = set()
    for f in r["fields"]:
        if not shared(code, f["code"], dept, purpose):
            continue
        mask = masks.get(f["code"])
        if mask == "drop":
            continue
        if isinstance(mask, dict) and not shared(code, *mask.values(), dept, purpose):
            continue  # masked by another field (a division code, a USCC) it may not see
        out.add(f["code"])
    return out


def expected_golden(kind: str, dept: str, purpose: str, tier: str) -> set[str]:
    fields = {f for f, spec in golden()[kind].items()
              if any(may_receive(kind, f, src["resource"], dept, purpose)
                     for src in spec["from"])}
    if tier == "statistical":
        for f, mask in MASKS["golden"].get(kind, {}).items():
            if isinstance(mask, dict) and next(iter(mask.values())) not in fields:
                fields.discard(f)
    return fields


def test_every_tier_holds_exactly_the_fields_the_list_grants(tiers):
    _, built = tiers
    checked = 0
    for (tier, dept, purpose), path in built.items():
        if (tier == "statistical") != (purpose == "ANALYTICS"):
            assert path is None  # statistics are pseudonymised; named records are for a case
            continue
        have = columns_of(path) if path else {}
        for code in resources():
            want = expected_fields(code, dept, purpose, tier)
            got = {c for c in have.get(("hist", code.lower()), set()) if not TECHNICAL.match(c)}
            assert got == want, (tier, dept, purpose, code)
            cur = {c for c in have.get(("cur", code.lower()), set()) if not TECHNICAL.match(c)}
            assert cur == want, (tier, dept, purpose, code, "cur")
            checked += len(want)
        for kind in golden():
            want = expected_golden(kind, dept, purpose, tier)
            got = have.get(("gold", kind), set()) - {"entity_id"}
            assert got == want, (tier, dept, purpose, kind)
        if path is None:  # nothing granted: then no resource field and no golden field either
            assert not any(expected_fields(c, dept, purpose, tier) for c in resources())
    assert checked > 1000  # the matrix was walked, not skipped


def test_n_fields_never_appear_in_any_tier(tiers):
    _, built = tiers
    forbidden = {f["code"] for r in resources().values() for f in r["fields"]
                 if (f.get("sharing") or r["sharing"])["type"] == "N"}
    assert forbidden  # the list has some (the photo)
    for path in {p for p in built.values() if p}:
        with duckdb.connect(str(path), read_only=True) as con:
            names = {c for (c,) in con.execute("SELECT column_name FROM duckdb_columns()")
                     .fetchall()}
        assert not names & forbidden


def test_golden_values_come_from_the_best_source_the_department_may_receive(tiers):
    snapshot, built = tiers
    for dept, purpose in (("WJW", "NEWBORN"), ("MZJ", "SOCIAL_ASSIST"), ("YBJ", "AFTER_DEATH")):
        path = built[("identified", dept, purpose)]
        with duckdb.connect(str(path), read_only=True) as con:
            con.execute(f"ATTACH '{snapshot}' AS snap (READ_ONLY)")
            for kind in golden():
                for field, spec in golden()[kind].items():
                    allowed = sorted({src["resource"] for src in spec["from"]
                                      if may_receive(kind, field, src["resource"], dept,
                                                     purpose)})
                    if not allowed:
                        continue
                    wrong = con.execute(f"""
                        WITH best AS (SELECT entity_id, arg_min(value, rank) AS value
                            FROM snap.gold.field_values
                            WHERE kind = ? AND field = ? AND valid_to IS NULL
                              AND list_contains(?, resource)
                            GROUP BY entity_id)
                        SELECT count(*) FROM best b JOIN gold.{kind} g USING (entity_id)
                        WHERE g."{field}" IS DISTINCT FROM b.value""",
                                        [kind, field, allowed]).fetchone()[0]
                    assert wrong == 0, (dept, purpose, kind, field)


def test_the_statistical_tier_pseudonymises_ids_and_masks_names_dates_addresses(tiers):
    snapshot, built = tiers
    path = built[("statistical", "SJJ", "ANALYTICS")]
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute(f"ATTACH '{snapshot}' AS snap (READ_ONLY)")
        pairs = con.execute("""SELECT s.GMSFHM, s.XM, s.CSRQ, r.XM, r.CSRQ, r.GMSFHM
            FROM hist.ps_pop_basic s JOIN snap.hist.ps_pop_basic r USING (_vid)
            LIMIT 500""").fetchall()
    assert len(pairs) == 500
    for masked_id, masked_name, month, name, born, citizen_id in pairs:
        assert masked_id == pseudonym(citizen_id, KEY)  # stable, keyed, joinable
        assert masked_name == name[0] + "*" or masked_name == name[:2] + "*"
        assert month == born.strftime("%Y-%m")


def test_no_statistical_tier_file_holds_an_id_or_a_name_in_clear(tiers):
    """Every text value of every table of every statistical tier file, scanned whole: no valid
    citizen ID anywhere in it, no value that is a name of the node's people."""
    snapshot, built = tiers
    scanned = 0
    for path in {p for (tier, _, _), p in built.items() if tier == "statistical" and p}:
        with duckdb.connect(str(path), read_only=True) as con:
            con.execute(f"ATTACH '{snapshot}' AS snap (READ_ONLY)")
            con.execute("CREATE TEMP TABLE names AS SELECT DISTINCT XM AS name FROM "
                        "snap.hist.ps_pop_basic WHERE length(XM) >= 2")
            text_columns = con.execute("""SELECT schema_name, table_name, column_name
                FROM duckdb_columns() WHERE database_name = current_database()
                  AND data_type = 'VARCHAR'""").fetchall()
            for schema, table, column in text_columns:
                ref = f'{schema}."{table}"."{column}"'
                candidates = con.execute(
                    f"SELECT DISTINCT {ref} FROM {schema}.\"{table}\" "
                    f"WHERE regexp_matches({ref}, ?)", [ID_PATTERN]).fetchall()
                assert [v for (v,) in candidates if valid_citizen_ids(v)] == [], ref
                named = con.execute(f"SELECT count(*) FROM {schema}.\"{table}\" "
                                    f"WHERE {ref} IN (SELECT name FROM names)").fetchone()[0]
                assert named == 0, ref
                scanned += 1
    assert scanned > 100


def test_operational_tables_show_only_the_resources_the_tier_has_records_of(tiers):
    """A department learns nothing from ops.* about deliveries or objections of data the list
    does not share with it (SJJ has no cremation records for ANALYTICS: none of their batches)."""
    _, built = tiers
    checked = 0
    for (tier, dept, purpose), path in built.items():
        if path is None:
            continue
        with duckdb.connect(str(path), read_only=True) as con:
            visible = {t.upper() for (t,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'hist'").fetchall()}
            with_resource = [t for (t,) in con.execute(
                "SELECT table_name FROM duckdb_columns() WHERE schema_name = 'ops' "
                "AND column_name = 'resource'").fetchall()]
            assert "batches" in with_resource and "objections" in with_resource
            for table in with_resource:
                seen = {r for (r,) in con.execute(f"SELECT DISTINCT resource FROM ops.{table} "
                                                  "WHERE resource IS NOT NULL").fetchall()}
                assert seen <= visible, (tier, dept, purpose, table, seen - visible)
                checked += len(seen)
    assert checked > 0
    sjj = built[("statistical", "SJJ", "ANALYTICS")]
    with duckdb.connect(str(sjj), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ops.batches WHERE resource = 'CA_CREMATION'"
                           ).fetchone()[0] == 0
