"""The workbench over HTTP (Starlette, run by uvicorn): the page and its JSON API.

GET  /workbench                      the page (assets/workbench: committed, bundled JavaScript)
POST /api/login | /api/logout        a session for one purpose (and so one tier)
GET  /api/whoami | /api/schema       the session; the tier's tables, columns and comments
POST /api/queries                    check and queue a query (400 with the position when refused);
                                     with "wait": S, answered once it ends (200) or after S (202),
                                     with "rows": N, its first N rows when it is done
GET  /api/queries/{id}[?wait=S]      its state, once it ends or after S seconds (at most 30)
GET  /api/queries/{id}/rows          a page of its rows
POST /api/queries/{id}/cancel        stop it
GET  /api/queries/{id}/export        CSV (UTF-8 with BOM) or Parquet, re-run up to the export cap
GET  /api/history | /api/saved       the analyst's queries; saved queries and the node's analyses
POST /api/saved, DELETE /api/saved/{id}

Every call but login and the page needs `Authorization: Bearer <session token>`. Every query's
outcome is in the audit log before it is shown (service.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from pipelines import paths
from pipelines.catalog.model import load_catalog
from pipelines.serving.audit import AUDIT_LOG, AuditLog
from pipelines.serving.http.ratelimit import FailureBackoff
from pipelines.settings import Settings
from pipelines.workbench.executor import Executor
from pipelines.workbench.service import Workbench, WorkbenchError
from pipelines.workbench.sessions import Session
from pipelines.workbench.tier_plan import TierRefused

PAGE = paths.ASSETS / "workbench"
STATIC = {"workbench.js": (PAGE / "dist" / "workbench.js", "text/javascript"),
          "workbench.css": (PAGE / "workbench.css", "text/css")}
MAX_BODY = 256 * 1024  # an SQL text, a saved query
MAX_WAIT_S = 30.0


def _error(e: WorkbenchError) -> JSONResponse:
    return JSONResponse({"error": e.code, "message": e.message, "line": e.line,
                         "column": e.column}, status_code=e.status)


async def _body(request: Request) -> dict:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise WorkbenchError(413, "too_large", f"the request is over {MAX_BODY // 1024} KiB")
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise WorkbenchError(400, "bad_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise WorkbenchError(400, "bad_json", "the body must be a JSON object")
    return body


async def _wait(q, seconds) -> None:
    """Until the query ends (its outcome audited) or `seconds` (at most MAX_WAIT_S) pass: a
    client asks for a state with a wait rather than polling, and hears of the end at once."""
    try:
        wait = min(float(seconds or 0), MAX_WAIT_S)
    except (TypeError, ValueError):
        raise WorkbenchError(400, "bad_wait", "wait is a number of seconds") from None
    if wait > 0 and q.outcome is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(q.finished.wait(), wait)


def create_app(wb: Workbench) -> Starlette:
    logins = FailureBackoff(free=5)

    def session(request: Request) -> Session:
        auth = request.headers.get("authorization", "")
        return wb.session(auth.removeprefix("Bearer ").strip())

    def guarded(handler):
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except WorkbenchError as e:
                return _error(e)
            except TierRefused as e:  # a grant the list no longer allows
                return _error(WorkbenchError(403, "not_granted", str(e)))
            except FileNotFoundError:  # the tiers are being built or switched
                return _error(WorkbenchError(503, "tiers_unavailable", "the analysts' tiers are "
                                             "being built: retry in a minute"))
        return endpoint

    async def login(request: Request) -> Response:
        peer = request.client.host if request.client else ""
        if logins.wait_needed(peer):
            raise WorkbenchError(429, "too_many_failures", "too many failed logins from here: "
                                 "wait a minute and try again")
        body = await _body(request)
        try:
            s = await wb.login(str(body.get("credential", "")), str(body.get("purpose") or
                                                                    "ANALYTICS"),
                               body.get("tier") or None)
        except WorkbenchError:
            logins.failed(peer)
            raise
        logins.succeeded(peer)
        return JSONResponse({"token": s.token, **whoami_of(s)})

    def whoami_of(s: Session) -> dict:
        a = wb.analysts.get(s.analyst)
        names = {c.code: c.name_zh for c in wb.cat.consumers}
        return {**s.public(), "department_name": names.get(s.department, ""),
                "purposes": list(a.purposes) if a else [], "row_cap": wb.row_cap,
                "export_cap": wb.export_cap}

    async def logout(request: Request) -> Response:
        wb.sessions.end(session(request).token)
        return JSONResponse({"ok": True})

    async def whoami(request: Request) -> Response:
        return JSONResponse(whoami_of(session(request)))

    async def schema(request: Request) -> Response:
        return JSONResponse(wb.schema(session(request)))

    async def submit(request: Request) -> Response:
        s = session(request)
        body = await _body(request)
        q = await wb.submit(s, str(body.get("sql", "")))
        await _wait(q, body.get("wait"))
        st = wb.status(q)
        if st["state"] == "done" and isinstance(body.get("rows"), int) and body["rows"] > 0:
            st["rows"] = wb.rows(q, 0, body["rows"])["rows"]  # the first page, saving a request
        return Response(orjson.dumps(st), status_code=200 if q.outcome else 202,
                        media_type="application/json")

    async def status(request: Request) -> Response:
        s = session(request)
        q = wb.query(s, request.path_params["qid"])
        await _wait(q, request.query_params.get("wait"))
        return JSONResponse(wb.status(q))

    async def rows(request: Request) -> Response:
        s = session(request)
        q = wb.query(s, request.path_params["qid"])
        try:
            offset = int(request.query_params.get("offset", 0))
            limit = int(request.query_params.get("limit", 100))
        except ValueError:
            raise WorkbenchError(400, "bad_paging", "offset and limit are integers") from None
        return Response(orjson.dumps(wb.rows(q, offset, limit)), media_type="application/json")

    async def cancel(request: Request) -> Response:
        s = session(request)
        return JSONResponse(wb.cancel(wb.query(s, request.path_params["qid"])))

    async def export(request: Request) -> Response:
        s = session(request)
        q = wb.query(s, request.path_params["qid"])
        data, media, name = await wb.export(s, q, request.query_params.get("format", "csv"))
        return Response(data, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def history(request: Request) -> Response:
        s = session(request)
        return JSONResponse({"queries": wb.records.history(s.analyst)})

    async def saved(request: Request) -> Response:
        s = session(request)
        if request.method == "GET":
            return JSONResponse({"saved": wb.saved(s)})
        body = await _body(request)
        name, sql = str(body.get("name", "")).strip(), str(body.get("sql", ""))
        if not name or not sql.strip():
            raise WorkbenchError(400, "bad_saved_query", "a saved query needs a name and SQL")
        chart = body.get("chart") if isinstance(body.get("chart"), dict) else None
        return JSONResponse(wb.records.save(s.analyst, s.department, name[:200],
                                            str(body.get("description", ""))[:2000], sql,
                                            bool(body.get("shared")), chart))

    async def delete_saved(request: Request) -> Response:
        s = session(request)
        if not wb.records.delete(request.path_params["sid"], s.analyst):
            raise WorkbenchError(404, "unknown_saved_query", "no saved query of yours by that id")
        return JSONResponse({"ok": True})

    async def page(_: Request) -> Response:
        return FileResponse(PAGE / "index.html", media_type="text/html")

    async def static(request: Request) -> Response:
        found = STATIC.get(request.path_params["name"])
        if found is None:
            return Response(status_code=404)
        return FileResponse(found[0], media_type=found[1])

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "workers": wb.executor.workers_alive()})

    @contextlib.asynccontextmanager
    async def lifespan(_):
        yield
        wb.close()

    api = [("/api/login", login, ["POST"]), ("/api/logout", logout, ["POST"]),
           ("/api/whoami", whoami, ["GET"]), ("/api/schema", schema, ["GET"]),
           ("/api/queries", submit, ["POST"]), ("/api/queries/{qid}", status, ["GET"]),
           ("/api/queries/{qid}/rows", rows, ["GET"]),
           ("/api/queries/{qid}/cancel", cancel, ["POST"]),
           ("/api/queries/{qid}/export", export, ["GET"]),
           ("/api/history", history, ["GET"]), ("/api/saved", saved, ["GET", "POST"]),
           ("/api/saved/{sid}", delete_saved, ["DELETE"])]
    return Starlette(lifespan=lifespan, routes=[
        *(Route(path, guarded(h), methods=m) for path, h, m in api),
        Route("/workbench", page, methods=["GET"]),
        Route("/workbench/static/{name}", static, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])


def app_from_env() -> Starlette:
    """uvicorn factory: `uvicorn --factory pipelines.workbench.http.app:app_from_env`."""
    s = Settings()
    home = Path(s.home)
    executor = Executor(workers=s.workbench_workers, timeout_s=s.workbench_timeout_seconds,
                        memory_limit=s.workbench_memory_limit,
                        threads=s.workbench_threads or len(os.sched_getaffinity(0)))
    audit = AuditLog(home / "serving" / AUDIT_LOG)
    wb = Workbench(home, load_catalog(), executor, audit, s.workbench_row_cap,
                   s.workbench_export_cap)
    return create_app(wb)

