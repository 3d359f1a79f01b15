"""Unit tests of the shared formats: binding, canonical JSON, key deliveries, blobs, EARs."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from agents.enclave.binding import JobBinding, b64url, canonical_json
from agents.enclave.crypto import (
    DecryptionError,
    decrypt_blob,
    encrypt_blob,
    open_key_delivery,
    seal_key_delivery,
    staged_aad,
)
from agents.enclave.ear import EAR_PROFILE, EARError, Submod, issue_ear, verify_ear
from agents.enclave.job_keys import JobKeys
from gateway.tokens import KeyRing, TokenConfig

NOW = 1_800_000_000


def _binding(keys: JobKeys, **changes: object) -> JobBinding:
    base = JobBinding.create(
        nonce=b"\x01" * 32,
        job_id="job-1",
        manifest_digest="sha256:" + "ab" * 32,
        job_public_key=keys.public.to_doc(),
        dataset_ids=["b", "a"],
    )
    return replace(base, **changes)


def test_binding_is_order_independent_and_changes_with_every_field() -> None:
    keys, other = JobKeys(), JobKeys()
    base = _binding(keys)
    assert base.dataset_ids == ("a", "b")
    assert _binding(keys, dataset_ids=("b", "a")).report_data() == base.report_data()
    changed = [
        _binding(keys, nonce=b"\x02" * 32),
        _binding(keys, job_id="job-2"),
        _binding(keys, manifest_digest="sha256:" + "cd" * 32),
        _binding(keys, job_public_key=other.public.to_doc()),
        _binding(keys, dataset_ids=("a",)),
    ]
    digests = {b.report_data() for b in changed} | {base.report_data()}
    assert len(digests) == 6
    assert all(len(d) == 32 for d in digests)


def test_binding_refuses_bad_fields() -> None:
    keys = JobKeys()
    with pytest.raises(ValueError, match="32 bytes"):
        _binding(keys, nonce=b"short")
    with pytest.raises(ValueError, match="sha256"):
        _binding(keys, manifest_digest="md5:00")


def test_canonical_json_is_jcs() -> None:
    doc = {"b": [1, 2.5, 1e-7, 1e21, 100.0], "a": {"z": None, "é": True}, "c": "\u2028"}
    assert canonical_json(doc) == (
        '{"a":{"z":null,"é":true},"b":[1,2.5,1e-7,1e+21,100],"c":"\u2028"}'.encode()
    )
    with pytest.raises(ValueError):
        canonical_json(float("nan"))


def test_delivery_opens_only_for_its_job_and_key() -> None:
    job, other = JobKeys(), JobKeys()
    secret = bytearray(os.urandom(32))
    delivery = seal_key_delivery(secret, job.public.enc, job_id="job-1", key_id="ds/job-1")
    assert open_key_delivery(delivery, job.agreement_key, job_id="job-1") == secret
    with pytest.raises(DecryptionError):
        open_key_delivery(delivery, other.agreement_key, job_id="job-1")
    with pytest.raises(DecryptionError):
        open_key_delivery(delivery, job.agreement_key, job_id="job-2")
    with pytest.raises(DecryptionError):
        open_key_delivery({**delivery, "kid": "other/job-1"}, job.agreement_key, job_id="job-1")
    flipped = bytearray(delivery["ct"].encode())
    flipped[5] ^= 1
    with pytest.raises(DecryptionError):
        open_key_delivery({**delivery, "ct": flipped.decode()}, job.agreement_key, job_id="job-1")


def test_blob_is_bound_to_its_associated_data() -> None:
    key = os.urandom(32)
    blob = encrypt_blob(key, b"rows", staged_aad("job-1", "ds"))
    assert decrypt_blob(key, blob, staged_aad("job-1", "ds")) == b"rows"
    for aad in (staged_aad("job-2", "ds"), staged_aad("job-1", "other")):
        with pytest.raises(DecryptionError):
            decrypt_blob(key, blob, aad)
    with pytest.raises(DecryptionError):
        decrypt_blob(os.urandom(32), blob, staged_aad("job-1", "ds"))


@pytest.fixture(params=["EdDSA", "ES256"])
def ring(request: pytest.FixtureRequest, tmp_path) -> KeyRing:
    config = TokenConfig(algorithm=request.param, default_lifetime=300, max_lifetime=300)
    return KeyRing(tmp_path / "keys", config, clock=lambda: float(NOW))


def _ear(ring: KeyRing, keys: JobKeys, status: str = "affirming") -> str:
    key = ring.current
    submod = Submod(status, {"instance-identity": 2, "runtime-opaque": 32}, "p@r", "software-tpm")
    return issue_ear(
        private_key=key.private_key,
        algorithm=key.algorithm,
        kid=key.kid,
        issued_at=NOW,
        lifetime=300,
        nonce=b"\x07" * 32,
        verifier_id={"developer": "council", "build": "test"},
        submods={"tpm": submod},
        job_public_key=keys.public,
        job_id="job-1",
        manifest_digest="sha256:" + "ab" * 32,
        dataset_ids=["ds"],
    )


def test_ear_round_trip_with_jwks(ring: KeyRing) -> None:
    keys = JobKeys()
    claims = verify_ear(_ear(ring, keys), ring.jwks(), now=NOW + 10)
    assert claims.affirming and claims.status == "affirming"
    assert claims.raw["eat_profile"] == EAR_PROFILE
    assert claims.raw["eat_nonce"] == b64url(b"\x07" * 32)
    assert claims.raw["cnf"]["jwk"] == keys.public.sig_jwk()
    assert claims.job_public_key == keys.public
    submod = claims.raw["submods"]["tpm"]
    assert submod["ear.trustworthiness-vector"]["runtime-opaque"] == 32
    assert submod["ear.appraisal-policy-id"] == "p@r"
    assert set(claims.raw["ear.verifier-id"]) == {"developer", "build"}


def test_ear_refusals(ring: KeyRing, tmp_path) -> None:
    keys = JobKeys()
    token = _ear(ring, keys)
    with pytest.raises(EARError) as expired:
        verify_ear(token, ring.jwks(), now=NOW + 400)
    assert expired.value.code == "expired"
    head, body, sig = token.split(".")
    tampered = f"{head}.{body[:-2]}AA.{sig}"
    with pytest.raises(EARError) as bad:
        verify_ear(tampered, ring.jwks(), now=NOW)
    assert bad.value.code in {"bad_signature", "malformed"}
    stranger = KeyRing(tmp_path / "other", ring._config, clock=lambda: float(NOW))
    with pytest.raises(EARError) as unknown:
        verify_ear(token, stranger.jwks(), now=NOW)
    assert unknown.value.code == "unknown_key"
    warning = verify_ear(_ear(ring, keys, "warning"), ring.jwks(), now=NOW)
    with pytest.raises(EARError, match="not_affirming"):
        warning.require_affirming()


def test_ear_refuses_none_algorithm(ring: KeyRing) -> None:
    import jwt

    forged = jwt.encode({"iat": NOW, "exp": NOW + 60}, key=None, algorithm="none")
    with pytest.raises(EARError, match="not accepted"):
        verify_ear(forged, ring.jwks(), now=NOW)


def test_ear_refuses_a_key_of_another_algorithm(tmp_path) -> None:
    ed = KeyRing(tmp_path / "ed", TokenConfig(default_lifetime=300, max_lifetime=300))
    es = KeyRing(tmp_path / "es", TokenConfig("x", ("x",), "ES256", 300, 300))
    # The EdDSA token's kid, pointing at an ES256 key: never verified with the wrong one.
    wrong = {"keys": [{**es.jwks()["keys"][0], "kid": ed.current.kid}]}
    with pytest.raises(EARError) as exc:
        verify_ear(_ear(ed, JobKeys()), wrong, now=NOW)
    assert exc.value.code == "bad_signature"
