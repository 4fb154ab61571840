"""Data defects injected into deliveries (DOMAIN.md §4), each recorded with the outcome a correct
hub should reach: 'staged' (normalisable, keep), 'quarantined' (row unusable), 'incident' (the
delivery broke the contract, e.g. over-shared fields), 'superseded' (an older or repeated version),
'rejected_batch' (the whole batch cannot be loaded).

Decisions come from a generator seeded per delivery, so the same seed and rates give the same
defects.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

import numpy as np

from pipelines.catalog.identifiers import USCC_CHARSET

EXPECTED = {
    "id_bad_checksum": "quarantined", "uscc_bad_checksum": "quarantined",
    "id_15_digit": "staged", "id_lowercase_x": "staged", "id_fullwidth": "staged",
    "id_space": "staged", "code_variant": "staged", "rare_char_name": "staged",
    "duplicate_row": "superseded", "resend_row": "superseded", "stale_status": "superseded",
    # The add that arrives after its modify is the earlier version: kept, so history starts at its
    # GXSJ (what was true when), not dropped as a duplicate.
    "modify_before_add": "staged", "modify_before_add_i": "staged",
    "bad_value": "quarantined", "wrong_columns": "quarantined", "missing_key": "quarantined",
    "bad_bytes": "quarantined", "overshare": "incident", "undeclared_field": "incident",
    "schema_drift": "rejected_batch",
}

# Citizen-ID fields, USCC fields, a typed field with its broken value, name fields, per resource.
ID_FIELDS = {
    "PS_POP_BASIC": ("GMSFHM",), "PS_HUKOU_MOVE": ("GMSFHM",),
    "CA_MARRIAGE": ("NF_ZJHM", "NV_ZJHM"), "CA_CREMATION": ("SZ_GMSFHM",),
    "CA_SUBSISTENCE": ("GMSFHM",), "CU_ENT_REG": ("FDDBR_ZJHM",), "CA_SOCIAL_ORG": ("FDDBR_ZJHM",),
}
USCC_FIELDS = {"CU_ENT_REG": "TYSHXYDM", "CU_PENALTY": "TYSHXYDM", "CU_DECL_MONTHLY": "TYSHXYDM",
               "CA_SOCIAL_ORG": "TYSHXYDM"}
BAD_VALUE = {
    "PS_POP_BASIC": ("CSRQ", "20261345"), "PS_HUKOU_MOVE": ("QYRQ", "20261345"),
    "CU_DECL_MONTHLY": ("JK_JE", "abc"), "CA_MARRIAGE": ("DJRQ", "20261345"),
    "CA_CREMATION": ("HHRQ", "20261345"), "CU_ENT_REG": ("BARQ", "20261345"),
    "CU_PENALTY": ("FKJE", "abc"), "CA_SOCIAL_ORG": ("CLRQ", "20261345"),
}
NAME_FIELDS = {"PS_POP_BASIC": ("XM",), "PS_HUKOU_MOVE": ("XM",), "CA_MARRIAGE": ("NF_XM", "NV_XM"),
               "CA_CREMATION": ("SZ_XM",), "CA_SUBSISTENCE": ("XM",)}
DRIFT = {"PS_POP_BASIC": ("XBDM", "XB"), "PS_HUKOU_MOVE": ("QYLBDM", "QYLB"),
         "CU_DECL_MONTHLY": ("TJNY", "TJYF")}
_FW = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
_VARIANTS = {"XBDM": {"1": "M", "2": "F"}, "SZ_XBDM": {"1": "M", "2": "F"},
             "MZDM": {"97": "57", "98": "58"},
             "HYZKDM": {"10": "1", "20": "2", "21": "2", "22": "2", "30": "3", "40": "4"}}


RARE_RE = re.compile("[\u3400-\u4dbf\U00020000-\U0003ffff\ue000-\uf8ff]")


@dataclass(slots=True)
class Row:
    """One delivered line. `values` follow the batch header; `raw` marks a line whose bytes will
    not decode. `key` is the clean key value(s) and `entity` the world entity it describes.
    `clean` rows (objection corrections) never receive a defect."""
    values: list
    key: str
    entity: str
    defects: list | None = None  # [(code, field)], created on the first defect
    raw: bytes | None = None
    clean: bool = False

    def mark(self, code: str, fld: str | None) -> None:
        if self.defects is None:
            self.defects = [(code, fld)]
        else:
            self.defects.append((code, fld))


@dataclass
class BatchPlan:
    header: list[str]
    rows: list[Row]
    batch_defects: list[tuple[str, str | None]] = field(default_factory=list)


def _damage_id(code: str, value: str, rng) -> str | None:
    """Return the damaged ID, or None when this ID cannot carry that defect."""
    if not value or len(value) != 18:
        return None
    if code == "id_bad_checksum":
        good = value[17]
        alts = [ch for ch in "0123456789X" if ch != good]
        return value[:17] + alts[int(rng.integers(0, len(alts)))]
    if code == "id_15_digit":
        return value[:6] + value[8:17] if value[6:8] == "19" else None
    if code == "id_fullwidth":
        return value.translate(_FW)
    if code == "id_space":
        return f"{value[:6]} {value[6:14]} {value[14:]}" if rng.random() < 0.5 else value + " "
    return None


def _bad_uscc(value: str, rng) -> str:
    good = value[17]
    alts = [ch for ch in USCC_CHARSET if ch != good]
    return value[:17] + alts[int(rng.integers(0, len(alts)))]


_ID_CODES = ("id_bad_checksum", "id_15_digit", "id_fullwidth", "id_space")
_VALUE_CODES = _ID_CODES + ("code_variant", "bad_value")


class Injector:
    """Holds the carry-over state between batches of one resource (held-back rows and rows
    available for re-sending)."""

    def __init__(self):
        self.held: dict[str, list] = {}
        self.recent: dict[str, list] = {}

    # --- row-level value defects, shared by bulk and API -----------------------------------------
    def value_defects(self, resource: str, get, put, rates: dict, rng, u: float,
                      ux: float, p_any: float) -> list[tuple[str, str]]:
        """Damage one record through get(field)/put(field, value). `u` decides whether any value
        defect happens at all (cheap pre-selection); `ux` the lowercase-x defect."""
        out: list[tuple[str, str]] = []
        idf = ID_FIELDS.get(resource, ())
        for f in idf:
            v = get(f)
            if v and v[-1] == "X" and ux < rates.get("id_lowercase_x", 0):
                put(f, v[:17] + "x")
                out.append(("id_lowercase_x", f))
        if u >= min(p_any, 1.0):
            return out
        # which defect: proportional to its rate
        pick = rng.random() * p_any
        for code in _VALUE_CODES:
            pick -= rates.get(code, 0)
            if pick < 0:
                break
        if code in _ID_CODES:
            uf = USCC_FIELDS.get(resource)
            if idf:
                f = idf[int(rng.integers(0, len(idf)))]
                v = get(f)
                dmg = _damage_id(code, v.upper() if v else v, rng)
                if dmg is not None:
                    put(f, dmg)
                    out.append((code, f))
            elif uf and code == "id_bad_checksum" and get(uf):
                put(uf, _bad_uscc(get(uf), rng))
                out.append(("uscc_bad_checksum", uf))
        elif code == "code_variant":
            for f in ("MZDM", "HYZKDM", "XBDM", "SZ_XBDM"):
                v = get(f)
                if v in _VARIANTS.get(f, {}):
                    put(f, _VARIANTS[f][v])
                    out.append(("code_variant", f))
                    break
        elif code == "bad_value" and resource in BAD_VALUE:
            f, bad = BAD_VALUE[resource]
            put(f, bad)
            out.append(("bad_value", f))
        return out

    # --- bulk ------------------------------------------------------------------------------------
    def plan_bulk(self, resource: str, header: list[str], rows: list[Row], rates: dict, rng,
                  incremental: bool) -> BatchPlan:
        idx = {h: i for i, h in enumerate(header)}
        key_i = 0
        out: list[Row] = []
        # rows held back in the previous batch (modify-before-add, schema drift) arrive now
        if incremental:
            out.extend(self.held.pop(resource, []))
        pool = self.recent.setdefault(resource, [])
        n = len(rows)
        u = rng.random((n, 8)) if n else np.zeros((0, 8))
        r_mba = rates.get("modify_before_add", 0) if incremental else 0.0
        r_missing = rates.get("missing_key", 0)
        r_wrong = rates.get("wrong_columns", 0)
        r_bytes = rates.get("bad_bytes", 0)
        r_dup = rates.get("duplicate_row", 0)
        r_resend = rates.get("resend_row", 0) if incremental and pool else 0.0
        name_i = [idx[f] for f in NAME_FIELDS.get(resource, ()) if f in idx]
        id_i = [idx[f] for f in ID_FIELDS.get(resource, ()) if f in idx]
        p_any = sum(rates.get(k, 0) for k in _VALUE_CODES)
        r_lower = rates.get("id_lowercase_x", 0)
        czlx_i = idx["CZLX"]
        gxsj_i = idx["GXSJ"]
        for r in rows:  # world property, not injected: recorded so the hub can be checked
            for ni in name_i:
                if RARE_RE.search(r.values[ni] or ""):
                    r.mark("rare_char_name", header[ni])
        # only rows that drew a possible defect go through the slow path
        cand = ((u[:, 0] < r_mba) | (u[:, 1] < p_any) | (u[:, 2] < r_lower)
                | (u[:, 3] < r_missing) | (u[:, 4] < r_wrong + r_bytes) | (u[:, 6] < r_dup)
                | (u[:, 7] < r_resend))
        has_clean = any(r.clean for r in rows)
        if has_clean:
            cand &= ~np.fromiter((r.clean for r in rows), dtype=bool, count=n)
        done = 0
        for i in np.nonzero(cand)[0].tolist():
            out.extend(rows[done:i])
            done = i + 1
            r = rows[i]
            ui = u[i].tolist()
            vals = r.values
            if r_mba and ui[0] < r_mba and vals[czlx_i] == "I":
                early = list(vals)
                early[czlx_i] = "U"
                early[gxsj_i] = _later(vals[gxsj_i])
                out.append(Row(early, r.key, r.entity, [("modify_before_add", None)]))
                self.held.setdefault(resource, []).append(
                    Row(list(vals), r.key, r.entity, [("modify_before_add_i", None)]))
                continue
            if ui[1] < p_any or (ui[2] < r_lower and any(
                    vals[j] and vals[j][-1] == "X" for j in id_i)):
                for d in self.value_defects(
                        resource, lambda f, v=vals: v[idx[f]] if f in idx else None,
                        lambda f, x, v=vals: v.__setitem__(idx[f], x), rates, rng, ui[1], ui[2],
                        p_any):
                    r.mark(*d)
            if ui[3] < r_missing:
                vals[key_i] = None
                r.mark("missing_key", header[key_i])
            if ui[4] < r_wrong:
                r.values = vals + ["多余"] if ui[5] < 0.5 else vals[:-1]
                r.mark("wrong_columns", None)
            elif ui[4] < r_wrong + r_bytes:
                r.raw = b"\xff\xff"
                r.mark("bad_bytes", header[1])
            out.append(r)
            if ui[6] < r_dup and r.raw is None:
                out.append(Row(list(r.values), r.key, r.entity, [("duplicate_row", None)]))
            if ui[7] < r_resend:
                old = pool[int(rng.integers(0, len(pool)))]
                out.append(Row(list(old.values), old.key, old.entity, [("resend_row", None)]))
        out.extend(rows[done:])
        if n:
            take = rng.choice(n, size=min(50, n), replace=False)
            pool.extend(Row(list(rows[i].values), rows[i].key, rows[i].entity)
                        for i in take.tolist() if not rows[i].defects and rows[i].raw is None
                        and len(rows[i].values) == len(header) and not rows[i].clean)
            del pool[:-500]
        plan = BatchPlan(list(header), out)
        self._batch_defects(resource, plan, rates, rng, incremental, has_clean)
        return plan

    def _batch_defects(self, resource: str, plan: BatchPlan, rates: dict, rng,
                       incremental: bool, has_clean: bool = False) -> None:
        u = rng.random(3)
        if has_clean:
            return  # a batch carrying objection corrections keeps its declared header
        drift = incremental and resource in DRIFT and u[2] < rates.get("schema_drift_batch", 0)
        if drift:
            # the provider re-sends the content correctly in the next batch
            self.held.setdefault(resource, []).extend(
                Row(list(r.values), r.key, r.entity, []) for r in plan.rows
                if not r.defects and r.raw is None and len(r.values) == len(plan.header))
        if resource == "PS_POP_BASIC" and u[0] < rates.get("overshare_batch", 0):
            at = plan.header.index("SWRQ") + 1
            plan.header.insert(at, "ZP")
            for r in plan.rows:
                r.values.insert(at, base64.b64encode(rng.bytes(24)).decode())
            plan.batch_defects.append(("overshare", "ZP"))
        if u[1] < rates.get("undeclared_field", 0) * 10:
            at = plan.header.index("CZLX")
            plan.header.insert(at, "LXDH")
            for r in plan.rows:
                r.values.insert(at, "1" + "".join(str(x) for x in rng.integers(0, 10, 10)))
            plan.batch_defects.append(("undeclared_field", "LXDH"))
        if drift:
            old, new = DRIFT[resource]
            i = plan.header.index(old)
            if rng.random() < 0.5:
                plan.header[i] = new
            else:
                del plan.header[i]
                for r in plan.rows:
                    if len(r.values) > i:
                        del r.values[i]
            plan.batch_defects.append(("schema_drift", old))

    # --- API -------------------------------------------------------------------------------------
    def plan_api(self, resource: str, rec: dict, key_fields: tuple[str, ...], rates: dict,
                 rng, u: list[float]) -> list[tuple[dict, list[tuple[str, str | None]]]]:
        """The records to append now for one change (0, 1 or 2 of them); `u` holds 7 uniform
        draws for this record."""
        if rec.get("CZLX") == "I" and u[0] < rates.get("modify_before_add", 0):
            early = dict(rec)
            early["CZLX"] = "U"
            early["GXSJ"] = _later(rec["GXSJ"])
            self.held.setdefault(resource, []).append((dict(rec), [("modify_before_add_i", None)]))
            return [(early, [("modify_before_add", None)])]
        rec = dict(rec)
        defects = [("rare_char_name", f) for f in NAME_FIELDS.get(resource, ())
                   if RARE_RE.search(rec.get(f) or "")]
        p_any = self._p_any(rates)
        if u[1] < p_any or u[2] < rates.get("id_lowercase_x", 0):
            defects += self.value_defects(resource, rec.get, rec.__setitem__, rates, rng, u[1],
                                          u[2], p_any)
        if u[3] < rates.get("missing_key", 0):
            rec[key_fields[0]] = None
            defects.append(("missing_key", key_fields[0]))
        if u[4] < rates.get("undeclared_field", 0):
            rec["LXDH"] = "1" + "".join(str(x) for x in rng.integers(0, 10, 10))
            defects.append(("undeclared_field", "LXDH"))
        out = [(rec, defects)]
        if u[5] < rates.get("duplicate_row", 0):
            out.append((dict(rec), [("duplicate_row", None)]))
        pool = self.recent.setdefault(resource, [])
        if pool and u[6] < rates.get("resend_row", 0):
            out.append((dict(pool[int(rng.integers(0, len(pool)))]), [("resend_row", None)]))
        if not defects and u[6] > 0.95:
            pool.append(dict(rec))
            del pool[:-200]
        return out

    def _p_any(self, rates: dict) -> float:
        key = id(rates), tuple(rates.get(k, 0) for k in _VALUE_CODES)
        if getattr(self, "_p_key", None) != key:
            self._p_key, self._p_val = key, sum(key[1])
        return self._p_val

    def release_api(self, resource: str) -> list[tuple[dict, list]]:
        return self.held.pop(resource, [])


def _later(gxsj: str) -> str:
    """GXSJ a few minutes later (same day; the simulator's times stay within 08:00-18:00)."""
    hh, mm, ss = int(gxsj[11:13]), int(gxsj[14:16]), int(gxsj[17:19])
    t = min(hh * 3600 + mm * 60 + ss + 300, 86399)
    return f"{gxsj[:11]}{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}"
