"""A node answering another node's request (POST /v1/exchange on the prefill service), which
comes only through the exchange: the sender's signature and the exchange's stamp are checked
against the directory, the time window and the nonce against replays; then the request is
answered exactly as a local prefill or check would be for that department and purpose, under
THIS node's list (fields it does not grant are `withheld` with the reason code), each available
field's source naming this node; the answer is written to this node's audit log (so the data
subject's access log lists the remote request) and signed before it leaves."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from pipelines.catalog.model import Catalog
from pipelines.exchange.envelope import Envelope, Signer, open_envelope, seal
from pipelines.exchange.errors import ExchangeRefused
from pipelines.exchange.messages import RemoteRequest, parse_request
from pipelines.exchange.relay import DirectoryFile
from pipelines.exchange.replay import ReplayGuard
from pipelines.serving.prefill import RequestError, prefill
from pipelines.serving.store import Store
from pipelines.serving.templates import Template
from pipelines.serving.verify import verify_one


@dataclass
class Answered:
    wire: bytes  # the signed answer envelope
    audit: dict  # the audit entry to write before sending it


def with_node(body: dict, node: str) -> dict:
    """The answer with this node named in every available field's source."""
    for role in body.get("roles", {}).values():
        fields = role.get("fields") if isinstance(role, dict) else None
        if role.get("status") == "found" and isinstance(fields, dict):
            role["node"] = node
            for code, env in fields.items():
                if env.get("status") == "available":
                    fields[code] = {**env, "source": {**env["source"], "node": node}}
    if isinstance(body.get("source"), dict):  # a check's answer
        body["source"] = {**body["source"], "node": node}
    return body


class Answering:
    def __init__(self, me: str, signer: Signer, directory: DirectoryFile,
                 templates: dict[str, Template], cat: Catalog) -> None:
        self.me, self.signer, self.directory = me, signer, directory
        self.templates, self.cat = templates, cat
        self.replay = ReplayGuard()

    def answer(self, raw: bytes, store: Store) -> Answered:
        """The signed answer and its audit entry; ExchangeRefused for a message that is not a
        stamped, signed, fresh request to this node."""
        env = Envelope.from_wire(raw)
        h = open_envelope(env, self.directory.get(), self.me, self.replay)
        if h["kind"] != "request":
            raise ExchangeRefused("malformed", "a node answers requests only")
        asked = parse_request(env.body)
        body, subjects, released, withheld, outcome = self._local_answer(asked, store)
        payload = orjson.dumps(body)
        sealed = seal("answer", h["request_id"], h["sender"], payload, self.signer)
        audit = {"consumer": f"{h['sender']}/{asked.department}", "purpose": asked.purpose,
                 "template": asked.name if asked.kind == "prefill" else f"check:{asked.name}",
                 "case_id": asked.case_id, "subjects": subjects, "released": released,
                 "withheld": withheld, "answer": payload,
                 "detail": {"exchange": h["request_id"], "requester": h["sender"],
                            "request_digest": h["body_digest"],
                            "answer_digest": sealed.header["body_digest"], "outcome": outcome}}
        return Answered(sealed.to_wire(), audit)

    def _local_answer(self, asked: RemoteRequest, store: Store):
        try:
            if asked.kind == "prefill":
                template = self.templates.get(asked.name)
                if template is None:
                    raise RequestError(400, "invalid_request", f"no template {asked.name}")
                a = prefill(store, self.cat, template, asked.department, asked.purpose,
                            asked.case_id, asked.args["subjects"])
                return with_node(a.body, self.me), a.subjects, a.released, a.withheld, \
                    "answered"
            if asked.kind == "verify":
                result, check = verify_one(store, self.cat, asked.department, asked.purpose,
                                           {"check": asked.name, **asked.args})
                released = [result["check"]] if result["status"] != "withheld" else []
                return (with_node({"case_id": asked.case_id, **result}, self.me),
                        check.subjects, released, [] if released else [result["check"]],
                        "answered")
            raise RequestError(400, "invalid_request", f"unknown service {asked.service}")
        except RequestError as e:
            # refused as a local request would be (unknown subject, wrong department, ...):
            # the refusal itself is the signed answer
            return e.body(), [], [], [], f"refused:{e.code}"
