"""The workbench's state and rules, without HTTP: log in, check, run, audit, page, export.

Every query is checked by the parser (sql_guard) against the tables of the analyst's tier before
anything runs, then run by the executor's workers on the tier file alone. Its outcome (done,
failed, timed out, cancelled) is written to the audit log before the page or the CLI can see a
row of it; a refusal is written before the refusal is answered; an export before its file is sent.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.catalog.model import Catalog, load_catalog
from pipelines.serving.audit import AuditLog
from pipelines.workbench import exports, sql_guard
from pipelines.workbench.analyses import guard_passes, shared_analyses
from pipelines.workbench.analysts import Analyst, Analysts
from pipelines.workbench.executor import Executor, Outcome
from pipelines.workbench.records import Records
from pipelines.workbench.sessions import Session, Sessions
from pipelines.workbench.tier_plan import ANALYTICS, IDENTIFIED, STATISTICAL, TierRefused
from pipelines.workbench.tier_schema import TierSchema
from pipelines.workbench.tiers import add_tier, current_tiers, workbench_dir

log = logging.getLogger(__name__)
FINISHED_KEPT = 500  # queries whose results are kept in memory for paging
VERDICTS_KEPT = 1000  # the guard's verdicts on statements accepted
MAX_REMEMBERED_SQL = 8 * 1024  # longer statements are checked each time (bounds the memory)
UNFINISHED_PER_ANALYST = 10  # queued or running queries of one analyst
MAX_RECORDED_SQL = 8 * 1024  # of a refused statement, in the history (the audit log has it all)
MAX_LOGIN_TEXT = 64  # of a purpose or tier sent with a login, in its audit entry
HISTORY_DELAY_S = 0.05


class WorkbenchError(Exception):
    """A request the workbench refuses: `status` (HTTP), `code`, a message saying what to do."""

    def __init__(self, status: int, code: str, message: str, line: int | None = None,
                 column: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.line, self.column = line, column


@dataclass
class Query:
    id: str
    session: Session
    sql: str
    checked: sql_guard.Checked
    job: str
    submitted: float = field(default_factory=time.monotonic)
    outcome: Outcome | None = None  # set once audited: only then is anything of it shown
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class Workbench:
    def __init__(self, home: Path, cat: Catalog, executor: Executor, audit: AuditLog,
                 row_cap: int, export_cap: int) -> None:
        self.home, self.cat, self.executor, self.audit = home, cat, executor, audit
        self.row_cap, self.export_cap = row_cap, export_cap
        self.analysts = Analysts(workbench_dir(home))
        self.records = Records(workbench_dir(home))
        self.sessions = Sessions()
        self.schemas = TierSchema()
        self.queries: dict[str, Query] = {}
        self._verdicts: dict[tuple[Path, str], sql_guard.Checked] = {}  # oldest first

    # -- sessions ------------------------------------------------------------------------------
    async def login(self, credential: str, purpose: str, tier: str | None) -> Session:
        purpose, tier = purpose[:MAX_LOGIN_TEXT], (tier or "")[:MAX_LOGIN_TEXT] or None
        analyst = await asyncio.to_thread(self.analysts.authenticate, credential)
        if analyst is None:
            self._audit_login(None, purpose, tier or "", "refused", "unknown or revoked credential")
            raise WorkbenchError(401, "unauthenticated", "the credential is unknown, wrong or "
                                 "revoked: ask the hub's administrator for a new one")
        tier = tier or (STATISTICAL if purpose == ANALYTICS else IDENTIFIED)
        if not analyst.may_use(tier, purpose):
            self._audit_login(analyst, purpose, tier, "refused", "not granted")
            raise WorkbenchError(403, "not_granted", f"{analyst.analyst} may use the "
                                 f"{'/'.join(analyst.tiers)} tier(s) for purposes "
                                 f"{', '.join(analyst.purposes)}, not the {tier} tier for "
                                 f"{purpose}")
        try:
            await asyncio.to_thread(self._tier_path, tier, analyst.department, purpose)
        except TierRefused as e:
            self._audit_login(analyst, purpose, tier, "refused", str(e))
            raise WorkbenchError(403, "not_granted", str(e)) from None
        self._audit_login(analyst, purpose, tier, "login", "")
        return self.sessions.start(analyst.analyst, analyst.department, purpose, tier)

    def session(self, token: str) -> Session:
        s = self.sessions.get(token)
        a = self.analysts.get(s.analyst) if s else None
        if (s is None or a is None or a.changed_at > s.began_at
                or a.department != s.department or not a.may_use(s.tier, s.purpose)):
            if s is not None:
                self.sessions.end(s.token)
            raise WorkbenchError(401, "unauthenticated", "log in again: the session ended "
                                 "(logged out, idle for 30 minutes, or the analyst's credential "
                                 "or grant changed)")
        return s

    def _tier_path(self, tier: str, department: str, purpose: str) -> Path:
        current = current_tiers(self.home)
        found = current.path_of(tier, department, purpose) if current else None
        if found is None:  # a grant issued after the last publish: built now, once, from the
            found = add_tier(load_catalog(), self.home, tier, department, purpose)  # list now
        return found

    def tier_of(self, s: Session) -> Path:
        return self._tier_path(s.tier, s.department, s.purpose)

    # -- queries -------------------------------------------------------------------------------
    async def submit(self, s: Session, sql: str) -> Query:
        path = self.tier_of(s)
        qid = "q-" + secrets.token_hex(8)
        if sum(q.outcome is None and q.session.analyst == s.analyst
               for q in self.queries.values()) >= UNFINISHED_PER_ANALYST:
            self._audit_query(s, qid, sql, None, "refused", error="too_many_queries")
            raise WorkbenchError(429, "too_many_queries", f"{UNFINISHED_PER_ANALYST} of your "
                                 "queries are queued or running: wait for one, or cancel one")
        try:
            checked = await self._checked(sql, path)
        except sql_guard.Refused as e:
            self._audit_query(s, qid, sql, None, "refused", error=f"{e.code}: {e.message}")
            self.records.record(qid, s.analyst, sql[:MAX_RECORDED_SQL], "refused", 0, 0, s.tier,
                                s.purpose)
            raise WorkbenchError(400, "refused", e.message, e.line, e.column) from None
        job = self.executor.submit(s.analyst, path, sql, self.row_cap)
        q = Query(qid, s, sql, checked, job)
        self.queries[qid] = q
        asyncio.get_running_loop().create_task(self._finish(q))
        self._forget_old()
        return q

    async def _checked(self, sql: str, path: Path) -> sql_guard.Checked:
        """The guard's verdict, remembered per tier file and SQL text (short statements only): a
        tier file never changes, and analysts re-run the same statements (saved queries, shared
        analyses). Parsing runs beside the event loop: a long statement takes the parser tens
        of milliseconds, other analysts' answers must not wait for it."""
        key = (path, sql)
        found = self._verdicts.pop(key, None)
        if found is None:  # a Refused is raised, and not remembered
            found = await asyncio.to_thread(sql_guard.check, sql, self.schemas.tables(path))
        if len(sql) > MAX_REMEMBERED_SQL:
            return found
        self._verdicts[key] = found
        while len(self._verdicts) > VERDICTS_KEPT:
            del self._verdicts[next(iter(self._verdicts))]
        return found

    async def _finish(self, q: Query) -> None:
        outcome = await self.executor.outcome(q.job)
        try:
            self._audit_query(q.session, q.id, q.sql, q.checked, outcome.state,
                              rows=_rows(outcome), truncated=outcome.truncated,
                              elapsed_s=outcome.elapsed_s, error=outcome.error,
                              digest=outcome.digest)
        except Exception:  # an answer whose entry could not be written is never shown
            log.exception("audit entry of query %s could not be written", q.id)
            outcome = Outcome(q.job, "failed", None, False, outcome.elapsed_s, outcome.queued_s,
                              "the audit log could not record this query: nothing is shown")
        q.outcome = outcome
        q.finished.set()  # audited: now it may be shown
        # the analyst's history (a convenience, not the record) once the answer is on its way
        asyncio.get_running_loop().call_later(
            HISTORY_DELAY_S, self.records.record, q.id, q.session.analyst, q.sql, outcome.state,
            _rows(outcome), int(outcome.elapsed_s * 1000), q.session.tier, q.session.purpose)

    def query(self, s: Session, qid: str) -> Query:
        q = self.queries.get(qid)
        if q is None or q.session.token != s.token:  # a query is seen in its own session only
            raise WorkbenchError(404, "unknown_query", f"no query {qid} of this session is kept "
                                 "here: run it again")
        return q

    def status(self, q: Query) -> dict:
        out = {"id": q.id, "sql": q.sql, "position": None, "elapsed_ms": 0, "row_count": 0,
               "truncated": False, "columns": [], "error": None}
        if q.outcome is None:
            state = self.executor.state(q.job)
            state = state if state in ("queued", "running") else "running"  # being audited
            out.update(state=state, position=self.executor.position(q.job),
                       elapsed_ms=int((time.monotonic() - q.submitted) * 1000))
            return out
        o = q.outcome
        out.update(state=o.state, elapsed_ms=int(o.elapsed_s * 1000), row_count=_rows(o),
                   truncated=o.truncated)
        if o.table is not None:
            out["columns"] = [{"name": f.name, "type": str(f.type)} for f in o.table.schema]
        if o.error:
            line, column = _position(o.error)
            out["error"] = {"message": o.error, "line": line, "column": column}
        return out

    def rows(self, q: Query, offset: int, limit: int) -> dict:
        if q.outcome is None or q.outcome.table is None:
            raise WorkbenchError(409, "no_result", "the query has no result (yet): see its state")
        t = q.outcome.table
        page = t.slice(max(0, offset), max(0, min(limit, 1000)))
        rows = [list(r.values()) for r in page.to_pylist()]
        return {"rows": _jsonable(rows), "offset": offset, "total": t.num_rows}

    def cancel(self, q: Query) -> dict:
        """The state after the request: `cancelled`, or how it ended when it ended first (a
        query that finished and waits only for its audit entry reads `running` until then)."""
        if q.outcome is None and self.executor.cancel(q.job):
            return {"state": "cancelled"}
        return {"state": q.outcome.state if q.outcome else "running"}

    async def export(self, s: Session, q: Query, fmt: str) -> tuple[bytes, str, str]:
        """(file, media type, file name) of the query re-run with the export cap."""
        if fmt not in exports.FORMATS:
            raise WorkbenchError(400, "bad_format", "export as csv or parquet")
        export_id = f"{q.id}-export-{secrets.token_hex(3)}"
        job = self.executor.submit(s.analyst, self.tier_of(s), q.sql, self.export_cap)
        outcome = await self.executor.outcome(job)
        if outcome.state != "done":
            self._audit_query(s, export_id, q.sql, q.checked, f"export_{outcome.state}",
                              elapsed_s=outcome.elapsed_s, error=outcome.error)
            raise WorkbenchError(409, "export_failed", outcome.error or outcome.state)
        data, media = exports.encode(outcome.table, fmt)
        self._audit_query(s, export_id, q.sql, q.checked, "exported",
                          rows=outcome.table.num_rows, truncated=outcome.truncated,
                          elapsed_s=outcome.elapsed_s, answer=data, export=fmt)
        return data, media, f"huiliu-{q.id}.{fmt}"

    # -- schema, analyses ----------------------------------------------------------------------
    def schema(self, s: Session) -> dict:
        return {"tables": self.schemas.described(self.tier_of(s))}

    def saved(self, s: Session) -> list[dict]:
        passes = guard_passes(self.schemas.tables(self.tier_of(s)))
        return shared_analyses(passes) + self.records.visible(s.analyst, s.department)

    # -- audit ---------------------------------------------------------------------------------
    def _audit_query(self, s: Session, qid: str, sql: str, checked: sql_guard.Checked | None,
                     outcome: str, *, rows: int = 0, truncated: bool = False,
                     elapsed_s: float = 0.0, error: str | None = None, answer: bytes = b"",
                     digest: str = "", export: str | None = None) -> None:
        detail = {"door": "workbench", "analyst": s.analyst, "tier": s.tier, "outcome": outcome,
                  "sql": sql, "tables": list(checked.tables) if checked else [],
                  "rows": rows, "truncated": truncated, "duration_ms": int(elapsed_s * 1000)}
        if error:
            detail["error"] = error
        if export:
            detail["export"] = export
        self.audit.append(consumer=s.department, purpose=s.purpose,
                          template=f"workbench.{s.tier}", case_id=qid, subjects=[],
                          released=list(checked.columns) if checked else [], withheld=[],
                          answer=answer, answer_digest=digest or None, detail=detail)

    def _audit_login(self, a: Analyst | None, purpose: str, tier: str, outcome: str,
                     reason: str) -> None:
        detail = {"door": "workbench", "analyst": a.analyst if a else "", "tier": tier,
                  "outcome": outcome, "sql": "", "tables": [], "rows": 0, "truncated": False,
                  "duration_ms": 0}
        if reason:
            detail["error"] = reason
        self.audit.append(consumer=a.department if a else "", purpose=purpose,
                          template="workbench.login", case_id="login-" + secrets.token_hex(4),
                          subjects=[], released=[], withheld=[], answer=b"", detail=detail)

    def _forget_old(self) -> None:
        done = [qid for qid, q in self.queries.items() if q.outcome is not None]
        for qid in done[:-FINISHED_KEPT]:
            del self.queries[qid]

    def close(self) -> None:
        self.executor.close()
        self.analysts.close()
        self.records.close()
        self.audit.close()


_LINE = re.compile(r"\nLINE (\d+): (.*)\n( *)\^")


def _position(error: str) -> tuple[int | None, int | None]:
    """Where DuckDB's message points (its "LINE n:" and the caret under it), 1-based."""
    m = _LINE.search(error)
    if m is None:
        return None, None
    prefix = len(f"LINE {m.group(1)}: ")
    return int(m.group(1)), len(m.group(3)) - prefix + 1


def _rows(o: Outcome) -> int:
    return o.table.num_rows if o.table is not None else 0


def _jsonable(rows: list[list]) -> list[list]:
    """Values JSON can carry: dates and decimals as text, bytes as hex."""
    out = []
    for r in rows:
        out.append([v if v is None or isinstance(v, (str, int, float, bool)) else
                    v.hex() if isinstance(v, bytes) else str(v) for v in r])
    return out
