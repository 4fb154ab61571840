"""Who is asking: the credential of a request checked without starving the event loop.

A credential verified before is recognised in microseconds (`Credentials.remembered`). Anything
else costs one scrypt (~50 ms, the same whether the key id is unknown or the secret wrong), run in
a small thread pool, never on the event loop. Failures are limited per peer address and per key id
(`FailureBackoff`: a few free, then 429 with Retry-After, doubling), before any scrypt is spent;
and at most MAX_PENDING checks wait for the pool at once (more: 429), so a flood of wrong secrets
costs its senders waiting and the service two threads at most."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

from pipelines.serving.http.ratelimit import FailureBackoff, RateLimiter
from pipelines.serving.credentials import Credentials, check, key_id_of
from pipelines.serving.prefill import RequestError

THREADS = 2  # scrypt threads (this machine has two cores; more would only queue in the kernel)
MAX_PENDING = 32  # checks running or queued for the pool
FREE_FAILURES_PER_KEY = 5  # within a minute, before a key id waits
FREE_FAILURES_PER_PEER = 20  # a peer may hold several consumers' keys (or be a proxy)
_KEY_ID = re.compile(r"[0-9a-f]{1,32}")


def who_presented(auth: str) -> str:
    """The refusal log's `who` for an unverified credential: its key id, never its secret."""
    key_id = key_id_of(auth[7:].strip()) if auth[:7].lower() == "bearer " else ""
    return f"key:{key_id}" if _KEY_ID.fullmatch(key_id) else "-"


class Authenticator:
    def __init__(self, credentials: Credentials, limiter: RateLimiter) -> None:
        self.credentials, self.limiter = credentials, limiter
        self.pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="scrypt")
        self.pending = 0
        self.by_key = FailureBackoff(FREE_FAILURES_PER_KEY)
        self.by_peer = FailureBackoff(FREE_FAILURES_PER_PEER)

    def known(self, auth: str) -> str | None:
        """The consumer of a credential verified before (the common case, no await), or None."""
        if auth[:7].lower() != "bearer ":
            return None
        return self.credentials.remembered(auth[7:].strip())

    async def consumer(self, auth: str, peer: str) -> str:
        """The consumer the Authorization header names and within its rate limit; else
        RequestError 401 (missing or wrong credential) or 429 (rate limit, too many failures)."""
        consumer = self.known(auth)
        if consumer is None:
            consumer = await self._verify(auth, peer)
        wait = self.limiter.wait_needed(consumer)
        if wait:
            raise RequestError(429, "rate_limited", f"over the rate limit; retry after "
                               f"{wait:.2f} s", retry_after=wait)
        return consumer

    async def _verify(self, auth: str, peer: str) -> str:
        if auth[:7].lower() != "bearer ":
            raise RequestError(401, "missing_credentials", "send Authorization: Bearer "
                               "<consumer>.<key id>.<secret> (huiliu consumers issue)")
        token = auth[7:].strip()
        key = f"key:{key_id_of(token)}"
        wait = max(self.by_peer.wait_needed(peer), self.by_key.wait_needed(key))
        if wait:
            raise RequestError(429, "too_many_failures", "too many wrong credentials from this "
                               f"address or for this key; retry after {wait:.0f} s",
                               retry_after=wait)
        if self.pending >= MAX_PENDING:
            raise RequestError(429, "busy", "too many credentials being checked; retry in a "
                               "second", retry_after=1.0)
        candidate = self.credentials.candidate(token)
        self.pending += 1
        try:
            ok = await asyncio.get_running_loop().run_in_executor(self.pool, check, candidate)
        finally:
            self.pending -= 1
        if ok and self.credentials.remember(token, candidate):
            self.by_key.succeeded(key)
            return candidate.consumer
        self.by_peer.failed(peer)
        self.by_key.failed(key)
        raise RequestError(401, "invalid_credentials", "unknown, wrong or revoked credential; "
                           "ask the hub's operators for a new one")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
