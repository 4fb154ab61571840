"""Life-event templates: every one loads, maps to real golden fields, and names departments and
a purpose of the list; a wrong one fails with the file and field."""

import pytest

from pipelines.catalog.model import catalog
from pipelines.serving.templates import TemplateError, load_templates, templates

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


def test_a_template_naming_an_unknown_field_fails_with_the_file_and_field(tmp_path):
    (tmp_path / "NEWBORN.yaml").write_text(
        "code: NEWBORN\nname_zh: x\nname_en: x\nlead: WJW\nroles:\n  mother:\n"
        "    name_zh: 母亲\n    name_en: mother\n    subject: person\n    fields:\n"
        "      - {code: name, label_zh: 姓名, label_en: Name, golden: nickname}\n",
        encoding="utf-8")
    with pytest.raises(TemplateError, match=r"NEWBORN.yaml: mother.name: no golden field "
                                            r"person.nickname"):
        load_templates(tmp_path)
