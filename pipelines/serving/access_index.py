"""The access log's index: subject hash -> audit entries, kept in a file of its own beside the log.

Derived data, rebuilt from the log at any time. It is brought up to date off the request path (by
an indexer process beside the audit writer, see run_indexer): a subject index written with every entry cost ~50 µs an entry
(random B-tree pages), more than the rest of the entry. Entries not indexed yet are found by
scanning the lines after `upto`. `huiliu audit verify` compares the index with the entries, so a
row removed to hide an access is found.

Layout: one WITHOUT ROWID B-tree keyed by (the first 16 hex digits of the subject MAC, sequence),
with the entry's byte offset in the log. Keys of a MAC are random, so every catch-up rewrites a
page per key it adds, wherever the B-tree has more leaves than the round adds keys: the short key
keeps rows small (the first layout, the whole 64-digit MAC in a rowid table plus an index on it,
cost the writer's second core 300-930 ms of every second at 3,000 entries a second). The short
key can name another subject's entries too (64 bits: a collision among millions of subjects is
unlikely, not impossible), so a lookup keeps only the entries whose subjects hold the whole MAC.
"""

from __future__ import annotations

import hashlib
import logging
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from pipelines.serving.audit_lines import line_at, parse_line, read_lines
from pipelines.serving.children import start_module

log = logging.getLogger(__name__)
CHUNK = 20_000  # entries indexed per transaction (keeps the index's write lock short)
LAYOUT = 4  # PRAGMA user_version of the index file; an index of another layout is rebuilt
KEY_DIGITS = 16


def index_path(audit_path: Path) -> Path:
    return audit_path.with_suffix(".index.sqlite")


def index_key(subject_hash: str) -> str:
    """The index's key for a subject MAC."""
    return subject_hash[:KEY_DIGITS]


class AccessIndex:
    def __init__(self, audit_path: Path) -> None:
        self.log_path = Path(audit_path)
        self.lock = threading.Lock()  # access-log questions may come from several threads
        self.con = sqlite3.connect(index_path(self.log_path), timeout=30,
                                   check_same_thread=False, isolation_level=None)
        _use_wal(self.con)
        self.con.execute("PRAGMA synchronous=NORMAL")
        if self.con.execute("PRAGMA user_version").fetchone()[0] == LAYOUT:
            return  # the usual case: no write lock taken (an indexer may hold it for a while)
        self.con.execute("BEGIN IMMEDIATE")
        try:
            if self.con.execute("PRAGMA user_version").fetchone()[0] != LAYOUT:
                # derived data: an index of an older layout is dropped and rebuilt from the log
                self.con.execute("DROP TABLE IF EXISTS access")
                self.con.execute("DROP TABLE IF EXISTS upto")
                self.con.execute("CREATE TABLE access (subject TEXT, seq INTEGER, "
                                 "offset INTEGER, PRIMARY KEY (subject, seq)) WITHOUT ROWID")
                # the last entry indexed, the last line read (where it starts, its digest) and
                # where the lines not read yet begin
                self.con.execute("CREATE TABLE upto (seq INTEGER, line_at INTEGER, "
                                 "line_digest TEXT, offset INTEGER)")
                self.con.execute("INSERT INTO upto VALUES (0, 0, NULL, 0)")
                self.con.execute(f"PRAGMA user_version = {LAYOUT}")
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def upto(self) -> tuple[int, int]:
        """(last indexed seq, byte offset in the log where the lines not read yet begin)."""
        return self.con.execute("SELECT seq, offset FROM upto").fetchone()

    def _still_there(self, line_start: int, digest: str | None, offset: int) -> bool:
        """Whether the last line read is still where it was: a log cut or rewritten below it
        (found and reported by `verify`) leaves the index pointing at other lines."""
        if digest is None:
            return True
        try:
            with open(self.log_path, "rb") as f:
                line = line_at(f, line_start)
        except FileNotFoundError:
            return False
        return line_start + len(line) == offset and _digest(line) == digest

    def catch_up(self, chunks: int | None = None) -> int:
        """Index the lines written since the last call (at most `chunks` chunks of CHUNK);
        returns how many lines it read. The lines are read and parsed before the write lock is
        taken, so the lock is held only while SQLite inserts."""
        done = 0
        while chunks is None or chunks > 0:
            seq, line_start, digest, offset = self.con.execute("SELECT * FROM upto").fetchone()
            rebuild = not self._still_there(line_start, digest, offset)
            if rebuild:
                log.warning("the audit log %s changed below its access index: the index is "
                            "built again (`huiliu audit verify` says what changed)",
                            self.log_path)
                seq, line_start, digest, offset = 0, 0, None, 0
            read_from, rows, lines = offset, [], 0
            for at, line in read_lines(self.log_path, offset, CHUNK):
                lines += 1
                offset, line_start, digest = at + len(line), at, _digest(line)
                entry = parse_line(line)  # not an entry: left out (verify reports the line)
                if entry is not None:
                    seq = entry["seq"]
                    rows += [(index_key(s), seq, at) for s in entry["subjects"]]
            self.con.execute("BEGIN IMMEDIATE")
            try:
                now = self.con.execute("SELECT offset FROM upto").fetchone()[0]
                if now == read_from or rebuild:
                    if rebuild:
                        self.con.execute("DELETE FROM access")
                    self.con.executemany("INSERT OR IGNORE INTO access VALUES (?, ?, ?)", rows)
                    self.con.execute("UPDATE upto SET seq = ?, line_at = ?, line_digest = ?, "
                                     "offset = ?", [seq, line_start, digest, offset])
                # else another indexer (of another service worker) got there first: read again
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            done += lines
            if lines < CHUNK:
                return done
            if chunks is not None:
                chunks -= 1
        return done

    def lines_about(self, subject_hash: str) -> list[bytes]:
        """The log lines the index names for the subject, then every line not read by the
        indexer yet (the caller keeps those that name the whole MAC)."""
        with self.lock:
            self.con.execute("BEGIN")  # one snapshot of rows and `upto`
            try:
                _, offset = self.upto()
                at = [r[0] for r in self.con.execute(
                    "SELECT offset FROM access WHERE subject = ? ORDER BY seq",
                    [index_key(subject_hash)])]
            finally:
                self.con.execute("COMMIT")
        if not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as f:
            found = [line_at(f, o) for o in at]
        return found + [line for _, line in read_lines(self.log_path, offset)]

    def close(self) -> None:
        self.con.close()


def _use_wal(con: sqlite3.Connection) -> None:
    """Switch a new index file to WAL. Two processes opening a new file at once (two service
    workers starting) can get "database is locked" from the switch without SQLite's busy
    timeout applying: it is retried for as long as that timeout would wait."""
    deadline = time.monotonic() + 30
    while True:
        try:
            con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _digest(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def indexed_rows(audit_path: Path) -> tuple[int, set[tuple[str, int, int]]] | None:
    """(offset of the first line not read yet, {(subject, seq, offset)}) as the index file holds
    them, in one snapshot; None when there is no index (of this layout) yet."""
    path = index_path(audit_path)
    if not path.exists():
        return None
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if con.execute("PRAGMA user_version").fetchone()[0] != LAYOUT:
            return None  # rebuilt when the log is next opened
        con.execute("BEGIN")
        upto = con.execute("SELECT offset FROM upto").fetchone()[0]
        rows = set(con.execute("SELECT subject, seq, offset FROM access").fetchall())
        con.execute("COMMIT")
    finally:
        con.close()
    return upto, rows


def run_indexer(audit_path: Path, stop_fd: int) -> None:
    """The indexer process's loop: catch up every `every` seconds until `stop_fd` reaches EOF
    (its parent closed it, or died), then once more.

    It runs at SCHED_IDLE: on a busy machine the index is the one thing that can wait. Indexing
    costs ~35 µs an entry here (random pages of the B-tree rewritten, parsing the lines), and at
    3,000 entries a second it took a third of the core that the audit writer and the service's
    clients share: under load, as a thread of the writer, it held the writer up by 13-46 ms at
    times. Far behind (LAG_BYTES of log not indexed: a data subject's access-log question then
    scans them all) it runs at normal priority until it has caught up; it looks after every
    chunk."""
    index = AccessIndex(audit_path)
    idle = True
    _set_idle(True)
    try:
        while True:
            try:
                more = index.catch_up(chunks=1) == CHUNK  # one chunk, then look at the lag
            except sqlite3.OperationalError as e:  # busy beyond the timeout: the next round
                log.warning("access-log index not caught up this round: %s", e)
                more = False
            behind = _log_size(audit_path) - index.upto()[1] > LAG_BYTES
            if behind == idle:  # behind and idle, or caught up and not idle
                idle = not behind
                _set_idle(idle)
            wait = 0 if more else INDEX_EVERY_S
            if select.select([stop_fd], [], [], wait)[0] and not os.read(stop_fd, 1):
                break
        index.catch_up()
    finally:
        index.close()


INDEX_EVERY_S = 1.0
LAG_BYTES = 16 * 2**20  # ~35,000 entries: an access-log question scans them in ~0.1 s


def _set_idle(idle: bool) -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE if idle else os.SCHED_OTHER, os.sched_param(0))
    except OSError as e:  # leaving SCHED_IDLE needs RLIMIT_NICE >= 20 when not root
        log.warning("indexer priority unchanged (%s): it catches up when the CPU is free", e)


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def start_indexer(audit_path: Path) -> subprocess.Popen:
    """The indexer as a process of its own (see run_indexer), stopped by closing its stdin."""
    return start_module(__name__, str(audit_path),
                        stdin=subprocess.PIPE)


if __name__ == "__main__":
    # interrupted with the service (Ctrl-C reaches the whole process group) it finishes when
    # its parent closes its stdin
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO)
    run_indexer(Path(sys.argv[1]), sys.stdin.fileno())
