"""Determinism, tokens, rate limits, faults and ground truth of the simulator process."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
import zlib

import httpx
import pyarrow.parquet as pq
import pytest
from sim_helpers import CODEC, batches, read_batch, start_sim

from pipelines.catalog.identifiers import is_valid_citizen_id

pytestmark = pytest.mark.integration


def _drop_digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_deliveries(tmp_path):
    sims = [start_sim(tmp_path / name, seed=11) for name in ("a", "b")]
    other = start_sim(tmp_path / "c", seed=12)
    try:
        for s in (*sims, other):
            s.advance(3)
        a, b = (_drop_digest(s.drop_root) for s in sims)
        assert a == b and len(a) > 10
        assert _drop_digest(other.drop_root) != a
        for resource in ("CA_MARRIAGE", "CU_ENT_REG", "CA_CREMATION"):
            fa, fb = (s.pull(resource, s.token())[0] for s in sims)
            assert fa == fb and fa
    finally:
        for s in (*sims, other):
            s.stop()


def test_token_expiry_and_rate_limit(tmp_path):
    s = start_sim(tmp_path, "--token-ttl", "1", "--rate-limit", "5")
    try:
        tok = s.token()
        h = {"Authorization": f"Bearer {tok}"}
        assert s.get("/api/v1/resources/CU_ENT_REG/changes", headers=h).status_code == 200
        time.sleep(1.3)
        r = s.get("/api/v1/resources/CU_ENT_REG/changes", headers=h)
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        h = {"Authorization": f"Bearer {s.token()}"}
        codes = [s.get("/api/v1/resources/CU_ENT_REG/changes", headers=h, params={"limit": 1})
                 for _ in range(20)]
        limited = [r for r in codes if r.status_code == 429]
        assert limited and int(limited[0].headers["Retry-After"]) >= 1
    finally:
        s.stop()


def test_api_faults(tmp_path):
    s = start_sim(tmp_path)
    try:
        h = {"Authorization": f"Bearer {s.token()}"}
        path = "/api/v1/resources/CU_ENT_REG/changes"

        def with_fault(name, **extra):
            zero = dict.fromkeys(("http_5xx", "http_429", "slow", "drop_connection",
                                  "expire_token"), 0)
            assert s.put("/admin/faults", json={**zero, name: 1, **extra}).status_code == 200

        with_fault("http_5xx")
        assert s.get(path, headers=h).status_code >= 500
        with_fault("http_429", retry_after=3)
        r = s.get(path, headers=h)
        assert r.status_code == 429 and r.headers["Retry-After"] == "3"
        with_fault("slow", slow_seconds=0.6)
        t0 = time.monotonic()
        assert s.get(path, headers=h).status_code == 200
        assert time.monotonic() - t0 >= 0.6
        with_fault("drop_connection")
        with pytest.raises(httpx.TransportError):
            s.get(path, headers=h)
        with_fault("expire_token")
        r = s.get(path, headers=h)
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        with_fault("expire_token", expire_token=0)
        assert s.get(path, headers=h).status_code == 200
        assert s.get("/admin/faults").json()["http_5xx"] == 0
        assert s.put("/admin/faults", json={"nope": 1}).status_code == 400
    finally:
        s.stop()


def _newest(s, resource="PS_POP_BASIC"):
    return batches(s.drop_root, "PS", resource)[-1]


def test_bulk_faults_observable_and_redelivered(tmp_path):
    s = start_sim(tmp_path)
    bulk = ("truncated_part", "corrupt_part", "row_count_mismatch", "in_progress", "missing_part")
    try:
        for fault in bulk:
            s.put("/admin/faults", json={**dict.fromkeys(bulk, 0), fault: 1})
            s.advance(1)
            b = _newest(s)
            if fault == "in_progress":
                assert not (b / "manifest.json").exists()
                assert list(b.glob("part-*.csv.gz"))
            else:
                m = json.loads((b / "manifest.json").read_text())
                f = m["files"][0]
                path = b / f["name"]
                if fault == "missing_part":
                    assert not path.exists()
                    continue
                data = path.read_bytes()
                if fault == "truncated_part":
                    with pytest.raises((EOFError, zlib.error, OSError)):
                        gzip.decompress(data)
                elif fault == "corrupt_part":
                    assert hashlib.sha256(data).hexdigest() != f["sha256"]
                else:
                    lines = gzip.decompress(data).decode(CODEC[m["encoding"]]).split("\r\n")
                    assert len(lines) - 2 != f["rows"]
        s.put("/admin/faults", json=dict.fromkeys(bulk, 0))
        s.advance(1)
        # every batch, the faulty ones included, is now complete and healthy
        for b in batches(s.drop_root, "PS", "PS_POP_BASIC"):
            manifest, _header, rows = read_batch(b)
            assert sum(f["rows"] for f in manifest["files"]) == len(rows)
            for f in manifest["files"]:
                assert hashlib.sha256((b / f["name"]).read_bytes()).hexdigest() == f["sha256"]
        truth = pq.read_table(s.post("/admin/truth").json()["dir"] + "/faulty_batches.parquet")
        t = truth.to_pylist()
        assert sorted({x["fault"] for x in t if x["resource"] == "PS_POP_BASIC"}) == sorted(bulk)
        assert all(x["redelivered"] for x in t)
    finally:
        s.stop()


def test_truth_lists_injected_defects(tmp_path):
    s = start_sim(tmp_path)
    try:
        heavy = {"id_bad_checksum": 0.05, "id_15_digit": 0.05, "id_fullwidth": 0.03,
                 "id_space": 0.03, "code_variant": 0.05, "duplicate_row": 0.05,
                 "resend_row": 0.05, "modify_before_add": 0.1, "bad_value": 0.05,
                 "wrong_columns": 0.03, "missing_key": 0.03, "bad_bytes": 0.03,
                 "overshare_batch": 0.3, "undeclared_field": 0.05, "schema_drift_batch": 0.2,
                 "stale_status": 0.5}
        assert s.put("/admin/defects", json=heavy).status_code == 200
        s.advance(33)
        out = s.post("/admin/truth").json()["dir"]
        defects = pq.read_table(out + "/defects.parquet").to_pylist()
        codes = {d["defect_code"] for d in defects}
        for code in ("id_bad_checksum", "id_15_digit", "code_variant", "duplicate_row",
                     "resend_row", "modify_before_add", "modify_before_add_i", "bad_value",
                     "wrong_columns", "missing_key", "bad_bytes", "overshare",
                     "undeclared_field", "schema_drift", "stale_status"):
            assert code in codes, code
        assert {d["expected"] for d in defects} >= {"staged", "quarantined", "incident",
                                                    "superseded", "rejected_batch"}
        # file/line point at the damaged line
        checked = 0
        for d in defects:
            if d["delivery"] != "bulk" or d["line"] is None or d["resource"] != "PS_POP_BASIC":
                continue
            folder = s.drop_root / "PS" / "PS_POP_BASIC" / d["batch_id"]
            manifest = json.loads((folder / "manifest.json").read_text())
            raw = gzip.decompress((folder / d["file"]).read_bytes()).split(b"\r\n")
            line = raw[d["line"] - 1]
            if d["defect_code"] == "bad_bytes":
                with pytest.raises(UnicodeDecodeError):
                    line.decode(CODEC[manifest["encoding"]])
                checked += 1
            elif d["defect_code"] == "id_bad_checksum":
                gid = line.decode(CODEC[manifest["encoding"]]).split(",")[0]
                if not gid:  # the same line also lost its key (missing_key)
                    continue
                assert not is_valid_citizen_id(gid) and gid[:17] == d["key"][:17]
                checked += 1
        assert checked >= 2
        api = [d for d in defects if d["delivery"] == "api"]
        assert api and all(d["seq"] is not None for d in api)
        recs = pq.read_table(out + "/records.parquet").to_pylist()
        assert {r["delivery"] for r in recs} == {"bulk", "api"}
        persons = pq.read_table(out + "/persons.parquet")
        assert persons.num_rows >= 2000
        assert persons.column("twin_group").drop_null().to_pylist()
    finally:
        s.stop()
