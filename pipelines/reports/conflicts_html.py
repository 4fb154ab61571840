"""Render the reconciliation conflict report (数据比对冲突报告) as one static HTML page.

Input is gold.conflicts (assets/sql/identity/schema.sql): contradictions between two sources about
one person or enterprise, each side with its provenance. The page is for the governance officer who
has to get them fixed: headline counts, open conflicts by kind, by region and by age, then the open
conflicts themselves with both sides, oldest first.

Same conventions as the provider scorecard (scorecard_html.py): self-contained (inline <style>,
inline SVG, no JavaScript, fonts or CDNs), well-formed XML, bilingual labels (Chinese first),
rendered through the shared environment (templates.py: autoescaped, so every value from the table
is data and is escaped; formatting.py's filters). Template: assets/templates/conflicts.html.j2.

The aggregations run in DuckDB (the table may be large); only the detail rows, capped at
DETAIL_LIMIT, come back to Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.catalog.divisions import DivisionTable
from pipelines.reports.files import write_atomically
from pipelines.reports.templates import environment

TEMPLATE_NAME = "conflicts.html.j2"
PAGE_NAME = "index.html"

# The five kinds the reconciler raises (schema.sql); a kind not listed here is shown by its code.
KIND_LABELS = {
    "death_vs_active": "死亡未注销",
    "marital_mismatch": "婚姻状况不一致",
    "hukou_two_regions": "两地户籍",
    "customs_of_deregistered": "注销企业海关备案有效",
    "subsistence_after_death": "死亡后仍在保",
}

# Age of an open conflict = today - first_detected, in days; (zh, en, lowest day, highest day).
AGE_BUCKETS = (
    ("0–7 天", "0–7 days", 0, 7),
    ("8–30 天", "8–30 days", 8, 30),
    ("31–90 天", "31–90 days", 31, 90),
    ("90 天以上", "over 90 days", 91, None),
)

DETAIL_LIMIT = 500  # more rows make the page too slow to open and useless on paper

UNKNOWN_REGION = "未知地区 / unknown region"

# Bar chart of open conflicts by kind (inline SVG); sizes in SVG user units.
BAR_LABEL_WIDTH = 180
BAR_MAX_WIDTH = 560
BAR_ROW_HEIGHT = 24
BAR_HEIGHT = 16
BAR_LABEL_CHARS = 12  # a long unknown kind code is cut so it stays inside the label column


# --- view models -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Headline:
    total: int
    open: int
    resolved: int
    objections: int  # open conflicts raised to the responsible provider as an objection
    last_detected: dt.date | None


@dataclass(frozen=True)
class KindLine:
    kind: str
    label: str  # Chinese label, or the code itself for a kind not in KIND_LABELS
    open: int
    objections: int
    oldest: dt.date | None  # earliest first_detected among the open ones


@dataclass(frozen=True)
class RegionLine:
    region: str | None
    name: str  # "" when the code is not in catalogs/divisions.csv
    open: int
    objections: int


@dataclass(frozen=True)
class AgeLine:
    zh: str
    en: str
    open: int


@dataclass(frozen=True)
class Side:
    """One source's claim: the value and where it came from."""

    value: str | None
    provider: str | None
    resource: str | None
    record_key: str | None
    batch_id: str | None
    as_of: dt.datetime | None


@dataclass(frozen=True)
class ConflictLine:
    conflict_id: str
    kind: str
    kind_label: str
    entity_kind: str | None
    entity_id: str
    region: str | None
    region_name: str
    first_detected: dt.date
    last_detected: dt.date
    age_days: int
    a: Side
    b: Side
    responsible_provider: str | None
    objection_id: str | None
    detail_zh: str | None
    detail_en: str | None


@dataclass(frozen=True)
class Bar:
    y: float
    width: float
    label: str
    full_label: str
    count: int


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    label_width: int
    bar_height: int
    bars: tuple[Bar, ...]


# --- queries -----------------------------------------------------------------------------------

_HEADLINE_SQL = """
SELECT count(*),
       count(*) FILTER (WHERE status = 'open'),
       count(*) FILTER (WHERE status = 'resolved'),
       count(*) FILTER (WHERE status = 'open' AND objection_id IS NOT NULL),
       max(last_detected)
FROM gold.conflicts
"""

_BY_KIND_SQL = """
SELECT kind, count(*), count(objection_id), min(first_detected)
FROM gold.conflicts WHERE status = 'open' GROUP BY kind
"""

_BY_REGION_SQL = """
SELECT region, count(*), count(objection_id)
FROM gold.conflicts WHERE status = 'open' GROUP BY region
ORDER BY count(*) DESC, region NULLS LAST
"""

# Grouped by day, bucketed in Python so AGE_BUCKETS is the one place the buckets are defined.
# A first_detected after `today` (report run for an earlier day) counts as age 0, not negative.
_BY_AGE_SQL = """
SELECT greatest(date_diff('day', first_detected, $today), 0) AS age, count(*)
FROM gold.conflicts WHERE status = 'open' GROUP BY age
"""

_DETAIL_SQL = """
SELECT conflict_id, kind, entity_kind, entity_id, region,
       a_value, a_provider, a_resource, a_record_key, a_batch_id, a_as_of,
       b_value, b_provider, b_resource, b_record_key, b_batch_id, b_as_of,
       responsible_provider, objection_id, detail_zh, detail_en,
       first_detected, last_detected
FROM gold.conflicts WHERE status = 'open'
ORDER BY first_detected, kind, conflict_id
LIMIT $limit
"""


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def age_bucket(age_days: int) -> int:
    """Index into AGE_BUCKETS."""
    for i, (_, _, low, high) in enumerate(AGE_BUCKETS):
        if age_days >= low and (high is None or age_days <= high):
            return i
    return 0  # negative ages are clamped to 0 in SQL; this is only a safety net


RegionNamer = Callable[[str | None], str]


def _region_namer(today: dt.date) -> RegionNamer:
    """code -> name valid today (or the last name, for a retired code); "" when unknown."""
    divisions = DivisionTable.load()  # read once per process, cached

    def name(code: str | None) -> str:
        if not code:
            return ""
        return divisions.name(code, at=today) or divisions.name(code) or ""

    return name


def _dicts(con: Any, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    columns = [d[0] for d in cur.description]
    return [dict(zip(columns, row)) for row in cur.fetchall()]


def kind_lines(con: Any) -> list[KindLine]:
    """Every known kind (zeros included, so the officer sees the full list), then unknown ones."""
    found = {k: (n, obj, oldest) for k, n, obj, oldest in con.execute(_BY_KIND_SQL).fetchall()}
    unknown = sorted((k for k in found if k not in KIND_LABELS), key=lambda k: (-found[k][0], k))
    return [KindLine(k, kind_label(k), *found.get(k, (0, 0, None)))
            for k in (*KIND_LABELS, *unknown)]


def region_lines(con: Any, region_name: RegionNamer) -> list[RegionLine]:
    return [RegionLine(region, region_name(region), n, obj)
            for region, n, obj in con.execute(_BY_REGION_SQL).fetchall()]


def age_lines(con: Any, today: dt.date) -> list[AgeLine]:
    counts = [0] * len(AGE_BUCKETS)
    for age, n in con.execute(_BY_AGE_SQL, {"today": today}).fetchall():
        counts[age_bucket(age)] += n
    return [AgeLine(zh, en, n) for (zh, en, _, _), n in zip(AGE_BUCKETS, counts)]


def conflict_lines(con: Any, today: dt.date, region_name: RegionNamer) -> list[ConflictLine]:
    lines = []
    for r in _dicts(con, _DETAIL_SQL, {"limit": DETAIL_LIMIT}):
        side = {s: Side(*(r[f"{s}_{f}"] for f in
                          ("value", "provider", "resource", "record_key", "batch_id", "as_of")))
                for s in ("a", "b")}
        lines.append(ConflictLine(
            conflict_id=r["conflict_id"], kind=r["kind"], kind_label=kind_label(r["kind"]),
            entity_kind=r["entity_kind"], entity_id=r["entity_id"],
            region=r["region"], region_name=region_name(r["region"]),
            first_detected=r["first_detected"], last_detected=r["last_detected"],
            age_days=max((today - r["first_detected"]).days, 0),
            a=side["a"], b=side["b"],
            responsible_provider=r["responsible_provider"], objection_id=r["objection_id"],
            detail_zh=r["detail_zh"], detail_en=r["detail_en"],
        ))
    return lines


def bar_chart(kinds: list[KindLine]) -> BarChart:
    """Horizontal bars, one per kind, scaled to the largest open count."""
    top = max((k.open for k in kinds), default=0) or 1
    bars = []
    for i, k in enumerate(kinds):
        label = k.label
        if len(label) > BAR_LABEL_CHARS:
            label = label[:BAR_LABEL_CHARS - 1] + "…"
        bars.append(Bar(y=6 + i * BAR_ROW_HEIGHT, width=BAR_MAX_WIDTH * k.open / top,
                        label=label, full_label=f"{k.label} / {k.kind}", count=k.open))
    return BarChart(width=BAR_LABEL_WIDTH + BAR_MAX_WIDTH + 70,
                    height=12 + len(kinds) * BAR_ROW_HEIGHT, label_width=BAR_LABEL_WIDTH,
                    bar_height=BAR_HEIGHT, bars=tuple(bars))


# --- page --------------------------------------------------------------------------------------

def render_conflicts(con: Any, today: dt.date) -> str:
    """The conflict report as one self-contained HTML5 page (also well-formed XML)."""
    total, open_, resolved, objections, last_detected = con.execute(_HEADLINE_SQL).fetchall()[0]
    headline = Headline(total, open_, resolved, objections, last_detected)
    kinds: list[KindLine] = []
    regions: list[RegionLine] = []
    ages: list[AgeLine] = []
    conflicts: list[ConflictLine] = []
    if open_:  # with nothing open the page only shows the headline and says so
        region_name = _region_namer(today)
        kinds = kind_lines(con)
        regions = region_lines(con, region_name)
        ages = age_lines(con, today)
        conflicts = conflict_lines(con, today, region_name)
    return environment().get_template(TEMPLATE_NAME).render(
        today=today,
        headline=headline,
        kinds=kinds,
        chart=bar_chart(kinds),
        regions=regions,
        ages=ages,
        conflicts=conflicts,
        not_shown=open_ - len(conflicts),
        detail_limit=DETAIL_LIMIT,
        unknown_region=UNKNOWN_REGION,
    )


def render_conflict_report(con: Any, out_dir: Path, today: dt.date) -> Path:
    """Read gold.conflicts from `con`, write out_dir/index.html atomically, return its path.

    An empty table is a normal state (nothing contradicts) and gives a page that says so.
    """
    return write_atomically(render_conflicts(con, today), Path(out_dir) / PAGE_NAME)
