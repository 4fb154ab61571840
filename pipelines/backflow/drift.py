"""Schema drift: how the columns a batch arrived with differ from the responsibility list, exactly.

missing   a declared field is absent (the batch is rejected whole: its values may be under another
          name and would be lost)
renamed   a missing field and an unexpected one that look alike (XBDM → XB): reported as a probable
          rename so the provider sees what to fix
extra     an unexpected field (undeclared, or declared not-shared): removed before storage
retyped   a declared field whose values mostly no longer parse as its type (e.g. a date format
          change): the batch is rejected whole
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

RENAME_SIMILARITY = 0.6  # difflib ratio above which a missing and an extra field look alike
RETYPED_SHARE = 0.5  # share of a field's values that must fail to parse to call it retyped
RETYPED_MIN_VALUES = 5


@dataclass(frozen=True)
class Drift:
    kind: str  # missing | renamed | extra | retyped
    field: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.field}: {self.detail}"


def header_drift(declared: list[str], header: list[str], not_shared: set[str]) -> list[Drift]:
    missing = [c for c in declared if c not in header]
    extra = [c for c in header if c not in declared]
    out: list[Drift] = []
    renamed_to: dict[str, str] = {}
    for m in missing:
        scored = sorted(((difflib.SequenceMatcher(None, m, e).ratio(), e) for e in extra
                         if e not in renamed_to.values()), reverse=True)
        if scored and (scored[0][0] >= RENAME_SIMILARITY or scored[0][1].startswith(m[:2])
                       and scored[0][0] >= 0.5):
            renamed_to[m] = scored[0][1]
    for m in missing:
        if m in renamed_to:
            out.append(Drift("renamed", m, f"declared {m} missing; delivered {renamed_to[m]} "
                                           "instead (probably renamed)"))
        else:
            out.append(Drift("missing", m, f"declared {m} missing from the header"))
    for e in extra:
        if e in renamed_to.values():
            continue
        why = "declared not shared (N)" if e in not_shared else "not declared"
        out.append(Drift("extra", e, f"unexpected column {e} ({why}); removed before storage"))
    return out


def retyped(field: str, type_name: str, failed: int, non_null: int) -> Drift | None:
    if non_null >= RETYPED_MIN_VALUES and failed / non_null >= RETYPED_SHARE:
        return Drift("retyped", field, f"{failed} of {non_null} values do not parse as "
                                       f"{type_name}: the field's type or format changed")
    return None
