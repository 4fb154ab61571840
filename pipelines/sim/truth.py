"""Ground truth for tests: what the world really is, what was delivered where, which defects and
faults were injected and what a correct hub should make of them. Written as Parquet on request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines.sim.config import day_str
from pipelines.sim.defects import EXPECTED
from pipelines.sim.applications import write_applications
from pipelines.sim.records import origin_keeps


@dataclass
class _BulkChunk:
    resource: str
    batch_id: str
    files: list[str]
    lines: list[int]
    keys: list[str]
    entities: list[str]


@dataclass
class Truth:
    bulk: list[_BulkChunk] = field(default_factory=list)
    api: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)  # pos, key, entity
    defects: list[dict] = field(default_factory=list)
    api_defects: dict[str, list[tuple[int, str, str, str | None]]] = field(default_factory=dict)
    faults: list[dict] = field(default_factory=list)

    def add_bulk(self, resource: str, batch_id: str, rows, placement, batch_defects) -> None:
        self.bulk.append(_BulkChunk(resource, batch_id, [f for f, _ in placement],
                                    [ln for _, ln in placement], [r.key for r in rows],
                                    [r.entity for r in rows]))
        for r, (f, ln) in zip(rows, placement, strict=True):
            for code, fld in r.defects or ():
                self.defects.append({"resource": resource, "delivery": "bulk", "batch_id": batch_id,
                                     "seq": None, "file": f, "line": ln, "key": r.key,
                                     "defect_code": code, "field": fld,
                                     "expected": EXPECTED[code]})
        for code, fld in batch_defects:
            self.defects.append({"resource": resource, "delivery": "bulk", "batch_id": batch_id,
                                 "seq": None, "file": None, "line": None, "key": None,
                                 "defect_code": code, "field": fld, "expected": EXPECTED[code]})

    def add_api(self, resource: str, pos: int, key: str, entity: str, defects) -> None:
        self.api.setdefault(resource, []).append((pos, key, entity))
        for code, fld in defects:
            self.api_defects.setdefault(resource, []).append((pos, key, code, fld))

    def add_fault(self, resource: str, batch_id: str, fault: str) -> None:
        self.faults.append({"resource": resource, "batch_id": batch_id, "fault": fault,
                            "redelivered": False})

    def mark_repaired(self, resource: str, batch_id: str) -> None:
        for f in self.faults:
            if f["resource"] == resource and f["batch_id"] == batch_id:
                f["redelivered"] = True

    # --- output ----------------------------------------------------------------------------------
    def write(self, out: Path, sim) -> Path:
        import pyarrow as pa  # only the truth writer needs Arrow: keep it out of the server's RSS
        import pyarrow.parquet as pq

        out.mkdir(parents=True, exist_ok=True)
        node = sim.cfg.node
        rec_cols: dict[str, list] = {k: [] for k in ("resource", "delivery", "batch_id", "seq",
                                                     "file", "line", "key", "entity_id")}
        for ch in self.bulk:
            n = len(ch.keys)
            rec_cols["resource"] += [ch.resource] * n
            rec_cols["delivery"] += ["bulk"] * n
            rec_cols["batch_id"] += [ch.batch_id] * n
            rec_cols["seq"] += [None] * n
            rec_cols["file"] += ch.files
            rec_cols["line"] += ch.lines
            rec_cols["key"] += ch.keys
            rec_cols["entity_id"] += ch.entities
        defects = list(self.defects)
        for resource, items in self.api.items():
            feed = sim.feeds[resource]
            positions = np.asarray(feed.node_positions(node), dtype=np.int64)
            seq_of = {}
            for pos, key, ent in items:
                s = int(np.searchsorted(positions, pos))
                if s < len(positions) and positions[s] == pos:
                    seq_of[pos] = s
                    rec_cols["resource"].append(resource)
                    rec_cols["delivery"].append("api")
                    rec_cols["batch_id"].append(None)
                    rec_cols["seq"].append(s)
                    rec_cols["file"].append(None)
                    rec_cols["line"].append(None)
                    rec_cols["key"].append(key)
                    rec_cols["entity_id"].append(ent)
            for pos, key, code, fld in self.api_defects.get(resource, []):
                if pos in seq_of:
                    defects.append({"resource": resource, "delivery": "api", "batch_id": None,
                                    "seq": seq_of[pos], "file": None, "line": None, "key": key,
                                    "defect_code": code, "field": fld,
                                    "expected": EXPECTED[code]})
        pq.write_table(pa.table(rec_cols, schema=pa.schema([
            ("resource", pa.string()), ("delivery", pa.string()), ("batch_id", pa.string()),
            ("seq", pa.int64()), ("file", pa.string()), ("line", pa.int64()),
            ("key", pa.string()), ("entity_id", pa.string())])), out / "records.parquet")
        dcols = ["resource", "delivery", "batch_id", "seq", "file", "line", "key", "defect_code",
                 "field", "expected"]
        pq.write_table(pa.table({k: [d[k] for d in defects] for k in dcols}, schema=pa.schema([
            (k, pa.int64() if k in ("seq", "line") else pa.string()) for k in dcols])),
            out / "defects.parquet")
        fcols = ["resource", "batch_id", "fault", "redelivered"]
        pq.write_table(pa.table({k: [f[k] for f in self.faults] for k in fcols}, schema=pa.schema(
            [("resource", pa.string()), ("batch_id", pa.string()), ("fault", pa.string()),
             ("redelivered", pa.bool_())])), out / "faulty_batches.parquet")
        ocols = sim.objections.truth_columns()
        pq.write_table(pa.table(ocols, schema=pa.schema([(k, pa.string()) for k in ocols])),
                       out / "objections.parquet")
        _write_world(out, sim)
        write_applications(out, sim)
        return out


def _pid_str(a: np.ndarray) -> list[str | None]:  # noqa: D103
    return [f"P{x}" if x >= 0 else None for x in a.tolist()]


def _write_world(out: Path, sim) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    w = sim.world
    c = w.cols
    n = w.n
    in_node = sim.in_node
    counties = c["county"][:n]
    death = c["death"][:n]
    cancel = c["cancel"][:n]
    # one column at a time, each turned into an Arrow array at once: a million persons would
    # otherwise hold twenty Python lists of a million strings together
    cols = {
        "person_id": lambda: [f"P{i}" for i in range(n)],
        "gmsfhm": lambda: np.char.decode(c["id18"][:n]).tolist(),
        "xm": lambda: w.names(np.arange(n)),
        "sex": lambda: c["sex"][:n].astype(str).tolist(),
        "birth_date": lambda: [day_str(d) for d in c["birth"][:n].tolist()],
        "ethnicity": lambda: [f"{e:02d}" for e in c["eth"][:n].tolist()],
        "id_address_code": lambda: [w.idcodes[i] for i in c["idcode"][:n].tolist()],
        "hukou_division": lambda: [w.county_code(k) for k in counties.tolist()],
        "hukou_address": lambda: [w.address(k, a) for k, a in zip(
            counties.tolist(), c["addr"][:n].tolist(), strict=True)],
        "in_node": lambda: in_node[counties],
        "ever_moved": lambda: np.isin(np.arange(n), np.fromiter(w.moved, dtype=np.int64)),
        "marital_status": lambda: c["marital"][:n].astype(str).tolist(),
        "ps_marital_status": lambda: c["ps_marital"][:n].astype(str).tolist(),
        "spouse_id": lambda: _pid_str(c["spouse"][:n]),
        "father_id": lambda: _pid_str(c["father"][:n]),
        "mother_id": lambda: _pid_str(c["mother"][:n]),
        "twin_group": lambda: pa.array(c["twin"][:n], mask=c["twin"][:n] < 0),
        "status": lambda: np.where(death >= 0, "dead", "alive").tolist(),
        "death_date": lambda: [day_str(d) if d >= 0 else None for d in death.tolist()],
        "hukou_cancel_date": lambda: [day_str(d) if d >= 0 else None for d in cancel.tolist()],
        "registered": lambda: c["registered"][:n].copy(),
        # moved to another node, still registered at the origin (defect move_not_cancelled)
        "origin_not_cancelled": lambda: [origin_keeps(w, i) for i in range(n)],
        "moves": lambda: [len(w.moved.get(i, ())) for i in range(n)],
        "first_origin_division": lambda: [w.county_code(w.moved[i][0][0]) if i in w.moved
                                          else None for i in range(n)],
    }
    persons = {}
    for name, make in cols.items():
        v = make()
        persons[name] = v if isinstance(v, pa.Array) else pa.array(v)
        del v
    pq.write_table(pa.table(persons), out / "persons.parquet")
    ents = {"entity_id": [], "kind": [], "uscc": [], "hgbm": [], "name": [], "division": [],
            "credit_regime": [], "credit_level": [], "status": [], "legal_rep_id": []}
    for e in w.enterprises:
        for k, v in (("entity_id", f"E{e.eid}"), ("kind", "enterprise"), ("uscc", e.uscc),
                     ("hgbm", e.hgbm), ("name", e.name), ("division", w.county_code(e.county)),
                     ("credit_regime", e.regime), ("credit_level", e.level), ("status", e.status),
                     ("legal_rep_id", f"P{e.rep}")):
            ents[k].append(v)
    for o in w.orgs:
        for k, v in (("entity_id", f"O{o.oid}"), ("kind", "social_org"), ("uscc", o.uscc),
                     ("hgbm", None), ("name", o.name), ("division", w.county_code(o.county)),
                     ("credit_regime", None), ("credit_level", None), ("status", o.status),
                     ("legal_rep_id", f"P{o.rep}")):
            ents[k].append(v)
    pq.write_table(pa.table(ents, schema=pa.schema([(k, pa.string()) for k in ents])),
                   out / "enterprises.parquet")
    mar = {"entity_id": [f"M{m.mid}" for m in w.marriages],
           "ywbh": [m.ywbh for m in w.marriages], "kind": [m.kind for m in w.marriages],
           "date": [day_str(m.day) for m in w.marriages],
           "husband_id": [f"P{m.husband}" if m.husband >= 0 else None for m in w.marriages],
           "wife_id": [f"P{m.wife}" if m.wife >= 0 else None for m in w.marriages],
           "foreign_document": [m.foreign[1] if m.foreign else None for m in w.marriages]}
    pq.write_table(pa.table(mar, schema=pa.schema([(k, pa.string()) for k in mar])),
                   out / "marriages.parquet")
    s = w.sub
    late = np.nonzero(s["late_stop"])[0] if s else []
    anomalies = {"kind": ["subsistence_paid_after_death"] * len(late),
                 "person_id": [f"P{int(s['pid'][i])}" for i in late],
                 "death_date": [day_str(int(c["death"][int(s["pid"][i])])) for i in late],
                 "detail": [f"stop month index {int(s['end'][i])}" for i in late]}
    pq.write_table(pa.table(anomalies, schema=pa.schema([(k, pa.string()) for k in anomalies])),
                   out / "anomalies.parquet")
