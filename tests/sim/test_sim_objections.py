"""Data objections (数据异议): filing over HTTP, the provider's answers, and corrections re-delivered
through the normal channels (real simulator processes, plus in-process checks of determinism)."""

from __future__ import annotations

import csv
import gzip
import io
import json

import orjson
import pyarrow.parquet as pq
import pytest
from sim_helpers import CODEC, batches, read_batch, start_sim

from pipelines.catalog.identifiers import is_valid_citizen_id
from pipelines.sim.config import SimConfig
from pipelines.sim.objections import parse_body
from pipelines.sim.simulator import Simulator

pytestmark = pytest.mark.integration
PATH = "/api/v1/objections"
ANSWERS = "/api/v1/objections/answers"


@pytest.fixture(scope="module")
def obj_sim(tmp_path_factory):
    """Every objection corrected on the first advanced day; many quarantinable defects."""
    s = start_sim(tmp_path_factory.mktemp("objections"), "--objection-correct-rate", "1",
                  "--objection-confirm-rate", "0", "--objection-delay-days-max", "1",
                  "--defects", json.dumps({"id_bad_checksum": 0.05, "bad_value": 0.05}))
    yield s
    s.stop()


def _auth(s) -> dict:
    return {"Authorization": f"Bearer {s.token()}"}


def _truth(s) -> str:
    return s.post("/admin/truth").json()["dir"]


def _delivered(s, d: dict) -> list[str]:
    """The delivered line a bulk truth entry points at, parsed as the hub reads it."""
    folder = s.drop_root / ("CU" if d["resource"].startswith("CU") else "PS") / d["resource"] \
        / d["batch_id"]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    raw = gzip.decompress((folder / d["file"]).read_bytes()).split(b"\r\n")[d["line"] - 1]
    return next(csv.reader(io.StringIO(raw.decode(CODEC[manifest["encoding"]]))))


def _answers(s, h, cursor: str = "") -> tuple[list[dict], str]:
    out = []
    while True:
        r = s.get(ANSWERS, headers=h, params={"cursor": cursor, "limit": 7})
        assert r.status_code == 200
        body = r.json()
        out += body["answers"]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return out, cursor


def _bad_checksum_rows(s, out: str) -> list[tuple[dict, str]]:
    """(truth defect, key as delivered) of PS_POP_BASIC rows whose GMSFHM checksum is broken."""
    found = []
    for d in pq.read_table(out + "/defects.parquet").to_pylist():
        if (d["resource"], d["defect_code"], d["field"]) == ("PS_POP_BASIC", "id_bad_checksum",
                                                              "GMSFHM"):
            assert d["expected"] == "quarantined"
            gid = _delivered(s, d)[0]
            if gid and gid != d["key"]:
                found.append((d, gid))
    return found


def test_http_contract(obj_sim):
    s = obj_sim
    h = _auth(s)
    d, gid = _bad_checksum_rows(s, _truth(s))[0]
    body = {"objection_id": "contract-1", "resource": "PS_POP_BASIC", "batch_id": d["batch_id"],
            "file": d["file"], "line": d["line"], "record_key": gid, "field": "GMSFHM",
            "rule_id": "PS_POP_BASIC.GMSFHM.citizen_id", "reason": "bad checksum"}
    r = s.post(PATH, headers=h, json=body)
    assert r.status_code == 201, r.text
    first = r.json()
    assert set(first) == {"objection_id", "status", "received_at"}
    assert first["objection_id"] == "contract-1" and first["status"] == "accepted"
    assert first["received_at"].startswith("2026-10-01T") and first["received_at"].endswith(
        "+08:00")
    again = s.post(PATH, headers=h, json={**body, "reason": "sent twice"})
    assert again.status_code == 200 and again.json() == first
    bad = [b"not json", b"[1, 2]", orjson.dumps({"resource": "PS_POP_BASIC", "rule_id": "r"}),
           orjson.dumps({"objection_id": "x", "resource": "PS_POP_BASIC"}),
           orjson.dumps({"objection_id": "x", "resource": "PS_POP_BASIC", "rule_id": "r",
                         "line": "7"}),
           orjson.dumps({"objection_id": 5, "resource": "PS_POP_BASIC", "rule_id": "r"})]
    for raw in bad:
        r = s.post(PATH, headers={**h, "Content-Type": "application/json"}, content=raw)
        assert r.status_code == 400 and r.json()["error"] == "invalid_objection", raw
        assert r.json()["detail"]
    r = s.post(PATH, headers=h, json={"objection_id": "x", "resource": "NOPE", "rule_id": "r"})
    assert r.status_code == 404 and r.json()["error"] == "unknown_resource"
    r = s.post(PATH, json=body)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert s.get(ANSWERS).status_code == 401
    r = s.get(ANSWERS, headers=h, params={"cursor": "not-ours!"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_cursor"
    objections = s.get("/admin/status").json()["objections"]
    assert objections["received"] >= 1 and objections["rates"] == {
        "objection_correct_rate": 1.0, "objection_confirm_rate": 0.0,
        "objection_delay_days_max": 1}


def test_corrections_redelivered_with_clean_key(obj_sim):
    s = obj_sim
    h = _auth(s)
    out = _truth(s)
    checksum = _bad_checksum_rows(s, out)
    assert len(checksum) >= 3
    records = pq.read_table(out + "/records.parquet").to_pylist()
    defects = pq.read_table(out + "/defects.parquet").to_pylist()
    move = next(r for r in records if r["resource"] == "PS_HUKOU_MOVE")
    decl = next(r for r in records if r["resource"] == "CU_DECL_MONTHLY")
    api = next(d for d in defects if d["resource"] == "CA_MARRIAGE"
               and d["expected"] == "quarantined")
    (d1, gid1), (d2, gid2) = checksum[1], checksum[2]
    sent = {  # objection_id -> (body, clean key expected back)
        # locator and the damaged key as delivered
        "p-loc": ({"resource": "PS_POP_BASIC", "batch_id": d1["batch_id"], "file": d1["file"],
                   "line": d1["line"], "record_key": gid1}, d1["key"]),
        # the damaged key alone, written the way a careless hub might (normalised by the sim)
        "p-key": ({"resource": "PS_POP_BASIC", "record_key": f" {gid2[:6]} {gid2[6:]}".lower()},
                  d2["key"]),
        "move": ({"resource": "PS_HUKOU_MOVE", "batch_id": move["batch_id"],
                  "file": move["file"], "line": move["line"]}, move["key"]),
        "decl": ({"resource": "CU_DECL_MONTHLY", "record_key": decl["key"]}, decl["key"]),
        "api": ({"resource": "CA_MARRIAGE", "record_key": api["key"], "field": api["field"]},
                api["key"]),
        "unknown": ({"resource": "CU_ENT_REG", "record_key": "NO-SUCH-KEY"}, None),
    }
    feed_before, _ = s.pull("CA_MARRIAGE", s.token())
    _, cursor = _answers(s, h)
    for oid, (body, _k) in sent.items():
        r = s.post(PATH, headers=h, json={"objection_id": oid, "rule_id": "r", **body})
        assert r.status_code == 201, (oid, r.text)
    assert s.get(ANSWERS, headers=h, params={"cursor": cursor}).json()["answers"] == []
    s.advance(1)
    answers, _ = _answers(s, h, cursor)
    by_id: dict[str, list[dict]] = {}
    for a in answers:
        assert a["answered_at"].endswith("+08:00")
        by_id.setdefault(a["objection_id"], []).append(a)
    assert [a["status"] for a in by_id["unknown"]] == ["rejected"]
    assert by_id["unknown"][0]["note"] == "record not found"
    for oid, (_body, key) in sent.items():
        if key is None:
            continue
        assert [a["status"] for a in by_id[oid]] == ["verifying", "corrected"], oid
        assert by_id[oid][1]["corrected_key"] == key, oid
        assert by_id[oid][1]["answered_at"].startswith("2026-10-01T")

    # the clean rows arrive in the next drops, as updates on the correction day, no defects
    def newest(resource):
        prov = "CU" if resource.startswith("CU") else "PS"
        manifest, header, rows = read_batch(batches(s.drop_root, prov, resource)[-1])
        return manifest, [dict(zip(header, r, strict=True)) for r in rows]

    _m, pop = newest("PS_POP_BASIC")
    for oid in ("p-loc", "p-key"):
        hits = [r for r in pop if r["GMSFHM"] == sent[oid][1]]
        assert len(hits) == 1 and hits[0]["CZLX"] == "U", oid
        assert hits[0]["GXSJ"].startswith("2026-10-01") and is_valid_citizen_id(hits[0]["GMSFHM"])
        assert hits[0]["CSRQ"] == hits[0]["GMSFHM"][6:14]
    assert gid1 not in {r["GMSFHM"] for r in pop}
    _m, moves = newest("PS_HUKOU_MOVE")
    assert [r["CZLX"] for r in moves if r["YWLSH"] == sent["move"][1]] == ["U"]
    manifest, decls = newest("CU_DECL_MONTHLY")
    assert manifest["mode"] == "incremental" and manifest["batch_id"].startswith("20261002T")
    hits = [r for r in decls if f"{r['HGBM']}|{r['TJNY']}" == sent["decl"][1]]
    assert len(hits) == 1 and hits[0]["CZLX"] == "U"
    assert hits[0]["JK_JE"].replace(".", "").isdigit()
    feed, _ = s.pull("CA_MARRIAGE", s.token())
    tail = [r for r in feed[len(feed_before):] if r["YWBH"] == sent["api"][1]]
    assert len(tail) == 1 and tail[0]["CZLX"] == "U" and tail[0]["GXSJ"].startswith("2026-10-01")
    for side in ("NF", "NV"):
        if tail[0][f"{side}_ZJLXDM"] == "1":
            assert is_valid_citizen_id(tail[0][f"{side}_ZJHM"])
    assert tail[0]["DJRQ"].isdigit() and "LXDH" not in tail[0]

    # ground truth
    rows = {r["objection_id"]: r for r in pq.read_table(
        _truth(s) + "/objections.parquet").to_pylist()}
    assert rows["unknown"]["decision"] == "rejected" and rows["unknown"]["entity"] is None
    assert rows["p-loc"]["decision"] == "corrected" and rows["p-loc"]["record_key"] == gid1
    assert rows["p-loc"]["corrected_key"] == d1["key"] and rows["p-loc"]["decided_day"] == \
        "20261001"
    assert rows["p-loc"]["redelivered_batch_or_feed_pos"] == \
        batches(s.drop_root, "PS", "PS_POP_BASIC")[-1].name
    assert int(rows["api"]["redelivered_batch_or_feed_pos"]) == feed.index(tail[0])
    assert rows["api"]["entity"].startswith("M")
    status = s.get("/admin/status").json()["objections"]
    assert status["rejected"] >= 1 and status["corrected"] >= 5
    assert status["received"] == status["corrected"] + status["confirmed"] + status[
        "rejected"] + status["pending"]


def test_uncorrected_objections_stay_verifying(tmp_path):
    s = start_sim(tmp_path, "--objection-correct-rate", "0", "--objection-confirm-rate", "0")
    try:
        h = _auth(s)
        ent = s.pull("CU_ENT_REG", s.token())[0][0]
        for oid, key in (("known", ent["HGBM"]), ("unknown", "5001XXXXXX")):
            r = s.post(PATH, headers=h, json={"objection_id": oid, "resource": "CU_ENT_REG",
                                              "record_key": key, "rule_id": "r"})
            assert r.status_code == 201
        s.advance(3)
        answers, _ = _answers(s, h)
        assert [(a["objection_id"], a["status"]) for a in answers] == [
            ("known", "verifying"), ("unknown", "rejected")]
        status = s.get("/admin/status").json()["objections"]
        assert (status["received"], status["pending"], status["rejected"]) == (2, 1, 1)
        truth = pq.read_table(_truth(s) + "/objections.parquet").to_pylist()
        assert {t["objection_id"]: t["decision"] for t in truth} == {
            "known": "verifying", "unknown": "rejected"}
    finally:
        s.stop()


# --- in process ----------------------------------------------------------------------------------

def _sim(tmp_path, name: str, **kw) -> Simulator:
    return Simulator(SimConfig(seed=5, scale=1500, activity=30, drop_root=tmp_path / name / "d",
                               state_dir=tmp_path / name / "s", **kw))


def _file(sim: Simulator, oid: str, resource: str, key: str) -> int:
    body = parse_body(orjson.dumps({"objection_id": oid, "resource": resource,
                                    "record_key": key, "rule_id": "r"}))
    return sim.receive_objection(sim.cfg.node, body)[0]


@pytest.mark.unit
def test_decisions_do_not_depend_on_arrival(tmp_path):
    a, b = _sim(tmp_path, "a"), _sim(tmp_path, "b")
    keys = a.truth.bulk[0].keys[:120]
    ids = [(f"o{i}", k) for i, k in enumerate(keys)]
    for oid, k in ids:
        assert _file(a, oid, "PS_POP_BASIC", k) == 201
    b.advance(1)  # later, in reverse order, over two days
    for n, (oid, k) in enumerate(reversed(ids)):
        if n == 60:
            b.advance(1)
        assert _file(b, oid, "PS_POP_BASIC", k) == 201
    fate = [{oid: (ob.decision, ob.decided_day - ob.received_day
                   if ob.decided_day is not None else None)
             for (_n, oid), ob in s.objections.items.items()} for s in (a, b)]
    assert fate[0] == fate[1]
    decisions = [d for d, _ in fate[0].values()]
    assert 0.5 < decisions.count("corrected") / len(decisions) < 0.9
    assert "confirmed" in decisions and "verifying" in decisions
    assert {k for _d, k in fate[0].values()} == {0, 1, None}


@pytest.mark.unit
def test_every_resource_is_corrected(tmp_path):
    sim = _sim(tmp_path, "all", objection_correct_rate=1.0, objection_confirm_rate=0.0,
               objection_delay_days_max=1)
    node = sim.cfg.node
    keys = {ch.resource: ch.keys[0] for ch in reversed(sim.truth.bulk) if ch.keys}
    for resource, f in sim.feeds.items():  # the node's records, clean, from the last snapshot
        row = orjson.loads(f.snapshot_rows(node, f.snapshots[-1])[0])
        keys[resource] = "|".join(row[k] for k in sim.keys[resource])
    assert len(keys) == 9
    start = {r: f.node_length(node) for r, f in sim.feeds.items()}
    for resource, key in keys.items():
        assert _file(sim, resource, resource, key) == 201
    sim.advance(1)
    answers = [orjson.loads(x) for x in sim.objections.answers[node]]
    final = {a["objection_id"]: a for a in answers if a["status"] != "verifying"}
    assert {r: a["status"] for r, a in final.items()} == dict.fromkeys(keys, "corrected")
    assert {r: a["corrected_key"] for r, a in final.items()} == keys
    for resource, f in sim.feeds.items():
        recs = [orjson.loads(x) for x in f.page(node, start[resource], 10000)[0]]
        fields = sim.keys[resource]
        fixed = [r for r in recs if "|".join(r[k] for k in fields) == keys[resource]
                 and r["CZLX"] == "U" and r["GXSJ"].startswith("2026-10-01")]
        assert len(fixed) == 1, resource
    assert sim.status()["objections"]["corrected"] == 9


@pytest.mark.unit
def test_objection_settings_are_validated():
    with pytest.raises(ValueError):
        SimConfig(objection_correct_rate=0.95, objection_confirm_rate=0.1)
    with pytest.raises(ValueError):
        SimConfig(objection_delay_days_max=0)
    with pytest.raises(ValueError):
        SimConfig(objection_confirm_rate=-0.1)
