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
