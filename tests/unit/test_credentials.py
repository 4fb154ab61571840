"""Consumer credentials are stored hashed; a service that has verified a key notices at once when
another process (the CLI) revokes or rotates it."""

import pytest

from pipelines.serving.credentials import Credentials

pytestmark = pytest.mark.unit


def test_only_a_hash_of_the_secret_is_stored(tmp_path):
    c = Credentials(tmp_path / "credentials.sqlite")
    key = c.issue("WJW")
    assert c.consumer_of(key) == "WJW"
    assert key.split(".")[2].encode() not in (tmp_path / "credentials.sqlite").read_bytes()
    assert c.consumer_of(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


def test_a_revocation_by_another_process_takes_effect_on_the_next_request(tmp_path):
    service, cli = (Credentials(tmp_path / "credentials.sqlite") for _ in range(2))
    key = cli.issue("WJW")
    assert service.consumer_of(key) == "WJW"  # verified, and remembered
    assert cli.revoke("WJW") == 1
    assert service.consumer_of(key) is None


def test_a_rotation_replaces_the_old_key(tmp_path):
    service, cli = (Credentials(tmp_path / "credentials.sqlite") for _ in range(2))
    old = cli.issue("FY")
    assert service.consumer_of(old) == "FY"
    new = cli.rotate("FY")
    assert service.consumer_of(old) is None and service.consumer_of(new) == "FY"
