"""Append-only, hash-chained audit log of every prefill and verification answer.

Each entry carries the previous entry's hash and its own: sha256 over the previous hash and the
entry's canonical JSON (sequence number included). An edited entry no longer matches its hash; a
deleted, inserted or reordered one breaks the sequence or the chain; a deleted last entry no longer
matches the head written beside the log after every append. Subject keys (citizen IDs, USCCs) are
stored as HMAC-SHA256 under HUILIU_AUDIT_KEY: an ID's small number space would make a plain hash
reversible, and the access log must still find every entry about one person.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

GENESIS = "0" * 64
COLUMNS = ("seq", "at", "consumer", "purpose", "template", "case_id", "subjects", "released",
           "withheld", "answer_digest", "prev_hash", "hash")


def subject_hash(key: str, secret: bytes) -> str:
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def _entry_hash(prev_hash: str, entry: dict) -> str:
    body = json.dumps({k: entry[k] for k in COLUMNS[:-2]}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


@dataclass(frozen=True)
class Problem:
    seq: int | None
    kind: str  # edited | deleted | inserted | reordered | truncated
    detail: str


class AuditLog:
    """One writer per file (the service process); appends are serialised by a lock."""

    def __init__(self, path: Path, secret: bytes | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.secret = secret or audit_secret()
        self.lock = threading.Lock()
        self.con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        # Written (committed to the WAL) before the answer leaves; synced to disk at WAL
        # checkpoints, not per entry: an fsync per request cost ~1.5 ms and capped the service
        # near 600 requests/s. A process crash loses nothing; a power cut can lose the entries
        # since the last checkpoint, and the head file then says so (`huiliu audit verify`).
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.con.execute("""CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, at TEXT,
            consumer TEXT, purpose TEXT, template TEXT, case_id TEXT, subjects TEXT,
            released TEXT, withheld TEXT, answer_digest TEXT, prev_hash TEXT, hash TEXT)""")
        self.con.execute("CREATE INDEX IF NOT EXISTS audit_subjects ON audit (subjects)")
        last = self.con.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        self.seq, self.head = last if last else (0, GENESIS)
        # the head beside the log, rewritten in place with one fixed-size write per entry
        self.head_fd = os.open(_head_path(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        self._write_head()

    def append(self, *, consumer: str, purpose: str, template: str, case_id: str,
               subjects: list[str], released: list[str], withheld: list[str],
               answer: bytes) -> dict:
        with self.lock:
            entry = {"seq": self.seq + 1,
                     "at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
                     "consumer": consumer, "purpose": purpose, "template": template,
                     "case_id": case_id,
                     "subjects": json.dumps(sorted(subject_hash(s, self.secret)
                                                   for s in subjects)),
                     "released": json.dumps(sorted(released)),
                     "withheld": json.dumps(sorted(withheld)),
                     "answer_digest": hashlib.sha256(answer).hexdigest(), "prev_hash": self.head}
            entry["hash"] = _entry_hash(self.head, entry)
            self.con.execute(f"INSERT INTO audit VALUES ({', '.join('?' * len(COLUMNS))})",
                             [entry[k] for k in COLUMNS])
            self.seq, self.head = entry["seq"], entry["hash"]
            self._write_head()
            return entry

    def _write_head(self) -> None:
        os.pwrite(self.head_fd, f"{self.seq:020d} {self.head}\n".encode(), 0)

    def about(self, subject_key: str) -> list[dict]:
        """Every entry naming this subject (the data subject's access log)."""
        h = subject_hash(subject_key, self.secret)
        rows = self.con.execute("SELECT * FROM audit WHERE instr(subjects, ?) > 0 ORDER BY seq",
                                [h]).fetchall()
        return [dict(zip(COLUMNS, r, strict=True)) for r in rows]

    def close(self) -> None:
        os.close(self.head_fd)
        self.con.close()


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
    return problems
