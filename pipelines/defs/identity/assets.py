"""Reconciliation: who is who across providers, golden records by authority, conflicts."""

import dagster as dg

from pipelines.defs.backflow.assets import BACKFLOW_ASSETS
from pipelines.defs.governance.assets import OBJECTIONS_KEY
from pipelines.defs.resources import HubSettings
from pipelines.catalog.model import catalog
from pipelines.identity.reconcile import reconcile
from pipelines.warehouse.writer import ensure_schema, writer

RECONCILED_KEY = dg.AssetKey(["identity", "reconciled"])
NO_CONFLICTS = "no_open_conflicts"


@dg.asset(
    key=RECONCILED_KEY, group_name="identity", kinds={"duckdb", "splink", "html"},
    deps=[*(a.key for a in BACKFLOW_ASSETS), OBJECTIONS_KEY],
    description="Persons and enterprises linked into stable entities (ident.*), golden records "
                "with provenance and history (gold.field_values, gold.person, gold.enterprise), "
                "conflicts between sources (gold.conflicts) and their report under "
                "<home>/reports/conflicts/.",
    check_specs=[dg.AssetCheckSpec(NO_CONFLICTS, asset=RECONCILED_KEY,
                                   description="No open conflict between sources.")],
)
def reconciled(context: dg.AssetExecutionContext, hub: HubSettings):
    settings = hub.settings()
    cat = catalog()
    with writer(settings.warehouse_path) as con:
        ensure_schema(con, cat)
        res = reconcile(con, cat, settings.business_date(),
                        report_dir=settings.reports_dir / "conflicts")
    c = res["conflicts"]
    listing = "\n".join(f"- {k}: {n}" for k, n in sorted(c["by_kind"].items())) or "none"
    return dg.MaterializeResult(
        metadata={"mentions": res["mentions"], "persons": res["persons"]["entities"],
                  "enterprises": res["enterprises"]["entities"],
                  "probabilistic_links": res["persons"]["probabilistic_links"],
                  "merges": res["persons"]["merged"], "splits": res["persons"]["split"],
                  "conflicts_open": c["open"], "seconds": res["seconds"],
                  "report": dg.MetadataValue.path(res["report"])},
        check_results=[dg.AssetCheckResult(
            check_name=NO_CONFLICTS, passed=c["open"] == 0, severity=dg.AssetCheckSeverity.WARN,
            description=f"{c['open']} open conflict(s), {c['new']} new" if c["open"] else None,
            metadata={"by_kind": dg.MetadataValue.md(listing),
                      "objections_raised": c["objections_raised"]})])
