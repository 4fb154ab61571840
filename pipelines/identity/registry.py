"""The entity registry: stable entity ids for clusters of linking units, across runs.

A linking unit is what linkage clusters: a valid document key ('1:<ID>', '2:<passport>'), or
'mention:<id>' for a mention without one. Each run hands in its clusters as (unit, root) rows in
the temp table `_units`. A cluster keeps the id its units already had; a cluster whose units had
several ids is a merge (the root's id survives, else the oldest); an id whose units now sit in
several clusters is a split (the cluster holding most of them keeps it). Every creation, merge and
split is an event in ident.entity_events with its reason; no id is ever reused or renumbered.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

PREFIX = {"person": "HLP", "enterprise": "HLE"}


@dataclass
class Assignment:
    created: int = 0
    merged: int = 0
    split: int = 0
    entities: int = 0


def _event_id(run_id: str, kind: str, a: str, b: str | None) -> str:
    return hashlib.sha1(f"{run_id}|{kind}|{a}|{b}".encode()).hexdigest()[:20]


def assign(con, kind: str, run_id: str, now, reason: str = "") -> Assignment:
    """Give every cluster in `_units(unit, root, method, p)` an entity id; writes registry,
    entities and events, and leaves `_assigned(unit, entity_id, prior, root, method, p)` for the
    caller."""
    _gather_units(con, kind)
    _cluster(con)
    settled = _settle_contested(_contested(con), kind, run_id, now, reason,
                                _next_serial(con, kind))
    out = Assignment(created=settled.created, merged=settled.merged, split=settled.split)
    if settled.finals:
        con.executemany("INSERT INTO _final VALUES (?, ?)", settled.finals)
    out.created += _create_unseen(con, kind, run_id, now, reason, settled.serial)
    _write_contested(con, kind, run_id, settled)
    _write_registry(con, kind, run_id)
    out.entities = con.execute("SELECT count(DISTINCT entity_id) FROM _final").fetchall()[0][0]
    return out


def _gather_units(con, kind: str) -> None:
    """`_c(unit, root, method, p, prior)`: the run's units, plus every other unit of the entities
    they belonged to (with the root they were linked to): a split can only be seen with the whole
    former entity in view."""
    con.execute("""CREATE OR REPLACE TEMP TABLE _c AS
        SELECT u.unit, u.root, u.method, u.p, r.entity_id AS prior
        FROM _units u LEFT JOIN ident.registry r ON r.kind = ? AND r.unit = u.unit""", [kind])
    for scope in ("r.unit IN (SELECT root FROM _c)",  # the units they now link to
                  "r.entity_id IN (SELECT prior FROM _c)"):  # everyone of the entities involved
        con.execute(f"""INSERT INTO _c SELECT r.unit, r.root, r.method, r.p, r.entity_id
            FROM ident.registry r WHERE r.kind = ? AND {scope}
              AND r.unit NOT IN (SELECT unit FROM _c)""", [kind])


def _cluster(con) -> None:
    """`_cl`: each cluster (root) with its size and the ids its units had; `_shared`: ids held by
    several clusters; `_final(root, entity_id)` for the common case, settled in SQL: one prior
    id, held by this cluster alone."""
    con.execute("""CREATE OR REPLACE TEMP TABLE _cl AS
        SELECT root, count(*) AS n,
               coalesce(list(DISTINCT prior) FILTER (WHERE prior IS NOT NULL), []) AS priors,
               any_value(prior) FILTER (WHERE unit = root) AS root_prior
        FROM _c GROUP BY root""")
    con.execute("""CREATE OR REPLACE TEMP TABLE _shared AS
        SELECT prior FROM (SELECT DISTINCT root, prior FROM _c WHERE prior IS NOT NULL)
        GROUP BY prior HAVING count(*) > 1""")
    con.execute("""CREATE OR REPLACE TEMP TABLE _final AS
        SELECT root, priors[1] AS entity_id FROM _cl
        WHERE len(priors) = 1 AND priors[1] NOT IN (SELECT prior FROM _shared)""")


def _contested(con) -> list[tuple]:
    """(root, the root unit's prior id, [{prior, n units}]) of each cluster that had several ids
    or one another cluster also holds: merges and splits."""
    return con.execute("""
        SELECT root, any_value(root_prior), list({'prior': prior, 'n': k}) AS held FROM (
            SELECT c.root, any_value(cl.root_prior) AS root_prior, c.prior, count(*) AS k
            FROM _c c JOIN _cl cl USING (root)
            WHERE c.prior IS NOT NULL AND (len(cl.priors) > 1
                  OR cl.priors[1] IN (SELECT prior FROM _shared))
            GROUP BY c.root, c.prior)
        GROUP BY root ORDER BY root""").fetchall()


@dataclass
class _Settled:
    serial: int  # the next unused serial number
    finals: list[tuple[str, str]] = field(default_factory=list)  # (root, entity_id)
    entity_rows: list[tuple] = field(default_factory=list)  # (entity_id, state, successor)
    events: list[tuple] = field(default_factory=list)
    created: int = 0
    merged: int = 0
    split: int = 0


def _settle_contested(rows: list[tuple], kind: str, run_id: str, now, reason: str,
                      serial: int) -> _Settled:
    """Merges and splits: which cluster keeps each id held by several (the one whose root unit
    had it, then the one with most units of it, then by root: _neg); a cluster keeping several
    ids keeps its root's (else the smallest) and retires the others; one keeping none gets a new
    id."""
    out = _Settled(serial)
    keeper: dict[str, tuple] = {}
    for root, root_prior, held in rows:
        for h in held:
            rank = (h["prior"] == root_prior, h["n"], _neg(root))
            if h["prior"] not in keeper or rank > keeper[h["prior"]][0]:
                keeper[h["prior"]] = (rank, root)
    for root, root_prior, held in rows:
        kept = sorted(h["prior"] for h in held if keeper[h["prior"]][1] == root)
        lost = sorted(h["prior"] for h in held if keeper[h["prior"]][1] != root)
        if kept:
            survivor = root_prior if root_prior in kept else kept[0]
        else:
            survivor, out.serial = f"{PREFIX[kind]}{out.serial:09d}", out.serial + 1
            out.entity_rows.append((survivor, "active", None))
            out.created += 1
            out.events.append(_event(run_id, now, "created", survivor, None, [root],
                                     f"{reason}split off as a cluster of its own"))
        for old in lost:
            out.split += 1
            out.events.append(_event(run_id, now, "split", old, survivor, [root],
                                     f"{reason}units of {old} now link to a different cluster"))
        for old in kept:
            if old != survivor:
                out.merged += 1
                out.entity_rows.append((old, "merged", survivor))
                out.events.append(_event(run_id, now, "merged", survivor, old, [root],
                                         f"{reason}linked as one with {survivor}"))
        out.finals.append((root, survivor))
    return out


def _create_unseen(con, kind: str, run_id: str, now, reason: str, serial: int) -> int:
    """New ids from `serial` on for the clusters no id has seen, in one statement (printf widens
    past 9 digits where lpad would cut the number short, as the f-string in _settle_contested
    does), with their entities and creation events; returns how many."""
    con.execute(f"""INSERT INTO _final
        SELECT root, '{PREFIX[kind]}' || printf('%09d', CAST({serial} AS BIGINT)
                                                 + row_number() OVER (ORDER BY root) - 1)
        FROM _cl WHERE len(priors) = 0""")
    fresh = con.execute(f"""SELECT count(*) FROM _cl WHERE len(priors) = 0""").fetchall()[0][0]
    con.execute("""INSERT INTO ident.entity_events
        SELECT md5(? || '|created|' || f.entity_id)[:20], ?, ?, 'created', f.entity_id, NULL,
               list(c.unit ORDER BY c.unit), ?
        FROM _final f JOIN _c c USING (root) JOIN _cl cl USING (root)
        WHERE len(cl.priors) = 0 GROUP BY f.entity_id""",
                [run_id, run_id, now, f"{reason}first seen"])
    con.execute("""INSERT INTO ident.entities
        SELECT f.entity_id, ?, 'active', NULL, ?, ? FROM _final f JOIN _cl USING (root)
        WHERE len(_cl.priors) = 0""", [kind, run_id, run_id])
    return fresh


def _write_contested(con, kind: str, run_id: str, settled: _Settled) -> None:
    """The entities merges and splits created or retired, and their events."""
    for eid, state, successor in settled.entity_rows:
        con.execute("""INSERT INTO ident.entities VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (entity_id) DO UPDATE SET state = excluded.state,
                successor = excluded.successor, updated_run = excluded.updated_run""",
                    [eid, kind, state, successor, run_id, run_id])
    if settled.events:
        con.executemany("INSERT INTO ident.entity_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        settled.events)


def _write_registry(con, kind: str, run_id: str) -> None:
    """`_assigned` for the caller, and the registry rows that changed: a day's run touches a few
    rows, not the whole registry."""
    con.execute("""CREATE OR REPLACE TEMP TABLE _assigned AS
        SELECT c.unit, f.entity_id, c.prior, c.root, c.method, c.p
        FROM _c c JOIN _final f USING (root)""")
    con.execute("""INSERT INTO ident.registry
        SELECT ?, unit, entity_id, root, method, p, ?, ? FROM _assigned WHERE prior IS NULL""",
                [kind, run_id, run_id])
    con.execute("""UPDATE ident.registry r SET entity_id = a.entity_id, root = a.root,
            method = a.method, p = a.p, last_run = ?
        FROM _assigned a WHERE r.kind = ? AND r.unit = a.unit AND a.prior IS NOT NULL
          AND (a.prior <> a.entity_id OR r.root IS DISTINCT FROM a.root
               OR r.method IS DISTINCT FROM a.method OR r.p IS DISTINCT FROM a.p)""",
                [run_id, kind])


def _neg(root: str) -> tuple:
    return tuple(-ord(ch) for ch in root)  # smaller root ranks higher on a tie


def _event(run_id, now, kind, a, b, units, reason) -> tuple:
    return (_event_id(run_id, kind, a, b), run_id, now, kind, a, b, units, reason)


def _next_serial(con, kind: str) -> int:
    n = con.execute("""SELECT max(CAST(substr(entity_id, 4) AS BIGINT)) FROM ident.entities
                       WHERE kind = ?""", [kind]).fetchall()[0][0]
    return (n or 0) + 1
