"""Which golden candidates a consumer may receive for a purpose.

A golden value is a release of the record it came from: of the resource fields its value (and its
as-of) is computed from, and of the record's key, which its provenance names. A consumer may
receive a candidate for a purpose exactly when the responsibility list's sharing conditions allow
every one of those fields. Candidates are told apart by resource (the store keeps no more), so a
resource that feeds one golden field through several roles (a marriage's husband and wife) is
released only when the fields of all of them are.

A field none of whose sources may be released is withheld, and the reason is decided by the list
alone, never by the data: a withheld field says nothing about whether a value exists.
"""

from __future__ import annotations

import re

from pipelines.catalog.model import Catalog
from pipelines.identity.golden import golden_config

_STRING = re.compile(r"'(?:[^']|'')*'")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REASONS = ("NOT_SHAREABLE", "CONSUMER_NOT_ENTITLED", "PURPOSE_NOT_ENTITLED")  # weakest last


def _fields_named(expression: str, declared: set[str]) -> set[str]:
    """The resource's declared fields an SQL expression reads (string literals aside)."""
    return {w for w in _WORD.findall(_STRING.sub("", expression)) if w in declared}


def source_fields(cat: Catalog, kind: str, field: str) -> dict[str, frozenset[str]]:
    """{resource: the fields a candidate of golden field `kind.field` from it discloses}."""
    out: dict[str, set[str]] = {}
    for src in golden_config()[kind][field]["from"]:
        r = cat.resource(src["resource"])
        declared = {f.code for f in r.fields}
        named = _fields_named(src["value"], declared) | _fields_named(src.get("as_of", ""),
                                                                      declared)
        if not src.get("aggregate"):  # an aggregate's provenance names no record
            named |= set(r.primary_key)
        out.setdefault(r.code, set()).update(named)
    return {resource: frozenset(fields) for resource, fields in out.items()}


def _refusal(cat: Catalog, resource: str, fields: frozenset[str], consumer: str,
             purpose: str) -> str | None:
    """None when every field may go to the consumer for the purpose, else the strongest reason
    one of them may not."""
    r = cat.resource(resource)
    reasons = set()
    for code in fields:
        sharing = r.sharing_of(r.field(code))
        if sharing.allows(consumer, purpose):
            continue
        if sharing.type == "N":
            reasons.add("NOT_SHAREABLE")
        elif consumer not in sharing.consumers:
            reasons.add("CONSUMER_NOT_ENTITLED")
        else:
            reasons.add("PURPOSE_NOT_ENTITLED")
    return next((reason for reason in _REASONS if reason in reasons), None)


class Release:
    """What one consumer may receive of one golden field for one purpose."""

    __slots__ = ("reason", "resources")

    def __init__(self, resources: frozenset[str], reason: str | None) -> None:
        self.resources = resources  # the sources whose candidates may be released
        self.reason = reason  # when there are none: why (the weakest obstacle of any source)


_CACHE: dict[tuple, Release] = {}  # bounded: fields × consumers × purposes of the list


def release(cat: Catalog, kind: str, field: str, consumer: str, purpose: str) -> Release:
    """The sources of `kind.field` the consumer may receive for the purpose. Callers pass only a
    consumer that authenticated and a purpose of the list, so the cache stays bounded."""
    key = (id(cat), kind, field, consumer, purpose)
    found = _CACHE.get(key)
    if found is None:
        refusals = {resource: _refusal(cat, resource, fields, consumer, purpose)
                    for resource, fields in source_fields(cat, kind, field).items()}
        allowed = frozenset(r for r, reason in refusals.items() if reason is None)
        reason = None if allowed else max(refusals.values(), key=_REASONS.index)
        found = _CACHE[key] = Release(allowed, reason)
    return found
