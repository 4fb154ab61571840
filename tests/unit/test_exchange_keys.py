"""A node's exchange keys: made on the node, kept for its account alone, rotated without losing
the earlier ones; its directory entry lists only public halves and the services its own catalogue
declares, and a message signed with its current key passes the exchange and the receiver."""

import datetime as dt
import json
import stat

import pytest
import yaml

from pipelines import paths
from pipelines.catalog.model import load_catalog
from pipelines.exchange import keys
from pipelines.exchange.directory import EXCHANGE, Directory, Member, MemberKey
from pipelines.exchange.envelope import Signer, countersign, open_envelope, seal
from pipelines.exchange.member_entry import member_entry
from pipelines.exchange.replay import ReplayGuard
from pipelines.exchange.suites import ED25519, SM2_SM3

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("suite", [ED25519, SM2_SM3], ids=lambda s: s.name)
def test_a_nodes_key_is_its_own_and_signs_what_the_exchange_accepts(tmp_path, suite):
    home = tmp_path / "hub"
    signer = keys.generate(home, "500000", suite.name)
    assert keys.current(home) == signer
    folder = keys.keys_dir(home)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.glob("*.json")} == {0o600}

    entry = member_entry(load_catalog(), home, "http://127.0.0.1:8080")
    published = entry.keys[0]
    assert published.public and signer.private not in json.dumps(published.__dict__)
    exchange = suite.generate()
    d = Directory()
    d.add(entry)
    d.add(Member("510000", "四川省", "", ()))
    d.add(Member(EXCHANGE, "exchange", "", (MemberKey("x1", suite.name, exchange.public),)))
    now = dt.datetime.now(dt.UTC)
    env = countersign(seal("request", "r-1", "510000", b"{}", signer, now), d,
                      Signer(EXCHANGE, "x1", suite.name, exchange.private), ReplayGuard(), now)
    assert open_envelope(env, d, "510000", ReplayGuard(), now)["sender"] == "500000"


def test_rotation_keeps_the_earlier_key_listed_and_makes_the_new_one_current(tmp_path):
    home = tmp_path / "hub"
    first = keys.generate(home, "500000", ED25519.name)
    second = keys.generate(home, "500000", ED25519.name)
    assert keys.current(home) == second and first.key_id != second.key_id
    assert [k["key_id"] for k in keys.public_keys(home)] == sorted([first.key_id,
                                                                    second.key_id])


def test_no_key_yet_says_what_to_do(tmp_path):
    with pytest.raises(keys.NoKey, match="huiliu exchange keygen"):
        keys.current(tmp_path / "hub")


def test_the_entry_offers_what_the_nodes_catalogue_declares(tmp_path):
    entry = member_entry(load_catalog(), tmp_path / "hub", "http://127.0.0.1:8080")
    node = yaml.safe_load((paths.CATALOGS / "node.yaml").read_text(encoding="utf-8"))
    templates = {p.stem for p in (paths.CATALOGS / "templates").glob("*.yaml")}
    verifications = set(yaml.safe_load((paths.CATALOGS / "checks.yaml").read_text(
        encoding="utf-8")))
    assert entry.code == node["code"] and entry.name == node["name_zh"]
    assert set(entry.services) == ({f"prefill/{t}" for t in templates}
                                   | {f"verify/{c}" for c in verifications})
