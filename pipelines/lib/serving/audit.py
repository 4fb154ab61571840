"""Append-only, hash-chained audit log of every prefill and verification answer.

Each entry carries the previous entry's hash and its own: sha256 over the previous hash and the
entry's canonical JSON (sequence number included). An edited entry no longer matches its hash; a
deleted, inserted or reordered one breaks the sequence or the chain; a deleted last entry no longer
matches the head written beside the log with every commit. The access log's subject index is
checked against the entries too. Subject keys (citizen IDs, USCCs) are stored as keyed BLAKE2b
MACs under HUILIU_AUDIT_KEY: an ID's small number space would make a plain hash reversible, and
the access log must still find every entry about one person. (BLAKE2b's keyed mode is a MAC made
for this; HMAC-SHA256 through OpenSSL cost 4.3 µs a subject here, BLAKE2b 1.6.)
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson

from pipelines.lib.serving.access_index import AccessIndex, index_key, indexed_pairs

GENESIS = "0" * 64
COLUMNS = ("seq", "at", "consumer", "purpose", "template", "case_id", "subjects", "released",
           "withheld", "answer_digest", "prev_hash", "hash")
UPKEEP_EVERY_S = 1.0
BULK_PASSES = 3  # checkpoints beside the writer before the one that pauses it
# bounds the WAL on disk when several processes write (one process's WAL restarts every upkeep
# round); a restart holds the writer ~150 ms here (the frames since the last passive checkpoint
# and an fsync), so it is rare
WAL_RESTART_BYTES = 256 * 2**20
BUSY_TIMEOUT_MS = 30_000


def subject_hash(key: str, secret: bytes) -> str:
    return hashlib.blake2b(key.encode(), key=_mac_key(secret), digest_size=32).hexdigest()


@functools.cache
def _mac_key(secret: bytes) -> bytes:
    """BLAKE2b takes keys of up to 64 bytes: a longer secret is hashed down to 32."""
    return secret if len(secret) <= 64 else hashlib.sha256(secret).digest()


def _canonical(entry: dict) -> bytes:
    """The bytes an entry's hash covers: its fields but the hash, in column order, as a compact
    JSON array."""
    return orjson.dumps([entry[k] for k in COLUMNS[:-1]])


def _entry_hash(prev_hash: str, entry: dict) -> str:
    return hashlib.sha256(prev_hash.encode() + _canonical(entry)).hexdigest()


def _json_list(items) -> str:
    if len(items) > 64:  # a batch chunk's lists: unique, not worth keeping
        return orjson.dumps(sorted(items)).decode()
    return _sorted_json(tuple(items))


@functools.lru_cache(maxsize=4096)  # a template's released/withheld lists recur request after
def _sorted_json(items: tuple) -> str:  # request: sorted and serialised once
    return orjson.dumps(sorted(items)).decode()


@dataclass(frozen=True)
class Problem:
    seq: int | None
    kind: str  # edited | deleted | inserted | reordered | truncated | index
    detail: str


class AuditLog:
    """Appends are serialised by a lock in the process and by SQLite's write lock between
    processes: each group reads the chain's head inside its write transaction, so several service
    workers extend one chain."""

    def __init__(self, path: Path, secret: bytes | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.secret = secret or audit_secret()
        self.lock = threading.Lock()
        self.con = _connect(self.path)
        # Committed to the WAL before the answer leaves; synced to disk at the WAL checkpoints a
        # background thread runs (an fsync per entry capped the service near 600 requests/s; a
        # checkpoint inside a commit stalls the event loop). A process crash loses nothing; a
        # power cut can lose the entries since the last checkpoint, and the head file then says
        # so (`huiliu audit verify`).
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.con.execute("PRAGMA wal_autocheckpoint=0")
        self.con.execute(f"PRAGMA journal_size_limit={WAL_RESTART_BYTES}")  # WAL file truncated
        self.con.execute("BEGIN IMMEDIATE")
        self.con.execute("""CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, at TEXT,
            consumer TEXT, purpose TEXT, template TEXT, case_id TEXT, subjects TEXT,
            released TEXT, withheld TEXT, answer_digest TEXT, prev_hash TEXT, hash TEXT)""")
        self.con.execute("COMMIT")
        # the head beside the log, rewritten in place with one fixed-size write per group
        self.head_fd = os.open(_head_path(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        self._write_head(*self._last())
        self.index = AccessIndex(self.path)
        self._restart_due = False
        self._stop = threading.Event()
        self._upkeep = threading.Thread(target=self._upkeep_loop, daemon=True,
                                        name="audit-upkeep")
        self._upkeep.start()

    def append(self, **item) -> dict:
        """One entry (consumer, purpose, template, case_id, subjects, released, withheld,
        answer bytes); committed when this returns."""
        return self.append_many([item])[0]

    def append_many(self, items: list[dict]) -> list[dict]:
        """Several entries in one transaction (the service's group commit), in order."""
        prepared = [self._prepare(**i) for i in items]
        with self.lock:
            self.con.execute("BEGIN IMMEDIATE")
            try:
                seq, head = self._last()  # another worker may have appended since
                for e in prepared:
                    seq += 1
                    e["seq"], e["prev_hash"] = seq, head
                    e["hash"] = head = _entry_hash(head, e)
                self.con.executemany(f"INSERT INTO audit VALUES ({', '.join('?' * len(COLUMNS))})",
                                     [[e[k] for k in COLUMNS] for e in prepared])
                self._write_head(seq, head)  # under the write lock: heads land in chain order
                self.con.execute("COMMIT")
                if self._restart_due:
                    self._restart_wal()
            except BaseException:
                self.con.execute("ROLLBACK")
                self._write_head(*self._last())
                raise
        return prepared

    def _restart_wal(self) -> None:
        """Checkpoint the few frames left and start the WAL afresh; if a reader holds it, give
        up at once and try after the next commit."""
        self.con.execute("PRAGMA busy_timeout = 0")
        try:
            busy = self.con.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0]
        finally:
            self.con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._restart_due = bool(busy)

    def _prepare(self, *, consumer: str, purpose: str, template: str, case_id: str,
                 subjects: list[str], released: list[str], withheld: list[str],
                 answer: bytes) -> dict:
        return {"at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
                "consumer": consumer, "purpose": purpose, "template": template,
                "case_id": case_id,
                "subjects": orjson.dumps(sorted({subject_hash(s, self.secret)
                                                 for s in subjects})).decode(),
                "released": _json_list(released), "withheld": _json_list(withheld),
                "answer_digest": hashlib.sha256(answer).hexdigest()}

    def _last(self) -> tuple[int, str]:
        last = self.con.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return last if last else (0, GENESIS)

    def _write_head(self, seq: int, head: str) -> None:
        os.pwrite(self.head_fd, f"{seq:020d} {head}\n".encode(), 0)

    def _upkeep_loop(self) -> None:
        """Every second: sync the WAL into the file (checkpoint) and index the new entries."""
        con = _connect(self.path)
        index = AccessIndex(self.path)
        wal = f"{self.path}-wal"
        while not self._stop.wait(UPKEEP_EVERY_S):
            try:
                # Under steady writes a checkpoint beside the writer never drains the WAL (new
                # frames arrive while it copies), so the WAL never restarts and grows without
                # bound (80 MB in 1.5 s of a test's writes). So the bulk is copied beside the
                # writer, then the few frames since with this process's writer paused: all
                # copied, the next commit starts the WAL afresh (3 MB at most in that test).
                # The bulk goes in passes, each copying what arrived during the one before: the
                # pause (its two fsyncs) held the writer 13-18 ms after one pass, after three
                # 1-2 ms half the time, 12-15 ms otherwise.
                for _ in range(BULK_PASSES):
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)")
                with self.lock:
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)")
                # Writers in other processes can still keep it from draining: past a size the
                # writer is asked to restart it after its next commit (from this thread it
                # would also hold the writer in SQLite's busy back-off).
                if os.path.exists(wal) and os.path.getsize(wal) > WAL_RESTART_BYTES:
                    self._restart_due = True
                index.catch_up()
            except sqlite3.OperationalError:  # busy: the next round will do
                pass
        con.execute("PRAGMA wal_checkpoint(PASSIVE)")
        index.catch_up()
        con.close()
        index.close()

    def about(self, subject_key: str) -> list[dict]:
        """Every entry naming this subject (the data subject's access log)."""
        return entries_about(self.index, self.secret, subject_key)

    def close(self) -> None:
        self._stop.set()
        self._upkeep.join()
        self.index.close()
        os.close(self.head_fd)
        self.con.close()


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                          timeout=BUSY_TIMEOUT_MS / 1000)
    con.execute("PRAGMA journal_mode=WAL")
    return con


def entries_about(index: AccessIndex, secret: bytes, subject_key: str) -> list[dict]:
    """Every entry naming this subject, through the log's access index."""
    rows = index.entries_about(subject_hash(subject_key, secret))
    return [dict(zip(COLUMNS, r, strict=True)) for r in rows]


def audit_secret() -> bytes:
    key = os.environ.get("HUILIU_AUDIT_KEY")
    if not key:
        raise RuntimeError("HUILIU_AUDIT_KEY is not set: the audit log keys subject hashes with "
                           "it (see .env.example); set it to a long random secret")
    return key.encode()


def _head_path(path: Path) -> Path:
    return path.with_suffix(".head")


def verify(path: Path) -> list[Problem]:
    """Every place the log differs from an untouched chain, in order; [] when intact."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = [dict(zip(COLUMNS, r, strict=True))
            for r in con.execute("SELECT * FROM audit ORDER BY rowid").fetchall()]
    con.close()
    problems: list[Problem] = []
    prev = GENESIS
    for i, e in enumerate(rows, start=1):
        if e["seq"] != i:
            kind = "deleted" if e["seq"] > i else ("reordered" if e["seq"] < i else "inserted")
            problems.append(Problem(e["seq"], kind, f"entry {i} in the file has sequence "
                                                     f"{e['seq']}"))
        if e["prev_hash"] != prev:
            problems.append(Problem(e["seq"], "inserted" if e["seq"] == i else "reordered",
                                    f"entry {e['seq']} does not follow the entry before it"))
        if _entry_hash(e["prev_hash"], e) != e["hash"]:
            problems.append(Problem(e["seq"], "edited",
                                    f"entry {e['seq']}'s content does not match its hash"))
        prev = e["hash"]
    head = _head_path(path)
    if head.exists():
        seq, h = head.read_text().split()
        if int(seq) != len(rows) or h != prev:
            problems.append(Problem(int(seq), "truncated", f"the head says entry {seq} "
                                    f"({h[:12]}…) is last; the log ends at {len(rows)}"))
    index = indexed_pairs(path)
    upto, indexed = index if index else (0, set())
    expected = {(index_key(s), e["seq"]) for e in rows if e["seq"] <= upto
                for s in orjson.loads(e["subjects"])}
    for seq in sorted({q for _, q in expected ^ indexed}):
        problems.append(Problem(seq, "index", f"the access log's index differs from entry {seq}'s "
                                "subjects (a data subject would not see it, or see a false one)"))
    return problems
