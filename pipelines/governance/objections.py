"""Data objections (数据异议): raised for records the provider must fix, followed to resolution.

Lifecycle (DB3208/T 219—2024; quality/objections.yaml): raised → accepted → verifying → corrected |
confirmed | rejected. While open, the record is flagged disputed (cur.<resource>._disputed). Every
transition is one row in ops.objection_events (who, when, why). Deadlines are working days on
China's official calendar. A corrected record arriving in a later batch closes its objection as
corrected, automatically, in the transaction that loads it.

All functions take a DuckDB connection inside the caller's writer session (and transaction).
"""

from __future__ import annotations

import datetime as dt
import functools

import yaml

from pipelines import paths
from pipelines.catalog.model import Catalog, Resource
from pipelines.catalog.sql_gen import record_key_expr
from pipelines.catalog.workdays import add_workdays

CONFIG_FILE = paths.QUALITY / "objections.yaml"
OPEN = ("raised", "accepted", "verifying")
CLOSED = ("corrected", "confirmed", "rejected")
TRANSITIONS = {
    "raised": {"accepted", "rejected", "corrected"},
    "accepted": {"verifying", "corrected", "confirmed", "rejected"},
    "verifying": {"corrected", "confirmed", "rejected"},
}
STATUS_ZH = {"raised": "已提出", "accepted": "已受理", "verifying": "核实中", "corrected": "已更正",
             "confirmed": "确认无误", "rejected": "已驳回"}

DDL = """
CREATE TABLE IF NOT EXISTS ops.objections (
    objection_id VARCHAR PRIMARY KEY, resource VARCHAR, provider VARCHAR, record_key VARCHAR,
    field VARCHAR, rule_id VARCHAR, reason VARCHAR, batch_id VARCHAR, file VARCHAR, line INTEGER,
    status VARCHAR, raised_by VARCHAR, raised_at TIMESTAMPTZ, raised_on DATE, accept_due DATE,
    resolve_due DATE, submitted_at TIMESTAMPTZ, corrected_key VARCHAR, resolution VARCHAR,
    closed_on DATE, updated_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS ops.objection_events (
    objection_id VARCHAR, event_at TIMESTAMPTZ, on_date DATE, from_status VARCHAR, to_status VARCHAR,
    actor VARCHAR, reason VARCHAR);
"""


class ObjectionError(ValueError):
    """A request about an objection that cannot be carried out; the message says why."""


@functools.cache
def config() -> dict:
    return yaml.safe_load(CONFIG_FILE.read_text(encoding="utf-8"))


def deadlines(raised_on: dt.date) -> tuple[dt.date, dt.date]:
    d = config()["deadlines"]
    return add_workdays(raised_on, int(d["accept"])), add_workdays(raised_on, int(d["resolve"]))


def _next_ids(con, n: int, on: dt.date) -> list[str]:
    prefix = f"YY{on:%Y%m%d}-"
    start = con.execute("SELECT count(*) FROM ops.objections WHERE objection_id LIKE ?",
                        [prefix + "%"]).fetchall()[0][0]
    return [f"{prefix}{start + i + 1:06d}" for i in range(n)]


def raise_for_batch(con, resource: Resource, batch_id: str, reason_codes: set[str],
                    now: dt.datetime, today: dt.date) -> int:
    """One objection per quarantined record × rule of this batch whose fix is the provider's,
    unless the same record already has an open objection for the same rule."""
    rows = con.execute(f"""SELECT q.record_key, q.field, q.reason_code, q.reason, q.file, q.line
        FROM ops.quarantine q
        WHERE q.resource = ? AND q.batch_id = ? AND q.reason_code IN (SELECT unnest(?))
          AND NOT EXISTS (SELECT 1 FROM ops.objections o WHERE o.resource = q.resource
              AND o.status IN {OPEN} AND o.rule_id = q.reason_code
              AND o.record_key IS NOT DISTINCT FROM q.record_key
              AND (q.record_key IS NOT NULL OR (o.batch_id = q.batch_id AND o.line = q.line)))
        ORDER BY q.file, q.line, q.reason_code""",
                       [resource.code, batch_id, sorted(reason_codes)]).fetchall()
    if not rows:
        return 0
    actor = config()["system_actor"]
    accept_due, resolve_due = deadlines(today)
    ids = _next_ids(con, len(rows), today)
    con.executemany("""INSERT INTO ops.objections VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'raised', ?,
        ?, ?, ?, ?, NULL, NULL, NULL, NULL, ?)""",
                    [[oid, resource.code, resource.provider, key, field, code, reason, batch_id,
                      file, line, actor, now, today, accept_due, resolve_due, now]
                     for oid, (key, field, code, reason, file, line) in zip(ids, rows, strict=True)])
    con.executemany("INSERT INTO ops.objection_events VALUES (?, ?, ?, NULL, 'raised', ?, ?)",
                    [[oid, now, today, actor, f"自动提出: 批次 {batch_id} 未通过 {row[2]} / "
                      f"raised automatically: batch {batch_id} failed {row[2]}"]
                     for oid, row in zip(ids, rows, strict=True)])
    return len(rows)


def close_corrected(con, resource: Resource, batch_id: str, passing_table: str,
                    now: dt.datetime, today: dt.date) -> int:
    """Close as corrected the open objections of records that arrive again in this batch and pass
    every rule (rows of `passing_table`): the provider answered through its normal delivery."""
    key = record_key_expr(resource)
    ids = [oid for (oid,) in con.execute(f"""SELECT objection_id FROM ops.objections
        WHERE resource = ? AND status IN {OPEN} AND batch_id <> ? AND (
            record_key IN (SELECT {key} FROM {passing_table})
            OR corrected_key IN (SELECT {key} FROM {passing_table}))""",
                                           [resource.code, batch_id]).fetchall()]
    for oid in ids:
        _move(con, oid, "corrected", config()["system_actor"],
              f"批次 {batch_id} 送达更正后的记录 / corrected record delivered in batch {batch_id}",
              now, today)
    return len(ids)


def _move(con, objection_id: str, to: str, actor: str, reason: str, now: dt.datetime,
          today: dt.date, corrected_key: str | None = None) -> str:
    row = con.execute("SELECT status FROM ops.objections WHERE objection_id = ?",
                      [objection_id]).fetchall()
    if not row:
        raise ObjectionError(f"no objection {objection_id!r}: list them with `huiliu objections list`")
    frm = row[0][0]
    if to not in TRANSITIONS.get(frm, set()):
        allowed = sorted(TRANSITIONS.get(frm, set())) or "none (it is closed)"
        raise ObjectionError(f"objection {objection_id} is {frm}; it cannot become {to} "
                             f"(allowed: {allowed})")
    closing = to in CLOSED
    con.execute("""UPDATE ops.objections SET status = ?, updated_at = ?,
            corrected_key = coalesce(?, corrected_key),
            resolution = CASE WHEN ? THEN ? ELSE resolution END,
            closed_on = CASE WHEN ? THEN ? ELSE closed_on END
        WHERE objection_id = ?""",
                [to, now, corrected_key, closing, reason, closing, today, objection_id])
    con.execute("INSERT INTO ops.objection_events VALUES (?, ?, ?, ?, ?, ?, ?)",
                [objection_id, now, today, frm, to, actor, reason])
    return frm


def transition(con, objection_id: str, to: str, actor: str, reason: str, *,
               now: dt.datetime | None = None, today: dt.date) -> str:
    """Move one objection (from the CLI or the provider's answers); returns its former status."""
    if not reason.strip():
        raise ObjectionError("say why: every transition is logged with its reason (--reason)")
    return _move(con, objection_id, to, actor, reason, now or dt.datetime.now(dt.UTC), today)


def raise_manual(con, catalog: Catalog, resource_code: str, record_key: str, field: str | None,
                 reason: str, actor: str, *, today: dt.date) -> str:
    """An objection raised by a person (e.g. a window clerk found a wrong value)."""
    if resource_code not in catalog.resources:
        raise ObjectionError(f"unknown resource {resource_code!r}; known: "
                             f"{sorted(catalog.resources)}")
    r = catalog.resources[resource_code]
    if field and field not in {f.code for f in r.stored_fields}:
        raise ObjectionError(f"{resource_code} has no stored field {field!r}")
    if not reason.strip():
        raise ObjectionError("say what is wrong (--reason): the provider must be able to act on it")
    now = dt.datetime.now(dt.UTC)
    oid = _next_ids(con, 1, today)[0]
    accept_due, resolve_due = deadlines(today)
    con.execute("""INSERT INTO ops.objections VALUES (?, ?, ?, ?, ?, 'manual', ?, NULL, NULL,
        NULL, 'raised', ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, ?)""",
                [oid, r.code, r.provider, record_key, field, reason, actor, now, today,
                 accept_due, resolve_due, now])
    con.execute("INSERT INTO ops.objection_events VALUES (?, ?, ?, NULL, 'raised', ?, ?)",
                [oid, now, today, actor, reason])
    return oid


def overdue_sql(today_param: str = "?") -> str:
    """Predicate on ops.objections: open past its deadline (acceptance, then resolution)."""
    return (f"(status IN {OPEN} AND ({today_param} > resolve_due OR "
            f"(status = 'raised' AND {today_param} > accept_due)))")
