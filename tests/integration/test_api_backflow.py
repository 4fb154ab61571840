"""API backflow against the real simulator process on loopback: full load, increments, rerun,
every API fault type, and kill -9 in the middle of a pull."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from pipelines.sim.process import SimulatorProcess
from pipelines import backflow
from pipelines.catalog.model import catalog
from pipelines.settings import Settings

pytestmark = pytest.mark.integration

CAT = catalog()
API = [r for r in CAT.resources.values() if r.delivery == "api"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    home = tmp_path_factory.mktemp("sim")
    with SimulatorProcess(home, scale=2000, seed=11,
                   extra=["--defect-profile", "none", "--activity", "20"]) as s:
        yield s


def hub(tmp: Path, sim: SimulatorProcess, **kw) -> Settings:
    return Settings(home=tmp, api_url=sim.url, drop_root=sim.home / "drops", **kw)


def pull_all(s: Settings) -> dict:
    return {r.code: backflow.pull_api(s, CAT, r) for r in API}


def current(s: Settings) -> dict[str, set]:
    """Per resource: the set of (key..., GXSJ) of current rows."""
    out = {}
    with duckdb.connect(str(s.warehouse_path), read_only=True) as con:
        for r in API:
            keys = ", ".join(f'"{k}"' for k in r.primary_key)
            out[r.code] = set(con.execute(f"SELECT {keys}, _gxsj FROM cur.{r.key}").fetchall())
    return out


def expected_from_bare_client(sim: SimulatorProcess) -> dict[str, set]:
    """What the platform says is current: latest snapshot, then every change after it."""
    tok = httpx.post(f"{sim.url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "node-500000",
        "client_secret": "dev-secret-change-me"}).json()["access_token"]
    h = {"Authorization": f"Bearer {tok}"}
    out = {}
    for r in API:
        base = f"{sim.url}/api/v1/resources/{r.code}"
        snaps = httpx.get(f"{base}/snapshots", headers=h).json()["snapshots"]
        state: dict[tuple, tuple] = {}

        def apply(path: str, cursor: str = "") -> None:
            while True:
                body = httpx.get(path, params={"cursor": cursor, "limit": 1000}, headers=h,
                                 timeout=60).json()
                for rec in body["records"]:
                    key = tuple(rec[k] for k in r.primary_key)
                    if key in state and state[key][0] > rec["GXSJ"]:
                        continue  # an older version arriving late does not win
                    state[key] = (rec["GXSJ"], rec["CZLX"])
                cursor = body["next_cursor"]
                if not body["has_more"]:
                    return

        feed_cursor = ""
        if snaps:
            apply(f"{base}/snapshots/{snaps[-1]['snapshot_id']}")
            feed_cursor = snaps[-1]["feed_cursor"]
        apply(f"{base}/changes", feed_cursor)
        import datetime as dt

        out[r.code] = {(*k, dt.datetime.strptime(g, "%Y-%m-%d %H:%M:%S"))
                       for k, (g, op) in state.items() if op != "D"}
    return out


@pytest.fixture(scope="module")
def reference(sim, tmp_path_factory):
    """A clean pull after a full load and a few days of increments."""
    s = hub(tmp_path_factory.mktemp("reference"), sim)
    first = pull_all(s)
    assert all(run.loaded for run in first.values())  # every feed had a snapshot to take
    sim.advance(3)
    pull_all(s)
    return s


def test_full_load_then_increments_match_what_the_platform_holds(sim, reference):
    assert current(reference) == expected_from_bare_client(sim)
    with duckdb.connect(str(reference.warehouse_path), read_only=True) as con:
        bad = con.execute("SELECT count(*) FROM ops.batches WHERE NOT accounting_ok").fetchone()
        snaps = con.execute("SELECT count(*) FROM ops.batches WHERE batch_id LIKE 'snap-%'")
        assert bad == (0,) and snaps.fetchone()[0] == len(API)


def test_rerun_pulls_nothing_new_and_changes_nothing(sim, reference):
    before = current(reference)
    again = pull_all(reference)
    assert all(run.loaded == [] for run in again.values())
    assert current(reference) == before


def test_every_api_fault_is_survived_without_loss_or_duplicate(sim, reference, tmp_path):
    s = hub(tmp_path / "faulty", sim, api_page_size=500, api_batch_rows=1500)
    sim.set_faults(http_5xx=0.15, http_429=0.1, drop_connection=0.1, expire_token=0.15,
                   slow=0.05, slow_seconds=0.3, retry_after=1)
    try:
        runs = pull_all(s)
    finally:
        sim.set_faults(http_5xx=0, http_429=0, drop_connection=0, expire_token=0, slow=0)
    assert current(s) == current(reference)
    stats = {k: sum(r.api_stats[k] for r in runs.values())
             for k in next(iter(runs.values())).api_stats}
    # the faults really happened, and were retried: 5xx/429 by status, drops by transport, 401s
    assert stats["retries_status"] > 0 and stats["retries_transport"] > 0
    assert stats["retries_401"] > 0 and stats["token_refreshes"] > len(API)


def test_a_bad_client_secret_fails_with_an_actionable_message(sim, tmp_path):
    from pydantic import SecretStr

    s = hub(tmp_path, sim, api_client_secret=SecretStr("wrong"))
    run = backflow.pull_api(s, CAT, API[0])
    assert run.loaded == [] and "HUILIU_API_CLIENT_SECRET" in run.failed


def test_kill_minus_9_during_a_pull_then_rerun_matches(sim, reference, tmp_path):
    home = tmp_path / "killed"
    env = {**os.environ, "HUILIU_API_PAGE_SIZE": "200", "HUILIU_API_BATCH_ROWS": "400"}
    (tmp_path / "no-drops").mkdir()
    cmd = [sys.executable, "-m", "pipelines.cli", "backflow", "--home", str(home),
           "--api-url", sim.url, "--drop-root", str(tmp_path / "no-drops")]
    sim.set_faults(slow=0.3, slow_seconds=0.2)  # a pull of several seconds, to kill it inside
    killed = 0

    def landed() -> int:
        return sum(1 for _ in (home / "landing").rglob("*.parquet")) if home.exists() else 0

    try:
        # each run is killed as soon as it has landed one more batch than before: inside the
        # pull, whatever the machine's speed (fixed delays missed it on a fast start-up)
        for _ in range(3):
            before = landed()
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                if landed() > before:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed += 1
                    break
                time.sleep(0.02)
            proc.wait()
    finally:
        sim.set_faults(slow=0)
    assert killed >= 2  # the kills landed while the pull was running
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert current(Settings(home=home)) == current(reference)
