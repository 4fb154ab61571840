"""Governance assets: objections exchanged with the providers, then the provider scorecard.

They run after the backflow assets of a job and before publishing, so the published snapshot
carries the disputed flags (异议中) and the scorecard of the same moment.
"""


import dagster as dg

from pipelines.defs.backflow.assets import BACKFLOW_ASSETS
from pipelines.defs.resources import HubSettings
from pipelines.governance import objections, scorecard
from pipelines.backflow import platform_client
from pipelines.catalog.model import catalog
from pipelines.governance.objection_sync import sync
from pipelines.warehouse.writer import ensure_schema, writer

OBJECTIONS_KEY = dg.AssetKey(["governance", "objections"])
SCORECARD_KEY = dg.AssetKey(["governance", "scorecard"])
OVERDUE_CHECK = "no_overdue_objections"
EXCHANGED_CHECK = "exchanged_with_platform"


@dg.asset(
    key=OBJECTIONS_KEY, group_name="governance", kinds={"duckdb", "python"},
    deps=[a.key for a in BACKFLOW_ASSETS],
    description="Data objections (数据异议) in ops.objections / ops.objection_events: new ones "
                "submitted to the providers through the platform, their answers applied "
                "(accepted, verifying, confirmed, rejected); corrected records close them.",
    check_specs=[dg.AssetCheckSpec(OVERDUE_CHECK, asset=OBJECTIONS_KEY,
                                   description="No open objection is past its working-day "
                                               "deadline (quality/objections.yaml)."),
                 dg.AssetCheckSpec(EXCHANGED_CHECK, asset=OBJECTIONS_KEY,
                                   description="Every new objection was submitted and every "
                                               "answer read through the platform; what could "
                                               "not be is sent or read by the next run.")],
)
def objections_asset(context: dg.AssetExecutionContext, hub: HubSettings):
    settings = hub.settings()
    cat, today = catalog(), settings.business_date()
    client = platform_client(settings)
    try:
        with writer(settings.warehouse_path) as con:
            ensure_schema(con, cat)
            res = sync(con, cat, client, today)
            counts = dict(con.execute("SELECT status, count(*) FROM ops.objections GROUP BY ALL"
                                      ).fetchall())
            overdue = con.execute(f"SELECT provider, objection_id FROM ops.objections WHERE "
                                  f"{objections.overdue_sql()} ORDER BY 2",
                                  [today, today]).fetchall()
    finally:
        client.close()
    for e in res.errors:
        context.log.info("retried next run: %s", e)
    listing = "\n".join(f"- {p} {oid}" for p, oid in overdue[:30]) or "none"
    return dg.MaterializeResult(
        metadata={"submitted": res.submitted, "answers": res.answers,
                  "closed_on_delivered_record": res.closed_on_data,
                  **{f"status_{k}": v for k, v in sorted(counts.items())},
                  "overdue": len(overdue)},
        check_results=[dg.AssetCheckResult(
            check_name=OVERDUE_CHECK, passed=not overdue, severity=dg.AssetCheckSeverity.WARN,
            description=f"{len(overdue)} objection(s) past their deadline" if overdue else None,
            metadata={"overdue": len(overdue), "objections": dg.MetadataValue.md(listing)}),
            dg.AssetCheckResult(
                check_name=EXCHANGED_CHECK, passed=not res.errors,
                severity=dg.AssetCheckSeverity.ERROR,
                description="; ".join(dict.fromkeys(res.errors))[:2000] or None,
                metadata={"errors": len(res.errors)})])


@dg.asset(
    key=SCORECARD_KEY, group_name="governance", kinds={"duckdb", "html"}, deps=[OBJECTIONS_KEY],
    description="Provider scorecard per provider × resource × day and month (ops.scorecard, "
                "ops.scorecard_rules, ops.timeliness) and its HTML report under "
                "<home>/reports/scorecard/.",
)
def scorecard_asset(context: dg.AssetExecutionContext, hub: HubSettings):
    settings = hub.settings()
    cat, today = catalog(), settings.business_date()
    with writer(settings.warehouse_path) as con:
        ensure_schema(con, cat)
        scorecard.build(con, cat, today)
        index = scorecard.render(con, cat, today, settings.reports_dir / "scorecard")
        month = con.execute("""SELECT provider, sum(batches_expected), sum(batches_on_time),
                sum(rows_received), sum(rows_quarantined), sum(objections_open),
                sum(objections_overdue)
            FROM ops.scorecard WHERE period_kind = 'month' AND period = ? GROUP BY ALL
            ORDER BY ALL""", [today.replace(day=1)]).fetchall()
    table = "| provider | on time | validity | open objections | overdue |\n|---|---|---|---|---|\n"
    for p, exp, ok, rec, qua, opn, od in month:
        table += (f"| {p} | {ok}/{exp} | "
                  f"{(rec - qua) / rec:.2%} | {opn} | {od} |\n" if rec else
                  f"| {p} | {ok}/{exp} | — | {opn} | {od} |\n")
    if index is None:
        return dg.MaterializeResult(metadata={"report": "nothing delivered yet"})
    context.log.info("scorecard written to %s", index)
    return dg.MaterializeResult(metadata={"report": dg.MetadataValue.path(str(index)),
                                          "this_month": dg.MetadataValue.md(table)})
