"""Real Dagster runs of the main job on a persistent instance, against the simulator process, and
what the Dagster UI (its webserver's GraphQL, as the browser sees it) shows about them."""

import os
import subprocess
import sys
import time

import duckdb
import httpx
import pytest

from pipelines.sim.process import SimulatorProcess, demo_settings, free_port
from pipelines.catalog.model import catalog
from pipelines.defs.runner import run_job

pytestmark = pytest.mark.integration


def test_backflow_all_in_separate_step_processes_materialises_every_asset(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with SimulatorProcess(tmp_path, scale=3000, seed=5, extra=["--activity", "10"]) as sim:
        s = demo_settings(tmp_path, sim.url)
        first = run_job(s, "backflow_all", executor="multiprocess")  # two steps at a time
        assert first.success
        sim.advance(1)
        second = run_job(s, "backflow_all", executor="in_process")
        assert second.success
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        for r in catalog().resources.values():
            key = dg.AssetKey(["backflow", r.key])
            assert instance.get_latest_materialization_event(key) is not None, key
        assert instance.get_latest_materialization_event(
            dg.AssetKey(["warehouse", "published"])) is not None
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.is_success for r in runs)
    with duckdb.connect(str(s.published_current), read_only=True) as con:
        loaded = dict(con.execute("SELECT resource, count(*) FROM ops.batches "
                                  "WHERE status = 'loaded' GROUP BY ALL").fetchall())
        unbalanced = con.execute("SELECT count(*) FROM ops.batches WHERE status = 'loaded' "
                                 "AND received <> staged + quarantined + superseded").fetchone()
    assert set(loaded) == set(catalog().resources)
    assert unbalanced == (0,)

    checks = ui_asset_checks(os.environ["DAGSTER_HOME"], s)
    for r in catalog().resources.values():
        got = checks[f"backflow/{r.key}"]
        assert {"row_accounting", "batches_accepted", "delivered_on_time",
                "contract_required"} <= set(got), got
        assert all(status in {"SUCCEEDED", "FAILED"} for status in got.values()), got
    assert "contract_gb11643" in checks["backflow/ps_pop_basic"]
    assert checks["governance/objections"]["no_overdue_objections"] in {"SUCCEEDED", "FAILED"}


CHECKS_QUERY = """{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks {
    checks { name executionForLatestMaterialization { status } } } } } }"""


def ui_asset_checks(dagster_home: str, s) -> dict[str, dict[str, str]]:
    """Start the Dagster webserver on the run's instance and read every asset's checks with the
    status of their latest execution, as the UI's asset pages do."""
    port = free_port()
    env = dict(os.environ, DAGSTER_HOME=dagster_home, HUILIU_HOME=str(s.home))
    proc = subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-m",
                             "pipelines.definitions", "-h", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        data = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": CHECKS_QUERY},
                          timeout=60).json()["data"]
    finally:
        proc.terminate()
        proc.wait(30)
    return {"/".join(n["assetKey"]["path"]): {
        c["name"]: (c["executionForLatestMaterialization"] or {}).get("status")
        for c in n["assetChecksOrError"].get("checks", [])} for n in data["assetNodes"]}
