"""HTML reports (scorecards, validations, conflicts): one Jinja environment, shared formatting."""
