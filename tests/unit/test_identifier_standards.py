"""Issue 12 §5: the identifier rules follow the standards (DOMAIN.md §3), in the Python reference
(pipelines/catalog/identifiers.py) and in the SQL macros the contracts run (sql_macros.py) alike.

- GB 32100: positions 3–8 of a USCC are a GB/T 2260 division code, so six digits (letters there
  passed when only the charset and the two check characters were looked at).
- GB 11643: the birth date of an ID is a real date, not before 1900-01-01 and not after the date the
  number is judged at (the record's update time in a contract); 2099 and 1899 births passed.
"""

from __future__ import annotations

import datetime as dt
import random

import duckdb
import pytest

from pipelines.governance.contracts.sql_macros import MACROS
from pipelines.catalog.identifiers import (
    BIRTH_DATE_MIN,
    USCC_CHARSET,
    gb11643_check_char,
    is_valid_citizen_id,
    is_valid_uscc,
    make_citizen_id,
    make_uscc,
    org_code_check_char,
    parse_citizen_id,
    uscc_check_char,
    uscc_problems,
)

pytestmark = pytest.mark.unit
AS_OF = dt.date(2026, 10, 2)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    for m in MACROS:
        c.execute(m)
    yield c
    c.close()


def sql_id_ok(con, value: str, as_of: dt.date | None) -> bool:
    return con.execute("SELECT gb11643_ok(?, ?::DATE)", [value, as_of]).fetchone()[0]


def sql_id_ok18(con, value: str, as_of: dt.date | None) -> bool:
    return con.execute("SELECT gb11643_ok18(?, ?::DATE)", [value, as_of]).fetchone()[0]


def sql_uscc_ok(con, value: str) -> bool:
    return con.execute("SELECT gb32100_ok(?)", [value]).fetchone()[0]


def uscc(first8: str, body8: str) -> str:
    """A USCC with both check characters right, whatever positions 1–8 hold."""
    first17 = first8 + body8 + org_code_check_char(body8)
    return first17 + uscc_check_char(first17)


def id_born(yyyymmdd: str, seq: str = "002") -> str:
    first17 = f"110105{yyyymmdd}{seq}"
    return first17 + gb11643_check_char(first17)


# --- GB 32100: positions 3–8 ----------------------------------------------------------------------

@pytest.mark.parametrize("division", ["A10000", "11000A", "ABCDEF", "1101Y5", "MA5U00"])
def test_uscc_with_letters_where_the_division_code_belongs_is_invalid(con, division):
    code = uscc("91" + division, "60003734")
    assert uscc_check_char(code[:17]) == code[17]  # both checks pass: only the structure is wrong
    assert uscc_problems(code) == ("division",)
    assert not is_valid_uscc(code)
    assert sql_uscc_ok(con, code) is False


def test_uscc_division_problem_is_reported_with_the_other_problems():
    code = uscc("91A10000", "60003734")
    assert uscc_problems(code[:17] + next(c for c in USCC_CHARSET if c != code[17])) == (
        "division", "checksum")


@pytest.mark.parametrize("code", ["91110000600037341L", "91350100M000100Y43", "91440300708461136T",
                                  # any six digits, in today's division list or not (codes change;
                                  # 100000 is used for nationally registered bodies)
                                  uscc("12100000", "40000000"), uscc("91110228", "00000000")])
def test_uscc_with_six_digits_there_is_valid(con, code):
    assert uscc_problems(code) == ()
    assert is_valid_uscc(code) and sql_uscc_ok(con, code) is True


def test_uscc_positions_1_and_2_are_held_to_the_charset_only(con):
    # the standard's list of registration authorities and categories is longer than DOMAIN.md
    # states (it ends in "…"): not restricted beyond the 31-character set
    for first2 in ("91", "52", "11", "N2", "Y1", "A1", "31"):
        code = uscc(first2 + "500116", "MA5U0001")
        assert is_valid_uscc(code) and sql_uscc_ok(con, code) is True


# --- GB 11643: the birth date's bounds ------------------------------------------------------------

def test_birth_after_the_date_judged_at_is_invalid(con):
    tomorrow = id_born(f"{AS_OF + DAY:%Y%m%d}")
    assert not is_valid_citizen_id(tomorrow, as_of=AS_OF)
    assert parse_citizen_id(tomorrow, as_of=AS_OF).problems == ("birth_date",)
    assert parse_citizen_id(tomorrow, as_of=AS_OF).birth_date == AS_OF + DAY  # still reported
    assert sql_id_ok(con, tomorrow, AS_OF) is False and sql_id_ok18(con, tomorrow, AS_OF) is False
    far = id_born("20991231")
    assert not is_valid_citizen_id(far, as_of=AS_OF) and sql_id_ok(con, far, AS_OF) is False


def test_birth_on_the_date_judged_at_is_valid(con):
    newborn = id_born(f"{AS_OF:%Y%m%d}")
    assert is_valid_citizen_id(newborn, as_of=AS_OF)
    assert parse_citizen_id(newborn, as_of=AS_OF).valid
    assert sql_id_ok(con, newborn, AS_OF) is True and sql_id_ok18(con, newborn, AS_OF) is True


@pytest.mark.parametrize("as_of", [None, AS_OF])
def test_birth_before_1900_is_invalid(con, as_of):
    assert BIRTH_DATE_MIN == dt.date(1900, 1, 1)
    for born in ("18991231", "18000101", "10000101", "00010101"):
        number = id_born(born)
        assert not is_valid_citizen_id(number, as_of=as_of), born
        assert parse_citizen_id(number, as_of=as_of).problems == ("birth_date",), born
        assert sql_id_ok(con, number, as_of) is False, born
    first = id_born("19000101")
    assert is_valid_citizen_id(first, as_of=as_of) and sql_id_ok(con, first, as_of) is True


def test_the_standards_1880_format_example_is_out_of_range_for_live_data(con):
    # GB 11643-1999 illustrates the format with 440524188001010014 (born 1880-01-01): its check
    # character is right, but nobody born in 1880 is alive, and records digitised since ~2004 do
    # not reach back that far (see BIRTH_DATE_MIN)
    cid = parse_citizen_id("440524188001010014")
    assert gb11643_check_char("44052418800101001") == "4"
    assert cid.problems == ("birth_date",) and cid.birth_date == dt.date(1880, 1, 1)
    assert not is_valid_citizen_id("440524188001010014")
    assert sql_id_ok(con, "440524188001010014", None) is False


def test_without_a_date_only_the_lower_bound_applies(con):
    # identifiers.py has no clock: the simulator and the demo run the hub's business date ahead
    # of the wall clock, so "today" is always the caller's (the record's date, the business date)
    future = id_born("20991231")
    assert is_valid_citizen_id(future) and parse_citizen_id(future).valid
    assert sql_id_ok(con, future, None) is True
    assert con.execute("SELECT gb11643_ok(?), gb11643_ok18(?)", [future, future]).fetchone() == (
        True, True)


def test_a_legacy_15_digit_number_is_judged_by_its_upgraded_birth_date(con):
    legacy = "110105491231002"  # born 1949-12-31: 19YY, so never before 1900
    assert parse_citizen_id(legacy, as_of=dt.date(1949, 12, 31)).valid
    assert sql_id_ok(con, legacy, dt.date(1949, 12, 31)) is True
    assert parse_citizen_id(legacy, as_of=dt.date(1949, 12, 30)).problems == ("birth_date",)
    assert sql_id_ok(con, legacy, dt.date(1949, 12, 30)) is False


def test_the_round_trip_through_make_citizen_id_respects_the_bounds():
    assert is_valid_citizen_id(make_citizen_id("500116", BIRTH_DATE_MIN, 1), as_of=AS_OF)
    assert not is_valid_citizen_id(make_citizen_id("500116", BIRTH_DATE_MIN - DAY, 1))


# --- Python and SQL agree (property-style, seeded) ------------------------------------------------

def test_citizen_id_python_and_sql_agree_on_dates_around_the_bounds(con):
    rng = random.Random(12)
    as_ofs = [None, AS_OF, dt.date(1999, 12, 31), BIRTH_DATE_MIN]
    births = [BIRTH_DATE_MIN - DAY, BIRTH_DATE_MIN, AS_OF - DAY, AS_OF, AS_OF + DAY,
              dt.date(1880, 1, 1), dt.date(2099, 12, 31), dt.date(1999, 12, 31)]
    births += [dt.date(1850, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 260))
               for _ in range(150)]
    values = [make_citizen_id(rng.choice(["110105", "500116", "441900", "810000"]), b,
                              rng.randrange(1000)) for b in births]
    values += ["11010519490230002" + "X", id_born("19491301"), id_born("00000000"),
               "11010519491231002Y", "110105194912310021", "abcdefghijklmnopqr"]
    for as_of in as_ofs:
        got = con.execute("SELECT list(gb11643_ok(v, ?::DATE) ORDER BY i) FROM "
                          "(SELECT unnest(?) AS v, generate_subscripts(?, 1) AS i)",
                          [as_of, values, values]).fetchone()[0]
        want = [is_valid_citizen_id(v, as_of=as_of) for v in values]
        assert got == want, as_of
        assert [parse_citizen_id(v, as_of=as_of).valid for v in values] == want, as_of


def test_uscc_python_and_sql_agree_on_random_positions_3_to_8(con):
    rng = random.Random(32100)
    digits, letters = "0123456789", USCC_CHARSET[10:]
    values = []
    for _ in range(300):
        division = "".join(rng.choice(digits if rng.random() < 0.8 else letters) for _ in range(6))
        body = "".join(rng.choice(USCC_CHARSET) for _ in range(8))
        code = uscc(rng.choice(["91", "92", "51", "Y1", "N3"]) + division, body)
        if rng.random() < 0.2:  # a wrong outer check as well
            code = code[:17] + rng.choice(USCC_CHARSET)
        values.append(code)
    values.append(make_uscc("9", "1", "500116", "MA5U0001"))
    got = con.execute("SELECT list(gb32100_ok(v) ORDER BY i) FROM "
                      "(SELECT unnest(?) AS v, generate_subscripts(?, 1) AS i)",
                      [values, values]).fetchone()[0]
    want = [is_valid_uscc(v) for v in values]
    assert got == want
    assert any(want) and not all(want)
    assert any(not w and uscc_problems(v) == ("division",) for v, w in zip(values, want))
