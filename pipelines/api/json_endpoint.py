"""The service's hot paths (POST /v1/prefill, /v1/verify) as bare ASGI endpoints.

Starlette's Request/Response objects and its per-endpoint wrapper cost ~50 µs a request on this
machine (measured: a constant answer behind them 7,680 requests/s, as a bare ASGI route 12,178),
its middleware stack and router some 30 µs more: together a third of what a whole prefill may
spend to stay within 0.3x of the ceiling. `HotPaths` hands those two routes straight to their
endpoints and everything else (other routes, other methods: 405) to Starlette; an unexpected error
becomes a 500 here, as Starlette's error middleware would answer it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson

from pipelines.lib.serving.prefill import RequestError

log = logging.getLogger(__name__)

# handler(authorization header, body bytes) -> (status, JSON payload, extra headers)
Handler = Callable[[str, bytes], Awaitable[tuple[int, bytes, list[tuple[bytes, bytes]]]]]


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


class JsonEndpoint:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope, receive, send) -> None:
        message = await receive()
        body = message.get("body", b"")
        if message.get("more_body"):  # a body in several messages (large, or slow to arrive)
            chunks = [body]
            while message.get("more_body"):
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
            body = b"".join(chunks)
        elif message["type"] == "http.disconnect":
            return
        authorization = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            status, payload, headers = await self.handler(authorization, body)
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
    """POSTs to the given paths go straight to their endpoints; all else to `app`."""

    def __init__(self, app, endpoints: dict[str, JsonEndpoint]) -> None:
        self.app, self.endpoints = app, endpoints

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)
