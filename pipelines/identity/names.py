"""Personal names as delivered, normalised for comparison and flagged — never silently replaced.

What arrives (DOMAIN.md §4.4): spaces inside Chinese names, full-width letters and digits, several
middle dots in minority and foreign names (买买提·艾力), traditional characters beside simplified
ones, rare characters (生僻字, CJK extensions) and private-use code points from old systems, and
"?" / "□" where an export could not encode a character. `normalise_name` returns the cosmetic
normal form (`value`), what it noticed (`flags`), the simplified-character form used for matching
(`simplified`; differs from `value` only when traditional characters were present) and a pinyin
key for homophones (张伟 / 章伟 → "zhang wei"). The stored value stays what the provider sent.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

_SPACES = re.compile(r"[\s\u3000]+")
_DOTS = re.compile(r"\s*[·•‧・．.\u00b7\u2022\u2027\u30fb\uff0e]\s*")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]")
_RARE = re.compile(r"[\u3400-\u4dbf\U00020000-\U0003ffff]")  # CJK extensions A and B+
_PRIVATE = re.compile(r"[\ue000-\uf8ff\U000f0000-\U0010ffff]")
_SUBSTITUTES = re.compile(r"[?？□�]")
_LATIN = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class NameForm:
    raw: str
    value: str  # cosmetic normal form: whitespace, full-width, middle dots
    simplified: str  # value in simplified characters (for matching only)
    pinyin: str  # toneless pinyin of `simplified`, words separated by spaces
    flags: frozenset[str]

    @property
    def usable_for_matching(self) -> bool:
        """A name with substituted or private-use characters cannot be compared character by
        character; linking falls back to other attributes."""
        return not ({"substitution", "private_use"} & self.flags) and bool(self.value)


@functools.cache
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def _fullwidth_to_ascii(s: str) -> str:
    return "".join(chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else
                   (" " if c == "\u3000" else c) for c in s)


def normalise_name(raw: str | None) -> NameForm | None:
    if raw is None:
        return None
    flags: set[str] = set()
    s = unicodedata.normalize("NFC", raw)
    half = _fullwidth_to_ascii(s)
    if half != s and any("\uff01" <= c <= "\uff5e" for c in s):
        flags.add("fullwidth")
    s = half
    dotted = _DOTS.sub("·", s.strip())
    if dotted != s.strip() and _HAN.search(s):
        flags.add("middle_dot")
    else:
        dotted = s.strip()
    s = dotted
    if _LATIN.search(s) and not _HAN.search(s):
        flags.add("latin")
        value = _SPACES.sub(" ", s).strip().upper()  # foreign names: words kept, case folded
    else:
        value = _SPACES.sub("", s)
    if value != s.strip() and "latin" not in flags:
        flags.add("whitespace")
    if _RARE.search(value):
        flags.add("rare_char")
    if _PRIVATE.search(value):
        flags.add("private_use")
    if _SUBSTITUTES.search(value):
        flags.add("substitution")
    simplified = _t2s().convert(value) if _HAN.search(value) else value
    if simplified != value:
        flags.add("traditional")
    return NameForm(raw, value, simplified, _pinyin(simplified), frozenset(flags))


def _pinyin(s: str) -> str:
    from pypinyin import lazy_pinyin

    if not _HAN.search(s):
        return s.lower()
    return " ".join(p for p in lazy_pinyin(s.replace("·", " "), errors="ignore") if p.strip())
