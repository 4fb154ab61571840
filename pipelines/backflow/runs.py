"""Backflow of one resource: fetch what is new, land it immutably, load it, one batch at a time.

Used by the Dagster assets and the CLI alike. Every step is idempotent: a batch already loaded is
skipped, an API cursor only moves in the same transaction as the rows it covers, and a rejected batch
is retried whenever it is seen again (the provider redelivers under the same batch id).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from pipelines.backflow import drops
from pipelines.backflow.api_client import Page, PlatformClient
from pipelines.backflow.api_records import parse_records
from pipelines.catalog.model import Catalog, CatalogError, Resource
from pipelines.backflow.errors import TransientFailure
from pipelines.backflow.landing import land
from pipelines.backflow.parsed import BatchRejected, Incident, ParsedBatch
from pipelines.settings import Settings
from pipelines.governance.timeliness import Delivery, Timeliness, assess, record_delivery
from pipelines.warehouse.writer import batch_status, ensure_schema, writer
from pipelines.backflow.load import LoadResult, load_batch, record_rejection

log = logging.getLogger(__name__)


@dataclass
class ResourceRun:
    resource: str
    loaded: list[LoadResult] = field(default_factory=list)
    skipped: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (batch_id, message)
    elapsed_s: float = 0.0
    api_stats: dict[str, int] = field(default_factory=dict)  # requests, retries (API only)
    stage_s: dict[str, float] = field(default_factory=dict)  # seconds per stage, for tuning
    contract: list[FamilyResult] = field(default_factory=list)  # this run's batches, per family
    timeliness: Timeliness | None = None
    failed: str | None = None  # why the source could not be read to its end (one line)

    def timed(self, stage: str, t0: float) -> float:
        now = time.perf_counter()
        self.stage_s[stage] = self.stage_s.get(stage, 0.0) + now - t0
        return now

    def total(self, attr: str) -> int:
        return sum(getattr(x, attr) for x in self.loaded)

    def as_metadata(self) -> dict:
        return {"batches_loaded": len(self.loaded), "batches_skipped": self.skipped,
                "batches_rejected": len(self.rejected), "failed": self.failed or "",
                **{a: self.total(a) for a in ("received", "staged", "quarantined", "superseded",
                                              "deleted_by_snapshot", "incidents")},
                "elapsed_s": round(self.elapsed_s, 3), **self.api_stats,
                **{f"{k}_s": round(v, 3) for k, v in self.stage_s.items()}}


def prepare(settings: Settings, catalog: Catalog) -> None:
    with writer(settings.warehouse_path) as con:
        ensure_schema(con, catalog)


class NodeMismatch(CatalogError):
    """HUILIU_NODE names another node than the catalogue (catalogs/node.yaml) describes.

    A CatalogError, so the command line says it in one line as it does a malformed catalogue.
    """


def check_node(settings: Settings, catalog: Catalog) -> None:
    """The hub runs for the node its catalogue describes: drops are checked against the catalogue's
    node, and a different HUILIU_NODE means one of the two was set for another deployment."""
    if settings.node != catalog.node.code:
        raise NodeMismatch(f"HUILIU_NODE is {settings.node} but the catalogue (catalogs/node.yaml) "
                           f"is for node {catalog.node.code} ({catalog.node.name_zh}): set "
                           "HUILIU_NODE to the node this hub runs for, with its catalogue")


# --- bulk drops ---------------------------------------------------------------------------------

class DropRootMissing(Exception):
    """The configured drop root is not a folder: a typo would otherwise hide every bulk drop."""


def check_drop_root(settings: Settings) -> None:
    """An explicitly configured drop root must exist (the default one is created on first use)."""
    root = settings.drops
    if settings.drop_root is None:
        root.mkdir(parents=True, exist_ok=True)
    elif not root.is_dir():
        raise DropRootMissing(f"drop root {root} is not a folder; check --drop-root / "
                              "HUILIU_DROP_ROOT")


def ingest_drops(settings: Settings, catalog: Catalog, resource: Resource) -> ResourceRun:
    """Ingest every complete batch of `resource` under the drop root not loaded before.

    One writer session for the whole resource: parsing is CPU work that would not run faster
    without the lock on a 2-core machine, and a session per batch costs a checkpoint each.
    """
    check_node(settings, catalog)
    t0 = time.perf_counter()
    run = ResourceRun(resource.code)
    try:
        check_drop_root(settings)
    except DropRootMissing as e:
        run.failed = str(e)
    today = settings.business_date()
    with writer(settings.warehouse_path) as con:
        ensure_schema(con, catalog)
        loaded = {b for (b,) in con.execute("SELECT batch_id FROM ops.batches WHERE resource = ? "
                                            "AND status = 'loaded'", [resource.code]).fetchall()}
        for batch_dir in ([] if run.failed else drops.discover(settings.drops, catalog,
                                                                resource.code)):
            if batch_dir.name in loaded:
                run.skipped += 1
                continue
            try:
                t = time.perf_counter()
                batch = drops.open_batch(batch_dir, catalog)
                t = run.timed("verify", t)
                parsed = drops.parse(batch, resource)
                t = run.timed("parse", t)
                folder, rows = land(settings.landing, resource.provider, parsed,
                                    batch.manifest.raw)
                t = run.timed("land", t)
                run.loaded.append(load_batch(
                    con, catalog, resource, folder, rows=rows,
                    extracted_at=batch.manifest.extracted_at, contracts=settings.contracts,
                    today=today, report_dir=settings.reports_dir / "validations",
                    delivery=Delivery(today, batch_dir.name, "loaded",
                                      batch.manifest.extracted_at)))
                run.timed("load", t)
            except BatchRejected as e:  # terminal: recorded, taken again when redelivered
                log.info("batch %s/%s rejected: %s", resource.code, batch_dir.name, e)
                record_rejection(con, resource, batch_dir.name, e.code, e.message, e.drift,
                                 today, e.contract_results,
                                 delivery=Delivery(today, batch_dir.name, "rejected"))
                run.rejected.append((batch_dir.name, str(e)))
        _summarise(con, settings, resource, run)
        _record_run(con, run, time.perf_counter() - t0)
    return run


# --- API change feed ----------------------------------------------------------------------------

def platform_client(settings: Settings) -> PlatformClient:
    return PlatformClient(settings.api_url, settings.api_client_id,
                          settings.api_client_secret.get_secret_value(),
                          timeout=settings.api_timeout_seconds,
                          connect_timeout=settings.api_connect_timeout_seconds,
                          max_retries=settings.api_max_retries)


def _combine(resource: Resource, batch_id: str, mode: str, parts: list[ParsedBatch]) -> ParsedBatch:
    incidents: dict[tuple[str, str], Incident] = {}
    for p in parts:
        for i in p.incidents:
            prev = incidents.get((i.kind, i.field))
            incidents[(i.kind, i.field)] = Incident(i.kind, i.field,
                                                    i.rows + (prev.rows if prev else 0), i.detail)
    table = pa.concat_tables([p.table for p in parts])
    return ParsedBatch(resource.code, batch_id, mode, sum(p.received for p in parts), table, [],
                       list(incidents.values()))


def pull_api(settings: Settings, catalog: Catalog, resource: Resource) -> ResourceRun:
    """Take a new full snapshot if the platform has one, then follow the change feed to its end.

    One writer session for the whole pull (as for bulk): pages are prefetched in a thread, so the
    lock is held while rows are parsed and loaded, not while waiting on a slow platform for long.
    A platform that cannot be reached or keeps failing ends the pull with `run.failed` (what was
    loaded before stays: each batch committed with its cursor); the caller goes on with the rest.
    """
    check_node(settings, catalog)
    t0 = time.perf_counter()
    run = ResourceRun(resource.code)
    client = platform_client(settings)
    today = settings.business_date()
    try:
        with writer(settings.warehouse_path) as con:
            ensure_schema(con, catalog)
            row = con.execute("SELECT cursor, snapshot_id FROM ops.cursors WHERE resource = ?",
                              [resource.code]).fetchall()
            row = row[0] if row else None
            done = con.execute("SELECT count(*) FROM ops.batches WHERE resource = ? AND batch_id "
                               "LIKE 'chg-%' AND status = 'loaded'", [resource.code]).fetchall()[0][0]
            cursor, snapshot_id = (row[0], row[1]) if row else (None, None)
            try:
                snaps = client.snapshots(resource.code)
                if snaps and (snapshot_id is None or snaps[-1].snapshot_id > snapshot_id):
                    cursor = _take_snapshot(con, settings, catalog, client, resource, snaps[-1],
                                            run)
                reached_end = _follow_changes(con, settings, catalog, client, resource,
                                              cursor or "", done, run)
                if not reached_end:  # nothing new at the end of the feed: a delivery all the same
                    record_delivery(con, resource, Delivery(today, "pull-no-changes", "loaded"))
            except BatchRejected as e:
                # Terminal: the cursor stays before the rejected batch, so every run asks again
                # until the provider's feed delivers it in a usable form. Every rejection names
                # its batch where it is raised.
                batch_id = e.batch_id or "?"
                log.info("batch %s/%s rejected: %s", resource.code, batch_id, e)
                record_rejection(con, resource, batch_id, e.code, e.message, e.drift,
                                 today, e.contract_results,
                                 delivery=Delivery(today, batch_id, "rejected"))
                run.rejected.append((batch_id, str(e)))
            except TransientFailure as e:  # the platform (ApiError): nothing recorded, next run
                run.failed = str(e)
            run.api_stats = dict(client.stats)
            _summarise(con, settings, resource, run)
            _record_run(con, run, time.perf_counter() - t0)
    finally:
        client.close()
    return run


def _take_snapshot(con, settings, catalog, client, resource, snap, run) -> str:
    batch_id = f"snap-{snap.snapshot_id}"
    def fetch(cur: str) -> Page:
        return client.snapshot_page(resource.code, snap.snapshot_id, cur, settings.api_page_size)

    parts = [parse_records(resource, batch_id, "full", [(f"snapshot-p{n:05d}", page.records)])
             for n, page in enumerate(_pages(fetch, "", resource.code), start=1)]
    parsed = _combine(resource, batch_id, "full", parts)
    folder, rows = land(settings.landing, resource.provider, parsed,
                        {"delivery": "api", "snapshot_id": snap.snapshot_id, "as_of": snap.as_of,
                         "rows_announced": snap.rows})
    as_of = dt.datetime.fromisoformat(snap.as_of)
    run.loaded.append(load_batch(con, catalog, resource, folder, extracted_at=as_of,
                                 cursor=(snap.feed_cursor, snap.snapshot_id), rows=rows,
                                 contracts=settings.contracts,
                                 today=settings.business_date(),
                                 report_dir=settings.reports_dir / "validations"))
    return snap.feed_cursor


def _pages(fetch_page: Callable[[str], Page], cursor: str, label: str, depth: int = 4):
    """Yield pages from `cursor` on while the next ones are fetched in a background thread, so
    network time overlaps parsing and loading. Errors reach the caller at the page they stopped."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def fetch(cur: str) -> None:
        try:
            while not stop.is_set():
                page = fetch_page(cur)
                cur = page.next_cursor
                q.put(("page", page))
                if not page.has_more:
                    break
            q.put(("end", None))
        except BaseException as e:  # handed to the consumer, re-raised there
            q.put(("error", e))

    worker = threading.Thread(target=fetch, args=(cursor,), daemon=True, name=f"fetch-{label}")
    worker.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.05)


def _follow_changes(con, settings, catalog, client, resource, cursor: str, done: int,
                    run: ResourceRun) -> bool:
    """Load the feed from `cursor` to its end; True when the last batch carried the delivery."""
    parts: list[ParsedBatch] = []
    start, rows, n = cursor, 0, 0
    fetched_at = dt.datetime.now(dt.UTC)
    today = settings.business_date()
    def fetch(cur: str) -> Page:
        return client.changes(resource.code, cur, settings.api_page_size)

    for page in _pages(fetch, cursor, resource.code):
        batch_id = f"chg-{done + 1:08d}"  # same start cursor after a crash -> same batch id
        n += 1
        if page.records:
            parts.append(parse_records(resource, batch_id, "incremental",
                                       [(f"page-{n:05d}", page.records)]))
            rows += len(page.records)
        cursor = page.next_cursor
        if rows and (rows >= settings.api_batch_rows or not page.has_more):
            # the batch that reaches the feed's end commits the pull's delivery with its rows (a
            # pull answered to its end delivers through the day before it)
            delivery = None if page.has_more else Delivery(today, batch_id, "loaded")
            _load_changes(con, settings, catalog, resource, batch_id, parts, start, cursor,
                          fetched_at, run, delivery)
            done += 1
            parts, start, rows, n = [], cursor, 0, 0
            fetched_at = dt.datetime.now(dt.UTC)
            if delivery is not None:
                return True
    return False


def _load_changes(con, settings, catalog, resource, batch_id, parts, start, cursor, fetched_at,
                  run: ResourceRun, delivery: Delivery | None) -> None:
    parsed = _combine(resource, batch_id, "incremental", parts)
    folder, landed = land(settings.landing, resource.provider, parsed,
                          {"delivery": "api", "start_cursor": start, "next_cursor": cursor})
    if batch_status(con, resource.code, batch_id) == "loaded":
        raise RuntimeError(f"{resource.code}: batch {batch_id} already loaded from another "
                           "cursor; two runs pulled the same feed at once")
    run.loaded.append(load_batch(con, catalog, resource, folder, extracted_at=fetched_at,
                                 cursor=(cursor, None), rows=landed,
                                 contracts=settings.contracts,
                                 today=settings.business_date(),
                                 report_dir=settings.reports_dir / "validations",
                                 delivery=delivery))


def run_resource(settings: Settings, catalog: Catalog, resource: Resource) -> ResourceRun:
    """Backflow one resource by its delivery method (each records its run for status/summaries)."""
    if resource.delivery == "bulk":
        return ingest_drops(settings, catalog, resource)
    return pull_api(settings, catalog, resource)


@dataclass(frozen=True)
class FamilyResult:
    """One contract rule family over the batches of one run (what its Dagster check shows)."""

    family: str
    severity: str
    checked: int
    failed: int
    blocked_batches: tuple[str, ...]
    failing_rules: tuple[str, ...]  # "rule_id failed/checked"


def _summarise(con, settings: Settings, resource: Resource, run: ResourceRun) -> None:
    """Contract results per family for the batches of this run, and the resource's timeliness."""
    ids = [b.batch_id for b in run.loaded] + [bid for bid, _ in run.rejected]
    if ids:
        rows = con.execute("""SELECT family, any_value(severity), sum(checked), sum(failed),
                list(DISTINCT batch_id) FILTER (WHERE blocked),
                list(rule_id || ' ' || failed || '/' || checked ORDER BY failed DESC)
                    FILTER (WHERE failed > 0)
            FROM ops.contract_results WHERE resource = ? AND batch_id IN (SELECT unnest(?))
            GROUP BY family ORDER BY family""", [resource.code, ids]).fetchall()
        run.contract = [FamilyResult(f, sev, int(c), int(x), tuple(b or ()), tuple(r or ()))
                        for f, sev, c, x, b, r in rows]
    run.timeliness = assess(con, resource, settings.business_date())


def _record_run(con, run: ResourceRun, elapsed_s: float) -> None:
    run.elapsed_s = elapsed_s
    m = run.as_metadata()
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=elapsed_s)
    con.execute("INSERT INTO ops.resource_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run.resource, started, elapsed_s, m["batches_loaded"], m["batches_skipped"],
                 m["batches_rejected"], m["received"], m["staged"], m["quarantined"],
                 m["superseded"], m["incidents"]])
