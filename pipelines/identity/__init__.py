"""Identity: linking mentions of one person or enterprise across providers and regions into stable
entities, golden records with every value's provenance, conflicts between sources."""
