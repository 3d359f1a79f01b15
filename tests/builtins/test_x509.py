"""Tests for the crypto.x509.* builtins.

Certificates, chains, CSRs and key pairs are generated with ``cryptography`` (a few are
re-signed by hand to get algorithms it refuses to produce, such as SHA-1). Every value is run
through ``opa eval`` in one batched call and compared with the Python builtin, field by
field; error messages are compared with a handful of parallel strict-mode ``opa eval`` calls.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import random
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509 import (
    DNSName,
    IPAddress,
    RFC822Name,
    UniformResourceIdentifier,
)
from cryptography.x509.oid import AttributeOID, ExtendedKeyUsageOID, NameOID
from opa_oracle import OPA, opa_batch, opa_strict_many

from pdp.builtins import x509 as x509_builtins
from pdp.builtins._gourl import url_parse
from pdp.builtins.base import BuiltinError, EvalContext
from pdp.values import rego_equal

needs_opa = pytest.mark.skipif(not OPA.exists(), reason="pinned opa binary not installed")
BUILTINS = {spec.name: spec.fn for spec in x509_builtins.BUILTINS}
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)
EKU = ExtendedKeyUsageOID
PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


def call(name: str, *args: Any) -> Any:
    """Run a builtin as the host would: the value, or ("error", code, prefixed message)."""
    try:
        return BUILTINS[name](EvalContext(strict=True), *args)
    except BuiltinError as err:
        return ("error", err.code, f"{name}: {err.message}" if err.prefix else err.message)


def differences(mine: Any, theirs: Any, path: str = "") -> list[str]:
    """Paths at which two values differ (to make failures readable)."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        out = [f"{path}.{k}: missing" for k in set(mine) ^ set(theirs)]
        for k in set(mine) & set(theirs):
            out += differences(mine[k], theirs[k], f"{path}.{k}")
        return out
    if isinstance(mine, list) and isinstance(theirs, list) and len(mine) == len(theirs):
        return [
            d
            for i, (a, b) in enumerate(zip(mine, theirs, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    if isinstance(mine, tuple) or isinstance(theirs, tuple):
        return [] if mine == theirs else [f"{path}: {mine!r} != {theirs!r}"]
    return [] if rego_equal(mine, theirs) else [f"{path}: {mine!r:.200} != {theirs!r:.200}"]


# --- building test material -----------------------------------------------------------------


def name(cn: str, **attrs: str) -> x509.Name:
    pairs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    pairs += [x509.NameAttribute(getattr(NameOID, k), v) for k, v in attrs.items()]
    return x509.Name(pairs)


def make_cert(
    subject: x509.Name,
    key: Any,
    issuer: x509.Name | None = None,
    issuer_key: Any = None,
    *,
    ca: bool = False,
    pathlen: int | None = None,
    basic: bool = True,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    san: list[x509.GeneralName] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
    serial: int | None = None,
    hash_alg: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    issuer_key = issuer_key or key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before or NOW - DAY)
        .not_valid_after(not_after or NOW + 365 * DAY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if basic:
        builder = builder.add_extension(x509.BasicConstraints(ca, pathlen), critical=True)
    if issuer_key is not key:
        akid = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        builder = builder.add_extension(akid, critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    unhashed = isinstance(issuer_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
    return builder.sign(issuer_key, None if unhashed else hash_alg or hashes.SHA256())


def pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(PEM).decode() for c in certs)


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = (
        bytes([n])
        if n < 128
        else bytes([0x80 | ((n.bit_length() + 7) // 8)])
        + n.to_bytes((n.bit_length() + 7) // 8, "big")
    )
    return bytes([tag]) + length + body


def _elements(body: bytes) -> list[bytes]:
    out = []
    while body:
        n = body[1]
        header = 2
        if n & 0x80:
            count = n & 0x7F
            n = int.from_bytes(body[2 : 2 + count], "big")
            header += count
        out.append(body[: header + n])
        body = body[header + n :]
    return out


def _body(element: bytes) -> bytes:
    n = element[1]
    return element[2 + (n & 0x7F if n & 0x80 else 0) :]


def resign(
    cert: x509.Certificate,
    algorithm: bytes,
    sign: Callable[[bytes], bytes],
    edit: Callable[[list[bytes]], list[bytes]] = lambda tbs: tbs,
) -> str:
    """Re-sign ``cert`` with an algorithm identifier ``cryptography`` will not produce."""
    tbs_cert, _, _ = _elements(_body(cert.public_bytes(DER)))
    fields = _elements(_body(tbs_cert))
    index = 1 if fields[0][0] == 0xA0 else 0
    fields[index + 1] = algorithm
    tbs = _tlv(0x30, b"".join(edit(fields)))
    der = _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\x00" + sign(tbs)))
    body = base64.b64encode(der).decode()
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


SHA1_RSA = bytes.fromhex("300d06092a864886f70d0101050500")
MD5_RSA = bytes.fromhex("300d06092a864886f70d0101040500")
_SHA256 = "300d06096086480165030402010500"


def pss_sha256(salt: int) -> bytes:
    """An RSASSA-PSS algorithm identifier with SHA-256, MGF1-SHA-256 and the given salt."""
    params = f"3034a00f{_SHA256}a11c301a06092a864886f70d010108{_SHA256}a2030201{salt:02x}"
    return bytes.fromhex("304106092a864886f70d01010a" + params)


class PKI:
    """Keys and certificates shared by the tests of one module."""

    def __init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.inter_key = ec.generate_private_key(ec.SECP256R1())
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        self.rsa_key = rsa.generate_private_key(65537, 2048)
        ca_usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        self.ca_usage = ((ca_usage, True),)
        self.root = make_cert(name("Root"), self.root_key, ca=True, extensions=self.ca_usage)
        self.inter = self.intermediate()
        self.leaf = self.make_leaf()

    def intermediate(self, **kw: Any) -> x509.Certificate:
        kw.setdefault("ca", True)
        kw.setdefault("pathlen", 0)
        return make_cert(name("Inter"), self.inter_key, name("Root"), self.root_key, **kw)

    def make_leaf(self, **kw: Any) -> x509.Certificate:
        kw.setdefault(
            "san",
            [
                DNSName("www.example.com"),
                DNSName("*.wild.example.com"),
                IPAddress(ipaddress.ip_address("10.0.0.1")),
                RFC822Name("a@example.com"),
                UniformResourceIdentifier("spiffe://example.com/a%20b?q#f"),
            ],
        )
        kw.setdefault("eku", [EKU.SERVER_AUTH])
        return make_cert(name("Leaf"), self.leaf_key, name("Inter"), self.inter_key, **kw)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


def policies(*oids: str) -> tuple[x509.ExtensionType, bool]:
    info = [x509.PolicyInformation(x509.ObjectIdentifier(o), None) for o in oids]
    return x509.CertificatePolicies(info), False


REQUIRE_EXPLICIT = (
    x509.PolicyConstraints(require_explicit_policy=0, inhibit_policy_mapping=None),
    True,
)
# cryptography has no builder for policyMappings: SEQUENCE { SEQUENCE { 1.2.3, 1.2.5 } }.
POLICY_MAPPING = (
    x509.UnrecognizedExtension(
        x509.ObjectIdentifier("2.5.29.33"), bytes.fromhex("300a 3008 06022a03 06022a05")
    ),
    False,
)


def chains(p: PKI) -> dict[str, str]:
    """Verification scenarios: first certificate is the root, last the leaf."""
    root, inter, leaf = p.root, p.inter, p.make_leaf
    constraints = x509.NameConstraints(
        permitted_subtrees=[
            DNSName("example.com"),
            IPAddress(ipaddress.ip_network("10.0.0.0/8")),
            RFC822Name("example.com"),
            UniformResourceIdentifier("example.com"),
        ],
        excluded_subtrees=[DNSName("bad.example.com")],
    )
    constrained = p.intermediate(extensions=((constraints, True),))
    wildcard_excluded = p.intermediate(
        extensions=((x509.NameConstraints(None, [DNSName("a.bad.com")]), True),)
    )
    not_ca = p.intermediate(ca=False, pathlen=None)
    second_key = ec.generate_private_key(ec.SECP256R1())
    second = make_cert(name("Inter2"), second_key, name("Inter"), p.inter_key, ca=True)
    rsa_root = make_cert(name("RRoot"), p.rsa_key, ca=True)
    rsa_leaf = make_cert(name("RLeaf"), p.leaf_key, name("RRoot"), p.rsa_key)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    ed_root = make_cert(name("ERoot"), ed_key, ca=True)
    p384_key = ec.generate_private_key(ec.SECP384R1())
    p384_root = make_cert(name("PRoot"), p384_key, ca=True, hash_alg=hashes.SHA384())
    dsa_key = dsa.generate_private_key(1024)
    dsa_root = make_cert(name("DRoot"), dsa_key, ca=True)
    explicit = p.intermediate(extensions=(REQUIRE_EXPLICIT, policies("1.2.3")))
    mapped = p.intermediate(extensions=(REQUIRE_EXPLICIT, policies("1.2.3"), POLICY_MAPPING))
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00")

    def rsa_signed(algorithm: bytes, pad: padding.AsymmetricPadding, digest: Any) -> str:
        sign = lambda tbs: p.rsa_key.sign(tbs, pad, digest)  # noqa: E731
        return pem(rsa_root) + resign(rsa_leaf, algorithm, sign)

    sha256 = hashes.SHA256()
    return {
        "ok": pem(root, inter, p.leaf),
        "direct": pem(root, make_cert(name("L2"), p.leaf_key, name("Root"), p.root_key)),
        "leaf_first": pem(p.leaf, inter, root),
        "expired": pem(root, inter, leaf(not_before=NOW - 10 * DAY, not_after=NOW - DAY)),
        "future": pem(root, inter, leaf(not_before=NOW + DAY, not_after=NOW + 10 * DAY)),
        "client_only": pem(root, inter, leaf(eku=[EKU.CLIENT_AUTH])),
        "no_eku": pem(root, inter, leaf(eku=None)),
        "any_eku": pem(root, inter, leaf(eku=[EKU.ANY_EXTENDED_KEY_USAGE])),
        "inter_not_ca": pem(root, not_ca, p.leaf),
        "inter_no_basic": pem(root, p.intermediate(basic=False), p.leaf),
        "root_pathlen0": pem(
            make_cert(name("Root"), p.root_key, ca=True, pathlen=0), inter, p.leaf
        ),
        "pathlen_exceeded": pem(
            root, inter, second, make_cert(name("L3"), p.leaf_key, name("Inter2"), second_key)
        ),
        "nc_ok": pem(root, constrained, p.leaf),
        "nc_dns": pem(root, constrained, leaf(san=[DNSName("evil.com")])),
        "nc_excluded": pem(root, constrained, leaf(san=[DNSName("x.bad.example.com")])),
        "nc_ip": pem(root, constrained, leaf(san=[IPAddress(ipaddress.ip_address("192.0.2.1"))])),
        "nc_email": pem(root, constrained, leaf(san=[RFC822Name("a@evil.com")])),
        "nc_uri": pem(
            root, constrained, leaf(san=[UniformResourceIdentifier("https://evil.com/")])
        ),
        "nc_wildcard": pem(root, wildcard_excluded, leaf(san=[DNSName("*.bad.com")])),
        "nc_uri_port": pem(
            root, constrained, leaf(san=[UniformResourceIdentifier("https://A.Example.COM:8443/")])
        ),
        "nc_uri_no_host": pem(root, constrained, leaf(san=[UniformResourceIdentifier("urn:x:y")])),
        "critical_unknown": pem(root, inter, leaf(extensions=((unknown, True),))),
        "noncritical_unknown": pem(root, inter, leaf(extensions=((unknown, False),))),
        "rsa": pem(rsa_root, rsa_leaf),
        "rsa_pss32": rsa_signed(pss_sha256(32), padding.PSS(padding.MGF1(sha256), 32), sha256),
        "rsa_pss20": rsa_signed(pss_sha256(20), padding.PSS(padding.MGF1(sha256), 20), sha256),
        "rsa_sha1": rsa_signed(SHA1_RSA, padding.PKCS1v15(), hashes.SHA1()),
        "rsa_md5": rsa_signed(MD5_RSA, padding.PKCS1v15(), hashes.MD5()),
        "ed25519": pem(ed_root, make_cert(name("EL"), p.leaf_key, name("ERoot"), ed_key)),
        "p384": pem(
            p384_root,
            make_cert(name("PL"), p.leaf_key, name("PRoot"), p384_key, hash_alg=hashes.SHA384()),
        ),
        "dsa": pem(dsa_root, make_cert(name("DL"), p.leaf_key, name("DRoot"), dsa_key)),
        "bad_signature": pem(
            root, inter, make_cert(name("Leaf"), p.leaf_key, name("Inter"), ed_key)
        ),
        "same": pem(root, root),
        "single": pem(root),
        "policy_missing": pem(root, explicit, p.leaf),
        "policy_present": pem(root, explicit, leaf(extensions=(policies("1.2.3"),))),
        "policy_other": pem(root, explicit, leaf(extensions=(policies("1.2.4"),))),
        "policy_mapped": pem(root, mapped, leaf(extensions=(policies("1.2.5"),))),
        "generalized_time": pem(
            root, inter, leaf(not_after=dt.datetime(2055, 1, 1, tzinfo=dt.UTC))
        ),
        "duplicate_intermediate": pem(root, inter, inter, p.leaf),
        "alternative_intermediate": pem(root, not_ca, inter, p.leaf),
    }


def certificates(p: PKI) -> dict[str, str]:
    """Single certificates exercising every field of the parsed structure."""
    usage = x509.KeyUsage(True, True, True, True, True, True, True, True, True)
    constraints = x509.NameConstraints(
        permitted_subtrees=[
            DNSName(".example.com"),
            IPAddress(ipaddress.ip_network("10.0.0.0/8")),
            IPAddress(ipaddress.ip_network("2001:db8::/32")),
            RFC822Name("example.com"),
        ],
        excluded_subtrees=[RFC822Name("bad@example.com"), UniformResourceIdentifier(".evil.com")],
    )
    access = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.OCSP,
                UniformResourceIdentifier("http://ocsp.test"),
            ),
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.CA_ISSUERS,
                UniformResourceIdentifier("http://ca.test/ca.crt"),
            ),
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.OCSP, DNSName("not-a-uri.test")
            ),
        ]
    )
    crl = x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                [UniformResourceIdentifier("http://crl.test/a.crl")], None, None, None
            ),
            x509.DistributionPoint(None, None, None, [DNSName("issuer.test")]),
        ]
    )
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "State"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "City"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Org"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Unit A"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Unit B"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "42"),
            x509.NameAttribute(NameOID.STREET_ADDRESS, "Main St"),
            x509.NameAttribute(NameOID.POSTAL_CODE, "12345"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "me@example.com"),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "example"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Ünïcödé ✓"),
        ]
    )
    uris = [
        "spiffe://example.com/a%20b?q#f",
        "http://user:pw@host.example.com:8080/a/b?c=d#e",
        "urn:isbn:123",
        "https://h.test/%7Efoo",
        "HTTPS://EXAMPLE.com/Path",
        "https://[2001:db8::1]:443/x",
        "file:///etc/passwd",
        "https://h.test/a%2Fb",
        "https://h.test?",
        "https://h.test/#",
        "mailto:x@y.test",
    ]
    sans = [
        DNSName("a.example.com"),
        IPAddress(ipaddress.ip_address("192.168.1.1")),
        IPAddress(ipaddress.ip_address("2001:db8::1")),
        IPAddress(ipaddress.ip_address("::ffff:1.2.3.4")),
        RFC822Name("x@example.com"),
        x509.DirectoryName(name("dir")),
        x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4")),
        *(UniformResourceIdentifier(u) for u in uris),
    ]
    rich = make_cert(
        subject,
        p.rsa_key,
        name("Issuer", ORGANIZATION_NAME="Issuer Org"),
        p.root_key,
        ca=True,
        pathlen=3,
        san=sans,
        eku=[
            EKU.SERVER_AUTH,
            EKU.CLIENT_AUTH,
            EKU.CODE_SIGNING,
            EKU.OCSP_SIGNING,
            x509.ObjectIdentifier("1.2.3.4.5"),
        ],
        extensions=(
            (usage, True),
            (constraints, True),
            policies("1.2.3.4", "2.5.29.32.0", "1.3.6.1.4.1.99999999999"),
            (x509.PolicyConstraints(require_explicit_policy=2, inhibit_policy_mapping=0), True),
            (x509.InhibitAnyPolicy(5), True),
            POLICY_MAPPING,
            (access, False),
            (crl, False),
        ),
        serial=0xFF00FF00FF00FF00FF,
        not_before=dt.datetime(1950, 1, 1, 0, 0, 1, tzinfo=dt.UTC),
    )
    seed_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32))
    v1 = resign(
        make_cert(name("v1"), seed_key, serial=1, basic=False),
        bytes.fromhex("300506032b6570"),
        seed_key.sign,
        lambda fields: [f for f in fields if f[0] not in (0xA0, 0xA3)],
    )
    keys = {
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "p224": ec.generate_private_key(ec.SECP224R1()),
        "ed448": ed448.Ed448PrivateKey.generate(),
        "dsa": dsa.generate_private_key(1024),
    }
    out = {"rich": pem(rich), "v1": v1, "leaf": pem(p.leaf)}
    out |= {k: pem(make_cert(name(k), key, name("Root"), p.root_key)) for k, key in keys.items()}
    out["chain"] = pem(p.root, p.inter, p.leaf)
    out["der_b64"] = base64.b64encode(p.leaf.public_bytes(DER)).decode()
    out["pem_b64"] = base64.b64encode(out["rich"].encode()).decode()
    out["der_chain_b64"] = base64.b64encode(
        p.root.public_bytes(DER) + p.inter.public_bytes(DER)
    ).decode()
    return out


def csrs(p: PKI) -> dict[str, str]:
    def build(key: Any, **kw: Any) -> x509.CertificateSigningRequest:
        builder = x509.CertificateSigningRequestBuilder().subject_name(
            kw.get("subject") or name("csr.example.com", ORGANIZATION_NAME="Org", COUNTRY_NAME="US")
        )
        if "san" in kw:
            builder = builder.add_extension(x509.SubjectAlternativeName(kw["san"]), critical=False)
        for extension, critical in kw.get("extensions", ()):
            builder = builder.add_extension(extension, critical=critical)
        for oid, value in kw.get("attributes", ()):
            builder = builder.add_attribute(oid, value)
        unhashed = isinstance(key, ed25519.Ed25519PrivateKey)
        return builder.sign(key, None if unhashed else kw.get("hash_alg", hashes.SHA256()))

    requests = {
        "sans": build(
            p.leaf_key,
            san=[
                DNSName("a.example.com"),
                IPAddress(ipaddress.ip_address("::1")),
                RFC822Name("m@x.test"),
                UniformResourceIdentifier("https://u:p@h.test:8443/p?x=1#frag"),
            ],
        ),
        "attributes": build(
            p.rsa_key,
            attributes=[
                (AttributeOID.CHALLENGE_PASSWORD, b"secret"),
                (AttributeOID.UNSTRUCTURED_NAME, b"un"),
            ],
        ),
        "extensions": build(
            ed25519.Ed25519PrivateKey.generate(),
            extensions=[(x509.BasicConstraints(True, 2), True)],
        ),
        "unicode": build(
            ec.generate_private_key(ec.SECP384R1()),
            subject=x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "ü tf8"),
                    x509.NameAttribute(x509.ObjectIdentifier("1.2.3.4"), "custom"),
                ]
            ),
            hash_alg=hashes.SHA384(),
        ),
    }
    out = {k: r.public_bytes(PEM).decode() for k, r in requests.items()}
    out["der_b64"] = base64.b64encode(requests["sans"].public_bytes(DER)).decode()
    out["pem_b64"] = base64.b64encode(out["attributes"].encode()).decode()
    return out


def _key_pem(key: Any, fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> str:
    return key.private_bytes(PEM, fmt, serialization.NoEncryption()).decode()


def key_pairs(p: PKI) -> dict[str, tuple[str, str]]:
    ed_key = ed25519.Ed25519PrivateKey.generate()
    ed_cert = make_cert(name("ed"), ed_key)
    rsa_cert = make_cert(name("rsa"), p.rsa_key)
    traditional = serialization.PrivateFormat.TraditionalOpenSSL
    leaf_key_der = p.leaf_key.private_bytes(
        DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "ec": (pem(p.leaf), _key_pem(p.leaf_key)),
        "ec_sec1": (pem(p.leaf), _key_pem(p.leaf_key, traditional)),
        "rsa_pkcs1": (pem(rsa_cert), _key_pem(p.rsa_key, traditional)),
        "ed25519": (pem(ed_cert), _key_pem(ed_key)),
        "chain": (pem(p.leaf, p.inter), _key_pem(p.leaf_key)),
        "der": (
            base64.b64encode(p.leaf.public_bytes(DER)).decode(),
            base64.b64encode(leaf_key_der).decode(),
        ),
        "b64_pem": (
            base64.b64encode(pem(p.leaf).encode()).decode(),
            base64.b64encode(_key_pem(p.leaf_key).encode()).decode(),
        ),
        "key_after_cert": (pem(p.leaf), pem(p.leaf) + _key_pem(p.leaf_key)),
    }


OPTION_CHAINS = {"ok", "direct", "expired", "client_only", "no_eku", "nc_ok", "same", "rsa_sha1"}
VERIFY_OPTIONS: dict[str, dict[str, Any]] = {
    "any": {"KeyUsages": ["KeyUsageAny"]},
    "client": {"KeyUsages": ["KeyUsageClientAuth", "KeyUsageServerAuth"]},
    "dns": {"DNSName": "www.example.com"},
    "wildcard": {"DNSName": "Foo.Wild.example.com."},
    "dns_mismatch": {"DNSName": "nope.example.com"},
    "ip": {"DNSName": "10.0.0.1", "MaxConstraintComparisons": 10},
    "past": {"CurrentTime": int((NOW - 5 * DAY).timestamp()) * 10**9},
}


@needs_opa
@pytest.mark.differential
def test_differential_results(pki: PKI) -> None:
    calls: dict[str, tuple[str, tuple[Any, ...]]] = {}
    for key, text in chains(pki).items():
        calls[f"verify-{key}"] = ("crypto.x509.parse_and_verify_certificates", (text,))
        calls[f"parse-{key}"] = ("crypto.x509.parse_certificates", (text,))
        if key not in OPTION_CHAINS:
            continue
        for option, value in VERIFY_OPTIONS.items():
            name_ = "crypto.x509.parse_and_verify_certificates_with_options"
            calls[f"verify-{key}-{option}"] = (name_, (text, value))
    for key, text in certificates(pki).items():
        calls[f"cert-{key}"] = ("crypto.x509.parse_certificates", (text,))
    for key, text in csrs(pki).items():
        calls[f"csr-{key}"] = ("crypto.x509.parse_certificate_request", (text,))
    for key, pair in key_pairs(pki).items():
        calls[f"pair-{key}"] = ("crypto.x509.parse_keypair", pair)
    for key, pair in key_pairs(pki).items():
        calls[f"jwk-{key}"] = ("crypto.x509.parse_rsa_private_key", (pair[1],))
    theirs = opa_batch(calls)
    problems = {}
    for key, (name_, args) in calls.items():
        mine = call(name_, *args)
        expected = theirs[key]
        if isinstance(mine, tuple):
            mine = "undefined"
        if diff := differences(mine, expected):
            problems[key] = diff[:5]
    assert not problems
    assert "undefined" not in theirs.values()
    assert theirs["verify-ok"][0] is True and theirs["verify-expired"][0] is False


def _fixed_certificate() -> bytes:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    cert = make_cert(
        name("fixed", ORGANIZATION_NAME="Org"),
        key,
        serial=7,
        not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2060, 1, 1, tzinfo=dt.UTC),
        san=[DNSName("a.test"), UniformResourceIdentifier("https://a.test/x")],
        eku=[EKU.SERVER_AUTH],
        extensions=(policies("1.2.3"),),
    )
    return cert.public_bytes(DER)


def error_cases(p: PKI) -> list[tuple[str, tuple[Any, ...]]]:
    parse = "crypto.x509.parse_certificates"
    request = "crypto.x509.parse_certificate_request"
    options = "crypto.x509.parse_and_verify_certificates_with_options"
    pair = "crypto.x509.parse_keypair"
    jwk = "crypto.x509.parse_rsa_private_key"
    good = pem(p.leaf)
    key = _key_pem(p.leaf_key)
    bad_block = "-----BEGIN FOO-----\nMAA=\n-----END FOO-----\n"
    cases: list[tuple[str, tuple[Any, ...]]] = [
        (parse, ("foobar",)),
        (parse, ("YmFkc3RyaW5n",)),
        (parse, (bad_block,)),
        (parse, (1,)),
        (request, ("YmFkc3RyaW5n",)),
        (request, ("MAA=",)),
        (request, (base64.b64encode(bad_block.encode()).decode(),)),
        (options, ("", {"DNSName": 1})),
        (options, ("", {"Foo": 1, "CurrentTime": 1})),
        (options, ("", {"KeyUsages": ["a", "b", 3, "KeyUsageAny"]})),
        (options, ("", {"KeyUsages": 1})),
        (options, ("", {"CurrentTime": 1.5})),
        (options, ("", {"MaxConstraintComparisons": "1"})),
        (options, ("YmFkc3RyaW5n", {"Foo": 1})),
        (pair, (good, pem(p.root))),
        (pair, (key, good)),
        (pair, (good, _key_pem(p.root_key))),
        (pair, (pem(make_cert(name("r"), p.rsa_key)), key)),
        (pair, ("", "")),
        (pair, (bad_block, key)),
        (pair, (good, bad_block)),
        (jwk, ("",)),
        (jwk, ("invalid",)),
        (jwk, ("-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----",)),
        (jwk, (_key_pem(ec.generate_private_key(ec.SECP224R1())),)),
    ]
    der = _fixed_certificate()
    rng = random.Random(11)
    for _ in range(8):
        mutated = bytearray(der)
        mutated[rng.randrange(len(der))] = rng.randrange(256)
        cases.append((parse, (base64.b64encode(bytes(mutated)).decode(),)))
        cases.append((parse, (base64.b64encode(der[: rng.randrange(len(der))]).decode(),)))
    return cases


def _without_addresses(error: tuple[str, str, str]) -> tuple[str, str, str]:
    # Go prints heap addresses in a few messages (asn1 field tags, jwx curve values);
    # compare the text before them.
    message = error[2]
    for marker in ("tag:0x", "unknown elliptic curve: "):
        message = message.split(marker)[0]
    return error[0], error[1], message


@needs_opa
@pytest.mark.differential
def test_differential_errors(pki: PKI) -> None:
    cases = error_cases(pki)
    theirs = opa_strict_many(cases)
    problems = []
    for (name_, args), result in zip(cases, theirs, strict=True):
        mine, expected = call(name_, *args), result
        if isinstance(expected, tuple) and isinstance(mine, tuple):
            expected, mine = _without_addresses(expected), _without_addresses(mine)
        if differences(mine, expected):
            problems.append((name_, str(args)[:80], mine, expected))
    assert not problems


def test_verification_uses_evaluation_time(pki: PKI) -> None:
    chain = pem(pki.root, pki.inter, pki.leaf)
    verify = BUILTINS["crypto.x509.parse_and_verify_certificates"]
    assert verify(EvalContext(), chain)[0] is True
    later = int((NOW + 400 * DAY).timestamp()) * 10**9
    assert verify(EvalContext(now_ns=later), chain) == [False, []]
    chain_values = verify(EvalContext(), chain)[1]
    assert [c["Subject"]["CommonName"] for c in chain_values] == ["Leaf", "Inter", "Root"]
    assert "URIStrings" in chain_values[0]
    with_options = BUILTINS["crypto.x509.parse_and_verify_certificates_with_options"]
    assert "URIStrings" not in with_options(EvalContext(), chain, {})[1][0]


@pytest.mark.parametrize(
    ("uri", "string"),
    [
        ("spiffe://example.com/a%20b?q#f", "spiffe://example.com/a%20b?q#f"),
        ("HTTP://h.test/%7e", "http://h.test/%7e"),
        ("urn:isbn:1", "urn:isbn:1"),
        ("https://h.test?", "https://h.test?"),
        ("http://u:p%40@h.test/", "http://u:p%40@h.test/"),
    ],
)
def test_url_round_trip(uri: str, string: str) -> None:
    assert url_parse(uri.encode()).string().decode() == string
