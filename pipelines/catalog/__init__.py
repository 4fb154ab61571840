"""The responsibility list (政务数据共享责任清单) as typed, frozen models, and the standards it names:
identifiers (GB 11643, GB 32100), divisions (GB/T 2260), working days, the SQL it implies."""

from pipelines.catalog.model import Catalog, CatalogError, Field, Resource, catalog

__all__ = ["Catalog", "CatalogError", "Field", "Resource", "catalog"]
