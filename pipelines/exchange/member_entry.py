"""A node's entry for the exchange's directory, derived from its own catalogue: its division code
and name (catalogs/node.yaml), where it answers, its public keys, and the evidence it offers — a
prefill per life-event template (catalogs/templates) and a yes/no check per verification
(catalogs/checks.yaml). Nothing of the entry is written by hand, so it cannot drift from what the
node really serves."""

from __future__ import annotations

from pathlib import Path

from pipelines.catalog.model import Catalog
from pipelines.exchange import keys
from pipelines.exchange.directory import Member, MemberKey
from pipelines.serving.templates import load_templates
from pipelines.serving.verify import checks


def services_of(cat: Catalog) -> tuple[str, ...]:
    prefill = [f"prefill/{code}" for code in sorted(load_templates(cat=cat))]
    verify = [f"verify/{name}" for name in sorted(checks())]
    return tuple(prefill + verify)


def member_entry(cat: Catalog, home: Path, endpoint: str) -> Member:
    return Member(cat.node.code, cat.node.name_zh, endpoint,
                  tuple(MemberKey(k["key_id"], k["suite"], k["public"])
                        for k in keys.public_keys(home)),
                  services_of(cat))
