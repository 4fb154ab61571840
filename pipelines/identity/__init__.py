"""Identity: linking mentions of one person or enterprise across providers and regions into stable
entities, golden records with every value's provenance, conflicts between sources.

Entry points, by module (imported as modules, so the Splink model loads only where it is used):
`reconcile.reconcile` (one run: mentions, links, registry, golden records, conflicts),
`golden` (`golden_config`, `as_of`), `train.train` (the person model's u, offline; the model
itself in `person_model`), `truth_eval` (`evaluate_person_linkage`,
`evaluate_subsistence_conflicts`, `format_summary`: scored against the simulator's truth) and
`person_model_eval.evaluate_model` (the model alone, on the warehouse's own IDs)."""
