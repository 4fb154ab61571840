"""Life-event templates (catalogs/templates/*.yaml): roles and form fields, each a golden field.

What a consumer receives of a form field is decided per source of its golden field
(entitlement.py), not by the template.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from pipelines import paths
from pipelines.catalog.model import Catalog, catalog
from pipelines.identity.golden import golden_config

TEMPLATE_DIR = paths.CATALOGS / "templates"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TemplateField(_Frozen):
    code: str
    label_zh: str
    label_en: str
    golden: str  # a field of catalogs/identity/golden.yaml


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
                if f.golden not in golden.get(role.subject, {}):
                    problems.append(f"{rname}.{f.code}: no golden field {role.subject}.{f.golden}")
        if problems:
            raise TemplateError(f"{path.name}: " + "; ".join(problems))
        out[t.code] = t
    return out


@functools.cache
def templates() -> dict[str, Template]:
    return load_templates()
