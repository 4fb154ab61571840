"""The signing suites of the exchange: Ed25519 with SHA-256 (the default), and the 国密 suite SM2
with SM3 (GB/T 32918, GB/T 32905) as a deployment choice.

A suite hashes a body, signs the canonical header bytes with a node's private key and verifies
them with its public key. Keys travel as hex text (raw 32-byte Ed25519 keys; SM2's 32-byte private
scalar and 64-byte uncompressed public point). Ed25519 comes from `cryptography` (OpenSSL); SM2/SM3
from `gmssl`, a pure-Python implementation (~6 ms to sign and ~10 ms to verify here, against
~0.1 ms for Ed25519: BENCHMARKS.md)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from gmssl import func as sm_func
from gmssl import sm2, sm3

from pipelines.exchange.errors import ExchangeRefused


@dataclass(frozen=True)
class KeyPair:
    suite: str
    private: str  # hex; kept by the node alone
    public: str  # hex; published in the directory


class Ed25519Suite:
    name = "ed25519-sha256"

    def digest(self, data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def generate(self) -> KeyPair:
        key = Ed25519PrivateKey.generate()
        return KeyPair(self.name, key.private_bytes_raw().hex(),
                       key.public_key().public_bytes_raw().hex())

    def sign(self, private: str, data: bytes) -> str:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(private)).sign(data).hex()

    def verify(self, public: str, signature: str, data: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(public)).verify(
                bytes.fromhex(signature), data)
        except (InvalidSignature, ValueError):
            return False
        return True


class Sm2Sm3Suite:
    name = "sm2-sm3"
    _N = int(sm2.default_ecc_table["n"], 16)

    def digest(self, data: bytes) -> str:
        return sm3.sm3_hash(sm_func.bytes_to_list(data))

    def generate(self) -> KeyPair:
        d = secrets.randbelow(self._N - 1) + 1
        private = f"{d:064x}"
        # gmssl has no key-generation call: its point multiplication gives the public point
        public = sm2.CryptSM2(public_key="", private_key=private)._kg(d, sm2.default_ecc_table["g"])
        return KeyPair(self.name, private, public)

    def sign(self, private: str, data: bytes) -> str:
        # the public key enters SM2's Z value (with the default user id); derive it once per key
        public = _sm2_public(private)
        return sm2.CryptSM2(public_key=public, private_key=private).sign_with_sm3(data)

    def verify(self, public: str, signature: str, data: bytes) -> bool:
        try:
            return bool(sm2.CryptSM2(public_key=public, private_key="").verify_with_sm3(
                signature, data))
        except (ValueError, TypeError, IndexError):
            return False


_SM2_PUBLIC: dict[str, str] = {}


def _sm2_public(private: str) -> str:
    if private not in _SM2_PUBLIC:
        if len(_SM2_PUBLIC) > 64:
            _SM2_PUBLIC.clear()
        _SM2_PUBLIC[private] = sm2.CryptSM2(public_key="", private_key=private)._kg(
            int(private, 16), sm2.default_ecc_table["g"])
    return _SM2_PUBLIC[private]


ED25519, SM2_SM3 = Ed25519Suite(), Sm2Sm3Suite()
SUITES = {s.name: s for s in (ED25519, SM2_SM3)}


def suite(name: str):
    try:
        return SUITES[name]
    except KeyError:
        raise ExchangeRefused("unsupported_suite", f"suite {name!r} is not one of the exchange's "
                              f"({', '.join(SUITES)}): sign with one of them") from None
