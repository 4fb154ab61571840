"""全国通办: three hub nodes (重庆 500000, 四川 510000, 深圳 440300) and the national exchange
as real processes on loopback, each node backflowing its own scope of one simulated world.

What users rely on: a 重庆 officer's prefill about a person registered in 四川 or 深圳 is answered
by that node, under that node's list, with provenance naming it, behind the unchanged API; nothing
of it lands in 重庆's warehouse; every exchange is in the three audit logs and they agree; forged,
replayed, tampered, stale, direct and unknown messages are refused and logged; a node down or the
exchange stalled costs the remote fields only, within the deadline, and recovers by itself."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import http.server
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import duckdb
import httpx
import orjson
import pytest

from .federation_helpers import iso, prefill, residents, truth_persons
from pipelines.exchange import keys
from pipelines.exchange.directory import Directory
from pipelines.exchange.envelope import Envelope, seal
from pipelines.exchange.federation import prepare, start
from pipelines.exchange.messages import RemoteRequest
from pipelines.exchange.national import national_layer
from pipelines.exchange.pairing import pair
from pipelines.exchange.suites import ED25519
from pipelines.serving.templates import templates
from release_rule import receivable_sources

DEADLINE_S = 2.0  # the default HUILIU_EXCHANGE_DEADLINE_SECONDS
SLACK_S = 2.0  # scheduling on a loaded 2-core machine; a hang would take far longer


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    # half the movers between nodes stay registered at their origin (the simulator's defect
    # move_not_cancelled): what the reconciliation across regions must find
    f = prepare(tmp_path_factory.mktemp("federation"), scale=3000, seed=42,
                extra_env={"HUILIU_EXCHANGE_BREAKER_PAUSE_SECONDS": "1"},
                sim_args=("--defects", '{"move_not_cancelled": 0.5}'),
                suites={"440300": "sm2-sm3"})  # 深圳 signs with the 国密 suite
    start(f)
    yield f
    f.stop()


@pytest.fixture(scope="module")
def truth(fed):
    return truth_persons(fed)


def _fields(role: dict) -> dict:
    return role.get("fields", {})


def test_a_child_registered_in_sichuan_is_prefilled_for_a_chongqing_school(fed, truth):
    child = residents(truth, "51", "birth_date BETWEEN '20190901' AND '20200831'")[0]
    r = prefill(fed, "500000", "JYJ", "SCHOOL_ENROLL", {"child": child["gmsfhm"]})
    assert r.status_code == 200, r.text
    role = r.json()["roles"]["child"]
    assert role["status"] == "found" and role["node"] == "510000"
    f = _fields(role)
    assert f["name"]["value"] == child["xm"]
    assert f["birth_date"]["value"] == iso(child["birth_date"])
    assert f["hukou_division"]["value"] == child["hukou_division"]
    assert f["hukou_address"]["value"] == child["hukou_address"]
    for env in f.values():
        assert env["source"]["node"] == "510000"
        assert {"provider", "resource", "batch", "record_key"} <= set(env["source"])
        assert {"as_of", "disputed", "conflict"} <= set(env)


def test_a_shenzhen_resident_marrying_in_chongqing_is_answered_by_shenzhen_under_its_own_list(
        fed, truth):
    a = residents(truth, "50", "marital_status = '10' AND sex = '1' AND birth_date < '20000101'")[0]
    b = residents(truth, "4403", "marital_status = '10' AND sex = '2' "
                  "AND birth_date < '20000101'")[0]
    r = prefill(fed, "500000", "MZJ", "MARRIAGE_REG", {"party_a": a["gmsfhm"],
                                                       "party_b": b["gmsfhm"]})
    assert r.status_code == 200, r.text
    roles = r.json()["roles"]
    local, remote = roles["party_a"], roles["party_b"]
    assert "node" not in local and _fields(local)["name"]["value"] == a["xm"]
    assert remote["node"] == "440300"
    # its answer was signed with SM2/SM3 and checked by the exchange and by 重庆
    assert {k.suite for k in Directory.read(fed.directory).member("440300").keys} == {"sm2-sm3"}
    rf = _fields(remote)
    assert rf["name"]["value"] == b["xm"] and rf["marital_status"]["value"] == "10"
    assert rf["status"]["value"] == "alive"
    # 深圳's list gives a marriage registration the division, not the detailed address;
    # 重庆's own list would have released it (as it did for party_a)
    assert rf["hukou_address"] == {"status": "withheld", "reason": "PURPOSE_NOT_ENTITLED"}
    assert _fields(local)["hukou_address"]["value"] == a["hukou_address"]
    assert b["hukou_address"].encode() not in r.content


def test_the_officers_preview_page_shows_which_node_answered_each_field(fed, truth, browser):
    a = residents(truth, "50", "marital_status = '10' AND sex = '1' AND birth_date < '20000101'")[0]
    b = residents(truth, "4403", "marital_status = '10' AND sex = '2' "
                  "AND birth_date < '20000101'")[0]
    n = fed.nodes["500000"]
    page = browser.new_page()
    page.goto(f"{n.url}/preview")
    page.fill("#credential", n.credentials["MZJ"])
    page.select_option("#template", "MARRIAGE_REG")
    page.fill("#subject-party_a", a["gmsfhm"])
    page.fill("#subject-party_b", b["gmsfhm"])
    page.click("#go")
    remote_name = page.locator('tr[data-field="party_b.name"]')
    remote_name.wait_for()
    assert remote_name.locator("td.value").inner_text() == b["xm"]
    assert "440300 节点 / node" in remote_name.inner_text()
    assert page.locator('[data-node="440300"]').count() == 1  # the role's heading
    local_name = page.locator('tr[data-field="party_a.name"]')
    assert local_name.locator("td.value").inner_text() == a["xm"]
    assert "节点 / node" not in local_name.inner_text()
    address = page.locator('tr[data-field="party_b.hukou_address"]')
    assert address.get_attribute("data-status") == "withheld"
    page.close()


def test_a_yes_no_check_about_a_person_of_another_node_is_answered_by_that_node(fed, truth):
    alive = residents(truth, "51", "birth_date < '20000101'")[0]["gmsfhm"]
    n = fed.nodes["500000"]
    r = httpx.post(f"{n.url}/v1/verify", timeout=30,
                   headers={"Authorization": f"Bearer {n.credentials['MZJ']}"},
                   json={"case_id": "CHECK-1", "purpose": "AFTER_DEATH", "check": "alive",
                         "subject": alive})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "answered" and body["answer"] is True and body["node"] == "510000"
    assert body["source"]["node"] == "510000"


def test_each_answering_node_follows_its_own_entitlement_matrix(fed, truth):
    """Every department × life event the exchange's national layer lets cross, asked of each
    other node: each field is released exactly when the ANSWERING node's list (its YAML, read
    by the test) shares a source of it with that department for that purpose; withheld fields
    carry no value; and no answer's bytes hold a value the department may not have."""
    layer = national_layer()
    asked = 0
    for requester, answerer, prefix in (("500000", "510000", "51"), ("500000", "440300", "4403"),
                                        ("510000", "500000", "50")):
        subject = residents(truth, prefix, "birth_date < '20000101'")[0]
        for code, t in templates().items():
            if f"prefill/{code}" not in layer or t.roles[next(iter(t.roles))].subject != "person":
                continue
            role, spec = next(iter(t.roles.items()))
            for dept in (t.lead, *t.cooperating):
                r = prefill(fed, requester, dept, code, {role: subject["gmsfhm"]},
                            case_id=f"M-{answerer}-{code}-{dept}")
                assert r.status_code == 200, r.text
                answer = r.json()["roles"][role]
                asked += 1
                if dept not in layer[f"prefill/{code}"].departments:
                    assert answer == {"status": "unavailable", "reason": "REMOTE_NOT_ENTITLED",
                                      "node": answerer}
                    continue
                assert answer["node"] == answerer
                for field in spec.fields:
                    env = _fields(answer).get(field.code) or answer["fields"][field.code]
                    entitled = bool(receivable_sources("person", field.golden, dept, code,
                                                       node=answerer))
                    assert (env["status"] != "withheld") == entitled, (answerer, code, dept,
                                                                       field.code, env)
                    if not entitled:
                        assert "value" not in env
                        secret = {"name": subject["xm"], "hukou_address":
                                  subject["hukou_address"]}.get(field.golden)
                        assert secret is None or secret.encode() not in r.content
    assert asked >= 20


HAND_MADE: set[str] = set()  # requests this module sent itself with a node's key


def _request(fed, sender: str, receiver: str, subject: str, **over) -> Envelope:
    body = RemoteRequest("prefill/SCHOOL_ENROLL", "JYJ", "SCHOOL_ENROLL", "ATTACK-1",
                         {"subjects": {"child": subject}}).to_bytes()
    request_id = f"{sender}-t{random.getrandbits(40):x}"
    HAND_MADE.add(request_id)
    return seal("request", request_id, receiver, body, keys.current(fed.nodes[sender].home),
                **over)


def _relay(fed, env: Envelope | bytes) -> httpx.Response:
    data = env if isinstance(env, bytes) else env.to_wire()
    return httpx.post(f"{fed.exchange_url}/v1/relay", content=data, timeout=10)


def test_forged_replayed_tampered_stale_direct_and_unknown_messages_are_refused_and_logged(
        fed, truth):
    child = residents(truth, "51")[0]["gmsfhm"]
    good = _request(fed, "500000", "510000", child)
    assert _relay(fed, good).status_code == 200
    refused = {}
    refused["replayed"] = _relay(fed, good)
    forged = _request(fed, "500000", "510000", child)
    flipped = ("0" if forged.signature[0] != "0" else "1") + forged.signature[1:]
    refused["forged"] = _relay(fed, replace(forged, signature=flipped))
    stranger = ED25519.generate()  # a key the directory does not list for 500000
    wrong = _request(fed, "500000", "510000", child)
    refused["wrong_key"] = _relay(fed, replace(wrong, signature=ED25519.sign(
        stranger.private, wrong.signed_bytes())))
    tampered = _request(fed, "500000", "510000", child)
    refused["tampered"] = _relay(fed, replace(tampered, body=tampered.body.replace(
        b"JYJ", b"GAJ")))
    refused["stale"] = _relay(fed, _request(
        fed, "500000", "510000", child, now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)))
    unknown = _request(fed, "500000", "510000", child)
    unknown_header = {**unknown.header, "sender": "990000"}
    refused["unknown_node"] = _relay(fed, replace(unknown, header=unknown_header))
    expected = {"replayed": "replayed", "forged": "bad_signature", "wrong_key": "bad_signature",
                "tampered": "bad_signature", "stale": "expired", "unknown_node": "unknown_node"}
    for case, r in refused.items():
        assert r.status_code in (400, 403) and r.json()["error"] == expected[case], (case, r.text)
    # a node called directly, without the exchange, refuses the unstamped message
    direct = httpx.post(f"{fed.nodes['510000'].url}/v1/exchange", timeout=10,
                        content=_request(fed, "500000", "510000", child).to_wire())
    assert direct.status_code == 403 and direct.json()["error"] == "exchange_no_stamp"
    # logged: each refusal in the exchange's audit log, the direct call in the node's refusals
    logged = [orjson.loads(line)[10] for line in fed.exchange_log.read_bytes().splitlines()]
    outcomes = [orjson.loads(d).get("outcome", "") for d in logged if d.startswith("{")]
    for code in set(expected.values()):
        assert f"refused:{code}" in outcomes, code
    refusals = fed.nodes["510000"].home / "serving" / "refusals.jsonl"
    for _ in range(50):
        if refusals.exists() and b"exchange_no_stamp" in refusals.read_bytes():
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the direct call is not in the node's refusal log")


def test_the_answering_node_lists_the_remote_request_in_the_subjects_access_log(fed, truth):
    child = residents(truth, "51", "birth_date BETWEEN '20180901' AND '20190831'")[0]["gmsfhm"]
    assert prefill(fed, "500000", "JYJ", "SCHOOL_ENROLL", {"child": child},
                   case_id="ACCESS-1").status_code == 200
    n = fed.nodes["510000"]
    r = httpx.get(f"{n.url}/v1/access-log", params={"subject": child}, timeout=10,
                  headers={"Authorization": f"Bearer {n.credentials['SJJ']}"})
    assert r.status_code == 200, r.text
    assert any(e["consumer"] == "500000/JYJ" and e["case_id"] == "ACCESS-1"
               for e in r.json()["entries"])


def _string_values(path, ids: set[str]) -> set[str]:
    """Which of `ids` appear in any text column of any table of the DuckDB file."""
    found = set()
    with duckdb.connect(str(path), read_only=True) as con:
        cols = con.execute("""SELECT schema_name, table_name, column_name FROM duckdb_columns()
            WHERE data_type = 'VARCHAR' AND NOT internal""").fetchall()
        con.execute("CREATE TEMP TABLE asked(id VARCHAR)")
        con.executemany("INSERT INTO asked VALUES (?)", [[i] for i in ids])
        for schema, table, column in cols:
            found |= {r[0] for r in con.execute(
                f'SELECT DISTINCT a.id FROM "{schema}"."{table}" t JOIN asked a '
                f'ON t."{column}" = a.id').fetchall()}
    return found


def _huiliu(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_thousand_random_cross_node_requests_leave_no_trace_in_the_requesters_warehouse_and_pair_up(
        fed, truth):
    rng = random.Random(16)
    pools = {code: [p["gmsfhm"] for p in residents(truth, prefix, limit=60)]
             for code, prefix in (("500000", "50"), ("510000", "51"), ("440300", "4403"))}
    # the other nodes' residents a node does not know (some it does: one married a resident)
    unknown = {}
    for code, n in fed.nodes.items():
        others = {i for c, ids in pools.items() if c != code for i in ids}
        unknown[code] = others - _string_values(n.home / "published" / "current.duckdb", others)
    jobs = []
    for i in range(1000):
        requester = rng.choice(list(fed.nodes))
        answerer = rng.choice([c for c in fed.nodes if c != requester])
        subject = rng.choice(sorted(set(pools[answerer]) & unknown[requester]))
        template, dept, role = rng.choice([("SCHOOL_ENROLL", "JYJ", "child"),
                                           ("MARRIAGE_REG", "MZJ", "party_b"),
                                           ("AFTER_DEATH", "MZJ", "deceased")])
        jobs.append((requester, answerer, dept, template, role, subject, f"RND-{i}"))

    async def run_all():
        sem = asyncio.Semaphore(16)
        async with httpx.AsyncClient(timeout=30) as client:
            async def one(job):
                requester, answerer, dept, template, role, subject, case = job
                n = fed.nodes[requester]
                async with sem:
                    r = await client.post(f"{n.url}/v1/prefill", json={
                        "case_id": case, "purpose": template, "template": template,
                        "subjects": {role: subject}},
                        headers={"Authorization": f"Bearer {n.credentials[dept]}"})
                return job, r
            return await asyncio.gather(*(one(j) for j in jobs))

    # in a thread of its own: the browser tests leave Playwright's event loop on this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        results = pool.submit(asyncio.run, run_all()).result()
    for (requester, answerer, *_), r in results:
        assert r.status_code == 200, r.text
        role = next(x for x in r.json()["roles"].values() if x["status"] != "not_applicable")
        assert role["status"] == "found" and role["node"] == answerer, role
    for code, n in fed.nodes.items():
        assert not _string_values(n.home / "published" / "current.duckdb", unknown[code])
        assert not _string_values(n.home / "warehouse" / "huiliu.duckdb", unknown[code])
    paired, problems = pair(fed.exchange_log, {c: n.audit_log for c, n in fed.nodes.items()})
    # the one the refusal test relayed itself is not in 500000's log, and pairing says so
    assert {p.request_id for p in problems} <= HAND_MADE and paired >= 1000, problems
    for n in fed.nodes.values():
        out = _huiliu(n.env, "audit", "verify", "--home", str(n.home))
        assert out.returncode == 0 and "intact" in out.stdout, out.stdout + out.stderr
    out = _huiliu(fed.exchange_env, "audit", "verify", "--log", str(fed.exchange_log))
    assert out.returncode == 0 and "intact" in out.stdout, out.stdout + out.stderr


@contextlib.contextmanager
def _garbage_server(port: int):
    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>not an answer</html>")

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _member_of(division: str | None) -> str | None:
    for code, prefix in (("500000", "50"), ("510000", "51"), ("440300", "4403")):
        if division and division.startswith(prefix):
            return code
    return None


def test_movers_registered_in_two_nodes_become_conflicts_with_both_provenances_and_objections(
        fed, truth):
    """The simulator's truth: who moved once between two member nodes and is still registered
    at the origin. Each node's crosscheck must find exactly those of its movers, and raise the
    objection on its own provider exactly where it is the origin (its police must cancel)."""
    today = fed.nodes["500000"].env["HUILIU_TODAY"].replace("-", "")
    rows = truth.execute("""SELECT gmsfhm, first_origin_division, hukou_division,
        status = 'dead' AND hukou_cancel_date IS NOT NULL AND hukou_cancel_date <= ? AS dead
        FROM truth WHERE origin_not_cancelled AND moves = 1 AND registered""", [today]).fetchall()
    expected: dict[str, dict[str, tuple]] = {code: {} for code in fed.nodes}
    for cid, origin, now, dead in rows:
        a, b = _member_of(origin), _member_of(now)
        if a and b and a != b:
            kind = "dead_in_one_alive_in_other" if dead else "registered_in_two_nodes"
            expected[a][cid] = (kind, b, a)
            expected[b][cid] = (kind, a, a)
    assert sum(map(len, expected.values())) >= 2, "the world has too few movers to test"
    for code, n in fed.nodes.items():
        out = _huiliu(n.env, "exchange", "crosscheck", "--home", str(n.home))
        assert out.returncode == 0, out.stdout + out.stderr
        with duckdb.connect(str(n.home / "published" / "current.duckdb"), read_only=True) as con:
            found = con.execute("""SELECT citizen_id, kind, other_node, origin_node, must_act,
                objection_id, local_batch, other_batch, other_resource FROM
                ops.cross_node_conflicts""").fetchall()
            assert {r[0]: r[1:4] for r in found} == expected[code], (code, found)
            for cid, _kind, other, origin, must_act, objection, lb, ob, ores in found:
                assert must_act == f"{origin}:PS" and lb and ob and ores == "PS_POP_BASIC"
                if origin == code:  # its own police must act: an objection on the record
                    reason = con.execute("SELECT reason FROM ops.objections WHERE "
                                         "objection_id = ? AND record_key = ?",
                                         [objection, cid]).fetchall()
                    assert reason and other in reason[0][0] and ob in reason[0][0]
                else:
                    assert objection is None


def _timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


def test_a_node_down_or_the_exchange_stalled_costs_only_the_remote_fields_within_the_deadline(
        fed, truth):
    a = residents(truth, "50", "birth_date < '20000101'")[0]["gmsfhm"]
    b_sichuan = residents(truth, "51", "birth_date < '20000101'")[0]["gmsfhm"]
    b_shenzhen = residents(truth, "4403", "birth_date < '20000101'")[0]["gmsfhm"]
    others = {c: fed.nodes[c].proc.pid for c in ("500000", "440300")}
    exchange_pid = fed.exchange_proc.pid

    def marry(b, case):
        return prefill(fed, "500000", "MZJ", "MARRIAGE_REG", {"party_a": a, "party_b": b},
                       case_id=case)

    sichuan = fed.nodes["510000"]
    sichuan.proc.send_signal(signal.SIGKILL)
    sichuan.proc.wait(10)
    reasons = []
    with _garbage_server(sichuan.port):  # something else answers on the node's port
        r = marry(b_sichuan, "GARBAGE-1")
    reasons.append(r.json()["roles"]["party_b"]["reason"])
    for i in range(3):
        r, took = _timed(lambda i=i: marry(b_sichuan, f"DOWN-{i}"))
        assert r.status_code == 200 and took < DEADLINE_S + SLACK_S, (r.text, took)
        roles = r.json()["roles"]
        assert roles["party_a"]["status"] == "found"  # the local party is answered
        assert roles["party_b"]["status"] == "unavailable" and roles["party_b"]["node"] == "510000"
        reasons.append(roles["party_b"]["reason"])
    assert reasons[:3] == ["REMOTE_INVALID_ANSWER"] + ["REMOTE_NODE_UNAVAILABLE"] * 2
    assert reasons[3] == "REMOTE_CIRCUIT_OPEN"  # three failures in a row: not asked again

    os.kill(exchange_pid, signal.SIGSTOP)
    try:
        r, took = _timed(lambda: marry(b_shenzhen, "STALLED-1"))
        assert r.status_code == 200 and took < DEADLINE_S + SLACK_S, (r.text, took)
        roles = r.json()["roles"]
        assert roles["party_a"]["status"] == "found"
        assert roles["party_b"] == {"status": "unavailable", "reason": "REMOTE_TIMEOUT",
                                    "node": "440300"}
    finally:
        os.kill(exchange_pid, signal.SIGCONT)

    sichuan.start()  # back on its port; nobody else is restarted
    for _ in range(100):
        try:
            if httpx.get(f"{sichuan.url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    time.sleep(1.2)  # the breaker's pause in this federation
    for case, b, node in (("BACK-1", b_sichuan, "510000"), ("BACK-2", b_shenzhen, "440300")):
        r = marry(b, case)
        assert r.json()["roles"]["party_b"]["status"] == "found", r.text
        assert r.json()["roles"]["party_b"]["node"] == node
    assert {c: fed.nodes[c].proc.pid for c in others} == others
    assert fed.exchange_proc.pid == exchange_pid and fed.exchange_proc.poll() is None
