"""What a department may receive of a golden field is decided per source: the whole matrix
(every consumer × purpose × golden field × source) agrees with the rule stated from catalogs/
alone (tests/release_rule.py), and a field is withheld, with a reason that names what is
missing, exactly when no source may be released."""

import itertools

import pytest
from release_rule import golden, may_receive

from pipelines.catalog.model import catalog
from pipelines.serving.entitlement import release

pytestmark = pytest.mark.unit
CAT = catalog()


def test_the_release_matrix_follows_the_sharing_conditions_of_every_source():
    outcomes = set()
    for consumer, purpose in itertools.product(CAT.consumers, CAT.purposes):
        for kind, fields in golden().items():
            for field, spec in fields.items():
                got = release(CAT, kind, field, consumer.code, purpose.code)
                for resource in {s["resource"] for s in spec["from"]}:
                    expected = may_receive(kind, field, resource, consumer.code, purpose.code)
                    assert (resource in got.resources) == expected, (
                        consumer.code, purpose.code, kind, field, resource)
                    outcomes.add(expected)
                assert (got.reason is None) == bool(got.resources)
    assert outcomes == {True, False}


def test_a_source_with_a_narrower_condition_is_not_released_with_the_others():
    # PS_POP_BASIC.XM is shared with everyone; a marriage record only with WJW, GAJ, MZJ and RSJ
    # for NEWBORN and AFTER_DEATH: 医保局 receives a name, never one from a marriage record
    name = release(CAT, "person", "name", "YBJ", "NEWBORN")
    assert "PS_POP_BASIC" in name.resources and "CA_MARRIAGE" not in name.resources
    assert "CA_MARRIAGE" in release(CAT, "person", "name", "WJW", "NEWBORN").resources
    # the population record's marital status (HYZKDM) is conditional too
    assert release(CAT, "person", "marital_status", "WJW", "NEWBORN").resources == {
        "CA_MARRIAGE", "PS_POP_BASIC"}
    assert release(CAT, "person", "marital_status", "RSJ", "NEWBORN").resources == {
        "CA_MARRIAGE"}
    # a cremation record answers `status` only where it is shared (AFTER_DEATH)
    assert "CA_CREMATION" not in release(CAT, "person", "status", "GAJ", "NEWBORN").resources
    assert "CA_CREMATION" in release(CAT, "person", "status", "GAJ", "AFTER_DEATH").resources


def test_reasons_name_what_is_missing():
    assert release(CAT, "person", "marital_status", "WJW", "NEWBORN").reason is None
    assert release(CAT, "person", "marital_status", "JYJ", "NEWBORN").reason == (
        "CONSUMER_NOT_ENTITLED")
    assert release(CAT, "person", "marital_status", "WJW", "SCHOOL_ENROLL").reason == (
        "PURPOSE_NOT_ENTITLED")
