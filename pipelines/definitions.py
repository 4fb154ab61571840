"""The Dagster code location of Huiliu: `dagster dev -m pipelines.definitions`."""


import dagster as dg

from pipelines.defs.backflow.assets import BACKFLOW_ASSETS, published_warehouse
from pipelines.defs.backflow.schedules import CYCLE_JOBS, SCHEDULES, backflow_all
from pipelines.defs.backflow.sensors import new_drops_sensor
from pipelines.defs.governance.assets import objections_asset, scorecard_asset
from pipelines.defs.identity.assets import reconciled
from pipelines.defs.serving.assets import serving_store
from pipelines.defs.workbench.assets import workbench_tiers
from pipelines.defs.resources import HubSettings
from pipelines.file_modes import restrict_new_files

restrict_new_files()  # processes the Dagster daemon and UI start write the hub's files too

defs = dg.Definitions(
    assets=[*BACKFLOW_ASSETS, objections_asset, scorecard_asset, reconciled,
            published_warehouse, serving_store, workbench_tiers],
    jobs=[backflow_all, *CYCLE_JOBS.values()],
    schedules=SCHEDULES,
    sensors=[new_drops_sensor],
    resources={"hub": HubSettings()},
)


def backflow_all_job() -> dg.JobDefinition:
    """Module-level accessor so runs can be reconstructed in step subprocesses."""
    return defs.resolve_job_def("backflow_all")
