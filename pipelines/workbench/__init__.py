"""The analysts' SQL workbench: governed tiers of the published warehouse, a guarded query service, its page."""
