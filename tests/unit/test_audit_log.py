"""The audit log is append-only and hash-chained: `verify` finds an edited, deleted, inserted,
reordered or cut-off entry and says where; the access log finds every entry about a person."""

import sqlite3

import orjson
import pytest

from pipelines.serving.access_index import index_path
from pipelines.serving.audit import AuditLog, tampering
from pipelines.serving.audit_lines import parse_line, read_lines

pytestmark = pytest.mark.unit
SECRET = b"unit-test-audit-key-7f3c9a1e5b2d4068"


@pytest.fixture(autouse=True)
def audit_env(tmp_path, monkeypatch):
    """The key `verify` reads, and the anchor the log appends its head records to."""
    monkeypatch.setenv("HUILIU_AUDIT_KEY", SECRET.decode())
    monkeypatch.setenv("HUILIU_AUDIT_ANCHOR", str(tmp_path / "audit.anchor"))


def entry(case_id: str, subject: str = "1:500103198001020113", **kw) -> dict:
    return {"consumer": "WJW", "purpose": "NEWBORN", "template": "NEWBORN", "case_id": case_id,
            "subjects": [subject], "released": ["mother.name"],
            "withheld": ["mother.marital_status"], "answer": f"answer {case_id}".encode()} | kw


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "audit.jsonl"
    a = AuditLog(path, SECRET)
    for i in range(1, 6):
        a.append(**entry(f"C{i}", f"1:50010319800102011{i}"))
    a.close()
    return path


def lines(path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def rewrite(path, new_lines) -> None:
    path.write_bytes(b"".join(new_lines))


def edited(line: bytes, **changes) -> bytes:
    values = orjson.loads(line)
    e = parse_line(line)
    for k, v in changes.items():
        values[list(e).index(k)] = v
    return orjson.dumps(values) + b"\n"


def tamper_index(path, *sql):
    con = sqlite3.connect(index_path(path))
    for s in sql:
        con.execute(s)
    con.commit()
    con.close()


def kinds(path):
    return [(p.seq, p.kind) for p in tampering(path)]


def cases_in(path) -> list[str]:
    return [e["case_id"] for _, line in read_lines(path) if (e := parse_line(line))]


def test_an_untouched_log_verifies(log):
    assert tampering(log) == []


def test_each_entry_is_one_readable_line(log):
    first = parse_line(lines(log)[0])
    assert first["seq"] == 1 and first["case_id"] == "C1"
    assert first["released"] == ["mother.name"] and first["withheld"] == ["mother.marital_status"]
    assert len(lines(log)) == 5


def test_an_edited_entry_is_found(log):
    ls = lines(log)
    ls[2] = edited(ls[2], consumer="GAJ")  # same length: the index still points at every line
    rewrite(log, ls)
    assert kinds(log) == [(3, "edited")]


def test_an_edit_that_moves_the_lines_after_it_is_found_with_the_index_it_broke(log):
    ls = lines(log)
    ls[2] = edited(ls[2], released=[])
    rewrite(log, ls)
    assert kinds(log) == [(3, "edited"), (4, "index"), (5, "index")]


def test_a_deleted_entry_is_found(log):
    ls = lines(log)
    del ls[1]
    rewrite(log, ls)
    assert (3, "deleted") in kinds(log)


def test_an_inserted_entry_is_found(log):
    ls = lines(log)
    second = parse_line(ls[1])
    forged = edited(ls[1], seq=3, consumer="FY", case_id="X", prev_hash=second["hash"])
    renumbered = [edited(line, seq=parse_line(line)["seq"] + 1) for line in ls[2:]]
    rewrite(log, ls[:2] + [forged] + renumbered)
    found = kinds(log)
    assert found[0] == (3, "edited")  # the forged entry cannot carry a hash of its own content
    assert (5, "truncated") in found  # and the head still names the old last entry


def test_reordered_entries_are_found(log):
    ls = lines(log)
    ls[1], ls[2] = ls[2], ls[1]
    rewrite(log, ls)
    assert {k for _, k in kinds(log)} & {"reordered", "inserted"}


def test_a_cut_off_last_entry_is_found(log):
    rewrite(log, lines(log)[:-1])
    tamper_index(log, "DELETE FROM access WHERE seq = 5")
    assert kinds(log) == [(5, "truncated"), (5, "anchor")]  # the head, and the anchor


def test_a_cut_off_end_is_still_reported_after_the_log_is_opened_again(log):
    """Opening the log again continues the chain from its last entry; the head that named the
    removed ones is kept beside it, and `verify` keeps reporting the cut."""
    rewrite(log, lines(log)[:-2])
    a = AuditLog(log, SECRET)
    a.append(**entry("C6"))
    a.close()
    assert cases_in(log) == ["C1", "C2", "C3", "C6"]
    assert kinds(log) == [(5, "truncated"), (5, "anchor")]


def test_a_line_cut_short_by_a_crash_is_kept_and_reported_and_the_chain_goes_on(log):
    whole = lines(log)
    rewrite(log, whole + [whole[0][:40]])  # a write cut short: no newline
    a = AuditLog(log, SECRET)
    a.append(**entry("C6"))
    a.close()
    assert cases_in(log)[-1] == "C6" and parse_line(lines(log)[-1])["seq"] == 6
    assert lines(log)[5] == whole[0][:40] + b"\n"  # nothing dropped
    problems = tampering(log)
    assert [(p.seq, p.kind) for p in problems] == [(None, "edited")]
    assert "line 6" in problems[0].detail


def test_an_entry_hidden_from_the_access_log_is_found(log):
    """Removing an entry from the subject index would hide it from the person's access log."""
    tamper_index(log, "DELETE FROM access WHERE seq = 4")
    assert kinds(log) == [(4, "index")]


def test_an_index_row_pointing_at_another_line_is_found(log):
    tamper_index(log, "UPDATE access SET offset = 0 WHERE seq = 4")
    assert kinds(log) == [(4, "index")]


def test_entries_written_by_two_service_workers_form_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    first, second = AuditLog(path, SECRET), AuditLog(path, SECRET)
    for i in range(6):
        (first if i % 2 else second).append(**entry(f"C{i}", released=[], withheld=[]))
    first.append_many([entry(f"G{i}", template="batch", subjects=[]) for i in range(3)])
    first.close()
    second.close()
    assert tampering(path) == []
    assert cases_in(path) == ["C0", "C1", "C2", "C3", "C4", "C5", "G0", "G1", "G2"]


def test_the_access_log_finds_every_entry_about_a_person_without_storing_the_id(log):
    a = AuditLog(log, SECRET)
    entries = a.about("1:500103198001020113")
    assert [e["case_id"] for e in entries] == ["C3"]
    assert entries[0]["released"] == ["mother.name"]
    for f in (log, index_path(log)):
        assert b"500103198001020113" not in f.read_bytes()
    a.close()


def test_appends_continue_the_chain_after_a_restart(log):
    a = AuditLog(log, SECRET)
    a.append(**entry("C6", subjects=[], released=[], withheld=[]))
    a.close()
    assert tampering(log) == []
    assert cases_in(log)[-1] == "C6"


def test_the_access_log_includes_entries_not_indexed_yet(log):
    a = AuditLog(log, SECRET)
    a.append(**entry("C6"))
    assert [e["case_id"] for e in a.about("1:500103198001020113")] == ["C3", "C6"]
    a.close()
    assert tampering(log) == []


def test_an_access_index_of_an_older_layout_is_rebuilt_from_the_log(log):
    """The index is derived: one of another layout (here the first one, with a stale row) is
    dropped and rebuilt from the entries when the log is next opened."""
    index_path(log).unlink()
    tamper_index(log, "CREATE TABLE access (subject TEXT, seq INTEGER)",
                 "CREATE TABLE upto (seq INTEGER)", "INSERT INTO upto VALUES (5)",
                 "INSERT INTO access VALUES ('stale', 1)")
    a = AuditLog(log, SECRET)
    a.close()  # its background thread indexes the entries before it stops
    a = AuditLog(log, SECRET)
    assert [e["case_id"] for e in a.about("1:500103198001020112")] == ["C2"]
    a.close()
    assert tampering(log) == []


def test_an_index_row_pointing_at_another_subjects_entry_shows_nothing_of_it(log):
    """Index keys are short prefixes of the subject MACs: whatever they point at, the access log
    keeps only entries that name the whole MAC (and `audit verify` reports the false row)."""
    from pipelines.serving.access_index import KEY_DIGITS
    from pipelines.serving.audit import subject_hash

    key = subject_hash("1:500103198001020111", SECRET)[:KEY_DIGITS]
    offset = sum(len(line) for line in lines(log)[:2])
    tamper_index(log, f"INSERT INTO access VALUES ('{key}', 3, {offset})")
    a = AuditLog(log, SECRET)
    assert [e["case_id"] for e in a.about("1:500103198001020111")] == ["C1"]
    a.close()
    assert kinds(log) == [(3, "index")]


def test_the_index_catches_up_in_a_background_process_of_idle_priority(log):
    import os
    import time

    from pipelines.serving.access_index import AccessIndex

    a = AuditLog(log, SECRET)
    deadline = time.monotonic() + 20
    try:
        while os.sched_getscheduler(a._indexer.pid) != os.SCHED_IDLE and \
                time.monotonic() < deadline:  # set by the indexer as it starts
            time.sleep(0.05)
        assert os.sched_getscheduler(a._indexer.pid) == os.SCHED_IDLE
        a.append(**entry("C6"))
        index = AccessIndex(log)
        while index.upto()[0] < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert index.upto()[0] == 6  # indexed while the log is open, not only when it closes
        index.close()
        first = a._indexer
        first.kill()  # a dead indexer is replaced at the next upkeep round
        while (a._indexer is first or a._indexer.poll() is not None) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        assert a._indexer is not first and a._indexer.poll() is None
    finally:
        a.close()
    assert tampering(log) == []


def test_a_log_ending_in_a_partial_line_is_reported_before_it_is_reopened(log):
    whole = lines(log)
    rewrite(log, whole + [whole[0][:40]])  # a write cut short by a crash: no newline yet
    assert [(p.seq, p.kind) for p in tampering(log)] == [(None, "partial")]


def test_a_cut_short_last_line_does_not_make_the_index_start_over(log, caplog):
    from pipelines.serving.access_index import AccessIndex

    whole = lines(log)
    rewrite(log, whole + [whole[0][:40]])
    AuditLog(log, SECRET).close()  # ends the fragment with a newline; indexes what follows
    index = AccessIndex(log)
    caplog.clear()
    index.catch_up()
    assert index.upto()[1] == log.stat().st_size
    assert "built again" not in caplog.text
    index.close()


def test_a_head_behind_the_log_is_what_a_running_service_shows_and_verifies(log):
    """`verify` reads the head first: entries appended after it are not a cut-off end."""
    third = parse_line(lines(log)[2])
    (log.parent / f"{log.name}.head").write_text(f"{3:020d} {third['hash']}\n")
    assert tampering(log) == []


def test_an_unreadable_head_is_reported_not_a_crash(log):
    (log.parent / f"{log.name}.head").write_bytes(b"\0" * 86)
    assert kinds(log) == [(None, "truncated")]


def test_the_head_of_an_earlier_sqlite_log_is_not_taken_for_this_ones(tmp_path):
    """Earlier versions kept `audit.head` beside `audit.sqlite`; the file log's head is
    `audit.jsonl.head`, so upgrading does not look like a cut-off end."""
    (tmp_path / "audit.head").write_text(f"{500000:020d} {'a' * 64}\n")
    a = AuditLog(tmp_path / "audit.jsonl", SECRET)
    a.append(**entry("C1"))
    a.close()
    assert tampering(tmp_path / "audit.jsonl") == []
    assert not list(tmp_path.glob("*.cut-at-*"))


def test_a_well_formed_line_of_the_wrong_shape_is_reported_and_breaks_nothing(log):
    ls = lines(log)
    ls.append(edited(ls[-1], seq=6, prev_hash=None, subjects=[1, 2]))
    rewrite(log, ls)
    a = AuditLog(log, SECRET)  # the chain goes on from the last real entry
    a.append(**entry("C7"))
    assert [e["case_id"] for e in a.about("1:500103198001020113")] == ["C3", "C7"]
    a.close()
    problems = tampering(log)
    assert [(p.seq, p.kind) for p in problems] == [(None, "edited")]
    assert "line 6" in problems[0].detail


def test_entries_appended_by_two_processes_at_once_form_one_chain(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "audit.jsonl"
    code = ("import sys; from pathlib import Path; from pipelines.serving.audit import AuditLog\n"
            f"a = AuditLog(Path(sys.argv[1]), {SECRET!r})\n"
            "for i in range(300):\n"
            "    a.append_many([dict(consumer=sys.argv[2], purpose='NEWBORN', template='NEWBORN',"
            " case_id=f'{sys.argv[2]}{i}-{j}', subjects=['1:500103198001020113'], released=[],"
            " withheld=[], answer=b'x') for j in range(1 + i % 3)])\n"
            "a.close()\n")
    writers = [subprocess.Popen([sys.executable, "-c", code, str(path), name])
               for name in ("A", "B")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert tampering(path) == []
    cases = cases_in(path)
    assert len(cases) == len(set(cases)) == 2 * sum(1 + i % 3 for i in range(300))
    assert {c[0] for c in cases} == {"A", "B"}


def test_entries_not_indexed_yet_are_found_by_scanning_the_tail(log, monkeypatch):
    """With no indexer running, the access log still finds the newest entry, in the tail."""
    import subprocess

    from pipelines.serving import audit

    monkeypatch.setattr(audit, "start_indexer", lambda path: subprocess.Popen(
        ["sleep", "60"], stdin=subprocess.PIPE))
    a = AuditLog(log, SECRET)
    a.append(**entry("C6"))
    assert a.index.upto()[0] == 5  # C6 is not indexed
    assert [e["case_id"] for e in a.about("1:500103198001020113")] == ["C3", "C6"]
    a._indexer.kill()
    a.close()


def test_an_entry_with_its_own_detail_is_chained_and_an_edit_of_the_detail_is_found(tmp_path):
    """The workbench records what a query did (its SQL, rows, outcome) as the entry's detail, in
    the same chain as prefill answers."""
    path = tmp_path / "audit.jsonl"
    a = AuditLog(path, SECRET)
    a.append(**entry("C1"))
    a.append(**entry("q-1", consumer="SJJ", purpose="ANALYTICS", template="workbench.statistical",
                     subjects=[], released=["cur.ps_pop_basic.XBDM"], withheld=[],
                     detail={"analyst": "zhang_wei", "sql": "SELECT XBDM FROM cur.ps_pop_basic",
                             "outcome": "done", "rows": 3}))
    a.append(**entry("C2"))
    a.close()
    assert tampering(path, SECRET) == []
    detailed = parse_line(lines(path)[1])
    assert orjson.loads(detailed["detail"])["sql"] == "SELECT XBDM FROM cur.ps_pop_basic"
    hidden = orjson.dumps({**orjson.loads(detailed["detail"]), "sql": "SELECT 1"}).decode()
    rewrite(path, [lines(path)[0], edited(lines(path)[1], detail=hidden), lines(path)[2]])
    # (entry 3 moved in the file, so its index row no longer matches either)
    assert [(p.seq, p.kind) for p in tampering(path, SECRET)][0] == (2, "edited")
