"""The DuckDB warehouse's schema and its single writer.

Schemas
  hist.<resource>  every version of every key (grain: one row per key per change), typed, with its
                   validity interval [_valid_from, _valid_to), _is_current, the operation and lineage
                   (_batch_id, _file, _line, _gxsj).
  cur.<resource>   view: the current, not-deleted version per key.
  ops.*            batches (with row accounting), quarantine, incidents, rejections, cursors.

One process writes at a time (`writer`, an exclusive lock beside the file); everything a step
changes commits together (`transaction`).
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from pathlib import Path

import duckdb

from pipelines.catalog.model import Catalog
from pipelines.catalog.sql_gen import ident, record_key_expr
from pipelines.governance import objections, timeliness

OPS_DDL = """
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS hist;
CREATE SCHEMA IF NOT EXISTS cur;
CREATE TABLE IF NOT EXISTS ops.batches (
    resource VARCHAR, batch_id VARCHAR, provider VARCHAR, delivery VARCHAR, mode VARCHAR,
    seq BIGINT, status VARCHAR, received BIGINT, staged BIGINT, quarantined BIGINT,
    superseded BIGINT, deleted_by_snapshot BIGINT, incidents BIGINT, accounting_ok BOOLEAN,
    extracted_at TIMESTAMPTZ, landed_path VARCHAR, loaded_at TIMESTAMPTZ, elapsed_s DOUBLE,
    arrived_on DATE, PRIMARY KEY (resource, batch_id));
CREATE TABLE IF NOT EXISTS ops.quarantine (
    resource VARCHAR, batch_id VARCHAR, file VARCHAR, line INTEGER, field VARCHAR,
    reason_code VARCHAR, reason VARCHAR, raw_line VARCHAR, quarantined_at TIMESTAMPTZ,
    record_key VARCHAR);
CREATE TABLE IF NOT EXISTS ops.incidents (
    resource VARCHAR, batch_id VARCHAR, kind VARCHAR, field VARCHAR, rows BIGINT, detail VARCHAR,
    recorded_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS ops.rejections (
    resource VARCHAR, batch_id VARCHAR, code VARCHAR, message VARCHAR, rejected_at TIMESTAMPTZ,
    arrived_on DATE);
CREATE TABLE IF NOT EXISTS ops.schema_drift (
    resource VARCHAR, batch_id VARCHAR, kind VARCHAR, field VARCHAR, detail VARCHAR,
    detected_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS ops.resource_runs (
    resource VARCHAR, started_at TIMESTAMPTZ, elapsed_s DOUBLE, batches_loaded BIGINT,
    batches_skipped BIGINT, batches_rejected BIGINT, received BIGINT, staged BIGINT,
    quarantined BIGINT, superseded BIGINT, incidents BIGINT);
CREATE TABLE IF NOT EXISTS ops.contract_results (
    resource VARCHAR, batch_id VARCHAR, rule_id VARCHAR, field VARCHAR, family VARCHAR,
    severity VARCHAR, checked BIGINT, failed BIGINT, blocked BOOLEAN, validated_at TIMESTAMPTZ,
    observed BIGINT, detail VARCHAR);
CREATE TABLE IF NOT EXISTS ops.cursors (
    resource VARCHAR PRIMARY KEY, cursor VARCHAR, snapshot_id VARCHAR, updated_at TIMESTAMPTZ);
""" + objections.DDL + timeliness.DDL


class WarehouseLocked(Exception):
    pass


@contextlib.contextmanager
def writer_lock(path: Path, timeout: float = 600.0):
    """The warehouse's single-writer lock: an exclusive lock on <warehouse>.lock.

    Several Dagster steps may run at once in separate processes; they queue here instead of failing
    on DuckDB's own one-writer rule.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path.with_suffix(".lock"), "w")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock.close()
                raise WarehouseLocked(f"{path} is held by another writer for {timeout}s; "
                                      "is another backflow run stuck?") from None
            time.sleep(0.2)
    try:
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


@contextlib.contextmanager
def writer(path: Path, timeout: float = 600.0):
    """A connection to the warehouse, opened and closed while holding the writer lock."""
    with writer_lock(path, timeout):
        con = duckdb.connect(str(path))
        try:
            yield con
        finally:
            con.close()


def _schema_fingerprint(catalog: Catalog) -> str:
    import hashlib

    spec = OPS_DDL + "".join(f"{r.key}:{[(f.code, f.duckdb_type) for f in r.stored_fields]}"
                             for r in catalog.resources.values())
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def ensure_schema(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> None:
    """Create what is missing. Skipped (one cheap read) when the warehouse already has this schema."""
    fp = _schema_fingerprint(catalog)
    try:
        if con.execute("SELECT fingerprint FROM ops.schema_version").fetchall() == [(fp,)]:
            return
    except duckdb.CatalogException:
        pass
    con.execute(OPS_DDL)
    for r in catalog.resources.values():
        cols = ", ".join(f"{ident(f.code)} {f.duckdb_type}" for f in r.stored_fields)
        con.execute(f"""CREATE TABLE IF NOT EXISTS hist.{r.key} ({cols},
            _op VARCHAR, _gxsj TIMESTAMP, _valid_from TIMESTAMP, _valid_to TIMESTAMP,
            _is_current BOOLEAN, _row_hash VARCHAR, _batch_id VARCHAR, _file VARCHAR,
            _line INTEGER, _vid BIGINT, _loaded_at TIMESTAMPTZ)""")
        fields = ", ".join(f"h.{ident(f.code)}" for f in r.stored_fields)
        # 异议中: a record with an open objection is disputed, with the fields objected to
        con.execute(f"""CREATE OR REPLACE VIEW cur.{r.key} AS SELECT {fields},
            h._gxsj, h._batch_id, h._file, h._line, d.fields IS NOT NULL AS _disputed,
            d.fields AS _disputed_fields
            FROM hist.{r.key} h LEFT JOIN (SELECT record_key, list(DISTINCT field ORDER BY field)
                FILTER (WHERE field IS NOT NULL) AS fields FROM ops.objections
                WHERE resource = '{r.code}' AND status IN {objections.OPEN} GROUP BY record_key) d
              ON d.record_key = {record_key_expr(r, 'h.')}
            WHERE h._is_current AND h._op <> 'D'""")
    con.execute("CREATE OR REPLACE TABLE ops.schema_version AS SELECT ? AS fingerprint, "
                "now() AS applied_at", [fp])


@contextlib.contextmanager
def transaction(con):
    """Everything inside commits together or not at all (a crash leaves the state before)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # e.g. the disk filled: the error above says so
            con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def batch_status(con, resource: str, batch_id: str) -> str | None:
    row = con.execute("SELECT status FROM ops.batches WHERE resource = ? AND batch_id = ?",
                      [resource, batch_id]).fetchall()
    return row[0][0] if row else None
