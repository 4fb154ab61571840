"""The analysts' tiers of each published snapshot: built together, switched atomically.

<home>/workbench/tiers/<snapshot stamp>/ holds one DuckDB file per distinct tier (departments whose
grants are the same share one) and manifest.json naming the file of each (tier, department,
purpose); `current` is a symlink swapped with one rename once every file is in place, like the
published snapshot's. Built: the statistical tier of every consumer of the list, and the identified
tier of every (department, purpose) an active analyst holds. A grant issued later is built on
demand (`add_tier`), under a lock on the set, so two logins never build one file twice or lose
each other's manifest entry. The tiers are the hub's account's alone (0700, files 0600): an
identified tier holds names in clear, like the snapshot.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.catalog.model import Catalog
from pipelines.file_modes import FILE_MODE
from pipelines.workbench.analysts import Analysts
from pipelines.workbench.masking import load_masking
from pipelines.workbench.pseudonym import pseudonym_key
from pipelines.workbench.tier_build import build_tier
from pipelines.warehouse.publish import OWNER_ONLY_DIR
from pipelines.workbench.tier_plan import (
    ANALYTICS,
    IDENTIFIED,
    STATISTICAL,
    TierPlan,
    TierRefused,
    plan_tier,
)

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
LOCK = ".lock"
KEEP = 3  # tier sets kept: a query still reading an older one finishes on it


@dataclass(frozen=True)
class TierSet:
    directory: Path
    files: dict[str, str]  # "tier/DEPT/PURPOSE" -> file name

    def path_of(self, tier: str, department: str, purpose: str) -> Path | None:
        name = self.files.get(f"{tier}/{department}/{purpose}")
        return self.directory / name if name else None


def workbench_dir(home: Path) -> Path:
    return home / "workbench"


def _columns_of(snapshot: Path):
    con = duckdb.connect(str(snapshot), read_only=True)
    known = {(s, t): [] for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
    for s, t, c in con.execute("SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                               "ORDER BY schema_name, table_name, column_index").fetchall():
        known.setdefault((s, t), []).append(c)
    con.close()
    return lambda schema, table: known.get((schema, table), [])


def _plans(cat: Catalog, snapshot: Path, wanted: set[tuple[str, str, str]]) -> list[TierPlan]:
    """The plans of the wanted tiers; a grant the list no longer allows (a purpose or consumer
    withdrawn since it was issued) is left out with a warning, not allowed to stop the others."""
    columns_of, plans = _columns_of(snapshot), []
    for tier, dept, purpose in sorted(wanted):
        try:
            plans.append(plan_tier(cat, tier, dept, purpose, columns_of))
        except TierRefused as e:
            log.warning("no %s tier for %s/%s: %s", tier, dept, purpose, e)
    return plans


def wanted_tiers(cat: Catalog, home: Path) -> set[tuple[str, str, str]]:
    analysts = Analysts(workbench_dir(home))
    try:
        grants = analysts.identified_grants()
    finally:
        analysts.close()
    return ({(STATISTICAL, c.code, ANALYTICS) for c in cat.consumers}
            | {(IDENTIFIED, d, p) for d, p in grants})


def build_tiers(cat: Catalog, snapshot: Path, home: Path) -> TierSet:
    """Every wanted tier of `snapshot`, switched into place as `current`."""
    key = pseudonym_key()
    root = workbench_dir(home) / "tiers"
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, OWNER_ONLY_DIR)
    stamp = snapshot.stem.removeprefix("huiliu-")
    final = root / stamp
    work = root / f".{stamp}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    compound = load_masking(cat).compound_surnames
    files: dict[str, str] = {}
    for plan in _plans(cat, snapshot, wanted_tiers(cat, home)):
        name = f"{plan.kind}-{plan.signature}.duckdb"
        if not (work / name).exists():
            build_tier(snapshot, plan, work / name, key, compound)
        files[f"{plan.kind}/{plan.department}/{plan.purpose}"] = name
    _write_manifest(work, snapshot, files)
    if final.exists():  # a rebuild of the same snapshot: `current` keeps pointing at a whole set
        aside = root / f".{stamp}.old"
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(final, aside)
        os.rename(work, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.rename(work, final)
    _switch(root, stamp)
    _prune(root)
    return TierSet(final, files)


def add_tier(cat: Catalog, home: Path, tier: str, department: str, purpose: str) -> Path:
    """Build one tier into the current set (an analyst granted after the last publish)."""
    current = current_tiers(home)
    if current is None:
        raise FileNotFoundError("no tiers yet: run the pipeline (or `huiliu workbench build`)")
    found = current.path_of(tier, department, purpose)
    if found:
        return found
    with _locked(current.directory):
        manifest = json.loads((current.directory / MANIFEST).read_text())  # under the lock
        name = manifest["files"].get(f"{tier}/{department}/{purpose}")
        if name:
            return current.directory / name
        snapshot = Path(manifest["snapshot"])
        columns_of = _columns_of(snapshot)
        plan = plan_tier(cat, tier, department, purpose, columns_of)  # TierRefused: not granted
        name = f"{plan.kind}-{plan.signature}.duckdb"
        if not (current.directory / name).exists():
            build_tier(snapshot, plan, current.directory / name, pseudonym_key(),
                       load_masking(cat).compound_surnames)
        files = {**manifest["files"], f"{tier}/{department}/{purpose}": name}
        _write_manifest(current.directory, snapshot, files)
    return current.directory / name


@contextlib.contextmanager
def _locked(directory: Path):
    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def current_tiers(home: Path) -> TierSet | None:
    link = workbench_dir(home) / "tiers" / "current"
    try:
        directory = link.resolve(strict=True)
        manifest = json.loads((directory / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return TierSet(directory, manifest["files"])


def _write_manifest(directory: Path, snapshot: Path, files: dict[str, str]) -> None:
    tmp = directory / f".{MANIFEST}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as f:
        json.dump({"snapshot": str(snapshot), "files": files}, f, indent=1, sort_keys=True)
    os.replace(tmp, directory / MANIFEST)


def _switch(root: Path, stamp: str) -> None:
    link_tmp = root / ".current.tmp"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    link_tmp.symlink_to(stamp)
    os.replace(link_tmp, root / "current")


def _prune(root: Path) -> None:
    sets = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and not p.is_symlink())
    for old in sets[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
