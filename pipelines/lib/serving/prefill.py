"""Prefill answers: per role and field an envelope that says what the hub knows and may release.

status: available (value, source, as-of, confidence, disputed, conflict) | unavailable (the hub
holds no value) | withheld (the consumer may not receive it for this purpose: a reason code and
nothing else — not the value, its presence, length or status) | not_applicable (the role was not
asked for).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from pipelines.lib.catalog import Catalog
from pipelines.lib.identifiers import is_valid_citizen_id, is_valid_uscc, normalize_citizen_id
from pipelines.lib.serving.store import Store
from pipelines.lib.serving.templates import Template, release


class RequestError(Exception):
    """A request the caller can fix: status code and the failing fields."""

    def __init__(self, status: int, code: str, detail: str, fields: list[str] | None = None,
                 retry_after: float | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.fields = status, code, detail, fields or []
        self.retry_after = retry_after  # seconds, for a 429

    def body(self) -> dict:
        return {"error": self.code, "detail": self.detail, "fields": self.fields}


class Answer(NamedTuple):  # a tuple: a frozen dataclass cost ~2 µs a prefill to build
    body: dict
    released: list[str]
    withheld: list[str]
    subjects: list[str]


_CASE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def subject_key(kind: str, raw: str) -> str | None:
    """The store's key for a subject as given (citizen ID or USCC), or None if not valid."""
    n = normalize_citizen_id(raw or "")
    if kind == "person":
        return n if is_valid_citizen_id(n) else None
    return n if is_valid_uscc(n) else None


def prefill(store: Store, cat: Catalog, template: Template, consumer: str, purpose: str,
            case_id: str, subjects: dict[str, str]) -> Answer:
    bad = []
    if not isinstance(case_id, str) or not _CASE_ID.fullmatch(case_id):
        bad.append("case_id")
    unknown_roles = sorted(set(subjects) - set(template.roles))
    bad += [f"subjects.{r}" for r in unknown_roles]
    keys: dict[str, str] = {}
    for role, raw in subjects.items():
        if role in template.roles:
            k = subject_key(template.roles[role].subject, raw if isinstance(raw, str) else "")
            if k is None:
                bad.append(f"subjects.{role}")
            else:
                keys[role] = k
    if not subjects:
        bad.append("subjects")
    if bad:
        raise RequestError(400, "invalid_request", "fix the listed fields: case_id is 1-64 "
                           "letters, digits or ._:-; each subject a valid citizen ID (GB 11643) "
                           "or USCC (GB 32100) for a role of the template", bad)
    if purpose != template.code:
        raise RequestError(403, "purpose_mismatch", f"template {template.code} serves purpose "
                           f"{template.code}, not {purpose}", ["purpose"])
    if consumer not in (template.lead, *template.cooperating):
        raise RequestError(403, "not_a_department_of_this_event", f"{consumer} is neither the "
                           f"lead nor a co-operating department of {template.code}")
    by_kind: dict[str, list[str]] = {}
    for role, k in keys.items():
        by_kind.setdefault(template.roles[role].subject, []).append(k)
    found = {kind: store.entities(kind, ks) for kind, ks in by_kind.items()}
    entities = {}
    for role, k in keys.items():
        kind = template.roles[role].subject
        entity = found[kind].get(k)
        if entity is None:
            raise RequestError(404, "unknown_subject", f"no {kind} with that key is known to "
                               "this node", [f"subjects.{role}"])
        entities[role] = entity
    roles, released, withheld = {}, [], []
    for role, plan in _plan(cat, template, consumer, purpose):
        entity = entities.get(role)
        if entity is None:
            roles[role] = NOT_APPLICABLE
            continue
        roles[role] = {"status": "found", "entity_id": entity.entity_id,
                       "fields": entity.envelopes(plan.fields)}
        released += plan.released
        withheld += plan.withheld
    body = {"case_id": case_id, "template": template.code, "purpose": purpose, "roles": roles}
    return Answer(body, released, withheld, [f"{template.roles[r].subject}:{k}"
                                             for r, k in keys.items()])


NOT_APPLICABLE = {"status": "not_applicable"}  # shared by every answer: never modified


@dataclass(frozen=True)
class _RolePlan:
    fields: list[tuple]  # (field code, golden field, withheld envelope or None), in form order
    released: list[str]  # "role.code" of the fields released / withheld
    withheld: list[str]


_PLANS: dict[tuple, list] = {}  # the list and the templates do not change while a process runs


def _plan(cat: Catalog, template: Template, consumer: str, purpose: str) -> list:
    """[(role, _RolePlan)] for what this consumer may receive for this purpose."""
    key = (id(cat), id(template), consumer, purpose)
    if key not in _PLANS:
        plans = []
        for role, spec in template.roles.items():
            reasons = [(f, release(cat, f, consumer, purpose)) for f in spec.fields]
            plans.append((role, _RolePlan(
                fields=[(f.code, f.golden, {"status": "withheld", "reason": r} if r else None)
                        for f, r in reasons],
                released=[f"{role}.{f.code}" for f, r in reasons if not r],
                withheld=[f"{role}.{f.code}" for f, r in reasons if r])))
        _PLANS[key] = plans
    return _PLANS[key]
