"""Data at rest: every file and folder the hub writes (warehouse, published snapshots, landing,
serving store, credentials, audit log, reports, the Dagster instance) gives other accounts no
access; the hub's own account and its group keep theirs."""

import os
import stat
import subprocess
import sys

import httpx
import pytest
from .serving_helpers import running_service

pytestmark = pytest.mark.integration

DEMO_KEY = "demo-audit-key-not-for-production"


def test_nothing_the_hub_writes_is_open_to_other_accounts(tmp_path):
    home = tmp_path / "demo"
    env = {**os.environ, "HUILIU_AUDIT_KEY": DEMO_KEY, "HUILIU_DEMO": "1"}  # the demo's key
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "demo", "--no-serve",
                          "--scale", "500", "--days", "0", "--home", str(home)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    with running_service(home, env) as url:  # the audit log is written by the service
        httpx.get(f"{url}/v1/access-log", params={"subject": "x"})

    # the simulator (the providers' side) writes the drops and its own state under the demo home
    providers = {"sim", "drops", "simulator.log"}
    written = [p for p in home.rglob("*") if p.relative_to(home).parts[0] not in providers]
    names = {p.name for p in written}
    # what the hub writes, so the test does not pass on an empty folder
    assert {"huiliu.duckdb", "current.duckdb", "rows.parquet", "current.lmdb",
            "credentials.sqlite", "audit.jsonl", "index.html", "runs.db"} <= names, sorted(names)
    open_to_others = [f"{oct(stat.S_IMODE(p.lstat().st_mode))} {p.relative_to(home)}"
                      for p in written if not p.is_symlink()
                      and stat.S_IMODE(p.lstat().st_mode) & 0o007]
    assert open_to_others == []
    # the raw published snapshot holds every identifier in clear: the hub's account alone, not
    # even its group (analysts read the governed tiers through the workbench)
    published = home / "published"
    snapshots = list(published.glob("huiliu-*.duckdb"))
    assert snapshots and stat.S_IMODE(published.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in snapshots} == {0o600}
    assert (home / "workbench" / "tiers" / "current" / "manifest.json").exists()
    # the hub's account reads and writes what it wrote
    assert all(stat.S_IMODE(p.lstat().st_mode) & 0o600 == 0o600 for p in written
               if p.is_file() and not p.is_symlink())
