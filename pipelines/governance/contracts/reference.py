"""Reference tables the contract rules join against, built once per process from the catalogue:

  divisions(code, valid_from, valid_to)   every validity period of every GB/T 2260 code
  division_regions(code, region)          4-digit regions a division has had: its own and those of
                                          every code it succeeded (a customs code keeps the region
                                          of the division it was registered in)
"""

from __future__ import annotations

import functools

import pyarrow as pa

from pipelines.catalog.divisions import DivisionTable


@functools.cache
def reference_tables() -> dict[str, pa.Table]:
    table = DivisionTable.load()
    rows = [r for code in table.codes() for r in table.rows(code)]
    divisions = pa.table({
        "code": pa.array([r.code for r in rows], pa.string()),
        "valid_from": pa.array([r.valid_from for r in rows], pa.date32()),
        "valid_to": pa.array([r.valid_to for r in rows], pa.date32()),
    })
    regions: set[tuple[str, str]] = set()
    for r in rows:
        regions.add((r.code, r.code[:4]))
        seen, nxt = {r.code}, r.successor
        while nxt and nxt not in seen:  # every later code inherits this code's region
            regions.add((nxt, r.code[:4]))
            seen.add(nxt)
            nxt = table.successor(nxt)
    ordered = sorted(regions)
    division_regions = pa.table({"code": [c for c, _ in ordered], "region": [g for _, g in ordered]})
    return {"divisions": divisions, "division_regions": division_regions}


def register_reference_tables(con) -> None:
    """Make the reference tables visible to rule SQL on a DuckDB connection (no copy)."""
    for name, t in reference_tables().items():
        con.register(name, t)
