"""DuckDB macros for the identifier rules GX does not ship, generated from the standards' weights
(pipelines/catalog/identifiers.py is the Python reference; tests check both agree).

gb11643_ok / gb11643_ok18 take the date a number is judged at as `as_of` (the contract passes the
record's date, as the not-future rules do); without it, as in Python, no upper bound applies.
"""

from __future__ import annotations

from pipelines.catalog.identifiers import BIRTH_DATE_MIN, USCC_CHARSET

_ID_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ORG_W = (3, 7, 9, 10, 5, 8, 4, 2)
_FULL = "０１２３４５６７８９Ｘｘ"
_HALF = "0123456789XX"


def _digit(expr: str, i: int) -> str:
    return f"(ascii(substr({expr}, {i}, 1)) - 48)"


# Cosmetic damage (full-width digits, spaces, lowercase x) is not an invalid number: normalise first.
NORMALISE_ID = f"upper(replace(translate(id, '{_FULL}', '{_HALF}'), ' ', ''))"
_ID_SUM = " + ".join(f"{w} * {_digit('n', i + 1)}" for i, w in enumerate(_ID_W))
_USCC_SUM = " + ".join(
    f"{pow(3, i, 31)} * (instr('{USCC_CHARSET}', substr(c, {i + 1}, 1)) - 1)" for i in range(17))
_ORG_VAL = ("(CASE WHEN substr(c, {i}, 1) BETWEEN '0' AND '9' THEN ascii(substr(c, {i}, 1)) - 48 "
            "ELSE ascii(substr(c, {i}, 1)) - 55 END)")
_ORG_SUM = " + ".join(f"{w} * {_ORG_VAL.format(i=9 + k)}" for k, w in enumerate(_ORG_W))


def _birth_in_range(yyyymmdd: str) -> str:
    """NULL unless `yyyymmdd` is a real date; else whether it lies from BIRTH_DATE_MIN to the
    macro's `as_of` (no upper bound without one). One parse per value: cheaper than formatting each
    record's date for the string comparison identifiers._birth_ok makes."""
    return (f"CAST(try_strptime({yyyymmdd}, '%Y%m%d') AS DATE) BETWEEN DATE '{BIRTH_DATE_MIN}' "
            "AND coalesce(as_of, DATE '9999-12-31')")


MACROS = [
    # a valid 18-character number (birth date real, from BIRTH_DATE_MIN to as_of when given,
    # MOD 11-2 check) or a legacy 15-digit one (born 19YY: only as_of can bound it)
    f"""CREATE OR REPLACE MACRO gb11643_norm(id) AS {NORMALISE_ID}""",
    f"""CREATE OR REPLACE MACRO gb11643_ok18(n, as_of := NULL) AS length(n) = 18
        AND regexp_full_match(n, '[0-9]{{17}}[0-9X]')
        AND coalesce({_birth_in_range("substr(n, 7, 8)")}, false)
        AND substr(n, 18, 1) = substr('10X98765432', CAST(({_ID_SUM}) % 11 AS INTEGER) + 1, 1)""",
    f"""CREATE OR REPLACE MACRO gb11643_ok(id, as_of := NULL) AS CASE
        WHEN length(gb11643_norm(id)) = 15 THEN regexp_full_match(gb11643_norm(id), '[0-9]{{15}}')
            AND coalesce({_birth_in_range("'19' || substr(gb11643_norm(id), 7, 6)")}, false)
        ELSE gb11643_ok18(gb11643_norm(id), as_of) END""",
    # birth date and sex an ID number states (NULL when it states none): cross-field rules
    """CREATE OR REPLACE MACRO gb11643_birth(id) AS CASE length(gb11643_norm(id))
        WHEN 18 THEN CAST(try_strptime(substr(gb11643_norm(id), 7, 8), '%Y%m%d') AS DATE)
        WHEN 15 THEN CAST(try_strptime('19' || substr(gb11643_norm(id), 7, 6), '%Y%m%d') AS DATE)
        END""",
    """CREATE OR REPLACE MACRO gb11643_sex(id) AS CASE
        WHEN regexp_full_match(gb11643_norm(id), '[0-9]{17}[0-9X]|[0-9]{15}') THEN
            CASE WHEN (ascii(substr(gb11643_norm(id), CASE length(gb11643_norm(id)) WHEN 18
                THEN 17 ELSE 15 END, 1)) - 48) % 2 = 1 THEN '1' ELSE '2' END END""",
    # linking form of an ID: cosmetic damage folded, a legacy 15-digit number upgraded to 18
    f"""CREATE OR REPLACE MACRO gb11643_check(n) AS
        substr('10X98765432', CAST(({_ID_SUM}) % 11 AS INTEGER) + 1, 1)""",
    """CREATE OR REPLACE MACRO gb11643_to18(id) AS CASE
        WHEN regexp_full_match(gb11643_norm(id), '[0-9]{15}') THEN
            substr(gb11643_norm(id), 1, 6) || '19' || substr(gb11643_norm(id), 7, 9)
            || gb11643_check(substr(gb11643_norm(id), 1, 6) || '19' || substr(gb11643_norm(id), 7, 9))
        ELSE gb11643_norm(id) END""",
    # positions 3-8: the registering authority's GB/T 2260 code, six digits (any six: codes change)
    f"""CREATE OR REPLACE MACRO gb32100_ok(c) AS length(c) = 18
        AND regexp_full_match(c, '[{USCC_CHARSET}]{{18}}')
        AND regexp_full_match(substr(c, 3, 6), '[0-9]{{6}}')
        AND substr(c, 18, 1) = substr('{USCC_CHARSET}',
            CAST((31 - ({_USCC_SUM}) % 31) % 31 AS INTEGER) + 1, 1)
        AND regexp_full_match(substr(c, 9, 8), '[0-9A-Z]{{8}}')
        AND substr(c, 17, 1) = CASE 11 - ({_ORG_SUM}) % 11 WHEN 10 THEN 'X' WHEN 11 THEN '0'
            ELSE CAST(11 - ({_ORG_SUM}) % 11 AS VARCHAR) END""",
    """CREATE OR REPLACE MACRO customs_code_ok(c) AS
        regexp_full_match(c, '[0-9]{4}[123459][1-9][0-9]{4}')""",
]
