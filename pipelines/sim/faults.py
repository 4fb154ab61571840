"""Transport faults, off by default: API faults are drawn per request, bulk faults per batch.

API: http_5xx (503), http_429 (Retry-After), slow (delay `slow_seconds`), drop_connection (the
connection is closed without a complete response), expire_token (a valid token is refused with 401
invalid_token). Bulk: see drops.BULK_FAULTS; a faulty batch is re-delivered correctly at the next
advance. Also the per-client rate limiter (a token bucket).
"""

from __future__ import annotations

import random
import threading
import time

from pipelines.sim.config import DEFAULT_FAULTS, update_rates
from pipelines.sim.drops import BULK_FAULTS

API_FAULTS = ("http_429", "http_5xx", "drop_connection", "slow")  # expire_token: see pick_expire


class Faults:
    def __init__(self, seed: int, rates: dict[str, float] | None = None):
        self.rates = dict(DEFAULT_FAULTS)
        if rates:
            self.rates = update_rates(self.rates, rates, "fault")
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def update(self, changes: dict) -> dict[str, float]:
        self.rates = update_rates(self.rates, changes, "fault")
        return self.rates

    def pick_api(self) -> str | None:
        with self._lock:
            for name in API_FAULTS:
                if self.rates[name] > 0 and self._rng.random() < self.rates[name]:
                    return name
        return None

    def pick_expire(self) -> bool:
        """Whether to refuse a valid token (decided after the token has been checked)."""
        with self._lock:
            return self._rng.random() < self.rates["expire_token"]

    def pick_bulk(self, rng) -> str | None:
        """Draw from `rng` (seeded per batch) so that drops stay reproducible."""
        u = rng.random(len(BULK_FAULTS))
        for name, x in zip(BULK_FAULTS, u.tolist(), strict=True):
            if x < self.rates[name]:
                return name
        return None


class RateLimiter:
    """Token bucket per client: `rate` requests per second, bursts up to `rate`."""

    def __init__(self, rate: float):
        self.rate = float(rate)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> tuple[bool, float]:
        """(allowed, seconds until the next token)."""
        if self.rate <= 0:
            return True, 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.rate, now))
            tokens = min(self.rate, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                return True, 0.0
            self._buckets[client] = (tokens, now)
            return False, (1.0 - tokens) / self.rate
