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
SOURCE_MASKS = ("division_of", "sole_trader_of")  # masks that read another column of the row
_IDENTIFIER_RULES = ("GB11643",)  # a field under these rules is a person's identifier
# name_en forms of what may identify a person or a record of one: masked, or listed as `clear`
_IDENTIFYING_NAMES = ("citizen_id", "_no", "_name")


_SOLE_TRADER = "left({uscc}, 2) = '92'"  # GB 32100: registration authority 9, type 2 (个体工商户)


@dataclass(frozen=True)
class Mask:
    kind: str  # one of SIMPLE_MASKS or SOURCE_MASKS
    source: str | None = None  # SOURCE_MASKS: the other column of the row it reads

    def describe(self) -> str:
        return f"{self.kind}({self.source})" if self.source else self.kind

    def sql(self, column: str, source: str | None = None) -> str | None:
        """The masked value of `column` (an SQL expression); `source` is the expression of the
        mask's source column (SOURCE_MASKS). None for `drop`."""
        if self.kind == "drop":
            return None
        if self.kind == "pseudonym":
            return f"pseudonym({column})"
        if self.kind == "sole_trader":
            return (f"CASE WHEN {_SOLE_TRADER.format(uscc=column)} THEN pseudonym({column}) "
                    f"ELSE {column} END")
        if self.kind == "sole_trader_of":  # a sole trader's name or codes stand for a person
            return (f"CASE WHEN {_SOLE_TRADER.format(uscc=source)} THEN pseudonym({column}) "
                    f"ELSE {column} END")
        if self.kind == "surname":
            return f"surname_mask({column})"
        if self.kind == "year_month":
            return f"strftime(TRY_CAST({column} AS DATE), '%Y-%m')"
        return source  # division_of: the division code beside it


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
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in SOURCE_MASKS:
        kind = next(iter(value))
        return Mask(kind, str(value[kind]))
    raise CatalogError(f"{MASKING_FILE.name}: {where}: unknown mask {value!r} (use one of "
                       f"{', '.join(SIMPLE_MASKS)}, {{division_of: FIELD}} or "
                       "{sole_trader_of: FIELD})")


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
    clear = data.get("clear") or {}
    for code in cat.resources:
        r = cat.resource(code)
        for f in r.stored_fields:
            identifies = (f.rule in _IDENTIFIER_RULES or f.name_en == "name"
                          or f.name_en.endswith(_IDENTIFYING_NAMES))
            if (identifies and f.code not in resources.get(code, {})
                    and f.code not in clear.get(code, {})):
                raise CatalogError(f"{MASKING_FILE.name}: {code}.{f.code} ({f.name_en}) may "
                                   "identify a person or a record of one: name its mask under "
                                   "`resources`, or list it under `clear` with the reason")
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
