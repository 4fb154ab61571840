"""Which audit keys are refused, and the keys derived from one: separate from each other and
from the subject MACs every reader of the log sees."""

import hashlib
import secrets

import pytest

from pipelines.serving.audit import subject_hash
from pipelines.serving.audit_key import (
    AuditKeyError,
    audit_anchor,
    audit_secret,
    chain_key,
    fingerprint,
    weakness,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("key", ["x", "dev-audit-key-change-me",
                                 "demo-audit-key-not-for-production", "a" * 31, "ab" * 40,
                                 " Dev-Audit-Key-Change-Me "])
def test_short_published_or_repetitive_keys_are_weak(key):
    assert weakness(key) is not None


@pytest.mark.parametrize("key", [secrets.token_hex(16), secrets.token_hex(32),
                                 secrets.token_urlsafe(32)])
def test_random_keys_are_accepted(key):
    assert weakness(key) is None


def test_weak_keys_are_refused_outside_demo_mode_only(monkeypatch):
    monkeypatch.setenv("HUILIU_AUDIT_KEY", "demo-audit-key-not-for-production")
    monkeypatch.delenv("HUILIU_DEMO", raising=False)
    with pytest.raises(AuditKeyError, match="published value"):
        audit_secret()
    monkeypatch.setenv("HUILIU_DEMO", "1")
    assert audit_secret() == b"demo-audit-key-not-for-production"


def test_the_anchor_must_be_configured_outside_demo_mode(monkeypatch, tmp_path):
    monkeypatch.delenv("HUILIU_AUDIT_ANCHOR", raising=False)
    monkeypatch.delenv("HUILIU_DEMO", raising=False)
    with pytest.raises(AuditKeyError, match="HUILIU_AUDIT_ANCHOR is not set"):
        audit_anchor(tmp_path / "audit.jsonl")
    monkeypatch.setenv("HUILIU_DEMO", "1")
    assert audit_anchor(tmp_path / "audit.jsonl") == tmp_path / "audit.jsonl.anchor"


def test_derived_keys_are_apart_from_each_other_and_from_subject_macs():
    secret = secrets.token_hex(32).encode()
    derived = {chain_key(secret).hex(), fingerprint(secret)}
    assert len(derived) == 2
    for text in ("", "chain", "fingerprint", "huiliu-chain-v1"):  # any subject a caller sends
        assert subject_hash(text, secret) not in derived
        assert subject_hash(text, secret)[:32] != fingerprint(secret)
    assert fingerprint(secret) not in {hashlib.sha256(secret).hexdigest()[:32],
                                       hashlib.blake2b(secret).hexdigest()[:32]}
