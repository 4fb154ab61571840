"""Contract rules compiled from the catalogue, judged by Great Expectations on DuckDB: each fails on a
record built to break it and passes on its clean twin; the SQL identifier rules agree with the
Python reference implementation on the standards' examples."""

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from pipelines.catalog.model import catalog
from pipelines.governance.contracts.rules import compile_rules
from pipelines.governance.contracts.sql_macros import MACROS
from pipelines.governance.contracts.validate import run_contract
from pipelines.catalog.identifiers import (
    gb11643_check_char,
    is_valid_citizen_id,
    is_valid_uscc,
    make_citizen_id,
    make_customs_code,
    make_uscc,
    uscc_check_char,
)

pytestmark = pytest.mark.unit
CAT = catalog()
GOOD_ID = make_citizen_id("500103", dt.date(1980, 1, 2), 11)
BAD_CHECK = GOOD_ID[:17] + ("1" if GOOD_ID[17] == "0" else "0")
BAD_MONTH = "50010319801301011" + gb11643_check_char("50010319801301011")  # check right, month 13


def clean_person(i: int) -> dict:
    born = dt.date(1980, 1, 1) + dt.timedelta(days=i)
    pid = make_citizen_id("500103", born, (10 + 2 * i) % 1000)  # even sequence: female
    return {"_ord": i + 1, "GMSFHM": pid, "XM": "王芳", "XBDM": "2", "MZDM": "01",
            "CSRQ": born, "HJDZ_XZQHDM": "500103", "HJDZ_XXDZ": "渝中区",
            "HYZKDM": "20", "RYZTDM": "0", "SWRQ": None,
            "_gxsj": dt.datetime(2026, 10, 2, 9, 30), "_row_hash": f"h{i}"}


def failures(rows: list[dict]) -> dict[str, int]:
    rules = compile_rules(CAT, CAT.resource("PS_POP_BASIC"))
    return {x.rule.rule_id: x.failed for x in run_contract(rules, pa.Table.from_pylist(rows))
            if x.failed}


def _flip_check(pid: str) -> str:
    return pid[:17] + ("1" if pid[17] == "0" else "0")


def _month_13(pid: str) -> str:  # check character right, birth month 13
    body = pid[:10] + "13" + pid[12:17]
    return body + gb11643_check_char(body)


@pytest.mark.parametrize("field, bad, rule", [
    ("GMSFHM", _flip_check, "PS_POP_BASIC.GMSFHM.gb11643"),
    ("GMSFHM", _month_13, "PS_POP_BASIC.GMSFHM.gb11643"),
    ("XM", None, "PS_POP_BASIC.XM.required"),
    ("XBDM", "7", "PS_POP_BASIC.XBDM.code_table"),
    ("MZDM", "99", "PS_POP_BASIC.MZDM.code_table"),
    ("HYZKDM", "55", "PS_POP_BASIC.HYZKDM.code_table"),
    ("XM", "名" * 51, "PS_POP_BASIC.XM.length"),
    # cross-field: what the ID number states, death date iff status deceased
    ("CSRQ", lambda _: dt.date(1979, 5, 5), "PS_POP_BASIC.CSRQ.id_consistency"),
    ("XBDM", "1", "PS_POP_BASIC.XBDM.id_consistency"),
    ("XBDM", "M", "PS_POP_BASIC.XBDM.id_consistency"),  # a variant is judged by what it means
    ("SWRQ", lambda _: dt.date(2026, 9, 1), "PS_POP_BASIC.SWRQ.conditional_required"),
    ("RYZTDM", "1", "PS_POP_BASIC.SWRQ.conditional_required"),
    # the versioned division table: 500381 江津市 became 500116 江津区 at the end of 2006
    ("HJDZ_XZQHDM", "500381", "PS_POP_BASIC.HJDZ_XZQHDM.division_at_date"),
    ("HJDZ_XZQHDM", "509999", "PS_POP_BASIC.HJDZ_XZQHDM.division_at_date"),
    ("SWRQ", lambda _: dt.date(2026, 10, 3), "PS_POP_BASIC.SWRQ.not_future"),
])
def test_each_rule_fails_on_its_broken_record_and_passes_on_the_clean_twin(field, bad, rule):
    clean = [clean_person(i) for i in range(3)]
    assert failures(clean) == {}
    broken = [dict(r) for r in clean]
    broken[1][field] = bad(broken[1][field]) if callable(bad) else bad
    if rule.endswith("not_future"):  # a death date, so the person is deceased: only the date is wrong
        broken[1]["RYZTDM"] = "1"
    assert failures(broken) == {rule: 1}


def test_a_division_code_is_judged_on_the_records_date():
    rows = [clean_person(i) for i in range(2)]
    rows[0]["HJDZ_XZQHDM"] = "500381"  # 江津市, valid until 2006-12-31
    rows[0]["_gxsj"] = dt.datetime(2005, 6, 1)
    rows[0]["RYZTDM"], rows[0]["SWRQ"] = "0", None
    assert failures(rows) == {}


def test_two_different_versions_of_one_key_at_the_same_time_are_reported():
    rows = [clean_person(i) for i in range(3)]
    rows[2] = dict(rows[1], _ord=3, XM="王芳芳", _row_hash="other")
    assert failures(rows) == {"PS_POP_BASIC.*.primary_key": 2}


def test_cosmetic_id_damage_and_known_code_variants_are_not_contract_failures():
    rows = [clean_person(i) for i in range(4)]
    rows[0]["GMSFHM"] = rows[0]["GMSFHM"][:6] + " " + rows[0]["GMSFHM"][6:]  # a space
    rows[1]["XBDM"] = "F"  # GB/T 2261.1 variant, flagged downstream, not invalid
    rows[2]["GMSFHM"] = "110105491231002"  # legacy 15-digit number
    rows[2]["CSRQ"] = dt.date(1949, 12, 31)
    rows[3]["MZDM"] = "57"  # old code for 其他
    assert failures(rows) == {}


def test_sql_identifier_rules_agree_with_the_python_reference():
    con = duckdb.connect()
    for m in MACROS:
        con.execute(m)
    ids = ["11010519491231002X", "440524188001010014", "11010519491231002Y", "110105194912310021",
           "11010519491331002X", "1101051949123100", "abcdefghijklmnopqr",
           make_citizen_id("110105", dt.date(1899, 12, 31), 2),  # before 1900
           make_citizen_id("110105", dt.date(1900, 1, 1), 2),
           make_citizen_id("110105", dt.date(2026, 10, 3), 2),  # after the record's date below
           make_citizen_id("110105", dt.date(2026, 10, 2), 2)]
    for as_of in (None, dt.date(2026, 10, 2)):
        for v in ids:
            got = con.execute("SELECT gb11643_ok(?, ?::DATE)", [v, as_of]).fetchone()[0]
            assert got == is_valid_citizen_id(v, as_of=as_of), (v, as_of)
    body = "9111000060003734"
    broken_org = body + "2" + uscc_check_char(body + "2")  # outer check right, org code wrong
    letters = "91A1B2C3600037341"  # a division code with letters, both checks right
    for v in ["91110000600037341L", "91350100M000100Y43", "91440300708461136T",
              "91110000600037341M", broken_org, letters + uscc_check_char(letters)]:
        assert con.execute("SELECT gb32100_ok(?)", [v]).fetchone()[0] == is_valid_uscc(v), v


def _born(row: dict, born: dt.date, gxsj: dt.datetime | None = None) -> dict:
    """The row of a person born on `born` (ID and CSRQ agree), optionally updated at `gxsj`."""
    pid = make_citizen_id("500103", born, int(row["GMSFHM"][14:17]))
    return dict(row, GMSFHM=pid, CSRQ=born, _gxsj=gxsj or row["_gxsj"])


@pytest.mark.parametrize("born, gxsj, want", [
    # born after the record was last changed (its GXSJ, 2026-10-02): the ID cannot exist yet; the
    # birth date field is in the future as well
    (dt.date(2026, 10, 3), None, {"PS_POP_BASIC.GMSFHM.gb11643": 1,
                                  "PS_POP_BASIC.CSRQ.not_future": 1}),
    (dt.date(2099, 12, 31), None, {"PS_POP_BASIC.GMSFHM.gb11643": 1,
                                   "PS_POP_BASIC.CSRQ.not_future": 1}),
    # judged on the record's date, not on today's: a record changed in 2005 names no one born 2010
    (dt.date(2010, 5, 1), dt.datetime(2005, 6, 1), {"PS_POP_BASIC.GMSFHM.gb11643": 1,
                                                    "PS_POP_BASIC.CSRQ.not_future": 1}),
    (dt.date(1899, 12, 31), None, {"PS_POP_BASIC.GMSFHM.gb11643": 1}),
    (dt.date(1880, 1, 1), None, {"PS_POP_BASIC.GMSFHM.gb11643": 1}),
    # the bounds themselves are valid: a newborn registered on its birthday, a 1900 birth
    (dt.date(2026, 10, 2), None, {}),
    (dt.date(1900, 1, 1), None, {}),
])
def test_a_citizen_id_birth_date_outside_1900_to_the_records_date_fails(born, gxsj, want):
    rows = [clean_person(i) for i in range(3)]
    rows[1] = _born(rows[1], born, gxsj)
    assert failures(rows) == want


def test_a_legacy_15_digit_number_is_judged_on_the_records_date_too():
    rows = [clean_person(i) for i in range(2)]
    rows[1].update(GMSFHM="110105491231002", CSRQ=dt.date(1949, 12, 31),
                   _gxsj=dt.datetime(1949, 12, 30, 12))
    rows[1]["HJDZ_XZQHDM"] = "500103"
    got = failures(rows)
    assert got == {"PS_POP_BASIC.GMSFHM.gb11643": 1, "PS_POP_BASIC.CSRQ.not_future": 1}


def test_a_rule_failing_beyond_its_threshold_blocks_the_batch():
    rules = compile_rules(CAT, CAT.resource("PS_POP_BASIC"))
    rows = [clean_person(i) for i in range(1000)]
    for r in rows[:10]:  # 1 % invalid IDs > 0.5 % allowed
        r["GMSFHM"] = r["GMSFHM"][:17] + ("1" if r["GMSFHM"][17] == "0" else "0")
    result = {x.rule.rule_id: x for x in run_contract(rules, pa.Table.from_pylist(rows))}
    assert result["PS_POP_BASIC.GMSFHM.gb11643"].failed == 10
    assert result["PS_POP_BASIC.GMSFHM.gb11643"].blocks_batch
    assert not result["PS_POP_BASIC.XM.required"].blocks_batch


def clean_enterprise(i: int) -> dict:
    return {"_ord": i + 1, "HGBM": make_customs_code("500116", "9", "6", 100 + i),
            "TYSHXYDM": make_uscc("9", "1", "500116", f"{10000000 + i:08d}"[:8]),
            "QYMC": "重庆某贸易有限公司", "ZCHGDM": "8001", "QYLXDM": "6", "XYZD": "282",
            "XYDJDM": "CG", "XYRDRQ": dt.date(2026, 4, 1), "BARQ": dt.date(2015, 3, 2),
            "YXQZ": dt.date(2030, 1, 1), "ZS_XZQHDM": "500116", "FDDBR_XM": "李雷",
            "FDDBR_ZJHM": None, "BAZTDM": "1",
            "_gxsj": dt.datetime(2026, 10, 2, 9, 30), "_row_hash": f"e{i}"}


def enterprise_failures(rows: list[dict]) -> dict[str, int]:
    rules = compile_rules(CAT, CAT.resource("CU_ENT_REG"))
    return {x.rule.rule_id: x.failed for x in run_contract(rules, pa.Table.from_pylist(rows))
            if x.failed}


@pytest.mark.parametrize("changes, rule", [
    ({"QYLXDM": "4"}, "CU_ENT_REG.QYLXDM.customs_consistency"),  # type digit says 6 (private)
    ({"ZS_XZQHDM": "440305"}, "CU_ENT_REG.ZS_XZQHDM.customs_consistency"),  # region 5001 ≠ 4403
    ({"XYDJDM": "A"}, "CU_ENT_REG.XYDJDM.regime_validity"),  # 一般认证 exists under 237 only
    ({"BARQ": dt.date(2026, 11, 1)}, "CU_ENT_REG.BARQ.not_future"),
    # positions 3–8 hold the registering authority's division code: digits, not letters (both
    # check characters of this code are right)
    ({"TYSHXYDM": make_uscc("9", "1", "5A0116", "10000001")}, "CU_ENT_REG.TYSHXYDM.gb32100"),
])
def test_enterprise_cross_field_rules(changes, rule):
    clean = [clean_enterprise(i) for i in range(3)]
    assert enterprise_failures(clean) == {}
    broken = [dict(r) for r in clean]
    broken[1].update(changes)
    assert enterprise_failures(broken) == {rule: 1}


def test_customs_region_of_a_renamed_division_and_long_term_validity_are_accepted():
    rows = [clean_enterprise(i) for i in range(3)]
    # registered when 江津 was 500381 (region 5003): the code keeps that region after the change
    rows[0]["HGBM"] = make_customs_code("500381", "9", "6", 7)
    rows[1]["YXQZ"] = dt.date(2099, 12, 31)  # a validity end date may lie in the future
    rows[2].update(XYZD="237", XYDJDM="A")  # old-regime value with its regime
    assert enterprise_failures(rows) == {}


def test_a_full_snapshot_far_smaller_than_the_register_is_blocked_by_volume():
    from pipelines.governance.contracts.rules import volume_rule

    pop = CAT.resource("PS_POP_BASIC")
    rule = volume_rule(pop, "full", [], current_keys=5000)  # 90 %: at least 4,500 rows
    assert (rule.family, rule.severity, rule.min_count) == ("snapshot_volume", "error", 4500)
    rows = [clean_person(i) for i in range(3)]
    (result,) = run_contract([rule], pa.Table.from_pylist(rows))
    assert (result.failed, result.observed, result.blocks_batch) == (1, 3, True)
    assert volume_rule(pop, "full", [], current_keys=999) is None  # a small register may halve


def test_an_incremental_batch_far_from_recent_ones_is_reported_not_blocked():
    from pipelines.governance.contracts.rules import volume_rule

    pop = CAT.resource("PS_POP_BASIC")
    assert volume_rule(pop, "incremental", [10, 12], 0) is None  # too little history
    rule = volume_rule(pop, "incremental", [2, 3, 3, 2, 3], 0)  # median 3: 0..16 rows expected
    (ok,) = run_contract([rule], pa.Table.from_pylist([clean_person(i) for i in range(3)]))
    assert ok.failed == 0
    (big,) = run_contract([rule], pa.Table.from_pylist([clean_person(i) for i in range(40)]))
    assert (big.failed, big.observed, big.blocks_batch, big.rule.severity) == (1, 40, False, "warn")


def test_every_run_judges_the_batch_it_was_given_never_an_earlier_one():
    """GX holds its DuckDB connections across runs; a batch registered inside GX's open
    transaction was undone when the connection went back to its pool, so a later run read the
    batch before it (CI saw "column YWBH does not exist"; a broken batch counted as clean)."""
    import gc

    clean = [clean_person(i) for i in range(3)]
    broken = [dict(r) for r in clean]
    broken[1]["GMSFHM"] = _flip_check(broken[1]["GMSFHM"])
    enterprises = [clean_enterprise(i) for i in range(2)]
    from pipelines.governance.contracts.validate import open_connections

    def gx_left_a_transaction_open():  # as GX does between runs, at times
        for con in open_connections():
            try:
                con.begin()
            except duckdb.TransactionException:  # it had one open already
                pass

    for _ in range(3):
        assert failures(clean) == {}
        gx_left_a_transaction_open()
        assert failures(broken) == {"PS_POP_BASIC.GMSFHM.gb11643": 1}
        gx_left_a_transaction_open()
        assert enterprise_failures(enterprises) == {}
        gc.collect()
