"""Hashing, HMAC and private-key builtins (``crypto.*``), and the Go-compatible codecs they share.

OPA answers these builtins with Go's standard library and returns Go structs marshalled to
JSON, so besides the builtins this module reproduces the parts of Go that decide results and
messages (base64 and PEM decoding are :mod:`pdp.builtins._goencoding`'s):
``encoding/asn1``'s reflection-driven DER decoder (for the structures ``crypto/x509`` reads with
it), ``crypto/x509``'s private-key parsers, the JSON form of Go's key structs, and the JWK form
produced by ``lestrrat-go/jwx``. :mod:`pdp.builtins.x509` builds on these.

Public helpers for other builtin families: :func:`private_key_to_jwk`,
:func:`parse_private_key_der` and :func:`private_keys_from_pem`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from pdp.builtins._goencoding import go_base64_decode, pem_decode
from pdp.builtins._golang import GoError, go_quote_bytes, go_string
from pdp.builtins.base import BuiltinError, BuiltinSpec, EvalContext, string_arg

__all__ = [
    "A1",
    "ALGORITHM_IDENTIFIER",
    "ANY",
    "BITSTRING",
    "BOOL",
    "BUILTINS",
    "CURVES",
    "INT",
    "NONE",
    "OCTETS",
    "OID",
    "OPTIONAL",
    "RAW",
    "Asn1Error",
    "BitString",
    "Curve",
    "ECPrivateKey",
    "Ed25519PrivateKey",
    "GoTime",
    "Params",
    "PrivateKey",
    "RSAPrivateKey",
    "RawValue",
    "X25519PrivateKey",
    "asn1_parses",
    "asn1_unmarshal",
    "b64",
    "parse_ec_private_key",
    "parse_go_time",
    "parse_pkcs1_private_key",
    "parse_pkcs8_private_key",
    "parse_private_key_der",
    "private_key_go_value",
    "private_key_to_jwk",
    "private_keys_from_pem",
    "slice_of",
    "struct",
]


# --- Go conventions ------------------------------------------------------------------------


def b64(data: bytes) -> str:
    """A Go ``[]byte`` as ``encoding/json`` writes it: standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


# --- time.Time for ASN.1 times ------------------------------------------------------------


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m in (4, 6, 9, 11) else 31


@dataclass(frozen=True)
class GoTime:
    """A ``time.Time`` with whole seconds and a fixed UTC offset (what X.509 times carry)."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    offset: int = 0

    def unix(self) -> int:
        """Seconds since the Unix epoch."""
        days = _days_from_civil(self.year, self.month, self.day)
        return days * 86400 + self.hour * 3600 + self.minute * 60 + self.second - self.offset

    def rfc3339(self) -> str:
        """``time.Time`` as ``encoding/json`` writes it (RFC 3339; whole seconds here)."""
        text = (
            f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
            f"T{self.hour:02d}:{self.minute:02d}:{self.second:02d}"
        )
        if self.offset == 0:
            return text + "Z"
        sign = "-" if self.offset < 0 else "+"
        minutes = abs(self.offset) // 60
        return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_go_time(text: bytes, year_digits: int, with_seconds: bool = True) -> GoTime | None:
    """Parse an X.509 time as ``time.Parse`` plus a round-trip check would accept it.

    Layouts: ``YYMMDDhhmm[ss]`` (two-digit year, 50-99 meaning 19xx) or ``YYYYMMDDhhmmss``,
    followed by ``Z`` or ``±hhmm``. Returns None where Go's parse or round trip fails.
    """
    digits = year_digits + (10 if with_seconds else 8)
    head, zone = text[:digits], text[digits:]
    if len(head) != digits or not head.isdigit():
        return None
    nums = [int(head[i : i + 2]) for i in range(year_digits, digits, 2)]
    year = int(head[:year_digits])
    if year_digits == 2:
        year += 1900 if year >= 50 else 2000
    month, day, hour, minute = nums[:4]
    second = nums[4] if with_seconds else 0
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    if zone == b"Z":
        offset = 0
    elif len(zone) == 5 and zone[:1] in (b"+", b"-") and zone[1:].isdigit():
        zh, zm = int(zone[1:3]), int(zone[3:5])
        if zm > 59 or (zh == 0 and zm == 0):
            return None
        offset = (zh * 3600 + zm * 60) * (-1 if zone[:1] == b"-" else 1)
    else:
        return None
    return GoTime(year, month, day, hour, minute, second, offset)


# --- encoding/asn1 ------------------------------------------------------------------------

CLASS_UNIVERSAL, CLASS_APPLICATION, CLASS_CONTEXT, CLASS_PRIVATE = 0, 1, 2, 3
TAG_BOOLEAN, TAG_INTEGER, TAG_BIT_STRING, TAG_OCTET_STRING = 1, 2, 3, 4
TAG_OID, TAG_ENUM, TAG_UTF8, TAG_SEQUENCE, TAG_SET = 6, 10, 12, 16, 17
TAG_NUMERIC, TAG_PRINTABLE, TAG_T61, TAG_IA5 = 18, 19, 20, 22
TAG_UTC_TIME, TAG_GENERALIZED_TIME, TAG_GENERAL_STRING, TAG_BMP = 23, 24, 27, 30


class Asn1Error(GoError):
    """An ``encoding/asn1`` StructuralError or SyntaxError."""

    @classmethod
    def structural(cls, msg: str) -> Asn1Error:
        """``asn1.StructuralError``."""
        return cls(f"asn1: structure error: {msg}")

    @classmethod
    def syntax(cls, msg: str) -> Asn1Error:
        """``asn1.SyntaxError``."""
        return cls(f"asn1: syntax error: {msg}")


class BitString(NamedTuple):
    """``asn1.BitString``."""

    bytes: bytes
    bit_length: int

    def right_align(self) -> bytes:
        """``BitString.RightAlign``: the bits shifted so that padding is at the front."""
        shift = 8 - self.bit_length % 8
        if shift == 8 or not self.bytes:
            return self.bytes
        value = int.from_bytes(self.bytes, "big") >> shift
        return value.to_bytes(len(self.bytes), "big")

    def at(self, i: int) -> int:
        """``BitString.At``: bit ``i`` counting from the most significant bit of byte 0."""
        if i < 0 or i >= self.bit_length:
            return 0
        return (self.bytes[i // 8] >> (7 - i % 8)) & 1


class RawValue(NamedTuple):
    """``asn1.RawValue``: an element left undecoded."""

    cls: int
    tag: int
    compound: bool
    content: bytes
    full: bytes


@dataclass(frozen=True)
class Params:
    """The ``asn1:"..."`` struct-tag options that the decoder honours."""

    optional: bool = False
    explicit: bool = False
    tag: int | None = None
    default: int | None = None
    set: bool = False

    def go_repr(self) -> str:
        # Go prints the *int fields as heap addresses; any fixed address stands in for them.
        def ptr(v: int | None) -> str:
            return "<nil>" if v is None else "0xc000012345"

        return (
            f"{{optional:{str(self.optional).lower()} explicit:{str(self.explicit).lower()} "
            f"application:false private:false defaultValue:{ptr(self.default)} "
            f"tag:{ptr(self.tag)} stringType:0 timeType:0 set:{str(self.set).lower()} "
            "omitEmpty:false}"
        )


@dataclass(frozen=True)
class A1:
    """A Go type as ``encoding/asn1`` sees it.

    ``kind`` is one of int, bigint, bool, oid, bitstring, bytes, raw, any, struct, slice.
    ``name`` is Go's ``reflect.Type.Name()`` (used in error messages). Structs list their
    fields; ``raw_content`` marks a leading ``asn1.RawContent`` field, stored as ``"Raw"``.
    """

    kind: str
    name: str = ""
    fields: tuple[tuple[str, A1, Params], ...] = ()
    elem: A1 | None = None
    raw_content: bool = False


INT = A1("int", "int")
BIGINT = A1("bigint")
BOOL = A1("bool", "bool")
OID = A1("oid", "ObjectIdentifier")
BITSTRING = A1("bitstring", "BitString")
OCTETS = A1("bytes")
RAW = A1("raw", "RawValue")
ANY = A1("any")
NONE = Params()
OPTIONAL = Params(optional=True)


def struct(name: str, *fields: tuple[str, A1, Params], raw: bool = False) -> A1:
    """Declare a Go struct for :func:`asn1_unmarshal`."""
    return A1("struct", name, fields=tuple(fields), raw_content=raw)


def slice_of(elem: A1, name: str = "") -> A1:
    """Declare a Go slice (SEQUENCE OF, or SET OF when ``name`` ends in ``SET``)."""
    return A1("slice", name, elem=elem)


ALGORITHM_IDENTIFIER = struct(
    "AlgorithmIdentifier", ("Algorithm", OID, NONE), ("Parameters", RAW, OPTIONAL)
)


class _TagAndLength(NamedTuple):
    cls: int
    tag: int
    length: int
    compound: bool

    def go_repr(self) -> str:
        compound = str(self.compound).lower()
        return f"{{class:{self.cls} tag:{self.tag} length:{self.length} isCompound:{compound}}}"


def _parse_base128(data: bytes, offset: int) -> tuple[int, int]:
    value = 0
    shifted = 0
    while offset < len(data):
        if shifted == 5:
            raise Asn1Error.structural("base 128 integer too large")
        b = data[offset]
        if shifted == 0 and b == 0x80:
            raise Asn1Error.syntax("integer is not minimally encoded")
        value = value << 7 | (b & 0x7F)
        offset += 1
        shifted += 1
        if not b & 0x80:
            if value > 0x7FFFFFFF:
                raise Asn1Error.structural("base 128 integer too large")
            return value, offset
    raise Asn1Error.syntax("truncated base 128 integer")


def _parse_tag_and_length(data: bytes, offset: int) -> tuple[_TagAndLength, int]:
    b = data[offset]
    offset += 1
    cls, compound, tag = b >> 6, bool(b & 0x20), b & 0x1F
    if tag == 0x1F:
        tag, offset = _parse_base128(data, offset)
        if tag < 0x1F:
            raise Asn1Error.syntax("non-minimal tag")
    if offset >= len(data):
        raise Asn1Error.syntax("truncated tag or length")
    b = data[offset]
    offset += 1
    if not b & 0x80:
        length = b & 0x7F
    else:
        count = b & 0x7F
        if count == 0:
            raise Asn1Error.syntax("indefinite length found (not DER)")
        length = 0
        for _ in range(count):
            if offset >= len(data):
                raise Asn1Error.syntax("truncated tag or length")
            b = data[offset]
            offset += 1
            if length >= 1 << 23:
                raise Asn1Error.structural("length too large")
            length = length << 8 | b
            if length == 0:
                raise Asn1Error.structural("superfluous leading zeros in length")
        if length < 0x80:
            raise Asn1Error.structural("non-minimal length")
    return _TagAndLength(cls, tag, length, compound), offset


def _check_integer(data: bytes) -> None:
    if not data:
        raise Asn1Error.structural("empty integer")
    if len(data) > 1 and (
        (data[0] == 0 and not data[1] & 0x80) or (data[0] == 0xFF and data[1] & 0x80)
    ):
        raise Asn1Error.structural("integer not minimally-encoded")


def _parse_int64(data: bytes) -> int:
    _check_integer(data)
    if len(data) > 8:
        raise Asn1Error.structural("integer too large")
    return int.from_bytes(data, "big", signed=True)


def _parse_big_int(data: bytes) -> int:
    _check_integer(data)
    return int.from_bytes(data, "big", signed=True)


def _parse_bool(data: bytes) -> bool:
    if len(data) != 1 or data[0] not in (0x00, 0xFF):
        raise Asn1Error.syntax("invalid boolean")
    return data[0] == 0xFF


def _parse_bit_string(data: bytes) -> BitString:
    if not data:
        raise Asn1Error.syntax("zero length BIT STRING")
    pad = data[0]
    if pad > 7 or (len(data) == 1 and pad > 0) or (data[-1] & ((1 << pad) - 1)):
        raise Asn1Error.syntax("invalid padding bits in BIT STRING")
    return BitString(data[1:], (len(data) - 1) * 8 - pad)


def _parse_oid(data: bytes) -> tuple[int, ...]:
    if not data:
        raise Asn1Error.syntax("zero length OBJECT IDENTIFIER")
    first, offset = _parse_base128(data, 0)
    arcs = [first // 40, first % 40] if first < 80 else [2, first - 80]
    while offset < len(data):
        arc, offset = _parse_base128(data, offset)
        arcs.append(arc)
    return tuple(arcs)


def _is_printable(b: int) -> bool:
    return (
        0x61 <= b <= 0x7A
        or 0x41 <= b <= 0x5A
        or 0x30 <= b <= 0x39
        or 0x27 <= b <= 0x29
        or 0x2B <= b <= 0x2F
        or b in b" :=?*&"
    )


def _parse_any(t: _TagAndLength, inner: bytes) -> Any:
    if t.compound or t.cls != CLASS_UNIVERSAL:
        return None
    tag = t.tag
    if tag == TAG_BOOLEAN:
        return _parse_bool(inner)
    if tag == TAG_PRINTABLE:
        if not all(_is_printable(b) for b in inner):
            raise Asn1Error.syntax("PrintableString contains invalid character")
        return go_string(inner)
    if tag == TAG_NUMERIC:
        if not all(0x30 <= b <= 0x39 or b == 0x20 for b in inner):
            raise Asn1Error.syntax("NumericString contains invalid character")
        return go_string(inner)
    if tag == TAG_IA5:
        if any(b >= 0x80 for b in inner):
            raise Asn1Error.syntax("IA5String contains invalid character")
        return go_string(inner)
    if tag == TAG_T61:
        return inner.decode("latin-1")
    if tag == TAG_UTF8:
        try:
            return inner.decode("utf-8")
        except UnicodeDecodeError:
            raise Asn1Error.syntax("invalid UTF-8") from None
    if tag == TAG_INTEGER:
        return _parse_int64(inner)
    if tag == TAG_BIT_STRING:
        return _parse_bit_string(inner)
    if tag == TAG_OID:
        return _parse_oid(inner)
    if tag in (TAG_UTC_TIME, TAG_GENERALIZED_TIME):
        return _parse_asn1_time(tag, inner)
    if tag == TAG_OCTET_STRING:
        return inner
    if tag == TAG_BMP:
        return _parse_bmp(inner)
    return None


def _parse_asn1_time(tag: int, inner: bytes) -> GoTime:
    if tag == TAG_UTC_TIME:
        parsed = parse_go_time(inner, 2, with_seconds=False) or parse_go_time(inner, 2)
    else:
        parsed = parse_go_time(inner, 4)
    if parsed is None:
        raise GoError(f"parsing time {go_quote_bytes(inner)}: invalid time")
    return parsed


def _parse_bmp(inner: bytes) -> str:
    if len(inner) % 2:
        raise Asn1Error.syntax("odd length BMP string")
    if len(inner) >= 2 and inner[-2:] == b"\x00\x00":
        inner = inner[:-2]
    return inner.decode("utf-16-be", "replace")


def _universal_type(t: A1) -> tuple[bool, int, bool]:
    kind = t.kind
    if kind == "raw":
        return True, -1, False
    if kind == "struct":
        return False, TAG_SEQUENCE, True
    if kind == "slice":
        return False, TAG_SET if t.name.endswith("SET") else TAG_SEQUENCE, True
    tags = {"oid": TAG_OID, "bitstring": TAG_BIT_STRING, "bigint": TAG_INTEGER, "int": TAG_INTEGER}
    tags |= {"bool": TAG_BOOLEAN, "bytes": TAG_OCTET_STRING}
    return False, tags[kind], False


def _zero(t: A1, params: Params) -> Any:
    kind = t.kind
    if kind == "int":
        return params.default if params.default is not None else 0
    if kind == "bool":
        return False
    if kind == "oid":
        return ()
    if kind == "bitstring":
        return BitString(b"", 0)
    if kind == "raw":
        return RawValue(0, 0, False, b"", b"")
    if kind == "slice":
        return []
    if kind == "struct":
        value = {name: _zero(ft, fp) for name, ft, fp in t.fields}
        if t.raw_content:
            value["Raw"] = b""
        return value
    return None


def _parse_field(t: A1, data: bytes, offset: int, params: Params, depth: int) -> tuple[Any, int]:
    depth += 1
    if depth > 10000:
        raise Asn1Error.structural("nesting depth exceeded")
    init = offset
    if offset == len(data):
        if not params.optional:
            raise Asn1Error.syntax("sequence truncated")
        return _zero(t, params), offset

    if t.kind == "any":
        tl, offset = _parse_tag_and_length(data, offset)
        if offset + tl.length > len(data):
            raise Asn1Error.syntax("data truncated")
        value = _parse_any(tl, data[offset : offset + tl.length])
        return value, offset + tl.length

    tl, offset = _parse_tag_and_length(data, offset)
    if params.explicit:
        if offset == len(data):
            raise Asn1Error.structural("explicit tag has no child")
        if tl.cls == CLASS_CONTEXT and tl.tag == params.tag and (tl.length == 0 or tl.compound):
            if t.kind != "raw":
                if tl.length == 0:
                    raise Asn1Error.structural("zero length explicit tag was not an asn1.Flag")
                tl, offset = _parse_tag_and_length(data, offset)
        else:
            if params.optional:
                return _zero(t, params), init
            raise Asn1Error.structural("explicitly tagged member didn't match")

    match_any, expected_tag, compound = _universal_type(t)
    if params.set:
        expected_tag = TAG_SET
    expected_class = CLASS_UNIVERSAL
    match_any_class_and_tag = match_any
    if not params.explicit and params.tag is not None:
        expected_class, expected_tag = CLASS_CONTEXT, params.tag
        match_any_class_and_tag = False
    if (not match_any_class_and_tag and (tl.cls != expected_class or tl.tag != expected_tag)) or (
        not match_any and tl.compound != compound
    ):
        if params.optional:
            return _zero(t, params), init
        raise Asn1Error.structural(
            f"tags don't match ({expected_tag} vs {tl.go_repr()}) {params.go_repr()} "
            f"{t.name} @{offset}"
        )
    if offset + tl.length > len(data):
        raise Asn1Error.syntax("data truncated")
    inner = data[offset : offset + tl.length]
    offset += tl.length
    return _decode_value(t, tl, inner, data[init:offset], depth), offset


def _decode_value(t: A1, tl: _TagAndLength, inner: bytes, full: bytes, depth: int) -> Any:
    kind = t.kind
    if kind == "raw":
        return RawValue(tl.cls, tl.tag, tl.compound, inner, full)
    if kind == "oid":
        return _parse_oid(inner)
    if kind == "bitstring":
        return _parse_bit_string(inner)
    if kind == "bigint":
        return _parse_big_int(inner)
    if kind == "bool":
        return _parse_bool(inner)
    if kind == "int":
        return _parse_int64(inner)
    if kind == "bytes":
        return inner
    if kind == "struct":
        value: dict[str, Any] = {}
        if t.raw_content:
            value["Raw"] = full
        pos = 0
        for name, ft, fp in t.fields:
            value[name], pos = _parse_field(ft, inner, pos, fp, depth)
        return value
    assert t.elem is not None
    return _parse_sequence_of(inner, t.elem, depth)


def _parse_sequence_of(data: bytes, elem: A1, depth: int) -> list[Any]:
    match_any, expected_tag, compound = _universal_type(elem)
    count = 0
    offset = 0
    while offset < len(data):
        tl, offset = _parse_tag_and_length(data, offset)
        tag = tl.tag
        if tag in (TAG_IA5, TAG_GENERAL_STRING, TAG_T61, TAG_UTF8, TAG_NUMERIC, TAG_BMP):
            tag = TAG_PRINTABLE
        elif tag == TAG_GENERALIZED_TIME:
            tag = TAG_UTC_TIME
        if not match_any and (
            tl.cls != CLASS_UNIVERSAL or tl.compound != compound or tag != expected_tag
        ):
            raise Asn1Error.structural("sequence tag mismatch")
        if offset + tl.length > len(data):
            raise Asn1Error.syntax("truncated sequence")
        offset += tl.length
        count += 1
    values = []
    offset = 0
    for _ in range(count):
        value, offset = _parse_field(elem, data, offset, NONE, depth)
        values.append(value)
    return values


def asn1_unmarshal(data: bytes, t: A1) -> tuple[Any, bytes]:
    """``asn1.Unmarshal(data, &v)`` for a value of Go type ``t``: the value and the rest."""
    value, offset = _parse_field(t, data, 0, NONE, 0)
    return value, data[offset:]


def asn1_parses(data: bytes, t: A1) -> bool:
    """Whether ``asn1.Unmarshal`` into ``t`` succeeds (Go's key-format sniffing)."""
    try:
        asn1_unmarshal(data, t)
    except GoError:
        return False
    return True


# --- private keys -------------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """A NIST curve as ``crypto/elliptic`` names it, with what JSON/JWK output needs."""

    name: str
    oid: tuple[int, ...]
    size: int
    order: int
    prime: int
    make: Callable[[], ec.EllipticCurve]

    @property
    def point_name(self) -> str:
        """The ``crypto/internal/fips140/nistec`` point type name used in errors."""
        return "P" + self.name[2:]


CURVES: dict[tuple[int, ...], Curve] = {
    c.oid: c
    for c in (
        Curve(
            "P-224",
            (1, 3, 132, 0, 33),
            28,
            0xFFFFFFFFFFFFFFFFFFFFFFFFFFFF16A2E0B8F03E13DD29455C5C2A3D,
            2**224 - 2**96 + 1,
            ec.SECP224R1,
        ),
        Curve(
            "P-256",
            (1, 2, 840, 10045, 3, 1, 7),
            32,
            0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
            2**256 - 2**224 + 2**192 + 2**96 - 1,
            ec.SECP256R1,
        ),
        Curve(
            "P-384",
            (1, 3, 132, 0, 34),
            48,
            int(
                "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
                "581A0DB248B0A77AECEC196ACCC52973",
                16,
            ),
            2**384 - 2**128 - 2**96 + 2**32 - 1,
            ec.SECP384R1,
        ),
        Curve(
            "P-521",
            (1, 3, 132, 0, 35),
            66,
            int(
                "01FF" + "FFFFFFFF" * 7 + "FFFFFFFA51868783BF2F966B7FCC0148F709A5D0"
                "3BB5C9B8899C47AEBB6FB71E91386409",
                16,
            ),
            2**521 - 1,
            ec.SECP521R1,
        ),
    )
}

_USE_INSTEAD = "x509: failed to parse private key (use {} instead for this key format)"
OID_RSA = (1, 2, 840, 113549, 1, 1, 1)
OID_EC = (1, 2, 840, 10045, 2, 1)
OID_ED25519 = (1, 3, 101, 112)
OID_X25519 = (1, 3, 101, 110)


@dataclass(frozen=True)
class RSAPrivateKey:
    """``*rsa.PrivateKey`` with its CRT values (filled in as ``Precompute`` would)."""

    n: int
    e: int
    d: int
    primes: tuple[int, ...]
    dp: int
    dq: int
    qinv: int


@dataclass(frozen=True)
class ECPrivateKey:
    """``*ecdsa.PrivateKey``."""

    curve: Curve
    d: int
    x: int
    y: int


@dataclass(frozen=True)
class Ed25519PrivateKey:
    """``ed25519.PrivateKey`` (seed and public key)."""

    seed: bytes
    public: bytes = field(repr=False)


@dataclass(frozen=True)
class X25519PrivateKey:
    """``*ecdh.PrivateKey`` on X25519."""

    private: bytes
    public: bytes = field(repr=False)


PrivateKey = RSAPrivateKey | ECPrivateKey | Ed25519PrivateKey | X25519PrivateKey

_PKCS1_ADDITIONAL_PRIME = struct(
    "pkcs1AdditionalRSAPrime",
    ("Prime", BIGINT, NONE),
    ("Exp", BIGINT, NONE),
    ("Coeff", BIGINT, NONE),
)
_PKCS1 = struct(
    "pkcs1PrivateKey",
    ("Version", INT, NONE),
    ("N", BIGINT, NONE),
    ("E", INT, NONE),
    ("D", BIGINT, NONE),
    ("P", BIGINT, NONE),
    ("Q", BIGINT, NONE),
    ("Dp", BIGINT, OPTIONAL),
    ("Dq", BIGINT, OPTIONAL),
    ("Qinv", BIGINT, OPTIONAL),
    ("AdditionalPrimes", slice_of(_PKCS1_ADDITIONAL_PRIME), OPTIONAL),
)
_PKCS8 = struct(
    "pkcs8",
    ("Version", INT, NONE),
    ("Algo", ALGORITHM_IDENTIFIER, NONE),
    ("PrivateKey", OCTETS, NONE),
)
_SEC1 = struct(
    "ecPrivateKey",
    ("Version", INT, NONE),
    ("PrivateKey", OCTETS, NONE),
    ("NamedCurveOID", OID, Params(optional=True, explicit=True, tag=0)),
    ("PublicKey", BITSTRING, Params(optional=True, explicit=True, tag=1)),
)


def _rsa_crt(key: RSAPrivateKey, crt: list[int | None]) -> list[int]:
    # The checks and messages of Go's crypto/internal/fips140/rsa key validation.
    n, e, d = key.n, key.e, key.d
    p, q = key.primes
    if n % 2 == 0:
        raise GoError("crypto/rsa: public modulus is even")
    if e < 2:
        raise GoError("crypto/rsa: public exponent too small or negative")
    if e % 2 == 0:
        raise GoError("crypto/rsa: public exponent is even")
    if e > 2**31 - 1:
        raise GoError("crypto/rsa: public exponent too large")
    if p >= n or q >= n or p < 2 or q < 2:
        raise GoError("crypto/rsa: invalid prime")
    if p * q != n:
        raise GoError("crypto/rsa: p * q != n")
    dp = crt[0] if crt[0] is not None else d % (p - 1)
    dq = crt[1] if crt[1] is not None else d % (q - 1)
    for exp, prime in ((dp, p), (dq, q)):
        if exp >= prime - 1 or exp * e % (prime - 1) != 1 % (prime - 1):
            raise GoError("crypto/rsa: invalid CRT exponent")
    if crt[2] is not None:
        qinv = crt[2]
    else:
        try:
            qinv = pow(q, -1, p)
        except ValueError:
            raise GoError("crypto/rsa: invalid CRT coefficient") from None
    if qinv * q % p != 1 % p:
        raise GoError("crypto/rsa: invalid CRT coefficient")
    if d % (p - 1) != dp:
        raise GoError("crypto/rsa: d does not match dP")
    if d % (q - 1) != dq:
        raise GoError("crypto/rsa: d does not match dQ")
    if p == q:
        raise GoError("crypto/rsa: p == q")
    if abs(p - q).bit_length() <= n.bit_length() // 2 - 100:
        raise GoError("crypto/rsa: |p - q| too small")
    if d.bit_length() <= n.bit_length() // 2:
        raise GoError("crypto/rsa: d too small")
    return [dp, dq, qinv]


def parse_pkcs1_private_key(der: bytes) -> RSAPrivateKey:
    """``x509.ParsePKCS1PrivateKey``."""
    try:
        priv, rest = asn1_unmarshal(der, _PKCS1)
    except GoError:
        if asn1_parses(der, _SEC1):
            raise GoError(_USE_INSTEAD.format("ParseECPrivateKey")) from None
        if asn1_parses(der, _PKCS8):
            raise GoError(_USE_INSTEAD.format("ParsePKCS8PrivateKey")) from None
        raise
    if rest:
        raise Asn1Error.syntax("trailing data")
    if priv["Version"] > 1:
        raise GoError("x509: unsupported private key version")
    n, e, d, p, q = (priv[k] for k in ("N", "E", "D", "P", "Q"))
    crt = [priv["Dp"], priv["Dq"], priv["Qinv"]]
    if min(n, d, p, q) <= 0 or any(v is not None and v <= 0 for v in crt):
        raise GoError("x509: private key contains zero or negative value")
    if priv["AdditionalPrimes"]:
        raise GoError("crypto/rsa: multi-prime RSA keys are not supported")
    dp, dq, qinv = _rsa_crt(RSAPrivateKey(n, e, d, (p, q), 0, 0, 0), crt)
    return RSAPrivateKey(n, e, d, (p, q), dp, dq, qinv)


def _ec_from_scalar(curve: Curve, scalar: bytes) -> ECPrivateKey:
    d = int.from_bytes(scalar, "big")
    if d >= curve.order:
        raise GoError("input overflows the modulus")
    if d == 0:
        raise GoError("ecdsa: private key is zero")
    numbers = ec.derive_private_key(d, curve.make()).public_key().public_numbers()
    return ECPrivateKey(curve, d, numbers.x, numbers.y)


def parse_ec_private_key(der: bytes, curve_oid: tuple[int, ...] | None = None) -> ECPrivateKey:
    """``x509.ParseECPrivateKey`` (with ``curve_oid`` when PKCS#8 names the curve)."""
    try:
        priv, _ = asn1_unmarshal(der, _SEC1)
    except GoError as err:
        if asn1_parses(der, _PKCS8):
            raise GoError(_USE_INSTEAD.format("ParsePKCS8PrivateKey")) from None
        if asn1_parses(der, _PKCS1):
            raise GoError(_USE_INSTEAD.format("ParsePKCS1PrivateKey")) from None
        raise GoError(f"x509: failed to parse EC private key: {err}") from None
    if priv["Version"] != 1:
        raise GoError(f"x509: unknown EC private key version {priv['Version']}")
    curve = CURVES.get(curve_oid if curve_oid is not None else priv["NamedCurveOID"])
    if curve is None:
        raise GoError("x509: unknown elliptic curve")
    scalar = priv["PrivateKey"]
    while len(scalar) > curve.size:
        if scalar[0] != 0:
            raise GoError("x509: invalid private key length")
        scalar = scalar[1:]
    return _ec_from_scalar(curve, scalar)


def _curve_private_key(inner: bytes, label: str) -> bytes:
    try:
        key, _ = asn1_unmarshal(inner, OCTETS)
    except GoError as err:
        raise GoError(f"x509: invalid {label} private key: {err}") from None
    return key


def parse_pkcs8_private_key(der: bytes) -> PrivateKey:
    """``x509.ParsePKCS8PrivateKey``."""
    try:
        priv, _ = asn1_unmarshal(der, _PKCS8)
    except GoError:
        if asn1_parses(der, _SEC1):
            raise GoError(_USE_INSTEAD.format("ParseECPrivateKey")) from None
        if asn1_parses(der, _PKCS1):
            raise GoError(_USE_INSTEAD.format("ParsePKCS1PrivateKey")) from None
        raise
    algo = priv["Algo"]["Algorithm"]
    params = priv["Algo"]["Parameters"].full
    inner = priv["PrivateKey"]
    if algo == OID_RSA:
        try:
            return parse_pkcs1_private_key(inner)
        except GoError as err:
            raise GoError(
                f"x509: failed to parse RSA private key embedded in PKCS#8: {err}"
            ) from None
    if algo == OID_EC:
        try:
            curve_oid, _ = asn1_unmarshal(params, OID)
        except GoError:
            curve_oid = None
        try:
            return parse_ec_private_key(inner, curve_oid)
        except GoError as err:
            raise GoError(
                f"x509: failed to parse EC private key embedded in PKCS#8: {err}"
            ) from None
    if algo == OID_ED25519:
        if params:
            raise GoError("x509: invalid Ed25519 private key parameters")
        seed = _curve_private_key(inner, "Ed25519")
        if len(seed) != 32:
            raise GoError(f"x509: invalid Ed25519 private key length: {len(seed)}")
        public = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        return Ed25519PrivateKey(seed, public)
    if algo == OID_X25519:
        if params:
            raise GoError("x509: invalid X25519 private key parameters")
        scalar = _curve_private_key(inner, "X25519")
        if len(scalar) != 32:
            raise GoError("crypto/ecdh: invalid private key size")
        public = x25519.X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes_raw()
        return X25519PrivateKey(scalar, public)
    arcs = ".".join(str(a) for a in algo)
    raise GoError(f"x509: PKCS#8 wrapping contained private key with unknown algorithm: {arcs}")


def parse_private_key_der(block_type: str, der: bytes) -> PrivateKey | None:
    """Parse a PEM block's DER by its type as OPA does; None for types that hold no key."""
    if block_type == "RSA PRIVATE KEY":
        return parse_pkcs1_private_key(der)
    if block_type == "PRIVATE KEY":
        return parse_pkcs8_private_key(der)
    if block_type == "EC PRIVATE KEY":
        return parse_ec_private_key(der)
    return None


def private_keys_from_pem(text: str) -> list[PrivateKey]:
    """OPA's ``getPrivateKeysFromPEMData``: keys from consecutive PEM blocks.

    The input is first tried as base64 (used decoded when that succeeds). Scanning stops at
    the first stretch that is not a PEM block; blocks of other types are skipped.
    """
    data = text.encode("utf-8")
    with contextlib.suppress(GoError):
        data = go_base64_decode(data)
    keys: list[PrivateKey] = []
    while data:
        block, rest = pem_decode(data)
        if block is None:
            break
        data = rest
        key = parse_private_key_der(block.type, block.bytes)
        if key is not None:
            keys.append(key)
    return keys


def private_key_go_value(key: PrivateKey) -> Any:
    """The Go key struct as OPA returns it (``encoding/json`` of the key)."""
    if isinstance(key, RSAPrivateKey):
        return {
            "N": key.n,
            "E": key.e,
            "D": key.d,
            "Primes": list(key.primes),
            "Precomputed": {"Dp": key.dp, "Dq": key.dq, "Qinv": key.qinv, "CRTValues": []},
        }
    if isinstance(key, ECPrivateKey):
        return {"Curve": {}, "X": key.x, "Y": key.y, "D": key.d}
    if isinstance(key, Ed25519PrivateKey):
        return b64(key.seed + key.public)
    return {}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_int(value: int, size: int = 0) -> str:
    return _b64url(value.to_bytes(max(size, (value.bit_length() + 7) // 8), "big"))


def private_key_to_jwk(key: PrivateKey) -> dict[str, str]:
    """The JWK that ``jwk.Import`` (lestrrat-go/jwx v3) makes of a private key, as JSON.

    RSA integers are minimal big-endian; EC coordinates and scalar are padded to the curve
    size; OKP keys carry the seed/scalar in ``d`` and the public key in ``x``. Raises GoError
    for P-224 keys, which jwx cannot represent.
    """
    if isinstance(key, RSAPrivateKey):
        jwk = {
            "kty": "RSA",
            "n": _b64url_int(key.n),
            "e": _b64url_int(key.e),
            "d": _b64url_int(key.d),
            "dp": _b64url_int(key.dp),
            "dq": _b64url_int(key.dq),
            "qi": _b64url_int(key.qinv),
        }
        jwk["p"], jwk["q"] = (_b64url_int(p) for p in key.primes)
        return jwk
    if isinstance(key, ECPrivateKey):
        if key.curve.name == "P-224":
            raise GoError(
                "failed to initialize *jwk.ecdsaPrivateKey from *ecdsa.PrivateKey: jwk: failed to "
                "get algorithm for converting ECDSA private key to JWK: unknown elliptic curve: "
                "P-224"
            )
        size = key.curve.size
        return {
            "kty": "EC",
            "crv": key.curve.name,
            "x": _b64url_int(key.x, size),
            "y": _b64url_int(key.y, size),
            "d": _b64url_int(key.d, size),
        }
    crv = "Ed25519" if isinstance(key, Ed25519PrivateKey) else "X25519"
    secret = key.seed if isinstance(key, Ed25519PrivateKey) else key.private
    return {"kty": "OKP", "crv": crv, "x": _b64url(key.public), "d": _b64url(secret)}


# --- builtins -----------------------------------------------------------------------------


def _builtin_error(err: GoError) -> BuiltinError:
    return BuiltinError(str(err))


def _hex_digest(algorithm: str, value: Any) -> str:
    return hashlib.new(algorithm, string_arg(value, 1).encode("utf-8")).hexdigest()


def crypto_md5(ctx: EvalContext, x: Any) -> str:
    """Returns a string representing the input string hashed with the MD5 function."""
    return _hex_digest("md5", x)


def crypto_sha1(ctx: EvalContext, x: Any) -> str:
    """Returns a string representing the input string hashed with the SHA1 function."""
    return _hex_digest("sha1", x)


def crypto_sha256(ctx: EvalContext, x: Any) -> str:
    """Returns a string representing the input string hashed with the SHA256 function."""
    return _hex_digest("sha256", x)


def _hmac(x: Any, key: Any, algorithm: str) -> str:
    message = string_arg(x, 1).encode("utf-8")
    secret = string_arg(key, 2).encode("utf-8")
    return hmac.new(secret, message, algorithm).hexdigest()


def crypto_hmac_md5(ctx: EvalContext, x: Any, key: Any) -> str:
    """Returns a string representing the MD5 HMAC of the input message using the input key."""
    return _hmac(x, key, "md5")


def crypto_hmac_sha1(ctx: EvalContext, x: Any, key: Any) -> str:
    """Returns a string representing the SHA1 HMAC of the input message using the input key."""
    return _hmac(x, key, "sha1")


def crypto_hmac_sha256(ctx: EvalContext, x: Any, key: Any) -> str:
    """Returns a string representing the SHA256 HMAC of the input message using the input key."""
    return _hmac(x, key, "sha256")


def crypto_hmac_sha512(ctx: EvalContext, x: Any, key: Any) -> str:
    """Returns a string representing the SHA512 HMAC of the input message using the input key."""
    return _hmac(x, key, "sha512")


def crypto_hmac_equal(ctx: EvalContext, mac1: Any, mac2: Any) -> bool:
    """Returns a boolean representing the result of comparing two MACs for equality."""
    a = string_arg(mac1, 1).encode("utf-8")
    b = string_arg(mac2, 2).encode("utf-8")
    return hmac.compare_digest(a, b)


def crypto_parse_private_keys(ctx: EvalContext, keys: Any) -> Any:
    """Returns zero or more private keys from the given encoded string containing PEM data."""
    text = string_arg(keys, 1)
    if text == "":
        return None
    try:
        parsed = private_keys_from_pem(text)
    except GoError as err:
        raise _builtin_error(err) from None
    return [private_key_go_value(k) for k in parsed]


BUILTINS = (
    BuiltinSpec("crypto.md5", crypto_md5),
    BuiltinSpec("crypto.sha1", crypto_sha1),
    BuiltinSpec("crypto.sha256", crypto_sha256),
    BuiltinSpec("crypto.hmac.md5", crypto_hmac_md5),
    BuiltinSpec("crypto.hmac.sha1", crypto_hmac_sha1),
    BuiltinSpec("crypto.hmac.sha256", crypto_hmac_sha256),
    BuiltinSpec("crypto.hmac.sha512", crypto_hmac_sha512),
    BuiltinSpec("crypto.hmac.equal", crypto_hmac_equal),
    BuiltinSpec("crypto.parse_private_keys", crypto_parse_private_keys),
)
