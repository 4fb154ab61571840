"""The Dagster code location: every resource of the list is an asset, with its pool and schedule."""

import dagster as dg
import pytest
from dropwriter import write_batch

from pipelines.definitions import defs
from pipelines.defs.resources import HubSettings
from pipelines.catalog.model import catalog
from pipelines.catalog.identifiers import make_citizen_id

pytestmark = pytest.mark.integration


def test_every_resource_is_an_asset_in_its_providers_group_and_pool():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    expected = {f"backflow/{r.key}" for r in catalog().resources.values()}
    assert keys == expected | {"warehouse/published", "governance/objections",
                               "governance/scorecard", "identity/reconciled", "serving/store",
                               "workbench/tiers"}
    for r in catalog().resources.values():
        node = graph.get(dg.AssetKey(["backflow", r.key]))
        assert node.group_name == f"backflow_{r.provider.lower()}"
        assert node.pools == {f"provider_{r.provider.lower()}"}
    published = graph.get(dg.AssetKey(["warehouse", "published"]))
    # published after the governance and identity assets, so readers get the disputed flags,
    # the scorecard, entities, golden records and conflicts of the same moment
    assert {k.to_user_string() for k in published.parent_keys} == expected | {
        "governance/scorecard", "identity/reconciled"}
    # the analysts' tiers are built from each published snapshot, like the prefill store
    tiers = graph.get(dg.AssetKey(["workbench", "tiers"]))
    assert {k.to_user_string() for k in tiers.parent_keys} == {"warehouse/published"}
    reconciled = graph.get(dg.AssetKey(["identity", "reconciled"]))
    assert "governance/objections" in {k.to_user_string() for k in reconciled.parent_keys}


def test_schedules_follow_update_cycles_and_a_sensor_watches_drops():
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {"backflow_daily_schedule", "backflow_weekly_schedule",
                              "backflow_monthly_schedule"}
    assert all(s.execution_timezone == "Asia/Shanghai" for s in schedules.values())
    daily = defs.resolve_job_def("backflow_daily")
    daily_keys = {k.to_user_string() for k in daily.asset_layer.executable_asset_keys}
    assert "backflow/ps_pop_basic" in daily_keys and "backflow/ca_subsistence" not in daily_keys
    assert [s.name for s in defs.sensors] == ["new_drops_sensor"]


def test_bulk_assets_materialise_and_report_row_accounting(tmp_path):
    drops, home = tmp_path / "drops", tmp_path / "hub"
    pop = catalog().resource("PS_POP_BASIC")
    header = [f.code for f in pop.stored_fields] + ["CZLX", "GXSJ"]
    pid = make_citizen_id("500103", __import__("datetime").date(1990, 5, 6), 123)
    row = [pid, "刘洋", "1", "01", pid[6:14], "500103", "渝中区", "10", "0", "", "I",
           "2026-10-01 08:00:00"]
    write_batch(drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", header, [row, row])
    assets = [a for a in defs.assets if dg.AssetKey(["backflow", "ps_pop_basic"]) in a.keys]
    result = dg.materialize(assets, resources={"hub": HubSettings(
        home=str(home), drop_root=str(drops), today="2026-10-02")})
    assert result.success
    mat = result.asset_materializations_for_node("backflow__ps_pop_basic")[0]
    assert mat.metadata["received"].value == 2 and mat.metadata["staged"].value == 1
    assert mat.metadata["superseded"].value == 1
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    # one check per contract rule family, timeliness, accounting, acceptance: all pass
    assert {"contract_gb11643", "contract_id_consistency", "contract_division_at_date",
            "contract_code_table", "contract_required", "contract_primary_key",
            "delivered_on_time", "row_accounting", "batches_accepted"} <= set(checks)
    assert all(checks.values()), checks


def test_a_rejected_batch_fails_an_error_check_with_the_reason_and_the_rest_publishes(tmp_path):
    drops, home = tmp_path / "drops", tmp_path / "hub"
    header = ["YWLSH", "GMSFHM", "XM", "QYLBDM", "QCD_XZQHDM", "QRD_XZQHDM", "QYRQ", "CZLX", "GXSJ"]
    good = ["1", "500103199005061231", "y", "1", "510104", "500103", "20261001", "I",
            "2026-10-01 08:00:00"]
    write_batch(drops, "PS", "PS_HUKOU_MOVE", "20261001T020000-000001", header, [good],
                manifest_rows=7)
    write_batch(drops, "PS", "PS_HUKOU_MOVE", "20261002T020000-000002", header, [good])
    assets = [a for a in defs.assets if dg.AssetKey(["backflow", "ps_hukou_move"]) in a.keys
              or dg.AssetKey(["warehouse", "published"]) in a.keys]
    result = dg.materialize(assets, selection=[dg.AssetKey(["backflow", "ps_hukou_move"]),
                                               dg.AssetKey(["warehouse", "published"])],
                            resources={"hub": HubSettings(home=str(home), drop_root=str(drops))})
    assert result.success  # the accepted batch is loaded and published
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["batches_accepted"].passed is False
    assert checks["batches_accepted"].severity == dg.AssetCheckSeverity.ERROR
    assert "row_count_mismatch" in checks["batches_accepted"].description
    assert "20261001T020000-000001" in checks["batches_accepted"].description
    mat = result.asset_materializations_for_node("backflow__ps_hukou_move")[0]
    assert mat.metadata["batches_loaded"].value == 1
    assert mat.metadata["batches_rejected"].value == 1
    assert (home / "published" / "current.duckdb").exists()


def _people(n: int, bad_every: int = 0) -> list[list[str]]:
    import datetime as dt

    rows = []
    for i in range(n):
        pid = make_citizen_id("500103", dt.date(1970, 1, 1) + dt.timedelta(days=i), 2 * (i % 400))
        if bad_every and i % bad_every == 0:
            pid = pid[:17] + ("1" if pid[17] == "0" else "0")  # wrong check character
        rows.append([pid, "王芳", "2", "01", pid[6:14], "500103", "渝中区", "10", "0", "", "I",
                     "2026-10-01 08:00:00"])
    return rows


def test_a_batch_over_a_contract_threshold_is_blocked_and_never_published(tmp_path):
    """1.5 % bad citizen IDs in a 2,000-row batch (the list allows 0.5 %): the batch is not
    promoted, the family's check fails with ERROR severity and says why, and the published
    warehouse downstream holds the other batch only."""
    import duckdb

    drops, home = tmp_path / "drops", tmp_path / "hub"
    pop = catalog().resource("PS_POP_BASIC")
    header = [f.code for f in pop.stored_fields] + ["CZLX", "GXSJ"]
    write_batch(drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", header, _people(200))
    write_batch(drops, "PS", "PS_POP_BASIC", "20261002T020000-000002", header,
                _people(2000, bad_every=67)[200:], extracted_at="2026-10-03T02:00:00+08:00")
    keys = [dg.AssetKey(["backflow", "ps_pop_basic"]), dg.AssetKey(["warehouse", "published"])]
    assets = [a for a in defs.assets if any(k in a.keys for k in keys)]
    result = dg.materialize(assets, selection=keys, resources={"hub": HubSettings(
        home=str(home), drop_root=str(drops), today="2026-10-03")})
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    gb = checks["contract_gb11643"]
    assert gb.passed is False and gb.severity == dg.AssetCheckSeverity.ERROR
    assert "20261002T020000-000002 blocked" in gb.description
    assert gb.metadata["blocked_batches"].value == 1
    assert checks["batches_accepted"].passed is False
    assert "contract_threshold" in checks["batches_accepted"].description
    with duckdb.connect(str(home / "published" / "current.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM cur.ps_pop_basic").fetchall() == [(200,)]
        assert con.execute("""SELECT status FROM ops.batches
            WHERE batch_id = '20261002T020000-000002'""").fetchall() == [("rejected",)]
        # why, per rule, is kept with the rejection
        assert con.execute("""SELECT failed, blocked FROM ops.contract_results
            WHERE batch_id = '20261002T020000-000002' AND family = 'gb11643'""").fetchall() == [
            (27, True)]
    # and the batch's validation report says so, with failing rows as examples
    report = home / "reports" / "validations" / "PS_POP_BASIC" / "20261002T020000-000002.html"
    html = report.read_text(encoding="utf-8")
    assert "blocked: nothing of this batch was promoted" in html
    assert "PS_POP_BASIC.GMSFHM.gb11643" in html and "expect_column_values_to_be_valid_citizen_id" in html
    assert (home / "reports" / "validations" / "PS_POP_BASIC" / "20261001T020000-000001.html").exists()


def test_a_provider_that_has_not_delivered_shows_as_late(tmp_path):
    drops, home = tmp_path / "drops", tmp_path / "hub"
    pop = catalog().resource("PS_POP_BASIC")
    header = [f.code for f in pop.stored_fields] + ["CZLX", "GXSJ"]
    write_batch(drops, "PS", "PS_POP_BASIC", "20261002T020000-000001", header, _people(3))
    assets = [a for a in defs.assets if dg.AssetKey(["backflow", "ps_pop_basic"]) in a.keys]

    def on(day: str):
        result = dg.materialize(assets, resources={"hub": HubSettings(
            home=str(home), drop_root=str(drops), today=day)})
        return {c.check_name: c for c in result.get_asset_check_evaluations()}["delivered_on_time"]

    assert on("2026-10-02").passed  # the 10-01 data arrived on 10-02: on time (T+1)
    assert on("2026-10-03").passed  # 10-02's data is due today: not late yet
    late = on("2026-10-05")  # 10-02 and 10-03 are past due and missing
    assert late.passed is False and late.severity == dg.AssetCheckSeverity.WARN
    assert late.description == "2 period(s) not delivered, oldest 2026-10-02 (due 2026-10-03)"
    assert late.metadata["on_time"].value == 1 and late.metadata["missing"].value == 2
