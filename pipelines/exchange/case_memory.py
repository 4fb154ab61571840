"""What other nodes answered for a case, kept in memory for the case's working time and then
forgotten: never written to the warehouse, the serving store or any file. A case asking again
within the time gets the same answer without asking the other node again."""

from __future__ import annotations

import time
from collections import OrderedDict

MAX_ENTRIES = 100_000


class CaseMemory:
    def __init__(self, ttl_s: float, max_entries: int = MAX_ENTRIES, clock=time.monotonic):
        self.ttl_s, self.max_entries, self.clock = ttl_s, max_entries, clock
        self._items: OrderedDict[tuple, tuple[float, object]] = OrderedDict()

    def get(self, key: tuple):
        self._expire()
        found = self._items.get(key)
        return None if found is None else found[1]

    def put(self, key: tuple, value) -> None:
        self._expire()
        self._items[key] = (self.clock() + self.ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:  # the oldest case is forgotten first
            self._items.popitem(last=False)

    def _expire(self) -> None:
        now = self.clock()
        while self._items:
            key, (until, _) = next(iter(self._items.items()))
            if until > now:
                break
            del self._items[key]

    def __len__(self) -> int:
        self._expire()
        return len(self._items)
