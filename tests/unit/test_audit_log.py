"""The audit log is append-only and hash-chained: `verify` finds an edited, deleted, inserted,
reordered or cut-off entry and says where; the access log finds every entry about a person."""

import sqlite3

import pytest

from pipelines.lib.serving.access_index import index_path
from pipelines.lib.serving.audit import AuditLog, verify

pytestmark = pytest.mark.unit
SECRET = b"test-audit-key"


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "audit.sqlite"
    a = AuditLog(path, SECRET)
    for i in range(1, 6):
        a.append(consumer="WJW", purpose="NEWBORN", template="NEWBORN", case_id=f"C{i}",
                 subjects=[f"1:50010319800102011{i}"], released=["mother.name"],
                 withheld=["mother.marital_status"], answer=f"answer {i}".encode())
    a.close()
    return path


def tamper(path, *sql):
    con = sqlite3.connect(path)
    for s in sql:
        con.execute(s)
    con.commit()
    con.close()


def kinds(path):
    return [(p.seq, p.kind) for p in verify(path)]


def test_an_untouched_log_verifies(log):
    assert verify(log) == []


def test_an_edited_entry_is_found(log):
    tamper(log, "UPDATE audit SET released = '[]' WHERE seq = 3")
    assert kinds(log) == [(3, "edited")]


def test_a_deleted_entry_is_found(log):
    tamper(log, "DELETE FROM audit WHERE seq = 2")
    assert (3, "deleted") in kinds(log)


def test_an_inserted_entry_is_found(log):
    tamper(log, "UPDATE audit SET seq = seq + 100 WHERE seq >= 3",
           "UPDATE audit SET seq = seq - 99 WHERE seq >= 103",
           "INSERT INTO audit SELECT 3, at, 'FY', purpose, template, 'X', subjects, released, "
           "withheld, answer_digest, hash, hash FROM audit WHERE seq = 2")
    found = kinds(log)
    assert found[0] == (3, "edited")  # the forged entry cannot carry a hash of its own content
    assert (5, "truncated") in found  # and the head still names the old last entry


def test_reordered_entries_are_found(log):
    tamper(log, "UPDATE audit SET seq = 100 WHERE seq = 2", "UPDATE audit SET seq = 2 WHERE seq = 3",
           "UPDATE audit SET seq = 3 WHERE seq = 100")
    assert {k for _, k in kinds(log)} & {"reordered", "inserted"}


def test_a_cut_off_last_entry_is_found(log):
    tamper(log, "DELETE FROM audit WHERE seq = 5")
    tamper(index_path(log), "DELETE FROM access WHERE seq = 5")
    assert kinds(log) == [(5, "truncated")]


def test_an_entry_hidden_from_the_access_log_is_found(log):
    """Removing an entry from the subject index would hide it from the person's access log."""
    tamper(index_path(log), "DELETE FROM access WHERE seq = 4")
    assert kinds(log) == [(4, "index")]


def test_entries_written_by_two_service_workers_form_one_chain(tmp_path):
    path = tmp_path / "audit.sqlite"
    first, second = AuditLog(path, SECRET), AuditLog(path, SECRET)
    for i in range(6):
        (first if i % 2 else second).append(
            consumer="WJW", purpose="NEWBORN", template="NEWBORN", case_id=f"C{i}",
            subjects=[f"1:50010319800102011{i}"], released=[], withheld=[], answer=b"a")
    first.append_many([{"consumer": "FY", "purpose": "NEWBORN", "template": "batch",
                        "case_id": f"G{i}", "subjects": [], "released": [], "withheld": [],
                        "answer": b"b"} for i in range(3)])
    first.close()
    second.close()
    assert verify(path) == []
    con = sqlite3.connect(path)
    assert [r[0] for r in con.execute("SELECT case_id FROM audit ORDER BY seq")] == [
        "C0", "C1", "C2", "C3", "C4", "C5", "G0", "G1", "G2"]
    con.close()


def test_the_access_log_finds_every_entry_about_a_person_without_storing_the_id(log):
    a = AuditLog(log, SECRET)
    entries = a.about("1:500103198001020113")
    assert [e["case_id"] for e in entries] == ["C3"]
    raw = log.read_bytes()
    assert b"500103198001020113" not in raw
    a.close()


def test_appends_continue_the_chain_after_a_restart(log):
    a = AuditLog(log, SECRET)
    a.append(consumer="MZJ", purpose="AFTER_DEATH", template="AFTER_DEATH", case_id="C6",
             subjects=[], released=[], withheld=[], answer=b"x")
    a.close()
    assert verify(log) == []


def test_the_access_log_includes_entries_not_indexed_yet(log):
    a = AuditLog(log, SECRET)
    a.append(consumer="FY", purpose="NEWBORN", template="NEWBORN", case_id="C6",
             subjects=["1:500103198001020113"], released=[], withheld=[], answer=b"6")
    assert [e["case_id"] for e in a.about("1:500103198001020113")] == ["C3", "C6"]
    a.close()
    assert verify(log) == []


def largest_wal_under_steady_writes(path, monkeypatch, restart_bytes: int, pause_s: float) -> int:
    """The largest the log's WAL gets over 1.5 s of groups of 20 entries, `pause_s` apart, with
    the upkeep running every 20 ms; the chain must stay whole."""
    import time

    from pipelines.lib.serving import audit

    monkeypatch.setattr(audit, "WAL_RESTART_BYTES", restart_bytes)
    monkeypatch.setattr(audit, "UPKEEP_EVERY_S", 0.02)
    a = AuditLog(path, SECRET)
    largest, deadline = 0, time.monotonic() + 1.5
    while time.monotonic() < deadline:
        a.append_many([{"consumer": "WJW", "purpose": "NEWBORN", "template": "NEWBORN",
                        "case_id": "C", "subjects": ["1:500103198001020113"],
                        "released": ["mother.name"] * 40, "withheld": [], "answer": b"x"}] * 20)
        if pause_s:
            time.sleep(pause_s)
        largest = max(largest, path.with_name(path.name + "-wal").stat().st_size)
    a.close()
    assert verify(path) == []
    return largest


def test_the_write_ahead_log_is_restarted_under_steady_writes(tmp_path, monkeypatch):
    """A passive checkpoint never drains a WAL that is written all the time; past its bound the
    writer restarts it, and the chain stays whole across restarts."""
    largest = largest_wal_under_steady_writes(tmp_path / "audit.sqlite", monkeypatch,
                                              restart_bytes=256 * 1024, pause_s=0)
    assert largest < 8 * 2**20, f"the WAL grew to {largest} bytes"


def test_one_writer_keeps_its_write_ahead_log_small_without_a_restart(tmp_path, monkeypatch):
    """The upkeep's last checkpoint runs with the process's writer paused, so it copies every
    frame and the next commit starts the WAL afresh: it stays a few upkeep rounds long (the
    forced restart, here out of reach, is only for several writer processes). The writer pauses
    between groups as a service's does for the rest of its requests."""
    largest = largest_wal_under_steady_writes(tmp_path / "audit.sqlite", monkeypatch,
                                              restart_bytes=2**40, pause_s=0.0005)
    assert largest < 8 * 2**20, f"the WAL grew to {largest} bytes"


def test_an_access_index_of_an_older_layout_is_rebuilt_from_the_log(log):
    """The index is derived: one of another layout (here the first one, with a stale row) is
    dropped and rebuilt from the entries when the log is next opened."""
    index_path(log).unlink()
    tamper(index_path(log), "CREATE TABLE access (subject TEXT, seq INTEGER)",
           "CREATE TABLE upto (seq INTEGER)", "INSERT INTO upto VALUES (5)",
           "INSERT INTO access VALUES ('stale', 1)")
    a = AuditLog(log, SECRET)
    a.close()  # its background thread indexes the entries before it stops
    a = AuditLog(log, SECRET)
    assert [e["case_id"] for e in a.about("1:500103198001020112")] == ["C2"]
    a.close()
    assert verify(log) == []


def test_an_index_row_pointing_at_another_subjects_entry_shows_nothing_of_it(log):
    """Index keys are short prefixes of the subject MACs: whatever they point at, the access log
    keeps only entries that name the whole MAC (and `audit verify` reports the false row)."""
    from pipelines.lib.serving.access_index import KEY_DIGITS
    from pipelines.lib.serving.audit import subject_hash

    key = subject_hash("1:500103198001020111", SECRET)[:KEY_DIGITS]
    tamper(index_path(log), f"INSERT INTO access VALUES ('{key}', 3)")
    a = AuditLog(log, SECRET)
    assert [e["case_id"] for e in a.about("1:500103198001020111")] == ["C1"]
    a.close()
    assert kinds(log) == [(3, "index")]
