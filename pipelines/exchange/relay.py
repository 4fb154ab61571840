"""The national exchange as a process (`huiliu exchange serve`): nodes send their signed requests
here, never to each other. For each request the exchange checks the sender's signature, the time
window and nonce, that both ends are members, and the national layer of the list (which
department may ask for which service, for which purpose); stamps it; passes it to the receiving
node; checks and stamps the node's signed answer the same way; and writes the exchange to its own
hash-chained audit log (request and answer digests, subjects as keyed hashes, never a value)
before the requester gets the answer. Refusals are logged there too.

POST /v1/relay      a request envelope -> the stamped answer envelope, or {"error", "detail"}
GET  /v1/directory  the member directory the exchange works from
GET  /healthz
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipelines.exchange import keys
from pipelines.exchange.directory import EXCHANGE, Directory
from pipelines.exchange.envelope import Envelope, countersign
from pipelines.exchange.errors import ExchangeRefused, error_code
from pipelines.exchange.messages import parse_request
from pipelines.exchange.national import check_national
from pipelines.exchange.replay import ReplayGuard
from pipelines.exchange.subjects import audit_subjects
from pipelines.exchange.transport import TooSlow, Transport, Unreachable
from pipelines.serving.audit import AuditLog

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 1 << 20
NODE_PATH = "/v1/exchange"  # where a member node answers the exchange


class DirectoryFile:
    """The directory, read again when its file changes (a member joins, a key is revoked)."""

    def __init__(self, path: Path) -> None:
        self.path, self._stamp, self._dir = path, None, Directory()

    def get(self) -> Directory:
        st = os.stat(self.path)
        if (st.st_mtime_ns, st.st_size) != self._stamp:
            self._dir = Directory.read(self.path)
            self._stamp = (st.st_mtime_ns, st.st_size)
        return self._dir


def _json(status: int, payload: dict) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


class Relay:
    def __init__(self, home: Path, directory: Path, deadline_s: float) -> None:
        self.directory = DirectoryFile(directory)
        self.signer = keys.current(home)
        self.replay = ReplayGuard()
        self.audit = AuditLog(home / "exchange" / "audit.jsonl")
        self.deadline_s = deadline_s
        self.transport = Transport(deadline_s)

    async def relay(self, request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_MESSAGE_BYTES:
            return _json(413, {"error": "malformed", "detail": "message over 1 MiB"})
        directory = self.directory.get()
        try:
            env = Envelope.from_wire(raw)
            if env.header["kind"] != "request":
                raise ExchangeRefused("malformed", "only requests are sent to the exchange")
            stamped = countersign(env, directory, self.signer, self.replay)
            asked = parse_request(env.body)
            service_offered = asked.service in directory.member(env.header["receiver"]).services
            if not service_offered:
                raise ExchangeRefused("not_entitled", f"{env.header['receiver']} does not offer "
                                      f"{asked.service}")
            check_national(asked.service, asked.department, asked.purpose)
        except ExchangeRefused as e:
            self._log_refusal(raw, e)
            return _json(403 if e.code == "not_entitled" else 400,
                         {"error": e.code, "detail": e.message})
        h = env.header
        receiver = directory.member(h["receiver"])
        outcome, answer = await self._forward(receiver.endpoint + NODE_PATH, stamped, h,
                                              directory)
        entry = {"consumer": f"{h['sender']}/{asked.department}", "purpose": asked.purpose,
                 "template": asked.service, "case_id": asked.case_id,
                 "subjects": audit_subjects(asked), "released": [], "withheld": [],
                 "answer": answer.to_wire() if answer else b"",
                 "detail": {"exchange": h["request_id"], "sender": h["sender"],
                            "receiver": h["receiver"], "request_digest": h["body_digest"],
                            "answer_digest": answer.header["body_digest"] if answer else "",
                            "outcome": outcome}}
        await asyncio.to_thread(self.audit.append, **entry)  # logged before it is answered
        if answer is None:
            status = 504 if outcome == "remote_timeout" else 502
            return _json(status, {"error": outcome, "detail": f"node {h['receiver']}: {outcome}"})
        return Response(answer.to_wire(), media_type="application/json")

    async def _forward(self, url: str, stamped: Envelope, h: dict, directory: Directory
                       ) -> tuple[str, Envelope | None]:
        try:
            status, content = await self.transport.post(url, stamped.to_wire())
        except TooSlow:
            return "remote_timeout", None
        except Unreachable:
            return "remote_node_unavailable", None
        if status != 200:
            code = error_code(content)
            return (f"remote_refused:{code}" if code else "remote_invalid_answer"), None
        try:
            answer = Envelope.from_wire(content)
            a = answer.header
            if (a["kind"], a["request_id"], a["sender"], a["receiver"]) != (
                    "answer", h["request_id"], h["receiver"], h["sender"]):
                raise ExchangeRefused("malformed", "the answer is not this request's")
            return "answered", countersign(answer, directory, self.signer, self.replay)
        except ExchangeRefused as e:
            log.warning("node %s answered %s with an invalid message: %s", h["receiver"],
                        h["request_id"], e.message)
            return "remote_invalid_answer", None

    def _log_refusal(self, raw: bytes, e: ExchangeRefused) -> None:
        """A refused message is logged with what could be read of its header (nothing of a
        message too malformed to parse)."""
        try:
            h = orjson.loads(raw).get("header", {})
        except (orjson.JSONDecodeError, AttributeError):
            h = {}
        h = h if isinstance(h, dict) else {}
        self.audit.append(consumer=str(h.get("sender", "?")), purpose="", template="refused",
                          case_id="", subjects=[], released=[], withheld=[], answer=raw,
                          detail={"exchange": str(h.get("request_id", "")), "outcome":
                                  f"refused:{e.code}", "receiver": str(h.get("receiver", ""))})

    async def directory_json(self, _: Request) -> Response:
        return Response(self.directory.get().dumps(), media_type="application/json")

    async def aclose(self) -> None:
        await self.transport.aclose()
        self.audit.close()


async def healthz(_: Request) -> Response:
    return _json(200, {"status": "ok", "member": EXCHANGE})


def create_app(home: Path, directory: Path, deadline_s: float) -> Starlette:
    relay = Relay(home, directory, deadline_s)

    @contextlib.asynccontextmanager
    async def lifespan(_):
        yield
        await relay.aclose()

    return Starlette(lifespan=lifespan, routes=[
        Route("/v1/relay", relay.relay, methods=["POST"]),
        Route("/v1/directory", relay.directory_json, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"])])


def app_from_env() -> Starlette:
    """uvicorn factory for `huiliu exchange serve`."""
    from pipelines.settings import Settings

    s = Settings()
    if s.exchange_directory is None:
        raise SystemExit("HUILIU_EXCHANGE_DIRECTORY is not set: the exchange needs its members' "
                         "directory")
    # the exchange gives the answering node a little less than the requester waits for it, so
    # the requester hears `remote_timeout` rather than timing out itself
    return create_app(s.home, s.exchange_directory, max(0.2, s.exchange_deadline_seconds - 0.3))
