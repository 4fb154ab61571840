"""Provider scorecards: per provider × resource × period (day and month), stored and rendered.

Tables (rebuilt whole on every run, derived from ops.*):
  ops.scorecard        one row per period × resource (assets/sql/build_scorecard.sql)
  ops.scorecard_rules  one row per period × contract rule (assets/sql/build_scorecard_rules.sql)
  ops.timeliness       one row per resource × cycle period: on_time | late | missing
Reports: <home>/reports/scorecard/{day-YYYY-MM-DD,month-YYYY-MM}.html and index.html (the latest
day), rendered by pipelines/reports/scorecard_html.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from pathlib import Path

import pyarrow as pa

from pipelines.governance import timeliness
from pipelines.catalog.model import Catalog
from pipelines.warehouse.sql import load_sql
from pipelines.reports.formatting import beijing_now
from pipelines.reports.scorecard_html import (
    RuleRow,
    Scorecard,
    ScoreRow,
    TrendPoint,
    write_scorecard,
)

TREND_DAYS, TREND_MONTHS = 14, 6


def _register_inputs(con, catalog: Catalog, today: dt.date) -> None:
    names = {p.code: p.name_zh for p in catalog.providers}
    rs = list(catalog.resources.values())
    con.register("res", pa.table({
        "resource": [r.code for r in rs], "resource_name": [r.name_zh for r in rs],
        "provider": [r.provider for r in rs],
        "provider_name": [names.get(r.provider, r.provider) for r in rs],
        "update_cycle": [r.update_cycle for r in rs]}))
    rows = []
    for r in rs:
        t = timeliness.assess(con, r, today)
        c = r.update_cycle
        rows += [(r.code, p, timeliness.due_on(c, p), "on_time", 0) for p in t.on_time]
        rows += [(r.code, p, timeliness.due_on(c, p), "late", d) for p, d in t.late]
        rows += [(r.code, p, due, "missing", (today - due).days) for p, due in t.missing]
    con.register("tl", pa.table({
        "resource": pa.array([x[0] for x in rows], pa.string()),
        "period": pa.array([x[1] for x in rows], pa.date32()),
        "due": pa.array([x[2] for x in rows], pa.date32()),
        "status": pa.array([x[3] for x in rows], pa.string()),
        "days_late": pa.array([x[4] for x in rows], pa.int32())}))


def periods(con, today: dt.date) -> tuple[list[dt.date], list[dt.date]]:
    """Days and month starts from the first arrival up to today."""
    first = con.execute("""SELECT min(d) FROM (SELECT min(arrived_on) AS d FROM ops.batches
        UNION ALL SELECT min(arrived_on) FROM ops.deliveries)""").fetchall()[0][0]
    if first is None:
        return [], []
    days = [first + dt.timedelta(days=i) for i in range((today - first).days + 1)]
    months = sorted({d.replace(day=1) for d in days})
    return days, months


def month_end(m: dt.date) -> dt.date:
    return timeliness.period_end("monthly", m)


def build(con, catalog: Catalog, today: dt.date) -> dict:
    """Recompute ops.scorecard, ops.scorecard_rules and ops.timeliness. Returns counts."""
    _register_inputs(con, catalog, today)
    days, months = periods(con, today)
    con.execute("""CREATE OR REPLACE TABLE ops.timeliness AS SELECT * FROM tl""")
    con.execute("DROP TABLE IF EXISTS ops.scorecard")
    con.execute("DROP TABLE IF EXISTS ops.scorecard_rules")
    main, rules = load_sql("build_scorecard"), load_sql("build_scorecard_rules")
    first = True
    for kind, start, end in ([("day", d, d) for d in days]
                             + [("month", m, month_end(m)) for m in months]):
        params = {"start": start, "end": end, "today": today}
        for table, sql in (("ops.scorecard", main), ("ops.scorecard_rules", rules)):
            head = f"CREATE TABLE {table} AS " if first else f"INSERT INTO {table} "
            con.execute(f"{head}SELECT '{kind}' AS period_kind, DATE '{start}' AS period, * "
                        f"FROM ({sql})", {k: v for k, v in params.items() if f"${k}" in sql})
        first = False
    con.unregister("res")
    con.unregister("tl")
    return {"days": len(days), "months": len(months)}


def _score_rows(con, kind: str, period: dt.date) -> tuple[ScoreRow, ...]:
    names = [f.name for f in fields(ScoreRow)]
    rows = con.execute(f"SELECT {', '.join(names)} FROM ops.scorecard WHERE period_kind = ? "
                       "AND period = ? ORDER BY provider, resource", [kind, period]).fetchall()
    return tuple(ScoreRow(**dict(zip(names, r, strict=True))) for r in rows)


def _rule_rows(con, kind: str, period: dt.date) -> tuple[RuleRow, ...]:
    rows = con.execute("""SELECT provider, resource, rule_id, family, severity, checked, failed
        FROM ops.scorecard_rules WHERE period_kind = ? AND period = ?""", [kind, period]).fetchall()
    return tuple(RuleRow(*r) for r in rows)


def _trend(con, kind: str, upto: dt.date, n: int) -> tuple[TrendPoint, ...]:
    rows = con.execute("""SELECT provider, period,
            CASE WHEN sum(rows_received) > 0
                 THEN sum(rows_received - rows_quarantined) / sum(rows_received) END,
            CASE WHEN sum(batches_expected) > 0
                 THEN sum(batches_on_time) / sum(batches_expected) END
        FROM ops.scorecard WHERE period_kind = ? AND period <= ? AND period IN (
            SELECT DISTINCT period FROM ops.scorecard WHERE period_kind = ? AND period <= ?
            ORDER BY period DESC LIMIT ?)
        GROUP BY ALL ORDER BY period, provider""", [kind, upto, kind, upto, n]).fetchall()
    fmt = "%Y-%m-%d" if kind == "day" else "%Y-%m"
    return tuple(TrendPoint(p, d.strftime(fmt), v, o) for p, d, v, o in rows)


def page_name(kind: str, period: dt.date) -> str:
    return f"day-{period:%Y-%m-%d}.html" if kind == "day" else f"month-{period:%Y-%m}.html"


def render(con, catalog: Catalog, today: dt.date, out_dir: Path) -> Path | None:
    """Write one HTML page per day and per month, and index.html = the latest day. Returns it;
    None while nothing has been delivered (a new node whose sources have not answered yet)."""
    days, months = periods(con, today)
    if not days:
        return None
    generated = beijing_now()
    nav = tuple((f"月 {m:%Y-%m}", page_name("month", m)) for m in months) + tuple(
        (f"{d:%m-%d}", page_name("day", d)) for d in days[-TREND_DAYS:])
    latest = None
    for kind, period in [("day", d) for d in days] + [("month", m) for m in months]:
        card = Scorecard(
            node=catalog.node.code, node_name=catalog.node.name_zh, period_kind=kind,
            period=period.strftime("%Y-%m-%d" if kind == "day" else "%Y-%m"),
            as_of=today.isoformat(), generated_at=generated.strftime("%Y-%m-%d %H:%M %z"),
            rows=_score_rows(con, kind, period), rules=_rule_rows(con, kind, period),
            trend=_trend(con, kind, period, TREND_DAYS if kind == "day" else TREND_MONTHS),
            other_periods=nav)
        path = write_scorecard(card, out_dir / page_name(kind, period))
        if kind == "day":
            latest = card
    index = write_scorecard(latest, out_dir / "index.html")
    return index
