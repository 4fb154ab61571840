"""Linkage evaluation against ground truth, on a hand-built world of five persons.

P1 and P2 are married (YW1), P2 is the legal representative of E1, P3 and P4 are twins, P5
married a foreigner (YW2, no simulated husband), died (HH1) and received subsistence (no truth
record: traced through the citizen ID in the key). Several warehouse keys carry the delivered,
damaged ID.
"""

import datetime as dt
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.catalog.identifiers import make_citizen_id, upgrade_15_to_18
from pipelines.identity.truth_eval import (
    evaluate_person_linkage,
    format_summary,
    sql_upgrade_15_to_18,
)

pytestmark = pytest.mark.unit
SCHEMA = Path(__file__).parents[2] / "assets/sql/identity/schema.sql"

ID = {f"P{i}": make_citizen_id("500101", dt.date(1960 + i, 3, 4), 10 + i) for i in range(1, 6)}
ID["P4"] = make_citizen_id("500101", dt.date(1963, 3, 4), 22)  # P3's twin: same birth date
FW = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")

# (resource, role, delivered record_key, true person or None)
MENTIONS = [
    ("PS_POP_BASIC", "subject", ID["P1"][:6] + ID["P1"][8:17], "P1"),  # id_15_digit
    ("CA_MARRIAGE", "husband", "YW1", "P1"),
    ("PS_POP_BASIC", "subject", ID["P2"].translate(FW), "P2"),  # id_fullwidth
    ("CA_MARRIAGE", "wife", "YW1", "P2"),
    ("CU_ENT_REG", "legal_rep", "5001260001", "P2"),
    ("PS_POP_BASIC", "subject", ID["P3"], "P3"),
    ("PS_POP_BASIC", "subject", ID["P4"], "P4"),
    ("CA_MARRIAGE", "wife", "YW2", "P5"),
    ("CA_MARRIAGE", "husband", "YW2", None),  # a passport holder: no simulated person
    ("CA_CREMATION", "deceased", "HH1", "P5"),
    ("CA_SUBSISTENCE", "subject", f"{ID['P5'][:6]} {ID['P5'][6:14]} {ID['P5'][14:]}|202609",
     "P5"),  # id_space
    ("PS_POP_BASIC", "subject", ID["P1"], "P1"),  # the clean delivery: a record of its own
]


def _mid(resource: str, role: str, key: str) -> str:
    return f"{resource}|{role}|{key}"


def _write(path, cols: dict) -> None:
    pq.write_table(pa.table({k: pa.array(v, type=pa.string()) for k, v in cols.items()}), path)


@pytest.fixture()
def truth_dir(tmp_path):
    d = tmp_path / "truth"
    d.mkdir()
    records = [("PS_POP_BASIC", ID[p], p) for p in ("P1", "P2", "P3", "P4")]
    records += [("PS_POP_BASIC", ID["P1"], "P1"),  # delivered twice: one entity still
                ("CA_MARRIAGE", "YW1", "M1"), ("CA_MARRIAGE", "YW2", "M2"),
                ("CA_CREMATION", "HH1", "P5"), ("CU_ENT_REG", "5001260001", "E1")]
    _write(d / "records.parquet", {"resource": [r for r, _, _ in records],
                                   "key": [k for _, k, _ in records],
                                   "entity_id": [e for _, _, e in records]})
    _write(d / "persons.parquet", {"person_id": list(ID), "gmsfhm": list(ID.values()),
                                   "twin_group": [None, None, "7", "7", None]})
    _write(d / "marriages.parquet", {"entity_id": ["M1", "M2"], "ywbh": ["YW1", "YW2"],
                                     "husband_id": ["P1", None], "wife_id": ["P2", "P5"],
                                     "foreign_document": [None, "E12345678"]})
    _write(d / "enterprises.parquet", {"entity_id": ["E1"], "uscc": ["91500105517992567C"],
                                       "hgbm": ["5001260001"], "legal_rep_id": ["P2"]})
    defects = [("PS_POP_BASIC", ID["P1"], "id_15_digit", "GMSFHM"),
               ("PS_POP_BASIC", ID["P1"], "id_15_digit", "GMSFHM"),  # two deliveries: counted once
               ("PS_POP_BASIC", ID["P1"], "id_bad_checksum", "GMSFHM"),  # an untraceable key
               ("CA_MARRIAGE", "YW1", "id_lowercase_x", "NV_ZJHM"),  # the wife's side only
               ("CA_MARRIAGE", "YW1", "duplicate_row", None),  # the whole record: both sides
               ("PS_POP_BASIC", ID["P4"], "code_variant", "HYZKDM"),
               ("CU_ENT_REG", "5001260001", "bad_value", "BARQ"),  # not about the legal rep
               ("PS_POP_BASIC", None, "overshare", "ZP")]  # a batch defect: no record
    _write(d / "defects.parquet", {"resource": [r for r, *_ in defects],
                                   "key": [k for _, k, _, _ in defects],
                                   "defect_code": [c for *_, c, _ in defects],
                                   "field": [f for *_, f in defects]})
    return d


def _warehouse(tmp_path, entity_of: dict[str, str | None], method_of: dict[str, str]):
    """A DuckDB with the identity DDL, every fixture mention, and the given links (a mention
    mapped to None has no link row)."""
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    con.execute(SCHEMA.read_text(encoding="utf-8"))
    for resource, role, key, _ in MENTIONS:
        mid = _mid(resource, role, key)
        con.execute("INSERT INTO ident.person_mentions (mention_id, resource, provider, role, "
                    "record_key) VALUES (?, ?, 'X', ?, ?)", [mid, resource, role, key])
        if entity_of.get(mid) is not None:
            con.execute("INSERT INTO ident.person_links (mention_id, entity_id, method) "
                        "VALUES (?, ?, ?)", [mid, entity_of[mid], method_of.get(mid, "key")])
    return con


def _true_linkage() -> dict[str, str]:
    return {_mid(r, ro, k): f"ent-{p or 'foreign'}" for r, ro, k, p in MENTIONS}


def test_a_perfect_linkage_scores_one(tmp_path, truth_dir):
    con = _warehouse(tmp_path, _true_linkage(), {})
    r = evaluate_person_linkage(con, truth_dir)
    assert (r["mentions"], r["mentions_evaluated"]) == (12, 11)
    assert r["mentions_without_true_person"] == 1
    assert r["without_true_person_by_source"] == [
        {"resource": "CA_MARRIAGE", "role": "husband", "mentions": 1}]
    assert r["persons"] == 5 and r["predicted_entities"] == 5
    assert (r["true_positive_pairs"], r["predicted_pairs"], r["true_pairs"]) == (9, 9, 9)
    assert r["precision"] == r["recall"] == r["f1"] == r["purity"] == r["completeness"] == 1.0
    assert (r["correct"], r["wrongly_merged"], r["left_apart"]) == (11, 0, 0)
    assert (r["twin_pairs"], r["twin_pairs_merged"]) == (1, 0)
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone() == (0,)


def test_a_wrong_merge_and_a_missed_link(tmp_path, truth_dir):
    links = _true_linkage()
    twin_p4 = _mid("PS_POP_BASIC", "subject", ID["P4"])
    subsistence = _mid(*MENTIONS[10][:3])
    links[twin_p4] = "ent-P3"  # the twins merged
    links[subsistence] = None  # P5's subsistence mention not linked at all
    methods = {twin_p4: "probabilistic", _mid("CA_MARRIAGE", "wife", "YW2"): "own"}
    r = evaluate_person_linkage(_warehouse(tmp_path, links, methods), truth_dir)
    # predicted pairs: P1 3 + P2 3 + {P3, P4} 1 + P5's two linked mentions 1 = 8, of which the
    # twins' pair is false; true pairs: P1 3 + P2 3 + P5 3 = 9
    assert (r["true_positive_pairs"], r["predicted_pairs"], r["true_pairs"]) == (7, 8, 9)
    assert r["precision"] == pytest.approx(7 / 8) and r["recall"] == pytest.approx(7 / 9)
    assert r["f1"] == pytest.approx(2 * (7 / 8) * (7 / 9) / (7 / 8 + 7 / 9))
    # the twins' entity holds one mention of its majority person: 10 of 11 mentions are with
    # their entity's majority person, and 10 of 11 in their person's home entity
    assert r["purity"] == pytest.approx(10 / 11) and r["completeness"] == pytest.approx(10 / 11)
    assert (r["correct"], r["wrongly_merged"], r["left_apart"]) == (9, 1, 1)
    assert r["mentions_unlinked"] == 1
    assert (r["twin_pairs"], r["twin_pairs_merged"]) == (1, 1)
    assert r["merged_twins"] == [{"persons": ["P3", "P4"], "entity": "ent-P3"}]
    assert r["by_method"] == [
        {"method": "key", "mentions": 8, "correct": 8, "wrongly_merged": 0, "left_apart": 0},
        {"method": "own", "mentions": 1, "correct": 1, "wrongly_merged": 0, "left_apart": 0},
        {"method": "probabilistic", "mentions": 1, "correct": 0, "wrongly_merged": 1,
         "left_apart": 0},
        {"method": "unlinked", "mentions": 1, "correct": 0, "wrongly_merged": 0,
         "left_apart": 1}]
    assert r["by_defect"] == [
        {"defect_code": "code_variant", "mentions": 1, "correct": 0, "wrongly_merged": 1,
         "left_apart": 0},
        {"defect_code": "duplicate_row", "mentions": 2, "correct": 2, "wrongly_merged": 0,
         "left_apart": 0},
        # only the mention keyed by the 15-digit number, not P1's clean PS_POP_BASIC record
        {"defect_code": "id_15_digit", "mentions": 1, "correct": 1, "wrongly_merged": 0,
         "left_apart": 0},
        {"defect_code": "id_lowercase_x", "mentions": 1, "correct": 1, "wrongly_merged": 0,
         "left_apart": 0}]
    assert json.loads(json.dumps(r)) == r
    text = format_summary(r)
    assert "twin pairs merged: 1 of 1" in text and "precision 87.5000%" in text


def test_the_sql_upgrade_matches_the_python_one():
    ids15 = [make_citizen_id("110228", dt.date(1900 + y, 1 + y % 12, 1 + y % 28), 3 * y)
             for y in range(0, 100, 7)]
    ids15 = [i[:6] + i[8:17] for i in ids15]
    got = duckdb.sql(
        f"SELECT {sql_upgrade_15_to_18('f17')} FROM (SELECT unnest(?) AS id15) t, "
        "LATERAL (SELECT substr(id15, 1, 6) || '19' || substr(id15, 7) AS f17) ORDER BY id15",
        params=[ids15]).fetchall()
    assert [g for (g,) in got] == [upgrade_15_to_18(i) for i in sorted(ids15)]
