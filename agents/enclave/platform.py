"""The software-TPM enclave platform on one host: swtpm, an enrolled AK, reference values.

Roles, which a real deployment keeps apart and a single host plays together here:

- *manufacturer*: provisions the TPM state with EK certificates from a local platform CA
  (:func:`agents.enclave.swtpm.provision`), once per state directory;
- *attester*: serves the state with swtpm, creates an attestation key (AK) once and keeps
  its blobs;
- *registrar*: enrols the AK at every start by credential activation against the EK
  certificate chained to the pinned CA root (:func:`gateway.attestation.tpm.begin_enrolment`),
  which yields the AK trust anchor the verifier pins;
- *reference value provider*: signs a manifest of the accepted ``transform-code`` and
  ``sandbox-profile`` digests with its own Ed25519 key (:meth:`reference_values`).

Layout of ``state_dir``: ``ca/`` (platform CA), ``tpm/`` (swtpm state), ``ak.json`` (AK
blobs, useless off this TPM), ``provider.key`` (PKCS#8, 0600).

Lifecycle: ``start()`` → use ``tpm`` / ``attester()`` / ``reference_values()`` → ``close()``
(stops swtpm). Context manager too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.enclave import measured_launch as ml
from agents.enclave import swtpm
from agents.enclave.attesters import TpmAttester
from agents.enclave.sandbox import SandboxProfile, code_listing
from agents.enclave.tpm import AttestationKey, Tpm
from agents.enclave.transforms import TransformSpec
from gateway.attestation import ReferenceValues
from gateway.attestation import tpm as tpm_verifier

__all__ = ["PlatformConfig", "SoftwareTpmPlatform", "reference_entries"]

DEFAULT_REFERENCE_LIFETIME = timedelta(days=1)
PROVIDER = "council-local-builds"
REQUIRED_EVENTS = (ml.TRANSFORM_CODE, ml.SANDBOX_PROFILE, ml.JOB_MANIFEST)


@dataclass(frozen=True)
class PlatformConfig:
    """Where the platform keeps its state (see the module docstring)."""

    state_dir: Path

    @property
    def tpm_state(self) -> Path:
        """The swtpm state directory."""
        return self.state_dir / "tpm"


def reference_entries(
    profile: SandboxProfile, transforms: Iterable[TransformSpec]
) -> list[dict[str, str]]:
    """Reference values for a profile and transforms (plus the runtime alone, which a
    platform probe measures), as ``{type, digest, description}``."""
    entries = [
        {
            "type": ml.SANDBOX_PROFILE,
            "digest": ml.Event.of(ml.SANDBOX_PROFILE, profile.canonical(), "").digest,
            "description": "bwrap --unshare-all job sandbox",
        },
        {
            "type": ml.TRANSFORM_CODE,
            "digest": ml.Event.of(ml.TRANSFORM_CODE, code_listing(None), "").digest,
            "description": "job runtime (platform probe)",
        },
    ]
    for spec in transforms:
        entries.append(
            {
                "type": ml.TRANSFORM_CODE,
                "digest": ml.Event.of(ml.TRANSFORM_CODE, code_listing(spec), "").digest,
                "description": f"transform {spec.name}",
            }
        )
    return entries


class SoftwareTpmPlatform:
    """One host's swtpm and its trust material (see the module docstring)."""

    def __init__(self, config: PlatformConfig) -> None:
        self.config = config
        self.ca = swtpm.PlatformCA(config.state_dir / "ca")
        self._server: swtpm.Swtpm | None = None
        self._tpm: Tpm | None = None
        self._ak: AttestationKey | None = None
        self.trusted_ak: bytes = b""

    @property
    def tpm(self) -> Tpm:
        """The TPM client (after :meth:`start`)."""
        if self._tpm is None:
            raise RuntimeError("the platform is not started")
        return self._tpm

    def start(self) -> SoftwareTpmPlatform:
        """Provision if needed, start swtpm, load or create the AK and enrol it."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not (self.config.tpm_state / "tpm2-00.permall").exists():
            swtpm.provision(self.config.tpm_state, self.ca)
        self._server = swtpm.Swtpm(swtpm.SwtpmConfig(self.config.tpm_state)).start()
        try:
            self._tpm = Tpm(self._server.tcti)
            self._ak = self._load_ak()
            self.trusted_ak = self._enrol(self._ak)
        except BaseException:
            self.close()
            raise
        return self

    def _load_ak(self) -> AttestationKey:
        path = self.config.state_dir / "ak.json"
        if path.exists():
            return AttestationKey.from_json(json.loads(path.read_text()))
        ak = self.tpm.create_ak()
        path.write_text(json.dumps(ak.to_json()))
        return ak

    def _enrol(self, ak: AttestationKey) -> bytes:
        enrolment = tpm_verifier.begin_enrolment(
            ak_public=ak.public,
            ek_certificate=self.tpm.ek_certificate(),
            intermediates=[self.ca.issuer_certificate.read_bytes()],
            roots=[self.ca.root_certificate.read_bytes()],
            now=datetime.now(UTC),
        )
        answer = self.tpm.activate_credential(
            ak, enrolment.credential_blob, enrolment.encrypted_secret
        )
        return enrolment.finish(answer)

    def attester(self) -> TpmAttester:
        """A measured-launch attester on this TPM with the enrolled AK."""
        if self._ak is None:
            raise RuntimeError("the platform is not started")
        return TpmAttester(self.tpm, self._ak)

    def _provider_key(self) -> Ed25519PrivateKey:
        path = self.config.state_dir / "provider.key"
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 key")
            return key
        key = Ed25519PrivateKey.generate()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        return key

    def reference_values(
        self,
        profile: SandboxProfile,
        transforms: Iterable[TransformSpec],
        *,
        lifetime: timedelta = DEFAULT_REFERENCE_LIFETIME,
    ) -> ReferenceValues:
        """The ``tpm`` plugin's reference values: the enrolled AK and a freshly signed
        manifest of ``profile`` and ``transforms`` that every launch must measure."""
        provider = self._provider_key()
        now = datetime.now(UTC)
        manifest = tpm_verifier.sign_reference_manifest(
            provider,
            provider=PROVIDER,
            reference_values=reference_entries(profile, transforms),
            required_types=REQUIRED_EVENTS,
            issued_at=now - timedelta(minutes=5),
            expires_at=now + lifetime,
        )
        raw = provider.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return tpm_verifier.reference_values(
            trusted_aks=[self.trusted_ak], manifest=manifest, provider_keys=[raw], job_events={}
        )

    def close(self) -> None:
        """Close the client and stop swtpm (which shuts the TPM down in order). Idempotent."""
        if self._tpm is not None:
            self._tpm.close()
            self._tpm = None
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> SoftwareTpmPlatform:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
