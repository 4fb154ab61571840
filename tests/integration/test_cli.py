"""The command line a data engineer uses by hand, run as a real process."""

import datetime as dt
import subprocess
import sys

import pytest
from dropwriter import write_batch

from pipelines.catalog.model import CATALOG_DIR, catalog
from pipelines.catalog.identifiers import make_citizen_id

pytestmark = pytest.mark.integration

POP = catalog().resource("PS_POP_BASIC")
HEADER = [f.code for f in POP.stored_fields] + ["CZLX", "GXSJ"]


def huiliu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True,
                          text=True, timeout=300)


def row(i: int) -> list[str]:
    pid = make_citizen_id("500103", dt.date(1985, 3, 1) + dt.timedelta(days=i), 22)  # even: female
    return [pid, "孙丽", "2", "01", pid[6:14], "500103", "渝中区", "20", "0", "", "I",
            "2026-10-01 09:00:00"]


@pytest.mark.parametrize("command", ["backflow", "run", "status", "show", "publish", "catalog",
                                     "demo", "ui", "sim"])
def test_every_command_has_help(command):
    out = huiliu(command, "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout


def test_backflow_ingests_a_drop_folder_and_status_reports_it(tmp_path):
    drops, home = tmp_path / "drops", tmp_path / "hub"
    write_batch(drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                [row(i) for i in range(3)])
    out = huiliu("backflow", "--bulk-only", "--home", str(home), "--drop-root", str(drops))
    assert out.returncode == 0, out.stderr
    assert "PS_POP_BASIC" in out.stdout
    status = huiliu("status", "--home", str(home))
    assert status.returncode == 0, status.stderr
    line = next(x for x in status.stdout.splitlines() if x.startswith("PS_POP_BASIC"))
    assert line.split()[1:5] == ["1", "3", "3", "0"]  # batches, received, staged, quarantined


def test_backflow_exits_non_zero_naming_the_rejected_batch(tmp_path):
    drops, home = tmp_path / "drops", tmp_path / "hub"
    write_batch(drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER, [row(0)],
                manifest_rows=2)
    write_batch(drops, "PS", "PS_POP_BASIC", "20261002T020000-000002", HEADER, [row(1)])
    out = huiliu("backflow", "--bulk-only", "--home", str(home), "--drop-root", str(drops))
    assert out.returncode == 1
    assert "20261001T020000-000001" in out.stderr and "row_count_mismatch" in out.stderr
    assert "redeliver" in out.stderr
    shown = huiliu("show", "rejections", "--home", str(home))
    assert "row_count_mismatch" in shown.stdout


def test_status_before_anything_is_published_says_what_to_do(tmp_path):
    out = huiliu("status", "--home", str(tmp_path / "empty"))
    assert out.returncode != 0
    assert "huiliu backflow" in out.stderr


def test_catalog_check_names_file_entry_and_problem(tmp_path):
    import shutil

    root = tmp_path / "catalogs"
    shutil.copytree(CATALOG_DIR, root)
    p = root / "resources" / "CU_PENALTY.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("provider: CU", "provider: XX"),
                 encoding="utf-8")
    out = huiliu("catalog", "check", "--root", str(root))
    assert out.returncode == 1
    assert "CU_PENALTY.yaml" in out.stderr and "XX" in out.stderr
