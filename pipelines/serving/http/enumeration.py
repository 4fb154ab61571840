"""Limits on yes/no checks that could enumerate a value.

`married_to` over 500 candidate IDs finds a person's spouse; `hukou_in` over the divisions finds
where one lives. A consumer may ask about one subject with at most `limit` distinct candidate
values (married_to's `other`, and the reverse: one `other` with distinct subjects; hukou_in's
`division`) within `window` seconds, across cases and calls; asking again about a value already
asked is free. Further checks are refused (403 enumeration_limit) and, once per subject and
window, flagged to governance staff (an alert in the refusal log: `huiliu audit alerts`).

Memory is bounded: at most MAX_TRACKED (consumer, check, subject) records, dropped oldest first
when full (each record is a few small ints: hashes, never the IDs themselves)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from pipelines.serving.prefill import RequestError, subject_key

MAX_TRACKED = 200_000
# check -> (anchor field, candidate field, candidate kind or None for a plain code), each direction
GUARDED: dict[str, tuple[tuple[str, str, str | None], ...]] = {
    "married_to": (("subject", "other", "person"), ("other", "subject", "person")),
    "hukou_in": (("subject", "division", None),),
}


class EnumerationGuard:
    def __init__(self, limit: int, window: float,
                 alert: Callable[[str, str, str, str], None]) -> None:
        """`alert(consumer, check, case_id, subject key)` is called once per subject and window
        when a consumer goes over the limit."""
        self.limit, self.window, self.alert = limit, window, alert
        self.key = secrets.token_bytes(16)
        self.tracked: OrderedDict[bytes, list] = OrderedDict()  # -> [expires, alerted, *values]

    def refusal(self, consumer: str, case_id: str, item) -> RequestError | None:
        """None if the check may be answered; else the error to answer it with."""
        directions = GUARDED.get(item.get("check")) if isinstance(item, dict) else None
        if not directions:
            return None
        now = time.monotonic()
        self._expire(now)
        for anchor_field, value_field, kind in directions:
            anchor = _normal(item.get(anchor_field), "person")
            value = _normal(item.get(value_field), kind)
            if anchor is None or value is None:
                continue  # malformed: verify answers it with a 400
            record_key = self._hash(consumer, item["check"], anchor_field, anchor)
            record = self.tracked.get(record_key)
            if record is None:
                if len(self.tracked) >= MAX_TRACKED:
                    self.tracked.popitem(last=False)
                record = self.tracked[record_key] = [now + self.window, False]
            v = int.from_bytes(self._hash(value), "big")
            if v in record[2:]:
                continue
            if len(record) - 2 < self.limit:
                record.append(v)
                continue
            if not record[1]:
                record[1] = True
                self.alert(consumer, item["check"], case_id, f"person:{anchor}")
            return RequestError(403, "enumeration_limit", f"more than {self.limit} distinct "
                                f"`{value_field}` values asked about one `{anchor_field}` within "
                                f"{self.window / 3600:g} h; governance staff have been notified",
                                [value_field])
        return None

    def _hash(self, *parts: str) -> bytes:
        return hashlib.blake2b("\x1f".join(parts).encode(), key=self.key,
                               digest_size=8).digest()

    def _expire(self, now: float) -> None:
        while self.tracked:
            first = next(iter(self.tracked.values()))
            if first[0] > now:
                return
            self.tracked.popitem(last=False)


def _normal(raw, kind: str | None) -> str | None:
    if not isinstance(raw, str):
        return None
    if kind is None:
        return raw if len(raw) <= 16 else None
    return subject_key(kind, raw)
