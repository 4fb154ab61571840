"""Bulk file drops: <drop_root>/<PROVIDER>/<RESOURCE>/<BATCH_ID>/part-NNNNN.csv.gz + manifest.json.

Parts are gzip CSV (RFC 4180, CRLF, header of field codes), written with mtime 0 so that the same
content gives the same bytes. manifest.json is always written last (tmp file + rename): a folder
without it is an incomplete batch. A batch hit by a bulk fault keeps its correct bytes in memory
and is delivered again, correctly and under the same BATCH_ID, by `repair()` at the next advance.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.sim.defects import BatchPlan

log = logging.getLogger(__name__)
BAD_TOKEN = "@@BADBYTES@@"
BAD_BYTES = b"\xff\xff"
BULK_FAULTS = ("truncated_part", "corrupt_part", "row_count_mismatch", "in_progress",
               "missing_part")


@dataclass
class WrittenBatch:
    provider: str
    resource: str
    batch_id: str
    folder: Path
    manifest: dict
    parts: list[tuple[str, bytes]]
    placement: list[tuple[str, int]]  # per plan row: (file name, 1-based line)
    fault: str | None = None
    repaired: bool = False


@dataclass
class DropWriter:
    root: Path
    node: str
    part_rows: int = 200_000
    pending: list[WrittenBatch] = field(default_factory=list)

    def batch_dir(self, provider: str, resource: str, batch_id: str) -> Path:
        return self.root / provider / resource / batch_id

    def write(self, provider: str, resource: str, batch_id: str, mode: str, extracted_at: str,
              plan: BatchPlan, encoding: str | None, fault: str | None, rng) -> WrittenBatch:
        step = max(1, self.part_rows)
        chunks = [plan.rows[i:i + step] for i in range(0, len(plan.rows), step)] or [[]]
        if encoding is not None:
            candidates = [encoding]
        else:
            candidates = ["GBK", "GB18030"] if provider == "PS" else ["UTF-8"]
        for enc in candidates:
            try:
                blobs = [_part_bytes(plan.header, chunk, CODECS[enc]) for chunk in chunks]
                encoding = enc
                break
            except UnicodeEncodeError:
                continue  # a name outside GBK: the batch goes out as GB18030
        parts: list[tuple[str, bytes]] = []
        files = []
        placement: list[tuple[str, int]] = []
        for pi, (chunk, data) in enumerate(zip(chunks, blobs, strict=True), start=1):
            name = f"part-{pi:05d}.csv.gz"
            parts.append((name, data))
            files.append({"name": name, "rows": len(chunk),
                          "sha256": hashlib.sha256(data).hexdigest()})
            placement.extend((name, j + 2) for j in range(len(chunk)))
        manifest = {"provider": provider, "resource": resource, "batch_id": batch_id,
                    "node": self.node, "mode": mode, "extracted_at": extracted_at,
                    "encoding": encoding, "schema_version": 1, "files": files}
        wb = WrittenBatch(provider, resource, batch_id,
                          self.batch_dir(provider, resource, batch_id), manifest, parts, placement,
                          fault)
        self._deliver(wb, fault, rng)
        if fault:
            self.pending.append(wb)
        else:
            wb.parts = []  # written for good: no need to keep the bytes
        return wb

    def _deliver(self, wb: WrittenBatch, fault: str | None, rng) -> None:
        folder = wb.folder
        folder.mkdir(parents=True, exist_ok=True)
        manifest_path = folder / "manifest.json"
        if manifest_path.exists():
            manifest_path.unlink()  # a re-delivery: the batch is incomplete while rewritten
        manifest = json.loads(json.dumps(wb.manifest))
        for i, (name, data) in enumerate(wb.parts):
            if fault == "truncated_part" and i == 0:
                data = data[: max(10, len(data) * 3 // 5)]
            elif fault == "corrupt_part" and i == 0:
                b = bytearray(data)
                for _ in range(8):
                    pos = 10 + int(rng.integers(0, max(1, len(b) - 18)))
                    b[pos] ^= 0xFF
                data = bytes(b)
            elif fault == "missing_part" and i == 0:
                (folder / name).unlink(missing_ok=True)
                continue
            (folder / name).write_bytes(data)
        if fault == "row_count_mismatch":
            manifest["files"][0]["rows"] += 1 + int(rng.integers(0, 5))
        if fault == "in_progress":
            return
        tmp = folder / ".manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, manifest_path)

    def repair(self) -> list[WrittenBatch]:
        """Deliver every faulty batch again, correctly (same BATCH_ID, manifest last)."""
        done = []
        for wb in self.pending:
            for stale in wb.folder.glob("part-*.csv.gz"):
                if stale.name not in {n for n, _ in wb.parts}:
                    stale.unlink()
            self._deliver(wb, None, None)
            wb.repaired = True
            done.append(wb)
            log.info("re-delivered %s/%s (was %s)", wb.resource, wb.batch_id, wb.fault)
        self.pending = []
        return done

    def clear(self) -> None:
        for p in ("PS", "CU", "CA"):
            shutil.rmtree(self.root / p, ignore_errors=True)


CODECS = {"UTF-8": "utf-8", "GBK": "gbk", "GB18030": "gb18030"}
_SUB = 20_000


def _part_bytes(header: list[str], rows, codec: str) -> bytes:
    """One gzip CSV part, encoded and compressed in slices to bound memory. Deterministic:
    zlib's gzip wrapper writes mtime 0."""
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = []
    bad = BAD_TOKEN.encode()
    for i in range(0, max(len(rows), 1), _SUB):
        buf = io.StringIO()
        wr = csv.writer(buf, lineterminator="\r\n")
        if i == 0:
            wr.writerow(header)
        for r in rows[i:i + _SUB]:
            if r.raw is not None and len(r.values) > 1:
                vals = list(r.values)
                vals[1] = f"{vals[1] or ''}{BAD_TOKEN}"
                wr.writerow(vals)
            else:
                wr.writerow(r.values)
        raw = buf.getvalue().encode(codec)
        if bad in raw:
            raw = raw.replace(bad, BAD_BYTES)
        out.append(z.compress(raw))
    out.append(z.flush())
    return b"".join(out)
