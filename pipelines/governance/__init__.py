"""Governance: each batch's contract (Great Expectations), timeliness against the update cycle,
objections (数据异议) and their exchange with the providers, the providers' scorecards.

Entry points, by module (imported as modules: `from pipelines.governance import objections`):
`contracts.validate.run_contract` (a batch against its rules), `timeliness` (`assess`,
`record_delivery`), `objections` (`raise_for_batch`, `raise_manual`, `transition`, `overdue_sql`),
`objection_sync.sync` (with the platform), `scorecard` (`build`, `render`)."""
