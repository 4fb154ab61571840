"""The prefill service: HTTP for other government systems (Starlette, run by uvicorn).

POST /v1/prefill       one case: template, purpose, case id, subjects by role -> envelopes
POST /v1/verify        one yes/no check (alive, married to, hukou in, dishonest credit)
POST /v1/batch         many checks in one call, answered as streamed NDJSON
GET  /v1/access-log    who asked about a subject (for the data subject's own view)
GET  /v1/templates     the life-event templates (labels only); GET /preview: the officer's page
GET  /openapi.json     the OpenAPI description; GET /healthz

Every answer is written to the hash-chained audit log before it is sent (reading an access log
too: it releases who asked about a person); every refusal is counted in the refusal log
(refusals.py). Credentials: `Authorization: Bearer <consumer>.<key id>.<secret>` (`huiliu consumers
issue`), checked before a body is read (auth.py). Limits: limits.py (HTTP ones: protocol.py).
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

from pipelines import paths
from pipelines.serving.http.auth import Authenticator, who_presented
from pipelines.serving.http.enumeration import EnumerationGuard
from pipelines.serving.http.json_endpoint import (
    REFUSAL,
    HotPaths,
    JsonEndpoint,
    body_expected,
    error_answer,
    json_object,
    peer_of,
    read_body,
    too_large,
)
from pipelines.serving.http.limits import limits
from pipelines.serving.http.ratelimit import RateLimiter
from pipelines.serving.http.refusals import REFUSALS_LOG, RefusalLog
from pipelines.catalog.model import catalog
from pipelines.serving.access_index import AccessIndex
from pipelines.serving.audit import AUDIT_LOG, audit_secret, entries_about, subject_hash
from pipelines.serving.audit_writer import AuditWriter
from pipelines.serving.credentials import Credentials
from pipelines.serving.prefill import CASE_ID, RequestError, prefill, subject_key
from pipelines.serving.store import CURRENT, Store
from pipelines.serving.templates import templates
from pipelines.serving.verify import verify_many, verify_one

log = logging.getLogger(__name__)

BATCH_CHUNK = 1000  # items answered, audited (one entry) and sent together

OPENAPI = paths.ASSETS / "api" / "openapi.json"
PREVIEW = paths.HTML_TEMPLATES / "preview.html"


class _Json(Response):
    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content)


class Service:
    def __init__(self, serving_dir: Path, rate: float, share: float = 1.0) -> None:
        self.dir = serving_dir
        self.cat = catalog()
        self.purposes = frozenset(p.code for p in self.cat.purposes)
        self.templates = templates()
        self.limits = limits()
        self.credentials = Credentials(serving_dir / "credentials.sqlite")
        audit_path = serving_dir / AUDIT_LOG
        self.audit_secret = audit_secret()
        self.audited = AuditWriter(audit_path)  # creates the log (and its index) if new
        self.access = AccessIndex(audit_path)
        self.limiter = RateLimiter(rate)
        self.auth = Authenticator(self.credentials, self.limiter)
        # a batch takes one check per item from a bucket of its own, big enough for a full batch
        self.check_limiter = RateLimiter(self.limits.check_rate * share,
                                         max(self.limits.check_rate, self.limits.max_batch_checks))
        self.refusals = RefusalLog(serving_dir / REFUSALS_LOG)
        self.enumeration = EnumerationGuard(self.limits.enumeration_values,
                                            self.limits.enumeration_window_seconds,
                                            self._enumeration_alert)
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
        self.auth.close()
        self.refusals.close()
        self.access.close()
        if self.store is not None:
            self.store.close()

    def _switch(self, target: str, store: Store) -> None:
        old, self.store, self.store_target, self.warming = self.store, store, target, None
        if old is not None:
            old.close()

    def _enumeration_alert(self, consumer: str, check: str, case_id: str, subject: str) -> None:
        """Governance staff see who went over the enumeration limit about whom (the subject as
        the audit log names it: its keyed hash, to look up in the access log)."""
        log.warning("enumeration limit: %s asked %s about one subject with too many values "
                    "(case %s)", consumer, check, case_id)
        self.refusals.alert("enumeration", consumer=consumer, check=check, case_id=case_id,
                            subject=subject_hash(subject, self.audit_secret),
                            limit=self.limits.enumeration_values,
                            window_s=self.limits.enumeration_window_seconds)

    def guard(self, consumer: str, case_id: str, items: list) -> list:
        """Each check, or the RequestError to answer it with when it would enumerate a value."""
        return [self.enumeration.refusal(consumer, case_id, item) or item for item in items]


def _close_unused(warmed: Future) -> None:
    if warmed.exception() is None:
        warmed.result().close()


def _warm_store(path: Path) -> Store:
    store = Store(path)
    store.warm()
    return store


def create_app(serving_dir: Path, rate: float = 200.0, share: float = 1.0) -> HotPaths:
    """The service; `rate` requests a second per consumer, `share` of the batch check rate (with
    N worker processes each keeps its own buckets: 1/N each)."""
    svc = Service(serving_dir, rate, share)
    if os.path.lexists(svc.link):  # open and warm the store now, not in the first request
        svc.current_store()
    max_body, max_batch_body = svc.limits.max_body_bytes, svc.limits.max_batch_body_bytes

    def error(request: Request, e: RequestError, consumer: str | None,
              body_read: bool) -> Response:
        status, payload, headers = error_answer(e)
        if not body_read and body_expected(request.scope)[1]:
            headers.append((b"connection", b"close"))  # its body is never read
        request.scope[REFUSAL] = (consumer or who_presented(
            request.headers.get("authorization", "")), e.code)  # counted by HotPaths
        return Response(payload, status_code=status, media_type="application/json",
                        headers={k.decode(): v.decode() for k, v in headers})

    def _require_case_id(body: dict) -> None:
        if not isinstance(body["case_id"], str) or not CASE_ID.fullmatch(body["case_id"]):
            raise RequestError(400, "invalid_request", "case_id is 1-64 letters, digits or ._:-",
                               ["case_id"])

    def _require_purpose(body: dict) -> str:
        """A purpose of the list (purposes.yaml): anything else is refused before it is answered,
        cached or written to the audit log."""
        if not isinstance(body["purpose"], str) or body["purpose"] not in svc.purposes:
            raise RequestError(400, "invalid_request", "unknown purpose; known: "
                               + ", ".join(sorted(svc.purposes)), ["purpose"])
        return body["purpose"]

    async def prefill_endpoint(consumer: str, raw: bytes):
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
        payload = orjson.dumps(answer.body)
        await svc.audited.append(consumer=consumer, purpose=answer.body["purpose"],
                                 template=answer.body["template"], case_id=answer.body["case_id"],
                                 subjects=answer.subjects, released=answer.released,
                                 withheld=answer.withheld, answer=payload)
        return 200, payload, []

    async def verify_endpoint(consumer: str, raw: bytes):
        body = json_object(raw, ("case_id", "purpose", "check", "subject"))
        _require_case_id(body)
        purpose = _require_purpose(body)
        refused = svc.enumeration.refusal(consumer, body["case_id"], body)
        if refused is not None:
            raise refused
        answer, check = verify_one(svc.current_store(), svc.cat, consumer, purpose, body)
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
        check, in order; each chunk is audited before it is sent. At most max_batch_checks
        checks a call, each taking one token of the consumer's check rate."""
        consumer, raw = None, None
        try:
            consumer = await svc.auth.consumer(request.headers.get("authorization", ""),
                                               peer_of(request.scope))
            if body_expected(request.scope)[0] > max_batch_body:
                raise too_large(max_batch_body)
            raw = await read_body(request.receive, max_batch_body)
            if raw is None:
                return Response(status_code=400)  # the caller went away: nobody reads this
            body = json_object(raw, ("case_id", "purpose", "checks"))
            _require_case_id(body)
            _require_purpose(body)
            if not isinstance(body["checks"], list) or not body["checks"]:
                raise RequestError(400, "invalid_request", "checks is a non-empty list",
                                   ["checks"])
            cap = svc.limits.max_batch_checks
            if len(body["checks"]) > cap:
                raise RequestError(413, "too_many_checks", f"at most {cap} checks a call; send "
                                   "more as several calls", ["checks"])
            wait = svc.check_limiter.wait_needed(consumer, len(body["checks"]))
            if wait:
                raise RequestError(429, "rate_limited", f"over the consumer's check rate; retry "
                                   f"after {wait:.2f} s", retry_after=wait)
        except RequestError as e:
            return error(request, e, consumer, raw is not None)
        purpose, case_id = body["purpose"], body["case_id"]
        items = svc.guard(consumer, case_id, body["checks"])
        refused_items = sum(isinstance(i, RequestError) for i in items)
        if refused_items:
            for _ in range(refused_items):
                svc.refusals.count(peer_of(request.scope), consumer, "/v1/batch", 403,
                                   "enumeration_limit")

        async def lines():
            for start in range(0, len(items), BATCH_CHUNK):
                out, subjects, released, withheld = [], [], [], []
                chunk_items = items[start:start + BATCH_CHUNK]
                asked = [i for i in chunk_items if not isinstance(i, RequestError)]
                answers = iter(verify_many(svc.current_store(), svc.cat, consumer, purpose,
                                           asked))
                for i, item in enumerate(chunk_items, start=start):
                    result = item if isinstance(item, RequestError) else next(answers)
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
                                         case_id=case_id, subjects=subjects,
                                         released=released, withheld=withheld, answer=chunk)
                yield chunk

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def access_log(request: Request) -> Response:
        """A data subject's access log: who asked, when, for which case and purpose, what was
        released. For the consumers that run the subject's own portal (here: SJJ). Reading it is
        a release too: audited (template "access-log") before it is sent."""
        consumer = None
        try:
            consumer = await svc.auth.consumer(request.headers.get("authorization", ""),
                                               peer_of(request.scope))
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
            case_id = request.query_params.get("case_id", "access-log")
            if not CASE_ID.fullmatch(case_id):
                raise RequestError(400, "invalid_request", "case_id is 1-64 letters, digits or "
                                   "._:-", ["case_id"])
        except RequestError as e:
            return error(request, e, consumer, False)
        # in a thread: the entries not indexed yet are read from the log's tail (up to the
        # indexer's 16 MiB lag), which must not hold up the other requests' event loop
        entries = await asyncio.to_thread(entries_about, svc.access, svc.audit_secret,
                                          f"{kind}:{key}")
        payload = orjson.dumps({"subject": key, "entries": [
            {k: e[k] for k in ("seq", "at", "consumer", "purpose", "template", "case_id", "released",
                       "withheld")} for e in entries]})
        await svc.audited.append(consumer=consumer, purpose="SUBJECT_ACCESS",
                                 template="access-log", case_id=case_id,
                                 subjects=[f"{kind}:{key}"], released=["access_log"], withheld=[],
                                 answer=payload)
        return Response(payload, media_type="application/json")

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
    hot = {"/v1/prefill": JsonEndpoint(prefill_endpoint, svc.auth, svc.refusals, max_body),
           "/v1/verify": JsonEndpoint(verify_endpoint, svc.auth, svc.refusals, max_body)}
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
    ]), hot, svc.refusals)


def app_from_env() -> HotPaths:
    """uvicorn factory: `uvicorn --factory pipelines.serving.http.app:app_from_env`."""
    from pipelines.settings import Settings

    s = Settings()
    # with N worker processes each keeps its own token buckets: a 1/N share of the rate each
    # (the kernel spreads connections over the workers, so a consumer's limit holds roughly)
    workers = max(1, s.api_workers)
    return create_app(s.home / "serving", s.api_rate / workers, 1 / workers)
