"""The simulator's labelled applications (clean ones, and ones with one injected error each)
judged by the real service: every block-level error is caught (never 可秒批, its rule never
`pass`), no clean application gets a block failure or goes back to the applicant, every pass or
fail carries its provenance, and no finding shows a value the department may not receive (the
rule computed by the test from the YAML)."""

from __future__ import annotations

import json

import httpx
import pytest

from release_rule import receivable_sources
from pipelines.serving.templates import templates

from .serving_helpers import huiliu, running_service

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def judged(served_sim_world):
    s, truth_dir, env = served_sim_world
    apps = [json.loads(x) for x in (truth_dir / "applications.jsonl").read_text(
        encoding="utf-8").splitlines()]
    keys = {d: huiliu(s.home, env, "consumers", "issue", d)
            for d in sorted({a["department"] for a in apps})}
    out = []
    with running_service(s.home, env) as url, httpx.Client(timeout=30) as client:
        for a in apps:
            r = client.post(f"{url}/v1/prereview", headers={
                "Authorization": f"Bearer {keys[a['department']]}"}, json={
                "case_id": a["id"], "purpose": a["purpose"], "template": a["template"],
                "subjects": a["subjects"], "claimed": a["claimed"]})
            assert r.status_code == 200, (a, r.text)
            out.append((a, r.json()))
    return out


def test_the_simulator_labels_every_kind_of_person_error_and_clean_applications(judged):
    kinds = {a["label"] for a, _ in judged}
    assert {"clean_school", "wrong_birth_date", "wrong_hukou", "out_of_age_child",
            "clean_assistance", "deceased_applicant", "clean_marriage",
            "married_claims_single", "clean_enterprise", "deregistered_enterprise"} <= kinds, kinds


def test_every_block_level_error_is_caught(judged):
    errors = [(a, b) for a, b in judged if a["expected"]]
    missed = []
    for a, body in errors:
        status = {f"{f['rule']}@{f['role']}": f["status"] for f in body["findings"]}
        if body["verdict"] == "可秒批" or any(status.get(r, "absent") in ("pass", "absent")
                                             for r in a["expected"]):
            missed.append((a["label"], a["id"], body["verdict"], status))
    assert not missed, missed
    assert len(errors) >= 40


def test_no_clean_application_is_blocked_or_sent_back(judged):
    clean = [(a, b) for a, b in judged if not a["expected"]]
    for a, body in clean:
        blocked = [f for f in body["findings"] if f["severity"] == "block"
                   and f["status"] == "fail"]
        assert not blocked and body["verdict"] != "退回补正", (a, body)
    approved = sum(b["verdict"] == "可秒批" for _, b in clean)
    assert approved >= len(clean) // 2, f"only {approved} of {len(clean)} clean ones approved"


def test_every_judged_finding_has_provenance_and_nothing_unentitled_is_shown(judged):
    for a, body in judged:
        t = templates()[a["template"]]
        for f in body["findings"]:
            if f["status"] in ("pass", "fail"):
                values = f["authoritative"] if "value" not in f["authoritative"] else {
                    f.get("field"): f["authoritative"]}
                for v in values.values():
                    assert {"provider", "resource", "batch", "record_key"} <= set(v["source"])
                    assert v["as_of"]
            spec = t.roles[f["role"]]
            fields = [f["field"]] if f.get("field") else list(
                (f.get("authoritative") or {}).keys())
            for code in fields:
                golden = next(x.golden for x in spec.fields if x.code == code)
                entitled = receivable_sources(spec.subject, golden, a["department"],
                                              a["purpose"])
                if not entitled:
                    assert "authoritative" not in f and f["status"] == "cannot_check", (a, f)
