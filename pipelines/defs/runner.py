"""Run Dagster jobs from the command line as real, recorded runs on the hub's Dagster instance.

DAGSTER_HOME defaults to <HUILIU_HOME>/dagster; the repository's dagster.yaml is copied there first so
the instance (concurrency pools, run limits) is configured from version control.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import dagster as dg

from pipelines import paths
from pipelines.settings import Settings

log = logging.getLogger(__name__)

# Runs started from the command line log warnings and errors to the console; the full event log is
# in the Dagster instance (and the UI) either way.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
EXECUTION = {
    # One process, steps one after another: a run of the whole job starts in about a second.
    "in_process": {"execution": {"config": {"in_process": {}}}},
    # A process per step, two at a time: what schedules and the UI use.
    "multiprocess": {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}},
}


def prepare_dagster_home(settings: Settings) -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or (settings.home / "dagster")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(paths.ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def export_settings(settings: Settings) -> None:
    """Step subprocesses read the same settings from the environment."""
    os.environ["HUILIU_HOME"] = str(Path(settings.home).resolve())
    os.environ["HUILIU_API_URL"] = settings.api_url
    if settings.drop_root:
        os.environ["HUILIU_DROP_ROOT"] = str(Path(settings.drop_root).resolve())
    if settings.today:  # the simulator's business date in the demo
        os.environ["HUILIU_TODAY"] = settings.today.isoformat()
    else:
        os.environ.pop("HUILIU_TODAY", None)


def run_job(settings: Settings, job_name: str = "backflow_all",
            executor: str = "in_process") -> dg.ExecutionResult:
    """Run the job; first fail every earlier run whose process is gone (`run_recovery`), which
    would otherwise hold its pool slots and make this run wait forever."""
    export_settings(settings)
    prepare_dagster_home(settings)
    from pipelines import definitions
    from pipelines.defs.run_recovery import recover_dead_runs

    accessor = {"backflow_all": definitions.backflow_all_job}
    if job_name not in accessor:
        raise SystemExit(f"unknown job {job_name!r}; choose one of {sorted(accessor)}")
    with dg.DagsterInstance.get() as instance:
        for recovered in recover_dead_runs(instance):
            log.warning("%s", recovered.describe())
        return dg.execute_job(dg.reconstructable(accessor[job_name]), instance=instance,
                              raise_on_error=False,
                              run_config={**QUIET, **EXECUTION[executor]})


def failure_messages(result: dg.ExecutionResult) -> list[str]:
    out = []
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            err = ev.event_specific_data.error  # type: ignore[union-attr]
            msg = err.message if err else ""
            out.append(f"{ev.step_key}: {msg.strip()}")
    return out


def failed_checks(result: dg.ExecutionResult, *, errors_only: bool = False) -> list[str]:
    """Checks that failed in the run (e.g. a batch rejected whole, a source that did not answer),
    with their descriptions; `errors_only`: those of ERROR severity."""
    out = []
    for ev in result.all_events:
        if ev.event_type_value == "ASSET_CHECK_EVALUATION":
            data = ev.event_specific_data
            if data.passed:  # type: ignore[union-attr]
                continue
            if errors_only and data.severity != dg.AssetCheckSeverity.ERROR:  # type: ignore[union-attr]
                continue
            desc = (data.description or "").strip()  # type: ignore[union-attr]
            out.append(f"{data.asset_key.to_user_string()} {data.check_name}: {desc}")  # type: ignore[union-attr]
    return out
