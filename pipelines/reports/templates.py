"""The Jinja2 environment every HTML report renders with: autoescaped, strict about undefined
names (a typo in a template fails the render instead of printing nothing)."""

from __future__ import annotations

from collections.abc import Callable

import jinja2

from pipelines import paths

TEMPLATE_DIR = paths.HTML_TEMPLATES


def environment(filters: dict[str, Callable]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(filters)
    return env
