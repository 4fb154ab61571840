"""One failure never takes the others down: a platform that is down or silent, a drop root that is
not there, a home that is a file, a full disk. Each is one clear line, the rest loads and
publishes, the exit code says something failed, and the warehouse stays as it was."""

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest
from dropwriter import write_batch

from pipelines.sim.process import free_port
from pipelines.catalog.model import catalog
from pipelines.catalog.identifiers import make_citizen_id

pytestmark = pytest.mark.integration

CAT = catalog()
POP = CAT.resource("PS_POP_BASIC")
HEADER = [f.code for f in POP.stored_fields] + ["CZLX", "GXSJ"]
API_RESOURCES = sorted(r.code for r in CAT.resources.values() if r.delivery == "api")


def row(i: int) -> list[str]:
    birth = dt.date(1985, 3, 1) + dt.timedelta(days=i % 5000)
    pid = make_citizen_id("500103", birth, 2 * (i // 5000) + 2)  # even: female
    return [pid, "孙丽", "2", "01", pid[6:14], "500103", "渝中区", "20", "0", "", "I",
            "2026-10-01 09:00:00"]


def huiliu(*args: str, env: dict | None = None, timeout: float = 300):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def one_drop(drops: Path, batch: str = "20261001T020000-000001", n: int = 3) -> None:
    write_batch(drops, "PS", "PS_POP_BASIC", batch, HEADER, [row(i) for i in range(n)])


def loaded_rows(home: Path) -> int:
    with duckdb.connect(str(home / "published" / "current.duckdb"), read_only=True) as con:
        return con.execute("SELECT count(*) FROM cur.ps_pop_basic").fetchall()[0][0]


def assert_quiet_failure(out: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in out.stderr + out.stdout


class SilentPlatform:
    """Accepts connections and never answers: a hung gateway."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


def test_platform_down_bulk_drops_still_load_and_publish(tmp_path):
    drops, home = tmp_path / "drops", tmp_path / "hub"
    one_drop(drops)
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    out = huiliu("backflow", "--home", str(home), "--drop-root", str(drops), "--api-url", down)
    assert out.returncode == 1
    assert_quiet_failure(out)
    assert loaded_rows(home) == 3  # the bulk resource loaded and was published
    failed = [x for x in out.stderr.splitlines() if down in x]
    assert len(failed) == 1, out.stderr  # one line names every API resource it stopped
    assert all(code in failed[0] for code in API_RESOURCES)
    assert "HUILIU_API_URL" in failed[0] and "connection refused" in failed[0]


def test_a_silent_platform_is_given_up_on_within_its_deadlines(tmp_path):
    drops, home = tmp_path / "drops", tmp_path / "hub"
    one_drop(drops)
    silent = SilentPlatform()
    try:
        # the subprocess timeout is the bound: without read deadlines the pull waits for ever
        out = huiliu("backflow", "--home", str(home), "--drop-root", str(drops), "--api-url",
                     silent.url, env={"HUILIU_API_TIMEOUT_SECONDS": "1"}, timeout=240)
    finally:
        silent.close()
    assert out.returncode == 1
    assert_quiet_failure(out)
    assert loaded_rows(home) == 3
    assert "no answer within 1 s" in out.stderr and "HUILIU_API_TIMEOUT_SECONDS" in out.stderr


def test_a_dagster_run_with_the_platform_down_publishes_what_loaded(tmp_path):
    drops, home = tmp_path / "drops", tmp_path / "hub"
    one_drop(drops)
    down = f"http://127.0.0.1:{free_port()}"
    env = {"HUILIU_API_URL": down, "HUILIU_DROP_ROOT": str(drops), "HUILIU_TODAY": "2026-10-02"}
    os.environ.pop("DAGSTER_HOME", None)
    out = huiliu("run", "--home", str(home), env=env)
    assert out.returncode == 1  # an ERROR check failed
    assert loaded_rows(home) == 3
    for code in API_RESOURCES:
        assert f"backflow/{code.lower()} source_read: cannot reach the national platform at " \
               f"{down}" in out.stderr
    assert "governance/objections exchanged_with_platform" in out.stderr


def test_a_drop_root_that_does_not_exist_is_a_clear_error(tmp_path):
    typo = tmp_path / "dorps"
    out = huiliu("backflow", "--bulk-only", "--home", str(tmp_path / "hub"), "--drop-root",
                 str(typo))
    assert out.returncode == 2 and "does not exist" in out.stderr and str(typo) in out.stderr
    # the same typo in the environment: every bulk resource says so, in one line
    out = huiliu("backflow", "--bulk-only", "--home", str(tmp_path / "hub"),
                 env={"HUILIU_DROP_ROOT": str(typo)})
    assert out.returncode == 1
    assert_quiet_failure(out)
    lines = [x for x in out.stderr.splitlines() if str(typo) in x]
    assert len(lines) == 1 and "HUILIU_DROP_ROOT" in lines[0] and "PS_POP_BASIC" in lines[0]


def test_a_home_that_is_a_file_is_one_line(tmp_path):
    drops = tmp_path / "drops"
    one_drop(drops)
    home = tmp_path / "home"
    home.write_text("not a folder")
    out = huiliu("backflow", "--bulk-only", "--home", str(home), "--drop-root", str(drops))
    assert out.returncode != 0
    assert_quiet_failure(out)
    assert "check HUILIU_HOME" in out.stderr
    out = huiliu("status", "--home", str(home))
    assert out.returncode != 0 and "Traceback" not in out.stderr


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root (as on CI and the dev machines)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48M", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_one_line_and_leaves_the_warehouse_intact(tmp_path, small_disk):
    drops, home = tmp_path / "drops", small_disk / "hub"
    one_drop(drops)
    first = huiliu("backflow", "--bulk-only", "--home", str(home), "--drop-root", str(drops))
    assert first.returncode == 0, first.stderr
    # fill the disk, then a bigger delivery arrives
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    with open(filler, "wb") as f:
        f.write(b"\0" * (free - 256 * 1024))
    one_drop(drops, "20261002T020000-000002", n=20_000)
    out = huiliu("backflow", "--bulk-only", "--home", str(home), "--drop-root", str(drops))
    assert out.returncode != 0
    assert_quiet_failure(out)
    assert "the disk is full" in out.stderr, out.stderr
    assert "cannot rollback" not in out.stderr
    # readers still see the last snapshot; the warehouse opens and holds the first batch only;
    # no half-written copy or landing folder is left
    assert loaded_rows(home) == 3
    with duckdb.connect(str(home / "warehouse" / "huiliu.duckdb"), read_only=True) as con:
        assert con.execute("SELECT batch_id FROM ops.batches WHERE status = 'loaded'"
                           ).fetchall() == [("20261001T020000-000001",)]
    assert not [p for p in (home / "published").iterdir() if ".tmp" in p.name]
    assert not [p for p in (home / "landing").rglob(".*tmp*")]
    # space again: the batch loads as if nothing had happened
    filler.unlink()
    again = huiliu("backflow", "--bulk-only", "--home", str(home), "--drop-root", str(drops))
    assert again.returncode == 0, again.stderr
    assert loaded_rows(home) == 20_000  # the second batch re-sends the first 3 rows, and more
