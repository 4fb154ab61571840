"""Signed, time-stamped messages between nodes, in the manner of X-Road: the sender signs, the
exchange checks the signature and countersigns a time stamp over the signed message, and the
receiver accepts only a message that carries both.

A message is a header (who, to whom, which request, a nonce, when, the suite, the key, the body's
digest), the body's exact bytes, the sender's signature over the header's canonical bytes, and the
exchange's stamp. The stamp signs (time, digest of header + signature): a node calling another
directly, without the exchange, has no stamp and is refused. Every check fails with an
`ExchangeRefused` naming what was wrong; nothing is accepted half-checked.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass, replace

import orjson

from pipelines.exchange.directory import EXCHANGE, Directory
from pipelines.exchange.errors import ExchangeRefused
from pipelines.exchange.replay import ReplayGuard, within_window
from pipelines.exchange.suites import suite

VERSION = 1
KINDS = ("request", "answer")
_HEADER_FIELDS = ("v", "kind", "request_id", "nonce", "sender", "receiver", "sent_at", "suite",
                  "key_id", "body_digest")


@dataclass(frozen=True)
class Signer:
    """A node's (or the exchange's) own key: who it is, which listed key, the private half."""

    code: str
    key_id: str
    suite: str
    private: str


@dataclass(frozen=True)
class Envelope:
    header: dict
    body: bytes
    signature: str
    stamp: dict | None = None

    def signed_bytes(self) -> bytes:
        return _canonical(self.header)

    def to_wire(self) -> bytes:
        return orjson.dumps({"header": self.header, "signature": self.signature,
                             "stamp": self.stamp, "body": base64.b64encode(self.body).decode()})

    @classmethod
    def from_wire(cls, data: bytes) -> Envelope:
        try:
            raw = orjson.loads(data)
            env = cls(dict(raw["header"]), base64.b64decode(raw["body"], validate=True),
                      str(raw["signature"]), raw.get("stamp"))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ExchangeRefused("malformed", "not an exchange message (header, body, "
                                  "signature, stamp)") from None
        if set(env.header) != set(_HEADER_FIELDS) or env.header["v"] != VERSION:
            raise ExchangeRefused("malformed", f"the header must have exactly {_HEADER_FIELDS} "
                                  f"and v={VERSION}")
        return env


def _canonical(obj: dict) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def seal(kind: str, request_id: str, receiver: str, body: bytes, signer: Signer,
         now: dt.datetime | None = None) -> Envelope:
    """The sender's signed message (not yet stamped: the exchange stamps it on the way)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: one of {KINDS}")
    s = suite(signer.suite)
    header = {"v": VERSION, "kind": kind, "request_id": request_id,
              "nonce": secrets.token_hex(16), "sender": signer.code, "receiver": receiver,
              "sent_at": (now or _now()).isoformat(timespec="microseconds"),
              "suite": s.name, "key_id": signer.key_id, "body_digest": s.digest(body)}
    return Envelope(header, body, s.sign(signer.private, _canonical(header)))


def _check_signature(env: Envelope, directory: Directory) -> None:
    h = env.header
    key = directory.key(h["sender"], h["key_id"])
    s = suite(h["suite"])
    if key.suite != s.name:
        raise ExchangeRefused("bad_signature", f"key {key.key_id} of {h['sender']} is a "
                              f"{key.suite} key, the message says {s.name}")
    if s.digest(env.body) != h["body_digest"]:
        raise ExchangeRefused("bad_signature", "the body does not match its digest: altered on "
                              "the way")
    if not s.verify(key.public, env.signature, env.signed_bytes()):
        raise ExchangeRefused("bad_signature", f"the signature does not verify with key "
                              f"{key.key_id} of {h['sender']}: altered, or signed by another key")


def _stamped_bytes(env: Envelope, at: str) -> bytes:
    return _canonical({"at": at, "message": suite(env.header["suite"]).digest(
        env.signed_bytes() + env.signature.encode())})


def countersign(env: Envelope, directory: Directory, exchange: Signer, replay: ReplayGuard,
                now: dt.datetime | None = None) -> Envelope:
    """The exchange's step: the sender's signature, window and nonce checked, then stamped."""
    now = now or _now()
    _check_signature(env, directory)
    directory.member(env.header["receiver"])  # the receiver must be a member too
    replay.check(env.header["sender"], env.header["nonce"], env.header["sent_at"], now)
    at = now.isoformat(timespec="microseconds")
    s = suite(exchange.suite)
    stamp = {"at": at, "key_id": exchange.key_id, "suite": s.name,
             "signature": s.sign(exchange.private, _stamped_bytes(env, at))}
    return replace(env, stamp=stamp)


def open_envelope(env: Envelope, directory: Directory, me: str, replay: ReplayGuard,
                  now: dt.datetime | None = None) -> dict:
    """The receiver's step: every check, in order; the header when all pass."""
    now = now or _now()
    if env.header["receiver"] != me:
        raise ExchangeRefused("wrong_receiver", f"the message is for {env.header['receiver']}, "
                              f"this is {me}")
    _check_signature(env, directory)
    stamp = env.stamp
    if not isinstance(stamp, dict) or not {"at", "key_id", "suite", "signature"} <= set(stamp):
        raise ExchangeRefused("no_stamp", "the message has no exchange stamp: nodes answer only "
                              "what comes through the exchange")
    key = directory.key(EXCHANGE, str(stamp["key_id"]))
    s = suite(str(stamp["suite"]))
    if key.suite != s.name or not s.verify(key.public, str(stamp["signature"]),
                                           _stamped_bytes(env, str(stamp["at"]))):
        raise ExchangeRefused("bad_stamp", "the exchange stamp does not verify: forged, or for "
                              "another message")
    within_window(str(stamp["at"]), now, replay.window_s)  # a fresh stamp, not a kept one
    replay.check(env.header["sender"], env.header["nonce"], env.header["sent_at"], now)
    return env.header
