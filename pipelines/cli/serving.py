"""`huiliu serve`, `huiliu consumers …`, `huiliu audit verify`, `huiliu serving build`: the prefill
service, its consumers' credentials, its audit log, and its store."""

from __future__ import annotations

import click

from pipelines import paths
from pipelines.cli.common import home_opt, settings_for



def _serving_dir(home):

    return settings_for(home).home / "serving"


@click.command("serve")
@home_opt
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True)
@click.option("--workers", default=1, show_default=True,
              help="Processes (they share one audit chain); at most one per core.")
def serve_cmd(home, host, port, workers):
    """Run the prefill service (builds its store from the published snapshot if there is none)."""
    import os

    import uvicorn

    from pipelines.serving.http.limits import ServiceLimits
    from pipelines.serving.store import CURRENT

    d = _serving_dir(home)
    _audit_ready(d)
    _exchange_ready(home)
    if not (d / CURRENT).exists():
        _build(home)
    if home:
        os.environ["HUILIU_HOME"] = str(d.parent)
    # the workers build the app from the environment (Settings.api_workers): 1/N of the rate each
    os.environ["HUILIU_API_WORKERS"] = str(workers)
    limits = ServiceLimits()
    # the protocol adds the limits uvicorn lacks (head size and time, body size and time,
    # connections): pipelines/serving/http/protocol.py; h11 is not used (its one limit is the head size)
    uvicorn.run(paths.SERVICE_APP, factory=True, host=host, port=port,
                workers=workers, log_level="warning", access_log=False,
                http=paths.SERVICE_HTTP_PROTOCOL,
                timeout_keep_alive=limits.keep_alive_seconds)


def _exchange_ready(home) -> None:
    """A node on the national exchange needs the directory and its own signing key: refused in
    one line, naming what to do, before the service starts."""
    from pipelines.exchange import keys

    s = settings_for(home)
    if s.exchange_directory is None:
        return
    if not s.exchange_directory.is_file():
        raise click.ClickException(f"HUILIU_EXCHANGE_DIRECTORY names {s.exchange_directory}, "
                                   "which does not exist: copy the exchange's directory there")
    try:
        keys.current(s.home)
    except keys.NoKey as e:
        raise click.ClickException(str(e)) from None


def _build(home):
    from pipelines.serving.store import build_store

    s = settings_for(home)
    if not s.published_current.exists():
        raise click.ClickException("nothing published yet: run `huiliu backflow` or "
                                   "`huiliu demo` first")
    return build_store(s.published_current.resolve(), s.home / "serving")


@click.group("serving")
def serving_group() -> None:
    """The prefill service's store."""


@serving_group.command("build")
@home_opt
def build_cmd(home):
    """Export the published golden records into a new serving store and switch to it."""
    click.echo(str(_build(home)))


@click.group("consumers")
def consumers_group() -> None:
    """Credentials of the consumer departments (stored hashed; shown once when issued)."""


def _credentials(home, consumer: str | None = None):
    """The credential store; with `consumer`, first check it is a department of the list."""
    from pipelines.catalog.model import catalog
    from pipelines.serving.credentials import Credentials

    known = {c.code for c in catalog().consumers}
    if consumer is not None and consumer not in known:
        raise click.ClickException(f"unknown consumer {consumer!r}; known: {sorted(known)}")
    return Credentials(_serving_dir(home) / "credentials.sqlite")


@consumers_group.command("issue")
@home_opt
@click.argument("consumer")
def issue_cmd(home, consumer):
    """Issue a new credential for CONSUMER (a department of catalogs/consumers.yaml)."""
    click.echo(_credentials(home, consumer).issue(consumer))


@consumers_group.command("rotate")
@home_opt
@click.argument("consumer")
def rotate_cmd(home, consumer):
    """Issue a new credential and revoke the consumer's others."""
    click.echo(_credentials(home, consumer).rotate(consumer))


@consumers_group.command("revoke")
@home_opt
@click.argument("consumer")
@click.option("--key-id", help="Only this key (default: all of the consumer's keys).")
def revoke_cmd(home, consumer, key_id):
    click.echo(f"revoked {_credentials(home).revoke(consumer, key_id)} key(s)")


@consumers_group.command("list")
@home_opt
def list_cmd(home):
    from pipelines.cli.tables import render

    click.echo(render(["consumer", "key_id", "issued_at", "revoked_at"],
                      _credentials(home).list()))


@click.group("audit")
def audit_group() -> None:
    """The hub's MAC-chained audit log: prefill answers, workbench queries and logins."""


@audit_group.command("verify")
@home_opt
@click.option("--anchor", type=click.Path(dir_okay=False),
              help="The anchor file to check against (default $HUILIU_AUDIT_ANCHOR).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False),
              help="Another log than the hub's own (the national exchange's: "
                   "<its home>/exchange/audit.jsonl).")
def verify_cmd(home, anchor, log_path):
    """Check every entry's MAC, the chain, the head and the anchor; exit 1 naming each place
    the log was altered. Needs HUILIU_AUDIT_KEY (the key the log was started with)."""
    from pathlib import Path

    from pipelines.serving.audit import AUDIT_LOG, keyed_from, tampering

    path = Path(log_path) if log_path else _serving_dir(home) / AUDIT_LOG
    problems = tampering(path, anchor=Path(anchor) if anchor else None)
    if not path.exists() and not problems:
        raise click.ClickException(f"no audit log at {path}")
    if not problems:
        click.echo(f"audit log intact: {path}")
        if (first := keyed_from(path)) and first > 1:
            click.echo(f"entries 1–{first - 1} predate the keyed chain (unkeyed SHA-256, "
                       f"written by an earlier version): entry {first}'s MAC covers them")
        return
    for p in problems:
        where = f"entry {p.seq}" if p.seq is not None else "log"
        click.echo(f"{where}: {p.kind} — {p.detail}")
    raise SystemExit(1)


def _audit_ready(serving_dir) -> None:
    """Refuses (one line) a missing, short, published or changed HUILIU_AUDIT_KEY and a missing
    anchor before the service starts anything."""
    from pipelines.serving.audit import AUDIT_LOG, check_setup

    check_setup(serving_dir / AUDIT_LOG)


@audit_group.command("alerts")
@home_opt
def alerts_cmd(home):
    """Alerts for governance staff (a consumer enumerating a value by repeated checks) and a
    count of the requests the service refused, from the refusal log (refusals.jsonl)."""
    from pipelines.serving.http.refusals import REFUSALS_LOG, read
    from pipelines.cli.tables import render

    path = _serving_dir(home) / REFUSALS_LOG
    lines = read(path)
    alerts = [x for x in lines if x.get("kind") == "alert"]
    refused: dict[tuple, int] = {}
    for x in lines:
        if x.get("kind") == "refused":
            key = (x["status"], x["code"])
            refused[key] = refused.get(key, 0) + x["count"]
    if alerts:
        click.echo(render(["at", "alert", "consumer", "check", "case_id", "subject (audit hash)"],
                          [(a["at"], a["alert"], a.get("consumer"), a.get("check"),
                            a.get("case_id"), a.get("subject", "")[:16])
                           for a in alerts]))
    else:
        click.echo(f"no alerts in {path}")
    if refused:
        click.echo("refused requests: " + ", ".join(
            f"{status} {code} × {n}" for (status, code), n in sorted(refused.items())))
