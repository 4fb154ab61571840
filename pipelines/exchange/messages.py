"""The body of a request between nodes and how it is read: what a requesting department asks
another node for, for which purpose and case, about which subjects.

prefill/<template>: {"service", "department", "purpose", "case_id", "subjects": {role: key}}
verify/<check>:     {"service", "department", "purpose", "case_id", "subject", "other"?,
                     "division"?}
The answer's body is the answering node's own answer to it, as its local API would give it."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from pipelines.exchange.errors import ExchangeRefused


@dataclass(frozen=True)
class RemoteRequest:
    service: str
    department: str
    purpose: str
    case_id: str
    args: dict  # prefill: {"subjects": {...}}; verify: {"subject", "other"?, "division"?}

    @property
    def kind(self) -> str:
        return self.service.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.service.split("/", 1)[1]

    def subject_keys(self) -> list[str]:
        if self.kind == "prefill":
            return [v for v in self.args["subjects"].values() if isinstance(v, str)]
        return [v for k, v in self.args.items() if k in ("subject", "other") and
                isinstance(v, str)]

    def to_bytes(self) -> bytes:
        return orjson.dumps({"service": self.service, "department": self.department,
                             "purpose": self.purpose, "case_id": self.case_id, **self.args},
                            option=orjson.OPT_SORT_KEYS)


def parse_request(body: bytes) -> RemoteRequest:
    try:
        d = orjson.loads(body)
    except orjson.JSONDecodeError:
        d = None
    if not isinstance(d, dict) or not all(isinstance(d.get(k), str) for k in
                                          ("service", "department", "purpose", "case_id")):
        raise ExchangeRefused("malformed", "a request names service, department, purpose and "
                              "case_id")
    service = d["service"]
    kind = service.split("/", 1)[0]
    if kind == "prefill" and isinstance(d.get("subjects"), dict):
        args = {"subjects": d["subjects"]}
    elif kind == "verify" and isinstance(d.get("subject"), str):
        args = {k: d[k] for k in ("subject", "other", "division") if k in d}
    else:
        raise ExchangeRefused("malformed", "prefill/<template> takes subjects by role; "
                              "verify/<check> takes a subject")
    return RemoteRequest(service, d["department"], d["purpose"], d["case_id"], args)
