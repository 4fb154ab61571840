"""Objections go through every transition of DB3208/T 219—2024, each logged with who, when and why;
deadlines count working days on China's official calendar; a clean redelivery closes them."""

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from pipelines.governance import objections as obj
from pipelines.catalog.model import catalog
from pipelines.warehouse.writer import ensure_schema
from pipelines.catalog.workdays import add_workdays, is_workday, workdays_between

pytestmark = pytest.mark.unit
CAT = catalog()
POP = CAT.resource("PS_POP_BASIC")
NOW = dt.datetime(2026, 10, 2, 1, 0, tzinfo=dt.UTC)


@pytest.fixture
def con():
    c = duckdb.connect()
    ensure_schema(c, CAT)
    return c


def quarantine(con, batch_id: str, key: str, rule: str, line: int = 1) -> None:
    con.execute("""INSERT INTO ops.quarantine VALUES ('PS_POP_BASIC', ?, 'part-00001.csv.gz', ?,
        'GMSFHM', ?, 'bad', 'raw', ?, ?)""", [batch_id, line, rule, NOW, key])


def history(con, oid: str) -> list[tuple]:
    return con.execute("""SELECT from_status, to_status, actor FROM ops.objection_events
        WHERE objection_id = ? ORDER BY event_at, rowid""", [oid]).fetchall()


# -- working days --------------------------------------------------------------------------------

def test_the_national_day_holiday_and_its_make_up_saturday():
    assert not is_workday(dt.date(2026, 10, 5))  # Monday inside the National Day holiday
    assert is_workday(dt.date(2026, 10, 10))  # Saturday, a make-up workday (调休)
    assert not is_workday(dt.date(2026, 10, 11))  # an ordinary Sunday


def test_deadlines_skip_holidays_and_count_make_up_workdays():
    # raised on 2026-09-30: working days after it are 10-08, 10-09, 10-10 (Sat, make-up), 10-12
    assert add_workdays(dt.date(2026, 9, 30), 1) == dt.date(2026, 10, 8)
    assert add_workdays(dt.date(2026, 9, 30), 3) == dt.date(2026, 10, 10)
    assert add_workdays(dt.date(2026, 9, 30), 4) == dt.date(2026, 10, 12)
    assert workdays_between(dt.date(2026, 9, 30), dt.date(2026, 10, 12)) == 4
    # 10 working days: 10-08 09 10 12 13 14 15 16 19 20
    assert obj.deadlines(dt.date(2026, 9, 30)) == (dt.date(2026, 10, 9), dt.date(2026, 10, 20))


def test_years_the_calendar_does_not_know_fall_back_to_weekdays():
    assert is_workday(dt.date(2031, 3, 3)) and not is_workday(dt.date(2031, 3, 2))


# -- lifecycle -----------------------------------------------------------------------------------

def test_raised_automatically_once_per_record_and_rule(con):
    quarantine(con, "b1", "K1", "PS_POP_BASIC.GMSFHM.gb11643", 1)
    quarantine(con, "b1", "K2", "PS_POP_BASIC.XM.length", 2)  # not in the reasons given below
    n = obj.raise_for_batch(con, POP, "b1", {"PS_POP_BASIC.GMSFHM.gb11643"}, NOW,
                            dt.date(2026, 10, 2))
    assert n == 1
    (oid, status, key, accept_due, resolve_due), = con.execute("""SELECT objection_id, status,
        record_key, accept_due, resolve_due FROM ops.objections""").fetchall()
    assert (status, key) == ("raised", "K1")
    assert (accept_due, resolve_due) == (dt.date(2026, 10, 9), dt.date(2026, 10, 20))
    assert history(con, oid) == [(None, "raised", "huiliu")]
    # the same bad record again in the next batch: still one open objection
    quarantine(con, "b2", "K1", "PS_POP_BASIC.GMSFHM.gb11643", 7)
    assert obj.raise_for_batch(con, POP, "b2", {"PS_POP_BASIC.GMSFHM.gb11643"}, NOW,
                               dt.date(2026, 10, 3)) == 0


@pytest.mark.parametrize("path, end", [
    (["accepted", "verifying", "corrected"], "corrected"),
    (["accepted", "verifying", "confirmed"], "confirmed"),
    (["accepted", "verifying", "rejected"], "rejected"),
    (["accepted", "confirmed"], "confirmed"),
    (["rejected"], "rejected"),
])
def test_every_path_through_the_lifecycle_is_logged_and_lifts_the_flag(con, path, end):
    oid = obj.raise_manual(con, CAT, "PS_POP_BASIC", "K9", "XM", "窗口核对姓名有误 / name wrong",
                           "clerk-07", today=dt.date(2026, 10, 8))
    disputed = "SELECT count(*) FROM ops.objections WHERE status IN ('raised', 'accepted', 'verifying')"
    for step in path:
        assert con.execute(disputed).fetchall() == [(1,)]
        obj.transition(con, oid, step, "PS", f"answer: {step}", today=dt.date(2026, 10, 9))
    assert con.execute(disputed).fetchall() == [(0,)]
    status, closed, resolution = con.execute("""SELECT status, closed_on, resolution
        FROM ops.objections""").fetchall()[0]
    assert (status, closed, resolution) == (end, dt.date(2026, 10, 9), f"answer: {end}")
    assert [h[1] for h in history(con, oid)] == ["raised", *path]


def test_impossible_transitions_and_unexplained_ones_are_refused(con):
    oid = obj.raise_manual(con, CAT, "PS_POP_BASIC", "K9", None, "wrong", "clerk",
                           today=dt.date(2026, 10, 8))
    with pytest.raises(obj.ObjectionError, match="is raised; it cannot become verifying"):
        obj.transition(con, oid, "verifying", "PS", "x", today=dt.date(2026, 10, 8))
    with pytest.raises(obj.ObjectionError, match="say why"):
        obj.transition(con, oid, "accepted", "PS", " ", today=dt.date(2026, 10, 8))
    obj.transition(con, oid, "rejected", "PS", "not ours", today=dt.date(2026, 10, 8))
    with pytest.raises(obj.ObjectionError, match="closed"):
        obj.transition(con, oid, "accepted", "PS", "x", today=dt.date(2026, 10, 8))
    with pytest.raises(obj.ObjectionError, match="no objection"):
        obj.transition(con, "nope", "accepted", "PS", "x", today=dt.date(2026, 10, 8))
    with pytest.raises(obj.ObjectionError, match="no stored field"):
        obj.raise_manual(con, CAT, "PS_POP_BASIC", "K", "ZP", "photo", "clerk",
                         today=dt.date(2026, 10, 8))  # not shared: never stored, never objected


def test_a_clean_redelivery_closes_the_objection_as_corrected(con):
    quarantine(con, "b1", "K1", "PS_POP_BASIC.GMSFHM.gb11643")
    obj.raise_for_batch(con, POP, "b1", {"PS_POP_BASIC.GMSFHM.gb11643"}, NOW, dt.date(2026, 10, 2))
    con.register("passing", pa.table({"GMSFHM": ["K1", "K5"]}))
    assert obj.close_corrected(con, POP, "b1", "passing", NOW, dt.date(2026, 10, 2)) == 0  # same batch
    assert obj.close_corrected(con, POP, "b2", "passing", NOW, dt.date(2026, 10, 3)) == 1
    (oid, status), = con.execute("SELECT objection_id, status FROM ops.objections").fetchall()
    assert status == "corrected"
    assert history(con, oid)[-1] == ("raised", "corrected", "huiliu")


def test_overdue_counts_acceptance_then_resolution_deadlines(con):
    oid = obj.raise_manual(con, CAT, "PS_POP_BASIC", "K9", None, "wrong", "clerk",
                           today=dt.date(2026, 9, 30))  # accept by 10-09, resolve by 10-20
    sql = f"SELECT count(*) FROM ops.objections WHERE {obj.overdue_sql()}"
    assert con.execute(sql, [dt.date(2026, 10, 9)] * 2).fetchall() == [(0,)]
    assert con.execute(sql, [dt.date(2026, 10, 10)] * 2).fetchall() == [(1,)]  # not accepted
    obj.transition(con, oid, "accepted", "PS", "ok", today=dt.date(2026, 10, 10))
    assert con.execute(sql, [dt.date(2026, 10, 20)] * 2).fetchall() == [(0,)]
    assert con.execute(sql, [dt.date(2026, 10, 21)] * 2).fetchall() == [(1,)]


def test_an_open_objection_marks_the_current_record_and_its_fields_disputed(con):
    cols = [f.code for f in POP.stored_fields]
    values = {c: None for c in cols} | {"GMSFHM": "K1", "XM": "王芳"}
    con.execute(f"""INSERT INTO hist.ps_pop_basic ({', '.join(cols)}, _op, _gxsj, _is_current)
        VALUES ({', '.join('?' for _ in cols)}, 'I', TIMESTAMP '2026-10-01 08:00:00', true)""",
                [values[c] for c in cols])
    read = "SELECT _disputed, _disputed_fields FROM cur.ps_pop_basic WHERE GMSFHM = 'K1'"
    assert con.execute(read).fetchall() == [(False, None)]
    oid = obj.raise_manual(con, CAT, "PS_POP_BASIC", "K1", "XM", "姓名有误", "clerk",
                           today=dt.date(2026, 10, 8))
    obj.raise_manual(con, CAT, "PS_POP_BASIC", "K1", "CSRQ", "出生日期有误", "clerk",
                     today=dt.date(2026, 10, 8))
    assert con.execute(read).fetchall() == [(True, ["CSRQ", "XM"])]
    obj.transition(con, oid, "rejected", "PS", "name is right", today=dt.date(2026, 10, 9))
    assert con.execute(read).fetchall() == [(True, ["CSRQ"])]
