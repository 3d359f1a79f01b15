"""The verifier registry, the shared interface, and the non-hardware ``sample`` plugin."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import attestation
from gateway.attestation import (
    AttestationError,
    Reason,
    ReferenceValues,
    VerifiedEvidence,
    Verifier,
    plugins,
    sample,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
BINDING = hashlib.sha256(b'{"job_id":"j1","nonce":"n"}').digest()


@pytest.fixture
def key() -> Ed25519PrivateKey:
    """A fresh sample attester key."""
    return Ed25519PrivateKey.generate()


@pytest.fixture
def trusting(key: Ed25519PrivateKey) -> ReferenceValues:
    """Reference values that trust ``key``."""
    return ReferenceValues(trusted_keys=frozenset({sample.raw_public_key(key)}))


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the registry, so a test can register without affecting others."""
    monkeypatch.setattr(plugins, "_REGISTRY", dict(plugins._REGISTRY))


def _evidence(key: Ed25519PrivateKey, **overrides: object) -> bytes:
    args: dict[str, object] = {
        "measurement": bytes(range(48)),
        "report_data": BINDING,
        "issued_at": NOW - timedelta(seconds=5),
    }
    args.update(overrides)
    return sample.make_evidence(key, **args)


def _refused(evidence: bytes, reference: ReferenceValues, **overrides: object) -> Reason:
    args: dict[str, object] = {"expected_report_data": BINDING, "now": NOW}
    args.update(overrides)
    with pytest.raises(AttestationError) as info:
        sample.VERIFIER.verify(evidence, reference=reference, **args)
    return info.value.reason


# --- registry ---------------------------------------------------------------------------


def test_builtins_are_registered_on_import() -> None:
    assert {"snp", "tdx", "sample"} <= set(attestation.names())
    assert attestation.get("snp").tee_class == "sev-snp"
    assert attestation.get("tdx").tee_class == "tdx"
    assert attestation.get("sample").tee_class == "sample"


def test_every_registered_verifier_implements_the_protocol() -> None:
    for name in attestation.names():
        verifier = attestation.get(name)
        assert isinstance(verifier, Verifier)
        assert verifier.name == name


def test_unknown_verifier_is_unsupported() -> None:
    with pytest.raises(AttestationError) as info:
        attestation.get("sgx-epid")
    assert info.value.reason == Reason.UNSUPPORTED


@pytest.mark.usefixtures("isolated_registry")
def test_a_new_plugin_registers_by_name() -> None:
    class Echo:
        name = "echo"
        tee_class = "software-tpm"

        def verify(
            self,
            evidence: bytes,
            *,
            expected_report_data: bytes | None,
            now: datetime,
            reference: ReferenceValues,
        ) -> VerifiedEvidence:
            plugins.check_report_data(evidence, expected_report_data)
            return VerifiedEvidence(
                verifier=self.name,
                tee_class=self.tee_class,
                hardware=False,
                measurement="",
                report_data=evidence.hex(),
                registers={"pcr7": "00" * 32},
                tcb={},
                policy={},
                platform={},
                signer={},
                raw_digest=plugins.sha256_hex(evidence),
                evidence_digest=plugins.sha256_hex(evidence),
                verified_at=now,
            )

    attestation.register(Echo())
    assert "echo" in attestation.names()
    result = attestation.get("echo").verify(
        BINDING, expected_report_data=BINDING, now=NOW, reference=ReferenceValues()
    )
    assert result.to_claims()["registers"] == {"pcr7": "00" * 32}


@pytest.mark.usefixtures("isolated_registry")
def test_a_taken_name_is_not_silently_replaced() -> None:
    with pytest.raises(ValueError, match="already registered"):
        attestation.register(sample.SampleVerifier())
    replacement = sample.SampleVerifier()
    attestation.register(replacement, replace=True)
    assert attestation.get("sample") is replacement


def test_registering_a_non_verifier_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        attestation.register(object())  # type: ignore[arg-type]


def test_report_data_binding_pads_a_digest_to_the_field() -> None:
    plugins.check_report_data(BINDING + bytes(32), BINDING)
    plugins.check_report_data(BINDING + bytes(32), None)
    for actual, expected in ((BINDING + b"\1" + bytes(31), BINDING), (BINDING, BINDING + b"\0")):
        with pytest.raises(AttestationError) as info:
            plugins.check_report_data(actual, expected)
        assert info.value.reason == Reason.REPORT_DATA_MISMATCH


# --- the sample plugin ------------------------------------------------------------------


def test_sample_evidence_verifies_and_says_it_is_not_hardware(
    key: Ed25519PrivateKey, trusting: ReferenceValues
) -> None:
    result = sample.VERIFIER.verify(
        _evidence(key), expected_report_data=BINDING, now=NOW, reference=trusting
    )
    claims = result.to_claims()
    assert claims["hardware"] is False
    assert claims["tee_class"] == "sample"
    assert claims["platform"] == {"test_only": True}
    assert claims["report_data"] == BINDING.hex() + "00" * 32
    assert claims["verified_at"] == "2026-01-01T12:00:00Z"
    assert json.loads(json.dumps(claims)) == claims


def test_sample_key_not_in_reference_is_untrusted(key: Ed25519PrivateKey) -> None:
    assert _refused(_evidence(key), ReferenceValues()) == Reason.UNTRUSTED_CHAIN


def test_sample_changed_payload_is_bad_signature(
    key: Ed25519PrivateKey, trusting: ReferenceValues
) -> None:
    doc = json.loads(_evidence(key))
    payload = json.loads(base64.b64decode(doc["payload"]))
    payload["measurement"] = "00" * 48
    doc["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    assert _refused(json.dumps(doc).encode(), trusting) == Reason.BAD_SIGNATURE


def test_sample_outside_lifetime_is_expired(
    key: Ed25519PrivateKey, trusting: ReferenceValues
) -> None:
    old = _evidence(key, issued_at=NOW - timedelta(minutes=5))
    assert _refused(old, trusting) == Reason.EXPIRED


def test_sample_report_data_mismatch(key: Ed25519PrivateKey, trusting: ReferenceValues) -> None:
    other = hashlib.sha256(b"another job").digest()
    assert _refused(_evidence(key), trusting, expected_report_data=other) == (
        Reason.REPORT_DATA_MISMATCH
    )


def test_sample_other_algorithm_is_unsupported(
    key: Ed25519PrivateKey, trusting: ReferenceValues
) -> None:
    doc = json.loads(_evidence(key))
    doc["alg"] = "HS256"
    assert _refused(json.dumps(doc).encode(), trusting) == Reason.UNSUPPORTED


def test_sample_garbage_is_malformed(trusting: ReferenceValues) -> None:
    assert _refused(b"\xff", trusting) == Reason.MALFORMED
    assert _refused(b'{"alg": "Ed25519"}', trusting) == Reason.MALFORMED
