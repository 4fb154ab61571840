"""Name normalisation: cosmetic damage is normalised and flagged, variants are flagged and given a
matching form, damaged names are marked unusable for matching; the delivered value is never lost."""

import pytest

from pipelines.identity.names import normalise_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("raw, value, flags", [
    ("王芳", "王芳", set()),
    (" 王 芳\u3000", "王芳", {"whitespace"}),
    ("买买提 . 艾力", "买买提·艾力", {"middle_dot"}),  # spaces around a dot belong to it
    ("买买提•艾力", "买买提·艾力", {"middle_dot"}),
    ("ＬＩ　ＭＩＮＧ", "LI MING", {"fullwidth", "latin"}),
    ("john  smith", "JOHN SMITH", {"latin"}),
    ("王䶮", "王䶮", {"rare_char"}),
    ("王𠮷", "王𠮷", {"rare_char"}),
    ("李?华", "李?华", {"substitution"}),
    ("李□华", "李□华", {"substitution"}),
    ("李\ue123华", "李\ue123华", {"private_use"}),
])
def test_cosmetic_forms_and_flags(raw, value, flags):
    n = normalise_name(raw)
    assert (n.value, set(n.flags)) == (value, flags)
    assert n.raw == raw  # what the provider sent is kept


def test_traditional_characters_are_flagged_and_given_a_simplified_form_not_replaced():
    n = normalise_name("張國華")
    assert n.value == "張國華" and n.simplified == "张国华"
    assert n.flags == {"traditional"}
    assert n.pinyin == normalise_name("张国华").pinyin == "zhang guo hua"


def test_homophones_share_a_pinyin_key():
    assert normalise_name("张伟").pinyin == normalise_name("章伟").pinyin == "zhang wei"
    assert normalise_name("张伟").simplified != normalise_name("章伟").simplified


def test_damaged_names_cannot_be_compared_character_by_character():
    assert normalise_name("王芳").usable_for_matching
    assert not normalise_name("李?华").usable_for_matching
    assert not normalise_name("李\ue123华").usable_for_matching
    assert normalise_name("王䶮").usable_for_matching  # rare, but a real character
    assert normalise_name(None) is None
