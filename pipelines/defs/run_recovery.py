"""Runs whose process is gone: found, failed and their concurrency-pool slots freed.

A run killed with `kill -9` (or a machine that lost power) never writes its end: it stays STARTED
in the Dagster instance and keeps the provider pool slots its steps had claimed, so every later
run waits for them forever. Dagster's own run monitoring cannot see it for runs that were not
launched through a run launcher (`huiliu run`, the demo), so the hub checks before each run it
starts: the process that started the run (the pid Dagster recorded with the run's start event)
must still exist and be older than the run. The instance's storage is local (dagster.yaml), so
every run worker it knows ran on this machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType  # noqa: PLC2701 (no public alias in 1.13)

UNFINISHED = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
              dg.DagsterRunStatus.CANCELING]


@dataclass(frozen=True)
class RecoveredRun:
    run_id: str
    job_name: str
    pid: int
    status: str  # what the run is now: FAILURE or CANCELED

    def describe(self) -> str:
        return (f"run {self.run_id[:8]} ({self.job_name}) was left unfinished by process "
                f"{self.pid}, which is gone: marked {self.status}, its pool slots freed")


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("/proc/stat has no btime")


def process_alive_since(pid: int, moment: float) -> bool:
    """Whether process `pid` exists, is not a zombie, and started no later than `moment` (a pid
    the system handed to a newer process is not the run's)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    if fields[0] in ("Z", "X"):
        return False
    started = _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= moment + 1.0


def _run_worker(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, timestamp) of the event that started the run, if it got that far."""
    for of_type in (DagsterEventType.RUN_START, DagsterEventType.RUN_STARTING):
        records = instance.get_records_for_run(run_id, of_type=of_type, limit=1).records
        for rec in records:
            event = rec.event_log_entry.dagster_event
            if event is not None and event.pid is not None:
                return event.pid, rec.event_log_entry.timestamp
    return None


def recover_dead_runs(instance: dg.DagsterInstance) -> list[RecoveredRun]:
    """Fail (or cancel, when it was being cancelled) every unfinished run whose process is gone,
    and free the concurrency slots it held. Runs still alive are left alone."""
    out = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED)):
        run = record.dagster_run
        worker = _run_worker(instance, run.run_id)
        if worker is None or process_alive_since(*worker):
            continue
        pid = worker[0]
        why = (f"The process that ran this run (pid {pid}) is gone: killed or crashed. Marked by "
               "huiliu before the next run; its concurrency-pool slots are freed. What its steps "
               "committed is kept (every batch commits with its cursor); run the job again.")
        if run.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message=why)
            status = "CANCELED"
        else:
            instance.report_run_failed(run, message=why)
            status = "FAILURE"
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        out.append(RecoveredRun(run.run_id, run.job_name, pid, status))
    return out
