"""The common shape of one delivered batch after parsing, whatever its delivery (bulk or API).

Both connectors turn what they received into a `ParsedBatch`: every readable row as strings in the
catalogue's column order (only fields the hub may store), every unreadable row with its reason, and
incidents about the columns (over-shared or undeclared fields). Typing and the warehouse load
happen later, from the landed copy, so a batch is parsed exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from pipelines.catalog.model import Resource
from pipelines.backflow.drift import Drift, header_drift
from pipelines.backflow.errors import TerminalFailure

STANDARD_FIELDS = ("CZLX", "GXSJ")
LINEAGE_FIELDS = ("_file", "_line")


class BatchRejected(TerminalFailure):
    """The batch is unusable as a whole (checksum, row count, truncation, missing part or key column).

    Nothing of it is loaded; it is taken again when the provider delivers it again. The evidence
    the rejection records travels with it.
    """

    code: str
    message: str
    drift: list[Drift]  # schema drift: the exact differences (pipelines.backflow.drift)
    batch_id: str | None  # None where the caller names the batch (a drop's folder)
    contract_results: list[list]  # ops.contract_results rows of a contract that blocked the batch

    def __init__(self, code: str, message: str, drift: list[Drift] | None = None, *,
                 batch_id: str | None = None, contract_results: list[list] | None = None):
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.drift = list(drift or [])
        self.batch_id = batch_id
        self.contract_results = list(contract_results or [])


@dataclass(frozen=True)
class RejectedRow:
    """A row that could not even be read into columns (bad bytes, wrong column count)."""

    file: str
    line: int
    reason_code: str
    reason: str
    raw_line: str | None  # None when redacting was needed (the row may carry not-shared values)


@dataclass(frozen=True)
class Incident:
    """Something about a batch's columns governance must see. Never carries values."""

    kind: str  # oversharing_forbidden_field | undeclared_field
    field: str
    rows: int
    detail: str


@dataclass
class ParsedBatch:
    resource: str
    batch_id: str
    mode: str  # incremental | full
    received: int
    table: pa.Table  # stored fields + CZLX + GXSJ as strings, plus _file, _line
    rejected: list[RejectedRow] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)


def output_columns(resource: Resource) -> list[str]:
    return [f.code for f in resource.stored_fields] + list(STANDARD_FIELDS)


@dataclass(frozen=True)
class HeaderPlan:
    """What to keep, drop and report for the columns a delivery arrived with."""

    keep: list[str]  # columns present and storable
    forbidden: list[str]  # declared sharing N: removed, incident
    undeclared: list[str]  # not in the list at all: removed, incident

    @property
    def must_redact_raw(self) -> bool:
        return bool(self.forbidden or self.undeclared)


def plan_header(resource: Resource, header: list[str], batch_id: str | None = None) -> HeaderPlan:
    """Decide what happens to each delivered column (`batch_id` names the batch in a rejection).

    Extra columns (not shared, or not declared) are removed with an incident. A declared column that
    is absent rejects the batch whole (schema drift): its values may have arrived under another name
    and would be lost, so the provider must redeliver with the declared header.
    """
    wanted = output_columns(resource)
    forbidden_set = set(resource.forbidden_fields)
    keep = [c for c in header if c in wanted]
    forbidden = [c for c in header if c in forbidden_set]
    undeclared = [c for c in header if c not in wanted and c not in forbidden_set]
    drift = header_drift(wanted, header, forbidden_set)
    if any(d.kind in ("missing", "renamed") for d in drift):
        raise BatchRejected(
            "schema_drift",
            f"{resource.code}: the delivered columns differ from the responsibility list: "
            + "; ".join(str(d) for d in drift) +
            " — ask the provider to redeliver with the declared header", drift,
            batch_id=batch_id)
    return HeaderPlan(keep, forbidden, undeclared)


def column_incidents(plan: HeaderPlan, counts: dict[str, int]) -> list[Incident]:
    """Incidents for removed columns; `counts` = rows carrying a value in each removed column."""
    out = [
        Incident("oversharing_forbidden_field", c, counts.get(c, 0),
                 "field is 不予共享 (N) in the responsibility list; removed before storage")
        for c in plan.forbidden
    ]
    out += [
        Incident("undeclared_field", c, counts.get(c, 0),
                 "field is not declared in the responsibility list; removed before storage")
        for c in plan.undeclared
    ]
    return out


def finish_table(resource: Resource, columns: dict[str, pa.Array], n: int) -> pa.Table:
    """Assemble the landed table in catalogue order; absent declared columns become null."""
    arrays = []
    for c in output_columns(resource):
        arrays.append(columns[c] if c in columns else pa.nulls(n, pa.string()))
    arrays += [columns["_file"], columns["_line"]]
    names = output_columns(resource) + list(LINEAGE_FIELDS)
    return pa.Table.from_arrays(arrays, names=names)
