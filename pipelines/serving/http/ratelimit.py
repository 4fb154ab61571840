"""Rate limits of the prefill service: token buckets per consumer, back-off per failing key or
peer. Both are bounded in memory whatever callers send."""

from __future__ import annotations

import time
from collections import OrderedDict


class RateLimiter:
    """Token bucket per consumer: `rate` tokens a second, up to `burst` held. A request takes
    one; a batch takes one per check. Consumers are the authenticated ones (a handful), and
    buckets that have filled up again are dropped when there are many."""

    MAX_BUCKETS = 10_000

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate, self.burst, self.buckets = rate, burst or rate, {}

    def wait_needed(self, consumer: str, n: int = 1) -> float:
        """0 and `n` tokens taken, or the seconds until they would be there (nothing taken)."""
        now = time.monotonic()
        entry = self.buckets.get(consumer)
        if entry is None:
            if len(self.buckets) >= self.MAX_BUCKETS:
                self._drop_full(now)
            tokens = self.burst
        else:
            tokens = min(self.burst, entry[0] + (now - entry[1]) * self.rate)
        if tokens >= n:
            self.buckets[consumer] = (tokens - n, now)
            return 0.0
        self.buckets[consumer] = (tokens, now)
        return (n - tokens) / self.rate

    def _drop_full(self, now: float) -> None:
        """Forget buckets that have filled up again (forgetting them changes nothing); if that
        is not enough, forget all (more consumers than MAX_BUCKETS is not a real node)."""
        self.buckets = {c: (t, last) for c, (t, last) in self.buckets.items()
                        if t + (now - last) * self.rate < self.burst}
        if len(self.buckets) >= self.MAX_BUCKETS:
            self.buckets = {}


class FailureBackoff:
    """Per key (a peer address, a key id): the first `free` failures within `window` seconds cost
    nothing more; after them each failure makes the key wait, 1 s doubling up to `max_wait`. A
    success forgets the key's failures. At most `max_keys` keys: the least recently failed one is
    forgotten first (a flood from many keys cannot grow memory, and each key is still limited
    while it keeps failing)."""

    def __init__(self, free: int, window: float = 60.0, max_wait: float = 60.0,
                 max_keys: int = 10_000) -> None:
        self.free, self.window, self.max_wait, self.max_keys = free, window, max_wait, max_keys
        self.failures: OrderedDict[str, tuple[int, float, float]] = OrderedDict()

    def wait_needed(self, key: str) -> float:
        entry = self.failures.get(key)
        if entry is None:
            return 0.0
        now = time.monotonic()
        if now - entry[1] > max(self.window, entry[2] - entry[1]):
            del self.failures[key]
            return 0.0
        return max(0.0, entry[2] - now)

    def failed(self, key: str) -> None:
        now = time.monotonic()
        count, last, _ = self.failures.pop(key, (0, now, now))
        count = 1 if now - last > self.window else count + 1
        wait = min(self.max_wait, 2.0 ** (count - self.free - 1)) if count > self.free else 0.0
        self.failures[key] = (count, now, now + wait)
        while len(self.failures) > self.max_keys:
            self.failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self.failures.pop(key, None)
