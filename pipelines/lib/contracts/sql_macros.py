"""DuckDB macros for the identifier rules GX does not ship, generated from the standards' weights
(pipelines/lib/identifiers.py is the Python reference; tests check both agree)."""

from __future__ import annotations

from pipelines.lib.identifiers import USCC_CHARSET

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

MACROS = [
    # a valid 18-character number (birth date real, MOD 11-2 check) or a legacy 15-digit one
    f"""CREATE OR REPLACE MACRO gb11643_norm(id) AS {NORMALISE_ID}""",
    f"""CREATE OR REPLACE MACRO gb11643_ok18(n) AS length(n) = 18
        AND regexp_full_match(n, '[0-9]{{17}}[0-9X]')
        AND try_strptime(substr(n, 7, 8), '%Y%m%d') IS NOT NULL
        AND substr(n, 18, 1) = substr('10X98765432', CAST(({_ID_SUM}) % 11 AS INTEGER) + 1, 1)""",
    """CREATE OR REPLACE MACRO gb11643_ok(id) AS CASE
        WHEN length(gb11643_norm(id)) = 15 THEN regexp_full_match(gb11643_norm(id), '[0-9]{15}')
            AND try_strptime('19' || substr(gb11643_norm(id), 7, 6), '%Y%m%d') IS NOT NULL
        ELSE gb11643_ok18(gb11643_norm(id)) END""",
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
    f"""CREATE OR REPLACE MACRO gb32100_ok(c) AS length(c) = 18
        AND regexp_full_match(c, '[{USCC_CHARSET}]{{18}}')
        AND substr(c, 18, 1) = substr('{USCC_CHARSET}',
            CAST((31 - ({_USCC_SUM}) % 31) % 31 AS INTEGER) + 1, 1)
        AND regexp_full_match(substr(c, 9, 8), '[0-9A-Z]{{8}}')
        AND substr(c, 17, 1) = CASE 11 - ({_ORG_SUM}) % 11 WHEN 10 THEN 'X' WHEN 11 THEN '0'
            ELSE CAST(11 - ({_ORG_SUM}) % 11 AS VARCHAR) END""",
    """CREATE OR REPLACE MACRO customs_code_ok(c) AS
        regexp_full_match(c, '[0-9]{4}[123459][1-9][0-9]{4}')""",
]
