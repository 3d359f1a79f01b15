"""Intel TDX verifier: a DCAP v4 quote plus its collateral, appraised offline at ``now``.

Evidence is a JSON object (UTF-8) with exactly two members:

- ``quote``: base64 of the quote as ``TDG.MR.REPORT`` + the quoting enclave produced it
  (version 4, ECDSA P-256 attestation key, PCK chain embedded as certification data 5);
- ``collateral``: Intel's verification collateral for it in dcap-qvl's
  ``QuoteCollateralV3`` JSON shape (issuer chains as PEM, CRLs and signatures as hex,
  ``tcb_info`` / ``qe_identity`` as the exact JSON text Intel signed).
  :func:`collateral_from_pcs` builds it from Intel PCS / PCCS responses.

The cryptographic verification (quote signature, QE report signature and key binding,
PCK chain and CRLs to Intel's root, TCB info and QE identity signatures, TCB level
matching) is done by dcap-qvl. Around it this module adds what dcap-qvl does not give:
a strict structural parse (so every bit of the evidence is either authenticated or must
be canonical), the pin of Intel's root, validity checks that say which item is out of
date, stable reason codes, and the appraisal of TCB status against reference values.
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

import dcap_qvl
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

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

QUOTE_VERSION = 4
ATTESTATION_KEY_ECDSA_P256 = 2
TEE_TYPE_TDX = 0x81
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
HEADER_SIZE = 48
TD_REPORT10_SIZE = 584
QE_REPORT_SIZE = 384
CERT_DATA_QE_REPORT = 6
CERT_DATA_PCK_CHAIN = 5

# Intel SGX Root CA (CN=Intel SGX Root CA, valid to 2049-12-31): SHA-256 of its DER, and
# its key id as dcap-qvl reports it (SHA-384 of the uncompressed public point).
INTEL_ROOT_CA_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
INTEL_ROOT_KEY_ID = (
    "46e403bd34f05a3f2817ab9badcaacc7ffc98e0f261008cd30dae936cace18d5"
    "dcf58eef31463613de1570d516200993"
)

COLLATERAL_KEYS = frozenset(
    {
        "pck_crl_issuer_chain",
        "root_ca_crl",
        "pck_crl",
        "tcb_info_issuer_chain",
        "tcb_info",
        "tcb_info_signature",
        "qe_identity_issuer_chain",
        "qe_identity",
        "qe_identity_signature",
    }
)
_EVIDENCE_KEYS = frozenset({"quote", "collateral"})

# TD_ATTRIBUTES bits (Intel TDX module ABI): TUD.DEBUG and the SEC/OTHER flags.
_TD_ATTRIBUTE_BITS = {
    "debug": 0,
    "sept_ve_disable": 28,
    "pks": 30,
    "kl": 31,
    "perfmon": 63,
}

# dcap-qvl reports failures as text. Ordered (first match wins) from the most specific
# cause to the most generic, so e.g. "Collateral expired" is not read as a signature error.
_ERROR_REASONS: tuple[tuple[tuple[str, ...], Reason], ...] = (
    (
        ("no matching tcb level", "tcb level mismatch", "tcb status is invalid"),
        Reason.TCB_OUT_OF_DATE,
    ),
    (("expired", "in the future", "notvalidyet", "not valid yet"), Reason.EXPIRED),
    (
        (
            "revoked",
            "crl",
            "certificate",
            "root ca",
            "unknownissuer",
            "fmspc mismatch",
            "mrsigner mismatch",
            "isvprodid mismatch",
            "miscselect mismatch",
            "attributes mismatch",
            "qe vendor",
            "info in the collateral",
            "qe identity id/version",
        ),
        Reason.UNTRUSTED_CHAIN,
    ),
    (("signature", "hash mismatch"), Reason.BAD_SIGNATURE),
    (
        ("debug", "profiling", "servtd_ext", "migration", "sept_ve_disable", "reserved bits"),
        Reason.POLICY_VIOLATION,
    ),
    (("unsupported",), Reason.UNSUPPORTED),
    (("decode", "parse", "invalid body size", "too short"), Reason.MALFORMED),
)


@dataclass(frozen=True)
class QuoteLayout:
    """What the structural parse learns; the quote's contents are left to dcap-qvl.

    ``size`` is the length without the host's zero padding.
    """

    version: int
    qe_vendor_id: bytes
    size: int
    pck_chain: tuple[x509.Certificate, ...]


def parse_quote(raw: bytes) -> QuoteLayout:
    """Check the quote's structure and return its layout.

    Refuses (``unsupported``) anything but a v4 ECDSA-P256 TDX quote from Intel's QE with
    an embedded PCK chain, and (``malformed``) inconsistent lengths, a PCK chain that is
    not canonical PEM, or non-zero bytes after the signature data. Quote buffers are
    zero-padded by the host, so zero padding is accepted; anything else there would be
    unauthenticated data riding along with the quote.
    """
    if len(raw) < HEADER_SIZE + TD_REPORT10_SIZE + 4:
        raise AttestationError(Reason.MALFORMED, f"quote is only {len(raw)} bytes")
    version, key_type, tee_type = struct.unpack_from("<HHI", raw, 0)
    vendor = raw[12:28]
    if version != QUOTE_VERSION:
        raise AttestationError(Reason.UNSUPPORTED, f"quote version {version} (only 4)")
    if key_type != ATTESTATION_KEY_ECDSA_P256:
        raise AttestationError(
            Reason.UNSUPPORTED, f"attestation key type {key_type} (only 2, ECDSA P-256)"
        )
    if tee_type != TEE_TYPE_TDX:
        raise AttestationError(Reason.UNSUPPORTED, f"TEE type {tee_type:#x} is not TDX")
    if vendor != INTEL_QE_VENDOR_ID:
        raise AttestationError(Reason.UNSUPPORTED, f"QE vendor {vendor.hex()} is not Intel")
    signed_end = HEADER_SIZE + TD_REPORT10_SIZE
    (sig_len,) = struct.unpack_from("<I", raw, signed_end)
    sig_start = signed_end + 4
    sig_end = sig_start + sig_len
    if sig_end > len(raw):
        raise AttestationError(Reason.MALFORMED, "signature data runs past the quote")
    if any(raw[sig_end:]):
        raise AttestationError(Reason.MALFORMED, "non-zero bytes after the signature data")
    pos = sig_start + 128  # ECDSA signature (64) and attestation public key (64)
    cert_type, cert_size = _unpack(raw, "<HI", pos, sig_end)
    pos += 6
    if cert_type != CERT_DATA_QE_REPORT:
        raise AttestationError(Reason.UNSUPPORTED, f"certification data type {cert_type}")
    if pos + cert_size != sig_end:
        raise AttestationError(Reason.MALFORMED, "certification data size is inconsistent")
    pos += QE_REPORT_SIZE + 64
    (auth_len,) = _unpack(raw, "<H", pos, sig_end)
    pos += 2 + auth_len
    inner_type, inner_size = _unpack(raw, "<HI", pos, sig_end)
    pos += 6
    if inner_type != CERT_DATA_PCK_CHAIN:
        raise AttestationError(Reason.UNSUPPORTED, f"QE certification data type {inner_type}")
    if pos + inner_size != sig_end:
        raise AttestationError(Reason.MALFORMED, "PCK chain size is inconsistent")
    return QuoteLayout(
        version=version,
        qe_vendor_id=vendor,
        size=sig_end,
        pck_chain=_canonical_pem_chain(raw[pos:sig_end]),
    )


def _unpack(raw: bytes, fmt: str, pos: int, end: int) -> tuple[int, ...]:
    if pos + struct.calcsize(fmt) > end:
        raise AttestationError(Reason.MALFORMED, "signature data is truncated")
    return struct.unpack_from(fmt, raw, pos)


def _canonical_pem_chain(data: bytes) -> tuple[x509.Certificate, ...]:
    """Parse the embedded PEM chain and require it to be byte-for-byte canonical PEM (a
    trailing NUL terminator allowed): PEM decoders skip stray bytes, so without this a
    changed byte in the chain's text could go unnoticed."""
    text = data.rstrip(b"\0")
    certs = tuple(load_certificates(text, "PCK chain", pem=True))
    if b"".join(c.public_bytes(Encoding.PEM) for c in certs) != text:
        raise AttestationError(Reason.MALFORMED, "PCK chain is not canonical PEM")
    return certs


def _raw_member(body: str, key: str) -> str:
    """The exact source text of top-level member ``key`` of the JSON object ``body``.

    Intel signs the bytes of the ``tcbInfo`` / ``enclaveIdentity`` value as served, so the
    value must be cut out, not re-serialized.
    """
    decoder = json.JSONDecoder()

    def skip(pos: int) -> int:
        while pos < len(body) and body[pos] in " \t\r\n":
            pos += 1
        return pos

    pos = skip(0)
    if body[pos : pos + 1] != "{":
        raise ValueError("not a JSON object")
    pos += 1
    while True:
        name, pos = decoder.raw_decode(body, skip(pos))
        pos = skip(pos)
        if not isinstance(name, str) or body[pos : pos + 1] != ":":
            raise ValueError("not a JSON object")
        start = skip(pos + 1)
        _, end = decoder.raw_decode(body, start)
        if name == key:
            return body[start:end]
        pos = skip(end)
        if body[pos : pos + 1] != ",":
            raise ValueError(f"no member {key!r}")
        pos += 1


def collateral_from_pcs(
    *,
    tcb_info_response: str,
    tcb_info_issuer_chain: str,
    qe_identity_response: str,
    qe_identity_issuer_chain: str,
    pck_crl: bytes,
    pck_crl_issuer_chain: str,
    root_ca_crl: bytes,
) -> dict[str, str]:
    """Collateral (the evidence's ``collateral`` member) from Intel PCS / PCCS responses.

    ``*_response`` are the response bodies of ``tdx/certification/v4/tcb`` and
    ``tdx/certification/v4/qe/identity``; ``*_issuer_chain`` the URL-decoded PEM chains from
    their issuer-chain headers; the CRLs are DER.
    """
    return {
        "pck_crl_issuer_chain": pck_crl_issuer_chain,
        "root_ca_crl": root_ca_crl.hex(),
        "pck_crl": pck_crl.hex(),
        "tcb_info_issuer_chain": tcb_info_issuer_chain,
        "tcb_info": _raw_member(tcb_info_response, "tcbInfo"),
        "tcb_info_signature": json.loads(tcb_info_response)["signature"],
        "qe_identity_issuer_chain": qe_identity_issuer_chain,
        "qe_identity": _raw_member(qe_identity_response, "enclaveIdentity"),
        "qe_identity_signature": json.loads(qe_identity_response)["signature"],
    }


def encode_evidence(quote: bytes, collateral: dict[str, str]) -> bytes:
    """Evidence bytes for this plugin from a quote and its collateral."""
    return json.dumps(
        {"quote": base64.b64encode(quote).decode("ascii"), "collateral": collateral},
        sort_keys=True,
    ).encode()


def _decode_evidence(evidence: bytes) -> tuple[bytes, dict[str, str]]:
    try:
        doc = json.loads(evidence)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AttestationError(Reason.MALFORMED, f"evidence is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) != _EVIDENCE_KEYS:
        raise AttestationError(Reason.MALFORMED, "evidence must have exactly quote, collateral")
    collateral = doc["collateral"]
    if (
        not isinstance(collateral, dict)
        or set(collateral) != COLLATERAL_KEYS
        or not all(isinstance(v, str) for v in collateral.values())
    ):
        raise AttestationError(
            Reason.MALFORMED, f"collateral must have exactly {sorted(COLLATERAL_KEYS)}"
        )
    try:
        quote = base64.b64decode(doc["quote"], validate=True)
    except (TypeError, binascii.Error) as exc:
        raise AttestationError(Reason.MALFORMED, f"quote is not base64: {exc}") from exc
    return quote, collateral


def _collateral_windows(
    layout: QuoteLayout, collateral: dict[str, str]
) -> list[tuple[str, datetime, datetime]]:
    """Every dated item of the evidence as (what, not before, not after); checks on the way
    that every certificate chain ends in the pinned Intel root."""
    items: list[tuple[str, datetime, datetime]] = []
    chains = {"PCK chain in the quote": layout.pck_chain}
    for key in ("tcb_info_issuer_chain", "qe_identity_issuer_chain", "pck_crl_issuer_chain"):
        chains[key] = tuple(load_certificates(collateral[key].encode(), key, pem=True))
    for what, chain in chains.items():
        if hashlib.sha256(chain[-1].public_bytes(Encoding.DER)).hexdigest() != (
            INTEL_ROOT_CA_SHA256
        ):
            raise AttestationError(
                Reason.UNTRUSTED_CHAIN, f"{what} does not end in the pinned Intel SGX Root CA"
            )
        for cert in chain:
            name = f"{what}: {cert.subject.rfc4514_string()}"
            items.append((name, cert.not_valid_before_utc, cert.not_valid_after_utc))
    for key in ("root_ca_crl", "pck_crl"):
        try:
            crl = x509.load_der_x509_crl(bytes.fromhex(collateral[key]))
            last_update, next_update = crl.last_update_utc, crl.next_update_utc
        except ValueError as exc:
            raise AttestationError(Reason.MALFORMED, f"{key} does not parse: {exc}") from exc
        if next_update is None:
            raise AttestationError(Reason.MALFORMED, f"{key} has no nextUpdate")
        items.append((key, last_update, next_update))
    for key in ("tcb_info", "qe_identity"):
        try:
            doc = json.loads(collateral[key])
            issued = datetime.fromisoformat(doc["issueDate"])
            next_update = datetime.fromisoformat(doc["nextUpdate"])
            if issued.tzinfo is None or next_update.tzinfo is None:
                raise ValueError("dates must carry a time zone")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise AttestationError(Reason.MALFORMED, f"{key} is not valid: {exc}") from exc
        items.append((key, issued, next_update))
    return items


def _classify(message: str) -> Reason:
    text = message.lower()
    for needles, reason in _ERROR_REASONS:
        if any(n in text for n in needles):
            return reason
    return Reason.VERIFICATION_FAILED


def _hex(value: Any) -> str | None:
    """dcap-qvl serializes byte strings as lists of ints; claims use hex."""
    return None if value is None else bytes(value).hex()


def _flag(value: str) -> bool | None:
    # PCK certificate flags are tri-state: absent on Processor-CA certificates.
    return {"True": True, "False": False}.get(value)


def _bits(value: int, table: dict[str, int]) -> dict[str, bool]:
    return {name: bool(value >> bit & 1) for name, bit in table.items()}


class TdxVerifier:
    """Verifies TDX evidence (see the module docstring for its encoding)."""

    name = "tdx"
    tee_class = "tdx"

    def verify(
        self,
        evidence: bytes,
        *,
        expected_report_data: bytes | None,
        now: datetime,
        reference: ReferenceValues,
    ) -> VerifiedEvidence:
        """Verify a TDX quote with its collateral at ``now``; see :class:`Verifier`.

        Order: structure, root pin, validity windows, dcap-qvl verification (signatures,
        chains, CRLs, TCB level), TCB status against ``reference``, report-data binding,
        then TD attributes.
        """
        require_aware(now)
        quote, collateral = _decode_evidence(evidence)
        layout = parse_quote(quote)
        for what, not_before, not_after in _collateral_windows(layout, collateral):
            if not not_before <= now <= not_after:
                raise AttestationError(
                    Reason.EXPIRED,
                    f"{what} is valid {not_before.isoformat()} to {not_after.isoformat()}, "
                    f"not at {now.isoformat()}",
                )
        claims = self._dcap_verify(quote, collateral, now)
        if _hex(claims["platform"]["root_key_id"]) != INTEL_ROOT_KEY_ID:
            raise AttestationError(Reason.UNTRUSTED_CHAIN, "dcap-qvl used another root key")
        tcb = claims["tcb"]
        if tcb["status"] not in reference.allowed_tcb_statuses:
            raise AttestationError(
                Reason.TCB_OUT_OF_DATE,
                f"TCB status {tcb['status']} is not accepted",
                details={"tcb_status": tcb["status"], "advisory_ids": tcb["advisory_ids"]},
            )
        if tcb["eval_data_number"] < reference.min_tcb_evaluation_data_number:
            raise AttestationError(
                Reason.TCB_OUT_OF_DATE,
                f"collateral tcbEvaluationDataNumber {tcb['eval_data_number']} < "
                f"{reference.min_tcb_evaluation_data_number}",
            )
        td = claims["report"]["TD10"]
        check_report_data(bytes.fromhex(td["report_data"]), expected_report_data)
        attributes = int.from_bytes(bytes.fromhex(td["td_attributes"]), "little")
        if _bits(attributes, _TD_ATTRIBUTE_BITS)["debug"] and not reference.allow_debug:
            raise AttestationError(Reason.POLICY_VIOLATION, "TD is debuggable (TUD.DEBUG)")
        return self._claims(quote, evidence, layout, claims, now)

    @staticmethod
    def _dcap_verify(quote: bytes, collateral: dict[str, str], now: datetime) -> dict[str, Any]:
        now_secs = int(now.timestamp())
        try:
            collateral_obj = dcap_qvl.QuoteCollateralV3.from_json(json.dumps(collateral))
            # claims_only: dcap-qvl verifies everything but leaves the TCB-status and
            # platform-flag decisions to us, so they get reason codes and reach the claims.
            result = dcap_qvl.QuoteVerifier().verify_with_policy(
                quote, collateral_obj, now_secs, dcap_qvl.QuotePolicy.claims_only(now_secs)
            )
        except ValueError as exc:
            message = str(exc)
            raise AttestationError(
                _classify(message), f"dcap-qvl: {message.splitlines()[0]}"
            ) from exc
        return json.loads(result.to_json())

    def _claims(
        self,
        quote: bytes,
        evidence: bytes,
        layout: QuoteLayout,
        claims: dict[str, Any],
        now: datetime,
    ) -> VerifiedEvidence:
        td = claims["report"]["TD10"]
        platform = claims["platform"]
        pck = platform["pck"]
        qe = claims["qe"]
        attributes = int.from_bytes(bytes.fromhex(td["td_attributes"]), "little")
        leaf = layout.pck_chain[0]
        return VerifiedEvidence(
            verifier=self.name,
            tee_class=self.tee_class,
            hardware=True,
            measurement=td["mr_td"],
            report_data=td["report_data"],
            registers={
                "rtmr0": td["rt_mr0"],
                "rtmr1": td["rt_mr1"],
                "rtmr2": td["rt_mr2"],
                "rtmr3": td["rt_mr3"],
                "mr_config_id": td["mr_config_id"],
                "mr_owner": td["mr_owner"],
                "mr_owner_config": td["mr_owner_config"],
                "mr_seam": td["mr_seam"],
                "mr_signer_seam": td["mr_signer_seam"],
            },
            tcb={
                "status": claims["tcb"]["status"],
                "advisory_ids": list(claims["tcb"]["advisory_ids"]),
                "evaluation_data_number": claims["tcb"]["eval_data_number"],
                "tee_tcb_svn": td["tee_tcb_svn"],
                "platform_status": platform["tcb_level"]["tcbStatus"],
                "platform_tcb_date": platform["tcb_level"]["tcbDate"],
                "qe_status": qe["tcb_level"]["tcbStatus"],
                "qe_tcb_date": qe["tcb_level"]["tcbDate"],
                "qe_isvsvn": qe["report"]["isv_svn"],
            },
            policy={
                "td_attributes": td["td_attributes"],
                **_bits(attributes, _TD_ATTRIBUTE_BITS),
                "xfam": td["xfam"],
                "seam_attributes": td["seam_attributes"],
            },
            platform={
                "fmspc": _hex(pck["fmspc"]),
                "pce_id": _hex(pck["pce_id"]),
                "pce_svn": pck["pce_svn"],
                "cpu_svn": _hex(pck["cpu_svn"]),
                "ppid": _hex(pck["ppid"]),
                "sgx_type": pck["sgx_type"],
                "platform_instance_id": _hex(pck["platform_instance_id"]),
                "dynamic_platform": _flag(pck["dynamic_platform"]),
                "cached_keys": _flag(pck["cached_keys"]),
                "smt_enabled": _flag(pck["smt_enabled"]),
            },
            signer={
                "pck_sha256": hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(),
                "pck_issuer": leaf.issuer.rfc4514_string(),
                "qe_mrsigner": qe["report"]["mr_signer"],
                "qe_mrenclave": qe["report"]["mr_enclave"],
                "qe_isvprodid": qe["report"]["isv_prod_id"],
                "qe_vendor_id": layout.qe_vendor_id.hex(),
                "root_key_id": _hex(platform["root_key_id"]),
                "quote_version": layout.version,
            },
            raw_digest=sha256_hex(quote[: layout.size]),
            evidence_digest=sha256_hex(evidence),
            verified_at=now,
        )


VERIFIER = TdxVerifier()
