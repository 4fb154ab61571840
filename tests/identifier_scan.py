"""Finding citizen IDs in text, stated for the tests independently of the hub's own validators
(GB 11643-1999: a division, a real birth date, a sequence number and the check character)."""

from __future__ import annotations

import datetime as dt
import re

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_PATTERN = r"[1-8][0-9]{5}(?:19|20)[0-9]{6}[0-9]{3}[0-9Xx]"
_ID = re.compile(rf"(?<![0-9A-Z]){ID_PATTERN}(?![0-9A-Z])")


def valid_citizen_ids(text: str) -> list[str]:
    """The valid IDs in a text. (An enterprise's USCC, 18 characters too, can pass the checksum
    alone: its "birth date" is no date.)"""
    found = []
    for m in _ID.findall(text):
        try:
            dt.date(int(m[6:10]), int(m[10:12]), int(m[12:14]))
        except ValueError:
            continue
        if "10X98765432"[sum(int(d) * w for d, w in zip(m, _WEIGHTS)) % 11] == m[-1].upper():
            found.append(m)
    return found
