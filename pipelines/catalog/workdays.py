"""Working days on China's official calendar (holidays and make-up workdays 调休), via the
`chinesecalendar` package. Objection deadlines count these days, never calendar days.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging

import chinese_calendar

log = logging.getLogger(__name__)


@functools.cache
def _warn_beyond(year: int) -> None:
    log.warning("chinesecalendar %s has no official calendar for %d: counting Monday-Friday "
                "as working days (update the pinned package when the State Council publishes it)",
                chinese_calendar.__version__, year)


def is_workday(day: dt.date) -> bool:
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:  # year not published yet
        _warn_beyond(day.year)
        return day.weekday() < 5


def add_workdays(start: dt.date, n: int) -> dt.date:
    """The n-th working day after `start` (start itself not counted): a deadline of n working days
    for something that happened on `start`."""
    if n < 0:
        raise ValueError("n must be >= 0")
    day = start
    while n > 0:
        day += dt.timedelta(days=1)
        if is_workday(day):
            n -= 1
    return day


def workdays_between(start: dt.date, end: dt.date) -> int:
    """Working days after `start` up to and including `end` (0 when end <= start)."""
    n, day = 0, start
    while day < end:
        day += dt.timedelta(days=1)
        n += is_workday(day)
    return n
