"""A DuckDB fluent datasource for GX 1.24.1, on duckdb-engine, with the fix GX needs.

Why: GX's SqlAlchemyExecutionEngine.execute_query() opens a connection, executes, CLOSES the
connection and only then the caller fetches (`execute_query(q).fetchall()`). With duckdb-engine the
result is gone once the SQLAlchemy connection closes, so every metric comes back empty:
    IndexError: list index out of range            (resolve_metric_bundle, every aggregate metric)
    TypeError: 'NoneType' object is not subscriptable   (UnexpectedRowsExpectation row count)
StaticPool and pool_reset_on_return=None do NOT help (measured). GX keeps one open connection only
for dialects in _PERSISTED_CONNECTION_DIALECTS (sqlite, mssql, bigquery, databricks). This module
subclasses the execution engine to do the same for duckdb, and registers DuckDB TEMP macros /
settings on every new DBAPI connection (`init_sql`), so custom SQL rules can call them.

Defining the subclass registers a new fluent type; use it as
    ds = context.data_sources.add_duckdb(name=..., connection_string="duckdb:////abs/path.duckdb",
                                          init_sql=[...])
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Generator, List, Literal, Type

import sqlalchemy as sa
from great_expectations.datasource.fluent.sql_datasource import SQLDatasource
from great_expectations.execution_engine import SqlAlchemyExecutionEngine


class DuckDBExecutionEngine(SqlAlchemyExecutionEngine):
    """SqlAlchemyExecutionEngine that keeps ONE connection open (as GX does for sqlite)."""

    def __init__(self, *args: Any, init_sql: List[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("poolclass", sa.pool.StaticPool)  # one DBAPI connection per engine
        super().__init__(*args, **kwargs)
        self._init_sql = list(init_sql or [])
        if self._init_sql:
            sa.event.listen(self.engine, "connect", self._on_connect)

    def _on_connect(self, dbapi_con: Any, _record: Any) -> None:
        for stmt in self._init_sql:
            dbapi_con.execute(stmt)

    @contextmanager
    def get_connection(self) -> Generator[sa.Connection, None, None]:
        if self._connection is None or self._connection.closed:
            self._connection = self.engine.connect()
        yield self._connection

    def close(self) -> None:
        if self._connection is not None and not self._connection.closed:
            self._connection.close()
        self.engine.dispose()


class DuckDBDatasource(SQLDatasource):
    """Fluent type 'duckdb': SQLDatasource + the persisted-connection execution engine."""

    type: Literal["duckdb"] = "duckdb"  # type: ignore[assignment]
    init_sql: List[str] = []

    @property
    def execution_engine_type(self) -> Type[SqlAlchemyExecutionEngine]:  # type: ignore[override]
        return DuckDBExecutionEngine


def split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
