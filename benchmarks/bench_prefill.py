"""Prefill service speed on the 1,000,000-person world, beside a bare Starlette ceiling.

    python -m benchmarks.bench_prefill --scale 1000000

Builds the world (simulator, backflow, reconcile, publish, serving store), stops the simulator,
then — load from a second process on loopback (wrk, 1 thread, 32 keep-alive connections):
  ceiling   a bare Starlette endpoint returning a constant (same uvicorn settings)
  prefill   POST /v1/prefill, NEWBORN for two random persons, audit included
and a batch verification of 1,000,000 subjects (POST /v1/batch, streamed), with the service's peak
RSS. Writes benchmarks/results/prefill-<scale>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.bench_backflow import child
from benchmarks.bench_reconcile import BACKFLOW, RECONCILE
from pipelines.demo import Simulator, free_port

RESULTS = Path(__file__).parent / "results"
WRK_SCRIPT = Path(__file__).parent / "wrk_bodies.lua"

STORE = r"""
import json, sys, time
from pathlib import Path
from pipelines.lib.publish import publish
from pipelines.lib.serving.store import build_store
from pipelines.lib.settings import Settings
s = Settings(home=Path(sys.argv[1]))
publish(s)
t = time.perf_counter()
path = build_store(s.published_current.resolve(), s.home / "serving")
print(json.dumps({"seconds": time.perf_counter() - t, "bytes": path.stat().st_size}))
"""


def wait_up(url: str, proc) -> None:
    for _ in range(600):
        assert proc.poll() is None, "server exited at start-up"
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def peak_rss_mb(pid: int) -> float:
    """Peak RSS of the process and its children (uvicorn's workers), summed."""
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for p in [pid, *map(int, children.read_text().split())]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


def load(url: str, bodies: Path, key: str | None, seconds: float) -> dict:
    """wrk (Debian's package; `make system-packages`) from its own process: one thread, 32
    keep-alive connections, the bodies round-robin (benchmarks/wrk_bodies.lua)."""
    env = {**os.environ, "BODIES": str(bodies)}
    if key:
        env["AUTH"] = f"Bearer {key}"
    cmd = ["wrk", "-t1", "-c32", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(WRK_SCRIPT),
           url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--batch", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes, the same "
                    "for the ceiling and the service")
    ap.add_argument("--work", type=Path, help="a folder to build the world in and keep; when it "
                    "already holds a built world (from an earlier run), that world is reused")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="huiliu-bench-prefill-"))
    home = work / "hub"
    out: dict = {"scale": args.scale, "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                                 f"Python {platform.python_version()}"}
    built = work / "built.json"
    if built.exists():
        out |= json.loads(built.read_text())
        out["reused_world"] = str(work)
        for old in (home / "serving").glob("audit*"):  # each run starts a fresh audit log
            old.unlink()
    else:
        with Simulator(work / "sim", scale=args.scale) as sim:
            out["backflow"] = child(BACKFLOW, sim.url, str(home), str(work / "sim" / "drops"))
            today = sim.status()["date"]
        wh = str(home / "warehouse" / "huiliu.duckdb")
        out["reconcile_s"] = child(RECONCILE, wh, today, str(work / "reports"))["wall_seconds"]
        built.write_text(json.dumps({k: out[k] for k in ("backflow", "reconcile_s")}))
    out["store"] = child(STORE, str(home))  # always: the store's layout is what is measured
    con = sqlite3.connect(home / "serving" / "current.sqlite")
    ids = [k for (k,) in con.execute("SELECT key FROM subjects WHERE kind = 'person'")]
    con.close()
    rng = random.Random(7)
    bodies = work / "bodies.jsonl"
    with bodies.open("w", encoding="utf-8") as f:
        for i in range(20_000):
            f.write(json.dumps({"case_id": f"B{i}", "purpose": "NEWBORN", "template": "NEWBORN",
                                "subjects": {"mother": rng.choice(ids),
                                             "father": rng.choice(ids)}}) + "\n")
    env = {**os.environ, "HUILIU_HOME": str(home), "HUILIU_AUDIT_KEY": "bench-key",
           "HUILIU_API_RATE": "1000000000"}
    key = subprocess.run([sys.executable, "-m", "pipelines.cli", "consumers", "issue", "WJW"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    uvicorn = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--log-level", "warning",
               "--no-access-log", "--workers", str(args.workers)]
    out["workers"] = args.workers

    port = free_port()
    ceiling = subprocess.Popen([*uvicorn, "--port", str(port), "benchmarks.ceiling_app:app"],
                               env=env)
    try:
        wait_up(f"http://127.0.0.1:{port}/", ceiling)
        load(f"http://127.0.0.1:{port}/v1/prefill", bodies, None, 2)  # warm up
        out["ceiling"] = load(f"http://127.0.0.1:{port}/v1/prefill", bodies, None, args.seconds)
    finally:
        ceiling.terminate()
        ceiling.wait(10)

    port = free_port()
    service = subprocess.Popen([*uvicorn, "--port", str(port), "--factory",
                                "pipelines.api.app:app_from_env"], env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(f"{url}/healthz", service)
        load(f"{url}/v1/prefill", bodies, key, 2)
        out["prefill"] = load(f"{url}/v1/prefill", bodies, key, args.seconds)
        checks = [{"check": "alive", "subject": ids[i % len(ids)]} for i in range(args.batch)]
        t = time.perf_counter()
        lines = 0
        with httpx.stream("POST", f"{url}/v1/batch", timeout=600,
                          headers={"Authorization": f"Bearer {key}"},
                          json={"case_id": "BATCH-1", "purpose": "AFTER_DEATH",
                                "checks": checks}) as r:
            for line in r.iter_lines():
                lines += bool(line)
        out["batch"] = {"subjects": args.batch, "lines": lines, "status": r.status_code,
                        "seconds": time.perf_counter() - t}
        out["service_peak_rss_mb"] = peak_rss_mb(service.pid)
    finally:
        service.terminate()
        service.wait(10)
    out["ratio"] = out["prefill"]["rps"] / out["ceiling"]["rps"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"prefill-{args.scale}.json").write_text(json.dumps(out, indent=1))
    c, p, b = out["ceiling"], out["prefill"], out["batch"]
    print(f"scale {args.scale:,}; {out['machine']}; store build {out['store']['seconds']:.1f} s, "
          f"{out['store']['bytes'] / 2**20:.0f} MiB")
    print(f"ceiling (bare Starlette): {c['rps']:,.0f} req/s, p50 {c['p50_ms']:.1f} ms, "
          f"p99 {c['p99_ms']:.1f} ms, non-2xx {c['non_2xx']}, socket errors {c['socket_errors']}")
    print(f"prefill (audited): {p['rps']:,.0f} req/s = {out['ratio']:.2f}x ceiling, p50 "
          f"{p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms, non-2xx {p['non_2xx']}, socket errors {p['socket_errors']}")
    print(f"batch verification: {b['subjects']:,} subjects, {b['lines']:,} answers in "
          f"{b['seconds']:.1f} s (HTTP {b['status']}); service peak RSS "
          f"{out['service_peak_rss_mb']:.0f} MiB")


if __name__ == "__main__":
    main()
