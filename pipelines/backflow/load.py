"""Loading one landed batch into the warehouse (pipelines/warehouse/writer.py has its schema).

A batch is loaded in a single transaction together with its accounting row (and, for the API, the feed
cursor that follows it). A crash rolls the whole batch back; loading a batch already loaded is a no-op.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.catalog.model import Catalog, Resource
from pipelines.governance import objections, timeliness
from pipelines.backflow.batch_tables import (
    LANDED,
    MULTI_VERSION_KEYS,
    NEW,
    PROBLEMS,
    SUPERSEDED,
    TOUCHED_KEYS,
    TYPED,
    drop_batch_tables,
)
from pipelines.backflow.landing import read_meta
from pipelines.backflow.load_contract import apply_contract
from pipelines.backflow.parsed import BatchRejected
from pipelines.settings import BEIJING, business_today
from pipelines.warehouse.writer import batch_status, transaction
from pipelines.catalog.sql_gen import (
    ident,
    key_cols,
    key_join,
    problem_exprs,
    raw_line_expr,
    record_key_expr,
    typed_expr,
)

# _vid = batch seq * stride + row ordinal: unique, ordered, deterministic. Computed in BIGINT (a
# parameter bound from Python is INTEGER when it fits: seq * 10^8 passed 2^31 at the 22nd batch).
# A stride of 10^10 leaves a full snapshot of the largest province (84M persons, plus the deletes
# it implies) inside one stride, and room for 9 * 10^8 batches: centuries of daily batches of
# every resource. Earlier warehouses used 10^8; their vids stay below every new one.
VID_STRIDE = 10_000_000_000


def record_rejection(con, resource: Resource, batch_id: str, code: str, message: str,
                     drift=(), today: dt.date | None = None, contract_results=(),
                     delivery: timeliness.Delivery | None = None) -> None:
    """A rejected batch leaves a trace (and a 'rejected' status) but no rows; one transaction."""
    now = dt.datetime.now(dt.UTC)
    today = today or business_today()
    with transaction(con):
        con.execute("INSERT INTO ops.rejections VALUES (?, ?, ?, ?, ?, ?)",
                    [resource.code, batch_id, code, message, now, today])
        for d in drift:
            con.execute("INSERT INTO ops.schema_drift VALUES (?, ?, ?, ?, ?, ?)",
                        [resource.code, batch_id, d.kind, d.field, d.detail, now])
        if contract_results:  # why a contract blocked the batch, for the scorecard and the checks
            con.executemany("INSERT INTO ops.contract_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                            "?, ?, ?)", contract_results)
        con.execute("""INSERT INTO ops.batches (resource, batch_id, provider, delivery, status,
            arrived_on) VALUES (?, ?, ?, ?, 'rejected', ?) ON CONFLICT DO UPDATE
            SET status = 'rejected', arrived_on = excluded.arrived_on""",
                    [resource.code, batch_id, resource.provider, resource.delivery, today])
        if delivery is not None:
            timeliness.record_delivery(con, resource, delivery)


@dataclass(frozen=True)
class LoadResult:
    resource: str
    batch_id: str
    received: int
    staged: int
    quarantined: int
    superseded: int
    deleted_by_snapshot: int
    incidents: int
    skipped: bool = False


def load_batch(con, catalog: Catalog, resource: Resource, folder: Path, *,
               extracted_at: dt.datetime | None = None, cursor: tuple[str, str | None] | None = None,
               rows: pa.Table | None = None, contracts: bool = True,
               today: dt.date | None = None, report_dir: Path | None = None,
               delivery: timeliness.Delivery | None = None) -> LoadResult:
    """Load one landed batch. `cursor` = (next feed cursor, snapshot id) and `delivery` (what
    arrived when, for timeliness) commit with the rows.

    `rows` may pass the landed rows.parquet already in memory (what `land` returned) to spare a
    re-read; the landed file is what a rebuild reads.
    """
    meta = read_meta(folder)
    batch_id = meta["batch_id"]
    if batch_status(con, resource.code, batch_id) == "loaded":
        return LoadResult(resource.code, batch_id, meta["received"], 0, 0, 0, 0, 0, skipped=True)
    t0 = time.perf_counter()
    try:
        with transaction(con):
            result = _load(con, catalog, resource, folder, meta, extracted_at, rows, contracts,
                           today or business_today(), report_dir)
            if cursor is not None:
                con.execute("""INSERT INTO ops.cursors VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE
                    SET cursor = excluded.cursor, snapshot_id = coalesce(excluded.snapshot_id,
                    ops.cursors.snapshot_id), updated_at = excluded.updated_at""",
                            [resource.code, cursor[0], cursor[1], dt.datetime.now(dt.UTC)])
            if delivery is not None:
                timeliness.record_delivery(con, resource, delivery)
            con.execute("UPDATE ops.batches SET elapsed_s = ? WHERE resource = ? AND batch_id = ?",
                        [time.perf_counter() - t0, resource.code, batch_id])
    finally:
        drop_batch_tables(con)
    return result


def _load(con, catalog: Catalog, r: Resource, folder: Path, meta: dict,
          extracted_at: dt.datetime | None, rows: pa.Table | None, contracts: bool,
          today: dt.date, report_dir: Path | None) -> LoadResult:
    """The steps of a load, in order, over the batch's working tables (backflow/batch_tables.py)."""
    batch_id = meta["batch_id"]
    now = dt.datetime.now(dt.UTC)
    seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM ops.batches").fetchall()[0][0]
    _refuse_too_large(r, batch_id, meta["received"])
    landed_cols = [f.code for f in r.stored_fields] + ["CZLX", "GXSJ"]
    # The landed rows are scanned in place as Arrow (no copy into DuckDB).
    con.register(LANDED, rows if rows is not None else pq.read_table(folder / "rows.parquet"))
    quarantined = _quarantine_problems(con, catalog, r, batch_id, folder, landed_cols, now) + \
        meta["rejected_rows"]
    _reject_retyped(con, r, batch_id)
    _type_rows(con, catalog, r)
    if contracts:
        quarantined += apply_contract(con, catalog, r, batch_id, meta["mode"], landed_cols, now,
                                      report_dir)
    # Records arriving again and passing every rule close their open objections (corrected).
    objections.close_corrected(con, r, batch_id, TYPED, now, today)
    superseded = _find_superseded(con, r)
    staged = _add_versions(con, r, batch_id, seq, now)
    deleted = 0
    if meta["mode"] == "full":
        deleted = _delete_unmentioned(con, r, batch_id, seq, extracted_at or now, now)
    _rederive_validity(con, r, batch_id)
    # Objections for quarantined records the provider must fix.
    objections.raise_for_batch(con, r, batch_id, _objection_reasons(catalog, r), now, today)
    _record_incidents(con, r, batch_id, meta["incidents"], now)
    received = meta["received"]
    _check_accounting(r, batch_id, received, staged, quarantined, superseded)
    _record_batch(con, r, folder, meta, seq, extracted_at, now, today,
                  (received, staged, quarantined, superseded, deleted))
    return LoadResult(r.code, batch_id, received, staged, quarantined, superseded, deleted,
                      len(meta["incidents"]))


def _refuse_too_large(r: Resource, batch_id: str, received: int) -> None:
    if received >= VID_STRIDE // 2:  # its rows and a snapshot's deletes share one stride
        raise BatchRejected("batch_too_large", f"{r.code}/{batch_id}: {received:,} rows "
                            f"in one batch; split it into batches under {VID_STRIDE // 2:,} rows",
                            batch_id=batch_id)


def _quarantine_problems(con, catalog: Catalog, r: Resource, batch_id: str, folder: Path,
                         landed_cols: list[str], now: dt.datetime) -> int:
    """1. Row-level problems: the row goes to quarantine with every failing field, and is not
    loaded; so do the rows the parser could not read (rejected.parquet). Returns the rows with a
    problem (the unreadable ones are counted in the batch's meta)."""
    problems = "list_filter([" + ", ".join(problem_exprs(r, catalog.standard_fields)) + \
               "], lambda x: x IS NOT NULL)"
    # The raw line is rebuilt only for failing rows (string building for every row is the cost).
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {PROBLEMS} AS SELECT _ord, _file, _line,
            unnest(probs) AS prob, {raw_line_expr(landed_cols)} AS raw_line,
            {record_key_expr(r)} AS record_key
        FROM (SELECT *, {problems} AS probs FROM {LANDED} s) s WHERE len(probs) > 0""")
    con.execute(f"""INSERT INTO ops.quarantine SELECT ?, ?, _file, _line, prob.field,
        prob.reason_code, prob.reason, raw_line, ?, record_key FROM {PROBLEMS} ORDER BY _ord""",
                [r.code, batch_id, now])
    con.execute("""INSERT INTO ops.quarantine SELECT ?, ?, file, line, NULL, reason_code, reason,
        raw_line, ?, NULL FROM read_parquet(?) ORDER BY file, line""",
                [r.code, batch_id, now, str(folder / "rejected.parquet")])
    return con.execute(f"SELECT count(DISTINCT _ord) FROM {PROBLEMS}").fetchall()[0][0]


def _type_rows(con, catalog: Catalog, r: Resource) -> None:
    """2. Typed rows with a content hash (what a version says, without CZLX/GXSJ)."""
    typed = ", ".join(f"{typed_expr(f)} AS {ident(f.code)}" for f in r.stored_fields)
    hash_src = ", ".join(f"coalesce(CAST({typed_expr(f)} AS VARCHAR), '\\N')"
                         for f in r.stored_fields)
    gxsj = typed_expr(next(f for f in catalog.standard_fields if f.code == "GXSJ"))
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {TYPED} AS SELECT {typed}, s."CZLX" AS _op,
        {gxsj} AS _gxsj, md5(concat_ws(chr(31), {hash_src})) AS _row_hash, s._file, s._line,
        s._ord FROM {LANDED} s ANTI JOIN {PROBLEMS} USING (_ord)""")


def _find_superseded(con, r: Resource) -> int:
    """3. Superseded duplicates: the same change again in this batch, or a version already held."""
    k = key_cols(r)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {SUPERSEDED} AS
        SELECT _ord FROM {TYPED} ANTI JOIN (SELECT min(_ord) AS _ord FROM {TYPED}
            GROUP BY {k}, _gxsj, _row_hash, (_op = 'D')) first USING (_ord)
        UNION
        SELECT t._ord FROM {TYPED} t JOIN hist.{r.key} h ON {key_join(r, 't', 'h')}
        WHERE (t._op = 'D') = (h._op = 'D') AND (
            (t._gxsj = h._gxsj AND t._row_hash = h._row_hash)
            OR (h._is_current AND t._gxsj >= h._gxsj AND (t._op = 'D' OR t._row_hash = h._row_hash)))
        """)
    return con.execute(f"SELECT count(*) FROM {SUPERSEDED}").fetchall()[0][0]


def _add_versions(con, r: Resource, batch_id: str, seq: int, now: dt.datetime) -> int:
    """4. New versions. A key that appears once in the batch and never before is current with an
    open interval right away (the common case: a full load, a day's new records); keys with
    several versions here or earlier ones in the warehouse are re-derived in step 6. Returns the
    versions added (staged)."""
    k = key_cols(r)
    cols = ", ".join(ident(f.code) for f in r.stored_fields)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {NEW} AS SELECT * FROM {TYPED} "
                f"ANTI JOIN {SUPERSEDED} USING (_ord)")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {MULTI_VERSION_KEYS} AS
        SELECT {k} FROM {NEW} GROUP BY ALL HAVING count(*) > 1
        UNION SELECT DISTINCT {key_cols(r, 'n.')} FROM {NEW} n SEMI JOIN hist.{r.key} h
            ON {key_join(r, 'n', 'h')}""")
    for simple, join in ((True, "ANTI"), (False, "SEMI")):
        con.execute(f"""INSERT INTO hist.{r.key} SELECT {cols}, _op, _gxsj, _gxsj, NULL, {simple},
            _row_hash, ?, _file, _line, CAST(? AS BIGINT) * {VID_STRIDE} + _ord, ?
            FROM {NEW} {join} JOIN {MULTI_VERSION_KEYS} USING ({k})""", [batch_id, seq, now])
    return con.execute(f"SELECT count(*) FROM {NEW}").fetchall()[0][0]


def _delete_unmentioned(con, r: Resource, batch_id: str, seq: int, extracted_at: dt.datetime,
                        now: dt.datetime) -> int:
    """5. A full snapshot deletes every current key it does not mention (readable or not), as of
    its extraction. Returns the deletes."""
    at = extracted_at.astimezone(BEIJING).replace(tzinfo=None)
    stored = [f.code for f in r.stored_fields]
    keys_null = ", ".join(f"h.{ident(c)}" if c in r.primary_key else "NULL" for c in stored)
    return con.execute(f"""INSERT INTO hist.{r.key} SELECT {keys_null}, 'D', ?, ?, NULL,
        false, NULL, ?, NULL, NULL,
        CAST(? AS BIGINT) * {VID_STRIDE} + {VID_STRIDE - 1} - row_number() OVER (), ?
        FROM hist.{r.key} h WHERE h._is_current AND h._op <> 'D' AND NOT EXISTS (
            SELECT 1 FROM {LANDED} s WHERE {key_join(r, 's', 'h')})""",
                       [at, at, batch_id, seq, now]).fetchall()[0][0]


def _rederive_validity(con, r: Resource, batch_id: str) -> None:
    """6. Re-derive validity for keys that already had versions (arrival order does not matter)."""
    k = key_cols(r)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {TOUCHED_KEYS} AS
        SELECT * FROM {MULTI_VERSION_KEYS} UNION
        SELECT {k} FROM hist.{r.key} WHERE _batch_id = ? AND _op = 'D' AND _row_hash IS NULL""",
                [batch_id])
    if con.execute(f"SELECT count(*) FROM {TOUCHED_KEYS}").fetchall()[0][0]:
        con.execute(f"""UPDATE hist.{r.key} AS h SET _valid_to = w.valid_to,
                _is_current = w.is_current
            FROM (SELECT _vid, lead(_gxsj) OVER (PARTITION BY {k} ORDER BY _gxsj, _vid) AS valid_to,
                    row_number() OVER (PARTITION BY {k} ORDER BY _gxsj DESC, _vid DESC) = 1
                        AS is_current
                  FROM hist.{r.key} SEMI JOIN {TOUCHED_KEYS} USING ({k})) w
            WHERE h._vid = w._vid""")


def _record_incidents(con, r: Resource, batch_id: str, incidents: list[dict],
                      now: dt.datetime) -> None:
    """7. The columns removed before storage: an incident and a schema-drift line each."""
    for inc in incidents:
        con.execute("INSERT INTO ops.incidents VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [r.code, batch_id, inc["kind"], inc["field"], inc["rows"], inc["detail"], now])
        con.execute("INSERT INTO ops.schema_drift VALUES (?, ?, 'extra', ?, ?, ?)",
                    [r.code, batch_id, inc["field"], f"unexpected column {inc['field']} "
                     f"({inc['kind']}); removed before storage", now])


def _check_accounting(r: Resource, batch_id: str, received: int, staged: int, quarantined: int,
                      superseded: int) -> None:
    """received = staged + quarantined + superseded, or nothing commits."""
    if received != staged + quarantined + superseded:
        raise AssertionError(f"{r.code}/{batch_id}: row accounting broken: received {received} != "
                             f"staged {staged} + quarantined {quarantined} + superseded {superseded}")


def _record_batch(con, r: Resource, folder: Path, meta: dict, seq: int,
                  extracted_at: dt.datetime | None, now: dt.datetime, today: dt.date,
                  counts: tuple[int, int, int, int, int]) -> None:
    """The batch's accounting row: loaded, with its counts (received, staged, quarantined,
    superseded, deleted by a snapshot) and where it landed."""
    received, staged, quarantined, superseded, deleted = counts
    src = meta.get("source", {})
    con.execute("""INSERT INTO ops.batches VALUES (?, ?, ?, ?, ?, ?, 'loaded', ?, ?, ?, ?, ?, ?, ?,
        ?, ?, ?, NULL, ?) ON CONFLICT DO UPDATE SET seq = excluded.seq, status = 'loaded',
        arrived_on = excluded.arrived_on,
        mode = excluded.mode, received = excluded.received, staged = excluded.staged,
        quarantined = excluded.quarantined, superseded = excluded.superseded,
        deleted_by_snapshot = excluded.deleted_by_snapshot, incidents = excluded.incidents,
        accounting_ok = excluded.accounting_ok, extracted_at = excluded.extracted_at,
        landed_path = excluded.landed_path, loaded_at = excluded.loaded_at""",
                [r.code, meta["batch_id"], r.provider, r.delivery, meta["mode"], seq, received,
                 staged, quarantined, superseded, deleted, len(meta["incidents"]),
                 True,  # accounting_ok: _check_accounting raised on an unbalanced batch
                 extracted_at or src.get("extracted_at"), str(folder), now, today])


def _reject_retyped(con, r: Resource, batch_id: str) -> None:
    """A field whose values mostly stopped parsing changed type or format: reject the batch."""
    from pipelines.backflow.drift import retyped

    fields = {f.code: f for f in r.stored_fields}
    found = []
    for fld, n in con.execute(f"""SELECT prob.field, count(*) FROM {PROBLEMS}
            WHERE prob.reason_code = 'unparseable_value' GROUP BY ALL""").fetchall():
        non_null = con.execute(f"SELECT count({ident(fld)}) FROM {LANDED}").fetchall()[0][0]
        d = retyped(fld, fields[fld].type if fld in fields else "its type", n, non_null)
        if d:
            found.append(d)
    if found:
        raise BatchRejected("schema_drift", f"{r.code}/{batch_id}: " + "; ".join(map(str, found))
                            + " — ask the provider to redeliver in the declared format", found,
                            batch_id=batch_id)


def _objection_reasons(catalog: Catalog, r: Resource) -> set[str]:
    """Quarantine reasons whose fix is the provider's: objection-worthy rules + load problems."""
    from pipelines.governance.contracts.rules import compile_rules

    return ({x.rule_id for x in compile_rules(catalog, r) if x.objection}
            | set(objections.config()["auto_raise_reasons"]))
