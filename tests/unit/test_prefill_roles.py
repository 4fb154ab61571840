"""A role of which the department may receive no field is answered `withheld` without looking the
subject up: no entity id, no 404 that would tell whether the node knows the person, and each field
carries its reason alone."""

import pytest

from pipelines.catalog.model import catalog
from pipelines.serving.prefill import prefill
from pipelines.serving.templates import Template

pytestmark = pytest.mark.unit
SOMEONE = "50010319850314011X"  # a valid citizen ID (check digit X)


class _NoLookups:
    def entities(self, kind, keys):
        raise AssertionError(f"looked up {kind} {keys}")


def test_a_role_with_nothing_releasable_is_withheld_without_a_lookup():
    # 医保局 co-operates on this event but may receive nothing of marriage records, nor the
    # population record's marital status
    template = Template.model_validate({
        "code": "NEWBORN", "name_zh": "x", "name_en": "x", "lead": "WJW", "cooperating": ["YBJ"],
        "roles": {"mother": {"name_zh": "母亲", "name_en": "mother", "subject": "person",
                             "fields": [{"code": "marital_status", "label_zh": "婚姻状况",
                                         "label_en": "Marital status",
                                         "golden": "marital_status"},
                                        {"code": "marriage_record", "label_zh": "结婚登记",
                                         "label_en": "Marriage record",
                                         "golden": "marriage_record"}]}}})
    answer = prefill(_NoLookups(), catalog(), template, "YBJ", "NEWBORN", "C-1",
                     {"mother": SOMEONE})
    withheld = {"status": "withheld", "reason": "CONSUMER_NOT_ENTITLED"}
    assert answer.body["roles"]["mother"] == {
        "status": "withheld", "fields": {"marital_status": withheld, "marriage_record": withheld}}
    assert answer.released == [] and answer.withheld == ["mother.marital_status",
                                                         "mother.marriage_record"]
