"""Pairing the three logs of every exchange: the requesting node's, the exchange's and the
answering node's entries about one request id must all be there and agree on the digests of
the request and the answer. Each log is checked on its own by `huiliu audit verify`; this checks
that together they tell one story, so no side can deny or invent an exchange."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from pipelines.serving.audit_lines import parse_line, read_lines


@dataclass(frozen=True)
class Mismatch:
    request_id: str
    problem: str


def _details(path: Path):
    for _, line in read_lines(path):
        entry = parse_line(line)
        if entry and entry.get("detail"):
            yield entry, orjson.loads(entry["detail"])


def requester_side(path: Path, node: str) -> dict[str, dict]:
    """{request id: record} of the requests this node's log says it sent."""
    out = {}
    for _, d in _details(path):
        for x in d.get("exchanges", []):
            out[x["exchange"]] = {**x, "requester": node}
    return out


def answerer_side(path: Path, node: str) -> dict[str, dict]:
    return {d["exchange"]: {**d, "receiver": node} for _, d in _details(path)
            if "requester" in d and "exchange" in d}


def exchange_side(path: Path) -> dict[str, dict]:
    return {d["exchange"]: d for _, d in _details(path)
            if d.get("exchange") and not str(d.get("outcome", "")).startswith("refused")}


def pair(exchange_log: Path, node_logs: dict[str, Path]) -> tuple[int, list[Mismatch]]:
    """(exchanges paired, mismatches). An exchange the exchange relayed and a node answered
    must be in all three logs with equal digests; one the requester saw fail must be in the
    exchange's log as failed too, unless the exchange itself was unreachable."""
    at_exchange = exchange_side(exchange_log)
    sent: dict[str, dict] = {}
    answered: dict[str, dict] = {}
    for node, path in node_logs.items():
        sent |= requester_side(path, node)
        answered |= answerer_side(path, node)
    problems, paired = [], 0
    for rid, s in sent.items():
        x = at_exchange.get(rid)
        if x is None:
            if s["outcome"] not in ("EXCHANGE_UNAVAILABLE", "REMOTE_CIRCUIT_OPEN",
                                    "REMOTE_TIMEOUT"):
                problems.append(Mismatch(rid, "sent, but not in the exchange's log"))
            continue
        if x["request_digest"] != s["request_digest"]:
            problems.append(Mismatch(rid, "request digests differ (requester, exchange)"))
        if s["outcome"] == "answered":
            a = answered.get(rid)
            if a is None:
                problems.append(Mismatch(rid, "answered, but not in the answering node's log"))
                continue
            digests = {s["answer_digest"], x["answer_digest"], a["answer_digest"]}
            if len(digests) != 1 or a["request_digest"] != s["request_digest"]:
                problems.append(Mismatch(rid, "digests differ across the three logs"))
                continue
            if (a["requester"], a["receiver"]) != (s["requester"], s["node"]):
                problems.append(Mismatch(rid, "the logs disagree on who asked whom"))
                continue
            paired += 1
    for rid, x in at_exchange.items():
        if x.get("outcome") == "answered" and rid not in sent:
            problems.append(Mismatch(rid, "relayed and answered, but the requester's log "
                                     "does not have it"))
        if x.get("outcome") == "answered" and rid not in answered:
            problems.append(Mismatch(rid, "relayed as answered, but the answering node's "
                                     "log does not have it"))
    return paired, problems
