"""One reconcile run: mentions -> links and stable entities -> golden records -> conflicts.

Runs inside the warehouse writer's connection, after backflow and objections (so disputed flags
are current) and before publishing (so readers get entities, golden records and conflicts of the
same moment as the data). The run is one transaction (see `reconcile`); Splink predicts in a
database of its own (person_model.py), fed Arrow tables read inside that transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from pathlib import Path

from pipelines import paths
from pipelines.catalog.model import Catalog
from pipelines.identity import conflicts, golden, linking
from pipelines.identity.person_model import MODEL
from pipelines.identity.mentions import build_mentions
from pipelines.warehouse.writer import transaction

SCHEMA = paths.SQL / "identity" / "schema.sql"


def ensure_identity_schema(con) -> None:
    con.execute(SCHEMA.read_text(encoding="utf-8"))


def model_version() -> str:
    return hashlib.sha256(MODEL.read_bytes()).hexdigest()[:12]


def _changed_records(con, catalog: Catalog) -> tuple[int, bool]:
    """`_changed(resource, record_key)`: records with a history row newer than the last run's
    watermark (new versions, superseded ones, deletions). The first run sees all of them."""
    from pipelines.catalog.sql_gen import record_key_expr

    marks = dict(con.execute("SELECT resource, vid FROM ident.watermarks").fetchall())
    parts = [f"""SELECT DISTINCT '{r.code}' AS resource, {record_key_expr(r)} AS record_key
                 FROM hist.{r.key} WHERE _vid > {int(marks.get(r.code, -1))}"""
             for r in catalog.resources.values()]
    con.execute("CREATE OR REPLACE TEMP TABLE _changed AS " + " UNION ALL ".join(parts))
    n = con.execute("SELECT count(*) FROM _changed").fetchall()[0][0]
    return n, not marks


def _advance_watermarks(con, catalog: Catalog) -> None:
    for r in catalog.resources.values():
        con.execute("""INSERT INTO ident.watermarks SELECT ?, coalesce(max(_vid), -1) FROM hist.{}
            ON CONFLICT (resource) DO UPDATE SET vid = excluded.vid""".format(r.key), [r.code])


def reconcile(con, catalog: Catalog, today: dt.date, report_dir: Path | None = None) -> dict:
    """Reconcile what changed since the last run (everything, the first time).

    One transaction: mentions, links, registry, entities and events, golden records, conflicts
    (and the objections they raise), watermarks and the ident.runs row commit together or not
    at all. A crash anywhere before the commit leaves the warehouse as the last run left it, and
    the rerun does the same work again, handing out the same entity ids (each new id is the
    next serial after the committed ones). The report, a file, is written after the commit: a
    crash before it leaves the previous page, which the next run replaces.
    """
    started = time.perf_counter()
    with transaction(con):
        res = _reconcile(con, catalog, today, started)
    if report_dir is not None:
        from pipelines.reports.conflicts_html import render_conflict_report

        t = time.perf_counter()
        res["report"] = str(render_conflict_report(con, report_dir, today))
        res["stages"]["report"] = round(time.perf_counter() - t, 2)
    res["seconds"] = round(time.perf_counter() - started, 2)
    return res


def _reconcile(con, catalog: Catalog, today: dt.date, started: float) -> dict:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    run_id = now.strftime("R%Y%m%dT%H%M%S%f")
    ensure_identity_schema(con)
    stages: dict[str, float] = {}

    def timed(name: str, fn, *args, **kw):
        t = time.perf_counter()
        out = fn(*args, **kw)
        stages[name] = round(time.perf_counter() - t, 2)
        return out

    changed, full = timed("changes", _changed_records, con, catalog)
    rebuilt = timed("mentions", build_mentions, con, catalog)
    persons = timed("link_persons", linking.link_persons, con, run_id, now, model_version())
    enterprises = timed("link_enterprises", linking.link_enterprises, con, run_id, now)
    gold = timed("golden", golden.build_golden, con, catalog, now, full=full)
    found = timed("conflicts", conflicts.detect, con, catalog, today)
    _advance_watermarks(con, catalog)
    methods = dict(con.execute("SELECT method, count(*) FROM ident.person_links GROUP BY ALL"
                               ).fetchall())
    mentions = sum(methods.values())
    entities = dict(con.execute("SELECT kind, count(*) FROM ident.entities "
                                "WHERE state = 'active' GROUP BY ALL").fetchall())
    seconds = time.perf_counter() - started
    con.execute("INSERT INTO ident.runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        run_id, now, dt.datetime.now(dt.UTC).replace(tzinfo=None), "full" if full else "changes",
        changed, mentions, sum(entities.values()), methods.get("key", 0),
        methods.get("probabilistic", 0),
        sum(persons[k] + enterprises[k] for k in ("created", "merged", "split")),
        found["open"], seconds])
    return {"run_id": run_id, "mode": "full" if full else "changes", "changed_records": changed,
            "mentions_rebuilt": rebuilt, "mentions": mentions,
            "entities": {"person": entities.get("person", 0),
                         "enterprise": entities.get("enterprise", 0)},
            "persons": persons, "enterprises": enterprises, "links_by_method": methods,
            "golden": gold, "conflicts": found, "report": None, "seconds": round(seconds, 2),
            "stages": stages}
