"""The tables, columns and comments of a tier file: what the parser lets a query name, and what
the schema browser shows. Read once per file (a tier file never changes once switched in)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.workbench.tier_plan import SCHEMAS



class TierSchema:
    def __init__(self) -> None:
        self._read: dict[Path, tuple[dict, list]] = {}

    def tables(self, path: Path) -> dict[str, dict[str, list[str]]]:
        return self._of(path)[0]

    def described(self, path: Path) -> list[dict]:
        return self._of(path)[1]

    def _of(self, path: Path) -> tuple[dict, list]:
        found = self._read.get(path)
        if found is None:
            if len(self._read) > 64:  # old tier sets are pruned from disk; forget them here too
                self._read.clear()
            found = self._read[path] = _read(path)
        return found


def _read(path: Path) -> tuple[dict, list]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        comments = {(s, t): c for s, t, c in con.execute(
            "SELECT schema_name, table_name, comment FROM duckdb_tables() UNION ALL "
            "SELECT schema_name, view_name, comment FROM duckdb_views() WHERE NOT internal"
        ).fetchall()}
        cols = con.execute("""SELECT schema_name, table_name, column_name, data_type, comment
            FROM duckdb_columns() WHERE database_name = current_database()
            ORDER BY schema_name, table_name, column_index""").fetchall()
    finally:
        con.close()
    tables: dict[str, dict[str, list[str]]] = {}
    described: dict[tuple[str, str], dict] = {}
    for schema, table, column, dtype, comment in cols:
        if schema not in SCHEMAS:
            continue
        tables.setdefault(schema, {}).setdefault(table, []).append(column)
        d = described.setdefault((schema, table), {
            "schema": schema, "name": table, "comment": comments.get((schema, table)) or "",
            "columns": []})
        d["columns"].append({"name": column, "type": dtype, "comment": comment or ""})
    order = {s: i for i, s in enumerate(SCHEMAS)}
    return tables, sorted(described.values(), key=lambda d: (order[d["schema"]], d["name"]))
