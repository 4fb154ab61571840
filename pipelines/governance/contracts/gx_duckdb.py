"""A DuckDB datasource for Great Expectations 1.x (GX ships none).

GX's SQLAlchemy engine closes its connection before fetching results; with duckdb-engine the result
is then gone and every metric comes back empty (measured in quality/notes/gx-on-duckdb-spike.md).
GX keeps one connection open only for a few dialects; this engine does the same for DuckDB and runs
`init_sql` (our macros) plus `on_connect` (registering the batch as an Arrow table) on it.
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Callable, Generator
from contextlib import contextmanager, suppress
from typing import Any, Literal

import sqlalchemy as sa
from great_expectations.datasource.fluent.sql_datasource import SQLDatasource
from great_expectations.execution_engine import SqlAlchemyExecutionEngine

_ON_CONNECT: list[Callable[[Any], None]] = []  # set per validation by the runner
_WIPED_AT_EXIT = ("duckdb", "_duckdb", "duckdb_engine")  # packages whose globals CPython clears


@atexit.register
def _keep_duckdb_modules_until_wiped() -> None:
    """Make CPython clear DuckDB's and duckdb-engine's module globals at exit, so that nanobind
    finds none of DuckDB's objects alive and reports no "leaked instances/types/functions".

    At exit CPython empties `sys.modules`; a module no longer referenced then is destroyed without
    its globals being cleared, and they live on in its functions' `__globals__`. Some of those
    functions hang off objects nothing frees at shutdown: pyarrow's pandas shim (a C static) and
    `referencing`'s JSON-schema registries (rpds maps, opaque to the garbage collector) keep much
    of the heap alive, SQLAlchemy's classes included, and on those duckdb-engine registers its
    compilers (`@compiles(TryCast, "duckdb")`), whose globals lead to DuckDB's types and module
    constants (`duckdb.sqltypes`). Modules still alive after CPython's collection get their
    globals set to None instead, which cuts every such path; `sys`, whose namespace is cleared
    only after that step, holds these modules until then."""
    keep = [m for name, m in list(sys.modules.items()) if name.partition(".")[0] in _WIPED_AT_EXIT]
    setattr(sys, "_huiliu_wiped_at_exit", keep)  # noqa: B010 - not a declared attribute of sys


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
        release(self.engine)


def release(engine: sa.Engine) -> None:
    """Close `engine`'s pooled DuckDB connections and drop the DuckDB objects its dialect keeps:
    the dialect memoises a result processor per DuckDB type it has seen in a result (DuckDB type
    objects as keys), and SQLAlchemy's PostgreSQL dialect, duckdb-engine's base, caches query
    builders with `functools.lru_cache` on the class, keyed by the dialect instance, which keeps
    the dialect itself alive for as long as the class lives."""
    engine.dispose()
    memos = getattr(engine.dialect, "_type_memos", None)
    if memos is not None:
        memos.clear()
    for cls in type(engine.dialect).__mro__:
        for attr in vars(cls).values():
            if hasattr(attr, "cache_clear"):  # an lru_cache'd method
                with suppress(TypeError):
                    attr.cache_clear()


class DuckDBDatasource(SQLDatasource):
    """Fluent datasource type 'duckdb' (registered with GX when this class is defined)."""

    type: Literal["duckdb"] = "duckdb"  # type: ignore[assignment]
    init_sql: list[str] = []

    @property
    def execution_engine_type(self) -> type[SqlAlchemyExecutionEngine]:  # type: ignore[override]
        return DuckDBExecutionEngine

    def get_engine(self) -> sa.Engine:  # the datasource's own engine (connection tests) too
        return _hook(super().get_engine(), list(self.init_sql))
