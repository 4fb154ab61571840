"""Documents as linking keys: IDs in their 18-digit form, other documents folded, invalid numbers
never deterministic keys."""

import pytest

from pipelines.identity.documents import document_key

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("raw", ["11010519491231002X", "11010519491231002x", " 110105 19491231002X ",
                                 "１１０１０５１９４９１２３１００２Ｘ"])
def test_cosmetic_damage_gives_one_key(raw):
    k = document_key("1", raw)
    assert (k.key, k.valid, k.upgraded_from_15) == ("1:11010519491231002X", True, False)


def test_a_legacy_15_digit_number_is_upgraded_to_its_18_digit_key():
    k = document_key("1", "110105491231002")
    assert (k.number, k.valid, k.upgraded_from_15) == ("11010519491231002X", True, True)


def test_a_broken_id_is_not_a_deterministic_key():
    k = document_key("1", "110105194912310021")  # wrong check character
    assert k.valid is False and k.number == "110105194912310021"


def test_other_documents_are_folded_not_turned_into_ids():
    assert document_key("2", "e 1234-5678").key == "2:E12345678"
    assert document_key("3", "H12345678").valid
    assert document_key("2", "??").valid is False
    assert document_key("1", "  ") is None and document_key("2", None) is None
