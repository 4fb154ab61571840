"""The statistical tier's masks (catalogs/workbench/masking.yaml), checked against the catalogue.

The file names only the mask of fields that would identify someone; which fields exist and who may
see them come from the responsibility list. A mask is turned into a DuckDB SQL expression here,
over a column the tier reads from the published snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from pipelines import paths
from pipelines.catalog.model import Catalog, CatalogError
from pipelines.identity.golden import golden_config

MASKING_FILE = paths.CATALOGS / "workbench" / "masking.yaml"
SIMPLE_MASKS = ("pseudonym", "sole_trader", "surname", "year_month", "drop")
_IDENTIFIER_RULES = ("GB11643",)  # a field under these rules is a person's identifier
_IDENTIFIER_NAMES = ("citizen_id", "document_no")  # name_en endings of identifiers


@dataclass(frozen=True)
class Mask:
    kind: str  # one of SIMPLE_MASKS, or "division_of"
    source: str | None = None  # division_of: the column whose division code replaces the value

    def describe(self) -> str:
        return f"division_of({self.source})" if self.kind == "division_of" else self.kind

    def sql(self, column: str) -> str | None:
        """The masked value of `column` (a quoted SQL reference); None for `drop`."""
        if self.kind == "drop":
            return None
        if self.kind == "pseudonym":
            return f"pseudonym({column})"
        if self.kind == "sole_trader":
            return f"CASE WHEN left({column}, 2) = '92' THEN pseudonym({column}) ELSE {column} END"
        if self.kind == "surname":
            return f"surname_mask({column})"
        if self.kind == "year_month":
            return f"strftime(TRY_CAST({column} AS DATE), '%Y-%m')"
        return f'"{self.source}"'  # division_of: the division code column beside it


@dataclass(frozen=True)
class Masking:
    resources: dict[str, dict[str, Mask]]
    golden: dict[str, dict[str, Mask]]
    keys: dict[str, Mask]
    ops: dict[str, dict[str, Mask]]
    compound_surnames: tuple[str, ...]

    def of_field(self, resource: str, field: str) -> Mask | None:
        return self.resources.get(resource, {}).get(field)

    def of_golden(self, kind: str, field: str) -> Mask | None:
        return self.golden.get(kind, {}).get(field)


def _mask(value, where: str) -> Mask:
    if isinstance(value, str) and value in SIMPLE_MASKS:
        return Mask(value)
    if isinstance(value, dict) and list(value) == ["division_of"]:
        return Mask("division_of", str(value["division_of"]))
    raise CatalogError(f"{MASKING_FILE.name}: {where}: unknown mask {value!r} (use one of "
                       f"{', '.join(SIMPLE_MASKS)} or {{division_of: FIELD}})")


# loaded once per catalogue and file; the catalogue is kept with it, so its id is not reused
_LOADED: dict[tuple, tuple[Catalog, Masking]] = {}


def load_masking(cat: Catalog) -> Masking:
    """The masking file, checked: every name it uses exists, and no identifier is left clear."""
    key = (id(cat), MASKING_FILE)
    if key not in _LOADED:
        _LOADED[key] = (cat, _load(cat))
    return _LOADED[key][1]


def _load(cat: Catalog) -> Masking:
    data = yaml.safe_load(MASKING_FILE.read_text(encoding="utf-8"))
    resources: dict[str, dict[str, Mask]] = {}
    for code, fields in (data.get("resources") or {}).items():
        r = cat.resource(code)
        declared = {f.code for f in r.stored_fields}
        resources[code] = {}
        for field, value in fields.items():
            mask = _mask(value, f"{code}.{field}")
            for name in (field, mask.source):
                if name is not None and name not in declared:
                    raise CatalogError(f"{MASKING_FILE.name}: {code} stores no field {name}")
            resources[code][field] = mask
    for code in cat.resources:
        r = cat.resource(code)
        for f in r.stored_fields:
            identifies = f.rule in _IDENTIFIER_RULES or f.name_en.endswith(_IDENTIFIER_NAMES)
            if identifies and f.code not in resources.get(code, {}):
                raise CatalogError(f"{MASKING_FILE.name}: {code}.{f.code} ({f.name_en}) identifies "
                                   "a person and has no mask: name one under `resources`")
    config = golden_config()
    golden = {}
    for kind, fields in (data.get("golden") or {}).items():
        golden[kind] = {}
        for field, value in fields.items():
            mask = _mask(value, f"golden.{kind}.{field}")
            for name in (field, mask.source):
                if name is not None and name not in config.get(kind, {}):
                    raise CatalogError(f"{MASKING_FILE.name}: golden {kind} has no field {name}")
            golden[kind][field] = mask
    keys = {name: _mask(v, f"keys.{name}") for name, v in (data.get("keys") or {}).items()}
    ops = {table: {c: _mask(v, f"ops.{table}.{c}") for c, v in (cols or {}).items()}
           for table, cols in (data.get("ops") or {}).items()}
    return Masking(resources, golden, keys, ops, tuple(data.get("compound_surnames") or ()))
