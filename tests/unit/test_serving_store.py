"""The serving store answers a subject with one record of its entity's golden candidates: every
key the entity is known by finds it, the best candidate among the sources a caller may receive is
served (never one of another source), a known subject without values is found (its fields are
unavailable, it is not unknown), provenance travels with every value, and a store of another
layout is refused rather than misread."""

import duckdb
import lmdb
import pytest

from pipelines.serving.store import UNAVAILABLE, Store, build_store

pytestmark = pytest.mark.unit

ID1, ID1_OLD, ID2 = "500103198001020113", "500103198001020121", "500103199002030024"
USCC = "91500000MA5U0A0X1Q"


@pytest.fixture
def store(tmp_path):
    wh = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(wh))
    con.execute("CREATE SCHEMA ident; CREATE SCHEMA gold")
    con.execute("CREATE TABLE ident.registry (kind TEXT, unit TEXT, entity_id TEXT)")
    con.execute("""INSERT INTO ident.registry VALUES ('person', '1:' || ?, 'HLP1'),
        ('person', '1:' || ?, 'HLP1'), ('person', '1:' || ?, 'HLP2'),
        ('person', 'passport:E1234', 'HLP3'), ('enterprise', 'uscc:' || ?, 'HLE1')""",
                [ID1, ID1_OLD, ID2, USCC])
    con.execute("""CREATE TABLE gold.field_values (entity_id TEXT, field TEXT, value TEXT,
        provider TEXT, resource TEXT, batch_id TEXT, record_key TEXT, as_of TIMESTAMP,
        confidence DOUBLE, disputed BOOLEAN, in_conflict BOOLEAN, rank INT, valid_to TIMESTAMP)""")
    con.execute("""INSERT INTO gold.field_values VALUES
        ('HLP1', 'name', '李秀英', 'PS', 'PS_POP_BASIC', 'B1', ?, '2026-01-02 03:04:05', 1.0,
         false, true, 1, NULL),
        ('HLP1', 'status', 'alive', 'PS', 'PS_POP_BASIC', 'B1', ?, '2026-01-02 03:04:05', 1.0,
         false, false, 1, NULL),
        ('HLP1', 'spouse', 'HLP9', 'CA', 'CA_MARRIAGE', 'B7', 'M1', '2025-05-20 00:00:00', 0.99,
         true, true, 1, NULL),
        ('HLP1', 'name', '李秀瑛', 'CA', 'CA_MARRIAGE', 'B7', 'M1', '2025-05-20 00:00:00', 1.0,
         false, true, 2, NULL),
        ('HLP1', 'status', 'dead', 'PS', 'PS_POP_BASIC', 'B0', ?, '2020-01-01 00:00:00', 1.0,
         false, false, 1, '2026-01-02 03:04:05'),
        ('HLE1', 'credit_level', 'C', 'CU', 'CU_ENT_REG', 'B3', ?, '2026-03-04 00:00:00', 1.0,
         false, false, 1, NULL)""", [ID1, ID1, ID1, USCC])
    con.close()
    path = build_store(wh, tmp_path / "serving")
    s = Store(path)
    yield s
    s.close()


POP, MARRIAGE = frozenset({"PS_POP_BASIC"}), frozenset({"CA_MARRIAGE"})
BOTH = POP | MARRIAGE


def test_every_key_of_an_entity_finds_its_current_best_values_with_provenance(store):
    for key in (ID1, ID1_OLD):
        e = store.entity("person", key)
        assert e.entity_id == "HLP1"
        name = e.envelopes([("name", "name", None, BOTH)])["name"]
        assert name["value"] == "李秀英"  # the best of both: the lower-ranked spelling is not served
        assert name["source"] == {"provider": "PS", "resource": "PS_POP_BASIC", "batch": "B1",
                                  "record_key": ID1}
        assert name["as_of"] == "2026-01-02 03:04:05"
    assert store.entity("person", ID1).field("status", POP)["value"] == "alive"  # not the closed
    spouse = store.entity("person", ID1).field("spouse", MARRIAGE)
    assert (spouse["disputed"], spouse["resource"]) == (True, "CA_MARRIAGE")


def test_a_caller_receives_the_best_candidate_of_the_sources_it_may_receive(store):
    e = store.entity("person", ID1)
    name = e.envelopes([("name", "name", None, MARRIAGE)])["name"]
    assert (name["value"], name["source"]["resource"], name["source"]["record_key"]) == (
        "李秀瑛", "CA_MARRIAGE", "M1")
    assert e.field("name", MARRIAGE)["record_key"] == "M1"
    # a field whose only candidate comes from a source the caller may not receive is unavailable
    # to it, and provenance never names that source
    assert e.envelopes([("spouse", "spouse", None, POP)]) == {"spouse": UNAVAILABLE}
    assert e.field("spouse", POP) is None


def test_a_conflict_shows_only_between_sources_the_caller_may_receive(store):
    e = store.entity("person", ID1)
    # the spouse field is flagged in conflict; its only source is the caller's: no disagreement
    # it may see, so no conflict is shown
    assert e.field("spouse", MARRIAGE)["in_conflict"] is False
    # the name is in conflict and the two spellings come from two sources: shown to a caller
    # that may receive both, not to one that may receive one of them
    assert e.envelopes([("name", "name", None, BOTH)])["name"]["conflict"] is True
    assert e.envelopes([("name", "name", None, POP)])["name"]["conflict"] is False


def test_a_known_subject_without_values_is_found_with_every_field_unavailable(store):
    e = store.entity("person", ID2)
    assert e.entity_id == "HLP2"
    assert e.envelopes([("name", "name", None, BOTH)]) == {"name": UNAVAILABLE}


def test_unknown_keys_and_keys_of_the_other_kind_are_not_found(store):
    assert store.entity("person", "110101197001010019") is None
    assert store.entity("person", USCC) is None
    assert store.entity("enterprise", USCC).field("credit_level", frozenset({"CU_ENT_REG"})
                                                  )["value"] == "C"


def test_withheld_fields_carry_the_reason_only(store):
    withheld = {"status": "withheld", "reason": "CONSUMER_NOT_ENTITLED"}
    assert store.entity("person", ID1).envelopes([("name", "name", withheld, frozenset())]) == {
        "name": withheld}


def test_a_batch_lookup_returns_one_field_per_known_key(store):
    found = store.field_of_many("person", [ID1, ID2, "110101197001010019"], "status", POP)
    assert set(found) == {ID1, ID2}
    assert found[ID1][0] == "HLP1" and found[ID1][1]["value"] == "alive"
    assert found[ID2] == ("HLP2", None)


def test_a_store_of_another_layout_is_refused_with_what_to_do(store):
    store.close()  # LMDB: one handle on a file per process
    env = lmdb.open(str(store.path), subdir=False, max_dbs=2, lock=False)
    with env.begin(write=True) as txn:
        txn.put(b"format", b"2", db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(RuntimeError, match="another format.*huiliu serving build"):
        Store(store.path)


def test_a_file_that_is_not_a_store_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "store-x.lmdb").write_bytes(b"not a store" * 1000)
    with pytest.raises(RuntimeError, match="not a serving store.*huiliu serving build"):
        Store(tmp_path / "store-x.lmdb")


def test_every_key_of_a_kind_is_listed_in_order(store):
    assert store.keys("person") == sorted([ID1, ID1_OLD, ID2])
    assert store.keys("enterprise") == [USCC]


def test_the_service_keeps_the_old_store_when_a_new_one_cannot_be_opened(store, tmp_path,
                                                                        monkeypatch):
    import os
    import time

    from pipelines.serving.http.service import Service

    monkeypatch.setenv("HUILIU_AUDIT_KEY", "serving-store-test-key-9a4e1c7b2d5f8036")
    monkeypatch.setenv("HUILIU_AUDIT_ANCHOR", str(tmp_path / "audit.anchor"))
    serving = store.path.parent
    store.close()  # LMDB: one handle on a file per process; the service opens its own
    svc = Service(serving, rate=100)
    first = svc.current_store()

    def point_to(name, until):
        staging = serving / "current.lmdb.new"
        staging.symlink_to(name)
        os.replace(staging, serving / "current.lmdb")
        deadline = time.monotonic() + 10
        while not until() and time.monotonic() < deadline:
            svc.next_look = 0  # do not wait out the 50 ms between looks at the link
            assert svc.current_store().entity("person", ID1) is not None  # always answering
            time.sleep(0.02)

    (serving / "store-29990101T000000000000Z.lmdb").write_bytes(b"not a store")
    point_to("store-29990101T000000000000Z.lmdb", lambda: svc.warming_failed)
    assert svc.warming_failed and svc.current_store() is first
    fresh = build_store(tmp_path / "wh.duckdb", serving)  # switches the link itself
    point_to(fresh.name, lambda: svc.store_target == fresh.name)
    assert svc.store_target == fresh.name and svc.current_store() is not first
    svc.close()
