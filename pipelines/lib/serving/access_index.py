"""The access log's index: subject hash -> audit entries, kept in a file of its own beside the log.

Derived data, rebuilt from the log at any time. It is brought up to date off the request path (by
the audit log's background thread, and before every access-log question): a subject index written
with every entry cost ~50 µs an entry (random B-tree pages in the WAL), more than the rest of the
entry. Entries not indexed yet are found by scanning the few after `upto`. `huiliu audit verify`
compares the index with the entries, so a row removed to hide an access is found.

Layout: one WITHOUT ROWID B-tree keyed by (the first 16 hex digits of the subject MAC, sequence).
Keys of a MAC are random, so every catch-up rewrites a page per key it adds, wherever the B-tree
has more leaves than the round adds keys; the first layout (the whole 64-digit MAC in a rowid
table plus an index on it: two trees, ~150 bytes a row) cost the writer's second core 300-930 ms
of every second at 3,000 entries a second. The short key can name another subject's entries
too (64 bits: a collision among millions of subjects is unlikely, not impossible), so a lookup
keeps only the entries whose subjects hold the whole MAC.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

CHUNK = 20_000  # entries indexed per transaction (keeps the index's write lock short)


def index_path(audit_path: Path) -> Path:
    return audit_path.with_suffix(".index.sqlite")


LAYOUT = 2  # PRAGMA user_version of the index file; an index of another layout is rebuilt
KEY_DIGITS = 16


def index_key(subject_hash: str) -> str:
    """The index's key for a subject MAC (the catch-up's SQL takes the same prefix)."""
    return subject_hash[:KEY_DIGITS]


class AccessIndex:
    def __init__(self, audit_path: Path) -> None:
        self.con = sqlite3.connect(f"file:{index_path(audit_path)}", uri=True, timeout=30,
                                   check_same_thread=False, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.con.execute("ATTACH DATABASE ? AS log", [f"file:{audit_path}?mode=ro"])
        self.con.execute("BEGIN IMMEDIATE")
        try:
            if self.con.execute("PRAGMA user_version").fetchone()[0] != LAYOUT:
                # derived data: an index of an older layout is dropped and rebuilt from the log
                self.con.execute("DROP TABLE IF EXISTS access")
                self.con.execute("DROP TABLE IF EXISTS upto")
                self.con.execute("CREATE TABLE access (subject TEXT, seq INTEGER, "
                                 "PRIMARY KEY (subject, seq)) WITHOUT ROWID")
                self.con.execute("CREATE TABLE upto (seq INTEGER)")
                self.con.execute("INSERT INTO upto VALUES (0)")
                self.con.execute(f"PRAGMA user_version = {LAYOUT}")
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

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
                    self.con.execute(f"""INSERT OR IGNORE INTO access
                        SELECT substr(j.value, 1, {KEY_DIGITS}), a.seq
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
            "AND x.seq <= ? AND instr(a.subjects, ?) > 0 UNION ALL SELECT * FROM log.audit "
            "WHERE seq > ? AND instr(subjects, ?) > 0 ORDER BY 1",
            [index_key(subject_hash), upto, subject_hash, upto, subject_hash]).fetchall()

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
