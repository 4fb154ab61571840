"""Analysts' query history and saved queries (<home>/workbench/workbench.sqlite).

History is the analyst's own convenience list (the audit log is the record that counts). A saved
query is private to its owner or shared with the owner's department; the node's own analyses
(catalogs/workbench/analyses.yaml) are shared with everyone and cannot be deleted."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sqlite3
from pathlib import Path

RECORDS_FILE = "workbench.sqlite"
HISTORY_KEPT = 200  # per analyst


class Records:
    def __init__(self, workbench_dir: Path) -> None:
        workbench_dir.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(workbench_dir / RECORDS_FILE, check_same_thread=False,
                                   isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("""CREATE TABLE IF NOT EXISTS history (id TEXT PRIMARY KEY,
            analyst TEXT NOT NULL, at TEXT NOT NULL, sql TEXT NOT NULL, state TEXT NOT NULL,
            row_count INTEGER, elapsed_ms INTEGER, tier TEXT, purpose TEXT)""")
        self.con.execute("""CREATE TABLE IF NOT EXISTS saved (id TEXT PRIMARY KEY,
            owner TEXT NOT NULL, department TEXT NOT NULL, name TEXT NOT NULL,
            description TEXT NOT NULL, sql TEXT NOT NULL, shared INTEGER NOT NULL,
            chart TEXT, created_at TEXT NOT NULL)""")

    def record(self, qid: str, analyst: str, sql: str, state: str, row_count: int,
               elapsed_ms: int, tier: str, purpose: str) -> None:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.con.execute("INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [qid, analyst, now, sql, state, row_count, elapsed_ms, tier, purpose])
        self.con.execute("""DELETE FROM history WHERE analyst = ? AND id NOT IN (SELECT id FROM
            history WHERE analyst = ? ORDER BY at DESC, rowid DESC LIMIT ?)""",
                         [analyst, analyst, HISTORY_KEPT])

    def history(self, analyst: str, limit: int = 50) -> list[dict]:
        rows = self.con.execute("""SELECT id, sql, state, at, row_count, elapsed_ms FROM history
            WHERE analyst = ? ORDER BY at DESC, rowid DESC LIMIT ?""", [analyst, limit])
        return [dict(zip(("id", "sql", "state", "at", "row_count", "elapsed_ms"), r, strict=True))
                for r in rows]

    def save(self, owner: str, department: str, name: str, description: str, sql: str,
             shared: bool, chart: dict | None) -> dict:
        sid = "s-" + secrets.token_hex(6)
        self.con.execute("INSERT INTO saved VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [sid, owner, department, name, description, sql, int(shared),
                          json.dumps(chart) if chart else None,
                          dt.datetime.now(dt.UTC).isoformat(timespec="seconds")])
        return self.saved_item(sid)

    def saved_item(self, sid: str) -> dict | None:
        row = self.con.execute("SELECT id, owner, department, name, description, sql, shared, "
                               "chart FROM saved WHERE id = ?", [sid]).fetchone()
        return _saved(row) if row else None

    def visible(self, analyst: str, department: str) -> list[dict]:
        rows = self.con.execute("""SELECT id, owner, department, name, description, sql, shared,
            chart FROM saved WHERE owner = ? OR (shared = 1 AND department = ?)
            ORDER BY name""", [analyst, department])
        return [_saved(r) for r in rows]

    def delete(self, sid: str, owner: str) -> bool:
        return self.con.execute("DELETE FROM saved WHERE id = ? AND owner = ?",
                                [sid, owner]).rowcount > 0

    def close(self) -> None:
        self.con.close()


def _saved(row) -> dict:
    return {"id": row[0], "owner": row[1], "department": row[2], "name": row[3],
            "description": row[4], "sql": row[5], "shared": bool(row[6]),
            "chart": json.loads(row[7]) if row[7] else None}
