"""Bulk drops into a real DuckDB warehouse: hand-built batches per the drop contract."""

import datetime as dt
import gzip
import json

import duckdb
import pytest
from dropwriter import write_batch

from pipelines import backflow
from pipelines.catalog.model import catalog
from pipelines.catalog.identifiers import make_citizen_id
from pipelines.warehouse.publish import publish

pytestmark = pytest.mark.integration

CAT = catalog()
POP = CAT.resource("PS_POP_BASIC")
HEADER = [f.code for f in POP.fields if f.code != "ZP"] + ["CZLX", "GXSJ"]


def person(i: int, name: str = "张伟", op: str = "I", gxsj: str = "2026-10-01 10:00:00",
           status: str = "0", marital: str = "20") -> list[str]:
    pid = make_citizen_id("500103", dt.date(1980, 1, 1) + dt.timedelta(days=i), 11 + 2 * i)
    return [pid, name, "1", "01", pid[6:14], "500103", "渝中区解放碑街道1号", marital, status, "",
            op, gxsj]


def ingest(s):
    return backflow.ingest_drops(s, CAT, POP)


def q(s, sql, *params):
    with duckdb.connect(str(s.warehouse_path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def test_clean_batch_loads_every_row_with_lineage_and_balanced_accounting(hub_settings):
    s = hub_settings
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                [person(i) for i in range(5)], mode="full")
    run = ingest(s)
    assert [(b.received, b.staged, b.quarantined, b.superseded) for b in run.loaded] == \
        [(5, 5, 0, 0)]
    rows = q(s, "SELECT GMSFHM, _batch_id, _file, _line, _gxsj FROM cur.ps_pop_basic ORDER BY _line")
    assert len(rows) == 5
    assert rows[0][1:4] == ("20261001T020000-000001", "part-00001.csv.gz", 2)
    assert rows[0][4] == dt.datetime(2026, 10, 1, 10, 0)
    assert q(s, "SELECT accounting_ok, status FROM ops.batches") == [(True, "loaded")]


def test_rerunning_changes_nothing(hub_settings):
    s = hub_settings
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                [person(i) for i in range(3)])
    ingest(s)
    before = q(s, "SELECT * EXCLUDE (_loaded_at) FROM hist.ps_pop_basic ORDER BY _vid")
    again = ingest(s)
    assert again.loaded == [] and again.skipped == 1
    assert q(s, "SELECT * EXCLUDE (_loaded_at) FROM hist.ps_pop_basic ORDER BY _vid") == before
    assert q(s, "SELECT count(*) FROM ops.batches") == [(1,)]


def test_bad_rows_are_quarantined_with_line_field_and_reason(hub_settings):
    s = hub_settings
    good = person(0)
    no_key = person(1)
    no_key[0] = ""
    bad_date = person(2)
    bad_date[4] = "19801345"
    bad_op = person(3, op="X")
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                [good, no_key, bad_date, bad_op], encoding="GBK",
                raw_lines=[b"only,three,columns", "王".encode("gbk") + b"\xff,x"])
    run = ingest(s)
    b = run.loaded[0]
    assert (b.received, b.staged, b.quarantined, b.superseded) == (6, 1, 5, 0)
    got = q(s, "SELECT line, field, reason_code FROM ops.quarantine ORDER BY line")
    assert got == [(3, "GMSFHM", "missing_key"), (4, "CSRQ", "unparseable_value"),
                   (5, "CZLX", "bad_operation"), (6, None, "column_count"),
                   (7, None, "undecodable")]
    reason, raw = q(s, "SELECT reason, raw_line FROM ops.quarantine WHERE line = 4")[0]
    assert "YYYYMMDD" in reason and "19801345" in reason and "日期" in reason
    assert "19801345" in raw
    assert q(s, "SELECT raw_line FROM ops.quarantine WHERE line = 6") == [("only,three,columns",)]


def test_forbidden_and_undeclared_fields_never_reach_disk(hub_settings):
    s = hub_settings
    header = HEADER[:-2] + ["ZP", "LXDH"] + HEADER[-2:]
    secret_photo, secret_phone = "QUJDREVGR0hJSktMTU5PUA==SECRETPHOTO", "13800138000"
    rows = [r[:-2] + [secret_photo, secret_phone] + r[-2:] for r in (person(0), person(1))]
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", header, rows)
    ingest(s)
    publish(s)
    incidents = q(s, "SELECT kind, field, rows FROM ops.incidents ORDER BY field")
    assert incidents == [("undeclared_field", "LXDH", 2), ("oversharing_forbidden_field", "ZP", 2)]
    assert q(s, "SELECT count(*) FROM cur.ps_pop_basic") == [(2,)]
    for f in list((s.home).rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            if f.suffix == ".parquet":  # compressed: check the decoded values too
                import pyarrow.parquet as pq

                data = str(pq.read_table(f).to_pylist()).encode()
            assert secret_photo.encode() not in data, f
            assert secret_phone.encode() not in data, f


@pytest.mark.parametrize("damage", ["checksum", "truncated", "missing_part", "row_count"])
def test_bad_batch_is_rejected_whole_then_taken_when_redelivered(hub_settings, damage):
    s = hub_settings
    rows = [person(i) for i in range(4)]
    bid = "20261001T020000-000001"
    folder = write_batch(s.drops, "PS", "PS_POP_BASIC", bid, HEADER, rows,
                         manifest_rows=5 if damage == "row_count" else None)
    part = folder / "part-00001.csv.gz"
    if damage == "checksum":
        data = bytearray(part.read_bytes())
        data[-12] ^= 0xFF
        part.write_bytes(bytes(data))
    elif damage == "truncated":
        data = part.read_bytes()[:-20]
        part.write_bytes(data)
        m = json.loads((folder / "manifest.json").read_text())
        import hashlib

        m["files"][0]["sha256"] = hashlib.sha256(data).hexdigest()  # the sender hashed the stub
        (folder / "manifest.json").write_text(json.dumps(m))
    elif damage == "missing_part":
        part.unlink()
    run = ingest(s)
    assert run.loaded == [] and [b for b, _ in run.rejected] == [bid]
    code = {"checksum": "checksum_mismatch", "truncated": "truncated_part",
            "missing_part": "missing_part", "row_count": "row_count_mismatch"}[damage]
    assert q(s, "SELECT code FROM ops.rejections") == [(code,)]
    assert q(s, "SELECT count(*) FROM hist.ps_pop_basic") == [(0,)]
    # the provider delivers the same batch again, intact
    (folder / "manifest.json").unlink()
    write_batch(s.drops, "PS", "PS_POP_BASIC", bid, HEADER, rows)
    run = ingest(s)
    assert [b.staged for b in run.loaded] == [4]
    assert q(s, "SELECT status FROM ops.batches") == [("loaded",)]


def test_schema_drift_rejects_the_batch_with_the_exact_difference(hub_settings):
    s = hub_settings
    drifted = ["XB" if c == "XBDM" else c for c in HEADER]
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", drifted, [person(0)])
    run = ingest(s)
    assert run.loaded == [] and len(run.rejected) == 1
    (code, message), = q(s, "SELECT code, message FROM ops.rejections")
    assert code == "schema_drift"
    assert "renamed XBDM: declared XBDM missing; delivered XB instead" in message
    assert q(s, "SELECT kind, field FROM ops.schema_drift") == [("renamed", "XBDM")]
    assert q(s, "SELECT count(*) FROM hist.ps_pop_basic") == [(0,)]


def test_missing_and_extra_columns_are_reported_one_by_one(hub_settings):
    s = hub_settings
    header = [c for c in HEADER if c != "HYZKDM"] + ["LXDH"]
    rows = [[v for c, v in zip(HEADER, person(i), strict=True) if c != "HYZKDM"] + ["13800000000"]
            for i in range(2)]
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", header, rows)
    ingest(s)
    assert q(s, "SELECT kind, field FROM ops.schema_drift ORDER BY kind") == [
        ("extra", "LXDH"), ("missing", "HYZKDM")]


def test_a_field_whose_format_changed_is_reported_retyped_and_the_batch_rejected(hub_settings):
    s = hub_settings
    rows = [person(i) for i in range(6)]
    for r in rows:  # the provider switched CSRQ to YYYY-MM-DD
        r[4] = f"{r[4][:4]}-{r[4][4:6]}-{r[4][6:]}"
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER, rows)
    run = ingest(s)
    assert run.loaded == [] and len(run.rejected) == 1
    assert q(s, "SELECT kind, field, detail FROM ops.schema_drift") == [
        ("retyped", "CSRQ", "6 of 6 values do not parse as date: the field's type or format "
                            "changed")]
    assert q(s, "SELECT count(*) FROM ops.quarantine") == [(0,)]  # rolled back with the batch


def test_batch_without_manifest_is_not_read_yet(hub_settings):
    s = hub_settings
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER, [person(0)],
                write_manifest=False)
    assert ingest(s).loaded == []


def test_history_keeps_every_version_in_gxsj_order_even_when_modify_arrives_first(hub_settings):
    s = hub_settings
    p_added = person(0, gxsj="2026-10-01 09:00:00")
    p_married = person(0, op="U", marital="20", gxsj="2026-10-02 09:00:00")
    p_added[7] = "10"
    # the modify arrives in an earlier batch than its add
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261002T020000-000001", HEADER, [p_married])
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261003T020000-000002", HEADER, [p_added])
    ingest(s)
    hist = q(s, "SELECT HYZKDM, _op, _valid_from, _valid_to, _is_current FROM hist.ps_pop_basic "
                "ORDER BY _valid_from")
    assert hist == [("10", "I", dt.datetime(2026, 10, 1, 9), dt.datetime(2026, 10, 2, 9), False),
                    ("20", "U", dt.datetime(2026, 10, 2, 9), None, True)]


def test_duplicates_and_resends_are_superseded_not_stored_twice(hub_settings):
    s = hub_settings
    a, b = person(0), person(1)
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER, [a, b, a])
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261002T020000-000002", HEADER, [b])
    run = ingest(s)
    assert [(x.received, x.staged, x.superseded) for x in run.loaded] == [(3, 2, 1), (1, 0, 1)]
    assert q(s, "SELECT count(*) FROM hist.ps_pop_basic") == [(2,)]


def test_full_snapshot_deletes_absent_keys_and_keeps_their_history(hub_settings):
    s = hub_settings
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                [person(i) for i in range(3)], mode="full")
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261101T020000-000002", HEADER,
                [person(0), person(1)], mode="full", extracted_at="2026-11-01T02:00:00+08:00")
    run = ingest(s)
    assert run.loaded[1].deleted_by_snapshot == 1 and run.loaded[1].superseded == 2
    assert q(s, "SELECT count(*) FROM cur.ps_pop_basic") == [(2,)]
    gone = person(2)[0]
    assert q(s, "SELECT _op, _valid_from FROM hist.ps_pop_basic WHERE GMSFHM = ? ORDER BY _vid",
             gone) == [("I", dt.datetime(2026, 10, 1, 10)), ("D", dt.datetime(2026, 11, 1, 2))]


def test_gb18030_rare_characters_arrive_exactly(hub_settings):
    s = hub_settings
    names = ["王䶮", "李𠮷", "张喆", "陈堃", "赵犇淼"]
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                [person(i, name=n) for i, n in enumerate(names)], encoding="GB18030")
    ingest(s)
    assert [r[0] for r in q(s, "SELECT XM FROM cur.ps_pop_basic ORDER BY _line")] == names


def test_published_snapshot_is_readable_while_the_writer_works(hub_settings):
    s = hub_settings
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER, [person(0)])
    ingest(s)
    publish(s)
    reader = duckdb.connect(str(s.published_current), read_only=True)
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261002T020000-000002", HEADER, [person(1)])
    ingest(s)  # the writer works on its own file while the reader holds the snapshot
    assert reader.execute("SELECT count(*) FROM cur.ps_pop_basic").fetchone() == (1,)
    publish(s)
    reader.close()
    with duckdb.connect(str(s.published_current), read_only=True) as fresh:
        assert fresh.execute("SELECT count(*) FROM cur.ps_pop_basic").fetchone() == (2,)


def test_rebuild_from_landing_reproduces_the_warehouse(hub_settings):
    from pipelines.warehouse.rebuild import rebuild

    s = hub_settings
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER,
                [person(i) for i in range(4)] + [["", "x"] + person(9)[2:]], mode="full")
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261002T020000-000002", HEADER,
                [person(1, op="U", marital="40", gxsj="2026-10-02 08:00:00")])
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261101T020000-000003", HEADER,
                [person(0), person(1, op="U", marital="40", gxsj="2026-10-02 08:00:00")],
                mode="full", extracted_at="2026-11-01T02:00:00+08:00")
    ingest(s)
    sql = {"hist": "SELECT * EXCLUDE (_loaded_at) FROM hist.ps_pop_basic ORDER BY _vid",
           "batches": "SELECT * EXCLUDE (loaded_at, elapsed_s, landed_path) FROM ops.batches "
                      "ORDER BY seq",
           "quarantine": "SELECT * EXCLUDE (quarantined_at) FROM ops.quarantine ORDER BY line"}
    before = {k: q(s, v) for k, v in sql.items()}
    assert rebuild(s.warehouse_path, CAT) == 3
    assert {k: q(s, v) for k, v in sql.items()} == before


def test_contract_failures_are_quarantined_with_rule_field_and_an_exact_reason(hub_settings):
    s = hub_settings
    rows = [person(i) for i in range(4)]
    rows[1][0] = rows[1][0][:17] + ("1" if rows[1][0][17] == "0" else "0")  # check character
    rows[2][2] = "2"  # the ID says male
    rows[3][9] = "20261001"  # a death date for a living person
    write_batch(s.drops, "PS", "PS_POP_BASIC", "20261001T020000-000001", HEADER, rows)
    run = ingest(s)
    assert [(b.staged, b.quarantined) for b in run.loaded] == [(1, 3)]
    got = q(s, "SELECT line, field, reason_code, reason, record_key FROM ops.quarantine "
               "ORDER BY line")
    assert got == [
        (3, "GMSFHM", "PS_POP_BASIC.GMSFHM.gb11643",
         "公民身份号码校验失败(GB 11643) / not a valid citizen ID (GB 11643 check character or "
         f"birth date): {rows[1][0]}", rows[1][0]),
        (4, "XBDM", "PS_POP_BASIC.XBDM.id_consistency",
         "性别与公民身份号码(第17位)不一致 / sex disagrees with the citizen ID (digit 17): 2",
         rows[2][0]),
        (5, "SWRQ", "PS_POP_BASIC.SWRQ.conditional_required",
         "死亡日期应当且仅当人员状态为死亡时填写 / must be present if and only if RYZTDM = 1: "
         "2026-10-01", rows[3][0]),
    ]
    # each raised an objection to the provider, and the rest is stored
    assert q(s, "SELECT count(*), count(DISTINCT record_key) FROM ops.objections") == [(3, 3)]
    assert q(s, "SELECT count(*) FROM cur.ps_pop_basic") == [(1,)]
