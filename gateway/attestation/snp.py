"""AMD SEV-SNP verifier: attestation report + VCEK/VLEK chain to a pinned AMD root key.

Evidence is a JSON object (UTF-8) with exactly these members, each base64:

- ``report``: the 1184-byte ATTESTATION_REPORT from ``SNP_GET_REPORT``;
- ``vek_cert``: the DER VCEK (chip key) or VLEK (cloud-provider key) that signed it;
- ``ca_cert``: the DER ASK (issues VCEKs) or ASVK (issues VLEKs);
- ``ark_cert``: the DER AMD Root Key, accepted only if its SHA-256 fingerprint is pinned
  in :data:`PINNED_ARK_SHA256`.

:func:`encode_evidence` builds it. Layouts follow AMD's SEV Secure Nested Paging Firmware
ABI Specification (ATTESTATION_REPORT, TCB_VERSION, guest policy, PLATFORM_INFO) and the
VCEK specification (certificate extensions).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from gateway.attestation.plugins import (
    AttestationError,
    Reason,
    ReferenceValues,
    VerifiedEvidence,
    check_report_data,
    load_certificates,
    require_aware,
    sha256_hex,
)

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0
# Report versions this parser knows the layout of (2: firmware 1.51+, 3 adds CPUID,
# 4 and 5 add the mitigation vectors).
SUPPORTED_VERSIONS = frozenset({2, 3, 4, 5})
SIG_ALGO_ECDSA_P384_SHA384 = 1

# SHA-256 of the DER AMD Root Keys. Only these roots are trusted; the certificates
# themselves travel in the evidence.
PINNED_ARK_SHA256: dict[str, str] = {
    "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd": "Milan",
    "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a": "Turin",
}

# VCEK/VLEK certificate extensions (AMD VCEK specification, table 8).
_OID_AMD = "1.3.6.1.4.1.3704.1"
OID_PRODUCT_NAME = f"{_OID_AMD}.2"
OID_HWID = f"{_OID_AMD}.4"
OID_CSP_ID = f"{_OID_AMD}.5"
TCB_OIDS: dict[str, str] = {
    "bootloader": f"{_OID_AMD}.3.1",
    "tee": f"{_OID_AMD}.3.2",
    "snp": f"{_OID_AMD}.3.3",
    "microcode": f"{_OID_AMD}.3.8",
    "fmc": f"{_OID_AMD}.3.9",
}

# Byte position of each component inside the 64-bit TCB_VERSION. Turin moved them.
_TCB_LAYOUT: dict[str, dict[str, int]] = {
    "Milan": {"bootloader": 0, "tee": 1, "snp": 6, "microcode": 7},
    "Turin": {"fmc": 0, "bootloader": 1, "tee": 2, "snp": 3, "microcode": 7},
}

_POLICY_BITS = {
    "smt_allowed": 16,
    "migrate_ma": 18,
    "debug": 19,
    "single_socket": 20,
    "cxl_allowed": 21,
    "mem_aes_256_xts": 22,
    "rapl_disabled": 23,
    "ciphertext_hiding": 24,
    "page_swap_disabled": 25,
}
_PLATFORM_INFO_BITS = {
    "smt_enabled": 0,
    "tsme_enabled": 1,
    "ecc_enabled": 2,
    "rapl_disabled": 3,
    "ciphertext_hiding_enabled": 4,
    "alias_check_complete": 5,
    "tio_enabled": 7,
}
_SIGNING_KEYS = {0: "vcek", 1: "vlek"}
_EVIDENCE_KEYS = frozenset({"report", "vek_cert", "ca_cert", "ark_cert"})
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


@dataclass(frozen=True)
class SnpReport:
    """Every field of ATTESTATION_REPORT; integers decoded, byte fields raw."""

    raw: bytes
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: int
    platform_info: int
    author_key_en: bool
    mask_chip_key: bool
    signing_key: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: int
    cpuid_fam_id: int
    cpuid_mod_id: int
    cpuid_step: int
    chip_id: bytes
    committed_tcb: int
    current_build: int
    current_minor: int
    current_major: int
    committed_build: int
    committed_minor: int
    committed_major: int
    launch_tcb: int
    launch_mit_vector: int
    current_mit_vector: int
    signature_r: bytes
    signature_s: bytes

    @property
    def signed_bytes(self) -> bytes:
        """The region the signature covers."""
        return self.raw[:SIGNED_SIZE]


def parse_report(raw: bytes) -> SnpReport:
    """Decode a report; raise ``malformed`` / ``unsupported`` for anything not well formed.

    The unsigned tail must be canonical (zero above the 48 significant bytes of R and S,
    zero in the reserved area) so that no bit of the report can change unnoticed.
    """
    if len(raw) != REPORT_SIZE:
        raise AttestationError(
            Reason.MALFORMED, f"report is {len(raw)} bytes, expected {REPORT_SIZE}"
        )
    version, guest_svn, policy = struct.unpack_from("<IIQ", raw, 0x00)
    if version not in SUPPORTED_VERSIONS:
        raise AttestationError(Reason.UNSUPPORTED, f"report version {version}")
    vmpl, sig_algo, current_tcb, platform_info, key_info = struct.unpack_from("<IIQQI", raw, 0x30)
    if sig_algo != SIG_ALGO_ECDSA_P384_SHA384:
        raise AttestationError(
            Reason.UNSUPPORTED, f"signature algorithm {sig_algo} (only ECDSA P-384 SHA-384)"
        )
    r, s = raw[0x2A0:0x2E8], raw[0x2E8:0x330]
    if any(r[48:]) or any(s[48:]):
        raise AttestationError(Reason.BAD_SIGNATURE, "signature R or S exceeds 384 bits")
    if any(raw[0x330:]):
        raise AttestationError(Reason.MALFORMED, "reserved bytes after the signature are set")
    v3 = version >= 3
    v5 = version >= 5
    return SnpReport(
        raw=bytes(raw),
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        family_id=raw[0x10:0x20],
        image_id=raw[0x20:0x30],
        vmpl=vmpl,
        signature_algo=sig_algo,
        current_tcb=current_tcb,
        platform_info=platform_info,
        author_key_en=bool(key_info & 1),
        mask_chip_key=bool(key_info >> 1 & 1),
        signing_key=key_info >> 2 & 0b111,
        report_data=raw[0x50:0x90],
        measurement=raw[0x90:0xC0],
        host_data=raw[0xC0:0xE0],
        id_key_digest=raw[0xE0:0x110],
        author_key_digest=raw[0x110:0x140],
        report_id=raw[0x140:0x160],
        report_id_ma=raw[0x160:0x180],
        reported_tcb=struct.unpack_from("<Q", raw, 0x180)[0],
        cpuid_fam_id=raw[0x188] if v3 else 0,
        cpuid_mod_id=raw[0x189] if v3 else 0,
        cpuid_step=raw[0x18A] if v3 else 0,
        chip_id=raw[0x1A0:0x1E0],
        committed_tcb=struct.unpack_from("<Q", raw, 0x1E0)[0],
        current_build=raw[0x1E8],
        current_minor=raw[0x1E9],
        current_major=raw[0x1EA],
        committed_build=raw[0x1EC],
        committed_minor=raw[0x1ED],
        committed_major=raw[0x1EE],
        launch_tcb=struct.unpack_from("<Q", raw, 0x1F0)[0],
        launch_mit_vector=struct.unpack_from("<Q", raw, 0x1F8)[0] if v5 else 0,
        current_mit_vector=struct.unpack_from("<Q", raw, 0x200)[0] if v5 else 0,
        signature_r=r,
        signature_s=s,
    )


def decode_tcb(value: int, product: str) -> dict[str, int]:
    """Split a TCB_VERSION into its component SVNs using ``product``'s layout."""
    octets = value.to_bytes(8, "little")
    return {name: octets[pos] for name, pos in _TCB_LAYOUT[product].items()}


def load_certificate(der: bytes, what: str = "certificate") -> x509.Certificate:
    """Load a DER certificate from evidence; ``malformed`` if any field does not parse or
    its unsigned signatureAlgorithm differs from the signed one."""
    cert = load_certificates(der, what, pem=False, zero_serial_ok=True)[0]
    _check_unsigned_fields(der, what)
    return cert


def _check_unsigned_fields(der: bytes, what: str) -> None:
    """Hold the parts of a certificate its signature does not cover to their one valid
    encoding, so that no bit of the evidence can change unnoticed: the outer
    signatureAlgorithm must equal the signed one (RFC 5280 4.1.1.2; the PSS parameters are
    pinned here, not read from it), and the signature BIT STRING has no unused bits."""
    try:
        _, body, end = _der_element(der, 0)
        _, tbs_body, tbs_end = _der_element(der, body)
        _, _, outer_end = _der_element(der, tbs_end)
        bits_tag, bits_start, bits_end = _der_element(der, outer_end)
        pos = tbs_body
        tag, _, after = _der_element(der, pos)
        if tag == 0xA0:  # [0] version
            pos = after
        _, _, pos = _der_element(der, pos)  # serialNumber
        _, _, inner_end = _der_element(der, pos)
    except ValueError as exc:
        raise AttestationError(Reason.MALFORMED, f"{what}: {exc}") from exc
    if der[pos:inner_end] != der[tbs_end:outer_end]:
        raise AttestationError(
            Reason.MALFORMED, f"{what}: signatureAlgorithm differs from the signed one"
        )
    if bits_tag != 0x03 or der[bits_start : bits_start + 1] != b"\0" or bits_end != end:
        raise AttestationError(Reason.MALFORMED, f"{what}: signature is not a whole BIT STRING")


def encode_evidence(report: bytes, *, vek_cert: bytes, ca_cert: bytes, ark_cert: bytes) -> bytes:
    """Evidence bytes for this plugin from a report and DER certificates."""
    members = {"report": report, "vek_cert": vek_cert, "ca_cert": ca_cert, "ark_cert": ark_cert}
    return json.dumps(
        {k: base64.b64encode(v).decode("ascii") for k, v in members.items()}, sort_keys=True
    ).encode()


def _decode_evidence(evidence: bytes) -> dict[str, bytes]:
    try:
        doc = json.loads(evidence)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AttestationError(Reason.MALFORMED, f"evidence is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) != _EVIDENCE_KEYS:
        raise AttestationError(
            Reason.MALFORMED, f"evidence must have exactly {sorted(_EVIDENCE_KEYS)}"
        )
    try:
        return {k: base64.b64decode(v, validate=True) for k, v in doc.items()}
    except (TypeError, binascii.Error) as exc:
        raise AttestationError(Reason.MALFORMED, f"evidence member not base64: {exc}") from exc


def _common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _der_element(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length, start = data[pos], data[pos + 1], pos + 2
    if length & 0x80:
        n = length & 0x7F
        if not 0 < n <= 4 or start + n > len(data):
            raise ValueError("bad DER length")
        length, start = int.from_bytes(data[start : start + n], "big"), start + n
    if start + length > len(data):
        raise ValueError("truncated DER")
    return tag, start, start + length


def _der_tlv(raw: bytes, tag: int) -> bytes:
    """Contents of a single DER element with ``tag`` spanning all of ``raw``."""
    found, start, end = _der_element(raw, 0)
    if found != tag or end != len(raw):
        raise ValueError("unexpected DER element")
    return raw[start:end]


def _extension(cert: x509.Certificate, oid: str) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise AttestationError(Reason.UNTRUSTED_CHAIN, f"extension {oid} has an unexpected type")
    return value.value


def _extension_str(cert: x509.Certificate, oid: str) -> str | None:
    raw = _extension(cert, oid)
    if raw is None:
        return None
    try:
        return _der_tlv(raw, 0x16).decode("ascii")  # IA5String
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttestationError(Reason.UNTRUSTED_CHAIN, f"extension {oid}: {exc}") from exc


def _extension_int(cert: x509.Certificate, oid: str) -> int | None:
    raw = _extension(cert, oid)
    if raw is None:
        return None
    try:
        return int.from_bytes(_der_tlv(raw, 0x02), "big", signed=True)
    except ValueError as exc:
        raise AttestationError(Reason.UNTRUSTED_CHAIN, f"extension {oid}: {exc}") from exc


def _check_pss(issuer: x509.Certificate, cert: x509.Certificate, what: str) -> None:
    """``cert`` carries an RSASSA-PSS SHA-384 signature by ``issuer``; the parameters are
    fixed here rather than read from the certificate, so a downgraded encoding fails."""
    key = issuer.public_key()
    if (
        cert.signature_algorithm_oid != SignatureAlgorithmOID.RSASSA_PSS
        or not isinstance(key, rsa.RSAPublicKey)
        or cert.issuer != issuer.subject
    ):
        raise AttestationError(Reason.UNTRUSTED_CHAIN, f"{what}: not an AMD RSA-PSS signature")
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, _PSS, hashes.SHA384())
    except InvalidSignature:
        raise AttestationError(Reason.UNTRUSTED_CHAIN, f"{what}: signature invalid") from None


def verify_chain(
    vek: x509.Certificate,
    ca: x509.Certificate,
    ark: x509.Certificate,
    *,
    signing_key: str,
    now: datetime,
) -> str:
    """Check ARK (pinned, self-signed) → ASK/ASVK → VCEK/VLEK at ``now``; return the product.

    ``signing_key`` is ``"vcek"`` or ``"vlek"``: a VCEK must hang off the ASK ``SEV-<product>``
    and a VLEK off the ASVK ``SEV-VLEK-<product>``. Raises ``untrusted_chain`` or ``expired``.
    """
    require_aware(now)
    ark_fp = hashlib.sha256(ark.public_bytes(Encoding.DER)).hexdigest()
    product = PINNED_ARK_SHA256.get(ark_fp)
    if product is None:
        raise AttestationError(Reason.UNTRUSTED_CHAIN, f"ARK {ark_fp} is not a pinned AMD root key")
    _check_pss(ark, ark, "ARK self-signature")
    expected_ca = f"SEV-{product}" if signing_key == "vcek" else f"SEV-VLEK-{product}"
    expected_leaf = "SEV-VCEK" if signing_key == "vcek" else "SEV-VLEK"
    if _common_name(ca.subject) != expected_ca:
        raise AttestationError(
            Reason.UNTRUSTED_CHAIN,
            f"intermediate is {_common_name(ca.subject)!r}, expected {expected_ca!r}",
        )
    if _common_name(vek.subject) != expected_leaf:
        raise AttestationError(
            Reason.UNTRUSTED_CHAIN,
            f"leaf is {_common_name(vek.subject)!r}, expected {expected_leaf!r}",
        )
    _check_pss(ark, ca, expected_ca)
    _check_pss(ca, vek, expected_leaf)
    product_name = _extension_str(vek, OID_PRODUCT_NAME) or ""
    # productName is "Milan-B0" (product and stepping) on VCEKs, "Milan" on VLEKs.
    if product_name.split("-")[0] != product:
        raise AttestationError(
            Reason.UNTRUSTED_CHAIN, f"{expected_leaf} is for {product_name!r}, ARK is {product}"
        )
    key = vek.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise AttestationError(Reason.UNTRUSTED_CHAIN, f"{expected_leaf} key is not EC P-384")
    for cert, what in ((ark, "ARK"), (ca, expected_ca), (vek, expected_leaf)):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise AttestationError(
                Reason.EXPIRED,
                f"{what} is valid {cert.not_valid_before_utc.isoformat()} to "
                f"{cert.not_valid_after_utc.isoformat()}, not at {now.isoformat()}",
            )
    return product


def _check_report_signature(report: SnpReport, vek: x509.Certificate) -> None:
    key = vek.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AttestationError(Reason.UNTRUSTED_CHAIN, "signing key is not EC")
    # R and S are little-endian in the report; the DER encoder wants integers.
    r = int.from_bytes(report.signature_r[:48], "little")
    s = int.from_bytes(report.signature_s[:48], "little")
    try:
        key.verify(encode_dss_signature(r, s), report.signed_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise AttestationError(Reason.BAD_SIGNATURE, "report signature is invalid") from None


def _check_vek_binding(report: SnpReport, vek: x509.Certificate, product: str, key: str) -> None:
    """The VCEK/VLEK is derived for one TCB (and, for a VCEK, one chip): its extensions must
    name the TCB the report says it was signed under and the report's chip."""
    reported = decode_tcb(report.reported_tcb, product)
    for component, svn in reported.items():
        cert_svn = _extension_int(vek, TCB_OIDS[component])
        if cert_svn != svn:
            raise AttestationError(
                Reason.UNTRUSTED_CHAIN,
                f"{key} {component} SPL is {cert_svn}, report REPORTED_TCB has {svn}",
            )
    if key != "vcek":
        return
    hwid = _extension(vek, OID_HWID)
    if hwid is None:
        raise AttestationError(Reason.UNTRUSTED_CHAIN, "VCEK has no hwID")
    # hwID holds the raw chip id (64 bytes on Milan). Turin's is 8 bytes, and its CHIP_ID
    # holds them followed by zeros.
    size = len(report.chip_id)
    if not 0 < len(hwid) <= size or hwid.ljust(size, b"\0") != report.chip_id:
        raise AttestationError(Reason.UNTRUSTED_CHAIN, "VCEK hwID does not match CHIP_ID")


def _bits(value: int, table: dict[str, int]) -> dict[str, bool]:
    return {name: bool(value >> bit & 1) for name, bit in table.items()}


def _check_policy(report: SnpReport, reference: ReferenceValues, product: str) -> None:
    policy = _bits(report.policy, _POLICY_BITS)
    if policy["debug"] and not reference.allow_debug:
        raise AttestationError(Reason.POLICY_VIOLATION, "guest policy allows debugging")
    if policy["migrate_ma"] and not reference.allow_migration_agent:
        raise AttestationError(Reason.POLICY_VIOLATION, "guest policy allows a migration agent")
    if _bits(report.platform_info, _PLATFORM_INFO_BITS)["smt_enabled"] and not reference.allow_smt:
        raise AttestationError(Reason.POLICY_VIOLATION, "SMT is enabled on the platform")
    reported = decode_tcb(report.reported_tcb, product)
    for component, minimum in reference.min_tcb.items():
        if component not in TCB_OIDS:
            raise ValueError(f"unknown SEV-SNP TCB component {component!r}")
        # A component this product does not have counts as 0, so a minimum fails closed.
        if reported.get(component, 0) < minimum:
            raise AttestationError(
                Reason.TCB_OUT_OF_DATE,
                f"REPORTED_TCB {component} {reported.get(component, 0)} < {minimum}",
                details={"reported_tcb": reported},
            )


def _claims(
    report: SnpReport,
    evidence: bytes,
    *,
    vek: x509.Certificate,
    ca: x509.Certificate,
    ark: x509.Certificate,
    product: str,
    key: str,
    now: datetime,
) -> VerifiedEvidence:
    tcb: dict[str, Any] = {
        "reported": decode_tcb(report.reported_tcb, product),
        "current": decode_tcb(report.current_tcb, product),
        "committed": decode_tcb(report.committed_tcb, product),
        "launch": decode_tcb(report.launch_tcb, product),
        "guest_svn": report.guest_svn,
        "firmware_current": f"{report.current_major}.{report.current_minor}.{report.current_build}",
        "firmware_committed": f"{report.committed_major}.{report.committed_minor}."
        f"{report.committed_build}",
    }
    if report.version >= 5:
        tcb["launch_mit_vector"] = report.launch_mit_vector
        tcb["current_mit_vector"] = report.current_mit_vector
    platform: dict[str, Any] = {
        "product": product,
        "chip_id": report.chip_id.hex(),
        "platform_info": report.platform_info,
        **_bits(report.platform_info, _PLATFORM_INFO_BITS),
        "csp_id": _extension_str(vek, OID_CSP_ID),
    }
    if report.version >= 3:
        platform["cpuid"] = {
            "family": report.cpuid_fam_id,
            "model": report.cpuid_mod_id,
            "stepping": report.cpuid_step,
        }
    return VerifiedEvidence(
        verifier=VERIFIER.name,
        tee_class=VERIFIER.tee_class,
        hardware=True,
        measurement=report.measurement.hex(),
        report_data=report.report_data.hex(),
        registers={
            "host_data": report.host_data.hex(),
            "id_key_digest": report.id_key_digest.hex(),
            "author_key_digest": report.author_key_digest.hex(),
            "family_id": report.family_id.hex(),
            "image_id": report.image_id.hex(),
        },
        tcb=tcb,
        policy={
            "raw": report.policy,
            "abi_major": report.policy >> 8 & 0xFF,
            "abi_minor": report.policy & 0xFF,
            **_bits(report.policy, _POLICY_BITS),
            "vmpl": report.vmpl,
            "author_key_en": report.author_key_en,
        },
        platform=platform,
        signer={
            "key": key,
            "product_name": _extension_str(vek, OID_PRODUCT_NAME),
            "vek_sha256": hashlib.sha256(vek.public_bytes(Encoding.DER)).hexdigest(),
            "ca": _common_name(ca.subject),
            "ark_sha256": hashlib.sha256(ark.public_bytes(Encoding.DER)).hexdigest(),
            "report_id": report.report_id.hex(),
            "report_id_ma": report.report_id_ma.hex(),
            "report_version": report.version,
        },
        raw_digest=sha256_hex(report.raw),
        evidence_digest=sha256_hex(evidence),
        verified_at=now,
    )


class SnpVerifier:
    """Verifies SEV-SNP evidence (see the module docstring for its encoding)."""

    name = "snp"
    tee_class = "sev-snp"

    def verify(
        self,
        evidence: bytes,
        *,
        expected_report_data: bytes | None,
        now: datetime,
        reference: ReferenceValues,
    ) -> VerifiedEvidence:
        """Verify an SNP report and its chain at ``now``; see :class:`Verifier`.

        Order: structure, chain to the pinned ARK and validity, report signature, VEK
        binding to the report's TCB and chip, report-data binding, then guest policy and
        minimum TCB from ``reference``.
        """
        require_aware(now)
        members = _decode_evidence(evidence)
        report = parse_report(members["report"])
        key = _SIGNING_KEYS.get(report.signing_key)
        if key is None:
            raise AttestationError(
                Reason.UNSUPPORTED, f"report signed by key selector {report.signing_key}"
            )
        if report.mask_chip_key:
            raise AttestationError(Reason.UNSUPPORTED, "MASK_CHIP_KEY set: report is unsigned")
        vek = load_certificate(members["vek_cert"], "vek_cert")
        ca = load_certificate(members["ca_cert"], "ca_cert")
        ark = load_certificate(members["ark_cert"], "ark_cert")
        product = verify_chain(vek, ca, ark, signing_key=key, now=now)
        _check_report_signature(report, vek)
        _check_vek_binding(report, vek, product, key)
        check_report_data(report.report_data, expected_report_data)
        _check_policy(report, reference, product)
        return _claims(report, evidence, vek=vek, ca=ca, ark=ark, product=product, key=key, now=now)


VERIFIER = SnpVerifier()
