"""The verifier service against a real PDP: nonces, replay, binding, tampering, appraisal, EARs.

Every refusal is checked on the software-TPM path (real swtpm quotes) and, where the plugin
does not matter, on the sample path too. Refusals must carry their stable reason and be
counted in the audit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Coroutine, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import needs_tpm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.enclave import measured_launch as ml
from agents.enclave.attesters import Attester, SampleAttester
from agents.enclave.binding import JobBinding, canonical_json, sha256_digest
from agents.enclave.ear import verify_ear
from agents.enclave.job_keys import JobKeys
from agents.enclave.platform import SoftwareTpmPlatform
from agents.enclave.sandbox import code_listing, default_profile
from agents.enclave.transforms import TRANSFORMS
from gateway.attestation import ReferenceValues, sample
from gateway.enclave_audit import EnclaveAudit
from gateway.enclave_verifier import (
    MAX_NONCE_TTL,
    AttestationRefused,
    AttestationRequest,
    AttestationResult,
    DatasetRef,
    EnclaveVerifier,
    EnclaveVerifierConfig,
    NonceStore,
)
from pep_sidecars.pdp_client import PDPClient, PDPClientConfig

T = TypeVar("T")
PROFILE = default_profile()
SPEC = TRANSFORMS["entity-resolution"]
REQUIRED = (DatasetRef("people", {"secure-compute": "required"}),)


class Clock:
    """A settable clock, so nonce expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Harness:
    """One verifier on its own event loop (gRPC aio channels belong to one loop), plus what
    a test needs to make evidence for it."""

    def __init__(
        self,
        tmp: Path,
        *,
        references: dict[str, ReferenceValues],
        policy: str,
        attester: Attester,
        clock: Clock,
        pdp_target: str,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock = clock
        self.attester = attester
        self.audit = EnclaveAudit(tmp / "audit.db")
        self.pdp = self.run(self._client(pdp_target))
        config = EnclaveVerifierConfig(
            db=tmp / "nonces.db",
            keys_dir=tmp / "keys",
            references=references,
            appraisal_policy=policy,
        )
        self.verifier = EnclaveVerifier(config, self.pdp, audit=self.audit, clock=clock)

    @staticmethod
    async def _client(target: str) -> PDPClient:
        return PDPClient(PDPClientConfig(target))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.verifier.close()
        self.audit.close()
        self.run(self.pdp.close())
        self.loop.close()

    @property
    def plugin(self) -> str:
        return self.attester.plugin

    def make(
        self, binding: JobBinding, manifest: bytes, events: list[ml.Event] | None = None
    ) -> bytes:
        """Measured launch of ``manifest`` (or ``events``), then evidence for ``binding``."""
        self.attester.launch(events if events is not None else _events(manifest))
        return self.attester.evidence(binding.report_data())

    def binding(self, manifest: bytes, **changes: Any) -> JobBinding:
        base = JobBinding.create(
            nonce=self.verifier.challenge().nonce,
            job_id="job-1",
            manifest_digest=sha256_digest(manifest),
            job_public_key=JobKeys().public.to_doc(),
            dataset_ids=["people"],
        )
        return replace(base, **changes)

    def request(
        self, binding: JobBinding, evidence: bytes, datasets: tuple[DatasetRef, ...] = REQUIRED
    ) -> AttestationRequest:
        return AttestationRequest(self.plugin, evidence, binding, SPEC.name, datasets)

    def attest(self, request: AttestationRequest) -> AttestationResult:
        return self.run(self.verifier.attest(request))


def _manifest(job_id: str = "job-1") -> bytes:
    return canonical_json({"job_id": job_id, "transform": SPEC.name, "datasets": ["people"]})


def _events(manifest: bytes) -> list[ml.Event]:
    return [
        ml.Event.of(ml.TRANSFORM_CODE, code_listing(SPEC), "transform"),
        ml.Event.of(ml.SANDBOX_PROFILE, PROFILE.canonical(), "bwrap"),
        ml.Event.of(ml.JOB_MANIFEST, manifest, "job-1"),
    ]


def _tpm_harness(platform: SoftwareTpmPlatform, tmp: Path, policy: str, pdp_target: str) -> Harness:
    refs = {"tpm": platform.reference_values(PROFILE, [SPEC])}
    return Harness(
        tmp,
        references=refs,
        policy=policy,
        attester=platform.attester(),
        clock=Clock(),
        pdp_target=pdp_target,
    )


def _sample_harness(tmp: Path, policy: str, pdp_target: str) -> Harness:
    clock = Clock()
    key = Ed25519PrivateKey.generate()
    refs = {"sample": ReferenceValues(trusted_keys=frozenset({sample.raw_public_key(key)}))}
    attester = SampleAttester(key, clock=lambda: datetime.fromtimestamp(clock.now, UTC))
    return Harness(
        tmp, references=refs, policy=policy, attester=attester, clock=clock, pdp_target=pdp_target
    )


@pytest.fixture
def tpm_harness(
    platform: SoftwareTpmPlatform, tmp_path: Path, pdp_target: str
) -> Iterator[Harness]:
    harness = _tpm_harness(platform, tmp_path, "software-tpm", pdp_target)
    yield harness
    harness.close()


@pytest.fixture
def sample_harness(tmp_path: Path, pdp_target: str) -> Iterator[Harness]:
    harness = _sample_harness(tmp_path, "sample-tests", pdp_target)
    yield harness
    harness.close()


@pytest.fixture(params=["tpm", "sample"])
def harness(request: pytest.FixtureRequest) -> Harness:
    """Each test twice: on real swtpm quotes, and on the sample plugin."""
    return request.getfixturevalue(f"{request.param}_harness")


def _refused(h: Harness, request: AttestationRequest) -> str:
    with pytest.raises(AttestationRefused) as exc:
        h.attest(request)
    return exc.value.reason


# --- the happy path and the EAR ----------------------------------------------------------


def test_affirming_ear_is_verifiable_with_jwks(harness: Harness) -> None:
    manifest = _manifest()
    binding = harness.binding(manifest)
    result = harness.attest(harness.request(binding, harness.make(binding, manifest)))
    assert result.affirming, result.reasons
    claims = verify_ear(result.ear, harness.verifier.jwks(), now=harness.clock.now)
    submod = claims.submods[harness.plugin]
    assert submod.status == "affirming"
    assert claims.job_public_key.to_doc() == binding.job_public_key
    assert claims.nonce == binding.nonce and claims.job_id == "job-1"
    assert claims.raw["ear.verifier-id"]["developer"] == "council"
    vector = submod.trustworthiness_vector
    assert set(vector) == {
        "instance-identity",
        "configuration",
        "executables",
        "file-system",
        "hardware",
        "runtime-opaque",
        "storage-opaque",
        "sourced-data",
    }
    if harness.plugin == "tpm":
        # Honest about the executor: isolated (32), not encrypted; no hardware claim.
        assert submod.tee_class == "software-tpm"
        assert vector["runtime-opaque"] == 32 and vector["hardware"] == 0
        assert vector["executables"] == 2
        assert submod.policy_id.startswith("council/enclave/appraisal/software-tpm@")
    metrics = harness.audit.metrics()
    assert metrics["attestation_failures"] == {}


def test_nonce_ttl_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        NonceStore(tmp_path / "n.db", ttl=MAX_NONCE_TTL + 1)
    store = NonceStore(tmp_path / "n.db", ttl=10)
    challenge = store.issue(100.0)
    assert len(challenge.nonce) == 32 and challenge.expires_at == 110.0
    assert store.issue(100.0).nonce != challenge.nonce
    store.close()


# --- freshness and replay ------------------------------------------------------------------


def test_replayed_quote_is_refused(harness: Harness) -> None:
    manifest = _manifest()
    binding = harness.binding(manifest)
    request = harness.request(binding, harness.make(binding, manifest))
    assert harness.attest(request).affirming
    assert _refused(harness, request) == "evidence_replayed"
    # Presenting the same quote under a fresh nonce is the same replay.
    fresh = replace(binding, nonce=harness.verifier.challenge().nonce)
    assert _refused(harness, replace(request, binding=fresh)) == "evidence_replayed"
    assert harness.audit.metrics()["attestation_failures"] == {"evidence_replayed": 2}


def test_reused_nonce_is_refused(harness: Harness) -> None:
    manifest = _manifest()
    binding = harness.binding(manifest)
    assert harness.attest(harness.request(binding, harness.make(binding, manifest)))
    harness.clock.now += 1  # new evidence (the sample signature covers its issue time)
    again = harness.request(binding, harness.make(binding, manifest))
    assert _refused(harness, again) == "nonce_reused"


def test_expired_nonce_is_refused(harness: Harness) -> None:
    manifest = _manifest()
    binding = harness.binding(manifest)
    evidence = harness.make(binding, manifest)
    harness.clock.now += MAX_NONCE_TTL + 1
    assert _refused(harness, harness.request(binding, evidence)) == "nonce_expired"


def test_unknown_nonce_is_refused(harness: Harness) -> None:
    manifest = _manifest()
    binding = harness.binding(manifest, nonce=b"\x09" * 32)
    evidence = harness.make(binding, manifest)
    assert _refused(harness, harness.request(binding, evidence)) == "nonce_unknown"


def test_failed_attempt_burns_the_nonce(harness: Harness) -> None:
    manifest = _manifest()
    binding = harness.binding(manifest)
    wrong = replace(binding, job_id="job-2")
    evidence = harness.make(wrong, manifest)
    assert _refused(harness, harness.request(binding, evidence)) == ("report_data_mismatch")
    harness.clock.now += 1
    retry = harness.request(binding, harness.make(binding, manifest))
    assert _refused(harness, retry) == "nonce_reused"


@pytest.mark.parametrize(
    "field_name", ["nonce", "job_id", "manifest_digest", "job_public_key", "dataset_ids"]
)
def test_every_changed_binding_field_is_refused(harness: Harness, field_name: str) -> None:
    manifest = _manifest()
    binding = harness.binding(manifest)
    evidence = harness.make(binding, manifest)
    changes = {
        # Another nonce this verifier issued: a quote made for one challenge answers no other.
        "nonce": harness.verifier.challenge().nonce,
        "job_id": "job-2",
        "manifest_digest": sha256_digest(b"another manifest"),
        "job_public_key": JobKeys().public.to_doc(),
        "dataset_ids": ("people", "secrets"),
    }
    presented = replace(binding, **{field_name: changes[field_name]})
    reason = _refused(harness, harness.request(presented, evidence))
    assert reason == "report_data_mismatch"


# --- tampering with TPM evidence --------------------------------------------------------------


def _flip_b64(doc: dict[str, Any], key: str, index: int) -> None:
    raw = bytearray(base64.b64decode(doc[key]))
    raw[index] ^= 0x01
    doc[key] = base64.b64encode(bytes(raw)).decode()


def _tamper_quote_body(doc: dict[str, Any]) -> None:
    _flip_b64(doc, "quote", -40)


def _tamper_signature(doc: dict[str, Any]) -> None:
    _flip_b64(doc, "signature", -3)


def _tamper_pcr_value(doc: dict[str, Any]) -> None:
    pcr = next(iter(doc["pcr_values"]))
    value = bytearray.fromhex(doc["pcr_values"][pcr])
    value[0] ^= 0x80
    doc["pcr_values"][pcr] = value.hex()


def _tamper_measurement(doc: dict[str, Any]) -> None:
    event = doc["event_log"][0]
    event["digest"] = ("0" if event["digest"][0] != "0" else "1") + event["digest"][1:]


def _tamper_ak(doc: dict[str, Any]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    doc["ak_public"] = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _tamper_signature_hash(doc: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(doc["signature"]))
    raw[2:4] = (0x000C).to_bytes(2, "big")  # TPM_ALG_SHA384 instead of SHA256
    doc["signature"] = base64.b64encode(bytes(raw)).decode()


def _tamper_signature_type(doc: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(doc["signature"]))
    raw[0:2] = (0x0014).to_bytes(2, "big")  # TPM_ALG_RSASSA instead of ECDSA
    doc["signature"] = base64.b64encode(bytes(raw)).decode()


TAMPERS = {
    "quote body": (_tamper_quote_body, {"bad_signature"}),
    "signature": (_tamper_signature, {"bad_signature"}),
    "pcr value": (_tamper_pcr_value, {"bad_signature"}),
    "event measurement": (_tamper_measurement, {"bad_signature"}),
    "untrusted key": (_tamper_ak, {"untrusted_chain"}),
    "signature hash algorithm": (_tamper_signature_hash, {"unsupported"}),
    "signature type": (_tamper_signature_type, {"unsupported"}),
}


@needs_tpm
@pytest.mark.parametrize("what", sorted(TAMPERS))
def test_tampered_tpm_evidence_is_refused(tpm_harness: Harness, what: str) -> None:
    tamper, reasons = TAMPERS[what]
    manifest = _manifest()
    binding = tpm_harness.binding(manifest)
    doc = json.loads(tpm_harness.make(binding, manifest))
    tamper(doc)
    evidence = json.dumps(doc).encode()
    reason = _refused(tpm_harness, tpm_harness.request(binding, evidence))
    assert reason in reasons
    assert tpm_harness.audit.metrics()["attestation_failures"] == {reason: 1}


@needs_tpm
def test_launch_of_another_manifest_is_refused(tpm_harness: Harness) -> None:
    binding = tpm_harness.binding(_manifest())
    # Measured a different manifest than the one the binding names.
    evidence = tpm_harness.make(binding, _manifest("job-9"))
    reason = _refused(tpm_harness, tpm_harness.request(binding, evidence))
    assert reason == "policy_violation"


@needs_tpm
def test_unreferenced_transform_code_is_refused(tpm_harness: Harness) -> None:
    manifest = _manifest()
    binding = tpm_harness.binding(manifest)
    events = _events(manifest)
    events[0] = ml.Event.of(ml.TRANSFORM_CODE, b"print('exfiltrate')", "rogue transform")
    evidence = tpm_harness.make(binding, manifest, events)
    reason = _refused(tpm_harness, tpm_harness.request(binding, evidence))
    assert reason == "policy_violation"


# --- appraisal -----------------------------------------------------------------------------------


@needs_tpm
def test_software_tpm_refused_by_default_policy(
    platform: SoftwareTpmPlatform, tmp_path: Path, pdp_target: str
) -> None:
    h = _tpm_harness(platform, tmp_path, "default", pdp_target)
    manifest = _manifest()
    binding = h.binding(manifest)
    result = h.attest(h.request(binding, h.make(binding, manifest)))
    assert result.status == "contraindicated"
    assert (
        "appraisal policy default does not allow tee class software-tpm (allowed: sev-snp, tdx)"
        in result.reasons
    )
    assert h.audit.metrics()["attestation_failures"] == {"appraisal_contraindicated": 1}
    claims = verify_ear(result.ear, h.verifier.jwks(), now=h.clock.now)
    h.close()
    assert not claims.affirming


@needs_tpm
def test_hardware_dataset_refused_on_software_tpm(tpm_harness: Harness) -> None:
    manifest = _manifest()
    binding = tpm_harness.binding(manifest)
    hardware = (DatasetRef("people", {"secure-compute": "hardware"}),)
    request = tpm_harness.request(binding, tpm_harness.make(binding, manifest), hardware)
    result = tpm_harness.attest(request)
    assert result.status == "contraindicated"
    assert any(
        r.startswith("dataset people requires a hardware TEE (secure-compute: hardware)")
        and "isolated, not encrypted" in r
        for r in result.reasons
    )


def test_sample_refused_by_default_policy(tmp_path: Path, pdp_target: str) -> None:
    h = _sample_harness(tmp_path, "default", pdp_target)
    manifest = _manifest()
    binding = h.binding(manifest)
    result = h.attest(h.request(binding, h.make(binding, manifest)))
    h.close()
    assert result.status == "contraindicated"
    assert "evidence from the sample verifier is for tests only" in result.reasons


def test_pdp_down_fails_closed(tmp_path: Path) -> None:
    h = _sample_harness(tmp_path, "sample-tests", "127.0.0.1:1")
    manifest = _manifest()
    binding = h.binding(manifest)
    assert _refused(h, h.request(binding, h.make(binding, manifest))) == "appraisal_unavailable"
    assert h.audit.metrics()["attestation_failures"] == {"appraisal_unavailable": 1}
    h.close()


def test_plugin_without_reference_values_is_refused(sample_harness: Harness) -> None:
    manifest = _manifest()
    binding = sample_harness.binding(manifest)
    request = replace(
        sample_harness.request(binding, sample_harness.make(binding, manifest)), plugin="tdx"
    )
    assert _refused(sample_harness, request) == "unsupported"
