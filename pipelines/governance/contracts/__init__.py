"""Contract checks compiled from the responsibility list and run by Great Expectations on DuckDB."""
