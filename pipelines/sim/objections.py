"""Data objections (数据异议): the hub objects to a delivered record, the simulated provider answers.

`POST /api/v1/objections` files one objection; it is located at once (by the bulk locator
batch_id/file/line, else by the normalised record key) and its fate is drawn from a generator
seeded by (seed, objection_id) alone: corrected with `objection_correct_rate`, confirmed with
`objection_confirm_rate`, otherwise left "verifying" for ever. The delay k is uniform in
[1, objection_delay_days_max]: the decision takes effect on the k-th day advanced after receipt
(the first one is the day being simulated when the objection arrived).

A correction re-delivers the record's clean current version with CZLX "U" and GXSJ on that day
through the resource's normal channel (the day's PS incremental batches, an extra small
CU_DECL_MONTHLY batch, or the API change feed), never with injected defects. Answers form an
append-only feed per node (`GET /api/v1/objections/answers`), published with the day's
deliveries. State lives in memory, like the rest of the simulator's state; every mutator runs
under the simulator's lock.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import orjson

from pipelines.catalog.identifiers import normalize_citizen_id, upgrade_15_to_18
from pipelines.sim import records as R
from pipelines.sim.config import EPOCH, SimConfig, day_str, node_prefix, ts_iso, ts_str
from pipelines.sim.defects import Row
from pipelines.sim.drops import DropWriter
from pipelines.sim.feed import ResourceFeed, dumps, encode_cursor
from pipelines.sim.truth import Truth
from pipelines.sim.world import World, month_index

RESOURCES = R.BULK_RESOURCES + R.API_RESOURCES
REQUIRED = ("objection_id", "resource", "rule_id")
OPTIONAL_STR = ("batch_id", "file", "record_key", "field", "reason")
MAX_LEN = 4096
NOTE_VERIFYING = "provider is verifying the record"
NOTE_CONFIRMED = "provider confirms the delivered data is correct"
NOTE_NOT_FOUND = "record not found"
NOTE_GONE = "record no longer exists at the provider"
NOTE_OUT_OF_SCOPE = "record no longer lies in the node's jurisdiction"


class InvalidObjection(ValueError):
    pass


def parse_body(raw: bytes) -> dict:
    """The validated objection (every known key present, None when absent); raises
    InvalidObjection with a detail message. `resource` is upper-cased like the path parameter."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidObjection("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidObjection("body must be a JSON object")
    missing = [k for k in REQUIRED if body.get(k) is None]
    if missing:
        raise InvalidObjection(f"missing required keys: {', '.join(missing)}")
    for k in REQUIRED:
        v = body[k]
        if not isinstance(v, str) or not v.strip():
            raise InvalidObjection(f"{k} must be a non-empty string")
    for k in OPTIONAL_STR:
        v = body.get(k)
        if v is not None and not isinstance(v, str):
            raise InvalidObjection(f"{k} must be a string or null")
    for k in REQUIRED + OPTIONAL_STR:
        if isinstance(body.get(k), str) and len(body[k]) > MAX_LEN:
            raise InvalidObjection(f"{k} is longer than {MAX_LEN} characters")
    line = body.get("line")
    if line is not None and (not isinstance(line, int) or isinstance(line, bool) or line < 1):
        raise InvalidObjection("line must be a positive integer or null")
    out = {k: body.get(k) for k in REQUIRED + OPTIONAL_STR + ("line",)}
    out["resource"] = out["resource"].strip().upper()
    return out


def norm_key(key: str | None) -> str | None:
    """The hub's cosmetic normalisation, part by part: full-width folded, spaces removed,
    upper case (lowercase x -> X)."""
    if key is None:
        return None
    return "|".join(normalize_citizen_id(p) or "" for p in key.split("|"))


def _candidates(key: str | None) -> list[str]:
    """The normalised key, and the same with legacy 15-digit IDs upgraded to 18 digits."""
    nk = norm_key(key)
    if not nk:
        return []
    parts = nk.split("|")
    up = [upgrade_15_to_18(p) if len(p) == 15 and p.isascii() and p.isdigit() else p
          for p in parts]
    return [nk] if up == parts else [nk, "|".join(up)]


def _sec_of(gxsj: str) -> int:
    """Seconds since the epoch (Beijing time) of 'YYYY-MM-DD HH:MM:SS'."""
    d = (dt.date.fromisoformat(gxsj[:10]) - EPOCH).days
    return d * 86400 + int(gxsj[11:13]) * 3600 + int(gxsj[14:16]) * 60 + int(gxsj[17:19])


def _in_scope(scope, prefix: str) -> bool:
    return any(s.startswith(prefix) for s in scope)


@dataclass
class Objection:
    node: str
    objection_id: str
    resource: str
    record_key: str | None
    rule_id: str
    field: str | None
    received_day: int                 # simulator day index at receipt
    received_sec: int
    clean_key: str | None             # None: could not be located
    entity: str | None
    decision: str                     # corrected | confirmed | verifying | rejected
    decided_day: int | None           # day index the decision takes effect
    decided_sec: int | None
    response: dict
    status: str = "accepted"          # last published answer
    corrected_key: str | None = None
    redelivered_batch: str | None = None
    redelivered_pos: int | None = None  # global log position of the API re-delivery


@dataclass
class _Answer:
    ob: Objection
    status: str
    note: str
    sec: int
    corrected_key: str | None = None


class Platform(Protocol):
    """What the objections engine reads (and, for corrections, writes) of the simulator that
    owns it. The simulator builds the engine, so the engine names these attributes instead of
    importing the Simulator class; they are read at each use because the simulator replaces
    some of them (`day`, a grown `ps_known`) as it advances."""

    cfg: SimConfig
    day: int  # days advanced since the start
    world: World
    truth: Truth
    drops: DropWriter
    feeds: dict[str, ResourceFeed]  # API resource -> its change feed
    keys: dict[str, tuple[str, ...]]  # resource -> primary-key fields
    ps_known: np.ndarray  # person id -> already delivered in PS_POP_BASIC
    prefix_scope: tuple[str, ...]  # the node's county codes
    in_node: np.ndarray  # county index -> inside the node
    delivered_deaths: set[int]


class Objections:
    def __init__(self, sim: Platform):
        self.sim = sim
        cfg = sim.cfg
        self.correct_rate = float(cfg.objection_correct_rate)
        self.confirm_rate = float(cfg.objection_confirm_rate)
        self.delay_max = int(cfg.objection_delay_days_max)
        self.items: dict[tuple[str, str], Objection] = {}
        self.order: list[Objection] = []            # receipt order
        self.new: list[Objection] = []              # received since the last advance
        self.due: dict[int, list[Objection]] = {}   # day index -> decisions taking effect
        self.answers: dict[str, list[bytes]] = {}   # node -> serialised answers
        self.published: dict[str, int] = {}
        self.counts = dict.fromkeys(("received", "corrected", "confirmed", "rejected"), 0)
        # delivered (damaged) key, normalised -> (clean key, entity, scope); defective rows only
        self.alias: dict[str, dict[str, tuple[str, str, tuple]]] = {r: {} for r in RESOURCES}
        self.decl: dict[str, tuple[list, str]] = {}  # CU_DECL_MONTHLY key -> (values, entity)
        self._moves: dict[str, int] = {}
        self._ids_sorted: np.ndarray | None = None
        self._ids_order: np.ndarray | None = None
        self._ids_n = 0
        self._moves_scanned = 0
        self._api_ent: dict[str, dict[str, str]] = {r: {} for r in R.API_RESOURCES}
        self._api_scanned = dict.fromkeys(R.API_RESOURCES, 0)
        self._today: list[_Answer] = []
        self._bulk_pending: dict[str, list[_Answer]] = {}
        self._api_pending: list[_Answer] = []

    # --- notes taken while delivering ------------------------------------------------------------
    def note_bulk(self, resource: str, header: list[str], rows: list[Row]) -> None:
        """Remember the delivered key of defective rows whose key the defects changed."""
        kf = self.sim.keys[resource]
        if any(f not in header for f in kf):
            return
        idx = [header.index(f) for f in kf]
        alias = self.alias[resource]
        for r in rows:
            if not r.defects:
                continue
            vals = r.values
            parts = [vals[i] if i < len(vals) else None for i in idx]
            if any(not p for p in parts):
                continue
            dk = norm_key("|".join(parts))
            if dk != r.key:
                alias[dk] = (r.key, r.entity, ())

    def note_api(self, resource: str, rec: dict, key: str, entity: str, scope, defects) -> None:
        if not defects:
            return
        parts = [rec.get(f) for f in self.sim.keys[resource]]
        if any(not isinstance(p, str) or not p for p in parts):
            return
        dk = norm_key("|".join(parts))
        if dk != key:
            self.alias[resource][dk] = (key, entity, tuple(scope))

    def note_decl(self, key: str, values: list, entity: str) -> None:
        self.decl[key] = (values, entity)

    # --- receipt ---------------------------------------------------------------------------------
    def receive(self, node: str, body: dict) -> tuple[int, dict]:
        """File an objection (caller holds the simulator lock). (HTTP status, response)."""
        oid = body["objection_id"]
        old = self.items.get((node, oid))
        if old is not None:
            return 200, old.response
        sim = self.sim
        day = sim.day
        start = sim.cfg.start_ordinal
        hit = self.locate(node, body["resource"], body.get("record_key"), body.get("batch_id"),
                          body.get("file"), body.get("line"))
        h = int.from_bytes(hashlib.sha256(oid.encode("utf-8")).digest()[:8], "big")
        u = np.random.default_rng([sim.cfg.seed, 900, h]).random(4).tolist()
        received = (start + day) * 86400 + 8 * 3600 + int(u[2] * 7200)  # 08:00-10:00
        if hit is None:
            decision, decided, decided_sec = "rejected", day, received + 3600
        else:
            k = 1 + min(int(u[1] * self.delay_max), self.delay_max - 1)
            decided = day + k - 1
            decided_sec = (start + decided) * 86400 + 12 * 3600 + int(u[3] * 6 * 3600)
            if u[0] < self.correct_rate:
                decision = "corrected"
            elif u[0] < self.correct_rate + self.confirm_rate:
                decision = "confirmed"
            else:
                decision, decided, decided_sec = "verifying", None, None
        response = {"objection_id": oid, "status": "accepted", "received_at": ts_iso(received)}
        ob = Objection(node, oid, body["resource"], body.get("record_key"), body["rule_id"],
                       body.get("field"), day, received, hit[0] if hit else None,
                       hit[1] if hit else None, decision, decided, decided_sec, response)
        self.items[(node, oid)] = ob
        self.order.append(ob)
        self.new.append(ob)
        if hit is not None and decided is not None:
            self.due.setdefault(decided, []).append(ob)
        self.counts["received"] += 1
        return 201, response

    # --- locating --------------------------------------------------------------------------------
    def locate(self, node: str, resource: str, record_key, batch_id, file, line):
        """(clean key, entity) of the record the hub means, or None."""
        if resource in R.BULK_RESOURCES:
            if node != self.sim.cfg.node:
                return None  # drops go to --node only
            if batch_id and file and line:
                hit = self._by_locator(resource, batch_id, file, line)
                if hit is not None:
                    return hit
        prefix = node_prefix(node)
        for k in _candidates(record_key):
            hit = self._by_key(resource, k, prefix)
            if hit is not None:
                return hit
        return None

    def _by_locator(self, resource: str, batch_id: str, file: str, line: int):
        for ch in reversed(self.sim.truth.bulk):
            if ch.resource != resource or ch.batch_id != batch_id:
                continue
            step = max(1, self.sim.drops.part_rows)
            try:
                part = int(file.removeprefix("part-").split(".")[0])
                i = (part - 1) * step + line - 2
            except ValueError:
                i = -1
            if not (0 <= i < len(ch.files) and ch.files[i] == file and ch.lines[i] == line):
                i = next((j for j, (f, ln) in enumerate(zip(ch.files, ch.lines, strict=True))
                          if f == file and ln == line), -1)
            return (ch.keys[i], ch.entities[i]) if i >= 0 else None
        return None

    def _by_key(self, resource: str, k: str, prefix: str):
        sim = self.sim
        hit = None
        if resource == "PS_POP_BASIC":
            pid = self._pid_of(k)
            if pid is not None and pid < len(sim.ps_known) and sim.ps_known[pid]:
                hit = (k, f"P{pid}")
        elif resource == "PS_HUKOU_MOVE":
            i = self._move_index(k)
            if i is not None:
                rec = sim.world.moves[i]
                if rec["QCD_XZQHDM"] in sim.prefix_scope or rec["QRD_XZQHDM"] in sim.prefix_scope:
                    hit = (k, f"P{rec['_pid']}")
        elif resource == "CU_DECL_MONTHLY":
            got = self.decl.get(k)
            if got is not None:
                hit = (k, got[1])
        elif resource == "CA_SUBSISTENCE":
            got = self._subsistence(k)
            if got is not None and _in_scope(got[1], prefix):
                hit = (k, f"P{got[2]}")
        else:
            ent = self._api_entity(resource, k)
            if ent is not None:
                st = sim.feeds[resource].state.get(tuple(k.split("|")))
                if st is None or _in_scope(st[1], prefix):  # deleted records are still located
                    hit = (k, ent)
        if hit is None:
            a = self.alias[resource].get(k)
            if a is not None and (not a[2] or _in_scope(a[2], prefix)):
                hit = (a[0], a[1])
        return hit

    def _pid_of(self, gid: str) -> int | None:
        """Person with this ID: binary search in a sorted copy of the IDs known when it was
        built (existing IDs never change), a scan of persons added since."""
        if len(gid) != 18 or not gid.isascii():
            return None
        w = self.sim.world
        ids = w.cols["id18"]
        if self._ids_sorted is None or w.n - self._ids_n > 20_000:
            self._ids_n = w.n
            self._ids_order = np.argsort(ids[: w.n], kind="stable")
            self._ids_sorted = ids[: w.n][self._ids_order]
        key = gid.encode()
        i = int(np.searchsorted(self._ids_sorted, key))
        if i < len(self._ids_sorted) and self._ids_sorted[i] == key:
            return int(self._ids_order[i])
        hits = np.nonzero(ids[self._ids_n: w.n] == key)[0]
        return self._ids_n + int(hits[0]) if len(hits) else None

    def _move_index(self, ywlsh: str) -> int | None:
        moves = self.sim.world.moves
        for i in range(self._moves_scanned, len(moves)):
            self._moves[moves[i]["YWLSH"]] = i
        self._moves_scanned = len(moves)
        return self._moves.get(ywlsh)

    def _api_entity(self, resource: str, key: str) -> str | None:
        items = self.sim.truth.api.get(resource, [])
        idx = self._api_ent[resource]
        for _pos, k, ent in items[self._api_scanned[resource]:]:
            idx[k] = ent
        self._api_scanned[resource] = len(items)
        return idx.get(key)

    def _subsistence(self, key: str):
        """(record, scope, pid) of a CA_SUBSISTENCE row GMSFHM|BZNY the API has delivered."""
        parts = key.split("|")
        if len(parts) != 2 or len(parts[1]) != 6 or not parts[1].isdigit():
            return None
        pid = self._pid_of(parts[0])
        if pid is None:
            return None
        mi = int(parts[1][:4]) * 12 + int(parts[1][4:]) - 1
        sim = self.sim
        mi0 = month_index(sim.cfg.start_ordinal)
        if not mi0 - 12 <= mi <= month_index(sim.cfg.start_ordinal + sim.day):
            return None
        s = sim.world.sub
        if not s or not (s["pid"] == pid).any():
            return None
        for rec, scope, p in R.subsistence_recs(sim.world, mi):
            if p == pid:
                return rec, scope, pid
        return None

    # --- the day ---------------------------------------------------------------------------------
    def begin_day(self, d: int, today: int) -> dict[str, list[Row]]:
        """After the day's events: answers for objections received before this day, decisions
        taking effect today; returns the bulk correction rows per resource."""
        self._today = []
        self._bulk_pending = {}
        self._api_pending = []
        for ob in self.new:
            if ob.clean_key is None:
                self._today.append(_Answer(ob, "rejected", NOTE_NOT_FOUND, ob.received_sec + 3600))
            else:
                self._today.append(_Answer(ob, "verifying", NOTE_VERIFYING,
                                           ob.received_sec + 3600))
        self.new = []
        rows: dict[str, dict[str, Row]] = {}
        for ob in self.due.pop(d, []):
            if ob.decision == "confirmed":
                self._today.append(_Answer(ob, "confirmed", NOTE_CONFIRMED, ob.decided_sec))
                continue
            a = _Answer(ob, "corrected", "", ob.decided_sec)
            self._today.append(a)
            if ob.resource in R.API_RESOURCES:
                self._api_pending.append(a)
                continue
            per = rows.setdefault(ob.resource, {})
            row = per.get(ob.clean_key)
            if row is None:
                row = self._bulk_row(ob, today)
                if row is None:
                    a.status, a.note = "rejected", NOTE_GONE
                    continue
                per[ob.clean_key] = row
            a.sec = _sec_of(row.values[-1])
            a.corrected_key = row.key
            self._bulk_pending.setdefault(ob.resource, []).append(a)
        return {r: list(per.values()) for r, per in rows.items()}

    def _bulk_row(self, ob: Objection, today: int) -> Row | None:
        sim = self.sim
        w = sim.world
        sec = ob.decided_sec
        if ob.resource == "PS_POP_BASIC":
            pid = int(ob.entity[1:])
            vals = R.ps_pop_row(w, pid, sim.in_node, today)
            if vals is None:
                return None
            c = w.cols
            sec = self._after(sec, int(c["gxsj"][pid]), today)
            c["gxsj"][pid] = sec
            if vals[8] == "1":
                sim.delivered_deaths.add(pid)
            key = vals[0]
        elif ob.resource == "PS_HUKOU_MOVE":
            i = self._move_index(ob.clean_key)
            if i is None:
                return None
            rec = w.moves[i]
            vals = R.move_row(rec)
            sec = self._after(sec, int(rec["_gxsj"]), today)
            key = rec["YWLSH"]
        else:  # CU_DECL_MONTHLY
            got = self.decl.get(ob.clean_key)
            if got is None:
                return None
            vals = list(got[0])
            key = ob.clean_key
        return Row(vals + ["U", ts_str(sec)], key, ob.entity, clean=True)

    @staticmethod
    def _after(sec: int, last: int, today: int) -> int:
        """The correction's time: after the record's last change, within the day."""
        if last >= sec:
            sec = min(last + 1, today * 86400 + 86399)
        return sec

    def bulk_delivered(self, resource: str, batch_id: str) -> None:
        for a in self._bulk_pending.pop(resource, []):
            a.ob.redelivered_batch = batch_id
            a.note = f"corrected: re-delivered in {resource} batch {batch_id} (CZLX U)"

    def api_day(self, d: int) -> None:
        """Append today's API corrections (after the day's changes, before publishing)."""
        sim = self.sim
        done: dict[tuple[str, str], tuple[int, str]] = {}
        today = sim.cfg.start_ordinal + d
        for a in self._api_pending:
            ob = a.ob
            got = done.get((ob.resource, ob.clean_key))
            if got is None:
                got = self._api_correction(ob, today)
                if isinstance(got, str):
                    a.status, a.note = "rejected", got
                    continue
                done[(ob.resource, ob.clean_key)] = got
            ob.redelivered_pos = got[0]
            a.sec = _sec_of(got[1])
            a.corrected_key = ob.clean_key
            a.note = f"corrected: re-delivered in the {ob.resource} change feed (CZLX U)"
        self._api_pending = []

    def _api_correction(self, ob: Objection, today: int) -> tuple[int, str] | str:
        sim = self.sim
        resource = ob.resource
        feed = sim.feeds[resource]
        key = tuple(ob.clean_key.split("|"))
        if resource == "CA_SUBSISTENCE":
            got = self._subsistence(ob.clean_key)
            if got is None:
                return NOTE_GONE
            rec, scope = dict(got[0]), got[1]
            last = None
        else:
            st = feed.state.get(key)
            if st is None:
                return NOTE_GONE
            rec, scope = orjson.loads(st[0]), st[1]
            last = rec.get("GXSJ")
        if not _in_scope(scope, node_prefix(ob.node)):
            return NOTE_OUT_OF_SCOPE
        clean = {k: v for k, v in rec.items() if k not in ("CZLX", "GXSJ")}
        sec = ob.decided_sec
        if last:
            sec = self._after(sec, _sec_of(last), today)
        g = ts_str(sec)
        pos = feed.append({**clean, "CZLX": "U", "GXSJ": g}, scope, (), None)
        if resource != "CA_SUBSISTENCE":
            feed.put_state(key, {**clean, "GXSJ": g}, scope)
        sim.truth.add_api(resource, pos, ob.clean_key, ob.entity, [])
        return pos, g

    def end_day(self) -> None:
        """Publish the day's answers (in receipt order: acknowledgements, then decisions)."""
        for a in self._today:
            ob = a.ob
            ob.status = a.status
            if a.status == "corrected":
                ob.corrected_key = a.corrected_key
            if a.status in self.counts:
                self.counts[a.status] += 1
            if a.status == "rejected" and ob.decision != "rejected":
                ob.decision = "rejected"
            body = {"objection_id": ob.objection_id, "status": a.status,
                    "corrected_key": a.corrected_key if a.status == "corrected" else None,
                    "note": a.note, "answered_at": ts_iso(a.sec)}
            self.answers.setdefault(ob.node, []).append(dumps(body))
        self._today = []
        for node, lst in self.answers.items():
            self.published[node] = len(lst)

    # --- reading ---------------------------------------------------------------------------------
    def page(self, node: str, seq: int, limit: int) -> bytes:
        lst = self.answers.get(node, [])
        pub = self.published.get(node, 0)
        end = min(seq + limit, pub)
        recs = lst[seq:end] if end > seq else []
        return b"".join((b'{"answers":[', b",".join(recs), b'],"next_cursor":',
                         orjson.dumps(encode_cursor(max(end, seq))), b',"has_more":',
                         b"true" if end < pub else b"false", b"}"))

    def status(self) -> dict:
        c = self.counts
        return {**c, "pending": c["received"] - c["corrected"] - c["confirmed"] - c["rejected"],
                "rates": {"objection_correct_rate": self.correct_rate,
                          "objection_confirm_rate": self.confirm_rate,
                          "objection_delay_days_max": self.delay_max}}

    def truth_columns(self) -> dict[str, list]:
        sim = self.sim
        start = sim.cfg.start_ordinal
        cols: dict[str, list] = {k: [] for k in TRUTH_COLUMNS}
        for ob in self.order:
            where = ob.redelivered_batch
            if ob.redelivered_pos is not None:
                idx = sim.feeds[ob.resource].node_positions(ob.node)
                s = bisect.bisect_left(idx, ob.redelivered_pos)
                where = str(s) if s < len(idx) and idx[s] == ob.redelivered_pos else None
            row = {"objection_id": ob.objection_id, "node": ob.node, "resource": ob.resource,
                   "record_key": ob.record_key, "rule_id": ob.rule_id, "field": ob.field,
                   "entity": ob.entity, "clean_key": ob.clean_key, "decision": ob.decision,
                   "decided_day": day_str(start + ob.decided_day)
                   if ob.decided_day is not None else None,
                   "corrected_key": ob.corrected_key, "redelivered_batch_or_feed_pos": where,
                   "received_day": day_str(start + ob.received_day), "status": ob.status}
            for k, v in row.items():
                cols[k].append(v)
        return cols


TRUTH_COLUMNS = ("objection_id", "node", "resource", "record_key", "rule_id", "field", "entity",
                 "clean_key", "decision", "decided_day", "corrected_key",
                 "redelivered_batch_or_feed_pos", "received_day", "status")
