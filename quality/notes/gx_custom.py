"""Custom expectations for GX 1.24.1 on DuckDB (minimal, working).

1. ExpectNoUnexpectedRows: an UnexpectedRowsExpectation that computes ONLY the row count.
   The stock UnexpectedRowsExpectation depends on two metrics, `unexpected_rows_query.table`
   (runs the query, keeps <= 200 rows) and `unexpected_rows_query.row_count` (runs it again inside
   COUNT(*)): every custom rule is executed twice on the full table. This subclass drops the first;
   the failing rows are fetched afterwards, only for rules that failed (quarantine step).

2. ExpectColumnValuesToBeValidGb11643: a ColumnMapExpectation whose metric has a SQLAlchemy
   implementation calling the DuckDB macro gb11643_ok(col) (registered on the connection through
   DuckDBDatasource(init_sql=...)) and a pandas implementation. Being a map expectation it gets
   the full GX result: unexpected_count, unexpected_index_list / unexpected_index_query with
   unexpected_index_column_names, partial lists, Data Docs rendering.

Importing this module registers both (GX registers Expectation and MetricProvider subclasses on
class creation: snake_case names expect_no_unexpected_rows, column_values.valid_gb11643).
"""

from __future__ import annotations

from typing import Any, ClassVar, Tuple, Union

import numpy as np
import pandas as pd
import sqlalchemy as sa
from great_expectations.core import ExpectationValidationResult
from great_expectations.execution_engine import PandasExecutionEngine, SqlAlchemyExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.core.unexpected_rows_expectation import UnexpectedRowsExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from common import CHECK, WEIGHTS

# DuckDB macro used by the SQL implementation (string arithmetic; takes a column, any expression).
_SUM = " + ".join(f"{w}*(ascii(substr(id,{i + 1},1))-48)" for i, w in enumerate(WEIGHTS))
GB11643_OK_MACRO = (
    "CREATE OR REPLACE TEMP MACRO gb11643_ok(id) AS length(id) = 18"
    " AND regexp_full_match(id, '[0-9]{17}[0-9X]')"
    f" AND substr(id, 18, 1) = substr('{CHECK}', CAST(({_SUM}) % 11 AS INTEGER) + 1, 1)"
)


class ExpectNoUnexpectedRows(UnexpectedRowsExpectation):
    """UnexpectedRowsExpectation that runs its query once (COUNT only)."""

    metric_dependencies: ClassVar[Tuple[str, ...]] = ("unexpected_rows_query.row_count",)

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                  execution_engine: Any = None) -> Union[ExpectationValidationResult, dict]:
        n = metrics["unexpected_rows_query.row_count"]
        return {"success": n == 0, "result": {"observed_value": n}}


class ColumnValuesValidGb11643(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_gb11643"

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, **kwargs):  # noqa: ANN001, ANN206
        # GX already excludes nulls for map metrics; the condition is "row is expected"
        return sa.func.coalesce(sa.func.gb11643_ok(column), sa.false())

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs):  # noqa: ANN206
        return gb11643_ok_series(column)


class ExpectColumnValuesToBeValidGb11643(ColumnMapExpectation):
    """Expect column values to be valid GB 11643 citizen identity numbers (18 chars, MOD 11-2)."""

    map_metric = "column_values.valid_gb11643"
    success_keys = ("mostly",)
    library_metadata = {"tags": ["huiliu"], "contributors": []}


_W = np.array(WEIGHTS, dtype=np.int64)
_CHECK = np.frombuffer(CHECK.encode(), dtype=np.uint8)


def gb11643_ok_series(s: pd.Series) -> pd.Series:
    """Vectorised check for pandas (nulls: True, GX filters them before)."""
    vals = s.astype("string")
    ok = pd.Series(False, index=s.index)
    is18 = vals.str.len().eq(18).fillna(False)
    if is18.any():
        b = np.frombuffer("".join(vals[is18].tolist()).encode("ascii", "replace"), dtype=np.uint8)
        b = b.reshape(-1, 18)
        d = b[:, :17].astype(np.int64) - 48
        good = ((d >= 0) & (d <= 9)).all(axis=1) & (b[:, 17] == _CHECK[(d * _W).sum(axis=1) % 11])
        ok[is18] = good
    return ok | s.isna()


# ---- 3. ExpectNoUnexpectedRowsCollect: ONE execution per rule, all failing rows returned ----------
from great_expectations.core.metric_domain_types import MetricDomainTypes  # noqa: E402
from great_expectations.expectations.metrics.metric_provider import metric_value  # noqa: E402
from great_expectations.expectations.metrics.query_metrics.query_table.query_table import (  # noqa: E402
    QueryTable,
)


class UnexpectedRowsQueryTableAll(QueryTable):
    """Like unexpected_rows_query.table but fetches every row (no 200-row cap)."""

    metric_name = "unexpected_rows_query.table_all"
    value_keys = ("unexpected_rows_query",)
    query_param_name: ClassVar[str] = "unexpected_rows_query"

    @metric_value(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics,  # noqa: ANN001, ANN206
                    runtime_configuration):
        batch_selectable, _, _ = execution_engine.get_compute_domain(
            metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE)
        query = cls._get_substituted_batch_subquery_from_query_and_batch_selectable(
            query=cls._get_query_from_metric_value_kwargs(metric_value_kwargs),
            batch_selectable=batch_selectable, execution_engine=execution_engine)
        return cls._get_sqlalchemy_records_from_substituted_batch_subquery(
            substituted_batch_subquery=query, execution_engine=execution_engine, fetch_all=True)


class ExpectNoUnexpectedRowsCollect(UnexpectedRowsExpectation):
    """Query runs once; the result carries observed_value and ALL failing rows (details)."""

    metric_dependencies: ClassVar[Tuple[str, ...]] = ("unexpected_rows_query.table_all",)

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                  execution_engine: Any = None) -> Union[ExpectationValidationResult, dict]:
        rows = metrics["unexpected_rows_query.table_all"]
        return {"success": not rows,
                "result": {"observed_value": len(rows), "details": {"unexpected_rows": rows}}}
