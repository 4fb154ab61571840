"""The scorecard's numbers equal what a governance officer would count by hand from a small,
fully known history: batches, rows, timeliness, completeness, drift, over-sharing, objections."""

import datetime as dt

import duckdb
import pytest

from pipelines.governance import scorecard
from pipelines.catalog.model import catalog
from pipelines.warehouse.writer import ensure_schema

pytestmark = pytest.mark.unit
CAT = catalog()
D = dt.date
T = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)


def batch(con, resource, bid, arrived, received, staged, quarantined, superseded=0,
          status="loaded"):
    con.execute("""INSERT INTO ops.batches (resource, batch_id, provider, status, received, staged,
        quarantined, superseded, arrived_on, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,
        (SELECT count(*) FROM ops.batches))""",
                [resource, bid, resource[:2], status, received, staged, quarantined, superseded,
                 arrived])


def delivery(con, resource, period, arrived, status="loaded"):
    con.execute("INSERT INTO ops.deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [resource, resource[:2], period, period, arrived, T, "b", status])


@pytest.fixture
def con():
    c = duckdb.connect()
    ensure_schema(c, CAT)
    # PS_POP_BASIC, daily, T+1. Periods 10-01..10-04 (due 10-02..10-05), today 10-06:
    # 10-01 on time, 10-02 late by 1 day (arrived 10-04), 10-03 on time, 10-04 missing.
    for period, arrived in [(D(2026, 10, 1), D(2026, 10, 2)), (D(2026, 10, 2), D(2026, 10, 4)),
                            (D(2026, 10, 3), D(2026, 10, 4))]:
        delivery(c, "PS_POP_BASIC", period, arrived)
    batch(c, "PS_POP_BASIC", "b1", D(2026, 10, 2), 1000, 990, 8, 2)
    batch(c, "PS_POP_BASIC", "b2", D(2026, 10, 4), 500, 500, 0)
    batch(c, "PS_POP_BASIC", "b3", D(2026, 10, 4), 100, 95, 5)
    c.execute("INSERT INTO ops.rejections VALUES ('PS_POP_BASIC', 'b9', 'schema_drift', 'x', ?, ?)",
              [T, D(2026, 10, 4)])
    c.execute("INSERT INTO ops.schema_drift VALUES ('PS_POP_BASIC', 'b9', 'renamed', 'XBDM', 'x', ?)",
              [T])
    c.execute("""INSERT INTO ops.incidents VALUES ('PS_POP_BASIC', 'b3', 'oversharing_forbidden_field',
        'ZP', 100, 'x', ?)""", [T])
    # required-field checks: 2 of 1,000 XM values empty in b1, none in b3
    c.execute("""INSERT INTO ops.contract_results (resource, batch_id, rule_id, family, severity,
        checked, failed) VALUES ('PS_POP_BASIC', 'b1', 'PS_POP_BASIC.XM.required', 'required',
        'error', 1000, 2), ('PS_POP_BASIC', 'b3', 'PS_POP_BASIC.XM.required', 'required', 'error',
        100, 0)""")
    # objections: raised 10-02 (resolve due 10-16, still open), raised 10-04 and closed 10-05,
    # raised 2026-09-01 with resolve due 09-15: open and overdue
    for oid, raised, due, closed in [("o1", D(2026, 10, 2), D(2026, 10, 16), None),
                                     ("o2", D(2026, 10, 4), D(2026, 10, 19), D(2026, 10, 5)),
                                     ("o3", D(2026, 9, 1), D(2026, 9, 15), None)]:
        c.execute("""INSERT INTO ops.objections (objection_id, resource, provider, status, raised_on,
            resolve_due, closed_on) VALUES (?, 'PS_POP_BASIC', 'PS', ?, ?, ?, ?)""",
                  [oid, "corrected" if closed else "verifying", raised, due, closed])
    scorecard.build(c, CAT, D(2026, 10, 6))
    return c


def row(con, kind, period, resource="PS_POP_BASIC"):
    cur = con.execute("SELECT * FROM ops.scorecard WHERE period_kind = ? AND period = ? AND "
                      "resource = ?", [kind, period, resource])
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchall()[0], strict=True))


def test_a_month_adds_up_by_hand(con):
    m = row(con, "month", D(2026, 10, 1))
    assert (m["batches_expected"], m["batches_on_time"], m["batches_late"],
            m["batches_missing"]) == (4, 2, 1, 1)
    assert (m["batches_received"], m["batches_rejected"]) == (3, 1)
    assert (m["rows_received"], m["rows_staged"], m["rows_quarantined"],
            m["rows_superseded"]) == (1600, 1585, 13, 2)
    assert m["validity"] == pytest.approx((1600 - 13) / 1600)
    assert m["completeness"] == pytest.approx(1 - 2 / 1100)
    assert (m["drift_incidents"], m["overshare_incidents"]) == (1, 1)
    assert (m["objections_opened"], m["objections_closed"], m["objections_open"],
            m["objections_overdue"]) == (2, 1, 2, 1)


def test_a_day_counts_what_arrived_and_what_fell_due_that_day(con):
    d4 = row(con, "day", D(2026, 10, 4))
    # due on 10-04: period 10-03 (arrived 10-04, on time); 10-02 was due 10-03 (late)
    assert (d4["batches_expected"], d4["batches_on_time"], d4["batches_late"]) == (1, 1, 0)
    assert (d4["batches_received"], d4["rows_received"], d4["batches_rejected"]) == (2, 600, 1)
    d3 = row(con, "day", D(2026, 10, 3))
    assert (d3["batches_expected"], d3["batches_late"], d3["batches_received"]) == (1, 1, 0)
    d5 = row(con, "day", D(2026, 10, 5))
    assert (d5["batches_missing"], d5["objections_closed"]) == (1, 1)
    assert d5["validity"] is None  # nothing arrived that day


def test_the_timeliness_table_says_which_period_was_late_by_how_much(con):
    got = con.execute("""SELECT period, status, days_late FROM ops.timeliness
        WHERE resource = 'PS_POP_BASIC' ORDER BY period""").fetchall()
    assert got == [(D(2026, 10, 1), "on_time", 0), (D(2026, 10, 2), "late", 1),
                   (D(2026, 10, 3), "on_time", 0), (D(2026, 10, 4), "missing", 1)]


def test_rules_are_summed_per_period(con):
    got = con.execute("""SELECT rule_id, checked, failed FROM ops.scorecard_rules
        WHERE period_kind = 'month'""").fetchall()
    assert got == [("PS_POP_BASIC.XM.required", 1100, 2)]


def test_the_report_renders_a_page_per_period(con, tmp_path):
    index = scorecard.render(con, CAT, D(2026, 10, 6), tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["day-2026-10-02.html", "day-2026-10-03.html", "day-2026-10-04.html",
                     "day-2026-10-05.html", "day-2026-10-06.html", "index.html",
                     "month-2026-10.html"]
    html = (tmp_path / "month-2026-10.html").read_text(encoding="utf-8")
    assert "PS_POP_BASIC" in html and "1,600" in html
    assert index.read_text(encoding="utf-8") == (tmp_path / "day-2026-10-06.html").read_text(
        encoding="utf-8")
