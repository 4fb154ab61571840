"""一类事 and the life-cycle page against a real service over the simulator's world: a bundle asks
once for its subjects and returns each form under its own template's purpose and departments,
values the forms share given once; the page shows stages, affairs, departments, the data each
form needs and its providers, generated from the catalogue."""

from __future__ import annotations

import duckdb
import httpx
import orjson
import pytest

from .serving_helpers import huiliu, running_service

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service(served_sim_world):
    s, truth_dir, env = served_sim_world
    keys = {d: huiliu(s.home, env, "consumers", "issue", d) for d in ("MZJ", "WJW")}
    with duckdb.connect(str(s.published_current), read_only=True) as db:
        couple = db.execute("""SELECT w.citizen_id, h.citizen_id, w.name FROM gold.person w
            JOIN gold.person h ON w.spouse = h.entity_id
            WHERE w.sex = '2' AND w.citizen_id IS NOT NULL AND h.citizen_id IS NOT NULL
            ORDER BY 1 LIMIT 1""").fetchone()
    assert couple, "the world has no married couple"
    with running_service(s.home, env) as url:
        yield url, keys, couple, s


def bundle(url, key, subjects, case_id="B-1", code="FAMILY_BUNDLE"):
    return httpx.post(f"{url}/v1/bundle", timeout=30, headers={"Authorization": f"Bearer {key}"},
                      json={"case_id": case_id, "bundle": code, "subjects": subjects})


def test_a_bundle_asks_once_and_fills_each_shared_field_once(service):
    url, keys, (wife, husband, name), _ = service
    r = bundle(url, keys["MZJ"], {"bride": wife, "groom": husband})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["forms"]) == {"MARRIAGE_REG", "NEWBORN"}
    assert body["forms"]["MARRIAGE_REG"]["purpose"] == "MARRIAGE_REG"
    assert body["forms"]["NEWBORN"]["purpose"] == "NEWBORN"
    assert body["shared"]["bride.name"]["value"] == name
    bride_marriage = body["forms"]["MARRIAGE_REG"]["roles"]["party_b"]["fields"]["name"]
    bride_birth = body["forms"]["NEWBORN"]["roles"]["mother"]["fields"]["name"]
    assert bride_marriage == bride_birth == {"status": "shared", "ref": "bride.name"}


def test_a_form_goes_only_to_the_departments_its_template_names(service):
    url, keys, (wife, husband, _), _ = service
    r = bundle(url, keys["WJW"], {"bride": wife, "groom": husband}, case_id="B-2")
    assert r.status_code == 200, r.text
    forms = r.json()["forms"]
    assert forms["MARRIAGE_REG"]["status"] == "not_a_department_of_this_event"
    assert "roles" not in forms["MARRIAGE_REG"]
    assert forms["NEWBORN"]["status"] == "answered"


def test_each_form_of_a_bundle_is_its_own_audit_entry(service):
    url, keys, (wife, husband, _), s = service
    bundle(url, keys["MZJ"], {"bride": wife, "groom": husband}, case_id="B-AUDIT-1")
    entries = [orjson.loads(x) for x in (s.home / "serving" / "audit.jsonl").read_bytes()
               .splitlines()]
    mine = sorted((e[3], e[4]) for e in entries if e[5] == "B-AUDIT-1")
    assert mine == [("MARRIAGE_REG", "MARRIAGE_REG"), ("NEWBORN", "NEWBORN")]


def test_the_lifecycle_page_shows_stages_affairs_departments_and_providers(service, browser):
    url, *_ = service
    page = browser.new_page()
    page.goto(f"{url}/lifecycle")
    page.wait_for_selector('tr[data-affair="NEWBORN"]')
    assert page.locator('[data-list="PERSON"]').count() == 1
    assert page.locator('[data-stage="AFTER_DEATH"]').count() == 1
    newborn = page.locator('tr[data-affair="NEWBORN"]')
    assert "WJW" in newborn.inner_text() and "GAJ" in newborn.inner_text()
    newborn.locator("summary").click()
    assert "PS" in newborn.inner_text() and "姓名" in newborn.inner_text()
    local = page.locator('tr[data-affair="MIGRANT_CHILD_ENROL"]')
    assert "重庆" in local.inner_text()
    assert "婚育一类事" in page.locator('tr[data-bundle="FAMILY_BUNDLE"]').inner_text()
    page.close()
