"""uvicorn's httptools protocol with the limits it lacks (uvicorn 0.54, httptools 0.9).

uvicorn bounds neither a request's head (httptools buffers any size: a 32 MB header was accepted)
nor the time a client may take to send it or its body; an idle connection is closed only after an
answer (`timeout_keep_alive`), never one that connected and sent nothing; and `limit_concurrency`
answers 503 only once a request's head has arrived, so stalled sockets still pile up. Here
(`ServiceLimits`, HUILIU_SERVE_*):
- at most `max_connections` open connections per process: more are closed as they connect;
- a request's line and headers within `max_header_bytes` (431) and `header_timeout_seconds` from
  the connection or the request's first byte (408; a connection that sent nothing is closed);
- a body within the largest body limit of any route (413, from Content-Length before it is read,
  or as a chunked body grows) and `body_timeout_seconds` once the head is in (408).
The per-route body limits and authentication before the body is read are the app's (json_endpoint).
Each refusal is counted in the refusal log of the app (its `refusals`, found through the
middleware uvicorn wraps it in)."""

from __future__ import annotations

import logging

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from pipelines.serving.http.limits import limits

log = logging.getLogger(__name__)


SWEEP_S = 0.25  # deadlines are kept to within this


class _Refused(Exception):
    """Stops the parser; the protocol answers with its `refusal`."""


class LimitedHttpTools(HttpToolsProtocol):
    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits()
        self.max_body = max(self.limits.max_body_bytes, self.limits.max_batch_body_bytes)
        # the current deadline (loop time) and what to do then; checked by one sweep a process
        # every SWEEP_S (a timer armed and cancelled per request cost ~3 µs of ~20)
        self.due, self.on_due = 0.0, None
        self.in_head = True  # between the previous message's end and this one's headers
        self.head_bytes = 0  # bytes received while in a head (across reads)
        self.head_size = 0  # request line and headers as parsed
        self.body_bytes = 0
        self.refusal: tuple[int, str, str] | None = None
        self.transport = None  # type: ignore[assignment]

    # connection

    def connection_made(self, transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            peer = transport.get_extra_info("peername")
            transport.close()
            self._count(peer[0] if isinstance(peer, tuple) else "-", "-", 503,
                        "connection_limit")
            return
        super().connection_made(transport)
        self._arm(self.limits.header_timeout_seconds, self._head_timed_out)
        if not getattr(self.server_state, "huiliu_sweeping", False):
            self.server_state.huiliu_sweeping = True  # type: ignore[attr-defined]
            self.loop.call_later(SWEEP_S, _sweep, self.loop, self.server_state)

    def connection_lost(self, exc) -> None:
        self._disarm()
        if self.transport is not None:  # None: closed at the limit, never ours
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self.refusal is not None:
                self._refuse(*self.refusal)
            else:
                self.send_400_response("Invalid HTTP request received.")
            return
        if self.in_head and self.head_bytes > self.limits.max_header_bytes:
            self._refuse(*self._head_too_large())

    def send_400_response(self, msg: str) -> None:
        self._count(self._peer(), "-", 400, "invalid_http")
        super().send_400_response(msg)

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head, self.head_size = True, 0
        if self.on_due is None:  # the first request's deadline runs from the connection
            self._arm(self.limits.header_timeout_seconds, self._head_timed_out)

    def on_url(self, url: bytes) -> None:
        self.head_size += len(url)
        if self.head_size > self.limits.max_header_bytes:
            self.refusal = self._head_too_large()
            raise _Refused
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.limits.max_header_bytes:
            self.refusal = self._head_too_large()
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self.in_head, self.head_bytes, self.body_bytes = False, 0, 0
        body = False
        for name, value in self.headers:
            if name == b"content-length":
                body = value.strip() not in (b"0", b"")
                if value.strip().isdigit() and int(value) > self.max_body:
                    self.refusal = self._body_too_large()
                    raise _Refused
            elif name == b"transfer-encoding":
                body = True
        super().on_headers_complete()
        if body:
            self._arm(self.limits.body_timeout_seconds, self._body_timed_out)

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.max_body:
            self.refusal = self._body_too_large()
            raise _Refused
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        self.in_head, self.head_bytes = True, 0
        super().on_message_complete()

    # deadlines and refusals

    def _arm(self, seconds: float, handler) -> None:
        self.due, self.on_due = self.loop.time() + seconds, handler

    def _disarm(self) -> None:
        self.on_due = None

    def _check(self, now: float) -> None:
        if self.on_due is not None and now >= self.due:
            handler, self.on_due = self.on_due, None
            handler()

    def _head_timed_out(self) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # a pipelined request's head while the previous answer is still being sent
            self._arm(self.limits.header_timeout_seconds, self._head_timed_out)
        elif self.head_bytes == 0 and self.head_size == 0:  # connected and sent nothing
            self._count(self._peer(), "-", 408, "idle_connection")
            self.transport.close()
        else:
            self._refuse(408, "header_timeout", "the request's headers did not arrive within "
                         f"{self.limits.header_timeout_seconds:g} s")

    def _body_timed_out(self) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_complete:
            # answered without its body (a 404, 405): the rest of it is not waited for either
            self._count(self._peer(), self.scope.get("path", "-"), 408, "body_timeout")
            self.transport.close()
        else:
            self._refuse(408, "body_timeout", "the request's body did not arrive within "
                         f"{self.limits.body_timeout_seconds:g} s")

    def _head_too_large(self) -> tuple[int, str, str]:
        return (431, "headers_too_large", "the request line and headers exceed "
                f"{self.limits.max_header_bytes} bytes")

    def _body_too_large(self) -> tuple[int, str, str]:
        return (413, "body_too_large", f"the body exceeds {self.max_body} bytes")

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """Answer `status` with a JSON body (unless an answer to this request has begun), close
        the connection, and stop the app's work on the request (it sees a disconnect)."""
        cycle = self.cycle
        answering = cycle is not None and cycle.response_started and not cycle.response_complete
        if not answering:
            payload = orjson.dumps({"error": code, "detail": detail, "fields": []})
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head.append(b"content-type: application/json\r\ncontent-length: %d\r\n"
                        b"connection: close\r\n\r\n" % len(payload))
            self.transport.write(b"".join(head) + payload)
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()
        path = self.scope.get("path", "-") if self.scope and not self.in_head else "-"
        self._count(self._peer(), path, status, code)

    def _peer(self) -> str:
        return self.client[0] if self.client else "-"

    def _count(self, peer: str, path: str, status: int, code: str) -> None:
        app = self.app
        while app is not None and not hasattr(app, "refusals"):
            app = getattr(app, "app", None)
        if app is not None:
            app.refusals.count(peer, "-", path, status, code)


def _sweep(loop, server_state) -> None:
    """Every SWEEP_S: act on the deadlines that have passed (O(connections), ~1 µs each)."""
    now = loop.time()
    for connection in list(server_state.connections):
        if isinstance(connection, LimitedHttpTools):
            connection._check(now)
    loop.call_later(SWEEP_S, _sweep, loop, server_state)
