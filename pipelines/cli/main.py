"""`huiliu`: the command line for everything a data engineer does by hand."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
from pathlib import Path

import click
import duckdb

from pipelines import paths
from pipelines.file_modes import restrict_new_files
from pipelines.cli.common import home_opt, read_published, settings_for
from pipelines.cli.tables import render
from pipelines.cli.identity import identity_group
from pipelines.cli.objections import objections_group
from pipelines.cli.serving import (
    audit_group,
    consumers_group,
    serve_cmd,
    serving_group,
)
from pipelines.cli.exchange import exchange_group
from pipelines.cli.workbench import analysts_group, audit_queries_cmd, sql_cmd, workbench_group
from pipelines.sim.cli import sim as sim_group


LATE_DROP_SHARE = 0.3  # demo: share of bulk drops the simulator delivers a day late


class HubGroup(click.Group):
    """Expected failures (a full disk, a platform that does not answer, a home that is a file)
    end a command with one line and exit 2; `-v` shows the traceback as well."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as e:
            from pipelines.cli.failures import EXPECTED, one_line  # only when something failed

            if not isinstance(e, EXPECTED) or (ctx.obj and ctx.obj.get("verbose")):
                raise
            click.echo(f"huiliu: {one_line(e)}", err=True)
            sys.exit(2)


@click.group(cls=HubGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr; tracebacks too.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Huiliu (回流): backflow of national government data into this local node.

    Configuration comes from HUILIU_* environment variables (see .env.example).
    """
    ctx.obj = {"verbose": verbose}
    configure_logging(verbose)
    restrict_new_files()  # what the hub writes is not readable by other accounts


def configure_logging(verbose: bool) -> None:
    """Without -v: the hub's own warnings and errors only. Libraries that set their loggers to
    INFO themselves (Great Expectations, Splink) or warn on every retry (urllib3) stay quiet: the
    handler filters by level, and their records are let through only from ERROR up."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.setLevel(logging.WARNING)
        handler.addFilter(lambda r: r.name.startswith("pipelines") or r.levelno >= logging.ERROR)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler],
                        force=True)




@main.command()
@home_opt
@click.option("--drop-root", type=click.Path(file_okay=False, exists=True),
              help="Bulk drop folder to ingest (default $HUILIU_DROP_ROOT or <home>/drops).")
@click.option("--api-url", help="National platform API base URL (default $HUILIU_API_URL).")
@click.option("--resource", "resources", multiple=True,
              help="Only these resources (repeatable). Default: every resource.")
@click.option("--bulk-only", is_flag=True, help="Only ingest bulk drops; do not call the API.")
@click.option("--no-publish", is_flag=True, help="Do not publish a reader snapshot afterwards.")
def backflow(home, drop_root, api_url, resources, bulk_only, no_publish):
    """Run backflow once, directly (no Dagster run): ingest every complete drop batch not ingested
    before and pull every API feed to its end, then publish what loaded. A resource whose source
    fails (platform unreachable, drop root missing, disk full) does not stop the others. Exits 1
    naming every rejected batch and every failed resource."""
    from pipelines import backflow as bf
    from pipelines.catalog.model import catalog
    from pipelines.cli.failures import EXPECTED, one_line
    from pipelines.warehouse.publish import publish

    s = settings_for(home, drop_root, api_url)
    cat = catalog()
    chosen = [cat.resource(r) for r in resources] or list(cat.resources.values())
    if bulk_only:
        chosen = [r for r in chosen if r.delivery == "bulk"]
    rows, rejected, failed = [], [], {}  # failed: one line -> the resources it stopped
    for r in chosen:
        try:
            run = bf.run_resource(s, cat, r)
        except EXPECTED as e:
            failed.setdefault(one_line(e), []).append(r.code)
            continue
        m = run.as_metadata()
        rows.append((r.code, m["batches_loaded"], m["batches_skipped"], m["received"],
                     m["staged"], m["quarantined"], m["superseded"], m["incidents"],
                     m["batches_rejected"]))
        rejected += [(r.code, b, msg) for b, msg in run.rejected]
        if run.failed:
            failed.setdefault(run.failed, []).append(r.code)
    if rows:
        click.echo(render(["resource", "loaded", "skipped", "received", "staged", "quarantined",
                           "superseded", "incidents", "rejected"], rows))
    if not no_publish and rows:
        try:
            click.echo(f"published: {publish(s)}")
        except EXPECTED as e:
            failed.setdefault(one_line(e), []).append("publish")
    if rejected:
        click.echo("\nRejected batches (nothing of them was loaded; they are taken again when the "
                   "provider redelivers the same batch id):", err=True)
        for code, b, msg in rejected:
            click.echo(f"  {code}/{b}: {msg}", err=True)
    if failed:
        click.echo("\nFailed (what loaded before the failure is kept; run again once fixed):",
                   err=True)
        for msg, codes in failed.items():
            click.echo(f"  {', '.join(codes)}: {msg}", err=True)
    if rejected or failed:
        sys.exit(1)


@main.command("run")
@home_opt
@click.option("--job", default="backflow_all", show_default=True)
@click.option("--executor", type=click.Choice(["in_process", "multiprocess"]),
              default="in_process", show_default=True,
              help="in_process starts in a second; multiprocess runs two steps at once in "
                   "separate processes, as scheduled runs do.")
def run_cmd(home, job, executor):
    """Run a Dagster job as a recorded run on the hub's instance (visible in the UI). Exits 1 when
    a step failed or a check of ERROR severity failed (a batch rejected, a source unreachable)."""
    from pipelines.defs.runner import failed_checks, failure_messages, run_job

    result = run_job(settings_for(home), job, executor)
    for msg in failure_messages(result):
        click.echo(f"FAILED {msg}", err=True)
    for msg in failed_checks(result):
        click.echo(f"CHECK FAILED {msg}", err=True)
    click.echo(f"run {result.run_id}: {'success' if result.success else 'failure'}")
    sys.exit(0 if result.success and not failed_checks(result, errors_only=True) else 1)


def summary_rows(con, sql: str = "summarize_backflow") -> tuple[list[str], list[tuple]]:
    from pipelines.warehouse.sql import load_sql

    cur = con.execute(load_sql(sql))
    return [d[0] for d in cur.description], cur.fetchall()


@main.command()
@home_opt
def status(home):
    """Per resource: batches, rows and where they went, incidents, rejections (published view)."""
    s = settings_for(home)
    with read_published(s) as con:
        headers, rows = summary_rows(con)
        click.echo(render(headers, rows))
        cursors = con.execute("SELECT resource, snapshot_id, updated_at FROM ops.cursors "
                              "ORDER BY resource").fetchall()
    if cursors:
        click.echo("\n" + render(["api resource", "last snapshot", "cursor moved at"], cursors))
    click.echo(f"\npublished snapshot: {s.published_current.resolve()}")


@main.command()
@home_opt
@click.argument("what", type=click.Choice(["batches", "quarantine", "incidents", "rejections"]))
@click.option("--resource", help="Only this resource.")
@click.option("--limit", default=50, show_default=True)
def show(home, what, resource, limit):
    """List recent batches, quarantined rows, incidents or rejected batches."""
    cols = {"batches": "resource, batch_id, status, mode, received, staged, quarantined, "
                       "superseded, incidents, loaded_at",
            "quarantine": "resource, batch_id, file, line, field, reason_code, reason",
            "incidents": "resource, batch_id, kind, field, rows, detail",
            "rejections": "resource, batch_id, code, message, rejected_at"}[what]
    order = {"batches": "seq DESC NULLS FIRST", "quarantine": "quarantined_at DESC, line",
             "incidents": "recorded_at DESC", "rejections": "rejected_at DESC"}[what]
    with read_published(settings_for(home)) as con:
        cur = con.execute(f"SELECT {cols} FROM ops.{what} WHERE ? IS NULL OR resource = ? "
                          f"ORDER BY {order} LIMIT ?", [resource, resource, limit])
        click.echo(render([d[0] for d in cur.description], cur.fetchall()))


@main.command("publish")
@home_opt
def publish_cmd(home):
    """Publish a reader snapshot of the warehouse now."""
    from pipelines.warehouse.publish import publish

    click.echo(publish(settings_for(home)))


@main.command("rebuild")
@home_opt
def rebuild_cmd(home):
    """Rebuild the warehouse from the landing zone (every loaded batch replayed in order), then
    publish. For after a loader fix or a damaged warehouse file; providers are not asked again."""
    from pipelines.catalog.model import catalog as load
    from pipelines.warehouse.publish import publish
    from pipelines.warehouse.rebuild import rebuild

    s = settings_for(home)
    n = rebuild(s.warehouse_path, load())
    click.echo(f"replayed {n} batches from {s.landing}; published {publish(s)}")


@main.group()
def catalog():
    """The responsibility list (catalogs/)."""


@catalog.command("check")
@click.option("--root", type=click.Path(file_okay=False, exists=True), help="Catalogue folder.")
def catalog_check(root):
    """Load and cross-check the catalogue; exit 1 with the file, entry and problem if malformed."""
    from pipelines.catalog.model import CATALOG_DIR, CatalogError, load_catalog

    from pipelines.governance.contracts.rules import ContractError, compile_rules

    try:
        c = load_catalog(Path(root) if root else CATALOG_DIR)
        n_rules = sum(len(compile_rules(c, r)) for r in c.resources.values())  # rule refs valid?
    except (CatalogError, ContractError) as e:
        raise click.ClickException(str(e)) from None
    rows = [(r.code, r.name_zh, r.provider, r.delivery, r.update_cycle, ",".join(r.primary_key),
             len(r.fields), ",".join(r.forbidden_fields)) for r in c.resources.values()]
    click.echo(render(["resource", "name", "provider", "delivery", "cycle", "key", "fields",
                       "not shared"], rows))
    click.echo(f"\ncontracts: {n_rules} rules compiled (quality/contracts.yaml)")


@main.command()
@home_opt
@click.option("--port", default=3000, show_default=True)
def ui(home, port):
    """Start the Dagster web UI (and daemon: schedules, sensors) on 127.0.0.1."""
    from pipelines.sim.process import serve_ui
    from pipelines.defs.runner import export_settings, prepare_dagster_home

    s = settings_for(home)
    export_settings(s)
    prepare_dagster_home(s)
    serve_ui(s, port)


@main.command()
@click.option("--home", default="data/demo", show_default=True,
              help="Demo data folder (wiped at start).")
@click.option("--scale", default=20_000, show_default=True, help="Persons in the simulated world.")
@click.option("--days", default=3, show_default=True, help="Simulated days of increments.")
@click.option("--seed", default=42, show_default=True)
@click.option("--serve/--no-serve", default=True, help="Start the Dagster UI afterwards.")
@click.option("--port", default=3000, show_default=True, help="Dagster UI port.")
@click.option("--nodes", help="全国通办: run these nodes and the national exchange instead "
              "(e.g. 500000,510000,440300; scale default 3,000) and show cross-region cases.")
@click.option("--suite", type=click.Choice(["ed25519-sha256", "sm2-sm3"]),
              default="ed25519-sha256", show_default=True,
              help="With --nodes: the exchange's signing suite.")
def demo(home, scale, days, seed, serve, port, nodes, suite):
    """Simulator + main job (full load, then DAYS daily increments) + summary (+ Dagster UI).
    With --nodes: several nodes and the national exchange, and cross-region cases."""
    from pipelines.sim.process import SimulatorProcess, demo_settings, reset, serve_ui
    from pipelines.defs.runner import failed_checks, failure_messages, run_job

    home = Path(home).resolve()
    reset(home)
    if nodes:
        from pipelines.cli import federation_demo

        codes = tuple(c.strip() for c in nodes.split(",") if c.strip())
        scale = scale if scale != 20_000 else 3_000  # three worlds' backflows on two cores
        federation_demo.run(home, codes, scale, seed, suite, serve)
        return
    os.environ["HUILIU_DEMO"] = "1"  # demo keys (audit, pseudonyms) are accepted in this process
    t0 = time.perf_counter()
    sim = SimulatorProcess(home, scale=scale, seed=seed)
    click.echo(f"starting the national-platform simulator (scale {scale:,}, seed {seed}) ...")
    sim.start()
    try:
        # Some bulk drops arrive a day late (manifest held back), so lateness shows.
        sim.set_faults(in_progress=LATE_DROP_SHARE)
        ok, s = True, None
        for day in range(days + 1):
            if day:
                info = sim.advance(1)
                click.echo(f"simulated day {info.get('day')} ({info.get('date')})")
            s = demo_settings(home, sim.url, dt.date.fromisoformat(sim.status()["date"]))
            result = run_job(s, "backflow_all")
            label = "full load" if day == 0 else f"increment {day}"
            click.echo(f"  {label}: run {result.run_id[:8]} "
                       f"{'succeeded' if result.success else 'FAILED'}")
            for msg in failure_messages(result):
                click.echo(f"    {msg}", err=True)
            for msg in failed_checks(result):  # e.g. a provider's batch rejected whole
                click.echo(f"    check failed: {msg}")
            ok = ok and result.success
        with read_published(s) as con:
            headers, rows = summary_rows(con)
            p_headers, p_rows = summary_rows(con, "summarize_providers")
            objections = con.execute("""SELECT objection_id, provider, resource, rule_id, status
                FROM ops.objections ORDER BY status IN ('corrected') DESC, objection_id
                LIMIT 8""").fetchall()
        click.echo("\n" + render(headers, rows))
        click.echo(f"\nProviders (as of {s.business_date()}): validity = rows passing every "
                   "contract rule; on_time = update-cycle periods delivered by their due date\n"
                   + render(p_headers, p_rows))
        if objections:
            click.echo("\nSome objections (数据异议):\n" + render(
                ["objection", "provider", "resource", "rule", "status"], objections))
        click.echo("\n" + _reconcile_summary(s, sim.truth()))
        env = f"HUILIU_HOME={home} HUILIU_TODAY={s.business_date()}"
        click.echo(f"\nscorecard report: {s.reports_dir / 'scorecard' / 'index.html'}"
                   f"\nconflict report:  {s.reports_dir / 'conflicts' / 'index.html'}"
                   f"\nobjections:       {env} huiliu objections list --open"
                   f"\n                  {env} huiliu objections show <id>"
                   f"\nmain job finished in {time.perf_counter() - t0:.1f}s; warehouse published "
                   f"at {s.published_current} (the hub's account only: analysts use the "
                   "workbench below)")
        api_port, wb_port = port + 5080, port + 5090  # 3000 -> 8080, 8090
        click.echo("\n" + _prefill_example(s, api_port, serve))
        click.echo("\n" + _workbench_example(s, wb_port, serve))
        if not ok:
            raise click.ClickException("a backflow run failed; see the messages above")
        if serve:
            api = _start_service(home, "serve", api_port)
            wb = _start_service(home, "workbench", wb_port)
            try:
                serve_ui(s, port)
            finally:
                for service in (api, wb):
                    service.terminate()
                    service.wait(10)
    finally:
        sim.stop()


# a published key: accepted only in demo mode, which `huiliu demo` sets explicitly (HUILIU_DEMO=1)
# for the service it starts and in the command it prints; anywhere else it is refused
DEMO_AUDIT_KEY = "demo-audit-key-not-for-production"


def _prefill_example(s, api_port: int, serving: bool) -> str:
    """A demo credential for the lead department of 新生儿出生 and a ready-to-run request about a
    married couple of the demo world."""
    from pipelines.serving.credentials import Credentials

    key = Credentials(s.home / "serving" / "credentials.sqlite").issue("WJW")
    with read_published(s) as con:
        pair = con.execute("""SELECT w.citizen_id, h.citizen_id, w.name FROM gold.field_values m
            JOIN ident.person_links lw ON lw.mention_id = 'CA_MARRIAGE|wife|' || m.value
            JOIN ident.person_links lh ON lh.mention_id = 'CA_MARRIAGE|husband|' || m.value
            JOIN gold.person w ON w.entity_id = lw.entity_id
            JOIN gold.person h ON h.entity_id = lh.entity_id
            WHERE m.field = 'marriage_record' AND m.rank = 1 AND m.valid_to IS NULL
              AND w.citizen_id IS NOT NULL AND h.citizen_id IS NOT NULL
            ORDER BY m.value LIMIT 1""").fetchall()
    mother, father, name = pair[0] if pair else ("<citizen ID>", "<citizen ID>", "<name>")
    url = f"http://127.0.0.1:{api_port}"
    body = ('{"case_id": "DEMO-1", "purpose": "NEWBORN", "template": "NEWBORN", '
            f'"subjects": {{"mother": "{mother}", "father": "{father}"}}}}')
    review = ('{"case_id": "DEMO-2", "purpose": "NEWBORN", "template": "NEWBORN", '
              f'"subjects": {{"mother": "{mother}", "father": "{father}"}}, '
              f'"claimed": {{"mother": {{"name": "{name}", "marital_status": "10"}}}}}}')
    start = ("" if serving else f"HUILIU_HOME={s.home} HUILIU_DEMO=1 "
             f"HUILIU_AUDIT_KEY={DEMO_AUDIT_KEY} .venv/bin/huiliu serve --port {api_port} &\n")
    return (f"Prefill service{' (serving now)' if serving else ''}: {url}  preview page: "
            f"{url}/preview  life-cycle lists: {url}/lifecycle  OpenAPI: {url}/openapi.json\n"
            f"demo credential of 卫生健康委 (WJW): {key}\n{start}"
            f"curl -s {url}/v1/prefill -H 'Authorization: Bearer {key}' "
            f"-H 'Content-Type: application/json' -d '{body}'\n"
            "pre-review of an application claiming the married mother is single (转人工 expected):\n"
            f"curl -s {url}/v1/prereview -H 'Authorization: Bearer {key}' "
            f"-H 'Content-Type: application/json' -d '{review}'")


def _workbench_example(s, port: int, serving: bool) -> str:
    """A demo analyst of the big-data bureau (SJJ) on the statistical tier, and where to use it."""
    from pipelines.catalog.model import load_catalog
    from pipelines.workbench.analysts import Analysts
    from pipelines.workbench.tiers import workbench_dir

    analysts = Analysts(workbench_dir(s.home))
    try:
        key = analysts.issue(load_catalog(), "demo_analyst", "SJJ", ["statistical"], ["ANALYTICS"])
    finally:
        analysts.close()
    url = f"http://127.0.0.1:{port}"
    env = f"HUILIU_HOME={s.home} HUILIU_DEMO=1 HUILIU_AUDIT_KEY={DEMO_AUDIT_KEY}"
    start = "" if serving else f"{env} .venv/bin/huiliu workbench serve --port {port} &\n"
    return (f"Analyst workbench{' (serving now)' if serving else ''}: {url}/workbench  "
            "(statistical tier: IDs pseudonymised, names masked)\n"
            f"demo analyst credential of 大数据发展局 (SJJ): {key}\n{start}"
            f"HUILIU_ANALYST_CREDENTIAL={key} .venv/bin/huiliu sql --url {url} "
            "-e 'SELECT HJDZ_XZQHDM, count(*) FROM cur.ps_pop_basic GROUP BY ALL ORDER BY 2 DESC'")


def _start_service(home: Path, command: str, port: int):
    """`huiliu serve` (prefill) or `huiliu workbench serve`, in demo mode, beside the UI."""
    import subprocess

    env = {**os.environ, "HUILIU_HOME": str(home), "HUILIU_DEMO": "1"}
    if not env.get("HUILIU_AUDIT_KEY"):  # unset, or blank as in .env.example
        env["HUILIU_AUDIT_KEY"] = DEMO_AUDIT_KEY
    args = ["serve"] if command == "serve" else ["workbench", "serve"]
    return subprocess.Popen([sys.executable, "-m", paths.CLI_MODULE, *args, "--home", str(home),
                             "--port", str(port)], env=env)


def _reconcile_summary(s, truth_dir: Path) -> str:
    """Entities, golden records and conflicts, and the linkage scored against the simulator's
    ground truth (the demo can: it has the truth)."""
    from pipelines.identity.truth_eval import (
        evaluate_person_linkage,
        evaluate_subsistence_conflicts,
        format_summary,
    )

    with read_published(s) as con:
        counts = dict(con.execute("""SELECT kind, count(*) FROM ident.entities
            WHERE state = 'active' GROUP BY ALL""").fetchall())
        golden = con.execute("SELECT count(*), count(*) FILTER (WHERE rank > 1) FROM "
                             "gold.field_values WHERE valid_to IS NULL").fetchall()[0]
        conflicts = con.execute("""SELECT kind, count(*), count(objection_id) FROM gold.conflicts
            WHERE status = 'open' GROUP BY ALL ORDER BY 1""").fetchall()
        events = dict(con.execute("SELECT kind, count(*) FROM ident.entity_events GROUP BY ALL"
                                  ).fetchall())
        accuracy = format_summary(evaluate_person_linkage(con, truth_dir))
        paid = evaluate_subsistence_conflicts(con, truth_dir)
    lines = [f"Reconciliation: {counts.get('person', 0):,} persons, "
             f"{counts.get('enterprise', 0):,} enterprises (entity events: "
             + ", ".join(f"{k} {v:,}" for k, v in sorted(events.items())) + "); "
             f"{golden[0]:,} current golden-record values, {golden[1]:,} of them losing "
             "candidates kept with their provenance",
             "Open conflicts: " + (", ".join(f"{k} {n} ({o} raised as objections)"
                                            for k, n, o in conflicts) or "none"),
             f"  subsistence paid after death, against the simulator's record of it: "
             f"{paid['found_and_true']} of {paid['truth_persons']} persons found, "
             f"{paid['found_persons'] - paid['found_and_true']} found that it did not record",
             "Person linkage against the simulator's truth:", accuracy]
    return "\n".join(lines)


main.add_command(sim_group, "sim")  # the simulator's own commands: serve, advance, status, truth
main.add_command(objections_group, "objections")
main.add_command(identity_group, "identity")
main.add_command(serve_cmd, "serve")
main.add_command(serving_group, "serving")
main.add_command(consumers_group, "consumers")
main.add_command(audit_group, "audit")
main.add_command(analysts_group, "analysts")
main.add_command(workbench_group, "workbench")
main.add_command(sql_cmd, "sql")
main.add_command(exchange_group, "exchange")
audit_group.add_command(audit_queries_cmd, "queries")
