"""Signing and verifying OPA bundles exactly as OPA does, without running ``opa``.

A signed bundle carries ``/.signatures.json``::

    {"signatures": ["<compact JWS>"]}

The JWS payload lists every other file of the bundle with its digest::

    {"files": [{"name": "policy.wasm", "hash": "<hex>", "algorithm": "SHA-256"}, ...],
     "keyid": "<optional, deprecated in favour of the kid header>",
     "scope": "<optional>"}

Digests follow OPA's rules: ``data.json``, ``data.yaml``/``data.yml`` and ``.manifest``
(in any directory) are hashed over a canonical encoding of their parsed value, so
whitespace and key order do not matter; every other file is hashed over its bytes.

Verification applies OPA's checks in OPA's order: exactly one JWS; the key named by the
configured key id, else the ``kid`` header, else the ``keyid`` claim; the signature with
that key's algorithm; the scope; then every file of the bundle against the payload (files
matching ``exclude_files`` are skipped) and finally every payload entry against the
bundle. Every refusal raises :class:`BundleSignatureError` with a ``reason`` code.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import json
import math
import re
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_pem_public_key,
)
from jwt.algorithms import Algorithm, get_default_algorithms

from pdp.bundle import Bundle, BundleError, read_bundle

__all__ = [
    "DEFAULT_ALGORITHM",
    "DEFAULT_KEY_ID",
    "SIGNATURES_FILE",
    "SIGNING_ALGORITHMS",
    "BundleSignatureError",
    "SigningKey",
    "VerificationKey",
    "VerificationKeys",
    "VerifiedBundle",
    "file_digest",
    "load_key_material",
    "sign_bundle",
    "verify_bundle",
]

SIGNATURES_FILE = ".signatures.json"
DEFAULT_ALGORITHM = "RS256"
"""OPA's default for ``--signing-alg`` and for keys configured without an algorithm."""

DEFAULT_KEY_ID = "default"
"""The key id OPA's ``--verification-key-id`` defaults to."""

_SIGNING_HASH = "SHA-256"
"""OPA always signs with SHA-256 digests; verification accepts every algorithm OPA does."""

SigningKey = str | bytes | Path | PrivateKeyTypes
"""PEM text, a PEM file, an HMAC secret, or an already loaded private key.

Loading an RSA key validates it, which costs about 0.1 s; callers signing many bundles
load the key once with ``cryptography`` and pass the key object.
"""

_HASHES: Mapping[str, Callable[[], Any]] = {
    "MD5": hashlib.md5,
    "SHA-1": hashlib.sha1,
    "SHA-224": hashlib.sha224,
    "SHA-256": hashlib.sha256,
    "SHA-384": hashlib.sha384,
    "SHA-512": hashlib.sha512,
    "SHA-512-224": lambda: hashlib.new("sha512_224"),
    "SHA-512-256": lambda: hashlib.new("sha512_256"),
}

_JWA = get_default_algorithms()
# OPA's key configuration accepts HS/RS/PS/ES; its command line also signs and verifies
# EdDSA (Ed25519), so Council accepts the union.
_FAMILIES: Mapping[str, str] = {
    **{f"HS{n}": "hmac" for n in (256, 384, 512)},
    **{f"RS{n}": "rsa" for n in (256, 384, 512)},
    **{f"PS{n}": "rsa" for n in (256, 384, 512)},
    **{f"ES{n}": "ec" for n in (256, 384, 512)},
    "EdDSA": "ed25519",
}
SIGNING_ALGORITHMS: tuple[str, ...] = tuple(_FAMILIES)

_KEY_TYPES: Mapping[str, tuple[type, ...]] = {
    "rsa": (rsa.RSAPrivateKey, rsa.RSAPublicKey),
    "ec": (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey),
    "ed25519": (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey),
}
_KEY_KIND_NAMES = {"rsa": "an RSA", "ec": "an ECDSA", "ed25519": "an Ed25519"}

_ES_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_PRIVATE_PEM = ("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY")
_PUBLIC_PEM = ("RSA PUBLIC KEY", "PUBLIC KEY")

_STRUCTURED = ("data.json", "data.yaml", "data.yml", ".manifest")
_UTF8_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\ud800-\udfff]")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class BundleSignatureError(BundleError):
    """The bundle's signature is missing, invalid, or does not cover the bundle exactly.

    ``reason`` is a stable code: ``unsigned``, ``malformed``, ``multiple_signatures``,
    ``unknown_key``, ``wrong_algorithm``, ``bad_signature``, ``wrong_scope``,
    ``unsigned_file``, ``missing_file``, ``digest_mismatch``, ``unsupported``, or
    ``key_error`` for a signing or verification key that cannot be used.
    """

    code = "bundle_signature_error"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# --- keys -------------------------------------------------------------------------------


def load_key_material(value: str) -> bytes:
    """Resolve a ``--signing-key``/``--verification-key`` value the way OPA does.

    PEM text is used as is; otherwise an existing file is read (bytes exactly, so an
    HMAC secret read from a file keeps its trailing newline, as in OPA); otherwise the
    value itself is the key (an HMAC secret given inline).
    """
    if value.startswith("-----BEGIN"):
        return value.encode()
    path = Path(value)
    if path.is_file():
        return path.read_bytes()
    return value.encode()


def _material(key: str | bytes | Path) -> bytes:
    """Key bytes: a path is read, text is encoded, bytes pass through."""
    if isinstance(key, Path):
        return key.read_bytes()
    return key.encode() if isinstance(key, str) else bytes(key)


def _first_pem_block(material: bytes) -> tuple[str, bytes]:
    match = _PEM_BLOCK.search(material)
    if match is None:
        raise BundleSignatureError("key_error", "the key is not PEM text (no PEM block found)")
    return match.group(1).decode(), match.group(0)


def _check_key_kind(key: Any, alg: str) -> None:
    kind = _FAMILIES[alg]
    if not isinstance(key, _KEY_TYPES[kind]):
        raise BundleSignatureError("key_error", f"{alg} needs {_KEY_KIND_NAMES[kind]} key")


def _algorithm(alg: str) -> Algorithm:
    if alg not in _FAMILIES:
        raise BundleSignatureError(
            "unsupported",
            f"signing algorithm {alg!r} is not supported (one of {', '.join(SIGNING_ALGORITHMS)})",
        )
    return _JWA[alg]


def _signing_key(key: SigningKey, alg: str) -> Any:
    """A private key (or HMAC secret) for ``alg``, from the PEM types OPA accepts."""
    if _FAMILIES[alg] == "hmac":
        if isinstance(key, PrivateKeyTypes):
            raise BundleSignatureError("key_error", f"{alg} needs a shared secret, not a key pair")
        material = _material(key)
        if not material:
            raise BundleSignatureError("key_error", "the HMAC secret is empty")
        return material
    if isinstance(key, PrivateKeyTypes):
        private: Any = key
    else:
        block_type, block = _first_pem_block(_material(key))
        if block_type not in _PRIVATE_PEM:
            raise BundleSignatureError(
                "key_error", f"signing needs a private key; got a PEM {block_type!r} block"
            )
        try:
            private = load_pem_private_key(block, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise BundleSignatureError(
                "key_error", f"the signing key is unreadable: {exc}"
            ) from exc
    _check_key_kind(private, alg)
    # OPA signs ES384 with a P-256 key without complaint (and so verifies such tokens,
    # as Council does); Council only signs what RFC 7518 allows, so its tokens verify in
    # every JOSE implementation.
    if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name != _ES_CURVES[alg]:
        raise BundleSignatureError(
            "key_error", f"{alg} needs a {_ES_CURVES[alg]} key, not {private.curve.name}"
        )
    return private


def _verification_key(material: bytes, alg: str) -> Any:
    """A public key (or HMAC secret) for ``alg``, from the PEM types OPA accepts."""
    if _FAMILIES[alg] == "hmac":
        if not material:
            raise BundleSignatureError("key_error", "the HMAC secret is empty")
        return material
    block_type, block = _first_pem_block(material)
    try:
        if block_type in _PUBLIC_PEM:
            public = load_pem_public_key(block)
        elif block_type in _PRIVATE_PEM:
            public = load_pem_private_key(block, password=None).public_key()
        elif block_type == "CERTIFICATE":
            # As in OPA, a certificate only carries the key: no chain, no validity check.
            public = x509.load_pem_x509_certificate(block).public_key()
        else:
            raise BundleSignatureError("key_error", f"unsupported PEM block {block_type!r}")
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BundleSignatureError(
            "key_error", f"the verification key is unreadable: {exc}"
        ) from exc
    _check_key_kind(public, alg)
    return public


@dataclass(frozen=True)
class VerificationKey:
    """One entry of OPA's ``keys`` configuration: key material, algorithm and scope.

    ``key`` is PEM text (a public key, a certificate, or a private key whose public half
    is used) or, for ``HS*``, the shared secret itself.
    """

    key: str | bytes
    algorithm: str = DEFAULT_ALGORITHM
    scope: str = ""
    public: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _algorithm(self.algorithm)
        parsed = _verification_key(_material(self.key), self.algorithm)
        object.__setattr__(self, "public", parsed)


@dataclass(frozen=True)
class VerificationKeys:
    """What OPA's bundle ``signing`` configuration (or its CLI flags) says to trust.

    ``keyid``, when set, selects the key for every bundle whatever the token names (as
    OPA's ``--verification-key-id`` and ``signing.keyid`` do); otherwise the token's
    ``kid`` header, then its ``keyid`` claim, selects it. ``scope`` overrides the key's
    scope. ``exclude_files`` are Go ``filepath.Match`` patterns (``*`` stops at ``/``)
    for files that need not be signed.
    """

    keys: Mapping[str, VerificationKey]
    keyid: str = ""
    scope: str = ""
    exclude_files: Sequence[str] = ()
    _exclude: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise BundleSignatureError("key_error", "no verification keys configured")
        if self.keyid and self.keyid not in self.keys:
            raise BundleSignatureError("key_error", f"verification key id {self.keyid!r} not found")
        patterns = tuple(_go_glob(p) for p in self.exclude_files)
        object.__setattr__(self, "_exclude", patterns)

    @classmethod
    def single(
        cls,
        key: str | bytes,
        *,
        algorithm: str = DEFAULT_ALGORITHM,
        keyid: str = DEFAULT_KEY_ID,
        scope: str = "",
        exclude_files: Sequence[str] = (),
    ) -> VerificationKeys:
        """One key under ``keyid``, as ``opa run --verification-key`` configures it."""
        return cls(
            {keyid: VerificationKey(key, algorithm)},
            keyid=keyid,
            scope=scope,
            exclude_files=tuple(exclude_files),
        )

    def excludes(self, name: str) -> bool:
        """Whether ``name`` (no leading ``/``) matches one of ``exclude_files``."""
        return any(p.fullmatch(name) for p in self._exclude)


def _go_glob(pattern: str) -> re.Pattern[str]:
    """Translate a Go ``filepath.Match`` pattern to a regular expression."""
    bad = BundleSignatureError("key_error", f"bad exclude pattern {pattern!r}")

    def literal(j: int) -> tuple[str, int]:
        # One class member: a plain character or a backslash escape.
        if j >= len(pattern) or pattern[j] in "-]":
            raise bad
        if pattern[j] == "\\":
            j += 1
            if j >= len(pattern):
                raise bad
        return re.escape(pattern[j]), j + 1

    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i + 1 >= len(pattern):
                raise bad
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i += 1
            negate = pattern[i : i + 1] == "^"
            i += negate
            members: list[str] = []
            while pattern[i : i + 1] != "]" or not members:
                low, i = literal(i)
                if pattern[i : i + 1] == "-":
                    high, i = literal(i + 1)
                    low = f"{low}-{high}"
                members.append(low)
            # Unlike * and ?, Go's classes (negated ones too) can match a separator.
            out.append(f"[{'^' if negate else ''}{''.join(members)}]")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


# --- digests ----------------------------------------------------------------------------


class _Number(str):
    """A JSON number kept as its source text, as Go's ``json.Number`` keeps it."""


def _is_structured(name: str) -> bool:
    return name.rsplit("/", 1)[-1] in _STRUCTURED


def _go_string(text: str) -> bytes:
    """``text`` encoded as Go's ``encoding/json`` does with HTML escaping off."""
    # Go decodes lone surrogates (and each invalid UTF-8 byte) to U+FFFD.
    clean = _SURROGATE.sub("\ufffd", text)
    encoded = json.dumps(clean, ensure_ascii=False)
    return encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def _go_float(value: float) -> str:
    """A float64 formatted as Go's ``encoding/json`` formats it."""
    if value != 0 and (abs(value) < 1e-6 or abs(value) >= 1e21):
        text = repr(value)
        # Go writes e-7 where Python writes e-07; e+21 is the same in both.
        return re.sub(r"e-0(\d)$", r"e-\1", text)
    return format(Decimal(repr(value)).normalize(), "f")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {_SURROGATE.sub("\ufffd", k): v for k, v in pairs}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_YAML_SPECIAL = {
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
}
_INT_DIGITS = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def _go_parse_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt(s, 0, 64)``, then ``ParseUint`` for unsigned overflow."""
    sign, body = ("-", text[1:]) if text[:1] == "-" else ("", text.removeprefix("+"))
    unsigned = text[:1] not in "+-"
    base, digits = 10, body
    prefix = body[:2].lower()
    if prefix in ("0x", "0o", "0b"):
        base, digits = {"0x": 16, "0o": 8, "0b": 2}[prefix], body[2:]
    elif body.startswith("0") and len(body) > 1:
        base, digits = 8, body[1:]
    if not digits or any(c not in _INT_DIGITS[base] for c in digits):
        return None
    value = int(digits, base) * (-1 if sign else 1)
    if -(2**63) <= value < 2**63 or (unsigned and value < 2**64):
        return value
    return None


def _yaml_plain_number(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    """Resolve a plain scalar that may be a number the way go-yaml v3 does."""
    text = str(loader.construct_scalar(node))
    if text in _YAML_SPECIAL:
        return _YAML_SPECIAL[text]
    plain = text if text.startswith(".") else text.replace("_", "")
    if not text.startswith("."):
        as_int = _go_parse_int(plain)
        if as_int is not None:
            return as_int
    if _YAML_FLOAT.fullmatch(plain):
        as_float = float(plain)
        # Go's ParseFloat fails on overflow, and go-yaml then keeps the text.
        if not math.isinf(as_float):
            return as_float
    return text


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader narrowed to the YAML 1.2 core schema OPA's go-yaml v3 uses.

    ``yes``/``on`` stay strings, timestamps stay strings (OPA re-tags them), and numbers
    follow Go's parsing (``0777`` is octal, ``1_000`` is 1000).
    """

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 - PyYAML's class-level registry

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[str, Any]:
        """Build a mapping with its keys already in their JSON form.

        Converting afterwards would be too late: Python's dict merges ``1`` and ``true``,
        which go-yaml keeps apart as ``"1"`` and ``"true"``.
        """
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            mapping[_yaml_key(key, key_node)] = self.construct_object(value_node, deep=deep)
        return mapping


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"])
_Yaml12Loader.add_implicit_resolver(
    "tag:council:plain-number", re.compile(r"^[-+.0-9]"), list("-+.0123456789")
)
_Yaml12Loader.add_constructor("tag:council:plain-number", _yaml_plain_number)


def _yaml_key(key: Any, node: yaml.Node) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, str | int):
        return str(key)
    raise yaml.constructor.ConstructorError(
        None, None, f"mapping key {key!r} has no JSON form Council reproduces", node.start_mark
    )


def _from_yaml(value: Any, name: str) -> Any:
    """A YAML value in the JSON model OPA hashes (what YAMLToJSON then json.Number give)."""
    if isinstance(value, dict):
        return {k: _from_yaml(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_yaml(v, name) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return _Number(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BundleSignatureError("malformed", f"/{name}: {value} has no JSON form")
        return _Number(_go_float(value))
    raise BundleSignatureError(
        "unsupported", f"/{name}: YAML value of type {type(value).__name__} has no JSON form"
    )


def _parse_structured(raw: bytes, name: str) -> Any:
    """Parse a data or manifest file as OPA's ``util.Unmarshal`` does: JSON, else YAML."""
    raw = raw.removeprefix(_UTF8_BOM)
    # surrogateescape keeps one code point per invalid byte, which _go_string then maps
    # to U+FFFD one for one, as Go's decoder does.
    text = raw.decode("utf-8", "surrogateescape")
    try:
        return json.loads(
            text,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_reject_constant,
            object_pairs_hook=_json_object,
        )
    except ValueError:
        pass
    try:
        documents = list(yaml.load_all(raw, Loader=_Yaml12Loader))
    except yaml.YAMLError as exc:
        raise BundleSignatureError("malformed", f"/{name} is neither JSON nor YAML: {exc}") from exc
    return _from_yaml(documents[0] if documents else None, name)


def _hash_value(value: Any, h: Any) -> None:
    """Feed OPA's canonical encoding of a parsed document into ``h``."""
    if isinstance(value, dict):
        h.update(b"{")
        for i, key in enumerate(sorted(value)):
            if i:
                h.update(b",")
            h.update(_go_string(key))
            h.update(b":")
            _hash_value(value[key], h)
        h.update(b"}")
    elif isinstance(value, list):
        h.update(b"[")
        for i, item in enumerate(value):
            if i:
                h.update(b",")
            _hash_value(item, h)
        h.update(b"]")
    elif isinstance(value, _Number):
        h.update(value.encode())
    elif isinstance(value, str):
        h.update(_go_string(value))
    elif value is None:
        h.update(b"null")
    else:
        h.update(b"true" if value else b"false")


def file_digest(name: str, content: bytes, algorithm: str = _SIGNING_HASH) -> str:
    """The hex digest OPA records for bundle file ``name`` (structured files canonicalised)."""
    try:
        h = _HASHES[algorithm]()
    except KeyError:
        raise BundleSignatureError(
            "unsupported", f"/{name}: unsupported hash algorithm {algorithm!r}"
        ) from None
    if _is_structured(name):
        # Parsing and hashing both recurse; a hostile document could nest past the limit.
        try:
            _hash_value(_parse_structured(content, name), h)
        except RecursionError as exc:
            raise BundleSignatureError("malformed", f"/{name} is nested too deeply") from exc
    else:
        h.update(content)
    return str(h.hexdigest())


# --- signing ----------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _is_signatures_file(name: str) -> bool:
    return name.rsplit("/", 1)[-1] == SIGNATURES_FILE


def _opa_name(member_name: str) -> str:
    """The path OPA checks a tar member under: the name less one leading ``/``."""
    return member_name.removeprefix("/")


def sign_bundle(
    bundle: bytes | str | Path,
    key: SigningKey,
    alg: str = DEFAULT_ALGORITHM,
    keyid: str | None = None,
    scope: str | None = None,
) -> bytes:
    """Return the bundle (bytes or ``.tar.gz`` path) with a fresh ``/.signatures.json``.

    ``key`` is PEM text of a private key (RSA, ECDSA, Ed25519) or a loaded private key,
    or the HMAC secret for ``HS*``; a :class:`~pathlib.Path` is read. ``keyid`` goes into
    the ``kid`` header and the ``keyid`` claim, as ``opa build --signing-key`` writes
    them; ``scope`` becomes the ``scope`` claim. Every other file is listed with its
    SHA-256 digest; existing signatures files are dropped. The gzip stream is
    deterministic (and so is the whole output for RSA PKCS#1 v1.5, EdDSA and HMAC).
    """
    algorithm = _algorithm(alg)
    private = _signing_key(key, alg)
    blob = bundle if isinstance(bundle, bytes) else Path(bundle).read_bytes()
    read_bundle(blob)  # the size and path checks every Council reader applies

    kept: list[tuple[tarfile.TarInfo, bytes | None]] = []
    files: list[dict[str, str]] = []
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar:
            if _is_signatures_file(member.name):
                continue
            extracted = tar.extractfile(member) if member.isfile() else None
            content = extracted.read() if extracted is not None else None
            kept.append((member, content))
            if content is not None:
                name = _opa_name(member.name)
                digest = file_digest(name, content)
                files.append({"name": name, "hash": digest, "algorithm": _SIGNING_HASH})

    header: dict[str, str] = {"alg": alg}
    payload: dict[str, Any] = {"files": files}
    if keyid:
        header["kid"] = keyid
        payload["keyid"] = keyid
    if scope:
        payload["scope"] = scope
    header["typ"] = "JWT"
    signing_input = f"{_b64url(_compact_json(header))}.{_b64url(_compact_json(payload))}"
    signature = algorithm.sign(signing_input.encode(), private)
    token = f"{signing_input}.{_b64url(signature)}"
    # The same layout `opa sign` writes (one-space indent).
    signatures = json.dumps({"signatures": [token]}, indent=" ").encode()

    out = io.BytesIO()
    with (
        # zlib's default level: level 9 (tarfile's default) is several times slower on
        # Wasm modules for a few percent.
        gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        info = tarfile.TarInfo("/" + SIGNATURES_FILE)
        info.size = len(signatures)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(signatures))
        for member, content in kept:
            tar.addfile(member, io.BytesIO(content) if content is not None else None)
    return out.getvalue()


# --- verification -----------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose signature checked out, and what the signature said."""

    bundle: Bundle
    keyid: str
    algorithm: str
    scope: str
    signed_files: tuple[str, ...]
    excluded_files: tuple[str, ...]
    claims: Mapping[str, Any]


def _b64url_decode(part: str, what: str) -> bytes:
    # Go's RawURLEncoding: URL alphabet, no padding, nothing else.
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        raise BundleSignatureError("malformed", f"the signature's {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except binascii.Error as exc:
        raise BundleSignatureError("malformed", f"the signature's {what} is not base64url") from exc


def _json_part(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64url_decode(part, what))
    except ValueError as exc:
        raise BundleSignatureError("malformed", f"the signature's {what} is not JSON") from exc
    if not isinstance(value, dict):
        raise BundleSignatureError("malformed", f"the signature's {what} is not a JSON object")
    return value


def _council_name(name: str) -> str:
    """A path as :func:`pdp.bundle.read_bundle` keys it."""
    name = name.lstrip("/")
    return name[2:] if name.startswith("./") else name


def _the_token(bundle: Bundle) -> str:
    found = sorted(n for n in bundle.files if _is_signatures_file(n))
    if not found:
        raise BundleSignatureError("unsigned", "bundle is not signed: it has no .signatures.json")
    if len(found) > 1:
        listed = ", ".join(f"/{n}" for n in found)
        raise BundleSignatureError(
            "multiple_signatures", f"bundle has several signatures files: {listed}"
        )
    try:
        doc = json.loads(bundle.files[found[0]])
    except ValueError as exc:
        raise BundleSignatureError("malformed", f"/{found[0]} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BundleSignatureError("malformed", f"/{found[0]} is not a JSON object")
    plugin = doc.get("plugin") or "_default"
    if plugin != "_default":
        raise BundleSignatureError(
            "unsupported", f"bundle is signed through OPA plugin {plugin!r}, which Council lacks"
        )
    tokens = doc.get("signatures")
    if tokens is None:
        raise BundleSignatureError("unsigned", f"bundle is not signed: /{found[0]} is empty")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise BundleSignatureError("malformed", f"/{found[0]}: signatures must be strings")
    if len(tokens) != 1:
        raise BundleSignatureError(
            "multiple_signatures" if tokens else "unsigned",
            f"/{found[0]} holds {len(tokens)} signatures; OPA requires exactly one",
        )
    return tokens[0]


def _select_key(
    keys: VerificationKeys, header: Mapping[str, Any], claims: Mapping[str, Any]
) -> tuple[str, VerificationKey]:
    keyid = keys.keyid
    if not keyid:
        kid = header.get("kid", "")
        if not isinstance(kid, str):
            raise BundleSignatureError("malformed", "the signature's kid header is not a string")
        keyid = kid or claims.get("keyid", "")
    if not keyid:
        raise BundleSignatureError(
            "unknown_key",
            "the signature names no key (no kid header, no keyid claim) "
            "and no verification key id is configured",
        )
    try:
        return keyid, keys.keys[keyid]
    except KeyError:
        raise BundleSignatureError(
            "unknown_key", f"the signature names key {keyid!r}, which is not a configured key"
        ) from None


def _payload_files(claims: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    entries = claims.get("files") or []
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and all(isinstance(e.get(k, ""), str) for k in ("name", "hash"))
        for e in entries
    ):
        raise BundleSignatureError("malformed", "the signature's files claim is malformed")
    # Like OPA, a name listed twice keeps its last entry.
    return {_council_name(e.get("name", "")): e for e in entries}


def _check_file(name: str, content: bytes, entry: Mapping[str, Any]) -> None:
    algorithm = entry.get("algorithm")
    if not algorithm or not isinstance(algorithm, str):
        raise BundleSignatureError("malformed", f"the signature gives /{name} no hash algorithm")
    want = entry.get("hash", "")
    if not _HEX.fullmatch(want):
        raise BundleSignatureError("malformed", f"the signature's hash for /{name} is not hex")
    got = file_digest(name, content, algorithm)
    if got != want.lower():
        raise BundleSignatureError(
            "digest_mismatch",
            f"/{name} was modified after signing: its {algorithm} digest is {got}, "
            f"the signature says {want.lower()}",
        )


def verify_bundle(bundle: Bundle | bytes | str | Path, keys: VerificationKeys) -> VerifiedBundle:
    """Check ``bundle``'s signature as OPA does before activating a bundle.

    ``bundle`` is a :class:`~pdp.bundle.Bundle` or anything :func:`read_bundle` reads.
    Raises :class:`BundleSignatureError` on the first problem found.
    """
    if not isinstance(bundle, Bundle):
        bundle = read_bundle(bundle)
    token = _the_token(bundle)
    parts = token.split(".")
    if len(parts) != 3:
        raise BundleSignatureError("malformed", "the signature is not a compact JWS")
    header = _json_part(parts[0], "header")
    claims = _json_part(parts[1], "payload")
    for claim in ("keyid", "scope"):
        if not isinstance(claims.get(claim, ""), str):
            raise BundleSignatureError(
                "malformed", f"the signature's {claim} claim is not a string"
            )

    keyid, key = _select_key(keys, header, claims)
    # OPA takes the algorithm from the key's configuration and ignores the header; a
    # header naming another algorithm can only fail there, so say why up front.
    if header.get("alg") != key.algorithm:
        raise BundleSignatureError(
            "wrong_algorithm",
            f"the signature uses {header.get('alg')!r} but key {keyid!r} is configured "
            f"for {key.algorithm}",
        )
    signature = _b64url_decode(parts[2], "signature")
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    if not _algorithm(key.algorithm).verify(signing_input, key.public, signature):
        raise BundleSignatureError(
            "bad_signature", f"the signature does not verify with key {keyid!r} ({key.algorithm})"
        )

    expected_scope = keys.scope or key.scope
    scope = claims.get("scope", "")
    if scope != expected_scope:
        raise BundleSignatureError(
            "wrong_scope",
            f"the signature's scope is {scope or '(none)'!r}, "
            f"expected {expected_scope or '(none)'!r}",
        )

    listed = _payload_files(claims)
    signed: list[str] = []
    excluded: list[str] = []
    for name, content in bundle.files.items():
        if _is_signatures_file(name):
            continue
        if keys.excludes(name):
            listed.pop(name, None)
            excluded.append(name)
            continue
        entry = listed.pop(name, None)
        if entry is None:
            raise BundleSignatureError(
                "unsigned_file", f"/{name} is not covered by the bundle signature"
            )
        _check_file(name, content, entry)
        signed.append(name)
    if listed:
        missing = ", ".join(f"/{n}" for n in sorted(listed))
        raise BundleSignatureError(
            "missing_file", f"files named in the signature are missing from the bundle: {missing}"
        )
    return VerifiedBundle(
        bundle=bundle,
        keyid=keyid,
        algorithm=key.algorithm,
        scope=scope,
        signed_files=tuple(signed),
        excluded_files=tuple(excluded),
        claims=claims,
    )
