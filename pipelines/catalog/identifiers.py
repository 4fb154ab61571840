"""Identifier standards: citizen ID (GB 11643), unified social credit code (GB 32100) with its embedded
organisation code (GB 11714), and the customs enterprise code.

Pure functions, no I/O and no clock. `make_*` build valid identifiers (the simulator uses them);
`is_valid_*` check; `normalize_*` undo the cosmetic damage seen in real data (full-width digits,
spaces, lowercase x) without guessing anything else. A citizen ID's birth date may not lie after the
date it is judged at: the caller names that date (`as_of`: a record's update time, the hub's
business date), as the contract rules do with the record's GXSJ (pipelines/governance/contracts).
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from dataclasses import dataclass

# --- GB 11643-1999 citizen identity number -------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_ZERO = ord("0") * sum(_ID_WEIGHTS)
# The earliest birth date accepted. GB 11643 writes the year in four digits and sets no bound, so
# the bound is the hub's: nobody born before 1900 is alive (126 or older in 2026); the 15-digit
# numbers issued 1984-1999 write the year as 19YY; the records that flow back (police registers,
# civil affairs digitised from ~2004, cremations since) would need a person aged 104 or more at
# digitisation. A pre-1900 year is far likelier a mistyped one. The standard's own example
# 440524188001010014 (born 1880-01-01) illustrates the format, not a person; a genuine exception
# (a claimed supercentenarian's card) fails the contract and reaches the provider as a data
# objection. quality/contracts.yaml applies the same bound (gb11643_* macros, sql_macros.py).
BIRTH_DATE_MIN = dt.date(1900, 1, 1)
_BIRTH_MIN = f"{BIRTH_DATE_MIN:%Y%m%d}"
_FULLWIDTH = str.maketrans("０１２３４５６７８９ＸｘＡＢＣＤＥＦＧＨＪＫＬＭＮＰＱＲＴＵＷＹ",
                           "0123456789XxABCDEFGHJKLMNPQRTUWY")


def _digits(s: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²', '４', '٣' (int() then fails or converts)."""
    return s.isascii() and s.isdigit()


def gb11643_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character for the first 17 digits."""
    if len(first17) != 17 or not _digits(first17):
        raise ValueError(f"need 17 digits, got {first17!r}")
    # Σ digit·weight as Σ byte·weight − 48·Σweight: no int() per digit (the prefill service
    # checks every ID it is asked about)
    return _ID_CHECK[(sum(map(operator.mul, first17.encode(), _ID_WEIGHTS)) - _ID_ZERO) % 11]


def normalize_citizen_id(raw: str | None) -> str | None:
    """Remove spaces, fold full-width characters and upper-case the check letter. Nothing more."""
    if raw is None:
        return None
    if raw.isascii() and raw.isalnum():  # no spaces or full-width characters: the usual case
        return raw.upper()
    return "".join(raw.translate(_FULLWIDTH).split()).upper()


def upgrade_15_to_18(id15: str) -> str:
    """Legacy 15-digit number -> 18 digits: insert '19' after the address code, append the check."""
    if len(id15) != 15 or not _digits(id15):
        raise ValueError(f"a legacy ID has 15 digits, got {id15!r}")
    first17 = id15[:6] + "19" + id15[6:]
    return first17 + gb11643_check_char(first17)


def make_citizen_id(address_code: str, birth: dt.date, sequence: int) -> str:
    """A valid 18-character ID. Sequence 0-999: odd = male, even = female."""
    first17 = f"{address_code}{birth:%Y%m%d}{sequence:03d}"
    return first17 + gb11643_check_char(first17)


def is_valid_citizen_id(value: str | None, as_of: dt.date | None = None) -> bool:
    """18 characters, a real birth date from BIRTH_DATE_MIN to `as_of` (when given: without it no
    upper bound applies) and a correct check character (the value as given)."""
    if not value or len(value) != 18:
        return False
    first17, birth = value[:17], value[6:14]
    # _birth_ok inline (string bounds first, the cached real-date check last): the prefill
    # service checks every ID it is asked about
    if (not _digits(first17) or birth < _BIRTH_MIN
            or (as_of is not None and birth > _yyyymmdd(as_of)) or _birth_date(birth) is None):
        return False
    # the check character inline (gb11643_check_char re-checks its input): every ID a prefill or
    # a batch check names passes here
    return value[17] == _ID_CHECK[(sum(map(operator.mul, first17.encode(), _ID_WEIGHTS))
                                   - _ID_ZERO) % 11]


def _birth_ok(yyyymmdd: str, as_of: dt.date | None) -> bool:
    """A real date within the bounds. 'YYYYMMDD' strings of digits order as the dates do: the bounds
    are string comparisons (the prefill service checks every ID it is asked about)."""
    if yyyymmdd < _BIRTH_MIN or (as_of is not None and yyyymmdd > _yyyymmdd(as_of)):
        return False
    return _birth_date(yyyymmdd) is not None


@functools.lru_cache(maxsize=64)  # callers pass one business date or a few record dates
def _yyyymmdd(d: dt.date) -> str:
    return f"{d:%Y%m%d}"


@functools.lru_cache(maxsize=200_000)  # a few tens of thousands of birth dates recur
def _birth_date(yyyymmdd: str) -> dt.date | None:
    # date() on the parts, not strptime: a tenth of the cost, and the service checks every ID
    if len(yyyymmdd) != 8 or not _digits(yyyymmdd):
        return None
    try:
        return dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        return None


@dataclass(frozen=True)
class CitizenId:
    """What a (normalised) ID number says. `problems` is empty for a valid number."""

    number: str
    address_code: str | None
    birth_date: dt.date | None
    sex: str | None  # GB/T 2261.1: "1" male, "2" female
    legacy_upgraded: bool
    problems: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return not self.problems


def parse_citizen_id(raw: str | None, as_of: dt.date | None = None) -> CitizenId:
    """Normalise, upgrade a legacy 15-digit number, and report every problem found. `birth_date` is
    what the number states, also when it lies outside BIRTH_DATE_MIN..`as_of` (a problem)."""
    number = normalize_citizen_id(raw) or ""
    legacy = False
    if len(number) == 15 and _digits(number):
        number, legacy = upgrade_15_to_18(number), True
    problems: list[str] = []
    if len(number) != 18 or not _digits(number[:17]) or number[17] not in "0123456789X":
        return CitizenId(number, None, None, None, legacy, ("format",))
    birth = _birth_date(number[6:14])
    if not _birth_ok(number[6:14], as_of):
        problems.append("birth_date")
    if number[17] != gb11643_check_char(number[:17]):
        problems.append("checksum")
    sex = "1" if int(number[16]) % 2 else "2"
    return CitizenId(number, number[:6], birth, sex, legacy, tuple(problems))


# --- GB 11714 organisation code and GB 32100-2015 unified social credit code ------------------------

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def _org_char_value(c: str) -> int:
    if "0" <= c <= "9":
        return int(c)
    if "A" <= c <= "Z":
        return ord(c) - ord("A") + 10
    raise ValueError(f"invalid organisation-code character {c!r}")


def org_code_check_char(body8: str) -> str:
    """GB 11714 check character for the 8 body characters (10 -> X, 11 -> 0)."""
    s = sum(_org_char_value(c) * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True))
    c = 11 - s % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def is_valid_org_code(code: str | None) -> bool:
    """9 characters (body + check), optionally written 'XXXXXXXX-X'."""
    if not code:
        return False
    if len(code) == 10 and code[8] == "-":
        code = code[:8] + code[9]
    if len(code) != 9 or not all("0" <= c <= "9" or "A" <= c <= "Z" for c in code[:8]):
        return False
    return code[8] == org_code_check_char(code[:8])


def uscc_check_char(first17: str) -> str:
    s = sum(USCC_CHARSET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - s % 31) % 31]


def make_uscc(authority: str, category: str, division: str, org_body8: str) -> str:
    """A valid USCC: authority + category + division (6) + organisation code (8 + check) + check."""
    first17 = f"{authority}{category}{division}{org_body8}{org_code_check_char(org_body8)}"
    return first17 + uscc_check_char(first17)


def uscc_problems(code: str | None) -> tuple[str, ...]:
    """Empty when valid; otherwise which part is wrong: format, division, checksum, org_code.

    Positions 1 and 2 (registration authority, organisation category) are held to the charset only:
    the standard's table of authorities and categories is longer than the few DOMAIN.md names.
    Positions 3-8 are the GB/T 2260 code of the registering authority: six digits, in today's
    division list or not (codes change; national-level registrations carry 100000)."""
    if not code or len(code) != 18 or any(c not in USCC_CHARSET for c in code):
        return ("format",)
    problems = []
    if not _digits(code[2:8]):
        problems.append("division")
    if code[17] != uscc_check_char(code[:17]):
        problems.append("checksum")
    if not is_valid_org_code(code[8:17]):
        problems.append("org_code")
    return tuple(problems)


def is_valid_uscc(code: str | None) -> bool:
    return not uscc_problems(code)


def uscc_org_code(code: str) -> str:
    """The embedded organisation code, in its printed form 'XXXXXXXX-X'."""
    return f"{code[8:16]}-{code[16]}"


# --- Customs enterprise code (海关编码) ---------------------------------------------------------------

CUSTOMS_ZONES = frozenset("123459")
CUSTOMS_ENTERPRISE_TYPES = frozenset("123456789")


@dataclass(frozen=True)
class CustomsCode:
    region: str  # first four digits of the registrant's division code, or xx90
    zone: str
    enterprise_type: str
    sequence: str


def parse_customs_code(code: str | None) -> CustomsCode | None:
    """10 digits: region (4) + economic zone (1) + enterprise type (1) + sequence (4). No check digit."""
    if not code or len(code) != 10 or not _digits(code):
        return None
    if code[4] not in CUSTOMS_ZONES or code[5] not in CUSTOMS_ENTERPRISE_TYPES:
        return None
    return CustomsCode(code[:4], code[4], code[5], code[6:])


def is_valid_customs_code(code: str | None) -> bool:
    return parse_customs_code(code) is not None


def make_customs_code(division: str, zone: str, enterprise_type: str, sequence: int) -> str:
    return f"{division[:4]}{zone}{enterprise_type}{sequence:04d}"
