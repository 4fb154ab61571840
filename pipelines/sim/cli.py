"""Command line: `huiliu sim serve|advance|status|truth` (also `python -m pipelines.sim ...`)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path

import click

DEFAULT_URL = "http://127.0.0.1:8765"


@click.group(name="sim")
def sim() -> None:
    """National-platform simulator: a deterministic synthetic world delivered as bulk drops and an
    HTTP API."""


@sim.command()
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--scale", default=20000, show_default=True, type=int,
              help="Persons in the whole world (all regions).")
@click.option("--node", default="500000", show_default=True, help="Node the drops are written for.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--drop-root", default="./data/drops", show_default=True, type=click.Path())
@click.option("--state-dir", default="./data/sim", show_default=True, type=click.Path())
@click.option("--start-date", default="2026-10-01", show_default=True, help="Day 0 (YYYY-MM-DD).")
@click.option("--part-rows", default=200_000, show_default=True, type=int)
@click.option("--token-ttl", default=300, show_default=True, type=int, help="Seconds.")
@click.option("--rate-limit", default=200.0, show_default=True, type=float,
              help="Requests per second per client.")
@click.option("--defect-profile", default="default", show_default=True,
              type=click.Choice(["default", "none"]))
@click.option("--faults", "faults_json", default=None, help='JSON, e.g. \'{"http_5xx": 0.05}\'.')
@click.option("--defects", "defects_json", default=None,
              help='JSON rates on top of the profile, e.g. \'{"bad_value": 0.01}\' (day 0 too).')
@click.option("--activity", default=1.0, show_default=True, type=float,
              help="Multiplier on every daily event rate (livelier small worlds).")
@click.option("--objection-correct-rate", default=0.7, show_default=True, type=float,
              help="Share of data objections the provider corrects (re-delivers the record).")
@click.option("--objection-confirm-rate", default=0.1, show_default=True, type=float,
              help="Share of data objections the provider answers 'confirmed' (data was right).")
@click.option("--objection-delay-days-max", default=2, show_default=True, type=int,
              help="A decision takes effect 1..N advanced days after receipt (uniform).")
def serve(seed, scale, node, host, port, drop_root, state_dir, start_date, part_rows, token_ttl,
          rate_limit, defect_profile, faults_json, defects_json, activity, objection_correct_rate,
          objection_confirm_rate, objection_delay_days_max) -> None:
    """Build the world, write day-0 deliveries, then serve the API until interrupted."""
    from pipelines.sim.config import SimConfig
    from pipelines.sim.server import serve as run

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        faults = json.loads(faults_json) if faults_json else {}
        defects = json.loads(defects_json) if defects_json else {}
        if not isinstance(faults, dict) or not isinstance(defects, dict):
            raise ValueError("--faults and --defects must be JSON objects")
        cfg = SimConfig.with_profile(
            defect_profile, seed=seed, scale=scale, node=node,
            start_date=dt.date.fromisoformat(start_date), drop_root=Path(drop_root),
            state_dir=Path(state_dir), part_rows=part_rows, token_ttl=token_ttl,
            rate_limit=rate_limit, activity=activity,
            objection_correct_rate=objection_correct_rate,
            objection_confirm_rate=objection_confirm_rate,
            objection_delay_days_max=objection_delay_days_max)
        from pipelines.sim.config import update_rates
        cfg.faults = update_rates(cfg.faults, faults, "fault")
        cfg.defects = update_rates(cfg.defects, defects, "defect")
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    run(cfg, host=host, port=port)


def _call(method: str, url: str, path: str, **kw) -> dict:
    import httpx

    r = httpx.request(method, url.rstrip("/") + path, timeout=600, **kw)
    r.raise_for_status()
    return r.json()


@sim.command()
@click.option("--days", default=1, show_default=True, type=int)
@click.option("--url", default=DEFAULT_URL, show_default=True)
def advance(days: int, url: str) -> None:
    """Advance the simulated calendar by N days."""
    click.echo(json.dumps(_call("POST", url, "/admin/advance", params={"days": days})))


@sim.command()
@click.option("--url", default=DEFAULT_URL, show_default=True)
def status(url: str) -> None:
    """Current day, date, seed, scale, node, feed lengths and objection counts."""
    click.echo(json.dumps(_call("GET", url, "/admin/status"), ensure_ascii=False, indent=1))


@sim.command()
@click.option("--url", default=DEFAULT_URL, show_default=True)
def truth(url: str) -> None:
    """Write ground truth (Parquet) under <state_dir>/truth and print the folder."""
    click.echo(_call("POST", url, "/admin/truth")["dir"])
