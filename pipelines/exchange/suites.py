"""The signing suites of the exchange: Ed25519 with SHA-256 (the default), and the 国密 suite SM2
with SM3 (GB/T 32918, GB/T 32905) as a deployment choice.

A suite hashes a body, signs the canonical header bytes with a node's private key and verifies
them with its public key. Keys travel as hex text (raw 32-byte Ed25519 keys; SM2's 32-byte private
scalar and 64-byte uncompressed public point x||y). Ed25519 comes from `cryptography` (OpenSSL).
SM2 and SM3 come from `gmssl_pyx`, a maintained C extension over the GmSSL library, which its
binary wheels link statically (no system GmSSL, nothing built on install): about 0.25 ms to sign
and 0.55 ms to verify here, where pure-Python implementations take milliseconds per step. Its
whole-message signing call takes ~2.7 ms, so this suite signs and verifies through its SM3-digest
calls and builds the digest itself, e = SM3(Z || message), Z from the default user id
"1234567812345678" and the signer's public point (GB/T 32918.2). `gmssl_pyx` has no call for a
private key's public point: `_sm2_public` computes it once per key (cached) and checks it by a
signature GmSSL verifies. GmSSL prints two diagnostic lines to stderr for every signature that
fails to verify."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import gmssl_pyx as gm
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                             encode_dss_signature)

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
    """SM2 signatures over SM3 digests with the default user id (GB/T 32918.2's Z value: SM3 of
    the id's bit length, the id, the curve's a, b and base point and the signer's public point;
    e = SM3(Z || message)). Signatures travel as r||s, 64 hex characters each."""

    name = "sm2-sm3"

    def digest(self, data: bytes) -> str:
        return gm.sm3_hash(data).hex()

    def generate(self) -> KeyPair:
        public, private = gm.sm2_key_generate()
        return KeyPair(self.name, private.hex(), public.hex())

    def sign(self, private: str, data: bytes) -> str:
        d = bytes.fromhex(private)
        if len(d) != 32:
            raise ValueError("an SM2 private key is 32 bytes (64 hex characters)")
        public = _sm2_public(d)
        r, s = decode_dss_signature(gm.sm2_sign_sm3_digest(d, _sm2_e(public, data)))
        return f"{r:064x}{s:064x}"

    def verify(self, public: str, signature: str, data: bytes) -> bool:
        try:
            point, sig = bytes.fromhex(public), bytes.fromhex(signature)
            if len(point) != 64 or len(sig) != 64:
                return False
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                       int.from_bytes(sig[32:], "big"))
            return bool(gm.sm2_verify_sm3_digest(point, _sm2_e(point, data), der))
        except (ValueError, TypeError, gm.GmsslInnerError):
            return False


# GB/T 32918.5's recommended curve: y^2 = x^3 + ax + b over F_p, base point G of prime order n
_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
_A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
_GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
_GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
_DEFAULT_ID = b"1234567812345678"
_Z_PREFIX = (len(_DEFAULT_ID) * 8).to_bytes(2, "big") + _DEFAULT_ID + b"".join(
    v.to_bytes(32, "big") for v in (_A, _B, _GX, _GY))


@lru_cache(maxsize=256)
def _sm2_z(public: bytes) -> bytes:
    """Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA), the signer's identity digest."""
    return gm.sm3_hash(_Z_PREFIX + public)


def _sm2_e(public: bytes, data: bytes) -> bytes:
    return gm.sm3_hash(_sm2_z(public) + data)


def _double(x: int, y: int, z: int) -> tuple[int, int, int]:
    """2P in Jacobian coordinates (x/z^2, y/z^3; z = 0 is the point at infinity), with a = -3."""
    zz, yy = z * z % _P, y * y % _P
    m = 3 * (x - zz) * (x + zz) % _P
    s = 4 * x * yy % _P
    x3 = (m * m - 2 * s) % _P
    return x3, (m * (s - x3) - 8 * yy * yy) % _P, 2 * y * z % _P


def _add_g(x: int, y: int, z: int) -> tuple[int, int, int]:
    """P + G, P in Jacobian coordinates."""
    if z == 0:
        return _GX, _GY, 1
    zz = z * z % _P
    h, r = (_GX * zz - x) % _P, (_GY * z * zz - y) % _P
    if h == 0:
        return _double(x, y, z) if r == 0 else (0, 1, 0)
    hh = h * h % _P
    hhh, v = h * hh % _P, x * hh % _P
    x3 = (r * r - hhh - 2 * v) % _P
    return x3, (r * (v - x3) - y * hhh) % _P, z * h % _P


@lru_cache(maxsize=64)
def _sm2_public(private: bytes) -> bytes:
    """The public point d*G of a private key, x||y (64 bytes): computed once per key (~2 ms with
    the check), then checked by signing and verifying with GmSSL, since a wrong point would give
    signatures that verify nowhere."""
    d = int.from_bytes(private, "big")
    if not 1 <= d <= _N - 2:  # GB/T 32918.1: d in [1, n-2]
        raise ValueError("an SM2 private key is a number from 1 to n-2")
    x, y, z = 0, 1, 0
    for bit in f"{d:b}":
        x, y, z = _double(x, y, z)
        if bit == "1":
            x, y, z = _add_g(x, y, z)
    zi = pow(z, -1, _P)  # z != 0: 0 < d < n
    public = (x * zi * zi % _P).to_bytes(32, "big") + (y * zi * zi * zi % _P).to_bytes(32, "big")
    probe = gm.sm3_hash(b"sm2 public point check")
    if not gm.sm2_verify_sm3_digest(public, probe, gm.sm2_sign_sm3_digest(private, probe)):
        raise RuntimeError("the SM2 public point computed for a private key does not verify its "
                           "signatures")
    return public


ED25519, SM2_SM3 = Ed25519Suite(), Sm2Sm3Suite()
SUITES = {s.name: s for s in (ED25519, SM2_SM3)}


def suite(name: str):
    try:
        return SUITES[name]
    except KeyError:
        raise ExchangeRefused("unsupported_suite", f"suite {name!r} is not one of the exchange's "
                              f"({', '.join(SUITES)}): sign with one of them") from None
