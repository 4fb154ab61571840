"""Prefill answers: per role and field an envelope that says what the hub knows and may release.

status: available (value, source, as-of, confidence, disputed, conflict) | unavailable (no source
the consumer may receive holds a value) | withheld (no source of the field may be released to the
consumer for this purpose: a reason code and nothing else — not the value, its presence, length
or status) | not_applicable (the role was not asked for). The value is the best candidate among
the sources the list shares with the consumer for the purpose (entitlement.py).

A role of which the consumer may receive no field is answered `withheld` without looking the
subject up: not even whether the node knows it, nor its entity id, is released.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from pipelines.catalog.model import Catalog
from pipelines.catalog.identifiers import is_valid_citizen_id, is_valid_uscc, normalize_citizen_id
from pipelines.serving.entitlement import release
from pipelines.serving.store import Store
from pipelines.serving.templates import Template


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


CASE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def subject_key(kind: str, raw: str) -> str | None:
    """The store's key for a subject as given (citizen ID or USCC), or None if not valid."""
    n = normalize_citizen_id(raw or "")
    if kind == "person":
        return n if is_valid_citizen_id(n) else None
    return n if is_valid_uscc(n) else None


def prefill(store: Store, cat: Catalog, template: Template, consumer: str, purpose: str,
            case_id: str, subjects: dict[str, str], elsewhere: frozenset[str] = frozenset()
            ) -> Answer:
    """The answer for a case. Roles in `elsewhere` (subjects another node holds) are checked
    like the rest but not looked up: they are answered {"status": "remote"} for the caller to
    fill from the other node's answer."""
    bad = []
    if not isinstance(case_id, str) or not CASE_ID.fullmatch(case_id):
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
    plans = _plan(cat, template, consumer, purpose)
    by_kind: dict[str, list[str]] = {}
    for role, k in keys.items():
        if plans[role].released and role not in elsewhere:
            by_kind.setdefault(template.roles[role].subject, []).append(k)
    found = {kind: store.entities(kind, ks) for kind, ks in by_kind.items()}
    entities = {}
    for role, k in keys.items():
        if not plans[role].released or role in elsewhere:
            continue
        kind = template.roles[role].subject
        entity = found[kind].get(k)
        if entity is None:
            raise RequestError(404, "unknown_subject", f"no {kind} with that key is known to "
                               "this node", [f"subjects.{role}"])
        entities[role] = entity
    roles, released, withheld = {}, [], []
    for role, plan in plans.items():
        if role not in keys:
            roles[role] = NOT_APPLICABLE
            continue
        if role in elsewhere:
            roles[role] = REMOTE
            continue
        entity = entities.get(role)
        if entity is None:  # nothing of this role may be released to the consumer
            roles[role] = plan.nothing_released
        else:
            roles[role] = {"status": "found", "entity_id": entity.entity_id,
                           "fields": entity.envelopes(plan.fields)}
        released += plan.released
        withheld += plan.withheld
    body = {"case_id": case_id, "template": template.code, "purpose": purpose, "roles": roles}
    return Answer(body, released, withheld, [f"{template.roles[r].subject}:{k}"
                                             for r, k in keys.items()])


NOT_APPLICABLE = {"status": "not_applicable"}  # shared by every answer: never modified
REMOTE = {"status": "remote"}  # replaced by the caller with the other node's answer


@dataclass(frozen=True)
class _RolePlan:
    # (field code, golden field, withheld envelope or None, sources it may come from), form order
    fields: list[tuple]
    released: list[str]  # "role.code" of the fields released / withheld
    withheld: list[str]
    nothing_released: dict  # the role's answer when no field is released: the reasons alone


# the list and the templates do not change while a process runs; bounded: callers pass an
# authenticated consumer and a purpose of the list
_PLANS: dict[tuple, dict[str, _RolePlan]] = {}


def _plan(cat: Catalog, template: Template, consumer: str, purpose: str
          ) -> dict[str, _RolePlan]:
    """{role: _RolePlan} for what this consumer may receive for this purpose."""
    key = (id(cat), id(template), consumer, purpose)
    if key not in _PLANS:
        plans = {}
        for role, spec in template.roles.items():
            decided = [(f, release(cat, spec.subject, f.golden, consumer, purpose))
                       for f in spec.fields]
            fields = [(f.code, f.golden,
                       {"status": "withheld", "reason": r.reason} if r.reason else None,
                       r.resources) for f, r in decided]
            plans[role] = _RolePlan(
                fields=fields,
                released=[f"{role}.{f.code}" for f, r in decided if not r.reason],
                withheld=[f"{role}.{f.code}" for f, r in decided if r.reason],
                nothing_released={"status": "withheld",
                                  "fields": {code: w for code, _, w, _ in fields}})
        _PLANS[key] = plans
    return _PLANS[key]
