"""Bulk drops (库表回流 file exchange): discover complete batches, verify them, parse their parts.

Contract (README, "Bulk drop contract"):
    <drop_root>/<PROVIDER>/<RESOURCE>/<BATCH_ID>/part-00001.csv.gz ...
    <drop_root>/<PROVIDER>/<RESOURCE>/<BATCH_ID>/manifest.json   (written last)

A folder without manifest.json is still being written and is not read. Verification (every part
present, sha256, gzip intact, row counts) happens before anything is parsed; any failure rejects the
batch whole.

Drops come from outside the hub's trust boundary, so reading one is bounded (README, "Limits on
drops"): a part name must be a plain file name in its batch folder; the batch folder, manifest and
parts are never read through a symbolic link (even one pointing inside the batch: a provider writes
files, and a link is either a mistake or an attempt to reach outside); a part is decompressed once,
as a stream, and refused the moment its output passes the smallest of the limits below; a file the
hub cannot read rejects its batch with the OS error, never the run.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import hashlib
import io
import json
import logging
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from pipelines.catalog.model import Catalog, Resource
from pipelines.backflow.parsed import (
    BatchRejected,
    ParsedBatch,
    RejectedRow,
    column_incidents,
    finish_table,
    plan_header,
)

log = logging.getLogger(__name__)

ENCODINGS = {"UTF-8": "utf-8", "GBK": "gbk", "GB18030": "gb18030"}

# Limits on what one part may expand to. The smallest applies; crossing it rejects the batch before
# the part expands any further, so a hostile part costs at most that much memory.
MAX_RATIO = 100
"""Uncompressed bytes per compressed byte. The simulator's GBK and UTF-8 CSV compresses 1-4x (gzip
level 1, the 1,000,000-person world included); repetitive real CSV rarely passes 20x; gzip cannot
pass about 1,030x. A part above this is not CSV (a gzip bomb)."""
RATIO_FLOOR = 1 << 20
"""Parts expanding to less than this are not judged by their ratio (a tiny part of repeated values)."""
MAX_ROW_BYTES = 64 << 10
"""Average bytes per row the manifest announces. Simulator rows take 80-200 bytes; 64 KiB leaves room
for long free text and even for a photo sent by mistake (removed, with an incident)."""
HEADER_BYTES = 64 << 10
"""Room for the header line (and a part of zero rows)."""
MAX_PART_BYTES = 512 << 20
"""Whatever the manifest says: a part is parsed in memory. The simulator's 200,000-row parts take
about 25 MB; a provider with more data sends more parts."""
MAX_MANIFEST_BYTES = 16 << 20
READ_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO


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
    label = f"{folder.parent.name}/{folder.name}"
    try:
        with _open_in_batch(path, label, "unreadable_batch") as fh:
            text = fh.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError as e:
        raise BatchRejected("bad_manifest", f"{path}: unreadable manifest ({e!r})") from None
    except OSError as e:
        raise _unreadable("unreadable_batch", path, label, e) from None
    if len(text) > MAX_MANIFEST_BYTES:
        raise BatchRejected("bad_manifest", f"{path}: larger than {MAX_MANIFEST_BYTES >> 20} MiB; "
                            "a manifest lists its parts and nothing else")
    try:
        raw = json.loads(text.decode("utf-8"))
        listed = [(f["name"], f["rows"], f["sha256"]) for f in raw["files"]]
        _check_part_names(path, [name for name, _, _ in listed])
        files = tuple(ManifestFile(name, int(rows), str(sha).lower())
                      for name, rows, sha in listed)
        m = Manifest(
            provider=str(raw["provider"]), resource=str(raw["resource"]),
            batch_id=str(raw["batch_id"]), node=str(raw["node"]), mode=str(raw["mode"]),
            extracted_at=dt.datetime.fromisoformat(str(raw["extracted_at"])),
            encoding=str(raw["encoding"]).upper(), schema_version=int(raw["schema_version"]),
            files=files, raw=raw,
        )
    except (ValueError, KeyError, TypeError) as e:
        raise BatchRejected("bad_manifest", f"{path}: unreadable manifest ({e!r})") from None
    problems = []
    if any(f.rows < 0 for f in m.files):
        problems.append("a part's rows is negative")
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


def _check_part_names(path: Path, names: list) -> None:
    """Every part is named by a plain file name of the batch folder, once. Checked before any part
    is opened: a name that leads elsewhere (`../x`, `/etc/x`, `sub/x`, `..\\x`, NUL) is never
    followed, so nothing outside the batch is read (or has its digest echoed)."""
    seen = set()
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"part name {name!r} is not a string")
        why = ("it is empty or a folder reference" if name in ("", ".", "..") else
               "it contains a path separator or NUL" if any(c in name for c in "/\\\0") else None)
        if why:
            raise BatchRejected("unsafe_part_name", f"{path}: part name {name!r} is not a plain "
                                f"file name inside the batch folder ({why}); nothing was read — "
                                "the provider must list each part by its bare file name")
        if name in seen:
            raise BatchRejected("bad_manifest", f"{path}: part {name} is listed twice (its rows "
                                "would load twice); the provider must list each part once")
        seen.add(name)


def discover(drop_root: Path, catalog: Catalog, resource: str | None = None) -> list[Path]:
    """Complete batch folders (manifest present), in delivery order per resource.

    A batch folder the hub cannot look into is returned as well (it may be complete): open_batch()
    rejects it with the OS error, so it shows in ops.rejections. A resource folder the hub cannot
    list is logged and skipped: there is no batch to record a rejection against."""
    out = []
    for r in catalog.resources.values():
        if r.delivery != "bulk" or (resource and r.code != resource):
            continue
        base = drop_root / r.provider / r.code
        try:
            entries = sorted(base.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            log.error("cannot list %s (%s): none of its batches can be read; check the folder's "
                      "permissions", base, e.strerror or e)
            continue
        for p in entries:
            try:
                mode = os.lstat(p / "manifest.json").st_mode
            except (FileNotFoundError, NotADirectoryError):
                continue  # still being written (or not a folder)
            except OSError:
                out.append(p)  # cannot tell: open_batch() says why
                continue
            if stat.S_ISREG(mode) or stat.S_ISLNK(mode):  # a link is refused by open_batch()
                out.append(p)
    return out


def open_batch(batch_dir: Path, catalog: Catalog) -> DropBatch:
    """Manifest sane, every listed part present with the listed sha256. Raises BatchRejected.

    Parts are hashed in chunks: a part costs READ_CHUNK of memory here whatever its size."""
    label = f"{batch_dir.parent.name}/{batch_dir.name}"
    try:
        if stat.S_ISLNK(os.lstat(batch_dir).st_mode):
            raise _refused(batch_dir, label, "the batch folder")
    except OSError as e:
        raise _unreadable("unreadable_batch", batch_dir, label, e) from None
    m = read_manifest(batch_dir / "manifest.json", catalog)
    for f in m.files:
        p = batch_dir / f.name
        try:
            with _open_in_batch(p, label, "unreadable_part") as fh:
                h = hashlib.sha256()
                while chunk := fh.read(READ_CHUNK):
                    h.update(chunk)
                size = fh.tell()
                digest = h.hexdigest()
                if digest != f.sha256:
                    fh.seek(0)
                    cut_short = _is_cut_short(fh, _part_limit(size, f.rows)[0])
        except FileNotFoundError:
            raise BatchRejected("missing_part", f"{m.resource}/{m.batch_id}: part {f.name} listed "
                                "in the manifest is missing; waiting for the provider to redeliver"
                                ) from None
        except OSError as e:
            raise _unreadable("unreadable_part", p, label, e) from None
        if digest != f.sha256:
            if cut_short:  # say what the provider must fix, not just that bytes differ
                raise BatchRejected("truncated_part", f"{m.resource}/{m.batch_id}: {f.name} is "
                                    f"cut short ({size} bytes, gzip stream incomplete, "
                                    "sha256 differs from the manifest)")
            raise BatchRejected("checksum_mismatch", f"{m.resource}/{m.batch_id}: {f.name} sha256 "
                                f"{digest[:12]}… does not match the manifest's {f.sha256[:12]}…")
    return DropBatch(batch_dir, m)


def _open_in_batch(path: Path, label: str, unreadable: str) -> BinaryIO:
    """Open a file of a batch for reading: a regular file, never through a symbolic link (the
    link's target is not opened). FileNotFoundError is left to the caller; any other failure
    rejects the batch with code `unreadable`."""
    what = "the manifest" if path.name == "manifest.json" else f"part {path.name}"
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise _refused(path, label, what)
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:  # became a link since lstat
            raise _refused(path, label, what) from None
        raise _unreadable(unreadable, path, label, e) from None
    fh = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        fh.close()
        raise BatchRejected("unsafe_part", f"{label}: {what} ({path}) is not a regular file; the "
                            "provider must deliver plain files")
    return fh


def _refused(path: Path, label: str, what: str) -> BatchRejected:
    return BatchRejected("unsafe_part", f"{label}: {what} ({path}) is a symbolic link; links in a "
                         "batch are not followed, even to files inside it — the provider must "
                         "write the files themselves into the batch folder")


def _unreadable(code: str, path: Path, label: str, e: OSError) -> BatchRejected:
    return BatchRejected(code, f"{label}: cannot read {path}: {e.strerror or e} — check the file "
                         "permissions: the hub's user must be able to read the batch folder and "
                         "every file in it; the batch is taken at the next run once it can")


def _part_limit(compressed: int, rows: int) -> tuple[int, str]:
    """The most bytes a part of `compressed` bytes announced with `rows` rows may expand to, and
    which limit that is (the smallest of the three)."""
    return min((MAX_PART_BYTES, "absolute"), (rows * MAX_ROW_BYTES + HEADER_BYTES, "rows"),
               (max(RATIO_FLOOR, compressed * MAX_RATIO), "ratio"))


def _too_large(label: str, name: str, compressed: int, rows: int) -> BatchRejected:
    limit, which = _part_limit(compressed, rows)
    stop = "rejected before it expanded further"
    if which == "ratio":
        return BatchRejected("decompression_ratio", f"{label}: {name} expands more than "
                             f"{MAX_RATIO}:1 (its {compressed:,} bytes passed {limit:,} bytes); no "
                             f"CSV compresses that well, so it is not the data the manifest "
                             f"describes (a gzip bomb?) — {stop}; the provider must redeliver "
                             "the batch with plain gzip CSV parts")
    if which == "rows":
        return BatchRejected("part_too_large", f"{label}: {name} expands past {limit:,} bytes, "
                             f"more than the manifest's {rows:,} rows can take "
                             f"({MAX_ROW_BYTES >> 10} KiB a row plus {HEADER_BYTES >> 10} KiB) — "
                             f"{stop}; the provider must redeliver it with the rows it really "
                             "holds")
    return BatchRejected("part_too_large", f"{label}: {name} expands past "
                         f"{MAX_PART_BYTES >> 20} MiB, the most one part may hold — {stop}; the "
                         "provider must redeliver the batch split into more parts")


class _TooLarge(Exception):
    """The stream expanded past its limit (internal: turned into BatchRejected by the caller)."""


def _inflate(fh: BinaryIO, limit: int):
    """Yield the uncompressed bytes of a gzip file, READ_CHUNK of input at a time: members one
    after another, zero padding after them ignored (as gzip.decompress does), CRC and length
    checked by zlib. Raises _TooLarge as soon as more than `limit` bytes came out (never holding
    more than that), EOFError if the stream ends early, zlib.error if it is damaged."""
    d = zlib.decompressobj(wbits=31)
    total = 0
    while chunk := fh.read(READ_CHUNK):
        data = chunk
        while data:
            if d.eof:  # another member, or padding
                data = data.lstrip(b"\0")
                if not data:
                    break
                d = zlib.decompressobj(wbits=31)
            out = d.decompress(data, limit + 1 - total)  # max_length >= 1: 0 would mean no limit
            total += len(out)
            if total > limit:
                raise _TooLarge
            if out:
                yield out
            data = d.unused_data if d.eof else d.unconsumed_tail
    if not d.eof:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")


def _is_cut_short(fh: BinaryIO, limit: int) -> bool:
    try:
        for _ in _inflate(fh, limit):
            pass
    except EOFError:
        return True
    except (zlib.error, _TooLarge):
        pass  # damaged rather than short
    return False


def _read_part(folder: Path, f: ManifestFile, label: str) -> bytearray:
    """The part's CSV bytes, decompressed once, in bounded memory (see `_part_limit`)."""
    path = folder / f.name
    try:
        with _open_in_batch(path, label, "unreadable_part") as fh:
            size = os.fstat(fh.fileno()).st_size
            out = bytearray()
            for chunk in _inflate(fh, _part_limit(size, f.rows)[0]):
                out += chunk
            return out
    except _TooLarge:
        raise _too_large(label, f.name, size, f.rows) from None
    except (EOFError, zlib.error) as e:
        raise BatchRejected("truncated_part", f"{label}: {path.name} is not a complete gzip "
                            f"stream ({e}); the batch is rejected whole") from None
    except FileNotFoundError:
        raise BatchRejected("missing_part", f"{label}: part {f.name} listed in the manifest is "
                            "missing; waiting for the provider to redeliver") from None
    except OSError as e:
        raise _unreadable("unreadable_part", path, label, e) from None


def parse(batch: DropBatch, resource: Resource) -> ParsedBatch:
    """Parse every part into one landed table plus rejected rows and column incidents."""
    m = batch.manifest
    label = f"{m.resource}/{m.batch_id}"
    encoding = ENCODINGS[m.encoding]
    tables, rejected, incidents = [], [], []
    for f in m.files:
        data = _read_part(batch.path, f, label)
        table, bad, incs = _parse_part(data, encoding, f.name, resource, label, f.rows)
        del data  # before the next part is read
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


def _parse_part(data: bytearray, encoding: str, name: str, resource: Resource, label: str,
                rows: int):
    """Fast path: Arrow's CSV reader transcodes and parses in one pass (measured 0.25 s against
    0.40 s for bytes.decode + UTF-8 re-encode + parse, per 200,000-row GB18030 part). Anything
    unusual (bytes that do not decode, a wrong column count, a value spanning lines) goes to the
    line-exact path. `rows` is the manifest's count: more invalid rows than that go to the exact
    path at once, which stops counting where the manifest does."""
    end = data.find(b"\n")
    try:
        header_line = (data[:end] if end >= 0 else data).decode(encoding).rstrip("\r")
    except UnicodeDecodeError:
        return _parse_part_slow(data, encoding, name, resource, label, rows)
    header = _header(header_line, name)
    plan = plan_header(resource, header)
    invalid: list[int] = []

    def on_invalid(row):
        invalid.append(row.number or 0)
        return "skip" if len(invalid) <= rows else "error"

    try:
        raw = pacsv.read_csv(
            pa.BufferReader(data),  # no copy of the part
            read_options=pacsv.ReadOptions(block_size=1 << 24, encoding=encoding),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header}, strings_can_be_null=True,
                quoted_strings_can_be_null=True, null_values=[""],
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return _parse_part_slow(data, encoding, name, resource, label, rows)
    # 0x0A never occurs inside a GBK/GB18030/UTF-8 multi-byte character: counting bytes is exact.
    physical_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if invalid or physical_lines != raw.num_rows + 1:
        # Rare cases (wrong column count, values spanning lines): the exact path keeps line numbers.
        del raw
        return _parse_part_slow(data, encoding, name, resource, label, rows)
    n = raw.num_rows
    counts = {c: n - raw.column(c).null_count for c in plan.forbidden + plan.undeclared}
    cols = {c: raw.column(c).combine_chunks() for c in plan.keep}
    cols["_file"] = pa.array([name] * n, pa.string()) if n else pa.array([], pa.string())
    cols["_line"] = pa.array(range(2, n + 2), pa.int32())
    return finish_table(resource, cols, n), [], column_incidents(plan, counts)


def _header(line: str, name: str) -> list[str]:
    try:
        return next(csv.reader([line])) if line else []
    except csv.Error as e:
        raise BatchRejected("bad_header", f"{name}: the header line is not CSV ({e})") from None


def _lines(data: bytearray, block: int = 1 << 18):
    """(number, bytes) of each line of `data` as split at b"\\n" (a final empty line is none),
    split a block at a time: the lines of a part never all exist as objects at once."""
    start, n, i = 0, len(data), 0
    while start < n:
        cut = data.find(b"\n", start + block) if start + block < n else -1
        if cut < 0:
            piece = data[start:-1] if data.endswith(b"\n") else data[start:]
            start = n
        else:
            piece = data[start:cut]
            start = cut + 1
        for line in piece.split(b"\n"):
            i += 1
            yield i, line


def _parse_part_slow(data: bytearray, encoding: str, name: str, resource: Resource, label: str,
                     expected: int):
    """Line-exact parse: undecodable lines and wrong column counts become rejected rows. Lines are
    read as the CSV reader asks for them, and the part is rejected as soon as it holds more rows
    than the manifest says: millions of short lines cost no more than the rows announced."""
    lines = _lines(data)
    first = next(lines, None)
    try:
        header_line = None if first is None else first[1].rstrip(b"\r").decode(encoding)
    except UnicodeDecodeError:
        header_line = None
    if header_line is None:
        raise BatchRejected("bad_header", f"{name}: the header line is missing or undecodable")
    header = _header(header_line, name)
    plan = plan_header(resource, header)
    redact = plan.must_redact_raw
    rejected: list[RejectedRow] = []
    rows: list[list[str]] = []
    line_numbers: list[int] = []

    def counted():
        if len(rows) + len(rejected) > expected:
            raise BatchRejected("row_count_mismatch", f"{label}: {name} holds more than "
                                f"{expected} data rows, the manifest says {expected}")

    def next_decoded() -> tuple[int, str] | None:
        for i, raw_line in lines:
            raw_line = raw_line.rstrip(b"\r")
            try:
                return i, raw_line.decode(encoding)
            except UnicodeDecodeError as e:
                rejected.append(RejectedRow(
                    name, i, "undecodable", f"bytes are not valid {encoding}: {e.reason}",
                    None if redact else raw_line.decode(encoding, "backslashreplace")))
                counted()
        return None

    ahead = [next_decoded()]  # the next decodable line the csv reader will consume

    def feed():
        while ahead[0] is not None:
            line = ahead[0][1]
            ahead[0] = next_decoded()
            yield line + "\n"

    reader = csv.reader(feed())
    while True:
        # the reader pulls lines lazily, so the line ahead is the next record's first line
        start_line = ahead[0][0] if ahead[0] is not None else 0
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            rejected.append(RejectedRow(name, start_line, "csv_syntax", str(e), None))
        else:
            if len(rec) != len(header):
                raw_line = None if redact else _to_csv_line(rec)
                rejected.append(RejectedRow(
                    name, start_line, "column_count",
                    f"expected {len(header)} columns as in the header, found {len(rec)}",
                    raw_line))
            else:
                rows.append(rec)
                line_numbers.append(start_line)
        counted()
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

