"""The analysts' SQL workbench: governed tiers of each published snapshot, a guarded and audited
query service, its page and its terminal client.

Entry points, by module (imported as modules: the query workers load only what they use):
`tiers` (`build_tiers`, `current_tiers`, `add_tier`: the tier files, from `tier_plan.plan_tier`
and `masking.load_masking`), `analysts.Analysts` (credentials and grants), `sql_guard.check`,
`executor.Executor`, `service.Workbench` (log in, check, run, audit, export), `activity`
(`analyst_activity`: the audit log's workbench entries), `client.WorkbenchClient` (`huiliu sql`),
`http.app.create_app`."""
