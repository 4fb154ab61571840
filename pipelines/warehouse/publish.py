"""Publish the warehouse for readers: a consistent copy, switched into place atomically.

DuckDB allows one writer and no readers from other processes while it writes, so readers (the
services, an analyst's DuckDB CLI) never open the working file. After a successful run the writer
copies the database under the writer lock into a new file, and swaps the `current.duckdb` symlink
with one rename. The copy is written in storage format v1.4 so the DuckDB CLI analysts install from
PyPI (duckdb-cli, 1.5.x) opens it as well as DuckDB 2.0 does. A reader that opened an older snapshot keeps it until it closes; the last few are kept.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from pipelines.settings import Settings
from pipelines.warehouse.writer import writer

STORAGE_VERSION = "v1.4.0"


def publish(settings: Settings) -> Path:
    out_dir = settings.published_dir
    out_dir.mkdir(parents=True, exist_ok=True)
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
