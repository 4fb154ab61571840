"""The analysts' SQL workbench on the 1,000,000-person world, beside bare DuckDB (issue 15 §5).

    python -m benchmarks.bench_workbench --scale 1000000 --work /tmp/pf1m

Reuses the world of `--work` when it holds one (built.json, e.g. from bench_prefill), else builds it
the way bench_prefill does (simulator, backflow, reconcile). Everything this run writes goes to its
own hub home, <work>/workbench-bench/hub (the warehouse copied in from <work>/hub), so the world's
own published snapshots, store and audit log are left as they are. Then:
  build      --build-rounds rounds (default 2) of, each in its own child process so each peak RSS
             (VmHWM) is its own: the publish itself (`publish(Settings(home=...))`), then the
             workbench tiers of the snapshot it made (`build_tiers`): seconds, CPU, peak RSS, the
             tier files and their bytes
  queries    ten analytical queries on the statistical tier of SJJ (purpose ANALYTICS): counts,
             group-bys by district and month, a join of history with golden records, window
             functions, a distinct count; each result under the workbench's 1,000-row cap, so all
             sides do the same work. Three sides, against the real service (`huiliu workbench
             serve`, its query workers, the audit log) with one analyst logged in, each timed end
             to end, submit to rows in hand:
               bare       `duckdb.connect(tier, read_only=True)` with the worker's threads and
                          memory limit, fetchall
               workbench  as the shipped clients now ask: one POST {"sql", "wait": 30, "rows":
                          1000}, answered when the query ends with its state and first rows; only
                          if it is not final then, GET ?wait=30 until it is; row pages beyond the
                          first only if needed
               polled     the old way, for a same-run "before" figure: POST {"sql"}, its state
                          polled every --poll-ms (default 5 ms) until final, then its rows GET
             One untimed warm run each, then --reps repetitions (default 5), query by query, the
             sides rotating which goes first; medians per query, their totals and ratios (target:
             workbench <= 1.3x bare), and the service's own execution time (its `elapsed_ms`) on
             each workbench side: what polling takes from DuckDB on 2 cores
  count      a warm `SELECT count(*) FROM cur.ps_pop_basic` end to end, --count-runs times
             (default 20): median and p95 (target < 300 ms) through the API as above (waiting and
             polled), through `huiliu sql` itself (pipelines.workbench.client.WorkbenchClient: its
             run, then its rows) and on the page's schedule (assets/workbench/src/query.js: POST
             with wait 1 s, GET ?wait=2 until final, then the grid's first page of 100 rows; the
             chart's own rows request, sent beside the grid's, is not replayed)
  floor      `SELECT 1` through the workbench (waiting and polled) and bare, and the HTTP round
             trip of one small GET: the fixed cost under every workbench query
  breakdown  where a waiting workbench query's time goes: the service's execution (its
             `elapsed_ms`); the moment the service stamped the query's audit entry (read back from
             its audit log: it has the outcome then), so submit -> audit stamp (the POST's way in,
             the guard, the queue, the execution, the audit entry) and audit stamp -> answer in
             hand (the history row, the wake-up, the first rows and the response). In this process,
             after the service stopped: the guard alone, the executor alone (no HTTP, no audit), a
             worker's steps replicated (session, Arrow read, IPC), one audit entry, one history row
Writes benchmarks/results/workbench-<scale>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

from benchmarks.bench_backflow import child
from benchmarks.bench_prefill import peak_rss_mb  # the service and its workers, summed
from benchmarks.bench_reconcile import BACKFLOW, RECONCILE
from pipelines.settings import Settings
from pipelines.sim.process import SimulatorProcess, free_port

RESULTS = Path(__file__).parent / "results"
FINAL = ("done", "failed", "timeout", "cancelled")
WAIT_S, PAGE = 30, 1000  # the benchmark's client: a request waits up to 30 s; 1,000 rows inline
MARKER = ".bench_workbench"  # our own folder: only a folder holding it is ever removed
DEPARTMENT, PURPOSE, TIER = "SJJ", "ANALYTICS", "statistical"

_HWM = r"""
def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
def cpu_s():
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
"""

# VmHWM, not getrusage's ru_maxrss: that one is carried over fork + exec from the parent.
PUBLISH = _HWM + r"""
import json, sys, time
from pathlib import Path
from pipelines.settings import Settings
from pipelines.warehouse.publish import publish
s = Settings(home=Path(sys.argv[1]))
rss0, c = hwm_mb(), cpu_s()
t = time.perf_counter()
path = publish(s)
print(json.dumps({"seconds": time.perf_counter() - t, "cpu_s": cpu_s() - c,
                  "peak_rss_mb": hwm_mb(), "rss_before_mb": rss0, "bytes": path.stat().st_size,
                  "snapshot": path.name}))
"""

TIERS = _HWM + r"""
import json, sys, time
from pathlib import Path
from pipelines.catalog.model import load_catalog
from pipelines.settings import Settings
from pipelines.workbench.tiers import build_tiers
s = Settings(home=Path(sys.argv[1]))
cat = load_catalog()
snapshot = s.published_current.resolve()
rss0, c = hwm_mb(), cpu_s()
t = time.perf_counter()
ts = build_tiers(cat, snapshot, s.home)
secs = time.perf_counter() - t
files = sorted(set(ts.files.values()))
print(json.dumps({"seconds": secs, "cpu_s": cpu_s() - c, "peak_rss_mb": hwm_mb(),
                  "rss_before_mb": rss0, "snapshot": snapshot.name, "grants": len(ts.files),
                  "files": len(files),
                  "bytes": sum((ts.directory / f).stat().st_size for f in files),
                  "file_bytes": {f: (ts.directory / f).stat().st_size for f in files}}))
"""

# Ten analytical queries an SJJ statistician would run; each answers in well under 1,000 rows.
QUERIES: dict[str, str] = {
    "counts": (
        "SELECT count(*) AS persons, count(*) FILTER (WHERE RYZTDM = '0') AS active, "
        "count(*) FILTER (WHERE XBDM = '2') AS female FROM cur.ps_pop_basic"),
    "persons_per_district": (
        "SELECT HJDZ_XZQHDM AS district, count(*) AS persons, "
        "count(*) FILTER (WHERE XBDM = '1') AS male, count(*) FILTER (WHERE XBDM = '2') AS female "
        "FROM cur.ps_pop_basic GROUP BY HJDZ_XZQHDM ORDER BY district"),
    "births_per_month": (
        "SELECT CSRQ AS month, count(*) AS births FROM cur.ps_pop_basic "
        "WHERE CSRQ >= '1950-01' GROUP BY CSRQ ORDER BY month"),
    "moves_per_month_district": (
        "SELECT strftime(QYRQ, '%Y-%m') AS month, QRD_XZQHDM AS district, QYLBDM AS kind, "
        "count(*) AS moves FROM hist.ps_hukou_move WHERE _is_current AND _op <> 'D' "
        "GROUP BY ALL ORDER BY ALL"),
    "history_join_golden": (
        "SELECT h.HJDZ_XZQHDM AS source_district, g.hukou_division AS golden_district, "
        "count(*) AS versions, count(DISTINCT g.entity_id) AS persons, "
        "count(*) FILTER (WHERE h.CSRQ <> g.birth_date) AS birth_month_differs "
        "FROM hist.ps_pop_basic h JOIN gold.person g ON h.GMSFHM = g.citizen_id "
        "GROUP BY ALL ORDER BY ALL"),
    "window_rank_running": (
        "WITH m AS (SELECT date_trunc('month', QYRQ) AS month, QRD_XZQHDM AS district, "
        "count(*) AS moves_in FROM hist.ps_hukou_move WHERE _is_current GROUP BY ALL) "
        "SELECT month, district, moves_in, "
        "rank() OVER (PARTITION BY month ORDER BY moves_in DESC) AS rank_in_month, "
        "sum(moves_in) OVER (PARTITION BY district ORDER BY month) AS running_total "
        "FROM m ORDER BY month, rank_in_month, district"),
    "enterprises_per_status": (
        "SELECT registration_status, credit_level, count(*) AS enterprises, "
        "count(*) FILTER (WHERE penalties IS NOT NULL) AS with_penalties "
        "FROM gold.enterprise GROUP BY ALL ORDER BY ALL"),
    "open_objections_per_provider": (
        "SELECT provider, resource, count(*) AS open_objections, min(raised_on) AS oldest, "
        "count(*) FILTER (WHERE resolve_due < current_date) AS overdue "
        "FROM ops.objections WHERE closed_on IS NULL GROUP BY ALL ORDER BY ALL"),
    "versions_per_person": (
        "WITH v AS (SELECT GMSFHM, count(*) AS versions FROM hist.ps_pop_basic GROUP BY GMSFHM) "
        "SELECT versions, count(*) AS persons FROM v GROUP BY versions ORDER BY versions"),
    "distinct_persons": (
        "SELECT count(DISTINCT GMSFHM) AS persons FROM (SELECT GMSFHM FROM hist.ps_pop_basic "
        "UNION ALL SELECT GMSFHM FROM hist.ps_hukou_move)"),
}
COUNT_SQL = "SELECT count(*) FROM cur.ps_pop_basic"
FLOOR_SQL = "SELECT 1"


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True,
                         cwd=Path(__file__).parent)
    return out.stdout.strip()


def ms(seconds: float) -> float:
    return seconds * 1000


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def world(work: Path, scale: int) -> dict:
    """The world of `work` (reused when built), as bench_prefill builds it."""
    built = work / "built.json"
    if built.exists():
        return {**json.loads(built.read_text()), "reused_world": str(work)}
    home = work / "hub"
    out: dict = {}
    with SimulatorProcess(work / "sim", scale=scale) as sim:
        out["backflow"] = child(BACKFLOW, sim.url, str(home), str(work / "sim" / "drops"))
        today = sim.status()["date"]
    wh = str(home / "warehouse" / "huiliu.duckdb")
    out["reconcile_s"] = child(RECONCILE, wh, today, str(work / "reports"))["wall_seconds"]
    built.write_text(json.dumps(out))
    return out


def own_home(work: Path) -> Path:
    """<work>/workbench-bench/hub: a fresh hub home holding a copy of the world's warehouse."""
    root = work / "workbench-bench"
    if root.exists():
        if not (root / MARKER).exists():
            raise SystemExit(f"{root} exists and is not this benchmark's: move it away")
        shutil.rmtree(root)
    home = root / "hub"
    (home / "warehouse").mkdir(parents=True)
    (root / MARKER).write_text("made by benchmarks/bench_workbench.py; removed by its next run\n")
    shutil.copyfile(work / "hub" / "warehouse" / "huiliu.duckdb",
                    home / "warehouse" / "huiliu.duckdb")
    return home


class Client:
    """One logged-in analyst over HTTP, timing each query end to end, submit to rows in hand.
    `run(sql)` asks as the shipped clients now do (a POST that waits and brings the first rows);
    `run(sql, poll_s)` the old way (a POST, its state polled every poll_s, then its rows)."""

    def __init__(self, url: str, credential: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=120)
        r = self.http.post("/api/login", json={"credential": credential, "purpose": PURPOSE})
        if r.status_code != 200:
            raise SystemExit(f"login refused: {r.status_code} {r.text}")
        self.http.headers["Authorization"] = f"Bearer {r.json()['token']}"

    def run(self, sql: str, poll_s: float | None = None) -> dict:
        w0, t0 = time.time(), time.perf_counter()
        body = {"sql": sql} if poll_s else {"sql": sql, "wait": WAIT_S, "rows": PAGE}
        r = self.http.post("/api/queries", json=body)
        t1 = time.perf_counter()
        if r.status_code not in (200, 202):
            raise SystemExit(f"the workbench refused {sql!r}: {r.status_code} {r.text}")
        st, requests = r.json(), 1
        qid = st["id"]
        while st["state"] not in FINAL:
            if poll_s:
                time.sleep(poll_s)
                st = self.http.get(f"/api/queries/{qid}").json()
            else:
                st = self.http.get(f"/api/queries/{qid}", params={"wait": WAIT_S}).json()
            requests += 1
        w2, t2 = time.time(), time.perf_counter()
        if st["state"] != "done":
            raise SystemExit(f"{sql!r} ended {st['state']}: {st.get('error')}")
        rows: list = list(st.get("rows") or [])
        while len(rows) < st["row_count"]:
            page = self.http.get(f"/api/queries/{qid}/rows",
                                 params={"offset": len(rows), "limit": PAGE}).json()
            rows += page["rows"]
            requests += 1
        t3 = time.perf_counter()
        return {"total_s": t3 - t0, "submit_s": t1 - t0, "wait_s": t2 - t1, "rows_s": t3 - t2,
                "exec_ms": st["elapsed_ms"], "requests": requests, "rows": len(rows),
                "inline_rows": len(st.get("rows") or []), "truncated": st["truncated"],
                "qid": qid, "submitted_at": w0, "seen_at": w2}

    def rtt(self) -> float:
        t = time.perf_counter()
        self.http.get("/api/whoami").raise_for_status()
        return time.perf_counter() - t


def audited_at(home: Path, runs: list[dict]) -> None:
    """Each run's `to_audit_ms` (its submit to the moment the service stamped its audit entry,
    i.e. had its outcome) and `after_audit_ms` (from that stamp to the answer that told this
    client the query was final: the POST's when it waited, else the poll's), from the service's
    audit log (same machine, same clock)."""
    stamped = {}
    with (home / "serving" / "audit.jsonl").open("rb") as f:
        for line in f:
            e = json.loads(line)
            stamped[e[5]] = dt.datetime.fromisoformat(e[1]).timestamp()
    for r in runs:
        at = stamped[r["qid"]]
        r["to_audit_ms"], r["after_audit_ms"] = ms(at - r["submitted_at"]), ms(r["seen_at"] - at)


def shipped_clients(url: str, credential: str, wb: Client, runs: int) -> dict:
    """The warm count(*) end to end as the shipped clients now ask: `huiliu sql` itself (its
    WorkbenchClient: run = POST with wait 10 s and rows 1000, long-polls if needed; then its rows)
    and the page's schedule (assets/workbench/src/query.js: POST with wait 1 s and no rows, GET
    ?wait=2 until final, then the grid's first page, 100 rows; replayed with the same requests)."""
    from pipelines.workbench.client import WorkbenchClient

    cli = []
    with WorkbenchClient(url, credential, PURPOSE, None, lambda *_: "") as c:
        c.run(COUNT_SQL)  # its session's first query
        for _ in range(runs):
            t = time.perf_counter()
            st = c.run(COUNT_SQL)
            got = c.rows(st["id"], st["row_count"], st.get("rows"))
            cli.append(ms(time.perf_counter() - t))
            assert st["state"] == "done" and len(got) == 1, st
    page = []
    for _ in range(runs):
        t = time.perf_counter()
        st = wb.http.post("/api/queries", json={"sql": COUNT_SQL, "wait": 1}).json()
        while st["state"] not in FINAL:
            st = wb.http.get(f"/api/queries/{st['id']}", params={"wait": 2}).json()
        wb.http.get(f"/api/queries/{st['id']}/rows", params={"offset": 0, "limit": 100})
        page.append(ms(time.perf_counter() - t))
    return {"huiliu_sql_median_ms": statistics.median(cli), "huiliu_sql_p95_ms": p95(cli),
            "page_median_ms": statistics.median(page), "page_p95_ms": p95(page),
            "huiliu_sql_runs_ms": cli, "page_runs_ms": page}


def bare_run(con: duckdb.DuckDBPyConnection, sql: str) -> dict:
    t = time.perf_counter()
    rows = con.execute(sql).fetchall()
    return {"total_s": time.perf_counter() - t, "rows": len(rows)}


def guard_ms(tier: Path, reps: int) -> dict[str, float]:
    """The guard alone (sqlglot parse and checks, DuckDB's second parse), in this process."""
    from pipelines.workbench import sql_guard
    from pipelines.workbench.tier_schema import TierSchema

    tables = TierSchema().tables(tier)
    out = {}
    for name, sql in {**QUERIES, "count": COUNT_SQL, "floor": FLOOR_SQL}.items():
        sql_guard.check(sql, tables)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            sql_guard.check(sql, tables)
            times.append(time.perf_counter() - t)
        out[name] = ms(statistics.median(times))
    return out


def profile(tier: Path, threads: int, memory_limit: str, reps: int) -> dict:
    """The parts of a workbench query besides DuckDB's own work, replicated in this process with
    the service's public pieces (medians, ms): the executor alone (submit to outcome: its spawned
    worker, pipes and dispatcher thread, without HTTP or audit), a worker's fresh session on its
    open connection (cursor, SET search_path), the query read as Arrow up to the cap (the worker's
    way) against fetchall (the bare way), the result's Arrow IPC bytes written, read and written
    again (worker -> executor, then the audit entry's digest), one audit entry (AuditLog.append,
    in a scratch log with its own anchor) and one history row (Records.record, in a scratch
    folder)."""
    import pyarrow as pa

    from pipelines.serving.audit import AuditLog
    from pipelines.workbench.records import Records

    def ipc(table: pa.Table) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        return sink.getvalue().to_pybytes()

    con = duckdb.connect(str(tier), read_only=True, config={
        "enable_external_access": False, "autoinstall_known_extensions": False,
        "autoload_known_extensions": False, "memory_limit": memory_limit, "threads": threads})
    out: dict[str, dict] = {}
    biggest = b""
    for name, sql in {**QUERIES, "count": COUNT_SQL, "floor": FLOOR_SQL}.items():
        got: dict[str, list[float]] = {k: [] for k in ("session", "arrow", "ipc", "fetchall")}
        for i in range(reps + 1):  # the first is a warm-up
            t0 = time.perf_counter()
            cur = con.cursor()
            cur.execute("SET search_path = 'cur,gold,hist,ops,meta'")
            t1 = time.perf_counter()
            reader = cur.sql(sql).to_arrow_reader(1001)
            table = pa.Table.from_batches(list(reader), schema=reader.schema)
            t2 = time.perf_counter()
            data = ipc(table)
            pa.ipc.open_stream(data).read_all()
            ipc(table)
            t3 = time.perf_counter()
            cur.execute(sql).fetchall()
            t4 = time.perf_counter()
            cur.close()
            biggest = max(biggest, data, key=len)
            if i:
                for key, took in zip(got, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                    got[key].append(ms(took))
        out[name] = {k: statistics.median(v) for k, v in got.items()}
    con.close()
    # the executor alone (its worker processes, pipes and dispatcher thread), no HTTP, no audit
    from pipelines.workbench.executor import Executor

    ex = Executor(workers=2, memory_limit=memory_limit, threads=threads)
    time.sleep(3)  # both spawned workers ready: a job goes to the first idle one, always the same
    try:
        for name, sql in {**QUERIES, "count": COUNT_SQL, "floor": FLOOR_SQL}.items():
            took = []
            for i in range(reps + 2):  # two warm-ups: the first waits for the spawned workers
                t = time.perf_counter()
                o = ex.wait(ex.submit("bench", tier, sql, 1000))
                if o.state != "done":
                    raise SystemExit(f"executor: {name} ended {o.state}: {o.error}")
                if i > 1:
                    took.append(ms(time.perf_counter() - t))
            out[name]["executor"] = statistics.median(took)
    finally:
        ex.close()
    # a scratch anchor is an ordinary file: its warning is not this benchmark's news
    logging.getLogger("pipelines.serving").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="huiliu-bench-workbench-") as tmp:
        log = AuditLog(Path(tmp) / "serving" / "audit.jsonl", anchor=Path(tmp) / "anchor")
        records = Records(Path(tmp) / "workbench")
        audit_t, record_t = [], []
        try:
            for i in range(4 * reps):
                t = time.perf_counter()
                log.append(consumer=DEPARTMENT, purpose=PURPOSE, template=f"workbench.{TIER}",
                           case_id=f"q-{i}", subjects=[], released=["cur.ps_pop_basic.CSRQ"],
                           withheld=[], answer=biggest,
                           detail={"door": "workbench", "analyst": "bench", "tier": TIER,
                                   "outcome": "done", "sql": QUERIES["births_per_month"],
                                   "tables": ["cur.ps_pop_basic"], "rows": 921,
                                   "truncated": False, "duration_ms": 3})
                t2 = time.perf_counter()
                records.record(f"q-{i}", "bench", QUERIES["births_per_month"], "done", 921, 3,
                               TIER, PURPOSE)
                audit_t.append(ms(t2 - t))
                record_t.append(ms(time.perf_counter() - t2))
        finally:
            records.close()
            log.close()
    return {"per_query": out, "audit_append_ms": statistics.median(audit_t),
            "history_record_ms": statistics.median(record_t), "answer_bytes": len(biggest)}


def tier_tables(tier: Path) -> dict[str, int]:
    con = duckdb.connect(str(tier), read_only=True)
    try:
        names = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() UNION ALL SELECT schema_name, "
            "view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1, 2").fetchall()
        return {f"{s}.{t}": con.execute(f'SELECT count(*) FROM {s}."{t}"').fetchone()[0]
                for s, t in names}
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=int, default=100_000)
    ap.add_argument("--work", type=Path, help="a folder to build the world in and keep; when it "
                    "already holds a built world (built.json), that world is reused")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions of each query a side")
    ap.add_argument("--poll-ms", type=float, default=5.0, help="the polled (before) side: sleep "
                    "between status polls")
    ap.add_argument("--build-rounds", type=int, default=2, help="publish + tier build rounds")
    ap.add_argument("--count-runs", type=int, default=20)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="huiliu-bench-workbench-"))
    started = dt.datetime.now().astimezone()
    out: dict = {"scale": args.scale, "started_at": started.isoformat(timespec="seconds"),
                 "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                            f"Python {platform.python_version()}",
                 "platform": platform.platform(), "cores": os.cpu_count(),
                 "python": platform.python_version(), "duckdb": duckdb.__version__,
                 "reps": args.reps, "poll_ms": args.poll_ms, "commit": _git("rev-parse", "HEAD"),
                 "uncommitted": _git("status", "--porcelain", "--", "pipelines").splitlines()}
    out["world"] = world(work, args.scale)
    home = own_home(work)
    out["home"] = str(home)
    # Keys for this run only (the tiers' pseudonyms, the audit chain): children inherit them.
    os.environ.pop("HUILIU_DEMO", None)
    os.environ["HUILIU_PSEUDONYM_KEY"] = secrets.token_urlsafe(36)
    os.environ["HUILIU_AUDIT_KEY"] = "bench-audit-key-" + "0123456789abcdef" * 2
    os.environ["HUILIU_AUDIT_ANCHOR"] = str(home / "audit.anchor")
    env = {**os.environ, "HUILIU_HOME": str(home)}

    # 1. the publish, then the tiers of the snapshot it made, each in its own child
    out["build_rounds"] = []
    for _ in range(args.build_rounds):
        pub = child(PUBLISH, str(home))
        tiers = child(TIERS, str(home))
        out["build_rounds"].append({"publish": pub, "tiers": tiers})

    # 2. the analyst, the tier, the service
    credential = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "analysts", "issue", "bench-analyst",
         "--department", DEPARTMENT, "--home", str(home)],
        env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    from pipelines.workbench.tiers import current_tiers

    tier = current_tiers(home).path_of(TIER, DEPARTMENT, PURPOSE)
    out["tier"] = {"file": tier.name, "bytes": tier.stat().st_size, "tables": tier_tables(tier)}
    s = Settings()
    threads = s.workbench_threads or len(os.sched_getaffinity(0))
    out["threads"], out["memory_limit"] = threads, s.workbench_memory_limit
    out["workbench_workers"] = s.workbench_workers
    bare = duckdb.connect(str(tier), read_only=True,
                          config={"threads": threads, "memory_limit": s.workbench_memory_limit})

    port = free_port()
    log = (home.parent / "service.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "workbench", "serve",
                             "--home", str(home), "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):
            if proc.poll() is not None:
                raise SystemExit(f"the workbench exited at start-up: see {log.name}")
            try:
                h = httpx.get(f"{url}/healthz", timeout=2)
                if h.status_code == 200 and h.json()["workers"] == s.workbench_workers:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("the workbench did not come up within 120 s")
        time.sleep(3)  # alive is not ready: let both workers finish importing
        wb = Client(url, credential)
        poll_s = args.poll_ms / 1000
        sides = {"bare": lambda sql: bare_run(bare, sql), "workbench": wb.run,
                 "polled": lambda sql: wb.run(sql, poll_s)}

        # warm: one untimed run of each on each side
        for sql in [*QUERIES.values(), COUNT_SQL, FLOOR_SQL]:
            for run in sides.values():
                run(sql)
        runs: dict[str, dict[str, list]] = {q: {k: [] for k in sides} for q in QUERIES}
        order = list(sides)
        for rep in range(args.reps):
            for i, (name, sql) in enumerate(QUERIES.items()):
                k = (rep + i) % len(order)
                for side in order[k:] + order[:k]:  # each side goes first in turn
                    runs[name][side].append(sides[side](sql))

        # the warm count(*), end to end, and the floor under every query
        count = [wb.run(COUNT_SQL) for _ in range(args.count_runs)]
        count_polled = [wb.run(COUNT_SQL, poll_s) for _ in range(args.count_runs)]
        count_bare = [bare_run(bare, COUNT_SQL) for _ in range(args.count_runs)]
        floor = [wb.run(FLOOR_SQL) for _ in range(args.count_runs)]
        floor_polled = [wb.run(FLOOR_SQL, poll_s) for _ in range(args.count_runs)]
        floor_bare = [bare_run(bare, FLOOR_SQL) for _ in range(args.count_runs)]
        rtt = [wb.rtt() for _ in range(args.count_runs)]
        shipped = shipped_clients(url, credential, wb, args.count_runs)
        out["service_peak_rss_mb"] = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        bare.close()
    audited_at(home, [r for q in runs.values() for side in ("workbench", "polled")
                      for r in q[side]] + count + count_polled + floor + floor_polled)
    out["guard_ms"] = guard_ms(tier, args.reps)
    out["profile"] = profile(tier, threads, s.workbench_memory_limit, args.reps)

    # figures
    def med(rs: list[dict], key: str, scale: float = 1.0) -> float:
        return statistics.median(r[key] for r in rs) * scale

    table = []
    for name, got in runs.items():
        b, w, p = got["bare"], got["workbench"], got["polled"]
        if len({r["rows"] for r in b + w + p}) != 1 or any(r["truncated"] for r in w + p):
            raise SystemExit(f"{name}: the sides returned different rows: {got}")
        row = {"query": name, "rows": b[0]["rows"],
               "bare_ms": med(b, "total_s", 1000), "workbench_ms": med(w, "total_s", 1000),
               "polled_ms": med(p, "total_s", 1000),
               "bare_all_ms": [ms(r["total_s"]) for r in b],
               "workbench_all_ms": [ms(r["total_s"]) for r in w],
               "polled_all_ms": [ms(r["total_s"]) for r in p],
               "guard_ms": out["guard_ms"][name]}
        for side, rs in (("workbench", w), ("polled", p)):
            row[side] = {"post_ms": med(rs, "submit_s", 1000), "wait_ms": med(rs, "wait_s", 1000),
                         "rows_get_ms": med(rs, "rows_s", 1000), "exec_ms": med(rs, "exec_ms"),
                         "requests": med(rs, "requests"), "inline_rows": med(rs, "inline_rows"),
                         "to_audit_ms": med(rs, "to_audit_ms"),
                         "after_audit_ms": med(rs, "after_audit_ms")}
        row["ratio"] = row["workbench_ms"] / row["bare_ms"]
        row["polled_ratio"] = row["polled_ms"] / row["bare_ms"]
        table.append(row)
    out["queries"] = table
    out["sql"] = QUERIES
    for key in ("bare", "workbench", "polled"):
        out[f"total_{key}_ms"] = sum(r[f"{key}_ms"] for r in table)
    out["total_ratio"] = out["total_workbench_ms"] / out["total_bare_ms"]
    out["total_polled_ratio"] = out["total_polled_ms"] / out["total_bare_ms"]

    def timed(rs: list[dict]) -> dict:
        t = [ms(r["total_s"]) for r in rs]
        return {"runs_ms": t, "median_ms": statistics.median(t), "p95_ms": p95(t),
                "max_ms": max(t)}

    out["count"] = {"sql": COUNT_SQL, **timed(count), "exec_median_ms": med(count, "exec_ms"),
                    "polled": timed(count_polled),
                    "bare_median_ms": med(count_bare, "total_s", 1000)}
    out["floor"] = {"sql": FLOOR_SQL, **timed(floor),
                    "post_median_ms": med(floor, "submit_s", 1000),
                    "exec_median_ms": med(floor, "exec_ms"),
                    "to_audit_median_ms": med(floor, "to_audit_ms"),
                    "after_audit_median_ms": med(floor, "after_audit_ms"),
                    "requests": med(floor, "requests"),
                    "polled": {**timed(floor_polled),
                               "post_median_ms": med(floor_polled, "submit_s", 1000),
                               "to_audit_median_ms": med(floor_polled, "to_audit_ms"),
                               "after_audit_median_ms": med(floor_polled, "after_audit_ms"),
                               "rows_get_median_ms": med(floor_polled, "rows_s", 1000)},
                    "bare_median_ms": med(floor_bare, "total_s", 1000),
                    "http_rtt_median_ms": statistics.median(ms(x) for x in rtt)}
    out["count_shipped_clients"] = shipped
    out["finished_at"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"workbench-{args.scale}.json").write_text(json.dumps(out, indent=1))
    report(out)


def report(out: dict) -> None:
    print(f"scale {out['scale']:,}; {out['machine']}; duckdb {out['duckdb']}; "
          f"{out['threads']} threads a worker; started {out['started_at']}")
    for i, r in enumerate(out["build_rounds"], 1):
        p, t = r["publish"], r["tiers"]
        print(f"round {i}: publish {p['seconds']:.1f} s, peak RSS {p['peak_rss_mb']:.0f} MiB, "
              f"{p['bytes'] / 2**20:.0f} MiB | tiers {t['seconds']:.1f} s, peak RSS "
              f"{t['peak_rss_mb']:.0f} MiB, {t['files']} files for {t['grants']} grants, "
              f"{t['bytes'] / 2**20:.0f} MiB")
    print(f"workbench = POST with wait {WAIT_S} s and rows {PAGE}; polled = the old way, every "
          f"{out['poll_ms']:g} ms (medians, ms)")
    print(f"{'query':28} {'rows':>4} {'bare':>6} {'wb':>6} {'ratio':>6} {'polled':>6} "
          f"{'ratio':>6} | {'POST':>6} {'exec':>4} {'audit':>6} {'after':>5} {'req':>3} "
          f"{'guard':>5} | {'p.exec':>6}")
    for r in out["queries"]:
        w = r["workbench"]
        print(f"{r['query']:28} {r['rows']:4} {r['bare_ms']:6.1f} {r['workbench_ms']:6.1f} "
              f"{r['ratio']:5.2f}x {r['polled_ms']:6.1f} {r['polled_ratio']:5.2f}x | "
              f"{w['post_ms']:6.1f} {w['exec_ms']:4.0f} {w['to_audit_ms']:6.1f} "
              f"{w['after_audit_ms']:5.1f} {w['requests']:3.0f} {r['guard_ms']:5.1f} | "
              f"{r['polled']['exec_ms']:6.0f}")
    print(f"{'total':28} {'':4} {out['total_bare_ms']:6.1f} {out['total_workbench_ms']:6.1f} "
          f"{out['total_ratio']:5.2f}x {out['total_polled_ms']:6.1f} "
          f"{out['total_polled_ratio']:5.2f}x (target <= 1.3x)")
    c, f, sc = out["count"], out["floor"], out["count_shipped_clients"]
    print(f"warm count(*): median {c['median_ms']:.1f} ms, p95 {c['p95_ms']:.1f} ms (target < "
          f"300 ms); polled {c['polled']['median_ms']:.1f} / {c['polled']['p95_ms']:.1f}; bare "
          f"{c['bare_median_ms']:.2f} ms; huiliu sql {sc['huiliu_sql_median_ms']:.1f} / "
          f"{sc['huiliu_sql_p95_ms']:.1f}; the page's schedule {sc['page_median_ms']:.1f} / "
          f"{sc['page_p95_ms']:.1f}")
    fp = f["polled"]
    print(f"floor (SELECT 1): {f['median_ms']:.1f} ms end to end, p95 {f['p95_ms']:.1f} (POST "
          f"{f['post_median_ms']:.1f}; audited {f['to_audit_median_ms']:.1f} ms after submit, "
          f"answer in hand {f['after_audit_median_ms']:.1f} later); polled "
          f"{fp['median_ms']:.1f} ms (POST {fp['post_median_ms']:.1f}, audited "
          f"{fp['to_audit_median_ms']:.1f}, seen {fp['after_audit_median_ms']:.1f} later, rows "
          f"{fp['rows_get_median_ms']:.1f}); bare {f['bare_median_ms']:.2f} ms; one HTTP round "
          f"trip {f['http_rtt_median_ms']:.1f} ms; service peak RSS "
          f"{out['service_peak_rss_mb']:.0f} MiB")
    pr = out["profile"]
    print(f"in this process: audit append {pr['audit_append_ms']:.2f} ms, history row "
          f"{pr['history_record_ms']:.2f} ms; per query (ms): session, Arrow read, IPC x3, "
          "fetchall, executor alone")
    for name, p in pr["per_query"].items():
        print(f"  {name:28} {p['session']:6.2f} {p['arrow']:7.2f} {p['ipc']:6.2f} "
              f"{p['fetchall']:7.2f} {p['executor']:7.2f}")


if __name__ == "__main__":
    main()
