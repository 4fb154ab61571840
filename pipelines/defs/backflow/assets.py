"""One asset per resource of the responsibility list, plus the published warehouse.

Grain of each asset: hist.<resource> holds one row per key per change (all versions, with validity
intervals); cur.<resource> one row per current key. Materialising an asset takes every batch the
provider has delivered since the last run (idempotent: loaded batches are skipped, the API cursor
moves with the rows it covers).
"""


import dagster as dg

from pipelines.defs.resources import HubSettings
from pipelines.lib import backflow
from pipelines.lib.catalog import Resource, catalog
from pipelines.lib.publish import publish

PUBLISHED_KEY = dg.AssetKey(["warehouse", "published"])
ACCOUNTING_CHECK = "row_accounting"
ACCEPTED_CHECK = "batches_accepted"


def asset_key(resource: Resource) -> dg.AssetKey:
    return dg.AssetKey(["backflow", resource.key])


def _description(r: Resource) -> str:
    return (f"{r.name_zh} {r.name_en} — from {r.provider} {r.source_system} by "
            f"{'bulk drops' if r.delivery == 'bulk' else 'API change feed'}, {r.update_cycle}. "
            f"One row per {', '.join(r.primary_key)} per change in hist.{r.key}; current view "
            f"cur.{r.key}.")


def build_backflow_asset(r: Resource) -> dg.AssetsDefinition:
    key = asset_key(r)

    @dg.asset(
        key=key,
        group_name=f"backflow_{r.provider.lower()}",
        description=_description(r),
        pool=f"provider_{r.provider.lower()}",  # dagster.yaml caps each provider's concurrency
        kinds={"duckdb", "parquet", "python"},
        tags={"provider": r.provider, "delivery": r.delivery, "cycle": r.update_cycle},
        metadata={"primary_key": list(r.primary_key), "table": f"hist.{r.key}",
                  "current_view": f"cur.{r.key}"},
        check_specs=[
            dg.AssetCheckSpec(ACCOUNTING_CHECK, asset=key,
                              description="received = staged + quarantined + superseded, for "
                                          "every batch loaded in this run"),
            dg.AssetCheckSpec(ACCEPTED_CHECK, asset=key,
                              description="No batch was rejected whole (checksum, row count, "
                                          "truncated or missing part, schema drift). A rejected "
                                          "batch is not loaded and is taken when redelivered."),
        ],
        # Transient API trouble (5xx storms, timeouts) gets a later retry; rejected batches do not.
        retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
    )
    def _asset(context: dg.AssetExecutionContext, hub: HubSettings):
        run = backflow.run_resource(hub.settings(), catalog(), r)
        meta = run.as_metadata()
        for b in run.loaded:
            context.log.info("%s %s: received %d, staged %d, quarantined %d, superseded %d",
                             r.code, b.batch_id, b.received, b.staged, b.quarantined, b.superseded)
        balanced = all(b.received == b.staged + b.quarantined + b.superseded for b in run.loaded)
        rejected = "\n".join(f"- {bid}: {msg}" for bid, msg in run.rejected)
        if run.rejected:
            context.log.error("%d batch(es) of %s rejected whole:\n%s", len(run.rejected), r.code,
                              rejected)
        # Accepted batches are loaded and published; the rejected ones fail this check (error
        # severity, red in the UI) until the provider redelivers them.
        return dg.MaterializeResult(
            metadata=meta,
            check_results=[
                dg.AssetCheckResult(check_name=ACCOUNTING_CHECK, passed=balanced,
                                    metadata={"batches": len(run.loaded)}),
                dg.AssetCheckResult(
                    check_name=ACCEPTED_CHECK, passed=not run.rejected,
                    severity=dg.AssetCheckSeverity.ERROR,
                    description=(f"{len(run.rejected)} batch(es) rejected whole; nothing of them "
                                 f"was loaded:\n{rejected}") if run.rejected else None,
                    metadata={"rejected": len(run.rejected),
                              "rejected_batches": dg.MetadataValue.md(rejected or "none")}),
            ])

    return _asset


BACKFLOW_ASSETS = [build_backflow_asset(r) for r in catalog().resources.values()]


@dg.asset(
    key=PUBLISHED_KEY,
    group_name="warehouse",
    deps=[asset_key(r) for r in catalog().resources.values()],
    kinds={"duckdb"},
    description="A consistent copy of the warehouse for readers, switched in atomically as "
                "<home>/published/current.duckdb after the backflow assets succeed.",
)
def published_warehouse(context: dg.AssetExecutionContext, hub: HubSettings):
    path = publish(hub.settings())
    context.log.info("published %s", path)
    return dg.MaterializeResult(metadata={"path": str(path),
                                          "bytes": path.stat().st_size})
