"""Daily change events: births, deaths (cremation, lagged hukou cancellation), marriages and
divorces (lagged marital-status update in the population register), hukou moves, enterprise and
social-organisation changes, penalties, and the monthly subsistence roll.

`Engine.step(day, sink)` mutates the world for one simulated day and reports every change to the
sink. Randomness comes from `default_rng([seed, 100, day])`, so a day's events do not depend on how
the days were batched into advance calls.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

import numpy as np

from pipelines.sim import records as R
from pipelines.sim.world import (
    REGIME_LEVELS,
    YEAR,
    World,
    pick1,
    add_marriage,
    assign_ids,
    enterprise_name,
    funeral_home,
    given_names,
    legal_representatives,
    marry_foreign,
    month_index,
    move_person,
    new_enterprise,
    new_org,
    new_penalty,
    new_sub_arrays,
)

# Annual rates per person (population events) or per entity (organisations).
RATES = {
    "birth": 0.0064, "marriage": 0.0045, "divorce": 0.0019, "move": 0.015,
    "ent_credit": 0.06, "ent_name": 0.02, "ent_rep": 0.03, "ent_dereg": 0.01, "ent_new": 0.04,
    "penalty": 0.03, "penalty_revoke": 0.02,
    "org_new": 0.03, "org_change": 0.04, "org_dereg": 0.01,
}
MORTALITY_A, MORTALITY_B = 0.0004, 0.085  # Gompertz: m(age) = A * exp(B * (age - 30)) per year


class Sink(Protocol):
    def ps_changed(self, pid: int, gxsj: int, move: bool = False) -> None: ...
    def move_records(self, recs: list[dict]) -> None: ...
    def api(self, resource: str, rec: dict, scope: tuple[str, ...], czlx: str, gxsj: int,
            entity: str) -> None: ...


class Engine:
    def __init__(self, world: World):
        self.w = world
        self.cfg = world.cfg
        self.pending: dict[int, list[tuple]] = defaultdict(list)
        start = self.cfg.start_ordinal
        c = world.cols
        # history that is still in flight at day 0: cancellations and cremations not yet done
        for pid in sorted(world.deaths):
            crem, _home = world.deaths[pid]
            if crem >= start:
                self.pending[crem - start].append(("cremate", pid))
            cancel = int(c["cancel"][pid])
            if cancel >= start:
                self.pending[cancel - start].append(("cancel", pid))

    # --- helpers ---------------------------------------------------------------------------------
    def _t(self, rng, day_abs: int) -> int:
        return day_abs * 86400 + int(rng.integers(8 * 3600, 18 * 3600))

    def _count(self, rng, base: float, rate: float) -> int:
        return int(rng.poisson(base * rate / 365.0 * self.cfg.activity))

    def schedule(self, day: int, action: tuple) -> None:
        self.pending[day].append(action)

    # --- one day -------------------------------------------------------------------------------
    def step(self, day: int, sink: Sink) -> None:
        w, c = self.w, self.w.cols
        rng = np.random.default_rng([self.cfg.seed, 100, day])
        today = self.cfg.start_ordinal + day
        for action in self.pending.pop(day, []):
            self._run_pending(action, day, today, rng, sink)
        n = w.n
        alive = np.nonzero((c["death"][:n] < 0) & c["registered"][:n])[0]
        age = (today - c["birth"][alive]) / YEAR
        self._births(rng, day, today, alive, age)
        self._deaths(rng, day, today, alive, age, sink)
        self._marriages(rng, day, today, alive, age, sink)
        self._divorces(rng, day, today, alive, sink)
        self._moves(rng, day, today, alive, age, sink)
        self._enterprises(rng, day, today, sink)
        self._orgs(rng, day, today, sink)

    def _run_pending(self, action: tuple, day: int, today: int, rng, sink: Sink) -> None:
        w, c = self.w, self.w.cols
        kind, pid = action[0], action[1]
        t = self._t(rng, today)
        if kind == "register":
            c["registered"][pid] = True
            c["gxsj"][pid] = t
            sink.ps_changed(pid, t)
        elif kind == "cancel":
            c["gxsj"][pid] = t
            sink.ps_changed(pid, t)
            survivor = w.widow_pending.pop(pid, None)
            if survivor is not None and c["death"][survivor] < 0:
                c["ps_marital"][survivor] = 30
                c["gxsj"][survivor] = t + 60
                sink.ps_changed(survivor, t + 60)
        elif kind == "cremate":
            rec, scope = R.cremation_rec(w, pid)
            sink.api("CA_CREMATION", rec, scope, "I", t, f"P{pid}")
        elif kind == "marital":
            if c["death"][pid] < 0:
                c["ps_marital"][pid] = action[2]
                c["gxsj"][pid] = t
                sink.ps_changed(pid, t)

    def _births(self, rng, day, today, alive, age) -> None:
        w, c = self.w, self.w.cols
        k = self._count(rng, len(alive), RATES["birth"])
        if k == 0:
            return
        mothers = alive[(c["sex"][alive] == 2) & (age >= 20) & (age <= 42)
                        & (c["spouse"][alive] >= 0)]
        if len(mothers) == 0:
            return
        mothers = rng.choice(mothers, size=min(k, len(mothers)), replace=False)
        twins = rng.random(len(mothers)) < 0.012
        mo = np.concatenate([mothers, mothers[twins]])
        kids = w.grow(len(mo))
        fa = c["spouse"][mo]
        c["mother"][kids], c["father"][kids] = mo, fa
        c["birth"][kids] = today
        c["sex"][kids] = rng.integers(1, 3, len(kids))
        c["surname"][kids] = np.where(rng.random(len(kids)) < 0.94, c["surname"][fa],
                                      c["surname"][mo])
        c["g1"][kids], c["g2"][kids] = given_names(w, rng, c["sex"][kids])
        c["eth"][kids] = np.where(rng.random(len(kids)) < 0.5, c["eth"][fa], c["eth"][mo])
        c["county"][kids] = c["county"][mo]
        c["addr"][kids] = c["addr"][mo]
        c["registered"][kids] = False
        nt = int(twins.sum())
        if nt:
            tg = np.arange(w.twin_groups, w.twin_groups + nt)
            c["twin"][kids[len(mothers):]] = tg
            c["twin"][kids[: len(mothers)][twins]] = tg
            w.twin_groups += nt
        self._unique_newborn_ids(rng, kids, today)
        lag = rng.integers(3, 31, len(mothers))
        lag = np.concatenate([lag, lag[twins]])
        for pid, lg in zip(kids.tolist(), lag.tolist(), strict=True):
            self.schedule(day + lg, ("register", pid))

    def _unique_newborn_ids(self, rng, kids, today) -> None:
        w, c = self.w, self.w.cols
        for _ in range(20):
            assign_ids(w, kids, c["county"][kids], np.full(len(kids), today), rng)
            ok = True
            for pid in kids.tolist():
                key = (int(c["idcode"][pid]), today)
                seq = int(c["id18"][pid][14:17])
                used = w.newborn_seqs.setdefault(key, set())
                if seq in used:
                    ok = False
            if ok:
                for pid in kids.tolist():
                    w.newborn_seqs[(int(c["idcode"][pid]), today)].add(int(c["id18"][pid][14:17]))
                return

    def _deaths(self, rng, day, today, alive, age, sink: Sink) -> None:
        w, c = self.w, self.w.cols
        hazard = MORTALITY_A * np.exp(MORTALITY_B * (age - 30)) / 365.0 * self.cfg.activity
        dead = alive[rng.random(len(alive)) < np.minimum(hazard, 0.5)]
        start_mi = month_index(today)
        for pid in dead.tolist():
            c["death"][pid] = today
            crem = day + int(rng.integers(0, 6))
            w.deaths[pid] = (self.cfg.start_ordinal + crem,
                             funeral_home(w, rng, int(c["county"][pid])))
            self.schedule(crem, ("cremate", pid))
            lag = int(min(rng.exponential(8), 40))
            c["cancel"][pid] = today + lag
            self.schedule(day + lag, ("cancel", pid))
            sp = int(c["spouse"][pid])
            if sp >= 0:
                c["marital"][sp] = 30
                c["spouse"][sp] = -1
                c["spouse"][pid] = -1
                w.widow_pending[pid] = sp
            # subsistence: stopped the month after death, sometimes months later
            hit = np.nonzero(w.sub["pid"] == pid)[0] if w.sub else []
            for i in hit:
                late = rng.random() < 0.1
                stop = start_mi + (int(rng.integers(2, 6)) if late else 1)
                if w.sub["end"][i] < 0 or w.sub["end"][i] > stop:
                    w.sub["end"][i] = stop
                    w.sub["late_stop"][i] = late

    def _marriages(self, rng, day, today, alive, age, sink: Sink) -> None:
        w, c = self.w, self.w.cols
        k = self._count(rng, len(alive), RATES["marriage"])
        if k == 0:
            return
        free = (c["spouse"][alive] < 0) & np.isin(c["marital"][alive], (10, 30, 40))
        men = alive[free & (c["sex"][alive] == 1) & (age >= 22) & (age <= 65)]
        women = alive[free & (c["sex"][alive] == 2) & (age >= 20) & (age <= 60)]
        if len(men) == 0 or len(women) == 0:
            return
        grp = np.array([x.group for x in w.data.counties])
        taken: set[int] = set()
        for h in rng.choice(men, size=min(k, len(men)), replace=False).tolist():
            t = self._t(rng, today)
            if rng.random() < 0.005:
                m = marry_foreign(w, rng, h, today, t)
                rec, scope = R.marriage_rec(w, m)
                sink.api("CA_MARRIAGE", rec, scope, "I", t, f"M{m.mid}")
                continue
            same = women[grp[c["county"][women]] == grp[c["county"][h]]]
            pool = same if len(same) and rng.random() < 0.95 else women
            f = int(pool[int(rng.integers(0, len(pool)))])
            if f in taken or c["father"][f] == c["father"][h] >= 0:
                continue
            taken.add(f)
            reg = int(c["county"][h] if rng.random() < 0.5 else c["county"][f])
            m = add_marriage(w, rng, today, "1", reg, h, f, t)
            rec, scope = R.marriage_rec(w, m)
            sink.api("CA_MARRIAGE", rec, scope, "I", t, f"M{m.mid}")
            for p in (h, f):
                code = 21 if c["marital"][p] == 10 else 22
                c["marital"][p] = code
                self.schedule(day + int(rng.integers(0, 46)), ("marital", p, code))
            c["spouse"][h], c["spouse"][f] = f, h

    def _divorces(self, rng, day, today, alive, sink: Sink) -> None:
        w, c = self.w, self.w.cols
        k = self._count(rng, len(alive), RATES["divorce"])
        if k == 0:
            return
        husbands = alive[(c["sex"][alive] == 1) & (c["spouse"][alive] >= 0)]
        if len(husbands) == 0:
            return
        for h in rng.choice(husbands, size=min(k, len(husbands)), replace=False).tolist():
            f = int(c["spouse"][h])
            if f < 0:
                continue
            t = self._t(rng, today)
            reg = int(c["county"][h] if rng.random() < 0.5 else c["county"][f])
            m = add_marriage(w, rng, today, "2", reg, h, f, t)
            rec, scope = R.marriage_rec(w, m)
            sink.api("CA_MARRIAGE", rec, scope, "I", t, f"M{m.mid}")
            for p in (h, f):
                c["marital"][p] = 40
                c["spouse"][p] = -1
                self.schedule(day + int(rng.integers(0, 46)), ("marital", p, 40))

    def _moves(self, rng, day, today, alive, age, sink: Sink) -> None:
        w = self.w
        k = self._count(rng, len(alive), RATES["move"])
        if k == 0:
            return
        cand = alive[age >= 16]
        for pid in rng.choice(cand, size=min(k, len(cand)), replace=False).tolist():
            t = self._t(rng, today)
            recs = move_person(w, rng, pid, today, rng.random() < 0.4, t)
            sink.move_records(recs)
            sink.ps_changed(pid, t, move=True)

    def _enterprises(self, rng, day, today, sink: Sink) -> None:
        w = self.w
        ents = w.enterprises
        n = len(ents)
        active = [e for e in ents if e.status == "1"]
        if not active:
            return

        def emit(e, czlx):
            rec, scope = R.ent_rec(w, e)
            sink.api("CU_ENT_REG", rec, scope, czlx, e.gxsj, f"E{e.eid}")

        for _ in range(self._count(rng, n, RATES["ent_credit"])):
            e = active[int(rng.integers(0, len(active)))]
            levels, lw = REGIME_LEVELS["282"]
            new = levels[pick1(rng, lw)]
            if e.regime == "282" and new == e.level:
                new = "C" if new != "C" else "CG"
            e.regime, e.level, e.rated = "282", new, today
            e.gxsj = self._t(rng, today)
            emit(e, "U")
        for _ in range(self._count(rng, n, RATES["ent_name"])):
            e = active[int(rng.integers(0, len(active)))]
            e.name = enterprise_name(w, rng, e.county)
            e.gxsj = self._t(rng, today)
            emit(e, "U")
        for _ in range(self._count(rng, n, RATES["ent_rep"])):
            e = active[int(rng.integers(0, len(active)))]
            e.rep = int(legal_representatives(w, rng, np.array([e.county]))[0])
            e.gxsj = self._t(rng, today)
            emit(e, "U")
        for _ in range(self._count(rng, n, RATES["ent_dereg"])):
            e = active[int(rng.integers(0, len(active)))]
            e.status = "2"
            e.gxsj = self._t(rng, today)
            emit(e, "U")
        for _ in range(self._count(rng, n, RATES["ent_new"])):
            g = pick1(rng, [x.weight for x in w.data.groups])
            cands = w.data.groups[g].counties
            county = cands[int(rng.integers(0, len(cands)))]
            rep = int(legal_representatives(w, rng, np.array([county]))[0])
            e = new_enterprise(w, rng, county, today, self._t(rng, today), rep,
                               w.used_bodies)  # type: ignore[attr-defined]
            e.regime, e.level, e.rated = "282", "CG", today
            ents.append(e)
            emit(e, "I")
        for _ in range(self._count(rng, n, RATES["penalty"])):
            e = ents[int(rng.integers(0, n))]
            p = new_penalty(w, rng, e, today, self._t(rng, today))
            w.penalties.append(p)
            rec, scope = R.penalty_rec(w, p)
            sink.api("CU_PENALTY", rec, scope, "I", p.gxsj, f"E{e.eid}")
        live = [p for p in w.penalties if not p.revoked]
        for _ in range(self._count(rng, len(live), RATES["penalty_revoke"])):
            if not live:
                break
            p = live[int(rng.integers(0, len(live)))]
            if p.revoked:
                continue
            p.revoked = True
            p.gxsj = self._t(rng, today)
            rec, scope = R.penalty_rec(w, p)
            sink.api("CU_PENALTY", rec, scope, "D", p.gxsj, f"E{p.eid}")

    def _orgs(self, rng, day, today, sink: Sink) -> None:
        w = self.w
        n = len(w.orgs)
        active = [o for o in w.orgs if o.status == "1"]

        def emit(o, czlx):
            rec, scope = R.org_rec(w, o)
            sink.api("CA_SOCIAL_ORG", rec, scope, czlx, o.gxsj, f"O{o.oid}")

        for _ in range(self._count(rng, n, RATES["org_new"])):
            g = pick1(rng, [x.weight for x in w.data.groups])
            cands = w.data.groups[g].counties
            county = cands[int(rng.integers(0, len(cands)))]
            rep = int(legal_representatives(w, rng, np.array([county]))[0])
            o = new_org(w, rng, county, today, self._t(rng, today), rep)
            o.oid = len(w.orgs)
            w.orgs.append(o)
            emit(o, "I")
        if not active:
            return
        for _ in range(self._count(rng, n, RATES["org_change"])):
            o = active[int(rng.integers(0, len(active)))]
            o.rep = int(legal_representatives(w, rng, np.array([o.county]))[0])
            o.gxsj = self._t(rng, today)
            emit(o, "U")
        for _ in range(self._count(rng, n, RATES["org_dereg"])):
            o = active[int(rng.integers(0, len(active)))]
            o.status = "2"
            o.gxsj = self._t(rng, today)
            emit(o, "U")

    # --- monthly -------------------------------------------------------------------------------
    def new_month(self, today: int) -> None:
        """Subsistence roll for the month starting `today`: new recipients join, some leave."""
        w, c = self.w, self.w.cols
        rng = np.random.default_rng([self.cfg.seed, 200, today])
        mi = month_index(today)
        s = w.sub
        active = np.nonzero((s["start"] <= mi) & (s["end"] < 0))[0]
        leave = active[rng.random(len(active)) < 0.015 * self.cfg.activity]
        s["end"][leave] = mi
        n = w.n
        alive = np.nonzero((c["death"][:n] < 0) & c["registered"][:n])[0]
        k = int(rng.poisson(max(len(active), 1) * 0.02 * self.cfg.activity))
        if k and len(alive):
            already = set(s["pid"].tolist())
            new = [p for p in rng.choice(alive, size=min(k, len(alive)), replace=False).tolist()
                   if p not in already]
            if new:
                new_sub_arrays(w, np.array(new), np.full(len(new), mi), np.full(len(new), -1), rng)
