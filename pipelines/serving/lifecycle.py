"""The life-cycle lists (catalogs/lifecycle): the person's and the enterprise's master lists
(总体清单: stages, the affairs under each, lead and cooperating departments, the 一件事 template
the hub serves an affair with), the local and sector lists that add or adjust affairs
(地方/行业特色事项清单; each affair says which list it came from), and the 一类事 bundles.

An affair's template decides what is released (its departments, its purpose); a list can name
more cooperating departments than the template, and the page shows both. A list that names an
unknown department, template, stage or affair stops the load naming it."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from pipelines import paths
from pipelines.catalog.model import Catalog
from pipelines.serving.templates import Template

LIFECYCLE = paths.CATALOGS / "lifecycle"
MASTER_LISTS = ("person.yaml", "enterprise.yaml")


class LifecycleError(ValueError):
    """A life-cycle list or bundle cannot be used; the message names file and entry."""


@dataclass(frozen=True)
class Affair:
    code: str
    name_zh: str
    name_en: str
    lead: str
    cooperating: tuple[str, ...]
    template: str | None
    source: str  # the list it comes from
    adjusted_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stage:
    code: str
    name_zh: str
    name_en: str
    affairs: tuple[Affair, ...]


@dataclass(frozen=True)
class LifecycleList:
    code: str
    name_zh: str
    name_en: str
    source: str
    stages: tuple[Stage, ...]


@dataclass(frozen=True)
class BundleRole:
    name_zh: str
    name_en: str
    subject: str
    fills: dict[str, str]  # template code -> its role


@dataclass(frozen=True)
class Bundle:
    code: str
    name_zh: str
    name_en: str
    list: str
    stage: str
    roles: dict[str, BundleRole]

    @property
    def templates(self) -> list[str]:
        return sorted({t for r in self.roles.values() for t in r.fills})


def _read(path: Path):
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise LifecycleError(f"{path}: cannot read: {e}") from None


def _affair(d: dict, source: str, where: str) -> Affair:
    try:
        return Affair(d["code"], d["name_zh"], d["name_en"], d["lead"],
                      tuple(d.get("cooperating", ())), d.get("template"), source)
    except KeyError as e:
        raise LifecycleError(f"{where}: missing {e.args[0]}") from None


def load_lists(cat: Catalog, templates: dict[str, Template], root: Path = LIFECYCLE
               ) -> dict[str, LifecycleList]:
    lists = {}
    for name in MASTER_LISTS:
        d = _read(root / name)
        stages = tuple(Stage(s["code"], s["name_zh"], s["name_en"], tuple(
            _affair(a, d["source"], f"{name} {s['code']}") for a in s.get("affairs", ())))
            for s in d["stages"])
        lists[d["code"]] = LifecycleList(d["code"], d["name_zh"], d["name_en"], d["source"],
                                         stages)
    for overlay in sorted((root / "local").glob("*.yaml")) + sorted(
            (root / "sector").glob("*.yaml")):
        lists = _apply(lists, _read(overlay), overlay.name)
    departments = {c.code for c in cat.consumers}
    for lst in lists.values():
        for stage in lst.stages:
            for a in stage.affairs:
                where = f"{lst.code} {stage.code} {a.code} (from {a.source})"
                unknown = sorted({a.lead, *a.cooperating} - departments)
                if unknown:
                    raise LifecycleError(f"{where}: unknown departments {unknown}")
                if a.template is not None:
                    t = templates.get(a.template)
                    if t is None:
                        raise LifecycleError(f"{where}: no template {a.template}")
                    if t.lead != a.lead:
                        raise LifecycleError(f"{where}: lead {a.lead}, but template "
                                             f"{a.template} is led by {t.lead}")
    return lists


def _apply(lists: dict[str, LifecycleList], d: dict, name: str) -> dict[str, LifecycleList]:
    """A local or sector list's additions and adjustments, each marked with its source."""
    out = dict(lists)
    for a in d.get("add", ()):
        lst, stage = _find_stage(out, a, name)
        added = _affair(a, d["source"], f"{name} add {a.get('code')}")
        out[lst.code] = replace(lst, stages=tuple(
            replace(s, affairs=s.affairs + (added,)) if s.code == stage.code else s
            for s in lst.stages))
    for a in d.get("adjust", ()):
        lst = out.get(a.get("list"))
        hit = lst and any(x.code == a.get("code") for s in lst.stages for x in s.affairs)
        if not hit:
            raise LifecycleError(f"{name} adjust {a.get('code')}: no such affair in "
                                 f"{a.get('list')}")
        changes = {k: tuple(v) if isinstance(v, list) else v for k, v in a.items()
                   if k in ("name_zh", "name_en", "lead", "cooperating", "template")}
        out[lst.code] = replace(lst, stages=tuple(replace(s, affairs=tuple(
            replace(x, **changes, adjusted_by=x.adjusted_by + (d["source"],))
            if x.code == a["code"] else x for x in s.affairs)) for s in lst.stages))
    return out


def _find_stage(lists, a: dict, name: str):
    lst = lists.get(a.get("list"))
    stage = next((s for s in lst.stages if s.code == a.get("stage")), None) if lst else None
    if stage is None:
        raise LifecycleError(f"{name} add {a.get('code')}: no stage {a.get('stage')} in "
                             f"list {a.get('list')}")
    return lst, stage


def load_bundles(lists: dict[str, LifecycleList], templates: dict[str, Template],
                 root: Path = LIFECYCLE) -> dict[str, Bundle]:
    out = {}
    for d in _read(root / "bundles.yaml") or ():
        where = f"bundles.yaml {d.get('code')}"
        roles = {r: BundleRole(s["name_zh"], s["name_en"], s["subject"], dict(s["fills"]))
                 for r, s in d["roles"].items()}
        b = Bundle(d["code"], d["name_zh"], d["name_en"], d["stage"]["list"],
                   d["stage"]["stage"], roles)
        _find_stage(lists, {"list": b.list, "stage": b.stage}, where)
        for r, role in roles.items():
            for code, trole in role.fills.items():
                t = templates.get(code)
                if t is None or trole not in t.roles:
                    raise LifecycleError(f"{where} {r}: no role {trole} in template {code}")
                if t.roles[trole].subject != role.subject:
                    raise LifecycleError(f"{where} {r}: {code}.{trole} is a "
                                         f"{t.roles[trole].subject}, not a {role.subject}")
        out[b.code] = b
    return out


@functools.cache
def lifecycle() -> tuple[dict[str, LifecycleList], dict[str, Bundle]]:
    """The shipped lists and bundles over this node's catalogue and templates."""
    from pipelines.catalog.model import catalog
    from pipelines.serving.templates import templates

    lists = load_lists(catalog(), templates())
    return lists, load_bundles(lists, templates())


def lifecycle_view(lists: dict[str, LifecycleList], bundles: dict[str, Bundle],
                   templates: dict[str, Template]) -> bytes:
    """The lists and bundles as the page shows them (JSON, no data): stage -> affairs ->
    departments -> per form field, the golden field and the providers whose resources feed it."""
    import orjson

    from pipelines.identity.golden import golden_config

    gold = golden_config()
    cat_resources = _resource_providers()

    def needs(code: str | None) -> list[dict]:
        if code is None:
            return []
        t = templates[code]
        return [{"role": role, "subject": spec.subject, "field": f.code, "label_zh": f.label_zh,
                 "label_en": f.label_en, "providers": sorted({
                     cat_resources[src["resource"]] for src in
                     gold[spec.subject][f.golden]["from"]})}
                for role, spec in t.roles.items() for f in spec.fields]

    return orjson.dumps({
        "lists": [{"code": lst.code, "name_zh": lst.name_zh, "name_en": lst.name_en,
                   "source": lst.source, "stages": [
                       {"code": s.code, "name_zh": s.name_zh, "name_en": s.name_en,
                        "affairs": [{**{k: getattr(a, k) for k in (
                            "code", "name_zh", "name_en", "lead", "template", "source")},
                            "cooperating": list(a.cooperating),
                            "adjusted_by": list(a.adjusted_by),
                            "template_departments": [templates[a.template].lead,
                                                     *templates[a.template].cooperating]
                            if a.template else [],
                            "needs": needs(a.template)} for a in s.affairs]}
                       for s in lst.stages]} for lst in lists.values()],
        "bundles": [{"code": b.code, "name_zh": b.name_zh, "name_en": b.name_en,
                     "list": b.list, "stage": b.stage, "templates": b.templates,
                     "roles": {r: {"name_zh": x.name_zh, "name_en": x.name_en,
                                   "subject": x.subject, "fills": x.fills}
                               for r, x in b.roles.items()}} for b in bundles.values()]})


def _resource_providers() -> dict[str, str]:
    from pipelines.catalog.model import catalog

    return {r.code: r.provider for r in catalog().resources.values()}
