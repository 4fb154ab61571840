"""The audit log's file format: one entry a line, a JSON array of COLUMNS' values.

Shared by the log (which writes it), its access index and `tampering` (which read it)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import orjson

COLUMNS = ("seq", "at", "consumer", "purpose", "template", "case_id", "subjects", "released",
           "withheld", "answer_digest", "prev_hash", "hash")
# An entry of another door than the prefill (the analysts' workbench) carries what it did as one
# more column, `detail` (a JSON object as text), before the chain's two; prefill entries keep 12.
DETAILED_COLUMNS = (*COLUMNS[:10], "detail", *COLUMNS[10:])
LISTS = ("subjects", "released", "withheld")


_TEXT = ("at", "consumer", "purpose", "template", "case_id", "answer_digest", "prev_hash", "hash")


def parse_line(line: bytes) -> dict | None:
    """The entry a line holds; None for anything else (a line cut short by a crash, or edited
    out of shape: every field of its type, so nothing reading entries trips over one)."""
    try:
        values = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(values, list) or len(values) not in (len(COLUMNS), len(DETAILED_COLUMNS)):
        return None
    columns = COLUMNS if len(values) == len(COLUMNS) else DETAILED_COLUMNS
    entry = dict(zip(columns, values, strict=True))
    if (type(entry["seq"]) is not int or not all(isinstance(entry[k], str) for k in _TEXT)
            or not isinstance(entry.get("detail", ""), str)
            or not all(isinstance(entry[k], list) and all(isinstance(v, str) for v in entry[k])
                       for k in LISTS)):
        return None
    return entry


def read_lines(path: Path, start: int = 0, limit: int | None = None, *, partial: bool = False
               ) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for the whole lines from byte `start` on, at most `limit` of them; a last
    line without its newline (still being written, or cut short) only when `partial`."""
    with open(path, "rb") as f:
        f.seek(start)
        at = start
        for line in itertools.islice(f, limit):
            if not partial and not line.endswith(b"\n"):
                return
            yield at, line
            at += len(line)


def line_at(f, offset: int) -> bytes:
    """The line starting at `offset` of the open file `f`."""
    f.seek(offset)
    return f.readline()
