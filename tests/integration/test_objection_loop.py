"""The whole objection loop against the simulator as a real process: records that fail a rule the
provider must fix raise objections, the platform acknowledges them, the provider answers through its
normal delivery, and the corrected record closes its objection; the CLI lists, shows, exports and
moves them."""

import csv
import datetime as dt
import json
import subprocess
import sys

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.sim.process import SimulatorProcess
from pipelines import backflow
from pipelines.catalog.model import catalog
from pipelines.governance.objection_sync import sync
from pipelines.warehouse.publish import publish
from pipelines.settings import Settings
from pipelines.warehouse.writer import writer

pytestmark = pytest.mark.integration
CAT = catalog()
# Row defects a provider must fix, at rates low enough that no batch crosses its threshold.
DEFECTS = {"id_bad_checksum": 0.003, "bad_value": 0.004}  # id_bad_checksum covers USCCs too


def q(s: Settings, sql: str, *params):
    with duckdb.connect(str(s.warehouse_path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def huiliu(s: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {"HUILIU_HOME": str(s.home), "HUILIU_TODAY": s.business_date().isoformat(),
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "objections", *args],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loop")
    extra = ["--activity", "20", "--defects", json.dumps(DEFECTS),
             "--objection-correct-rate", "0.8", "--objection-confirm-rate", "0.1",
             "--objection-delay-days-max", "1"]
    with SimulatorProcess(tmp / "sim", scale=4000, seed=11, extra=extra) as sim:
        days = []
        for day in range(4):
            if day:
                sim.advance(1)
            s = Settings(home=tmp / "hub", drop_root=sim.home / "drops", api_url=sim.url,
                         today=dt.date.fromisoformat(sim.status()["date"]))
            for r in CAT.resources.values():
                backflow.run_resource(s, CAT, r)
            with writer(s.warehouse_path) as con:
                days.append(sync(con, CAT, backflow.platform_client(s), s.business_date()))
        truth = pq.read_table(sim.truth() / "objections.parquet").to_pylist()
    publish(s)
    return s, truth, days


def test_every_quarantined_record_the_provider_must_fix_has_one_objection(loop):
    s, _, _ = loop
    missing = q(s, """SELECT q.resource, q.batch_id, q.line, q.reason_code FROM ops.quarantine q
        WHERE (q.reason_code LIKE '%.gb11643' OR q.reason_code LIKE '%.gb32100'
               OR q.reason_code = 'unparseable_value')
          AND NOT EXISTS (SELECT 1 FROM ops.objections o WHERE o.resource = q.resource
              AND o.rule_id = q.reason_code AND o.record_key IS NOT DISTINCT FROM q.record_key)""")
    assert missing == []
    assert q(s, "SELECT count(*) FROM ops.objections")[0][0] >= 5


def test_the_provider_answers_and_corrected_records_close_their_objections(loop):
    s, truth, days = loop
    assert days[0].submitted > 0 and days[0].transitions.get("accepted") == days[0].submitted
    status = dict(q(s, "SELECT objection_id, status FROM ops.objections"))
    decided = {t["objection_id"]: t["decision"] for t in truth}
    assert set(decided) == set(status)  # every objection reached the provider
    corrected = [o for o, d in decided.items() if d == "corrected"]
    assert corrected, "the simulator corrected none: raise the rates"
    # everything the provider corrected (decided by day 2 of 3) is closed as corrected by the data
    early = {t["objection_id"] for t in truth
             if t["decision"] == "corrected" and t["decided_day"] <= "20261003"}
    assert early and all(status[o] == "corrected" for o in early)
    for o, d in decided.items():
        if d == "confirmed":
            assert status[o] == "confirmed"
        if d == "verifying":  # no answer yet: still open, so the record is disputed
            assert status[o] == "verifying"
    # each closure is logged, and a correction closes through a delivered batch or the answer
    events = q(s, """SELECT to_status, actor, reason FROM ops.objection_events
        WHERE objection_id = ? ORDER BY event_at, rowid""", sorted(early)[0])
    assert [e[0] for e in events][0] == "raised" and events[-1][0] == "corrected"
    assert events[1][:2] == ("accepted", events[1][1]) and events[1][1] in {"PS", "CA", "CU"}


def test_the_cli_lists_shows_exports_and_moves_objections(loop, tmp_path):
    s, _, _ = loop
    listed = huiliu(s, "list", "--status", "corrected", "--limit", "3")
    assert listed.returncode == 0, listed.stderr
    assert "corrected" in listed.stdout and "all objections:" in listed.stdout
    oid = q(s, "SELECT objection_id FROM ops.objections WHERE status = 'corrected' LIMIT 1")[0][0]
    shown = huiliu(s, "show", oid)
    assert shown.returncode == 0 and "raised" in shown.stdout and "corrected" in shown.stdout
    out = tmp_path / "ps.csv"
    exported = huiliu(s, "export", "--provider", "PS", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert rows and {r["provider"] for r in rows} == {"PS"}
    assert len(rows) == q(s, "SELECT count(*) FROM ops.objections WHERE provider = 'PS'")[0][0]
    raised = huiliu(s, "raise", "--resource", "PS_POP_BASIC", "--key", "500103198001010029",
                    "--field", "XM", "--reason", "申请人称姓名有误", "--actor", "window-03")
    assert raised.returncode == 0, raised.stderr
    new = raised.stdout.split()[1].rstrip(";")
    moved = huiliu(s, "move", new, "--to", "verifying", "--reason", "x", "--actor", "PS")
    assert moved.returncode != 0 and "cannot become verifying" in moved.stderr
    moved = huiliu(s, "move", new, "--to", "rejected", "--reason", "记录无误", "--actor", "PS")
    assert moved.returncode == 0, moved.stderr
    shown = huiliu(s, "show", new)  # published again: readers see the move at once
    assert "rejected" in shown.stdout and "window-03" in shown.stdout
