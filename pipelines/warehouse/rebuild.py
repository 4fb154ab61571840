"""Rebuild the warehouse from the immutable landing zone (replay every loaded batch in order).

Landing holds every batch exactly as it was loaded, so the warehouse is derived state: after a loader
fix, a schema change or a damaged file it can be rebuilt without asking providers again. The new file
is built beside the old one and swapped in under the writer lock.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from pipelines.catalog.model import Catalog
from pipelines.warehouse.writer import ensure_schema, writer_lock
from pipelines.backflow.load import load_batch

# Not derivable from landing: cursors, rejected batches, run history, and the objections (people and
# providers acted on them; a replay raises them again, then the recorded ones replace those).
CARRIED_TABLES = ("ops.cursors", "ops.rejections", "ops.resource_runs", "ops.objections",
                  "ops.objection_events", "ops.deliveries", "ops.schema_drift")


def rebuild(warehouse: Path, catalog: Catalog) -> int:
    """Replay every loaded batch into a fresh warehouse; returns the number of batches replayed."""
    new = warehouse.with_name(warehouse.stem + ".rebuild.duckdb")
    with writer_lock(warehouse):
        new.unlink(missing_ok=True)
        with duckdb.connect(str(warehouse)) as old:
            ensure_schema(old, catalog)
            batches = old.execute("""SELECT resource, landed_path, extracted_at, arrived_on
                FROM ops.batches WHERE status = 'loaded' ORDER BY seq""").fetchall()
        missing = [p for _, p, _, _ in batches if not Path(p).is_dir()]
        if missing:
            raise FileNotFoundError(f"landing folders are gone, cannot rebuild: {missing[:3]}")
        with duckdb.connect(str(new)) as out:
            ensure_schema(out, catalog)
            for resource, landed, extracted_at, arrived_on in batches:
                load_batch(out, catalog, catalog.resource(resource), Path(landed),
                           extracted_at=extracted_at, today=arrived_on)
            out.execute(f"ATTACH '{_quote(warehouse)}' AS previous (READ_ONLY)")
            for t in CARRIED_TABLES:
                out.execute(f"DELETE FROM {t}")
                out.execute(f"INSERT INTO {t} SELECT * FROM previous.{t}")
            out.execute("DETACH previous")
        os.replace(new, warehouse)
    return len(batches)


def _quote(p: Path) -> str:
    return str(p).replace("'", "''")
