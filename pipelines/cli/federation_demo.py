"""`huiliu demo --nodes 500000,510000,440300`: the national exchange and several nodes on this
machine, a cross-region school enrolment and a cross-region marriage answered across nodes, and
where to look: both nodes' answers, the exchange's record and each node's audit entry of it."""

from __future__ import annotations

import time
from pathlib import Path

import click
import duckdb
import httpx
import orjson

from pipelines.exchange.federation import Federation, prepare, start
from pipelines.exchange.pairing import pair
from pipelines.serving.audit_lines import parse_line, read_lines


def _resident(con, prefix: str, where: str) -> tuple[str, str]:
    row = con.execute(f"""SELECT gmsfhm, xm FROM truth WHERE status = 'alive' AND registered
        AND NOT ever_moved AND gmsfhm LIKE '{prefix}%' AND hukou_division LIKE '{prefix}%'
        AND {where} ORDER BY gmsfhm LIMIT 1""").fetchone()
    if row is None:
        raise click.ClickException(f"the simulated world has no resident of {prefix} with "
                                   f"{where}: try a larger --scale")
    return row


def _entries(log: Path, request_id: str) -> list[dict]:
    out = []
    for _, line in read_lines(log):
        e = parse_line(line)
        if e and request_id in e.get("detail", ""):
            out.append(e)
    return out


def _show_roles(body: dict) -> list[str]:
    lines = []
    for role, answer in body["roles"].items():
        if answer["status"] == "not_applicable":
            continue
        where = f"node {answer['node']}" if "node" in answer else "this node"
        lines.append(f"  {role}: {answer['status']} (answered by {where})")
        for code, env in answer.get("fields", {}).items():
            shown = env.get("value", env.get("reason", ""))
            src = env.get("source", {})
            prov = (f"  [{src.get('node', 'local')} {src.get('provider')}/"
                    f"{src.get('resource')} batch {src.get('batch')}]" if src else "")
            lines.append(f"    {code:<16} {env['status']:<10} {shown}{prov}")
    return lines


def _ask(fed: Federation, dept: str, template: str, subjects: dict, case_id: str) -> dict:
    n = fed.nodes["500000"]
    r = httpx.post(f"{n.url}/v1/prefill", timeout=30,
                   headers={"Authorization": f"Bearer {n.credentials[dept]}"},
                   json={"case_id": case_id, "purpose": template, "template": template,
                         "subjects": subjects})
    if r.status_code != 200:
        raise click.ClickException(f"the prefill answered {r.status_code}: {r.text}")
    return r.json()


def run(root: Path, nodes: tuple[str, ...], scale: int, seed: int, suite: str,
        serve: bool) -> None:
    if "500000" not in nodes or len(nodes) < 2:
        raise click.ClickException("--nodes needs 500000 (the demo asks from 重庆) and at "
                                   "least one other node, e.g. 500000,510000,440300")
    t0 = time.perf_counter()
    fed = prepare(root, nodes, scale=scale, seed=seed, suite=suite, say=click.echo)
    try:
        start(fed)
        click.echo(f"exchange {fed.exchange_url} (directory {fed.directory}); nodes: " + ", ".join(
            f"{c} {n.url}" for c, n in fed.nodes.items()) + f"  [{time.perf_counter() - t0:.0f}s]")
        con = duckdb.connect()
        con.execute("CREATE TABLE truth AS SELECT * FROM "
                    f"'{fed.nodes['500000'].sim.truth()}/persons.parquet'")
        cases = []
        if "510000" in nodes:
            child = _resident(con, "51", "birth_date BETWEEN '20190901' AND '20200831'")
            cases.append(("随迁子女入学: a 四川-registered child enrols in a 重庆 school (教委 JYJ)",
                          "JYJ", "SCHOOL_ENROLL", {"child": child[0]}, "DEMO-ENROL-1"))
        if "440300" in nodes:
            a = _resident(con, "50", "marital_status = '10' AND sex = '1' "
                          "AND birth_date < '20000101'")
            b = _resident(con, "4403", "marital_status = '10' AND sex = '2' "
                          "AND birth_date < '20000101'")
            cases.append(("婚姻登记跨省通办: a 重庆 resident marries a 深圳 resident in 重庆 (民政 MZJ)",
                          "MZJ", "MARRIAGE_REG", {"party_a": a[0], "party_b": b[0]},
                          "DEMO-MARRY-1"))
        logs = {c: n.audit_log for c, n in fed.nodes.items()}
        for title, dept, template, subjects, case_id in cases:
            body = _ask(fed, dept, template, subjects, case_id)
            click.echo(f"\n{title}\nPOST {fed.nodes['500000'].url}/v1/prefill  case {case_id}")
            click.echo("\n".join(_show_roles(body)))
            time.sleep(0.3)  # the requester's audit entry is committed before it answered
            mine = _entries(logs["500000"], case_id) or [
                e for _, line in read_lines(logs["500000"]) if (e := parse_line(line))
                and e["case_id"] == case_id]
            for entry in mine:
                for x in orjson.loads(entry.get("detail") or "{}").get("exchanges", []):
                    rid = x["exchange"]
                    click.echo(f"  exchange {rid}:")
                    click.echo(f"    重庆 (requester) audit entry {entry['seq']} "
                               f"hash {entry['hash'][:16]}…  outcome {x['outcome']}")
                    for ex in _entries(fed.exchange_log, rid):
                        click.echo(f"    exchange's entry {ex['seq']} hash {ex['hash'][:16]}…  "
                                   f"{orjson.loads(ex['detail'])['outcome']}")
                    for e in _entries(logs[x["node"]], rid):
                        click.echo(f"    {x['node']} (answerer) audit entry {e['seq']} "
                                   f"hash {e['hash'][:16]}…  released {len(e['released'])}, "
                                   f"withheld {len(e['withheld'])}")
        paired, problems = pair(fed.exchange_log, logs)
        click.echo(f"\n{paired} exchanges paired across the exchange's and {len(logs)} nodes' "
                   f"logs, {len(problems)} problems.\nWhere to look:")
        node_args = " ".join(f"--node {c}={p}" for c, p in logs.items())
        click.echo(f"  huiliu exchange pairs --exchange-log {fed.exchange_log} {node_args}")
        for c, n in fed.nodes.items():
            click.echo(f"  env $(cat {n.home}/node.env) huiliu audit verify   # node {c}")
        click.echo(f"  env $(cat {fed.exchange_home}/exchange.env) huiliu audit verify "
                   f"--log {fed.exchange_log}")
        click.echo(f"  directory: {fed.directory}; each node's settings: <home>/node.env; "
                   f"credentials issued for every department (node.env has none: "
                   f"`huiliu consumers issue --home <home> <DEPT>` makes more)")
        if serve:
            click.echo("\nserving; Ctrl-C stops the exchange, the nodes and the simulators")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fed.stop()
