"""Backflow speed and size, each beside a bare baseline measured in the same run on the same data.

    python -m benchmarks.bench_backflow --scale 1000000

Starts the simulator (a real process on loopback) with `--scale` persons, then runs four measurements,
each in its own child process so each peak RSS is its own:
  bulk baseline  pyarrow CSV read with the file's encoding + Parquet write, for every drop part
  bulk hub       Huiliu's ingest of the same drops (verify, parse, land, load into DuckDB)
  api baseline   a bare loop fetching every page (token, snapshot pages, change pages, JSON decode)
  api hub        Huiliu's pull of the same feeds (parse, land, load, cursor)
and finally the whole backflow (all resources, publish) as one process: the end-to-end peak RSS.
and the same with the contract stage (Great Expectations on every batch) switched on.
The bulk/API measurements run with contracts off: they measure backflow itself, the stage issue 2
set targets for. Prints a table and writes benchmarks/results/backflow-<scale>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipelines.sim.process import SimulatorProcess
from pipelines.cli.tables import render

RESULTS = Path(__file__).parent / "results"

BULK_BASELINE = r"""
import json, resource, sys, time, gzip, io, tempfile
from pathlib import Path
import pyarrow as pa, pyarrow.csv as pacsv, pyarrow.parquet as pq
root = Path(sys.argv[1]); out = Path(tempfile.mkdtemp())
enc = {"UTF-8": "utf-8", "GBK": "gbk", "GB18030": "gb18030"}
rows = nbytes = 0; t = time.perf_counter()
for m in sorted(root.glob("*/*/*/manifest.json")):
    man = json.loads(m.read_text())
    if man["resource"] not in ("PS_POP_BASIC", "PS_HUKOU_MOVE", "CU_DECL_MONTHLY"):
        continue
    for f in man["files"]:
        p = m.parent / f["name"]; nbytes += p.stat().st_size
        tbl = pacsv.read_csv(p, read_options=pacsv.ReadOptions(encoding=enc[man["encoding"]]),
                             parse_options=pacsv.ParseOptions(invalid_row_handler=lambda r: "skip"))
        pq.write_table(tbl, out / (man["batch_id"] + f["name"] + ".parquet"))
        rows += tbl.num_rows
el = time.perf_counter() - t
print(json.dumps({"rows": rows, "bytes": nbytes, "seconds": el,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BULK_HUB = r"""
import json, resource, sys, time
from pathlib import Path
from pipelines import backflow
from pipelines.catalog.model import catalog
from pipelines.settings import Settings
s = Settings(home=Path(sys.argv[2]), drop_root=Path(sys.argv[1]), contracts=False); cat = catalog()
t = time.perf_counter(); rows = 0; stages = {}
for r in cat.resources.values():
    if r.delivery == "bulk":
        run = backflow.ingest_drops(s, cat, r)
        rows += run.total("received")
        for k, v in run.stage_s.items():
            stages[k] = stages.get(k, 0.0) + v
el = time.perf_counter() - t
print(json.dumps({"rows": rows, "seconds": el, "stages": stages,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

API_BASELINE = r"""
import json, resource, sys, time
import orjson, requests
url = sys.argv[1]; sess = requests.Session()
tok = sess.post(url + "/oauth/token", data={"grant_type": "client_credentials",
      "client_id": "node-500000", "client_secret": sys.argv[2]}).json()["access_token"]
H = {"Authorization": "Bearer " + tok}
res = ["CA_MARRIAGE", "CA_CREMATION", "CA_SUBSISTENCE", "CA_SOCIAL_ORG", "CU_ENT_REG", "CU_PENALTY"]
rows = nbytes = 0; t = time.perf_counter()
def pages(path, cur=""):
    global rows, nbytes
    while True:
        r = sess.get(url + path, params={"cursor": cur, "limit": 10000}, headers=H)
        nbytes += len(r.content); b = orjson.loads(r.content); rows += len(b["records"])
        cur = b["next_cursor"]
        if not b["has_more"]:
            return
for code in res:  # the same work as the hub: newest snapshot, then the feed from its cursor
    snaps = orjson.loads(sess.get(f"{url}/api/v1/resources/{code}/snapshots", headers=H).content)
    cursor = ""
    if snaps["snapshots"]:
        pages(f"/api/v1/resources/{code}/snapshots/{snaps['snapshots'][-1]['snapshot_id']}")
        cursor = snaps["snapshots"][-1]["feed_cursor"]
    pages(f"/api/v1/resources/{code}/changes", cursor)
el = time.perf_counter() - t
print(json.dumps({"rows": rows, "bytes": nbytes, "seconds": el,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

API_HUB = r"""
import json, resource, sys, time
from pathlib import Path
from pipelines import backflow
from pipelines.catalog.model import catalog
from pipelines.settings import Settings
s = Settings(home=Path(sys.argv[2]), api_url=sys.argv[1], contracts=False); cat = catalog()
t = time.perf_counter(); rows = 0
for r in cat.resources.values():
    if r.delivery == "api":
        rows += backflow.pull_api(s, cat, r).total("received")
el = time.perf_counter() - t
print(json.dumps({"rows": rows, "seconds": el,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

END_TO_END = r"""
import json, resource, sys, time
from pathlib import Path
from pipelines import backflow
from pipelines.catalog.model import catalog
from pipelines.warehouse.publish import publish
from pipelines.settings import Settings
s = Settings(home=Path(sys.argv[2]), api_url=sys.argv[1], drop_root=Path(sys.argv[3]),
             contracts=sys.argv[4] == "on")
cat = catalog(); t = time.perf_counter(); rows = 0
for r in cat.resources.values():
    rows += backflow.run_resource(s, cat, r).total("received")
publish(s)
el = time.perf_counter() - t
print(json.dumps({"rows": rows, "seconds": el,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"benchmark child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=int, default=100_000, help="persons in the simulated world")
    ap.add_argument("--days", type=int, default=2, help="simulated days of increments")
    ap.add_argument("--defect-profile", default="none", choices=["none", "default"],
                    help="'none' by default: the bare baselines cannot read defective files "
                         "(undecodable bytes stop pyarrow), and speed is compared on equal work")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="huiliu-bench-"))
    secret = os.environ.get("HUILIU_SIM_CLIENT_SECRET", "dev-secret-change-me")
    t = time.perf_counter()
    with SimulatorProcess(work / "sim", scale=args.scale,
                   extra=["--defect-profile", args.defect_profile]) as sim:
        startup = time.perf_counter() - t
        if args.days:
            sim.advance(args.days)
        drops = work / "sim" / "drops"
        results = {
            "bulk_baseline": child(BULK_BASELINE, str(drops)),
            "bulk_hub": child(BULK_HUB, str(drops), str(work / "hub_bulk")),
            "api_baseline": child(API_BASELINE, sim.url, secret),
            "api_hub": child(API_HUB, sim.url, str(work / "hub_api")),
            "end_to_end": child(END_TO_END, sim.url, str(work / "hub_all"), str(drops), "off"),
            "end_to_end_with_contracts": child(END_TO_END, sim.url, str(work / "hub_gx"),
                                               str(drops), "on"),
        }
    for r in results.values():
        r["rows_per_s"] = r["rows"] / r["seconds"] if r["seconds"] else 0.0
    bulk_ratio = results["bulk_hub"]["rows_per_s"] / results["bulk_baseline"]["rows_per_s"]
    stages = results["bulk_hub"]["stages"]
    landing_s = stages["verify"] + stages["parse"] + stages["land"]
    landing_ratio = results["bulk_baseline"]["seconds"] / landing_s
    api_ratio = results["api_hub"]["rows_per_s"] / results["api_baseline"]["rows_per_s"]
    rows = [(k, v["rows"], round(v["seconds"], 2), round(v["rows_per_s"]),
             round(v.get("bytes", 0) / 2**20, 1), round(v["peak_rss_mb"]))
            for k, v in results.items()]
    print(f"scale {args.scale:,} persons, {args.days} day(s) of increments, defect profile "
          f"{args.defect_profile}; simulator start "
          f"{startup:.1f}s; machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(render(["measurement", "rows", "seconds", "rows/s", "MiB in", "peak RSS MiB"], rows))
    print("bulk hub stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    print(f"bulk hub / bare baseline: {bulk_ratio:.2f}x end to end (with the versioned load), "
          f"{landing_ratio:.2f}x to landed Parquet (the baseline's own work: read CSV, write "
          f"Parquet)   api hub / bare loop: {api_ratio:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"backflow-{args.scale}.json").write_text(json.dumps(
        {"scale": args.scale, "days": args.days, "simulator_start_s": startup,
         "bulk_ratio": bulk_ratio, "bulk_landing_ratio": landing_ratio, "api_ratio": api_ratio,
         "results": results}, indent=1))


if __name__ == "__main__":
    main()
