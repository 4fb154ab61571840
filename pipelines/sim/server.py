"""HTTP surface of the simulator (Starlette) and its uvicorn runner.

API (token-scoped to a node): POST /oauth/token; GET /api/v1/resources/{R}/changes,
/snapshots, /snapshots/{id}; POST /api/v1/objections, GET /api/v1/objections/answers. Admin
(loopback only, no auth): /admin/advance, /admin/status, /admin/faults, /admin/defects,
/admin/truth; /healthz.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
import threading
import time
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipelines.sim.config import SimConfig
from pipelines.sim.faults import RateLimiter
from pipelines.sim.feed import CursorError, decode_cursor, encode_cursor, page_body
from pipelines.sim.objections import RESOURCES as OBJECTION_RESOURCES
from pipelines.sim.objections import InvalidObjection, parse_body
from pipelines.sim.records import API_RESOURCES, BULK_RESOURCES
from pipelines.sim.simulator import Simulator

log = logging.getLogger(__name__)
LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}
_CLIENT_RE = re.compile(r"^node-(\d{6})$")


def _json(data, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json",
                    headers=headers)


def _err(status: int, error: str, headers: dict | None = None, **extra) -> Response:
    return _json({"error": error, **extra}, status, headers)


class Tokens:
    def __init__(self, ttl: int):
        self.ttl = ttl
        self._tokens: dict[str, tuple[str, str, float]] = {}  # token -> (client, node, expiry)
        self._lock = threading.Lock()

    def issue(self, client: str, node: str) -> str:
        tok = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._tokens = {k: v for k, v in self._tokens.items() if v[2] > now}
            self._tokens[tok] = (client, node, now + self.ttl)
        return tok

    def check(self, header: str | None) -> tuple[str, str] | None:
        if not header or not header.startswith("Bearer "):
            return None
        entry = self._tokens.get(header[7:].strip())
        if entry is None or entry[2] <= time.monotonic():
            return None
        return entry[0], entry[1]


class FaultMiddleware:
    """Transport faults on /api/ requests, decided before routing: slow, http_5xx, http_429,
    drop_connection (the connection is aborted without any response)."""

    def __init__(self, app, sim: Simulator):
        self.app = app
        self.sim = sim

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            return await self.app(scope, receive, send)
        fault = self.sim.faults.pick_api()
        rates = self.sim.faults.rates
        if fault == "slow":
            await asyncio.sleep(rates["slow_seconds"])
        elif fault in ("http_5xx", "http_429"):
            if fault == "http_5xx":
                resp = _err(503, "service_unavailable", fault="http_5xx")
            else:
                resp = _err(429, "rate_limited", {"Retry-After": str(int(rates["retry_after"]))},
                            fault="http_429")
            return await resp(scope, receive, send)
        elif fault == "drop_connection":
            cycle = getattr(send, "__self__", None)
            transport = getattr(cycle, "transport", None)
            if transport is not None:
                cycle.disconnected = True  # uvicorn: nothing more to send on this request
                transport.abort()
                return None
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise ConnectionAbortedError("drop_connection fault")
        return await self.app(scope, receive, send)


class NodeApi:
    """The token-scoped API a node calls: OAuth token, change feeds and snapshots of the API
    resources, objections and their answers. Every data endpoint checks the token, the client's
    rate limit and the expire_token fault first (`authorize`)."""

    def __init__(self, sim: Simulator):
        self.sim = sim
        self.cfg = sim.cfg
        self.tokens = Tokens(sim.cfg.token_ttl)
        self.limiter = RateLimiter(sim.cfg.rate_limit)

    def routes(self) -> list[Route]:
        return [
            Route("/oauth/token", self.token, methods=["POST"]),
            Route("/api/v1/resources/{resource}/changes", self.changes),
            Route("/api/v1/resources/{resource}/snapshots", self.snapshots),
            Route("/api/v1/resources/{resource}/snapshots/{snapshot_id}", self.snapshot_page),
            Route("/api/v1/objections", self.objection, methods=["POST"]),
            Route("/api/v1/objections/answers", self.objection_answers),
        ]

    # --- checks shared by the endpoints ----------------------------------------------------------
    def authorize(self, request: Request):
        """(client, node) or an error response: token, rate limit, expire_token fault."""
        who = self.tokens.check(request.headers.get("authorization"))
        if who is None:
            return _err(401, "invalid_token")
        ok, wait = self.limiter.allow(who[0])
        if not ok:
            return _err(429, "rate_limited", {"Retry-After": str(max(1, int(wait + 0.999)))})
        if self.sim.faults.rates["expire_token"] > 0 and self.sim.faults.pick_expire():
            return _err(401, "invalid_token", fault="expire_token")
        return who

    def guard(self, request: Request):
        """(client, node, resource) or an error response."""
        who = self.authorize(request)
        if isinstance(who, Response):
            return who
        resource = request.path_params["resource"].upper()
        if resource in BULK_RESOURCES:
            return _err(403, "bulk_resource",
                        detail=f"{resource} is delivered as bulk file drops, not over the API")
        if resource not in API_RESOURCES:
            return _err(404, "unknown_resource", detail=f"known: {list(API_RESOURCES)}")
        return who[0], who[1], resource

    @staticmethod
    def paging(request: Request):
        """(sequence number, limit) from the cursor and limit parameters, or an error response."""
        try:
            seq = decode_cursor(request.query_params.get("cursor"))
        except CursorError:
            return _err(400, "invalid_cursor")
        raw = request.query_params.get("limit") or "5000"
        try:
            limit = int(raw)
        except ValueError:
            limit = 0
        if not 1 <= limit <= 10000:
            return _err(400, "invalid_limit", detail="limit must be 1..10000")
        return seq, limit

    def paged(self, request: Request):
        """Auth, resource and paging checks shared by the paged endpoints."""
        g = self.guard(request)
        if isinstance(g, Response):
            return g
        p = self.paging(request)
        if isinstance(p, Response):
            return p
        return g[1], g[2], p[0], p[1]

    # --- endpoints -------------------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        cfg = self.cfg
        body = (await request.body()).decode("utf-8", "replace")
        form = {k: v[0] for k, v in parse_qs(body).items()}
        cid, secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic ") and not cid:
            try:
                cid, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            except Exception:  # noqa: BLE001
                cid = None
        if form.get("grant_type") != "client_credentials":
            return _err(400, "unsupported_grant_type")
        m = _CLIENT_RE.match(cid or "")
        if not m or not secrets.compare_digest(secret or "", cfg.client_secret):
            return _err(401, "invalid_client")
        tok = self.tokens.issue(cid, m.group(1))
        return _json({"access_token": tok, "token_type": "Bearer", "expires_in": cfg.token_ttl})

    async def changes(self, request: Request) -> Response:
        q = self.paged(request)
        if isinstance(q, Response):
            return q
        node, resource, seq, limit = q
        recs, nxt, more = self.sim.feeds[resource].page(node, seq, limit)
        return Response(page_body(resource, recs, nxt, more), media_type="application/json")

    async def snapshots(self, request: Request) -> Response:
        g = self.guard(request)
        if isinstance(g, Response):
            return g
        _client, node, resource = g
        feed = self.sim.feeds[resource]
        out = [{"snapshot_id": s.snapshot_id, "as_of": s.as_of,
                "rows": len(feed.snapshot_rows(node, s)),
                "feed_cursor": encode_cursor(feed.node_seq_of(node, s.log_pos))}
               for s in list(feed.snapshots)]
        return _json({"resource": resource, "snapshots": out})

    async def snapshot_page(self, request: Request) -> Response:
        q = self.paged(request)
        if isinstance(q, Response):
            return q
        node, resource, seq, limit = q
        feed = self.sim.feeds[resource]
        sid = request.path_params["snapshot_id"]
        snap = next((s for s in feed.snapshots if s.snapshot_id == sid), None)
        if snap is None:
            return _err(404, "unknown_snapshot")
        rows = feed.snapshot_rows(node, snap)
        end = min(seq + limit, len(rows))
        body = page_body(resource, rows[seq:end], max(end, seq), end < len(rows))
        return Response(body, media_type="application/json")

    async def objection(self, request: Request) -> Response:
        who = self.authorize(request)
        if isinstance(who, Response):
            return who
        try:
            body = parse_body(await request.body())
        except InvalidObjection as e:
            return _err(400, "invalid_objection", detail=str(e))
        if body["resource"] not in OBJECTION_RESOURCES:
            return _err(404, "unknown_resource", detail=f"known: {list(OBJECTION_RESOURCES)}")
        code, out = await run_in_threadpool(self.sim.receive_objection, who[1], body)
        return _json(out, code)

    async def objection_answers(self, request: Request) -> Response:
        who = self.authorize(request)
        if isinstance(who, Response):
            return who
        p = self.paging(request)
        if isinstance(p, Response):
            return p
        return Response(self.sim.objections.page(who[1], p[0], p[1]),
                        media_type="application/json")


def refuse_unless_loopback(request: Request) -> Response | None:
    host = request.client.host if request.client else ""
    if host not in LOOPBACK:
        return _err(403, "admin_is_loopback_only")
    return None


class AdminApi:
    """What tests and the demo drive the simulator with: advance the clock, read its status,
    set fault and defect rates, write the ground truth. Loopback only, no auth."""

    def __init__(self, sim: Simulator):
        self.sim = sim

    def routes(self) -> list[Route]:
        return [
            Route("/admin/advance", self.advance, methods=["POST"]),
            Route("/admin/status", self.status),
            Route("/admin/faults", self.faults, methods=["GET", "PUT"]),
            Route("/admin/defects", self.defects, methods=["GET", "PUT"]),
            Route("/admin/truth", self.truth, methods=["POST"]),
        ]

    async def advance(self, request: Request) -> Response:
        if (r := refuse_unless_loopback(request)) is not None:
            return r
        try:
            days = int(request.query_params.get("days", "1"))
        except ValueError:
            days = -1
        if days < 0 or days > 3660:
            return _err(400, "invalid_days")
        return _json(await run_in_threadpool(self.sim.advance, days))

    async def status(self, request: Request) -> Response:
        if (r := refuse_unless_loopback(request)) is not None:
            return r
        return _json(self.sim.status())

    async def faults(self, request: Request) -> Response:
        if (r := refuse_unless_loopback(request)) is not None:
            return r
        if request.method == "PUT":
            try:
                self.sim.faults.update(orjson.loads(await request.body()))
            except (ValueError, TypeError, orjson.JSONDecodeError) as e:
                return _err(400, "invalid_faults", detail=str(e))
        return _json(self.sim.faults.rates)

    async def defects(self, request: Request) -> Response:
        if (r := refuse_unless_loopback(request)) is not None:
            return r
        if request.method == "PUT":
            try:
                return _json(self.sim.set_defects(orjson.loads(await request.body())))
            except (ValueError, TypeError, orjson.JSONDecodeError) as e:
                return _err(400, "invalid_defects", detail=str(e))
        return _json(self.sim.defect_rates)

    async def truth(self, request: Request) -> Response:
        if (r := refuse_unless_loopback(request)) is not None:
            return r
        path = await run_in_threadpool(self.sim.write_truth)
        return _json({"dir": str(path.resolve())})


async def healthz(request: Request) -> Response:
    return _json({"ok": True})


def create_app(sim: Simulator) -> Starlette:
    """The node API, the admin API and /healthz, behind the transport-fault middleware."""
    routes = [*NodeApi(sim).routes(), *AdminApi(sim).routes(), Route("/healthz", healthz)]
    app = Starlette(routes=routes)
    return FaultMiddleware(app, sim)  # type: ignore[return-value]


class _ReadyServer(uvicorn.Server):
    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            port = self.config.port
            for srv in getattr(self, "servers", []):
                for s in srv.sockets:
                    port = s.getsockname()[1]
            log.info("simulator ready on http://%s:%d", self.config.host, port)


def serve(cfg: SimConfig, host: str = "127.0.0.1", port: int = 8765) -> None:
    t0 = time.perf_counter()
    old = [p for prov in ("PS", "CU") for p in (cfg.drop_root / prov).glob("*/*") if p.is_dir()]
    if old:
        log.warning("%s already holds %d batch folders; same-named batches are rewritten, others "
                    "are left as they are (use a fresh --drop-root for a fresh world)",
                    cfg.drop_root, len(old))
    sim = Simulator(cfg)
    log.info("world of %d persons built in %.1fs, day-0 deliveries written in %.1fs (node %s)",
             cfg.scale, sim.t_world, time.perf_counter() - t0, cfg.node)
    config = uvicorn.Config(create_app(sim), host=host, port=port, log_config=None,
                            access_log=False, log_level="warning")
    _ReadyServer(config).run()
