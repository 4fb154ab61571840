"""The prefill service: HTTP for other government systems (Starlette, run by uvicorn).

POST /v1/prefill       one case: template, purpose, case id, subjects by role -> envelopes
GET  /v1/access-log    who asked about a subject (for the data subject's own view)
GET  /openapi.json     the OpenAPI description; GET /healthz

Every answer is written to the hash-chained audit log before it is sent. Credentials:
`Authorization: Bearer <consumer>.<key id>.<secret>` (`huiliu consumers issue`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipelines.lib.catalog import catalog
from pipelines.lib.serving.audit import AuditLog
from pipelines.lib.serving.credentials import Credentials
from pipelines.lib.serving.prefill import RequestError, prefill, subject_key
from pipelines.lib.serving.store import Store
from pipelines.lib.serving.templates import templates

OPENAPI = Path(__file__).resolve().parents[2] / "assets" / "api" / "openapi.json"


class _Json(Response):
    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content)


class RateLimiter:
    """Token bucket per consumer: `rate` requests a second, bursts up to `rate`."""

    def __init__(self, rate: float) -> None:
        self.rate, self.buckets = rate, {}

    def wait_needed(self, consumer: str) -> float:
        now = time.monotonic()
        tokens, last = self.buckets.get(consumer, (self.rate, now))
        tokens = min(self.rate, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self.buckets[consumer] = (tokens - 1, now)
            return 0.0
        self.buckets[consumer] = (tokens, now)
        return (1 - tokens) / self.rate


class Service:
    def __init__(self, serving_dir: Path, rate: float) -> None:
        self.dir = serving_dir
        self.cat = catalog()
        self.templates = templates()
        self.credentials = Credentials(serving_dir / "credentials.sqlite")
        self.audit = AuditLog(serving_dir / "audit.sqlite")
        self.limiter = RateLimiter(rate)
        self.store_target: str | None = None
        self.store: Store | None = None

    def current_store(self) -> Store:
        """The store `current.sqlite` points to; switched between requests (one event loop:
        no request is half-way through the old one when it changes)."""
        link = self.dir / "current.sqlite"
        target = os.readlink(link)
        if target != self.store_target:
            old, self.store = self.store, Store(self.dir / target)
            self.store_target = target
            if old is not None:
                old.close()
        return self.store

    def consumer(self, request: Request) -> str:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            raise RequestError(401, "missing_credentials", "send Authorization: Bearer "
                               "<consumer>.<key id>.<secret> (huiliu consumers issue)")
        consumer = self.credentials.consumer_of(auth[7:].strip())
        if consumer is None:
            raise RequestError(401, "invalid_credentials", "unknown, wrong or revoked "
                               "credential; ask the hub's operators for a new one")
        wait = self.limiter.wait_needed(consumer)
        if wait:
            e = RequestError(429, "rate_limited", f"over the rate limit; retry after {wait:.2f} s")
            e.retry_after = wait
            raise e
        return consumer


def create_app(serving_dir: Path, rate: float = 200.0) -> Starlette:
    svc = Service(serving_dir, rate)

    def error(e: RequestError) -> Response:
        headers = {}
        if getattr(e, "retry_after", None):
            headers["Retry-After"] = str(max(1, round(e.retry_after + 0.5)))
        return _Json(e.body(), status_code=e.status, headers=headers)

    async def prefill_endpoint(request: Request) -> Response:
        try:
            consumer = svc.consumer(request)
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                raise RequestError(400, "invalid_json", "the body must be a JSON object") from None
            if not isinstance(body, dict):
                raise RequestError(400, "invalid_json", "the body must be a JSON object")
            missing = [k for k in ("case_id", "purpose", "template", "subjects") if k not in body]
            if missing:
                raise RequestError(400, "invalid_request", "missing fields", missing)
            template = svc.templates.get(body["template"]) if isinstance(
                body["template"], str) else None
            if template is None:
                raise RequestError(400, "invalid_request", "unknown template; known: "
                                   + ", ".join(sorted(svc.templates)), ["template"])
            if not isinstance(body["subjects"], dict):
                raise RequestError(400, "invalid_request", "subjects is an object of role: key",
                                   ["subjects"])
            answer = prefill(svc.current_store(), svc.cat, template, consumer,
                             str(body["purpose"]), body["case_id"], body["subjects"])
        except RequestError as e:
            return error(e)
        payload = orjson.dumps(answer.body)
        svc.audit.append(consumer=consumer, purpose=answer.body["purpose"],
                         template=answer.body["template"], case_id=answer.body["case_id"],
                         subjects=answer.subjects, released=answer.released,
                         withheld=answer.withheld, answer=payload)
        return Response(payload, media_type="application/json")

    async def access_log(request: Request) -> Response:
        """A data subject's access log: who asked, when, for which case and purpose, what was
        released. For the consumers that run the subject's own portal (here: SJJ)."""
        try:
            consumer = svc.consumer(request)
            if consumer != "SJJ":
                raise RequestError(403, "not_entitled", "only the portal operator (SJJ) reads "
                                   "access logs")
            raw = request.query_params.get("subject", "")
            key = subject_key("person", raw) or subject_key("enterprise", raw)
            if key is None:
                raise RequestError(400, "invalid_request", "subject must be a valid citizen ID "
                                   "or USCC", ["subject"])
        except RequestError as e:
            return error(e)
        kind = "person" if subject_key("person", raw) else "enterprise"
        entries = svc.audit.about(f"{kind}:{key}")
        return _Json({"subject": key, "entries": [
            {k: (orjson.loads(e[k]) if k in ("released", "withheld") else e[k])
             for k in ("seq", "at", "consumer", "purpose", "template", "case_id", "released",
                       "withheld")} for e in entries]})

    async def openapi(_: Request) -> Response:
        return Response(OPENAPI.read_bytes(), media_type="application/json")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "store": svc.store_target})

    return Starlette(routes=[
        Route("/v1/prefill", prefill_endpoint, methods=["POST"]),
        Route("/v1/access-log", access_log, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])


def app_from_env() -> Starlette:
    """uvicorn factory: `uvicorn --factory pipelines.api.app:app_from_env`."""
    from pipelines.lib.settings import Settings

    s = Settings()
    return create_app(s.home / "serving", float(os.environ.get("HUILIU_API_RATE", "200")))
