"""The delivery contract, checked against a real simulator process (clean profile)."""

from __future__ import annotations

import gzip
import hashlib
import json
import random

import httpx
import pytest
from sim_helpers import CODEC, all_rows, batches, read_batch

from pipelines.catalog.model import catalog
from pipelines.catalog.identifiers import (
    is_valid_citizen_id,
    is_valid_customs_code,
    is_valid_uscc,
    uscc_problems,
)

pytestmark = pytest.mark.integration
BULK = {"PS": ["PS_POP_BASIC", "PS_HUKOU_MOVE"], "CU": ["CU_DECL_MONTHLY"]}
API = ["CA_MARRIAGE", "CA_CREMATION", "CA_SUBSISTENCE", "CA_SOCIAL_ORG", "CU_ENT_REG", "CU_PENALTY"]


def declared(resource: str) -> list[str]:
    r = catalog().resource(resource)
    return [f.code for f in r.fields if r.sharing_of(f).type != "N"] + ["CZLX", "GXSJ"]


def test_drop_contract(clean_sim):
    for provider, resources in BULK.items():
        for resource in resources:
            folders = batches(clean_sim.drop_root, provider, resource)
            assert folders, resource
            extracted = []
            for b in folders:
                manifest = json.loads((b / "manifest.json").read_text(encoding="utf-8"))
                assert set(manifest) == {"provider", "resource", "batch_id", "node", "mode",
                                         "extracted_at", "encoding", "schema_version", "files"}
                assert manifest["batch_id"] == b.name
                assert (manifest["provider"], manifest["resource"]) == (provider, resource)
                assert manifest["node"] == "500000" and manifest["schema_version"] == 1
                assert manifest["mode"] in ("incremental", "full")
                assert manifest["extracted_at"].endswith("+08:00")
                assert manifest["encoding"] in CODEC
                extracted.append(manifest["extracted_at"])
                # manifest written last
                m_time = (b / "manifest.json").stat().st_mtime_ns
                for f in manifest["files"]:
                    data = (b / f["name"]).read_bytes()
                    assert hashlib.sha256(data).hexdigest() == f["sha256"]
                    assert (b / f["name"]).stat().st_mtime_ns <= m_time
                    lines = gzip.decompress(data).decode(CODEC[manifest["encoding"]]).split("\r\n")
                    assert lines[-1] == ""
                    assert len(lines) - 2 == f["rows"]
                    assert lines[0].split(",") == declared(resource)
            assert extracted == sorted(extracted), "BATCH_ID order is delivery order"
    pop = batches(clean_sim.drop_root, "PS", "PS_POP_BASIC")
    modes = [json.loads((b / "manifest.json").read_text())["mode"] for b in pop]
    # day 0 full, 35 daily incrementals, one monthly full (2026-11-01)
    assert modes.count("full") == 2 and modes.count("incremental") == 35
    assert [b.name for b in pop][0] == "20261001T020000-000001"


def test_identifiers_valid_in_clean_profile(clean_sim):
    for row in all_rows(clean_sim.drop_root, "PS", "PS_POP_BASIC"):
        assert is_valid_citizen_id(row["GMSFHM"]), row
        assert row["CSRQ"] == row["GMSFHM"][6:14]
        assert int(row["GMSFHM"][16]) % 2 == (1 if row["XBDM"] == "1" else 0)
        assert (row["RYZTDM"] == "1") == bool(row["SWRQ"])
    for row in all_rows(clean_sim.drop_root, "CU", "CU_DECL_MONTHLY"):
        assert is_valid_uscc(row["TYSHXYDM"]) and is_valid_customs_code(row["HGBM"])
    tok = clean_sim.token()
    levels = catalog().code_tables["CREDIT_LEVEL"].valid_for
    ents, _ = clean_sim.pull("CU_ENT_REG", tok)
    for e in ents:
        assert not uscc_problems(e["TYSHXYDM"]) and e["TYSHXYDM"][:2] == "91"
        assert e["HGBM"][:4] == e["ZS_XZQHDM"][:4] and e["QYLXDM"] == e["HGBM"][5]
        assert e["XYDJDM"] in levels[e["XYZD"]]
        assert is_valid_citizen_id(e["FDDBR_ZJHM"])
    orgs, _ = clean_sim.pull("CA_SOCIAL_ORG", tok)
    for o in orgs:
        assert is_valid_uscc(o["TYSHXYDM"]) and o["TYSHXYDM"][0] == "5"
        assert o["TYSHXYDM"][1] == o["ZZLXDM"]
    marriages, _ = clean_sim.pull("CA_MARRIAGE", tok)
    assert {m["YWLXDM"] for m in marriages} == {"1", "2"}
    for m in marriages:
        for side in ("NF", "NV"):
            if m[f"{side}_ZJLXDM"] == "1":
                assert is_valid_citizen_id(m[f"{side}_ZJHM"]), m
    assert any(m["NF_ZJLXDM"] != "1" or m["NV_ZJLXDM"] != "1" for m in marriages)


def test_node_scope(clean_sim):
    """No record unrelated to 500000 (a record relates through its divisions or its persons)."""
    pop = all_rows(clean_sim.drop_root, "PS", "PS_POP_BASIC")
    assert pop and all(r["HJDZ_XZQHDM"].startswith("50") for r in pop)
    node_ids = {r["GMSFHM"] for r in pop}
    moved_out = [r for r in pop if r["RYZTDM"] == "2"]
    assert moved_out, "persons who left the node are delivered with status 2"
    moves = all_rows(clean_sim.drop_root, "PS", "PS_HUKOU_MOVE")
    for r in moves:
        assert r["QCD_XZQHDM"].startswith("50") or r["QRD_XZQHDM"].startswith("50")
    left = {r["GMSFHM"] for r in moves if r["QYLBDM"] == "2" and r["QCD_XZQHDM"].startswith("50")
            and not r["QRD_XZQHDM"].startswith("50")}
    for b in batches(clean_sim.drop_root, "PS", "PS_POP_BASIC"):
        manifest, header, rows = read_batch(b)
        if manifest["mode"] == "incremental":
            for r in rows:
                rec = dict(zip(header, r, strict=True))
                # a status-2 update is only the 迁出 itself, never later changes elsewhere
                assert rec["RYZTDM"] != "2" or rec["GMSFHM"] in left
    assert all(r["HGBM"].startswith("50") for r in all_rows(clean_sim.drop_root, "CU",
                                                             "CU_DECL_MONTHLY"))
    tok = clean_sim.token()
    for m in clean_sim.pull("CA_MARRIAGE", tok)[0]:
        assert (m["DJJG_XZQHDM"].startswith("50") or m["NF_ZJHM"] in node_ids
                or m["NV_ZJHM"] in node_ids), m
    for c in clean_sim.pull("CA_CREMATION", tok)[0]:
        assert c["BYG_XZQHDM"].startswith("50") or c["SZ_GMSFHM"] in node_ids, c
    for e in clean_sim.pull("CU_ENT_REG", tok)[0]:
        assert e["ZS_XZQHDM"].startswith("50")
    for p in clean_sim.pull("CU_PENALTY", tok)[0]:
        assert p["TYSHXYDM"][2:4] == "50"
    for o in clean_sim.pull("CA_SOCIAL_ORG", tok)[0]:
        assert o["ZS_XZQHDM"].startswith("50")
    # another node sees other records
    other = clean_sim.pull("CU_ENT_REG", clean_sim.token("110000"))[0]
    assert other and all(e["ZS_XZQHDM"].startswith("11") for e in other)


def test_cursor_resume_no_loss_no_duplication(clean_sim):
    tok = clean_sim.token()
    full, cursors = clean_sim.pull("CA_MARRIAGE", tok, limit=37)
    status = clean_sim.get("/admin/status").json()
    assert len(full) == status["feeds"]["CA_MARRIAGE"]
    rnd = random.Random(1)
    for cursor, consumed in rnd.sample(cursors, min(5, len(cursors))):
        tail, _ = clean_sim.pull("CA_MARRIAGE", tok, limit=500, cursor=cursor)
        assert tail == full[consumed:]
    r = clean_sim.get("/api/v1/resources/CA_MARRIAGE/changes", params={"cursor": "not-ours!"},
                      headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 400 and r.json() == {"error": "invalid_cursor"}


def test_snapshots_consistent_with_feed(clean_sim):
    tok = clean_sim.token()
    h = {"Authorization": f"Bearer {tok}"}
    for resource in API:
        snaps = clean_sim.get(f"/api/v1/resources/{resource}/snapshots", headers=h).json()
        snaps = snaps["snapshots"]
        assert [s["snapshot_id"] for s in snaps] == ["20261001T000000", "20261101T000000"]
        last = snaps[-1]
        rows, cursor = [], ""
        while True:
            page = clean_sim.get(f"/api/v1/resources/{resource}/snapshots/{last['snapshot_id']}",
                                 params={"cursor": cursor, "limit": 999}, headers=h).json()
            rows += page["records"]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        assert len(rows) == last["rows"] and all(r["CZLX"] == "I" for r in rows)
        if resource == "CA_SUBSISTENCE":
            months = {r["BZNY"] for r in rows}
            assert {"202510", "202610", "202611"} <= months
            continue
        # snapshot + feed after its cursor = every key of the whole feed (minus deletions)
        feed, _ = clean_sim.pull(resource, tok)
        tail, _ = clean_sim.pull(resource, tok, cursor=last["feed_cursor"])
        assert tail == feed[len(feed) - len(tail):]
        key = catalog().resource(resource).primary_key
        state = {tuple(r[k] for k in key): r for r in rows}
        for r in tail:
            k = tuple(r[f] for f in key)
            if r["CZLX"] == "D":
                state.pop(k, None)
            else:
                state[k] = r
        replay = {}
        for r in feed:
            k = tuple(r[f] for f in key)
            if r["CZLX"] == "D":
                replay.pop(k, None)
            else:
                replay[k] = r
        assert set(state) == set(replay)


def test_errors(clean_sim):
    tok = clean_sim.token()
    h = {"Authorization": f"Bearer {tok}"}
    assert clean_sim.get("/api/v1/resources/PS_POP_BASIC/changes", headers=h).status_code == 403
    assert clean_sim.get("/api/v1/resources/NOPE/changes", headers=h).status_code == 404
    r = clean_sim.get("/api/v1/resources/CU_ENT_REG/changes")
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    r = clean_sim.post("/oauth/token", data={"grant_type": "client_credentials",
                                             "client_id": "node-500000", "client_secret": "x"})
    assert r.status_code == 401 and r.json() == {"error": "invalid_client"}
    r = httpx.post(clean_sim.url + "/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "node-500000",
        "client_secret": "dev-secret-change-me"})
    assert r.json()["token_type"] == "Bearer" and r.json()["expires_in"] == 300
