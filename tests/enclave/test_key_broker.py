"""Sealed dataset keys and per-job key release, on a real swtpm.

EARs are issued directly with a verifier key ring here (the verifier itself is tested in
test_verifier.py), so each condition of a release can be varied alone.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_tpm

from agents.enclave.crypto import DecryptionError, decrypt_blob, open_key_delivery, staged_aad
from agents.enclave.ear import Submod, issue_ear
from agents.enclave.job_keys import JobKeys
from agents.enclave.platform import SoftwareTpmPlatform
from gateway.enclave_datasets import DatasetStore
from gateway.key_broker import (
    PLATFORM_PCR,
    KeyBroker,
    ReleaseRefused,
    ReleaseRequest,
    derive_job_key,
)
from gateway.tokens import KeyRing, TokenConfig

pytestmark = needs_tpm

DATA = b'{"id": "p1", "entity": "e1", "name": "Anna Meyer"}\n'
MANIFEST = "sha256:" + "ab" * 32


def issue(
    ring: KeyRing,
    keys: JobKeys,
    *,
    job_id: str = "job-1",
    status: str = "affirming",
    nonce: bytes = b"\x05" * 32,
    datasets: tuple[str, ...] = ("people",),
) -> str:
    """An EAR signed by ``ring`` for ``keys`` (defaults: job-1 over "people", affirming)."""
    key = ring.current
    return issue_ear(
        private_key=key.private_key,
        algorithm=key.algorithm,
        kid=key.kid,
        issued_at=int(time.time()),
        lifetime=300,
        nonce=nonce,
        verifier_id={"developer": "council", "build": "test"},
        submods={"tpm": Submod(status, {"instance-identity": 2}, "p", "software-tpm")},
        job_public_key=keys.public,
        job_id=job_id,
        manifest_digest=MANIFEST,
        dataset_ids=datasets,
    )


def _ring(path: Path) -> KeyRing:
    return KeyRing(path, TokenConfig(default_lifetime=300, max_lifetime=300))


class Setup:
    def __init__(self, platform: SoftwareTpmPlatform, tmp: Path) -> None:
        self.ring = _ring(tmp / "keys")
        self.store = DatasetStore(tmp / "datasets")
        self.broker = KeyBroker(self.store, platform.tpm, self.ring.jwks)
        self.broker.measure_platform()
        self.broker.import_dataset("people", DATA, {"secure-compute": "required"})
        self.tmp = tmp

    def ear(self, keys: JobKeys, **changes: Any) -> str:
        return issue(self.ring, keys, **changes)

    def request(self, keys: JobKeys, job_id: str = "job-1") -> ReleaseRequest:
        return ReleaseRequest(job_id, MANIFEST, keys.public, ("people",))

    def stage(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir()
        return path


@pytest.fixture
def setup(platform: SoftwareTpmPlatform, tmp_path: Path) -> Setup:
    return Setup(platform, tmp_path)


def _open(keys: JobKeys, job_id: str, delivery: dict, stage: Path) -> bytes:
    key = open_key_delivery(delivery, keys.agreement_key, job_id=job_id)
    return decrypt_blob(key, (stage / "people.blob").read_bytes(), staged_aad(job_id, "people"))


def test_release_to_the_attested_job(setup: Setup) -> None:
    keys = JobKeys()
    stage = setup.stage("job-1")
    deliveries = setup.broker.release(setup.ear(keys), setup.request(keys), stage)
    assert _open(keys, "job-1", deliveries["people"], stage) == DATA
    record = setup.store.get("people")
    assert record.encrypted and DATA not in record.data_path.read_bytes()
    setup.broker.wipe(stage, ["people"])
    assert not (stage / "people.blob").exists()


def test_pcr_changed_unseal_fails(setup: Setup, platform: SoftwareTpmPlatform) -> None:
    platform.tpm.pcr_extend(PLATFORM_PCR, hashlib.sha256(b"rootkit").digest())
    keys = JobKeys()
    with pytest.raises(ReleaseRefused) as exc:
        setup.broker.release(setup.ear(keys), setup.request(keys), setup.stage("job-1"))
    assert exc.value.code == "unseal_failed"
    # Nor will the broker re-measure over a platform PCR that holds anything else.
    with pytest.raises(RuntimeError, match=f"PCR {PLATFORM_PCR} holds"):
        setup.broker.measure_platform()


def test_another_job_gets_another_key(setup: Setup) -> None:
    first, second = JobKeys(), JobKeys()
    stage_1, stage_2 = setup.stage("job-1"), setup.stage("job-2")
    d1 = setup.broker.release(setup.ear(first), setup.request(first), stage_1)["people"]
    ear_2 = setup.ear(second, job_id="job-2", nonce=b"\x06" * 32)
    d2 = setup.broker.release(ear_2, setup.request(second, "job-2"), stage_2)["people"]
    k1 = open_key_delivery(d1, first.agreement_key, job_id="job-1")
    k2 = open_key_delivery(d2, second.agreement_key, job_id="job-2")
    assert k1 != k2 and len(k1) == len(k2) == 32
    # Job 2's key does not open job 1's staged copy.
    with pytest.raises(DecryptionError):
        decrypt_blob(k2, (stage_1 / "people.blob").read_bytes(), staged_aad("job-1", "people"))


def test_per_job_key_derivation_separates_every_input() -> None:
    dataset_key = b"\x01" * 32
    base = {
        "nonce": b"\x02" * 32,
        "job_id": "job-1",
        "manifest_digest": MANIFEST,
        "dataset_id": "people",
    }
    keys = {bytes(derive_job_key(dataset_key, **base))}
    for name, value in (
        ("nonce", b"\x03" * 32),
        ("job_id", "job-2"),
        ("manifest_digest", "sha256:" + "cd" * 32),
        ("dataset_id", "other"),
    ):
        keys.add(bytes(derive_job_key(dataset_key, **{**base, name: value})))
    assert len(keys) == 5
    # Length prefixes: moving a character between job id and manifest changes the key.
    a = derive_job_key(dataset_key, **{**base, "job_id": "job-1s", "manifest_digest": "ha256:x"})
    b = derive_job_key(dataset_key, **{**base, "job_id": "job-1", "manifest_digest": "sha256:x"})
    assert a != b


def test_delivery_replayed_to_another_job_key_fails(setup: Setup) -> None:
    victim, thief = JobKeys(), JobKeys()
    stage = setup.stage("job-1")
    delivery = setup.broker.release(setup.ear(victim), setup.request(victim), stage)["people"]
    with pytest.raises(DecryptionError):
        open_key_delivery(delivery, thief.agreement_key, job_id="job-1")
    with pytest.raises(DecryptionError):
        open_key_delivery(delivery, thief.agreement_key, job_id="job-2")
    # Presenting the victim's EAR for the thief's key gets nothing either.
    with pytest.raises(ReleaseRefused) as exc:
        setup.broker.release(setup.ear(victim), setup.request(thief), setup.stage("job-1b"))
    assert exc.value.code == "key_mismatch"


@pytest.mark.parametrize("status", ["warning", "contraindicated", "none"])
def test_non_affirming_ear_gets_no_key(setup: Setup, status: str) -> None:
    keys = JobKeys()
    with pytest.raises(ReleaseRefused) as exc:
        setup.broker.release(setup.ear(keys, status=status), setup.request(keys), setup.stage("s"))
    assert exc.value.code == "not_affirming"


def test_ear_of_another_verifier_gets_no_key(setup: Setup, tmp_path: Path) -> None:
    keys = JobKeys()
    foreign = issue(_ring(tmp_path / "foreign"), keys)
    with pytest.raises(ReleaseRefused) as exc:
        setup.broker.release(foreign, setup.request(keys), setup.stage("s"))
    assert exc.value.code == "bad_ear"


def test_binding_mismatches_get_no_key(setup: Setup) -> None:
    keys = JobKeys()
    cases = [
        (setup.ear(keys, job_id="job-9"), setup.request(keys)),
        (setup.ear(keys, datasets=("other",)), setup.request(keys)),
    ]
    for index, (ear, request) in enumerate(cases):
        with pytest.raises(ReleaseRefused) as exc:
            setup.broker.release(ear, request, setup.stage(f"s{index}"))
        assert exc.value.code == "binding_mismatch"


def test_one_release_per_job(setup: Setup) -> None:
    keys = JobKeys()
    setup.broker.release(setup.ear(keys), setup.request(keys), setup.stage("a"))
    with pytest.raises(ReleaseRefused) as exc:
        setup.broker.release(setup.ear(keys), setup.request(keys), setup.stage("b"))
    assert exc.value.code == "already_released"


def test_plain_dataset_is_stored_in_the_clear_and_has_no_key(setup: Setup) -> None:
    record = setup.broker.import_dataset("public", b"open data", {"secure-compute": "none"})
    assert not record.encrypted and record.data_path.read_bytes() == b"open data"
    keys = JobKeys()
    request = ReleaseRequest("job-1", MANIFEST, keys.public, ("public",))
    with pytest.raises(ReleaseRefused) as exc:
        setup.broker.release(setup.ear(keys, datasets=("public",)), request, setup.stage("s"))
    assert exc.value.code == "not_encrypted"
