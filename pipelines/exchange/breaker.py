"""A circuit breaker per remote node: after `failures` failures in a row the node is not asked
for `pause_s`; then one request is let through, and its outcome closes or reopens the circuit.
A node that is down costs its callers nothing but an `unavailable` while it stays down."""

from __future__ import annotations

import time


class Breaker:
    def __init__(self, failures: int = 3, pause_s: float = 10.0, clock=time.monotonic) -> None:
        self.failures, self.pause_s, self.clock = failures, pause_s, clock
        self._failed: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    def allows(self, node: str) -> bool:
        until = self._open_until.get(node)
        if until is None:
            return True
        if self.clock() < until:
            return False
        self._open_until[node] = self.clock() + self.pause_s  # this one request is the trial
        return True

    def succeeded(self, node: str) -> None:
        self._failed.pop(node, None)
        self._open_until.pop(node, None)

    def failed(self, node: str) -> None:
        n = self._failed.get(node, 0) + 1
        self._failed[node] = n
        if n >= self.failures:
            self._open_until[node] = self.clock() + self.pause_s

    def is_open(self, node: str) -> bool:
        return self.clock() < self._open_until.get(node, 0.0)
