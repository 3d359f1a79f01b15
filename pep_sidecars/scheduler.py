"""The enclave-scheduler PEP: where a job may run is the PDP's decision, enforced here.

For every submitted job the scheduler looks up the labels of its datasets in the catalogue,
asks the PDP (``council/enclave/scheduling/decision``) with the job, those datasets and the
executors it has, and enforces the answer:

- a denial (unlabelled dataset, unknown label, no executor that satisfies the strictest
  label, unknown transform ...) refuses the job with the policy's reasons;
- an allow names the executor in its obligations. When the obligations require attestation,
  the executor must be an enclave executor whose platform attestation is affirming (cached
  for at most the policy's ``platform_cache_seconds`` and the EAR's own validity), and the job
  itself then attests with its own nonce and key inside the executor; its outcome must carry
  an affirming EAR;
- a plain executor is never given a dataset that is not labelled ``secure-compute: none``,
  whatever the PDP said (the plain executor checks this again).

Fail closed: a PDP that cannot be reached, an answer without a usable executor, or any
mismatch between the obligations and the executor refuses the job. Every submitted job gets
an audit row (refusals included).

Thread-safety: one scheduler per event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agents.enclave.executor import Executor, JobOutcome, JobRequest
from gateway.enclave_audit import EnclaveAudit
from gateway.enclave_datasets import DatasetStore, UnknownDataset
from gateway.enclave_verifier import AttestationRefused, AttestationResult, DatasetRef
from pep_sidecars.pdp_client import PDPClient, PDPUnavailable

__all__ = ["SCHEDULING_ENTRYPOINT", "EnclaveScheduler", "PlatformAttester", "SchedulerConfig"]

SCHEDULING_ENTRYPOINT = "council/enclave/scheduling/decision"
NO_EXECUTOR = "none"


class PlatformAttester(Protocol):
    """An enclave executor that can attest its platform."""

    async def attest_platform(self) -> AttestationResult:
        """A platform attestation result."""
        ...


@dataclass(frozen=True)
class SchedulerConfig:
    """Attributes:
    entrypoint: the PDP entrypoint of the scheduling policy.
    """

    entrypoint: str = SCHEDULING_ENTRYPOINT


@dataclass(frozen=True)
class _CachedPlatform:
    status: str
    reasons: tuple[str, ...]
    expires_at: float


class EnclaveScheduler:
    """Dispatches jobs as the scheduling policy decides (see the module docstring)."""

    def __init__(
        self,
        pdp: PDPClient,
        store: DatasetStore,
        executors: Sequence[Executor],
        *,
        config: SchedulerConfig | None = None,
        audit: EnclaveAudit | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        names = [e.name for e in executors]
        if len(set(names)) != len(names):
            raise ValueError(f"executor names must be unique: {names}")
        self.config = config or SchedulerConfig()
        self._pdp = pdp
        self._store = store
        self._executors = {e.name: e for e in executors}
        self._audit = audit
        self._clock = clock
        self._platforms: dict[str, _CachedPlatform] = {}
        self._platform_lock = asyncio.Lock()

    def _refuse(self, request: JobRequest, executor: str, reasons: Sequence[str]) -> JobOutcome:
        if self._audit is not None:
            self._audit.job_finished(request.job_id, "refused", reasons)
        return JobOutcome(request.job_id, executor, "refused", tuple(reasons))

    async def submit(self, request: JobRequest) -> JobOutcome:
        """Decide, enforce and run one job; see the module docstring."""
        if self._audit is not None:
            self._audit.job_started(
                request.job_id,
                transform=request.transform,
                dataset_ids=request.dataset_ids,
                executor=NO_EXECUTOR,
            )
        try:
            datasets = [DatasetRef(i, self._store.get(i).labels) for i in request.dataset_ids]
        except UnknownDataset as exc:
            return self._refuse(request, NO_EXECUTOR, [f"dataset {exc.args[0]} is not known"])
        input_doc = {
            "job": {"id": request.job_id, "transform": request.transform},
            "datasets": [d.to_json() for d in datasets],
            "executors": [
                {"name": e.name, "kind": e.kind, "tee_class": e.tee_class, "hardware": e.hardware}
                for e in self._executors.values()
            ],
        }
        try:
            decision = await self._pdp.decide(self.config.entrypoint, input_doc)
        except PDPUnavailable as exc:
            return self._refuse(request, NO_EXECUTOR, [f"no scheduling decision: {exc.message}"])
        if not decision.allow:
            return self._refuse(request, NO_EXECUTOR, decision.reasons or ("denied by policy",))
        obligations = decision.obligations
        executor = self._executors.get(str(obligations.get("executor", "")))
        if executor is None:
            return self._refuse(
                request, NO_EXECUTOR, ["the scheduling decision names no known executor"]
            )
        problem = self._check(executor, obligations, datasets)
        if problem is None and obligations.get("attestation") == "required":
            problem = await self._check_platform(executor, obligations)
        if problem is not None:
            return self._refuse(request, executor.name, [problem])
        outcome = await executor.run(request, scheduling_revision=decision.revision)
        if (
            obligations.get("attestation") == "required"
            and outcome.succeeded
            and outcome.ear_status != "affirming"
        ):
            # An enclave that reports success without an affirming EAR is not trusted.
            return self._refuse(request, executor.name, ["the job ran without an affirming EAR"])
        return outcome

    def _check(
        self, executor: Executor, obligations: dict[str, Any], datasets: Sequence[DatasetRef]
    ) -> str | None:
        if obligations.get("attestation") == "required" and executor.kind != "enclave":
            return f"attestation is required but {executor.name} is not an enclave executor"
        if obligations.get("hardware") is True and not executor.hardware:
            return f"a hardware TEE is required but {executor.name} has none"
        if executor.kind != "enclave":
            labelled = [d.id for d in datasets if d.labels.get("secure-compute") != "none"]
            if labelled:
                return (
                    f"datasets {', '.join(labelled)} may not run on the plain executor "
                    f"{executor.name}"
                )
        return None

    async def _check_platform(self, executor: Executor, obligations: dict[str, Any]) -> str | None:
        attester = executor if hasattr(executor, "attest_platform") else None
        if attester is None:
            return f"{executor.name} cannot attest its platform"
        now = self._clock()
        async with self._platform_lock:
            cached = self._platforms.get(executor.name)
            if cached is None or cached.expires_at <= now:
                cached = await self._attest_platform(attester, obligations, now)
                self._platforms[executor.name] = cached
        if cached.status != "affirming":
            detail = "; ".join(cached.reasons)
            return f"the platform of {executor.name} is not attested ({cached.status}): {detail}"
        return None

    async def _attest_platform(
        self, attester: Any, obligations: dict[str, Any], now: float
    ) -> _CachedPlatform:
        ttl = float(obligations.get("platform_cache_seconds", 0) or 0)
        try:
            result: AttestationResult = await attester.attest_platform()
        except AttestationRefused as exc:
            # Failures are not cached: the next job tries again.
            return _CachedPlatform("refused", (f"{exc.reason}: {exc.message}",), now)
        # Cached for the policy's window, and never beyond the EAR's own validity.
        expires = min(now + ttl, float(result.expires_at)) if result.affirming else now
        return _CachedPlatform(result.status, result.reasons, expires)

    def forget_platforms(self) -> None:
        """Drop cached platform attestations (e.g. after a platform change)."""
        self._platforms.clear()
