"""The prefill service: HTTP for other government systems (Starlette, run by uvicorn).

POST /v1/prefill       one case: template, purpose, case id, subjects by role -> envelopes
POST /v1/verify        one yes/no check (alive, married to, hukou in, dishonest credit)
POST /v1/batch         many checks in one call, answered as streamed NDJSON
GET  /v1/access-log    who asked about a subject (for the data subject's own view)
GET  /v1/templates     the life-event templates (labels only); GET /preview: the officer's page
GET  /openapi.json     the OpenAPI description; GET /healthz

Every answer is written to the hash-chained audit log before it is sent. Credentials:
`Authorization: Bearer <consumer>.<key id>.<secret>` (`huiliu consumers issue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pipelines.api.json_endpoint import HotPaths, JsonEndpoint, error_answer, json_object
from pipelines.lib.catalog import catalog
from pipelines.lib.serving.access_index import AccessIndex
from pipelines.lib.serving.audit import AUDIT_LOG, audit_secret, entries_about
from pipelines.lib.serving.audit_writer import AuditWriter
from pipelines.lib.serving.credentials import Credentials
from pipelines.lib.serving.prefill import _CASE_ID, RequestError, prefill, subject_key
from pipelines.lib.serving.store import CURRENT, Store
from pipelines.lib.serving.templates import templates
from pipelines.lib.serving.verify import verify_many, verify_one

log = logging.getLogger(__name__)

BATCH_CHUNK = 1000  # items answered, audited (one entry) and sent together

OPENAPI = Path(__file__).resolve().parents[2] / "assets" / "api" / "openapi.json"
PREVIEW = Path(__file__).resolve().parents[2] / "assets" / "templates" / "preview.html"


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
        self.purposes = frozenset(p.code for p in self.cat.purposes)
        self.templates = templates()
        self.credentials = Credentials(serving_dir / "credentials.sqlite")
        audit_path = serving_dir / AUDIT_LOG
        self.audit_secret = audit_secret()
        self.audited = AuditWriter(audit_path)  # creates the log (and its index) if new
        self.access = AccessIndex(audit_path)
        self.limiter = RateLimiter(rate)
        self.link = str(serving_dir / CURRENT)
        self.store_target: str | None = None
        self.next_look = 0.0
        self.warmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-warmer")
        self.warming: tuple[str, Future] | None = None
        self.warming_failed = False
        self.store: Store | None = None

    def current_store(self) -> Store:
        """The store `current.lmdb` points to. A new one is opened and warmed (its pages
        mapped: a cold store cost the first seconds of requests twice the time) in a thread
        while the old one keeps serving, then switched between requests (one event loop: no
        request is half-way through the old one when it changes). The link is read at most
        every 50 ms (a readlink per request cost ~5 µs under load)."""
        now = time.monotonic()
        if self.store is not None and now < self.next_look:
            return self.store
        self.next_look = now + 0.05
        target = os.readlink(self.link)
        if target == self.store_target:
            return self.store
        if self.store is None:  # starting: nothing to serve meanwhile
            self._switch(target, _warm_store(self.dir / target))
        elif self.warming is None or self.warming[0] != target:
            if self.warming is not None:  # the link moved on while one was warming: close it
                self.warming[1].add_done_callback(_close_unused)
            self.warming = (target, self.warmer.submit(_warm_store, self.dir / target))
            self.warming_failed = False
        elif self.warming[1].done():
            error = self.warming[1].exception()
            if error is None:
                self._switch(target, self.warming[1].result())
            elif not self.warming_failed:
                # a new store that cannot be opened (a wrong format, a damaged file) is reported
                # once and the old one keeps serving until the link points elsewhere
                log.error("cannot switch to %s, still serving %s: %s", target,
                          self.store_target, error)
                self.warming_failed = True
        return self.store

    def close(self) -> None:
        """Outside the event loop (tests); the service's shutdown awaits `aclose`."""
        self.audited.close()
        self._close_readers()

    async def aclose(self) -> None:
        await self.audited.aclose()
        self._close_readers()

    def _close_readers(self) -> None:
        self.access.close()
        if self.store is not None:
            self.store.close()

    def _switch(self, target: str, store: Store) -> None:
        old, self.store, self.store_target, self.warming = self.store, store, target, None
        if old is not None:
            old.close()

    def consumer(self, auth: str) -> str:
        """The consumer an Authorization header value names (401 or 429 otherwise)."""
        if not auth.lower().startswith("bearer "):
            raise RequestError(401, "missing_credentials", "send Authorization: Bearer "
                               "<consumer>.<key id>.<secret> (huiliu consumers issue)")
        consumer = self.credentials.consumer_of(auth[7:].strip())
        if consumer is None:
            raise RequestError(401, "invalid_credentials", "unknown, wrong or revoked "
                               "credential; ask the hub's operators for a new one")
        wait = self.limiter.wait_needed(consumer)
        if wait:
            raise RequestError(429, "rate_limited", f"over the rate limit; retry after "
                               f"{wait:.2f} s", retry_after=wait)
        return consumer


def _close_unused(warmed: Future) -> None:
    if warmed.exception() is None:
        warmed.result().close()


def _warm_store(path: Path) -> Store:
    store = Store(path)
    store.warm()
    return store


def create_app(serving_dir: Path, rate: float = 200.0) -> HotPaths:
    svc = Service(serving_dir, rate)
    if os.path.lexists(svc.link):  # open and warm the store now, not in the first request
        svc.current_store()

    def error(e: RequestError) -> Response:
        status, payload, headers = error_answer(e)
        return Response(payload, status_code=status, media_type="application/json",
                        headers={k.decode(): v.decode() for k, v in headers})

    def _require_case_id(body: dict) -> None:
        if not isinstance(body["case_id"], str) or not _CASE_ID.fullmatch(body["case_id"]):
            raise RequestError(400, "invalid_request", "case_id is 1-64 letters, digits or ._:-",
                               ["case_id"])

    def _require_purpose(body: dict) -> str:
        """A purpose of the list (purposes.yaml): anything else is refused before it is answered,
        cached or written to the audit log."""
        if not isinstance(body["purpose"], str) or body["purpose"] not in svc.purposes:
            raise RequestError(400, "invalid_request", "unknown purpose; known: "
                               + ", ".join(sorted(svc.purposes)), ["purpose"])
        return body["purpose"]

    async def prefill_endpoint(auth: str, raw: bytes):
        try:
            consumer = svc.consumer(auth)
            body = json_object(raw, ("case_id", "purpose", "template", "subjects"))
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
            return error_answer(e)
        payload = orjson.dumps(answer.body)
        await svc.audited.append(consumer=consumer, purpose=answer.body["purpose"],
                                 template=answer.body["template"], case_id=answer.body["case_id"],
                                 subjects=answer.subjects, released=answer.released,
                                 withheld=answer.withheld, answer=payload)
        return 200, payload, []

    async def verify_endpoint(auth: str, raw: bytes):
        try:
            consumer = svc.consumer(auth)
            body = json_object(raw, ("case_id", "purpose", "check", "subject"))
            _require_case_id(body)
            answer, check = verify_one(svc.current_store(), svc.cat, consumer,
                                       _require_purpose(body), body)
        except RequestError as e:
            return error_answer(e)
        payload = orjson.dumps({"case_id": body["case_id"], **answer})
        released = [answer["check"]] if answer["status"] != "withheld" else []
        await svc.audited.append(consumer=consumer, purpose=body["purpose"],
                                 template=f"check:{answer['check']}", case_id=body["case_id"],
                                 subjects=check.subjects, released=released,
                                 withheld=[answer["check"]] if not released else [],
                                 answer=payload)
        return 200, payload, []

    async def batch_endpoint(request: Request) -> Response:
        """{"case_id", "purpose", "checks": [{check, subject, ...}, ...]}: one NDJSON line per
        check, in order; each chunk is audited before it is sent."""
        try:
            consumer = svc.consumer(request.headers.get("authorization", ""))
            body = json_object(await request.body(), ("case_id", "purpose", "checks"))
            _require_case_id(body)
            _require_purpose(body)
            if not isinstance(body["checks"], list) or not body["checks"]:
                raise RequestError(400, "invalid_request", "checks is a non-empty list",
                                   ["checks"])
        except RequestError as e:
            return error(e)
        purpose, items = body["purpose"], body["checks"]

        async def lines():
            for start in range(0, len(items), BATCH_CHUNK):
                out, subjects, released, withheld = [], [], [], []
                answers = verify_many(svc.current_store(), svc.cat, consumer, purpose,
                                      items[start:start + BATCH_CHUNK])
                for i, result in enumerate(answers, start=start):
                    if isinstance(result, RequestError):
                        out.append({"index": i, "status": result.status, **result.body()})
                        continue
                    answer, check = result
                    subjects += check.subjects
                    (withheld if answer["status"] == "withheld" else released).append(
                        f"{i}:{answer['check']}")
                    out.append({"index": i, **answer})
                chunk = b"\n".join(map(orjson.dumps, out)) + b"\n"
                await svc.audited.append(consumer=consumer, purpose=purpose, template="batch",
                                         case_id=body["case_id"], subjects=subjects,
                                         released=released, withheld=withheld, answer=chunk)
                yield chunk

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def access_log(request: Request) -> Response:
        """A data subject's access log: who asked, when, for which case and purpose, what was
        released. For the consumers that run the subject's own portal (here: SJJ)."""
        try:
            consumer = svc.consumer(request.headers.get("authorization", ""))
            if consumer != "SJJ":
                raise RequestError(403, "not_entitled", "only the portal operator (SJJ) reads "
                                   "access logs")
            raw = request.query_params.get("subject", "")
            kind, key = "person", subject_key("person", raw)
            if key is None:
                kind, key = "enterprise", subject_key("enterprise", raw)
            if key is None:
                raise RequestError(400, "invalid_request", "subject must be a valid citizen ID "
                                   "or USCC", ["subject"])
        except RequestError as e:
            return error(e)
        # in a thread: the entries not indexed yet are read from the log's tail (up to the
        # indexer's 16 MiB lag), which must not hold up the other requests' event loop
        entries = await asyncio.to_thread(entries_about, svc.access, svc.audit_secret,
                                          f"{kind}:{key}")
        return _Json({"subject": key, "entries": [
            {k: e[k] for k in ("seq", "at", "consumer", "purpose", "template", "case_id", "released",
                       "withheld")} for e in entries]})

    async def templates_endpoint(_: Request) -> Response:
        """The life-event templates (roles and field labels: no data), for forms and the page."""
        return _Json({code: {"name_zh": t.name_zh, "name_en": t.name_en, "roles": {
            role: {"name_zh": r.name_zh, "name_en": r.name_en, "subject": r.subject,
                   "fields": [{"code": f.code, "label_zh": f.label_zh, "label_en": f.label_en}
                              for f in r.fields]} for role, r in t.roles.items()}}
            for code, t in svc.templates.items()})

    async def preview(_: Request) -> Response:
        return Response(PREVIEW.read_bytes(), media_type="text/html; charset=utf-8")

    async def openapi(_: Request) -> Response:
        return Response(OPENAPI.read_bytes(), media_type="application/json")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "store": svc.store_target})

    # Everything loaded so far (catalogue, templates, libraries) lives as long as the process:
    # moved out of the collector's sight, a full collection no longer walks it (it paused the
    # service for tens of milliseconds, the p99 under load).
    gc.collect()
    gc.freeze()
    # A request allocates a few hundred objects, nearly all freed by reference counting before
    # any collection: at the default threshold (700) a young-generation pass ran every few
    # requests for nothing. Cycles (exceptions, mostly) are still collected, a little later.
    gc.set_threshold(20_000, 20, 20)
    hot = {"/v1/prefill": JsonEndpoint(prefill_endpoint),
           "/v1/verify": JsonEndpoint(verify_endpoint)}
    @contextlib.asynccontextmanager
    async def lifespan(_):
        yield
        await svc.aclose()  # the audit writer commits what it was sent before the service exits

    return HotPaths(Starlette(lifespan=lifespan, routes=[
        *(Route(path, endpoint, methods=["POST"]) for path, endpoint in hot.items()),
        Route("/v1/batch", batch_endpoint, methods=["POST"]),
        Route("/v1/access-log", access_log, methods=["GET"]),
        Route("/v1/templates", templates_endpoint, methods=["GET"]),
        Route("/preview", preview, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]), hot)


def app_from_env() -> HotPaths:
    """uvicorn factory: `uvicorn --factory pipelines.api.app:app_from_env`."""
    from pipelines.lib.settings import Settings

    s = Settings()
    # with N worker processes each keeps its own token buckets: a 1/N share of the rate each
    # (the kernel spreads connections over the workers, so a consumer's limit holds roughly)
    workers = max(1, int(os.environ.get("HUILIU_API_WORKERS", "1")))
    return create_app(s.home / "serving",
                      float(os.environ.get("HUILIU_API_RATE", "200")) / workers)
