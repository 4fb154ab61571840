"""The life-cycle lists and bundles as data: the master lists, with what a local and a sector list
add or adjust marked by where it came from; a list or bundle naming something the catalogue
does not have stops the load naming it."""

import shutil

import pytest

from pipelines.catalog.model import catalog
from pipelines.serving.lifecycle import LIFECYCLE, LifecycleError, load_bundles, load_lists
from pipelines.serving.templates import templates


def affairs(lists, code):
    return {a.code: a for s in lists[code].stages for a in s.affairs}


def test_master_lists_with_local_and_sector_items_marked_by_their_source():
    lists = load_lists(catalog(), templates())
    person, enterprise = affairs(lists, "PERSON"), affairs(lists, "ENTERPRISE")
    assert [s.code for s in lists["PERSON"].stages][0] == "BIRTH"
    assert [s.code for s in lists["PERSON"].stages][-1] == "AFTER_DEATH"
    assert person["NEWBORN"].template == "NEWBORN" and "国务院" in person["NEWBORN"].source
    assert "重庆" in person["MIGRANT_CHILD_ENROL"].source  # added by the local list
    assert "WJW" in person["SOCIAL_ASSIST"].cooperating  # adjusted by it, and said so
    assert any("重庆" in s for s in person["SOCIAL_ASSIST"].adjusted_by)
    assert "海关" in enterprise["CUSTOMS_CREDIT"].source
    bundles = load_bundles(lists, templates())
    assert bundles["FAMILY_BUNDLE"].templates == ["MARRIAGE_REG", "NEWBORN"]


@pytest.mark.parametrize("file, text, problem", [
    ("local/500000.yaml", "code: L\nsource: 某地清单\nadd:\n  - {list: PERSON, stage: NOWHERE, "
     "code: X, name_zh: x, name_en: x, lead: JYJ}\n", "no stage NOWHERE"),
    ("local/500000.yaml", "code: L\nsource: 某地清单\nadjust:\n  - {list: PERSON, code: NOPE, "
     "lead: JYJ}\n", "no such affair"),
    ("local/500000.yaml", "code: L\nsource: 某地清单\nadd:\n  - {list: PERSON, stage: BIRTH, "
     "code: X, name_zh: x, name_en: x, lead: NOBODY}\n", "unknown departments ['NOBODY']"),
    ("local/500000.yaml", "code: L\nsource: 某地清单\nadd:\n  - {list: PERSON, stage: BIRTH, "
     "code: X, name_zh: x, name_en: x, lead: JYJ, template: NEWBORN}\n", "led by WJW"),
])
def test_a_list_naming_what_the_catalogue_lacks_is_refused(tmp_path, file, text, problem):
    root = tmp_path / "lifecycle"
    shutil.copytree(LIFECYCLE, root)
    (root / file).write_text(text, encoding="utf-8")
    with pytest.raises(LifecycleError) as e:
        load_lists(catalog(), templates(), root)
    assert problem in str(e.value)


def test_a_bundle_filling_a_role_of_the_wrong_kind_is_refused(tmp_path):
    root = tmp_path / "lifecycle"
    shutil.copytree(LIFECYCLE, root)
    (root / "bundles.yaml").write_text(
        "- code: B\n  name_zh: b\n  name_en: b\n  stage: {list: PERSON, stage: BIRTH}\n"
        "  roles:\n    who: {name_zh: x, name_en: x, subject: enterprise, "
        "fills: {NEWBORN: mother}}\n", encoding="utf-8")
    lists = load_lists(catalog(), templates(), root)
    with pytest.raises(LifecycleError) as e:
        load_bundles(lists, templates(), root)
    assert "NEWBORN.mother is a person" in str(e.value)
