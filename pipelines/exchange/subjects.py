"""The subjects of a request between nodes as every audit log names them ("kind:key", then
hashed by each log with its own key), so the requester's, the exchange's and the answerer's
entries about one person can each be found from that person's own access log."""

from __future__ import annotations

from pipelines.catalog.identifiers import normalize_citizen_id
from pipelines.exchange.messages import RemoteRequest
from pipelines.serving.templates import templates
from pipelines.serving.verify import checks


def audit_subjects(asked: RemoteRequest) -> list[str]:
    if asked.kind == "prefill":
        template = templates().get(asked.name)
        roles = template.roles if template else {}
        return [f"{roles[r].subject}:{normalize_citizen_id(k)}"
                for r, k in asked.args["subjects"].items()
                if r in roles and isinstance(k, str)]
    spec = checks().get(asked.name, {})
    return [f"{spec.get(role, 'person') if role == 'other' else spec.get('subject', 'person')}:"
            f"{normalize_citizen_id(asked.args[role])}"
            for role in ("subject", "other") if isinstance(asked.args.get(role), str)]
