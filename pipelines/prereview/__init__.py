"""智能辅助审批: pre-review of an application against the authoritative data the requesting
department may receive. Entry points: `rules` (`load_rules`: catalogs/prereview/rules.yaml,
compiled with zen-engine) and `review` (`prereview`: findings and a verdict)."""
