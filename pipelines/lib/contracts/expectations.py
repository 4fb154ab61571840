"""Custom Great Expectations for the rules GX does not ship, one class per rule family.

Each is GX's documented way to add a SQL rule (a subclass of UnexpectedRowsExpectation), so GX
judges, counts and reports it like its own expectations; the SQL itself comes from
quality/contracts.yaml through `Rule.fail_sql`, which the warehouse also uses to quarantine exactly
the rows GX counted.
"""

from __future__ import annotations

from great_expectations.expectations import UnexpectedRowsExpectation


class ExpectColumnValuesToBeValidCitizenId(UnexpectedRowsExpectation):
    """GB 11643-1999 citizen ID: MOD 11-2 check character, real birth date; legacy 15-digit and
    cosmetic damage (full-width, spaces, lowercase x) accepted."""


class ExpectColumnValuesToBeValidUscc(UnexpectedRowsExpectation):
    """GB 32100-2015 unified social credit code incl. the embedded GB 11714 organisation code."""


class ExpectColumnValuesToBeValidCustomsCode(UnexpectedRowsExpectation):
    """Customs enterprise code structure: region 4, economic zone 1, enterprise type 1, sequence 4."""


class ExpectColumnValuesToBeValidDivisionAtDate(UnexpectedRowsExpectation):
    """GB/T 2260 division code valid on the record's date (versioned catalogs/divisions.csv)."""


class ExpectColumnValuesToAgreeWithCitizenId(UnexpectedRowsExpectation):
    """Birth date / sex equal what the record's citizen ID states."""


class ExpectColumnValuesToBePresentIff(UnexpectedRowsExpectation):
    """A field present if and only if another field has a given value (SWRQ iff RYZTDM = 1)."""


class ExpectColumnValuesToAgreeWithCustomsCode(UnexpectedRowsExpectation):
    """Enterprise type and division agree with the customs code's type digit and region."""


class ExpectColumnValuesToBeValidForRegime(UnexpectedRowsExpectation):
    """A customs credit level defined by the record's credit regime (Orders 237 / 251 / 282)."""


class ExpectColumnValuesToNotBeInTheFuture(UnexpectedRowsExpectation):
    """A date no later than the record's own update time."""


class ExpectKeyVersionsToBeUnambiguous(UnexpectedRowsExpectation):
    """No two different versions of one key with the same update time in one batch."""


BY_FAMILY: dict[str, type[UnexpectedRowsExpectation]] = {
    "gb11643": ExpectColumnValuesToBeValidCitizenId,
    "gb32100": ExpectColumnValuesToBeValidUscc,
    "customs_code": ExpectColumnValuesToBeValidCustomsCode,
    "division_at_date": ExpectColumnValuesToBeValidDivisionAtDate,
    "id_consistency": ExpectColumnValuesToAgreeWithCitizenId,
    "conditional_required": ExpectColumnValuesToBePresentIff,
    "customs_consistency": ExpectColumnValuesToAgreeWithCustomsCode,
    "regime_validity": ExpectColumnValuesToBeValidForRegime,
    "not_future": ExpectColumnValuesToNotBeInTheFuture,
    "primary_key": ExpectKeyVersionsToBeUnambiguous,
}
