"""The audit log's anchor: head records appended, and only appended, to a file of the operator's.

The head file beside the log is rewritten by the log's own writer, so whoever can write the log can
cut entries off its end and set the head back to match. The anchor holds what the log looked like,
in a place that account cannot rewrite: the writer opens it with O_APPEND only and adds a line

    key <fingerprint> <first keyed seq> <time>   when the log's key file is created
    head <seq> <mac> <time>                      every second entries were added, on open, on close

and `huiliu audit verify` checks each against the log. That the file cannot be rewritten is the
operator's part: `chattr +a` (only root can undo it; the hub must not run as root), or a mount
another account or host owns. One anchor file per audit log.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FS_IOC_GETFLAGS = 0x80086601
FS_APPEND_FL = 0x20


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Anchor:
    """The writer's side: appends only."""

    def __init__(self, path: Path, mode: int, *, warn_if_rewritable: bool = True) -> None:
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
        self.last: tuple[int, str] | None = None
        if warn_if_rewritable and not append_only(self.fd):
            log.warning("the audit anchor %s is not append-only: the hub's account could rewrite "
                        "it and hide entries cut off the log's end; make it so (`chattr +a`) or "
                        "keep it on another account's mount", self.path)

    def key(self, fingerprint: str, keyed_from: int) -> None:
        self._append(f"key {fingerprint} {keyed_from} {_now()}\n")

    def head(self, seq: int, mac: str) -> None:
        """A head record, unless it is the one this writer recorded last."""
        if seq <= 0 or self.last == (seq, mac):
            return
        self._append(f"head {seq} {mac} {_now()}\n")
        self.last = (seq, mac)

    def _append(self, line: str) -> None:
        os.write(self.fd, line.encode())  # one short O_APPEND write: never interleaved

    def close(self) -> None:
        os.close(self.fd)


def append_only(fd: int) -> bool:
    """Whether the file has the append-only attribute (False where it cannot be told)."""
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("i", 0)))[0]
    except OSError:
        return False
    return bool(flags & FS_APPEND_FL)


@dataclass
class AnchorRecords:
    keys: list[tuple[str, int, str]] = field(default_factory=list)  # fingerprint, keyed from, at
    heads: dict[int, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    unreadable: list[int] = field(default_factory=list)  # line numbers

    @property
    def last_head(self) -> int:
        return max(self.heads, default=0)


def read_anchor(path: Path) -> AnchorRecords | None:
    """What the anchor records; None when there is no anchor file."""
    records = AnchorRecords()
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    with f:
        for number, line in enumerate(f, start=1):
            words = line.split()
            if (len(words) == 4 and words[0] == b"head" and words[1].isdigit()
                    and len(words[2]) == 64):
                records.heads[int(words[1])].append((words[2].decode(), words[3].decode()))
            elif len(words) == 4 and words[0] == b"key" and words[2].isdigit():
                records.keys.append((words[1].decode(), int(words[2]), words[3].decode()))
            else:
                records.unreadable.append(number)
    return records
