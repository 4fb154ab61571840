"""Contract rules compiled from the catalogue, judged by Great Expectations on DuckDB: each fails on a
record built to break it and passes on its clean twin; the SQL identifier rules agree with the
Python reference implementation on the standards' examples."""

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from pipelines.lib.catalog import catalog
from pipelines.lib.contracts.rules import compile_rules
from pipelines.lib.contracts.sql_macros import MACROS
from pipelines.lib.contracts.validate import run_contract
from pipelines.lib.identifiers import (
    gb11643_check_char,
    is_valid_citizen_id,
    is_valid_uscc,
    make_citizen_id,
    uscc_check_char,
)

pytestmark = pytest.mark.unit
CAT = catalog()
GOOD_ID = make_citizen_id("500103", dt.date(1980, 1, 2), 11)
BAD_CHECK = GOOD_ID[:17] + ("1" if GOOD_ID[17] == "0" else "0")
BAD_MONTH = "50010319801301011" + gb11643_check_char("50010319801301011")  # check right, month 13


def clean_person(i: int) -> dict:
    pid = make_citizen_id("500103", dt.date(1980, 1, 1) + dt.timedelta(days=i), (10 + i) % 1000)
    return {"_ord": i + 1, "GMSFHM": pid, "XM": "王芳", "XBDM": "2", "MZDM": "01",
            "CSRQ": dt.date(1980, 1, 1), "HJDZ_XZQHDM": "500103", "HJDZ_XXDZ": "渝中区",
            "HYZKDM": "20", "RYZTDM": "0", "SWRQ": None}


def failures(rows: list[dict]) -> dict[str, int]:
    rules = compile_rules(CAT, CAT.resource("PS_POP_BASIC"))
    return {x.rule.rule_id: x.failed for x in run_contract(rules, pa.Table.from_pylist(rows))
            if x.failed}


@pytest.mark.parametrize("field, bad, rule", [
    ("GMSFHM", BAD_CHECK, "PS_POP_BASIC.GMSFHM.gb11643"),
    ("GMSFHM", BAD_MONTH, "PS_POP_BASIC.GMSFHM.gb11643"),
    ("XM", None, "PS_POP_BASIC.XM.required"),
    ("XBDM", "7", "PS_POP_BASIC.XBDM.code_table"),
    ("MZDM", "99", "PS_POP_BASIC.MZDM.code_table"),
    ("HYZKDM", "55", "PS_POP_BASIC.HYZKDM.code_table"),
    ("XM", "名" * 51, "PS_POP_BASIC.XM.length"),
])
def test_each_rule_fails_on_its_broken_record_and_passes_on_the_clean_twin(field, bad, rule):
    clean = [clean_person(i) for i in range(3)]
    assert failures(clean) == {}
    broken = [dict(r) for r in clean]
    broken[1][field] = bad
    assert failures(broken) == {rule: 1}


def test_cosmetic_id_damage_and_known_code_variants_are_not_contract_failures():
    rows = [clean_person(i) for i in range(4)]
    rows[0]["GMSFHM"] = rows[0]["GMSFHM"][:6] + " " + rows[0]["GMSFHM"][6:]  # a space
    rows[1]["XBDM"] = "F"  # GB/T 2261.1 variant, flagged downstream, not invalid
    rows[2]["GMSFHM"] = "110105491231002"  # legacy 15-digit number
    rows[3]["MZDM"] = "57"  # old code for 其他
    assert failures(rows) == {}


def test_sql_identifier_rules_agree_with_the_python_reference():
    con = duckdb.connect()
    for m in MACROS:
        con.execute(m)
    ids = ["11010519491231002X", "440524188001010014", "11010519491231002Y", "110105194912310021",
           "11010519491331002X", "1101051949123100", "abcdefghijklmnopqr"]
    for v in ids:
        assert con.execute("SELECT gb11643_ok(?)", [v]).fetchone()[0] == is_valid_citizen_id(v), v
    body = "9111000060003734"
    broken_org = body + "2" + uscc_check_char(body + "2")  # outer check right, org code wrong
    for v in ["91110000600037341L", "91350100M000100Y43", "91440300708461136T",
              "91110000600037341M", broken_org]:
        assert con.execute("SELECT gb32100_ok(?)", [v]).fetchone()[0] == is_valid_uscc(v), v


def test_a_rule_failing_beyond_its_threshold_blocks_the_batch():
    rules = compile_rules(CAT, CAT.resource("PS_POP_BASIC"))
    rows = [clean_person(i) for i in range(1000)]
    for r in rows[:10]:  # 1 % invalid IDs > 0.5 % allowed
        r["GMSFHM"] = r["GMSFHM"][:17] + ("1" if r["GMSFHM"][17] == "0" else "0")
    result = {x.rule.rule_id: x for x in run_contract(rules, pa.Table.from_pylist(rows))}
    assert result["PS_POP_BASIC.GMSFHM.gb11643"].failed == 10
    assert result["PS_POP_BASIC.GMSFHM.gb11643"].blocks_batch
    assert not result["PS_POP_BASIC.XM.required"].blocks_batch
