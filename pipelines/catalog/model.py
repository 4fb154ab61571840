"""The responsibility list (政务数据共享责任清单) loaded from catalogs/ into typed, frozen models.

The YAML files are the one source of truth; this module only interprets them. A malformed file fails
at load with `CatalogError` naming the file, the entry and the problem, so a reviewer can fix the data
without reading code.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from pipelines import paths
from pipelines.settings import Settings

CATALOG_DIR = paths.CATALOGS

FieldType = Literal["string", "date", "datetime", "yearmonth", "decimal", "integer"]
SharingType = Literal["U", "C", "N"]
Delivery = Literal["api", "bulk"]
Cycle = Literal["realtime", "daily", "weekly", "monthly", "quarterly", "halfyearly", "yearly"]


class CatalogError(ValueError):
    """A catalogue file is malformed. The message names file, entry and problem."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Sharing(_Frozen):
    """Sharing attribute: U 无条件, C 有条件 (consumers and purposes allowed), N 不予共享 (with basis)."""

    type: SharingType
    consumers: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()
    basis: str | None = None

    @model_validator(mode="after")
    def _conditions_fit_type(self) -> Sharing:
        if self.type == "C" and not (self.consumers and self.purposes):
            raise ValueError("sharing type C needs both `consumers` and `purposes`")
        if self.type != "C" and (self.consumers or self.purposes):
            raise ValueError(f"sharing type {self.type} takes no consumers/purposes (only C does)")
        return self

    def allows(self, consumer: str, purpose: str) -> bool:
        if self.type == "U":
            return True
        if self.type == "N":
            return False
        return consumer in self.consumers and purpose in self.purposes


class Field(_Frozen):
    code: str
    name_zh: str
    name_en: str
    type: FieldType
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    required: bool = False
    code_table: str | None = None
    rule: str | None = None  # a named contract rule: NAME or NAME(FIELD[=VALUE]), quality/contracts.yaml
    may_be_future: bool = False  # e.g. a validity end date: exempt from the not-in-the-future rule
    sharing: Sharing | None = None  # None: the resource default applies

    @model_validator(mode="after")
    def _decimal_has_precision(self) -> Field:
        if self.type == "decimal" and (self.precision is None or self.scale is None):
            raise ValueError(f"field {self.code}: decimal needs `precision` and `scale`")
        return self

    @property
    def duckdb_type(self) -> str:
        return {
            "string": "VARCHAR",
            "date": "DATE",
            "datetime": "TIMESTAMP",
            "yearmonth": "VARCHAR",
            "integer": "BIGINT",
            "decimal": f"DECIMAL({self.precision},{self.scale})",
        }[self.type]


class Backflow(_Frozen):
    """How the resource flows back: `incremental` change records (CZLX I/U/D), with an optional
    periodic full snapshot; or `full` (every delivery is a complete snapshot)."""

    mode: Literal["incremental", "full"]
    full_snapshot: Cycle | None = None


class Resource(_Frozen):
    code: str
    name_zh: str
    name_en: str
    provider: str
    source_system: str
    delivery: Delivery
    update_cycle: Cycle
    backflow: Backflow
    primary_key: tuple[str, ...]
    sharing: Sharing
    fields: tuple[Field, ...]

    @field_validator("code")
    @classmethod
    def _upper_code(cls, v: str) -> str:
        if v != v.upper():
            raise ValueError(f"resource code {v!r} must be upper case")
        return v

    @model_validator(mode="after")
    def _keys_are_declared(self) -> Resource:
        codes = [f.code for f in self.fields]
        dupes = {c for c in codes if codes.count(c) > 1}
        if dupes:
            raise ValueError(f"fields declared twice: {sorted(dupes)}")
        missing = [k for k in self.primary_key if k not in codes]
        if missing:
            raise ValueError(f"primary_key names undeclared fields {missing}")
        for k in self.primary_key:
            f = self.field(k)
            if self.sharing_of(f).type == "N":
                raise ValueError(f"primary key field {k} cannot be sharing type N")
        return self

    @property
    def key(self) -> str:
        """Asset-friendly lower-case name: `ps_pop_basic`."""
        return self.code.lower()

    def field(self, code: str) -> Field:
        for f in self.fields:
            if f.code == code:
                return f
        raise KeyError(f"{self.code} has no field {code}")

    def sharing_of(self, f: Field) -> Sharing:
        return f.sharing or self.sharing

    @property
    def stored_fields(self) -> tuple[Field, ...]:
        """Declared fields the hub may store: everything but sharing type N (never reaches disk)."""
        return tuple(f for f in self.fields if self.sharing_of(f).type != "N")

    @property
    def forbidden_fields(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.fields if self.sharing_of(f).type == "N")


class CodeTable(_Frozen):
    code: str
    name_zh: str
    standard: str | None = None
    values: dict[str, str]
    variants: dict[str, str] = {}
    valid_for: dict[str, tuple[str, ...]] = {}


class Party(_Frozen):
    code: str
    name_zh: str
    name_en: str


class Node(_Frozen):
    code: str
    name_zh: str
    name_en: str


class Catalog(_Frozen):
    node: Node
    providers: tuple[Party, ...]
    consumers: tuple[Party, ...]
    purposes: tuple[Party, ...]
    standard_fields: tuple[Field, ...]
    code_tables: dict[str, CodeTable]
    resources: dict[str, Resource]

    def resource(self, code: str) -> Resource:
        try:
            return self.resources[code.upper()]
        except KeyError:
            raise KeyError(
                f"unknown resource {code!r}; the responsibility list declares {sorted(self.resources)}"
            ) from None


def _read_yaml(path: Path):
    try:
        with path.open(encoding="utf-8") as fh:  # a stream, so YAML errors name the file and line
            return yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as e:
        raise CatalogError(f"{path}: cannot read YAML: {e}") from e


def _build(model, data, path: Path, entry: str):
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{_loc(err['loc'], data)}: {err['msg']}" for err in e.errors())
        raise CatalogError(f"{path}: entry {entry}: {problems}") from None


def _loc(loc: tuple, data) -> str:
    """Pydantic's error location with list entries named by their code: fields[MZDM].sharing."""
    out, node = "", data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            node = node[part]
            code = node.get("code") if isinstance(node, dict) else None
            out += f"[{code}]" if code else f"[#{part + 1}]"
        else:
            node = node.get(part) if isinstance(node, dict) else None
            out += f".{part}" if out else str(part)
    return out or "(entry)"


def _build_list(model, path: Path) -> tuple:
    data = _read_yaml(path)
    if not isinstance(data, list):
        raise CatalogError(f"{path}: expected a list of entries, got {type(data).__name__}")
    return tuple(
        _build(model, d, path, f"#{i + 1} ({d.get('code', '?') if isinstance(d, dict) else '?'})")
        for i, d in enumerate(data)
    )


def load_catalog(root: Path | str = CATALOG_DIR, node: str | None = None) -> Catalog:
    """Load and cross-check the whole responsibility list under `root`, as the node `node`
    (default: HUILIU_NODE) holds it.

    The list under `root` is the base node's (catalogs/node.yaml). Another node's list is that
    base with its own differences in `root/nodes/<code>/`: its node.yaml, and in grants.yaml the
    fields it shares otherwise ({resource: {field: sharing}}), so each node's list is complete
    and nothing common to all of them is written twice."""
    root = Path(root)
    overlay = root / "nodes" / (node or _configured_node())
    if not (overlay / "node.yaml").is_file():
        overlay = root
    node = _build(Node, _read_yaml(overlay / "node.yaml"), overlay / "node.yaml", "node")
    providers = _build_list(Party, root / "providers.yaml")
    consumers = _build_list(Party, root / "consumers.yaml")
    purposes = _build_list(Party, root / "purposes.yaml")
    standard_fields = _build_list(Field, root / "standard_fields.yaml")

    code_tables: dict[str, CodeTable] = {}
    for p in sorted((root / "code_tables").glob("*.yaml")):
        t = _build(CodeTable, _read_yaml(p), p, p.stem)
        if t.code != p.stem:
            raise CatalogError(f"{p}: entry {t.code}: file name must equal the table code")
        code_tables[t.code] = t

    resources: dict[str, Resource] = {}
    for p in sorted((root / "resources").glob("*.yaml")):
        r = _build(Resource, _read_yaml(p), p, p.stem)
        if r.code != p.stem:
            raise CatalogError(f"{p}: entry {r.code}: file name must equal the resource code")
        resources[r.code] = r
    if (overlay / GRANTS).is_file():
        resources = _with_grants(resources, overlay / GRANTS)

    _cross_check(root, providers, consumers, purposes, code_tables, resources)
    return Catalog(node=node, providers=providers, consumers=consumers, purposes=purposes,
                   standard_fields=standard_fields, code_tables=code_tables, resources=resources)


GRANTS = "grants.yaml"


def _configured_node() -> str:
    return Settings().node


def _with_grants(resources: dict[str, Resource], path: Path) -> dict[str, Resource]:
    """The resources with the node's own sharing of the fields `path` names."""
    data = _read_yaml(path) or {}
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected {{resource: {{field: sharing}}}}")
    out = dict(resources)
    for code, fields in data.items():
        if code not in out or not isinstance(fields, dict):
            raise CatalogError(f"{path}: entry {code}: not a resource of the list, or not a "
                               "mapping of field: sharing")
        r = out[code]
        known = {f.code for f in r.fields}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise CatalogError(f"{path}: entry {code}: no fields {unknown} in {code}")
        new = {f: _build(Sharing, s, path, f"{code}.{f}") for f, s in fields.items()}
        out[code] = _build(Resource, {**r.model_dump(), "fields": [
            {**f.model_dump(), "sharing": new[f.code].model_dump()} if f.code in new
            else f.model_dump() for f in r.fields]}, path, code)
    return out


def _cross_check(root, providers, consumers, purposes, code_tables, resources) -> None:
    provider_codes = {p.code for p in providers}
    consumer_codes = {c.code for c in consumers}
    purpose_codes = {p.code for p in purposes}
    table_codes = set(code_tables) | {"DIVISION"}  # DIVISION is the versioned divisions.csv
    for r in resources.values():
        where = f"{root / 'resources' / (r.code + '.yaml')}: entry {r.code}"
        if r.provider not in provider_codes:
            raise CatalogError(f"{where}: provider {r.provider!r} is not in providers.yaml")
        shares = [("(resource)", r.sharing)] + [(f.code, f.sharing) for f in r.fields if f.sharing]
        for owner, s in shares:
            bad_c = sorted(set(s.consumers) - consumer_codes)
            bad_p = sorted(set(s.purposes) - purpose_codes)
            if bad_c:
                raise CatalogError(f"{where}: field {owner}: unknown consumers {bad_c}")
            if bad_p:
                raise CatalogError(f"{where}: field {owner}: unknown purposes {bad_p}")
        for f in r.fields:
            if f.code_table and f.code_table not in table_codes:
                raise CatalogError(f"{where}: field {f.code}: unknown code_table {f.code_table!r}")


@functools.cache
def catalog() -> Catalog:
    """The catalogue shipped in this repository as this node holds it, loaded once per process."""
    return load_catalog(CATALOG_DIR)
