"""Conflict report page (pipelines/reports/conflicts_html.py), built from an in-memory DuckDB
with the real gold.conflicts DDL and a handful of hand-made conflicts, read back from the page.

Like the scorecard, the page is well-formed XML, so the tests parse it with xml.etree and find
rows and cells by their data-* attributes.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import pytest

from pipelines.reports import conflicts_html
from pipelines.reports.conflicts_html import age_bucket, render_conflict_report

pytestmark = pytest.mark.unit

SCHEMA = Path(__file__).resolve().parents[2] / "assets" / "sql" / "identity" / "schema.sql"
TODAY = dt.date(2026, 10, 10)
EVIL = "已婚<script>alert('x')</script>"


def conflict(conflict_id: str, kind: str, region: str | None, first_detected: dt.date,
             **kw) -> dict:
    return {
        "conflict_id": conflict_id, "kind": kind, "entity_kind": "person",
        "entity_id": f"P-{conflict_id}", "region": region,
        "a_value": "死亡", "a_provider": "P01", "a_resource": "R_DEATH",
        "a_record_key": f"{conflict_id}-a", "a_batch_id": "B-a",
        "a_as_of": dt.datetime(2026, 10, 7, 8, 30),
        "b_value": "正常", "b_provider": "P02", "b_resource": "R_HUKOU",
        "b_record_key": f"{conflict_id}-b", "b_batch_id": "B-b", "b_as_of": None,
        "responsible_provider": "P02", "objection_id": None,
        "detail_zh": "说明", "detail_en": "detail",
        "first_detected": first_detected, "last_detected": TODAY, "resolved_on": None,
        "status": "open", **kw,
    }


# Ages are counted from TODAY (2026-10-10). Open: c01 c02 c03 c04 c06 c07; resolved: c05.
CONFLICTS = [
    conflict("c01", "death_vs_active", "320102", dt.date(2026, 10, 8), objection_id="OBJ-1"),  # 2 d
    conflict("c02", "death_vs_active", "320102", dt.date(2026, 9, 20)),  # 20 days
    conflict("c03", "marital_mismatch", "320104", dt.date(2026, 7, 1), objection_id="OBJ-3",
             a_value="未婚", b_value=EVIL),  # 101 days
    conflict("c04", "hukou_two_regions", None, dt.date(2026, 10, 3),  # 7 days: edge of 0–7
             responsible_provider=None),
    conflict("c05", "subsistence_after_death", "320102", dt.date(2026, 8, 11),
             objection_id="OBJ-5", status="resolved", resolved_on=dt.date(2026, 10, 1)),
    conflict("c06", "mystery_kind", "999999", dt.date(2026, 9, 2)),  # 38 days, unknown kind
    conflict("c07", "customs_of_deregistered", "320104", dt.date(2026, 7, 12),  # 90 days: edge
             entity_kind="enterprise", b_value="有效"),
]
OPEN_ORDER = ["c03", "c07", "c06", "c02", "c04", "c01"]  # oldest first


def make_db(rows: list[dict]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute(SCHEMA.read_text(encoding="utf-8"))
    for row in rows:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        con.execute(f"INSERT INTO gold.conflicts ({cols}) VALUES ({marks})", list(row.values()))
    return con


def render(tmp_path: Path, rows: list[dict]) -> tuple[str, ET.Element]:
    path = render_conflict_report(make_db(rows), tmp_path / "conflicts", TODAY)
    html = path.read_text(encoding="utf-8")
    return html, ET.fromstring(html)  # fails loudly if the page is not well-formed


def text(el: ET.Element) -> str:
    return "".join(el.itertext()).strip()


def cells(tr: ET.Element) -> dict[str, str]:
    return {td.get("data-col"): text(td) for td in tr.findall("td")}


def table_rows(root: ET.Element, cls: str, key: str) -> dict[str, dict[str, str]]:
    return {tr.get(key): cells(tr) for tr in root.findall(f".//table[@class='{cls}']/tbody/tr")}


def headline(root: ET.Element) -> dict[str, str]:
    return {li.get("data-count"): text(li.find("span")) for li in root.iter("li")
            if li.get("data-count")}


@pytest.fixture
def page(tmp_path):
    return render(tmp_path, CONFLICTS)


def test_writes_index_html_atomically(tmp_path):
    out_dir = tmp_path / "reports" / "conflicts"  # does not exist yet
    path = render_conflict_report(make_db(CONFLICTS), out_dir, TODAY)
    assert path == out_dir / "index.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in out_dir.iterdir()] == ["index.html"]  # no temp file left behind


def test_headline_counts(page):
    _, root = page
    assert headline(root) == {"open": "6", "resolved": "1", "objections": "2"}
    fields = {dd.get("data-field"): text(dd) for dd in root.iter("dd")}
    assert fields == {"today": "2026-10-10", "last_detected": "2026-10-10"}
    assert all(" / " in text(h) for h in root.iter("h2"))  # bilingual headings


def test_open_conflicts_by_kind(page):
    _, root = page
    kinds = table_rows(root, "by-kind", "data-kind")
    assert list(kinds) == [
        "death_vs_active", "marital_mismatch", "hukou_two_regions",
        "customs_of_deregistered", "subsistence_after_death", "mystery_kind",
    ]  # known kinds in a fixed order, zeros included; unknown ones after
    assert kinds["death_vs_active"] == {
        "kind": "死亡未注销death_vs_active", "open": "2", "objections": "1",
        "oldest": "2026-09-20",
    }
    assert kinds["marital_mismatch"]["open"] == "1"
    assert kinds["marital_mismatch"]["objections"] == "1"
    assert kinds["customs_of_deregistered"]["kind"].startswith("注销企业海关备案有效")
    assert kinds["subsistence_after_death"]["open"] == "0"  # its only conflict is resolved
    assert kinds["subsistence_after_death"]["oldest"] == "—"
    assert kinds["mystery_kind"]["kind"] == "mystery_kindmystery_kind"  # shown by its code
    (total,) = root.findall(".//table[@class='by-kind']/tfoot/tr")
    assert cells(total)["open"] == "6" and cells(total)["objections"] == "2"
    bars = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "bar"]
    assert [g.get("data-count") for g in bars] == ["2", "1", "1", "1", "0", "1"]


def test_open_conflicts_by_region(page):
    _, root = page
    regions = table_rows(root, "by-region", "data-region")
    assert regions == {
        "320102": {"region": "320102玄武区", "open": "2", "objections": "1"},
        "320104": {"region": "320104秦淮区", "open": "2", "objections": "1"},
        "": {"region": "未知地区 / unknown region", "open": "1", "objections": "0"},
        "999999": {"region": "999999", "open": "1", "objections": "0"},  # not in the catalog
    }


def test_open_conflicts_by_age(page):
    _, root = page
    ages = table_rows(root, "by-age", "data-age")
    assert {k: v["open"] for k, v in ages.items()} == {
        "0–7 days": "2",  # c01 (2 days), c04 (7)
        "8–30 days": "1",  # c02 (20)
        "31–90 days": "2",  # c06 (38), c07 (90)
        "over 90 days": "1",  # c03 (101)
    }


@pytest.mark.parametrize(
    "days, bucket", [(0, 0), (7, 0), (8, 1), (30, 1), (31, 2), (90, 2), (91, 3), (5000, 3)]
)
def test_age_bucket_edges(days, bucket):
    assert age_bucket(days) == bucket


def test_detail_lists_open_conflicts_with_both_sides(page):
    _, root = page
    trs = root.findall(".//table[@class='conflicts']/tbody/tr")
    assert [tr.get("data-conflict") for tr in trs] == OPEN_ORDER  # c05 (resolved) left out
    assert root.find(".//p[@id='not-shown']") is None
    c01 = cells(trs[-1])
    assert c01["conflict_id"] == "c01"
    assert c01["kind"].startswith("死亡未注销death_vs_active")
    assert c01["entity"] == "P-c01person"
    assert c01["region"] == "320102玄武区"
    assert c01["first_detected"] == "2026-10-082 天 / days"
    assert (c01["a_value"], c01["a_provider"], c01["a_resource"]) == ("死亡", "P01", "R_DEATH")
    assert (c01["a_record_key"], c01["a_batch_id"]) == ("c01-a", "B-a")
    assert c01["a_as_of"] == "2026-10-07 08:30:00"
    assert (c01["b_value"], c01["b_provider"], c01["b_resource"]) == ("正常", "P02", "R_HUKOU")
    assert (c01["b_record_key"], c01["b_batch_id"], c01["b_as_of"]) == ("c01-b", "B-b", "—")
    assert c01["responsible_provider"] == "P02" and c01["objection_id"] == "OBJ-1"
    c04 = cells(trs[OPEN_ORDER.index("c04")])
    assert c04["responsible_provider"] == "—" and c04["objection_id"] == "—"
    assert c04["region"] == "未知地区 / unknown region"


def test_detail_is_capped_and_says_how_many_are_left_out(tmp_path, monkeypatch):
    monkeypatch.setattr(conflicts_html, "DETAIL_LIMIT", 2)
    _, root = render(tmp_path, CONFLICTS)
    trs = root.findall(".//table[@class='conflicts']/tbody/tr")
    assert [tr.get("data-conflict") for tr in trs] == OPEN_ORDER[:2]
    note = text(root.find(".//p[@id='not-shown']"))
    assert "另有 4 条未列出" in note and "4 more are not shown" in note
    assert headline(root)["open"] == "6"  # the counts still cover every open conflict


def test_values_are_escaped(page):
    html, root = page
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    c03 = cells(root.find(".//table[@class='conflicts']/tbody/tr[@data-conflict='c03']"))
    assert c03["b_value"] == EVIL  # shown verbatim as text, not run as markup
    assert not list(root.iter("script"))


def test_empty_table_says_there_are_no_conflicts(tmp_path):
    html, root = render(tmp_path, [])
    assert text(root.find(".//p[@id='no-conflicts']")).endswith("There are no conflicts.")
    assert headline(root) == {"open": "0", "resolved": "0", "objections": "0"}
    assert root.find(".//table") is None
    assert "最近检测 / Last detected" in html and text(
        root.find(".//dd[@data-field='last_detected']")) == "—"


def test_only_resolved_conflicts_say_nothing_is_open(tmp_path):
    resolved = [c for c in CONFLICTS if c["status"] == "resolved"]
    _, root = render(tmp_path, resolved)
    assert headline(root) == {"open": "0", "resolved": "1", "objections": "0"}
    assert root.find(".//p[@id='no-open-conflicts']") is not None
    assert root.find(".//p[@id='no-conflicts']") is None
    assert root.find(".//table") is None
