"""Reconciliation across regions (`huiliu exchange crosscheck`): for every person whose hukou move
crosses between this node and another member node (PS_HUKOU_MOVE), the node asks the other node
how it holds the person (its data bureau, purpose CROSS_CHECK, through the exchange) instead of
guessing, and compares with its own golden record:

- both hold the person as a living resident: `registered_in_two_nodes` (the origin's police must
  cancel the registration);
- dead in one, alive in the other: `dead_in_one_alive_in_other` (the node holding the person
  alive must record the death).

Each contradiction is kept in ops.cross_node_conflicts with both nodes' provenance (provider,
resource, batch, record key, as-of; the other node's answer is a status and a division, never
more); where this node's provider must act, an objection (数据异议) is raised to it on the record,
once. What the other node answered is otherwise not stored."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import duckdb

from pipelines.catalog.model import Catalog
from pipelines.exchange.directory import EXCHANGE, division_prefix
from pipelines.exchange.messages import RemoteRequest
from pipelines.exchange.requesting import RemoteNodes
from pipelines.governance import objections

# the node's data bureau asks, for the check itself (catalogs/templates/CROSS_CHECK.yaml)
DEPARTMENT, PURPOSE, TEMPLATE = "SJJ", "CROSS_CHECK", "CROSS_CHECK"
CONCURRENCY = 8

DDL = """
CREATE TABLE IF NOT EXISTS ops.cross_node_conflicts (
    citizen_id VARCHAR, kind VARCHAR, other_node VARCHAR, origin_node VARCHAR, moved_on DATE,
    local_status VARCHAR, local_division VARCHAR, local_provider VARCHAR, local_resource VARCHAR,
    local_batch VARCHAR, local_record_key VARCHAR, local_as_of TIMESTAMP,
    other_status VARCHAR, other_division VARCHAR, other_provider VARCHAR, other_resource VARCHAR,
    other_batch VARCHAR, other_record_key VARCHAR, other_as_of VARCHAR,
    must_act VARCHAR, objection_id VARCHAR, exchange_request VARCHAR, checked_on DATE,
    PRIMARY KEY (citizen_id, other_node, kind));
"""


@dataclass(frozen=True)
class Mover:
    citizen_id: str
    other_node: str
    origin_node: str
    moved_on: dt.date | None
    local: dict  # status, division and the status's provenance in this node's golden record


def movers(con: duckdb.DuckDBPyConnection, me: str, members: list[str]) -> list[Mover]:
    """Persons whose latest move between this node and another member crosses the two."""
    mine = division_prefix(me)
    others = {division_prefix(m): m for m in members if m not in (me, EXCHANGE)}
    rows = con.execute("""
        WITH m AS (SELECT GMSFHM AS citizen_id, QCD_XZQHDM AS src, QRD_XZQHDM AS dst, QYRQ,
                          row_number() OVER (PARTITION BY GMSFHM ORDER BY QYRQ DESC) AS k
                   FROM cur.ps_hukou_move)
        SELECT m.citizen_id, m.src, m.dst, m.QYRQ, p.status, p.hukou_division, v.provider,
               v.resource, v.batch_id, v.record_key, v.as_of
        FROM m JOIN gold.person p ON p.citizen_id = m.citizen_id
        LEFT JOIN gold.field_values v ON v.entity_id = p.entity_id AND v.field = 'status'
             AND v.rank = 1 AND v.valid_to IS NULL AND v.kind = 'person'
        WHERE m.k = 1 ORDER BY m.citizen_id""").fetchall()
    out = []
    for cid, src, dst, on, status, division, provider, resource, batch, key, as_of in rows:
        ends = [(src or ""), (dst or "")]
        if sum(e.startswith(mine) for e in ends) != 1:
            continue
        other = next((code for prefix, code in others.items()
                      for e in ends if not e.startswith(mine) and e.startswith(prefix)), None)
        if other is None:
            continue
        origin = me if (src or "").startswith(mine) else other
        out.append(Mover(cid, other, origin, on, {
            "status": status, "division": division, "provider": provider,
            "resource": resource, "batch": batch, "record_key": key, "as_of": as_of}))
    return out


def classify(local_status: str | None, other_status: str | None) -> str | None:
    if local_status == "alive" and other_status == "alive":
        return "registered_in_two_nodes"
    if {local_status, other_status} == {"alive", "deceased"}:
        return "dead_in_one_alive_in_other"
    return None


async def ask_all(remote: RemoteNodes, people: list[Mover], case_id: str) -> list[tuple]:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(m: Mover):
        async with sem:
            o = await remote.ask(m.other_node, RemoteRequest(
                f"prefill/{TEMPLATE}", DEPARTMENT, PURPOSE, case_id,
                {"subjects": {"person": m.citizen_id}}))
        return m, o

    return await asyncio.gather(*(one(m) for m in people))


@dataclass
class Outcome:
    asked: int
    answered: int
    unavailable: dict[str, int]
    conflicts: list[dict]


def ask(remote: RemoteNodes, people: list[Mover], today: dt.date) -> list[tuple]:
    """Every mover asked of the other node (nothing held open meanwhile)."""
    return asyncio.run(_run(remote, people, f"XCHK-{today:%Y%m%d}"))


def record(con: duckdb.DuckDBPyConnection, cat: Catalog, answers: list[tuple],
           today: dt.date) -> Outcome:
    """Compare and record; `con` is the warehouse's writer (objections are raised in it)."""
    me = cat.node.code
    people = [m for m, _ in answers]
    con.execute(DDL)
    unavailable: dict[str, int] = {}
    conflicts = []
    for m, o in answers:
        role = ((o.body or {}).get("roles") or {}).get("person") or {}
        if o.reason or role.get("status") != "found":
            reason = o.reason or ("REMOTE_UNKNOWN_SUBJECT"
                                  if (o.body or {}).get("error") == "unknown_subject"
                                  else "REMOTE_REFUSED")
            unavailable[reason] = unavailable.get(reason, 0) + 1
            continue
        f = role.get("fields", {})
        status = f.get("status", {})
        kind = classify(m.local["status"], status.get("value"))
        if kind is None:
            continue
        division = f.get("hukou_division", {}).get("value")
        if kind == "registered_in_two_nodes":
            must_act = m.origin_node
        else:  # the node holding the person alive must record the death
            must_act = me if m.local["status"] == "alive" else m.other_node
        src = status.get("source", {})
        row = {"citizen_id": m.citizen_id, "kind": kind, "other_node": m.other_node,
               "origin_node": m.origin_node, "moved_on": m.moved_on,
               "local_status": m.local["status"], "local_division": m.local["division"],
               "local_provider": m.local["provider"], "local_resource": m.local["resource"],
               "local_batch": m.local["batch"], "local_record_key": m.local["record_key"],
               "local_as_of": m.local["as_of"], "other_status": status.get("value"),
               "other_division": division, "other_provider": src.get("provider"),
               "other_resource": src.get("resource"), "other_batch": src.get("batch"),
               "other_record_key": src.get("record_key"), "other_as_of": status.get("as_of"),
               "must_act": f"{must_act}:PS", "objection_id": None,
               "exchange_request": o.request_id, "checked_on": today}
        if must_act == me:
            row["objection_id"] = _objection(con, cat, m, row, today)
        conflicts.append(row)
        con.execute("DELETE FROM ops.cross_node_conflicts WHERE citizen_id = ? AND "
                    "other_node = ? AND kind = ?", [m.citizen_id, m.other_node, kind])
        con.execute(f"INSERT INTO ops.cross_node_conflicts ({', '.join(row)}) VALUES "
                    f"({', '.join('?' for _ in row)})", list(row.values()))
    return Outcome(len(people), len(people) - sum(unavailable.values()), unavailable, conflicts)


async def _run(remote: RemoteNodes, people: list[Mover], case_id: str) -> list[tuple]:
    try:
        return await ask_all(remote, people, case_id)
    finally:
        await remote.aclose()


def _objection(con, cat: Catalog, m: Mover, row: dict, today: dt.date) -> str:
    """One open objection on the record at a time: an earlier one still open is reused."""
    key = m.local["record_key"] or m.citizen_id
    found = con.execute(f"""SELECT objection_id FROM ops.objections WHERE resource = 'PS_POP_BASIC'
        AND record_key = ? AND field = 'RYZTDM' AND status IN {objections.OPEN}""",
                        [key]).fetchall()
    if found:
        return found[0][0]
    reason = (f"{row['kind']}: this node ({cat.node.code}) holds the person as "
              f"{row['local_status']} ({row['local_provider']}/{row['local_resource']} batch "
              f"{row['local_batch']}, as of {row['local_as_of']}); node {row['other_node']} holds "
              f"them as {row['other_status']} in {row['other_division']} "
              f"({row['other_provider']}/{row['other_resource']} batch {row['other_batch']}, "
              f"as of {row['other_as_of']}); moved {m.origin_node}→"
              f"{m.other_node if m.origin_node == cat.node.code else cat.node.code} on "
              f"{m.moved_on}")
    return objections.raise_manual(con, cat, "PS_POP_BASIC", key, "RYZTDM", reason,
                                   "crosscheck", today=today)
