"""One query worker of the workbench's executor: a spawned process that runs analysts' read-only
statements on DuckDB tier files, one at a time, and answers with Arrow IPC bytes.

Two threads: the main thread runs the statement; the watch thread is the only reader of the job
pipe, so it can interrupt the running statement when the parent cancels it or its time is up while
the main thread sits inside DuckDB. The parent kills the process if an interrupt does not take.
`Handle` is the parent's side of one worker: the process, its two pipes and the job it runs.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import threading
import time
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

import duckdb
import pyarrow as pa

_SEARCH_PATH = ("cur", "gold", "hist", "ops", "meta")
_MAX_OPEN = 8  # tier files held open at once; the least recently used one is closed past this
_REINTERRUPT_S = 0.25  # an interrupt sent between statements is lost, so it is sent again
STOPPED = {"timeout": "the query ran past its time limit and was stopped",
           "cancelled": "the query was cancelled"}


class Handle:
    """The parent's side of one worker. Only the executor's dispatcher thread uses its pipes."""

    def __init__(self, ctx: Any, settings: dict) -> None:
        child_jobs, self.jobs = ctx.Pipe(duplex=False)
        self.results, child_results = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=serve, name="workbench-worker", daemon=True,
                                args=(child_jobs, child_results, settings))
        self.proc.start()
        child_jobs.close()  # the parent keeps no copy of the child's ends: its death reads as EOF
        child_results.close()
        self.ready = False
        self.job: Any = None  # the executor's job running here
        self.kill_at: float | None = None  # when the parent stops waiting for an interrupt

    def send(self, message: tuple) -> None:
        with contextlib.suppress(OSError):  # it died; its sentinel tells the dispatcher
            self.jobs.send(message)

    def answers(self) -> list[tuple]:
        found = []
        try:
            while self.results.poll():
                found.append(self.results.recv())
        except (EOFError, OSError):
            pass  # it died; the caller asks is_alive()
        return found

    def stop(self, kill: bool) -> None:
        """End the process (SIGKILL, or EOF on its job pipe and a second to go), reap it."""
        self.jobs.close()  # the watch thread reads EOF and exits the process
        if kill:
            self.proc.kill()
        self.proc.join(None if kill else 1.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.results.close()


class _Watch:
    """The running job as the watch thread sees it: its cursor, deadline and why it was stopped."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.job_id: str | None = None
        self.cursor: duckdb.DuckDBPyConnection | None = None
        self.deadline = 0.0
        self.reason: str | None = None  # 'timeout' | 'cancelled' once the job was told to stop

    def stop(self, job_id: str | None, reason: str) -> None:
        with self.lock:
            if job_id is None or job_id != self.job_id:
                return  # the job already answered; the message crossed its result
            self.reason = self.reason or reason
            if self.cursor is not None:
                with contextlib.suppress(duckdb.Error):  # never let the watch thread die
                    self.cursor.interrupt()


def serve(jobs: Connection, results: Connection, settings: dict) -> None:
    """The worker's entry point (the spawn target)."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides, the worker stays
    # quiet instead of printing a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the worker runs analysts' SQL: it keeps none of the hub's secrets (the audit and pseudonym
    # keys, the platform's client secret) that it inherited from the service
    for name in [n for n in os.environ if n.startswith("HUILIU_") and
                 any(word in n for word in ("KEY", "SECRET", "ANCHOR"))]:
        del os.environ[name]
    watch = _Watch()
    todo: queue.Queue = queue.Queue()
    threading.Thread(target=_watch_loop, args=(jobs, watch, todo), daemon=True).start()
    _answer(results, ("ready", os.getpid()))
    tiers = _Tiers(settings)
    while True:
        job_id, db_path, sql, row_cap = todo.get()
        state, payload, truncated, error = _run(tiers, watch, db_path, sql, row_cap)
        with watch.lock:
            watch.job_id, watch.reason = None, None
        _answer(results, ("result", job_id, state, payload, truncated, error))
        with contextlib.suppress(duckdb.Error):  # after answering: no cost to the analyst
            tiers.detach_others(db_path)


def _answer(results: Connection, message: tuple) -> None:
    try:
        results.send(message)
    except OSError:
        os._exit(0)  # the parent is gone: no one to answer, and nothing worth a traceback


def _watch_loop(jobs: Connection, watch: _Watch, todo: queue.Queue) -> None:
    while True:
        with watch.lock:
            running, reason = watch.job_id is not None, watch.reason
            wait = None if not running else (
                _REINTERRUPT_S if reason else max(0.0, watch.deadline - time.monotonic()))
        try:
            ready = jobs.poll(wait)
            message = jobs.recv() if ready else None
        except (EOFError, OSError):
            os._exit(0)  # the parent is gone or closed the pipe: nothing left to answer to
        if not ready:
            watch.stop(watch.job_id, reason or "timeout")
        elif message[0] == "run":
            _, job_id, db_path, sql, row_cap, timeout_s = message
            with watch.lock:
                watch.job_id, watch.reason = job_id, None
                watch.deadline = time.monotonic() + timeout_s
            todo.put((job_id, db_path, sql, row_cap))
        elif message[0] == "cancel":
            watch.stop(message[1], "cancelled")


def _run(tiers: _Tiers, watch: _Watch, db_path: str, sql: str, row_cap: int):
    """(state, Arrow IPC bytes or None, truncated, error) of one statement."""
    cursor = None
    try:
        # A cursor is a fresh session: temp objects, USE and search_path of one query never
        # reach the next analyst's.
        cursor = tiers.connection(db_path).cursor()
        cursor.execute(f"SET search_path = '{tiers.search_path(db_path)}'")
        with watch.lock:
            if watch.reason:
                return watch.reason, None, False, STOPPED[watch.reason]
            watch.cursor = cursor
        table, truncated = _fetch(cursor, sql, row_cap)
        with watch.lock:
            if watch.reason:  # finished, but past its time or after a cancel: the limit holds
                return watch.reason, None, False, STOPPED[watch.reason]
        return "done", _ipc(table), truncated, None
    except Exception as exc:  # noqa: BLE001 - every failure is the analyst's answer
        with watch.lock:
            reason = watch.reason
        if reason:
            return reason, None, False, STOPPED[reason]
        if not isinstance(exc, duckdb.Error):
            return "failed", None, False, f"{type(exc).__name__}: {exc}"
        return "failed", None, False, _with_position(cursor, sql, str(exc))
    finally:
        with watch.lock:
            watch.cursor = None  # no interrupt may reach a closed cursor
        if cursor is not None:
            with contextlib.suppress(duckdb.Error):
                cursor.close()


_LINE = re.compile(r"\nLINE (\d+):")


def _with_position(cursor, sql: str, message: str) -> str:
    """DuckDB's relational API reports a binder error without where it is; planning the statement
    alone (EXPLAIN, nothing runs) reports it with "LINE n:" and a caret. EXPLAIN goes on a line of
    its own, so only the line number moves back."""
    if cursor is None or "\nLINE " in message or not message.startswith(
            ("Binder Error", "Catalog Error", "Parser Error")):
        return message
    try:
        cursor.execute("EXPLAIN\n" + sql)
    except duckdb.Error as planned:
        text = str(planned)
        if text.split("\n")[0] == message.split("\n")[0] and _LINE.search(text):
            return _LINE.sub(lambda m: f"\nLINE {int(m.group(1)) - 1}:", text)
    return message


def _fetch(cursor: duckdb.DuckDBPyConnection, sql: str, row_cap: int) -> tuple[pa.Table, bool]:
    """At most row_cap rows, streamed: one row past the cap is read only to tell truncation."""
    relation = cursor.sql(sql)
    if relation is None:  # a statement without rows (USE, SET VARIABLE ...)
        return pa.table({}), False
    reader = relation.to_arrow_reader(max(1, min(row_cap + 1, 65_536)))
    batches, rows = [], 0
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        if rows > row_cap:
            break
    reader.close()
    table = pa.Table.from_batches(batches, schema=reader.schema)
    return table.slice(0, row_cap), rows > row_cap


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


class _Tiers:
    """Open read-only connections by tier file, reopened when the file is replaced (new inode)."""

    def __init__(self, settings: dict) -> None:
        self.settings = settings
        # path -> ((device, inode), connection, search_path, the file's own database name)
        self.open: OrderedDict[str, tuple] = OrderedDict()

    def connection(self, path: str) -> duckdb.DuckDBPyConnection:
        st = os.stat(path)  # follows the `current` symlink: a swap shows as a new inode
        held = self.open.pop(path, None)
        if held is not None and held[0] != (st.st_dev, st.st_ino):
            held[1].close()  # a new snapshot was published over it
            held = None
        if held is None:
            con = _connect(path, self.settings)
            name = con.execute("SELECT current_database()").fetchone()[0]
            held = ((st.st_dev, st.st_ino), con, _search_path(con), name)
            con.execute("SET lock_configuration = true")  # last: nothing can be re-enabled now
        self.open[path] = held
        while len(self.open) > _MAX_OPEN:
            self.open.popitem(last=False)[1][1].close()
        return held[1]

    def search_path(self, path: str) -> str:
        return self.open[path][2]

    def detach_others(self, path: str) -> None:
        """Undo an analyst's ATTACH (DuckDB allows the tier file itself again, under a new name).
        Unlike everything else a session sets, it belongs to the database instance and would
        outlive the query, e.g. a second `cur` making the next analyst's `cur.t` ambiguous."""
        held = self.open.get(path)
        if held is None:
            return
        con, own = held[1], held[3]
        others = con.execute("SELECT database_name FROM duckdb_databases() "
                             "WHERE NOT internal AND database_name <> ?", [own]).fetchall()
        for (name,) in others:
            quoted = name.replace('"', '""')
            con.execute(f'DETACH "{quoted}"')


def _connect(path: str, settings: dict) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(path, read_only=True, config={
        "enable_external_access": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "memory_limit": settings["memory_limit"],
        "threads": settings["threads"],
    })


def _search_path(con: duckdb.DuckDBPyConnection) -> str:
    # DuckDB refuses a search_path naming a schema the file lacks, so only those present.
    present = {r[0] for r in con.execute(
        "SELECT schema_name FROM information_schema.schemata "
        "WHERE catalog_name = current_database()").fetchall()}
    return ",".join(s for s in _SEARCH_PATH if s in present) or "main"
