"""Provider scorecard page (pipelines/reports/scorecard_html.py): numbers, classification,
ordering, charts, escaping and the atomic write, read back from the rendered page.

The page is well-formed XML by design, so the tests parse it with xml.etree and find things by
the data-* attributes the template puts on rows, cells and chart series.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.reports import files as report_files
from pipelines.reports import scorecard_html as sc
from pipelines.reports.formatting import fmt_int, fmt_pct, fmt_rate
from pipelines.reports.scorecard_html import (
    RuleRow,
    Scorecard,
    ScoreRow,
    TrendPoint,
    classify,
    render_scorecard,
    series_style,
    write_scorecard,
)

pytestmark = pytest.mark.unit

SVG = "{http://www.w3.org/2000/svg}"
EVIL = "户籍<script>alert('x')</script>"
PERIODS = ("2026-09-29", "2026-09-30", "2026-10-01", "2026-10-02", "2026-10-03")


def score_row(provider: str, resource: str, **kw) -> ScoreRow:
    base = dict(
        provider=provider, provider_name=f"{provider} 名称", resource=resource,
        resource_name=f"{resource} 名称", update_cycle="每日",
        batches_expected=0, batches_received=0, batches_on_time=0, batches_late=0,
        batches_missing=0, batches_rejected=0,
        rows_received=0, rows_staged=0, rows_quarantined=0, rows_superseded=0,
        completeness=None, validity=None, drift_incidents=0, overshare_incidents=0,
        objections_opened=0, objections_closed=0, objections_open=0, objections_overdue=0,
    )
    return ScoreRow(**{**base, **kw})


def make_card(**overrides) -> Scorecard:
    rows = (
        # P01: 2 resources. expected 6 + 4 = 10, on time 5 + 3 = 8 -> 80.0 %;
        # validity (0.99 * 30000 + 1.0 * 10000) / 40000 = 0.9925 -> 99.2 %;
        # completeness (0.99 * 30000 + 0.95 * 10000) / 40000 = 0.98 -> 98.0 %  => amber
        score_row(
            "P01", "R01", provider_name="市公安局", resource_name="常住人口",
            batches_expected=6, batches_received=6, batches_on_time=5, batches_late=1,
            rows_received=30000, rows_staged=29900, rows_quarantined=100, rows_superseded=12,
            completeness=0.99, validity=0.99, drift_incidents=1,
            objections_opened=3, objections_closed=1, objections_open=2, objections_overdue=1,
        ),
        score_row(
            "P01", "R02", provider_name="市公安局", resource_name=EVIL,
            batches_expected=4, batches_received=3, batches_on_time=3, batches_missing=1,
            rows_received=10000, rows_staged=10000, completeness=0.95, validity=1.0,
            objections_opened=1, objections_closed=0, objections_open=1,
        ),
        # P02: every batch on time, validity 99.9 %  => green
        score_row(
            "P02", "R03", provider_name="市市场监管局", resource_name="企业登记",
            update_cycle="每月", batches_expected=31, batches_received=31, batches_on_time=31,
            rows_received=1234567, rows_staged=1233367, rows_quarantined=1200,
            completeness=1.0, validity=0.999, objections_opened=1, objections_closed=1,
        ),
    )
    rules = (
        RuleRow("P01", "R02", "format.uscc", "validity", "error", 10000, 0),
        RuleRow("P01", "R01", "range.birth_date", "validity", "warn", 30000, 20),
        RuleRow("P02", "R03", "not_null.name", "completeness", "error", 1234567, 0),
        RuleRow("P01", "R01", "not_null.id_no", "completeness", "error", 30000, 100),
        RuleRow("P02", "R03", "unique.uscc", "uniqueness", "error", 1234567, 1200),
    )
    trend = tuple(
        TrendPoint("P01", p, None if p == "2026-10-01" else 0.98 + i / 1000, 0.8)
        for i, p in enumerate(PERIODS)
    ) + tuple(TrendPoint("P02", p, 0.999, 1.0) for p in PERIODS)
    card = Scorecard(
        node="320100", node_name="南京市 & 江北新区", period_kind="day", period="2026-10-03",
        as_of="2026-10-03 23:59", generated_at="2026-10-04 06:00:00+08:00",
        rows=rows, rules=rules, trend=trend,
        other_periods=(
            ("2026-10-02", "2026-10-02.html"),
            ("2026-10 月报", "../month/2026-10.html"),
        ),
    )
    return replace(card, **overrides)


def parse(html: str) -> ET.Element:
    return ET.fromstring(html)  # fails loudly if the page is not well-formed


def text(el: ET.Element) -> str:
    return "".join(el.itertext()).strip()


def cells(tr: ET.Element) -> dict[str, str]:
    return {td.get("data-col"): text(td) for td in tr.iter("td") if td.get("data-col")}


def summary_row(root: ET.Element, provider: str) -> ET.Element:
    (tr,) = root.findall(f".//table[@class='summary']/tbody/tr[@data-provider='{provider}']")
    return tr


def chart(root: ET.Element, metric: str) -> ET.Element:
    (fig,) = root.findall(f".//figure[@data-metric='{metric}']")
    return fig


# --- formatting and classification -------------------------------------------------------------

def test_formatters():
    assert fmt_pct(0.8) == "80.0%"
    assert fmt_pct(1.0) == "100.0%"
    assert fmt_pct(0.99999) == "99.9%"  # truncated: 100.0% only when really complete
    assert fmt_pct(2 / 3) == "66.6%"
    assert fmt_pct((0.8 * 100 + 0.8 * 200) / 300) == "80.0%"  # float noise is not truncated away
    assert fmt_pct(None) == fmt_pct(float("nan")) == "—"
    assert fmt_rate(0.0004) == "<0.1%"
    assert fmt_rate(0.0) == "0.0%"
    assert fmt_int(1234567) == "1,234,567"
    assert fmt_int(0) == "0"


@pytest.mark.parametrize(
    ("validity", "on_time", "expected"),
    [
        (0.995, 1.0, "green"),
        (1.0, 1.0, "green"),
        (0.9949, 1.0, "amber"),
        (0.999, 0.99, "amber"),
        (0.95, 0.80, "amber"),
        (0.9499, 1.0, "red"),
        (1.0, 0.79, "red"),
        (None, 0.0, "red"),  # expected batches, nothing delivered
        (None, 1.0, "green"),  # nothing received to validate, but nothing was late either
        (0.999, None, "green"),  # rows arrived with nothing scheduled
        (None, None, "grey"),
        (float("nan"), None, "grey"),
    ],
)
def test_classify(validity, on_time, expected):
    assert classify(validity, on_time) == expected


def test_thresholds_are_module_constants():
    assert (sc.GREEN_MIN_VALIDITY, sc.GREEN_MIN_ON_TIME) == (0.995, 1.0)
    assert (sc.AMBER_MIN_VALIDITY, sc.AMBER_MIN_ON_TIME) == (0.95, 0.80)


# --- page --------------------------------------------------------------------------------------

def test_page_is_self_contained_html5():
    html = render_scorecard(make_card())
    assert html.startswith("<!DOCTYPE html>")
    root = parse(html)
    assert root.tag == "html" and root.get("lang") == "zh-CN"
    assert root.find("./head/meta[@charset='utf-8']") is not None
    assert root.find("./head/style") is not None
    assert not list(root.iter("script")) and not list(root.iter("link"))
    assert not list(root.iter("img")) and not list(root.iter("iframe"))
    assert "@import" not in html and "url(" not in html
    links = re.findall(r'\b(?:href|src)="([^"]*)"', html)
    assert links == ["2026-10-02.html", "../month/2026-10.html"]
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg\")", html)


def test_header_and_navigation():
    root = parse(render_scorecard(make_card()))
    assert "供数单位评分卡 / Provider scorecard" in text(root.find(".//h1"))
    fields = {dd.get("data-field"): text(dd) for dd in root.iter("dd")}
    assert fields == {
        "node": "320100 南京市 & 江北新区",
        "period": "2026-10-03",
        "as_of": "2026-10-03 23:59",
        "generated_at": "2026-10-04 06:00:00+08:00",
    }
    nav = [(text(a), a.get("href")) for a in root.findall(".//nav//a")]
    assert nav == [("2026-10-02", "2026-10-02.html"), ("2026-10 月报", "../month/2026-10.html")]
    h2 = [text(h) for h in root.iter("h2")]
    assert all(re.search(r"[\u4e00-\u9fff].* / [A-Z]", h) for h in h2), h2


def test_summary_aggregates_match_hand_computed_values():
    root = parse(render_scorecard(make_card()))
    p01 = cells(summary_row(root, "P01"))
    assert p01["provider"] == "P01市公安局"
    assert p01["resources"] == "2"
    assert p01["batches_expected"] == "10"
    assert p01["batches_received"] == "9"
    assert p01["batches_on_time"] == "8"
    assert p01["batches_late"] == "1"
    assert p01["batches_missing"] == "1"
    assert p01["on_time_rate"] == "80.0%"  # 8 / 10
    assert p01["rows_received"] == "40,000"
    assert p01["rows_quarantined"] == "100"
    assert p01["validity"] == "99.2%"  # 0.9925, weighted by rows received
    assert p01["completeness"] == "98.0%"
    assert p01["drift_incidents"] == "1"

    p02 = cells(summary_row(root, "P02"))
    assert p02["on_time_rate"] == "100.0%"
    assert p02["rows_received"] == "1,234,567"
    assert p02["validity"] == "99.9%"

    (total,) = root.findall(".//table[@class='summary']/tfoot/tr")
    t = cells(total)
    assert t["batches_expected"] == "41"
    assert t["on_time_rate"] == "95.1%"  # 39 / 41 = 0.9512
    assert t["rows_received"] == "1,274,567"


def test_traffic_lights():
    root = parse(render_scorecard(make_card()))
    p01, p02 = summary_row(root, "P01"), summary_row(root, "P02")
    assert p01.get("data-status") == "amber"  # validity 99.25 %, on time 80 %
    assert p02.get("data-status") == "green"
    assert p01.find(".//span[@class='badge badge-amber']") is not None
    assert p02.find(".//span[@class='badge badge-green']") is not None
    counts = {s.get("data-status-count"): text(s) for s in root.iter("span")
              if s.get("data-status-count")}
    assert counts["amber"].endswith("1") and counts["green"].endswith("1")
    assert counts["red"].endswith("0") and counts["grey"].endswith("0")


def test_red_and_grey_providers():
    card = make_card()
    late = replace(card.rows[0], batches_on_time=3, batches_late=3)  # P01: 6 / 10 on time
    idle = score_row("P03", "R09")  # nothing expected, nothing received
    root = parse(render_scorecard(replace(card, rows=(late, *card.rows[1:], idle))))
    assert summary_row(root, "P01").get("data-status") == "red"
    assert cells(summary_row(root, "P01"))["on_time_rate"] == "60.0%"
    p03 = summary_row(root, "P03")
    assert p03.get("data-status") == "grey"
    assert cells(p03)["validity"] == "—" and cells(p03)["on_time_rate"] == "—"


def test_resource_table_has_every_score_row_column():
    root = parse(render_scorecard(make_card()))
    trs = root.findall(".//table[@class='resources']/tbody/tr")
    assert [(tr.get("data-provider"), tr.get("data-resource")) for tr in trs] == [
        ("P01", "R01"), ("P01", "R02"), ("P02", "R03"),
    ]
    r01 = cells(trs[0])
    fields = set(ScoreRow.__dataclass_fields__) - {"provider_name", "resource_name"}
    assert fields <= set(r01)  # names are shown inside the provider / resource cells
    assert r01["provider"] == "P01市公安局" and r01["resource"] == "R01常住人口"
    assert r01["rows_received"] == "30,000" and r01["rows_staged"] == "29,900"
    assert r01["rows_superseded"] == "12" and r01["update_cycle"] == "每日"
    assert r01["on_time_rate"] == "83.3%"  # 5 / 6, truncated
    assert r01["validity"] == "99.0%" and r01["completeness"] == "99.0%"
    assert r01["objections_overdue"] == "1"
    assert trs[0].get("class") == "overdue"
    r03 = cells(trs[2])
    assert r03["rows_received"] == "1,234,567" and r03["update_cycle"] == "每月"
    nothing = score_row("P09", "R99")
    root = parse(render_scorecard(make_card(rows=(nothing,))))
    r99 = cells(root.find(".//table[@class='resources']/tbody/tr"))
    assert r99["validity"] == r99["completeness"] == r99["on_time_rate"] == "—"


def test_failing_rules_first_sorted_by_failed_then_passing_collapsed():
    root = parse(render_scorecard(make_card()))
    failing = root.findall(".//section[@id='rules']/table/tbody/tr")
    assert [tr.get("data-rule") for tr in failing] == [
        "unique.uscc", "not_null.id_no", "range.birth_date",
    ]
    first = cells(failing[0])
    assert first["failed"] == "1,200" and first["checked"] == "1,234,567"
    assert first["fail_rate"] == "<0.1%"  # 1200 / 1234567 = 0.097 %
    assert cells(failing[1])["fail_rate"] == "0.3%"  # 100 / 30000
    (details,) = root.findall(".//section[@id='rules']/details")
    assert "(2)" in text(details.find("summary"))
    passing = details.findall(".//tbody/tr")
    assert [tr.get("data-rule") for tr in passing] == ["format.uscc", "not_null.name"]
    # document order: every failing rule comes before every passing one
    order = [tr.get("data-rule") for tr in root.iter("tr") if tr.get("data-rule")]
    assert order[:3] == ["unique.uscc", "not_null.id_no", "range.birth_date"]


def test_validity_chart_one_path_per_provider_with_gap():
    root = parse(render_scorecard(make_card()))
    svg = chart(root, "validity").find(f"{SVG}svg")
    assert svg is not None
    series = {g.get("data-provider"): g for g in svg.iter(f"{SVG}g") if g.get("class") == "series"}
    assert set(series) == {"P01", "P02"}

    p01_paths = series["P01"].findall(f"{SVG}path")
    assert len(p01_paths) == 1
    d = p01_paths[0].get("d")
    assert len(re.findall(r"[ML]", d)) == 4  # 5 periods, one None
    assert d.count("M") == 2  # the None breaks the line in two
    points = series["P01"].findall(f"{SVG}circle")
    assert [c.get("data-period") for c in points] == [p for p in PERIODS if p != "2026-10-01"]
    assert all(c.find(f"{SVG}title") is not None for c in points)
    assert "98.0%" in text(points[0].find(f"{SVG}title"))

    p02_paths = series["P02"].findall(f"{SVG}path")
    assert len(p02_paths) == 1
    assert len(re.findall(r"[ML]", p02_paths[0].get("d"))) == 5
    assert p02_paths[0].get("d").count("M") == 1
    assert len(series["P02"].findall(f"{SVG}circle")) == 5

    colours = {g.find(f"{SVG}path").get("stroke") for g in series.values()}
    assert len(colours) == 2
    labels = [text(t) for t in svg.iter(f"{SVG}text")]
    assert "0%" in labels and "100%" in labels  # y axis fixed at 0..100 %
    assert "日期 / Day" in labels and "有效率 / Validity (%)" in labels
    assert {"P01 市公安局", "P02 市市场监管局"} <= set(labels)  # legend
    assert set(PERIODS) <= set(labels)  # 5 periods all labelled


def test_on_time_chart_and_point_positions():
    root = parse(render_scorecard(make_card()))
    svg = chart(root, "on_time_rate").find(f"{SVG}svg")
    xs = {c.get("cx") for c in svg.iter(f"{SVG}circle") if c.get("data-period")}
    assert len(xs) == 5  # one x per period, shared by both providers
    ys = {}
    for g in svg.iter(f"{SVG}g"):
        if g.get("class") == "series":
            ys[g.get("data-provider")] = {float(c.get("cy")) for c in g.iter(f"{SVG}circle")}
    # 100 % sits at the top of the plot, 80 % lower down (larger y)
    assert len(ys["P01"]) == len(ys["P02"]) == 1
    assert ys["P01"].pop() > ys["P02"].pop()


def test_single_period_trend():
    trend = (TrendPoint("P01", "2026-10", 0.97, 0.9), TrendPoint("P02", "2026-10", None, 1.0))
    root = parse(render_scorecard(make_card(period_kind="month", period="2026-10", trend=trend)))
    svg = chart(root, "validity").find(f"{SVG}svg")
    series = {g.get("data-provider"): g for g in svg.iter(f"{SVG}g") if g.get("class") == "series"}
    (path,) = series["P01"].findall(f"{SVG}path")
    assert re.fullmatch(r"M[\d.]+ [\d.]+", path.get("d"))
    assert len(series["P01"].findall(f"{SVG}circle")) == 1
    assert not series["P02"].findall(f"{SVG}path")  # no value at all: nothing to draw
    labels = [text(t) for t in svg.iter(f"{SVG}text")]
    assert "月份 / Month" in labels and "2026-10" in labels
    assert any("无数据 / no data" in label for label in labels)  # P02's legend entry
    assert "月报 / Monthly" in text(root.find(".//p[@class='subtitle']"))


def test_empty_trend_shows_no_data():
    root = parse(render_scorecard(make_card(trend=())))
    for metric in ("validity", "on_time_rate"):
        fig = chart(root, metric)
        assert fig.find(f"{SVG}svg") is None
        assert text(fig.find("p")) == "无数据 / no data"


def test_metric_with_only_none_shows_no_data_for_that_chart():
    trend = tuple(TrendPoint("P01", p, None, 1.0) for p in PERIODS)
    root = parse(render_scorecard(make_card(trend=trend)))
    assert text(chart(root, "validity").find("p")) == "无数据 / no data"
    assert chart(root, "on_time_rate").find(f"{SVG}svg") is not None


def test_objections_table_highlights_overdue():
    root = parse(render_scorecard(make_card()))
    trs = {tr.get("data-provider"): tr
           for tr in root.findall(".//table[@class='objections']/tbody/tr")}
    assert cells(trs["P01"]) == {
        "provider": "P01市公安局", "objections_opened": "4", "objections_closed": "1",
        "objections_open": "3", "objections_overdue": "1",
    }
    assert trs["P01"].get("class") == "overdue"
    assert trs["P02"].get("class") is None
    assert cells(trs["P02"])["objections_closed"] == "1"


def test_text_is_escaped():
    card = make_card(rows=make_card().rows + (
        score_row("P<b>", "R\"'&", provider_name="<img src=x onerror=alert(1)>"),
    ))
    html = render_scorecard(card)
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html
    root = parse(html)
    resource_cells = [text(td) for td in root.iter("td") if td.get("data-col") == "resource"]
    assert f"R02{EVIL}" in resource_cells  # shown verbatim as text, not markup
    assert "320100 南京市 & 江北新区" in html.replace("&amp;", "&")


def test_rejects_unsafe_links_and_unknown_period_kind():
    with pytest.raises(ValueError, match="relative"):
        render_scorecard(make_card(other_periods=(("x", "javascript:alert(1)"),)))
    with pytest.raises(ValueError, match="relative"):
        render_scorecard(make_card(other_periods=(("x", "//evil.example/p.html"),)))
    with pytest.raises(ValueError, match="period_kind"):
        render_scorecard(make_card(period_kind="week"))


def test_empty_card_renders():
    root = parse(render_scorecard(make_card(rows=(), rules=(), trend=())))
    for section in ("summary", "resources", "rules", "objections"):
        (sec,) = root.findall(f".//section[@id='{section}']")
        assert "无数据 / no data" in text(sec)


def test_colours_distinct_for_many_providers():
    styles = [series_style(i) for i in range(40)]
    assert len({colour for colour, _ in styles}) == 40


def test_long_trend_thins_x_labels():
    periods = [f"2026-10-{d:02d}" for d in range(1, 32)]
    trend = tuple(TrendPoint("P01", p, 0.99, 1.0) for p in periods)
    root = parse(render_scorecard(make_card(trend=trend)))
    svg = chart(root, "validity").find(f"{SVG}svg")
    (xl,) = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "x-labels"]
    labels = [text(t) for t in xl]
    assert labels[0] == periods[0] and labels[-1] == periods[-1]
    assert len(labels) <= 12
    assert len(svg.findall(f".//{SVG}circle[@data-period]")) == 31


# --- write -------------------------------------------------------------------------------------

def test_write_scorecard_creates_dirs_and_leaves_no_temp(tmp_path):
    target = tmp_path / "reports" / "day" / "2026-10-03.html"
    card = make_card()
    assert write_scorecard(card, target) == target
    assert target.read_text(encoding="utf-8") == render_scorecard(card)
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    write_scorecard(replace(card, generated_at="later"), target)  # overwrite in place
    assert "later" in target.read_text(encoding="utf-8")
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_write_scorecard_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "2026-10-03.html"
    target.write_text("old page", encoding="utf-8")
    calls: list[tuple[Path, Path]] = []
    real_replace = report_files.os.replace

    def spy(src, dst):
        calls.append((Path(src), Path(dst)))
        assert Path(dst).read_text(encoding="utf-8") == "old page"  # untouched until the swap
        assert Path(src).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        real_replace(src, dst)

    monkeypatch.setattr(report_files.os, "replace", spy)
    write_scorecard(make_card(), target)
    ((src, dst),) = calls
    assert dst == target and src.parent == target.parent and src != target
    assert not src.exists()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(report_files.os, "replace", boom)
    before = target.read_text(encoding="utf-8")
    with pytest.raises(OSError, match="disk full"):
        write_scorecard(make_card(generated_at="never"), target)
    assert target.read_text(encoding="utf-8") == before
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # temp file cleaned up
