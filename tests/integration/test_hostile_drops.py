"""Drops written by a careless or hostile provider: gzip bombs, more rows than announced, part names
that lead outside the batch folder, files the hub may not read. Each rejects its batch only, with a
code saying what the provider (or the operator) must fix, in bounded memory, and reads nothing
outside the batch folder."""

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import duckdb
import numpy as np
import pytest
from dropwriter import write_batch

from pipelines import backflow
from pipelines.catalog.model import catalog
from pipelines.catalog.identifiers import make_citizen_id

pytestmark = pytest.mark.integration

CAT = catalog()
POP = CAT.resource("PS_POP_BASIC")
HEADER = [f.code for f in POP.stored_fields] + ["CZLX", "GXSJ"]
MiB = 1 << 20


def person(i: int) -> list[str]:
    pid = make_citizen_id("500103", dt.date(1980, 1, 1) + dt.timedelta(days=i), 11 + 2 * i)
    return [pid, "张伟", "1", "01", pid[6:14], "500103", "渝中区解放碑街道1号", "20", "0", "",
            "I", "2026-10-01 10:00:00"]


def q(db: Path, sql: str, *params):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def replace_part(folder: Path, gz: bytes, rows: int) -> None:
    """Swap the batch's only part for `gz`, with a manifest that announces `rows` and hashes it
    correctly (the provider's own tooling wrote what it meant to write)."""
    (folder / "part-00001.csv.gz").write_bytes(gz)
    m = json.loads((folder / "manifest.json").read_text())
    m["files"] = [{"name": "part-00001.csv.gz", "rows": rows,
                   "sha256": hashlib.sha256(gz).hexdigest()}]
    (folder / "manifest.json").write_text(json.dumps(m))


def gzip_bomb(prefix: bytes, zeros: int) -> bytes:
    """One gzip member: `prefix` then `zeros` zero bytes, about 1,000 times smaller than it expands.
    Built from one deflate block repeated (a full flush makes it self-contained), so a GiB bomb
    costs a fraction of a second to make."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = z.compress(prefix) + z.flush(zlib.Z_FULL_FLUSH)
    block = z.compress(bytes(16 * MiB)) + z.flush(zlib.Z_FULL_FLUSH)
    times = zeros // (16 * MiB)
    crc = zlib.crc32(prefix)
    for _ in range(times):
        crc = zlib.crc32(bytes(16 * MiB), crc)
    size = len(prefix) + times * 16 * MiB
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + head + block * times + z.flush()
            + crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little"))


# `huiliu` in a process that writes its peak RSS (VmHWM) at exit. Measured inside the process: the
# rusage of a child can carry the high-water mark of the forked parent (pytest, large after other
# tests) from before the exec.
WITH_PEAK = """
import atexit, os, runpy, sys

def peak():
    with open("/proc/self/status") as f:
        kib = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(os.environ["PEAK_FILE"], "w") as out:
        out.write(kib)

atexit.register(peak)
sys.argv[0] = "huiliu"
runpy.run_module("pipelines.cli", run_name="__main__")
"""


def run_backflow(home: Path, drops: Path, prefix: tuple[str, ...] = ()):
    """`huiliu backflow --bulk-only` as its own process; returns (exit code, stderr, peak RSS in
    bytes). Contracts are off, as in the backflow benchmark: they are not what these tests are
    about, and they nearly double the process's baseline (about 420 MiB with, 250 MiB without)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("peak RSS is read from /proc/self/status (Linux)")
    peak_file = home.parent / f"{home.name}.peak"
    env = {**os.environ, "HUILIU_CONTRACTS": "false", "PEAK_FILE": str(peak_file)}
    out = subprocess.run([*prefix, sys.executable, "-c", WITH_PEAK, "backflow", "--bulk-only",
                          "--home", str(home), "--drop-root", str(drops)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=300)
    return out.returncode, out.stderr.decode(errors="replace"), int(peak_file.read_text()) * 1024


def test_a_gzip_bomb_is_rejected_before_it_expands_and_the_next_batch_loads(tmp_path):
    drops, home = tmp_path / "drops", tmp_path / "hub"
    bomb = write_batch(drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                       [person(0)])
    header = (",".join(HEADER) + "\n").encode()
    gz = gzip_bomb(header, 1024 * MiB)  # 1 MiB on disk, 1 GiB of zeros once expanded
    assert len(gz) < 2 * MiB
    replace_part(bomb, gz, rows=3)
    write_batch(drops, "PS", "PS_POP_BASIC", "20261002T020000-000002", HEADER,
                [person(i) for i in range(4)])
    code, err, peak = run_backflow(home, drops)
    assert code == 1, err
    db = home / "warehouse" / "huiliu.duckdb"
    (got, message), = q(db, "SELECT code, message FROM ops.rejections")
    assert got == "part_too_large"
    assert "part-00001.csv.gz" in message and "3 rows" in message and "redeliver" in message
    assert q(db, "SELECT batch_id, staged FROM ops.batches WHERE status = 'loaded'") == [
        ("20261002T020000-000002", 4)]
    assert peak < 500 * MiB, f"peak RSS {peak / MiB:.0f} MiB"


def test_a_part_compressed_beyond_any_real_csv_is_refused_by_its_ratio(hub_settings):
    s = hub_settings
    folder = write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                         [person(0)])
    header = (",".join(HEADER) + "\n").encode()
    # the manifest announces a million rows, so only the ratio can tell this part is not CSV
    replace_part(folder, gzip_bomb(header, 64 * MiB), rows=1_000_000)
    run = backflow.ingest_drops(s, CAT, POP)
    assert run.loaded == [] and len(run.rejected) == 1
    (code, message), = q(s.warehouse_path, "SELECT code, message FROM ops.rejections")
    assert code == "decompression_ratio"
    assert "part-00001.csv.gz" in message and "100:1" in message


def test_more_rows_than_the_manifest_says_is_rejected_in_bounded_memory(tmp_path):
    drops, home = tmp_path / "drops", tmp_path / "hub"
    folder = write_batch(drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                         [person(0)])
    # 10,000,000 short lines of random digits (compress only 2:1, so no ratio alarm) under a
    # manifest announcing 1,000 rows: within the bytes 1,000 rows may take, far over the rows
    lines = (np.random.default_rng(5).integers(48, 58, (10_000_000, 4), dtype=np.uint8))
    lines[:, 3] = 10
    raw = (",".join(HEADER) + "\n").encode() + lines.tobytes()
    replace_part(folder, gzip.compress(raw, 1, mtime=0), rows=1000)
    del lines, raw
    code, err, peak = run_backflow(home, drops)
    assert code == 1, err
    db = home / "warehouse" / "huiliu.duckdb"
    (got, message), = q(db, "SELECT code, message FROM ops.rejections")
    assert got == "row_count_mismatch" and "1000" in message
    assert peak < 500 * MiB, f"peak RSS {peak / MiB:.0f} MiB"


# --- names that lead outside the batch folder -----------------------------------------------------

UNSAFE_NAMES = {
    "parent": lambda outside, folder: os.path.relpath(outside, folder),  # ../../../../outside/…
    "absolute": lambda outside, folder: str(outside),
    "nested": lambda outside, folder: "sub/part-00001.csv.gz",
    "backslash": lambda outside, folder: "..\\part-00001.csv.gz",
    "nul": lambda outside, folder: "part-00001.csv.gz\x00.txt",
    "dot": lambda outside, folder: ".",
    "dotdot": lambda outside, folder: "..",
    "empty": lambda outside, folder: "",
}


@pytest.fixture
def outside(tmp_path):
    """A complete, loadable part outside the drop root: if the hub ever reads it, rows load."""
    data = (",".join(HEADER) + "\n" + ",".join(person(99)) + "\n").encode()
    gz = gzip.compress(data, mtime=0)
    path = tmp_path / "outside" / "part-00001.csv.gz"
    path.parent.mkdir()
    path.write_bytes(gz)
    return path


@pytest.fixture
def opened(monkeypatch):
    """Every path this process opens while the test runs (os.open and io.open both)."""
    seen: list[str] = []

    def note(p):
        try:
            seen.append(os.path.realpath(os.fsdecode(p)))
        except (TypeError, ValueError):
            pass

    real_os_open, real_io_open = os.open, io.open

    def os_open(path, *a, **k):
        note(path)
        return real_os_open(path, *a, **k)

    def io_open(file, *a, **k):
        if not isinstance(file, int):
            note(file)
        return real_io_open(file, *a, **k)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(io, "open", io_open)
    monkeypatch.setattr("builtins.open", io_open)
    return seen


def rejected_and_untouched(s, outside: Path, opened: list[str], code: str) -> None:
    digest = hashlib.sha256(outside.read_bytes()).hexdigest()
    opened.clear()
    run = backflow.ingest_drops(s, CAT, POP)
    opened = list(opened)  # what the hub opened; the checks below open files themselves
    assert run.loaded == [] and len(run.rejected) == 1
    got = q(s.warehouse_path, "SELECT code, message FROM ops.rejections")
    assert [c for c, _ in got] == [code], got
    assert digest[:12] not in got[0][1]
    assert q(s.warehouse_path, "SELECT count(*) FROM hist.ps_pop_basic") == [(0,)]
    assert str(outside.resolve()) not in opened
    if s.drops not in outside.parents:  # nor a manifest beside it
        assert str(outside.parent.resolve() / "manifest.json") not in opened


@pytest.mark.parametrize("digest", ["matching", "wrong"])
@pytest.mark.parametrize("kind", sorted(UNSAFE_NAMES))
def test_a_part_name_that_is_not_a_plain_file_name_rejects_the_batch_unopened(
        hub_settings, outside, opened, kind, digest):
    s = hub_settings
    folder = write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                         [person(0)])
    (folder / "sub").mkdir()
    shutil.copy(outside, folder / "sub" / "part-00001.csv.gz")
    name = UNSAFE_NAMES[kind](outside, folder)
    m = json.loads((folder / "manifest.json").read_text())
    sha = hashlib.sha256(outside.read_bytes()).hexdigest() if digest == "matching" else "0" * 64
    m["files"] = [{"name": name, "rows": 1, "sha256": sha}]
    (folder / "manifest.json").write_text(json.dumps(m))
    rejected_and_untouched(s, outside, opened, "unsafe_part_name")
    message = q(s.warehouse_path, "SELECT message FROM ops.rejections")[0][0]
    assert "plain file name" in message


@pytest.mark.parametrize("where", ["part", "manifest", "batch_folder", "part_inside"])
def test_a_symlink_in_a_batch_is_refused_without_following_it(hub_settings, outside, opened, where):
    """Symlinks are refused, even one pointing inside the batch: a provider writes files."""
    s = hub_settings
    folder = write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                         [person(0)])
    m = json.loads((folder / "manifest.json").read_text())
    part = folder / "part-00001.csv.gz"
    m["files"] = [{"name": "part-00001.csv.gz", "rows": 1,
                   "sha256": hashlib.sha256(outside.read_bytes()).hexdigest()}]
    if where == "part":
        part.unlink()
        part.symlink_to(outside)
    elif where == "part_inside":
        (folder / "real.csv.gz").write_bytes(outside.read_bytes())
        part.unlink()
        part.symlink_to("real.csv.gz")
        outside = folder / "real.csv.gz"  # not outside, but still never to be read through a link
    elif where == "manifest":
        (outside.parent / "manifest.json").write_text(json.dumps(m))
        (folder / "manifest.json").unlink()
        (folder / "manifest.json").symlink_to(outside.parent / "manifest.json")
    else:  # the whole batch folder is a link to a complete batch elsewhere
        (outside.parent / "manifest.json").write_text(json.dumps(m))
        shutil.rmtree(folder)
        folder.symlink_to(outside.parent, target_is_directory=True)
    if where.startswith("part"):
        (folder / "manifest.json").write_text(json.dumps(m))
    rejected_and_untouched(s, outside, opened, "unsafe_part")
    message = q(s.warehouse_path, "SELECT message FROM ops.rejections")[0][0]
    assert "symbolic link" in message


def test_duplicate_part_names_reject_the_batch(hub_settings):
    s = hub_settings
    folder = write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                         [person(0)])
    m = json.loads((folder / "manifest.json").read_text())
    m["files"] = m["files"] * 2  # the same rows would load twice
    (folder / "manifest.json").write_text(json.dumps(m))
    run = backflow.ingest_drops(s, CAT, POP)
    assert run.loaded == []
    (code, message), = q(s.warehouse_path, "SELECT code, message FROM ops.rejections")
    assert code == "bad_manifest" and "part-00001.csv.gz" in message and "twice" in message


# --- files the hub may not read -------------------------------------------------------------------

def without_file_permission_override(tmp_path: Path) -> tuple[str, ...]:
    """A command prefix under which file modes apply to this process's children. Root ignores
    them: as root, drop the two capabilities that let it (the child stays uid 0, so it can still
    run this venv under /root); as anyone else, nothing is needed."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable to the hub")
    prefix = (setpriv, "--bounding-set=-dac_override,-dac_read_search")
    probe = tmp_path / "probe"
    probe.write_text("x")
    probe.chmod(0)
    out = subprocess.run([*prefix, sys.executable, "-c", f"open({str(probe)!r}).read()"],
                         capture_output=True)
    if out.returncode == 0 or b"PermissionError" not in out.stderr:
        pytest.skip(f"setpriv cannot drop CAP_DAC_OVERRIDE here: {out.stderr[-200:]!r}")
    return prefix


def test_an_unreadable_part_or_folder_rejects_only_its_batch(tmp_path):
    prefix = without_file_permission_override(tmp_path)
    drops, home = tmp_path / "drops", tmp_path / "hub"
    a = write_batch(drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER, [person(0)])
    b = write_batch(drops, "PS", "PS_POP_BASIC", "20261002T020000-000002", HEADER, [person(1)])
    write_batch(drops, "PS", "PS_POP_BASIC", "20261003T020000-000003", HEADER,
                [person(i) for i in range(2, 5)])
    cu = write_batch(drops, "CU", "CU_DECL_MONTHLY", "20261001T020000-000001", ["X"], [])
    home.mkdir()
    (a / "part-00001.csv.gz").chmod(0)
    b.chmod(0)
    cu.parent.chmod(0)  # a resource folder the hub cannot list: reported, not a crash
    try:
        code, err, _ = run_backflow(home, drops, prefix)
    finally:
        for p in (a / "part-00001.csv.gz", b, cu.parent):
            p.chmod(0o755)
    assert code == 1, err
    assert "Traceback" not in err
    assert str(cu.parent) in err and "Permission denied" in err
    db = home / "warehouse" / "huiliu.duckdb"
    got = dict((bid, (c, m)) for bid, c, m in q(
        db, "SELECT batch_id, code, message FROM ops.rejections"))
    assert set(got) == {a.name, b.name}
    code_a, message_a = got[a.name]
    assert code_a == "unreadable_part"
    assert str(a / "part-00001.csv.gz") in message_a and "Permission denied" in message_a
    assert "permissions" in message_a
    code_b, message_b = got[b.name]
    assert code_b == "unreadable_batch" and "Permission denied" in message_b
    assert q(db, "SELECT batch_id, staged FROM ops.batches WHERE status = 'loaded'") == [
        ("20261003T020000-000003", 3)]
