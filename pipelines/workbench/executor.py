"""The workbench's query executor: analysts' read-only statements run in spawned worker processes,
so a runaway one can be stopped (interrupt, then SIGKILL) and one analyst's long query never holds
up another's short one. One dispatcher thread owns the workers and their pipes; the public methods
only change job state under the lock and wake it. Statements are checked before (sql_guard)."""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import hashlib
import logging
import multiprocessing
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_ready
from pathlib import Path

import pyarrow as pa

from pipelines.workbench.executor_worker import STOPPED, Handle

log = logging.getLogger(__name__)

_KEEP_FINISHED = 1_000  # outcomes kept for status questions after the fact
MAX_ANALYSTS_REMEMBERED = 10_000
_FINISHED = frozenset({"done", "failed", "timeout", "cancelled"})


@dataclass(frozen=True)
class Outcome:
    job_id: str
    state: str  # 'done' | 'failed' | 'timeout' | 'cancelled'
    table: pa.Table | None  # at most row_cap rows; None unless done
    truncated: bool  # the query had more rows than row_cap
    elapsed_s: float  # from the start of execution, not queueing
    queued_s: float
    error: str | None  # DuckDB's message when failed, a plain sentence for timeout/cancelled
    digest: str = ""  # SHA-256 of the result as the worker sent it (Arrow IPC), when done


@dataclass(eq=False)
class _Job:
    id: str
    analyst: str
    message: tuple  # what the worker is sent: ('run', id, path, sql, row_cap, timeout_s)
    submitted: float
    started: float | None = None
    state: str = "queued"
    reason: str | None = None  # 'cancelled' once cancel() asked for it
    outcome: Outcome | None = None
    done: threading.Event = field(default_factory=threading.Event)
    listeners: list = field(default_factory=list)  # asyncio waiters, called with the outcome


class Executor:
    """Thread-safe; state(), wait() and outcome() raise KeyError for a job id never seen or long
    forgotten (only the last 1,000 outcomes are kept), position() and cancel() answer None/False."""

    def __init__(self, workers: int = 2, timeout_s: float = 60.0, grace_s: float = 3.0,
                 memory_limit: str = "2GB", threads: int = 1,
                 max_running_per_analyst: int | None = None):
        """max_running_per_analyst default: max(1, workers - 1), so another analyst always finds
        a worker."""
        self._ctx = multiprocessing.get_context("spawn")  # DuckDB's threads do not survive fork
        self._settings = {"memory_limit": memory_limit, "threads": threads}
        self._timeout_s, self._grace_s = timeout_s, grace_s
        self._per_analyst = (max_running_per_analyst if max_running_per_analyst is not None
                             else max(1, workers - 1))
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._queue: list[_Job] = []
        self._last_start: dict[str, float] = {}  # analyst -> when their last query started
        self._finished: collections.deque[str] = collections.deque()
        self._cancels: list[tuple[Handle, str]] = []  # for the dispatcher to send
        self._closed = False
        self._failed_starts = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._workers = [Handle(self._ctx, self._settings) for _ in range(workers)]
        self._thread = threading.Thread(target=self._dispatch, name="workbench-executor",
                                        daemon=True)
        self._thread.start()
        atexit.register(self.close)  # before multiprocessing's own exit handler terminates them

    def submit(self, analyst: str, db_path: Path, sql: str, row_cap: int,
               timeout_s: float | None = None) -> str:
        if row_cap < 0:
            raise ValueError("row_cap must be 0 or more")
        job_id = uuid.uuid4().hex
        timeout = self._timeout_s if timeout_s is None else timeout_s
        job = _Job(job_id, analyst, ("run", job_id, str(db_path), sql, int(row_cap), timeout),
                   time.monotonic())
        with self._lock:
            if self._closed:
                raise RuntimeError("the executor is closed")
            self._jobs[job_id] = job
            self._queue.append(job)
        self._wake()
        return job_id

    def position(self, job_id: str) -> int | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state in _FINISHED:
                return None
            return 0 if job.state == "running" else self._queue.index(job) + 1

    def state(self, job_id: str) -> str:
        with self._lock:
            return self._job(job_id).state

    def wait(self, job_id: str, timeout: float | None = None) -> Outcome | None:
        with self._lock:
            job = self._job(job_id)
        job.done.wait(timeout)
        return job.outcome

    async def outcome(self, job_id: str) -> Outcome:
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def resolve(outcome: Outcome) -> None:  # on the dispatcher thread
            with contextlib.suppress(RuntimeError):  # the waiting loop may have closed meanwhile
                loop.call_soon_threadsafe(_settle, future, outcome)

        with self._lock:
            job = self._job(job_id)
            if job.outcome is not None:
                return job.outcome
            job.listeners.append(resolve)
        return await future

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state in _FINISHED:
                return False
            if job.state == "queued":
                self._queue.remove(job)
                self._finish(job, "cancelled", error=STOPPED["cancelled"])
                return True
            if job.reason is None:
                job.reason = "cancelled"
                worker = next(w for w in self._workers if w.job is job)
                worker.kill_at = min(worker.kill_at, time.monotonic() + self._grace_s)
                self._cancels.append((worker, job_id))
        self._wake()
        return True

    def workers_alive(self) -> int:
        return len(self.worker_pids())

    def worker_pids(self) -> list[int]:
        """The live workers' process ids (for operators and tests)."""
        with self._lock:
            return [w.proc.pid for w in self._workers if w.proc.is_alive()]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _dispatch(self) -> None:
        """The dispatcher thread. An unexpected error in one round is logged and the round
        starts again (a dead dispatcher would leave every query waiting for ever)."""
        while not self._closed:
            try:
                self._round()
            except Exception:  # noqa: BLE001 - logged; the next round sees the state afresh
                log.exception("workbench dispatcher: a round failed; going on")
                time.sleep(0.1)
        self._shutdown()

    def _round(self) -> None:
        """Send what can start, wait for an answer, a dead worker or a deadline, take it in."""
        with self._lock:
            if self._closed:
                return
            sends = self._schedule() + [(w, ("cancel", i)) for w, i in self._cancels]
            self._cancels.clear()
            watched = {self._wake_r: None}
            for w in self._workers:
                watched[w.results] = watched[w.proc.sentinel] = w
            deadlines = [w.kill_at for w in self._workers if w.kill_at is not None]
        for worker, message in sends:
            worker.send(message)
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        ready = wait_ready(list(watched), timeout)
        with self._lock:
            self._drain_wake()
            for worker in dict.fromkeys(watched[r] for r in ready if watched[r] is not None):
                self._read(worker)
            now = time.monotonic()
            for worker in [w for w in self._workers if w.kill_at and w.kill_at <= now]:
                if not self._read(worker):  # an answer may have come at the last moment
                    self._lost(worker, kill=True)

    def _schedule(self) -> list[tuple[Handle, tuple]]:
        """Start queued jobs on idle workers, skipping analysts at their running limit. Among the
        others the analyst whose last query started longest ago goes first (in queue order
        within one analyst): two analysts who keep submitting cannot starve a third."""
        sends = []
        running = collections.Counter(w.job.analyst for w in self._workers if w.job)
        for worker in [w for w in self._workers if w.ready and w.job is None]:
            eligible = [j for j in self._queue if running[j.analyst] < self._per_analyst]
            if not eligible:
                break
            job = min(eligible, key=lambda j: self._last_start.get(j.analyst, 0.0))
            self._queue.remove(job)
            running[job.analyst] += 1
            self._last_start[job.analyst] = time.monotonic()
            if len(self._last_start) > MAX_ANALYSTS_REMEMBERED:
                self._last_start.clear()  # forgetting only makes every analyst "long ago"
            job.state, job.started = "running", time.monotonic()
            worker.job, worker.kill_at = job, job.started + job.message[5] + self._grace_s
            sends.append((worker, job.message))
        return sends

    def _read(self, worker: Handle) -> bool:
        """Take the worker's answers, replace it if dead; False when it is alive and silent."""
        answers = worker.answers()
        for message in answers:
            if message[0] == "ready":
                worker.ready, self._failed_starts = True, 0
            elif worker.job is not None and message[1] == worker.job.id:
                _, _, state, payload, truncated, error = message
                table = pa.ipc.open_stream(payload).read_all() if payload else None
                digest = hashlib.sha256(payload).hexdigest() if payload else ""
                self._finish(worker.job, state, table, truncated, error, digest)
                worker.job, worker.kill_at = None, None
        if not worker.proc.is_alive():
            self._lost(worker)
            return True
        return bool(answers)

    def _lost(self, worker: Handle, kill: bool = False) -> None:
        """End a worker killed after its grace, or that stopped on its own (killed from outside,
        out of memory): finish its job and start a replacement."""
        worker.stop(kill)
        job, code = worker.job, worker.proc.exitcode
        if job is not None and (kill or job.reason):
            reason = job.reason or "timeout"
            self._finish(job, reason, error=STOPPED[reason])
        elif job is not None:
            log.warning("workbench worker %s stopped (exit %s) running job %s",
                        worker.proc.pid, code, job.id)
            self._finish(job, "failed", error=f"the query's worker stopped (exit {code}); "
                                              "the workbench started a new one")
        self._workers.remove(worker)
        self._failed_starts += not worker.ready
        if self._failed_starts < 3:  # a worker that cannot even start is not restarted forever
            self._workers.append(Handle(self._ctx, self._settings))
        elif not self._workers:
            log.error("workbench workers fail to start (exit %s); giving up", code)
            for queued in self._queue:
                self._finish(queued, "failed", error="the workbench could not start a worker")
            self._queue.clear()

    def _finish(self, job: _Job, state: str, table: pa.Table | None = None,
                truncated: bool = False, error: str | None = None, digest: str = "") -> None:
        now = time.monotonic()
        started = job.started or now
        job.state = state
        job.outcome = Outcome(job.id, state, table if state == "done" else None,
                              truncated, now - started, started - job.submitted, error,
                              digest if state == "done" else "")
        job.done.set()
        for listener in job.listeners:
            listener(job.outcome)
        job.listeners.clear()
        self._finished.append(job.id)
        while len(self._finished) > _KEEP_FINISHED:
            self._jobs.pop(self._finished.popleft(), None)

    def _shutdown(self) -> None:
        with self._lock:
            for job in [*self._queue, *(w.job for w in self._workers if w.job)]:
                self._finish(job, "cancelled", error="the workbench was shut down")
            self._queue.clear()
            for worker in self._workers:
                worker.stop(kill=False)
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_w = None  # a late cancel() must not write into a reused descriptor

    def _wake(self) -> None:
        with self._lock:
            if self._wake_w is None:
                return
            with contextlib.suppress(BlockingIOError):  # full: the dispatcher is awake anyway
                os.write(self._wake_w, b"\0")

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(f"no such job: {job_id}")
        return job


def _settle(future: asyncio.Future, outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)
