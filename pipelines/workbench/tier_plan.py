"""What one analysts' tier holds, derived from the responsibility list and the masking file.

A tier is for one department and one purpose:
- `statistical` (purpose ANALYTICS): the fields the list grants the department for ANALYTICS (U, and
  C where it names both), with the masking file's masks; entity ids pseudonymised;
- `identified`: the fields the list grants the department for the purpose, in clear.
N fields are never stored. Golden values follow the source they came from
(`serving.entitlement.release`): a golden field appears only from sources whose fields the
department may receive, with the best such candidate as its value. Operational tables are the same
in every tier, masked as the masking file says.

The plan is pure data (schemas, tables, their SQL over the published snapshot attached as `snap`,
column comments): tier_build.py executes it, and tests read it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipelines.catalog.model import Catalog
from pipelines.identity.golden import golden_config
from pipelines.serving.entitlement import release
from pipelines.workbench.masking import Mask, Masking, load_masking

STATISTICAL, IDENTIFIED = "statistical", "identified"
SCHEMAS = ("cur", "gold", "hist", "ops", "meta")  # a tier's schemas, in name-resolution order
KINDS = (STATISTICAL, IDENTIFIED)
ANALYTICS = "ANALYTICS"
HIST_COLUMNS = ("_op", "_gxsj", "_valid_from", "_valid_to", "_is_current", "_batch_id",
                "_loaded_at", "_vid")
CUR_COLUMNS = ("_gxsj", "_batch_id")
_TECHNICAL = {
    "_op": "操作类型 operation (I/U/D)", "_gxsj": "更新时间 updated at (provider's GXSJ)",
    "_valid_from": "有效起 version valid from", "_valid_to": "有效止 version valid to",
    "_is_current": "当前版本 current version", "_batch_id": "批次 batch id",
    "_loaded_at": "入库时间 loaded at", "_vid": "版本号 version id (unique in the table)"}


class TierRefused(ValueError):
    """The list grants this department nothing for this purpose, or the tier does not fit it."""


@dataclass(frozen=True)
class Column:
    name: str
    sql: str  # the value, over the table's source
    comment: str
    sharing: str  # U | C | "" (technical column)
    mask: str  # "" when shown as stored
    name_zh: str = ""
    name_en: str = ""


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    comment: str
    columns: tuple[Column, ...]
    source: str  # FROM clause (over `snap.` for tables, the tier itself for views)
    group_by: str = ""
    view: bool = False

    @property
    def query(self) -> str:
        cols = ", ".join(f'{c.sql} AS "{c.name}"' for c in self.columns)
        return f"SELECT {cols} FROM {self.source}" + (f" GROUP BY {self.group_by}"
                                                      if self.group_by else "")


@dataclass(frozen=True)
class TierPlan:
    kind: str
    department: str
    purpose: str
    tables: tuple[Table, ...]

    @property
    def signature(self) -> str:
        """Equal for two departments whose tiers would hold the same data (one file serves both)."""
        text = "\n".join(f"{t.schema}.{t.name}:{t.query}" for t in self.tables)
        return hashlib.sha256(f"{self.kind}\n{text}".encode()).hexdigest()[:12]


def _comment(zh: str, en: str, sharing: str, mask: Mask | None) -> str:
    parts = [f"{zh} {en}".strip()]
    if sharing:
        parts.append({"U": "U 无条件共享", "C": "C 有条件共享"}[sharing])
    parts.append(f"mask: {mask.describe()}" if mask else "clear")
    return " · ".join(parts)


def _value(column: str, mask: Mask | None, source: str | None = None) -> str | None:
    return mask.sql(column, source) if mask else column


def _resource_tables(cat: Catalog, masking: Masking | None, dept: str, purpose: str
                     ) -> list[Table]:
    tables = []
    for code in cat.resources:
        r = cat.resource(code)
        granted = {f.code for f in r.stored_fields if r.sharing_of(f).allows(dept, purpose)}
        cols = []
        for f in r.stored_fields:
            mask = masking.of_field(code, f.code) if masking else None
            if f.code not in granted or (mask and mask.source and mask.source not in granted):
                continue
            value = _value(f'"{f.code}"', mask, f'"{mask.source}"' if mask else None)
            if value is not None:
                sharing = r.sharing_of(f).type
                cols.append(Column(f.code, value, _comment(f.name_zh, f.name_en, sharing, mask),
                                   sharing, mask.describe() if mask else "", f.name_zh, f.name_en))
        if not cols:
            continue
        comment = f"{r.name_zh} {r.name_en} ({r.provider} · {r.code})"
        tech = [Column(c, c, _TECHNICAL[c], "", "") for c in HIST_COLUMNS]
        tables.append(Table("hist", r.key, f"{comment}: every version", (*cols, *tech),
                            f"snap.hist.{r.key}"))
        cur = [Column(c.name, f'"{c.name}"', c.comment, c.sharing, c.mask, c.name_zh, c.name_en)
               for c in cols] + [Column(c, c, _TECHNICAL[c], "", "") for c in CUR_COLUMNS]
        tables.append(Table("cur", r.key, f"{comment}: current records", tuple(cur),
                            f"hist.{r.key} WHERE _is_current AND _op <> 'D'", view=True))
    return tables


def _golden_tables(cat: Catalog, masking: Masking | None, dept: str, purpose: str
                   ) -> list[Table]:
    tables = []
    for kind, fields in golden_config().items():
        released = {f: release(cat, kind, f, dept, purpose).resources for f in fields}
        released = {f: sorted(rs) for f, rs in released.items() if rs}
        if not released:
            continue
        # the best candidate among the sources the department may receive, per field
        picks = " OR ".join(
            f"(field = '{f}' AND resource IN ({', '.join(repr(r) for r in rs)}))"
            for f, rs in released.items())
        source = (f"(SELECT entity_id, field, arg_min(value, rank) AS value FROM "
                  f"snap.gold.field_values WHERE kind = '{kind}' AND valid_to IS NULL AND "
                  f"({picks}) GROUP BY entity_id, field)")
        id_mask = masking.keys.get("entity_id") if masking else None
        cols = [Column("entity_id", _value("entity_id", id_mask),
                       _comment("实体编号", "entity id", "", id_mask), "",
                       id_mask.describe() if id_mask else "", "实体编号", "entity id")]
        for f in fields:
            if f not in released:
                continue
            mask = masking.of_golden(kind, f) if masking else None
            if mask and mask.source and mask.source not in released:
                continue
            raw = f"max(value) FILTER (WHERE field = '{f}')"
            other = f"max(value) FILTER (WHERE field = '{mask.source}')" if mask else None
            value = _value(raw, mask, other)
            if value is not None:
                sources = ", ".join(released[f])
                cols.append(Column(f, value, _comment("黄金记录", f"golden {f} from {sources}",
                                                      "", mask), "",
                                   mask.describe() if mask else "", "", f))
        tables.append(Table("gold", kind, f"黄金记录 golden {kind} records: the best value each "
                            "field has from the sources this tier may show", tuple(cols), source,
                            group_by="entity_id"))
    return tables


def _ops_tables(masking: Masking, columns_of: Callable[[str, str], Sequence[str]],
                resources: Sequence[str]) -> list[Table]:
    """The operational tables, each limited to the resources the tier shows records of (a
    department learns nothing here about deliveries or objections of data it may not see)."""
    shown = ", ".join(f"'{r}'" for r in sorted(resources)) or "NULL"
    tables = []
    for name, masks in masking.ops.items():
        cols = []
        present = columns_of("ops", name)
        for c in present:
            mask = masks.get(c) or (masking.keys.get(c) if c == "entity_id" else None)
            value = _value(f'"{c}"', mask)
            if value is not None:
                cols.append(Column(c, value, _comment("运行数据", f"ops {c}", "", mask), "",
                                   mask.describe() if mask else ""))
        if cols:  # (a snapshot of an older version may lack one)
            where = f" WHERE resource IN ({shown})" if "resource" in present else ""
            tables.append(Table("ops", name, f"运行数据 operations: {name}, of the resources "
                                "this tier shows", tuple(cols), f"snap.ops.{name}{where}"))
    return tables


def plan_tier(cat: Catalog, kind: str, department: str, purpose: str,
              columns_of: Callable[[str, str], Sequence[str]]) -> TierPlan:
    """The tier of `kind` for a department and purpose; `columns_of(schema, table)` names the
    published snapshot's columns (for the operational tables, which the list does not declare)."""
    if kind not in KINDS:
        raise TierRefused(f"no tier {kind!r}: the tiers are {', '.join(KINDS)}")
    if kind == STATISTICAL and purpose != ANALYTICS:
        raise TierRefused(f"the statistical tier is for purpose {ANALYTICS}, not {purpose}")
    if kind == IDENTIFIED and purpose == ANALYTICS:
        raise TierRefused(f"{ANALYTICS} is served by the statistical tier (pseudonymised), not "
                          "with names in clear")
    if department not in {c.code for c in cat.consumers}:
        raise TierRefused(f"{department} is not a consumer of the responsibility list")
    if purpose not in {p.code for p in cat.purposes}:
        raise TierRefused(f"{purpose} is not a purpose of the responsibility list")
    masking = load_masking(cat)
    masks = masking if kind == STATISTICAL else None
    tables = (_resource_tables(cat, masks, department, purpose)
              + _golden_tables(cat, masks, department, purpose))
    if not tables:
        raise TierRefused(f"the responsibility list grants {department} no field for {purpose}")
    resources = [t.name.upper() for t in tables if t.schema == "hist"]  # it has records of
    return TierPlan(kind, department, purpose,
                    tuple(tables + _ops_tables(masking, columns_of, resources)))
