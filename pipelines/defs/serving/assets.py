"""The prefill service's store, rebuilt from each published snapshot (the service switches to it
between requests)."""

import dagster as dg

from pipelines.defs.backflow.assets import PUBLISHED_KEY
from pipelines.defs.resources import HubSettings
from pipelines.serving.store import build_store

STORE_KEY = dg.AssetKey(["serving", "store"])


@dg.asset(key=STORE_KEY, group_name="serving", kinds={"lmdb"}, deps=[PUBLISHED_KEY],
          description="Golden records of the published snapshot in the prefill service's store "
                      "(<home>/serving/current.lmdb, switched atomically).")
def serving_store(context: dg.AssetExecutionContext, hub: HubSettings):
    s = hub.settings()
    path = build_store(s.published_current.resolve(), s.home / "serving")
    context.log.info("serving store %s", path)
    return dg.MaterializeResult(metadata={"path": str(path), "bytes": path.stat().st_size})
