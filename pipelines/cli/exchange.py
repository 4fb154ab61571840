"""`huiliu exchange keygen|entry`: this node's keys for the national exchange, and the entry the
exchange's operator adds to its directory (public keys and services only)."""

from __future__ import annotations

import click

from pipelines.cli.common import home_opt, settings_for


@click.group("exchange")
def exchange_group() -> None:
    """This node on the national exchange (全国通办): its signing keys and directory entry."""


@exchange_group.command("keygen")
@home_opt
@click.option("--suite", "suite_name", type=click.Choice(["ed25519-sha256", "sm2-sm3"]),
              default="ed25519-sha256", show_default=True)
def keygen_cmd(home, suite_name):
    """Make a new signing key and make it current (earlier keys are kept for verification)."""
    from pipelines.catalog.model import load_catalog
    from pipelines.exchange import keys

    signer = keys.generate(settings_for(home).home, load_catalog().node.code, suite_name)
    click.echo(f"new {signer.suite} key {signer.key_id} (current); publish it with "
               "`huiliu exchange entry`")


@exchange_group.command("entry")
@home_opt
@click.option("--endpoint", required=True, help="Where this node answers the exchange.")
def entry_cmd(home, endpoint):
    """Print this node's directory entry (JSON): code, name, endpoint, public keys, services."""
    from pipelines.catalog.model import load_catalog
    from pipelines.exchange.directory import Directory
    from pipelines.exchange.member_entry import member_entry

    d = Directory()
    d.add(member_entry(load_catalog(), settings_for(home).home, endpoint))
    click.echo(d.dumps().decode())


@exchange_group.command("serve")
@home_opt
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True)
def serve_cmd(home, host, port):
    """Run the national exchange (directory from HUILIU_EXCHANGE_DIRECTORY, its stamping key and
    audit log under --home)."""
    import os

    import uvicorn

    from pipelines import paths
    from pipelines.exchange import keys
    from pipelines.serving.audit import check_setup

    s = settings_for(home)
    if s.exchange_directory is None or not s.exchange_directory.is_file():
        raise click.ClickException("HUILIU_EXCHANGE_DIRECTORY must name the members' directory "
                                   "(a JSON file of `huiliu exchange entry` entries)")
    keys.current(s.home)  # refused now, with the command that makes one, rather than later
    check_setup(s.home / "exchange" / "audit.jsonl")
    os.environ["HUILIU_HOME"] = str(s.home)
    uvicorn.run(paths.EXCHANGE_APP, factory=True, host=host, port=port, log_level="warning",
                access_log=False)


@exchange_group.command("pairs")
@click.option("--exchange-log", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--node", "nodes", multiple=True, required=True, metavar="CODE=AUDIT_LOG",
              help="A node's code and its audit log; repeat for each node.")
def pairs_cmd(exchange_log, nodes):
    """Check that every exchange is in the requester's, the exchange's and the answerer's logs
    with the same request and answer digests; exit 1 naming each that is not."""
    from pathlib import Path

    from pipelines.exchange.pairing import pair

    logs = {}
    for item in nodes:
        code, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise click.ClickException(f"--node {item}: give CODE=PATH of an audit log")
        logs[code] = Path(path)
    paired, problems = pair(Path(exchange_log), logs)
    for p in problems:
        click.echo(f"{p.request_id}: {p.problem}")
    click.echo(f"{paired} exchanges paired across {len(logs) + 1} logs; "
               f"{len(problems)} problems")
    raise SystemExit(1 if problems else 0)
