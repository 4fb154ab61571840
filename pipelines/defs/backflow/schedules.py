"""Schedules that follow each resource's update cycle (Beijing time), and the backflow jobs."""


import dagster as dg

from pipelines.defs.backflow.assets import PUBLISHED_KEY, asset_key
from pipelines.catalog.model import catalog

CRON = {  # T+1 deliveries land overnight; pull after them, spread so providers are not hit at once
    "daily": "30 2 * * *",
    "weekly": "0 3 * * 1",
    "monthly": "0 4 1 * *",
}
# Scheduled and UI-launched runs: two steps at once (2-core machines). Runs started from the command
# line may choose `in_process` (see pipelines/defs/runner.py): no per-step process start-up (~4 s a step).
EXECUTOR = dg.multi_or_in_process_executor
DEFAULT_RUN_CONFIG = {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}

backflow_all = dg.define_asset_job(
    "backflow_all",
    selection=dg.AssetSelection.groups("backflow_ps", "backflow_ca", "backflow_cu", "governance",
                                       "identity", "serving", "workbench")
    | dg.AssetSelection.assets(PUBLISHED_KEY),
    executor_def=EXECUTOR,
    config=DEFAULT_RUN_CONFIG,
    description="Backflow of every resource of the responsibility list, objections, the "
                "provider scorecard and reconciliation, then publish.",
)


def cycle_job(cycle: str):
    keys = [asset_key(r) for r in catalog().resources.values() if r.update_cycle == cycle]
    return dg.define_asset_job(
        f"backflow_{cycle}",
        selection=dg.AssetSelection.assets(*keys, PUBLISHED_KEY) | dg.AssetSelection.groups(
            "governance", "identity", "serving", "workbench"),
        executor_def=EXECUTOR, config=DEFAULT_RUN_CONFIG,
        description=f"Backflow of the {cycle} resources, objections, scorecard and "
                    f"reconciliation, then publish.")


CYCLE_JOBS = {c: cycle_job(c) for c in CRON if any(
    r.update_cycle == c for r in catalog().resources.values())}

SCHEDULES = [
    dg.ScheduleDefinition(name=f"backflow_{c}_schedule", job=job, cron_schedule=CRON[c],
                          execution_timezone="Asia/Shanghai")
    for c, job in CYCLE_JOBS.items()
]
