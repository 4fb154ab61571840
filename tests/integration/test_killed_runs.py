"""A run killed at any moment never blocks the node: the next run finds the dead run, fails it,
frees its provider pool slots and completes; and what a killed run had committed is recorded
exactly once, its delivery included (timeliness never blames a provider for the hub's crash)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from dropwriter import write_batch

from pipelines.sim.process import SimulatorProcess
from pipelines.catalog.model import catalog

pytestmark = pytest.mark.integration

CRASHPOINT = Path(__file__).resolve().parents[1] / "crashpoint"
POP = catalog().resource("PS_POP_BASIC")
HEADER = [f.code for f in POP.stored_fields] + ["CZLX", "GXSJ"]


def _query(db: Path, sql: str) -> list[tuple]:
    """Read the Dagster instance's SQLite storage while a run writes it (empty until it exists)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=10) as con:
            return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the file is there, its tables not yet
        return []


def run_statuses(home: Path) -> list[str]:
    return [s for (s,) in _query(home / "dagster" / "history" / "runs.db",
                                 "SELECT status FROM runs ORDER BY create_timestamp")]


def held_slots(home: Path, pools: tuple[str, ...] = ("provider_ca", "provider_cu",
                                                    "provider_ps")) -> int:
    """Provider pool slots claimed by a run (the instance's event-log index)."""
    rows = _query(home / "dagster" / "history" / "runs" / "index.db",
                  "SELECT count(*) FROM concurrency_slots WHERE run_id IS NOT NULL "
                  f"AND concurrency_key IN ({', '.join(repr(p) for p in pools)})")
    return rows[0][0] if rows else 0


def test_a_killed_run_is_failed_and_the_next_run_completes(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = tmp_path / "hub"
    with SimulatorProcess(tmp_path / "sim", scale=3000, seed=5) as sim:
        env = {**os.environ, "HUILIU_HOME": str(home), "HUILIU_API_URL": sim.url,
               "HUILIU_DROP_ROOT": str(tmp_path / "sim" / "drops"),
               "HUILIU_TODAY": sim.status()["date"]}
        cmd = [sys.executable, "-m", "pipelines.cli", "run"]
        sim.set_faults(slow=1.0, slow_seconds=0.5)  # every API step holds its slot for seconds
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and first.poll() is None:
            if "STARTED" in run_statuses(home) and held_slots(home, ("provider_ca",
                                                                     "provider_cu")):
                break  # an API step holds its provider's pool slot, for seconds (slow platform)
            time.sleep(0.2)
        assert first.poll() is None, "the run ended before it could be killed"
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert run_statuses(home) == ["STARTED"] and held_slots(home) > 0
        sim.set_faults(slow=0.0)

        # without recovery this run waits for the dead run's slots for ever (the timeout fails it)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert ": success" in second.stdout, second.stdout + second.stderr
    assert "was left unfinished by process" in second.stderr and "pool slots freed" in \
        second.stderr
    assert run_statuses(home) == ["FAILURE", "SUCCESS"]
    assert held_slots(home) == 0


def row(i: int) -> list[str]:
    import datetime as dt

    from pipelines.catalog.identifiers import make_citizen_id

    pid = make_citizen_id("500103", dt.date(1985, 3, 1) + dt.timedelta(days=i), 22)
    return [pid, "孙丽", "2", "01", pid[6:14], "500103", "渝中区", "20", "0", "", "I",
            "2026-10-01 09:00:00"]


def test_a_crash_when_the_delivery_is_recorded_loses_neither_rows_nor_delivery(tmp_path):
    drops, home = tmp_path / "drops", tmp_path / "hub"
    write_batch(drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                [row(i) for i in range(5)], extracted_at="2026-10-02T02:00:00+08:00")
    cmd = [sys.executable, "-m", "pipelines.cli", "backflow", "--bulk-only", "--home", str(home),
           "--drop-root", str(drops)]
    env = {**os.environ, "HUILIU_TODAY": "2026-10-02"}
    crashed = subprocess.run(cmd, capture_output=True, timeout=300, env={
        **env, "PYTHONPATH": str(CRASHPOINT), "HUILIU_TEST_CRASH_SQL": "INSERT INTO ops.deliveries"})
    assert crashed.returncode == 137  # the process died as the delivery was written
    # a day later the hub runs again
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                           env={**env, "HUILIU_TODAY": "2026-10-03"})
    assert again.returncode == 0, again.stderr
    with duckdb.connect(str(home / "warehouse" / "huiliu.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM cur.ps_pop_basic").fetchall() == [(5,)]
        deliveries = con.execute("""SELECT batch_id, period, status FROM ops.deliveries
            WHERE resource = 'PS_POP_BASIC'""").fetchall()
    # the batch was delivered (through 10-01, the day before its extraction): the period has its
    # delivery; it was not left without one by a crash between the rows and the record of them
    assert [(b, str(p), s) for b, p, s in deliveries] == \
        [("20261001T020000-000001", "2026-10-01", "loaded")]
