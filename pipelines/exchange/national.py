"""The national layer of the list (catalogs/exchange/national.yaml): which department may ask
another node for which service, for which purpose. The exchange checks it before a request
reaches a node; the answering node then applies its own list to every field."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipelines import paths
from pipelines.exchange.errors import ExchangeRefused

NATIONAL = paths.CATALOGS / "exchange" / "national.yaml"


@dataclass(frozen=True)
class Grant:
    departments: frozenset[str]
    purposes: frozenset[str]


@functools.cache
def national_layer(path: Path = NATIONAL) -> dict[str, Grant]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {service: Grant(frozenset(g["departments"]), frozenset(g["purposes"]))
            for service, g in data.items()}


def check_national(service: str, department: str, purpose: str,
                   layer: dict[str, Grant] | None = None) -> None:
    """Refuse (not_entitled) a request the national layer does not allow."""
    grant = (layer if layer is not None else national_layer()).get(service)
    if grant is None:
        raise ExchangeRefused("not_entitled", f"{service} is not a service nodes may ask each "
                              "other for (catalogs/exchange/national.yaml)")
    if department not in grant.departments or purpose not in grant.purposes:
        raise ExchangeRefused("not_entitled", f"{department} may not ask other nodes for "
                              f"{service} for purpose {purpose} (catalogs/exchange/national.yaml)")
