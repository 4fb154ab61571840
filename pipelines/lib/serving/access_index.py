"""The access log's index: subject hash -> audit entries, kept in a file of its own beside the log.

Derived data, rebuilt from the log at any time. It is brought up to date off the request path (by
the audit log's background thread, and before every access-log question): a subject index written
with every entry cost ~50 µs an entry (random B-tree pages in the WAL), more than the rest of the
entry. Entries not indexed yet are found by scanning the few after `upto`. `huiliu audit verify`
compares the index with the entries, so a row removed to hide an access is found.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

CHUNK = 20_000  # entries indexed per transaction (keeps the index's write lock short)


def index_path(audit_path: Path) -> Path:
    return audit_path.with_suffix(".index.sqlite")


class AccessIndex:
    def __init__(self, audit_path: Path) -> None:
        self.con = sqlite3.connect(f"file:{index_path(audit_path)}", uri=True, timeout=30,
                                   check_same_thread=False, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.con.execute("ATTACH DATABASE ? AS log", [f"file:{audit_path}?mode=ro"])
        self.con.execute("CREATE TABLE IF NOT EXISTS access (subject TEXT, seq INTEGER)")
        self.con.execute("CREATE INDEX IF NOT EXISTS access_by_subject ON access (subject, seq)")
        self.con.execute("CREATE TABLE IF NOT EXISTS upto (seq INTEGER)")
        if self.con.execute("SELECT count(*) FROM upto").fetchone()[0] == 0:
            self.con.execute("INSERT INTO upto VALUES (0)")

    def upto(self) -> int:
        return self.con.execute("SELECT seq FROM upto").fetchone()[0]

    def catch_up(self) -> int:
        """Index the entries written since the last call; returns how many. One SQL statement a
        chunk: SQLite runs it with the GIL released, so the service's event loop never waits
        for this thread (Python work here made the loop wait up to the 5 ms switch interval)."""
        done = 0
        while True:
            self.con.execute("BEGIN IMMEDIATE")
            try:
                start = self.upto()
                end = self.con.execute("SELECT max(seq) FROM (SELECT seq FROM log.audit "
                                       "WHERE seq > ? ORDER BY seq LIMIT ?)",
                                       [start, CHUNK]).fetchone()[0]
                if end is not None:
                    self.con.execute("""INSERT INTO access SELECT j.value, a.seq
                        FROM log.audit a, json_each(a.subjects) j
                        WHERE a.seq > ? AND a.seq <= ? ORDER BY 1, 2""", [start, end])
                    self.con.execute("UPDATE upto SET seq = ?", [end])
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            if end is None:
                return done
            done += end - start

    def entries_about(self, subject_hash: str) -> list[tuple]:
        """The audit rows naming the subject: indexed ones, then the not yet indexed tail."""
        upto = self.upto()
        return self.con.execute(
            "SELECT a.* FROM access x JOIN log.audit a USING (seq) WHERE x.subject = ? "
            "AND x.seq <= ? UNION ALL SELECT * FROM log.audit WHERE seq > ? "
            "AND instr(subjects, ?) > 0 ORDER BY 1", [subject_hash, upto, upto,
                                                      subject_hash]).fetchall()

    def close(self) -> None:
        self.con.close()


def indexed_pairs(audit_path: Path) -> tuple[int, set[tuple[str, int]]] | None:
    """(upto, {(subject, seq)}) as the index file holds them; None when there is no index yet."""
    path = index_path(audit_path)
    if not path.exists():
        return None
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        upto = con.execute("SELECT seq FROM upto").fetchone()[0]
        pairs = set(con.execute("SELECT subject, seq FROM access").fetchall())
    finally:
        con.close()
    return upto, pairs
