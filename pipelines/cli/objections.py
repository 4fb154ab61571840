"""`huiliu objections …`: list, show, export, raise and move data objections (数据异议).

Reads come from the published snapshot (never blocked by a running backflow); raising and moving
an objection write to the warehouse under the writer lock and publish again, so every reader sees
the change at once.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click

from pipelines.cli.common import home_opt, read_published, settings_for

from pipelines.cli.tables import render

LIST_COLS = ("objection_id, provider, resource, record_key, field, rule_id, status, raised_on, "
             "resolve_due, closed_on")


def _filters(provider, resource, status, overdue) -> tuple[str, list]:
    where, params = ["true"], []
    for col, val in (("provider", provider), ("resource", resource), ("status", status)):
        if val:
            where.append(f"{col} = ?")
            params.append(val)
    if overdue:
        from pipelines.governance.objections import overdue_sql

        where.append(overdue_sql())
        params += [overdue, overdue]
    return " AND ".join(where), params


@click.group("objections")
def objections_group() -> None:
    """Data objections: raised automatically for records that fail a rule the provider must fix
    (or by hand), followed through accepted → verifying → corrected | confirmed | rejected."""


def _filter_opts(f):
    f = click.option("--provider", help="Only this provider (PS, CA, CU …).")(f)
    f = click.option("--resource", help="Only this resource.")(f)
    f = click.option("--status", type=click.Choice(["raised", "accepted", "verifying",
                                                    "corrected", "confirmed", "rejected"]))(f)
    f = click.option("--open", "only_open", is_flag=True, help="Only open (disputed) ones.")(f)
    return click.option("--overdue", is_flag=True,
                        help="Only open ones past their deadline (as of the hub's date).")(f)


def _query(s, provider, resource, status, only_open, overdue, cols: str, limit: int | None):
    from pipelines.governance.objections import OPEN

    where, params = _filters(provider, resource, status,
                             s.business_date() if overdue else None)
    if only_open:
        where += f" AND status IN {OPEN}"
    sql = f"SELECT {cols} FROM ops.objections WHERE {where} ORDER BY objection_id"
    if limit:
        sql += f" LIMIT {int(limit)}"
    with read_published(s) as con:
        cur = con.execute(sql, params)
        return [d[0] for d in cur.description], cur.fetchall()


@objections_group.command("list")
@home_opt
@_filter_opts
@click.option("--limit", default=50, show_default=True)
def list_cmd(home, provider, resource, status, only_open, overdue, limit):
    """List objections (published snapshot), newest last."""

    s = settings_for(home)
    headers, rows = _query(s, provider, resource, status, only_open, overdue, LIST_COLS, limit)
    click.echo(render(headers, rows) if rows else "no objections match")

    with read_published(s) as con:
        counts = con.execute("SELECT status, count(*) FROM ops.objections GROUP BY ALL "
                             "ORDER BY ALL").fetchall()
    click.echo("\nall objections: " + (", ".join(f"{k} {v}" for k, v in counts) or "none"))


@objections_group.command("show")
@home_opt
@click.argument("objection_id")
def show_cmd(home, objection_id):
    """One objection with every transition (who, when, why)."""

    with read_published(settings_for(home)) as con:
        cur = con.execute("SELECT * FROM ops.objections WHERE objection_id = ?", [objection_id])
        row = cur.fetchall()
        if not row:
            raise click.ClickException(f"no objection {objection_id!r} (see `huiliu objections "
                                       "list`)")
        for (name, *_), v in zip(cur.description, row[0], strict=True):
            click.echo(f"{name:>14}: {v}")
        events = con.execute("""SELECT on_date, from_status, to_status, actor, reason
            FROM ops.objection_events WHERE objection_id = ? ORDER BY event_at, rowid""",
                             [objection_id]).fetchall()
    click.echo("\n" + render(["date", "from", "to", "by", "why"], events))


@objections_group.command("export")
@home_opt
@_filter_opts
@click.option("--out", type=click.Path(dir_okay=False), help="CSV file (default: stdout).")
def export_cmd(home, provider, resource, status, only_open, overdue, out):
    """Export objections as CSV (UTF-8 with BOM, opens in Excel), e.g. one provider's open ones
    to send with the official letter."""

    s = settings_for(home)
    headers, rows = _query(s, provider, resource, status, only_open, overdue,
                           "objection_id, provider, resource, batch_id, file, line, record_key, "
                           "field, rule_id, reason, status, raised_on, accept_due, resolve_due, "
                           "corrected_key, resolution, closed_on", None)
    fh = open(out, "w", encoding="utf-8-sig", newline="") if out else sys.stdout
    try:
        w = csv.writer(fh)
        w.writerow(headers)
        w.writerows(rows)
    finally:
        if out:
            fh.close()
            click.echo(f"{len(rows)} objection(s) written to {Path(out).resolve()}", err=True)


def _write(home, action):
    from pipelines.catalog.model import catalog
    from pipelines.governance.objections import ObjectionError
    from pipelines.warehouse.publish import publish
    from pipelines.warehouse.writer import ensure_schema, writer

    s = settings_for(home)
    try:
        with writer(s.warehouse_path) as con:
            ensure_schema(con, catalog())
            con.execute("BEGIN TRANSACTION")
            try:
                out = action(con, s)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
    except ObjectionError as e:
        raise click.ClickException(str(e)) from e
    publish(s)
    return out


@objections_group.command("move")
@home_opt
@click.argument("objection_id")
@click.option("--to", "to_status", required=True,
              type=click.Choice(["accepted", "verifying", "corrected", "confirmed", "rejected"]))
@click.option("--reason", required=True, help="Why (logged with the transition).")
@click.option("--actor", required=True, help="Who (name or department), logged.")
def move_cmd(home, objection_id, to_status, reason, actor):
    """Move an objection to its next state (e.g. a provider's answer received by letter)."""
    from pipelines.governance.objections import transition

    frm = _write(home, lambda con, s: transition(con, objection_id, to_status, actor, reason,
                                                today=s.business_date()))
    click.echo(f"{objection_id}: {frm} → {to_status}")


@objections_group.command("raise")
@home_opt
@click.option("--resource", required=True)
@click.option("--key", "record_key", required=True, help="The record's key ('|' between parts).")
@click.option("--field", help="The field objected to.")
@click.option("--reason", required=True, help="What is wrong, for the provider to act on.")
@click.option("--actor", required=True, help="Who raises it (logged).")
def raise_cmd(home, resource, record_key, field, reason, actor):
    """Raise an objection by hand (e.g. a citizen says a prefilled value is wrong)."""
    from pipelines.catalog.model import catalog
    from pipelines.governance.objections import raise_manual

    oid = _write(home, lambda con, s: raise_manual(con, catalog(), resource, record_key, field,
                                                   reason, actor, today=s.business_date()))
    click.echo(f"raised {oid}; it is sent to the provider with the next backflow run")
