"""一类事: one request for a bundle of templates (catalogs/lifecycle/bundles.yaml). The subjects
are asked once, by the bundle's roles; every form is its template's own prefill — for the
template's own purpose, released only if the caller is one of that template's departments — and a
value that several forms would show alike (same subject, same golden field, same value and
source) is given once under `shared`, the forms pointing to it."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.catalog.model import Catalog
from pipelines.serving.lifecycle import Bundle
from pipelines.serving.prefill import Answer, RequestError, prefill
from pipelines.serving.store import Store
from pipelines.serving.templates import Template


@dataclass
class BundleAnswer:
    body: dict
    forms: dict[str, Answer]  # per template answered: its own audit entry


def form_subjects(bundle: Bundle, code: str, subjects: dict) -> dict[str, str]:
    return {r.fills[code]: subjects[b] for b, r in bundle.roles.items()
            if code in r.fills and b in subjects}


def bundle_prefill(store: Store, cat: Catalog, templates: dict[str, Template], bundle: Bundle,
                   department: str, case_id: str, subjects: dict) -> BundleAnswer:
    unknown = sorted(set(subjects) - set(bundle.roles))
    if unknown or not subjects:
        raise RequestError(400, "invalid_request", "subjects are the bundle's roles: "
                           + ", ".join(bundle.roles), [f"subjects.{r}" for r in unknown]
                           or ["subjects"])
    forms: dict[str, dict] = {}
    answers: dict[str, Answer] = {}
    for code in bundle.templates:
        t = templates[code]
        if department not in (t.lead, *t.cooperating):
            forms[code] = {"status": "not_a_department_of_this_event",
                           "departments": [t.lead, *t.cooperating]}
            continue
        asked = form_subjects(bundle, code, subjects)
        if not asked:
            forms[code] = {"status": "not_applicable"}
            continue
        answers[code] = a = prefill(store, cat, t, department, code, case_id, asked)
        forms[code] = {"status": "answered", "purpose": code, "roles": a.body["roles"]}
    shared = _fill_once(bundle, templates, forms)
    return BundleAnswer({"case_id": case_id, "bundle": bundle.code, "shared": shared,
                         "forms": forms}, answers)


def _fill_once(bundle: Bundle, templates: dict[str, Template], forms: dict) -> dict:
    """Move values several forms hold alike to `shared`; the forms keep a reference."""
    seen: dict[tuple, list[tuple]] = {}
    for brole, r in bundle.roles.items():
        for code, trole in r.fills.items():
            form = forms.get(code, {})
            answer = (form.get("roles") or {}).get(trole) or {}
            if answer.get("status") != "found":
                continue
            for f in templates[code].roles[trole].fields:
                env = answer["fields"].get(f.code)
                if env and env.get("status") == "available":
                    key = (brole, f.golden, env["value"], env["source"].get("record_key"),
                           env["source"].get("resource"))
                    seen.setdefault(key, []).append((answer["fields"], f.code, env))
    shared = {}
    for (brole, golden, *_), places in seen.items():
        if len(places) < 2:
            continue
        ref = f"{brole}.{golden}"
        shared[ref] = places[0][2]
        for fields, code, _env in places:
            fields[code] = {"status": "shared", "ref": ref}
    return shared
