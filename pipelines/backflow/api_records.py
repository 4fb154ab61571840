"""Turn API records (JSON objects) into a `ParsedBatch`, with the same column rules as bulk drops."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.catalog.model import Resource
from pipelines.backflow.parsed import ParsedBatch, column_incidents, finish_table, plan_header


def _text(v) -> str | None:
    if v is None:
        return None
    s = v if isinstance(v, str) else str(v)
    return s or None  # empty field = null, as in the drop contract


def _columns(records: list[dict], names: list[str]) -> dict[str, pa.Array]:
    """String columns for `names`; absent keys and empty strings are null."""
    try:  # fast path: Arrow converts the dicts in C++ when every value is a string or null
        table = pa.Table.from_struct_array(pa.array(
            records, type=pa.struct([(c, pa.string()) for c in names])))
        return {c: _empty_as_null(table.column(c).combine_chunks()) for c in names}
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # numbers or nested values: convert one by one
        return {c: pa.array([_text(r.get(c)) for r in records], pa.string()) for c in names}


def _empty_as_null(col: pa.Array) -> pa.Array:
    if pc.any(pc.equal(col, "")).as_py():
        return pc.if_else(pc.equal(col, ""), None, col)
    return col


def parse_records(resource: Resource, batch_id: str, mode: str,
                  pages: list[tuple[str, list[dict]]]) -> ParsedBatch:
    """`pages` = [(page label, records)]. Line = 1-based position of the record in its page."""
    header: list[str] = []
    seen: set[str] = set()
    for _, records in pages:
        for rec in records:
            if not seen.issuperset(rec):
                for k in rec:
                    if k not in seen:
                        seen.add(k)
                        header.append(k)
    rows = [rec for _, records in pages for rec in records]
    n = len(rows)
    if not n:  # nothing delivered: no columns to judge
        header = [f.code for f in resource.stored_fields] + ["CZLX", "GXSJ"]
    plan = plan_header(resource, header, batch_id)
    removed = plan.forbidden + plan.undeclared
    cols = _columns(rows, plan.keep + removed)
    counts = {c: len(cols[c]) - cols[c].null_count for c in removed}
    for c in removed:  # never kept beyond counting
        del cols[c]
    cols["_file"] = pa.array([label for label, recs in pages for _ in recs], pa.string())
    cols["_line"] = pa.array([i for _, recs in pages for i in range(1, len(recs) + 1)], pa.int32())
    return ParsedBatch(resource.code, batch_id, mode, n, finish_table(resource, cols, n), [],
                       column_incidents(plan, counts))
