"""Analyst activity, read from the audit log for governance staff: every workbench entry (login,
query, refusal, export) with its analyst, tier, outcome and SQL, filtered by analyst, table or
column (the columns a query touched are the entry's `released`)."""

from __future__ import annotations

from pathlib import Path

import orjson

from pipelines.serving.audit_lines import parse_line, read_lines


def analyst_activity(path: Path, *, analyst: str | None = None, table: str | None = None,
                     column: str | None = None, limit: int = 50) -> list[dict]:
    """Newest first, at most `limit`."""
    found: list[dict] = []
    if not path.exists():
        return found
    for _, line in read_lines(path):
        e = parse_line(line)
        if e is None or "detail" not in e:
            continue
        try:
            d = orjson.loads(e["detail"])
        except orjson.JSONDecodeError:
            continue
        if d.get("door") != "workbench":
            continue
        row = {"seq": e["seq"], "at": e["at"], "department": e["consumer"],
               "purpose": e["purpose"], "columns": e["released"], **d}
        if analyst and row.get("analyst") != analyst:
            continue
        if table and table not in row.get("tables", []):
            continue
        if column and column not in row["columns"]:
            continue
        found.append(row)
    return found[::-1][:limit]
