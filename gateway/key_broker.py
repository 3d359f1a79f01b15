"""The key broker: dataset keys sealed to the TPM, released per job against an affirming EAR.

Import (:meth:`KeyBroker.import_dataset`): a fresh 32-byte dataset key encrypts the dataset
(AES-256-GCM, associated data: the dataset id) and is sealed to the TPM under a PCR policy
over the platform PCR (:data:`PLATFORM_PCR`), which :meth:`KeyBroker.measure_platform`
extends with the digest of the platform code (this broker, the executor, the verifier) when
the broker starts. Another platform state, another TPM, or a PCR extended by anything else,
and the TPM refuses to unseal. So does new platform code: upgrading it means re-importing
(re-sealing) the datasets, which is the point of sealing to the platform's measurement.

Release (:meth:`KeyBroker.release`), only when all hold:

- the EAR verifies with the verifier's keys and every submodule is ``affirming``;
- its key claim (``cnf`` and the job's X25519 key) is the requesting job's key, and it names
  the requesting job id and manifest digest, and every requested dataset;
- no release was made for this job id before (one release per job).

Then, per dataset: unseal the dataset key, derive the per-job key
``HKDF-SHA256(dataset key, salt = the EAR's nonce, info = job_id ‖ manifest digest ‖
dataset id)`` (length-prefixed fields), stage the dataset re-encrypted under the per-job key
(associated data: job id ‖ dataset id) in the job's input directory, and deliver the
per-job key encrypted to the job's attested X25519 key (:mod:`agents.enclave.crypto`, with
the job id and key id as associated data). Dataset and per-job keys are ``bytearray`` and are
zeroized as soon as they are used; :meth:`KeyBroker.wipe` deletes a job's staged files
(overwritten first) when the job ends.

Thread-safety: TPM operations serialize in :class:`agents.enclave.tpm.Tpm`; the released-job
set is guarded by a lock.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agents.enclave.binding import canonical_json, sha256_digest
from agents.enclave.crypto import (
    dataset_aad,
    decrypt_blob,
    encrypt_blob,
    length_prefixed,
    seal_key_delivery,
    staged_aad,
    zeroize,
)
from agents.enclave.ear import EARError, verify_ear
from agents.enclave.job_keys import JobPublicKey
from gateway.enclave_datasets import DatasetRecord, DatasetStore

__all__ = [
    "PLATFORM_PCR",
    "KeyBroker",
    "ReleaseRefused",
    "ReleaseRequest",
    "Sealer",
    "derive_job_key",
    "platform_digest",
]

# PCR 15 is not resettable by software (unlike 16 and 23), so once the broker measured the
# platform into it at start-up nothing short of a TPM restart returns it to that state.
PLATFORM_PCR = 15
DATASET_KEY_SIZE = 32
HKDF_INFO_PREFIX = b"council per-job dataset key v1"
_PLATFORM_SOURCES = (
    "gateway/key_broker.py",
    "gateway/enclave_verifier.py",
    "gateway/enclave_datasets.py",
    "agents/enclave/executor.py",
    "agents/enclave/crypto.py",
)
_PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Sealer(Protocol):
    """The TPM operations the broker needs (``agents.enclave.tpm.Tpm`` provides them)."""

    def seal(self, secret: bytes, pcrs: Iterable[int]) -> bytes:
        """Seal ``secret`` to the current values of ``pcrs``."""
        ...

    def unseal(self, blob: bytes) -> bytes:
        """Unseal a blob; raises if the PCR policy is not met."""
        ...

    def pcr_read(self, pcrs: Iterable[int]) -> dict[int, bytes]:
        """Current PCR values."""
        ...

    def pcr_extend(self, pcr: int, digest: bytes) -> None:
        """Extend a PCR."""
        ...


class ReleaseRefused(Exception):
    """No key was released. ``code``: ``bad_ear``, ``not_affirming``, ``key_mismatch``,
    ``binding_mismatch``, ``already_released``, ``unseal_failed``, ``not_encrypted``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ReleaseRequest:
    """What a job asks for: its id, manifest digest, public key and datasets."""

    job_id: str
    manifest_digest: str
    job_public_key: JobPublicKey
    dataset_ids: tuple[str, ...]


def derive_job_key(
    dataset_key: bytes | bytearray,
    *,
    nonce: bytes,
    job_id: str,
    manifest_digest: str,
    dataset_id: str,
) -> bytearray:
    """The per-job key: HKDF-SHA256(dataset key, salt = nonce, info = job_id ‖ manifest
    digest ‖ dataset id). Fields are length-prefixed so that no two different triples give
    the same info string."""
    info = HKDF_INFO_PREFIX + length_prefixed(job_id, manifest_digest, dataset_id)
    return bytearray(
        HKDF(hashes.SHA256(), DATASET_KEY_SIZE, salt=nonce, info=info).derive(bytes(dataset_key))
    )


def platform_digest(root: Path = _PROJECT_ROOT) -> bytes:
    """SHA-256 over the platform code's listing: what :data:`PLATFORM_PCR` is extended with."""
    listing = [
        {"path": p, "sha256": hashlib.sha256((root / p).read_bytes()).hexdigest()}
        for p in _PLATFORM_SOURCES
    ]
    return hashlib.sha256(canonical_json(listing)).digest()


def _wipe_file(path: Path) -> None:
    # Overwrite before unlinking so the ciphertext does not linger in freed blocks of a
    # file system that reuses them in place; on copy-on-write storage this is best effort.
    try:
        size = path.stat().st_size
        with path.open("r+b") as fh:
            fh.write(bytes(size))
            fh.flush()
            os.fsync(fh.fileno())
    except FileNotFoundError:
        return
    path.unlink(missing_ok=True)


class KeyBroker:
    """Seals dataset keys and releases per-job keys (see the module docstring)."""

    def __init__(
        self,
        store: DatasetStore,
        tpm: Sealer,
        verifier_jwks: Callable[[], Mapping[str, Any]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._tpm = tpm
        self._jwks = verifier_jwks
        self._clock = clock
        self._released: set[str] = set()
        self._lock = threading.Lock()

    def measure_platform(self, digest: bytes | None = None) -> bytes:
        """Extend :data:`PLATFORM_PCR` with the platform digest unless it already holds it.

        Returns the PCR's value. Refuses (``RuntimeError``) when the PCR holds anything else:
        the platform was measured differently since the TPM started, and keys sealed to the
        expected state must stay sealed.
        """
        digest = digest or platform_digest()
        expected = hashlib.sha256(bytes(32) + digest).digest()
        current = self._tpm.pcr_read([PLATFORM_PCR])[PLATFORM_PCR]
        if current == bytes(32):
            self._tpm.pcr_extend(PLATFORM_PCR, digest)
            return expected
        if current != expected:
            raise RuntimeError(
                f"PCR {PLATFORM_PCR} holds {current.hex()}, not the platform measurement"
            )
        return current

    def import_dataset(
        self, dataset_id: str, plaintext: bytes, labels: Mapping[str, str]
    ) -> DatasetRecord:
        """Store a dataset: plaintext if labelled ``secure-compute: none``, otherwise
        encrypted under a new dataset key that is sealed to the platform PCR."""
        digest = sha256_digest(plaintext)
        if labels.get("secure-compute") == "none":
            return self.store.write(
                dataset_id,
                labels=labels,
                digest=digest,
                size=len(plaintext),
                payload=plaintext,
                encrypted=False,
            )
        key = bytearray(os.urandom(DATASET_KEY_SIZE))
        try:
            ciphertext = encrypt_blob(key, plaintext, dataset_aad(dataset_id))
            sealed = self._tpm.seal(bytes(key), [PLATFORM_PCR])
        finally:
            zeroize(key)
        return self.store.write(
            dataset_id,
            labels=labels,
            digest=digest,
            size=len(plaintext),
            payload=ciphertext,
            encrypted=True,
            sealed_key=sealed,
        )

    def release(
        self, ear_token: str, request: ReleaseRequest, stage_dir: Path
    ) -> dict[str, dict[str, Any]]:
        """Stage the datasets for the job and return ``{dataset id: key delivery}``.

        Raises :class:`ReleaseRefused` unless every condition of the module docstring holds.
        """
        try:
            ear = verify_ear(ear_token, self._jwks(), now=self._clock())
            ear.require_affirming()
        except EARError as exc:
            code = "not_affirming" if exc.code == "not_affirming" else "bad_ear"
            raise ReleaseRefused(code, exc.message) from exc
        if ear.job_public_key != request.job_public_key:
            raise ReleaseRefused("key_mismatch", "the EAR vouches for another job key")
        if (ear.job_id, ear.manifest_digest) != (request.job_id, request.manifest_digest):
            raise ReleaseRefused("binding_mismatch", "the EAR is for another job or manifest")
        if not set(request.dataset_ids) <= set(ear.dataset_ids):
            raise ReleaseRefused("binding_mismatch", "the EAR does not name these datasets")
        with self._lock:
            if request.job_id in self._released:
                raise ReleaseRefused("already_released", f"job {request.job_id} got its keys")
            self._released.add(request.job_id)
        deliveries = {}
        for dataset_id in sorted(request.dataset_ids):
            record = self.store.get(dataset_id)
            deliveries[dataset_id] = self._release_one(record, ear.nonce, request, stage_dir)
        return deliveries

    def _release_one(
        self, record: DatasetRecord, nonce: bytes, request: ReleaseRequest, stage_dir: Path
    ) -> dict[str, Any]:
        if not record.encrypted:
            raise ReleaseRefused("not_encrypted", f"dataset {record.id} has no sealed key")
        try:
            dataset_key = bytearray(self._tpm.unseal(record.sealed_key_path.read_bytes()))
        except Exception as exc:
            raise ReleaseRefused(
                "unseal_failed", f"the TPM refused to unseal the key of {record.id}: {exc}"
            ) from exc
        job_key = bytearray()
        try:
            plaintext = decrypt_blob(
                dataset_key, record.data_path.read_bytes(), dataset_aad(record.id)
            )
            job_key = derive_job_key(
                dataset_key,
                nonce=nonce,
                job_id=request.job_id,
                manifest_digest=request.manifest_digest,
                dataset_id=record.id,
            )
            staged = encrypt_blob(job_key, plaintext, staged_aad(request.job_id, record.id))
            (stage_dir / f"{record.id}.blob").write_bytes(staged)
            return seal_key_delivery(
                job_key,
                request.job_public_key.enc,
                job_id=request.job_id,
                key_id=f"{record.id}/{request.job_id}",
            )
        finally:
            zeroize(dataset_key)
            zeroize(job_key)

    def wipe(self, stage_dir: Path, dataset_ids: Sequence[str]) -> None:
        """Delete a job's staged inputs (overwritten first)."""
        for dataset_id in dataset_ids:
            _wipe_file(stage_dir / f"{dataset_id}.blob")
