"""The node's own analyses (catalogs/workbench/analyses.yaml), shared with every analyst whose tier
holds their tables: each is checked against the tier like any query, and listed only if it
passes."""

from __future__ import annotations

from collections.abc import Callable

import yaml

from pipelines import paths
from pipelines.workbench import sql_guard

ANALYSES_FILE = paths.CATALOGS / "workbench" / "analyses.yaml"
OWNER = "huiliu"


def shared_analyses(passes: Callable[[str], bool]) -> list[dict]:
    """The analyses whose SQL `passes` (the guard, against one tier), as saved queries."""
    out = []
    for a in yaml.safe_load(ANALYSES_FILE.read_text(encoding="utf-8")):
        if passes(a["sql"]):
            out.append({"id": a["id"], "owner": OWNER, "department": "", "name": a["name"],
                        "description": a["description"].strip(), "sql": a["sql"],
                        "shared": True, "chart": a.get("chart")})
    return out


def guard_passes(tables: dict) -> Callable[[str], bool]:
    def passes(sql: str) -> bool:
        try:
            sql_guard.check(sql, tables)
        except sql_guard.Refused:  # its tables are not in this tier
            return False
        return True
    return passes
