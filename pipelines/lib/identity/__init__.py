"""Identity: normalising what names a person or an enterprise, for linking (issue 4)."""
