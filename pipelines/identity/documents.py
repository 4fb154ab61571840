"""Identity documents as linking keys: (document type, normalised number), and what a key says.

A citizen ID is compared in its 18-digit form: cosmetic damage folded (full-width, spaces,
lowercase x), a legacy 15-digit number upgraded. A number that is still not a valid GB 11643 ID is
not a deterministic key (a typo would link two people): `DocumentKey.valid` is False and linkage
treats it as evidence for probabilistic matching only. Passports and the Hong Kong/Macao and Taiwan
permits (DOCUMENT_TYPE 2–4) are upper-cased without spaces or hyphens; they never turn into IDs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.catalog.identifiers import is_valid_citizen_id, normalize_citizen_id, upgrade_15_to_18

CITIZEN_ID = "1"  # DOCUMENT_TYPE 居民身份证 (catalogs/code_tables/DOCUMENT_TYPE.yaml)
_SEPARATORS = re.compile(r"[\s\-‐‑–—()（）]+")


@dataclass(frozen=True)
class DocumentKey:
    doc_type: str
    number: str
    valid: bool  # a deterministic key: a valid citizen ID, or a well-formed other document
    upgraded_from_15: bool = False

    @property
    def key(self) -> str:
        return f"{self.doc_type}:{self.number}"


def document_key(doc_type: str | None, raw: str | None) -> DocumentKey | None:
    """The linking key of one document; None when there is no number at all."""
    if raw is None or not raw.strip():
        return None
    doc_type = (doc_type or CITIZEN_ID).strip()
    if doc_type == CITIZEN_ID:
        n = normalize_citizen_id(raw)
        upgraded = False
        if len(n) == 15 and n.isdigit():
            n, upgraded = upgrade_15_to_18(n), True
        return DocumentKey(CITIZEN_ID, n, is_valid_citizen_id(n), upgraded)
    number = _SEPARATORS.sub("", normalize_citizen_id(raw))
    return DocumentKey(doc_type, number, bool(re.fullmatch(r"[A-Z0-9]{5,20}", number)))
