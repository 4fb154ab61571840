"""What the exchange protocol refuses, typed, with a code a caller can act on."""

from __future__ import annotations

import orjson

CODES = ("malformed", "unknown_node", "unknown_key", "revoked_key", "bad_signature",
         "no_stamp", "bad_stamp", "expired", "replayed", "wrong_receiver", "unsupported_suite",
         "busy", "not_entitled")


class ExchangeRefused(Exception):
    """A message the protocol will not accept. `code` is one of CODES; the message says what is
    wrong and what the sender should do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def error_code(body: bytes) -> str:
    """The `error` of a JSON refusal ({"error", "detail"}); "" for anything else."""
    try:
        d = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    return str(d.get("error", "")) if isinstance(d, dict) else ""
