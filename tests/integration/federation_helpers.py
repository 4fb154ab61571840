"""Three nodes and the exchange as real processes, and the simulator's truth about the persons
the tests ask about."""

from __future__ import annotations

import duckdb
import httpx

from pipelines.exchange.federation import Federation


PREFIXES = {"50": "500000", "51": "510000", "4403": "440300"}


def truth_persons(fed: Federation) -> duckdb.DuckDBPyConnection:
    """The simulator's persons (one world: any node's simulator has it all), as table `truth`,
    and which persons each node's golden records hold, as table `held` (a person whose only
    record the simulator damaged beyond use is quarantined there, and held by no node)."""
    d = fed.nodes["500000"].sim.truth()
    con = duckdb.connect()
    con.execute(f"CREATE TABLE truth AS SELECT * FROM '{d}/persons.parquet'")
    con.execute("CREATE TABLE held (node VARCHAR, citizen_id VARCHAR)")
    for code, n in fed.nodes.items():
        with duckdb.connect(str(n.home / "published" / "current.duckdb"), read_only=True) as db:
            ids = db.execute("SELECT citizen_id FROM gold.person WHERE citizen_id IS NOT NULL"
                             ).fetchall()
        con.executemany("INSERT INTO held VALUES (?, ?)", [[code, i] for (i,) in ids])
    return con


def residents(con, prefix: str, where: str = "TRUE", limit: int = 1) -> list[dict]:
    """Living persons registered under `prefix` since birth (their citizen ID and hukou both
    there, never moved) whom that node holds: only that node's simulator delivers them."""
    cur = con.execute(f"""SELECT * FROM truth WHERE status = 'alive' AND registered
        AND NOT ever_moved AND gmsfhm LIKE '{prefix}%' AND hukou_division LIKE '{prefix}%'
        AND gmsfhm IN (SELECT citizen_id FROM held WHERE node = '{PREFIXES[prefix]}')
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
