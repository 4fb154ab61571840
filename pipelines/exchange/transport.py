"""HTTP between a node and the exchange, and between the exchange and a node: one POST of a
message's bytes within a deadline, over kept-alive connections (aiohttp: its client costs a
fraction of httpx's CPU a request, which on the cross-node path is paid twice; BENCHMARKS.md).
Failures come out as two kinds a caller can name: too slow, or not reachable."""

from __future__ import annotations

import asyncio

import aiohttp

MAX_ANSWER_BYTES = 1 << 20


class Unreachable(Exception):
    """Nothing answered: refused connection, reset, or a broken answer."""


class TooSlow(Exception):
    """No whole answer within the deadline."""


class Transport:
    def __init__(self, deadline_s: float, connections: int = 64) -> None:
        self.deadline_s, self.connections = deadline_s, connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # made in the running loop on first use (a session belongs to one event loop)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=self.deadline_s),
                skip_auto_headers=("User-Agent",))
        return self._session

    async def post(self, url: str, data: bytes) -> tuple[int, bytes]:
        try:
            async with self._open().post(url, data=data, headers={
                    "Content-Type": "application/json"}) as r:
                body = await r.content.read(MAX_ANSWER_BYTES + 1)
                if len(body) > MAX_ANSWER_BYTES:
                    raise Unreachable("answer over 1 MiB")
                return r.status, body
        except (TimeoutError, asyncio.TimeoutError):
            raise TooSlow() from None
        except aiohttp.ClientError as e:
            raise Unreachable(str(e)) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
