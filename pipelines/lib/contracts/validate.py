"""Run a resource's contract on one batch with Great Expectations, on an in-memory DuckDB.

The typed batch is registered as an Arrow table `batch` on GX's own connection (no copy, and no
contention with the warehouse writer). GX judges every rule and counts failures; the rule's SQL
predicate then selects exactly those rows for quarantine, and the two counts must agree.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import pyarrow as pa

from pipelines.lib.contracts import gx_duckdb
from pipelines.lib.contracts.reference import register_reference_tables
from pipelines.lib.contracts.rules import BATCH, Rule
from pipelines.lib.contracts.sql_macros import MACROS

log = logging.getLogger(__name__)
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
logging.getLogger("great_expectations").setLevel(logging.WARNING)  # one INFO line per context


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    checked: int  # rows judged (1 for a batch-level rule)
    failed: int
    observed: int | None = None  # batch-level rules: the value judged (e.g. the row count)
    expectation: str = ""  # the GX expectation type that judged it

    @property
    def fail_rate(self) -> float:
        return self.failed / self.checked if self.checked else 0.0

    @property
    def blocks_batch(self) -> bool:
        return (self.rule.severity == "error" and self.checked >= self.rule.min_rows
                and self.fail_rate > self.rule.max_fail_rate)


def _expectation(rule: Rule):
    import great_expectations.expectations as gxe

    from pipelines.lib.contracts.expectations import BY_FAMILY

    meta = {"rule_id": rule.rule_id, "field": rule.field, "severity": rule.severity}
    match rule.kind:
        case "not_null":
            return gxe.ExpectColumnValuesToNotBeNull(column=rule.field, meta=meta)
        case "in_set":
            return gxe.ExpectColumnValuesToBeInSet(column=rule.field, value_set=list(
                rule.value_set), meta=meta)
        case "max_length":
            return gxe.ExpectColumnValueLengthsToBeBetween(column=rule.field,
                                                           max_value=rule.max_length, meta=meta)
        case "row_count":
            return gxe.ExpectTableRowCountToBeBetween(min_value=rule.min_count,
                                                      max_value=rule.max_count, meta=meta)
        case _:
            # GX formats the query: escape the rule's braces, then name GX's batch placeholder
            where = rule.fail_sql.replace("{", "{{").replace("}", "}}").replace(BATCH, "{batch}")
            cls = BY_FAMILY.get(rule.family, gxe.UnexpectedRowsExpectation)
            return cls(unexpected_rows_query=f"SELECT _ord FROM {{batch}} WHERE {where}",
                       meta=meta, description=rule.reason_en)


def _exception(info) -> str | None:
    """GX reports an exception flat ({raised_exception, exception_message}) or per metric
    ({metric id: {...}}) depending on the expectation; find it in either shape."""
    if not info:
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for v in info.values():
        if isinstance(v, dict) and v.get("raised_exception"):
            return str(v.get("exception_message")).splitlines()[0][:500]
    return None


def run_contract(rules: list[Rule], batch: pa.Table) -> list[RuleResult]:
    """Validate `batch` (typed rows with an `_ord` column) against `rules`."""
    if not rules or batch.num_rows == 0:
        return [RuleResult(r, 1, 0 if (r.min_count or 0) <= 0 else 1, 0) if r.kind == "row_count"
                else RuleResult(r, 0, 0) for r in rules]
    import great_expectations as gx

    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    def hook(con) -> None:
        register_reference_tables(con)
        con.register("batch", batch)

    gx_duckdb._ON_CONNECT.append(hook)
    try:
        ds = context.data_sources.add_duckdb(name="hub", connection_string="duckdb:///:memory:",
                                             init_sql=MACROS)
        asset = ds.add_table_asset(name="batch", table_name="batch")
        bd = asset.add_batch_definition_whole_table("all")
        suite = context.suites.add(gx.ExpectationSuite(name=f"{rules[0].resource}_contract"))
        for r in rules:
            suite.add_expectation(_expectation(r))
        vd = context.validation_definitions.add(gx.ValidationDefinition(
            name="batch_contract", data=bd, suite=suite))
        result = vd.run(result_format="SUMMARY")
    finally:
        gx_duckdb._ON_CONNECT.remove(hook)
    by_id = {r.rule_id: r for r in rules}
    out = []
    for res in result.results:
        rule = by_id[res.expectation_config.meta["rule_id"]]
        problem = _exception(res.exception_info)
        if problem:  # a rule that could not run must never read as "0 failures"
            raise RuntimeError(f"contract rule {rule.rule_id} could not run: {problem}")
        r = res.result or {}
        kind = res.expectation_config.type
        if rule.kind == "row_count":
            out.append(RuleResult(rule, 1, 0 if res.success else 1, int(r["observed_value"]),
                                  kind))
            continue
        failed = r.get("unexpected_count", r.get("observed_value", 0)) or 0
        out.append(RuleResult(rule, batch.num_rows, int(failed), None, kind))
    return out
