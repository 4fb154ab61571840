"""Run a resource's contract on one batch with Great Expectations, on an in-memory DuckDB.

The typed batch is registered as an Arrow table on GX's own connection (no copy, and no
contention with the warehouse writer), under a table name of its own per contract and schema. GX judges every rule and counts failures; the rule's SQL
predicate then selects exactly those rows for quarantine, and the two counts must agree.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from pipelines.governance.contracts import gx_duckdb
from pipelines.governance.contracts.reference import register_reference_tables
from pipelines.governance.contracts.rules import BATCH, Rule
from pipelines.governance.contracts.sql_macros import MACROS

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

    from pipelines.governance.contracts.expectations import BY_FAMILY, CountedRule

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
            cls = BY_FAMILY.get(rule.family, CountedRule)  # never the stock class: it runs the query twice
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


class _Engine:
    """One GX context, DuckDB datasource and batch definition per process, and one validation
    definition per distinct contract: building them costs ~1 s (serialising every expectation
    into the suite store, once per expectation), validating a small batch much less. The batch is
    (re)registered as the Arrow table `batch` on GX's live DuckDB connection for each run."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.lock = threading.Lock()
        self.live: list = []  # DBAPI connections GX opened (one with its StaticPool)
        self.current: pa.Table | None = None
        self.current_name = "batch_0"
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        gx_duckdb._ON_CONNECT.append(self._on_connect)  # noqa: SLF001
        self.current = pa.table({"_ord": pa.array([], pa.int64())})  # the asset needs a table
        self.datasource = self.context.data_sources.add_duckdb(
            name="hub", connection_string="duckdb:///:memory:", init_sql=MACROS)
        self.definitions: OrderedDict[tuple, object] = OrderedDict()
        self.serial = 0  # names are never reused, not even after an eviction

    def _on_connect(self, con) -> None:
        register_reference_tables(con)
        con.register(self.current_name, self.current)
        self.live.append(con)

    def _register(self, name: str, table: pa.Table) -> None:
        """Register `table` as `name` on every connection GX holds, outside any transaction: a
        registration made inside GX's open transaction is undone when SQLAlchemy resets the
        connection on its return to the pool, and the next rule then reads the previous batch
        (seen in CI as "column YWBH does not exist", and as a clean count on a broken batch)."""
        self.current, self.current_name = table, name
        for con in list(self.live):
            try:
                con.commit()  # GX only reads: ending its transaction loses nothing
            except duckdb.Error as e:
                if "closed" in str(e).lower():  # a connection GX has closed meanwhile
                    self.live.remove(con)
                    continue
                if "no transaction" not in str(e).lower():
                    raise
            con.register(name, table)

    def definition(self, rules: list[Rule], schema: pa.Schema):
        import great_expectations as gx

        key = tuple((r.rule_id, r.min_count, r.max_count) for r in rules) + tuple(schema.names)
        if key in self.definitions:
            self.definitions.move_to_end(key)
            return self.definitions[key]
        self.serial += 1
        name = f"{rules[0].resource}_contract_{self.serial}"
        # expectations passed whole: adding them one by one re-serialises the suite each time
        suite = self.context.suites.add(gx.ExpectationSuite(
            name=name, expectations=[_expectation(r) for r in rules]))
        # one table asset AND one table name per contract and schema: GX and SQLAlchemy cache a
        # table's reflected columns (by batch id, by table name), so a shared name let one
        # resource's batch be described by another's columns (CI: "column YWBH does not exist")
        self._register(name, schema.empty_table())  # GX checks the table exists
        bd = self.datasource.add_table_asset(name=name, table_name=name
                                             ).add_batch_definition_whole_table("all")
        vd = self.context.validation_definitions.add(gx.ValidationDefinition(
            name=name, data=bd, suite=suite))
        self.definitions[key] = vd
        if len(self.definitions) > MAX_DEFINITIONS:  # e.g. volume bounds change every batch
            _, old = self.definitions.popitem(last=False)
            self.context.validation_definitions.delete(old.name)
            self.context.suites.delete(old.suite.name)
            self.datasource.delete_asset(old.name)
        return vd

    def close(self) -> None:
        """Close GX's DuckDB connections and let go of every object that leads to them. GX keeps
        its current context (with this datasource, its engines and their connections) in a module
        global, which at interpreter exit is not always freed: it can hang off reference cycles
        CPython never collects (pyarrow's pandas shim, `referencing`'s rpds maps), and nanobind
        then reports each DuckDB object still reachable as a leak."""
        from great_expectations.data_context.data_context.context_factory import set_context

        if not self.lock.acquire(timeout=10):  # a validation still running in a daemon thread
            return
        try:
            if self._on_connect in gx_duckdb._ON_CONNECT:  # noqa: SLF001
                gx_duckdb._ON_CONNECT.remove(self._on_connect)  # noqa: SLF001
            self.datasource.get_execution_engine().close()
            gx_duckdb.release(self.datasource.get_engine())
            for con in self.live:  # closed with their pools already; closing twice is harmless
                con.close()
            self.live.clear()
            self.definitions.clear()
            self.current = None
            set_context(None)  # GX's module global: the context, its stores and datasources
        finally:
            self.lock.release()

    def run(self, rules: list[Rule], batch: pa.Table):
        with self.lock:
            vd = self.definition(rules, batch.schema)
            self._register(vd.name, batch)
            try:
                return vd.run(result_format="SUMMARY")
            finally:
                self._register(vd.name, batch.schema.empty_table())  # do not hold the rows


MAX_DEFINITIONS = 64


@functools.cache
def _engine() -> _Engine:
    return _Engine()


def open_connections() -> list:
    """The DuckDB connections GX holds open across runs (what a stray transaction of GX's can
    be left on: the tests put one there)."""
    return list(_engine().live)


@atexit.register
def close_engine() -> None:
    """Close the process's GX engine, if one was built (registered to run at exit)."""
    if _engine.cache_info().currsize:
        try:
            _engine().close()
        except Exception as e:  # noqa: BLE001 - the process is ending; say so and carry on
            log.warning("GX's DuckDB connections not closed at exit: %s", e)
        _engine.cache_clear()


def run_contract(rules: list[Rule], batch: pa.Table) -> list[RuleResult]:
    """Validate `batch` (typed rows with an `_ord` column) against `rules`."""
    if not rules or batch.num_rows == 0:
        return [RuleResult(r, 1, 0 if (r.min_count or 0) <= 0 else 1, 0) if r.kind == "row_count"
                else RuleResult(r, 0, 0) for r in rules]
    result = _engine().run(rules, batch)
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
