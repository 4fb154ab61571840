"""The refusal log: every request the service refused, counted, off the request path.

Answers go to the audit log; refusals (400, 401, 403, 404, 405, 408, 413, 429, 431, connections
closed at the limit …) go to `<serving dir>/refusals.jsonl`, one line per (peer, who, path,
status, code) and second with its count, so a flood of refusals costs a dictionary increment each
and a few lines a second, not a write each. `who` is the consumer when the credential was
verified, else `key:<key id>` as presented (never a secret), else "-". Alerts for governance staff
(enumeration) go to the same file as lines of kind "alert" (`huiliu audit alerts`).

Memory is bounded: past MAX_KEYS distinct keys in one interval, further refusals are counted under
peer and who "*" (still counted, by path, status and code)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
from pathlib import Path

import orjson

from pipelines.file_modes import FILE_MODE

log = logging.getLogger(__name__)

REFUSALS_LOG = "refusals.jsonl"  # in the serving directory
FLUSH_EVERY_S = 1.0
MAX_KEYS = 10_000
MAX_ALERTS = 1_000  # per interval; enumeration alerts are already one per subject and window
_SAFE = re.compile(r"[A-Za-z0-9._:/-]{1,64}")


def safe(text: str) -> str:
    """Caller-supplied text as the log may hold it: short and plain, else a mark of its size."""
    return text if _SAFE.fullmatch(text) else f"(unprintable, {len(text)} chars)"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class RefusalLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        self.lock = threading.Lock()
        self.counts: dict[tuple, int] = {}
        self.alerts: list[dict] = []
        self.since = _now()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="refusal-log", daemon=True)
        self.thread.start()

    def count(self, peer: str, who: str, path: str, status: int, code: str) -> None:
        """One refused request (O(1), any thread)."""
        key = (peer, who, safe(path), status, code)
        with self.lock:
            if key not in self.counts and len(self.counts) >= MAX_KEYS:
                key = ("*", "*", key[2], status, code)
            self.counts[key] = self.counts.get(key, 0) + 1

    def alert(self, kind: str, **fields) -> None:
        """A record for governance staff (written with the next flush)."""
        with self.lock:
            if len(self.alerts) < MAX_ALERTS:
                self.alerts.append({"at": _now(), "kind": "alert", "alert": kind, **fields})

    def flush(self) -> None:
        with self.lock:
            counts, alerts, since = self.counts, self.alerts, self.since
            self.counts, self.alerts, self.since = {}, [], _now()
        if not counts and not alerts:
            return
        lines = [orjson.dumps({"at": since, "until": self.since, "kind": "refused",
                               "peer": peer, "who": who, "path": path, "status": status,
                               "code": code, "count": n})
                 for (peer, who, path, status, code), n in counts.items()]
        lines += map(orjson.dumps, alerts)
        data = b"\n".join(lines) + b"\n"
        try:  # one write per flush: lines of several worker processes never interleave
            while data:
                data = data[os.write(self.fd, data):]
        except OSError as e:  # a full disk must not stop the service from answering
            log.error("cannot write the refusal log %s: %s", self.path, e)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.flush()
        os.close(self.fd)

    def _run(self) -> None:
        while not self.stopping.wait(FLUSH_EVERY_S):
            self.flush()


def read(path: Path) -> list[dict]:
    """The log's lines (for `huiliu audit alerts` and the tests); damaged lines are skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return out
