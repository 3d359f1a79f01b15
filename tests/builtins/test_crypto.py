"""Tests for the hashing, HMAC and private-key builtins and the Go codecs in pdp.builtins.crypto.

The differential tests run the same calls through ``opa eval`` (one batched call for results,
a few parallel strict-mode calls for error messages) and compare.
"""

from __future__ import annotations

import base64
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519
from opa_oracle import OPA, opa_batch, opa_strict_many

from pdp.builtins import crypto
from pdp.builtins._goencoding import go_base64_decode, pem_decode
from pdp.builtins._golang import GoError, go_quote_bytes
from pdp.builtins.base import BuiltinError, EvalContext
from pdp.values import rego_equal

needs_opa = pytest.mark.skipif(not OPA.exists(), reason="pinned opa binary not installed")
CTX = EvalContext(strict=True)
BUILTINS = {spec.name: spec.fn for spec in crypto.BUILTINS}


def call(name: str, *args: Any) -> Any:
    """Run a builtin as the host would: the value, or ("error", code, prefixed message)."""
    try:
        return BUILTINS[name](CTX, *args)
    except BuiltinError as err:
        message = f"{name}: {err.message}" if err.prefix else err.message
        return ("error", err.code, message)


def same(mine: Any, theirs: Any) -> bool:
    if isinstance(mine, tuple) or isinstance(theirs, tuple):
        return mine == theirs
    return rego_equal(mine, theirs)


# --- keys used across tests ---------------------------------------------------------------


def _pem(key: Any, fmt: serialization.PrivateFormat) -> str:
    encoding = serialization.Encoding.PEM
    return key.private_bytes(encoding, fmt, serialization.NoEncryption()).decode()


PKCS1 = serialization.PrivateFormat.TraditionalOpenSSL
PKCS8 = serialization.PrivateFormat.PKCS8


_SMALL_PRIMES = [n for n in range(3, 2000, 2) if all(n % d for d in range(3, int(n**0.5) + 1, 2))]


def _prime(rng: random.Random, bits: int) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if all(candidate % p for p in _SMALL_PRIMES) and all(
            pow(a, candidate - 1, candidate) == 1 for a in (2, 3, 5, 7)
        ):
            return candidate


def rsa_key(seed: int, bits: int = 1024) -> rsa.RSAPrivateKey:
    """A reproducible RSA key (fixed inputs make the fuzzed cases below stable)."""
    rng = random.Random(seed)
    e = 65537
    while True:
        p, q = _prime(rng, bits // 2), _prime(rng, bits // 2)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e:
            break
    d = pow(e, -1, phi)
    public = rsa.RSAPublicNumbers(e, p * q)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), public)
    return numbers.private_key()


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    rsa_private = rsa_key(1)
    return {
        "rsa_pkcs1": _pem(rsa_private, PKCS1),
        "rsa_pkcs8": _pem(rsa_private, PKCS8),
        "ec256_sec1": _pem(ec.derive_private_key(2**200 + 1, ec.SECP256R1()), PKCS1),
        "ec384_pkcs8": _pem(ec.derive_private_key(3**200, ec.SECP384R1()), PKCS8),
        "ec521_sec1": _pem(ec.derive_private_key(5**200, ec.SECP521R1()), PKCS1),
        "ec224_pkcs8": _pem(ec.derive_private_key(7**70, ec.SECP224R1()), PKCS8),
        "ed25519": _pem(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))), PKCS8),
        "x25519": _pem(x25519.X25519PrivateKey.from_private_bytes(bytes(range(1, 33))), PKCS8),
        "ed448": _pem(ed448.Ed448PrivateKey.from_private_bytes(bytes(range(57))), PKCS8),
    }


# --- unit tables ----------------------------------------------------------------------------

HASHES = [
    ("crypto.md5", ("lorem ipsum",), "80a751fde577028640c419000e33eba6"),
    ("crypto.sha1", ("lorem ipsum",), "bfb7759a67daeb65410490b4d98bb9da7d1ea2ce"),
    (
        "crypto.sha256",
        ("lorem ipsum",),
        "5e2bf57d3f40c4b6df69daf1936cb766f832374b4fc0259a7cbff06e2f70f269",
    ),
    ("crypto.md5", ("",), "d41d8cd98f00b204e9800998ecf8427e"),
    ("crypto.hmac.md5", ("foo", "bar"), "31b6db9e5eb4addb42f1a6ca07367adc"),
    ("crypto.hmac.sha1", ("foo", "bar"), "85d155c55ed286a300bd1cf124de08d87e914f3a"),
    (
        "crypto.hmac.sha256",
        ("foo", "bar"),
        "147933218aaabc0b8b10a2b3a5c34684c8d94341bcf10a4736dc7270f7741851",
    ),
    ("crypto.hmac.md5", ("åäöçß🥲♙Ω", "秘密の"), "20a8743c2157ac60b7e8b79c83651b8d"),
    ("crypto.hmac.equal", ("abc", "abc"), True),
    ("crypto.hmac.equal", ("abc", "abd"), False),
    ("crypto.hmac.equal", ("abc", "ab"), False),
    ("crypto.parse_private_keys", ("",), None),
    ("crypto.parse_private_keys", ("nope",), []),
    (
        "crypto.md5",
        (1,),
        ("error", "eval_type_error", "crypto.md5: operand 1 must be string but got number"),
    ),
    (
        "crypto.hmac.sha512",
        ("x", None),
        ("error", "eval_type_error", "crypto.hmac.sha512: operand 2 must be string but got null"),
    ),
]


@pytest.mark.parametrize(("name", "args", "expected"), HASHES)
def test_builtin_table(name: str, args: tuple[Any, ...], expected: Any) -> None:
    assert call(name, *args) == expected


BASE64 = [
    ("Zm9vYmFy", b"foobar"),
    ("Zm9vYg==", b"foob"),
    ("Zm9v\r\nYg==\n", b"foob"),
    ("", b""),
    ("foobar", "illegal base64 data at input byte 4"),
    ("Zm9vYg=", "illegal base64 data at input byte 7"),
    ("Zm9vYg", "illegal base64 data at input byte 4"),
    ("Zm9vYg==x", "illegal base64 data at input byte 8"),
    ("Zg==Zg==", "illegal base64 data at input byte 4"),
    ("=", "illegal base64 data at input byte 0"),
    ("Zm9vY===", "illegal base64 data at input byte 5"),
    ("Zm9v-g==", "illegal base64 data at input byte 4"),
]


@pytest.mark.parametrize(("text", "expected"), BASE64)
def test_go_base64_decode(text: str, expected: bytes | str) -> None:
    try:
        assert go_base64_decode(text) == expected
    except GoError as err:
        assert str(err) == expected


def test_pem_decode_skips_malformed_blocks() -> None:
    good = "-----BEGIN A-----\nZm9v\n-----END A-----\n"
    data = ("junk\n-----BEGIN B-----\n!!\n-----END B-----\n" + good + "tail").encode()
    block, rest = pem_decode(data)
    assert block is not None
    assert (block.type, block.bytes, rest) == ("A", b"foo", b"tail")
    assert pem_decode(b"no pem here") == (None, b"no pem here")
    headers = b"-----BEGIN C-----\nProc-Type: 4,ENCRYPTED\n\nZm9v\n-----END C-----"
    block, _ = pem_decode(headers)
    assert block is not None and block.headers == {"Proc-Type": "4,ENCRYPTED"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [("abc", '"abc"'), ('a"b\\', '"a\\"b\\\\"'), ("\n\x00é", '"\\n\\x00é"'), (b"\xff", '"\\xff"')],
)
def test_go_quote(data: str | bytes, expected: str) -> None:
    assert go_quote_bytes(data) == expected


def test_asn1_tag_mismatch_message() -> None:
    with pytest.raises(crypto.Asn1Error) as info:
        crypto.asn1_unmarshal(b"badstring", crypto.struct("certificateRequest", raw=True))
    assert str(info.value) == (
        "asn1: structure error: tags don't match (16 vs {class:1 tag:2 length:97 "
        "isCompound:true}) {optional:false explicit:false application:false private:false "
        "defaultValue:<nil> tag:<nil> stringType:0 timeType:0 set:false omitEmpty:false} "
        "certificateRequest @2"
    )


def test_jwk_of_ed25519_and_ec_padding() -> None:
    seed = bytes(range(32))
    key = crypto.parse_pkcs8_private_key(
        ed25519.Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
            serialization.Encoding.DER, PKCS8, serialization.NoEncryption()
        )
    )
    jwk = crypto.private_key_to_jwk(key)
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
    assert base64.urlsafe_b64decode(jwk["d"] + "=") == seed
    small = ec.derive_private_key(5, ec.SECP521R1())
    der = small.private_bytes(serialization.Encoding.DER, PKCS8, serialization.NoEncryption())
    jwk = crypto.private_key_to_jwk(crypto.parse_pkcs8_private_key(der))
    assert len(base64.urlsafe_b64decode(jwk["d"] + "==")) == 66


# --- differential -------------------------------------------------------------------------


def _mutations(pem: str, rng: random.Random) -> list[str]:
    """A byte-flipped and a truncated copy of a PEM key, each under its own and another type."""
    block, _ = pem_decode(pem.encode())
    assert block is not None
    der = block.bytes
    flipped = bytearray(der)
    flipped[rng.randrange(len(der))] = rng.randrange(256)
    other = "PRIVATE KEY" if block.type != "PRIVATE KEY" else "EC PRIVATE KEY"
    return [
        f"-----BEGIN {kind}-----\n{base64.b64encode(d).decode()}\n-----END {kind}-----\n"
        for d, kind in (
            (bytes(flipped), block.type),
            (der[: len(der) // 2], block.type),
            (der, other),
        )
    ]


@needs_opa
@pytest.mark.differential
def test_differential_results(keys: dict[str, str]) -> None:
    texts = list(keys.values())
    calls: dict[str, tuple[str, tuple[Any, ...]]] = {}
    for i, (name, args, _) in enumerate(HASHES):
        if all(isinstance(a, str) for a in args):
            calls[f"table{i}"] = (name, args)
    for name, text in keys.items():
        calls[f"keys-{name}"] = ("crypto.parse_private_keys", (text,))
        calls[f"jwk-{name}"] = ("crypto.x509.parse_rsa_private_key", (text,))
    calls["keys-all"] = ("crypto.parse_private_keys", ("".join(texts),))
    calls["keys-b64"] = (
        "crypto.parse_private_keys",
        (base64.b64encode(keys["ec256_sec1"].encode()).decode(),),
    )
    for i, text in enumerate(["-----BEGIN X-----\nMAA=\n-----END X-----\n", "\n\n", "x\n" * 3]):
        calls[f"odd{i}"] = ("crypto.parse_private_keys", (text + keys["ed25519"],))
    for i, word in enumerate(["", "a", "ü" * 40, "\x00\x01"]):
        for name in ("crypto.md5", "crypto.sha1", "crypto.sha256"):
            calls[f"{name}-{i}"] = (name, (word,))
        for name in ("crypto.hmac.sha1", "crypto.hmac.sha512", "crypto.hmac.equal"):
            calls[f"{name}-{i}"] = (name, (word, "k" + word))
    theirs = opa_batch(calls)
    from pdp.builtins import x509

    jwk = {spec.name: spec.fn for spec in x509.BUILTINS}["crypto.x509.parse_rsa_private_key"]
    for key, (name, args) in calls.items():
        if name == "crypto.x509.parse_rsa_private_key":
            try:
                mine = jwk(CTX, *args)
            except BuiltinError:
                mine = "undefined"
        else:
            mine = call(name, *args)
            mine = "undefined" if isinstance(mine, tuple) else mine
        assert same(mine, theirs[key]), key


@needs_opa
@pytest.mark.differential
def test_differential_errors(keys: dict[str, str]) -> None:
    rng = random.Random(7)
    cases: list[tuple[str, tuple[Any, ...]]] = [
        ("crypto.md5", (1,)),
        ("crypto.hmac.equal", ("a", 2)),
        ("crypto.parse_private_keys", ([],)),
    ]
    for ty in ("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY"):
        cases.append(
            ("crypto.parse_private_keys", (f"-----BEGIN {ty}-----\nMAA=\n-----END {ty}-----",))
        )
    for name in ("rsa_pkcs1", "rsa_pkcs8", "ec256_sec1", "ec384_pkcs8", "ed25519", "x25519"):
        cases += [("crypto.parse_private_keys", (m,)) for m in _mutations(keys[name], rng)]
    theirs = opa_strict_many(cases)
    for (name, args), expected in zip(cases, theirs, strict=True):
        assert same(call(name, *args), expected), (name, args)
