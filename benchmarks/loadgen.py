"""A small HTTP/1.1 load generator (asyncio streams, keep-alive): N connections send requests
back to back for a fixed time; prints requests/s and latency percentiles as JSON.

    python -m benchmarks.loadgen URL --connections 32 --seconds 10 [--bodies FILE] [--header H]

Bodies (one JSON document per line) are POSTed round-robin; without them it GETs the URL.
Run in its own process, so the service under test and the load do not share an interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


async def _worker(host, port, path, headers, bodies, offset, stop_at, lat, codes):
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    while time.perf_counter() < stop_at:
        if bodies:
            body = bodies[i % len(bodies)]
            i += 1
            req = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n{headers}\r\n").encode() + body
        else:
            req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode()
        t = time.perf_counter()
        writer.write(req)
        status = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        lat.append(time.perf_counter() - t)
        code = int(status.split()[1])
        codes[code] = codes.get(code, 0) + 1
    writer.close()


async def run(url, connections, seconds, bodies, headers):
    u = urlsplit(url)
    hdr = "".join(f"{h}\r\n" for h in headers)
    lat: list[float] = []
    codes: dict[int, int] = {}
    stop_at = time.perf_counter() + seconds
    t0 = time.perf_counter()
    await asyncio.gather(*(_worker(u.hostname, u.port, u.path, hdr, bodies, n * 7919, stop_at,
                                   lat, codes) for n in range(connections)))
    elapsed = time.perf_counter() - t0
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else None

    return {"requests": len(lat), "seconds": elapsed, "rps": len(lat) / elapsed,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": lat[-1] * 1000 if lat else None,
            "codes": codes}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--bodies")
    ap.add_argument("--header", action="append", default=[])
    a = ap.parse_args()
    bodies = [line.encode() for line in open(a.bodies, encoding="utf-8")] if a.bodies else []
    print(json.dumps(asyncio.run(run(a.url, a.connections, a.seconds, bodies, a.header))))


if __name__ == "__main__":
    main()
