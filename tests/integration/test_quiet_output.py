"""What a data engineer sees from the main commands: what they asked for, and nothing else.

Each command runs as a real process, as typed at a shell. Noise is whatever the user did not ask
for and cannot act on: nanobind's leak report at interpreter exit (DuckDB objects still alive
when Python shuts down), INFO lines (libraries' or Dagster's) without -v, and tracebacks.
"""

import datetime as dt
import os
import re
import subprocess
import sys

import pytest
from dropwriter import write_batch

from pipelines.catalog.model import catalog
from pipelines.catalog.identifiers import make_citizen_id

pytestmark = pytest.mark.integration

POP = catalog().resource("PS_POP_BASIC")
HEADER = [f.code for f in POP.stored_fields] + ["CZLX", "GXSJ"]
BATCH = "20261001T020000-000001"

NOISE = {
    "nanobind leak report": re.compile(r"nanobind|^ - leaked (instance|type|function)"),
    "INFO line": re.compile(r" INFO "),
    "traceback": re.compile(r"Traceback"),
}


def huiliu(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def noise(out: subprocess.CompletedProcess) -> dict[str, list[str]]:
    lines = (out.stdout + out.stderr).splitlines()
    found = {kind: [x for x in lines if pattern.search(x)] for kind, pattern in NOISE.items()}
    return {kind: found_lines[:5] for kind, found_lines in found.items() if found_lines}


def row(i: int) -> list[str]:
    pid = make_citizen_id("500103", dt.date(1985, 3, 1) + dt.timedelta(days=i), 22)
    return [pid, "孙丽", "2", "01", pid[6:14], "500103", "渝中区", "20", "0", "", "I",
            "2026-10-01 09:00:00"]


@pytest.fixture(scope="module")
def backflow(tmp_path_factory):
    """One small drop folder ingested by `huiliu backflow --bulk-only` (contracts run on it)."""
    root = tmp_path_factory.mktemp("quiet")
    drops, home = root / "drops", root / "hub"
    write_batch(drops, "PS", "PS_POP_BASIC", BATCH, HEADER, [row(i) for i in range(3)])
    out = huiliu("backflow", "--bulk-only", "--home", str(home), "--drop-root", str(drops))
    return home, out


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("quiet-demo") / "demo"
    out = huiliu("demo", "--no-serve", "--scale", "1500", "--days", "1", "--home", str(home))
    return home, out


def test_backflow_prints_its_table_and_the_snapshot_only(backflow):
    _, out = backflow
    assert out.returncode == 0, out.stderr
    assert "resource" in out.stdout and "loaded" in out.stdout
    assert next(x for x in out.stdout.splitlines() if x.startswith("PS_POP_BASIC")).split()[1] \
        == "1"  # one batch loaded
    assert "published: " in out.stdout
    assert noise(out) == {}


def test_status_prints_the_resource_table_only(backflow):
    home, _ = backflow
    out = huiliu("status", "--home", str(home))
    assert out.returncode == 0, out.stderr
    assert "PS_POP_BASIC" in out.stdout and "published snapshot:" in out.stdout
    assert noise(out) == {}


def test_show_batches_lists_the_batch_only(backflow):
    home, _ = backflow
    out = huiliu("show", "batches", "--home", str(home))
    assert out.returncode == 0, out.stderr
    assert BATCH in out.stdout and "loaded" in out.stdout
    assert noise(out) == {}


def test_publish_prints_the_snapshot_path_only(backflow):
    home, _ = backflow
    out = huiliu("publish", "--home", str(home))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(".duckdb")
    assert noise(out) == {}


def test_catalog_check_prints_the_catalogue_only():
    out = huiliu("catalog", "check")
    assert out.returncode == 0, out.stderr
    assert "PS_POP_BASIC" in out.stdout and "rules compiled" in out.stdout
    assert noise(out) == {}


def test_demo_prints_its_summary_only(demo):
    """The demo runs Dagster jobs in this process (console logger at WARNING), GX, Splink."""
    _, out = demo
    assert out.returncode == 0, out.stderr
    for needed in ("full load: run", "increment 1: run", "resource", "scorecard report:",
                   "main job finished in", "warehouse published at"):
        assert needed in out.stdout, needed
    assert noise(out) == {}


def test_objections_list_after_the_demo_lists_them_only(demo):
    home, demo_out = demo
    today = re.search(r"HUILIU_TODAY=(\S+)", demo_out.stdout).group(1)
    out = huiliu("objections", "list", "--home", str(home), env={"HUILIU_TODAY": today})
    assert out.returncode == 0, out.stderr
    assert re.search(r"YY\d{8}-\d{6}", out.stdout)
    assert noise(out) == {}


LEFT_ALIVE_AT_EXIT = """
import atexit, collections, gc, sys

def count():  # registered first, so it runs after every other exit handler
    gc.collect()
    import duckdb.sqltypes
    constants = {id(v) for v in vars(duckdb.sqltypes).values()}
    alive = collections.Counter(type(o).__name__ for o in gc.get_objects()
                                if type(type(o)).__name__ == "nb_type" and id(o) not in constants)
    print("left alive:", dict(alive))

atexit.register(count)
import pyarrow as pa
from pipelines.catalog.model import catalog
from pipelines.governance.contracts.rules import compile_rules
from pipelines.governance.contracts.validate import run_contract

rule = next(r for r in compile_rules(catalog(), catalog().resource("PS_POP_BASIC"))
            if r.kind == "not_null")
results = run_contract([rule], pa.table({"_ord": [1, 2], rule.field: ["x", None]}))
print("failed:", results[0].failed)
"""


def test_no_duckdb_object_of_a_contract_run_outlives_the_exit_handlers():
    """GX's DuckDB connections, and the DuckDB types SQLAlchemy memoised from their results, are
    closed and let go of at exit. Left alive, they hang off GX's context and SQLAlchemy's dialect
    caches, which at interpreter exit may never be freed, and nanobind reports them as leaked.
    Only DuckDB's own module constants (duckdb.sqltypes) may be left."""
    out = subprocess.run([sys.executable, "-c", LEFT_ALIVE_AT_EXIT], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "failed: 1" in out.stdout
    assert "left alive: {}" in out.stdout, out.stdout


def test_building_the_tiers_without_the_pseudonym_key_says_what_to_do(demo):
    """Outside demo mode the analysts' tiers need the operator's key: one line, exit 2."""
    home, _ = demo
    env = {k: v for k, v in os.environ.items() if k not in ("HUILIU_PSEUDONYM_KEY", "HUILIU_DEMO")}
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "workbench", "build", "--home",
                          str(home)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 2
    assert "HUILIU_PSEUDONYM_KEY is not set" in out.stderr and "Traceback" not in out.stderr
    assert noise(out) == {}
