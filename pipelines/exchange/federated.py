"""Prefill and verification across nodes, behind the unchanged local API: a subject this node
does not know, whose citizen ID or USCC belongs to another member node, is asked of that node
through the exchange; its role comes back as that node answered it (under its own list), marked
with the node, or `unavailable` with the reason when it could not be had within the deadline. The
local roles of the same case are answered meanwhile, whatever happens to the remote ones.

Nothing received is stored: the answer goes to the caller, the audit entry keeps digests only,
and the case memory (in the process, for a bounded time) forgets it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pipelines.catalog.model import Catalog
from pipelines.exchange.messages import RemoteRequest
from pipelines.exchange.requesting import RemoteNodes, RemoteOutcome
from pipelines.serving.prefill import Answer, RequestError, prefill
from pipelines.serving.store import Store
from pipelines.serving.templates import Template


@dataclass
class Federated:
    answer: Answer
    exchanges: list[dict]  # each remote exchange's record, for the audit entry


def _unknown_role(e: RequestError) -> str | None:
    if e.code == "unknown_subject" and e.fields and e.fields[0].startswith("subjects."):
        return e.fields[0][len("subjects."):]
    return None


async def prefill_across(store: Store, cat: Catalog, template: Template, consumer: str,
                         purpose: str, case_id: str, subjects: dict, remote: RemoteNodes | None,
                         unknown: RequestError | None = None) -> Federated:
    """The local prefill, with the subjects this node does not know asked of the node that
    holds them; `unknown` is the local prefill's refusal of the first such subject, when the
    caller has already tried it."""
    elsewhere: dict[str, str] = {}  # role -> node
    service = f"prefill/{template.code}"
    refusal = unknown
    while True:
        if refusal is not None:
            role = _unknown_role(refusal)
            node = remote.route(subjects[role], service) if remote and role else None
            if node is None:
                raise refusal
            elsewhere[role] = node
        try:
            answer = prefill(store, cat, template, consumer, purpose, case_id, subjects,
                             frozenset(elsewhere))
            break
        except RequestError as e:
            refusal = e
    if not elsewhere:
        return Federated(answer, [])
    by_node: dict[str, dict[str, str]] = {}
    for role, node in elsewhere.items():
        by_node.setdefault(node, {})[role] = subjects[role]
    outcomes = await asyncio.gather(*(
        remote.ask(node, RemoteRequest(service, consumer, purpose, case_id,
                                       {"subjects": asked}))
        for node, asked in by_node.items()))
    roles = answer.body["roles"]
    released, withheld = list(answer.released), list(answer.withheld)
    for (node, asked), outcome in zip(by_node.items(), outcomes, strict=True):
        for role in asked:
            roles[role] = _role_from(outcome, role)
            for code, env in roles[role].get("fields", {}).items():
                (withheld if env.get("status") == "withheld" else released).append(
                    f"{role}.{code}")
    return Federated(Answer(answer.body, released, withheld, answer.subjects),
                     [o.record() for o in outcomes])


def _role_from(outcome: RemoteOutcome, role: str) -> dict:
    if outcome.reason is not None:
        return {"status": "unavailable", "reason": outcome.reason, "node": outcome.node}
    body = outcome.body or {}
    if "error" in body:  # the node refused, as it would a local caller (e.g. unknown subject)
        reason = ("REMOTE_UNKNOWN_SUBJECT" if body.get("error") == "unknown_subject"
                  else "REMOTE_REFUSED")
        return {"status": "unavailable", "reason": reason, "node": outcome.node}
    found = (body.get("roles") or {}).get(role)
    if not isinstance(found, dict) or "status" not in found:
        return {"status": "unavailable", "reason": "REMOTE_INVALID_ANSWER", "node": outcome.node}
    return {**found, "node": outcome.node}


async def verify_across(check_answer: dict, item: dict, consumer: str, purpose: str,
                        case_id: str, remote: RemoteNodes | None
                        ) -> tuple[dict, list[dict]]:
    """A check whose subject this node does not know, asked of the node that holds it."""
    if remote is None or check_answer.get("status") != "unknown_subject":
        return check_answer, []
    name = check_answer["check"]
    node = remote.route(str(item.get("subject", "")), f"verify/{name}")
    if node is None:
        return check_answer, []
    args = {k: item[k] for k in ("subject", "other", "division") if k in item}
    outcome = await remote.ask(node, RemoteRequest(f"verify/{name}", consumer, purpose,
                                                   case_id, args))
    if outcome.reason is not None or "error" in (outcome.body or {}):
        reason = outcome.reason or "REMOTE_REFUSED"
        return ({"check": name, "status": "unavailable", "reason": reason, "node": node},
                [outcome.record()])
    body = {k: v for k, v in (outcome.body or {}).items() if k != "case_id"}
    return {**body, "node": node}, [outcome.record()]
