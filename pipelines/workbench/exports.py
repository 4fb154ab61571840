"""A query's result as a file an analyst takes away: CSV in UTF-8 with a BOM (so Excel shows the
Chinese text as it is) or Parquet."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

FORMATS = ("csv", "parquet")
CSV_BOM = b"\xef\xbb\xbf"


def encode(table: pa.Table, fmt: str) -> tuple[bytes, str]:
    """(file bytes, media type)."""
    buf = io.BytesIO()
    if fmt == "csv":
        pa_csv.write_csv(table, buf)
        return CSV_BOM + buf.getvalue(), "text/csv; charset=utf-8"
    pq.write_table(table, buf)
    return buf.getvalue(), "application/vnd.apache.parquet"
