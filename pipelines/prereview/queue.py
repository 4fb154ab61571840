"""The officers' queue of pre-reviewed applications (<home>/serving/prereviews.sqlite): each
pre-review as the department received it (verdict and findings: nothing a prefill would not have
released to it), and the officer's own decision beside the machine's, with who decided, when
and why. A department sees and decides only its own applications."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path

import orjson

DECISIONS = ("approve", "return", "refer")  # 批准 / 退回补正 / 转交（上级或协同部门）
QUEUE_FILE = "prereviews.sqlite"

_DDL = """CREATE TABLE IF NOT EXISTS prereviews (
    department TEXT NOT NULL, case_id TEXT NOT NULL, template TEXT NOT NULL,
    verdict TEXT NOT NULL, body BLOB NOT NULL, received_at TEXT NOT NULL,
    decision TEXT, decided_by TEXT, decided_at TEXT, reason TEXT,
    PRIMARY KEY (department, case_id))"""


class QueueError(ValueError):
    """A decision that cannot be recorded; `status` and `code` for the answer."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class Queue:
    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        # the audit log is the record; the queue is the officers' working list: a commit need not
        # wait for the disk (an fsync per case capped pre-review near 1,900/s: BENCHMARKS.md)
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.con.execute(_DDL)
        self.lock = threading.Lock()

    def add(self, department: str, body: dict) -> None:
        """A new pre-review of a case replaces the earlier one and is open again, decided or
        not (a case returned for correction comes back resubmitted); earlier decisions stay in
        the audit log."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self.lock:
            self.con.execute(
                """INSERT INTO prereviews VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL)
                   ON CONFLICT (department, case_id) DO UPDATE SET template = excluded.template,
                   verdict = excluded.verdict, body = excluded.body,
                   received_at = excluded.received_at, decision = NULL, decided_by = NULL,
                   decided_at = NULL, reason = NULL""",
                [department, body["case_id"], body["template"], body["verdict"],
                 orjson.dumps(body), now])

    def items(self, department: str, open_only: bool = True, limit: int = 200) -> list[dict]:
        with self.lock:
            rows = self.con.execute(
                f"""SELECT case_id, template, verdict, body, received_at, decision, decided_by,
                    decided_at, reason FROM prereviews WHERE department = ?
                    {'AND decision IS NULL' if open_only else ''}
                    ORDER BY verdict = '可秒批', received_at DESC LIMIT ?""",
                [department, limit]).fetchall()
        return [{"case_id": c, "template": t, "verdict": v, "findings":
                 orjson.loads(b)["findings"], "received_at": at, "decision": d,
                 "decided_by": by, "decided_at": when, "reason": why}
                for c, t, v, b, at, d, by, when, why in rows]

    def decide(self, department: str, case_id: str, decision: str, officer: str,
               reason: str) -> dict:
        if decision not in DECISIONS:
            raise QueueError(400, "invalid_request", f"decision is one of {DECISIONS}")
        if not officer.strip() or not reason.strip():
            raise QueueError(400, "invalid_request", "say who decided (officer) and why "
                             "(reason): the decision is kept beside the machine's verdict")
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self.lock:
            row = self.con.execute("SELECT verdict, decision FROM prereviews WHERE "
                                   "department = ? AND case_id = ?",
                                   [department, case_id]).fetchone()
            if row is None:
                raise QueueError(404, "unknown_case", "no pre-review of that case for this "
                                 "department")
            if row[1] is not None:
                raise QueueError(409, "already_decided", f"decided already: {row[1]}")
            self.con.execute("UPDATE prereviews SET decision = ?, decided_by = ?, "
                             "decided_at = ?, reason = ? WHERE department = ? AND case_id = ?",
                             [decision, officer, now, reason, department, case_id])
        return {"case_id": case_id, "machine_verdict": row[0], "decision": decision,
                "decided_by": officer, "decided_at": now, "reason": reason}

    def close(self) -> None:
        self.con.close()
