"""Enterprise keys: the organisation code inside a USCC links old and new records; invalid or
contradicting codes are reported, not used."""

import pytest

from pipelines.catalog.identifiers import make_customs_code, org_code_check_char
from pipelines.identity.enterprises import enterprise_keys

pytestmark = pytest.mark.unit
USCC = "91350100M000100Y43"  # GB 32100 example: organisation code M000100Y4


def test_a_uscc_yields_its_organisation_code():
    k = enterprise_keys(uscc=USCC)
    assert (k.uscc, k.org_code, k.invalid) == (USCC, "M000100Y-4", ())
    assert k.keys() == [f"uscc:{USCC}", "org:M000100Y-4"]


def test_an_old_record_with_only_the_organisation_code_meets_the_uscc_through_it():
    old = enterprise_keys(org_code="m000100y4")
    assert old.org_code == "M000100Y-4" and "org:M000100Y-4" in enterprise_keys(uscc=USCC).keys()


def test_customs_code_folded_and_checked():
    code = make_customs_code("500116", "9", "6", 12)
    assert enterprise_keys(customs_code=f" {code} ").customs_code == code
    assert enterprise_keys(customs_code="5001761234").invalid == ("customs_code",)  # zone 7


def test_invalid_and_contradicting_codes_are_reported_not_used():
    k = enterprise_keys(uscc="91350100M000100Y44")
    assert (k.uscc, k.org_code, k.invalid) == (None, None, ("uscc",))
    other = "12345678-" + org_code_check_char("12345678")  # valid, but another organisation
    k = enterprise_keys(uscc=USCC, org_code=other)
    assert k.org_code == "M000100Y-4" and k.invalid == ("org_code",)
