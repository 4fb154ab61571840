"""Append-only, MAC-chained audit log of every prefill and verification answer.

The log is a file of JSON lines, one entry a line, only ever appended to. Each entry carries the
previous entry's MAC and its own: keyed BLAKE2b-256 (under a key derived from HUILIU_AUDIT_KEY,
see audit_key) over the previous MAC and the entry's canonical JSON (every field but the MAC,
sequence number included, as the compact array the line begins with). The columns keep their
names `prev_hash` and `hash`. An edited entry no longer matches its MAC, and without the key no
one can compute a new one: a deleted, inserted or reordered entry breaks the sequence or the chain
for good. A deleted last entry no longer matches the head written beside the log with every
commit, and entries cut off the end together with the head are found against the anchor (head
records appended to a file the log's writer cannot rewrite, see audit_anchor). The access log's
subject index is checked against the entries too.

Logs of earlier versions (an unkeyed sha256 chain, no key file) are continued, not replaced: the
key file beside the log records where the keyed chain begins, and the first keyed entry's MAC
covers the last unkeyed hash, so the earlier entries cannot be changed unseen from then on either,
and a subject's access log still shows them. (Starting a new log would have hidden them.)

Subject keys (citizen IDs, USCCs) are stored as keyed BLAKE2b MACs under HUILIU_AUDIT_KEY: an ID's
small number space would make a plain hash reversible, and the access log must still find every
entry about one person. (BLAKE2b's keyed mode is a MAC made for this; HMAC-SHA256 through OpenSSL
cost 4.3 µs a subject here, BLAKE2b 1.6.)

Why a file and not a database table: the log is only appended and read in order. In SQLite's WAL
the entries had to be checkpointed into the table and the WAL restarted, which meant pausing the
writer for two fsyncs (12-15 ms, every second, under load: the service's p99). A file takes one
write a group and an fdatasync a second beside the writer, and never pauses it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from pipelines.file_modes import FILE_MODE
from pipelines.serving.access_index import AccessIndex, index_key, indexed_rows, start_indexer
from pipelines.serving.audit_anchor import Anchor, AnchorRecords, read_anchor
from pipelines.serving.audit_key import (
    AuditKeyError,
    audit_anchor,
    audit_secret,
    chain_key,
    check_key,
    demo_mode,
    fingerprint,
    mac_key,
    read_key_file,
    write_key_file,
)
from pipelines.serving.audit_lines import COLUMNS, DETAILED_COLUMNS, parse_line, read_lines
from pipelines.serving.children import wait_or_kill

log = logging.getLogger(__name__)

AUDIT_LOG = "audit.jsonl"  # in the serving directory
GENESIS = "0" * 64
UPKEEP_EVERY_S = 1.0
TAIL_READ = 64 * 1024  # bytes read at a time when looking for the last entry from the end


__all__ = ["AUDIT_LOG", "AuditKeyError", "AuditLog", "Problem", "audit_secret", "check_setup",
           "entries_about", "subject_hash", "tampering"]


def subject_hash(key: str, secret: bytes) -> str:
    return hashlib.blake2b(key.encode(), key=mac_key(secret), digest_size=32).hexdigest()


def _canonical(entry: dict) -> bytes:
    """The bytes an entry's hash covers: its fields but the hash, in column order, as a compact
    JSON array (a line is this array with the hash added)."""
    columns = DETAILED_COLUMNS if "detail" in entry else COLUMNS
    return orjson.dumps([entry[k] for k in columns[:-1]])


def _unkeyed_hash(prev_hash: str, canonical: bytes) -> str:
    """The chain of earlier versions (entries before the key file's first keyed one)."""
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


@functools.cache
def _chain_mac(secret: bytes) -> hashlib.blake2b:
    """A keyed BLAKE2b state to copy: the key block is compressed once, not per entry."""
    return hashlib.blake2b(key=chain_key(secret), digest_size=32)


def _entry_mac(secret: bytes, prev_hash: str, canonical: bytes) -> str:
    h = _chain_mac(secret).copy()
    h.update(prev_hash.encode())
    h.update(canonical)
    return h.hexdigest()


def _json_list(items) -> orjson.Fragment:
    if len(items) > 64:  # a batch chunk's lists: unique, not worth keeping
        return orjson.Fragment(orjson.dumps(sorted(items)))
    return _sorted_json(tuple(items))


@functools.lru_cache(maxsize=4096)  # a template's released/withheld lists recur request after
def _sorted_json(items: tuple) -> orjson.Fragment:  # request: sorted and serialised once
    return orjson.Fragment(orjson.dumps(sorted(items)))


@dataclass(frozen=True)
class Problem:
    seq: int | None
    kind: str  # edited | deleted | inserted | reordered | truncated | partial | index | anchor
    #            | unkeyed
    detail: str


class AuditLog:
    """Appends are serialised by a lock in the process and by an exclusive lock on the file
    between processes: each group finds the chain's head under that lock, so several service
    workers extend one chain."""

    def __init__(self, path: Path, secret: bytes | None = None, anchor: Path | None = None
                 ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.secret = secret or audit_secret()
        self._mac = _chain_mac(self.secret)
        # head records go to the operator's append-only file (see audit_anchor)
        self.anchor = Anchor(anchor or audit_anchor(self.path), FILE_MODE,
                             warn_if_rewritable=not demo_mode())
        self.lock = threading.Lock()
        self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
        # the head beside the log, rewritten in place with one fixed-size write per group
        self.head_fd = os.open(_head_path(self.path), os.O_RDWR | os.O_CREAT, FILE_MODE)
        with self.lock, _file_lock(self.fd):
            self._tail = self._find_tail()
            self._start_keyed_chain(self._tail[1])
            self._check_head(*self._tail[1:])
            self._write_head(*self._tail[1:])
        os.fdatasync(self.fd)
        self.anchor.head(*self._tail[1:])
        self.index = AccessIndex(self.path)
        self._indexer = start_indexer(self.path)
        self._stop = threading.Event()
        self._upkeep = threading.Thread(target=self._upkeep_loop, daemon=True,
                                        name="audit-upkeep")
        self._upkeep.start()

    def append(self, **item) -> dict:
        """One entry (consumer, purpose, template, case_id, subjects, released, withheld,
        answer bytes); written when this returns."""
        return self.append_many([item])[0]

    def append_many(self, items: list[dict]) -> list[dict]:
        """Several entries in one write (the service's group commit), in order.

        Written means in the operating system's hands: a crash of the service loses nothing; a
        power cut loses what the upkeep has not synced yet (a second at most), and the head then
        says so (`huiliu audit verify`). An fsync per group capped the service near 600
        requests/s."""
        prepared = [self._prepare(**i) for i in items]
        with self.lock, _file_lock(self.fd):
            size, seq, head = self._tail
            if os.fstat(self.fd).st_size != size:  # another worker appended since (or a crash)
                size, seq, head = self._find_tail()
            lines = []
            for e in prepared:
                seq += 1
                e["seq"], e["prev_hash"] = seq, head
                canonical = _canonical(e)
                h = self._mac.copy()
                h.update(head.encode())
                h.update(canonical)
                e["hash"] = head = h.hexdigest()
                lines.append(canonical[:-1] + b',"' + head.encode() + b'"]\n')
            data = b"".join(lines)
            try:
                _write_all(self.fd, data)
            except BaseException:
                self._tail = (-1, 0, GENESIS)  # found again from the file at the next append
                raise
            self._tail = (size + len(data), seq, head)
            self._write_head(seq, head)  # under the file lock: heads land in chain order
        return prepared

    def _prepare(self, *, consumer: str, purpose: str, template: str, case_id: str,
                 subjects: list[str], released: list[str], withheld: list[str],
                 answer: bytes, detail: dict | None = None,
                 answer_digest: str | None = None) -> dict:
        entry = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
                 "consumer": consumer, "purpose": purpose, "template": template,
                 "case_id": case_id,
                 "subjects": sorted({subject_hash(s, self.secret) for s in subjects}),
                 "released": _json_list(released), "withheld": _json_list(withheld),
                 "answer_digest": answer_digest or hashlib.sha256(answer).hexdigest()}
        if detail is not None:  # another door's own record of what it did (audit_lines)
            entry["detail"] = orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode()
        return entry

    def _find_tail(self) -> tuple[int, int, str]:
        """(size, last seq, last hash) from the file itself. A last line cut short (a process
        killed in the middle of a large write, a power cut) is ended with a newline and left in
        place: the chain goes on from the last whole entry, and `tampering` reports the fragment."""
        size = os.fstat(self.fd).st_size
        if size and os.pread(self.fd, 1, size - 1) != b"\n":
            log.warning("the audit log %s ends in a partial entry: closed with a newline and "
                        "kept; `huiliu audit verify` reports it", self.path)
            size += os.write(self.fd, b"\n")
        for entry in _entries_from_the_end(self.fd, size):
            return size, entry["seq"], entry["hash"]
        return size, 0, GENESIS

    def _start_keyed_chain(self, seq: int) -> None:
        """The key file names the key the log was started with (refused if it is not this one).
        A log without one is new, or was written by an earlier version with an unkeyed chain:
        the keyed chain starts with the next entry, and the anchor records where."""
        if check_key(self.path, self.secret) is not None:
            return
        if seq:
            log.warning("the audit log %s holds %d entries of an unkeyed chain (an earlier "
                        "version): they are kept and the keyed chain goes on from entry %d, whose "
                        "MAC covers them; check them once with `huiliu audit verify`",
                        self.path, seq, seq + 1)
        write_key_file(self.path, self.secret, seq + 1, FILE_MODE)
        self.anchor.key(fingerprint(self.secret), seq + 1)

    def _check_head(self, seq: int, head: str) -> None:
        """A head beyond the log's last entry means entries were cut off the end (or a power cut
        lost them). Appends go on from the log; the old head is kept beside it as evidence."""
        written = _read_head(_head_path(self.path))
        if isinstance(written, tuple) and written[0] > seq:
            kept = self.path.with_name(f"{self.path.name}.cut-at-{written[0]}.head")
            kept.write_text(f"{written[0]} {written[1]}\n")
            log.error("the audit log %s ends at entry %d but its head named entry %d: entries "
                      "were cut off the end (or lost in a power cut); the head is kept in %s",
                      self.path, seq, written[0], kept)

    def _write_head(self, seq: int, head: str) -> None:
        os.pwrite(self.head_fd, f"{seq:020d} {head}\n".encode(), 0)

    def _upkeep_loop(self) -> None:
        """Every second: sync the log to disk, beside the writer (an fdatasync does not stop
        appends to the file), anchor the head that sync covers (so a power cut cannot make the
        anchor name an entry the log lost), and see that the indexer is running."""
        while not self._stop.wait(UPKEEP_EVERY_S):
            _, seq, head = self._tail  # before the sync: what the sync makes durable
            try:
                os.fdatasync(self.fd)
                self.anchor.head(seq, head)
            except OSError:  # the next round tries again; the entries stay in the OS's hands
                log.exception("audit log sync or anchoring failed")
            if self._indexer.poll() is not None:
                log.error("the access-log indexer stopped (exit %s); starting a new one",
                          self._indexer.returncode)
                try:
                    self._indexer = start_indexer(self.path)
                except OSError:  # no process to be had now: the next round tries again
                    log.exception("the access-log indexer could not be started")
        _, seq, head = self._tail
        os.fdatasync(self.fd)
        self.anchor.head(seq, head)

    def about(self, subject_key: str) -> list[dict]:
        """Every entry naming this subject (the data subject's access log)."""
        return entries_about(self.index, self.secret, subject_key)

    def close(self) -> None:
        self._stop.set()
        self._upkeep.join()
        self._indexer.stdin.close()  # it indexes what is left, then exits
        wait_or_kill(self._indexer, 120, "the access-log indexer")
        self.index.close()
        self.anchor.close()
        os.close(self.head_fd)
        os.close(self.fd)


@contextlib.contextmanager
def _file_lock(fd: int) -> Iterator[None]:
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _entries_from_the_end(fd: int, size: int) -> Iterator[dict]:
    """The whole entries of the file, last first, reading back from byte `size`."""
    end, carry = size, b""
    while end > 0:
        start = max(0, end - TAIL_READ)
        chunk = os.pread(fd, end - start, start) + carry
        lines = chunk.split(b"\n")
        carry = lines[0] if start else b""  # may continue in the chunk before
        for line in reversed(lines[1:] if start else lines):
            if line and (entry := parse_line(line)) is not None:
                yield entry
        end = start
    if carry and (entry := parse_line(carry)) is not None:
        yield entry


def entries_about(index: AccessIndex, secret: bytes, subject_key: str) -> list[dict]:
    """Every entry naming this subject, through the log's access index."""
    wanted = subject_hash(subject_key, secret)
    return [e for e in map(parse_line, index.lines_about(wanted))
            if e is not None and wanted in e["subjects"]]


def check_setup(path: Path) -> None:
    """Before a service starts: the key (not short, not published, the log's own) and the anchor
    (configured, writable) are usable; raises AuditKeyError or OSError saying what to fix."""
    secret = audit_secret()
    check_key(path, secret)
    anchor = audit_anchor(path)
    if demo_mode():
        log.warning("demo mode (HUILIU_DEMO=1): a short or published HUILIU_AUDIT_KEY is "
                    "accepted and the audit anchor is a file beside the log; not for production")
    if anchor.parent != path.parent:  # the operator's location: there, and open to appends
        os.close(os.open(anchor, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE))


def _head_path(path: Path) -> Path:
    """`audit.jsonl.head` (not `audit.head`: the head of the SQLite log of earlier versions)."""
    return path.with_name(f"{path.name}.head")


def tampering(path: Path, secret: bytes | None = None, anchor: Path | None = None
              ) -> list[Problem]:
    """Every place the log differs from an untouched chain, in order; [] when intact.

    Needs the key (HUILIU_AUDIT_KEY, or `secret`): refused when it is not the one the log was
    started with. The anchor (HUILIU_AUDIT_ANCHOR, or `anchor`) is read first, then the head and
    the index, then the log: on a running service entries are appended meanwhile, and whatever
    those name must then be found in what follows."""
    secret = secret or audit_secret()
    anchor = anchor or audit_anchor(path)
    problems: list[Problem] = []
    anchored = read_anchor(anchor) or AnchorRecords()
    keyed_from = _keyed_from(path, secret, anchored, problems)
    head = _read_head(_head_path(path))
    indexed = indexed_rows(path) if path.exists() else None
    upto_offset, in_index = indexed if indexed else (0, set())
    prev, expected_seq, index_rows, at_head = GENESIS, 0, set(), None
    found_anchored: dict[int, str] = {}
    lines = read_lines(path, partial=True) if path.exists() else iter(())
    for number, (offset, line) in enumerate(lines, start=1):
        if not line.endswith(b"\n"):
            problems.append(Problem(None, "partial", f"the log ends in a partial line ({number}): "
                                    "an entry being written, or one cut short by a crash"))
            break
        e = parse_line(line)
        if e is None:
            problems.append(Problem(None, "edited", f"line {number} is not a whole entry (cut "
                                                    "short by a crash, or edited)"))
            continue
        expected_seq += 1
        if e["seq"] != expected_seq:
            kind = ("deleted" if e["seq"] > expected_seq
                    else "reordered" if e["seq"] < expected_seq else "inserted")
            problems.append(Problem(e["seq"], kind, f"entry {expected_seq} in the file (line "
                                                    f"{number}) has sequence {e['seq']}"))
            expected_seq = e["seq"]  # one gap is one problem, not one for every entry after it
        elif e["prev_hash"] != prev:
            problems.append(Problem(e["seq"], "inserted",
                                    f"entry {e['seq']} does not follow the entry before it"))
        canonical = _canonical(e)
        if e["seq"] < keyed_from:
            if _unkeyed_hash(e["prev_hash"], canonical) != e["hash"]:
                problems.append(Problem(e["seq"], "edited", f"entry {e['seq']}'s content does "
                                        "not match its (unkeyed, earlier version's) hash"))
        elif _entry_mac(secret, e["prev_hash"], canonical) != e["hash"]:
            problems.append(Problem(e["seq"], "edited", f"entry {e['seq']}'s content does not "
                                    "match its MAC (edited, or written without the key)"))
        prev = e["hash"]
        if e["seq"] in anchored.heads:
            found_anchored.setdefault(e["seq"], e["hash"])
        if isinstance(head, tuple) and e["seq"] == head[0]:
            at_head = e["hash"]
        if offset < upto_offset:
            index_rows |= {(index_key(s), e["seq"], offset) for s in e["subjects"]}
    had_entries = max(expected_seq, anchored.last_head, keyed_from - 1
                      if keyed_from != _NEVER_KEYED else 0)
    if head == "unreadable":
        problems.append(Problem(None, "truncated", f"the head file {_head_path(path).name} is "
                                "unreadable: a cut-off end cannot be ruled out"))
    elif head is None and had_entries:
        problems.append(Problem(None, "truncated", f"the head file {_head_path(path).name} is "
                                f"missing or empty, though the log has had entries (up to "
                                f"{had_entries} known): the log was replaced or emptied"))
    elif head is not None and head[0] and at_head != head[1]:
        seq, h = head
        found = (f"ends at entry {expected_seq}" if expected_seq < seq
                 else f"holds another entry {seq}")
        problems.append(Problem(seq, "truncated", f"the head names entry {seq} ({h[:12]}…) as "
                                f"last; the log {found}"))
    for kept in sorted(path.parent.glob(f"{path.name}.cut-at-*.head")):
        cut = _read_head(kept)
        seq = cut[0] if isinstance(cut, tuple) else None
        problems.append(Problem(seq, "truncated", f"entries up to {seq} were cut off the end "
                                f"before the log was last opened ({kept.name})"))
    problems += _against_the_anchor(anchor, anchored, found_anchored, expected_seq)
    for seq in sorted({row[1] for row in index_rows ^ in_index}):
        problems.append(Problem(seq, "index", f"the access log's index differs from entry {seq}'s "
                                "subjects (a data subject would not see it, or see a false one)"))
    return problems


_NEVER_KEYED = 1 << 62  # a log without key file or key record: every entry of the unkeyed chain


def _keyed_from(path: Path, secret: bytes, anchored: AnchorRecords,
                problems: list[Problem]) -> int:
    """The first entry of the keyed chain: the anchor's first key record where it has one (a key
    file rewritten, or removed and made again, to call more entries unkeyed would let them be
    forged), else the key file's."""
    known = check_key(path, secret)  # refused: another key
    recorded = anchored.keys
    for fp, keyed_from, at in recorded:
        if fp != fingerprint(secret):
            raise AuditKeyError(f"HUILIU_AUDIT_KEY is not the key the anchor recorded for this "
                                f"log at {at} (fingerprint {fp[:12]}…): set the original key")
        if known is not None and keyed_from != known[1]:
            problems.append(Problem(None, "anchor", f"the key file says the keyed chain starts at "
                                    f"entry {known[1]}, the anchor recorded {keyed_from} at {at}: "
                                    "the key file was replaced"))
    if known is None and recorded:
        problems.append(Problem(None, "anchor", f"the key file {path.name}.key is missing; the "
                                f"anchor recorded one at {recorded[0][2]}"))
    if recorded:
        return recorded[0][1]
    if known is None:
        if path.exists() and path.stat().st_size:
            problems.append(Problem(None, "unkeyed", "the log has no key file: its chain is the "
                                    "unkeyed one of earlier versions (which anyone who can write "
                                    "the log can recompute), or the key file was removed; start "
                                    "the service once to continue it keyed"))
        return _NEVER_KEYED
    return known[1]


def _against_the_anchor(anchor: Path, anchored: AnchorRecords, found: dict[int, str],
                        last_seq: int) -> list[Problem]:
    """Each kind of difference from the anchor's head records once (a log emptied after a year
    differs from every record of that year)."""
    problems = []
    if anchored.unreadable:
        problems.append(Problem(None, "anchor", f"{len(anchored.unreadable)} line(s) of the "
                                f"anchor {anchor} are not records (first: line "
                                f"{anchored.unreadable[0]})"))
    missing = sorted(s for s in anchored.heads if s not in found)
    if missing:
        at = anchored.heads[missing[-1]][0][1]
        problems.append(Problem(missing[-1], "anchor", f"the anchor recorded entry {missing[-1]} "
                                f"at {at}; the log ends at entry {last_seq}" if missing[0] >
                                last_seq else f"the anchor recorded {len(missing)} entries the "
                                f"log does not hold (entries {missing[0]}…{missing[-1]})"))
    differ = sorted(s for s, heads in anchored.heads.items()
                    if s in found and any(mac != found[s] for mac, _ in heads))
    if differ:
        at = next(at for mac, at in anchored.heads[differ[0]] if mac != found[differ[0]])
        problems.append(Problem(differ[0], "anchor", f"the log holds another entry {differ[0]} "
                                f"than the one the anchor recorded at {at}"
                                + (f" ({len(differ)} anchored entries differ, up to entry "
                                   f"{differ[-1]})" if len(differ) > 1 else "")))
    return problems


def keyed_from(path: Path) -> int | None:
    """The first entry of the keyed chain (1 for a log started keyed); None without key file."""
    known = read_key_file(path)
    return known[1] if known else None


def _read_head(path: Path) -> tuple[int, str] | str | None:
    """(seq, hash) a head file names; None without one; "unreadable" for anything else."""
    try:
        written = path.read_bytes().split()
    except FileNotFoundError:
        return None
    if not written:
        return None
    if len(written) != 2 or not written[0].isdigit() or len(written[1]) != 64:
        return "unreadable"
    return int(written[0]), written[1].decode()

