"""The service's hot paths (POST /v1/prefill, /v1/verify) as bare ASGI endpoints.

Starlette's Request/Response objects and its per-endpoint wrapper cost ~50 µs a request on this
machine (measured: a constant answer behind them 7,680 requests/s, as a bare ASGI route 12,178),
its middleware stack and router some 30 µs more: together a third of what a whole prefill may
spend to stay within 0.3x of the ceiling. `HotPaths` hands those two routes straight to their
endpoints and everything else (other routes, other methods: 405) to Starlette; an unexpected error
becomes a 500 here, as Starlette's error middleware would answer it.

Every request is authenticated from its headers before its body is read, and a body over the
route's limit is refused (413) from its Content-Length, or as it grows, without reading the rest;
a request refused before its body was read is answered with `connection: close` (the body is never
read). Every refusal is counted in the refusal log (`refusals.RefusalLog`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson

from pipelines.serving.http.auth import Authenticator, who_presented
from pipelines.serving.http.refusals import RefusalLog
from pipelines.serving.prefill import RequestError

log = logging.getLogger(__name__)

# handler(consumer, body bytes) -> (status, JSON payload, extra headers); raises RequestError
Handler = Callable[[str, bytes], Awaitable[tuple[int, bytes, list[tuple[bytes, bytes]]]]]
REFUSAL = "huiliu.refusal"  # scope key: (who, code) of a refusal answered by a Starlette route
_CODES = {404: "not_found", 405: "method_not_allowed"}  # Starlette's own refusals
_CLOSE = (b"connection", b"close")


def error_answer(e: RequestError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    headers = []
    if e.retry_after:
        headers.append((b"retry-after", str(max(1, round(e.retry_after + 0.5))).encode()))
    return e.status, orjson.dumps(e.body()), headers


def json_object(raw: bytes, required: tuple[str, ...]) -> dict:
    """The request body as a JSON object holding the required keys, or a 400."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestError(400, "invalid_json", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise RequestError(400, "invalid_json", "the body must be a JSON object")
    missing = [k for k in required if k not in body]
    if missing:
        raise RequestError(400, "invalid_request", "missing fields", missing)
    return body


def peer_of(scope) -> str:
    client = scope.get("client")
    return client[0] if client else "-"


def body_expected(scope) -> tuple[int, bool]:
    """(Content-Length or 0, whether a body follows at all) from the request's headers."""
    length, follows = 0, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = int(value) if value.isdigit() else 0
            follows = follows or length > 0
        elif name == b"transfer-encoding":
            follows = True
    return length, follows


def too_large(limit: int) -> RequestError:
    return RequestError(413, "body_too_large", f"the body exceeds this route's {limit} bytes")


async def read_body(receive, limit: int) -> bytes | None:
    """The whole body, or None if the caller went away; 413 once it passes `limit` (the rest is
    not read)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body = message.get("body", b"")
    if message.get("more_body"):  # a body in several messages (large, or slow to arrive)
        chunks, size = [body], len(body)
        while message.get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
        body = b"".join(chunks)
    if len(body) > limit:
        raise too_large(limit)
    return body


class JsonEndpoint:
    def __init__(self, handler: Handler, auth: Authenticator, refusals: RefusalLog,
                 max_body: int) -> None:
        self.handler, self.auth, self.refusals, self.max_body = handler, auth, refusals, max_body

    async def __call__(self, scope, receive, send) -> None:
        authorization, consumer, body = "", None, None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            consumer = await self.auth.consumer(authorization, peer_of(scope))
            length, _ = body_expected(scope)
            if length > self.max_body:
                raise too_large(self.max_body)
            body = await read_body(receive, self.max_body)
            if body is None:
                return
            status, payload, headers = await self.handler(consumer, body)
        except RequestError as e:
            status, payload, headers = error_answer(e)
            self.refusals.count(peer_of(scope), consumer or who_presented(authorization),
                                scope["path"], e.status, e.code)
            if body is None and body_expected(scope)[1]:
                headers.append(_CLOSE)  # refused before its body was read: it never will be
        except Exception:  # noqa: BLE001 - logged in full; the caller gets a 500, nothing else
            log.exception("%s failed", scope["path"])
            status, headers = 500, []
            payload = orjson.dumps({"error": "internal_error", "detail": "the hub failed to "
                                    "answer; the error is logged, please report the case id"})
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()), *headers]})
        await send({"type": "http.response.body", "body": payload})


class HotPaths:
    """POSTs to the given paths go straight to their endpoints; all else to `app`, whose
    refusals (status 400 and up) are counted in `refusals`, with the (who, code) a route put in
    the scope under REFUSAL, else by status."""

    def __init__(self, app, endpoints: dict[str, JsonEndpoint], refusals: RefusalLog) -> None:
        self.app, self.endpoints, self.refusals = app, endpoints, refusals

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST":
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return

        async def counted(message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                status = message["status"]
                who, code = scope.get(REFUSAL, ("-", _CODES.get(status, f"http_{status}")))
                self.refusals.count(peer_of(scope), who, scope["path"], status, code)
            await send(message)

        await self.app(scope, receive, counted)
