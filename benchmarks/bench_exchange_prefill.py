"""Cross-node prefill (全国通办, issue 16 §5): a 重庆 (500000) officer's prefill about a child
registered in 四川 (510000), answered through the national exchange, beside the same node's local
prefill in the same run.

    python -m benchmarks.bench_exchange_prefill --scale 100000 --seconds 20

For each suite (ed25519-sha256, then sm2-sm3; a federation each, since keys are per suite):
`pipelines.exchange.federation.prepare` starts three nodes (500000, 510000, 440300) over one
simulated world, backflows each node's scope (in parallel), makes keys, credentials and the
directory; then the exchange and the three prefill services start (`federation.start`'s steps,
with a longer wait for them). Then, load from wrk (one
thread, N keep-alive connections = N concurrent clients, a Lua script written by this benchmark
that gives every request its own case_id and takes the subjects round-robin from a file):

  local     POST 500000/v1/prefill, JYJ, SCHOOL_ENROLL, child = a 500000 resident
  cross     the same on 500000 with child = a 510000 resident 500000 does not know: requester
            -> exchange (/v1/relay) -> 510000 (/v1/exchange) and back; every case_id new, so
            the requester's case memory never answers
  answering POST 510000/v1/prefill, its own JYJ, for its own residents (the answering node's
            work alone, seen from a local caller)

each at --clients (16) for --seconds after a short warm-up, then each at one client for
--serial-seconds (the same breakdown without queueing). Signing a request and its answer is timed
in-process with the suite's seal / countersign / open_envelope (benchmarks/bench_exchange_signing's
helpers), with the nodes idle. The exchange hop is an estimate: cross p50 - local p50 - answering
p50 - signing. Every answer is counted by HTTP status and by what its body says (a remote role
found and marked with node 510000, or a REMOTE_* failure); a sample is checked field by field
against the simulator's truth. Between phases the processes are left to settle (until idle:
audit logs written, synced and indexed); each phase records every process's CPU and the
machine's busy / idle / steal shares. Last, with the federation stopped, the CPU an
httpx.AsyncClient POST costs its caller.

Without wrk, load comes from asyncio + httpx in this process (said in the output): a client
that costs more CPU a request than a local prefill, so the local phases then measure the client
and the throughput ratio means little. The load generator shares the machine's cores with three
nodes, their audit writers, the exchange and three idle simulators. Writes
benchmarks/results/exchange-prefill.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

from benchmarks.bench_exchange_signing import BODY, timed, world
from pipelines.exchange.directory import EXCHANGE
from pipelines.exchange.envelope import countersign, open_envelope, seal
from pipelines.exchange.federation import Federation, prepare
from pipelines.exchange.replay import ReplayGuard
from pipelines.serving.store import CURRENT, Store
from pipelines.sim.process import free_port

RESULTS = Path(__file__).parent / "results"
CLIENT = "wrk" if shutil.which("wrk") else "httpx"  # the load generator
SUITES = ("ed25519-sha256", "sm2-sm3")
REQUESTER, ANSWERER = "500000", "510000"
DEPT, TEMPLATE, ROLE = "JYJ", "SCHOOL_ENROLL", "child"
P95_TARGET_MS, RATIO_TARGET = 100.0, 0.25

# wrk: POSTs a prefill per request, its case_id new (CASE prefix, thread, counter), the subject
# taken round-robin from SUBJECTS (one per line, each thread from its own offset). Counts each
# answer by status and by what its body holds; prints one JSON line at the end.
LUA = r"""
local ids, i = {}, 0
local prefix, template, role = os.getenv("CASE"), os.getenv("TEMPLATE"), os.getenv("ROLE")
local expect = os.getenv("EXPECT_NODE")
local threads, counter = {}, 0
codes, with_node, unavailable, found, remote_failed = {}, 0, 0, 0, 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  threads[#threads + 1] = thread
end

function init(args)
  for line in io.lines(os.getenv("SUBJECTS")) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  i = (tid or 1) * 7919
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = os.getenv("AUTH")
end

function request()
  i = i + 1
  local body = '{"case_id":"' .. prefix .. '-' .. tid .. '-' .. i .. '","purpose":"' ..
    template .. '","template":"' .. template .. '","subjects":{"' .. role .. '":"' ..
    ids[(i % #ids) + 1] .. '"}}'
  return wrk.format("POST", nil, nil, body)
end

function response(status, headers, body)
  local k = tostring(status)
  codes[k] = (codes[k] or 0) + 1
  if status == 200 then
    local is_found = string.find(body, '"status":"found"', 1, true)
    local is_unavailable = string.find(body, '"status":"unavailable"', 1, true)
    -- a role another node could not answer: {"status":"unavailable","reason":"REMOTE_..."}
    local failed = string.find(body, '"reason":"REMOTE_', 1, true)
    if is_found then found = found + 1 end
    if is_unavailable then unavailable = unavailable + 1 end
    if failed then remote_failed = remote_failed + 1 end
    if expect and is_found and not failed and
        string.find(body, '"node":"' .. expect .. '"', 1, true) then
      with_node = with_node + 1
    end
  end
end

function done(summary, latency, requests)
  local all, n, f, u, x = {}, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    n = n + t:get("with_node")
    f = f + t:get("found")
    u = u + t:get("unavailable")
    x = x + t:get("remote_failed")
    -- codes is a table: read it key by key as a string
    local c = t:get("codes")
    for k, v in pairs(c) do all[k] = (all[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(all) do parts[#parts + 1] = string.format('"%s": %d', k, v) end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p95_ms": %.3f, ' ..
    '"p99_ms": %.3f, "max_ms": %.3f, "mean_ms": %.3f, "non_2xx": %d, "socket_errors": %d, ' ..
    '"codes": {%s}, "found": %d, "unavailable": %d, "remote_failed": %d, "with_node": %d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000,
    e.status, e.connect + e.read + e.write + e.timeout, table.concat(parts, ", "), f, u, x, n))
end
"""


def residents(truth: duckdb.DuckDBPyConnection, prefix: str, limit: int) -> list[dict]:
    """Living persons registered under `prefix` since birth (citizen ID and hukou both there,
    never moved): only that node's simulator delivers them (as tests/integration do)."""
    cur = truth.execute(f"""SELECT gmsfhm, xm, birth_date FROM truth WHERE status = 'alive'
        AND registered AND NOT ever_moved AND gmsfhm LIKE '{prefix}%'
        AND hukou_division LIKE '{prefix}%' ORDER BY hash(gmsfhm) LIMIT {limit}""")
    return [{"id": r[0], "name": r[1]} for r in cur.fetchall()]


def known_ids(path: Path, ids: list[str]) -> set[str]:
    """Which of `ids` appear in any text column of the DuckDB file (a node may know a person of
    another node: one married a resident, say); those would be answered locally."""
    found: set[str] = set()
    with duckdb.connect(str(path), read_only=True) as con:
        cols = con.execute("""SELECT schema_name, table_name, column_name FROM duckdb_columns()
            WHERE data_type = 'VARCHAR' AND NOT internal""").fetchall()
        con.execute("CREATE TEMP TABLE asked(id VARCHAR)")
        con.executemany("INSERT INTO asked VALUES (?)", [[i] for i in ids])
        for schema, table, column in cols:
            found |= {r[0] for r in con.execute(
                f'SELECT DISTINCT a.id FROM "{schema}"."{table}" t JOIN asked a '
                f'ON t."{column}" = a.id').fetchall()}
    return found


def _store_keys(home: Path) -> list[str]:
    store = Store(home / "serving" / CURRENT)  # read-only LMDB beside the running service
    try:
        return store.keys("person")
    finally:
        store.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (a node's service, its audit
    writer and indexer), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / tick
        for task in Path(f"/proc/{pid}/task").iterdir():
            for kid in (task / "children").read_text().split():
                total += cpu_seconds(int(kid))
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return total


def machine_times() -> list[int]:
    """The machine's CPU time by state (/proc/stat: user nice system idle iowait irq softirq
    steal), in ticks."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def machine_share(before: list[int], after: list[int]) -> dict:
    d = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(d) or 1
    return {"busy": (d[0] + d[1] + d[2] + d[5] + d[6]) / total, "idle": d[3] / total,
            "iowait": d[4] / total, "steal": d[7] / total}


def settle(pids: dict[str, int], limit_s: float = 60) -> float:
    """Wait until the processes are idle (the audit logs written, synced and indexed after the
    phase before): under 5 % of a core over a second, or limit_s. Seconds waited."""
    t = time.perf_counter()
    os.sync()
    while time.perf_counter() - t < limit_s:
        before = sum(cpu_seconds(p) for p in pids.values())
        time.sleep(1)
        if sum(cpu_seconds(p) for p in pids.values()) - before < 0.05:
            break
    return time.perf_counter() - t


def load(url: str, key: str, subjects: Path, case: str, clients: int, seconds: float,
         script: Path, expect_node: str | None) -> dict:
    """One load phase with wrk when the machine has it, else with httpx (slower: its own CPU
    a request is several times wrk's, on the same cores). The figures, and `client_cpu_s`."""
    if CLIENT == "wrk":
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = wrk(url, key, subjects, case, clients, seconds, script, expect_node)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        r["client_cpu_s"] = (after.ru_utime + after.ru_stime - before.ru_utime
                             - before.ru_stime)
        return r
    t = time.process_time()
    r = httpx_load(url, key, subjects, case, clients, seconds, expect_node)
    r["client_cpu_s"] = time.process_time() - t
    return r


def wrk(url: str, key: str, subjects: Path, case: str, clients: int, seconds: float,
        script: Path, expect_node: str | None) -> dict:
    env = {**os.environ, "SUBJECTS": str(subjects), "AUTH": f"Bearer {key}", "CASE": case,
           "TEMPLATE": TEMPLATE, "ROLE": ROLE}
    if expect_node:
        env["EXPECT_NODE"] = expect_node
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "10s", "-s",
           str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def httpx_load(url: str, key: str, subjects: Path, case: str, clients: int, seconds: float,
               expect_node: str | None) -> dict:
    """The wrk script's work with asyncio and httpx: `clients` loops, each request a new
    case_id, the same counts."""
    import asyncio

    ids = subjects.read_text().split()
    lat: list[float] = []
    n = {"found": 0, "unavailable": 0, "remote_failed": 0, "with_node": 0, "socket_errors": 0}
    codes: dict[str, int] = {}

    async def run() -> float:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(timeout=10, limits=limits,
                                     headers={"Authorization": f"Bearer {key}"}) as c:
            start = time.perf_counter()
            end = start + seconds

            async def one(w: int) -> None:
                i = w * 7919
                while time.perf_counter() < end:
                    i += 1
                    body = {"case_id": f"{case}-{w}-{i}", "purpose": TEMPLATE,
                            "template": TEMPLATE, "subjects": {ROLE: ids[i % len(ids)]}}
                    t = time.perf_counter()
                    try:
                        r = await c.post(url, json=body)
                    except httpx.HTTPError:
                        n["socket_errors"] += 1
                        continue
                    lat.append(time.perf_counter() - t)
                    codes[str(r.status_code)] = codes.get(str(r.status_code), 0) + 1
                    if r.status_code == 200:
                        b = r.content
                        found, failed = b'"status":"found"' in b, b'"reason":"REMOTE_' in b
                        n["found"] += found
                        n["unavailable"] += b'"status":"unavailable"' in b
                        n["remote_failed"] += failed
                        n["with_node"] += bool(expect_node and found and not failed and
                                               f'"node":"{expect_node}"'.encode() in b)

            await asyncio.gather(*(one(w + 1) for w in range(clients)))
            return time.perf_counter() - start

    took = asyncio.run(run())
    lat.sort()

    def pct(q: float) -> float:
        return 1000 * lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0.0

    return {"requests": len(lat), "seconds": took, "rps": len(lat) / took, "p50_ms": pct(0.5),
            "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": pct(1.0),
            "mean_ms": 1000 * sum(lat) / max(1, len(lat)),
            "non_2xx": sum(v for k, v in codes.items() if not k.startswith("2")),
            "codes": codes, **n}


def signing_ms(suite_name: str, n: int) -> dict:
    """A request and its answer through the suite, in this process: the sender's seal, the
    exchange's countersign and the receiver's open, twice (bench_exchange_signing's steps)."""
    d, signers = world(suite_name)
    now = dt.datetime.now(dt.UTC)
    seal_us, sealed = timed(lambda i: seal("request", f"r-{i}", ANSWERER, BODY,
                                           signers[REQUESTER], now), n)
    stamp_us, stamped = timed(lambda i: countersign(sealed[i], d, signers[EXCHANGE],
                                                    ReplayGuard(), now), n)
    inbox = ReplayGuard()
    open_us, _ = timed(lambda i: open_envelope(stamped[i], d, ANSWERER, inbox, now), n)
    per_message = seal_us + stamp_us + open_us
    return {"messages": n, "seal_us": seal_us, "countersign_us": stamp_us, "open_us": open_us,
            "per_message_ms": per_message / 1000, "per_exchange_ms": 2 * per_message / 1000}


def check_sample(url: str, key: str, people: list[dict], case: str,
                 expect_node: str | None) -> dict:
    """Prefills for a sample, one by one, each answer read whole: 200, the child found, its
    name the truth's, and (cross-node) the role and every available field marked with the
    answering node."""
    bad, gaps = [], {}
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as c:
        for k, p in enumerate(people):
            r = c.post(url, json={
                "case_id": f"{case}-{k}", "purpose": TEMPLATE, "template": TEMPLATE,
                "subjects": {ROLE: p["id"]}})
            problem = None
            if r.status_code != 200:
                problem = f"HTTP {r.status_code}"
            else:
                role = r.json()["roles"][ROLE]
                fields = role.get("fields", {})
                if role.get("status") != "found":
                    problem = f"status {role.get('status')} {role.get('reason')}"
                elif role.get("node") != expect_node:
                    problem = f"node {role.get('node')}"
                elif fields.get("name", {}).get("value") != p["name"]:
                    problem = "name differs from the truth"
                elif expect_node and any(f.get("source", {}).get("node") != expect_node
                                         for f in fields.values()
                                         if f.get("status") == "available"):
                    problem = "a field's source lacks the node"
                for code, env in fields.items():  # a field without a value (not a failure)
                    if env.get("status") == "unavailable":
                        gap = f"{code}: {env.get('reason')}"
                        gaps[gap] = gaps.get(gap, 0) + 1
            if problem:
                bad.append({"subject": p["id"][:6] + "…", "problem": problem})
    return {"checked": len(people), "bad": len(bad), "problems": bad[:10],
            "fields_unavailable": gaps}


def client_cost(n: int = 4000) -> dict:
    """CPU a POST costs the caller with the exchange's Transport (aiohttp), as the requester and
    the exchange each make one a cross-node request, beside httpx.AsyncClient (what they used
    before: the baseline), on uvloop as under uvicorn, against a bare ASGI constant
    (benchmarks/ceiling_app.py) under uvicorn, at 1 and 16 concurrent requests: the HTTP
    client's share of the hop, measured with nothing else running."""
    from pipelines.exchange.transport import Transport
    import asyncio
    import sys

    import uvloop

    port = free_port()
    srv = subprocess.Popen([sys.executable, "-m", "uvicorn", "--port", str(port), "--log-level",
                            "warning", "--no-access-log", "benchmarks.ceiling_app:raw_app"])
    body = b"x" * 1000  # about a request envelope's size

    async def run(concurrent: int, kind: str) -> dict:
        transport = Transport(10.0)
        async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=64)) as c:
            async def worker(count: int) -> None:
                for _ in range(count):
                    if kind == "httpx":
                        r = await c.post(f"http://127.0.0.1:{port}/", content=body,
                                         headers={"content-type": "application/json"})
                        assert r.status_code == 200
                    else:
                        status, _ = await transport.post(f"http://127.0.0.1:{port}/", body)
                        assert status == 200

            await asyncio.gather(*(worker(200 // concurrent + 1) for _ in range(concurrent)))
            t, w = time.process_time(), time.perf_counter()
            await asyncio.gather(*(worker(n // concurrent) for _ in range(concurrent)))
            done = n // concurrent * concurrent
            result = {"requests": done, "cpu_ms": 1000 * (time.process_time() - t) / done,
                      "rps": done / (time.perf_counter() - w)}
        await transport.aclose()
        return result

    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        out = {}
        for kind in ("transport", "httpx"):
            for concurrent in (1, 16):
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    out[f"{kind} {concurrent}"] = runner.run(run(concurrent, kind))
        return out
    finally:
        srv.terminate()
        srv.wait(10)


def start_and_wait(fed: Federation, timeout: float) -> None:
    """`federation.start`, with a wait long enough for three stores built at once."""
    fed.start_exchange()
    for n in fed.nodes.values():
        n.start()
    fed.wait_ready(timeout)


def run_suite(suite_name: str, args, root: Path, script: Path) -> dict:
    out: dict = {"suite": suite_name}
    t0 = time.perf_counter()
    fed = prepare(root / suite_name, scale=args.scale, seed=args.seed, suite=suite_name,
                  extra_env={"HUILIU_API_RATE": "1000000000"},
                  say=lambda m: print(f"  [{suite_name}] {m}", flush=True))
    out["prepare_s"] = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        start_and_wait(fed, 600)
        out["start_s"] = time.perf_counter() - t1
        print(f"  [{suite_name}] prepared in {out['prepare_s']:.0f} s (simulators, three "
              f"backflows, keys), services up in {out['start_s']:.0f} s", flush=True)
        truth = duckdb.connect()
        truth.execute("CREATE TABLE truth AS SELECT * FROM "
                      f"'{fed.nodes[REQUESTER].sim.truth()}/persons.parquet'")
        # the subjects each node's serving store holds (the simulator's default defect profile
        # has some records quarantined: a resident of the truth may be missing from the store)
        held = {code: set(_store_keys(n.home)) for code, n in fed.nodes.items()}
        local_all = residents(truth, "50", args.subjects)
        local = [p for p in local_all if p["id"] in held[REQUESTER]]
        remote_all = residents(truth, "51", args.subjects)
        remote = [p for p in remote_all if p["id"] in held[ANSWERER]]
        published = fed.nodes[REQUESTER].home / "published" / "current.duckdb"
        known = {p["id"] for p in remote if p["id"] in held[REQUESTER]} | known_ids(
            published, [p["id"] for p in remote])
        unknown = [p for p in remote if p["id"] not in known]
        out["subjects"] = {"local_500000": len(local),
                           "local_not_in_500000_store": len(local_all) - len(local),
                           "remote_510000": len(remote),
                           "remote_not_in_510000_store": len(remote_all) - len(remote),
                           "remote_known_to_500000_excluded": len(known),
                           "remote_asked": len(unknown)}
        print(f"  [{suite_name}] subjects: {len(local):,} local ({len(local_all) - len(local)} "
              f"of the truth's residents not in the store left out); {len(unknown):,} of "
              f"510000 ({len(remote_all) - len(remote)} not in its store, {len(known)} known "
              "to 500000 left out)", flush=True)
        files = {}
        for name, people in (("local", local), ("remote", unknown)):
            files[name] = root / f"{suite_name}-{name}.txt"
            files[name].write_text("".join(p["id"] + "\n" for p in people))
        req, ans = fed.nodes[REQUESTER], fed.nodes[ANSWERER]
        phases = {  # name: (url, key, subjects, the node answers must name)
            "local": (f"{req.url}/v1/prefill", req.credentials[DEPT], files["local"], None),
            "cross": (f"{req.url}/v1/prefill", req.credentials[DEPT], files["remote"],
                      ANSWERER),
            "answering": (f"{ans.url}/v1/prefill", ans.credentials[DEPT], files["remote"], None),
        }
        out["signing"] = signing_ms(suite_name, args.messages)  # the nodes idle meanwhile
        out["load"], out["serial"] = {}, {}
        pids = {f"node {c}": n.proc.pid for c, n in fed.nodes.items()}
        pids["exchange"] = fed.exchange_proc.pid
        pids |= {f"simulator {c}": n.sim.proc.pid for c, n in fed.nodes.items()}
        for name, (url, key, subjects, node) in phases.items():
            settled = settle(pids)
            load(url, key, subjects, f"W{name}", args.clients, args.warmup, script, node)
            before = {k: cpu_seconds(p) for k, p in pids.items()}
            machine_before = machine_times()
            out["load"][name] = r = load(url, key, subjects, f"L{name}", args.clients,
                                         args.seconds, script, node)
            r["machine"] = machine_share(machine_before, machine_times())
            r["settled_s"] = settled
            cpu = {k: cpu_seconds(p) - before[k] for k, p in pids.items()}
            cpu[CLIENT] = r.pop("client_cpu_s")
            r["cpu_s"] = cpu
            r["cpu_ms_per_request"] = {k: 1000 * v / max(1, r["requests"])
                                       for k, v in cpu.items()}
            r["cores_busy"] = sum(cpu.values()) / r["seconds"]
            show(suite_name, name, args.clients, r)
        if args.serial_seconds > 0:
            for name, (url, key, subjects, node) in phases.items():
                settle(pids)
                machine_before = machine_times()
                out["serial"][name] = r = load(url, key, subjects, f"S{name}", 1,
                                               args.serial_seconds, script, node)
                r.pop("client_cpu_s")
                r["machine"] = machine_share(machine_before, machine_times())
                show(suite_name, name, 1, out["serial"][name])
        pools = {"local": local, "cross": unknown, "answering": unknown}
        out["sample"] = {name: check_sample(url, key, pools[name][:args.sample], f"CHK{name}",
                                            node)
                         for name, (url, key, _, node) in phases.items()}
        out["service_log_errors"] = {
            code: _errors(n.home / "service.log") for code, n in fed.nodes.items()}
        out["service_log_errors"]["exchange"] = _errors(fed.exchange_home / "exchange.log")
    finally:
        fed.stop()
    out["figures"] = figures(out)
    return out


def _errors(log: Path) -> int:
    """Lines of a service's log that look like an error or a traceback."""
    if not log.exists():
        return 0
    text = log.read_text(errors="replace").splitlines()
    return sum(("Traceback" in s or "ERROR" in s or "Error" in s) for s in text)


def show(suite_name: str, name: str, clients: int, r: dict) -> None:
    print(f"  [{suite_name}] {name:9s} {clients:2d} clients: {r['rps']:8,.0f} req/s  p50 "
          f"{r['p50_ms']:6.1f}  p95 {r['p95_ms']:6.1f}  p99 {r['p99_ms']:6.1f} ms  "
          f"({r['requests']:,} requests, codes {r['codes']}, socket errors "
          f"{r['socket_errors']}, remote failed {r['remote_failed']}, a field or role "
          f"unavailable {r['unavailable']}"
          + (f", node-marked {r['with_node']:,}" if name == "cross" else "") + ")", flush=True)
    if "cpu_ms_per_request" in r:
        busy = {k: v for k, v in r["cpu_ms_per_request"].items() if v >= 0.005}
        print(f"  [{suite_name}] {'':9s} CPU ms a request: " + ", ".join(
            f"{k} {v:.2f}" for k, v in busy.items()) + f"; {r['cores_busy']:.2f} of "
            f"{os.cpu_count()} cores busy", flush=True)
    if "machine" in r:
        m = r["machine"]
        print(f"  [{suite_name}] {'':9s} machine: busy {m['busy']:.0%}, idle {m['idle']:.0%}, "
              f"iowait {m['iowait']:.0%}, steal {m['steal']:.0%}", flush=True)


def figures(out: dict) -> dict:
    load, sign = out["load"], out["signing"]["per_exchange_ms"]
    f = {"local_rps": load["local"]["rps"], "cross_rps": load["cross"]["rps"],
         "ratio": load["cross"]["rps"] / load["local"]["rps"],
         "cross_p95_ms": load["cross"]["p95_ms"], "signing_ms": sign}
    f["p95_target_met"] = f["cross_p95_ms"] <= P95_TARGET_MS
    f["ratio_target_met"] = f["ratio"] >= RATIO_TARGET
    for name, r in load.items():
        if "cpu_ms_per_request" in r:  # every process's CPU a request, the load generator's too
            f[f"{name}_cpu_ms_per_request"] = sum(r["cpu_ms_per_request"].values())
    if "cpu_ms_per_request" in load["cross"]:
        # what the requester alone spends a cross-node request, against a local one: the ratio
        # its throughput could reach if the other node and the exchange ran on other machines
        req = f"node {REQUESTER}"
        f["requester_cpu_ratio_local_to_cross"] = (load["local"]["cpu_ms_per_request"][req]
                                                   / load["cross"]["cpu_ms_per_request"][req])
    for which in ("load", "serial"):
        ph = out.get(which) or {}
        if len(ph) == 3:
            f[f"{which}_hop_estimate_ms"] = (ph["cross"]["p50_ms"] - ph["local"]["p50_ms"]
                                             - ph["answering"]["p50_ms"] - sign)
    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--seconds", type=float, default=20, help="per load phase")
    ap.add_argument("--warmup", type=float, default=3, help="before each load phase")
    ap.add_argument("--serial-seconds", type=float, default=8,
                    help="each phase again at one client (0: skip)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--subjects", type=int, default=5000, help="subjects per pool")
    ap.add_argument("--messages", type=int, default=1000, help="signing: messages per step")
    ap.add_argument("--sample", type=int, default=300, help="answers checked one by one")
    ap.add_argument("--suite", action="append", choices=SUITES,
                    help="one suite only (repeatable; default both)")
    ap.add_argument("--work", type=Path, help="where the federations are built (kept)")
    ap.add_argument("--client", choices=("wrk", "httpx"),
                    help="the load generator (default: wrk when installed, else httpx)")
    ap.add_argument("--out", type=Path, default=RESULTS / "exchange-prefill.json")
    args = ap.parse_args()
    global CLIENT
    CLIENT = args.client or CLIENT
    if CLIENT != "wrk":
        print("wrk is missing (`make bench-exchange` installs it): load from asyncio + httpx "
              "instead, a slower client on the same cores", flush=True)
    root = args.work or Path(tempfile.mkdtemp(prefix="huiliu-bench-exchange-"))
    root.mkdir(parents=True, exist_ok=True)
    script = root / "prefill_cases.lua"
    script.write_text(LUA)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    out: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                            f"{platform.python_version()}", "commit": head,
                 "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                 "load_before": os.getloadavg(), "scale": args.scale, "seed": args.seed,
                 "client": (f"wrk, 1 thread, {args.clients} keep-alive connections "
                            if CLIENT == "wrk" else f"asyncio + httpx, {args.clients} loops ")
                 + f"(= concurrent clients), on the same {os.cpu_count()} cores as the nodes",
                 "clients": args.clients, "seconds": args.seconds, "warmup": args.warmup,
                 "serial_seconds": args.serial_seconds, "request": f"{DEPT} {TEMPLATE} "
                 f"{{{ROLE}}}, a new case_id each", "suites": {}}
    print(f"scale {args.scale:,}; {out['machine']}; load: {out['client']}", flush=True)
    for s in args.suite or SUITES:
        out["suites"][s] = run_suite(s, args, root, script)
    out["http_client"] = client_cost()
    out["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    report(out)


def report(out: dict) -> None:
    c = out["http_client"]
    if not out["client"].startswith("wrk"):
        print("\nNOTE: load from httpx, not wrk: the local phases are bound by the client itself, "
              "so the cross/local ratio below is not the service's")
    print(f"\nscale {out['scale']:,}; {out['machine']}; {out['client']}")
    print(f"{'suite':15s} {'phase':22s} {'req/s':>8s} {'p50':>7s} {'p95':>7s} {'p99':>7s} "
          f"{'non-200':>8s} {'remote failed':>14s}   (ms)")
    for s, r in out["suites"].items():
        for which, clients in (("load", out["clients"]), ("serial", 1)):
            for name, p in (r.get(which) or {}).items():
                non200 = p["requests"] - p["codes"].get("200", 0)
                print(f"{s:15s} {name + f' ({clients} cl.)':22s} {p['rps']:8,.0f} "
                      f"{p['p50_ms']:7.1f} {p['p95_ms']:7.1f} {p['p99_ms']:7.1f} "
                      f"{non200:8d} {p['remote_failed']:14d}")
    print()
    for s, r in out["suites"].items():
        f, sig = r["figures"], r["signing"]
        print(f"{s}: setup {r['prepare_s']:.0f} s + services {r['start_s']:.0f} s")
        print(f"  cross/local throughput {f['ratio']:.2f}x (target >= {RATIO_TARGET}x: "
              f"{'met' if f['ratio_target_met'] else 'NOT met'}); cross p95 "
              f"{f['cross_p95_ms']:.1f} ms (target <= {P95_TARGET_MS:.0f} ms: "
              f"{'met' if f['p95_target_met'] else 'NOT met'})")
        for which in ("load", "serial"):
            ph = r.get(which) or {}
            if len(ph) == 3:
                at = f"{out['clients']} clients" if which == "load" else "1 client"
                print(f"  breakdown at {at} (p50): cross {ph['cross']['p50_ms']:.1f} = local "
                      f"{ph['local']['p50_ms']:.1f} + answering node "
                      f"{ph['answering']['p50_ms']:.1f} + signing {sig['per_exchange_ms']:.2f}"
                      f" + exchange hop (estimate) {f[which + '_hop_estimate_ms']:.1f} ms")
        if "cross_cpu_ms_per_request" in f:
            print(f"  CPU a request, all processes: local {f['local_cpu_ms_per_request']:.2f} ms, "
                  f"cross {f['cross_cpu_ms_per_request']:.2f} ms, answering "
                  f"{f['answering_cpu_ms_per_request']:.2f} ms; the requester's own CPU, "
                  f"local/cross: {f['requester_cpu_ratio_local_to_cross']:.2f}x")
        cross = r["load"]["cross"]
        samples = ", ".join(f"{k} {v['checked'] - v['bad']}/{v['checked']} ok"
                            for k, v in r["sample"].items())
        print(f"  cross answers found and marked node 510000: {cross['with_node']:,} of "
              f"{cross['requests']:,} (remote failures {cross['remote_failed']}); samples: "
              + samples
              + f"; error lines in service logs: {r['service_log_errors']}")
        gaps = {k: v["fields_unavailable"] for k, v in r["sample"].items()
                if v["fields_unavailable"]}
        if gaps:
            print(f"  fields without a value in the samples (not failures): {gaps}")
    for kind, name in (("transport", "the exchange's Transport (aiohttp)"),
                       ("httpx", "httpx.AsyncClient (baseline)")):
        print(f"{name}, a POST to a bare ASGI constant: {c[kind + ' 1']['cpu_ms']:.2f} ms of the "
              f"caller's CPU at 1 concurrent, {c[kind + ' 16']['cpu_ms']:.2f} ms at 16 "
              "(the requester and the exchange each make one a cross-node request)")


if __name__ == "__main__":
    main()
