"""The 国密 suite against the standards and against an independent implementation: SM3 known
answers (GB/T 32905), the SM2 signature example of GB/T 32918 (public point, Z value, digest e,
and its r||s verifying), and signatures that cross both ways with the pure-Python `gmssl` 3.2.2
(`CryptSM2.sign_with_sm3` / `verify_with_sm3`, default user id). Then the suite's own contract:
round trip, and False (never an exception) for altered data or a malformed key or signature."""

import pytest
from gmssl import func as gmssl_func
from gmssl import sm2 as gmssl_sm2
from gmssl import sm3 as gmssl_sm3

from pipelines.exchange import suites
from pipelines.exchange.suites import SM2_SM3

pytestmark = pytest.mark.unit

N = int(gmssl_sm2.default_ecc_table["n"], 16)

# GB/T 32918 (GM/T 0003.5) example on the recommended curve: signer A with the default id
STD_D = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8"
STD_PUBLIC = ("09f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020"
              "ccea490ce26775a52dc6ea718cc1aa600aed05fbf35e084a6632f6072da9ad13")
STD_MESSAGE = b"message digest"
STD_Z = "b2e14c5c79c6df5b85f4fe7ed8db7a262b9da7e07ccb0ea9f4747b8ccda8a4f3"
STD_E = "f0b43e94ba45accaace692ed534382eb17e6ab5a19ce7b31f4486fdfc0d28640"
STD_K = "59276e27d506861a16680f3ad9c02dccef3cc1fa3cdbe4ce6d54b80deac1bc21"
STD_SIGNATURE = ("f5a03b0648d2c4630eeac513e1bb81a15944da3827d5b74143ac7eaceee720b3"
                 "b1b6aa29df212fd8763182bc0d421ca1bb9038fd1f7f42d4840b69c485bbc1aa")


def gmssl(private: str, public: str) -> gmssl_sm2.CryptSM2:
    c = gmssl_sm2.CryptSM2(public_key="", private_key=private)
    # set after construction: its constructor strips leading "0"/"4" characters from a key that
    # starts with "04", which corrupts one public point in 256 given as x||y
    c.public_key = public
    return c


def test_sm3_known_answers():
    assert SM2_SM3.digest(b"abc") == \
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert SM2_SM3.digest(b"abcd" * 16) == \
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    for data in (b"", b"abc", bytes(range(256)) * 5):
        assert SM2_SM3.digest(data) == gmssl_sm3.sm3_hash(gmssl_func.bytes_to_list(data))


def test_the_standards_signature_example():
    public = bytes.fromhex(STD_PUBLIC)
    assert suites._sm2_public(bytes.fromhex(STD_D)) == public
    assert suites._sm2_z(public).hex() == STD_Z
    assert suites._sm2_e(public, STD_MESSAGE).hex() == STD_E
    assert SM2_SM3.verify(STD_PUBLIC, STD_SIGNATURE, STD_MESSAGE)
    assert not SM2_SM3.verify(STD_PUBLIC, STD_SIGNATURE, b"message digesT")
    # the reference implementation gives the example's r||s from the example's k
    assert gmssl(STD_D, STD_PUBLIC).sign_with_sm3(STD_MESSAGE, STD_K) == STD_SIGNATURE
    signature = SM2_SM3.sign(STD_D, STD_MESSAGE)
    assert SM2_SM3.verify(STD_PUBLIC, signature, STD_MESSAGE)
    assert gmssl(STD_D, STD_PUBLIC).verify_with_sm3(signature, STD_MESSAGE)


@pytest.mark.parametrize("i", range(8))
def test_signatures_cross_both_ways_with_gmssl(i):
    pair = SM2_SM3.generate()
    assert len(pair.private) == 64 and len(pair.public) == 128
    reference = gmssl(pair.private, pair.public)
    # the public point is d*G by the reference's own arithmetic
    assert reference._kg(int(pair.private, 16), gmssl_sm2.default_ecc_table["g"]) == pair.public
    data = b'{"case_id": "C-%d", "fields": ["child.name"]}' % i
    ours = SM2_SM3.sign(pair.private, data)
    assert len(ours) == 128 and ours == ours.lower()
    assert reference.verify_with_sm3(ours, data)
    assert not reference.verify_with_sm3(ours, data + b" ")
    theirs = reference.sign_with_sm3(data)
    assert SM2_SM3.verify(pair.public, theirs, data)
    assert not SM2_SM3.verify(pair.public, theirs, data + b" ")


def test_the_public_point_derived_from_a_private_key_is_gmssls():
    for _ in range(8):
        pair = SM2_SM3.generate()
        assert suites._sm2_public.__wrapped__(bytes.fromhex(pair.private)).hex() == pair.public
    for d in (1, 2, N - 2):
        public = suites._sm2_public.__wrapped__(d.to_bytes(32, "big")).hex()
        assert gmssl(f"{d:064x}", "")._kg(d, gmssl_sm2.default_ecc_table["g"]) == public


def test_round_trip_and_altered_data():
    pair = SM2_SM3.generate()
    data = b"canonical header bytes"
    signature = SM2_SM3.sign(pair.private, data)
    assert SM2_SM3.verify(pair.public, signature, data)
    assert not SM2_SM3.verify(pair.public, signature, data + b"!")
    assert not SM2_SM3.verify(pair.public, signature, b"")
    other = SM2_SM3.generate()
    assert not SM2_SM3.verify(other.public, signature, data)
    flipped = signature[:10] + ("0" if signature[10] != "0" else "1") + signature[11:]
    assert not SM2_SM3.verify(pair.public, flipped, data)


def test_malformed_signatures_and_keys_are_false_not_errors():
    pair = SM2_SM3.generate()
    data = b"x"
    good = SM2_SM3.sign(pair.private, data)
    n = f"{N:064x}"
    bad_signatures = ["", "00", good[:-2], good + "00", "zz" * 64, " " + good[1:], "0" * 128,
                      n + good[64:], good[:64] + n, "f" * 128, good[:64] + "0" * 64, None, 5,
                      b"\x00" * 64]
    for signature in bad_signatures:
        assert SM2_SM3.verify(pair.public, signature, data) is False, signature
    x, y = int(pair.public[:64], 16), int(pair.public[64:], 16)
    off_curve = f"{x:064x}{(y + 1) % (2 ** 256):064x}"
    bad_keys = ["", pair.public[:-2], "04" + pair.public, "0" * 128, "f" * 128, off_curve,
                "g" * 128, None, 7, bytes.fromhex(pair.public)]
    for public in bad_keys:
        assert SM2_SM3.verify(public, good, data) is False, public


def test_an_invalid_private_key_is_refused_when_signing():
    for private in ("", "00" * 32, f"{N - 1:064x}", f"{N:064x}", "ab" * 31, "zz" * 32):
        with pytest.raises(ValueError):
            SM2_SM3.sign(private, b"x")
