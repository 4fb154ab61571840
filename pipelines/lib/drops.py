"""Bulk drops (库表回流 file exchange): discover complete batches, verify them, parse their parts.

Contract (README, "Bulk drop contract"):
    <drop_root>/<PROVIDER>/<RESOURCE>/<BATCH_ID>/part-00001.csv.gz ...
    <drop_root>/<PROVIDER>/<RESOURCE>/<BATCH_ID>/manifest.json   (written last)

A folder without manifest.json is still being written and is not read. Verification (every part
present, sha256, gzip intact, row counts) happens before anything is parsed; any failure rejects the
batch whole.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from pipelines.lib.catalog import Catalog, Resource
from pipelines.lib.parsed import (
    BatchRejected,
    ParsedBatch,
    RejectedRow,
    column_incidents,
    finish_table,
    plan_header,
)

ENCODINGS = {"UTF-8": "utf-8", "GBK": "gbk", "GB18030": "gb18030"}


@dataclass(frozen=True)
class ManifestFile:
    name: str
    rows: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    provider: str
    resource: str
    batch_id: str
    node: str
    mode: str
    extracted_at: dt.datetime
    encoding: str
    schema_version: int
    files: tuple[ManifestFile, ...]
    raw: dict

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)


@dataclass(frozen=True)
class DropBatch:
    path: Path
    manifest: Manifest

    @property
    def resource(self) -> str:
        return self.manifest.resource

    @property
    def batch_id(self) -> str:
        return self.manifest.batch_id


def read_manifest(path: Path, catalog: Catalog) -> Manifest:
    """Parse and check manifest.json; a malformed manifest rejects the batch."""
    folder = path.parent
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        files = tuple(ManifestFile(str(f["name"]), int(f["rows"]), str(f["sha256"]).lower())
                      for f in raw["files"])
        m = Manifest(
            provider=str(raw["provider"]), resource=str(raw["resource"]),
            batch_id=str(raw["batch_id"]), node=str(raw["node"]), mode=str(raw["mode"]),
            extracted_at=dt.datetime.fromisoformat(str(raw["extracted_at"])),
            encoding=str(raw["encoding"]).upper(), schema_version=int(raw["schema_version"]),
            files=files, raw=raw,
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BatchRejected("bad_manifest", f"{path}: unreadable manifest ({e!r})") from None
    problems = []
    if m.mode not in ("incremental", "full"):
        problems.append(f"mode {m.mode!r} is not incremental|full")
    if m.encoding not in ENCODINGS:
        problems.append(f"encoding {m.encoding!r} is not one of {sorted(ENCODINGS)}")
    if m.extracted_at.tzinfo is None:
        problems.append("extracted_at has no UTC offset")
    if m.resource not in catalog.resources:
        problems.append(f"resource {m.resource!r} is not in the responsibility list")
    elif catalog.resources[m.resource].provider != m.provider:
        problems.append(f"provider {m.provider!r} does not own {m.resource}")
    if (m.provider, m.resource, m.batch_id) != (folder.parent.parent.name, folder.parent.name,
                                               folder.name):
        problems.append("provider/resource/batch_id disagree with the folder path")
    if m.node != catalog.node.code:
        problems.append(f"node {m.node!r} is not this node ({catalog.node.code})")
    if problems:
        raise BatchRejected("bad_manifest", f"{path}: " + "; ".join(problems))
    return m


def discover(drop_root: Path, catalog: Catalog, resource: str | None = None) -> list[Path]:
    """Complete batch folders (manifest present), in delivery order per resource."""
    out = []
    for r in catalog.resources.values():
        if r.delivery != "bulk" or (resource and r.code != resource):
            continue
        base = drop_root / r.provider / r.code
        if base.is_dir():
            out += sorted(p for p in base.iterdir() if (p / "manifest.json").is_file())
    return out


def verify(batch_dir: Path, catalog: Catalog) -> DropBatch:
    """Manifest sane, every listed part present with the listed sha256. Raises BatchRejected."""
    m = read_manifest(batch_dir / "manifest.json", catalog)
    for f in m.files:
        p = batch_dir / f.name
        if not p.is_file():
            raise BatchRejected("missing_part", f"{m.resource}/{m.batch_id}: part {f.name} listed "
                                "in the manifest is missing; waiting for the provider to redeliver")
        data = p.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != f.sha256:
            if _is_cut_short(data):  # say what the provider must fix, not just that bytes differ
                raise BatchRejected("truncated_part", f"{m.resource}/{m.batch_id}: {f.name} is "
                                    f"cut short ({len(data)} bytes, gzip stream incomplete, "
                                    "sha256 differs from the manifest)")
            raise BatchRejected("checksum_mismatch", f"{m.resource}/{m.batch_id}: {f.name} sha256 "
                                f"{digest[:12]}… does not match the manifest's {f.sha256[:12]}…")
    return DropBatch(batch_dir, m)


def _is_cut_short(data: bytes) -> bool:
    d = zlib.decompressobj(wbits=31)
    try:
        while data:
            d.decompress(data, 1 << 20)
            data = d.unconsumed_tail
        return not d.eof
    except zlib.error:
        return False  # damaged rather than short


def _gunzip(path: Path, label: str) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except (EOFError, OSError, zlib.error) as e:
        raise BatchRejected("truncated_part", f"{label}: {path.name} is not a complete gzip "
                            f"stream ({e}); the batch is rejected whole") from None


def parse(batch: DropBatch, resource: Resource) -> ParsedBatch:
    """Parse every part into one landed table plus rejected rows and column incidents."""
    m = batch.manifest
    label = f"{m.resource}/{m.batch_id}"
    encoding = ENCODINGS[m.encoding]
    tables, rejected, incidents = [], [], []
    for f in m.files:
        data = _gunzip(batch.path / f.name, label)
        table, bad, incs = _parse_part(data, encoding, f.name, resource, label)
        if table.num_rows + len(bad) != f.rows:
            raise BatchRejected("row_count_mismatch", f"{label}: {f.name} holds "
                                f"{table.num_rows + len(bad)} data rows, the manifest says {f.rows}")
        tables.append(table)
        rejected += bad
        incidents += incs
    table = pa.concat_tables(tables) if tables else finish_table(resource, {
        "_file": pa.array([], pa.string()), "_line": pa.array([], pa.int32())}, 0)
    return ParsedBatch(m.resource, m.batch_id, m.mode, m.rows, table, rejected,
                       _merge_incidents(incidents))


def _merge_incidents(incidents):
    """One incident per (kind, field) for the batch, rows summed over parts."""
    merged: dict[tuple[str, str], object] = {}
    for i in incidents:
        k = (i.kind, i.field)
        if k in merged:
            prev = merged[k]
            merged[k] = type(i)(i.kind, i.field, prev.rows + i.rows, i.detail)  # type: ignore[attr-defined]
        else:
            merged[k] = i
    return list(merged.values())


def _parse_part(data: bytes, encoding: str, name: str, resource: Resource, label: str):
    """Fast path: Arrow's CSV reader transcodes and parses in one pass (measured 0.25 s against
    0.40 s for bytes.decode + UTF-8 re-encode + parse, per 200,000-row GB18030 part). Anything
    unusual (bytes that do not decode, a wrong column count, a value spanning lines) goes to the
    line-exact path."""
    end = data.find(b"\n")
    try:
        header_line = (data[:end] if end >= 0 else data).decode(encoding).rstrip("\r")
    except UnicodeDecodeError:
        return _parse_part_slow(data, encoding, name, resource)
    header = next(csv.reader([header_line])) if header_line else []
    plan = plan_header(resource, header)
    invalid: list[int] = []

    def on_invalid(row):
        invalid.append(row.number or 0)
        return "skip"

    try:
        raw = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(block_size=1 << 24, encoding=encoding),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header}, strings_can_be_null=True,
                quoted_strings_can_be_null=True, null_values=[""],
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return _parse_part_slow(data, encoding, name, resource)
    # 0x0A never occurs inside a GBK/GB18030/UTF-8 multi-byte character: counting bytes is exact.
    physical_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if invalid or physical_lines != raw.num_rows + 1:
        # Rare cases (wrong column count, values spanning lines): the exact path keeps line numbers.
        return _parse_part_slow(data, encoding, name, resource)
    n = raw.num_rows
    counts = {c: n - raw.column(c).null_count for c in plan.forbidden + plan.undeclared}
    cols = {c: raw.column(c).combine_chunks() for c in plan.keep}
    cols["_file"] = pa.array([name] * n, pa.string()) if n else pa.array([], pa.string())
    cols["_line"] = pa.array(range(2, n + 2), pa.int32())
    return finish_table(resource, cols, n), [], column_incidents(plan, counts)


def _parse_part_slow(data: bytes, encoding: str, name: str, resource: Resource):
    """Line-exact parse: undecodable lines and wrong column counts become rejected rows."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    decoded: list[tuple[int, str]] = []
    bad_lines: list[tuple[int, str]] = []
    for i, raw_line in enumerate(lines, start=1):
        raw_line = raw_line.rstrip(b"\r")
        try:
            decoded.append((i, raw_line.decode(encoding)))
        except UnicodeDecodeError as e:
            bad_lines.append((i, f"{raw_line.decode(encoding, 'backslashreplace')}|{e.reason}"))
    if not decoded or decoded[0][0] != 1:
        raise BatchRejected("bad_header", f"{name}: the header line is missing or undecodable")
    header = next(csv.reader([decoded[0][1]]))
    plan = plan_header(resource, header)
    redact = plan.must_redact_raw
    rejected = [
        RejectedRow(name, i, "undecodable", f"bytes are not valid {encoding}: {s.rsplit('|', 1)[1]}",
                    None if redact else s.rsplit("|", 1)[0])
        for i, s in bad_lines
    ]
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    body = decoded[1:]
    pos = {"next": 0}  # index in `body` of the next line the csv reader will consume

    def feed():
        while pos["next"] < len(body):
            pos["next"] += 1
            yield body[pos["next"] - 1][1] + "\n"

    reader = csv.reader(feed())
    while True:
        start = pos["next"]  # the reader pulls lines lazily, so this is the record's first line
        start_line = body[start][0] if start < len(body) else 0
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            rejected.append(RejectedRow(name, start_line, "csv_syntax", str(e), None))
            continue
        if len(rec) != len(header):
            raw_line = None if redact else _to_csv_line(rec)
            rejected.append(RejectedRow(
                name, start_line, "column_count",
                f"expected {len(header)} columns as in the header, found {len(rec)}", raw_line))
            continue
        rows.append(rec)
        line_numbers.append(start_line)
    n = len(rows)
    idx = {c: header.index(c) for c in header}
    cols = {}
    for c in plan.keep:
        cols[c] = pa.array([r[idx[c]] or None for r in rows], pa.string())
    counts = {c: sum(1 for r in rows if r[idx[c]]) for c in plan.forbidden + plan.undeclared}
    cols["_file"] = pa.array([name] * n, pa.string())
    cols["_line"] = pa.array(line_numbers, pa.int32())
    rejected.sort(key=lambda r: r.line)
    return finish_table(resource, cols, n), rejected, column_incidents(plan, counts)


def _to_csv_line(values: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()

