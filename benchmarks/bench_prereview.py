"""Pre-review (智能辅助审批, issue 17 §4) beside the plain prefill, at 1,000,000 persons.

    python -m benchmarks.bench_prereview --work /tmp/pf1m      (or `make bench-prereview`)

Needs a world built by `python -m benchmarks.bench_prefill --scale 1000000 --work DIR` (or
`make bench-prefill` with --work): DIR/hub is a hub home with a published snapshot. The run
rebuilds DIR/hub/serving's store with this checkout's code, starts the service as `huiliu serve`
runs it with a fresh audit log and officers' queue, and loads it from a second process on loopback
(wrk, 1 thread, 16 keep-alive connections: issue 17's 16 concurrent clients):

  prefill    POST /v1/prefill for a subject (the same subjects as the pre-reviews)
  prereview  POST /v1/prereview, the same subjects with their claimed values (10 % wrong)

each --seconds in turn for --rounds rounds (this machine's speed drifts between minutes: the ratio
is taken within a round), then 1 connection for each, then 200 answers of each kind asked again
one by one and checked (status, verdict, provenance of every finding), then in-process timings of
the steps a pre-review adds (10,000 calls each). In every round, after those two, two throwaway
variants of the pre-review are loaded too (VARIANTS; --no-variants leaves them out), each a service
of its own beside the main one: what the officers' queue costs. Writes
benchmarks/results/prereview-1000000.json (the world is bench_prefill's 1,000,000 persons).

Subjects: 20,000 from the snapshot's gold.person, fixed seed: every alive school-age child (born
2019-09-01..2020-08-31, SCHOOL_ENROLL for JYJ) and, as the world holds too few of those, other
persons as SOCIAL_ASSIST applicants for MZJ. Two departments need two credentials, and the queue
keeps one row per (department, case_id), so every request needs its own case_id: the load uses its
own wrk script (written beside the bodies, `WRK_LUA` below) rather than benchmarks/wrk_bodies.lua,
which sends one Authorization header and the bodies verbatim (their case_ids repeat once the
20,000 bodies wrap around), and does not report a p95.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import platform
import random
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from benchmarks.bench_backflow import child
from benchmarks.bench_prefill import peak_rss_mb, wait_up
from pipelines.sim.process import free_port
from pipelines.serving.store import CURRENT

RESULTS = Path(__file__).parent / "results"
CONNECTIONS = 16  # issue 17 §4: p95 <= 50 ms at 16 concurrent clients
P95_TARGET_MS = 50.0
SUBJECTS = 20_000
WRONG_SHARE = 0.10
SAMPLE = 200
INPROCESS_CALLS = 10_000
SCHOOL_FROM, SCHOOL_TO = "2019-09-01", "2020-08-31"
CASE = "@CASE@"  # where the load puts each request's own case_id
VERDICTS = ("可秒批", "转人工", "退回补正")
BUSY = "ci-clone|pytest"  # a test suite on this machine: no measurement while it runs

STORE = r"""
import json, sys, time
from pathlib import Path
from pipelines.serving.store import build_store
from pipelines.settings import Settings
s = Settings(home=Path(sys.argv[1]))
t = time.perf_counter()
path = build_store(s.published_current.resolve(), s.home / "serving")
print(json.dumps({"seconds": time.perf_counter() - t, "bytes": path.stat().st_size,
                  "store": path.name, "published": s.published_current.resolve().name}))
"""

# Throwaway variants of the service, to tell what the pre-review's cost is (not shipped: patched in
# this launcher only, `huiliu serve` after it): queue_off, the officers' queue not written at all;
# queue_sync_normal, its SQLite commit without the fsync of each transaction (WAL, synchronous
# NORMAL: durable across a crash of the service, not across one of the machine).
VARIANTS = ("queue_off", "queue_sync_normal")
VARIANT = r"""
import sys
from pipelines.prereview import queue
if sys.argv[1] == "queue_off":
    queue.Queue.add = lambda self, department, body: None
elif sys.argv[1] == "queue_sync_normal":
    opened = queue.Queue.__init__
    def normal(self, path):
        opened(self, path)
        self.con.execute("PRAGMA synchronous=NORMAL")
    queue.Queue.__init__ = normal
else:
    raise SystemExit(f"unknown variant {sys.argv[1]}")
from pipelines.cli.main import main
sys.argv = ["huiliu", *sys.argv[2:]]
main()
"""

# One wrk thread: `i` numbers the run's requests, so RUN-i is unique within the run and RUN names
# the run. Bodies: "CONSUMER<TAB>json" lines with @CASE@ for the case_id; the credential of each
# consumer from AUTH_<CONSUMER>. Latencies in the summary are wrk's (µs), printed in ms.
WRK_LUA = r"""
local bodies, i = {}, 0
local run = os.getenv("RUN") or "R"

function init(args)
  local auth = {}
  for line in io.lines(os.getenv("BODIES")) do
    local who, body = line:match("^(%u+)\t(.+)$")
    if who then
      if not auth[who] then auth[who] = "Bearer " .. os.getenv("AUTH_" .. who) end
      local a, b = body:find("@CASE@", 1, true)
      bodies[#bodies + 1] = {auth[who], body:sub(1, a - 1), body:sub(b + 1)}
    end
  end
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  i = i + 1
  local b = bodies[((i - 1) % #bodies) + 1]
  wrk.headers["Authorization"] = b[1]
  return wrk.format("POST", nil, nil, b[2] .. run .. "-" .. i .. b[3])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "rps": %.1f, "mean_ms": %.3f, "p50_ms": %.3f, ' ..
    '"p90_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "non_2xx": %d, ' ..
    '"socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


# -- the machine ------------------------------------------------------------------------------

def busy() -> list[str]:
    """Command lines of a test suite running on this machine (not this process's)."""
    out = subprocess.run(["pgrep", "-af", BUSY], capture_output=True, text=True).stdout
    mine = {str(os.getpid()), str(os.getppid())}
    return [line for line in out.splitlines() if line.split(" ", 1)[0] not in mine]


def wait_quiet(minutes: float) -> dict:
    """Waits (polling every 30 s, up to `minutes`) until no test suite runs; says how it went."""
    t = time.monotonic()
    while (running := busy()) and time.monotonic() - t < minutes * 60:
        print(f"a test suite is running ({len(running)} processes): waiting", flush=True)
        time.sleep(30)
    return {"waited_s": round(time.monotonic() - t), "still_running": running}


def cpu_seconds(pid: int) -> dict:
    """CPU seconds (user + system) of the service's main thread (the event loop), its other
    threads (the queue's inserts run there), and its child processes (audit writer, indexer)."""
    tick = os.sysconf("SC_CLK_TCK")

    def stat(path: Path) -> float:
        fields = path.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    out = {"main_thread": 0.0, "other_threads": 0.0, "children": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        out["main_thread" if task.name == str(pid) else "other_threads"] += stat(task / "stat")
        for kid in (task / "children").read_text().split():
            out["children"] += stat(Path(f"/proc/{kid}/stat"))
    return out


# -- the subjects and bodies ------------------------------------------------------------------

def subjects(published: Path, store_path: Path, rng: random.Random) -> list[dict]:
    """20,000 subjects: alive school-age children first, then other persons (SOCIAL_ASSIST),
    each a person this node's store holds; shuffled."""
    import duckdb

    from pipelines.serving.store import Store

    store = Store(store_path)
    held = set(store.keys("person"))
    store.close()
    con = duckdb.connect(str(published), read_only=True)
    con.execute("SET enable_progress_bar = false")
    school = f"birth_date BETWEEN '{SCHOOL_FROM}' AND '{SCHOOL_TO}' AND status = 'alive'"
    kids = [r for r in con.execute(
        f"""SELECT citizen_id, name, birth_date, sex, hukou_division, status FROM gold.person
            WHERE {school} AND citizen_id IS NOT NULL ORDER BY citizen_id""").fetchall()
        if r[0] in held]
    others = [r for r in con.execute(
        f"""SELECT citizen_id, name, birth_date, sex, hukou_division, status FROM gold.person
            WHERE citizen_id IS NOT NULL AND name IS NOT NULL AND NOT coalesce(({school}), false)
            ORDER BY citizen_id""").fetchall() if r[0] in held]
    con.close()
    cols = ("citizen_id", "name", "birth_date", "sex", "hukou_division", "status")
    picked = [dict(zip(cols, r), template="SCHOOL_ENROLL")
              for r in rng.sample(kids, min(SUBJECTS, len(kids)))]
    picked += [dict(zip(cols, r), template="SOCIAL_ASSIST")
               for r in rng.sample(others, SUBJECTS - len(picked))]
    rng.shuffle(picked)
    return picked


TEMPLATES = {"SCHOOL_ENROLL": ("JYJ", "child"), "SOCIAL_ASSIST": ("MZJ", "applicant")}


def wrong_date(value: str, rng: random.Random) -> str:
    d = dt.date.fromisoformat(value) + dt.timedelta(days=rng.choice([1, 2, 10, 31, 366]))
    return d.isoformat()


def bodies(persons: list[dict], rng: random.Random) -> list[dict]:
    """Per subject: the department, the prefill body, the pre-review body, what it should get.
    SCHOOL_ENROLL claims name, birth date, sex and hukou division (the wrong 10 %: the birth
    date); SOCIAL_ASSIST claims the name, the one claimable field MZJ receives for the purpose
    (the wrong 10 %: the name)."""
    wrong = set(rng.sample(range(len(persons)), round(len(persons) * WRONG_SHARE)))
    out = []
    for i, p in enumerate(persons):
        dept, role = TEMPLATES[p["template"]]
        base = {"case_id": CASE, "purpose": p["template"], "template": p["template"],
                "subjects": {role: p["citizen_id"]}}
        if p["template"] == "SCHOOL_ENROLL":
            claimed = {"name": p["name"], "birth_date": str(p["birth_date"])[:10], "sex": p["sex"],
                       "hukou_division": p["hukou_division"]}
            if i in wrong:
                claimed["birth_date"] = wrong_date(claimed["birth_date"], rng)
            failing = "CLAIM_BIRTH_DATE" if i in wrong else None
            expect = "退回补正" if i in wrong else "可秒批"
        else:
            claimed = {"name": p["name"] if i not in wrong else
                       p["name"][:-1] + ("明" if p["name"][-1] != "明" else "华")}
            failing = "CLAIM_NAME" if i in wrong else None
            # a person not alive fails APPLICANT_ALIVE (on_fail officer), which outranks a claim
            expect = ("转人工" if p["status"] != "alive" else
                      "退回补正" if i in wrong else "可秒批")
        claimed = {k: v for k, v in claimed.items() if v is not None}
        out.append({"dept": dept, "role": role, "template": p["template"], "prefill": base,
                    "prereview": {**base, "claimed": {role: claimed}}, "wrong": failing,
                    "expect": expect})
    return out


def write_bodies(items: list[dict], kind: str, path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for it in items:
            f.write(f"{it['dept']}\t{json.dumps(it[kind], ensure_ascii=False)}\n")


# -- the load ---------------------------------------------------------------------------------

def load(url: str, bodies_path: Path, lua: Path, keys: dict, run: str, seconds: float,
         connections: int = CONNECTIONS) -> dict:
    """wrk from its own process: one thread, `connections` keep-alive connections."""
    env = {**os.environ, "BODIES": str(bodies_path), "RUN": run,
           **{f"AUTH_{d}": k for d, k in keys.items()}}
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s",
           str(lua), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


class Sizes:
    """The audit log's and the queue's files, and the queue's rows, between phases."""

    def __init__(self, serving: Path) -> None:
        self.serving = serving

    def now(self) -> dict:
        q = self.serving / "prereviews.sqlite"
        rows = 0
        if q.exists():
            con = sqlite3.connect(q, timeout=30)
            rows = con.execute("SELECT count(*) FROM prereviews").fetchone()[0]
            con.close()
        size = lambda *names: sum((self.serving / n).stat().st_size  # noqa: E731
                                  for n in names if (self.serving / n).exists())
        return {"audit_bytes": size("audit.jsonl"),
                "audit_index_bytes": size("audit.index.sqlite", "audit.index.sqlite-wal"),
                "queue_bytes": size("prereviews.sqlite", "prereviews.sqlite-wal"),
                "queue_rows": rows}


def phase(url: str, path: str, bodies_path: Path, lua: Path, keys: dict, run: str,
          seconds: float, pid: int, sizes: Sizes, connections: int = CONNECTIONS) -> dict:
    before, cpu0, ci = sizes.now(), cpu_seconds(pid), bool(busy())
    r = load(f"{url}{path}", bodies_path, lua, keys, run, seconds, connections)
    time.sleep(1.0)  # the answers in flight when wrk stopped: written and queued
    after, cpu1 = sizes.now(), cpu_seconds(pid)
    r["growth"] = {k: after[k] - before[k] for k in after}
    r["cpu_us_per_request"] = {k: (cpu1[k] - cpu0[k]) / max(r["requests"], 1) * 1e6
                               for k in cpu1}
    r["test_suite_running"] = ci or bool(busy())
    return r


# -- the sample check -------------------------------------------------------------------------

def _provenance(auth: dict) -> bool:
    src = auth.get("source") or {}
    return all(src.get(k) for k in ("provider", "resource", "batch", "record_key")) and \
        bool(auth.get("as_of"))


def check_sample(url: str, keys: dict, items: list[dict], rng: random.Random) -> dict:
    """200 of each kind asked again one by one (half SCHOOL_ENROLL, half SOCIAL_ASSIST)."""
    picks = []
    for template in TEMPLATES:
        idx = [i for i, it in enumerate(items) if it["template"] == template]
        picks += rng.sample(idx, SAMPLE // 2)
    out: dict = {"prefill": Counter(), "prereview": Counter(), "verdicts": Counter(),
                 "verdicts_by_template": {t: Counter() for t in TEMPLATES},
                 "expected_verdict": Counter(), "unexpected": [], "wrong_claims": Counter()}
    with httpx.Client(timeout=30) as c:
        for n, i in enumerate(picks):
            it = items[i]
            headers = {"Authorization": f"Bearer {keys[it['dept']]}"}
            body = {**it["prefill"], "case_id": f"CHECK-PF-{n}"}
            r = c.post(f"{url}/v1/prefill", json=body, headers=headers)
            p = out["prefill"]
            p["status_200"] += r.status_code == 200
            if r.status_code == 200:
                role = r.json()["roles"][it["role"]]
                p["subject_found"] += role.get("status") == "found"
                envs = (role.get("fields") or {}).values()
                p["fields_available"] += sum(e["status"] == "available" for e in envs)
                p["fields_available_with_provenance"] += sum(
                    e["status"] == "available" and _provenance(e) for e in envs)
                p["fields_withheld_with_reason"] += sum(
                    e["status"] == "withheld" and bool(e.get("reason")) for e in envs)
            body = {**it["prereview"], "case_id": f"CHECK-PR-{n}"}
            r = c.post(f"{url}/v1/prereview", json=body, headers=headers)
            q = out["prereview"]
            q["status_200"] += r.status_code == 200
            if r.status_code != 200:
                continue
            a = r.json()
            q["verdict_present"] += a.get("verdict") in VERDICTS
            out["verdicts"][a.get("verdict")] += 1
            out["verdicts_by_template"][it["template"]][a.get("verdict")] += 1
            fs = a.get("findings") or []
            q["with_findings"] += bool(fs)
            q["findings"] += len(fs)
            for f in fs:
                q[f"findings_{f['status']}"] += 1
                if f["status"] in ("pass", "fail"):
                    auth = f.get("authoritative") or {}
                    ok = _provenance(auth) if "field" in f else \
                        bool(auth) and all(_provenance(v) for v in auth.values())
                    q["judged_findings_with_provenance"] += ok
                else:
                    q["cannot_check_with_reason"] += bool(f.get("reason"))
            q["judged_findings"] += sum(f["status"] in ("pass", "fail") for f in fs)
            if it["wrong"]:
                caught = any(f["rule"] == it["wrong"] and f["status"] == "fail" for f in fs)
                out["wrong_claims"]["caught" if caught else "missed"] += 1
            match = a.get("verdict") == it["expect"]
            out["expected_verdict"]["as_expected" if match else "otherwise"] += 1
            if not match:
                out["unexpected"].append({
                    "template": it["template"], "expected": it["expect"],
                    "verdict": a.get("verdict"),
                    "why": [f"{f['rule']}:{f['status']}" + (":disputed" if f.get("disputed")
                                                           else "") +
                            (":conflict" if f.get("conflict") else "")
                            for f in fs if f["status"] != "pass" or f.get("disputed")
                            or f.get("conflict")]})
    return json.loads(json.dumps(out))  # Counters as plain objects


# -- in process: what a pre-review adds, 10,000 calls each ------------------------------------

def _steps(store, cat, rules, reqs: list) -> tuple[dict, list]:
    """The CPU steps of a pre-review over `reqs` [(template, department, body)], µs a call."""
    import orjson

    from pipelines.prereview import rules as rules_mod
    from pipelines.prereview.review import check_claimed, judge
    from pipelines.serving.prefill import prefill

    out: dict = {"calls": len(reqs)}

    def timed(name, fn):
        gc.collect()
        gc.disable()  # the results kept here would make collections the bench's, not the step's
        t0 = time.perf_counter()
        result = fn()
        out[f"{name}_us"] = (time.perf_counter() - t0) / len(reqs) * 1e6
        gc.enable()
        return result

    answers = timed("prefill", lambda: [prefill(store, cat, t, d, b["purpose"], f"IP-{n}",
                                                b["subjects"])
                                        for n, (t, d, b) in enumerate(reqs)])
    timed("check_claimed", lambda: [check_claimed(t, b["claimed"]) for t, _, b in reqs])
    # every rule evaluation judge() makes, recorded, then timed alone (zen's evaluate)
    evaluated: list = []
    holds = rules_mod.Rule.holds
    rules_mod.Rule.holds = lambda self, ctx: (evaluated.append((self, ctx)), holds(self, ctx))[1]
    try:
        for (t, _, b), a in zip(reqs, answers):
            judge(rules, t, a, b["claimed"])
    finally:
        rules_mod.Rule.holds = holds
    reviews = timed("judge", lambda: [judge(rules, t, a, b["claimed"])
                                      for (t, _, b), a in zip(reqs, answers)])
    gc.collect()
    gc.disable()
    t0 = time.perf_counter()
    for rule, ctx in evaluated:
        rule.holds(ctx)
    zen_s = time.perf_counter() - t0
    gc.enable()
    out["zen_evaluations_per_prereview"] = len(evaluated) / len(reqs)
    out["zen_evaluate_us_each"] = zen_s / max(len(evaluated), 1) * 1e6
    out["zen_us_per_prereview"] = zen_s / len(reqs) * 1e6
    pf = timed("dumps_prefill_answer", lambda: [orjson.dumps(a.body) for a in answers])
    pr = timed("dumps_prereview_answer", lambda: [orjson.dumps(r.body) for r in reviews])
    out["prefill_answer_bytes"] = statistics.mean(map(len, pf))
    out["prereview_answer_bytes"] = statistics.mean(map(len, pr))
    out["prereview_added_cpu_us"] = (out["check_claimed_us"] + out["judge_us"]
                                     + out["dumps_prereview_answer_us"]
                                     - out["dumps_prefill_answer_us"])
    return out, reviews


def in_process(store_path: Path, items: list[dict], scratch: Path) -> dict:
    """10,000 calls of each step per template (the 2,516 children cycled; the collector off while
    timed), then the officers' queue: the service's own class on a fresh file on the same disk,
    10,000 adds of the mix."""
    from pipelines.catalog.model import catalog
    from pipelines.prereview.queue import Queue
    from pipelines.prereview.rules import rules as load_rules
    from pipelines.serving.prefill import prefill
    from pipelines.serving.store import Store
    from pipelines.serving.templates import templates

    store = Store(store_path)
    store.warm()
    cat, tpl, rules = catalog(), templates(), load_rules()
    gc.collect()
    gc.freeze()  # as the service does (app.py's _tune_collector)
    req = lambda it: (tpl[it["template"]], it["dept"], it["prereview"])  # noqa: E731
    for t, d, b in map(req, items[:1000]):  # warm the interpreter's and the store's caches
        prefill(store, cat, t, d, b["purpose"], "WARM", b["subjects"])
    out: dict = {}
    for template in TEMPLATES:
        mine = [it for it in items if it["template"] == template]
        reqs = [req(mine[n % len(mine)]) for n in range(INPROCESS_CALLS)]
        out[template], _ = _steps(store, cat, rules, reqs)
    mix = [req(it) for it in items[:INPROCESS_CALLS]]
    out["mix"], reviews = _steps(store, cat, rules, mix)
    out["mix"]["templates"] = dict(Counter(it["template"] for it in items[:INPROCESS_CALLS]))

    for f in scratch.parent.glob(f"{scratch.name}*"):
        f.unlink()
    queue = Queue(scratch)
    q: dict = {"pragmas": {p: queue.con.execute(f"PRAGMA {p}").fetchone()[0]
                           for p in ("journal_mode", "synchronous", "wal_autocheckpoint")}}
    t0 = time.perf_counter()
    for n, (r, (_, d, _)) in enumerate(zip(reviews, mix)):
        queue.add(d, {**r.body, "case_id": f"IPQ-{n}"})
    q["add_us"] = (time.perf_counter() - t0) / len(mix) * 1e6
    normal = Queue(scratch.with_name(f"{scratch.name}-normal"))
    normal.con.execute("PRAGMA synchronous=NORMAL")  # no fsync a commit (the variant's setting)
    t0 = time.perf_counter()
    for n, (r, (_, d, _)) in enumerate(zip(reviews, mix)):
        normal.add(d, {**r.body, "case_id": f"IPN-{n}"})
    q["add_sync_normal_us"] = (time.perf_counter() - t0) / len(mix) * 1e6
    normal.close()

    async def through_threads(prefix: str, concurrent: int) -> float:
        """As the endpoint calls it: asyncio.to_thread, `concurrent` at a time."""
        t0 = time.perf_counter()
        for start in range(0, len(reviews), concurrent):
            await asyncio.gather(*(asyncio.to_thread(queue.add, mix[n][1], {
                **reviews[n].body, "case_id": f"{prefix}-{n}"})
                for n in range(start, min(start + concurrent, len(reviews)))))
        return (time.perf_counter() - t0) / len(reviews) * 1e6

    q["add_to_thread_us"] = asyncio.run(through_threads("IPT", 1))
    q["add_to_thread_16_at_a_time_us"] = asyncio.run(through_threads("IPT16", CONNECTIONS))
    q["rows"] = queue.con.execute("SELECT count(*) FROM prereviews").fetchone()[0]
    q["file_bytes"] = sum(f.stat().st_size for f in (scratch, Path(f"{scratch}-wal"))
                          if f.exists())
    out["queue"] = q
    queue.close()
    for f in scratch.parent.glob(f"{scratch.name}*"):
        f.unlink()
    store.close()
    return out


# -- the run ----------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", type=Path, required=True,
                    help="an existing world: the --work folder of benchmarks.bench_prefill")
    ap.add_argument("--seconds", type=float, default=20, help="per kind and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--single-seconds", type=float, default=10,
                    help="each kind at 1 connection, after the rounds")
    ap.add_argument("--no-variants", dest="variants", action="store_false",
                    help="leave out the throwaway variants loaded beside the service (VARIANTS)")
    ap.add_argument("--wait-quiet", type=float, default=25, metavar="MINUTES",
                    help="wait up to this long for a running test suite to end before loading")
    args = ap.parse_args()
    home = args.work / "hub"
    published = home / "published" / "current.duckdb"
    if not published.exists():
        raise SystemExit(f"{published} not found: this benchmark needs the world of "
                         "`python -m benchmarks.bench_prefill --scale 1000000 --work DIR` "
                         "(`make bench-prefill` builds one in a temporary folder; give it "
                         "--work to keep it), then --work DIR here")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: `make debian-packages PACKAGES=wrk` (needs root)")
    serving = home / "serving"
    started = dt.datetime.now(dt.UTC)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "pipelines", "catalogs",
                                 "assets", "benchmarks/bench_prereview.py"],
                                capture_output=True, text=True).stdout.strip())
    out: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                            f"Python {platform.python_version()}",
                 "commit": commit, "uncommitted_changes_in_code": dirty,
                 "started_utc": started.isoformat(timespec="seconds"), "world": str(args.work),
                 "connections": CONNECTIONS, "seconds": args.seconds, "rounds": args.rounds}
    out["quiet"] = wait_quiet(args.wait_quiet)
    print("rebuilding the serving store with this checkout's code ...", flush=True)
    out["store"] = child(STORE, str(home))
    store_path = serving / CURRENT
    rng = random.Random(17)
    persons = subjects(published.resolve(), store_path, rng)
    items = bodies(persons, rng)
    out["subjects"] = {"total": len(items), **Counter(it["template"] for it in items),
                       "wrong_claims": sum(bool(it["wrong"]) for it in items),
                       "expected_verdicts": dict(Counter(it["expect"] for it in items))}
    files = {kind: args.work / f"prereview-bench-{kind}.tsv" for kind in ("prefill", "prereview")}
    for kind, path in files.items():
        write_bodies(items, kind, path)
    lua = args.work / "prereview-bench.lua"
    lua.write_text(WRK_LUA)

    for old in [*serving.glob("audit*"), *serving.glob("prereviews.sqlite*")]:
        old.unlink()  # each run starts a fresh audit log (a new key) and an empty queue
    env = {**os.environ, "HUILIU_HOME": str(home), "HUILIU_DEMO": "1",
           "HUILIU_AUDIT_KEY": secrets.token_urlsafe(32),
           "HUILIU_API_RATE": "1000000000", "HUILIU_SERVE_CHECK_RATE": "1000000000"}
    env.pop("HUILIU_AUDIT_ANCHOR", None)  # demo mode: the anchor beside the log
    issue = lambda d, e: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "pipelines.cli", "consumers", "issue", d], env=e,
        capture_output=True, text=True, check=True).stdout.strip()
    keys = {d: issue(d, env) for d, _ in TEMPLATES.values()}
    paths = {"prefill": "/v1/prefill", "prereview": "/v1/prereview"}
    # the service as `huiliu serve` runs it; throwaway variants (--variants) beside it, each in a
    # hub home of its own (its own audit log, credentials and queue, the same store file)
    services = {"main": (home, env, keys, [])}
    for name in (VARIANTS if args.variants else ()):
        vhome = args.work / "prereview-variants" / name
        shutil.rmtree(vhome, ignore_errors=True)
        (vhome / "serving").mkdir(parents=True)
        (vhome / "serving" / CURRENT).symlink_to(store_path.resolve())
        venv = {**env, "HUILIU_HOME": str(vhome)}
        services[name] = (vhome, venv, {d: issue(d, venv) for d in keys}, ["-c", VARIANT, name])
    procs, urls = {}, {}
    try:
        for name, (shome, senv, _, launch) in services.items():
            port = free_port()
            urls[name] = f"http://127.0.0.1:{port}"
            procs[name] = subprocess.Popen(
                [sys.executable, *(launch or ["-m", "pipelines.cli"]), "serve", "--home",
                 str(shome), "--port", str(port)], env=senv)
        for name, (shome, _, skeys, _) in services.items():
            wait_up(f"{urls[name]}/healthz", procs[name])
            for kind in (paths if name == "main" else ["prereview"]):  # warm up
                load(f"{urls[name]}{paths[kind]}", files[kind], lua, skeys, f"W{kind[:2]}", 3)
        url, proc, sizes = urls["main"], procs["main"], Sizes(serving)
        out["rounds"] = []
        for n in range(1, args.rounds + 1):
            r = {kind: phase(url, paths[kind], files[kind], lua, keys, f"R{n}{kind[:2]}",
                             args.seconds, proc.pid, sizes) for kind in paths}
            r["ratio"] = r["prereview"]["rps"] / r["prefill"]["rps"]
            r["p95_target_met"] = r["prereview"]["p95_ms"] <= P95_TARGET_MS
            r["variants"] = {}
            for name, (shome, _, skeys, _) in list(services.items())[1:]:
                v = r["variants"][name] = phase(
                    urls[name], paths["prereview"], files["prereview"], lua, skeys,
                    f"R{n}pr", args.seconds, procs[name].pid, Sizes(shome / "serving"))
                v["ratio_to_prefill"] = v["rps"] / r["prefill"]["rps"]
            out["rounds"].append(r)
            print(f"round {n}: prefill {r['prefill']['rps']:,.0f} req/s (p95 "
                  f"{r['prefill']['p95_ms']:.1f} ms), prereview {r['prereview']['rps']:,.0f} "
                  f"req/s (p95 {r['prereview']['p95_ms']:.1f} ms), ratio {r['ratio']:.2f}; "
                  + ", ".join(f"{k} {v['rps']:,.0f} req/s" for k, v in r["variants"].items()),
                  flush=True)
        out["single"] = {kind: phase(url, paths[kind], files[kind], lua, keys, f"S{kind[:2]}",
                                     args.single_seconds, proc.pid, sizes, 1)
                         for kind in paths}
        for name, (shome, _, skeys, _) in list(services.items())[1:]:
            out["single"][f"prereview_{name}"] = phase(
                urls[name], paths["prereview"], files["prereview"], lua, skeys, "Spr",
                args.single_seconds, procs[name].pid, Sizes(shome / "serving"), 1)
        out["sample"] = check_sample(url, keys, items, random.Random(29))
        out["peak_rss_mb"] = peak_rss_mb(proc.pid)
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(30)
    end = sizes.now()
    with sqlite3.connect(serving / "prereviews.sqlite") as con:
        out["queue_final"] = {"rows": end["queue_rows"], "bytes": end["queue_bytes"],
                              "verdicts": dict(con.execute(
                                  "SELECT verdict, count(*) FROM prereviews GROUP BY verdict"
                              ).fetchall())}
    with (serving / "audit.jsonl").open("rb") as f:
        lines = sum(1 for _ in f)
    out["audit_final"] = {"entries": lines, "bytes": end["audit_bytes"]}
    print("in-process timings ...", flush=True)
    out["quiet_in_process"] = bool(busy())
    out["in_process"] = in_process(store_path, items, args.work / "prereview-bench-queue.sqlite")
    out["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    out["p95_target_met_every_round"] = all(r["p95_target_met"] for r in out["rounds"])
    out["median_ratio"] = statistics.median(r["ratio"] for r in out["rounds"])
    out["test_suite_running_during_load"] = any(
        r[k]["test_suite_running"] for r in out["rounds"] for k in paths) or any(
        v["test_suite_running"] for r in out["rounds"] for v in r["variants"].values()) or any(
        s["test_suite_running"] for s in out["single"].values())
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / "prereview-1000000.json"
    target.write_text(json.dumps(out, indent=1, ensure_ascii=False))
    report(out)
    print(f"written: {target}")


def report(out: dict) -> None:
    print(f"{out['machine']}; {out['commit']}; {out['started_utc']}; store "
          f"{out['store']['seconds']:.1f} s, {out['store']['bytes'] / 2**20:.0f} MiB; subjects "
          f"{out['subjects']}")
    for i, r in enumerate(out["rounds"], 1):
        for kind in ("prefill", "prereview"):
            p = r[kind]
            print(f"round {i} {kind:9}: {p['rps']:7,.0f} req/s, p50 {p['p50_ms']:.1f} p95 "
                  f"{p['p95_ms']:.1f} p99 {p['p99_ms']:.1f} ms, non-2xx {p['non_2xx']}, socket "
                  f"errors {p['socket_errors']}, audit +{p['growth']['audit_bytes'] / 2**20:.1f} "
                  f"MiB, queue +{p['growth']['queue_rows']:,} rows "
                  f"+{p['growth']['queue_bytes'] / 2**20:.1f} MiB")
        print(f"  ratio {r['ratio']:.2f}; p95 <= {P95_TARGET_MS:g} ms: "
              f"{'met' if r['p95_target_met'] else 'NOT met'}")
        for name, v in r["variants"].items():
            print(f"  variant {name}: {v['rps']:,.0f} req/s ({v['ratio_to_prefill']:.2f}x the "
                  f"prefill), p50 {v['p50_ms']:.1f} p95 {v['p95_ms']:.1f} p99 {v['p99_ms']:.1f} "
                  f"ms, non-2xx {v['non_2xx']}")
    for kind, s in out["single"].items():
        print(f"1 connection {kind}: p50 {s['p50_ms']:.2f} ms, p95 {s['p95_ms']:.2f} ms, "
              f"{s['rps']:,.0f} req/s")
    print(f"sample: {out['sample']['prefill']}; {out['sample']['prereview']}; verdicts "
          f"{out['sample']['verdicts']}; {out['sample']['expected_verdict']}; wrong claims "
          f"{out['sample']['wrong_claims']}")
    print(f"queue {out['queue_final']}; audit {out['audit_final']}; peak RSS "
          f"{out['peak_rss_mb']:.0f} MiB")
    print(f"in process: {out['in_process']}")


if __name__ == "__main__":
    main()
