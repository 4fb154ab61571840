"""Turn API records (JSON objects) into a `ParsedBatch`, with the same column rules as bulk drops."""

from __future__ import annotations

import pyarrow as pa

from pipelines.lib.catalog import Resource
from pipelines.lib.parsed import ParsedBatch, column_incidents, finish_table, plan_header


def _text(v) -> str | None:
    if v is None:
        return None
    s = v if isinstance(v, str) else str(v)
    return s or None  # empty field = null, as in the drop contract


def parse_records(resource: Resource, batch_id: str, mode: str,
                  pages: list[tuple[str, list[dict]]]) -> ParsedBatch:
    """`pages` = [(page label, records)]. Line = 1-based position of the record in its page."""
    header: list[str] = []
    seen: set[str] = set()
    for _, records in pages:
        for rec in records:
            for k in rec:
                if k not in seen:
                    seen.add(k)
                    header.append(k)
    plan = plan_header(resource, header) if header else plan_header(
        resource, [f.code for f in resource.stored_fields] + ["CZLX", "GXSJ"])
    rows = [rec for _, records in pages for rec in records]
    n = len(rows)
    cols: dict[str, pa.Array] = {
        c: pa.array([_text(r.get(c)) for r in rows], pa.string()) for c in plan.keep}
    counts = {c: sum(1 for r in rows if _text(r.get(c)) is not None)
              for c in plan.forbidden + plan.undeclared}
    cols["_file"] = pa.array([label for label, recs in pages for _ in recs], pa.string())
    cols["_line"] = pa.array([i for _, recs in pages for i in range(1, len(recs) + 1)], pa.int32())
    incidents = column_incidents(plan, counts)
    return ParsedBatch(resource.code, batch_id, mode, n, finish_table(resource, cols, n), [],
                       incidents)
