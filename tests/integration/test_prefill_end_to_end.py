"""End to end: the simulator's world flows back, is reconciled and published, and the prefill
service answers a 新生儿出生 case with what the simulator knows to be true, with provenance."""

import os

import httpx
import pyarrow.parquet as pq
import pytest

from pipelines.identity.documents import document_key
from pipelines.serving.credentials import Credentials

from .serving_helpers import running_service

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(served_sim_world):
    s, truth, service_env = served_sim_world
    key = Credentials(s.home / "serving" / "credentials.sqlite").issue("WJW")
    env = {**os.environ, **service_env}
    with running_service(s.home, env) as url:
        yield url, key, truth


def test_prefill_returns_the_simulators_truth_for_married_couples(world):
    url, key, truth = world
    persons = {p["person_id"]: p for p in pq.read_table(truth / "persons.parquet").to_pylist()}
    couples = [(persons[w], persons[h]) for w, h in (
        (p["person_id"], p["spouse_id"]) for p in persons.values()
        if p["sex"] == "2" and p["spouse_id"] and p["in_node"] and p["status"] == "alive"
        and p["marital_status"] == "20")
        if persons[h]["in_node"] and persons[h]["status"] == "alive"][:25]
    assert len(couples) >= 10
    checked = 0
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}) as c:
        for wife, husband in couples:
            r = c.post(f"{url}/v1/prefill", json={
                "case_id": f"E2E-{wife['person_id']}", "purpose": "NEWBORN",
                "template": "NEWBORN",
                "subjects": {"mother": wife["gmsfhm"], "father": husband["gmsfhm"]}})
            if r.status_code == 404:  # a person this node never received (e.g. moved away)
                continue
            assert r.status_code == 200, r.text
            for role, p in (("mother", wife), ("father", husband)):
                f = r.json()["roles"][role]["fields"]
                assert f["name"]["value"] == p["xm"], (role, p["person_id"])
                assert f["citizen_id"]["value"] == p["gmsfhm"]
                assert f["hukou_division"]["value"] == p["hukou_division"]
                src = f["name"]["source"]
                assert (src["provider"], src["resource"]) == ("PS", "PS_POP_BASIC")
                # the record as the provider keyed it (lower-case x, 15 digits...): the same ID
                assert document_key("1", src["record_key"]).number == p["gmsfhm"]
                assert src["batch"] and f["name"]["as_of"]
            checked += 1
    assert checked >= 10
