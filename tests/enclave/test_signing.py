"""Signed outputs: the in-toto Statement in its DSSE envelope, offline verification, release."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from agents.enclave.binding import canonical_json, sha256_digest
from agents.enclave.ear import Submod, ear_digest, issue_ear
from agents.enclave.job_keys import JobKeys
from agents.enclave.signing import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    OutputVerificationError,
    sign_output_dir,
    verify_output_dir,
)
from gateway.enclave_audit import EnclaveAudit
from gateway.enclave_release import ReleaseDenied, ReleaseGate
from gateway.tokens import KeyRing, TokenConfig

MANIFEST = {"v": 1, "job_id": "job-1", "transform": {"name": "embeddings"}, "datasets": []}
INPUTS = [{"dataset_id": "reviews", "digest": "sha256:" + "11" * 32}]


def _ring(path: Path) -> KeyRing:
    return KeyRing(path, TokenConfig(default_lifetime=300, max_lifetime=300))


def _ear(ring: KeyRing, keys: JobKeys, status: str = "affirming", manifest: Any = None) -> str:
    key = ring.current
    return issue_ear(
        private_key=key.private_key,
        algorithm=key.algorithm,
        kid=key.kid,
        issued_at=int(time.time()),
        lifetime=300,
        nonce=b"\x01" * 32,
        verifier_id={"developer": "council", "build": "test"},
        submods={"tpm": Submod(status, {"instance-identity": 2}, "p", "software-tpm")},
        job_public_key=keys.public,
        job_id="job-1",
        manifest_digest=sha256_digest(canonical_json(manifest or MANIFEST)),
        dataset_ids=["reviews"],
    )


def _signed(tmp: Path, ring: KeyRing, *, keys: JobKeys | None = None, **ear: Any) -> Path:
    keys = keys or JobKeys()
    out = tmp / "out"
    (out / "nested").mkdir(parents=True)
    (out / "embeddings.npy").write_bytes(b"\x93NUMPY fake")
    (out / "nested" / "ids.json").write_text('["r0"]')
    sign_output_dir(
        out,
        signing_key=keys.signing_key,
        public=keys.public,
        manifest=MANIFEST,
        ear=_ear(ring, keys, **ear),
        inputs=INPUTS,
        policy_hash="sha256:" + "22" * 32,
    )
    return out


def test_statement_and_envelope_shape(tmp_path: Path) -> None:
    ring = _ring(tmp_path / "keys")
    out = _signed(tmp_path, ring)
    verified = verify_output_dir(out, ring.jwks(), now=time.time())
    assert verified.job_id == "job-1"
    assert set(verified.subjects) == {"embeddings.npy", "nested/ids.json"}
    envelope = json.loads((out / ".council" / "statement.dsse.json").read_text())
    assert envelope["payloadType"] == PAYLOAD_TYPE
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == PREDICATE_TYPE
    predicate = statement["predicate"]
    assert predicate["manifest_digest"] == sha256_digest(canonical_json(MANIFEST))
    assert predicate["inputs"] == INPUTS
    assert predicate["ear_digest"] == ear_digest((out / ".council" / "ear.jwt").read_text())
    assert predicate["policy_hash"] == "sha256:" + "22" * 32
    # DSSE signs the pre-authentication encoding, exactly per the spec.
    pae = Envelope.from_dict(envelope).pae()
    body = base64.b64decode(envelope["payload"])
    assert pae == b"DSSEv1 %d %s %d %s" % (
        len(PAYLOAD_TYPE),
        PAYLOAD_TYPE.encode(),
        len(body),
        body,
    )


def _expect(code: str, out: Path, ring: KeyRing) -> None:
    with pytest.raises(OutputVerificationError) as exc:
        verify_output_dir(out, ring.jwks(), now=time.time())
    assert exc.value.code == code


def test_changed_output_is_refused(tmp_path: Path) -> None:
    ring = _ring(tmp_path / "keys")
    out = _signed(tmp_path, ring)
    (out / "embeddings.npy").write_bytes(b"\x93NUMPY forged")
    _expect("subject_mismatch", out, ring)


def test_added_or_removed_output_is_refused(tmp_path: Path) -> None:
    ring = _ring(tmp_path / "keys")
    out = _signed(tmp_path, ring)
    (out / "extra.txt").write_text("smuggled")
    _expect("subject_mismatch", out, ring)
    (out / "extra.txt").unlink()
    (out / "nested" / "ids.json").unlink()
    _expect("subject_mismatch", out, ring)


def test_envelope_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    ring = _ring(tmp_path / "keys")
    attested, other = JobKeys(), JobKeys()
    out = _signed(tmp_path, ring, keys=attested)
    # Re-sign the same statement with a key the EAR does not vouch for.
    path = out / ".council" / "statement.dsse.json"
    envelope = Envelope.from_dict(json.loads(path.read_text()))
    # Same key id as the attested key, another private key behind it.
    public = SSlibKey.from_crypto(
        other.signing_key.public_key(), keyid=attested.public.thumbprint()
    )
    forged = Envelope(envelope.payload, envelope.payload_type, {})
    forged.sign(CryptoSigner(other.signing_key, public))
    path.write_text(json.dumps(forged.to_dict()))
    _expect("bad_signature", out, ring)


def test_tampered_statement_is_refused(tmp_path: Path) -> None:
    ring = _ring(tmp_path / "keys")
    out = _signed(tmp_path, ring)
    path = out / ".council" / "statement.dsse.json"
    envelope = json.loads(path.read_text())
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"]["inputs"] = []
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    path.write_text(json.dumps(envelope))
    _expect("bad_signature", out, ring)


def test_ear_problems_are_refused(tmp_path: Path) -> None:
    ring = _ring(tmp_path / "keys")
    out = _signed(tmp_path / "a", ring, status="contraindicated")
    _expect("not_affirming", out, ring)
    out = _signed(tmp_path / "b", ring)
    _expect("bad_ear", out, _ring(tmp_path / "stranger"))
    out = _signed(tmp_path / "c", ring, manifest={"job_id": "another"})
    _expect("binding_mismatch", out, ring)
    out = _signed(tmp_path / "d", ring)
    (out / ".council" / "ear.jwt").unlink()
    _expect("missing", out, ring)


def test_manifest_swap_is_refused(tmp_path: Path) -> None:
    ring = _ring(tmp_path / "keys")
    out = _signed(tmp_path, ring)
    (out / ".council" / "manifest.json").write_bytes(canonical_json({**MANIFEST, "params": 1}))
    _expect("binding_mismatch", out, ring)


def test_archived_outputs_verify_after_the_ear_expired(tmp_path: Path) -> None:
    ring = _ring(tmp_path / "keys")
    out = _signed(tmp_path, ring)
    with pytest.raises(OutputVerificationError) as exc:
        verify_output_dir(out, ring.jwks(), now=time.time() + 3600)
    assert exc.value.code == "bad_ear"
    assert verify_output_dir(out, ring.jwks()).job_id == "job-1"


def test_release_gate(tmp_path: Path) -> None:
    ring = _ring(tmp_path / "keys")
    audit = EnclaveAudit(tmp_path / "audit.db")
    gate = ReleaseGate(ring.jwks, audit=audit)
    out = _signed(tmp_path / "job", ring)
    released = gate.release(out, tmp_path / "released" / "job-1")
    assert (released.destination / "embeddings.npy").read_bytes() == b"\x93NUMPY fake"
    unsigned = tmp_path / "unsigned"
    unsigned.mkdir()
    (unsigned / "result.csv").write_text("a,b\n")
    with pytest.raises(ReleaseDenied) as exc:
        gate.release(unsigned, tmp_path / "released" / "unsigned")
    assert exc.value.code == "missing"
    assert not (tmp_path / "released" / "unsigned").exists()
    (out / "embeddings.npy").write_bytes(b"changed after signing")
    with pytest.raises(ReleaseDenied):
        gate.release(out, tmp_path / "released" / "changed")
    metrics = audit.metrics()
    assert metrics["released_outputs"] == 1
    assert metrics["refused_releases"] == 2 and metrics["unsigned_outputs"] == 2
    assert sorted(p.name for p in (tmp_path / "released").iterdir()) == ["job-1"]
