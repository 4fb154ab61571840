"""Enterprise identifiers as linking keys: USCC, the organisation code inside it, customs code.

One enterprise is named by a unified social credit code (GB 32100), by the GB 11714 organisation
code older records carry (positions 9–17 of the USCC), and, in customs, by a 10-digit customs code
whose region is the first four digits of the registrant's division. `enterprise_keys` returns every
deterministic key a record gives: a record with only an organisation code still meets the USCC
records of the same enterprise through it. Invalid codes are not keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.catalog.identifiers import (
    is_valid_customs_code,
    is_valid_org_code,
    is_valid_uscc,
    normalize_citizen_id,
    uscc_org_code,
)


@dataclass(frozen=True)
class EnterpriseKeys:
    uscc: str | None
    org_code: str | None  # printed form XXXXXXXX-X
    customs_code: str | None
    invalid: tuple[str, ...] = ()  # which delivered codes were not valid (not used as keys)

    def keys(self) -> list[str]:
        return [f"{k}:{v}" for k, v in (("uscc", self.uscc), ("org", self.org_code),
                                        ("customs", self.customs_code)) if v]


def _fold(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    return normalize_citizen_id(raw).replace("-", "")


def enterprise_keys(uscc: str | None = None, org_code: str | None = None,
                    customs_code: str | None = None) -> EnterpriseKeys:
    invalid = []
    u = _fold(uscc)
    if u is not None and not is_valid_uscc(u):
        invalid.append("uscc")
        u = None
    org = None
    if u is not None:
        org = uscc_org_code(u)
    o = _fold(org_code)
    if o is not None:
        printed = f"{o[:8]}-{o[8:]}" if len(o) == 9 else o
        if not is_valid_org_code(printed):
            invalid.append("org_code")
        elif org is not None and printed != org:
            invalid.append("org_code")  # contradicts the USCC: the USCC wins, the pair is flagged
        else:
            org = printed
    c = _fold(customs_code)
    if c is not None and not is_valid_customs_code(c):
        invalid.append("customs_code")
        c = None
    return EnterpriseKeys(u, org, c, tuple(invalid))
