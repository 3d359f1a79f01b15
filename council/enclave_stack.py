"""Wiring of the secure-compute pieces on one host, for the CLI, the demo and benchmarks.

Started in this order and closed in reverse: the software-TPM platform (swtpm, enrolled AK),
the audit log, the PDP client, the verifier (with the ``tpm`` plugin's reference values for
this host's sandbox profile and transforms), the key broker (which measures the platform
PCR its keys are sealed to), the dataset store, the executors (enclave, and plain unless
disabled), the scheduler PEP and the release gate.

Layout of ``state_dir``: ``platform/`` (see :mod:`agents.enclave.platform`), ``datasets/``,
``jobs/`` (per-job manifests and outputs), ``verifier/`` (nonces, EAR signing keys),
``audit.db``, ``verifier-jwks.json`` (the verifier's public keys, for offline checks).

The ``sample`` attester (tests only) replaces the TPM attester; the TPM still seals keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.enclave.attesters import Attester, SampleAttester
from agents.enclave.executor import EnclaveExecutor, ExecutorConfig, PlainExecutor
from agents.enclave.platform import PlatformConfig, SoftwareTpmPlatform
from agents.enclave.sandbox import SandboxProfile, default_profile
from agents.enclave.transforms import TRANSFORMS
from gateway.attestation import ReferenceValues, sample
from gateway.enclave_audit import EnclaveAudit
from gateway.enclave_datasets import DatasetStore
from gateway.enclave_release import ReleaseGate
from gateway.enclave_verifier import EnclaveVerifier, EnclaveVerifierConfig
from gateway.key_broker import KeyBroker
from pep_sidecars.pdp_client import PDPClient, PDPClientConfig
from pep_sidecars.scheduler import EnclaveScheduler

__all__ = ["EnclaveStack", "StackConfig"]

ATTESTERS = ("tpm", "sample")


@dataclass(frozen=True)
class StackConfig:
    """Attributes:
    state_dir: where everything persists (see the module docstring).
    pdp: ``host:port`` of the PDP's gRPC listener.
    appraisal_policy: the appraisal policy id (``software-tpm`` admits this host's
        isolated-not-encrypted executor; ``default`` admits hardware TEEs only).
    attester: ``tpm``, or ``sample`` for tests of the pipeline.
    plain_executor: offer a plain executor for ``secure-compute: none`` datasets.
    job_timeout: seconds per job.
    """

    state_dir: Path
    pdp: str
    appraisal_policy: str = "software-tpm"
    attester: str = "tpm"
    plain_executor: bool = True
    job_timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.attester not in ATTESTERS:
            raise ValueError(f"attester must be one of {ATTESTERS}")


class EnclaveStack:
    """The started pieces (see the module docstring). Use ``async with``."""

    def __init__(self, config: StackConfig, *, profile: SandboxProfile | None = None) -> None:
        self.config = config
        self.profile = profile or default_profile()
        self.platform = SoftwareTpmPlatform(PlatformConfig(config.state_dir / "platform"))
        self.audit: EnclaveAudit | None = None
        self.pdp: PDPClient | None = None
        self.verifier: EnclaveVerifier | None = None
        self.broker: KeyBroker | None = None
        self.store = DatasetStore(config.state_dir / "datasets")
        self.enclave: EnclaveExecutor | None = None
        self.plain: PlainExecutor | None = None
        self.scheduler: EnclaveScheduler | None = None
        self.release_gate: ReleaseGate | None = None

    async def start(self) -> EnclaveStack:
        """Start everything (see the module docstring); on failure, close what started."""
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def _start(self) -> None:
        state = self.config.state_dir
        self.platform.start()
        self.audit = EnclaveAudit(state / "audit.db")
        self.pdp = PDPClient(PDPClientConfig(self.config.pdp))
        references: dict[str, ReferenceValues] = {
            "tpm": self.platform.reference_values(self.profile, TRANSFORMS.values())
        }
        attester: Attester = self.platform.attester()
        if self.config.attester == "sample":
            key = Ed25519PrivateKey.generate()
            references["sample"] = ReferenceValues(
                trusted_keys=frozenset({sample.raw_public_key(key)})
            )
            attester = SampleAttester(key)
        self.verifier = EnclaveVerifier(
            EnclaveVerifierConfig(
                db=state / "verifier" / "nonces.db",
                keys_dir=state / "verifier" / "keys",
                references=references,
                appraisal_policy=self.config.appraisal_policy,
            ),
            self.pdp,
            audit=self.audit,
        )
        (state / "verifier-jwks.json").write_text(json.dumps(self.verifier.jwks(), indent=1))
        self.broker = KeyBroker(self.store, self.platform.tpm, self.verifier.jwks)
        self.broker.measure_platform()
        jobs = state / "jobs"
        jobs.mkdir(exist_ok=True, mode=0o700)
        self.enclave = EnclaveExecutor(
            ExecutorConfig(jobs, "enclave", self.config.job_timeout),
            attester=attester,
            verifier=self.verifier,
            broker=self.broker,
            store=self.store,
            profile=self.profile,
            audit=self.audit,
        )
        executors: list[EnclaveExecutor | PlainExecutor] = [self.enclave]
        if self.config.plain_executor:
            self.plain = PlainExecutor(
                ExecutorConfig(jobs, "plain", self.config.job_timeout),
                store=self.store,
                profile=self.profile,
                audit=self.audit,
            )
            executors.append(self.plain)
        self.scheduler = EnclaveScheduler(self.pdp, self.store, executors, audit=self.audit)
        self.release_gate = ReleaseGate(self.verifier.jwks, audit=self.audit)

    async def close(self) -> None:
        """Close in reverse order of start. Idempotent."""
        if self.verifier is not None:
            self.verifier.close()
            self.verifier = None
        if self.pdp is not None:
            await self.pdp.close()
            self.pdp = None
        if self.audit is not None:
            self.audit.close()
            self.audit = None
        self.platform.close()

    async def __aenter__(self) -> EnclaveStack:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
