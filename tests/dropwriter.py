"""Write bulk drops exactly as the contract says, for tests that need hand-built batches."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from pathlib import Path


def write_batch(root: Path, provider: str, resource: str, batch_id: str, header: list[str],
                rows: list[list[str]], *, mode: str = "incremental", encoding: str = "UTF-8",
                node: str = "500000", extracted_at: str = "2026-10-02T02:00:00+08:00",
                raw_lines: list[bytes] | None = None, manifest_rows: int | None = None,
                write_manifest: bool = True) -> Path:
    """One batch with one part. `raw_lines` are appended verbatim (for broken-line tests)."""
    folder = root / provider / resource / batch_id
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    data = buf.getvalue().encode({"UTF-8": "utf-8", "GBK": "gbk", "GB18030": "gb18030"}[encoding])
    for line in raw_lines or []:
        data += line + b"\n"
    gz = gzip.compress(data, mtime=0)
    (folder / "part-00001.csv.gz").write_bytes(gz)
    n = len(rows) + len(raw_lines or [])
    manifest = {"provider": provider, "resource": resource, "batch_id": batch_id, "node": node,
                "mode": mode, "extracted_at": extracted_at, "encoding": encoding,
                "schema_version": 1,
                "files": [{"name": "part-00001.csv.gz",
                           "rows": n if manifest_rows is None else manifest_rows,
                           "sha256": hashlib.sha256(gz).hexdigest()}]}
    if write_manifest:
        (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
    return folder
