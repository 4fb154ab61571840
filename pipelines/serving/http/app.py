"""The prefill service: HTTP for other government systems (Starlette, run by uvicorn).

POST /v1/prefill       one case: template, purpose, case id, subjects by role -> envelopes
POST /v1/verify        one yes/no check (alive, married to, hukou in, dishonest credit)
POST /v1/prereview     智能辅助审批: an application judged against the authoritative data
POST /v1/bundle        一类事: every form of a bundle from one set of subjects
GET  /v1/prereview/queue  the department's pre-reviewed applications; POST /v1/prereview/decision
                       an officer's decision beside the machine's; GET /officer: their page
GET  /v1/lifecycle     the life-cycle lists and bundles (no data); GET /lifecycle: their page
POST /v1/batch         many checks in one call, answered as streamed NDJSON
GET  /v1/access-log    who asked about a subject (for the data subject's own view)
POST /v1/exchange      another node's request, through the national exchange (exchange/answering)
GET  /v1/templates     the life-event templates (labels only); GET /preview: the officer's page
GET  /openapi.json     the OpenAPI description; GET /healthz

Every answer is written to the hash-chained audit log before it is sent (reading an access log
too: it releases who asked about a person); every refusal is counted in the refusal log
(refusals.py). Credentials: `Authorization: Bearer <consumer>.<key id>.<secret>` (`huiliu consumers
issue`), checked before a body is read (auth.py). Limits: limits.py (HTTP ones: protocol.py).
The service's state is in service.py, its endpoints in endpoints.py; this module routes to them.
"""

from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Route

from pipelines.serving.http.endpoints import Endpoints
from pipelines.serving.http.json_endpoint import HotPaths, JsonEndpoint
from pipelines.serving.http.service import Service


def create_app(serving_dir: Path, rate: float = 200.0, share: float = 1.0) -> HotPaths:
    """The service; `rate` requests a second per consumer, `share` of the batch check rate (with
    N worker processes each keeps its own buckets: 1/N each)."""
    svc = Service(serving_dir, rate, share)
    if os.path.lexists(svc.link):  # open and warm the store now, not in the first request
        svc.current_store()
    endpoints = Endpoints(svc)
    _tune_collector()
    max_body = svc.limits.max_body_bytes
    hot = {"/v1/prefill": JsonEndpoint(endpoints.prefill, svc.auth, svc.refusals, max_body),
           "/v1/verify": JsonEndpoint(endpoints.verify, svc.auth, svc.refusals, max_body),
           "/v1/prereview": JsonEndpoint(endpoints.prereview, svc.auth, svc.refusals, max_body),
           "/v1/bundle": JsonEndpoint(endpoints.bundle, svc.auth, svc.refusals, max_body),
           "/v1/prereview/decision": JsonEndpoint(endpoints.decision, svc.auth, svc.refusals,
                                                  max_body)}

    @contextlib.asynccontextmanager
    async def lifespan(_):
        yield
        await svc.aclose()  # the audit writer commits what it was sent before the service exits

    return HotPaths(Starlette(lifespan=lifespan, routes=[
        *(Route(path, endpoint, methods=["POST"]) for path, endpoint in hot.items()),
        Route("/v1/batch", endpoints.batch, methods=["POST"]),
        Route("/v1/access-log", endpoints.access_log, methods=["GET"]),
        Route("/v1/exchange", endpoints.exchange, methods=["POST"]),
        Route("/v1/templates", endpoints.templates, methods=["GET"]),
        Route("/preview", endpoints.preview, methods=["GET"]),
        Route("/v1/lifecycle", endpoints.lifecycle, methods=["GET"]),
        Route("/lifecycle", endpoints.lifecycle_page, methods=["GET"]),
        Route("/v1/prereview/queue", endpoints.queue, methods=["GET"]),
        Route("/officer", endpoints.officer_page, methods=["GET"]),
        Route("/openapi.json", endpoints.openapi, methods=["GET"]),
        Route("/healthz", endpoints.healthz, methods=["GET"]),
    ]), hot, svc.refusals)


def _tune_collector() -> None:
    # Everything loaded so far (catalogue, templates, libraries) lives as long as the process:
    # moved out of the collector's sight, a full collection no longer walks it (it paused the
    # service for tens of milliseconds, the p99 under load).
    gc.collect()
    gc.freeze()
    # A request allocates a few hundred objects, nearly all freed by reference counting before
    # any collection: at the default threshold (700) a young-generation pass ran every few
    # requests for nothing. Cycles (exceptions, mostly) are still collected, a little later.
    gc.set_threshold(20_000, 20, 20)


def app_from_env() -> HotPaths:
    """uvicorn factory: `uvicorn --factory pipelines.serving.http.app:app_from_env`."""
    from pipelines.settings import Settings

    s = Settings()
    # with N worker processes each keeps its own token buckets: a 1/N share of the rate each
    # (the kernel spreads connections over the workers, so a consumer's limit holds roughly)
    workers = max(1, s.api_workers)
    return create_app(s.home / "serving", s.api_rate / workers, 1 / workers)
