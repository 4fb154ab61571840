"""The workbench's query executor with real worker processes on a small DuckDB tier file: results
and truncation, time limits (interrupt, and the hard kill when an interrupt does not take), fair
scheduling, queue positions, cancel, a worker killed from outside, and what DuckDB's own locks
refuse."""

import asyncio
import os
import signal
import time

import duckdb
import pytest

from pipelines.workbench.executor import Executor

pytestmark = pytest.mark.integration

# About 10^12 rows summed on one thread: well over an hour, and interruptible between chunks.
LONG = "SELECT sum(range % 7) FROM range(1000000000000)"
# One levenshtein call over two 400,000-character strings: about three minutes inside a single
# function call, which DuckDB's interrupt does not reach, so only the parent's SIGKILL ends it.
STUCK = "SELECT levenshtein(repeat('a', 400000 + i::INT), repeat('b', 400000)) FROM range(1) t(i)"
COUNT = "SELECT count(*) AS n FROM t"  # unqualified: resolved through the search path (cur)


def build_tier(path, rows=100_000):
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA cur; CREATE SCHEMA gold")
    con.execute(f"CREATE TABLE cur.t AS SELECT range AS i FROM range({rows})")
    con.execute("CREATE TABLE gold.g AS SELECT 1 AS x")
    con.close()
    return path


@pytest.fixture(scope="module")
def tier(tmp_path_factory):
    return build_tier(tmp_path_factory.mktemp("tier") / "tier.duckdb")


@pytest.fixture
def make_executor():
    made = []

    def make(**kw):
        made.append(Executor(**{"grace_s": 1.0, **kw}))
        return made[-1]

    yield make
    for ex in made:
        ex.close()


def until(predicate, timeout=15.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.02)


def count_of(outcome):
    assert outcome.state == "done", outcome.error
    return outcome.table.column(0)[0].as_py()


def test_results_are_capped_and_truncation_is_told(make_executor, tier, tmp_path):
    ex = make_executor(workers=2)
    capped = ex.wait(ex.submit("ana", tier, "SELECT i FROM cur.t ORDER BY i", row_cap=10), 30)
    assert capped.state == "done" and capped.error is None
    assert capped.table.column("i").to_pylist() == list(range(10)) and capped.truncated
    assert capped.elapsed_s >= 0 and capped.queued_s >= 0
    exact = ex.wait(ex.submit("ana", tier, "SELECT * FROM t WHERE i < 10", row_cap=10), 30)
    assert exact.table.num_rows == 10 and not exact.truncated
    fewer = ex.wait(ex.submit("ana", tier, "SELECT x FROM g", row_cap=10), 30)
    assert fewer.table.to_pylist() == [{"x": 1}] and not fewer.truncated
    bad = ex.wait(ex.submit("ana", tier, "SELECT nope FROM t", row_cap=10), 30)
    assert bad.state == "failed" and bad.table is None and bad.error.startswith("Binder Error")
    assert ex.state(bad.job_id) == "failed" and ex.position(bad.job_id) is None
    later = asyncio.run(ex.outcome(ex.submit("ana", tier, COUNT, row_cap=10)))
    assert count_of(later) == 100_000
    # A new snapshot renamed over the file (new inode) is what the next query reads.
    path = build_tier(tmp_path / "a.duckdb", rows=5)
    assert count_of(ex.wait(ex.submit("ana", path, COUNT, row_cap=1), 30)) == 5
    os.replace(build_tier(tmp_path / "b.duckdb", rows=7), path)
    assert count_of(ex.wait(ex.submit("ana", path, COUNT, row_cap=1), 30)) == 7


def test_a_runaway_query_times_out_without_holding_up_another(make_executor, tier, capfd):
    ex = make_executor(workers=2)
    started = time.monotonic()
    long_job = ex.submit("ana", tier, LONG, row_cap=10, timeout_s=2)
    until(lambda: ex.state(long_job) == "running")
    short = ex.wait(ex.submit("bo", tier, COUNT, row_cap=10), 30)
    assert count_of(short) == 100_000
    assert ex.state(long_job) == "running"  # the short one finished first
    timed_out = ex.wait(long_job, 30)
    assert timed_out.state == "timeout" and timed_out.table is None
    assert "time limit" in timed_out.error
    assert time.monotonic() - started < 20
    # A query the interrupt cannot reach: the parent kills its worker after the grace.
    pids = set(ex.worker_pids())
    stuck = ex.wait(ex.submit("ana", tier, STUCK, row_cap=10, timeout_s=1), 30)
    assert stuck.state == "timeout" and stuck.elapsed_s < 20
    assert count_of(ex.wait(ex.submit("ana", tier, COUNT, row_cap=10), 30)) == 100_000
    assert ex.workers_alive() == 2 and set(ex.worker_pids()) != pids  # one was replaced
    assert capfd.readouterr().err == ""  # workers stay quiet when interrupted or killed


def test_another_analyst_runs_while_one_analysts_second_query_waits(make_executor, tier):
    ex = make_executor(workers=2)  # at most one running per analyst
    first, second = (ex.submit("ana", tier, LONG, row_cap=10) for _ in range(2))
    other = ex.submit("bo", tier, COUNT, row_cap=10)
    assert count_of(ex.wait(other, 30)) == 100_000
    assert ex.state(first) == "running" and ex.state(second) == "queued"
    assert ex.position(second) == 1
    assert ex.cancel(second) and ex.cancel(first)
    assert ex.wait(first, 30).state == "cancelled"


def test_queue_positions_and_cancel_of_queued_and_running_jobs(make_executor, tier):
    ex = make_executor(workers=1)
    running = ex.submit("ana", tier, LONG, row_cap=10)
    until(lambda: ex.state(running) == "running")
    queued = [ex.submit(who, tier, COUNT, row_cap=10) for who in ("bo", "cy")]
    assert [ex.position(j) for j in (running, *queued)] == [0, 1, 2]
    assert ex.cancel(queued[0])
    gone = ex.wait(queued[0], 1)
    assert gone.state == "cancelled" and gone.elapsed_s == 0 and ex.position(queued[0]) is None
    assert ex.position(queued[1]) == 1
    assert ex.cancel(running)
    stopped = ex.wait(running, 30)
    assert stopped.state == "cancelled" and stopped.error == "the query was cancelled"
    assert count_of(ex.wait(queued[1], 30)) == 100_000
    assert not ex.cancel(running) and not ex.cancel(queued[1]) and not ex.cancel("no-such-job")


def test_a_worker_killed_from_outside_fails_its_job_and_is_replaced(make_executor, tier, capfd):
    ex = make_executor(workers=1)
    job = ex.submit("ana", tier, LONG, row_cap=10)
    until(lambda: ex.state(job) == "running")
    [pid] = ex.worker_pids()
    os.kill(pid, signal.SIGKILL)
    lost = ex.wait(job, 30)
    assert lost.state == "failed"
    assert lost.error == "the query's worker stopped (exit -9); the workbench started a new one"
    assert count_of(ex.wait(ex.submit("ana", tier, COUNT, row_cap=10), 30)) == 100_000
    assert ex.workers_alive() == 1 and ex.worker_pids() != [pid]
    assert capfd.readouterr().err == ""


def test_duckdb_itself_refuses_what_the_locked_read_only_configuration_forbids(
        make_executor, tier, tmp_path):
    ex = make_executor(workers=1)
    target = tmp_path / "x.csv"
    refused = ["SET enable_external_access = true", "SET lock_configuration = false",
               "SET memory_limit = '100GB'", "SELECT * FROM read_csv('/etc/passwd')",
               "ATTACH ':memory:' AS m", "INSTALL httpfs", "LOAD httpfs",
               f"COPY (SELECT 1) TO '{target}'", "CREATE TABLE cur.z AS SELECT 1"]
    for sql in refused:
        outcome = ex.wait(ex.submit("ana", tier, sql, row_cap=10), 30)
        assert outcome.state == "failed" and outcome.error, sql
    assert not target.exists()
    # Each query is its own session: a temp table or USE of one never reaches the next.
    def run(sql):
        return ex.wait(ex.submit("ana", tier, sql, row_cap=10), 30)

    assert run("CREATE TEMP TABLE z AS SELECT 1").state == "done"
    assert run("SELECT * FROM z").state == "failed"
    assert run("USE gold").state == "done"
    assert count_of(run(COUNT)) == 100_000
    # DuckDB lets the tier file itself be attached again, and an ATTACH outlives the session:
    # the worker detaches it, or a second `cur` would make the next query's `cur.t` ambiguous.
    assert run(f"ATTACH '{tier}' AS cur").state == "done"
    assert count_of(run("SELECT count(*) FROM cur.t")) == 100_000


def test_two_busy_analysts_do_not_starve_a_third(tmp_path):
    """With one worker, A and B each queue several queries before C queues one: C's starts
    before A's and B's later ones (the analyst whose last query started longest ago goes
    first)."""
    db = tmp_path / "t.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE SCHEMA cur; CREATE TABLE cur.t AS SELECT range AS i FROM range(10)")
    ex = Executor(workers=1, timeout_s=30)
    try:
        slow = "SELECT count(*) FROM range(30000000) WHERE range % 7 = 3"
        jobs = [ex.submit(a, db, slow, 10) for a in ("a", "b", "a", "b", "a", "b")]
        c = ex.submit("c", db, "SELECT count(*) FROM cur.t", 10)
        for job in [*jobs, c]:
            ex.wait(job, timeout=120)
        done = sorted([*jobs, c], key=lambda j: ex.wait(j).elapsed_s + ex.wait(j).queued_s)
        order = [("c" if j == c else "ab") for j in done]
        assert order.index("c") <= 3, order  # after at most a, b and one more, not last
    finally:
        ex.close()
