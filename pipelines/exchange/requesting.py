"""Asking another node, through the national exchange: which node holds a subject, the signed
request, the deadline, the circuit breaker, and the checks on what comes back.

Every outcome is a `RemoteOutcome`: the answering node's body when it answered, otherwise a
reason a caller can show (REMOTE_NODE_UNAVAILABLE, REMOTE_TIMEOUT, REMOTE_REFUSED,
REMOTE_NOT_ENTITLED, REMOTE_INVALID_ANSWER, EXCHANGE_UNAVAILABLE, REMOTE_CIRCUIT_OPEN). Nothing
waits longer than the deadline, and nothing raises for a failure of another node."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from pipelines.catalog.identifiers import normalize_citizen_id
from pipelines.exchange import keys
from pipelines.exchange.breaker import Breaker
from pipelines.exchange.case_memory import CaseMemory
from pipelines.exchange.directory import EXCHANGE, Directory, division_prefix
from pipelines.exchange.envelope import Envelope, open_envelope, seal
from pipelines.exchange.errors import ExchangeRefused, error_code
from pipelines.exchange.messages import RemoteRequest
from pipelines.exchange.relay import DirectoryFile
from pipelines.exchange.replay import ReplayGuard
from pipelines.exchange.transport import TooSlow, Transport, Unreachable
from pipelines.settings import Settings

log = logging.getLogger(__name__)

# the exchange's own refusals and failures, as the requester reports them
_EXCHANGE_ERRORS = {"remote_node_unavailable": "REMOTE_NODE_UNAVAILABLE",
                    "remote_timeout": "REMOTE_TIMEOUT", "not_entitled": "REMOTE_NOT_ENTITLED",
                    "remote_invalid_answer": "REMOTE_INVALID_ANSWER"}
# outcomes that say the node (or the way to it) is unwell: they count towards its breaker
_NODE_FAILURES = {"REMOTE_NODE_UNAVAILABLE", "REMOTE_TIMEOUT", "REMOTE_INVALID_ANSWER",
                  "EXCHANGE_UNAVAILABLE"}


@dataclass
class RemoteOutcome:
    node: str
    request_id: str
    reason: str | None = None  # None: answered
    body: dict | None = None
    request_digest: str = ""
    answer_digest: str = ""
    detail: dict = field(default_factory=dict)

    def record(self) -> dict:
        """What the requester's audit entry keeps of the exchange (pairs with the others')."""
        return {"exchange": self.request_id, "node": self.node,
                "request_digest": self.request_digest, "answer_digest": self.answer_digest,
                "outcome": "answered" if self.reason is None else self.reason}


class RemoteNodes:
    def __init__(self, me: str, home: Path, directory: Path, exchange_url: str,
                 deadline_s: float, case_ttl_s: float, breaker: Breaker) -> None:
        self.me, self.exchange_url, self.deadline_s = me, exchange_url.rstrip("/"), deadline_s
        self.home = home
        self.directory = DirectoryFile(directory)
        self.replay = ReplayGuard()
        self.breaker = breaker
        self.cases = CaseMemory(case_ttl_s)
        self._signer = None
        self.transport = Transport(deadline_s)

    @classmethod
    def from_settings(cls, s: Settings, me: str) -> RemoteNodes | None:
        if s.exchange_directory is None:
            return None
        return cls(me, s.home, s.exchange_directory, s.exchange_url, s.exchange_deadline_seconds,
                   s.exchange_case_ttl_seconds,
                   Breaker(s.exchange_breaker_failures, s.exchange_breaker_pause_seconds))

    def _dir(self) -> Directory:
        return self.directory.get()

    def route(self, key: str, service: str) -> str | None:
        """The member node whose divisions hold the subject (by the address code of a citizen ID
        or the registering division of a USCC) and that offers the service; None when none does
        or it is this node."""
        key = normalize_citizen_id(key)
        division = key[:6] if len(key) == 18 and key[:6].isdigit() else (
            key[2:8] if len(key) == 18 and key[2:8].isdigit() else "")
        if not division:
            return None
        try:
            members = self._dir().members.values()
        except OSError:
            return None
        best = None
        for m in members:
            if m.code in (EXCHANGE, self.me) or service not in m.services:
                continue
            prefix = division_prefix(m.code)
            if division.startswith(prefix) and (best is None or len(prefix) > len(best[1])):
                best = (m.code, prefix)
        return best[0] if best else None

    async def ask(self, node: str, asked: RemoteRequest) -> RemoteOutcome:
        key = (asked.department, asked.case_id, node, asked.to_bytes())
        kept = self.cases.get(key)
        if kept is not None:
            return kept
        outcome = await self._ask(node, asked)
        if outcome.reason is None:
            self.cases.put(key, outcome)
        return outcome

    async def _ask(self, node: str, asked: RemoteRequest) -> RemoteOutcome:
        request_id = f"{self.me}-{secrets.token_hex(12)}"
        out = RemoteOutcome(node, request_id)
        if not self.breaker.allows(node):
            out.reason = "REMOTE_CIRCUIT_OPEN"
            return out
        try:
            env = seal("request", request_id, node, asked.to_bytes(), self._current_signer())
        except (keys.NoKey, OSError) as e:
            log.error("cannot sign a request to %s: %s", node, e)
            out.reason = "EXCHANGE_UNAVAILABLE"
            return out
        out.request_digest = env.header["body_digest"]
        try:
            status, content = await self.transport.post(f"{self.exchange_url}/v1/relay",
                                                        env.to_wire())
        except TooSlow:
            return self._failed(out, "REMOTE_TIMEOUT")
        except Unreachable:
            return self._failed(out, "EXCHANGE_UNAVAILABLE")
        if status != 200:
            code = error_code(content)
            return self._failed(out, _EXCHANGE_ERRORS.get(code, "REMOTE_REFUSED"), code)
        try:
            answer = Envelope.from_wire(content)
            h = open_envelope(answer, self._dir(), self.me, self.replay)
            if (h["kind"], h["request_id"], h["sender"]) != ("answer", request_id, node):
                raise ExchangeRefused("malformed", "the answer is not to this request")
            body = orjson.loads(answer.body)
            if not isinstance(body, dict):
                raise ExchangeRefused("malformed", "the answer's body is not an object")
        except (ExchangeRefused, orjson.JSONDecodeError, OSError) as e:
            log.warning("invalid answer from %s to %s: %s", node, request_id, e)
            return self._failed(out, "REMOTE_INVALID_ANSWER")
        self.breaker.succeeded(node)
        out.body, out.answer_digest = body, h["body_digest"]
        return out

    def _current_signer(self):
        if self._signer is None:
            self._signer = keys.current(self.home)
        return self._signer

    def _failed(self, out: RemoteOutcome, reason: str, code: str = "") -> RemoteOutcome:
        out.reason = reason
        if code:
            out.detail["exchange_error"] = code
        if reason in _NODE_FAILURES:
            self.breaker.failed(out.node)
        return out

    async def aclose(self) -> None:
        await self.transport.aclose()
