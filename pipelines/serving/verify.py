"""Yes/no verification (catalogs/checks.yaml): the answer, its source and as-of, never
the value. Entitlement as for prefill: the answer is judged from the best candidate of the check's
golden field among the sources the list shares with the consumer for the stated purpose, and the
check is withheld when no source may be shared (a yes/no derived from a record releases it)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import yaml

from pipelines import paths
from pipelines.catalog.model import Catalog
from pipelines.serving.entitlement import Release, release
from pipelines.serving.prefill import RequestError, subject_key
from pipelines.serving.store import Store

CHECKS = paths.CATALOGS / "checks.yaml"


@functools.cache
def checks() -> dict[str, dict]:
    return yaml.safe_load(CHECKS.read_text(encoding="utf-8"))


def _release(cat: Catalog, check: str, consumer: str, purpose: str) -> Release:
    spec = checks()[check]
    return release(cat, spec["subject"], spec["golden"], consumer, purpose)


@dataclass(frozen=True)
class Check:
    """One well-formed check: which, about whom (store keys) and its parameter."""

    name: str
    spec: dict
    key: str
    other_key: str | None
    division: str | None

    @property
    def subjects(self) -> list[str]:
        """The subjects it names, as the audit log records them ("kind:key")."""
        out = [f"{self.spec['subject']}:{self.key}"]
        if self.other_key:
            out.append(f"{self.spec['other']}:{self.other_key}")
        return out


def parse_check(item) -> Check:
    """A check as the caller sent it ({check, subject, other?, division?}), or a 400."""
    if not isinstance(item, dict) or not isinstance(item.get("check"), str):
        raise RequestError(400, "invalid_request", "each check names `check` and `subject`",
                           ["check"])
    spec = checks().get(item["check"])
    if spec is None:
        raise RequestError(400, "invalid_request", "unknown check; known: "
                           + ", ".join(sorted(checks())), ["check"])
    bad = []
    subject, other, division = item.get("subject"), item.get("other"), item.get("division")
    key = subject_key(spec["subject"], subject if isinstance(subject, str) else "")
    if key is None:
        bad.append("subject")
    other_key = None
    if spec.get("other"):
        other_key = subject_key(spec["other"], other if isinstance(other, str) else "")
        if other_key is None:
            bad.append("other")
    if spec.get("param") == "division" and not (
            isinstance(division, str) and _DIVISION.fullmatch(division)):
        bad.append("division")
    if bad:
        raise RequestError(400, "invalid_request", "fix the listed fields", bad)
    return Check(item["check"], spec, key, other_key, division)


_DIVISION = re.compile(r"\d{2}(\d{2}){0,2}")


def answer(check: Check, cat: Catalog, consumer: str, purpose: str,
           found: tuple[str, dict | None] | None, other_entity_id: str | None) -> dict:
    """The answer to a parsed check, from the subject's (entity id, golden field from the sources
    the consumer may receive) as the store holds them (None: unknown subject) and the other
    subject's entity id, if any."""
    reason = _release(cat, check.name, consumer, purpose).reason
    if reason:
        return {"check": check.name, "status": "withheld", "reason": reason}
    if found is None:
        return {"check": check.name, "status": "unknown_subject"}
    v = found[1]
    if v is None or v["value"] in (None, ""):
        result = False if check.name == "married_to" else None
    elif check.name == "alive":
        result = v["value"] == "alive"
    elif check.name == "married_to":
        result = other_entity_id is not None and v["value"] == other_entity_id
    elif check.name == "hukou_in":
        result = v["value"].startswith(check.division)
    else:
        result = v["value"] in check.spec["dishonest_levels"]
    out = {"check": check.name, "status": "answered" if result is not None else "unavailable",
           "answer": result}
    if v is not None:
        out |= {"source": {"provider": v["provider"], "resource": v["resource"]},
                "as_of": v["as_of"], "disputed": v["disputed"], "conflict": v["in_conflict"]}
    return out


def verify_one(store: Store, cat: Catalog, consumer: str, purpose: str, item) -> tuple[dict, Check]:
    """One check (POST /v1/verify); a malformed one raises RequestError."""
    result = verify_many(store, cat, consumer, purpose, [item])[0]
    if isinstance(result, RequestError):
        raise result
    return result


def verify_many(store: Store, cat: Catalog, consumer: str, purpose: str,
                items: list) -> list[tuple[dict, Check] | RequestError]:
    """Many checks (a batch chunk), in order, with one store query per kind of subject and
    golden field asked about."""
    parsed: list[Check | RequestError] = []
    for item in items:
        try:
            parsed.append(parse_check(item))
        except RequestError as e:
            parsed.append(e)
    wanted: dict[tuple[str, str], set[str]] = {}
    for c in parsed:  # a withheld check looks nothing up: its answer says nothing of the subject
        if isinstance(c, Check) and not _release(cat, c.name, consumer, purpose).reason:
            wanted.setdefault((c.spec["subject"], c.spec["golden"]), set()).add(c.key)
            if c.other_key:  # the other subject: only its entity id is compared
                wanted.setdefault((c.spec["other"], c.spec["golden"]), set()).add(c.other_key)
    found = {(kind, field): store.field_of_many(
                 kind, sorted(keys), field, release(cat, kind, field, consumer, purpose).resources)
             for (kind, field), keys in wanted.items()}
    out = []
    for c in parsed:
        if isinstance(c, RequestError):
            out.append(c)
            continue
        at = found.get((c.spec["subject"], c.spec["golden"]), {})
        mine = at.get(c.key)
        other = (found.get((c.spec["other"], c.spec["golden"]), {}).get(c.other_key)
                 if c.other_key else None)
        out.append((answer(c, cat, consumer, purpose, mine, other[0] if other else None), c))
    return out
