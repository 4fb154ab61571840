"""One asset per resource of the responsibility list, plus the published warehouse.

Grain of each asset: hist.<resource> holds one row per key per change (all versions, with validity
intervals); cur.<resource> one row per current key. Materialising an asset takes every batch the
provider has delivered since the last run (idempotent: loaded batches are skipped, the API cursor
moves with the rows it covers).
"""


import dagster as dg

from pipelines.defs.resources import HubSettings
from pipelines import backflow
from pipelines.catalog.model import Resource, catalog
from pipelines.governance.contracts.rules import compile_rules, contracts_config
from pipelines.warehouse.publish import publish

PUBLISHED_KEY = dg.AssetKey(["warehouse", "published"])
ACCOUNTING_CHECK = "row_accounting"
ACCEPTED_CHECK = "batches_accepted"
TIMELINESS_CHECK = "delivered_on_time"
SOURCE_CHECK = "source_read"


def contract_families(r: Resource) -> list[str]:
    """The rule families of the resource's contract (one Dagster check each)."""
    fams = {x.family for x in compile_rules(catalog(), r)} | {"volume", "snapshot_volume"}
    return sorted(fams)


def _family_check_spec(key: dg.AssetKey, family: str) -> dg.AssetCheckSpec:
    fam = contracts_config()["families"][family]
    return dg.AssetCheckSpec(
        f"contract_{family}", asset=key,
        description=f"Contract rules of family {family} (severity {fam['severity']}, allowed fail "
                    f"rate {fam.get('max_fail_rate', 1.0):.1%}; quality/contracts.yaml) on every "
                    "batch of the run. ERROR: a batch was blocked and not promoted; WARN: rows "
                    "failed and were quarantined (error rules) or reported (warn rules).")


def _family_check_result(family: str, fr) -> dg.AssetCheckResult:
    if fr is None:  # no batch in this run was judged by this family
        return dg.AssetCheckResult(check_name=f"contract_{family}", passed=True,
                                   metadata={"checked": 0, "failed": 0})
    blocked = bool(fr.blocked_batches)
    lines = "\n".join(f"- {x}" for x in fr.failing_rules[:20]) or "none"
    return dg.AssetCheckResult(
        check_name=f"contract_{family}", passed=fr.failed == 0,
        severity=dg.AssetCheckSeverity.ERROR if blocked else dg.AssetCheckSeverity.WARN,
        description=(f"batch(es) {', '.join(fr.blocked_batches)} blocked: over the threshold, "
                     "not promoted" if blocked else
                     f"{fr.failed} of {fr.checked} row checks failed" if fr.failed else None),
        metadata={"checked": fr.checked, "failed": fr.failed,
                  "fail_rate": round(fr.failed / fr.checked, 6) if fr.checked else 0.0,
                  "blocked_batches": len(fr.blocked_batches),
                  "failing_rules": dg.MetadataValue.md(lines)})


def _timeliness_result(t) -> dg.AssetCheckResult:
    late_now = bool(t and t.missing)
    meta = {"periods_expected": t.expected if t else 0, "on_time": len(t.on_time) if t else 0,
            "late": len(t.late) if t else 0, "missing": len(t.missing) if t else 0}
    if t and t.on_time_rate is not None:
        meta["on_time_rate"] = round(t.on_time_rate, 4)
    return dg.AssetCheckResult(check_name=TIMELINESS_CHECK, passed=not late_now,
                               severity=dg.AssetCheckSeverity.WARN,
                               description=t.describe() if t else None, metadata=meta)


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
            *[_family_check_spec(key, f) for f in contract_families(r)],
            dg.AssetCheckSpec(TIMELINESS_CHECK, asset=key,
                              description=f"Every {r.update_cycle} period delivered by its due "
                                          "date (quality/timeliness.yaml); fails while a period "
                                          "is overdue and undelivered (the provider is late)."),
            dg.AssetCheckSpec(ACCOUNTING_CHECK, asset=key,
                              description="received = staged + quarantined + superseded, for "
                                          "every batch loaded in this run"),
            dg.AssetCheckSpec(SOURCE_CHECK, asset=key,
                              description="The source answered to its end: the platform's API "
                                          "(reachable within its deadlines) or the drop root "
                                          "(present and readable). A failure loads what came "
                                          "before it and lets every other resource go on."),
            dg.AssetCheckSpec(ACCEPTED_CHECK, asset=key,
                              description="No batch was rejected whole (checksum, row count, "
                                          "truncated or missing part, schema drift). A rejected "
                                          "batch is not loaded and is taken when redelivered."),
        ],
        # Transient API trouble is retried by the client within its deadlines; a source that
        # still fails is a failing check (the other resources and publishing go on), and an
        # unexpected error gets two later retries of the step.
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
            # the batches_accepted check carries it to the UI and the command line (ERROR there)
            context.log.info("%d batch(es) of %s rejected whole:\n%s", len(run.rejected), r.code,
                              rejected)
        # Accepted batches are loaded and published; the rejected ones fail this check (error
        # severity, red in the UI) until the provider redelivers them.
        by_family = {fr.family: fr for fr in run.contract}
        return dg.MaterializeResult(
            metadata=meta,
            check_results=[
                *[_family_check_result(f, by_family.get(f)) for f in contract_families(r)],
                _timeliness_result(run.timeliness),
                dg.AssetCheckResult(check_name=SOURCE_CHECK, passed=run.failed is None,
                                    severity=dg.AssetCheckSeverity.ERROR,
                                    description=run.failed),
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
    deps=[asset_key(r) for r in catalog().resources.values()]
    + [dg.AssetKey(["governance", "scorecard"]), dg.AssetKey(["identity", "reconciled"])],
    kinds={"duckdb"},
    description="A consistent copy of the warehouse for readers, switched in atomically as "
                "<home>/published/current.duckdb after the backflow assets succeed.",
)
def published_warehouse(context: dg.AssetExecutionContext, hub: HubSettings):
    path = publish(hub.settings())
    context.log.info("published %s", path)
    return dg.MaterializeResult(metadata={"path": str(path),
                                          "bytes": path.stat().st_size})
