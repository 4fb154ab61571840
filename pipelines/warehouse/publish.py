"""Publish the warehouse for readers: a consistent copy, switched into place atomically.

DuckDB allows one writer and no readers from other processes while it writes, so readers (the
services, an analyst's DuckDB CLI) never open the working file. After a successful run the writer
copies the database under the writer lock into a new file, and swaps the `current.duckdb` symlink
with one rename. The copy is written in storage format v1.4 so the DuckDB CLI analysts install from
PyPI (duckdb-cli, 1.5.x) opens it as well as DuckDB 2.0 does. A reader that opened an older snapshot keeps it until it closes; the last few are kept.

The snapshot holds every identifier in clear, so only the hub's own account may read it (0600 in a
0700 folder, not the group's 0640): analysts read the governed tiers through the workbench, and the
hub's own services (the prefill store, the tiers) are built by that account.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from pipelines.settings import Settings
from pipelines.warehouse.writer import writer

STORAGE_VERSION = "v1.4.0"
OWNER_ONLY_FILE, OWNER_ONLY_DIR = 0o600, 0o700


def publish(settings: Settings) -> Path:
    out_dir = settings.published_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(out_dir, OWNER_ONLY_DIR)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = out_dir / f"huiliu-{stamp}.duckdb"
    tmp = out_dir / f".{target.name}.tmp"
    try:
        with writer(settings.warehouse_path) as con:
            db = con.execute("SELECT current_database()").fetchall()[0][0]
            path = str(tmp).replace("'", "''")
            con.execute(f"ATTACH '{path}' AS published_copy (STORAGE_VERSION '{STORAGE_VERSION}')")
            try:
                con.execute(f'COPY FROM DATABASE "{db}" TO published_copy')
            finally:
                con.execute("DETACH published_copy")
        os.chmod(tmp, OWNER_ONLY_FILE)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.rename(tmp, target)
    except BaseException:  # e.g. the disk filled: readers keep the last snapshot, nothing is left
        for partial in (tmp, tmp.with_name(tmp.name + ".wal")):
            partial.unlink(missing_ok=True)
        raise
    link_tmp = out_dir / ".current.tmp"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    link_tmp.symlink_to(target.name)
    os.replace(link_tmp, settings.published_current)  # the atomic switch
    _prune(out_dir, keep=settings.published_keep)
    return target


def _prune(out_dir: Path, keep: int) -> None:
    snaps = sorted(out_dir.glob("huiliu-*.duckdb"))
    for old in snaps[:-keep]:
        old.unlink(missing_ok=True)
    for stale in out_dir.glob(".huiliu-*.tmp*"):  # copies a killed publish left, with their WAL
        stale.unlink(missing_ok=True)


def current_snapshot(settings: Settings) -> Path | None:
    p = settings.published_current
    return p.resolve() if p.exists() else None
