"""What the prefill service keeps per caller is bounded, and a wrong credential costs the same
whatever was wrong with it (issue 13 §2)."""

import json

import pytest

from pipelines.serving import credentials as cred
from pipelines.serving.credentials import Credentials

pytestmark = pytest.mark.unit


def test_an_unknown_key_id_costs_one_scrypt_like_a_wrong_secret(tmp_path, monkeypatch):
    c = Credentials(tmp_path / "credentials.sqlite")
    key = c.issue("WJW")
    consumer, key_id, secret = key.split(".")
    calls = []
    real = cred._hash
    monkeypatch.setattr(cred, "_hash", lambda s, salt: calls.append(s) or real(s, salt))
    for token in (f"WJW.{key_id}.wrong", "WJW.000000000000.wrong", f"FY.{key_id}.{secret}",
                  "no-dots-at-all"):
        calls.clear()
        assert c.consumer_of(token) is None
        assert len(calls) == 1, token  # one scrypt, whatever was wrong
    calls.clear()
    assert c.consumer_of(key) == "WJW" and c.consumer_of(key) == "WJW"
    assert len(calls) == 1  # remembered after the first


def test_issuing_a_key_elsewhere_keeps_verified_ones_and_revoking_drops_them(tmp_path):
    service, cli = (Credentials(tmp_path / "credentials.sqlite") for _ in range(2))
    a, b = cli.issue("WJW"), cli.issue("FY")
    assert service.consumer_of(a) == "WJW" and service.consumer_of(b) == "FY"
    cli.issue("RSJ")
    assert service.remembered(a) == "WJW"  # still remembered: no scrypt after an issue
    cli.revoke("FY")
    assert service.remembered(b) is None and service.consumer_of(b) is None
    assert service.remembered(a) == "WJW"


def test_a_credential_revoked_while_it_is_checked_is_not_remembered(tmp_path):
    service, cli = (Credentials(tmp_path / "credentials.sqlite") for _ in range(2))
    key = cli.issue("WJW")
    candidate = service.candidate(key)
    cli.revoke("WJW")  # between the lookup and the end of the scrypt
    assert cred.check(candidate)
    assert not service.remember(key, candidate) and service.consumer_of(key) is None


def test_failure_backoff_waits_after_the_free_failures_and_stays_bounded():
    from pipelines.serving.http.ratelimit import FailureBackoff

    b = FailureBackoff(free=3, max_keys=100)
    for _ in range(3):
        b.failed("peer")
    assert b.wait_needed("peer") == 0
    b.failed("peer")
    assert 0 < b.wait_needed("peer") <= 1
    for i in range(10_000):
        b.failed(f"key:{i}")
    assert len(b.failures) == 100
    b.succeeded("key:9999")
    assert b.wait_needed("key:9999") == 0


def test_rate_buckets_take_one_per_check_and_stay_bounded(monkeypatch):
    from pipelines.serving.http.ratelimit import RateLimiter

    r = RateLimiter(10, burst=100)
    assert r.wait_needed("WJW", 100) == 0
    assert r.wait_needed("WJW", 50) == pytest.approx(5, abs=0.1)
    monkeypatch.setattr(RateLimiter, "MAX_BUCKETS", 50)
    for i in range(1000):
        r.wait_needed(f"C{i}", 1)
    assert len(r.buckets) <= 51


def test_the_enumeration_guard_is_bounded_and_repeats_are_free(monkeypatch):
    from pipelines.serving.http import enumeration
    from pipelines.serving.http.enumeration import EnumerationGuard

    import datetime as dt

    from pipelines.catalog.identifiers import make_citizen_id

    alerts = []
    g = EnumerationGuard(2, 3600, lambda *a: alerts.append(a))
    ask = {"check": "hukou_in", "subject": make_citizen_id("500103", dt.date(1985, 3, 14), 11),
           "division": "5001"}
    for division in ("5001", "5001", "500103", "5001"):
        assert g.refusal("WJW", "C1", ask | {"division": division}) is None
    refused = g.refusal("WJW", "C2", ask | {"division": "5002"})
    assert refused.status == 403 and refused.code == "enumeration_limit"
    assert g.refusal("FY", "C3", ask | {"division": "5002"}) is None  # another consumer's count
    assert len(alerts) == 1
    monkeypatch.setattr(enumeration, "MAX_TRACKED", 100)
    for i in range(1000):
        g.refusal("WJW", "C4", ask | {"subject": make_citizen_id(
            "500103", dt.date(1980, 1, 1) + dt.timedelta(days=i), 1)})
    assert len(g.tracked) <= 100


def test_the_refusal_log_counts_every_refusal_in_bounded_memory(tmp_path, monkeypatch):
    from pipelines.serving.http import refusals
    from pipelines.serving.http.refusals import RefusalLog, read

    monkeypatch.setattr(refusals, "MAX_KEYS", 10)
    log = RefusalLog(tmp_path / "refusals.jsonl")
    for i in range(500):
        log.count(f"10.0.0.{i}", "key:" + "a" * 100, "/v1/" + "x" * 200, 401,
                  "invalid_credentials")
    assert len(log.counts) <= 11
    log.close()
    lines = read(tmp_path / "refusals.jsonl")
    assert sum(x["count"] for x in lines) == 500
    assert max(len(json.dumps(x)) for x in lines) < 400  # long caller input is not copied
