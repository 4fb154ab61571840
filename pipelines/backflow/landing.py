"""Immutable landing zone: one folder per provider/resource/batch, written once and atomically.

    <home>/landing/<PROVIDER>/<RESOURCE>/<BATCH_ID>/
        rows.parquet       readable rows as strings (only fields the hub may store) + _file, _line
        rejected.parquet   rows that could not be read into columns, with reason and raw line
        source.json        the provider's manifest (bulk) or the feed position (API), incidents,
                           row counts and the sha256 of the two Parquet files

The folder is built under a temporary name and renamed into place, so a crash leaves either nothing or
a complete folder. A landed folder whose batch was never loaded (crash between landing and loading) is
rebuilt on the next attempt; once loaded it is never touched again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.backflow.parsed import ParsedBatch

REJECTED_SCHEMA = pa.schema([("file", pa.string()), ("line", pa.int32()),
                             ("reason_code", pa.string()), ("reason", pa.string()),
                             ("raw_line", pa.string())])


def landing_dir(root: Path, provider: str, resource: str, batch_id: str) -> Path:
    return root / provider / resource / batch_id


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def land(root: Path, provider: str, parsed: ParsedBatch, source: dict) -> tuple[Path, pa.Table]:
    """Write the batch's landing folder atomically; return its path and the landed rows."""
    final = landing_dir(root, provider, parsed.resource, parsed.batch_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):  # left by a killed earlier attempt
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    tmp.mkdir()
    try:
        table = _write(tmp, parsed, source)
        if final.exists():  # an earlier attempt landed but never loaded: replace it whole
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:  # e.g. the disk filled: nothing half-written stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, table


def _write(tmp: Path, parsed: ParsedBatch, source: dict) -> pa.Table:
    # _ord: the row's position in the batch (parts in manifest order, lines in file order), so the
    # loader never has to sort to know which of two rows came later.
    table = parsed.table.append_column("_ord", pa.array(range(1, parsed.table.num_rows + 1),
                                                        pa.int64()))
    pq.write_table(table, tmp / "rows.parquet", compression="snappy")
    rejected = pa.Table.from_pylist([dataclasses.asdict(r) for r in parsed.rejected],
                                    schema=REJECTED_SCHEMA)
    pq.write_table(rejected, tmp / "rejected.parquet", compression="snappy")
    meta = {
        "resource": parsed.resource, "batch_id": parsed.batch_id, "mode": parsed.mode,
        "received": parsed.received, "readable_rows": parsed.table.num_rows,
        "rejected_rows": len(parsed.rejected),
        "incidents": [dataclasses.asdict(i) for i in parsed.incidents],
        "source": source,
        "sha256": {n: _sha256(tmp / n) for n in ("rows.parquet", "rejected.parquet")},
    }
    (tmp / "source.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1,
                                                default=str), encoding="utf-8")
    _fsync_dir_files(tmp)
    return table


def read_meta(folder: Path) -> dict:
    return json.loads((folder / "source.json").read_text(encoding="utf-8"))


def _fsync_dir_files(folder: Path) -> None:
    for p in folder.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())
