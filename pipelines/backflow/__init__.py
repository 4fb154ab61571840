"""Backflow (回流): each provider's bulk drops and API change feed, parsed, landed and loaded into
the warehouse one batch at a time, resumably."""

from pipelines.backflow.runs import (
    DropRootMissing,
    NodeMismatch,
    ResourceRun,
    ingest_drops,
    platform_client,
    pull_api,
    run_resource,
)

__all__ = ["DropRootMissing", "NodeMismatch", "ResourceRun", "ingest_drops", "platform_client",
           "pull_api", "run_resource"]
