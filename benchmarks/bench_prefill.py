"""Prefill service speed on the 1,000,000-person world, beside a bare Starlette ceiling.

    python -m benchmarks.bench_prefill --scale 1000000

Builds the world (simulator, backflow, reconcile, publish, serving store), stops the simulator,
then — load from a second process on loopback (wrk, 1 thread, 32 keep-alive connections):
  ceiling      a bare Starlette endpoint returning a constant (same uvicorn settings)
  raw_ceiling  the same constant from a bare ASGI callable (the floor under the hot paths)
  prefill      POST /v1/prefill, NEWBORN for two random persons, audit included
loaded in turn for --rounds rounds (the machine's speed drifts: ratios are taken within a round)
and a batch verification of 1,000,000 subjects (POST /v1/batch, streamed; since the cap on checks a
call, as consecutive calls of 10,000 on one connection), with the service's peak RSS. The service
runs as `huiliu serve` runs it: with the hub's HTTP protocol (pipelines/serving/http/protocol.py, its limits
included in the figures); the ceilings with uvicorn's own. `--baseline REF` (repeatable) adds the
service of an earlier commit to every round and batch, run from a git worktree with its own store
(benchmarks/prefill_baseline.py). Writes benchmarks/results/prefill-<scale>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks import prefill_baseline
from benchmarks.bench_backflow import child
from benchmarks.bench_reconcile import BACKFLOW, RECONCILE
from pipelines import paths
from pipelines.sim.process import SimulatorProcess, free_port
from pipelines.serving.store import CURRENT, Store
from pipelines.settings import Settings

RESULTS = Path(__file__).parent / "results"
WRK_SCRIPT = Path(__file__).parent / "wrk_bodies.lua"
BATCH_CAP = 10_000  # checks a /v1/batch call (the service's default HUILIU_SERVE_MAX_BATCH_CHECKS)

STORE = r"""
import json, sys, time
from pathlib import Path
from pipelines.warehouse.publish import publish
from pipelines.serving.store import build_store
from pipelines.settings import Settings
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
    """Peak RSS of the process and all its descendants (uvicorn's workers, the audit log's
    writer and indexer), summed."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            total += int(line.split()[1]) / 1024
    for task in Path(f"/proc/{pid}/task").iterdir():
        for kid in (task / "children").read_text().split():
            total += peak_rss_mb(int(kid))
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
    ap.add_argument("--seconds", type=float, default=10, help="per server and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes, the same "
                    "for the ceiling and the service")
    ap.add_argument("--baseline", action="append", default=[], metavar="REF",
                    help="also load the service of this git commit in every round, from a "
                    "worktree (repeatable): a change's cost, measured beside the version before")
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
        with SimulatorProcess(work / "sim", scale=args.scale) as sim:
            out["backflow"] = child(BACKFLOW, sim.url, str(home), str(work / "sim" / "drops"))
            today = sim.status()["date"]
        wh = str(home / "warehouse" / "huiliu.duckdb")
        out["reconcile_s"] = child(RECONCILE, wh, today, str(work / "reports"))["wall_seconds"]
        built.write_text(json.dumps({k: out[k] for k in ("backflow", "reconcile_s")}))
    out["store"] = child(STORE, str(home))  # always: the store's layout is what is measured
    store = Store(home / "serving" / CURRENT)
    ids = store.keys("person")
    store.close()
    rng = random.Random(7)
    bodies = work / "bodies.jsonl"
    with bodies.open("w", encoding="utf-8") as f:
        for i in range(20_000):
            f.write(json.dumps({"case_id": f"B{i}", "purpose": "NEWBORN", "template": "NEWBORN",
                                "subjects": {"mother": rng.choice(ids),
                                             "father": rng.choice(ids)}}) + "\n")
    env = {**os.environ, "HUILIU_HOME": str(home),
           "HUILIU_AUDIT_KEY": "bench-audit-key-" + "0123456789abcdef" * 2,
           "HUILIU_AUDIT_ANCHOR": str(home / "audit.anchor"),
           "HUILIU_API_RATE": "1000000000", "HUILIU_SERVE_CHECK_RATE": "1000000000"}
    key = subprocess.run([sys.executable, "-m", "pipelines.cli", "consumers", "issue", "WJW"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    uvicorn = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--log-level", "warning",
               "--no-access-log", "--workers", str(args.workers)]
    out["workers"] = args.workers

    # The servers run side by side (an idle one costs nothing) and are loaded in turn, round
    # after round: this machine's speed drifts by a third between minutes, so a ratio is only
    # meaningful between runs made next to each other. Each: (uvicorn arguments, env, its key,
    # the folder it runs in: `python -m` puts that first on the path, in its children too).
    here = Path.cwd()
    servers = {"ceiling": (["benchmarks.ceiling_app:app"], env, key, here),
               "raw_ceiling": (["benchmarks.ceiling_app:raw_app"], env, key, here),
               "prefill": (["--http", paths.SERVICE_HTTP_PROTOCOL, "--factory", paths.SERVICE_APP],
                           env, key, here)}
    services = ["prefill"]
    published = Settings(home=home).published_current.resolve()
    out["baselines"] = {}
    for ref in args.baseline:
        b = prefill_baseline.prepare(ref, work, published, env)
        # before the hub had its own HTTP protocol, `huiliu serve` ran uvicorn's httptools
        servers[b.name] = ([*b.http, "--factory", b.app], b.env, b.key, b.tree)
        services.append(b.name)
        out["baselines"][b.name] = {"ref": ref, "store": b.store}
    procs, urls = {}, {}
    try:
        for name, (spec, senv, _, cwd) in servers.items():
            port = free_port()
            procs[name] = subprocess.Popen([*uvicorn, "--port", str(port), *spec], env=senv,
                                           cwd=cwd)
            urls[name] = f"http://127.0.0.1:{port}"
        for name, (_, _, skey, _) in servers.items():
            wait_up(f"{urls[name]}/healthz", procs[name])
            load(f"{urls[name]}/v1/prefill", bodies, skey, 2)  # warm up
        out["rounds"] = [{name: load(f"{urls[name]}/v1/prefill", bodies, skey, args.seconds)
                          for name, (_, _, skey, _) in servers.items()}
                         for _ in range(args.rounds)]
        for r in out["rounds"]:
            for name in services:
                suffix = "" if name == "prefill" else f"_{name}"
                r[f"ratio{suffix}"] = r[name]["rps"] / r["ceiling"]["rps"]
                r[f"ratio_raw{suffix}"] = r[name]["rps"] / r["raw_ceiling"]["rps"]
        checks = [{"check": "alive", "subject": ids[i % len(ids)]} for i in range(args.batch)]
        out["batches"] = {name: batch(urls[name], servers[name][2], checks)
                          for name in services}
        out["batch"] = out["batches"]["prefill"]
        out["peak_rss_mb"] = {name: peak_rss_mb(procs[name].pid) for name in services}
        out["service_peak_rss_mb"] = out["peak_rss_mb"]["prefill"]
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(10)
    out["median_ratio"] = statistics.median(r["ratio"] for r in out["rounds"])
    out["worst_p99_ms"] = max(r["prefill"]["p99_ms"] for r in out["rounds"])
    RESULTS.mkdir(exist_ok=True)
    suffix = f"-{args.workers}w" if args.workers > 1 else ""
    (RESULTS / f"prefill-{args.scale}{suffix}.json").write_text(json.dumps(out, indent=1))
    print(f"scale {args.scale:,}; {out['machine']}; {args.workers} worker(s); store build "
          f"{out['store']['seconds']:.1f} s, {out['store']['bytes'] / 2**20:.0f} MiB")
    for name, b in out["baselines"].items():
        print(f"  {name}: store {b['store']['seconds']:.1f} s, "
              f"{b['store']['bytes'] / 2**20:.0f} MiB")
    for i, r in enumerate(out["rounds"], 1):
        c, w = r["ceiling"], r["raw_ceiling"]
        print(f"round {i}: ceiling {c['rps']:,.0f} req/s (p99 {c['p99_ms']:.1f} ms); raw ASGI "
              f"{w['rps']:,.0f}")
        for name in services:
            p, sfx = r[name], "" if name == "prefill" else f"_{name}"
            print(f"  {name}: {p['rps']:,.0f} req/s = {r['ratio' + sfx]:.2f}x ceiling "
                  f"({r['ratio_raw' + sfx]:.2f}x raw), p50 {p['p50_ms']:.1f} ms, p99 "
                  f"{p['p99_ms']:.1f} ms, non-2xx {p['non_2xx']}, socket errors "
                  f"{p['socket_errors']}")
    print(f"median ratio {out['median_ratio']:.2f}x; worst prefill p99 {out['worst_p99_ms']:.1f} ms")
    for name in services:
        b = out["batches"][name]
        print(f"{name} batch verification: {b['subjects']:,} subjects in {b['calls']:,} calls, "
              f"{b['lines']:,} answers in {b['seconds']:.1f} s (HTTP {b['status']}); peak RSS "
              f"{out['peak_rss_mb'][name]:.0f} MiB")


def batch(url: str, key: str, checks: list[dict]) -> dict:
    """The checks as consecutive /v1/batch calls of at most BATCH_CAP (the service's
    HUILIU_SERVE_MAX_BATCH_CHECKS) on one keep-alive connection, each answer streamed."""
    t = time.perf_counter()
    lines, statuses = 0, set()
    with httpx.Client(timeout=600, headers={"Authorization": f"Bearer {key}"}) as c:
        for start in range(0, len(checks), BATCH_CAP):
            with c.stream("POST", f"{url}/v1/batch", json={
                    "case_id": f"BATCH-{start // BATCH_CAP}", "purpose": "AFTER_DEATH",
                    "checks": checks[start:start + BATCH_CAP]}) as r:
                statuses.add(r.status_code)
                for line in r.iter_lines():
                    lines += bool(line)
    return {"subjects": len(checks), "lines": lines, "calls": -(-len(checks) // BATCH_CAP),
            "status": max(statuses), "seconds": time.perf_counter() - t}

if __name__ == "__main__":
    main()
