"""The enclave executor: measured launch, attestation, key release, sandboxed run, signed outputs.

One job on the :class:`EnclaveExecutor`, step by step:

1. Build the job manifest (transform and its code digest, sandbox profile digest, datasets
   with their digests and labels, parameters) and write it as canonical JSON.
2. Under the launch lock: measure the transform code, the sandbox profile and the manifest
   into the TPM (measured launch: PCR 23 reset, three extends, an event log); start the job
   in its sandbox (``bwrap --unshare-all --die-with-parent``, read-only code and inputs, a
   private output directory), where the job generates its own key pair and sends the public
   half; take a nonce from the verifier and have the attester quote the launch with the
   binding ``SHA-256(canonical {nonce, job_id, manifest_digest, job_public_key,
   dataset_ids})`` as report data.
3. The verifier checks the evidence and the Rego appraisal issues an EAR. Anything but
   ``affirming`` stops the job here.
4. The key broker checks the EAR against the job's key and manifest, unseals each dataset key
   from the TPM, stages the dataset under a per-job key and delivers that key encrypted to
   the job's attested X25519 key.
5. The job decrypts, runs the transform, signs its outputs with its attested key (in-toto
   Statement in a DSSE envelope) and exits. The executor verifies the output directory
   offline exactly as a relying party would; an output that does not verify counts as an
   unsigned output and the job fails.
6. Always: the staged inputs are wiped and the sandbox is gone; a job that did not succeed
   leaves no outputs behind.

The :class:`PlainExecutor` runs the same sandbox without attestation, keys or signatures, for
datasets labelled ``secure-compute: none``; it refuses any other dataset itself, whatever the
scheduler said.

Both return a :class:`JobOutcome` instead of raising for job-level failures; every job is in
the audit log with its nonce, evidence, EAR and envelope digests.

Thread-safety: one executor per event loop. Jobs may run concurrently; their measured
launches and quotes are serialized by the launch lock (one PCR 23 per TPM).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agents.enclave import measured_launch as ml
from agents.enclave import transforms
from agents.enclave.attesters import Attester
from agents.enclave.binding import JobBinding, canonical_json, sha256_digest
from agents.enclave.job_keys import JobKeys, JobPublicKey
from agents.enclave.sandbox import SandboxProfile, code_files, code_listing
from agents.enclave.signing import OutputVerificationError, verify_output_dir
from gateway.enclave_audit import EnclaveAudit
from gateway.enclave_datasets import DatasetRecord, DatasetStore
from gateway.enclave_verifier import (
    AttestationRefused,
    AttestationRequest,
    AttestationResult,
    DatasetRef,
    EnclaveVerifier,
)
from gateway.key_broker import KeyBroker, ReleaseRefused, ReleaseRequest

__all__ = [
    "EnclaveExecutor",
    "Executor",
    "ExecutorConfig",
    "JobOutcome",
    "JobRequest",
    "PlainExecutor",
    "build_manifest",
]

DEFAULT_JOB_TIMEOUT = 600.0
PLATFORM_PROBE = "platform-probe"


@dataclass(frozen=True)
class JobRequest:
    """A job to run: a transform over datasets, with JSON parameters."""

    transform: str
    dataset_ids: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    job_id: str = field(default_factory=lambda: f"job-{uuid.uuid4().hex[:16]}")

    def __post_init__(self) -> None:
        if not self.dataset_ids:
            raise ValueError("a job reads at least one dataset")
        object.__setattr__(self, "dataset_ids", tuple(sorted(set(self.dataset_ids))))


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended. ``status``: ``succeeded``, ``refused`` (policy, attestation or key
    release said no) or ``failed`` (the job or its signature broke)."""

    job_id: str
    executor: str
    status: str
    reasons: tuple[str, ...] = ()
    out_dir: Path | None = None
    manifest_digest: str = ""
    ear_status: str = ""
    ear_digest: str = ""
    envelope_digest: str = ""
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        """True for a job whose outputs exist (and, on an enclave, verified)."""
        return self.status == "succeeded"

    def to_json(self) -> dict[str, Any]:
        """As the CLI prints it."""
        return {
            "job_id": self.job_id,
            "executor": self.executor,
            "status": self.status,
            "reasons": list(self.reasons),
            "out_dir": str(self.out_dir) if self.out_dir else None,
            "manifest_digest": self.manifest_digest,
            "ear_status": self.ear_status,
            "ear_digest": self.ear_digest,
            "envelope_digest": self.envelope_digest,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


class Executor(Protocol):
    """What the scheduler dispatches to."""

    name: str
    kind: str
    tee_class: str
    hardware: bool

    async def run(self, request: JobRequest, *, scheduling_revision: str) -> JobOutcome:
        """Run one job."""
        ...


@dataclass(frozen=True)
class ExecutorConfig:
    """Where jobs live and how long they may take.

    Attributes:
        work_dir: per-job directories go in ``work_dir/<job id>/`` (``inputs/`` is wiped
            after the job; ``out/`` and ``manifest.json`` stay).
        name: the executor's name in scheduling and audit.
        job_timeout: seconds a job may take from launch to signed outputs.
    """

    work_dir: Path
    name: str = "enclave"
    job_timeout: float = DEFAULT_JOB_TIMEOUT

    def __post_init__(self) -> None:
        if self.job_timeout <= 0:
            raise ValueError("job_timeout must be positive")


def build_manifest(
    request: JobRequest,
    records: Sequence[DatasetRecord],
    profile: SandboxProfile,
    executor: str,
) -> dict[str, Any]:
    """The job manifest: what runs, on what, how sandboxed."""
    spec = transforms.get(request.transform)
    return {
        "v": 1,
        "job_id": request.job_id,
        "executor": executor,
        "transform": {"name": spec.name, "code": sha256_digest(code_listing(spec))},
        "sandbox_profile": profile.digest(),
        "datasets": [
            {
                "id": r.id,
                "digest": r.digest,
                "labels": dict(r.labels),
                "encrypted": r.encrypted,
            }
            for r in sorted(records, key=lambda r: r.id)
        ],
        "params": dict(request.params),
    }


class _Sandbox:
    """One sandboxed job process and its JSON-lines channel."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self._proc = proc
        self.stderr_path = stderr_path

    @classmethod
    async def start(cls, argv: list[str], stderr_path: Path) -> _Sandbox:
        with stderr_path.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        return cls(proc, stderr_path)

    async def receive(self, timeout: float) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        if not line:
            await self._proc.wait()
            tail = self.stderr_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(
                f"the job exited ({self._proc.returncode}) without a message: {' | '.join(tail)}"
            )
        message = json.loads(line)
        if message.get("type") == "error":
            raise RuntimeError(f"the job failed: {message.get('message')}")
        return message

    async def send(self, message: Mapping[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(message).encode() + b"\n")
        await self._proc.stdin.drain()

    async def finish(self, timeout: float) -> int:
        return await asyncio.wait_for(self._proc.wait(), timeout)

    async def kill(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()


class _JobFailure(Exception):
    def __init__(self, status: str, reasons: Sequence[str]) -> None:
        super().__init__("; ".join(reasons))
        self.status = status
        self.reasons = tuple(reasons)


def _job_dirs(work_dir: Path, job_id: str) -> tuple[Path, Path, Path]:
    job_dir = work_dir / job_id
    inputs, out = job_dir / "inputs", job_dir / "out"
    inputs.mkdir(parents=True, mode=0o700)
    out.mkdir(mode=0o700)
    return job_dir, inputs, out


class EnclaveExecutor:
    """Attested enclave jobs (see the module docstring)."""

    kind = "enclave"

    def __init__(
        self,
        config: ExecutorConfig,
        *,
        attester: Attester,
        verifier: EnclaveVerifier,
        broker: KeyBroker,
        store: DatasetStore,
        profile: SandboxProfile,
        audit: EnclaveAudit | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.tee_class = attester.tee_class
        self.hardware = attester.hardware
        self._attester = attester
        self._verifier = verifier
        self._broker = broker
        self._store = store
        self._profile = profile
        self._audit = audit
        self._launch_lock = asyncio.Lock()

    async def attest_platform(self) -> AttestationResult:
        """Attest the platform itself: a measured launch of the job runtime with a probe
        manifest, bound to a fresh nonce and a throwaway key (schedulers cache this for
        the EAR's validity; every job still attests on its own)."""
        probe_id = f"{PLATFORM_PROBE}-{uuid.uuid4().hex[:12]}"
        manifest = {"v": 1, "job_id": probe_id, "executor": self.name, "kind": PLATFORM_PROBE}
        manifest_bytes = canonical_json(manifest)
        events = [
            ml.Event.of(ml.TRANSFORM_CODE, code_listing(None), "job runtime"),
            ml.Event.of(ml.SANDBOX_PROFILE, self._profile.canonical(), "bwrap sandbox"),
            ml.Event.of(ml.JOB_MANIFEST, manifest_bytes, probe_id),
        ]
        keys = JobKeys()
        async with self._launch_lock:
            await asyncio.to_thread(self._attester.launch, events)
            binding = JobBinding.create(
                nonce=self._verifier.challenge().nonce,
                job_id=probe_id,
                manifest_digest=sha256_digest(manifest_bytes),
                job_public_key=keys.public.to_doc(),
                dataset_ids=(),
            )
            evidence = await asyncio.to_thread(self._attester.evidence, binding.report_data())
        return await self._verifier.attest(
            AttestationRequest(self._attester.plugin, evidence, binding, PLATFORM_PROBE, ())
        )

    async def run(self, request: JobRequest, *, scheduling_revision: str = "") -> JobOutcome:
        """Run one attested job; see the module docstring."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        records = [self._store.get(i) for i in request.dataset_ids]
        manifest = build_manifest(request, records, self._profile, self.name)
        manifest_bytes = canonical_json(manifest)
        manifest_digest = sha256_digest(manifest_bytes)
        job_dir, inputs_dir, out_dir = _job_dirs(self.config.work_dir, request.job_id)
        (job_dir / "manifest.json").write_bytes(manifest_bytes)
        if self._audit is not None:
            self._audit.job_started(
                request.job_id,
                transform=request.transform,
                dataset_ids=request.dataset_ids,
                executor=self.name,
            )
        outcome_fields: dict[str, Any] = {"manifest_digest": manifest_digest}
        sandbox: _Sandbox | None = None
        # Anything not caught below (cancellation) leaves the job failed, never succeeded.
        status, reasons = "failed", ("the job was interrupted",)
        try:
            spec = transforms.get(request.transform)
            events = [
                ml.Event.of(ml.TRANSFORM_CODE, code_listing(spec), f"transform {spec.name}"),
                ml.Event.of(ml.SANDBOX_PROFILE, self._profile.canonical(), "bwrap sandbox"),
                ml.Event.of(ml.JOB_MANIFEST, manifest_bytes, request.job_id),
            ]
            argv = self._profile.argv(
                code_files=code_files(spec),
                inputs_dir=inputs_dir,
                out_dir=out_dir,
                manifest=job_dir / "manifest.json",
                mode="enclave",
            )
            async with self._launch_lock:
                await asyncio.to_thread(self._attester.launch, events)
                sandbox = await _Sandbox.start(argv, job_dir / "stderr.log")
                hello = await sandbox.receive(self.config.job_timeout)
                public = JobPublicKey.from_doc(hello["job_public_key"])
                binding = JobBinding.create(
                    nonce=self._verifier.challenge().nonce,
                    job_id=request.job_id,
                    manifest_digest=manifest_digest,
                    job_public_key=public.to_doc(),
                    dataset_ids=request.dataset_ids,
                )
                evidence = await asyncio.to_thread(self._attester.evidence, binding.report_data())
            timings["launch"] = time.perf_counter() - started
            # The appraisal reads the labels from this executor's own catalogue, never from
            # the caller, so a job cannot talk its way past a hardware-only dataset.
            refs = tuple(DatasetRef(r.id, r.labels) for r in records)
            result = await self._attest(request, binding, evidence, refs)
            timings["attest"] = time.perf_counter() - started - timings["launch"]
            outcome_fields.update(ear_status=result.status, ear_digest=result.ear_digest)
            deliveries = await self._release(
                request,
                result=result,
                manifest_digest=manifest_digest,
                public=public,
                records=records,
                inputs_dir=inputs_dir,
            )
            policy_hash = sha256_digest(
                canonical_json({"appraisal": result.policy_id, "scheduling": scheduling_revision})
            )
            await sandbox.send(
                {
                    "type": "go",
                    "ear": result.ear,
                    "jwks": self._verifier.jwks(),
                    "deliveries": deliveries,
                    "policy_hash": policy_hash,
                }
            )
            run_started = time.perf_counter()
            await sandbox.receive(self.config.job_timeout)
            await sandbox.finish(self.config.job_timeout)
            timings["run"] = time.perf_counter() - run_started
            verified = self._verify_outputs(request.job_id, out_dir)
            outcome_fields["envelope_digest"] = verified
            status, reasons = "succeeded", ()
        except _JobFailure as exc:
            status, reasons = exc.status, exc.reasons
        except (RuntimeError, TimeoutError, OSError, ValueError, KeyError) as exc:
            status, reasons = "failed", (f"{type(exc).__name__}: {exc}",)
        finally:
            if sandbox is not None:
                if status != "succeeded":
                    with contextlib.suppress(Exception):
                        await sandbox.send({"type": "abort"})
                await sandbox.kill()
            self._broker.wipe(inputs_dir, request.dataset_ids)
            shutil.rmtree(inputs_dir, ignore_errors=True)
            if status != "succeeded":
                # Whatever a failed job wrote is unsigned derived data: it does not stay.
                shutil.rmtree(out_dir, ignore_errors=True)
        timings["total"] = time.perf_counter() - started
        if self._audit is not None:
            self._audit.job_finished(request.job_id, status, reasons)
        return JobOutcome(
            job_id=request.job_id,
            executor=self.name,
            status=status,
            reasons=tuple(reasons),
            out_dir=out_dir if status == "succeeded" else None,
            timings=timings,
            **outcome_fields,
        )

    async def _attest(
        self,
        request: JobRequest,
        binding: JobBinding,
        evidence: bytes,
        datasets: Sequence[DatasetRef],
    ) -> AttestationResult:
        try:
            result = await self._verifier.attest(
                AttestationRequest(
                    self._attester.plugin, evidence, binding, request.transform, tuple(datasets)
                )
            )
        except AttestationRefused as exc:
            reason = f"attestation refused ({exc.reason}): {exc.message}"
            raise _JobFailure("refused", [reason]) from exc
        if not result.affirming:
            raise _JobFailure(
                "refused", [f"attestation result is {result.status}", *result.reasons]
            )
        return result

    async def _release(
        self,
        request: JobRequest,
        *,
        result: AttestationResult,
        manifest_digest: str,
        public: JobPublicKey,
        records: Sequence[DatasetRecord],
        inputs_dir: Path,
    ) -> dict[str, Any]:
        encrypted = tuple(r.id for r in records if r.encrypted)
        for record in records:
            if not record.encrypted:
                shutil.copyfile(record.data_path, inputs_dir / record.id)
        if not encrypted:
            return {}
        release = ReleaseRequest(
            job_id=request.job_id,
            manifest_digest=manifest_digest,
            job_public_key=public,
            dataset_ids=encrypted,
        )
        try:
            return await asyncio.to_thread(self._broker.release, result.ear, release, inputs_dir)
        except ReleaseRefused as exc:
            reason = f"key release refused ({exc.code}): {exc.message}"
            raise _JobFailure("refused", [reason]) from exc

    def _verify_outputs(self, job_id: str, out_dir: Path) -> str:
        try:
            verified = verify_output_dir(out_dir, self._verifier.jwks(), now=time.time())
        except OutputVerificationError as exc:
            if self._audit is not None:
                self._audit.unsigned_output()
            reason = f"outputs are not validly signed ({exc.code}: {exc.message})"
            raise _JobFailure("failed", [reason]) from exc
        if self._audit is not None:
            self._audit.outputs_signed(job_id, verified.envelope_digest)
        return verified.envelope_digest


class PlainExecutor:
    """Sandboxed jobs without attestation, for ``secure-compute: none`` datasets only."""

    kind = "plain"
    tee_class = "none"
    hardware = False

    def __init__(
        self,
        config: ExecutorConfig,
        *,
        store: DatasetStore,
        profile: SandboxProfile,
        audit: EnclaveAudit | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self._store = store
        self._profile = profile
        self._audit = audit

    async def run(self, request: JobRequest, *, scheduling_revision: str = "") -> JobOutcome:
        """Run the transform in the sandbox on plaintext datasets."""
        started = time.perf_counter()
        records = [self._store.get(i) for i in request.dataset_ids]
        # Defence in depth: whatever the scheduler decided, a plain executor never reads a
        # dataset that is not explicitly labelled secure-compute: none.
        refused = [r.id for r in records if r.encrypted or r.labels.get("secure-compute") != "none"]
        if refused:
            return JobOutcome(
                request.job_id,
                self.name,
                "refused",
                (f"the plain executor refuses datasets {', '.join(refused)}",),
            )
        manifest = build_manifest(request, records, self._profile, self.name)
        manifest_bytes = canonical_json(manifest)
        job_dir, inputs_dir, out_dir = _job_dirs(self.config.work_dir, request.job_id)
        (job_dir / "manifest.json").write_bytes(manifest_bytes)
        if self._audit is not None:
            self._audit.job_started(
                request.job_id,
                transform=request.transform,
                dataset_ids=request.dataset_ids,
                executor=self.name,
            )
        for record in records:
            shutil.copyfile(record.data_path, inputs_dir / record.id)
        argv = self._profile.argv(
            code_files=code_files(transforms.get(request.transform)),
            inputs_dir=inputs_dir,
            out_dir=out_dir,
            manifest=job_dir / "manifest.json",
            mode="plain",
        )
        sandbox = await _Sandbox.start(argv, job_dir / "stderr.log")
        try:
            await sandbox.receive(self.config.job_timeout)
            await sandbox.finish(self.config.job_timeout)
            status, reasons = "succeeded", ()
        except (RuntimeError, TimeoutError) as exc:
            status, reasons = "failed", (str(exc),)
        finally:
            await sandbox.kill()
            shutil.rmtree(inputs_dir, ignore_errors=True)
        if self._audit is not None:
            self._audit.job_finished(request.job_id, status, reasons)
        return JobOutcome(
            request.job_id,
            self.name,
            status,
            tuple(reasons),
            out_dir if status == "succeeded" else None,
            sha256_digest(manifest_bytes),
            timings={"total": time.perf_counter() - started},
        )
