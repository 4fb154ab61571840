"""Three nodes and the exchange as real processes, and the simulator's truth about the persons
the tests ask about."""

from __future__ import annotations

import duckdb
import httpx

from pipelines.exchange.federation import Federation


def truth_persons(fed: Federation) -> duckdb.DuckDBPyConnection:
    """The simulator's persons (one world: any node's simulator has it all), as table `truth`."""
    d = fed.nodes["500000"].sim.truth()
    con = duckdb.connect()
    con.execute(f"CREATE TABLE truth AS SELECT * FROM '{d}/persons.parquet'")
    return con


def residents(con, prefix: str, where: str = "TRUE", limit: int = 1) -> list[dict]:
    """Living persons registered under `prefix` since birth (their citizen ID and hukou both
    there, never moved): only that node's simulator delivers them."""
    cur = con.execute(f"""SELECT * FROM truth WHERE status = 'alive' AND registered
        AND NOT ever_moved AND gmsfhm LIKE '{prefix}%' AND hukou_division LIKE '{prefix}%'
        AND {where} ORDER BY gmsfhm LIMIT {limit}""")
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def prefill(fed: Federation, node: str, dept: str, template: str, subjects: dict,
            case_id: str = "CASE-1", purpose: str | None = None,
            timeout: float = 30) -> httpx.Response:
    n = fed.nodes[node]
    return httpx.post(f"{n.url}/v1/prefill", timeout=timeout,
                      headers={"Authorization": f"Bearer {n.credentials[dept]}"},
                      json={"case_id": case_id, "purpose": purpose or template,
                            "template": template, "subjects": subjects})


def iso(yyyymmdd: str) -> str:
    return f"{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:]}"
