"""`huiliu identity …`: run a reconcile outside the scheduled job, train the linking model, and
look up an entity's golden record with the provenance of every value."""

from __future__ import annotations

import json

import click

from pipelines.cli.common import home_opt, read_published, settings_for

from pipelines.cli.tables import render



@click.group("identity")
def identity_group() -> None:
    """Persons and enterprises across providers: entities, golden records, conflicts."""


@identity_group.command("reconcile")
@home_opt
def reconcile_cmd(home):
    """Link, update the entity registry, rebuild golden records and conflicts; then publish."""
    from pipelines.catalog.model import catalog
    from pipelines.identity.reconcile import reconcile
    from pipelines.warehouse.publish import publish
    from pipelines.warehouse.writer import ensure_schema, writer

    s, cat = settings_for(home), catalog()
    with writer(s.warehouse_path) as con:
        ensure_schema(con, cat)
        res = reconcile(con, cat, s.business_date(), s.reports_dir / "conflicts")
    publish(s)
    click.echo(json.dumps(res, ensure_ascii=False, indent=1, default=str))


@identity_group.command("train")
@home_opt
@click.option("--out", type=click.Path(), help="Model file (default: the versioned one in "
                                               "catalogs/identity/person_model.json).")
def train_cmd(home, out):
    """Learn the model's u probabilities from this warehouse's records (offline; commit the file)."""
    from pathlib import Path
    from pipelines.identity.person_model import MODEL
    from pipelines.identity.train import train

    with read_published(settings_for(home)) as con:
        click.echo(json.dumps(train(con, Path(out) if out else MODEL)))


@identity_group.command("show")
@home_opt
@click.argument("entity_or_key")
@click.option("--all", "show_all", is_flag=True, help="Also the losing candidates.")
def show_cmd(home, entity_or_key, show_all):
    """An entity's golden record (by entity id, citizen ID or USCC), every value's provenance."""

    with read_published(settings_for(home)) as con:
        found = con.execute("""SELECT entity_id FROM ident.registry
            WHERE entity_id = ? OR unit IN ('1:' || upper(?), 'uscc:' || upper(?)) LIMIT 1""",
                            [entity_or_key] * 3).fetchall()
        if not found:
            raise click.ClickException(f"no entity {entity_or_key!r}: give an entity id (HLP…, "
                                       "HLE…), an 18-digit citizen ID or a USCC")
        cur = con.execute(f"""SELECT field, value, rank, rule, provider, resource, record_key,
                CAST(as_of AS VARCHAR) AS as_of, round(confidence, 4) AS confidence,
                disputed, in_conflict
            FROM gold.field_values WHERE entity_id = ? AND valid_to IS NULL
            {'' if show_all else 'AND rank = 1'} ORDER BY field, rank""", [found[0][0]])
        click.echo(f"entity {found[0][0]}\n" + render([d[0] for d in cur.description],
                                                       cur.fetchall()))
