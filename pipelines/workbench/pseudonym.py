"""Keyed pseudonyms for the statistical tier: HMAC-SHA-256 under HUILIU_PSEUDONYM_KEY.

The same identifier gives the same pseudonym in every snapshot, so analysts can join and count over
time; a citizen ID's small number space (~10^17, far less in practice) would make a plain hash
reversible by enumeration, a keyed one is not without the key. The HMAC is computed in DuckDB's SQL
(sha256 over the key's inner and outer pads) as a TEMP macro of the building connection: the key
never reaches a tier file.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from pipelines.serving.audit_key import demo_mode, weakness

KEY_ENV = "HUILIU_PSEUDONYM_KEY"
DEMO_KEY = "demo-pseudonym-key-not-for-production"
DIGITS = 20  # hex digits kept: 80 bits, no collision expected among 10^8 identifiers
_BLOCK = 64  # SHA-256's block size


class PseudonymKeyError(ValueError):
    """HUILIU_PSEUDONYM_KEY is missing, weak or published outside demo mode."""


def pseudonym_key() -> bytes:
    key = os.environ.get(KEY_ENV, "")
    if not key and demo_mode():
        key = DEMO_KEY
    if not key:
        raise PseudonymKeyError(f"{KEY_ENV} is not set: the analysts' statistical tier "
                                "pseudonymises IDs under it; set a long random secret (e.g. "
                                "`openssl rand -hex 32`) and keep it: a new key gives new "
                                "pseudonyms, and analysts' counts over time break")
    problem = weakness(key) if key != DEMO_KEY else "is the demo's published key"
    if problem and not demo_mode():
        raise PseudonymKeyError(f"{KEY_ENV} {problem}: anyone who knows it can re-identify "
                                "the statistical tier by hashing every ID; set a random secret "
                                "of at least 32 characters, or run the demo (HUILIU_DEMO=1)")
    return key.encode()


def pseudonym(value: str, key: bytes) -> str:
    """The pseudonym of one value (what the SQL macro computes; for tests and lookups)."""
    return "P" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:DIGITS]


def macro_sql(key: bytes) -> str:
    """CREATE TEMP MACRO pseudonym(x): HMAC-SHA-256 of x under the key, as `pseudonym` returns."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = bytes(b ^ 0x36 for b in key).hex()
    outer = bytes(b ^ 0x5C for b in key).hex()
    return (f"CREATE OR REPLACE TEMP MACRO pseudonym(x) AS CASE WHEN x IS NULL THEN NULL ELSE "
            f"'P' || left(sha256(unhex('{outer}') || unhex(sha256(unhex('{inner}') || "
            f"encode(CAST(x AS VARCHAR))))), {DIGITS}) END")
