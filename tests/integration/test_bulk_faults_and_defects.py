"""Bulk drops from the real simulator: every bulk fault rejects (or defers) a batch whole until the
provider redelivers it; every injected defect ends where the ground truth says it must."""

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.sim.process import SimulatorProcess
from pipelines import backflow
from pipelines.catalog.model import catalog
from pipelines.settings import Settings

pytestmark = pytest.mark.integration

CAT = catalog()
BULK = [r for r in CAT.resources.values() if r.delivery == "bulk"]


def ingest(s: Settings) -> dict:
    return {r.code: backflow.ingest_drops(s, CAT, r) for r in BULK}


def q(s: Settings, sql: str, *params):
    with duckdb.connect(str(s.warehouse_path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


# Damaged bytes are told apart from a cut-short file only as well as the damage allows (a flipped
# byte can also end the gzip stream early), so those two faults accept either diagnosis.
DAMAGED = {"checksum_mismatch", "truncated_part"}


@pytest.mark.parametrize("fault, codes", [
    ("truncated_part", DAMAGED), ("corrupt_part", DAMAGED),
    ("row_count_mismatch", {"row_count_mismatch"}), ("missing_part", {"missing_part"}),
    ("in_progress", None)])
def test_bulk_fault_is_rejected_whole_then_taken_when_redelivered(tmp_path, fault, codes):
    with SimulatorProcess(tmp_path / "sim", scale=1500, seed=3,
                   extra=["--defect-profile", "none", "--activity", "10"]) as sim:
        s = Settings(home=tmp_path / "hub", drop_root=sim.home / "drops")
        ingest(s)
        sim.set_faults(**{fault: 1.0})
        sim.advance(1)  # every PS batch of this day is faulty
        sim.set_faults(**{fault: 0.0})
        runs = ingest(s)
        faulty = {b for r in runs.values() for b, _ in r.rejected}
        if codes is None:  # still being written: not read, not rejected, nothing loaded
            assert faulty == set() and all(r.loaded == [] for r in runs.values())
        else:
            assert faulty and {c for (c,) in q(s, "SELECT code FROM ops.rejections")} <= codes
            for b in faulty:
                assert q(s, "SELECT count(*) FROM hist.ps_pop_basic WHERE _batch_id = ?", b) \
                    == [(0,)]
        sim.advance(1)  # the provider redelivers the faulty batches, correctly
        truth = pq.read_table(sim.truth() / "faulty_batches.parquet").to_pylist()
        runs = ingest(s)
        assert all(r.rejected == [] for r in runs.values())
    assert truth and all(t["fault"] == fault and t["redelivered"] for t in truth)
    loaded = {b for (b,) in q(s, "SELECT batch_id FROM ops.batches WHERE status = 'loaded'")}
    assert {t["batch_id"] for t in truth} <= loaded
    assert q(s, "SELECT count(*) FROM ops.batches WHERE status <> 'loaded'") == [(0,)]


# The ground truth's `expected` is the hub's final word, contract rules (GX) included.
BACKFLOW_STAGE: dict[str, str] = {}


RATES = {"bad_value": 0.02, "wrong_columns": 0.01, "missing_key": 0.01, "bad_bytes": 0.01,
         "duplicate_row": 0.02, "resend_row": 0.02, "overshare_batch": 0.5,
         "undeclared_field": 0.3, "schema_drift_batch": 0.2, "id_bad_checksum": 0.003,
         "code_variant": 0.02}


def test_every_bulk_defect_ends_in_the_right_place(tmp_path):
    import json

    with SimulatorProcess(tmp_path / "sim", scale=5000, seed=9,
                   extra=["--activity", "20", "--defects", json.dumps(RATES)]) as sim:
        for _ in range(4):
            sim.advance(1)
        s = Settings(home=tmp_path / "hub", drop_root=sim.home / "drops")
        ingest(s)
        defects = pq.read_table(sim.truth() / "defects.parquet").to_pylist()
    bulk = [d for d in defects if d["delivery"] == "bulk"]
    seen = {d["defect_code"] for d in bulk}
    assert {"bad_value", "wrong_columns", "missing_key", "bad_bytes", "duplicate_row",
            "overshare", "schema_drift", "code_variant", "rare_char_name"} <= seen, seen
    # batch ids are unique per resource only: every key below starts with the resource
    staged = set(q(s, " UNION ALL ".join(
        f"SELECT '{r.code}', _batch_id, _file, _line FROM hist.{r.key}" for r in BULK)))
    quarantined = set(q(s, "SELECT resource, batch_id, file, line FROM ops.quarantine"))
    incidents = set(q(s, "SELECT resource, batch_id, field FROM ops.incidents"))
    rejected = set(q(s, "SELECT resource, batch_id FROM ops.rejections"))
    # A row can carry several defects; its fate is the strongest one (a lowercase x on a row that
    # also has a bad date is quarantined). Column defects (incidents) are judged per batch.
    strength = ["staged", "superseded", "quarantined", "rejected_batch"]
    fate: dict[tuple, str] = {}
    for d in bulk:
        expected = BACKFLOW_STAGE.get(d["defect_code"], d["expected"])
        if expected in strength and d["line"] is not None:
            where = (d["resource"], d["batch_id"], d["file"], d["line"])
            fate[where] = max(fate.get(where, "staged"), expected, key=strength.index)
    wrong, checked = [], 0
    for d in bulk:
        expected = BACKFLOW_STAGE.get(d["defect_code"], d["expected"])
        where = (d["resource"], d["batch_id"], d["file"], d["line"])
        batch = (d["resource"], d["batch_id"])
        if batch in rejected and expected != "rejected_batch":
            continue  # the whole batch was rejected for another defect (schema drift)
        expected = fate.get(where, expected)
        ok = {
            "staged": where in staged,
            "quarantined": where in quarantined,
            "superseded": where not in staged and where not in quarantined,
            "incident": (*batch, d["field"]) in incidents,
            "rejected_batch": batch in rejected,
        }[expected]
        checked += 1
        if not ok:
            wrong.append((d["defect_code"], expected, where))
    assert wrong == [], wrong
    assert checked > 100  # most defects landed in accepted batches, so the check is not vacuous
