"""The analysts' tiers, rebuilt from each published snapshot (the workbench switches to them
between queries)."""

import dagster as dg

from pipelines.catalog.model import load_catalog
from pipelines.defs.backflow.assets import PUBLISHED_KEY
from pipelines.defs.resources import HubSettings
from pipelines.workbench.tiers import build_tiers

TIERS_KEY = dg.AssetKey(["workbench", "tiers"])


@dg.asset(key=TIERS_KEY, group_name="workbench", kinds={"duckdb"}, deps=[PUBLISHED_KEY],
          description="One DuckDB file per analysts' tier of the published snapshot "
                      "(statistical: masked, per department; identified: per granted department "
                      "and purpose) under <home>/workbench/tiers/current, switched atomically.")
def workbench_tiers(context: dg.AssetExecutionContext, hub: HubSettings):
    s = hub.settings()
    tiers = build_tiers(load_catalog(), s.published_current.resolve(), s.home)
    files = sorted(set(tiers.files.values()))
    context.log.info("workbench tiers %s: %d files for %d grants", tiers.directory, len(files),
                     len(tiers.files))
    return dg.MaterializeResult(metadata={
        "directory": str(tiers.directory), "files": len(files), "grants": len(tiers.files),
        "bytes": sum((tiers.directory / f).stat().st_size for f in files)})
