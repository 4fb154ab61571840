"""The prefill service as a real process on loopback: a reconciled warehouse, its serving store,
credentials issued from the CLI, real HTTP. Released fields carry their provenance, withheld ones
carry a reason and nothing else, errors say what to fix, every answer is in the audit log."""

import datetime as dt
import os
import time

import httpx
import pytest

from pipelines.serving.store import build_store

from .reconcile_world import World, pid
from .serving_helpers import huiliu as run_huiliu, running_service

pytestmark = pytest.mark.integration

WANG = pid(dt.date(1985, 3, 14), 11)
LI = pid(dt.date(1987, 6, 2), 22)
STRANGER = pid(dt.date(1970, 1, 1), 99)  # valid, but not known to this node
# demo mode for the audit anchor only (a file beside the log); the key is a long one anyway
ENV = {**os.environ, "HUILIU_AUDIT_KEY": "prefill-api-test-key-0d6b2f9e4a7c1835",
       "HUILIU_DEMO": "1", "HUILIU_API_RATE": "20"}


def huiliu(home, *args) -> str:
    return run_huiliu(home, ENV, *args)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    home = tmp_path_factory.mktemp("hub")
    w = World(home / "warehouse.duckdb")
    w.person(WANG, "王建国", "1", dt.date(1985, 3, 14), marital="20")
    w.person(LI, "李秀英", "2", dt.date(1987, 6, 2), marital="20")
    w.marriage("M1", (WANG, "王建国"), (LI, "李秀英"))
    w.reconcile()
    w.con.close()
    build_store(home / "warehouse.duckdb", home / "serving")
    keys = {c: huiliu(home, "consumers", "issue", c)
            for c in ("WJW", "YBJ", "JYJ", "SJJ", "RSJ", "FY")}
    keys["MZJ2"] = huiliu(home, "consumers", "issue", "GAJ")  # a department of NEWBORN
    with running_service(home, ENV) as url:
        yield url, keys, home


def ask(url, key, **body):
    req = {"case_id": "CASE-1", "purpose": "NEWBORN", "template": "NEWBORN",
           "subjects": {"mother": LI, "father": WANG}} | body
    return httpx.post(f"{url}/v1/prefill", json=req,
                      headers={"Authorization": f"Bearer {key}"} if key else {})


def test_the_lead_department_gets_every_field_with_its_provenance(service):
    url, keys, _ = service
    r = ask(url, keys["WJW"])
    assert r.status_code == 200, r.text
    mother = r.json()["roles"]["mother"]["fields"]
    assert mother["name"]["status"] == "available" and mother["name"]["value"] == "李秀英"
    assert mother["name"]["source"]["provider"] == "PS"
    assert mother["name"]["source"]["record_key"] == LI
    assert mother["marriage_record"]["value"] == "M1"
    assert mother["marriage_record"]["source"]["resource"] == "CA_MARRIAGE"
    assert {"as_of", "match_confidence", "disputed", "conflict"} <= set(mother["name"])


def test_a_field_the_list_does_not_grant_is_withheld_without_a_trace_of_its_value(service):
    url, keys, _ = service
    r = ask(url, keys["YBJ"])  # 医保局 co-operates on NEWBORN but may not see marriage records
    fields = r.json()["roles"]["mother"]["fields"]
    assert fields["marital_status"] == {"status": "withheld", "reason": "CONSUMER_NOT_ENTITLED"}
    assert fields["marriage_record"] == {"status": "withheld", "reason": "CONSUMER_NOT_ENTITLED"}
    assert fields["name"]["status"] == "available"


def test_errors_say_what_to_fix(service):
    url, keys, _ = service
    assert ask(url, None).status_code == 401
    assert ask(url, "WJW.nokey.nosecret").status_code == 401
    bad = ask(url, keys["WJW"], subjects={"mother": "123", "uncle": LI}, case_id="")
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"case_id", "subjects.mother", "subjects.uncle"}
    unknown = ask(url, keys["WJW"], subjects={"mother": STRANGER})
    assert unknown.status_code == 404 and unknown.json()["fields"] == ["subjects.mother"]
    assert ask(url, keys["JYJ"]).status_code == 403  # not a department of this life event
    assert ask(url, keys["WJW"], purpose="ANALYTICS").status_code == 403


def test_the_rate_limit_answers_429_with_retry_after(service):
    url, keys, _ = service
    # FY's own bucket (no other test uses FY): draining WJW's would make later tests flaky;
    # FY is not a department of 新生儿出生, so what is not limited is refused 403
    with httpx.Client(headers={"Authorization": f"Bearer {keys['FY']}"}) as c:  # keep-alive
        codes = [c.post(f"{url}/v1/prefill", json={
            "case_id": f"R{i}", "purpose": "NEWBORN", "template": "NEWBORN",
            "subjects": {"mother": LI}}) for i in range(80)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited and int(limited[0].headers["Retry-After"]) >= 1
    assert {r.status_code for r in codes} == {403, 429}


def test_every_answer_is_audited_and_the_subject_can_see_who_asked(service):
    url, keys, home = service
    # RSJ: a department of 新生儿出生 whose rate-limit bucket no other test drains
    assert ask(url, keys["RSJ"], case_id="AUDITED-7").status_code == 200
    assert "intact" in huiliu(home, "audit", "verify")
    log = httpx.get(f"{url}/v1/access-log", params={"subject": LI},
                    headers={"Authorization": f"Bearer {keys['SJJ']}"}).json()
    entry = next(e for e in log["entries"] if e["case_id"] == "AUDITED-7")
    assert entry["consumer"] == "RSJ" and "mother.name" in entry["released"]


def test_a_revoked_credential_stops_working_at_once(service):
    url, _, home = service
    key = huiliu(home, "consumers", "issue", "MZJ")
    assert ask(url, key).status_code == 200
    huiliu(home, "consumers", "revoke", "MZJ")
    assert ask(url, key).status_code == 401


def test_verification_answers_yes_or_no_without_the_value(service):
    url, keys, _ = service
    h = {"Authorization": f"Bearer {keys['WJW']}"}

    def check(**body):
        r = httpx.post(f"{url}/v1/verify", headers=h, json={"case_id": "V1",
                                                             "purpose": "NEWBORN"} | body)
        assert r.status_code == 200, r.text
        return r.json()
    assert check(check="alive", subject=LI)["answer"] is True
    assert check(check="married_to", subject=LI, other=WANG)["answer"] is True
    assert check(check="married_to", subject=LI, other=STRANGER)["answer"] is False
    yes = check(check="hukou_in", subject=LI, division="5001")
    assert yes["answer"] is True and "value" not in yes and yes["source"]["provider"] == "PS"
    assert check(check="hukou_in", subject=LI, division="4403")["answer"] is False
    assert check(check="alive", subject=STRANGER)["status"] == "unknown_subject"
    bad = httpx.post(f"{url}/v1/verify", headers=h, json={
        "case_id": "V2", "purpose": "NEWBORN", "check": "hukou_in", "subject": LI,
        "division": "x"})
    assert bad.status_code == 400 and bad.json()["fields"] == ["division"]


def test_a_purpose_not_in_the_list_is_refused_and_never_logged(service):
    url, keys, home = service
    h = {"Authorization": f"Bearer {keys['WJW']}"}
    made_up = "PURPOSE-" + "Z" * 100_000  # a made-up (and oversized) purpose
    for path, body in (("/v1/verify", {"check": "alive", "subject": LI}),
                       ("/v1/batch", {"checks": [{"check": "alive", "subject": LI}]})):
        r = httpx.post(f"{url}{path}", headers=h,
                       json={"case_id": "P1", "purpose": made_up} | body)
        assert r.status_code == 400, (path, r.text[:200])
        assert r.json()["fields"] == ["purpose"] and "NEWBORN" in r.json()["detail"]
    assert "ZZZZZZZZZZ" not in (home / "serving" / "audit.jsonl").read_text(encoding="utf-8")


def test_a_batch_of_checks_streams_one_line_each_in_order(service):
    url, keys, _ = service
    items = [{"check": "alive", "subject": s} for s in (LI, WANG, "bad", STRANGER)] * 600
    items += [{"check": "married_to", "subject": LI, "other": o} for o in (WANG, STRANGER)]
    with httpx.stream("POST", f"{url}/v1/batch", json={
            "case_id": "B1", "purpose": "NEWBORN", "checks": items},
            headers={"Authorization": f"Bearer {keys['WJW']}"}) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line]
    import json
    answers = [json.loads(x) for x in lines]
    assert [a["index"] for a in answers] == list(range(len(items)))
    assert answers[0]["answer"] is True and answers[2]["status"] == 400
    assert answers[3]["status"] == "unknown_subject"
    assert [a["answer"] for a in answers[-2:]] == [True, False]


def test_switching_to_a_new_snapshot_fails_no_request_in_flight(service):
    import threading

    url, keys, home = service
    stop, results = threading.Event(), []

    def client(n):
        with httpx.Client(headers={"Authorization": f"Bearer {keys['MZJ2']}"}) as c:
            while not stop.is_set():
                try:
                    r = c.post(f"{url}/v1/prefill", json={
                        "case_id": f"S{n}", "purpose": "NEWBORN", "template": "NEWBORN",
                        "subjects": {"mother": LI, "father": WANG}})
                except httpx.HTTPError as e:  # a dropped connection is a failed request too
                    results.append(type(e).__name__)
                    continue
                if r.status_code == 429:  # the rate limit (20/s here): wait as told
                    time.sleep(float(r.headers["Retry-After"]) / 10)
                    continue
                results.append(r.status_code)

    before = httpx.get(f"{url}/healthz").json()["store"]
    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for _ in range(4):  # four new snapshots while the clients keep asking (older files deleted)
        build_store(home / "warehouse.duckdb", home / "serving")
        time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert len(results) >= 20 and set(results) == {200}, sorted(set(results))
    assert httpx.get(f"{url}/healthz").json()["store"] != before
    # the concurrent answers were committed in groups: the chain is still one unbroken chain
    assert "intact" in huiliu(home, "audit", "verify")
