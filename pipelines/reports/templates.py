"""The one Jinja2 environment every HTML report renders with: autoescaped (every value from the
data is escaped), strict about undefined names (a typo in a template fails the render instead of
printing nothing), with the shared formatting as filters."""

from __future__ import annotations

import functools

import jinja2

from pipelines import paths
from pipelines.reports.formatting import fmt_int, fmt_pct, fmt_rate, fmt_text, fmt_when

TEMPLATE_DIR = paths.HTML_TEMPLATES
FILTERS = {"num": fmt_int, "pct": fmt_pct, "rate": fmt_rate, "when": fmt_when, "text": fmt_text}


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    return env
