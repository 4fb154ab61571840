"""A node's own signing keys, kept in <home>/exchange/keys/ for the hub's account alone (0600 in
a 0700 folder), as X-Road keeps a member's keys on its security server: generated on the node,
never sent anywhere; only the public half goes into the exchange's directory.

Rotation adds a key and makes it current; the earlier ones stay, so answers to requests signed
before the switch still verify, until the operator has the directory list them as revoked."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from pathlib import Path

from pipelines.exchange.envelope import Signer
from pipelines.exchange.suites import suite

OWNER_ONLY_FILE, OWNER_ONLY_DIR = 0o600, 0o700
CURRENT = "current"


class NoKey(FileNotFoundError):
    """The node has no signing key yet: `huiliu exchange keygen` makes one."""


def keys_dir(home: Path) -> Path:
    return home / "exchange" / "keys"


def generate(home: Path, node: str, suite_name: str) -> Signer:
    """A new key pair of the suite, made current."""
    pair = suite(suite_name).generate()
    folder = keys_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, OWNER_ONLY_DIR)
    key_id = f"{node}-{dt.datetime.now(dt.UTC):%Y%m%d}-{secrets.token_hex(3)}"
    record = {"key_id": key_id, "node": node, "suite": pair.suite, "private": pair.private,
              "public": pair.public, "created": dt.datetime.now(dt.UTC).isoformat()}
    fd = os.open(folder / f"{key_id}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY_FILE)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    tmp = folder / f".{CURRENT}.tmp"
    tmp.write_text(key_id)
    os.replace(tmp, folder / CURRENT)
    return Signer(node, key_id, pair.suite, pair.private)


def current(home: Path) -> Signer:
    """The node's current signing key."""
    folder = keys_dir(home)
    try:
        key_id = (folder / CURRENT).read_text().strip()
        record = json.loads((folder / f"{key_id}.json").read_text())
    except FileNotFoundError:
        raise NoKey(f"no exchange signing key under {folder}: run `huiliu exchange keygen`") \
            from None
    return Signer(record["node"], record["key_id"], record["suite"], record["private"])


def public_keys(home: Path) -> list[dict]:
    """Every key this node has made, public halves only (for its directory entry)."""
    folder = keys_dir(home)
    out = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        r = json.loads(path.read_text())
        out.append({"key_id": r["key_id"], "suite": r["suite"], "public": r["public"]})
    return out
