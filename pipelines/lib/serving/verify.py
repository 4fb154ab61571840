"""Yes/no verification (catalogs/checks.yaml): the answer, its source and as-of, never
the value. Entitlement as for prefill: the consumer may ask a check when the list lets it receive
the check's source field for the stated purpose."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml

from pipelines.lib.catalog import Catalog
from pipelines.lib.serving.prefill import RequestError, subject_key
from pipelines.lib.serving.store import Store
from pipelines.lib.serving.templates import TemplateField, release

CHECKS = Path(__file__).resolve().parents[3] / "catalogs" / "checks.yaml"


@functools.cache
def checks() -> dict[str, dict]:
    return yaml.safe_load(CHECKS.read_text(encoding="utf-8"))


_RELEASE: dict[tuple, str | None] = {}  # entitlement per catalogue, check, consumer, purpose


def _release(cat: Catalog, check: str, consumer: str, purpose: str) -> str | None:
    key = (id(cat), check, consumer, purpose)
    if key not in _RELEASE:
        spec = checks()[check]
        _RELEASE[key] = release(cat, TemplateField(
            code=check, label_zh=spec["question_zh"], label_en=spec["question_en"],
            golden=spec["golden"], source=spec["source"]), consumer, purpose)
    return _RELEASE[key]


def verify_one(store: Store, cat: Catalog, consumer: str, purpose: str, check: str,
               subject: str, other: str | None = None, division: str | None = None) -> dict:
    spec = checks().get(check)
    if spec is None:
        raise RequestError(400, "invalid_request", "unknown check; known: "
                           + ", ".join(sorted(checks())), ["check"])
    bad = []
    key = subject_key(spec["subject"], subject if isinstance(subject, str) else "")
    if key is None:
        bad.append("subject")
    other_key = None
    if spec.get("other"):
        other_key = subject_key(spec["other"], other if isinstance(other, str) else "")
        if other_key is None:
            bad.append("other")
    if spec.get("param") == "division" and not (
            isinstance(division, str) and re.fullmatch(r"\d{2}(\d{2}){0,2}", division)):
        bad.append("division")
    if bad:
        raise RequestError(400, "invalid_request", "fix the listed fields", bad)
    reason = _release(cat, check, consumer, purpose)
    if reason:
        return {"check": check, "status": "withheld", "reason": reason}
    found = store.entity(key)
    if found is None:
        return {"check": check, "status": "unknown_subject"}
    v = store.value(found[1], spec["golden"])
    if v is None or v["value"] in (None, ""):
        answer = False if check == "married_to" else None
    elif check == "alive":
        answer = v["value"] == "alive"
    elif check == "married_to":
        other_entity = store.entity(other_key)
        answer = other_entity is not None and v["value"] == other_entity[1]
    elif check == "hukou_in":
        answer = v["value"].startswith(division)
    else:
        answer = v["value"] in spec["dishonest_levels"]
    out = {"check": check, "status": "answered" if answer is not None else "unavailable",
           "answer": answer}
    if v is not None:
        out |= {"source": {"provider": v["provider"], "resource": v["resource"]},
                "as_of": v["as_of"], "disputed": v["disputed"], "conflict": v["in_conflict"]}
    return out
