"""Reconciliation on built cases: which records are one person, stable ids through merges and
splits, golden values by authority with the losers kept, conflicts and their clean twins, and
reading a golden record as of a past run. Real DuckDB, the real Splink model."""

import datetime as dt

import pytest

from pipelines.identity import golden as golden_mod

from .reconcile_world import T0, World, pid

pytestmark = pytest.mark.integration

B1 = dt.date(1985, 3, 14)
WANG = pid(B1, 11)  # male
LI = pid(dt.date(1987, 6, 2), 22)  # female


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path / "wh.duckdb")
    w.person(WANG, "王建国", "1", B1, marital="20")
    w.person(LI, "李秀英", "2", dt.date(1987, 6, 2), marital="20")
    yield w
    w.con.close()


def test_a_valid_id_links_deterministically_also_in_its_15_digit_and_damaged_forms(world):
    legacy = WANG[:6] + WANG[8:17]  # the 15-digit number issued before 1999
    world.marriage("M1", (legacy, "王建国"), ("　" + LI.lower().replace("x", "x") + " ", "李秀英"))
    world.reconcile()
    me = world.entity_of(f"PS_POP_BASIC|subject|{WANG}")
    assert world.links()["CA_MARRIAGE|husband|M1"] == (me, "key")
    assert world.entity_of("CA_MARRIAGE|wife|M1") == world.entity_of(f"PS_POP_BASIC|subject|{LI}")


def test_a_homophone_name_without_a_usable_id_links_probabilistically(world):
    # 王建國 is the traditional form; 王建郭 sounds the same: both only through the model
    world.marriage("M2", ("", "王建郭"), (LI, "李秀英"))
    world.reconcile()
    entity, how = world.links()["CA_MARRIAGE|husband|M2"]
    assert how == "probabilistic"
    assert entity == world.entity_of(f"PS_POP_BASIC|subject|{WANG}")


def test_swapped_id_digits_are_not_a_key_but_the_person_is_still_found(world):
    swapped = WANG[:8] + WANG[9] + WANG[8] + WANG[10:]  # 1985 -> 1958: checksum fails
    world.cremation("H1", swapped, "王建国", "1", dt.date(2026, 9, 20), dt.date(2026, 9, 22))
    world.reconcile()
    entity, how = world.links()["CA_CREMATION|deceased|H1"]
    assert (entity, how) == (world.entity_of(f"PS_POP_BASIC|subject|{WANG}"), "probabilistic")


def test_a_valid_id_naming_someone_else_is_contradicted_not_trusted(world):
    world.person(pid(dt.date(1990, 1, 1), 33), "赵敏", "2", dt.date(1990, 1, 1))
    world.marriage("M3", (WANG, "王建国"), (pid(dt.date(1990, 1, 1), 33), "刘丽"))  # not 赵敏
    world.reconcile()
    mention = world.con.execute("SELECT key_state FROM ident.person_mentions WHERE mention_id = "
                                "'CA_MARRIAGE|wife|M3'").fetchall()
    assert mention == [("contradicted",)]
    assert world.links()["CA_MARRIAGE|wife|M3"][1] == "own"  # nobody called 刘丽 is known


def test_a_passport_holder_is_an_entity_of_their_own_with_all_their_records(world):
    world.marriage("M4", (WANG, "王建国"), ("E1234567", "SMITH ANNA", "2"))
    world.marriage("M5", (WANG, "王建国"), ("e 123-4567", "Smith Anna", "2"), kind="2")
    world.reconcile()
    links = world.links()
    assert links["CA_MARRIAGE|wife|M4"][0] == links["CA_MARRIAGE|wife|M5"][0]
    assert links["CA_MARRIAGE|wife|M4"][0] != world.entity_of(f"PS_POP_BASIC|subject|{WANG}")


def test_twins_are_never_merged(world):
    born = dt.date(2010, 5, 5)
    a, b = pid(born, 41), pid(born, 43)  # same parents, day and address; different sequence
    world.person(a, "陈浩然", "1", born)
    world.person(b, "陈浩宇", "1", born)
    world.put("CA_SUBSISTENCE", GMSFHM="", XM="陈浩宇", JZ_XZQHDM="500103", BZLXDM="1",
              BZJE=500, BZNY="202609", BZZTDM="1")
    world.reconcile()
    ea = world.entity_of(f"PS_POP_BASIC|subject|{a}")
    eb = world.entity_of(f"PS_POP_BASIC|subject|{b}")
    assert ea != eb
    assert world.entity_of("CA_SUBSISTENCE|subject||202609") == eb


def test_entity_ids_stay_stable_and_a_merge_and_a_split_are_recorded(world):
    world.marriage("M6", ("", "张三丰"), (LI, "李秀英"))  # no such person yet: an entity of its own
    world.reconcile()
    wang = world.entity_of(f"PS_POP_BASIC|subject|{WANG}")
    loner = world.entity_of("CA_MARRIAGE|husband|M6")
    assert loner != wang
    world.reconcile()
    assert (world.entity_of(f"PS_POP_BASIC|subject|{WANG}"),
            world.entity_of("CA_MARRIAGE|husband|M6")) == (wang, loner)  # nothing renumbered
    assert world.events() == []

    world.marriage("M6", ("", "王建国"), (LI, "李秀英"))  # the registry corrects the name
    world.reconcile()
    assert world.entity_of("CA_MARRIAGE|husband|M6") == wang
    assert world.events() == [("merged", wang, loner)]
    state = world.con.execute("SELECT state, successor FROM ident.entities WHERE entity_id = ?",
                              [loner]).fetchall()
    assert state == [("merged", wang)]

    world.marriage("M6", ("", "张三丰"), (LI, "李秀英"))  # and takes it back
    world.reconcile()
    split_off = world.entity_of("CA_MARRIAGE|husband|M6")
    assert world.entity_of(f"PS_POP_BASIC|subject|{WANG}") == wang
    assert split_off not in (wang, loner)  # ids are never reused
    assert world.events()[-1] == ("split", wang, split_off)


def test_survivorship_takes_the_authority_and_keeps_the_losing_values(world):
    world.marriage("M7", (WANG, "王建國"), (LI, "李秀英"), kind="2", date=dt.date(2026, 9, 15))
    world.reconcile()
    me = world.entity_of(f"PS_POP_BASIC|subject|{WANG}")
    names = world.golden(me, "name")
    assert names[0][:4] == ("王建国", "PS", "PS_POP_BASIC", 1) and names[0][4] == "authority"
    assert ("王建國", "CA", "CA_MARRIAGE", 2, None) in names
    marital = world.golden(me, "marital_status")  # marriage records decide: divorced
    assert marital[0][:3] == ("40", "CA", "CA_MARRIAGE") and marital[1][:2] == ("20", "PS")
    row = world.con.execute("SELECT name, marital_status, marriage_record FROM gold.person "
                            "WHERE entity_id = ?", [me]).fetchall()
    assert row == [("王建国", "40", "M7")]


def test_golden_records_read_as_of_an_earlier_run(world):
    world.reconcile()
    me = world.entity_of(f"PS_POP_BASIC|subject|{WANG}")
    first = world.con.execute("SELECT max(valid_from) FROM gold.field_values").fetchall()[0][0]
    world.person(WANG, "王建国", "1", B1, division="500106", marital="20",
                 gxsj=T0 + dt.timedelta(days=3))
    world.reconcile()

    def division(moment):
        return [v for e, f, v, *_ in golden_mod.as_of(world.con, "person", moment)
                if e == me and f == "hukou_division"]
    assert division(first) == ["500103"]
    assert division(dt.datetime.now() + dt.timedelta(days=1)) == ["500106"]
    assert division(first - dt.timedelta(seconds=1)) == []  # nothing was known before run one


# --- conflicts: each found on its built case, not on the clean twin ----------------------------

def test_death_recorded_by_civil_affairs_but_still_active_in_public_security(world):
    world.cremation("H2", WANG, "王建国", "1", dt.date(2026, 6, 1), dt.date(2026, 6, 3))
    world.reconcile(today=dt.date(2026, 10, 2))  # four months later
    me = world.entity_of(f"PS_POP_BASIC|subject|{WANG}")
    assert world.conflicts() == {"death_vs_active": me}
    oid = world.con.execute("SELECT objection_id FROM gold.conflicts").fetchall()[0][0]
    assert world.con.execute("SELECT resource, record_key, field, status FROM ops.objections "
                             "WHERE objection_id = ?", [oid]).fetchall() == [
        ("PS_POP_BASIC", WANG, "RYZTDM", "raised")]
    assert [r[0] for r in world.golden(me, "status") if r[3] == 1] == ["alive"]
    flagged = world.con.execute("SELECT in_conflict FROM gold.field_values WHERE entity_id = ? "
                                "AND field = 'status' AND rank = 1 AND valid_to IS NULL",
                                [me]).fetchall()
    assert flagged == [(True,)]

    world.person(WANG, "王建国", "1", B1, status="1", death=dt.date(2026, 6, 1), marital="20")
    world.reconcile(today=dt.date(2026, 10, 3))  # the register catches up: resolved
    assert world.conflicts() == {}


def test_a_recent_death_is_within_its_grace_period(world):
    world.cremation("H3", WANG, "王建国", "1", dt.date(2026, 9, 28), dt.date(2026, 9, 30))
    world.reconcile(today=dt.date(2026, 10, 2))
    assert world.conflicts() == {}


def test_marital_status_contradicting_the_marriage_registrations(world):
    world.marriage("M8", (WANG, "王建国"), (LI, "李秀英"), kind="2", date=dt.date(2026, 5, 1))
    world.reconcile(today=dt.date(2026, 10, 2))
    assert set(world.conflicts()) == {"marital_mismatch"}


def test_marital_status_agreeing_with_the_registrations_is_no_conflict(world):
    world.marriage("M9", (WANG, "王建国"), (LI, "李秀英"), kind="1", date=dt.date(2026, 5, 1))
    world.reconcile(today=dt.date(2026, 10, 2))
    assert world.conflicts() == {}


def _move(world, to: str, when: dt.date, gxsj) -> None:
    world.put("PS_HUKOU_MOVE", gxsj, YWLSH="Y1", GMSFHM=WANG, XM="王建国", QYLBDM="1",
              QCD_XZQHDM="500103", QRD_XZQHDM=to, QYRQ=when)


def test_the_same_person_with_hukou_in_two_regions(world):
    _move(world, "440305", dt.date(2026, 8, 1), T0 + dt.timedelta(days=1))
    world.reconcile(today=dt.date(2026, 10, 2))
    assert set(world.conflicts()) == {"hukou_two_regions"}


def test_a_move_within_the_city_is_not_two_regions(world):
    _move(world, "500106", dt.date(2026, 8, 1), T0 + dt.timedelta(days=1))
    world.reconcile(today=dt.date(2026, 10, 2))
    assert world.conflicts() == {}


def _registration(world, hgbm: str, status: str, gxsj) -> None:
    from pipelines.catalog.identifiers import make_uscc

    world.put("CU_ENT_REG", gxsj, HGBM=hgbm, TYSHXYDM=make_uscc("9", "1", "500116", "MA5U0001"),
              QYMC="重庆某贸易有限公司", ZCHGDM="8001", QYLXDM="6", XYZD="282", XYDJDM="CG",
              XYRDRQ=dt.date(2026, 4, 1), BARQ=dt.date(2015, 3, 2), YXQZ=dt.date(2030, 1, 1),
              ZS_XZQHDM="500116", FDDBR_XM="王建国", FDDBR_ZJHM=WANG, BAZTDM=status)


def test_a_customs_registration_of_an_enterprise_deregistered_elsewhere(world):
    _registration(world, "5001960001", "1", T0 - dt.timedelta(days=200))
    _registration(world, "4403960002", "2", T0 - dt.timedelta(days=60))  # moved, closed there
    world.reconcile(today=dt.date(2026, 10, 2))
    assert set(world.conflicts()) == {"customs_of_deregistered"}
    entities = world.con.execute("SELECT count(DISTINCT entity_id) FROM ident.enterprise_units"
                                 ).fetchall()
    assert entities == [(1,)]  # two customs codes, one USCC: one enterprise


def test_two_active_customs_registrations_are_no_conflict(world):
    _registration(world, "5001960001", "1", T0 - dt.timedelta(days=200))
    _registration(world, "4403960002", "1", T0 - dt.timedelta(days=60))
    world.reconcile(today=dt.date(2026, 10, 2))
    assert world.conflicts() == {}


def _subsistence(world, month: str, status: str = "1") -> None:
    world.put("CA_SUBSISTENCE", GMSFHM=WANG, XM="王建国", JZ_XZQHDM="500103", BZLXDM="1",
              BZJE=500, BZNY=month, BZZTDM=status)


def test_subsistence_still_paid_after_death(world):
    world.person(WANG, "王建国", "1", B1, status="1", death=dt.date(2026, 7, 10), marital="20")
    _subsistence(world, "202609")
    world.reconcile(today=dt.date(2026, 10, 2))
    assert set(world.conflicts()) == {"subsistence_after_death"}


def test_subsistence_stopped_after_death_is_no_conflict(world):
    world.person(WANG, "王建国", "1", B1, status="1", death=dt.date(2026, 7, 10), marital="20")
    _subsistence(world, "202607")
    _subsistence(world, "202609", status="0")
    world.reconcile(today=dt.date(2026, 10, 2))
    assert world.conflicts() == {}


def test_a_run_after_changes_touches_only_them_and_agrees_with_a_full_rebuild(world, tmp_path):
    world.marriage("M10", ("", "王建郭"), (LI, "李秀英"))
    first = world.reconcile()
    assert first["mode"] == "full"
    world.person(pid(dt.date(1990, 1, 1), 33), "赵敏", "2", dt.date(1990, 1, 1))
    world.marriage("M11", (WANG, "王建国"), (pid(dt.date(1990, 1, 1), 33), "赵敏"), kind="1")
    world.delete("CA_MARRIAGE", YWBH="M10")
    second = world.reconcile()
    assert (second["mode"], second["changed_records"]) == ("changes", 3)

    def state(con):
        links = con.execute("SELECT mention_id, entity_id, method FROM ident.person_links "
                            "ORDER BY 1").fetchall()
        gold = con.execute("SELECT entity_id, field, value, rank FROM gold.field_values "
                           "WHERE valid_to IS NULL ORDER BY ALL").fetchall()
        return links, gold

    incremental = state(world.con)
    world.con.execute("DROP SCHEMA ident CASCADE; DROP SCHEMA gold CASCADE")
    assert world.reconcile()["mode"] == "full"
    assert state(world.con) == incremental


def test_a_division_code_from_before_a_renaming_is_compared_in_todays_form(world):
    world.marriage("M12", (WANG, "王建国"), (LI, "李秀英"), division="500381")  # 江津市, now 500116
    world.reconcile()
    assert world.con.execute("SELECT DISTINCT division FROM ident.person_mentions "
                             "WHERE record_key = 'M12'").fetchall() == [("500116",)]


def test_an_enterprise_golden_record_names_its_legal_representative_as_a_person(world):
    _registration(world, "5001960001", "1", T0)
    world.reconcile()
    rep = world.con.execute("SELECT legal_representative, legal_representative_entity, "
                            "customs_code FROM gold.enterprise").fetchall()
    assert rep == [("王建国", world.entity_of(f"PS_POP_BASIC|subject|{WANG}"), "5001960001")]
