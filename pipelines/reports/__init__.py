"""HTML reports (scorecards, validations, conflicts): one Jinja environment, shared formatting.

Entry points, by module (imported as modules, so a caller that writes one report does not load
the others): `scorecard_html.write_scorecard`, `validation_html.write_validation`,
`conflicts_html.render_conflict_report`, `files.write_atomically`; every page renders through
`templates.environment()` with `formatting`'s filters and Beijing-time clock."""
