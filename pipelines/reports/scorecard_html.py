"""Render the provider scorecard (政务数据共享 供数质量评分卡) as one static HTML page.

The renderer is pure: it takes a `Scorecard` built elsewhere (plain Python values, no database
handle) and returns text. The page is self-contained so it opens offline and prints on A4
landscape: inline <style>, charts as inline SVG computed here, no JavaScript, no fonts or CDNs.
The output is also well-formed XML (void elements self-closed, no named entities), so tests and
other tools can read it with xml.etree.

Template: assets/templates/scorecard.html.j2 (+ _line_chart.svg.j2), rendered by Jinja2 with
autoescaping on; every string from the card is data and is escaped.

Numbers, shares and missing values are shown as every report shows them (formatting.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.reports.files import write_atomically
from pipelines.reports.formatting import clean_share, fmt_pct
from pipelines.reports.templates import environment

TEMPLATE_NAME = "scorecard.html.j2"

# Traffic-light thresholds (inclusive). A provider (or provider × resource) is
#   green  when validity >= 99.5 % and on-time rate == 100 %,
#   amber  when validity >= 95 %   and on-time rate >= 80 %,
#   red    otherwise,
#   grey   when there is nothing to judge (no batch expected and no row received).
# A metric that cannot be measured (None: no rows received / no batch expected) does not count
# against the other one; a provider that was expected to deliver and delivered nothing has an
# on-time rate of 0 % and is red.
GREEN_MIN_VALIDITY = 0.995
GREEN_MIN_ON_TIME = 1.0
AMBER_MIN_VALIDITY = 0.95
AMBER_MIN_ON_TIME = 0.80

STATUS_ORDER = ("red", "amber", "green", "grey")
STATUS_LABELS = {
    "green": "绿 / Green",
    "amber": "黄 / Amber",
    "red": "红 / Red",
    "grey": "灰 / No data",
}

NO_DATA = "无数据 / no data"

PERIOD_KINDS = {  # kind -> (report zh, report en, x axis zh, x axis en)
    "day": ("日报", "Daily", "日期", "Day"),
    "month": ("月报", "Monthly", "月份", "Month"),
}

# Colour-blind-safe first (Okabe–Ito without the yellow, which vanishes on white paper); past the
# palette, colours come from the golden angle on the hue circle and lines are dashed as well.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B")
DASHES = ("", "6 3", "2 3")


# --- input -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScoreRow:
    """One provider × resource for the period."""

    provider: str
    provider_name: str
    resource: str
    resource_name: str
    update_cycle: str
    batches_expected: int
    batches_received: int
    batches_on_time: int
    batches_late: int
    batches_missing: int
    batches_rejected: int
    rows_received: int
    rows_staged: int
    rows_quarantined: int
    rows_superseded: int
    completeness: float | None  # share of required values present, 0..1 (None: nothing received)
    validity: float | None  # share of received rows passing every rule, 0..1
    drift_incidents: int
    overshare_incidents: int
    objections_opened: int
    objections_closed: int
    objections_open: int
    objections_overdue: int


@dataclass(frozen=True)
class RuleRow:
    """One rule's result over the period."""

    provider: str
    resource: str
    rule_id: str
    family: str
    severity: str
    checked: int
    failed: int


@dataclass(frozen=True)
class TrendPoint:
    """One provider on one period (day or month), for the charts."""

    provider: str
    period: str
    validity: float | None
    on_time_rate: float | None


@dataclass(frozen=True)
class Scorecard:
    node: str
    node_name: str
    period_kind: str  # "day" | "month"
    period: str  # "2026-10-03" or "2026-10"
    as_of: str
    generated_at: str
    rows: tuple[ScoreRow, ...]
    rules: tuple[RuleRow, ...]
    trend: tuple[TrendPoint, ...]
    other_periods: tuple[tuple[str, str], ...] = ()  # (label, relative href) to sibling pages


# --- classification ----------------------------------------------------------------------------

def ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def classify(validity: float | None, on_time_rate: float | None) -> str:
    """'green' | 'amber' | 'red' | 'grey' per the thresholds above."""
    v, t = clean_share(validity), clean_share(on_time_rate)
    if v is None and t is None:
        return "grey"

    def meets(v_min: float, t_min: float) -> bool:
        return (v is None or v >= v_min) and (t is None or t >= t_min)

    if meets(GREEN_MIN_VALIDITY, GREEN_MIN_ON_TIME):
        return "green"
    if meets(AMBER_MIN_VALIDITY, AMBER_MIN_ON_TIME):
        return "amber"
    return "red"


def _weighted(rows: Iterable[ScoreRow], attr: str) -> float | None:
    """Mean of a share weighted by rows_received; rows with no value or no rows carry no weight."""
    total = weight = 0
    for r in rows:
        v = clean_share(getattr(r, attr))
        if v is None or r.rows_received <= 0:
            continue
        total += v * r.rows_received
        weight += r.rows_received
    return None if weight == 0 else total / weight


# --- view models -------------------------------------------------------------------------------

_COUNT_FIELDS = (
    "batches_expected", "batches_received", "batches_on_time", "batches_late", "batches_missing",
    "batches_rejected", "rows_received", "rows_staged", "rows_quarantined", "rows_superseded",
    "drift_incidents", "overshare_incidents", "objections_opened", "objections_closed",
    "objections_open", "objections_overdue",
)


@dataclass(frozen=True)
class ProviderSummary:
    """One provider's resources added up (or the whole node, for the totals row)."""

    provider: str
    provider_name: str
    resources: int
    batches_expected: int
    batches_received: int
    batches_on_time: int
    batches_late: int
    batches_missing: int
    batches_rejected: int
    rows_received: int
    rows_staged: int
    rows_quarantined: int
    rows_superseded: int
    drift_incidents: int
    overshare_incidents: int
    objections_opened: int
    objections_closed: int
    objections_open: int
    objections_overdue: int
    on_time_rate: float | None
    completeness: float | None
    validity: float | None
    status: str


def summarize(provider: str, provider_name: str, rows: Sequence[ScoreRow]) -> ProviderSummary:
    sums = {f: sum(getattr(r, f) for r in rows) for f in _COUNT_FIELDS}
    on_time = ratio(sums["batches_on_time"], sums["batches_expected"])
    validity = _weighted(rows, "validity")
    return ProviderSummary(
        provider=provider,
        provider_name=provider_name,
        resources=len({r.resource for r in rows}),
        on_time_rate=on_time,
        completeness=_weighted(rows, "completeness"),
        validity=validity,
        status=classify(validity, on_time),
        **sums,
    )


def provider_summaries(rows: Sequence[ScoreRow]) -> list[ProviderSummary]:
    """One summary per provider, in provider-code order."""
    by_provider: dict[str, list[ScoreRow]] = {}
    for r in rows:
        by_provider.setdefault(r.provider, []).append(r)
    return [summarize(p, rs[0].provider_name, rs) for p, rs in sorted(by_provider.items())]


@dataclass(frozen=True)
class ResourceLine:
    row: ScoreRow
    on_time_rate: float | None
    status: str


@dataclass(frozen=True)
class RuleLine:
    rule: RuleRow
    resource_name: str
    fail_rate: float | None
    severity_class: str


def _css_token(s: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", s.strip().lower()).strip("-") or "none"


def split_rules(
    rules: Sequence[RuleRow], resource_names: dict[tuple[str, str], str]
) -> tuple[list[RuleLine], list[RuleLine]]:
    """(failing, passing): failing by failed desc, then fail rate desc; passing by key."""

    def line(r: RuleRow) -> RuleLine:
        return RuleLine(
            rule=r,
            resource_name=resource_names.get((r.provider, r.resource), ""),
            fail_rate=ratio(r.failed, r.checked),
            severity_class=_css_token(r.severity),
        )

    def key(r: RuleRow) -> tuple[str, str, str]:
        return (r.provider, r.resource, r.rule_id)

    failing = sorted(
        (r for r in rules if r.failed > 0),
        key=lambda r: (-r.failed, -(ratio(r.failed, r.checked) or 0.0), key(r)),
    )
    passing = sorted((r for r in rules if r.failed <= 0), key=key)
    return [line(r) for r in failing], [line(r) for r in passing]


# --- charts ------------------------------------------------------------------------------------

CHART_WIDTH = 880
PLOT_LEFT = 64
PLOT_RIGHT = 36
PLOT_TOP = 16
PLOT_HEIGHT = 220
PLOT_INSET = 14  # keep the first/last point off the axes
AXIS_BAND = 48  # x tick labels + x axis title under the plot
LEGEND_COL_WIDTH = 260
LEGEND_ROW_HEIGHT = 18
FONT_SIZE = 11


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    period: str
    tooltip: str


@dataclass(frozen=True)
class ChartSeries:
    provider: str
    label: str
    color: str
    dash: str
    path: str | None  # SVG path data, a new "M" after each gap; None when no value at all
    points: tuple[ChartPoint, ...]


@dataclass(frozen=True)
class LegendItem:
    x: float
    y: float
    color: str
    dash: str
    text: str
    full_text: str


@dataclass(frozen=True)
class LineChart:
    metric: str
    title: str
    y_title: str
    x_title: str
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    y_ticks: tuple[tuple[float, str], ...]
    x_ticks: tuple[tuple[float, str, bool], ...]  # (x, label, show label)
    series: tuple[ChartSeries, ...]
    legend: tuple[LegendItem, ...]
    has_data: bool


def series_style(index: int) -> tuple[str, str]:
    """(colour, dash pattern) for the index-th provider: distinct colours for any count."""
    if index < len(PALETTE):
        return PALETTE[index], DASHES[0]
    hue = (index * 137.508) % 360
    return f"hsl({hue:.1f}, 65%, 40%)", DASHES[1 + index % 2]


def _text_width(s: str, size: float = FONT_SIZE) -> float:
    """Rough rendered width: CJK and full-width characters 1 em, the rest 0.6 em."""
    return sum(size if ord(c) >= 0x2E80 else size * 0.6 for c in s)


def _truncate(s: str, max_width: float) -> str:
    if _text_width(s) <= max_width:
        return s
    out = ""
    for c in s:
        if _text_width(out + c + "…") > max_width:
            break
        out += c
    return out + "…"


def _label_indices(n: int, plot_width: float) -> set[int]:
    """Which of n period ticks get a label, so labels (up to ~10 characters) do not overlap."""
    if n == 0:
        return set()
    max_labels = max(2, int(plot_width // 72))
    step = max(1, math.ceil(n / max_labels))
    idx = list(range(0, n, step))
    if idx[-1] != n - 1:
        if len(idx) > 1 and (n - 1 - idx[-1]) < step / 2:
            idx[-1] = n - 1
        else:
            idx.append(n - 1)
    return set(idx)


def build_chart(
    metric: str,
    title: str,
    metric_label: str,
    period_kind: str,
    trend: Sequence[TrendPoint],
    providers: Sequence[tuple[str, str]],
) -> LineChart:
    """Geometry for one line chart of `metric` ('validity' | 'on_time_rate') per provider.

    `providers` is the (code, label) order that fixes each provider's colour in every chart.
    A period where a provider has no value (None, or no point at all) breaks its line.
    """
    _, _, x_zh, x_en = PERIOD_KINDS[period_kind]
    periods = sorted({p.period for p in trend})
    values: dict[tuple[str, str], float | None] = {}
    for p in trend:
        values[(p.provider, p.period)] = clean_share(getattr(p, metric))

    in_trend = {p.provider for p in trend}
    shown = [(i, code, label) for i, (code, label) in enumerate(providers) if code in in_trend]

    plot_w = CHART_WIDTH - PLOT_LEFT - PLOT_RIGHT
    left, right = PLOT_LEFT, CHART_WIDTH - PLOT_RIGHT
    top, bottom = PLOT_TOP, PLOT_TOP + PLOT_HEIGHT
    n = len(periods)

    def x_of(i: int) -> float:
        if n == 1:
            return left + plot_w / 2
        return left + PLOT_INSET + (plot_w - 2 * PLOT_INSET) * i / (n - 1)

    def y_of(v: float) -> float:
        return bottom - PLOT_HEIGHT * min(max(v, 0.0), 1.0)

    series = []
    for index, code, label in shown:
        color, dash = series_style(index)
        pts: list[ChartPoint] = []
        cmds: list[str] = []
        pen_down = False
        for i, period in enumerate(periods):
            v = values.get((code, period))
            if v is None:
                pen_down = False
                continue
            x, y = x_of(i), y_of(v)
            cmds.append(f"{'L' if pen_down else 'M'}{x:.1f} {y:.1f}")
            pen_down = True
            tip = f"{label} · {period} · {metric_label}: {fmt_pct(v)}"
            pts.append(ChartPoint(x, y, period, tip))
        series.append(ChartSeries(code, label, color, dash, " ".join(cmds) or None, tuple(pts)))

    y_ticks = tuple((y_of(k / 5), f"{k * 20}%") for k in range(6))
    labelled = _label_indices(n, plot_w)
    x_ticks = tuple((x_of(i), p, i in labelled) for i, p in enumerate(periods))

    cols = max(1, int((CHART_WIDTH - PLOT_LEFT) // LEGEND_COL_WIDTH))
    legend_top = bottom + AXIS_BAND + 8
    legend = []
    for k, s in enumerate(series):
        full = s.label if s.points else f"{s.label} ({NO_DATA})"
        legend.append(LegendItem(
            x=PLOT_LEFT + (k % cols) * LEGEND_COL_WIDTH,
            y=legend_top + (k // cols) * LEGEND_ROW_HEIGHT,
            color=s.color,
            dash=s.dash,
            text=_truncate(full, LEGEND_COL_WIDTH - 32),
            full_text=full,
        ))
    legend_rows = math.ceil(len(series) / cols)
    height = legend_top + legend_rows * LEGEND_ROW_HEIGHT + 4

    return LineChart(
        metric=metric,
        title=title,
        y_title=f"{metric_label} (%)",
        x_title=f"{x_zh} / {x_en}",
        width=CHART_WIDTH,
        height=int(math.ceil(height)),
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        series=tuple(series),
        legend=tuple(legend),
        has_data=any(s.points for s in series),
    )


# --- page --------------------------------------------------------------------------------------

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _check_href(href: str) -> str:
    """Sibling links must be relative: no scheme (javascript:, http:) and no '//host'."""
    h = href.strip()
    if not h or _SCHEME.match(h) or h.startswith("//") or h.startswith("\\"):
        raise ValueError(f"other_periods href must be a relative path, got {href!r}")
    return h


def render_scorecard(card: Scorecard) -> str:
    """The scorecard as one self-contained HTML5 page (also well-formed XML)."""
    if card.period_kind not in PERIOD_KINDS:
        raise ValueError(f"period_kind must be 'day' or 'month', got {card.period_kind!r}")
    nav = [(label, _check_href(href)) for label, href in card.other_periods]

    summaries = provider_summaries(card.rows)
    total = summarize("", "全部 / All", card.rows) if card.rows else None
    status_counts = {s: sum(1 for p in summaries if p.status == s) for s in STATUS_ORDER}

    lines = [
        ResourceLine(r, ratio(r.batches_on_time, r.batches_expected),
                     classify(r.validity, ratio(r.batches_on_time, r.batches_expected)))
        for r in sorted(card.rows, key=lambda r: (r.provider, r.resource))
    ]
    resource_names = {(r.provider, r.resource): r.resource_name for r in card.rows}
    failing, passing = split_rules(card.rules, resource_names)

    names = {s.provider: s.provider_name for s in summaries}
    codes = [s.provider for s in summaries]
    codes += sorted({p.provider for p in card.trend} - set(codes))
    providers = [(c, f"{c} {names[c]}" if names.get(c) else c) for c in codes]
    charts = [
        build_chart("validity", "有效率趋势 / Validity trend", "有效率 / Validity",
                    card.period_kind, card.trend, providers),
        build_chart("on_time_rate", "及时率趋势 / On-time rate trend",
                    "及时率 / On-time rate",
                    card.period_kind, card.trend, providers),
    ]

    kind_zh, kind_en, _, _ = PERIOD_KINDS[card.period_kind]
    return environment().get_template(TEMPLATE_NAME).render(
        card=card,
        kind_zh=kind_zh,
        kind_en=kind_en,
        nav=nav,
        summaries=summaries,
        total=total,
        status_counts=status_counts,
        status_order=STATUS_ORDER,
        status_labels=STATUS_LABELS,
        lines=lines,
        failing=failing,
        passing=passing,
        charts=charts,
        no_data=NO_DATA,
        thresholds={
            "green_validity": fmt_pct(GREEN_MIN_VALIDITY),
            "green_on_time": fmt_pct(GREEN_MIN_ON_TIME),
            "amber_validity": fmt_pct(AMBER_MIN_VALIDITY),
            "amber_on_time": fmt_pct(AMBER_MIN_ON_TIME),
        },
    )


def write_scorecard(card: Scorecard, path: Path) -> Path:
    """Render and write atomically (a reader sees the old page or the new one, never half)."""
    return write_atomically(render_scorecard(card), path)
