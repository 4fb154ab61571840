"""Load the declarative SQL kept under assets/sql/ (one statement per file, named <verb>_<object>)."""

from __future__ import annotations

import functools
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parents[2] / "assets" / "sql"


@functools.cache
def load_sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")
