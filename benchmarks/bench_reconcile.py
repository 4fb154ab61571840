"""Reconciliation speed and linkage accuracy on a simulated world, against its ground truth.

    python -m benchmarks.bench_reconcile --scale 1000000

Starts the simulator (default defect profile), backflows everything (one process, contracts on),
then, each in its own child process so each peak RSS is its own:
  baseline     the bare deterministic floor: mentions grouped by their normalised citizen ID in one
               SQL statement over the same warehouse (no model, registry, golden records or conflicts)
  full         a complete reconcile run on a warehouse that has none yet (link, registry, golden
               records, conflicts, report)
  incremental  the simulator advances one day, that day's batches are pulled, and reconcile runs
               again (ids carried over)
and evaluates the linkage of the last run against the simulator's truth (pairwise precision and
recall, entity purity, twins, per defect type). Writes benchmarks/results/reconcile-<scale>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.bench_backflow import child
from pipelines.sim.process import SimulatorProcess

RESULTS = Path(__file__).parent / "results"

BACKFLOW = r"""
import json, sys, time
from pathlib import Path
from pipelines import backflow
from pipelines.catalog.model import catalog
from pipelines.settings import Settings
s = Settings(home=Path(sys.argv[2]), api_url=sys.argv[1], drop_root=Path(sys.argv[3]))
cat = catalog(); t = time.perf_counter(); rows = 0
for r in cat.resources.values():
    rows += backflow.run_resource(s, cat, r).total("received")
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t}))
"""

BASELINE = r"""
import json, resource, sys, time, duckdb
from pipelines.catalog.model import catalog
from pipelines.governance.contracts.sql_macros import MACROS
from pipelines.identity.mentions import sources
from pipelines.catalog.sql_gen import record_key_expr
con = duckdb.connect(sys.argv[1], read_only=True)
for m in MACROS:
    con.execute(m.replace("CREATE OR REPLACE MACRO", "CREATE OR REPLACE TEMP MACRO"))
cat = catalog()
union = " UNION ALL ".join(
    f"SELECT {record_key_expr(cat.resource(s['resource']))} AS k, "
    f"gb11643_to18({s['doc_no']}) AS id FROM cur.{cat.resource(s['resource']).key}"
    for s in sources())
t = time.perf_counter()
n = con.execute(f"SELECT count(*), count(DISTINCT id) FROM ({union}) WHERE gb11643_ok18(id)"
                ).fetchall()[0]
print(json.dumps({"mentions": n[0], "entities": n[1], "seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

RECONCILE = r"""
import datetime as dt, json, resource, sys, time, duckdb
from pathlib import Path
from pipelines.catalog.model import catalog
from pipelines.identity.reconcile import reconcile
from pipelines.warehouse.writer import ensure_schema
con = duckdb.connect(sys.argv[1])
cat = catalog(); ensure_schema(con, cat)
t = time.perf_counter()
res = reconcile(con, cat, dt.date.fromisoformat(sys.argv[2]), Path(sys.argv[3]))
res["wall_seconds"] = time.perf_counter() - t
res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(res, default=str))
"""

EVALUATE = r"""
import json, sys, duckdb
from pathlib import Path
from pipelines.identity.truth_eval import evaluate_person_linkage
con = duckdb.connect(sys.argv[1], read_only=True)
print(json.dumps(evaluate_person_linkage(con, Path(sys.argv[2]))))
"""


MODEL = r"""
import json, resource, sys, time, duckdb
from pipelines.identity.person_model_eval import evaluate_model
con = duckdb.connect(sys.argv[1], read_only=True)
t = time.perf_counter(); out = evaluate_model(con)
out["seconds"] = time.perf_counter() - t
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=int, default=100_000, help="persons in the simulated world")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (prints its path)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="huiliu-bench-reconcile-"))
    home, drops = work / "hub", work / "sim" / "drops"
    wh = str(home / "warehouse" / "huiliu.duckdb")
    out: dict = {"scale": args.scale, "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                                 f"Python {platform.python_version()}"}
    t = time.perf_counter()
    with SimulatorProcess(work / "sim", scale=args.scale) as sim:
        out["simulator_start_s"] = time.perf_counter() - t
        out["backflow_full"] = child(BACKFLOW, sim.url, str(home), str(drops))
        today = sim.status()["date"]
        out["baseline"] = child(BASELINE, wh)
        out["full"] = child(RECONCILE, wh, today, str(work / "reports"))
        sim.advance(1)
        out["backflow_day"] = child(BACKFLOW, sim.url, str(home), str(drops))
        out["incremental"] = child(RECONCILE, wh, sim.status()["date"], str(work / "reports"))
        truth = Path(sim.truth())
        out["accuracy"] = child(EVALUATE, wh, str(truth))
        out["model"] = child(MODEL, wh)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"reconcile-{args.scale}.json").write_text(json.dumps(out, indent=1, default=str))
    b, f, i, a = out["baseline"], out["full"], out["incremental"], out["accuracy"]
    print(f"scale {args.scale:,}; {out['machine']}; simulator start {out['simulator_start_s']:.0f} s;"
          f" backflow full {out['backflow_full']['seconds']:.0f} s, day "
          f"{out['backflow_day']['seconds']:.1f} s")
    print(f"baseline (group by normalised ID): {b['mentions']:,} mentions -> {b['entities']:,} "
          f"in {b['seconds']:.1f} s, peak {b['peak_rss_mb']:.0f} MiB")
    for name, r in (("full", f), ("incremental", i)):
        print(f"{name}: {r['changed_records']:,} changed records, {r['mentions']:,} mentions, "
              f"{r['entities']['person']:,} persons, {r['entities']['enterprise']:,} "
              f"enterprises, {r['persons']['probabilistic_links']:,} probabilistic links, "
              f"{r['conflicts']['open']:,} open conflicts in {r['wall_seconds']:.1f} s, "
              f"peak {r['peak_rss_mb']:.0f} MiB; stages (s) {r['stages']}")
    print(f"accuracy: precision {a['precision']}, recall {a['recall']}, purity {a['purity']}, "
          f"twin pairs merged {a['twin_pairs_merged']} of {a['twin_pairs']}")
    for name, m in out["model"].items():
        if isinstance(m, dict):
            print(f"model, {name}: {m['mentions']:,} mentions -> right {m['linked_right']:,}, "
                  f"wrong {m['linked_wrong']:,}, not linked {m['not_linked']:,} "
                  f"(precision {m['precision']}, recall {m['recall']})")
    if args.keep:
        print(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
