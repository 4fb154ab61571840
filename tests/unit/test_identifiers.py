"""Identifier rules (pipelines/catalog/identifiers.py) against the standards' own examples
(DOMAIN.md §3)."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.catalog.identifiers import (
    USCC_CHARSET,
    CustomsCode,
    gb11643_check_char,
    is_valid_citizen_id,
    is_valid_customs_code,
    is_valid_org_code,
    is_valid_uscc,
    make_citizen_id,
    make_customs_code,
    make_uscc,
    normalize_citizen_id,
    org_code_check_char,
    parse_citizen_id,
    parse_customs_code,
    upgrade_15_to_18,
    uscc_check_char,
    uscc_org_code,
    uscc_problems,
)

pytestmark = pytest.mark.unit


def with_check(first17: str) -> str:
    return first17 + gb11643_check_char(first17)


# --- GB 11643 citizen ID --------------------------------------------------------------------------

def test_standard_example_female():
    cid = parse_citizen_id("11010519491231002X")
    assert cid.valid and cid.problems == ()
    assert cid.number == "11010519491231002X"
    assert cid.address_code == "110105"
    assert cid.birth_date == dt.date(1949, 12, 31)
    assert cid.sex == "2"
    assert not cid.legacy_upgraded
    assert is_valid_citizen_id("11010519491231002X")
    assert gb11643_check_char("11010519491231002") == "X"


def test_standard_example_male():
    # the standard's format example: every part reads right and the check character is right, but
    # a birth in 1880 is before BIRTH_DATE_MIN (no live record holds one: test_identifier_standards)
    cid = parse_citizen_id("440524188001010014")
    assert cid.problems == ("birth_date",)
    assert cid.address_code == "440524"
    assert cid.birth_date == dt.date(1880, 1, 1)
    assert cid.sex == "1"
    assert not is_valid_citizen_id("440524188001010014")
    assert gb11643_check_char("44052418800101001") == "4"


def test_check_character_by_the_weights():
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    for first17 in ("11010519491231002", "44052418800101001", "50011619900517123"):
        s = sum(int(d) * w for d, w in zip(first17, weights))
        assert gb11643_check_char(first17) == "10X98765432"[s % 11]


def test_upgrade_15_to_18():
    assert upgrade_15_to_18("110105491231002") == "11010519491231002X"
    cid = parse_citizen_id("110105491231002")
    assert cid.valid and cid.legacy_upgraded
    assert cid.number == "11010519491231002X"
    assert cid.birth_date == dt.date(1949, 12, 31) and cid.sex == "2"
    for bad in ("11010549123100", "11010549123100X", "1101054912310021"):
        with pytest.raises(ValueError):
            upgrade_15_to_18(bad)


@pytest.mark.parametrize("raw", [
    "１１０１０５１９４９１２３１００２Ｘ",  # full-width digits and X
    "11010519491231002x",  # lowercase x
    " 110105 19491231 002X ",  # spaces
    "110105\u300019491231002ｘ\t",  # ideographic space, tab, full-width lowercase x
])
def test_normalisation(raw):
    assert normalize_citizen_id(raw) == "11010519491231002X"
    assert parse_citizen_id(raw).valid
    assert not is_valid_citizen_id(raw)  # the strict check takes the value as given


def test_normalisation_changes_nothing_else():
    assert normalize_citizen_id(None) is None
    assert normalize_citizen_id("11010519491231002X") == "11010519491231002X"
    assert normalize_citizen_id("110105-19491231-002X") == "110105-19491231-002X"


def test_bad_checksum():
    cid = parse_citizen_id("110105194912310021")
    assert cid.problems == ("checksum",)
    assert not cid.valid
    assert cid.birth_date == dt.date(1949, 12, 31)  # the rest is still reported
    assert not is_valid_citizen_id("110105194912310021")


@pytest.mark.parametrize("birth", ["19490230", "19491301", "19490000", "20230229"])
def test_bad_birth_date(birth):
    number = with_check(f"110105{birth}002")
    cid = parse_citizen_id(number)
    assert cid.problems == ("birth_date",)
    assert cid.birth_date is None
    assert not is_valid_citizen_id(number)


def test_bad_birth_date_and_checksum_both_reported():
    first17 = "11010519490230002"
    wrong = "1" if gb11643_check_char(first17) != "1" else "2"
    number = first17 + wrong
    assert parse_citizen_id(number).problems == ("birth_date", "checksum")


@pytest.mark.parametrize("raw", [
    None, "", "1101051949123100", "1101051949123100211", "11010519491231002Y",
    "1101051949123A002X", "110105194912310X2X",
    "1101051949123100²X",  # '²'.isdigit() is True but int('²') fails: must not crash
    "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X",  # Arabic-Indic digits are not an ID number
    "11010549123100A",
])
def test_format_errors(raw):
    cid = parse_citizen_id(raw)
    assert cid.problems == ("format",)
    assert cid.birth_date is None and cid.sex is None
    assert not is_valid_citizen_id(raw)


def test_make_citizen_id_round_trip():
    for address, birth, seq, sex in [("500116", dt.date(1990, 5, 17), 123, "1"),
                                     ("441900", dt.date(2004, 2, 29), 8, "2"),
                                     ("810000", dt.date(1975, 1, 1), 1, "1")]:
        number = make_citizen_id(address, birth, seq)
        assert len(number) == 18 and is_valid_citizen_id(number)
        cid = parse_citizen_id(number)
        assert cid.valid
        assert (cid.address_code, cid.birth_date, cid.sex) == (address, birth, sex)
        assert int(number[14:17]) == seq


def test_address_code_is_not_checked_against_a_code_list():
    # 110228 密云县 no longer exists; numbers keep it forever
    assert parse_citizen_id(make_citizen_id("110228", dt.date(1970, 1, 1), 11)).valid


# --- GB 32100 USCC and GB 11714 organisation code -------------------------------------------------

USCC_EXAMPLES = {
    "91110000600037341L": "60003734-1",
    "91350100M000100Y43": "M000100Y-4",  # a letter in the organisation-code part
    "91440300708461136T": "70846113-6",
}


@pytest.mark.parametrize(("uscc", "org"), USCC_EXAMPLES.items())
def test_uscc_valid_examples(uscc, org):
    assert uscc_problems(uscc) == ()
    assert is_valid_uscc(uscc)
    assert uscc_check_char(uscc[:17]) == uscc[17]
    assert uscc_org_code(uscc) == org
    assert is_valid_org_code(org)
    assert is_valid_org_code(org.replace("-", ""))


def test_uscc_check_by_the_weights():
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    for uscc in USCC_EXAMPLES:
        s = sum(USCC_CHARSET.index(c) * w for c, w in zip(uscc[:17], weights))
        assert USCC_CHARSET[(31 - s % 31) % 31] == uscc[17]


def test_uscc_bad_check_char():
    for uscc in USCC_EXAMPLES:
        wrong = next(c for c in USCC_CHARSET if c != uscc[17])
        assert uscc_problems(uscc[:17] + wrong) == ("checksum",)
        assert not is_valid_uscc(uscc[:17] + wrong)


def test_uscc_embedded_org_code_wrong_outer_check_recomputed():
    good = "91110000600037341L"
    first17 = good[:16] + "2"  # organisation-code check 1 -> 2
    forged = first17 + uscc_check_char(first17)
    assert forged != good
    assert uscc_check_char(forged[:17]) == forged[17]  # the outer check alone would pass
    assert uscc_problems(forged) == ("org_code",)
    assert not is_valid_uscc(forged)


def test_uscc_both_checks_wrong():
    assert uscc_problems("91110000600037342L") == ("checksum", "org_code")


@pytest.mark.parametrize("bad", [
    None, "", "91110000600037341", "91110000600037341LL", "91110000600037341l",
    "9111000060003734IL", "9111000060003734OL", "9111000060003734ZL", "9111000060003734SL",
    "9111000060003734VL", "9111000060003734１L", "91110000 60003734L",
])
def test_uscc_format(bad):
    assert uscc_problems(bad) == ("format",)
    assert not is_valid_uscc(bad)


def test_org_code_forms():
    assert is_valid_org_code("60003734-1")
    assert is_valid_org_code("600037341")
    assert is_valid_org_code("M000100Y-4")
    assert not is_valid_org_code("60003734-2")
    assert not is_valid_org_code("m000100y-4")
    assert not is_valid_org_code("6000-37341")  # the hyphen belongs before the check only
    assert not is_valid_org_code("60003734--1")
    assert not is_valid_org_code("6000373４-1")  # full-width digit
    assert not is_valid_org_code("60003734")
    assert not is_valid_org_code(None) and not is_valid_org_code("")


def test_org_code_check_10_and_11():
    # 11 - (S mod 11): 10 -> X, 11 -> 0
    assert org_code_check_char("40000000") == "X"  # S = 4*3 = 12, 12 mod 11 = 1
    assert org_code_check_char("00000000") == "0"  # S = 0
    assert is_valid_org_code("40000000-X")
    assert is_valid_org_code("00000000-0")


def test_make_uscc_round_trip():
    for authority, category, division, body in [("9", "1", "500116", "MA5U0001"),
                                                ("5", "3", "110105", "40000000"),
                                                ("Y", "1", "440300", "00000000")]:
        uscc = make_uscc(authority, category, division, body)
        assert len(uscc) == 18 and uscc_problems(uscc) == ()
        assert uscc[:2] == authority + category and uscc[2:8] == division
        assert uscc_org_code(uscc) == f"{body}-{org_code_check_char(body)}"


# --- customs enterprise code ----------------------------------------------------------------------

def test_customs_valid():
    cc = parse_customs_code("5001960001")
    assert cc == CustomsCode(region="5001", zone="9", enterprise_type="6", sequence="0001")
    assert is_valid_customs_code("5001960001")
    assert is_valid_customs_code("4403480123")  # bonded zone, wholly foreign-owned
    assert is_valid_customs_code("5090990001")  # xx90 region


@pytest.mark.parametrize("zone", "0678")
def test_customs_bad_zone_digit(zone):
    code = f"5001{zone}60001"
    assert parse_customs_code(code) is None
    assert not is_valid_customs_code(code)


def test_customs_bad_type_digit():
    assert parse_customs_code("5001900001") is None
    assert not is_valid_customs_code("5001900001")


@pytest.mark.parametrize("bad", [None, "", "500196000", "50019600011", "50019A0001", "5001 60001",
                                 "５００１９６０００１", "５００１１１０００１"])
def test_customs_wrong_length_or_non_digit(bad):
    assert parse_customs_code(bad) is None
    assert not is_valid_customs_code(bad)


def test_make_customs_code_round_trip():
    for division, zone, etype, seq in [("500116", "1", "3", 42), ("440300", "4", "4", 9999),
                                       ("110105", "9", "9", 0)]:
        code = make_customs_code(division, zone, etype, seq)
        assert len(code) == 10
        assert parse_customs_code(code) == CustomsCode(division[:4], zone, etype, f"{seq:04d}")
