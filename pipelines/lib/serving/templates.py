"""Life-event templates (catalogs/templates/*.yaml) and what a consumer may receive from them.

A template field is released to a consumer for a purpose exactly when the responsibility list's
sharing condition on its source field allows that consumer and purpose. Anything else is withheld
with a reason code; the reason never depends on the data (so it cannot leak a value's presence).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from pipelines.lib.catalog import Catalog, catalog
from pipelines.lib.identity.golden import golden_config

TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "catalogs" / "templates"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TemplateField(_Frozen):
    code: str
    label_zh: str
    label_en: str
    golden: str  # a field of catalogs/identity/golden.yaml
    source: str  # RESOURCE.FIELD whose sharing condition decides release

    @property
    def resource(self) -> str:
        return self.source.split(".", 1)[0]

    @property
    def field(self) -> str:
        return self.source.split(".", 1)[1]


class Role(_Frozen):
    name_zh: str
    name_en: str
    subject: Literal["person", "enterprise"]
    fields: tuple[TemplateField, ...]


class Template(_Frozen):
    code: str
    name_zh: str
    name_en: str
    lead: str
    cooperating: tuple[str, ...] = ()
    roles: dict[str, Role]

    @model_validator(mode="after")
    def _unique_field_codes(self) -> Template:
        for name, role in self.roles.items():
            codes = [f.code for f in role.fields]
            if len(codes) != len(set(codes)):
                raise ValueError(f"role {name}: field codes repeat")
        return self


class TemplateError(ValueError):
    pass


def load_templates(root: Path = TEMPLATE_DIR, cat: Catalog | None = None) -> dict[str, Template]:
    cat = cat or catalog()
    consumers = {c.code for c in cat.consumers}
    purposes = {p.code for p in cat.purposes}
    golden = golden_config()
    out: dict[str, Template] = {}
    for path in sorted(root.glob("*.yaml")):
        try:
            t = Template.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except Exception as e:
            raise TemplateError(f"{path.name}: {e}") from e
        problems = []
        if t.code != path.stem:
            problems.append("code must equal the file name")
        if t.code not in purposes:
            problems.append(f"code {t.code} is not a purpose in catalogs/purposes.yaml")
        for dept in (t.lead, *t.cooperating):
            if dept not in consumers:
                problems.append(f"department {dept} is not in catalogs/consumers.yaml")
        for rname, role in t.roles.items():
            for f in role.fields:
                sources = golden.get(role.subject, {}).get(f.golden)
                if sources is None:
                    problems.append(f"{rname}.{f.code}: no golden field {role.subject}.{f.golden}")
                    continue
                if f.resource not in cat.resources:
                    problems.append(f"{rname}.{f.code}: unknown resource {f.resource}")
                    continue
                try:
                    cat.resource(f.resource).field(f.field)
                except KeyError:
                    problems.append(f"{rname}.{f.code}: {f.resource} has no field {f.field}")
                if f.resource not in {s["resource"] for s in sources["from"]}:
                    problems.append(f"{rname}.{f.code}: {f.resource} is not a source of "
                                    f"golden field {f.golden}")
        if problems:
            raise TemplateError(f"{path.name}: " + "; ".join(problems))
        out[t.code] = t
    return out


@functools.cache
def templates() -> dict[str, Template]:
    return load_templates()


_RELEASE: dict[tuple, str | None] = {}  # the list does not change while a process runs


def release(cat: Catalog, f: TemplateField, consumer: str, purpose: str) -> str | None:
    """None when the consumer may receive the field for the purpose, else the reason code."""
    key = (id(cat), f.source, consumer, purpose)
    if key not in _RELEASE:
        _RELEASE[key] = _release(cat, f, consumer, purpose)
    return _RELEASE[key]


def _release(cat: Catalog, f: TemplateField, consumer: str, purpose: str) -> str | None:
    r = cat.resource(f.resource)
    sharing = r.sharing_of(r.field(f.field))
    if sharing.type == "N":
        return "NOT_SHAREABLE"
    if sharing.allows(consumer, purpose):
        return None
    if consumer not in sharing.consumers:
        return "CONSUMER_NOT_ENTITLED"
    return "PURPOSE_NOT_ENTITLED"
