"""Consumer credentials: issued, rotated and revoked from the CLI, stored only as scrypt hashes.

A credential is `<consumer>.<key id>.<secret>`; the service finds the key by id and compares the
scrypt hash of the secret in constant time. Verified keys are remembered for the process (scrypt
costs ~20 ms by design; a prefill must not pay it on every request) until the credentials file
file changes: another process (the CLI) issued or revoked a key. The file is kept in rollback-
journal mode, where every commit bumps the change counter in its header (bytes 24-27); reading
those four bytes costs ~1 µs, asking SQLite (PRAGMA data_version) ~14 µs a request here."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import sqlite3
from pathlib import Path

_N, _R, _P = 2**14, 8, 1


def _hash(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P).hex()


class Credentials:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.con.execute("""CREATE TABLE IF NOT EXISTS credentials (key_id TEXT PRIMARY KEY,
            consumer TEXT NOT NULL, salt BLOB NOT NULL, hash TEXT NOT NULL, issued_at TEXT,
            revoked_at TEXT)""")
        self.con.execute("PRAGMA journal_mode=DELETE")  # the change counter below relies on it
        self._header = os.open(path, os.O_RDONLY)
        self._verified: dict[str, str] = {}  # credential -> consumer, while the file is unchanged
        self._version = None

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

    def consumer_of(self, token: str) -> str | None:
        """The consumer a presented credential belongs to, or None (unknown, wrong, revoked)."""
        version = os.pread(self._header, 4, 24)
        if version != self._version:  # another process changed the file: verify afresh
            self._verified.clear()
            self._version = version
        known = self._verified.get(token)
        if known is not None:
            return known
        parts = token.split(".")
        if len(parts) != 3:
            return None
        consumer, key_id, secret = parts
        row = self.con.execute("SELECT consumer, salt, hash, revoked_at FROM credentials "
                               "WHERE key_id = ?", [key_id]).fetchone()
        if row is None or row[3] is not None or row[0] != consumer:
            return None
        if hmac.compare_digest(_hash(secret, row[1]), row[2]):
            self._verified[token] = consumer
            return consumer
        return None
