"""The DuckDB warehouse: its schema and single writer, reader snapshots, a rebuild from landing."""

from pipelines.warehouse.publish import current_snapshot, publish
from pipelines.warehouse.writer import WarehouseLocked, ensure_schema, transaction, writer

__all__ = ["WarehouseLocked", "current_snapshot", "ensure_schema", "publish", "transaction",
           "writer"]
