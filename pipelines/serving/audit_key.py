"""The audit key (HUILIU_AUDIT_KEY): what is refused, the keys derived from it, its fingerprint.

One secret keys two things that must not be confused with each other:
- subject MACs (keyed BLAKE2b of a citizen ID or USCC, stored in every entry, readable by whoever
  reads the log);
- the chain's MACs (each entry's `hash`), which only the writer and the auditor may compute.
The chain key is derived with BLAKE2b's personalisation ("huiliu-chain-v1"), which the subject
MACs do not use: a subject MAC is another function of the key, so no request (whatever subject
string it sends) can make the log show the chain key. The fingerprint kept beside the log is a
MAC of a constant under a third personalisation: it says which key a log was started with without
revealing the key, or anything that computes a MAC under it.

Demo mode is explicit: HUILIU_DEMO=1 (set by `huiliu demo` for the service it starts). Only
there are short or published keys accepted, and the anchor may default to a file beside the log.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

KEY_ENV = "HUILIU_AUDIT_KEY"
ANCHOR_ENV = "HUILIU_AUDIT_ANCHOR"
DEMO_ENV = "HUILIU_DEMO"
MIN_KEY_CHARS = 32
MIN_DISTINCT_CHARS = 8  # "x" * 40 is long and still guessable
# keys that have been published (in this repository, its examples and its tests): never secret
PUBLISHED_KEYS = frozenset({
    "dev-audit-key-change-me",  # .env.example before it was blanked
    "demo-audit-key-not-for-production",  # `huiliu demo`
    "x", "test", "secret", "changeme", "change-me", "password", "audit-key",
    "test-audit-key", "test-key", "fuzz-key", "e2e-key", "bench-key",
})
KEY_FILE_TAG = b"huiliu-audit-key"
KEY_FILE_VERSION = b"1"


class AuditKeyError(ValueError):
    """HUILIU_AUDIT_KEY (or the anchor) cannot be used: missing, short, published, or not the key
    the log was started with. The message says what to do; nothing is written or verified."""


def demo_mode() -> bool:
    return os.environ.get(DEMO_ENV, "").strip().lower() in {"1", "true", "yes"}


def audit_secret() -> bytes:
    """HUILIU_AUDIT_KEY as bytes; refused when missing, short or published (unless demo mode)."""
    key = os.environ.get(KEY_ENV, "")
    if not key:
        raise AuditKeyError(f"{KEY_ENV} is not set: the audit log's chain and subject hashes are "
                            "keyed with it; set it to a long random secret (e.g. `openssl rand "
                            "-hex 32`) kept from the log's readers")
    problem = weakness(key)
    if problem and not demo_mode():
        raise AuditKeyError(f"{KEY_ENV} {problem}: anyone who knows or guesses it can rewrite the "
                            "audit log unseen; set a random secret of at least "
                            f"{MIN_KEY_CHARS} characters (e.g. `openssl rand -hex 32`), or run "
                            f"the demo with {DEMO_ENV}=1")
    return key.encode()


def weakness(key: str) -> str | None:
    """Why a key must not protect a real log; None for an acceptable one."""
    if key in PUBLISHED_KEYS or key.strip().lower() in PUBLISHED_KEYS:
        return "is a published value"
    if len(key) < MIN_KEY_CHARS:
        return f"is {len(key)} characters long (at least {MIN_KEY_CHARS} are needed)"
    if len(set(key)) < MIN_DISTINCT_CHARS:
        return f"uses only {len(set(key))} distinct characters"
    return None


def audit_anchor(log_path: Path) -> Path:
    """Where head records of this log are appended: HUILIU_AUDIT_ANCHOR, or in demo mode a file
    beside the log (which protects nothing against the log's writer: demo only)."""
    configured = os.environ.get(ANCHOR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    if demo_mode():
        return log_path.with_name(f"{log_path.name}.anchor")
    raise AuditKeyError(f"{ANCHOR_ENV} is not set: the audit log's head is anchored by appending "
                        "to that file, which the hub's account must not be able to rewrite (make "
                        "it append-only with `chattr +a`, or put it on another account's or "
                        "host's mount); one anchor file per audit log")


@functools.cache
def mac_key(secret: bytes) -> bytes:
    """BLAKE2b takes keys of up to 64 bytes: a longer secret is hashed down to 32 (the subject
    MACs' key since the first version: kept, so earlier entries stay findable)."""
    return secret if len(secret) <= 64 else hashlib.sha256(secret).digest()


@functools.cache
def chain_key(secret: bytes) -> bytes:
    return hashlib.blake2b(b"chain", key=mac_key(secret), digest_size=32,
                           person=b"huiliu-chain-v1").digest()


@functools.cache
def fingerprint(secret: bytes) -> str:
    """A MAC of a constant: names the key without revealing it (nor the chain key)."""
    return hashlib.blake2b(b"fingerprint", key=mac_key(secret), digest_size=16,
                           person=b"huiliu-keyfp-v1").hexdigest()


def key_path(log_path: Path) -> Path:
    return log_path.with_name(f"{log_path.name}.key")


def read_key_file(log_path: Path) -> tuple[str, int] | None:
    """(fingerprint, first keyed seq) the key file beside the log names; None without one.
    Entries before the first keyed one were written by a version whose chain was unkeyed."""
    try:
        words = key_path(log_path).read_bytes().split()
    except FileNotFoundError:
        return None
    if (len(words) != 4 or words[:2] != [KEY_FILE_TAG, KEY_FILE_VERSION]
            or not words[3].isdigit()):
        raise AuditKeyError(f"{key_path(log_path)} is unreadable: it names the key the audit log "
                            "was started with; restore it from a backup")
    return words[2].decode(), int(words[3])


def write_key_file(log_path: Path, secret: bytes, keyed_from: int, mode: int) -> None:
    """Created once, atomically (a partly written key file would lock the log out)."""
    target = key_path(log_path)
    tmp = target.with_name(f"{target.name}.new-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, b" ".join([KEY_FILE_TAG, KEY_FILE_VERSION, fingerprint(secret).encode(),
                                str(keyed_from).encode()]) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, target)  # fails if one appeared meanwhile: the log keeps the first
    finally:
        tmp.unlink()


def check_key(log_path: Path, secret: bytes) -> tuple[str, int] | None:
    """The key file's (fingerprint, first keyed seq); refused when it names another key."""
    known = read_key_file(log_path)
    if known is not None and known[0] != fingerprint(secret):
        raise AuditKeyError(
            f"{KEY_ENV} is not the key the audit log {log_path} was started with (fingerprint "
            f"{known[0][:12]}…, this key's {fingerprint(secret)[:12]}…): with another key the "
            "chain cannot be checked and earlier entries vanish from subjects' access logs; set "
            "the original key (to retire it, move the log, its .key, .head and index aside "
            "together and let a new log start)")
    return known
