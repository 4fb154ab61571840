"""Load the declarative SQL kept under assets/sql/ (one statement per file, named <verb>_<object>)."""

from __future__ import annotations

import functools

from pipelines import paths

SQL_DIR = paths.SQL


@functools.cache
def load_sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")
