"""The software-TPM root of trust against a real swtpm: provisioning with EK certificates, AK
enrolment by credential activation, measured launch, quotes, the ``tpm`` verifier and sealing.

One swtpm serves the whole module (provisioning costs about a second). Evidence that other
tests corrupt is produced once, so tests that extend PCRs afterwards cannot change it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from agents.enclave import measured_launch as ml
from agents.enclave import swtpm
from agents.enclave.tpm import AttestationKey, Tpm, TpmError, UnsealError, attest
from gateway import attestation
from gateway.attestation import AttestationError, Reason, ReferenceValues
from gateway.attestation import tpm as tpm_verifier

pytestmark = pytest.mark.skipif(
    bool(swtpm.missing_tools()),
    reason=f"software TPM not installed ({', '.join(swtpm.missing_tools())}): "
    "apt-get install -y swtpm swtpm-tools tpm2-tools",
)

NOW = datetime.now(UTC).replace(microsecond=0)
TRANSFORM = b"def transform(rows):\n    return [r.upper() for r in rows]\n"
PROFILE = b'{"sandbox": "bwrap", "unshare": "all", "network": false}'
MANIFEST = b'{"job_id": "job-1", "transform": "upper", "datasets": ["ds-1"]}'
BINDING = hashlib.sha256(b'{"job_id":"job-1","nonce":"00"}').digest()
OTHER_BINDING = hashlib.sha256(b'{"job_id":"job-1","nonce":"01"}').digest()


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _entry(kind: str, content: bytes, description: str) -> dict[str, str]:
    return {"type": kind, "digest": hashlib.sha256(content).hexdigest(), "description": description}


@dataclass(frozen=True)
class Platform:
    """The module's TPM, its enrolled AK and the relying party's reference values."""

    root: Path
    ca: swtpm.PlatformCA
    tpm: Tpm
    ak: AttestationKey
    anchor: bytes
    provider: Ed25519PrivateKey
    manifest: bytes
    reference: ReferenceValues
    evidence: bytes


def _launch(tpm: Tpm, transform: bytes = TRANSFORM) -> ml.EventLog:
    """A job's measured launch into a freshly reset PCR 23."""
    log = ml.EventLog.fresh(tpm)
    log.measure(tpm, ml.Event.of(ml.TRANSFORM_CODE, transform, "transform upper v1"))
    log.measure(tpm, ml.Event.of(ml.SANDBOX_PROFILE, PROFILE, "bwrap --unshare-all"))
    log.measure(tpm, ml.Event.of(ml.JOB_MANIFEST, MANIFEST, "job-1"))
    return log


def _enrol(tpm: Tpm, ca: swtpm.PlatformCA, ak: AttestationKey) -> bytes:
    enrolment = tpm_verifier.begin_enrolment(
        ak_public=ak.public,
        ek_certificate=tpm.ek_certificate(),
        intermediates=[ca.issuer_certificate.read_bytes()],
        roots=[ca.root_certificate.read_bytes()],
        now=datetime.now(UTC),
    )
    answer = tpm.activate_credential(ak, enrolment.credential_blob, enrolment.encrypted_secret)
    return enrolment.finish(answer)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A provisioned, running swtpm with an enrolled AK and one job's evidence."""
    root = tmp_path_factory.mktemp("swtpm")
    ca = swtpm.PlatformCA(root / "ca")
    provisioned = swtpm.provision(root / "state", ca)
    with swtpm.Swtpm(swtpm.SwtpmConfig(provisioned.state_dir)) as server, Tpm(server.tcti) as tpm:
        ak = tpm.create_ak()
        anchor = _enrol(tpm, ca, ak)
        provider = Ed25519PrivateKey.generate()
        manifest = tpm_verifier.sign_reference_manifest(
            provider,
            provider="council-builds",
            reference_values=[
                _entry(ml.TRANSFORM_CODE, TRANSFORM, "transform upper v1"),
                _entry(ml.SANDBOX_PROFILE, PROFILE, "bwrap --unshare-all"),
            ],
            required_types=[ml.TRANSFORM_CODE, ml.SANDBOX_PROFILE],
            issued_at=NOW - timedelta(hours=1),
            expires_at=NOW + timedelta(days=30),
        )
        reference = tpm_verifier.reference_values(
            trusted_aks=[anchor],
            manifest=manifest,
            provider_keys=[_raw(provider)],
            job_events={ml.JOB_MANIFEST: hashlib.sha256(MANIFEST).hexdigest()},
        )
        evidence = attest(tpm, ak, BINDING, _launch(tpm))
        yield Platform(root, ca, tpm, ak, anchor, provider, manifest, reference, evidence)


def _verify(platform: Platform, evidence: bytes, **overrides: object) -> object:
    args: dict[str, object] = {
        "expected_report_data": BINDING,
        "now": NOW,
        "reference": platform.reference,
    }
    args.update(overrides)
    return tpm_verifier.VERIFIER.verify(evidence, **args)  # type: ignore[arg-type]


def _refusal(platform: Platform, evidence: bytes, **overrides: object) -> AttestationError:
    with pytest.raises(AttestationError) as info:
        _verify(platform, evidence, **overrides)
    return info.value


def _with(evidence: bytes, **members: object) -> bytes:
    doc = json.loads(evidence)
    doc.update(members)
    return json.dumps(doc).encode()


def _member(evidence: bytes, name: str) -> bytes:
    return base64.b64decode(json.loads(evidence)[name])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- acceptance ---------------------------------------------------------------------------


def test_the_verifier_is_registered_as_tpm() -> None:
    verifier = attestation.get("tpm")
    assert verifier is tpm_verifier.VERIFIER
    assert verifier.tee_class == "software-tpm"


def test_a_quote_of_a_measured_launch_verifies(platform: Platform) -> None:
    result = _verify(platform, platform.evidence)
    claims = result.to_claims()  # type: ignore[attr-defined]
    assert claims["tee_class"] == "software-tpm"
    assert claims["hardware"] is False
    assert claims["platform"]["encrypted_memory"] is False
    assert claims["report_data"] == BINDING.hex()
    log = ml.parse(json.loads(platform.evidence)["event_log"])
    assert claims["registers"] == {"pcr23": ml.replay(log)[23]}
    assert claims["platform"]["measurements"] == {
        ml.TRANSFORM_CODE: [hashlib.sha256(TRANSFORM).hexdigest()],
        ml.SANDBOX_PROFILE: [hashlib.sha256(PROFILE).hexdigest()],
        ml.JOB_MANIFEST: [hashlib.sha256(MANIFEST).hexdigest()],
    }
    assert claims["signer"]["ak_digest"] == "sha256:" + hashlib.sha256(platform.anchor).hexdigest()
    assert claims["policy"]["reference_manifest"]["provider"] == "council-builds"
    # The quoted value is what the TPM itself holds after the three extends.
    assert platform.tpm.pcr_read([23]) != {23: bytes(32)}


def test_evidence_round_trips_through_the_quote_parser(platform: Platform) -> None:
    quote = tpm_verifier.parse_quote(_member(platform.evidence, "quote"))
    assert quote.extra_data == BINDING
    assert quote.selection == ((tpm_verifier.TPM_ALG_SHA256, (23,)),)


# --- every bit flip -----------------------------------------------------------------------


def test_every_bit_flip_in_the_attest_body_is_refused(platform: Platform) -> None:
    quote = _member(platform.evidence, "quote")
    for bit in range(len(quote) * 8):
        tampered = _with(platform.evidence, quote=_b64(_flip(quote, bit)))
        assert _refusal(platform, tampered).reason == Reason.BAD_SIGNATURE, bit


def test_every_bit_flip_in_the_signature_is_refused(platform: Platform) -> None:
    signature = _member(platform.evidence, "signature")
    r_size = struct.unpack_from(">H", signature, 4)[0]
    size_fields = {4, 5, 6 + r_size, 7 + r_size}
    for bit in range(len(signature) * 8):
        byte = bit // 8
        tampered = _with(platform.evidence, signature=_b64(_flip(signature, bit)))
        reason = _refusal(platform, tampered).reason
        if byte < 4:
            assert reason == Reason.UNSUPPORTED, bit  # scheme or hash algorithm
        elif byte in size_fields:
            assert reason == Reason.MALFORMED, bit
        else:
            assert reason == Reason.BAD_SIGNATURE, bit


def test_every_bit_flip_in_a_reported_pcr_value_is_refused(platform: Platform) -> None:
    value = bytes.fromhex(json.loads(platform.evidence)["pcr_values"]["23"])
    for bit in range(len(value) * 8):
        tampered = _with(platform.evidence, pcr_values={"23": _flip(value, bit).hex()})
        error = _refusal(platform, tampered)
        assert (error.reason, error.details["check"]) == (Reason.BAD_SIGNATURE, "pcr_digest")


def test_every_bit_flip_in_an_event_digest_fails_replay(platform: Platform) -> None:
    events = json.loads(platform.evidence)["event_log"]
    for index, event in enumerate(events):
        digest = bytes.fromhex(event["digest"])
        for bit in range(len(digest) * 8):
            changed = [dict(e) for e in events]
            changed[index]["digest"] = _flip(digest, bit).hex()
            error = _refusal(platform, _with(platform.evidence, event_log=changed))
            assert (error.reason, error.details["check"]) == (Reason.BAD_SIGNATURE, "event_log")


def test_a_dropped_reordered_or_moved_event_is_refused(platform: Platform) -> None:
    events = json.loads(platform.evidence)["event_log"]
    dropped = events[1:]
    reordered = [events[1], events[0], events[2]]
    assert _refusal(platform, _with(platform.evidence, event_log=dropped)).reason == (
        Reason.BAD_SIGNATURE
    )
    assert _refusal(platform, _with(platform.evidence, event_log=reordered)).reason == (
        Reason.BAD_SIGNATURE
    )
    moved = [dict(events[0], pcr=16), *events[1:]]
    assert _refusal(platform, _with(platform.evidence, event_log=moved)).reason == (
        Reason.MALFORMED
    )


def test_pcr_values_must_be_exactly_the_quoted_selection(platform: Platform) -> None:
    values = json.loads(platform.evidence)["pcr_values"]
    extra = _with(platform.evidence, pcr_values={**values, "16": "00" * 32})
    assert _refusal(platform, extra).reason == Reason.MALFORMED
    assert _refusal(platform, _with(platform.evidence, pcr_values={})).reason == Reason.MALFORMED


# --- measurements against signed reference values -----------------------------------------


def test_unknown_transform_code_is_refused(platform: Platform) -> None:
    evidence = attest(platform.tpm, platform.ak, BINDING, _launch(platform.tpm, b"rm -rf /"))
    error = _refusal(platform, evidence)
    assert error.reason == Reason.POLICY_VIOLATION
    assert error.details["event_type"] == ml.TRANSFORM_CODE


def test_every_bit_flip_in_a_measured_content_is_refused(platform: Platform) -> None:
    # One real launch per flipped bit would take minutes; flipping the reference digest the
    # launch is compared with is the same comparison from the other side.
    digest = bytes.fromhex(hashlib.sha256(TRANSFORM).hexdigest())
    for bit in range(0, len(digest) * 8, 7):
        manifest = tpm_verifier.sign_reference_manifest(
            platform.provider,
            provider="council-builds",
            reference_values=[
                {
                    "type": ml.TRANSFORM_CODE,
                    "digest": _flip(digest, bit).hex(),
                    "description": "transform upper v1",
                },
                _entry(ml.SANDBOX_PROFILE, PROFILE, "bwrap --unshare-all"),
            ],
            required_types=[ml.TRANSFORM_CODE],
            issued_at=NOW - timedelta(hours=1),
            expires_at=NOW + timedelta(days=1),
        )
        reference = _reference(platform, manifest=manifest)
        assert _refusal(platform, platform.evidence, reference=reference).reason == (
            Reason.POLICY_VIOLATION
        )


def _reference(platform: Platform, **changes: object) -> ReferenceValues:
    args: dict[str, object] = {
        "trusted_aks": [platform.anchor],
        "manifest": platform.manifest,
        "provider_keys": [_raw(platform.provider)],
        "job_events": {ml.JOB_MANIFEST: hashlib.sha256(MANIFEST).hexdigest()},
    }
    args.update(changes)
    return tpm_verifier.reference_values(**args)  # type: ignore[arg-type]


def test_another_job_manifest_is_refused(platform: Platform) -> None:
    reference = _reference(platform, job_events={ml.JOB_MANIFEST: "ab" * 32})
    error = _refusal(platform, platform.evidence, reference=reference)
    assert (error.reason, error.details["event_type"]) == (
        Reason.POLICY_VIOLATION,
        ml.JOB_MANIFEST,
    )


def test_a_required_measurement_that_is_missing_is_refused(platform: Platform) -> None:
    reference = _reference(platform, job_events={"dataset-key": "cd" * 32})
    assert _refusal(platform, platform.evidence, reference=reference).reason == (
        Reason.POLICY_VIOLATION
    )


def test_every_bit_flip_in_the_signed_manifest_is_refused(platform: Platform) -> None:
    envelope = json.loads(platform.manifest)
    payload = base64.b64decode(envelope["payload"])
    keys = [_raw(platform.provider)]
    for bit in range(len(payload) * 8):
        forged = json.dumps({**envelope, "payload": _b64(_flip(payload, bit))}).encode()
        with pytest.raises(AttestationError) as info:
            tpm_verifier.verify_reference_manifest(forged, keys, NOW)
        assert info.value.reason == Reason.UNTRUSTED_CHAIN, bit
    reference = _reference(platform, manifest=forged)
    assert _refusal(platform, platform.evidence, reference=reference).reason == (
        Reason.UNTRUSTED_CHAIN
    )


def test_a_manifest_from_an_unpinned_provider_is_refused(platform: Platform) -> None:
    reference = _reference(platform, provider_keys=[_raw(Ed25519PrivateKey.generate())])
    assert _refusal(platform, platform.evidence, reference=reference).reason == (
        Reason.UNTRUSTED_CHAIN
    )


def test_an_expired_manifest_is_refused(platform: Platform) -> None:
    error = _refusal(platform, platform.evidence, now=NOW + timedelta(days=31))
    assert error.reason == Reason.EXPIRED


def test_missing_reference_values_are_a_configuration_error(platform: Platform) -> None:
    with pytest.raises(ValueError, match="provider_keys"):
        _verify(platform, platform.evidence, reference=ReferenceValues())


# --- keys, algorithms, types, binding -----------------------------------------------------


def test_a_quote_by_an_unenrolled_ak_is_refused(platform: Platform) -> None:
    stranger = platform.tpm.create_ak()
    evidence = attest(platform.tpm, stranger, BINDING, _launch(platform.tpm))
    assert _refusal(platform, evidence).reason == Reason.UNTRUSTED_CHAIN
    # Claiming the enrolled key for the stranger's quote breaks the signature instead.
    claimed = _with(evidence, ak_public=platform.ak.public_pem.decode())
    assert _refusal(platform, claimed).reason == Reason.BAD_SIGNATURE


def test_a_wrong_signature_scheme_or_hash_is_refused(platform: Platform) -> None:
    signature = _member(platform.evidence, "signature")
    for scheme, hash_alg in [
        (0x0014, 0x000B),  # RSASSA
        (0x001C, 0x000B),  # EC-Schnorr
        (0x0018, 0x0004),  # ECDSA with SHA-1
        (0x0018, 0x000C),  # ECDSA with SHA-384
    ]:
        changed = struct.pack(">HH", scheme, hash_alg) + signature[4:]
        tampered = _with(platform.evidence, signature=_b64(changed))
        assert _refusal(platform, tampered).reason == Reason.UNSUPPORTED


def test_a_real_sha384_quote_by_a_pinned_key_is_refused(platform: Platform) -> None:
    """An unrestricted key with no fixed scheme lets the TPM quote with SHA-384: the signature
    is genuine, yet only ECDSA/SHA-256 is accepted. Enrolment refuses such a key outright."""
    tpm = platform.tpm
    with tpm.operation() as work:
        tpm.tool(
            "create",
            *("-C", hex(swtpm.SRK_HANDLE), "-G", "ecc256:null:null"),
            *("-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign"),
            *("-u", str(work / "k.pub"), "-r", str(work / "k.priv")),
        )
        open_key = AttestationKey((work / "k.pub").read_bytes(), (work / "k.priv").read_bytes())
        tpm.tool(
            "load",
            *("-C", hex(swtpm.SRK_HANDLE), "-u", str(work / "k.pub"), "-r", str(work / "k.priv")),
            *("-c", str(work / "k.ctx")),
        )
        tpm.tool(
            "quote",
            *("-c", str(work / "k.ctx"), "-l", "sha256:23", "-q", BINDING.hex()),
            *("-g", "sha384", "--scheme", "ecdsa"),
            *("-m", str(work / "attest"), "-s", str(work / "sig")),
        )
        attest_bytes, signature = (work / "attest").read_bytes(), (work / "sig").read_bytes()
    assert struct.unpack_from(">HH", signature) == (0x0018, 0x000C)
    evidence = _with(
        platform.evidence,
        ak_public=open_key.public_pem.decode(),
        quote=_b64(attest_bytes),
        signature=_b64(signature),
    )
    reference = _reference(platform, trusted_aks=[platform.anchor, open_key.public_pem])
    assert _refusal(platform, evidence, reference=reference).reason == Reason.UNSUPPORTED
    with pytest.raises(AttestationError) as info:
        tpm_verifier.check_attestation_key(tpm_verifier.parse_public(open_key.public))
    assert info.value.reason == Reason.UNTRUSTED_CHAIN


def _sign_with_ak(platform: Platform, context: Path, work: Path, data: bytes) -> bytes:
    """Sign external ``data`` with the restricted AK (TPM2_Hash ticket + TPM2_Sign)."""
    tpm = platform.tpm
    (work / "data").write_bytes(data)
    tpm.tool(
        "hash",
        *("-C", "o", "-g", "sha256", "-o", str(work / "digest"), "-t", str(work / "ticket")),
        str(work / "data"),
    )
    tpm.tool(
        "sign",
        *("-c", str(context), "-g", "sha256", "-d", "-t", str(work / "ticket")),
        *("-o", str(work / "sig"), str(work / "digest")),
    )
    return (work / "sig").read_bytes()


def _load_ak(platform: Platform, work: Path) -> Path:
    context = work / "ak.ctx"
    (work / "ak.pub").write_bytes(platform.ak.public)
    (work / "ak.priv").write_bytes(platform.ak.private)
    platform.tpm.tool(
        "load",
        *("-C", hex(swtpm.SRK_HANDLE), "-u", str(work / "ak.pub"), "-r", str(work / "ak.priv")),
        *("-c", str(context)),
    )
    return context


def test_a_body_the_tpm_did_not_generate_is_refused(platform: Platform) -> None:
    """The AK signs outside data only if it cannot pass for a TPM attestation: a body
    without the magic gets a valid signature, which the magic check refuses; a body with
    the magic gets no signature at all."""
    quote = _member(platform.evidence, "quote")
    forged = b"\x00\x54\x43\x47" + quote[4:]
    with platform.tpm.operation() as work:
        context = _load_ak(platform, work)
        signature = _sign_with_ak(platform, context, work, forged)
        with pytest.raises(TpmError):
            _sign_with_ak(platform, context, work, quote)
    evidence = _with(platform.evidence, quote=_b64(forged), signature=_b64(signature))
    assert _refusal(platform, evidence).reason == Reason.MALFORMED


def test_an_attestation_of_another_type_is_refused(platform: Platform) -> None:
    """TPM2_GetTime signed by the enrolled AK is genuine and TPM-generated, but no quote."""
    with platform.tpm.operation() as work:
        context = _load_ak(platform, work)
        platform.tpm.tool(
            "gettime",
            *("-c", str(context), "-q", BINDING.hex(), "-g", "sha256"),
            *("-o", str(work / "sig"), "--attestation", str(work / "attest")),
        )
        attest_bytes, signature = (work / "attest").read_bytes(), (work / "sig").read_bytes()
    evidence = _with(platform.evidence, quote=_b64(attest_bytes), signature=_b64(signature))
    error = _refusal(platform, evidence)
    assert error.reason == Reason.UNSUPPORTED
    assert "not a quote" in error.message


def test_a_changed_binding_is_refused(platform: Platform) -> None:
    error = _refusal(platform, platform.evidence, expected_report_data=OTHER_BINDING)
    assert error.reason == Reason.REPORT_DATA_MISMATCH
    longer = _refusal(platform, platform.evidence, expected_report_data=BINDING + b"\x01")
    assert longer.reason == Reason.REPORT_DATA_MISMATCH
    # None is platform attestation, bound to no job.
    _verify(platform, platform.evidence, expected_report_data=None)


def test_malformed_evidence_is_refused(platform: Platform) -> None:
    cases = [
        b"not json",
        b"[]",
        _with(platform.evidence, extra=1),
        _with(platform.evidence, quote="***"),
        _with(platform.evidence, ak_public="-----BEGIN PUBLIC KEY-----\nAAAA\n"),
        _with(platform.evidence, pcr_values={"23": "zz"}),
        _with(platform.evidence, event_log=[{"pcr": 23}]),
    ]
    for evidence in cases:
        assert _refusal(platform, evidence).reason == Reason.MALFORMED, evidence[:60]
    assert _refusal(platform, _with(platform.evidence, version=2)).reason == Reason.UNSUPPORTED


# --- enrolment ----------------------------------------------------------------------------


def test_enrolment_yields_the_ak_trust_anchor(platform: Platform) -> None:
    assert platform.anchor == tpm_verifier.ak_trust_anchor(platform.ak.public_pem)
    assert platform.anchor in platform.reference.trusted_keys


def test_a_wrong_activation_answer_is_refused(platform: Platform) -> None:
    enrolment = tpm_verifier.begin_enrolment(
        ak_public=platform.ak.public,
        ek_certificate=platform.tpm.ek_certificate(),
        intermediates=[platform.ca.issuer_certificate.read_bytes()],
        roots=[platform.ca.root_certificate.read_bytes()],
        now=datetime.now(UTC),
    )
    with pytest.raises(AttestationError) as info:
        enrolment.finish(bytes(32))
    assert info.value.reason == Reason.UNTRUSTED_CHAIN
    # The challenge is bound to the AK's name: another key on the same TPM cannot open it.
    other = platform.tpm.create_ak()
    with pytest.raises(TpmError):
        platform.tpm.activate_credential(
            other, enrolment.credential_blob, enrolment.encrypted_secret
        )


def _impostor_ca(ek_key: rsa.RSAPublicKey) -> tuple[bytes, bytes, bytes]:
    """A root and issuer with swtpm_localca's names but other keys, and an EK certificate for
    the genuine EK key from them: (root PEM, issuer PEM, EK certificate DER)."""

    def issue(
        subject: str,
        issuer: str,
        key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer, hashes.SHA256())
        )

    root_key, issuer_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root_name, issuer_name = "swtpm-localca-rootca", "swtpm-localca"
    root = issue(root_name, root_name, root_key.public_key(), root_key, True)
    issuer = issue(issuer_name, root_name, issuer_key.public_key(), root_key, True)
    ek = issue("unknown", issuer_name, ek_key, issuer_key, False)
    return (
        root.public_bytes(serialization.Encoding.PEM),
        issuer.public_bytes(serialization.Encoding.PEM),
        ek.public_bytes(serialization.Encoding.DER),
    )


def test_an_ek_certificate_from_another_ca_is_refused(platform: Platform) -> None:
    genuine = platform.tpm.ek_certificate()
    ek_key = x509.load_der_x509_certificate(genuine).public_key()
    assert isinstance(ek_key, rsa.RSAPublicKey)
    fake_root, fake_issuer, forged = _impostor_ca(ek_key)
    real_root = platform.ca.root_certificate.read_bytes()
    real_issuer = platform.ca.issuer_certificate.read_bytes()
    pool = [real_issuer, fake_issuer]
    cases = [(forged, real_root), (genuine, fake_root)]
    for ek_cert, root in cases:
        with pytest.raises(AttestationError) as info:
            tpm_verifier.verify_ek_certificate(
                ek_cert, intermediates=pool, roots=[root], now=datetime.now(UTC)
            )
        assert info.value.reason == Reason.UNTRUSTED_CHAIN
    assert (
        tpm_verifier.verify_ek_certificate(
            genuine, intermediates=pool, roots=[real_root], now=datetime.now(UTC)
        ).public_numbers()
        == ek_key.public_numbers()
    )
    with pytest.raises(AttestationError) as info:
        tpm_verifier.verify_ek_certificate(
            genuine, intermediates=pool, roots=[real_root], now=NOW - timedelta(days=1)
        )
    assert info.value.reason == Reason.EXPIRED


# --- sealing ------------------------------------------------------------------------------


def test_unseal_works_as_sealed_and_fails_after_one_more_extend(platform: Platform) -> None:
    tpm = platform.tpm
    tpm.pcr_reset(16)
    tpm.pcr_extend(16, hashlib.sha256(b"executor").digest())
    blob = tpm.seal(b"dataset key 0123456789abcdef", [16, 23])
    assert tpm.unseal(blob) == b"dataset key 0123456789abcdef"
    tpm.pcr_extend(16, hashlib.sha256(b"one more").digest())
    with pytest.raises(UnsealError):
        tpm.unseal(blob)


def test_seal_to_the_replayed_values_of_a_launch_not_yet_done(platform: Platform) -> None:
    tpm = platform.tpm
    events = [
        ml.Event.of(ml.TRANSFORM_CODE, TRANSFORM, "t", pcr=16),
        ml.Event.of(ml.SANDBOX_PROFILE, PROFILE, "p", pcr=16),
    ]
    expected = {pcr: bytes.fromhex(v) for pcr, v in ml.replay(events).items()}
    blob = tpm.seal(b"k" * 32, [16], expected)
    log = ml.EventLog.fresh(tpm, [16])
    log.measure(tpm, events[0])
    with pytest.raises(UnsealError):
        tpm.unseal(blob)  # half-way through the launch
    log.measure(tpm, events[1])
    assert tpm.unseal(blob) == b"k" * 32
    assert tpm.pcr_read([16]) == expected


def test_no_transient_object_is_left_loaded(platform: Platform) -> None:
    tpm = platform.tpm
    tpm.unseal(tpm.seal(b"x", [23]))
    attest(tpm, platform.ak, BINDING, _launch(tpm))
    with tpm.operation(objects=False):
        listing = tpm.tool("getcap", "handles-transient")
    assert listing.strip() == b""


# --- swtpm lifecycle and the event log ----------------------------------------------------


def test_swtpm_restarts_with_its_state_and_fresh_pcrs(platform: Platform) -> None:
    provisioned = swtpm.provision(platform.root / "restart", platform.ca)
    config = swtpm.SwtpmConfig(provisioned.state_dir)
    server = swtpm.Swtpm(config)
    with server, Tpm(server.tcti) as tpm:
        assert server.health()
        ak = tpm.create_ak()
        tpm.pcr_extend(23, bytes(range(32)))
    assert not server.running and not server.health()
    with server, Tpm(server.tcti) as tpm:
        assert tpm.pcr_read([23]) == {23: bytes(32)}
        assert tpm.quote(ak, [23], BINDING).pcr_values == {23: bytes(32)}
    server.close()  # idempotent


def test_a_stopped_swtpm_is_unhealthy_and_has_no_tcti(platform: Platform) -> None:
    config = swtpm.SwtpmConfig(platform.root / "never-provisioned")
    server = swtpm.Swtpm(config)
    assert not server.health()
    with pytest.raises(swtpm.SwtpmError):
        _ = server.tcti


def test_replay_and_canonical_encoding() -> None:
    first = ml.Event.of(ml.TRANSFORM_CODE, b"a", "first")
    second = ml.Event(17, "00" * 32, "other", "")
    assert ml.replay([first, second], [16]) == {
        16: "00" * 32,
        17: ml.extend(b"\xff" * 32, bytes(32)).hex(),
        23: ml.extend(bytes(32), hashlib.sha256(b"a").digest()).hex(),
    }
    log = ml.EventLog([first, second])
    assert ml.EventLog.from_json(json.loads(log.canonical())).events == log.events
    assert log.canonical() == ml.canonical([first, second])
    assert b" " not in log.canonical().replace(b'"first"', b"")


@pytest.mark.parametrize(
    "doc",
    [
        {"pcr": 24, "digest": "00" * 32, "type": "x", "description": ""},
        {"pcr": True, "digest": "00" * 32, "type": "x", "description": ""},
        {"pcr": 23, "digest": "AA" * 32, "type": "x", "description": ""},
        {"pcr": 23, "digest": "00" * 31, "type": "x", "description": ""},
        {"pcr": 23, "digest": "00" * 32, "type": "Not A Name", "description": ""},
        {"pcr": 23, "digest": "00" * 32, "type": "x"},
    ],
)
def test_invalid_events_are_rejected(doc: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ml.Event.from_json(doc)


def test_only_resettable_pcrs_start_a_fresh_log(platform: Platform) -> None:
    with pytest.raises(ValueError, match="cannot be reset"):
        ml.EventLog.fresh(platform.tpm, [10])
