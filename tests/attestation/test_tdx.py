"""TDX verifier on Intel's real quotes and collateral (../shared/attestation/tdx).

The dcap-qvl quote verifies (UpToDate) at its pinned time; the two quotes whose
platform is below every TCB level in their collateral pass every signature and chain
check and are refused as ``tcb_out_of_date``. Then one corrupted copy per failure kind.
"""

from __future__ import annotations

import hashlib
import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.attestation import AttestationError, Reason, ReferenceValues, tdx
from gateway.attestation.tdx import collateral_from_pcs, encode_evidence, parse_quote

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "attestation" / "tdx"
pytestmark = pytest.mark.skipif(not VECTORS.is_dir(), reason=f"no test vectors at {VECTORS}")

STRICT = ReferenceValues()
# Midpoint of the dcap-qvl collateral's window, as dcap-qvl's own tests pin it.
DCAP_NOW = datetime(2025, 7, 4, 10, 24, 15, tzinfo=UTC)
# go-tdx-guest's currentTime for its quote and PCS responses.
GO_NOW = datetime(2023, 7, 1, 1, 0, tzinfo=UTC)
# tdx_prod_quote_SPR_E4.dat: bytes in use; 39 bytes of ASCII text follow them.
GO_QUOTE_USED = 4935
# Offsets in a v4 quote: TD report body at 48, signature data length at 632.
BODY = 48
SIG_DATA = 636


def _quote() -> bytes:
    return (VECTORS / "dcap-qvl/tdx_quote").read_bytes()


def _collateral() -> dict[str, str]:
    return json.loads((VECTORS / "dcap-qvl/tdx_quote_collateral.json").read_text())


def _verify(evidence: bytes, **overrides: Any) -> Any:
    args: dict[str, Any] = {"expected_report_data": None, "now": DCAP_NOW, "reference": STRICT}
    args.update(overrides)
    return tdx.VERIFIER.verify(evidence, **args)


def _refused(evidence: bytes, **overrides: Any) -> AttestationError:
    with pytest.raises(AttestationError) as info:
        _verify(evidence, **overrides)
    return info.value


def _flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def _quote_evidence(quote: bytes) -> bytes:
    return encode_evidence(quote, _collateral())


@pytest.fixture
def quote() -> bytes:
    """dcap-qvl's sample TDX quote, the one its collateral belongs to."""
    return _quote()


def _go_tdx_guest_evidence(quote: bytes) -> bytes:
    """go-tdx-guest's quote with collateral assembled from its PCS responses."""
    signing_chain = (VECTORS / "tcb_signing_chain.pem").read_text()
    go_quote = (VECTORS / "tdx_prod_quote_SPR_E4.dat").read_bytes()[:GO_QUOTE_USED]
    pck_ca_and_root = "".join(
        c.public_bytes(Encoding.PEM).decode() for c in parse_quote(go_quote).pck_chain[1:]
    )
    collateral = collateral_from_pcs(
        tcb_info_response=(VECTORS / "sample_tcbInfo_response").read_text(),
        tcb_info_issuer_chain=signing_chain,
        qe_identity_response=(VECTORS / "sample_qeIdentity_response").read_text(),
        qe_identity_issuer_chain=signing_chain,
        pck_crl=(VECTORS / "pckcrl").read_bytes(),
        pck_crl_issuer_chain=pck_ca_and_root,
        root_ca_crl=(VECTORS / "rootcrl.der").read_bytes(),
    )
    return encode_evidence(quote, collateral)


# --- the real vectors ---------------------------------------------------------------------


def test_dcap_qvl_quote_verifies_up_to_date(quote: bytes) -> None:
    claims = _verify(_quote_evidence(quote)).to_claims()
    assert claims["tee_class"] == "tdx"
    assert claims["hardware"] is True
    assert claims["measurement"].startswith("91eb2b44d141d4ec")
    assert claims["tcb"]["status"] == "UpToDate"
    assert claims["tcb"]["advisory_ids"] == []
    assert claims["tcb"]["evaluation_data_number"] == 17
    assert claims["tcb"]["tee_tcb_svn"] == "06010300000000000000000000000000"
    assert claims["platform"]["fmspc"] == "b0c06f000000"
    assert claims["signer"]["root_key_id"] == tdx.INTEL_ROOT_KEY_ID
    assert claims["policy"]["debug"] is False
    assert claims["policy"]["sept_ve_disable"] is True
    assert set(claims["registers"]) >= {"rtmr0", "rtmr1", "rtmr2", "rtmr3"}
    json.dumps(claims)


def test_expected_report_data_binding_accepts_the_match(quote: bytes) -> None:
    report_data = bytes.fromhex(_verify(_quote_evidence(quote)).report_data)
    _verify(_quote_evidence(quote), expected_report_data=report_data)


def test_go_tdx_guest_quote_passes_crypto_but_matches_no_tcb_level() -> None:
    raw = (VECTORS / "tdx_prod_quote_SPR_E4.dat").read_bytes()[:GO_QUOTE_USED]
    assert parse_quote(raw).size == GO_QUOTE_USED
    error = _refused(_go_tdx_guest_evidence(raw), now=GO_NOW)
    # dcap-qvl matches TCB levels only after every signature and chain check passed:
    assert error.reason == Reason.TCB_OUT_OF_DATE
    assert "No matching TCB level" in error.message
    # ... and the same quote with one bit flipped fails earlier, on its signature.
    tampered = _go_tdx_guest_evidence(_flip(raw, BODY + 136))
    assert _refused(tampered, now=GO_NOW).reason == Reason.BAD_SIGNATURE


def test_go_tdx_guest_quote_file_has_unsigned_trailing_text() -> None:
    raw = (VECTORS / "tdx_prod_quote_SPR_E4.dat").read_bytes()
    assert raw.endswith(b"\nextra bytes(only for testing purpose)\n")
    error = _refused(_go_tdx_guest_evidence(raw), now=GO_NOW)
    assert error.reason == Reason.MALFORMED


def test_dcap_qvl_hex_quote_matches_no_tcb_level() -> None:
    raw = bytes.fromhex((VECTORS / "dcap-qvl/tdx-quote.hex").read_text().removeprefix("0x"))
    assert _refused(_quote_evidence(raw)).reason == Reason.TCB_OUT_OF_DATE


# --- one corrupted copy per failure kind -------------------------------------------------


def test_flipped_bit_in_signed_body_is_bad_signature(quote: bytes) -> None:
    tampered = _flip(quote, BODY + 2)  # TEE_TCB_SVN
    assert _refused(_quote_evidence(tampered)).reason == Reason.BAD_SIGNATURE


def test_flipped_bit_in_signature_is_bad_signature(quote: bytes) -> None:
    tampered = _flip(quote, SIG_DATA + 5)
    assert _refused(_quote_evidence(tampered)).reason == Reason.BAD_SIGNATURE


def test_flipped_bit_in_mrtd_is_bad_signature(quote: bytes) -> None:
    tampered = _flip(quote, BODY + 136, 4)
    assert _refused(_quote_evidence(tampered)).reason == Reason.BAD_SIGNATURE


def test_flipped_bit_in_rtmr_is_bad_signature(quote: bytes) -> None:
    tampered = _flip(quote, BODY + 328 + 10)  # RTMR0
    assert _refused(_quote_evidence(tampered)).reason == Reason.BAD_SIGNATURE


def test_flipped_bit_in_report_data_is_bad_signature(quote: bytes) -> None:
    tampered = _flip(quote, BODY + 520 + 63, 7)
    assert _refused(_quote_evidence(tampered)).reason == Reason.BAD_SIGNATURE


def test_flipped_bit_in_attestation_key_is_bad_signature(quote: bytes) -> None:
    # The key is bound by the QE report's hash, which no longer matches.
    tampered = _flip(quote, SIG_DATA + 64 + 3)
    assert _refused(_quote_evidence(tampered)).reason == Reason.BAD_SIGNATURE


def test_flipped_bit_in_qe_report_is_bad_signature(quote: bytes) -> None:
    tampered = _flip(quote, SIG_DATA + 128 + 6 + 100)
    assert _refused(_quote_evidence(tampered)).reason == Reason.BAD_SIGNATURE


def test_changed_tcb_info_is_bad_signature(quote: bytes) -> None:
    collateral = _collateral()
    collateral["tcb_info"] = collateral["tcb_info"].replace(
        '"tcbEvaluationDataNumber":17', '"tcbEvaluationDataNumber":18', 1
    )
    assert _refused(encode_evidence(quote, collateral)).reason == Reason.BAD_SIGNATURE


def test_self_made_root_is_untrusted(quote: bytes) -> None:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Intel SGX Root CA", "Intel SGX Root CA", root_key, root_key, ca=True)
    pck_ca_key = ec.generate_private_key(ec.SECP256R1())
    pck_ca = _cert("Intel SGX PCK Platform CA", "Intel SGX Root CA", pck_ca_key, root_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert("Intel SGX PCK Certificate", "Intel SGX PCK Platform CA", leaf_key, pck_ca_key)
    forged = _replace_pck_chain(quote, [leaf, pck_ca, root], leaf_key)
    error = _refused(_quote_evidence(forged))
    assert error.reason == Reason.UNTRUSTED_CHAIN
    assert "pinned" in error.message


def test_forged_pck_under_intels_real_ca_is_untrusted(quote: bytes) -> None:
    real = parse_quote(quote).pck_chain
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert(
        "Intel SGX PCK Certificate",
        "Intel SGX PCK Platform CA",
        leaf_key,
        leaf_key,
        template=real[0],
    )
    forged = _replace_pck_chain(quote, [leaf, *real[1:]], leaf_key)
    assert _refused(_quote_evidence(forged)).reason == Reason.UNTRUSTED_CHAIN


def test_time_after_collateral_expiry_is_refused(quote: bytes) -> None:
    error = _refused(_quote_evidence(quote), now=datetime(2025, 7, 20, tzinfo=UTC))
    assert error.reason == Reason.EXPIRED


def test_time_before_collateral_issue_is_refused(quote: bytes) -> None:
    error = _refused(_quote_evidence(quote), now=datetime(2025, 6, 1, tzinfo=UTC))
    assert error.reason == Reason.EXPIRED


def test_wrong_attestation_key_type_is_unsupported(quote: bytes) -> None:
    tampered = quote[:2] + struct.pack("<H", 3) + quote[4:]  # 3 = ECDSA P-384
    assert _refused(_quote_evidence(tampered)).reason == Reason.UNSUPPORTED


def test_wrong_tee_type_is_unsupported(quote: bytes) -> None:
    tampered = quote[:4] + struct.pack("<I", 0) + quote[8:]  # 0 = SGX
    assert _refused(_quote_evidence(tampered)).reason == Reason.UNSUPPORTED


def test_wrong_quote_version_is_unsupported(quote: bytes) -> None:
    tampered = struct.pack("<H", 5) + quote[2:]
    assert _refused(_quote_evidence(tampered)).reason == Reason.UNSUPPORTED


def test_report_data_mismatch_is_refused(quote: bytes) -> None:
    expected = hashlib.sha256(b"another job").digest()
    error = _refused(_quote_evidence(quote), expected_report_data=expected)
    assert error.reason == Reason.REPORT_DATA_MISMATCH


def test_status_outside_reference_is_out_of_date(quote: bytes) -> None:
    reference = ReferenceValues(allowed_tcb_statuses=frozenset({"SWHardeningNeeded"}))
    error = _refused(_quote_evidence(quote), reference=reference)
    assert error.reason == Reason.TCB_OUT_OF_DATE
    assert error.details["tcb_status"] == "UpToDate"


def test_collateral_older_than_required_tcb_recovery_is_out_of_date(quote: bytes) -> None:
    reference = ReferenceValues(min_tcb_evaluation_data_number=18)
    assert _refused(_quote_evidence(quote), reference=reference).reason == (Reason.TCB_OUT_OF_DATE)


def test_non_zero_padding_is_malformed(quote: bytes) -> None:
    assert _refused(_quote_evidence(_flip(quote, len(quote) - 1))).reason == Reason.MALFORMED


def test_non_canonical_pem_chain_is_malformed(quote: bytes) -> None:
    newline = quote.index(b"-----BEGIN CERTIFICATE-----\n") + 27
    tampered = quote[:newline] + b"\r" + quote[newline + 1 :]
    assert _refused(_quote_evidence(tampered)).reason == Reason.MALFORMED


def test_evidence_that_is_not_json_is_malformed() -> None:
    assert _refused(b"\x00not json").reason == Reason.MALFORMED


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_bit_flip_is_refused(quote: bytes, data: st.DataObject) -> None:
    bit = data.draw(st.integers(0, len(quote) * 8 - 1))
    with pytest.raises(AttestationError):
        _verify(_quote_evidence(_flip(quote, bit // 8, bit % 8)))


# --- helpers that build forged PCK chains -------------------------------------------------


def _cert(
    subject: str,
    issuer: str,
    key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    template: x509.Certificate | None = None,
) -> x509.Certificate:
    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Intel Corporation"),
                x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
                x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            ]
        )

    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(template.issuer if template else name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    # A forged PCK leaf copies the real one's Intel SGX extension (FMSPC, SVNs ...).
    for ext in template.extensions if template else ():
        if not isinstance(ext.value, x509.BasicConstraints):
            builder = builder.add_extension(ext.value, critical=ext.critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _replace_pck_chain(
    quote: bytes, chain: list[x509.Certificate], leaf_key: ec.EllipticCurvePrivateKey
) -> bytes:
    """``quote`` with another PCK chain embedded and its QE report signed by ``leaf_key``."""
    pos = SIG_DATA + 128 + 6
    qe_report = quote[pos : pos + 384]
    (auth_len,) = struct.unpack_from("<H", quote, pos + 448)
    auth = quote[pos + 450 : pos + 450 + auth_len]
    r, s = decode_dss_signature(leaf_key.sign(qe_report, ec.ECDSA(hashes.SHA256())))
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in chain)
    body = (
        qe_report
        + r.to_bytes(32, "big")
        + s.to_bytes(32, "big")
        + struct.pack("<H", auth_len)
        + auth
        + struct.pack("<HI", tdx.CERT_DATA_PCK_CHAIN, len(pem))
        + pem
    )
    sig_data = (
        quote[SIG_DATA : SIG_DATA + 128]
        + struct.pack("<HI", tdx.CERT_DATA_QE_REPORT, len(body))
        + body
    )
    return quote[: SIG_DATA - 4] + struct.pack("<I", len(sig_data)) + sig_data
