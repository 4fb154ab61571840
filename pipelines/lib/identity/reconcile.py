"""One reconcile run: mentions -> links and stable entities -> golden records -> conflicts.

Runs inside the warehouse writer's connection, after backflow and objections (so disputed flags
are current) and before publishing (so readers get entities, golden records and conflicts of the
same moment as the data).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from pathlib import Path

from pipelines.lib.catalog import Catalog
from pipelines.lib.identity import conflicts, golden, linking
from pipelines.lib.identity.link import MODEL
from pipelines.lib.identity.mentions import build_mentions

SCHEMA = Path(__file__).resolve().parents[3] / "assets" / "sql" / "identity" / "schema.sql"


def ensure_identity_schema(con) -> None:
    con.execute(SCHEMA.read_text(encoding="utf-8"))


def model_version() -> str:
    return hashlib.sha256(MODEL.read_bytes()).hexdigest()[:12]


def reconcile(con, catalog: Catalog, today: dt.date, report_dir: Path | None = None) -> dict:
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    run_id = now.strftime("R%Y%m%dT%H%M%S%f")
    ensure_identity_schema(con)
    mentions = build_mentions(con, catalog)
    persons = linking.link_persons(con, run_id, now, model_version())
    enterprises = linking.link_enterprises(con, run_id, now)
    gold = golden.build_golden(con, catalog, now)
    found = conflicts.detect(con, catalog, today)
    report = None
    if report_dir is not None:
        from pipelines.lib.reports.conflicts_html import render_conflict_report

        report = render_conflict_report(con, report_dir, today)
    seconds = time.perf_counter() - started
    methods = dict(con.execute("SELECT method, count(*) FROM ident.person_links GROUP BY ALL"
                               ).fetchall())
    con.execute("INSERT INTO ident.runs VALUES (?, ?, ?, 'full', ?, ?, ?, ?, ?, ?, ?)", [
        run_id, now, dt.datetime.now(dt.UTC).replace(tzinfo=None), mentions,
        persons["entities"] + enterprises["entities"], methods.get("key", 0),
        methods.get("probabilistic", 0),
        sum(persons[k] + enterprises[k] for k in ("created", "merged", "split")),
        found["open"], seconds])
    return {"run_id": run_id, "mentions": mentions, "persons": persons,
            "enterprises": enterprises, "links_by_method": methods, "golden": gold,
            "conflicts": found, "report": str(report) if report else None,
            "seconds": round(seconds, 2)}
