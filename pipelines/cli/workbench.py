"""`huiliu analysts …`, `huiliu workbench serve|build`, `huiliu sql`, `huiliu audit queries`: the
analysts' credentials, the workbench service and its tiers, a terminal client, and governance
staff's view of analyst activity."""

from __future__ import annotations

import os
from pathlib import Path

import click

from pipelines import paths
from pipelines.cli.common import home_opt, settings_for

CREDENTIAL_ENV = "HUILIU_ANALYST_CREDENTIAL"
DEFAULT_URL = "http://127.0.0.1:8090"


def _workbench_dir(home) -> Path:
    from pipelines.workbench.tiers import workbench_dir

    return workbench_dir(settings_for(home).home)


@click.group("analysts")
def analysts_group() -> None:
    """Analysts' workbench credentials (stored only as scrypt hashes) and grants."""


@analysts_group.command("issue")
@home_opt
@click.argument("analyst")
@click.option("--department", required=True, help="Consumer code of the list, e.g. SJJ.")
@click.option("--tier", "tiers", multiple=True, default=["statistical"], show_default=True,
              type=click.Choice(["statistical", "identified"]))
@click.option("--purpose", "purposes", multiple=True, default=["ANALYTICS"], show_default=True,
              help="Purposes of the list the analyst may state (repeat for several).")
def issue_cmd(home, analyst, department, tiers, purposes):
    """Grant an analyst tiers and purposes for a department and print a new credential (shown
    once). An identified tier is built for the current snapshot at once."""
    from pipelines.catalog.model import load_catalog
    from pipelines.workbench.analysts import Analysts, GrantError
    from pipelines.workbench.tier_plan import TierRefused
    from pipelines.workbench.tiers import add_tier, current_tiers

    cat = load_catalog()
    a = Analysts(_workbench_dir(home))
    try:
        token = a.issue(cat, analyst, department, list(tiers), list(purposes))
    except GrantError as e:
        raise click.ClickException(str(e)) from None
    finally:
        a.close()
    home_dir = settings_for(home).home
    if "identified" in tiers and current_tiers(home_dir) is not None:
        for p in purposes:
            try:
                add_tier(cat, home_dir, "identified", department, p)
            except TierRefused as e:
                click.echo(f"note: {e}", err=True)
    click.echo(token)


@analysts_group.command("rotate")
@home_opt
@click.argument("analyst")
def rotate_cmd(home, analyst):
    """A new credential; the analyst's old ones stop working."""
    from pipelines.workbench.analysts import Analysts, GrantError

    a = Analysts(_workbench_dir(home))
    try:
        click.echo(a.rotate(analyst))
    except GrantError as e:
        raise click.ClickException(str(e)) from None
    finally:
        a.close()


@analysts_group.command("revoke")
@home_opt
@click.argument("analyst")
def revoke_cmd(home, analyst):
    """Revoke the analyst: credentials and open sessions stop working at the next request."""
    from pipelines.workbench.analysts import Analysts

    a = Analysts(_workbench_dir(home))
    try:
        n = a.revoke(analyst)
    finally:
        a.close()
    click.echo(f"revoked {analyst} ({n} credential{'s' if n != 1 else ''})")


@analysts_group.command("list")
@home_opt
def list_cmd(home):
    """Analysts, their department, tiers and purposes."""
    from pipelines.cli.tables import render
    from pipelines.workbench.analysts import Analysts

    a = Analysts(_workbench_dir(home))
    try:
        rows = [(x.analyst, x.department, ",".join(x.tiers), ",".join(x.purposes),
                 "active" if x.active else "revoked") for x in a.all()]
    finally:
        a.close()
    click.echo(render(["analyst", "department", "tiers", "purposes", "state"], rows)
               if rows else "no analysts yet: `huiliu analysts issue NAME --department SJJ`")


@click.group("workbench")
def workbench_group() -> None:
    """The analysts' SQL workbench: its service and its tiers."""


@workbench_group.command("serve")
@home_opt
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True)
def serve_cmd(home, host, port):
    """Run the workbench (page at /workbench, API at /api); builds the tiers if there are none."""
    import uvicorn

    from pipelines.serving.audit import AUDIT_LOG, check_setup
    from pipelines.workbench.pseudonym import pseudonym_key
    from pipelines.workbench.tiers import current_tiers

    s = settings_for(home)
    check_setup(s.home / "serving" / AUDIT_LOG)
    pseudonym_key()  # refused now, not at the first login
    if current_tiers(s.home) is None:
        _build(s)
    os.environ["HUILIU_HOME"] = str(s.home)
    uvicorn.run(paths.WORKBENCH_APP, factory=True, host=host, port=port, log_level="warning",
                access_log=False)


@workbench_group.command("build")
@home_opt
def build_cmd(home):
    """Build the analysts' tiers of the published snapshot now (the pipeline does it after
    every publish)."""
    tiers = _build(settings_for(home))
    click.echo(f"tiers built: {tiers.directory} ({len(set(tiers.files.values()))} files for "
               f"{len(tiers.files)} grants)")


def _build(s):
    from pipelines.catalog.model import load_catalog
    from pipelines.workbench.tiers import build_tiers

    if not s.published_current.exists():
        raise click.ClickException("nothing published yet: run `huiliu backflow` or "
                                   "`huiliu demo` first")
    return build_tiers(load_catalog(), s.published_current.resolve(), s.home)


@click.command("sql")
@click.option("--url", default=DEFAULT_URL, show_default=True, envvar="HUILIU_WORKBENCH_URL",
              help="The workbench service.")
@click.option("--credential", envvar=CREDENTIAL_ENV, help=f"Your analyst credential "
              f"(default ${CREDENTIAL_ENV}; asked for when unset).")
@click.option("--purpose", default="ANALYTICS", show_default=True)
@click.option("--tier", type=click.Choice(["statistical", "identified"]), default=None,
              help="Default: statistical for ANALYTICS, identified otherwise.")
@click.option("-e", "--execute", "sql", help="Run this SQL and exit (else: interactive).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "parquet"]),
              default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the result here (parquet needs it).")
def sql_cmd(url, credential, purpose, tier, sql, fmt, output):
    """SQL on your tier through the workbench, under the same rules as the page: checked, time
    limited, audited. One-shot with -e, else a prompt (end a statement with ';', quit with \\q)."""
    from pipelines.cli.tables import render
    from pipelines.workbench.client import ClientError, WorkbenchClient

    credential = credential or click.prompt("analyst credential", hide_input=True)
    try:
        with WorkbenchClient(url, credential, purpose, tier, render) as client:
            if sql is not None:
                ok = client.run_and_print(sql, fmt, output, click.echo)
                raise SystemExit(0 if ok else 1)
            click.echo(f"{client.who}; end a statement with ';', \\q to quit")
            client.interactive(click.echo)
    except ClientError as e:
        raise click.ClickException(str(e)) from None


@click.command("queries")
@home_opt
@click.option("--analyst")
@click.option("--table", help="schema.table, e.g. cur.ps_pop_basic")
@click.option("--column", help="schema.table.column, e.g. cur.ps_pop_basic.XM")
@click.option("--limit", default=50, show_default=True)
def audit_queries_cmd(home, analyst, table, column, limit):
    """Analyst activity from the audit log: queries (run, refused, timed out, cancelled,
    exported) and logins, newest first, by analyst, table or column."""
    from pipelines.cli.tables import render
    from pipelines.serving.audit import AUDIT_LOG
    from pipelines.workbench.activity import analyst_activity

    path = settings_for(home).home / "serving" / AUDIT_LOG
    rows = analyst_activity(path, analyst=analyst, table=table, column=column, limit=limit)
    if not rows:
        click.echo("no analyst activity matches")
        return
    click.echo(render(["seq", "at", "analyst", "dept", "purpose", "tier", "outcome", "rows",
                       "ms", "tables", "sql"],
                      [(r["seq"], r["at"][:19], r["analyst"], r["department"], r["purpose"],
                        r["tier"], r["outcome"], r["rows"], r["duration_ms"],
                        ",".join(r["tables"]), _one_line(r["sql"])) for r in rows]))


def _one_line(sql: str, width: int = 60) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"

