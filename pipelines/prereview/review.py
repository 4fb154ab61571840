"""Pre-review of one application: the applicant's claimed values and the template's eligibility
rules judged against the authoritative values the requesting department may receive for the
purpose — exactly the envelopes its prefill would get (so nothing is released that a prefill
would not release, and a withheld or missing value makes its rule `cannot_check`).

Verdict: 可秒批 (every block rule passes, nothing disputed or in conflict), 转人工 (an officer
must look: a rule that could not be checked, a failure only an officer can judge, a value under
objection or in conflict), 退回补正 (the applicant must correct a claimed value). Never a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.catalog.model import Catalog
from pipelines.prereview.rules import Rule, RuleSet
from pipelines.serving.prefill import Answer, RequestError, prefill
from pipelines.serving.store import Store
from pipelines.serving.templates import Template

APPROVE, OFFICER, CORRECT = "可秒批", "转人工", "退回补正"


@dataclass
class Review:
    body: dict
    released: list[str]
    withheld: list[str]
    subjects: list[str]


def _authoritative(env: dict) -> dict:
    return {"value": env["value"], "source": env["source"], "as_of": env["as_of"],
            "match_confidence": env["match_confidence"]}


def _env(answer: dict, field: str) -> dict:
    """The role's envelope of `field`; for a subject not found, why (as an envelope)."""
    if answer.get("status") != "found":
        return {"status": "no_subject", "reason": answer.get("reason", "SUBJECT_NOT_HELD")}
    return (answer.get("fields") or {}).get(field) or {"status": "unavailable"}


def _unusable(env: dict) -> str | None:
    """Why a value cannot be used to check (None when it can)."""
    if env["status"] == "no_subject":
        return env["reason"]
    if env["status"] == "withheld":
        return env["reason"]
    if env["status"] != "available":
        return "NO_AUTHORITATIVE_VALUE"
    return None


def _finding(rule: Rule, role: str, status: str, **extra) -> dict:
    return {"rule": rule.id, "severity": rule.severity, "status": status, "role": role,
            **extra, "explain_zh": rule.explain_zh, "explain_en": rule.explain_en}


def _judge_claims(rules: RuleSet, template: Template, roles: dict, claimed: dict) -> list[dict]:
    out = []
    for role, values in claimed.items():
        for rule in rules.claimed:
            if rule.field not in values:
                continue
            env = _env(roles.get(role) or {}, rule.field)
            why = _unusable(env)
            if why:
                out.append(_finding(rule, role, "cannot_check", field=rule.field,
                                    claimed=values[rule.field], reason=why))
                continue
            ok = rule.holds({"claimed": values[rule.field], "authoritative": env["value"]})
            out.append(_finding(rule, role, "pass" if ok else "fail", field=rule.field,
                                claimed=values[rule.field], authoritative=_authoritative(env),
                                disputed=env["disputed"], conflict=env["conflict"]))
    return out


def _judge_eligibility(rules: RuleSet, template: Template, roles: dict) -> list[dict]:
    out = []
    for rule in rules.eligibility.get(template.code, ()):
        answer = roles.get(rule.role) or {}
        if answer.get("status") == "not_applicable":
            continue
        envs = {f: _env(answer, f) for f in rule.uses}
        why = next((w for w in map(_unusable, envs.values()) if w), None)
        if why:
            out.append(_finding(rule, rule.role, "cannot_check", reason=why))
            continue
        ok = rule.holds({f: e["value"] for f, e in envs.items()})
        out.append(_finding(rule, rule.role, "pass" if ok else "fail",
                            authoritative={f: _authoritative(e) for f, e in envs.items()},
                            disputed=any(e["disputed"] for e in envs.values()),
                            conflict=any(e["conflict"] for e in envs.values())))
    return out


def verdict(findings: list[dict]) -> str:
    officer = any(
        f.get("disputed") or f.get("conflict")
        or (f["severity"] == "block" and f["status"] == "cannot_check")
        or (f["status"] == "fail" and (f["on_fail"] == "officer" or f["severity"] == "warn"))
        for f in findings)
    if officer:
        return OFFICER
    if any(f["status"] == "fail" and f["severity"] == "block" for f in findings):
        return CORRECT
    return APPROVE


def check_claimed(template: Template, claimed) -> None:
    if not isinstance(claimed, dict) or not all(
            isinstance(v, dict) and r in template.roles
            and all(isinstance(x, str) for x in v.values()) for r, v in claimed.items()):
        raise RequestError(400, "invalid_request", "claimed is an object of role: {field: "
                           "text value} for roles of the template", ["claimed"])


def local_answer(store: Store, cat: Catalog, template: Template, department: str, purpose: str,
                 case_id: str, subjects: dict, refusal: RequestError) -> Answer:
    """The prefill with the subjects this node does not hold left out (their roles `remote`):
    a pre-review judges them `cannot_check` rather than refusing the application."""
    unknown: set[str] = set()
    while True:
        if refusal.code != "unknown_subject" or not refusal.fields:
            raise refusal
        unknown.add(refusal.fields[0].removeprefix("subjects."))
        try:
            return prefill(store, cat, template, department, purpose, case_id, subjects,
                           frozenset(unknown))
        except RequestError as e:
            refusal = e


def judge(rules: RuleSet, template: Template, answer: Answer, claimed: dict) -> Review:
    """The findings and verdict over a prefill answer (local or across nodes)."""
    roles = answer.body["roles"]
    case_id, purpose = answer.body["case_id"], answer.body["purpose"]
    findings = _judge_claims(rules, template, roles, claimed) + \
        _judge_eligibility(rules, template, roles)
    on_fail = {r.id: r.on_fail for r in (*rules.claimed,
                                          *rules.eligibility.get(template.code, ()))}
    for f in findings:
        f["on_fail"] = on_fail[f["rule"]]
    decided = verdict(findings)
    body = {"case_id": case_id, "template": template.code, "purpose": purpose,
            "verdict": decided, "findings": findings,
            "trace": [{"rule": f["rule"], "role": f["role"], "status": f["status"]}
                      for f in findings]}
    return Review(body, answer.released, answer.withheld, answer.subjects)
