"""A sensor that notices new complete bulk drops and asks for that resource's backflow.

The cursor remembers the newest complete batch id seen per resource; batch ids sort in delivery
order by contract, so anything greater is new. Rejected batches are retried by the next run of the
resource, whatever triggered it.
"""


import json

import dagster as dg

from pipelines.defs.backflow.assets import PUBLISHED_KEY, asset_key
from pipelines.defs.backflow.schedules import backflow_all
from pipelines.defs.resources import HubSettings
from pipelines.backflow import drops
from pipelines.catalog.model import catalog


@dg.sensor(job=backflow_all, minimum_interval_seconds=60,
           description="New complete batch under the drop root -> backflow that resource.")
def new_drops_sensor(context: dg.SensorEvaluationContext, hub: HubSettings):
    seen = json.loads(context.cursor) if context.cursor else {}
    cat = catalog()
    latest: dict[str, str] = {}
    for folder in drops.discover(hub.settings().drops, cat):
        latest[folder.parent.name] = max(latest.get(folder.parent.name, ""), folder.name)
    for resource, batch_id in sorted(latest.items()):
        if batch_id > seen.get(resource, ""):
            yield dg.RunRequest(
                run_key=f"{resource}:{batch_id}",
                asset_selection=[asset_key(cat.resource(resource)), PUBLISHED_KEY],
                tags={"trigger": "new_drop", "resource": resource, "batch_id": batch_id})
    context.update_cursor(json.dumps({**seen, **latest}))
