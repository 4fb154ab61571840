"""Consumer credentials: issued, rotated and revoked from the CLI, stored only as scrypt hashes.

A credential is `<consumer>.<key id>.<secret>`; the service finds the key by id and compares the
scrypt hash of the secret in constant time. scrypt costs ~50 ms by design, so the service runs it
off its event loop (`Candidate` is looked up on the loop, `check` runs in a thread) and remembers a
successful verification for the process, keyed by a keyed BLAKE2b of the whole credential (no
secret is kept). An unknown key id, a revoked key or a key of another consumer is checked against
a dummy hash: every failure costs one scrypt, whatever was wrong.

Remembered keys stay valid until the credentials file changes (another process, the CLI, issued or
revoked a key): then each is looked up again and those revoked are forgotten. The file is kept in
rollback-journal mode, where every commit bumps the change counter in its header (bytes 24-27);
reading those four bytes costs ~1 µs, asking SQLite (PRAGMA data_version) ~14 µs a request here."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import sqlite3
from pathlib import Path
from typing import NamedTuple

_N, _R, _P = 2**14, 8, 1
MAX_REMEMBERED = 10_000  # verified credentials kept; far more than a node issues
_DUMMY_SALT = secrets.token_bytes(16)
_DUMMY_HASH = secrets.token_hex(64)  # no secret hashes to it


def _hash(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P).hex()


class Candidate(NamedTuple):
    """What a presented credential is checked against: its key's salt and hash, or a dummy pair
    when the key is unknown, revoked or another consumer's (`known` False: it cannot pass)."""

    consumer: str
    key_id: str
    secret: str
    salt: bytes
    hash: str
    known: bool
    version: bytes  # the file's change counter when it was looked up


def check(candidate: Candidate) -> bool:
    """scrypt of the presented secret against the candidate's hash (~50 ms: run it in a thread;
    hashlib releases the GIL meanwhile)."""
    ok = hmac.compare_digest(_hash(candidate.secret, candidate.salt), candidate.hash)
    return ok and candidate.known


def key_id_of(token: str) -> str:
    """The key id a credential names ("" when it is not of the form consumer.key.secret)."""
    parts = token.split(".")
    return parts[1] if len(parts) == 3 else ""


class Credentials:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.con.execute("""CREATE TABLE IF NOT EXISTS credentials (key_id TEXT PRIMARY KEY,
            consumer TEXT NOT NULL, salt BLOB NOT NULL, hash TEXT NOT NULL, issued_at TEXT,
            revoked_at TEXT)""")
        self.con.execute("PRAGMA journal_mode=DELETE")  # the change counter below relies on it
        self._header = os.open(path, os.O_RDONLY)
        self._token_key = secrets.token_bytes(32)  # keys the remembered credentials' digests
        self._verified: dict[bytes, tuple[str, str]] = {}  # digest -> (consumer, key id)
        self._version = os.pread(self._header, 4, 24)

    def issue(self, consumer: str) -> str:
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
        salt = secrets.token_bytes(16)
        self.con.execute("INSERT INTO credentials VALUES (?, ?, ?, ?, ?, NULL)",
                         [key_id, consumer, salt, _hash(secret, salt),
                          dt.datetime.now(dt.UTC).isoformat()])
        return f"{consumer}.{key_id}.{secret}"

    def revoke(self, consumer: str, key_id: str | None = None) -> int:
        """Revoke one key, or every active key of the consumer; returns how many."""
        now = dt.datetime.now(dt.UTC).isoformat()
        where, args = "consumer = ? AND revoked_at IS NULL", [consumer]
        if key_id:
            where += " AND key_id = ?"
            args.append(key_id)
        self._verified.clear()
        return self.con.execute(f"UPDATE credentials SET revoked_at = ? WHERE {where}",
                                [now, *args]).rowcount

    def rotate(self, consumer: str) -> str:
        """A new key; the old ones are revoked once it exists."""
        new = self.issue(consumer)
        new_id = new.split(".")[1]
        self.con.execute("UPDATE credentials SET revoked_at = ? WHERE consumer = ? AND "
                         "revoked_at IS NULL AND key_id <> ?",
                         [dt.datetime.now(dt.UTC).isoformat(), consumer, new_id])
        self._verified.clear()
        return new

    def list(self) -> list[tuple]:
        return self.con.execute("SELECT consumer, key_id, issued_at, revoked_at FROM credentials "
                                "ORDER BY consumer, issued_at").fetchall()

    def remembered(self, token: str) -> str | None:
        """The consumer of a credential verified earlier and not revoked since (~2 µs), or None:
        then `candidate` and `check` decide."""
        self._refresh()
        known = self._verified.get(self._digest(token))
        return known[0] if known is not None else None

    def candidate(self, token: str) -> Candidate:
        """The key a credential names, looked up (a dummy one when there is none to pass)."""
        version = self._refresh()
        parts = token.split(".")
        consumer, key_id, secret = parts if len(parts) == 3 else ("", "", token)
        row = self.con.execute("SELECT consumer, salt, hash, revoked_at FROM credentials "
                               "WHERE key_id = ?", [key_id]).fetchone() if key_id else None
        if row is None or row[3] is not None or row[0] != consumer:
            return Candidate(consumer, key_id, secret, _DUMMY_SALT, _DUMMY_HASH, False, version)
        return Candidate(consumer, key_id, secret, row[1], row[2], True, version)

    def remember(self, token: str, candidate: Candidate) -> bool:
        """After a successful `check`: remember it, unless the key was revoked meanwhile (the
        file changed during the check: the key is looked up again). False if it was revoked."""
        if self._refresh() != candidate.version and not self._active(candidate.key_id):
            return False
        if len(self._verified) >= MAX_REMEMBERED:
            self._verified.clear()
        self._verified[self._digest(token)] = (candidate.consumer, candidate.key_id)
        return True

    def consumer_of(self, token: str) -> str | None:
        """The consumer a presented credential belongs to, or None (unknown, wrong, revoked).
        Runs scrypt in the calling thread (the CLI, tests); the service uses the parts above."""
        known = self.remembered(token)
        if known is not None:
            return known
        candidate = self.candidate(token)
        if check(candidate) and self.remember(token, candidate):
            return candidate.consumer
        return None

    def _digest(self, token: str) -> bytes:
        return hashlib.blake2b(token.encode(), key=self._token_key, digest_size=16).digest()

    def _active(self, key_id: str) -> bool:
        return self.con.execute("SELECT 1 FROM credentials WHERE key_id = ? AND revoked_at IS "
                                "NULL", [key_id]).fetchone() is not None

    def _refresh(self) -> bytes:
        """The file's change counter; when another process changed the file, forget the
        remembered keys that are no longer active (issuing a key forgets nothing)."""
        version = os.pread(self._header, 4, 24)
        if version != self._version:
            self._version = version
            active = {r[0] for r in self.con.execute(
                "SELECT key_id FROM credentials WHERE revoked_at IS NULL")}
            self._verified = {d: v for d, v in self._verified.items() if v[1] in active}
        return version
