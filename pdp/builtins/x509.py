"""X.509 builtins (``crypto.x509.*``): certificates, chains, CSRs, key pairs and RSA keys.

OPA returns Go's ``x509.Certificate``, ``x509.CertificateRequest`` and ``tls.Certificate``
structs marshalled to JSON, and decides validity with ``x509.Certificate.Verify``. This module
parses DER the way ``crypto/x509`` does (same accepted inputs, same error texts), renders the
structs field by field as ``encoding/json`` would, and re-implements the chain building and
checks of ``Verify`` (validity period, signatures, CA and path-length constraints, extended
key usages, host names, name constraints and policies). Signature arithmetic is delegated to
``cryptography``.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from pdp.builtins._goencoding import go_base64_decode, pem_decode
from pdp.builtins._golang import GoError, go_quote_bytes, go_string
from pdp.builtins._gourl import GoURL, URLError, url_parse
from pdp.builtins.base import (
    BuiltinError,
    BuiltinSpec,
    EvalContext,
    object_arg,
    string_arg,
)
from pdp.builtins.crypto import (
    ALGORITHM_IDENTIFIER,
    ANY,
    BITSTRING,
    BOOL,
    CURVES,
    INT,
    NONE,
    OCTETS,
    OID,
    OPTIONAL,
    RAW,
    BitString,
    Curve,
    ECPrivateKey,
    Ed25519PrivateKey,
    GoTime,
    Params,
    PrivateKey,
    RawValue,
    RSAPrivateKey,
    asn1_unmarshal,
    b64,
    parse_ec_private_key,
    parse_go_time,
    parse_pkcs1_private_key,
    parse_pkcs8_private_key,
    private_key_go_value,
    private_key_to_jwk,
    private_keys_from_pem,
    slice_of,
    struct,
)
from pdp.values import RegoSet

__all__ = [
    "BUILTINS",
    "Certificate",
    "VerifyOptions",
    "certificates_from_string",
    "parse_certificate",
    "parse_certificate_request",
    "parse_certificates_der",
    "verify_chain",
    "x509_key_pair",
]

# --- a cryptobyte-style DER reader ----------------------------------------------------------

SEQUENCE, SET, BOOLEAN, INTEGER, BIT_STRING, OCTET_STRING = 0x30, 0x31, 0x01, 0x02, 0x03, 0x04
OBJECT_IDENTIFIER, UTC_TIME, GENERALIZED_TIME = 0x06, 0x17, 0x18


def _ctx(n: int, constructed: bool = False) -> int:
    return 0x80 | (0x20 if constructed else 0) | n


class _Der:
    """``cryptobyte.String`` restricted to what ``crypto/x509`` uses; failures raise GoError."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def empty(self) -> bool:
        return not self.data

    def peek(self, tag: int) -> bool:
        return bool(self.data) and self.data[0] == tag

    def _next(self, skip_header: bool) -> tuple[int, bytes] | None:
        d = self.data
        if len(d) < 2 or d[0] & 0x1F == 0x1F:
            return None
        tag, len_byte = d[0], d[1]
        if not len_byte & 0x80:
            header, length = 2, 2 + len_byte
        else:
            count = len_byte & 0x7F
            if count == 0 or count > 4 or len(d) < 2 + count:
                return None
            body = int.from_bytes(d[2 : 2 + count], "big")
            if body < 128 or body >> ((count - 1) * 8) == 0:
                return None
            header, length = 2 + count, 2 + count + body
        if len(d) < length:
            return None
        self.data = d[length:]
        return tag, d[header if skip_header else 0 : length]

    def read_any(self, err: str, *, element: bool = False) -> tuple[int, bytes]:
        got = self._next(not element)
        if got is None:
            raise GoError(err)
        return got

    def read(self, tag: int, err: str, *, element: bool = False) -> bytes:
        got = self._next(not element)
        if got is None or got[0] != tag:
            raise GoError(err)
        return got[1]

    def read_optional(self, tag: int, err: str) -> bytes | None:
        return self.read(tag, err) if self.peek(tag) else None

    def read_bool(self, err: str) -> bool:
        body = self.read(BOOLEAN, err)
        if len(body) != 1 or body[0] not in (0, 0xFF):
            raise GoError(err)
        return body[0] == 0xFF

    def read_integer(self, err: str, tag: int = INTEGER) -> int:
        body = self.read(tag, err)
        if not body or (
            len(body) > 1
            and ((body[0] == 0 and not body[1] & 0x80) or (body[0] == 0xFF and body[1] & 0x80))
        ):
            raise GoError(err)
        return int.from_bytes(body, "big", signed=True)

    def read_int64(self, err: str, tag: int = INTEGER) -> int:
        value = self.read_integer(err, tag)
        if not -(2**63) <= value < 2**63:
            raise GoError(err)
        return value

    def read_oid(self, err: str) -> tuple[int, ...]:
        return _oid_arcs(self.read(OBJECT_IDENTIFIER, err), err)

    def read_bit_string(self, err: str) -> BitString:
        body = self.read(BIT_STRING, err)
        if not body:
            raise GoError(err)
        pad, rest = body[0], body[1:]
        if pad > 7 or (not rest and pad) or (rest and rest[-1] & ((1 << pad) - 1)):
            raise GoError(err)
        return BitString(rest, len(rest) * 8 - pad)


def _oid_arcs(body: bytes, err: str) -> tuple[int, ...]:
    arcs = _decode_oid(body)
    if arcs is None:
        raise GoError(err)
    return arcs


@functools.lru_cache(maxsize=1024)
def _decode_oid(body: bytes) -> tuple[int, ...] | None:
    """``ReadASN1ObjectIdentifier``'s decoding (arcs below 2**31, minimal encoding)."""
    arcs: list[int] = []
    pos = 0
    if not body:
        return None
    while pos < len(body):
        value = 0
        for i in range(5):
            if pos >= len(body) or value >= 1 << 24 or (i == 0 and body[pos] == 0x80):
                return None
            b = body[pos]
            pos += 1
            value = value << 7 | (b & 0x7F)
            if not b & 0x80:
                break
        else:
            return None
        if not arcs:
            arcs.extend((value // 40, value % 40) if value < 80 else (2, value - 80))
        else:
            arcs.append(value)
    return tuple(arcs)


# --- Go values for JSON -------------------------------------------------------------------


def _ip_string(ip: bytes) -> str:
    """``net.IP.String`` for 4- and 16-byte addresses."""
    if len(ip) == 16 and ip[:12] == b"\x00" * 10 + b"\xff\xff":
        ip = ip[12:]
    if len(ip) == 4:
        return ".".join(str(b) for b in ip)
    return ipaddress.IPv6Address(ip).compressed


def _oid_der_text(der: bytes) -> str:
    """``x509.OID.String`` (arcs of any size)."""
    arcs: list[int] = []
    value = 0
    for b in der:
        value = value << 7 | (b & 0x7F)
        if not b & 0x80:
            if not arcs:
                arcs.extend((value // 40, value % 40) if value < 80 else (2, value - 80))
            else:
                arcs.append(value)
            value = 0
    return ".".join(str(a) for a in arcs)


def _oid_der_ints(der: bytes) -> list[int] | None:
    """``OID.toASN1OID``: None when an arc does not fit in 31 bits."""
    arcs = _decode_oid(der)
    return None if arcs is None else list(arcs)


def _valid_oid_der(der: bytes) -> bool:
    if not der or der[-1] & 0x80:
        return False
    start = 0
    for i, b in enumerate(der):
        if i == start and b == 0x80:
            return False
        if not b & 0x80:
            start = i + 1
    return True


def _opt_bytes(value: bytes | None) -> str | None:
    return None if value is None else b64(value)


def _opt_list(value: list[Any] | None) -> list[Any] | None:
    return None if value is None else list(value)


# --- URI SANs ----------------------------------------------------------------------------


def _python_addr_check(name: bytes) -> bool:
    """The bracketed-host check URI SANs have always been parsed with: Python's IP parser,
    one generic message (Go's ``netip.ParseAddr`` text is :func:`_gourl.check_addr`'s)."""
    try:
        addr = ipaddress.ip_address(go_string(name))
    except ValueError:
        raise URLError(f"invalid host: ParseAddr({go_quote_bytes(name)}): invalid IP") from None
    return addr.version == 4


# --- certificate contents -------------------------------------------------------------------

UNKNOWN_PUBLIC_KEY, RSA_KEY, DSA_KEY, ECDSA_KEY, ED25519_KEY = 0, 1, 2, 3, 4
OID_RSA = (1, 2, 840, 113549, 1, 1, 1)
OID_DSA = (1, 2, 840, 10040, 4, 1)
OID_EC = (1, 2, 840, 10045, 2, 1)
OID_ED25519 = (1, 3, 101, 112)
OID_SIG_PSS = (1, 2, 840, 113549, 1, 1, 10)
OID_MGF1 = (1, 2, 840, 113549, 1, 1, 8)
_NULL = b"\x05\x00"
_PUBLIC_KEY_ALGORITHMS = {OID_RSA: RSA_KEY, OID_DSA: DSA_KEY, OID_EC: ECDSA_KEY}
_PUBLIC_KEY_ALGORITHMS[OID_ED25519] = ED25519_KEY

# SignatureAlgorithm value → (hash name or None, public key algorithm, PSS?)
_SIGNATURES: dict[int, tuple[str | None, int, bool]] = {
    2: ("md5", RSA_KEY, False),
    3: ("sha1", RSA_KEY, False),
    4: ("sha256", RSA_KEY, False),
    5: ("sha384", RSA_KEY, False),
    6: ("sha512", RSA_KEY, False),
    7: ("sha1", DSA_KEY, False),
    8: ("sha256", DSA_KEY, False),
    9: ("sha1", ECDSA_KEY, False),
    10: ("sha256", ECDSA_KEY, False),
    11: ("sha384", ECDSA_KEY, False),
    12: ("sha512", ECDSA_KEY, False),
    13: ("sha256", RSA_KEY, True),
    14: ("sha384", RSA_KEY, True),
    15: ("sha512", RSA_KEY, True),
    16: (None, ED25519_KEY, False),
}
_SIGNATURE_OIDS = {
    (1, 2, 840, 113549, 1, 1, 4): 2,
    (1, 2, 840, 113549, 1, 1, 5): 3,
    (1, 3, 14, 3, 2, 29): 3,
    (1, 2, 840, 113549, 1, 1, 11): 4,
    (1, 2, 840, 113549, 1, 1, 12): 5,
    (1, 2, 840, 113549, 1, 1, 13): 6,
    (1, 2, 840, 10040, 4, 3): 7,
    (2, 16, 840, 1, 101, 3, 4, 3, 2): 8,
    (1, 2, 840, 10045, 4, 1): 9,
    (1, 2, 840, 10045, 4, 3, 2): 10,
    (1, 2, 840, 10045, 4, 3, 3): 11,
    (1, 2, 840, 10045, 4, 3, 4): 12,
    OID_ED25519: 16,
}
_PSS_HASHES = {
    (2, 16, 840, 1, 101, 3, 4, 2, 1): (32, 13),
    (2, 16, 840, 1, 101, 3, 4, 2, 2): (48, 14),
    (2, 16, 840, 1, 101, 3, 4, 2, 3): (64, 15),
}
_PSS_PARAMETERS = struct(
    "pssParameters",
    ("Hash", ALGORITHM_IDENTIFIER, Params(explicit=True, tag=0)),
    ("MGF", ALGORITHM_IDENTIFIER, Params(explicit=True, tag=1)),
    ("SaltLength", INT, Params(explicit=True, tag=2)),
    ("TrailerField", INT, Params(optional=True, explicit=True, tag=3, default=1)),
)

EXT_KEY_USAGE_OIDS = {
    (2, 5, 29, 37, 0): 0,
    (1, 3, 6, 1, 5, 5, 7, 3, 1): 1,
    (1, 3, 6, 1, 5, 5, 7, 3, 2): 2,
    (1, 3, 6, 1, 5, 5, 7, 3, 3): 3,
    (1, 3, 6, 1, 5, 5, 7, 3, 4): 4,
    (1, 3, 6, 1, 5, 5, 7, 3, 5): 5,
    (1, 3, 6, 1, 5, 5, 7, 3, 6): 6,
    (1, 3, 6, 1, 5, 5, 7, 3, 7): 7,
    (1, 3, 6, 1, 5, 5, 7, 3, 8): 8,
    (1, 3, 6, 1, 5, 5, 7, 3, 9): 9,
    (1, 3, 6, 1, 4, 1, 311, 10, 3, 3): 10,
    (2, 16, 840, 1, 113730, 4, 1): 11,
    (1, 3, 6, 1, 4, 1, 311, 2, 1, 22): 12,
    (1, 3, 6, 1, 4, 1, 311, 61, 1, 1): 13,
}
OID_SAN = (2, 5, 29, 17)
OID_NAME_CONSTRAINTS = (2, 5, 29, 30)
OID_AIA = (1, 3, 6, 1, 5, 5, 7, 1, 1)
OID_OCSP = (1, 3, 6, 1, 5, 5, 7, 48, 1)
OID_CA_ISSUERS = (1, 3, 6, 1, 5, 5, 7, 48, 2)
OID_EXTENSION_REQUEST = (1, 2, 840, 113549, 1, 9, 14)
KEY_USAGE_CERT_SIGN = 1 << 5


def _signature_algorithm(oid: tuple[int, ...], params: bytes) -> int:
    if oid == OID_ED25519 and params:
        return 0
    if oid != OID_SIG_PSS:
        return _SIGNATURE_OIDS.get(oid, 0)
    try:
        pss, _ = asn1_unmarshal(params, _PSS_PARAMETERS)
        mgf_hash, _ = asn1_unmarshal(pss["MGF"]["Parameters"].full, ALGORITHM_IDENTIFIER)
    except GoError:
        return 0
    hash_params = pss["Hash"]["Parameters"].full
    mgf_params = mgf_hash["Parameters"].full
    if (
        (hash_params and hash_params != _NULL)
        or pss["MGF"]["Algorithm"] != OID_MGF1
        or mgf_hash["Algorithm"] != pss["Hash"]["Algorithm"]
        or (mgf_params and mgf_params != _NULL)
        or pss["TrailerField"] != 1
    ):
        return 0
    salt, algo = _PSS_HASHES.get(pss["Hash"]["Algorithm"], (None, 0))
    return algo if salt == pss["SaltLength"] else 0


@dataclass(frozen=True)
class RSAPublicKey:
    """``*rsa.PublicKey``."""

    n: int
    e: int

    def go_value(self) -> Any:
        return {"N": self.n, "E": self.e}


@dataclass(frozen=True)
class ECPublicKey:
    """``*ecdsa.PublicKey``."""

    curve: Curve
    x: int
    y: int

    def go_value(self) -> Any:
        return {"Curve": {}, "X": self.x, "Y": self.y}


@dataclass(frozen=True)
class Ed25519PublicKey:
    """``ed25519.PublicKey``."""

    key: bytes

    def go_value(self) -> Any:
        return b64(self.key)


@dataclass(frozen=True)
class DSAPublicKey:
    """``*dsa.PublicKey`` (parsed, never used to verify, as in Go)."""

    p: int
    q: int
    g: int
    y: int

    def go_value(self) -> Any:
        return {"P": self.p, "Q": self.q, "G": self.g, "Y": self.y}


PublicKey = RSAPublicKey | ECPublicKey | Ed25519PublicKey | DSAPublicKey


def _parse_ai(der: _Der) -> tuple[tuple[int, ...], bytes]:
    oid = der.read_oid("x509: malformed OID")
    if der.empty():
        return oid, b""
    _, params = der.read_any("x509: malformed parameters", element=True)
    return oid, params


def _parse_public_key(oid: tuple[int, ...], params: bytes, data: bytes) -> PublicKey:
    if oid == OID_RSA:
        if params != _NULL:
            raise GoError("x509: RSA key missing NULL parameters")
        der = _Der(_Der(data).read(SEQUENCE, "x509: invalid RSA public key"))
        n = der.read_integer("x509: invalid RSA modulus")
        e = der.read_int64("x509: invalid RSA public exponent")
        if n <= 0:
            raise GoError("x509: RSA modulus is not a positive number")
        if e <= 0:
            raise GoError("x509: RSA public exponent is not a positive number")
        return RSAPublicKey(n, e)
    if oid == OID_EC:
        curve = CURVES.get(_Der(params).read_oid("x509: invalid ECDSA parameters"))
        if curve is None:
            raise GoError("x509: unsupported elliptic curve")
        return _parse_uncompressed_point(curve, data)
    if oid == OID_ED25519:
        if params:
            raise GoError("x509: Ed25519 key encoded with illegal parameters")
        if len(data) != 32:
            raise GoError("x509: wrong Ed25519 public key size")
        return Ed25519PublicKey(data)
    if oid == OID_DSA:
        y = _Der(data).read_integer("x509: invalid DSA public key")
        seq = _Der(_Der(params).read(SEQUENCE, "x509: invalid DSA parameters"))
        p, q, g = (seq.read_integer("x509: invalid DSA parameters") for _ in range(3))
        if min(y, p, q, g) <= 0:
            raise GoError("x509: zero or negative DSA parameter")
        return DSAPublicKey(p, q, g, y)
    raise GoError("x509: unknown public key algorithm")


def _parse_uncompressed_point(curve: Curve, data: bytes) -> ECPublicKey:
    if not data or data[0] != 4:
        raise GoError("ecdsa: invalid uncompressed public key")
    if len(data) != 1 + 2 * curve.size:
        raise GoError(f"invalid {curve.point_name} point encoding")
    x = int.from_bytes(data[1 : 1 + curve.size], "big")
    y = int.from_bytes(data[1 + curve.size :], "big")
    if x >= curve.prime or y >= curve.prime:
        raise GoError(f"invalid {curve.point_name} point encoding")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(curve.make(), data)
    except ValueError:
        raise GoError(f"{curve.point_name} point not on curve") from None
    return ECPublicKey(curve, x, y)


@dataclass
class Name:
    """``pkix.Name`` filled from an RDN sequence."""

    names: list[tuple[tuple[int, ...], Any]] = field(default_factory=list)

    def go_value(self) -> dict[str, Any]:
        fields: dict[int, list[Any]] = {6: [], 7: [], 8: [], 9: [], 10: [], 11: [], 17: []}
        common_name = serial = ""
        for oid, value in self.names:
            if not isinstance(value, str) or len(oid) != 4 or oid[:3] != (2, 5, 4):
                continue
            if oid[3] == 3:
                common_name = value
            elif oid[3] == 5:
                serial = value
            elif oid[3] in fields:
                fields[oid[3]].append(value)
        return {
            "Country": fields[6] or None,
            "Organization": fields[10] or None,
            "OrganizationalUnit": fields[11] or None,
            "Locality": fields[7] or None,
            "Province": fields[8] or None,
            "StreetAddress": fields[9] or None,
            "PostalCode": fields[17] or None,
            "SerialNumber": serial,
            "CommonName": common_name,
            "Names": [{"Type": list(o), "Value": _any_value(v)} for o, v in self.names] or None,
            "ExtraNames": None,
        }


def _any_value(value: Any) -> Any:
    """A Go ``interface{}`` decoded by ``encoding/asn1`` as JSON."""
    if isinstance(value, bytes):
        return b64(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, BitString):
        return {"Bytes": b64(value.bytes), "BitLength": value.bit_length}
    if isinstance(value, GoTime):
        return value.rfc3339()
    return value


_PRINTABLE_EXTRA = frozenset(b"'()+,-./ :=?*&")


def _asn1_string(tag: int, value: bytes) -> str:
    if tag == 0x14:
        return value.decode("latin-1")
    if tag == 0x13:
        if not all(
            0x61 <= b <= 0x7A or 0x41 <= b <= 0x5A or 0x30 <= b <= 0x39 or b in _PRINTABLE_EXTRA
            for b in value
        ):
            raise GoError("invalid PrintableString")
        return value.decode("ascii")
    if tag == 0x0C:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise GoError("invalid UTF-8 string") from None
    if tag == 0x1E:
        if len(value) % 2:
            raise GoError("invalid BMPString")
        if value[-2:] == b"\x00\x00":
            value = value[:-2]
        points = [value[i] << 8 | value[i + 1] for i in range(0, len(value), 2)]
        if any(
            p in (0xFFFE, 0xFFFF) or 0xFDD0 <= p <= 0xFDEF or 0xD800 <= p <= 0xDFFF for p in points
        ):
            raise GoError("invalid BMPString")
        return "".join(chr(p) for p in points)
    if tag == 0x16:
        if any(b >= 0x80 for b in value):
            raise GoError("invalid IA5String")
        return value.decode("ascii")
    if tag == 0x12:
        if not all(0x30 <= b <= 0x39 or b == 0x20 for b in value):
            raise GoError("invalid NumericString")
        return value.decode("ascii")
    raise GoError(f"unsupported string type: {tag}")


def _parse_name(raw: bytes) -> Name:
    seq = _Der(_Der(raw).read(SEQUENCE, "x509: invalid RDNSequence"))
    name = Name()
    while not seq.empty():
        rdn = _Der(seq.read(SET, "x509: invalid RDNSequence"))
        while not rdn.empty():
            atav = _Der(rdn.read(SEQUENCE, "x509: invalid RDNSequence: invalid attribute"))
            oid = atav.read_oid("x509: invalid RDNSequence: invalid attribute type")
            tag, value = atav.read_any("x509: invalid RDNSequence: invalid attribute value")
            try:
                text = _asn1_string(tag, value)
            except GoError as err:
                msg = f"x509: invalid RDNSequence: invalid attribute value: {err}"
                raise GoError(msg) from None
            name.names.append((oid, text))
    return name


def _parse_time(der: _Der) -> GoTime:
    if der.peek(UTC_TIME):
        body = der.read(UTC_TIME, "x509: malformed UTCTime")
        parsed = parse_go_time(body, 2) or parse_go_time(body, 2, with_seconds=False)
        if parsed is None:
            raise GoError("x509: malformed UTCTime")
        return parsed
    if der.peek(GENERALIZED_TIME):
        parsed = parse_go_time(der.read(GENERALIZED_TIME, "x509: malformed GeneralizedTime"), 4)
        if parsed is None:
            raise GoError("x509: malformed GeneralizedTime")
        return parsed
    raise GoError("x509: unsupported time format")


def _is_ia5(data: bytes) -> bool:
    return all(b < 0x80 for b in data)


def _domain_name_valid(s: bytes, constraint: bool) -> bool:
    if not s:
        return True
    if s[-1:] == b".":
        return False
    if constraint and s[:1] == b".":
        s = s[1:]
    return all(33 <= c <= 126 for c in s) and all(s.split(b"."))


@dataclass
class SANs:
    """Subject alternative names as ``parseSANExtension`` returns them."""

    dns: list[str] | None = None
    emails: list[str] | None = None
    ips: list[bytes] | None = None
    uris: list[GoURL] | None = None

    def empty(self) -> bool:
        return not (self.dns or self.emails or self.ips or self.uris)


def _parse_san(value: bytes) -> SANs:
    der = _Der(_Der(value).read(SEQUENCE, "x509: invalid subject alternative names"))
    sans = SANs()
    while not der.empty():
        tag, data = der.read_any("x509: invalid subject alternative name")
        kind = tag ^ 0x80
        if kind == 1:
            if not _is_ia5(data):
                raise GoError("x509: SAN rfc822Name is malformed")
            sans.emails = [*(sans.emails or []), data.decode("ascii")]
        elif kind == 2:
            if not _is_ia5(data):
                raise GoError("x509: SAN dNSName is malformed")
            sans.dns = [*(sans.dns or []), data.decode("ascii")]
        elif kind == 6:
            if not _is_ia5(data):
                raise GoError("x509: SAN uniformResourceIdentifier is malformed")
            try:
                uri = url_parse(data, _python_addr_check)
            except URLError as err:
                raise GoError(f"x509: cannot parse URI {go_quote_bytes(data)}: {err}") from None
            if uri.host and not _domain_name_valid(uri.host, False):
                raise GoError(f"x509: cannot parse URI {go_quote_bytes(data)}: invalid domain")
            sans.uris = [*(sans.uris or []), uri]
        elif kind == 7:
            if len(data) not in (4, 16):
                raise GoError(f"x509: cannot parse IP address of length {len(data)}")
            sans.ips = [*(sans.ips or []), data]
    return sans


@dataclass
class Extension:
    """``pkix.Extension``."""

    oid: tuple[int, ...]
    critical: bool
    value: bytes

    def go_value(self) -> dict[str, Any]:
        return {"Id": list(self.oid), "Critical": self.critical, "Value": b64(self.value)}


def _parse_extension(der: _Der) -> Extension:
    oid = der.read_oid("x509: malformed extension OID field")
    critical = (
        der.read_bool("x509: malformed extension critical field") if der.peek(BOOLEAN) else False
    )
    value = der.read(OCTET_STRING, "x509: malformed extension value field")
    return Extension(oid, critical, value)


IPNet = tuple[bytes, bytes]


@dataclass
class Constraints:
    """One side (permitted or excluded) of a NameConstraints extension."""

    dns: list[str] | None = None
    ips: list[IPNet] | None = None
    emails: list[str] | None = None
    uri_domains: list[str] | None = None


def _valid_ip_mask(mask: bytes) -> bool:
    seen_zero = False
    for b in mask:
        if seen_zero:
            if b:
                return False
        elif b in (0x00, 0x80, 0xC0, 0xE0, 0xF0, 0xF8, 0xFC, 0xFE):
            seen_zero = True
        elif b != 0xFF:
            return False
    return True


def _parse_subtrees(data: bytes) -> tuple[Constraints, bool]:
    out = Constraints()
    unhandled = False
    subtrees = _Der(data)
    while not subtrees.empty():
        seq = _Der(subtrees.read(SEQUENCE, "x509: invalid NameConstraints extension"))
        tag, value = seq.read_any("x509: invalid NameConstraints extension")
        text = value.decode("latin-1")
        if tag in (0x82, 0x81, 0x86) and not _is_ia5(value):
            reason = f"x509: {go_quote_bytes(value)} cannot be encoded as an IA5String"
            raise GoError(f"x509: invalid constraint value: {reason}")
        if tag == 0x82:
            if not _domain_name_valid(value, True):
                raise GoError(f"x509: failed to parse dnsName constraint {go_quote_bytes(value)}")
            out.dns = [*(out.dns or []), text]
        elif tag == 0x87:
            if len(value) not in (8, 32):
                raise GoError(f"x509: IP constraint contained value of length {len(value)}")
            half = len(value) // 2
            ip, mask = value[:half], value[half:]
            if not _valid_ip_mask(mask):
                raise GoError(f"x509: IP constraint contained invalid mask {mask.hex()}")
            out.ips = [*(out.ips or []), (ip, mask)]
        elif tag == 0x81:
            valid = (
                _parse_mailbox(text) is not None if "@" in text else _domain_name_valid(value, True)
            )
            if not valid:
                raise GoError(
                    f"x509: failed to parse rfc822Name constraint {go_quote_bytes(value)}"
                )
            out.emails = [*(out.emails or []), text]
        elif tag == 0x86:
            if _parse_ip(text) is not None:
                quoted = go_quote_bytes(value)
                raise GoError(
                    f"x509: failed to parse URI constraint {quoted}: cannot be IP address"
                )
            if not _domain_name_valid(value, True):
                raise GoError(f"x509: failed to parse URI constraint {go_quote_bytes(value)}")
            out.uri_domains = [*(out.uri_domains or []), text]
        else:
            unhandled = True
    return out, unhandled


_ZERO_TIME = GoTime(1, 1, 1, 0, 0, 0)


@dataclass
class Certificate:
    """``x509.Certificate`` as ``x509.ParseCertificate`` fills it."""

    raw: bytes = b""
    raw_tbs: bytes = b""
    raw_spki: bytes = b""
    raw_subject: bytes = b""
    raw_issuer: bytes = b""
    signature: bytes = b""
    signature_algorithm: int = 0
    public_key_algorithm: int = 0
    public_key: PublicKey | None = None
    version: int = 0
    serial: int = 0
    issuer: Name = field(default_factory=Name)
    subject: Name = field(default_factory=Name)
    not_before: GoTime = _ZERO_TIME
    not_after: GoTime = _ZERO_TIME
    key_usage: int = 0
    extensions: list[Extension] | None = None
    unhandled_critical: list[tuple[int, ...]] | None = None
    ext_key_usage: list[int] | None = None
    unknown_ext_key_usage: list[tuple[int, ...]] | None = None
    basic_constraints_valid: bool = False
    is_ca: bool = False
    max_path_len: int = 0
    max_path_len_zero: bool = False
    subject_key_id: bytes | None = None
    authority_key_id: bytes | None = None
    ocsp_server: list[str] | None = None
    issuing_certificate_url: list[str] | None = None
    sans: SANs = field(default_factory=SANs)
    permitted_dns_domains_critical: bool = False
    permitted: Constraints = field(default_factory=Constraints)
    excluded: Constraints = field(default_factory=Constraints)
    crl_distribution_points: list[str] | None = None
    policy_identifiers: list[list[int]] | None = None
    policies: list[bytes] | None = None
    inhibit_any_policy: int = 0
    inhibit_any_policy_zero: bool = False
    inhibit_policy_mapping: int = 0
    inhibit_policy_mapping_zero: bool = False
    require_explicit_policy: int = 0
    require_explicit_policy_zero: bool = False
    policy_mappings: list[tuple[bytes, bytes]] | None = None

    def has_extension(self, oid: tuple[int, ...]) -> bool:
        return any(e.oid == oid for e in self.extensions or ())

    def extension_value(self, oid: tuple[int, ...]) -> bytes | None:
        return next((e.value for e in self.extensions or () if e.oid == oid), None)

    def go_value(self, uri_strings: bool = False) -> dict[str, Any]:
        """The certificate as OPA's JSON (with OPA's extra ``URIStrings`` when asked)."""
        sans = self.sans

        def nets(items: list[IPNet] | None) -> list[Any] | None:
            return (
                None if items is None else [{"IP": _ip_string(i), "Mask": b64(m)} for i, m in items]
            )

        value = {
            "Raw": b64(self.raw),
            "RawTBSCertificate": b64(self.raw_tbs),
            "RawSubjectPublicKeyInfo": b64(self.raw_spki),
            "RawSubject": b64(self.raw_subject),
            "RawIssuer": b64(self.raw_issuer),
            "Signature": b64(self.signature),
            "SignatureAlgorithm": self.signature_algorithm,
            "PublicKeyAlgorithm": self.public_key_algorithm,
            "PublicKey": None if self.public_key is None else self.public_key.go_value(),
            "Version": self.version,
            "SerialNumber": self.serial,
            "Issuer": self.issuer.go_value(),
            "Subject": self.subject.go_value(),
            "NotBefore": self.not_before.rfc3339(),
            "NotAfter": self.not_after.rfc3339(),
            "KeyUsage": self.key_usage,
            "Extensions": None
            if self.extensions is None
            else [e.go_value() for e in self.extensions],
            "ExtraExtensions": None,
            "UnhandledCriticalExtensions": None
            if self.unhandled_critical is None
            else [list(o) for o in self.unhandled_critical],
            "ExtKeyUsage": _opt_list(self.ext_key_usage),
            "UnknownExtKeyUsage": None
            if self.unknown_ext_key_usage is None
            else [list(o) for o in self.unknown_ext_key_usage],
            "BasicConstraintsValid": self.basic_constraints_valid,
            "IsCA": self.is_ca,
            "MaxPathLen": self.max_path_len,
            "MaxPathLenZero": self.max_path_len_zero,
            "SubjectKeyId": _opt_bytes(self.subject_key_id),
            "AuthorityKeyId": _opt_bytes(self.authority_key_id),
            "OCSPServer": _opt_list(self.ocsp_server),
            "IssuingCertificateURL": _opt_list(self.issuing_certificate_url),
            "DNSNames": _opt_list(sans.dns),
            "EmailAddresses": _opt_list(sans.emails),
            "IPAddresses": None if sans.ips is None else [_ip_string(i) for i in sans.ips],
            "URIs": None if sans.uris is None else [u.go_value() for u in sans.uris],
            "PermittedDNSDomainsCritical": self.permitted_dns_domains_critical,
            "PermittedDNSDomains": _opt_list(self.permitted.dns),
            "ExcludedDNSDomains": _opt_list(self.excluded.dns),
            "PermittedIPRanges": nets(self.permitted.ips),
            "ExcludedIPRanges": nets(self.excluded.ips),
            "PermittedEmailAddresses": _opt_list(self.permitted.emails),
            "ExcludedEmailAddresses": _opt_list(self.excluded.emails),
            "PermittedURIDomains": _opt_list(self.permitted.uri_domains),
            "ExcludedURIDomains": _opt_list(self.excluded.uri_domains),
            "CRLDistributionPoints": _opt_list(self.crl_distribution_points),
            "PolicyIdentifiers": _opt_list(self.policy_identifiers),
            "Policies": None
            if self.policies is None
            else [_oid_der_text(p) for p in self.policies],
            "InhibitAnyPolicy": self.inhibit_any_policy,
            "InhibitAnyPolicyZero": self.inhibit_any_policy_zero,
            "InhibitPolicyMapping": self.inhibit_policy_mapping,
            "InhibitPolicyMappingZero": self.inhibit_policy_mapping_zero,
            "RequireExplicitPolicy": self.require_explicit_policy,
            "RequireExplicitPolicyZero": self.require_explicit_policy_zero,
            "PolicyMappings": None
            if self.policy_mappings is None
            else [
                {"IssuerDomainPolicy": _oid_der_text(i), "SubjectDomainPolicy": _oid_der_text(s)}
                for i, s in self.policy_mappings
            ],
        }
        if uri_strings:
            value["URIStrings"] = (
                None if sans.uris is None else [go_string(u.string()) for u in sans.uris]
            )
        return value


def _process_extensions(cert: Certificate) -> None:
    for ext in cert.extensions or ():
        unhandled = False
        oid, value = ext.oid, ext.value
        if len(oid) == 4 and oid[:3] == (2, 5, 29):
            unhandled = _process_standard_extension(cert, ext)
        elif oid == OID_AIA:
            if ext.critical:
                raise GoError("x509: authority info access incorrectly marked critical")
            seq = _Der(_Der(value).read(SEQUENCE, "x509: invalid authority info access"))
            while not seq.empty():
                aia = _Der(seq.read(SEQUENCE, "x509: invalid authority info access"))
                method = aia.read_oid("x509: invalid authority info access")
                if not aia.peek(_ctx(6)):
                    continue
                location = go_string(aia.read(_ctx(6), "x509: invalid authority info access"))
                if method == OID_OCSP:
                    cert.ocsp_server = [*(cert.ocsp_server or []), location]
                elif method == OID_CA_ISSUERS:
                    cert.issuing_certificate_url = [
                        *(cert.issuing_certificate_url or []),
                        location,
                    ]
        else:
            unhandled = True
        if ext.critical and unhandled:
            cert.unhandled_critical = [*(cert.unhandled_critical or []), oid]


def _process_standard_extension(cert: Certificate, ext: Extension) -> bool:
    kind, value = ext.oid[3], ext.value
    if kind == 15:
        bits = _Der(value).read_bit_string("x509: invalid key usage")
        cert.key_usage = sum(1 << i for i in range(9) if bits.at(i))
    elif kind == 19:
        seq = _Der(_Der(value).read(SEQUENCE, "x509: invalid basic constraints"))
        is_ca = seq.read_bool("x509: invalid basic constraints") if seq.peek(BOOLEAN) else False
        max_path_len = -1
        if seq.peek(INTEGER):
            max_path_len = seq.read_integer("x509: invalid basic constraints")
            if not 0 <= max_path_len < 2**63:
                raise GoError("x509: invalid basic constraints")
        cert.is_ca, cert.max_path_len = is_ca, max_path_len
        cert.basic_constraints_valid = True
        cert.max_path_len_zero = max_path_len == 0
    elif kind == 17:
        cert.sans = _parse_san(value)
        return cert.sans.empty()
    elif kind == 30:
        return _parse_name_constraints(cert, ext)
    elif kind == 31:
        _parse_crl_distribution_points(cert, value)
    elif kind == 35:
        if ext.critical:
            raise GoError("x509: authority key identifier incorrectly marked critical")
        akid = _Der(_Der(value).read(SEQUENCE, "x509: invalid authority key identifier"))
        if akid.peek(_ctx(0)):
            cert.authority_key_id = akid.read(_ctx(0), "x509: invalid authority key identifier")
    elif kind == 36:
        _parse_policy_constraints(cert, value)
    elif kind == 37:
        seq = _Der(_Der(value).read(SEQUENCE, "x509: invalid extended key usages"))
        known: list[int] | None = None
        unknown: list[tuple[int, ...]] | None = None
        while not seq.empty():
            eku = seq.read_oid("x509: invalid extended key usages")
            if eku in EXT_KEY_USAGE_OIDS:
                known = [*(known or []), EXT_KEY_USAGE_OIDS[eku]]
            else:
                unknown = [*(unknown or []), eku]
        cert.ext_key_usage, cert.unknown_ext_key_usage = known, unknown
    elif kind == 14:
        if ext.critical:
            raise GoError("x509: subject key identifier incorrectly marked critical")
        cert.subject_key_id = _Der(value).read(OCTET_STRING, "x509: invalid subject key identifier")
    elif kind == 32:
        _parse_certificate_policies(cert, value)
    elif kind == 33:
        seq = _Der(_Der(value).read(SEQUENCE, "x509: invalid policy mappings extension"))
        mappings: list[tuple[bytes, bytes]] = []
        while not seq.empty():
            pair = _Der(seq.read(SEQUENCE, "x509: invalid policy mappings extension"))
            issuer = pair.read(OBJECT_IDENTIFIER, "x509: invalid policy mappings extension")
            subject = pair.read(OBJECT_IDENTIFIER, "x509: invalid policy mappings extension")
            mappings.append((issuer, subject))
        cert.policy_mappings = mappings or None
    elif kind == 54:
        inhibit = _Der(value).read_int64("x509: invalid inhibit any policy extension")
        cert.inhibit_any_policy = inhibit
        cert.inhibit_any_policy_zero = inhibit == 0
    else:
        return True
    return False


def _parse_name_constraints(cert: Certificate, ext: Extension) -> bool:
    err = "x509: invalid NameConstraints extension"
    outer = _Der(ext.value)
    top = _Der(outer.read(SEQUENCE, err))
    if not outer.empty():
        raise GoError(err)
    permitted = top.read_optional(_ctx(0, True), err)
    excluded = top.read_optional(_ctx(1, True), err)
    if not top.empty():
        raise GoError(err)
    if not permitted and not excluded:
        raise GoError("x509: empty name constraints extension")
    cert.permitted, unhandled_p = _parse_subtrees(permitted or b"")
    cert.excluded, unhandled_e = _parse_subtrees(excluded or b"")
    cert.permitted_dns_domains_critical = ext.critical
    return unhandled_p or unhandled_e


def _parse_crl_distribution_points(cert: Certificate, value: bytes) -> None:
    seq = _Der(_Der(value).read(SEQUENCE, "x509: invalid CRL distribution points"))
    while not seq.empty():
        point = _Der(seq.read(SEQUENCE, "x509: invalid CRL distribution point"))
        name = point.read_optional(_ctx(0, True), "x509: invalid CRL distribution point")
        if name is None:
            continue
        full = _Der(_Der(name).read(_ctx(0, True), "x509: invalid CRL distribution point"))
        while not full.empty() and full.peek(_ctx(6)):
            uri = full.read(_ctx(6), "x509: invalid CRL distribution point")
            cert.crl_distribution_points = [*(cert.crl_distribution_points or []), go_string(uri)]


def _parse_policy_constraints(cert: Certificate, value: bytes) -> None:
    err = "x509: invalid policy constraints extension"
    seq = _Der(_Der(value).read(SEQUENCE, err))
    if seq.peek(_ctx(0)):
        explicit = seq.read_int64(err, _ctx(0))
        cert.require_explicit_policy = explicit
        cert.require_explicit_policy_zero = explicit == 0
    if seq.peek(_ctx(1)):
        inhibit = seq.read_int64(err, _ctx(1))
        cert.inhibit_policy_mapping = inhibit
        cert.inhibit_policy_mapping_zero = inhibit == 0


def _parse_certificate_policies(cert: Certificate, value: bytes) -> None:
    err = "x509: invalid certificate policies"
    seq = _Der(_Der(value).read(SEQUENCE, err))
    policies: list[bytes] = []
    while not seq.empty():
        info = _Der(seq.read(SEQUENCE, err))
        oid = info.read(OBJECT_IDENTIFIER, err)
        if oid in policies or not _valid_oid_der(oid):
            raise GoError(err)
        policies.append(oid)
    cert.policies = policies or None
    cert.policy_identifiers = [a for a in map(_oid_der_ints, policies) if a is not None]


def parse_certificate(der: bytes) -> Certificate:
    """``x509.parseCertificate``: one certificate from the start of ``der``."""
    cert = Certificate()
    outer = _Der(der)
    cert.raw = outer.read(SEQUENCE, "x509: malformed certificate", element=True)
    body = _Der(_Der(cert.raw).read(SEQUENCE, "x509: malformed certificate"))
    cert.raw_tbs = body.read(SEQUENCE, "x509: malformed tbs certificate", element=True)
    tbs = _Der(_Der(cert.raw_tbs).read(SEQUENCE, "x509: malformed tbs certificate"))

    version = 0
    if tbs.peek(_ctx(0, True)):
        inner = _Der(tbs.read(_ctx(0, True), "x509: malformed version"))
        version = inner.read_int64("x509: malformed version")
        if not inner.empty():
            raise GoError("x509: malformed version")
    if version < 0:
        raise GoError("x509: malformed version")
    cert.version = version + 1
    if cert.version > 3:
        raise GoError("x509: invalid version")

    cert.serial = tbs.read_integer("x509: malformed serial number")
    if cert.serial < 0:
        raise GoError("x509: negative serial number")

    sig_ai = tbs.read(SEQUENCE, "x509: malformed signature algorithm identifier")
    outer_ai = body.read(SEQUENCE, "x509: malformed algorithm identifier")
    if outer_ai != sig_ai:
        raise GoError("x509: inner and outer signature algorithm identifiers don't match")
    cert.signature_algorithm = _signature_algorithm(*_parse_ai(_Der(sig_ai)))

    cert.raw_issuer = tbs.read(SEQUENCE, "x509: malformed issuer", element=True)
    cert.issuer = _parse_name(cert.raw_issuer)
    validity = _Der(tbs.read(SEQUENCE, "x509: malformed validity"))
    cert.not_before = _parse_time(validity)
    cert.not_after = _parse_time(validity)
    cert.raw_subject = tbs.read(SEQUENCE, "x509: malformed issuer", element=True)
    cert.subject = _parse_name(cert.raw_subject)

    cert.raw_spki = tbs.read(SEQUENCE, "x509: malformed spki", element=True)
    spki = _Der(_Der(cert.raw_spki).read(SEQUENCE, "x509: malformed spki"))
    ai = spki.read(SEQUENCE, "x509: malformed public key algorithm identifier")
    key_oid, key_params = _parse_ai(_Der(ai))
    cert.public_key_algorithm = _PUBLIC_KEY_ALGORITHMS.get(key_oid, UNKNOWN_PUBLIC_KEY)
    key_bits = spki.read_bit_string("x509: malformed subjectPublicKey")
    if cert.public_key_algorithm != UNKNOWN_PUBLIC_KEY:
        cert.public_key = _parse_public_key(key_oid, key_params, key_bits.right_align())

    if cert.version > 1:
        for n, what in ((1, "issuerUniqueID"), (2, "subjectUniqueID")):
            if tbs.peek(_ctx(n)):
                tbs.read(_ctx(n), f"x509: malformed {what}")
        if cert.version == 3 and tbs.peek(_ctx(3, True)):
            wrapped = _Der(tbs.read(_ctx(3, True), "x509: malformed extensions"))
            exts = _Der(wrapped.read(SEQUENCE, "x509: malformed extensions"))
            seen: set[tuple[int, ...]] = set()
            cert.extensions = []
            while not exts.empty():
                ext = _parse_extension(_Der(exts.read(SEQUENCE, "x509: malformed extension")))
                if ext.oid in seen:
                    dotted = go_quote_bytes(".".join(map(str, ext.oid)))
                    raise GoError(
                        f"x509: certificate contains duplicate extension with OID {dotted}"
                    )
                seen.add(ext.oid)
                cert.extensions.append(ext)
            cert.extensions = cert.extensions or None
            _process_extensions(cert)

    cert.signature = body.read_bit_string("x509: malformed signature").right_align()
    return cert


def parse_certificates_der(der: bytes) -> list[Certificate]:
    """``x509.ParseCertificates``: concatenated DER certificates."""
    certs = []
    while der:
        cert = parse_certificate(der)
        certs.append(cert)
        der = der[len(cert.raw) :]
    return certs


def _certs_from_pem(data: bytes) -> list[Certificate]:
    der = bytearray()
    while data:
        block, rest = pem_decode(data)
        if block is None:
            break
        if block.type != "CERTIFICATE":
            raise GoError(f"PEM block type is '{block.type}', expected CERTIFICATE")
        data = rest
        der += block.bytes
    return parse_certificates_der(bytes(der))


def certificates_from_string(text: str) -> list[Certificate]:
    """OPA's ``getX509CertsFromString``: PEM, base64 of PEM, or base64 of DER."""
    if text.startswith("-----BEGIN"):
        return _certs_from_pem(text.encode("utf-8"))
    data = go_base64_decode(text)
    if data.startswith(b"-----BEGIN"):
        return _certs_from_pem(data)
    return parse_certificates_der(data)


# --- signatures ---------------------------------------------------------------------------

_HASHES = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _check_signature(algo: int, signed: bytes, signature: bytes, key: PublicKey | None) -> bool:
    """``checkSignature`` with SHA-1 disallowed, as for certificates."""
    hash_name, key_algo, pss = _SIGNATURES.get(algo, (None, UNKNOWN_PUBLIC_KEY, False))
    if hash_name is None and key_algo != ED25519_KEY:
        return False
    if hash_name in ("md5", "sha1"):
        return False
    try:
        if isinstance(key, RSAPublicKey):
            if key_algo != RSA_KEY or key.n.bit_length() < 1024 or hash_name is None:
                return False
            pub_rsa = rsa.RSAPublicNumbers(key.e, key.n).public_key()
            digest = _HASHES[hash_name]()
            pad: padding.AsymmetricPadding = (
                padding.PSS(padding.MGF1(digest), padding.PSS.DIGEST_LENGTH)
                if pss
                else padding.PKCS1v15()
            )
            pub_rsa.verify(signature, signed, pad, digest)
            return True
        if isinstance(key, ECPublicKey):
            if key_algo != ECDSA_KEY or hash_name is None:
                return False
            pub_ec = ec.EllipticCurvePublicNumbers(key.x, key.y, key.curve.make()).public_key()
            pub_ec.verify(signature, signed, ec.ECDSA(_HASHES[hash_name]()))
            return True
        if isinstance(key, Ed25519PublicKey):
            if key_algo != ED25519_KEY:
                return False
            ed25519.Ed25519PublicKey.from_public_bytes(key.key).verify(signature, signed)
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def _check_signature_from(child: Certificate, parent: Certificate) -> bool:
    if (parent.version == 3 and not parent.basic_constraints_valid) or (
        parent.basic_constraints_valid and not parent.is_ca
    ):
        return False
    if parent.key_usage and not parent.key_usage & KEY_USAGE_CERT_SIGN:
        return False
    if parent.public_key_algorithm == UNKNOWN_PUBLIC_KEY:
        return False
    return _check_signature(
        child.signature_algorithm, child.raw_tbs, child.signature, parent.public_key
    )


# --- verification ---------------------------------------------------------------------------

LEAF, INTERMEDIATE, ROOT = 0, 1, 2


@dataclass
class VerifyOptions:
    """The ``x509.VerifyOptions`` fields OPA sets."""

    dns_name: str = ""
    current_time_ns: int | None = None
    key_usages: list[int] = field(default_factory=list)


class _Pool:
    """``x509.CertPool``: certificates by subject, de-duplicated by content."""

    def __init__(self, certs: Iterable[Certificate]) -> None:
        self.certs: list[Certificate] = []
        self.sums: set[bytes] = set()
        for cert in certs:
            digest = hashlib.sha224(cert.raw).digest()
            if digest not in self.sums:
                self.sums.add(digest)
                self.certs.append(cert)

    def contains(self, cert: Certificate) -> bool:
        return hashlib.sha224(cert.raw).digest() in self.sums

    def potential_parents(self, cert: Certificate) -> list[Certificate]:
        matching, one, mismatch = [], [], []
        akid = cert.authority_key_id or b""
        for candidate in self.certs:
            if candidate.raw_subject != cert.raw_issuer:
                continue
            skid = candidate.subject_key_id or b""
            if skid == akid:
                matching.append(candidate)
            elif not skid or not akid:
                one.append(candidate)
            else:
                mismatch.append(candidate)
        return matching + one + mismatch


def _is_valid(cert: Certificate, kind: int, chain: list[Certificate], now_ns: int) -> bool:
    if cert.unhandled_critical:
        return False
    if chain and chain[-1].raw_issuer != cert.raw_subject:
        return False
    if now_ns < cert.not_before.unix() * 10**9 or now_ns > cert.not_after.unix() * 10**9:
        return False
    if kind == INTERMEDIATE and not (cert.basic_constraints_valid and cert.is_ca):
        return False
    return not (
        cert.basic_constraints_valid
        and cert.max_path_len >= 0
        and len(chain) - 1 > cert.max_path_len
    )


def _already_in_chain(candidate: Certificate, chain: list[Certificate]) -> bool:
    candidate_san = candidate.extension_value(OID_SAN)
    for cert in chain:
        if cert.raw_subject != candidate.raw_subject or cert.raw_spki != candidate.raw_spki:
            continue
        cert_san = cert.extension_value(OID_SAN)
        if candidate_san is None and cert_san is None:
            return True
        if candidate_san is None or cert_san is None:
            return False
        if candidate_san == cert_san:
            return True
    return False


class _ChainBuilder:
    """``Certificate.buildChains`` with its shared signature-check budget."""

    def __init__(self, roots: _Pool, intermediates: _Pool, now_ns: int) -> None:
        self.roots = roots
        self.intermediates = intermediates
        self.now_ns = now_ns
        self.checks = 0
        self.exhausted = False

    def build(self, cert: Certificate, chain: list[Certificate]) -> list[list[Certificate]]:
        chains: list[list[Certificate]] = []
        for kind, pool in ((ROOT, self.roots), (INTERMEDIATE, self.intermediates)):
            for candidate in pool.potential_parents(cert):
                self.checks += 1
                if self.checks > 100:
                    self.exhausted = True
                if self.exhausted:
                    return chains
                if candidate.public_key is None or _already_in_chain(candidate, chain):
                    continue
                if not _check_signature_from(cert, candidate):
                    continue
                if not _is_valid(candidate, kind, chain, self.now_ns):
                    continue
                extended = [*chain, candidate]
                if kind == ROOT:
                    chains.append(extended)
                else:
                    chains.extend(self.build(candidate, extended))
        return chains


def _check_key_usage(chain: list[Certificate], usages: list[int]) -> bool:
    wanted = list(usages)
    remaining = len(wanted)
    for cert in reversed(chain):
        if not cert.ext_key_usage and not cert.unknown_ext_key_usage:
            continue
        if 0 in (cert.ext_key_usage or ()):
            continue
        for i, usage in enumerate(wanted):
            if usage == -1 or usage in (cert.ext_key_usage or ()):
                continue
            wanted[i] = -1
            remaining -= 1
            if remaining == 0:
                return False
    return True


def verify_chain(certs: list[Certificate], opts: VerifyOptions, now_ns: int) -> list[Certificate]:
    """OPA's ``verifyX509CertificateChain``: first cert is the root, last the leaf.

    Returns Go's first verified chain (leaf first), or raises GoError when there is none.
    """
    if len(certs) < 2:
        raise GoError("must supply at least two certificates to be able to verify")
    roots = _Pool(certs[:1])
    intermediates = _Pool(certs[1:-1])
    leaf = certs[-1]
    if opts.current_time_ns is not None:
        now_ns = opts.current_time_ns
    if not _is_valid(leaf, LEAF, [], now_ns):
        raise GoError("x509: certificate is not valid")
    if opts.dns_name and not _verify_hostname(leaf, opts.dns_name):
        raise GoError("x509: certificate is not valid for the requested name")
    if roots.contains(leaf):
        candidates = [[leaf]]
    else:
        candidates = _ChainBuilder(roots, intermediates, now_ns).build(leaf, [leaf])
    any_usage = 0 in opts.key_usages
    usages = opts.key_usages or [1]
    for chain in candidates:
        if not _policies_valid(chain):
            continue
        if not any_usage and not _check_key_usage(chain, usages):
            continue
        if _check_chain_constraints(chain) is not None:
            continue
        return chain
    raise GoError("x509: certificate signed by unknown authority")


# --- host names -------------------------------------------------------------------------------


def _parse_ip(text: str) -> bytes | None:
    """``net.ParseIP`` as 16 bytes (IPv4 mapped), or None."""
    if "%" in text:
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if addr.version == 4:
        return b"\x00" * 10 + b"\xff\xff" + addr.packed
    return addr.packed


def _to16(ip: bytes) -> bytes:
    return b"\x00" * 10 + b"\xff\xff" + ip if len(ip) == 4 else ip


def _lower_ascii(s: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def _valid_hostname(host: str, pattern: bool) -> bool:
    if not pattern:
        host = host.removesuffix(".")
    if not host or host == "*":
        return False
    for i, part in enumerate(host.split(".")):
        if not part:
            return False
        if pattern and i == 0 and part == "*":
            continue
        for j, c in enumerate(part):
            if not ("a" <= c <= "z" or "0" <= c <= "9" or "A" <= c <= "Z" or c == "_") and (
                c != "-" or j == 0
            ):
                return False
    return True


def _verify_hostname(cert: Certificate, host: str) -> bool:
    candidate = host[1:-1] if len(host) >= 3 and host[0] == "[" and host[-1] == "]" else host
    ip = _parse_ip(candidate)
    if ip is not None:
        return any(_to16(c) == ip for c in cert.sans.ips or ())
    name = _lower_ascii(host)
    valid = _valid_hostname(name, False)
    parts = _lower_ascii(name.removesuffix(".")).split(".")
    for match in cert.sans.dns or ():
        if valid and _valid_hostname(match, True):
            pattern = _lower_ascii(match).split(".")
            if (
                match
                and len(pattern) == len(parts)
                and all((i == 0 and p == "*") or p == parts[i] for i, p in enumerate(pattern))
            ):
                return True
        elif match not in ("", ".") and name not in ("", ".") and _lower_ascii(match) == name:
            return True
    return False


# --- name constraints -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mailbox:
    local: str
    domain: str


_ATEXT = frozenset("!#$%&'*+-/=?^_`{|}~.")


def _parse_mailbox(text: str) -> _Mailbox | None:
    """``parseRFC2821Mailbox``."""
    if not text or any(ord(c) > 127 for c in text):
        return None
    local: list[str] = []
    rest = text
    if rest[0] == '"':
        rest = rest[1:]
        while True:
            if not rest:
                return None
            c, rest = rest[0], rest[1:]
            o = ord(c)
            if c == '"':
                break
            if c == "\\":
                if not rest or (o := ord(rest[0])) in (0, 10, 13):
                    return None
                local.append(rest[0])
                rest = rest[1:]
            elif (
                o in (11, 12, 32, 33, 127)
                or 1 <= o <= 8
                or 14 <= o <= 31
                or 35 <= o <= 91
                or (93 <= o <= 126)
            ):
                local.append(c)
            else:
                return None
    else:
        while rest:
            c = rest[0]
            if c == "\\":
                rest = rest[1:]
                if not rest:
                    return None
            elif not (c.isalnum() or c in _ATEXT):
                break
            local.append(rest[0])
            rest = rest[1:]
        part = "".join(local)
        if not part or part[0] == "." or part[-1] == "." or ".." in part:
            return None
    if not rest or rest[0] != "@":
        return None
    domain = rest[1:]
    if domain and (not all(domain.split(".")) or any(not 33 <= ord(c) <= 126 for c in domain)):
        return None
    return _Mailbox("".join(local), domain)


def _dns_has_suffix(constraint: str, name: str) -> bool:
    if len(constraint) > len(name):
        return False
    tail = name[len(name) - len(constraint) :]
    if _lower_ascii(tail) != _lower_ascii(constraint):
        return False
    return not (
        constraint[0] != "."
        and len(name) > len(constraint)
        and name[len(name) - len(constraint) - 1] != "."
    )


def _trim_first_label(name: str) -> str:
    i = name.find(".")
    return "" if i < 0 else name[i:]


def _dns_query(constraints: list[str] | None, permitted: bool, name: str) -> str | None:
    """The matching constraint (``""`` when an empty constraint matches all), or None."""
    if not constraints:
        return None
    if "" in constraints:
        return ""
    for constraint in constraints:
        if _dns_has_suffix(constraint, name):
            return constraint
    if not permitted and name[:1] == "*":
        trimmed = _trim_first_label(name.lower())
        for constraint in constraints:
            lowered = constraint.lower()
            parent = _trim_first_label(lowered)
            if parent and parent == trimmed:
                return lowered
    return None


def _email_query(constraints: list[str] | None, permitted: bool, box: _Mailbox) -> str | None:
    if not constraints:
        return None
    domains = [c for c in constraints if "@" not in c]
    for c in constraints:
        if "@" in c:
            parsed = _parse_mailbox(c)
            if parsed and parsed.local == box.local and parsed.domain.lower() == box.domain:
                return c
    return _dns_query(domains, permitted, box.domain) if domains else None


def _ip_in_net(net: IPNet, ip: bytes) -> bool:
    net_ip, mask = net
    v4 = net_ip[12:] if len(net_ip) == 16 and net_ip[:12] == _to16(b"")[:12] else None
    number = v4 if v4 is not None else net_ip
    if len(number) not in (4, 16):
        return False
    if len(mask) == 4 and len(number) != 4:
        return False
    if len(mask) == 16 and len(number) == 4:
        mask = mask[12:]
    target = ip[12:] if len(ip) == 16 and ip[:12] == _to16(b"")[:12] else ip
    if len(target) != len(number):
        return False
    return all(n & m == t & m for n, m, t in zip(number, mask, target, strict=True))


def _ip_query(nets: list[IPNet] | None, ip: bytes) -> IPNet | None:
    if not nets:
        return None
    family = [n for n in nets if (len(n[0]) == 4) == (len(ip) == 4)]
    return next((n for n in family if _ip_in_net(n, ip)), None)


def _check_names(cert: Certificate, constraint: Certificate) -> str | None:
    permitted, excluded = constraint.permitted, constraint.excluded
    for ip in cert.sans.ips or ():
        if permitted.ips and _ip_query(permitted.ips, ip) is None:
            return "IP address not permitted"
        if _ip_query(excluded.ips, ip) is not None:
            return "IP address excluded"
    for dns in cert.sans.dns or ():
        if not _domain_name_valid(dns.encode(), False):
            return "cannot parse dnsName"
        if permitted.dns and _dns_query(permitted.dns, True, dns) is None:
            return "DNS name not permitted"
        if _dns_query(excluded.dns, False, dns) is not None:
            return "DNS name excluded"
    for uri in cert.sans.uris or ():
        domain = _uri_domain(uri)
        if domain is None or not _domain_name_valid(domain.encode(), False):
            return "URI cannot be matched"
        if permitted.uri_domains and _dns_query(permitted.uri_domains, True, domain) is None:
            return "URI not permitted"
        if _dns_query(excluded.uri_domains, False, domain) is not None:
            return "URI excluded"
    for email in cert.sans.emails or ():
        box = _parse_mailbox(email)
        if box is None:
            return "cannot parse rfc822Name"
        box = _Mailbox(box.local, box.domain.lower())
        if not _domain_name_valid(box.domain.encode(), False):
            return "cannot parse rfc822Name"
        if permitted.emails and _email_query(permitted.emails, True, box) is None:
            return "email address not permitted"
        if _email_query(excluded.emails, False, box) is not None:
            return "email address excluded"
    return None


def _split_host(hostport: str) -> str | None:
    """The host part of ``net.SplitHostPort``, or None where it fails."""
    colon = hostport.rfind(":")
    if colon < 0:
        return None
    start, end = 0, 0
    if hostport[:1] == "[":
        close = hostport.find("]")
        if close < 0 or close + 1 != colon:
            return None
        host, start, end = hostport[1:close], 1, close + 1
    else:
        host = hostport[:colon]
        if ":" in host:
            return None
    if "[" in hostport[start:] or "]" in hostport[end:]:
        return None
    return host


def _uri_domain(uri: GoURL) -> str | None:
    """The host a URI SAN is matched on (``parseURIs``), or None where Go refuses it."""
    host = go_string(uri.host)
    if not host:
        return None
    if ":" in host and not host.endswith("]"):
        split = _split_host(host)
        if split is None:
            return None
        host = split
    else:
        host = host.lower()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None if host.startswith("[") and host.endswith("]") else host
    return None


def _check_chain_constraints(chain: list[Certificate]) -> str | None:
    constrained = [i for i, c in enumerate(chain) if c.has_extension(OID_NAME_CONSTRAINTS)]
    if not constrained:
        return None
    for i, cert in enumerate(chain):
        if not cert.has_extension(OID_SAN):
            continue
        applicable = [j for j in constrained if j > i]
        if not applicable:
            return None
        for j in applicable:
            problem = _check_names(cert, chain[j])
            if problem is not None:
                return problem
    return None


# --- certificate policies ---------------------------------------------------------------------

_ANY_POLICY = bytes([0x55, 0x1D, 0x20, 0x00])


class _PolicyNode:
    __slots__ = ("children", "expected", "parents", "valid")

    def __init__(self, valid: bytes, parents: Iterable[_PolicyNode]) -> None:
        self.valid = valid
        self.expected = [valid]
        self.parents: set[_PolicyNode] = set()
        self.children: set[_PolicyNode] = set()
        for parent in parents:
            parent.children.add(self)
            self.parents.add(parent)


class _PolicyGraph:
    def __init__(self) -> None:
        self.strata: list[dict[bytes, _PolicyNode]] = [{_ANY_POLICY: _PolicyNode(_ANY_POLICY, ())}]
        self.parent_index: dict[bytes, list[_PolicyNode]] = {}
        self.depth = 0

    def insert(self, node: _PolicyNode) -> None:
        self.strata[self.depth][node.valid] = node

    def parents_with_expected(self, expected: bytes) -> list[_PolicyNode]:
        return [] if self.depth == 0 else self.parent_index.get(expected, [])

    def parent_with_any_policy(self) -> _PolicyNode | None:
        return None if self.depth == 0 else self.strata[self.depth - 1].get(_ANY_POLICY)

    def parents(self) -> list[_PolicyNode]:
        return [] if self.depth == 0 else list(self.strata[self.depth - 1].values())

    def leaves(self) -> dict[bytes, _PolicyNode]:
        return self.strata[self.depth]

    def delete_leaf(self, policy: bytes) -> None:
        node = self.strata[self.depth].pop(policy, None)
        if node is None:
            return
        for parent in node.parents:
            parent.children.discard(node)
        for child in node.children:
            child.parents.discard(node)

    def valid_policy_nodes(self) -> list[_PolicyNode]:
        nodes = []
        for i in range(self.depth, -1, -1):
            for node in self.strata[i].values():
                if node.valid == _ANY_POLICY or len(node.parents) != 1:
                    continue
                if next(iter(node.parents)).valid == _ANY_POLICY:
                    nodes.append(node)
        return nodes

    def prune(self) -> None:
        for i in range(self.depth - 1, 0, -1):
            for key, node in list(self.strata[i].items()):
                if not node.children:
                    for parent in node.parents:
                        parent.children.discard(node)
                    del self.strata[i][key]

    def incr_depth(self) -> None:
        self.parent_index = {}
        for node in self.strata[self.depth].values():
            for expected in node.expected:
                self.parent_index.setdefault(expected, []).append(node)
        self.depth += 1
        self.strata.append({})


def _policies_valid(chain: list[Certificate]) -> bool:
    """``policiesValid`` (RFC 5280 as updated by RFC 9618) with OPA's default options."""
    if len(chain) == 1:
        return True
    n = len(chain) - 1
    graph: _PolicyGraph | None = _PolicyGraph()
    inhibit_any = explicit = mapping = n + 1
    for i in range(n - 1, -1, -1):
        cert = chain[i]
        self_signed = cert.raw_issuer == cert.raw_subject
        if not cert.policies:
            graph = None
        if explicit == 0 and graph is None:
            return False
        if graph is not None:
            if not _apply_policies(graph, cert, inhibit_any > 0 or (n - i < n and self_signed)):
                return False
            if i != 0 and cert.policy_mappings and not _apply_mappings(graph, cert, mapping):
                return False
        if i != 0:
            if not self_signed:
                explicit = max(explicit - 1, 0)
                mapping = max(mapping - 1, 0)
                inhibit_any = max(inhibit_any - 1, 0)
            if (
                cert.require_explicit_policy > 0 or cert.require_explicit_policy_zero
            ) and cert.require_explicit_policy < explicit:
                explicit = cert.require_explicit_policy
            if (
                cert.inhibit_policy_mapping > 0 or cert.inhibit_policy_mapping_zero
            ) and cert.inhibit_policy_mapping < mapping:
                mapping = cert.inhibit_policy_mapping
            if (
                cert.inhibit_any_policy > 0 or cert.inhibit_any_policy_zero
            ) and cert.inhibit_any_policy < inhibit_any:
                inhibit_any = cert.inhibit_any_policy
    explicit = max(explicit - 1, 0)
    if chain[0].require_explicit_policy_zero:
        explicit = 0
    valid: list[_PolicyNode] = []
    if graph is not None:
        valid = graph.valid_policy_nodes()
        current_any = graph.leaves().get(_ANY_POLICY)
        if current_any is not None:
            valid.append(current_any)
    return not (explicit == 0 and not valid)


def _apply_policies(graph: _PolicyGraph, cert: Certificate, any_allowed: bool) -> bool:
    graph.incr_depth()
    policies = set(cert.policies or ())
    for policy in cert.policies or ():
        if policy == _ANY_POLICY:
            continue
        parents = graph.parents_with_expected(policy)
        if not parents:
            any_parent = graph.parent_with_any_policy()
            parents = [any_parent] if any_parent is not None else []
        if parents:
            graph.insert(_PolicyNode(policy, parents))
    if _ANY_POLICY in policies and any_allowed:
        missing: dict[bytes, list[_PolicyNode]] = {}
        leaves = graph.leaves()
        for parent in graph.parents():
            for expected in parent.expected:
                if expected not in leaves:
                    missing.setdefault(expected, []).append(parent)
        for policy, parents in missing.items():
            graph.insert(_PolicyNode(policy, parents))
    graph.prune()
    return True


def _apply_mappings(graph: _PolicyGraph, cert: Certificate, mapping: int) -> bool:
    mappings: dict[bytes, list[bytes]] = {}
    for issuer, subject in cert.policy_mappings or ():
        if mapping > 0:
            if _ANY_POLICY in (issuer, subject):
                return False
            mappings.setdefault(issuer, []).append(subject)
        else:
            graph.delete_leaf(issuer)
    graph.prune()
    for issuer, subjects in mappings.items():
        leaf = graph.leaves().get(issuer)
        if leaf is not None:
            leaf.expected = subjects
        else:
            any_leaf = graph.leaves().get(_ANY_POLICY)
            if any_leaf is not None:
                node = _PolicyNode(issuer, [any_leaf])
                node.expected = subjects
                graph.insert(node)
    return True


# --- certificate requests ---------------------------------------------------------------------

_PUBLIC_KEY_INFO = struct(
    "publicKeyInfo",
    ("Algorithm", ALGORITHM_IDENTIFIER, NONE),
    ("PublicKey", BITSTRING, NONE),
    raw=True,
)
_TBS_CSR = struct(
    "tbsCertificateRequest",
    ("Version", INT, NONE),
    ("Subject", RAW, NONE),
    ("PublicKey", _PUBLIC_KEY_INFO, NONE),
    ("RawAttributes", slice_of(RAW), Params(tag=0)),
    raw=True,
)
_CSR = struct(
    "certificateRequest",
    ("TBSCSR", _TBS_CSR, NONE),
    ("SignatureAlgorithm", ALGORITHM_IDENTIFIER, NONE),
    ("SignatureValue", BITSTRING, NONE),
    raw=True,
)
_ATAV = struct("AttributeTypeAndValue", ("Type", OID, NONE), ("Value", ANY, NONE))
_RDN_SEQUENCE = slice_of(slice_of(_ATAV, "RelativeDistinguishedNameSET"), "RDNSequence")
_ATAV_SET = struct(
    "AttributeTypeAndValueSET",
    ("Type", OID, NONE),
    ("Value", slice_of(slice_of(_ATAV)), Params(set=True)),
)
_PKCS10_ATTRIBUTE = struct(
    "pkcs10Attribute", ("Id", OID, NONE), ("Values", slice_of(RAW), Params(set=True))
)
_EXTENSION = struct(
    "Extension", ("Id", OID, NONE), ("Critical", BOOL, OPTIONAL), ("Value", OCTETS, NONE)
)


def _csr_extensions(attributes: list[RawValue]) -> list[Extension] | None:
    extensions: list[Extension] | None = None
    seen: set[tuple[int, ...]] = set()
    for raw in attributes:
        try:
            attr, rest = asn1_unmarshal(raw.full, _PKCS10_ATTRIBUTE)
        except GoError:
            continue
        if rest or not attr["Values"] or attr["Id"] != OID_EXTENSION_REQUEST:
            continue
        parsed, _ = asn1_unmarshal(attr["Values"][0].full, slice_of(_EXTENSION))
        for ext in parsed:
            if ext["Id"] in seen:
                raise GoError("x509: certificate request contains duplicate requested extensions")
            seen.add(ext["Id"])
        extensions = [
            *(extensions or []),
            *(Extension(e["Id"], e["Critical"], e["Value"]) for e in parsed),
        ]
    return extensions


def _csr_attributes(attributes: list[RawValue]) -> list[Any] | None:
    values: list[Any] = []
    for raw in attributes:
        try:
            attr, rest = asn1_unmarshal(raw.full, _ATAV_SET)
        except GoError:
            continue
        if rest:
            continue
        values.append(
            {
                "Type": list(attr["Type"]),
                "Value": [
                    [{"Type": list(a["Type"]), "Value": _any_value(a["Value"])} for a in group]
                    for group in attr["Value"]
                ],
            }
        )
    return values or None


def parse_certificate_request(der: bytes) -> dict[str, Any]:
    """``x509.ParseCertificateRequest``, as the JSON value OPA returns."""
    csr, rest = asn1_unmarshal(der, _CSR)
    if rest:
        raise GoError("asn1: syntax error: trailing data")
    tbs = csr["TBSCSR"]
    spki = tbs["PublicKey"]
    key_oid = spki["Algorithm"]["Algorithm"]
    key_algorithm = _PUBLIC_KEY_ALGORITHMS.get(key_oid, UNKNOWN_PUBLIC_KEY)
    key: PublicKey | None = None
    if key_algorithm != UNKNOWN_PUBLIC_KEY:
        key = _parse_public_key(
            key_oid, spki["Algorithm"]["Parameters"].full, spki["PublicKey"].right_align()
        )
    rdns, rest = asn1_unmarshal(tbs["Subject"].full, _RDN_SEQUENCE)
    if rest:
        raise GoError("x509: trailing data after X.509 Subject")
    subject = Name([(a["Type"], a["Value"]) for rdn in rdns for a in rdn])
    extensions = _csr_extensions(tbs["RawAttributes"])
    sans = SANs()
    for ext in extensions or ():
        if ext.oid == OID_SAN:
            sans = _parse_san(ext.value)
    signature = csr["SignatureAlgorithm"]
    return {
        "Raw": b64(csr["Raw"]),
        "RawTBSCertificateRequest": b64(tbs["Raw"]),
        "RawSubjectPublicKeyInfo": b64(spki["Raw"]),
        "RawSubject": b64(tbs["Subject"].full),
        "Version": tbs["Version"],
        "Signature": b64(csr["SignatureValue"].right_align()),
        "SignatureAlgorithm": _signature_algorithm(
            signature["Algorithm"], signature["Parameters"].full
        ),
        "PublicKeyAlgorithm": key_algorithm,
        "PublicKey": None if key is None else key.go_value(),
        "Subject": subject.go_value(),
        "Attributes": _csr_attributes(tbs["RawAttributes"]),
        "Extensions": None if extensions is None else [e.go_value() for e in extensions],
        "ExtraExtensions": None,
        "DNSNames": _opt_list(sans.dns),
        "EmailAddresses": _opt_list(sans.emails),
        "IPAddresses": None if sans.ips is None else [_ip_string(i) for i in sans.ips],
        "URIs": None if sans.uris is None else [u.go_value() for u in sans.uris],
    }


# --- key pairs --------------------------------------------------------------------------------


def _tls_private_key(der: bytes) -> PrivateKey:
    for parse in (parse_pkcs1_private_key, parse_pkcs8_private_key):
        try:
            key = parse(der)
        except GoError:
            continue
        if isinstance(key, RSAPrivateKey | ECPrivateKey | Ed25519PrivateKey):
            return key
        raise GoError("tls: found unknown private key type in PKCS#8 wrapping")
    try:
        return parse_ec_private_key(der)
    except GoError:
        raise GoError("tls: failed to parse private key") from None


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    blocks = []
    while True:
        block, data = pem_decode(data)
        if block is None:
            return blocks
        blocks.append((block.type, block.bytes))


def _key_matches(public: PublicKey | None, key: PrivateKey) -> None:
    if isinstance(public, RSAPublicKey):
        if not isinstance(key, RSAPrivateKey):
            raise GoError("tls: private key type does not match public key type")
        matches = (key.n, key.e) == (public.n, public.e)
    elif isinstance(public, ECPublicKey):
        if not isinstance(key, ECPrivateKey):
            raise GoError("tls: private key type does not match public key type")
        matches = (key.curve, key.x, key.y) == (public.curve, public.x, public.y)
    elif isinstance(public, Ed25519PublicKey):
        if not isinstance(key, Ed25519PrivateKey):
            raise GoError("tls: private key type does not match public key type")
        matches = key.public == public.key
    else:
        raise GoError("tls: unknown public key algorithm")
    if not matches:
        raise GoError("tls: private key does not match public key")


def x509_key_pair(cert_data: bytes, key_data: bytes) -> dict[str, Any]:
    """OPA's ``getTLSx509KeyPairFromString`` and ``tls.X509KeyPair``, as OPA's JSON."""
    if not cert_data.startswith(b"-----BEGIN "):
        cert_data = go_base64_decode(cert_data)
    if not key_data.startswith(b"-----BEGIN "):
        key_data = go_base64_decode(key_data)
    cert_blocks = (
        _pem_blocks(cert_data)
        if cert_data.startswith(b"-----BEGIN ")
        else [("CERTIFICATE", cert_data)]
    )
    key_blocks = (
        _pem_blocks(key_data) if key_data.startswith(b"-----BEGIN") else [("PRIVATE KEY", key_data)]
    )
    chain = [der for kind, der in cert_blocks if kind == "CERTIFICATE"]
    skipped = [kind for kind, _ in cert_blocks if kind != "CERTIFICATE"]
    if not chain:
        if not skipped:
            raise GoError("tls: failed to find any PEM data in certificate input")
        if len(skipped) == 1 and skipped[0].endswith("PRIVATE KEY"):
            raise GoError(
                "tls: failed to find certificate PEM data in certificate input, but did find "
                "a private key; PEM inputs may have been switched"
            )
        raise GoError(
            'tls: failed to find "CERTIFICATE" PEM block in certificate input after skipping '
            f"PEM blocks of the following types: [{' '.join(skipped)}]"
        )
    key_der = None
    skipped = []
    for kind, der in key_blocks:
        if kind == "PRIVATE KEY" or kind.endswith(" PRIVATE KEY"):
            key_der = der
            break
        skipped.append(kind)
    if key_der is None:
        if not skipped:
            raise GoError("tls: failed to find any PEM data in key input")
        if skipped == ["CERTIFICATE"]:
            raise GoError(
                "tls: found a certificate rather than a key in the PEM for the private key"
            )
        raise GoError(
            'tls: failed to find PEM block with type ending in "PRIVATE KEY" in key input after '
            f"skipping PEM blocks of the following types: [{' '.join(skipped)}]"
        )
    leaf = parse_certificate(chain[0])
    if len(leaf.raw) != len(chain[0]):
        raise GoError("x509: trailing data")
    key = _tls_private_key(key_der)
    _key_matches(leaf.public_key, key)
    return {
        "Certificate": [b64(der) for der in chain],
        "PrivateKey": private_key_go_value(key),
        "SupportedSignatureAlgorithms": None,
        "OCSPStaple": None,
        "SignedCertificateTimestamps": None,
        "Leaf": leaf.go_value(),
    }


# --- builtins ---------------------------------------------------------------------------------

_KEY_USAGES = {
    "KeyUsageAny": 0,
    "KeyUsageServerAuth": 1,
    "KeyUsageClientAuth": 2,
    "KeyUsageCodeSigning": 3,
    "KeyUsageEmailProtection": 4,
    "KeyUsageIPSECEndSystem": 5,
    "KeyUsageIPSECTunnel": 6,
    "KeyUsageIPSECUser": 7,
    "KeyUsageTimeStamping": 8,
    "KeyUsageOCSPSigning": 9,
    "KeyUsageMicrosoftServerGatedCrypto": 10,
    "KeyUsageNetscapeServerGatedCrypto": 11,
    "KeyUsageMicrosoftCommercialCodeSigning": 12,
    "KeyUsageMicrosoftKernelCodeSigning": 13,
}
_INVALID = [False, []]


def _error(err: GoError) -> BuiltinError:
    return BuiltinError(str(err))


def crypto_x509_parse_certificates(ctx: EvalContext, certs: Any) -> Any:
    """Returns zero or more certificates from the given encoded string containing DER/PEM data."""
    try:
        parsed = certificates_from_string(string_arg(certs, 1))
    except GoError as err:
        raise _error(err) from None
    return [c.go_value(uri_strings=True) for c in parsed]


def crypto_x509_parse_and_verify_certificates(ctx: EvalContext, certs: Any) -> Any:
    """Returns one or more certificates after verifying they form a chain to the first one."""
    text = string_arg(certs, 1)
    try:
        chain = verify_chain(certificates_from_string(text), VerifyOptions(), ctx.now_ns)
    except GoError:
        return list(_INVALID)
    return [True, [c.go_value(uri_strings=True) for c in chain]]


def _int64_option(value: Any, name: str, valid: str) -> int:
    if type(value) not in (int, float):
        raise BuiltinError(f"'{name}' should be a number")
    if type(value) is not int or not -(2**63) <= value < 2**63:
        raise BuiltinError(f"'{name}' should be {valid}")
    return value


def _verify_options(options: dict[Any, Any]) -> VerifyOptions:
    opts = VerifyOptions()
    for key in sorted(k for k in options if isinstance(k, str)):
        value = options[key]
        if key == "DNSName":
            if not isinstance(value, str):
                raise BuiltinError("'DNSName' should be a string")
            opts.dns_name = value.strip('"')
        elif key == "CurrentTime":
            opts.current_time_ns = _int64_option(value, key, "a valid int64 number")
        elif key == "MaxConstraintComparisons":
            _int64_option(value, key, "a valid number")
        elif key == "KeyUsages":
            if not isinstance(value, list | RegoSet):
                raise BuiltinError("'KeyUsages' should be an Array or Set")
            invalid = []
            for usage in value:
                if isinstance(usage, str):
                    name = usage.strip('"')
                    if name in _KEY_USAGES:
                        opts.key_usages.append(_KEY_USAGES[name])
                    else:
                        invalid.append(name)
            if invalid:
                raise BuiltinError(f"invalid entries for 'KeyUsages' found: [{' '.join(invalid)}]")
        else:
            raise BuiltinError("invalid key option")
    return opts


def crypto_x509_parse_and_verify_certificates_with_options(
    ctx: EvalContext, certs: Any, options: Any
) -> Any:
    """Returns certificates after verifying the chain with the given verification options."""
    text = string_arg(certs, 1)
    opts_value = object_arg(options, 2)
    try:
        parsed = certificates_from_string(text)
    except GoError:
        return list(_INVALID)
    opts = _verify_options(opts_value)
    try:
        chain = verify_chain(parsed, opts, ctx.now_ns)
    except GoError:
        return list(_INVALID)
    return [True, [c.go_value() for c in chain]]


def crypto_x509_parse_certificate_request(ctx: EvalContext, csr: Any) -> Any:
    """Returns a PKCS #10 certificate signing request from the given PEM or base64 data."""
    text = string_arg(csr, 1)
    try:
        data = text.encode("utf-8")
        if not text.startswith("-----BEGIN CERTIFICATE REQUEST-----"):
            data = go_base64_decode(text)
        block, _ = pem_decode(data)
        if block is not None:
            if block.type != "CERTIFICATE REQUEST":
                raise GoError("invalid PEM-encoded certificate signing request")
            data = block.bytes
        return parse_certificate_request(data)
    except GoError as err:
        raise _error(err) from None


def crypto_x509_parse_keypair(ctx: EvalContext, cert: Any, pem: Any) -> Any:
    """Returns a valid key pair from the given certificate and private key data."""
    cert_data = string_arg(cert, 1).encode("utf-8")
    key_data = string_arg(pem, 1).encode("utf-8")
    try:
        return x509_key_pair(cert_data, key_data)
    except GoError as err:
        raise _error(err) from None


def crypto_x509_parse_rsa_private_key(ctx: EvalContext, pem: Any) -> Any:
    """Returns a JWK for signing a JWT from the given PEM-encoded private key."""
    text = string_arg(pem, 1)
    if text == "":
        raise BuiltinError("input PEM data was empty")
    try:
        if not text.startswith("-----BEGIN"):
            text = go_string(go_base64_decode(text))
        keys = private_keys_from_pem(text)
    except GoError as err:
        raise _error(err) from None
    if not keys:
        return None
    try:
        return private_key_to_jwk(keys[0])
    except GoError as err:
        raise _error(err) from None


BUILTINS = (
    BuiltinSpec("crypto.x509.parse_certificates", crypto_x509_parse_certificates),
    BuiltinSpec(
        "crypto.x509.parse_and_verify_certificates",
        crypto_x509_parse_and_verify_certificates,
        deterministic=False,
    ),
    BuiltinSpec(
        "crypto.x509.parse_and_verify_certificates_with_options",
        crypto_x509_parse_and_verify_certificates_with_options,
        deterministic=False,
    ),
    BuiltinSpec("crypto.x509.parse_certificate_request", crypto_x509_parse_certificate_request),
    BuiltinSpec("crypto.x509.parse_keypair", crypto_x509_parse_keypair),
    BuiltinSpec("crypto.x509.parse_rsa_private_key", crypto_x509_parse_rsa_private_key),
)
