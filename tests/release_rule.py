"""The release rule, stated for the tests from the YAML in catalogs/ alone (not through the hub's
catalogue classes or its entitlement module): a golden candidate from resource R may go to
consumer C for purpose P when every field of R that its value or as-of is computed from (read by
DuckDB's own SQL parser) and every key field of R (its provenance names the record) is shared
with C for P — for all of R's candidate definitions of that golden field.

Another node's list (`node`) is the base list with the sharing its catalogs/nodes/<node>/grants.yaml
gives the fields it names."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import duckdb
import yaml

CATALOGS = Path(__file__).resolve().parents[1] / "catalogs"


@functools.cache
def resources(node: str | None = None) -> dict[str, dict]:
    out = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8"))
           for p in (CATALOGS / "resources").glob("*.yaml")}
    grants = CATALOGS / "nodes" / str(node) / "grants.yaml"
    if node and grants.is_file():
        for resource, fields in yaml.safe_load(grants.read_text(encoding="utf-8")).items():
            for f in out[resource]["fields"]:
                if f["code"] in fields:
                    f["sharing"] = fields[f["code"]]
    return out


@functools.cache
def golden() -> dict:
    return yaml.safe_load((CATALOGS / "identity" / "golden.yaml").read_text(encoding="utf-8"))


@functools.cache
def checks() -> dict:
    return yaml.safe_load((CATALOGS / "checks.yaml").read_text(encoding="utf-8"))


@functools.cache
def _columns(expression: str) -> frozenset[str]:
    with duckdb.connect() as con:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)",
                                      [f"SELECT {expression}"]).fetchall()[0][0])
    assert not tree["error"], (expression, tree)
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("class") == "COLUMN_REF":
                found.update(node["column_names"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    return frozenset(found)


def shared(resource: str, field: str, consumer: str, purpose: str, node: str | None = None
           ) -> bool:
    r = resources(node)[resource]
    spec = next(f for f in r["fields"] if f["code"] == field)
    sharing = spec.get("sharing") or r["sharing"]
    if sharing["type"] == "U":
        return True
    if sharing["type"] == "N":
        return False
    return consumer in sharing["consumers"] and purpose in sharing["purposes"]


def may_receive(kind: str, golden_field: str, resource: str, consumer: str, purpose: str,
                node: str | None = None) -> bool:
    """May a candidate of `kind.golden_field` from `resource` go to the consumer for the purpose?"""
    r = resources(node)[resource]
    declared = {f["code"] for f in r["fields"]}
    definitions = [s for s in golden()[kind][golden_field]["from"] if s["resource"] == resource]
    assert definitions, (kind, golden_field, resource)
    for d in definitions:
        fields = (_columns(d["value"]) | _columns(d.get("as_of", "NULL"))) & declared
        if not d.get("aggregate"):
            fields |= set(r["primary_key"])
        if not all(shared(resource, f, consumer, purpose, node) for f in fields):
            return False
    return True


def receivable_sources(kind: str, golden_field: str, consumer: str, purpose: str,
                       node: str | None = None) -> set[str]:
    return {s["resource"] for s in golden()[kind][golden_field]["from"]
            if may_receive(kind, golden_field, s["resource"], consumer, purpose, node)}
