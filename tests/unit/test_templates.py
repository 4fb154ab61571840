"""Life-event templates: every one loads and maps to real golden fields and resource fields, and
the entitlement matrix (every consumer × purpose × template field) follows the responsibility
list's sharing conditions exactly."""

import itertools

import pytest

from pipelines.lib.catalog import catalog
from pipelines.lib.serving.templates import TemplateError, load_templates, release, templates

pytestmark = pytest.mark.unit
CAT = catalog()
REQUIRED = {"NEWBORN", "AFTER_DEATH", "SCHOOL_ENROLL", "ENT_CHANGE", "ENT_BANKRUPTCY",
            "SOCIAL_ASSIST"}


def test_the_six_life_events_are_templates_with_roles_and_fields():
    t = templates()
    assert REQUIRED <= set(t)
    assert set(t["NEWBORN"].roles) == {"mother", "father"}
    assert set(t["AFTER_DEATH"].roles) == {"deceased", "applicant"}
    assert t["ENT_CHANGE"].roles["enterprise"].subject == "enterprise"


CASES = [(c.code, p.code, t.code, role, f)
         for c, p in itertools.product(CAT.consumers, CAT.purposes)
         for t in templates().values() for role, r in t.roles.items() for f in r.fields]


def test_the_entitlement_matrix_follows_the_sharing_conditions():
    released = withheld = 0
    for consumer, purpose, _t, _role, f in CASES:
        r = CAT.resource(f.resource)
        sharing = r.sharing_of(r.field(f.field))
        expected = sharing.type == "U" or (sharing.type == "C" and consumer in sharing.consumers
                                           and purpose in sharing.purposes)
        reason = release(CAT, f, consumer, purpose)
        assert (reason is None) == expected, (consumer, purpose, f.source)
        released += reason is None
        withheld += reason is not None
    assert released and withheld  # the matrix has both outcomes


def test_reasons_name_what_is_missing():
    newborn = templates()["NEWBORN"].roles["mother"].fields
    marital = next(f for f in newborn if f.code == "marital_status")
    assert release(CAT, marital, "WJW", "NEWBORN") is None
    assert release(CAT, marital, "JYJ", "NEWBORN") == "CONSUMER_NOT_ENTITLED"
    assert release(CAT, marital, "WJW", "SCHOOL_ENROLL") == "PURPOSE_NOT_ENTITLED"


def test_a_template_naming_an_unknown_field_fails_with_the_file_and_field(tmp_path):
    (tmp_path / "NEWBORN.yaml").write_text(
        "code: NEWBORN\nname_zh: x\nname_en: x\nlead: WJW\nroles:\n  mother:\n"
        "    name_zh: 母亲\n    name_en: mother\n    subject: person\n    fields:\n"
        "      - {code: name, label_zh: 姓名, label_en: Name, golden: name, "
        "source: PS_POP_BASIC.NOPE}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"NEWBORN.yaml: mother.name: PS_POP_BASIC has no "
                                            r"field NOPE"):
        load_templates(tmp_path)
