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


@exchange_group.command("crosscheck")
@home_opt
@click.option("--publish/--no-publish", default=True, show_default=True,
              help="Publish a new snapshot afterwards, so the conflicts show at once.")
def crosscheck_cmd(home, publish):
    """Reconciliation across regions: ask the other node about every person whose hukou move
    crosses between it and this node; record contradictions (registered in two nodes, dead in
    one and alive in the other) with both nodes' provenance, and raise an objection where this
    node's provider must act."""
    from pipelines.catalog.model import catalog
    from pipelines.cli.common import read_published
    from pipelines.exchange import crosscheck
    from pipelines.exchange.requesting import RemoteNodes
    from pipelines.warehouse.publish import publish as publish_snapshot
    from pipelines.warehouse.writer import writer

    s = settings_for(home)
    cat = catalog()
    remote = RemoteNodes.from_settings(s, cat.node.code)
    if remote is None:
        raise click.ClickException("HUILIU_EXCHANGE_DIRECTORY is not set: this node is not on "
                                   "the national exchange")
    today = s.business_date()
    with read_published(s) as con:
        people = crosscheck.movers(con, cat.node.code, list(remote.directory.get().members))
    answers = crosscheck.ask(remote, people, today)
    with writer(s.warehouse_path) as con:
        out = crosscheck.record(con, cat, answers, today)
    click.echo(f"{out.asked} persons moved between this node and another: {out.answered} "
               "answered" + "".join(f", {n} {r}" for r, n in sorted(out.unavailable.items())))
    kinds: dict[str, int] = {}
    for c in out.conflicts:
        kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
    raised = sum(1 for c in out.conflicts if c["objection_id"])
    click.echo("contradictions: " + (", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
                                      or "none") + f"; objections to this node's PS: {raised}"
               " (the rest are the other node's to act on: ops.cross_node_conflicts)")
    if publish:
        click.echo(f"published {publish_snapshot(s)}")
