"""A readable HTML report for every contract validation (what GX Data Docs would show, offline and
bilingual): each rule with its expectation, counts, threshold and verdict, and failing examples.

Written to <home>/reports/validations/<RESOURCE>/<batch_id>.html by the load, also for a blocked
batch (the report says why it was blocked).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.reports.files import write_atomically
from pipelines.reports.formatting import beijing_now
from pipelines.reports.templates import environment

TEMPLATE_NAME = "validation.html.j2"
EXAMPLES_PER_RULE = 5


@dataclass(frozen=True)
class RuleLine:
    rule_id: str
    family: str
    expectation: str
    severity: str
    checked: int
    failed: int
    fail_rate: str
    allowed: str
    blocked: bool
    reason: str


@dataclass(frozen=True)
class Example:
    rule_id: str
    file: str | None
    line: int | None
    record_key: str | None
    value: str | None


@dataclass(frozen=True)
class Validation:
    resource: str
    resource_name: str
    provider: str
    batch_id: str
    mode: str
    rows: int
    validated_at: str
    gx_version: str
    results: tuple[RuleLine, ...]
    examples: tuple[Example, ...]
    examples_per_rule: int = EXAMPLES_PER_RULE

    @property
    def blocked(self) -> bool:
        return any(r.blocked for r in self.results)

    @property
    def failing(self) -> list[RuleLine]:
        return [r for r in self.results if r.failed]


def rule_lines(results) -> tuple[RuleLine, ...]:
    """From contracts.validate.RuleResult: failing rules first, blocked ones at the top."""
    out = []
    for x in sorted(results, key=lambda x: (not x.blocks_batch, not x.failed, x.rule.rule_id)):
        r = x.rule
        if r.row_level:
            rate = f"{x.failed / x.checked:.3%}" if x.checked else "—"
            allowed = (f"{r.max_fail_rate:.1%}" + (f" (≥{r.min_rows:,} rows)" if r.min_rows else "")
                       if r.severity == "error" else "warn")
        else:
            rate = f"{x.observed:,} rows" if x.observed is not None else "—"
            allowed = f"{r.min_count or 0:,}..{r.max_count:,}" if r.max_count else \
                f"≥ {r.min_count or 0:,}"
        out.append(RuleLine(r.rule_id, r.family, x.expectation, r.severity, x.checked, x.failed,
                            rate, allowed, x.blocks_batch, f"{r.reason_zh} / {r.reason_en}"))
    return tuple(out)


def write_validation(v: Validation, out_dir: Path) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in v.batch_id)
    page = environment().get_template(TEMPLATE_NAME).render(v=v)
    return write_atomically(page, out_dir / v.resource / f"{safe}.html")


def now_text() -> str:
    """When the validation ran, in Beijing time to the second (the page's validated_at)."""
    return beijing_now().strftime("%Y-%m-%d %H:%M:%S %z")
