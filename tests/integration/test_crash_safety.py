"""`kill -9` at any point of a run, then a rerun: no duplicate, no lost row, no half-published batch."""

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from dropwriter import write_batch

from pipelines.catalog.model import catalog
from pipelines.catalog.identifiers import make_citizen_id

pytestmark = pytest.mark.integration

HUILIU = [sys.executable, "-m", "pipelines.cli"]
POP = catalog().resource("PS_POP_BASIC")
HEADER = [f.code for f in POP.stored_fields] + ["CZLX", "GXSJ"]


def make_drops(root: Path, batches: int = 5, rows: int = 25_000) -> None:
    rng = random.Random(7)
    for b in range(batches):
        day = dt.datetime(2026, 10, 1) + dt.timedelta(days=b)
        out = []
        for i in range(rows):
            n = rng.randrange(rows * 2)  # overlapping keys across batches: versions and re-sends
            pid = make_citizen_id("500103", dt.date(1960, 1, 1) + dt.timedelta(days=n % 20000),
                                  n // 20000)
            sex = "1" if int(pid[16]) % 2 else "2"  # what the ID number states
            out.append([pid, "周杰", sex, "01", pid[6:14], "500103", f"渝中区{n % 97}号",
                        rng.choice(["10", "20"]), "0", "", "I" if b == 0 else "U",
                        day.strftime("%Y-%m-%d %H:%M:%S")])
        write_batch(root, "PS", "PS_POP_BASIC", f"{day:%Y%m%d}T020000-{b + 1:06d}", HEADER, out,
                    encoding="GBK")


def run_backflow(home: Path, drops: Path, kill_after: float | None = None) -> int | None:
    cmd = [*HUILIU, "backflow", "--bulk-only", "--home", str(home), "--drop-root", str(drops)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after is None:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
        return 0
    time.sleep(kill_after)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.returncode


def state(home: Path):
    with duckdb.connect(str(home / "published" / "current.duckdb"), read_only=True) as con:
        hist = con.execute("""SELECT * EXCLUDE (_loaded_at, _vid) FROM hist.ps_pop_basic
                              ORDER BY GMSFHM, _valid_from, _batch_id, _line""").fetchall()
        batches = con.execute("""SELECT batch_id, status, received, staged, quarantined,
            superseded FROM ops.batches ORDER BY batch_id""").fetchall()
        quarantine = con.execute("SELECT count(*) FROM ops.quarantine").fetchone()
    return hist, batches, quarantine


@pytest.fixture(scope="module")
def drops(tmp_path_factory):
    root = tmp_path_factory.mktemp("drops")
    make_drops(root)
    return root


@pytest.fixture(scope="module")
def reference(drops, tmp_path_factory):
    home = tmp_path_factory.mktemp("reference")
    t0 = time.monotonic()
    run_backflow(home, drops)
    return (*state(home), time.monotonic() - t0)


# Kill points as shares of an uninterrupted run (start-up, validation and loading all take their
# turn), so the kills land inside the work however fast the machine is.
@pytest.mark.parametrize("share", [0.4, 0.6, 0.75, 0.9])
def test_kill_minus_9_then_rerun_matches_an_uninterrupted_run(drops, reference, tmp_path, share):
    home = tmp_path / "hub"
    run_backflow(home, drops, kill_after=share * reference[3])
    run_backflow(home, drops)  # the rerun completes and publishes
    hist, batches, quarantine = state(home)
    assert batches == reference[1]
    assert all(b[2] == b[3] + b[4] + b[5] for b in batches)
    assert quarantine == reference[2]
    assert len(hist) == len(reference[0])
    assert hist == reference[0]
    leftovers = [p for p in (home / "landing").rglob(".*.tmp-*")]
    assert leftovers == []
