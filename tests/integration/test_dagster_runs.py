"""Real Dagster runs of the main job on a persistent instance, against the simulator process."""

import duckdb
import pytest

from pipelines.demo import Simulator, demo_settings
from pipelines.lib.catalog import catalog
from pipelines.runner import run_job

pytestmark = pytest.mark.integration


def test_backflow_all_in_separate_step_processes_materialises_every_asset(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with Simulator(tmp_path, scale=3000, seed=5, extra=["--activity", "10"]) as sim:
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
