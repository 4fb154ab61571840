"""How every HTML report shows numbers, shares, dates and missing values, and the report clock.

Counts with thousands separators (12,345); shares as percentages with one decimal, truncated
rather than rounded, so a value shown as 99.5% really is >= 99.5% and 100.0% means every
batch/row, never 99.96%; None (nothing to measure) shows as "—". The templates reach these as
the filters `num`, `pct`, `rate`, `when` and `text` (templates.py).
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from pipelines.settings import BEIJING

NO_VALUE = "—"


def beijing_now() -> dt.datetime:
    """Now, in Beijing time: the time a report says it was generated."""
    return dt.datetime.now(BEIJING)


def clean_share(x: float | None) -> float | None:
    """None and NaN (pandas' missing value) both mean 'not measurable'.

    Values are snapped to 9 decimals so float noise from weighting (0.7999999999999999) neither
    truncates to 79.9% nor drops a share just under a threshold it actually meets.
    """
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return None
    return x if math.isinf(x) else round(x, 9)


def fmt_pct(x: float | None) -> str:
    """0.8 -> '80.0%'; truncated to one decimal (never rounded up to a threshold); None -> '—'."""
    x = clean_share(x)
    if x is None or math.isinf(x):
        return NO_VALUE
    d = (Decimal(repr(x)) * 100).quantize(Decimal("0.1"), rounding=ROUND_FLOOR)
    return f"{d}%"


def fmt_rate(x: float | None) -> str:
    """Like fmt_pct, but a small non-zero rate shows as '<0.1%' rather than a misleading '0.0%'."""
    x = clean_share(x)
    if x is not None and 0 < x < 0.001:
        return "<0.1%"
    return fmt_pct(x)


def fmt_int(n: int | None) -> str:
    """12345 -> '12,345'; None -> '—'."""
    if n is None:
        return NO_VALUE
    return f"{int(n):,}"


def fmt_when(x: dt.date | dt.datetime | None) -> str:
    """Dates as 2026-10-03, timestamps to the second; None -> '—'."""
    if x is None:
        return NO_VALUE
    if isinstance(x, dt.datetime):
        return x.strftime("%Y-%m-%d %H:%M:%S")
    return x.isoformat()


def fmt_text(x: Any) -> str:
    """None (and '') -> '—', so an empty cell is visibly empty rather than blank."""
    return NO_VALUE if x is None or x == "" else str(x)
