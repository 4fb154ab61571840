"""Exchange objections with the providers through the platform's objection interface.

Submit every raised objection not yet sent (the platform acknowledges: accepted, 受理), then read the
providers' answers feed from its stored cursor and apply them: verifying, confirmed, rejected. A
provider's "corrected" answer closes an objection only once the corrected record is in the
warehouse (the data decides, not the word); until then it stays verifying.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from pipelines.governance import objections as obj
from pipelines.backflow.api_client import ApiError, PlatformClient, PlatformUnreachable
from pipelines.catalog.model import Catalog
from pipelines.catalog.sql_gen import record_key_expr
from pipelines.warehouse.writer import transaction

log = logging.getLogger(__name__)
CURSOR_KEY = "__objection_answers__"  # its row in ops.cursors


@dataclass
class SyncResult:
    submitted: int = 0
    answers: int = 0
    transitions: dict[str, int] = field(default_factory=dict)
    closed_on_data: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, status: str) -> None:
        self.transitions[status] = self.transitions.get(status, 0) + 1


def sync(con, catalog: Catalog, client: PlatformClient, today: dt.date) -> SyncResult:
    """A platform that does not answer leaves everything as it was (unsent objections are sent,
    unread answers read, by the next run); `errors` says what failed."""
    res = SyncResult()
    _submit(con, client, today, res)
    try:
        _apply_answers(con, catalog, client, today, res)
    except ApiError as e:  # the answers cursor moves only with the answers applied
        res.errors.append(f"objection answers not read: {e}")
    return res


def _submit(con, client: PlatformClient, today: dt.date, res: SyncResult) -> None:
    pending = con.execute("""SELECT objection_id, resource, provider, batch_id, file, line,
            record_key, field, rule_id, reason FROM ops.objections
        WHERE status = 'raised' AND submitted_at IS NULL ORDER BY objection_id""").fetchall()
    for oid, resource, provider, batch_id, file, line, key, fld, rule_id, reason in pending:
        try:
            ack = client.submit_objection({
                "objection_id": oid, "resource": resource, "batch_id": batch_id, "file": file,
                "line": line, "record_key": key, "field": fld, "rule_id": rule_id,
                "reason": reason})
        except PlatformUnreachable as e:  # none of the rest would get through either
            res.errors.append(f"objections not submitted: {e}")
            return
        except ApiError as e:  # stays raised and unsent: the next run submits it again
            res.errors.append(f"{oid}: {e}")
            continue
        now = dt.datetime.now(dt.UTC)
        with transaction(con):  # sent and acknowledged together (a resend is idempotent)
            con.execute("UPDATE ops.objections SET submitted_at = ? WHERE objection_id = ?",
                        [now, oid])
            if ack.get("status") == "accepted":
                obj._move(con, oid, "accepted", provider,  # noqa: SLF001
                          f"提供方受理 / accepted by the provider at {ack.get('received_at')}",
                          now, today)
        res.submitted += 1
        if ack.get("status") == "accepted":
            res.count("accepted")


def _apply_answers(con, catalog: Catalog, client: PlatformClient, today: dt.date,
                   res: SyncResult) -> None:
    row = con.execute("SELECT cursor FROM ops.cursors WHERE resource = ?",
                      [CURSOR_KEY]).fetchall()
    cursor = row[0][0] if row else ""
    while True:
        page = client.objection_answers(cursor)
        with transaction(con):  # a page's answers and the cursor past them commit together
            for a in page.records:
                res.answers += 1
                _apply(con, catalog, a, today, res)
            cursor = page.next_cursor
            con.execute("""INSERT INTO ops.cursors VALUES (?, ?, NULL, ?) ON CONFLICT DO UPDATE
                SET cursor = excluded.cursor, updated_at = excluded.updated_at""",
                        [CURSOR_KEY, cursor, dt.datetime.now(dt.UTC)])
        if not page.has_more:
            return


def _apply(con, catalog: Catalog, a: dict, today: dt.date, res: SyncResult) -> None:
    found = con.execute("""SELECT status, provider, resource, record_key, raised_at FROM
        ops.objections WHERE objection_id = ?""", [a["objection_id"]]).fetchall()
    if not found:
        log.warning("answer for unknown objection %s ignored", a["objection_id"])
        return
    status, provider, resource, key, raised_at = found[0]
    if status in obj.CLOSED:
        return  # e.g. closed as corrected by the data before the answer came
    now = dt.datetime.now(dt.UTC)
    note = f"{a.get('note', '')} ({a.get('answered_at', '')})".strip()
    want = a["status"]
    if want == "corrected":
        con.execute("UPDATE ops.objections SET corrected_key = ? WHERE objection_id = ?",
                    [a.get("corrected_key"), a["objection_id"]])
        if _corrected_record_arrived(con, catalog, resource, a.get("corrected_key") or key,
                                     raised_at):
            obj._move(con, a["objection_id"], "corrected", provider,  # noqa: SLF001
                      f"提供方已更正, 更正记录已入库 / corrected, record received: {note}", now, today)
            res.closed_on_data += 1
            res.count("corrected")
            return
        want = "verifying"  # the provider says corrected; the record has yet to arrive
        note = f"提供方称已更正, 待更正记录送达 / provider reports corrected, awaiting record: {note}"
    if want == status:
        return
    if status == "raised" and want != "rejected":
        obj._move(con, a["objection_id"], "accepted", provider, note, now, today)  # noqa: SLF001
    if want != "accepted":
        obj._move(con, a["objection_id"], want, provider, note, now, today)  # noqa: SLF001
    res.count(want)


def _corrected_record_arrived(con, catalog: Catalog, resource: str, key: str | None,
                              raised_at: dt.datetime) -> bool:
    if not key:
        return False
    r = catalog.resources[resource]
    return bool(con.execute(f"""SELECT count(*) FROM hist.{r.key} h WHERE {record_key_expr(r, 'h.')}
        = ? AND h._loaded_at > ?""", [key, raised_at]).fetchall()[0][0])
