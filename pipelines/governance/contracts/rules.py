"""The contract of each resource, compiled from the responsibility list plus quality/contracts.yaml.

A rule has an id (`<RESOURCE>.<FIELD>.<family>`), a field, a severity and threshold, a bilingual
reason, the GX expectation that judges it, and the SQL predicate selecting its failing rows (used to
quarantine exactly the rows GX counted). This module only interprets: which rules exist, their SQL
and thresholds are data in the catalogue and in quality/contracts.yaml.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import yaml

from pipelines import paths
from pipelines.catalog.model import Catalog, Field, Resource
from pipelines.catalog.sql_gen import ident

CONTRACTS_FILE = paths.QUALITY / "contracts.yaml"
RULE_REF = re.compile(r"^([A-Z0-9_]+)(?:\(([A-Z0-9_]+)(?:=([^)]*))?\))?$")
# The record's date for date-relative rules: when the provider last changed it (GXSJ).
RECORD_DATE = "CAST(coalesce(_gxsj, current_timestamp) AS DATE)"
BATCH = "__batch__"  # stands for the batch table in a rule's SQL (GX and the warehouse name it apart)


class ContractError(ValueError):
    """quality/contracts.yaml or a catalogue `rule:` is wrong; the message says where."""


@dataclass(frozen=True)
class Rule:
    rule_id: str
    resource: str
    field: str | None  # None: a batch-level rule
    family: str
    severity: str  # error | warn
    max_fail_rate: float
    min_rows: int  # the threshold applies to batches of at least this many rows
    kind: str  # not_null | in_set | max_length | sql | row_count
    reason_zh: str
    reason_en: str
    objection: bool = False  # fixing a failing record is the provider's job
    value_set: tuple[str, ...] = ()
    max_length: int | None = None
    sql: str | None = None  # kind sql: predicate true for a failing row
    min_count: int | None = None  # kind row_count: bounds of the batch's row count
    max_count: int | None = None

    def fail_where(self, table: str) -> str:
        """Predicate true for a failing row of the typed batch table named `table`."""
        return self.fail_sql.replace(BATCH, table)

    @property
    def fail_sql(self) -> str:
        """Predicate true for a failing row of the typed batch table (named BATCH)."""
        c = ident(self.field) if self.field else None
        match self.kind:
            case "not_null":
                return f"{c} IS NULL"
            case "in_set":
                return f"{c} IS NOT NULL AND {c} NOT IN ({_sql_list(self.value_set)})"
            case "max_length":
                return f"{c} IS NOT NULL AND length({c}) > {self.max_length}"
            case "sql":
                return self.sql
        raise ValueError(f"{self.rule_id}: a {self.kind} rule has no row predicate")

    @property
    def row_level(self) -> bool:
        return self.kind != "row_count"


def _sql_list(values) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


@functools.cache
def contracts_config() -> dict:
    return yaml.safe_load(CONTRACTS_FILE.read_text(encoding="utf-8"))


def _family(name: str) -> dict:
    fams = contracts_config()["families"]
    if name not in fams:
        raise ContractError(f"{CONTRACTS_FILE}: family {name!r} is used but not defined")
    return fams[name]


def _rule(r: Resource, f: Field | None, family: str, kind: str, zh: str, en: str, **kw) -> Rule:
    fam = _family(family)
    return Rule(f"{r.code}.{f.code if f else '*'}.{family}", r.code, f.code if f else None, family,
                fam["severity"], float(fam.get("max_fail_rate", 1.0)), int(fam.get("min_rows", 0)),
                kind, zh, en, objection=bool(fam.get("objection", False)), **kw)


def parse_rule_ref(text: str) -> tuple[str, str | None, str | None]:
    """'NAME', 'NAME(FIELD)' or 'NAME(FIELD=VALUE)' -> (name, field, value)."""
    m = RULE_REF.match(text.strip())
    if not m:
        raise ContractError(f"rule {text!r}: write NAME, NAME(FIELD) or NAME(FIELD=VALUE)")
    return m.group(1), m.group(2), m.group(3)


def _named(catalog: Catalog, r: Resource, f: Field, name: str, arg: str | None = None,
           value: str | None = None) -> Rule:
    spec = contracts_config()["rules"].get(name)
    where = f"{r.code}.{f.code}: rule {name}"
    if spec is None:
        raise ContractError(f"{where}: not defined in {CONTRACTS_FILE}")
    if "{a}" in spec["fail"] and arg is None:
        raise ContractError(f"{where}: needs an argument field, e.g. {name}(FIELD)")
    if arg is not None and arg not in {x.code for x in r.stored_fields}:
        raise ContractError(f"{where}: argument {arg!r} is not a stored field of {r.code}")
    table = catalog.code_tables.get(f.code_table) if f.code_table else None
    c = ident(f.code)
    subs = {"c": c, "a": ident(arg) if arg else "", "v": (value or "").replace("'", "''"),
            "date": RECORD_DATE, "norm_c": c, "valid_pairs": "[]", "valid_keys": "(NULL)"}
    if table is not None and table.variants:
        cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in table.variants.items())
        subs["norm_c"] = f"(CASE {c} {cases} ELSE {c} END)"
    if table is not None and table.valid_for:
        pairs = [f"{k}:{lv}" for k, levels in table.valid_for.items() for lv in levels]
        subs["valid_pairs"] = "[" + _sql_list(pairs) + "]"
        subs["valid_keys"] = "(" + _sql_list(table.valid_for) + ")"

    def fill(template: str) -> str:
        return re.sub(r"\{([a-z_]+)\}", lambda m: subs[m.group(1)], template)

    en = fill(spec["en"]).replace('"', "")
    return _rule(r, f, spec["family"], "sql", spec["zh"], en, sql=" ".join(fill(spec["fail"]).split()))


def compile_rules(catalog: Catalog, resource: Resource) -> list[Rule]:
    """The row-level rules of `resource` (batch-level ones need history: see `volume_rule`)."""
    rules: list[Rule] = []
    for f in resource.stored_fields:
        if f.required and f.code not in resource.primary_key:  # empty keys never reach here
            rules.append(_rule(resource, f, "required", "not_null", "必填字段为空",
                               "required field is empty"))
        if f.code_table and f.code_table in catalog.code_tables:
            t = catalog.code_tables[f.code_table]
            # Known variants (M/F, 57/58, one-digit marital codes) are not invalid: they are
            # normalised and flagged downstream, never silently replaced or dropped.
            rules.append(_rule(resource, f, "code_table", "in_set",
                               f"代码不在{t.name_zh}代码表({t.standard or t.code})中",
                               f"value not in code table {t.code} (nor a known variant)",
                               value_set=tuple(sorted({*t.values, *t.variants}))))
        if f.code_table == "DIVISION":
            rules.append(_named(catalog, resource, f, "DIVISION_AT_DATE"))
        name, arg, value = parse_rule_ref(f.rule) if f.rule else (None, None, None)
        identifier = name in ("GB11643", "GB32100", "CUSTOMS_CODE")
        if f.type == "string" and f.length and not identifier:  # identifiers: their own rule
            rules.append(_rule(resource, f, "length", "max_length", f"长度超过{f.length}",
                               f"longer than {f.length} characters", max_length=f.length))
        if f.type in ("date", "yearmonth") and not f.may_be_future:
            rules.append(_named(catalog, resource, f,
                                "NOT_FUTURE" if f.type == "date" else "NOT_FUTURE_MONTH"))
        if name:
            rules.append(_named(catalog, resource, f, name, arg, value))
    rules.append(_primary_key_rule(resource))
    return rules


def _primary_key_rule(r: Resource) -> Rule:
    """Two rows of one batch with the same key and update time but different content: the provider
    sent contradictory versions and neither can be said to be the later one."""
    k = ", ".join(ident(c) for c in r.primary_key)
    sql = (f"({k}, _gxsj) IN (SELECT ({k}, _gxsj) FROM {BATCH} GROUP BY ALL "
           f"HAVING count(DISTINCT _row_hash) > 1)")
    rule = _rule(r, None, "primary_key", "sql", "同一主键同一更新时间有多个不同版本",
                 "several different versions of one key with the same update time", sql=sql)
    return rule


def volume_rule(resource: Resource, mode: str, recent_counts: list[int],
                current_keys: int) -> Rule | None:
    """The batch-size rule for a batch of `mode`, from the resource's recent history."""
    cfg = contracts_config()["volume"]
    if mode == "full":
        if current_keys < int(cfg["full_min_keys"]):
            return None
        lo = int(current_keys * float(cfg["full_min_ratio"]))
        return _rule(resource, None, "snapshot_volume", "row_count",
                     f"全量快照行数低于现有记录数的{cfg['full_min_ratio']:.0%}",
                     f"full snapshot has fewer than {cfg['full_min_ratio']:.0%} of the "
                     f"{current_keys} current keys (would delete the rest)",
                     min_count=lo, max_count=None)
    history = sorted(recent_counts[-int(cfg["window"]):])
    if len(history) < int(cfg["min_history"]):
        return None
    median = history[len(history) // 2]
    lo, hi = int(median * float(cfg["min_ratio"])), int(median * float(cfg["max_ratio"])) + 1
    return _rule(resource, None, "volume", "row_count", "批次行数与近期批次相比异常",
                 f"batch size outside {lo}..{hi} rows (median of recent batches {median})",
                 min_count=lo, max_count=hi)
