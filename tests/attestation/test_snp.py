"""SEV-SNP verifier on AMD's real reports and certificates (../shared/attestation/snp).

Every real vector verifies at its pinned time; then one corrupted copy per failure kind
is refused with its reason. The vectors are read in place, never copied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.attestation import AttestationError, Reason, ReferenceValues, snp
from gateway.attestation.snp import encode_evidence, load_certificate, verify_chain

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "attestation" / "snp"
pytestmark = pytest.mark.skipif(not VECTORS.is_dir(), reason=f"no test vectors at {VECTORS}")

STRICT = ReferenceValues()


def _pem_ders(name: str) -> list[bytes]:
    """DER of each certificate in a PEM file or bundle, in file order."""
    return [
        c.public_bytes(Encoding.DER)
        for c in x509.load_pem_x509_certificates((VECTORS / name).read_bytes())
    ]


@dataclass(frozen=True)
class Vector:
    """A report, the certificates that verify it, and the time to verify it at."""

    report: bytes
    vek: bytes
    ca: bytes
    ark: bytes
    now: datetime
    reference: ReferenceValues = STRICT

    def evidence(self, report: bytes | None = None) -> bytes:
        """Evidence bytes, optionally with a substitute report."""
        return encode_evidence(
            self.report if report is None else report,
            vek_cert=self.vek,
            ca_cert=self.ca,
            ark_cert=self.ark,
        )

    def verify(self, evidence: bytes | None = None, **overrides: object):
        """Run the verifier; keyword overrides replace now / reference / report data."""
        args: dict[str, object] = {
            "expected_report_data": None,
            "now": self.now,
            "reference": self.reference,
        }
        args.update(overrides)
        return snp.VERIFIER.verify(self.evidence() if evidence is None else evidence, **args)


def _vectors() -> dict[str, Vector]:
    if not VECTORS.is_dir():
        return {}
    asvk_bundle = _pem_ders("trustee/milan_ask_ark_asvk.pem")  # ASK, ARK, ASVK
    go_bundle = _pem_ders("go-sev-guest/ask_ark_milan.pem")  # ASK, ARK
    return {
        "virtee": Vector(
            report=bytes.fromhex((VECTORS / "report_milan.hex").read_text()),
            vek=(VECTORS / "vcek_milan.der").read_bytes(),
            ca=_pem_ders("ask_milan.pem")[0],
            ark=_pem_ders("ark_milan.pem")[0],
            now=datetime(2024, 1, 1, tzinfo=UTC),
        ),
        # This guest's policy allows debugging (0xb0000), so only a reference that permits
        # debug accepts it; the default refusal is tested below.
        "go-sev-guest": Vector(
            report=(VECTORS / "go-sev-guest/attestation.bin").read_bytes(),
            vek=(VECTORS / "go-sev-guest/vcek.testcer").read_bytes(),
            ca=go_bundle[0],
            ark=go_bundle[1],
            now=datetime(2022, 9, 24, 1, 0, tzinfo=UTC),
            reference=ReferenceValues(allow_debug=True),
        ),
        "trustee-vcek": Vector(
            report=(VECTORS / "trustee/test-report.bin").read_bytes(),
            vek=(VECTORS / "trustee/test-vcek.der").read_bytes(),
            ca=asvk_bundle[0],
            ark=asvk_bundle[1],
            now=datetime(2024, 1, 1, tzinfo=UTC),
        ),
        "trustee-vlek": Vector(
            report=(VECTORS / "trustee/test-vlek-report.bin").read_bytes(),
            vek=(VECTORS / "trustee/test-vlek.der").read_bytes(),
            ca=asvk_bundle[2],
            ark=asvk_bundle[1],
            now=datetime(2025, 6, 1, tzinfo=UTC),
        ),
    }


VECTOR_SET = _vectors()
# Values decoded from the reports independently (README of the vector folder).
EXPECTED = {
    "virtee": {
        "measurement": "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d"
        "3e1a0dc39b2c60bd95b9c480cd81841f",
        "reported": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115},
        "key": "vcek",
        "firmware": "1.52.4",
    },
    "go-sev-guest": {
        "measurement": "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b"
        "6bdf8a9ece31a5a608eb0cf2e4872b01",
        "reported": {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68},
        "key": "vcek",
        "firmware": "1.49.3",
    },
    "trustee-vcek": {
        "measurement": "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c"
        "23500644e0e692e6be917f9050d3d38c",
        "reported": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115},
        "key": "vcek",
        "firmware": "1.52.4",
    },
    "trustee-vlek": {
        "measurement": "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4"
        "e8c9af857f5ceeb5a493df2a570d7bf0",
        "reported": {"bootloader": 4, "tee": 0, "snp": 24, "microcode": 217},
        "key": "vlek",
        "firmware": "1.55.29",
    },
}


@pytest.fixture
def milan() -> Vector:
    """The virtee Milan vector: a VCEK-signed report with no debug bit."""
    return VECTOR_SET["virtee"]


def _flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def _refused(vector: Vector, evidence: bytes | None = None, **overrides: object) -> Reason:
    with pytest.raises(AttestationError) as info:
        vector.verify(evidence, **overrides)
    return info.value.reason


# --- the real vectors verify -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_vector_verifies_at_pinned_time(name: str) -> None:
    vector = VECTOR_SET[name]
    claims = vector.verify().to_claims()
    expected = EXPECTED[name]
    assert claims["tee_class"] == "sev-snp"
    assert claims["hardware"] is True
    assert claims["measurement"] == expected["measurement"]
    assert claims["tcb"]["reported"] == expected["reported"]
    assert claims["tcb"]["firmware_current"] == expected["firmware"]
    assert claims["signer"]["key"] == expected["key"]
    assert claims["platform"]["product"] == "Milan"
    assert claims["raw_digest"] == "sha256:" + hashlib.sha256(vector.report).hexdigest()


def test_vcek_hwid_is_the_reports_chip_id() -> None:
    claims = VECTOR_SET["go-sev-guest"].verify().to_claims()
    assert claims["platform"]["chip_id"].startswith("3ac3fe21e13fb099")
    assert claims["report_data"] == "0102030405" + "00" * 59


def test_vlek_claims_name_the_cloud_provider() -> None:
    claims = VECTOR_SET["trustee-vlek"].verify().to_claims()
    assert claims["platform"]["csp_id"] == "CN=cc-us-east-2.amazonaws.com"
    assert claims["signer"]["ca"] == "SEV-VLEK-Milan"
    assert claims["policy"]["vmpl"] == 1


def test_expected_report_data_binding_accepts_the_match() -> None:
    # 5 bytes expected, zero-padded to the 64-byte field.
    VECTOR_SET["go-sev-guest"].verify(expected_report_data=bytes.fromhex("0102030405"))


def test_turin_chain_verifies() -> None:
    turin = VECTORS / "turin-chain-only"
    product = verify_chain(
        load_certificate((turin / "vcek_turin.der").read_bytes()),
        load_certificate(_pem_ders("turin-chain-only/ask_turin.pem")[0]),
        load_certificate(_pem_ders("turin-chain-only/ark_turin.pem")[0]),
        signing_key="vcek",
        now=datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert product == "Turin"


# --- one corrupted copy per failure kind -------------------------------------------------


def test_flipped_bit_in_signed_body_is_bad_signature(milan: Vector) -> None:
    report = _flip(milan.report, 0x04)  # GUEST_SVN
    assert _refused(milan, milan.evidence(report)) == Reason.BAD_SIGNATURE


def test_flipped_bit_in_signature_is_bad_signature(milan: Vector) -> None:
    report = _flip(milan.report, 0x2A0)  # low byte of R
    assert _refused(milan, milan.evidence(report)) == Reason.BAD_SIGNATURE


def test_flipped_bit_above_384_bits_of_s_is_bad_signature(milan: Vector) -> None:
    report = _flip(milan.report, 0x2E8 + 50)
    assert _refused(milan, milan.evidence(report)) == Reason.BAD_SIGNATURE


def test_flipped_bit_in_measurement_is_bad_signature(milan: Vector) -> None:
    report = _flip(milan.report, 0x90 + 7, 3)
    assert _refused(milan, milan.evidence(report)) == Reason.BAD_SIGNATURE


def test_flipped_bit_in_report_data_is_bad_signature(milan: Vector) -> None:
    report = _flip(milan.report, 0x50 + 31, 7)
    assert _refused(milan, milan.evidence(report)) == Reason.BAD_SIGNATURE


def test_flipped_bit_in_reserved_tail_is_malformed(milan: Vector) -> None:
    report = _flip(milan.report, 0x400)
    assert _refused(milan, milan.evidence(report)) == Reason.MALFORMED


def test_truncated_report_is_malformed(milan: Vector) -> None:
    assert _refused(milan, milan.evidence(milan.report[:-1])) == Reason.MALFORMED


def test_wrong_signature_algorithm_field_is_unsupported(milan: Vector) -> None:
    report = bytearray(milan.report)
    report[0x34] = 2  # SIGNATURE_ALGO: only 1 (ECDSA P-384 with SHA-384) exists
    assert _refused(milan, milan.evidence(bytes(report))) == Reason.UNSUPPORTED


def test_unknown_report_version_is_unsupported(milan: Vector) -> None:
    report = bytearray(milan.report)
    report[0x00] = 9
    assert _refused(milan, milan.evidence(bytes(report))) == Reason.UNSUPPORTED


def test_report_claiming_vlek_with_a_vcek_is_untrusted(milan: Vector) -> None:
    report = bytearray(milan.report)
    report[0x48] |= 1 << 2  # SIGNING_KEY = 1 (VLEK)
    assert _refused(milan, milan.evidence(bytes(report))) == Reason.UNTRUSTED_CHAIN


def test_another_chips_vcek_is_bad_signature(milan: Vector) -> None:
    # A genuine AMD VCEK, but not the key that signed this report.
    other = replace(milan, vek=VECTOR_SET["trustee-vcek"].vek)
    assert _refused(other) == Reason.BAD_SIGNATURE


def test_turin_ark_for_milan_vcek_is_untrusted(milan: Vector) -> None:
    wrong = replace(milan, ark=_pem_ders("turin-chain-only/ark_turin.pem")[0])
    assert _refused(wrong) == Reason.UNTRUSTED_CHAIN


def test_turin_chain_for_milan_vcek_is_untrusted(milan: Vector) -> None:
    wrong = replace(
        milan,
        ca=_pem_ders("turin-chain-only/ask_turin.pem")[0],
        ark=_pem_ders("turin-chain-only/ark_turin.pem")[0],
    )
    assert _refused(wrong) == Reason.UNTRUSTED_CHAIN


def test_vlek_under_the_ask_instead_of_the_asvk_is_untrusted() -> None:
    vlek = VECTOR_SET["trustee-vlek"]
    assert _refused(replace(vlek, ca=VECTOR_SET["trustee-vcek"].ca)) == Reason.UNTRUSTED_CHAIN


def test_self_made_ca_is_untrusted(milan: Vector, forged: Forgery) -> None:
    """A complete, self-consistent chain and report signature; only the ARK pin stops it."""
    evidence = forged.evidence(milan.report)
    assert _refused(milan, evidence) == Reason.UNTRUSTED_CHAIN


def test_expired_vlek_is_refused() -> None:
    vlek = VECTOR_SET["trustee-vlek"]
    assert _refused(vlek, now=datetime(2026, 1, 1, tzinfo=UTC)) == Reason.EXPIRED


def test_time_before_vcek_validity_is_refused(milan: Vector) -> None:
    assert _refused(milan, now=datetime(2023, 4, 3, tzinfo=UTC)) == Reason.EXPIRED


def test_report_data_mismatch_is_refused(milan: Vector) -> None:
    expected = hashlib.sha256(b"another job").digest()
    assert _refused(milan, expected_report_data=expected) == Reason.REPORT_DATA_MISMATCH


def test_debug_guest_is_refused_by_default() -> None:
    debug = replace(VECTOR_SET["go-sev-guest"], reference=STRICT)
    assert _refused(debug) == Reason.POLICY_VIOLATION


def test_reported_tcb_below_minimum_is_out_of_date(milan: Vector) -> None:
    reference = ReferenceValues(min_tcb={"microcode": 116})
    assert _refused(milan, reference=reference) == Reason.TCB_OUT_OF_DATE
    milan.verify(reference=ReferenceValues(min_tcb={"microcode": 115, "snp": 8}))


def test_naive_time_is_a_programming_error(milan: Vector) -> None:
    with pytest.raises(ValueError, match="timezone"):
        milan.verify(now=datetime(2024, 1, 1))  # naive on purpose


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bit=st.integers(0, snp.REPORT_SIZE * 8 - 1))
def test_every_bit_flip_is_refused(milan: Vector, bit: int) -> None:
    with pytest.raises(AttestationError):
        milan.verify(milan.evidence(_flip(milan.report, bit // 8, bit % 8)))


def _unsigned_offsets(der: bytes) -> tuple[int, int]:
    """Offsets of the outer signatureAlgorithm and of the signature's unused-bits octet."""
    tbs = load_certificate(der).tbs_certificate_bytes
    outer_alg = der.index(tbs) + len(tbs)
    alg_len = der[outer_alg + 1]  # short form: AMD's PSS AlgorithmIdentifier is < 128 bytes
    bit_string = outer_alg + 2 + alg_len
    return outer_alg, bit_string + 4  # BIT STRING header: tag, 0x82, two length octets


def test_flipped_bit_in_unsigned_certificate_fields_is_malformed() -> None:
    vlek = VECTOR_SET["trustee-vlek"]
    outer_alg, unused_bits = _unsigned_offsets(vlek.vek)
    # Inside the PSS parameters of the outer (unsigned) AlgorithmIdentifier.
    assert _refused(replace(vlek, vek=_flip(vlek.vek, outer_alg + 20, 1))) == Reason.MALFORMED
    assert _refused(replace(vlek, vek=_flip(vlek.vek, unused_bits))) == Reason.MALFORMED


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_every_bit_flip_in_the_certificates_is_refused(data: st.DataObject) -> None:
    vlek = VECTOR_SET["trustee-vlek"]
    field = data.draw(st.sampled_from(["vek", "ca", "ark"]))
    der: bytes = getattr(vlek, field)
    bit = data.draw(st.integers(0, len(der) * 8 - 1))
    with pytest.raises(AttestationError):
        replace(vlek, **{field: _flip(der, bit // 8, bit % 8)}).verify()


# --- guest policy bits, on reports signed under a test root ------------------------------


class Forgery:
    """A self-made ARK → ASK → VCEK chain shaped like AMD's, and a key to sign reports.

    Untrusted as it is; a test that pins its ARK can exercise checks that need reports
    AMD never signed (policy bits), which real vectors cannot provide.
    """

    def __init__(self, template_vcek: x509.Certificate) -> None:
        self.ark_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ask_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.vcek_key = ec.generate_private_key(ec.SECP384R1())
        self.ark = self._cert("ARK-Milan", "ARK-Milan", self.ark_key, self.ark_key)
        self.ask = self._cert("SEV-Milan", "ARK-Milan", self.ask_key, self.ark_key)
        self.vcek = self._cert(
            "SEV-VCEK", "SEV-Milan", self.vcek_key, self.ask_key, template=template_vcek
        )

    @staticmethod
    def _cert(
        subject: str,
        issuer: str,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        issuer_key: rsa.RSAPrivateKey,
        template: x509.Certificate | None = None,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        )
        # The VCEK carries the template's AMD extensions (TCB SPLs, hwID, productName).
        for ext in template.extensions if template else ():
            builder = builder.add_extension(ext.value, critical=ext.critical)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
        return builder.sign(issuer_key, hashes.SHA384(), rsa_padding=pss)

    def sign(self, report: bytes) -> bytes:
        """``report`` with its signature replaced by one from the forged VCEK."""
        der = self.vcek_key.sign(report[: snp.SIGNED_SIZE], ec.ECDSA(hashes.SHA384()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(72, "little") + s.to_bytes(72, "little")
        return report[: snp.SIGNED_SIZE] + signature + bytes(snp.REPORT_SIZE - 0x330)

    def evidence(self, report: bytes) -> bytes:
        """Evidence for ``report`` re-signed under the forged chain."""
        return encode_evidence(
            self.sign(report),
            vek_cert=self.vcek.public_bytes(Encoding.DER),
            ca_cert=self.ask.public_bytes(Encoding.DER),
            ark_cert=self.ark.public_bytes(Encoding.DER),
        )


@pytest.fixture(scope="module")
def forged() -> Forgery:
    """One forged chain for the module (RSA key generation is the slow part)."""
    return Forgery(load_certificate(VECTOR_SET["virtee"].vek))


@pytest.fixture
def pinned_forgery(forged: Forgery, monkeypatch: pytest.MonkeyPatch) -> Forgery:
    """The forged chain with its ARK pinned for the duration of one test."""
    fingerprint = hashlib.sha256(forged.ark.public_bytes(Encoding.DER)).hexdigest()
    monkeypatch.setitem(snp.PINNED_ARK_SHA256, fingerprint, "Milan")
    return forged


def _with_policy(report: bytes, set_bits: int) -> bytes:
    policy = int.from_bytes(report[0x08:0x10], "little") | set_bits
    return report[:0x08] + policy.to_bytes(8, "little") + report[0x10:]


def test_pinned_test_root_accepts_its_own_report(milan: Vector, pinned_forgery: Forgery) -> None:
    claims = milan.verify(pinned_forgery.evidence(milan.report)).to_claims()
    assert claims["measurement"] == EXPECTED["virtee"]["measurement"]


@pytest.mark.parametrize(
    ("bit", "allowing"),
    [(19, ReferenceValues(allow_debug=True)), (18, ReferenceValues(allow_migration_agent=True))],
    ids=["debug", "migration-agent"],
)
def test_policy_bit_refused_unless_reference_allows(
    milan: Vector, pinned_forgery: Forgery, bit: int, allowing: ReferenceValues
) -> None:
    evidence = pinned_forgery.evidence(_with_policy(milan.report, 1 << bit))
    assert _refused(milan, evidence) == Reason.POLICY_VIOLATION
    milan.verify(evidence, reference=allowing)


def test_smt_refused_when_reference_forbids_it(milan: Vector, pinned_forgery: Forgery) -> None:
    evidence = pinned_forgery.evidence(milan.report)  # PLATFORM_INFO.SMT_EN = 1
    assert _refused(milan, evidence, reference=ReferenceValues(allow_smt=False)) == (
        Reason.POLICY_VIOLATION
    )


def test_vcek_for_another_tcb_is_untrusted(milan: Vector, pinned_forgery: Forgery) -> None:
    report = bytearray(milan.report)
    report[0x180 + 7] += 1  # REPORTED_TCB microcode, now above the VCEK's ucodeSPL
    evidence = pinned_forgery.evidence(bytes(report))
    assert _refused(milan, evidence) == Reason.UNTRUSTED_CHAIN


def test_vcek_for_another_chip_is_untrusted(milan: Vector, pinned_forgery: Forgery) -> None:
    evidence = pinned_forgery.evidence(_flip(milan.report, 0x1A0))  # CHIP_ID
    assert _refused(milan, evidence) == Reason.UNTRUSTED_CHAIN
