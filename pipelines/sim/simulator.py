"""The simulator: world + daily engine + deliveries (bulk drops for the node, API feeds and
snapshots for any node) + ground truth. `advance(days)` is the only mutator and holds a lock;
readers use only published feed prefixes and never wait for it.

Schedule (delivery times are simulated Beijing time):
- day 0 (startup): PS_POP_BASIC full snapshot; PS_HUKOU_MOVE incremental with the last year of
  moves; CU_DECL_MONTHLY with the last three months; API feeds hold the history, snapshot 0.
- advancing past day d: PS_POP_BASIC and PS_HUKOU_MOVE incrementals with day d's changes (T+1,
  extracted at 02:00 on day d+1); day d's API changes are published.
- on reaching the 1st of a month: PS_POP_BASIC full snapshot, CU_DECL_MONTHLY for the previous
  month, the subsistence roll for the new month, and an API snapshot of every API resource.
- data objections (objections.py): answered and corrected day by day; corrections travel in the
  day's PS incrementals, an extra CU_DECL_MONTHLY incremental, or the day's API changes.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from pipelines.sim import records as R
from pipelines.sim.config import (
    SimConfig,
    day_date,
    day_str,
    ts_iso,
    ts_str,
    ts_strs,
    update_rates,
)
from pipelines.sim.defects import Injector, Row
from pipelines.sim.drops import DropWriter
from pipelines.sim.events import Engine
from pipelines.sim.faults import Faults
from pipelines.sim.feed import ResourceFeed
from pipelines.sim.objections import Objections
from pipelines.sim.truth import Truth
from pipelines.sim.world import build_world, month_index

log = logging.getLogger(__name__)
RES_INDEX = {r: i for i, r in enumerate(R.BULK_RESOURCES + R.API_RESOURCES)}


class Simulator:
    def __init__(self, cfg: SimConfig):
        t0 = time.perf_counter()
        self.cfg = cfg
        self.world = build_world(cfg)
        self.t_world = time.perf_counter() - t0
        self.engine = Engine(self.world)
        self.in_node = self.world.in_node_mask(cfg.node)
        self.prefix_scope = tuple(c.code for c in self.world.data.counties if self.in_node[c.idx])
        self.feeds = {r: ResourceFeed(r) for r in R.API_RESOURCES}
        self.fields = {r: R.fields_of(r) for r in R.API_RESOURCES + R.BULK_RESOURCES}
        self.keys = {r: R.key_of(r) for r in R.API_RESOURCES + R.BULK_RESOURCES}
        self.injector = Injector()
        self.truth = Truth()
        self.faults = Faults(cfg.seed, cfg.faults)
        self.defect_rates = dict(cfg.defects)
        self.drops = DropWriter(Path(cfg.drop_root), cfg.node, cfg.part_rows)
        self.batch_seq = dict.fromkeys(R.BULK_RESOURCES, 0)
        self.batches = dict.fromkeys(R.BULK_RESOURCES, 0)
        self.ps_known = np.zeros(self.world.n + 1024, dtype=bool)
        self.delivered_deaths: set[int] = set()
        self.day = 0
        self.lock = threading.Lock()
        self._ps: list[tuple[int, list]] = []
        self._moves: list[dict] = []
        self._api: list[tuple] = []
        self._today = cfg.start_ordinal
        self.objections = Objections(self)
        self.timings: dict[str, float] = {"world": self.t_world}
        self._initial()
        self.t_ready = time.perf_counter() - t0

    # --- sink for the engine ---------------------------------------------------------------------
    def ps_changed(self, pid: int, gxsj: int, move: bool = False) -> None:
        row = R.ps_pop_row(self.world, pid, self.in_node, self._today)
        if row is None:
            return
        if row[8] == "0" and not self.in_node[self.world.cols["county"][pid]]:
            return  # moved away, never cancelled here (move_not_cancelled): the origin hears no more
        if row[8] == "2" and not (move and self.in_node[self.world.moved[pid][-1][0]]):
            return  # only the 迁出 update itself: later changes happen in another jurisdiction
        if pid >= len(self.ps_known):
            grown = np.zeros(max(pid + 1, len(self.ps_known) * 3 // 2), dtype=bool)
            grown[: len(self.ps_known)] = self.ps_known
            self.ps_known = grown
        czlx = "U" if self.ps_known[pid] else "I"
        self.ps_known[pid] = True
        if row[8] == "1":
            self.delivered_deaths.add(pid)
        self._ps.append((pid, row + [czlx, ts_str(gxsj)]))

    def move_records(self, recs: list[dict]) -> None:
        self._moves.extend(recs)

    def api(self, resource, rec, scope, czlx, gxsj, entity) -> None:
        self._api.append((resource, rec, scope, czlx, gxsj, entity))

    # --- deliveries ------------------------------------------------------------------------------
    def _batch_id(self, resource: str, deliver_sec: int) -> str:
        self.batch_seq[resource] += 1
        s = ts_str(deliver_sec)
        return f"{s[:10].replace('-', '')}T{s[11:].replace(':', '')}-{self.batch_seq[resource]:06d}"

    def _write_bulk(self, resource: str, rows: list[Row], mode: str, deliver_sec: int) -> str:
        batch_id = self._batch_id(resource, deliver_sec)
        seq = self.batch_seq[resource]
        rng = np.random.default_rng([self.cfg.seed, 400, RES_INDEX[resource], seq])
        header = self.fields[resource] + ["CZLX", "GXSJ"]
        plan = self.injector.plan_bulk(resource, header, rows, self.defect_rates, rng,
                                       incremental=mode == "incremental")
        fault = self.faults.pick_bulk(rng)
        encoding = None
        if R.provider_of(resource) == "CU" and rng.random() < 0.05:
            encoding = "GBK"
        wb = self.drops.write(R.provider_of(resource), resource, batch_id, mode,
                              ts_iso(deliver_sec), plan, encoding, fault, rng)
        self.truth.add_bulk(resource, batch_id, plan.rows, wb.placement, plan.batch_defects)
        self.objections.note_bulk(resource, plan.header, plan.rows)
        if fault:
            self.truth.add_fault(resource, batch_id, fault)
        self.batches[resource] += 1
        return batch_id

    def _ps_rows(self) -> list[Row]:
        return [Row(vals, vals[0], f"P{pid}") for pid, vals in self._ps]

    def _move_rows(self, recs: list[dict]) -> list[Row]:
        p = self.prefix_scope
        out = []
        for rec in recs:
            if rec["QCD_XZQHDM"] in p or rec["QRD_XZQHDM"] in p:
                out.append(Row(R.move_row(rec) + ["I", ts_str(rec["_gxsj"])], rec["YWLSH"],
                               f"P{rec['_pid']}"))
        return out

    def _full_ps(self, asof: int, deliver_sec: int) -> None:
        w = self.world
        pids, rows = R.ps_pop_rows(w, self.in_node, asof)
        rng = np.random.default_rng([self.cfg.seed, 500, asof])
        stale_rate = self.defect_rates.get("stale_status", 0)
        gx = w.cols["gxsj"]
        gxs = ts_strs(gx[np.asarray(pids, dtype=np.int64)]) if pids else []
        out = []
        for pid, vals, g in zip(pids, rows, gxs, strict=True):
            vals.append("I")
            vals.append(g)
            r = Row(vals, vals[0], f"P{pid}")
            if (vals[8] == "1" and pid in self.delivered_deaths and stale_rate
                    and rng.random() < stale_rate):
                r.values[8], r.values[9] = "0", None
                r.values[11] = ts_str(int(gx[pid]) - 86400 * int(rng.integers(30, 400)))
                r.mark("stale_status", "RYZTDM")
            out.append(r)
            if vals[8] == "1":
                self.delivered_deaths.add(pid)
        if pids:
            top = max(pids) + 1
            if top > len(self.ps_known):
                grown = np.zeros(top + 1024, dtype=bool)
                grown[: len(self.ps_known)] = self.ps_known
                self.ps_known = grown
            self.ps_known[np.array(pids)] = True
        self._write_bulk("PS_POP_BASIC", out, "full", deliver_sec)

    def _decl(self, months: list[int], deliver_sec: int) -> None:
        w = self.world
        out = []
        for mi in months:
            rng = np.random.default_rng([self.cfg.seed, 7, mi])
            gx = ts_str(deliver_sec - 3600 * 3)
            for vals, eid in R.decl_rows(w, mi, rng):
                if self.in_node[w.enterprises[eid].county]:
                    out.append(Row(vals + ["I", gx], f"{vals[0]}|{vals[2]}", f"E{eid}"))
                    self.objections.note_decl(f"{vals[0]}|{vals[2]}", vals, f"E{eid}")
        self._write_bulk("CU_DECL_MONTHLY", out, "incremental", deliver_sec)

    def _publish_api(self, items: list[tuple], day_key: int, publish: bool = True) -> None:
        rng = np.random.default_rng([self.cfg.seed, 300, day_key])
        for resource in R.API_RESOURCES:
            feed = self.feeds[resource]
            kf = self.keys[resource]
            for rec, defects in self.injector.release_api(resource):
                self._append(resource, feed, kf, rec, defects, (), "")
        draws = rng.random((len(items), 7)).tolist() if items else []
        for (resource, rec, scope, czlx, gxsj, entity), u in zip(items, draws, strict=True):
            feed = self.feeds[resource]
            kf = self.keys[resource]
            key = tuple(rec[k] for k in kf)
            g = ts_str(gxsj)
            if czlx == "D":
                feed.state.pop(key, None)
            else:
                feed.put_state(key, {**rec, "GXSJ": g}, scope)
            # routing data travels with every copy (held, duplicated, re-sent) and is popped
            # before serialisation
            full = {**rec, "CZLX": czlx, "GXSJ": g, "_scope": scope, "_entity": entity,
                    "_key": "|".join(key)}
            for out, defects in self.injector.plan_api(resource, full, kf, self.defect_rates, rng,
                                                             u):
                self._append(resource, feed, kf, out, defects, scope, entity)
        if publish:
            for feed in self.feeds.values():
                feed.publish()

    def _append(self, resource, feed: ResourceFeed, kf, rec, defects, scope, entity) -> None:
        scope = rec.pop("_scope", scope)
        entity = rec.pop("_entity", entity)
        key = rec.pop("_key", "|".join(str(rec.get(k)) for k in kf))
        pos = feed.append(rec, scope, (), None)
        self.truth.add_api(resource, pos, key, entity, defects)
        self.objections.note_api(resource, rec, key, entity, scope, defects)

    # --- initial delivery ----------------------------------------------------------------------
    def _initial(self) -> None:
        w, cfg = self.world, self.cfg
        start = cfg.start_ordinal
        t = time.perf_counter()
        items: list[tuple] = []
        for m, (rec, scope) in zip(w.marriages, R.marriage_recs(w, w.marriages), strict=True):
            items.append(("CA_MARRIAGE", rec, scope, "I", m.gxsj, f"M{m.mid}"))
        rng = np.random.default_rng([cfg.seed, 6])
        for pid in sorted(w.deaths):
            crem, _ = w.deaths[pid]
            if crem < start:
                rec, scope = R.cremation_rec(w, pid)
                items.append(("CA_CREMATION", rec, scope, "I",
                              crem * 86400 + int(rng.integers(32400, 61200)), f"P{pid}"))
        for e in w.enterprises:
            rec, scope = R.ent_rec(w, e)
            items.append(("CU_ENT_REG", rec, scope, "I", e.gxsj, f"E{e.eid}"))
        for p in w.penalties:
            rec, scope = R.penalty_rec(w, p)
            items.append(("CU_PENALTY", rec, scope, "I", p.gxsj, f"E{p.eid}"))
        for o in w.orgs:
            rec, scope = R.org_rec(w, o)
            items.append(("CA_SOCIAL_ORG", rec, scope, "I", o.gxsj, f"O{o.oid}"))
        items.sort(key=lambda it: it[4])
        self.timings["api_records"] = time.perf_counter() - t
        self._publish_api(items, 1_000_000)
        self.timings["api_publish"] = time.perf_counter() - t
        mi0 = month_index(start)
        for mi in range(mi0 - 12, mi0 + 1):
            self._subsistence_month(mi)
        self._snapshots(start)
        self.timings["subsistence"] = time.perf_counter() - t
        deliver = start * 86400 + 2 * 3600
        self._full_ps(start - 1, deliver)
        self.timings["ps_full"] = time.perf_counter() - t
        self._write_bulk("PS_HUKOU_MOVE", self._move_rows(w.moves), "incremental", deliver)
        self._decl([mi0 - 3, mi0 - 2, mi0 - 1], deliver)
        self.timings["bulk_rest"] = time.perf_counter() - t

    def _subsistence_month(self, mi: int) -> None:
        feed = self.feeds["CA_SUBSISTENCE"]
        y, m = divmod(mi, 12)
        gx = f"{y}-{m + 1:02d}-01 09:00:00"
        for rec, scope, _pid in R.subsistence_recs(self.world, mi):
            rec["GXSJ"] = gx
            feed.add_extra(rec, scope)

    def _snapshots(self, day: int) -> None:
        sid = f"{day_str(day)}T000000"
        as_of = ts_iso(day * 86400)
        for feed in self.feeds.values():
            feed.take_snapshot(sid, as_of)

    # --- advancing -------------------------------------------------------------------------------
    def advance(self, days: int) -> dict:
        with self.lock:
            for wb in self.drops.repair():
                self.truth.mark_repaired(wb.resource, wb.batch_id)
            for _ in range(days):
                self._advance_one()
            return self.status_brief()

    def _advance_one(self) -> None:
        cfg = self.cfg
        d = self.day
        today = cfg.start_ordinal + d
        self._today = today
        self._ps, self._moves, self._api = [], [], []
        self.engine.step(d, self)
        obj = self.objections
        corr = obj.begin_day(d, today)  # objection answers; corrections due today (clean rows)
        deliver = (today + 1) * 86400 + 2 * 3600
        bid = self._write_bulk("PS_POP_BASIC", self._ps_rows() + corr.get("PS_POP_BASIC", []),
                               "incremental", deliver)
        obj.bulk_delivered("PS_POP_BASIC", bid)
        bid = self._write_bulk("PS_HUKOU_MOVE", self._move_rows(self._moves)
                               + corr.get("PS_HUKOU_MOVE", []), "incremental", deliver)
        obj.bulk_delivered("PS_HUKOU_MOVE", bid)
        if corr.get("CU_DECL_MONTHLY"):  # monthly drops only: an extra small incremental batch
            bid = self._write_bulk("CU_DECL_MONTHLY", corr["CU_DECL_MONTHLY"], "incremental",
                                   deliver)
            obj.bulk_delivered("CU_DECL_MONTHLY", bid)
        self._publish_api(self._api, d, publish=False)
        obj.api_day(d)  # after the day's changes, so a correction carries the current state
        for feed in self.feeds.values():
            feed.publish()
        obj.end_day()
        self.day = d + 1
        nxt = today + 1
        if day_date(nxt).day == 1:
            self.engine.new_month(nxt)
            self._full_ps(today, deliver + 1800)
            self._decl([month_index(today)], deliver + 1800)
            self._subsistence_month(month_index(nxt))
            self._snapshots(nxt)
        log.info("advanced to day %d (%s)", self.day, day_date(nxt).isoformat())

    # --- admin -----------------------------------------------------------------------------------
    def status_brief(self) -> dict:
        return {"day": self.day, "date": day_date(self.cfg.start_ordinal + self.day).isoformat()}

    def status(self) -> dict:
        return {**self.status_brief(), "seed": self.cfg.seed, "scale": self.cfg.scale,
                "node": self.cfg.node,
                "feeds": {r: f.node_length(self.cfg.node) for r, f in self.feeds.items()},
                "batches": dict(self.batches), "objections": self.objections.status()}

    def receive_objection(self, node: str, body: dict) -> tuple[int, dict]:
        with self.lock:
            return self.objections.receive(node, body)

    def set_defects(self, changes: dict) -> dict:
        with self.lock:
            self.defect_rates = update_rates(self.defect_rates, changes, "defect")
            return dict(self.defect_rates)

    def write_truth(self) -> Path:
        with self.lock:
            return self.truth.write(Path(self.cfg.state_dir) / "truth", self)
