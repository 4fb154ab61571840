"""A DuckDB datasource for Great Expectations 1.x (GX ships none).

GX's SQLAlchemy engine closes its connection before fetching results; with duckdb-engine the result
is then gone and every metric comes back empty (measured in quality/notes/gx-on-duckdb-spike.md).
GX keeps one connection open only for a few dialects; this engine does the same for DuckDB and runs
`init_sql` (our macros) plus `on_connect` (registering the batch as an Arrow table) on it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any, Literal

import sqlalchemy as sa
from great_expectations.datasource.fluent.sql_datasource import SQLDatasource
from great_expectations.execution_engine import SqlAlchemyExecutionEngine

_ON_CONNECT: list[Callable[[Any], None]] = []  # set per validation by the runner


def _hook(engine: sa.Engine, init_sql: list[str]) -> sa.Engine:
    """Run `init_sql` and the registered hooks on every new DBAPI connection of `engine`."""
    if getattr(engine, "_huiliu_hooked", False):
        return engine

    def on_connect(dbapi_con: Any, _record: Any) -> None:
        for stmt in init_sql:
            dbapi_con.execute(stmt)
        for hook in _ON_CONNECT:
            hook(dbapi_con)

    sa.event.listen(engine, "connect", on_connect)
    engine._huiliu_hooked = True  # type: ignore[attr-defined]
    return engine


class DuckDBExecutionEngine(SqlAlchemyExecutionEngine):
    def __init__(self, *args: Any, init_sql: list[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("poolclass", sa.pool.StaticPool)  # one DBAPI connection per engine
        super().__init__(*args, **kwargs)
        _hook(self.engine, list(init_sql or []))

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
    """Fluent datasource type 'duckdb' (registered with GX when this class is defined)."""

    type: Literal["duckdb"] = "duckdb"  # type: ignore[assignment]
    init_sql: list[str] = []

    @property
    def execution_engine_type(self) -> type[SqlAlchemyExecutionEngine]:  # type: ignore[override]
        return DuckDBExecutionEngine

    def get_engine(self) -> sa.Engine:  # the datasource's own engine (connection tests) too
        return _hook(super().get_engine(), list(self.init_sql))
