"""The prefill service cannot be starved or flooded, and every refusal is accounted for (issue 13
§2 and §3's first point), against the real service on loopback (`huiliu serve`, uvicorn with the
hub's protocol). Limits are set low through HUILIU_SERVE_* so the tests stay small; each test
uses its own consumers or loopback addresses (127.0.0.x) so their limits do not meet."""

import datetime as dt
import json
import os
import socket
import threading
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
ENV = {**os.environ, "HUILIU_AUDIT_KEY": "service-limits-test-key-" + "k" * 40,
       "HUILIU_API_RATE": "1000",
       "HUILIU_SERVE_MAX_CONNECTIONS": "40",
       "HUILIU_SERVE_HEADER_TIMEOUT_SECONDS": "1",
       "HUILIU_SERVE_BODY_TIMEOUT_SECONDS": "1",
       "HUILIU_SERVE_MAX_BATCH_CHECKS": "100",
       "HUILIU_SERVE_CHECK_RATE": "10",  # a bucket of 100 checks (one full batch), 10 a second
       "HUILIU_SERVE_ENUMERATION_VALUES": "3"}
NO_ANSWER = 5.0  # seconds a socket waits before a test says "the service never answered"


def huiliu(home, *args) -> str:
    return run_huiliu(home, ENV, *args)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    home = tmp_path_factory.mktemp("hub")
    ENV["HUILIU_AUDIT_ANCHOR"] = str(tmp_path_factory.mktemp("anchor") / "audit.anchor")
    w = World(home / "warehouse.duckdb")
    w.person(WANG, "王建国", "1", dt.date(1985, 3, 14), marital="20")
    w.person(LI, "李秀英", "2", dt.date(1987, 6, 2), marital="20")
    w.marriage("M1", (WANG, "王建国"), (LI, "李秀英"))
    w.reconcile()
    w.con.close()
    build_store(home / "warehouse.duckdb", home / "serving")
    keys = {c: huiliu(home, "consumers", "issue", c)
            for c in ("WJW", "YBJ", "JYJ", "SJJ", "RSJ", "GAJ", "MZJ")}
    with running_service(home, ENV) as url:
        yield url, keys, home


def prefill_body(case_id="CASE-1", **subjects) -> dict:
    return {"case_id": case_id, "purpose": "NEWBORN", "template": "NEWBORN",
            "subjects": subjects or {"mother": LI, "father": WANG}}


def client(source: str = "127.0.0.1", key: str | None = None) -> httpx.Client:
    """A keep-alive client from one loopback address (the service tells peers apart by it)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=NO_ANSWER,
                        headers={"Authorization": f"Bearer {key}"} if key else {})


def raw(url: str, data: bytes) -> bytes | None:
    """Send `data` on a fresh connection and read until the service closes it: what it answered
    (b"" for nothing), or None if it kept the connection open and silent for NO_ANSWER seconds."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=NO_ANSWER) as s:
        if data:
            s.sendall(data)
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except TimeoutError:
            return None
        except ConnectionResetError:
            pass
        return got


def head(path: str, key: str | None, length: int | None = None, extra: bytes = b"") -> bytes:
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: hub", b"Content-Type: application/json"]
    if key:
        lines.append(f"Authorization: Bearer {key}".encode())
    if length is not None:
        lines.append(f"Content-Length: {length}".encode())
    return b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"


def status_and_json(answer: bytes | None) -> tuple[int, dict]:
    assert answer is not None, "the service kept the connection open without answering"
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    status = int(answer.split()[1])
    return status, json.loads(answer.split(b"\r\n\r\n", 1)[1] or b"{}")


def refusals(home) -> list[dict]:
    path = home / "serving" / "refusals.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def counted(home, peer: str, wanted: int) -> dict:
    """Refusals counted for `peer` by (status, code), once they add up to `wanted` (the log is
    written once a second; a little longer is allowed before the test gives up)."""
    for _ in range(50):
        by = {}
        for r in refusals(home):
            if r.get("kind") == "refused" and r["peer"] == peer:
                by[(r["status"], r["code"])] = by.get((r["status"], r["code"]), 0) + r["count"]
        if sum(by.values()) >= wanted:
            return by
        time.sleep(0.2)
    return by


# --- credentials: a flood of wrong secrets ---------------------------------------------------

def test_a_flood_of_wrong_secrets_neither_starves_a_client_nor_gets_answered(service):
    url, keys, _ = service
    consumer, key_id, secret = keys["RSJ"].split(".")
    wrong = f"{consumer}.{key_id}.{secret[::-1]}"  # a real key id with a wrong secret
    stop, flood = threading.Event(), []

    def flooder():
        with client("127.0.0.2", wrong) as c:
            while not stop.is_set():
                flood.append(c.post(f"{url}/v1/prefill", json=prefill_body()).status_code)

    with client("127.0.0.1", keys["WJW"]) as normal:
        assert normal.post(f"{url}/v1/prefill", json=prefill_body()).status_code == 200
        threads = [threading.Thread(target=flooder) for _ in range(8)]
        for t in threads:
            t.start()
        answers = []
        # until the normal client has 40 answers and the flood was told to back off, or the
        # flood had 80 credentials checked (a service that checks them on its event loop
        # answers the normal client about once per 8 of them)
        while (len(answers) < 40 or 429 not in flood) and flood.count(401) < 80:
            answers.append(normal.post(f"{url}/v1/prefill", json=prefill_body()).status_code)
        stop.set()
        for t in threads:
            t.join()
    assert len(answers) >= 40 and set(answers) == {200}, (len(answers), flood.count(401))
    assert 429 in flood, set(flood)  # the flooding key and peer were told to back off
    assert flood.count(401) < len(answers)  # at most a few scrypt checks were spent on it


def test_unknown_key_ids_from_one_peer_are_limited_like_wrong_secrets(service):
    url, _, _ = service
    with client("127.0.0.3") as c:
        answers = [c.post(f"{url}/v1/verify", json={}, headers={
            "Authorization": f"Bearer WJW.{i:012x}.nosecret"}) for i in range(30)]
    codes = [r.status_code for r in answers]
    assert set(codes) == {401, 429}
    assert codes.index(429) <= 21  # the peer's free failures, then it waits
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert answers[-1].json()["error"] == "too_many_failures"


# --- HTTP limits ------------------------------------------------------------------------------

def test_a_header_over_the_limit_is_refused_431(service):
    url, keys, _ = service
    answer = raw(url, head("/v1/prefill", keys["WJW"], 2, b"X-Pad: " + b"a" * 40_000 + b"\r\n")
                 + b"{}")
    status, body = status_and_json(answer)
    assert status == 431 and body["error"] == "headers_too_large"


def test_bad_credentials_are_refused_before_the_body_is_read(service):
    url, _, _ = service
    # a body announced and never sent: the answer cannot have waited for it
    status, body = status_and_json(raw(url, head("/v1/prefill", "WJW.000000000000.x", 60_000)))
    assert status == 401 and body["error"] == "invalid_credentials"
    status, body = status_and_json(raw(url, head("/v1/batch", None, 1_000_000)))
    assert status == 401 and body["error"] == "missing_credentials"


def test_a_body_over_the_limit_is_refused_413_without_reading_it(service):
    url, keys, _ = service
    status, body = status_and_json(raw(url, head("/v1/prefill", keys["JYJ"], 1_000_000)))
    assert status == 413 and body["error"] == "body_too_large"
    status, body = status_and_json(raw(url, head("/v1/verify", None, 50_000_000)))
    assert status == 413 and body["error"] == "body_too_large"
    big = json.dumps(prefill_body() | {"pad": "x" * 200_000}).encode()
    r = httpx.post(f"{url}/v1/prefill", content=big, headers={
        "Authorization": f"Bearer {keys['JYJ']}", "Content-Type": "application/json"})
    assert r.status_code == 413


def test_slow_headers_and_slow_bodies_get_408_and_idle_connections_are_closed(service):
    url, keys, _ = service
    status, body = status_and_json(raw(url, b"POST /v1/prefill HTTP/1.1\r\nHost: hub\r\n"))
    assert status == 408 and body["error"] == "header_timeout"
    # the body is sent half, then the client stalls past the body timeout
    status, body = status_and_json(raw(url, head("/v1/prefill", keys["JYJ"], 200) + b'{"case'))
    assert status == 408 and body["error"] == "body_timeout"
    assert raw(url, b"") == b""  # connected and sent nothing: closed without an answer


def test_connections_over_the_limit_are_closed_and_the_rest_answered(service):
    url, _, _ = service
    host, port = url.removeprefix("http://").split(":")
    held = [socket.create_connection((host, int(port)), timeout=NO_ANSWER) for _ in range(45)]
    try:
        request = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n"
        answered = 0
        for s in held:
            try:
                s.sendall(request)
                answered += s.recv(65536).startswith(b"HTTP/1.1 200")
            except (ConnectionResetError, BrokenPipeError, TimeoutError):
                pass
    finally:
        for s in held:
            s.close()
    assert 30 <= answered <= 40  # the limit (40), less connections other tests left open
    assert httpx.get(f"{url}/healthz").status_code == 200


# --- /v1/batch ----------------------------------------------------------------------------------

def test_a_batch_over_the_cap_is_refused_and_checks_count_against_the_rate(service):
    url, keys, _ = service
    h = {"Authorization": f"Bearer {keys['GAJ']}"}

    def batch(n):
        return httpx.post(f"{url}/v1/batch", headers=h, json={
            "case_id": "CAP-1", "purpose": "NEWBORN",
            "checks": [{"check": "alive", "subject": LI}] * n})
    over = batch(101)
    assert over.status_code == 413 and over.json()["error"] == "too_many_checks"
    assert "100" in over.json()["detail"]
    assert batch(100).status_code == 200  # the bucket holds one full batch ...
    again = batch(100)  # ... and refills at 10 checks a second
    assert again.status_code == 429 and int(again.headers["Retry-After"]) >= 5


# --- enumeration --------------------------------------------------------------------------------

def test_checks_that_would_enumerate_a_spouse_are_refused_and_flagged(service):
    url, keys, home = service
    candidates = [pid(dt.date(1980, 1, 1), n) for n in range(1, 10)] + [WANG]
    items = [{"check": "married_to", "subject": LI, "other": o} for o in candidates]
    with httpx.stream("POST", f"{url}/v1/batch", json={
            "case_id": "ENUM-1", "purpose": "NEWBORN", "checks": items},
            headers={"Authorization": f"Bearer {keys['WJW']}"}) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    answered = [x for x in lines if "answer" in x]
    refused = [x for x in lines if x.get("error") == "enumeration_limit"]
    assert len(answered) == 3 and len(refused) == 7  # the spouse (last) is never confirmed
    assert not any(x["answer"] for x in answered)
    # the same subject in a new case: still refused
    again = httpx.post(f"{url}/v1/verify", headers={"Authorization": f"Bearer {keys['WJW']}"},
                       json={"case_id": "ENUM-2", "purpose": "NEWBORN", "check": "married_to",
                             "subject": LI, "other": WANG})
    assert again.status_code == 403 and again.json()["error"] == "enumeration_limit"
    for _ in range(50):  # written with the refusal log's next flush
        alerts = [a for a in refusals(home) if a.get("kind") == "alert"]
        if alerts:
            break
        time.sleep(0.2)
    assert [(a["alert"], a["consumer"], a["check"], a["case_id"]) for a in alerts] == [
        ("enumeration", "WJW", "married_to", "ENUM-1")]
    assert LI not in json.dumps(alerts)  # the subject as the audit log names it, not its ID
    listed = huiliu(home, "audit", "alerts")
    assert "WJW" in listed and "married_to" in listed and "ENUM-1" in listed


# --- accounting ---------------------------------------------------------------------------------

def test_every_refused_request_is_counted_and_access_log_reads_are_audited(service):
    url, keys, home = service
    with client("127.0.0.4", "WJW.abcdefabcdef.wrong") as flood:
        codes = [flood.post(f"{url}/v1/prefill", json=prefill_body()).status_code
                 for _ in range(30)]
    with client("127.0.0.4", keys["YBJ"]) as prober:  # existence probes: 404 unknown_subject
        codes += [prober.post(f"{url}/v1/prefill", json=prefill_body(
            f"P{i}", mother=STRANGER)).status_code for i in range(25)]
    assert set(codes) == {401, 429, 404}
    by = counted(home, "127.0.0.4", 55)
    assert by[(401, "invalid_credentials")] + by.get((429, "too_many_failures"), 0) == 30
    assert by[(404, "unknown_subject")] == 25 and sum(by.values()) == 55
    lines = refusals(home)
    assert not any("wrong" in json.dumps(x) for x in lines)  # no secret is ever written
    assert any(x.get("who") == "key:abcdefabcdef" for x in lines)
    assert oct((home / "serving" / "refusals.jsonl").stat().st_mode & 0o777) == "0o640"

    portal = {"Authorization": f"Bearer {keys['SJJ']}"}
    r = httpx.get(f"{url}/v1/access-log", params={"subject": LI, "case_id": "PORTAL-9"},
                  headers=portal)
    assert r.status_code == 200 and not any(e["case_id"] == "PORTAL-9" for e in r.json()["entries"])
    later = httpx.get(f"{url}/v1/access-log", params={"subject": LI}, headers=portal).json()
    read = [e for e in later["entries"] if e["case_id"] == "PORTAL-9"]  # the first read, audited
    assert len(read) == 1 and read[0]["consumer"] == "SJJ" and read[0]["template"] == "access-log"
