"""Render world entities as the records a resource delivers (field codes of the catalogue).

Every builder returns the declared fields in catalogue order; callers add CZLX and GXSJ. Scope
helpers return the division codes a record relates to: a node receives a record when any of them
lies in its jurisdiction.
"""

from __future__ import annotations

import hashlib

import numpy as np

from pipelines.catalog.model import catalog
from pipelines.sim.config import day_str
from pipelines.sim.world import Enterprise, Marriage, Penalty, SocialOrg, World, month_label

API_RESOURCES = ("CA_MARRIAGE", "CA_CREMATION", "CA_SUBSISTENCE", "CA_SOCIAL_ORG", "CU_ENT_REG",
                 "CU_PENALTY")
BULK_RESOURCES = ("PS_POP_BASIC", "PS_HUKOU_MOVE", "CU_DECL_MONTHLY")


def fields_of(resource: str) -> list[str]:
    """Declared fields a delivery carries (sharing type N left out), catalogue order."""
    r = catalog().resource(resource)
    return [f.code for f in r.fields if r.sharing_of(f).type != "N"]


def key_of(resource: str) -> tuple[str, ...]:
    return catalog().resource(resource).primary_key


def provider_of(resource: str) -> str:
    return catalog().resource(resource).provider


def money(cents: int | None) -> str | None:
    if cents is None:
        return None
    return f"{cents // 100}.{cents % 100:02d}"


# --- PS_POP_BASIC -------------------------------------------------------------------------------

def origin_keeps(w: World, pid: int) -> bool:
    """Defect `move_not_cancelled`: the person moved to another node and the origin's police
    never cancelled the registration (registered in two places; a death after the move never
    reaches the origin). Drawn from (seed, person) alone, so every node's simulator of the
    world agrees on who it is."""
    rate = w.cfg.defects.get("move_not_cancelled", 0.0)
    if not rate or pid not in w.moved:
        return False
    h = hashlib.blake2b(f"{w.cfg.seed}:move_not_cancelled:{pid}".encode(), digest_size=8)
    return int.from_bytes(h.digest()) / 2.0**64 < rate


def ps_pop_row(w: World, pid: int, in_node: np.ndarray, asof: int) -> list | None:
    """The node's view of a person: current record if the hukou is in the node, the 迁出 record
    (status 2, last address in the node) if the person moved away, else None."""
    c = w.cols
    if not c["registered"][pid]:
        return None
    county = int(c["county"][pid])
    addr = int(c["addr"][pid])
    status = "0"
    kept = False
    if not in_node[county]:
        hist = w.moved.get(pid)
        last = None
        for old, old_addr, _day in hist or ():
            if in_node[old]:
                last = (old, old_addr)
        if last is None:
            return None
        county, addr = last
        kept = origin_keeps(w, pid) and not any(in_node[new] for new in _later_counties(w, pid))
        status = "0" if kept else "2"
    cancel = int(c["cancel"][pid])
    swrq = None
    if status == "0" and not kept and 0 <= cancel <= asof:
        status, swrq = "1", day_str(int(c["death"][pid]))
    return [w.id_of(pid), w.name(pid), str(int(c["sex"][pid])), f"{int(c['eth'][pid]):02d}",
            day_str(int(c["birth"][pid])), w.county_code(county), w.address(county, addr),
            str(int(c["ps_marital"][pid])), status, swrq]


def _later_counties(w: World, pid: int) -> list[int]:
    """Counties the person lived in after the first move (and now)."""
    return [int(w.cols["county"][pid])] + [old for old, _a, _d in w.moved.get(pid, ())[1:]]


def ps_pop_rows(w: World, in_node: np.ndarray, asof: int) -> tuple[list[int], list[list]]:
    """All persons in the node's scope (full snapshot), vectorised for the current residents."""
    c = w.cols
    n = w.n
    cur = np.nonzero(in_node[c["county"][:n]] & c["registered"][:n])[0]
    pids = cur.tolist()
    ids = np.char.decode(c["id18"][cur]).tolist()
    names = w.names(cur)
    sexes = c["sex"][cur].astype(str).tolist()
    eth = [f"{e:02d}" for e in c["eth"][cur].tolist()]
    birth = [day_str(b) for b in c["birth"][cur].tolist()]
    counties = c["county"][cur].tolist()
    codes = [w.county_code(k) for k in counties]
    addrs = [w.address(k, a) for k, a in zip(counties, c["addr"][cur].tolist(), strict=True)]
    mar = c["ps_marital"][cur].astype(str).tolist()
    cancel = c["cancel"][cur]
    dead = (cancel >= 0) & (cancel <= asof)
    status = np.where(dead, "1", "0").tolist()
    swrq = [day_str(d) if k else None for d, k in zip(c["death"][cur].tolist(), dead.tolist(),
                                                       strict=True)]
    rows = [list(t) for t in zip(ids, names, sexes, eth, birth, codes, addrs, mar, status, swrq,
                                 strict=True)]
    for pid in sorted(w.moved):
        if not in_node[c["county"][pid]]:
            r = ps_pop_row(w, pid, in_node, asof)
            if r is not None:
                pids.append(pid)
                rows.append(r)
    return pids, rows


# --- PS_HUKOU_MOVE ------------------------------------------------------------------------------

def move_row(rec: dict) -> list:
    return [rec[f] for f in ("YWLSH", "GMSFHM", "XM", "QYLBDM", "QCD_XZQHDM", "QRD_XZQHDM",
                             "QYRQ")]


# --- API resources ------------------------------------------------------------------------------

def marriage_rec(w: World, m: Marriage) -> tuple[dict, tuple[str, ...]]:
    c = w.cols

    def party(pid: int, is_foreign: bool):
        if is_foreign and m.foreign:
            return m.foreign[0], m.foreign[1], m.foreign[2], None
        return "1", w.id_of(pid), w.name(pid), w.county_code(int(c["county"][pid]))

    h = party(m.husband, m.husband < 0)
    f = party(m.wife, m.wife < 0)
    rec = {"YWBH": m.ywbh, "YWLXDM": m.kind, "DJRQ": day_str(m.day),
           "DJJG_XZQHDM": w.county_code(m.registry), "NF_ZJLXDM": h[0], "NF_ZJHM": h[1],
           "NF_XM": h[2], "NV_ZJLXDM": f[0], "NV_ZJHM": f[1], "NV_XM": f[2], "ZSBH": m.cert}
    scope = tuple(x for x in (w.county_code(m.registry), h[3], f[3]) if x)
    return rec, scope


def marriage_recs(w: World, ms: list[Marriage]) -> list[tuple[dict, tuple[str, ...]]]:
    """marriage_rec for many registrations at once (identity strings rendered vectorised)."""
    if not ms:
        return []
    c = w.cols
    h = np.maximum(np.array([m.husband for m in ms], dtype=np.int64), 0)
    f = np.maximum(np.array([m.wife for m in ms], dtype=np.int64), 0)
    ids_h, ids_f = (np.char.decode(c["id18"][x]).tolist() for x in (h, f))
    names_h, names_f = w.names(h), w.names(f)
    codes_h = [w.county_code(k) for k in c["county"][h].tolist()]
    codes_f = [w.county_code(k) for k in c["county"][f].tolist()]
    out = []
    for i, m in enumerate(ms):
        hp = ("1", ids_h[i], names_h[i], codes_h[i])
        fp = ("1", ids_f[i], names_f[i], codes_f[i])
        if m.foreign:
            other = (m.foreign[0], m.foreign[1], m.foreign[2], None)
            if m.husband < 0:
                hp = other
            else:
                fp = other
        reg = w.county_code(m.registry)
        rec = {"YWBH": m.ywbh, "YWLXDM": m.kind, "DJRQ": day_str(m.day), "DJJG_XZQHDM": reg,
               "NF_ZJLXDM": hp[0], "NF_ZJHM": hp[1], "NF_XM": hp[2], "NV_ZJLXDM": fp[0],
               "NV_ZJHM": fp[1], "NV_XM": fp[2], "ZSBH": m.cert}
        out.append((rec, tuple(x for x in (reg, hp[3], fp[3]) if x)))
    return out


def cremation_rec(w: World, pid: int) -> tuple[dict, tuple[str, ...]]:
    c = w.cols
    crem, home = w.deaths[pid]
    gcode, hname, hcode = w.homes[home]  # type: ignore[attr-defined]
    rec = {"HHZMBH": f"HH{hcode}{day_str(crem)}{pid:07d}", "SZ_GMSFHM": w.id_of(pid),
           "SZ_XM": w.name(pid), "SZ_XBDM": str(int(c["sex"][pid])),
           "SWRQ": day_str(int(c["death"][pid])), "HHRQ": day_str(crem), "BYG_MC": hname,
           "BYG_XZQHDM": hcode}
    return rec, (w.county_code(int(c["county"][pid])), hcode)


def ent_rec(w: World, e: Enterprise) -> tuple[dict, tuple[str, ...]]:
    code = w.county_code(e.county)
    rec = {"HGBM": e.hgbm, "TYSHXYDM": e.uscc, "QYMC": e.name, "ZCHGDM": e.office,
           "QYLXDM": e.etype, "XYZD": e.regime, "XYDJDM": e.level, "XYRDRQ": day_str(e.rated),
           "BARQ": day_str(e.registered),
           "YXQZ": day_str(e.valid_until) if e.valid_until >= 0 else None, "ZS_XZQHDM": code,
           "FDDBR_XM": w.name(e.rep), "FDDBR_ZJHM": w.id_of(e.rep), "BAZTDM": e.status}
    return rec, (code,)


def penalty_rec(w: World, p: Penalty) -> tuple[dict, tuple[str, ...]]:
    e = w.enterprises[p.eid]
    rec = {"CFJDSWH": p.decision, "TYSHXYDM": e.uscc,
           "HGBM": e.hgbm if p.pen_id % 9 else None, "QYMC": e.name, "WFXW": p.offence,
           "CFLBDM": p.category, "FKJE": money(p.fine_cents), "CFRQ": day_str(p.day),
           "CFJGDM": p.office,
           "GSJZRQ": day_str(p.publish_until) if p.publish_until is not None else None}
    return rec, (w.county_code(e.county),)


def org_rec(w: World, o: SocialOrg) -> tuple[dict, tuple[str, ...]]:
    code = w.county_code(o.county)
    rec = {"TYSHXYDM": o.uscc, "ZZMC": o.name, "ZZLXDM": o.otype, "FDDBR_XM": w.name(o.rep),
           "FDDBR_ZJHM": w.id_of(o.rep), "ZS_XZQHDM": code, "CLRQ": day_str(o.established),
           "DJZTDM": o.status}
    return rec, (code,)


def subsistence_recs(w: World, mi: int) -> list[tuple[dict, tuple[str, ...], int]]:
    """Rows of month index `mi`: recipients in payment (status 1) and those stopped that month
    (status 0, amount 0.00). Returns (record, scope, pid)."""
    s = w.sub
    if not s:
        return []
    act = np.nonzero((s["start"] <= mi) & ((s["end"] < 0) | (s["end"] >= mi)))[0]
    c = w.cols
    pids = s["pid"][act]
    ids = np.char.decode(c["id18"][pids]).tolist()
    names = w.names(pids)
    codes = [w.county_code(k) for k in c["county"][pids].tolist()]
    scopes: dict[str, tuple[str, ...]] = {}
    label = month_label(mi)
    out = []
    for gid, name, code, pid, typ, cents, end in zip(
            ids, names, codes, pids.tolist(), s["type"][act].tolist(), s["cents"][act].tolist(),
            s["end"][act].tolist(), strict=True):
        stopping = end == mi
        rec = {"GMSFHM": gid, "XM": name, "JZ_XZQHDM": code, "BZLXDM": str(typ),
               "BZJE": "0.00" if stopping else money(cents), "BZNY": label,
               "BZZTDM": "0" if stopping else "1"}
        out.append((rec, scopes.setdefault(code, (code,)), pid))
    return out


def decl_rows(w: World, mi: int, rng: np.random.Generator) -> list[tuple[list, int]]:
    """CU_DECL_MONTHLY rows for month index `mi`: each active registered enterprise trades with
    probability 0.7. Returns (row, enterprise id)."""
    label = month_label(mi)
    out = []
    for e in w.enterprises:
        u = rng.random(5)
        if e.status != "1" or u[0] > 0.7:
            continue
        lam = 6 * e.trade_scale
        jk = int(rng.poisson(lam)) if u[1] < 0.8 else 0
        ck = int(rng.poisson(lam * 1.2)) if u[2] < 0.85 else 0
        if jk + ck == 0:
            ck = 1
        jk_cents = int(jk * rng.lognormal(10.5, 1.0) * 100) if jk else 0
        ck_cents = int(ck * rng.lognormal(10.6, 1.0) * 100) if ck else 0
        out.append(([e.hgbm, e.uscc, label, str(jk), str(ck), money(jk_cents), money(ck_cents)],
                    e.eid))
    return out
