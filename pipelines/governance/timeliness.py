"""Timeliness: is every provider delivering each resource within its update cycle?

ops.deliveries records what arrived and when (on the hub's business date); periods are derived from
the cycle (day, ISO week, month). For each resource, every period from its first delivery up to the
last one already due is on time, late (arrived after its due date) or missing (nothing yet, due
date past). quality/timeliness.yaml holds the grace per cycle.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field

import yaml

from pipelines import paths
from pipelines.catalog.model import Resource
from pipelines.settings import BEIJING

CONFIG_FILE = paths.QUALITY / "timeliness.yaml"
DDL = """
CREATE TABLE IF NOT EXISTS ops.deliveries (
    resource VARCHAR, provider VARCHAR, period DATE, delivered_through DATE, arrived_on DATE,
    arrived_at TIMESTAMPTZ, batch_id VARCHAR, status VARCHAR);
"""


@functools.cache
def config() -> dict:
    return yaml.safe_load(CONFIG_FILE.read_text(encoding="utf-8"))


def period_start(cycle: str, day: dt.date) -> dt.date:
    match cycle:
        case "daily":
            return day
        case "weekly":
            return day - dt.timedelta(days=day.weekday())
        case "monthly":
            return day.replace(day=1)
    raise ValueError(f"unknown update cycle {cycle!r}")


def period_end(cycle: str, start: dt.date) -> dt.date:
    match cycle:
        case "daily":
            return start
        case "weekly":
            return start + dt.timedelta(days=6)
        case "monthly":
            nxt = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
            return nxt - dt.timedelta(days=1)
    raise ValueError(f"unknown update cycle {cycle!r}")


def next_period(cycle: str, start: dt.date) -> dt.date:
    return period_end(cycle, start) + dt.timedelta(days=1)


def due_on(cycle: str, start: dt.date) -> dt.date:
    return period_end(cycle, start) + dt.timedelta(days=int(config()["cycles"][cycle]["grace_days"]))


@dataclass(frozen=True)
class Delivery:
    """One delivery: a bulk batch (loaded or rejected) or an API pull that reached the feed's end
    (extracted_at None: the feed delivers through the day before the pull). It is written in the
    same transaction as what it reports, so a crash never shows a delivered period as missing."""

    arrived_on: dt.date
    batch_id: str
    status: str
    extracted_at: dt.datetime | None = None


def record_delivery(con, r: Resource, d: Delivery) -> None:
    through = ((d.extracted_at.astimezone(BEIJING).date() if d.extracted_at else d.arrived_on)
               - dt.timedelta(days=1))
    con.execute("INSERT INTO ops.deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [r.code, r.provider, period_start(r.update_cycle, through), through, d.arrived_on,
                 dt.datetime.now(dt.UTC), d.batch_id, d.status])


@dataclass
class Timeliness:
    resource: str
    provider: str
    cycle: str
    on_time: list[dt.date] = field(default_factory=list)  # period starts
    late: list[tuple[dt.date, int]] = field(default_factory=list)  # (period, days late)
    missing: list[tuple[dt.date, dt.date]] = field(default_factory=list)  # (period, due)

    @property
    def expected(self) -> int:
        return len(self.on_time) + len(self.late) + len(self.missing)

    @property
    def on_time_rate(self) -> float | None:
        return len(self.on_time) / self.expected if self.expected else None

    def describe(self) -> str:
        parts = []
        if self.missing:
            p, due = self.missing[0]
            parts.append(f"{len(self.missing)} period(s) not delivered, oldest {p} (due {due})")
        if self.late:
            parts.append(f"{len(self.late)} delivered late (worst {max(d for _, d in self.late)} "
                         f"day(s))")
        return "; ".join(parts) or f"all {self.expected} period(s) on time"


def assess(con, r: Resource, today: dt.date, since: dt.date | None = None) -> Timeliness:
    """Timeliness of `r` for every period from its first delivery (or `since`) due by `today`."""
    cycle = r.update_cycle
    # a batch rejected whole was not delivered: its period counts from the usable redelivery
    first = {p: a for p, a in con.execute("""SELECT period, min(arrived_on) FROM ops.deliveries
        WHERE resource = ? AND status = 'loaded' GROUP BY period""", [r.code]).fetchall()}
    out = Timeliness(r.code, r.provider, cycle)
    if not first:
        return out
    p = max(min(first), period_start(cycle, since)) if since else min(first)
    while p <= today:
        due = due_on(cycle, p)
        arrived = first.get(p)
        if arrived is not None and arrived <= due:
            out.on_time.append(p)
        elif arrived is not None:
            out.late.append((p, (arrived - due).days))
        elif due < today:
            out.missing.append((p, due))
        p = next_period(cycle, p)
    return out
