"""The enclave-scheduler PEP against the real PDP and the shipped scheduling policy.

Executors here record what they are given instead of running bwrap jobs (those run in
test_demo.py): what is under test is where the scheduler sends datasets, which the property
test checks over generated label mixes and executor sets.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.enclave.executor import JobOutcome, JobRequest
from gateway.enclave_audit import EnclaveAudit
from gateway.enclave_datasets import DatasetStore
from gateway.enclave_verifier import AttestationResult
from pep_sidecars.pdp_client import PDPClient, PDPClientConfig
from pep_sidecars.scheduler import EnclaveScheduler


@dataclass
class Recorder:
    """An executor that records the datasets it receives."""

    name: str
    kind: str
    tee_class: str
    hardware: bool
    platform_status: str = "affirming"
    received: list[tuple[str, ...]] = field(default_factory=list)
    platform_attestations: int = 0

    async def run(self, request: JobRequest, *, scheduling_revision: str) -> JobOutcome:
        self.received.append(request.dataset_ids)
        ear = "affirming" if self.kind == "enclave" else ""
        return JobOutcome(request.job_id, self.name, "succeeded", ear_status=ear)

    async def attest_platform(self) -> AttestationResult:
        self.platform_attestations += 1
        return AttestationResult(
            ear="",
            status=self.platform_status,
            reasons=() if self.platform_status == "affirming" else ("test platform refused",),
            policy_id="test",
            evidence_digest="",
            ear_digest="",
            nonce="",
            expires_at=int(time.time()) + 300,
            claims={},
        )


def enclave() -> Recorder:
    return Recorder("enclave", "enclave", "software-tpm", False)


def plain() -> Recorder:
    return Recorder("plain", "plain", "none", False)


def hardware_enclave() -> Recorder:
    return Recorder("snp-1", "enclave", "sev-snp", True)


def _store(tmp: Path, labels: dict[str, dict[str, str]]) -> DatasetStore:
    store = DatasetStore(tmp)
    for dataset_id, dataset_labels in labels.items():
        store.write(
            dataset_id,
            labels=dataset_labels,
            digest="sha256:" + "00" * 32,
            size=1,
            payload=b"x",
            encrypted=dataset_labels.get("secure-compute") != "none",
        )
    return store


def submit(
    pdp_target: str,
    store: DatasetStore,
    executors: Sequence[Recorder],
    request: JobRequest,
    audit: EnclaveAudit | None = None,
) -> JobOutcome:
    async def go() -> JobOutcome:
        async with PDPClient(PDPClientConfig(pdp_target)) as pdp:
            return await EnclaveScheduler(pdp, store, executors, audit=audit).submit(request)

    return asyncio.run(go())


LABELS = st.sampled_from(
    [
        {"secure-compute": "none"},
        {"secure-compute": "required"},
        {"secure-compute": "hardware"},
        {"secure-compute": "maybe"},
        {},
        {"colour": "red"},
        {"secure-compute": "none", "colour": "red"},
    ]
)
EXECUTOR_SETS = st.sets(st.sampled_from(["enclave", "plain", "snp-1"]), min_size=1)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(labels=st.lists(LABELS, min_size=1, max_size=4), executor_names=EXECUTOR_SETS)
def test_no_required_dataset_ever_reaches_a_plain_executor(
    pdp_target: str, tmp_path: Path, labels: list[dict[str, str]], executor_names: set[str]
) -> None:
    prefix = uuid.uuid4().hex[:8]
    catalogue = {f"{prefix}-{i}": dataset_labels for i, dataset_labels in enumerate(labels)}
    store = _store(tmp_path / prefix, catalogue)
    factories = {"enclave": enclave, "plain": plain, "snp-1": hardware_enclave}
    executors = [factories[name]() for name in sorted(executor_names)]
    outcome = submit(pdp_target, store, executors, JobRequest("embeddings", tuple(catalogue)))
    levels = [dataset_labels.get("secure-compute") for dataset_labels in labels]
    for executor in executors:
        for received in executor.received:
            got = [catalogue[d].get("secure-compute") for d in received]
            if executor.kind == "plain":
                assert all(level == "none" for level in got), (executor.name, got)
            if "hardware" in got:
                assert executor.hardware, (executor.name, got)
    ran = [e for e in executors if e.received]
    if outcome.succeeded:
        assert len(ran) == 1
        if any(level != "none" for level in levels):
            assert ran[0].kind == "enclave" and ran[0].platform_attestations == 1
    else:
        assert not ran and outcome.reasons
    clean = all(set(d) <= {"secure-compute"} for d in labels) and all(
        level in {"none", "required", "hardware"} for level in levels
    )
    if not clean:
        assert not outcome.succeeded


def test_unlabelled_and_unknown_labels_are_denied_with_reasons(
    pdp_target: str, tmp_path: Path
) -> None:
    store = _store(tmp_path, {"raw": {}, "odd": {"secure-compute": "maybe"}})
    executors = [enclave(), plain()]
    outcome = submit(pdp_target, store, executors, JobRequest("embeddings", ("raw", "odd")))
    assert outcome.status == "refused"
    assert (
        "dataset raw is unlabelled: it needs a secure-compute label before any job may read it"
        in outcome.reasons
    )
    assert any(
        r.startswith('dataset odd has an unknown secure-compute label "maybe"')
        for r in outcome.reasons
    )
    assert not any(e.received for e in executors)


def test_mixed_datasets_take_the_strictest_label(pdp_target: str, tmp_path: Path) -> None:
    store = _store(
        tmp_path, {"pub": {"secure-compute": "none"}, "pii": {"secure-compute": "required"}}
    )
    executors = [enclave(), plain()]
    outcome = submit(pdp_target, store, executors, JobRequest("embeddings", ("pub", "pii")))
    assert outcome.succeeded and outcome.executor == "enclave"
    assert executors[0].received == [("pii", "pub")] and executors[1].received == []


def test_hardware_label_refused_without_a_hardware_tee(pdp_target: str, tmp_path: Path) -> None:
    store = _store(tmp_path, {"genome": {"secure-compute": "hardware"}})
    outcome = submit(pdp_target, store, [enclave(), plain()], JobRequest("embeddings", ("genome",)))
    assert outcome.status == "refused"
    assert outcome.reasons == (
        "dataset genome requires a hardware TEE (secure-compute: hardware) and no hardware "
        "enclave executor is available (enclave executors: enclave/software-tpm)",
    )


def test_pdp_unreachable_fails_closed(tmp_path: Path) -> None:
    store = _store(tmp_path, {"pub": {"secure-compute": "none"}})
    executors = [plain()]
    outcome = submit("127.0.0.1:1", store, executors, JobRequest("embeddings", ("pub",)))
    assert outcome.status == "refused"
    assert outcome.reasons[0].startswith("no scheduling decision: policy decision point")
    assert executors[0].received == []


def test_unknown_dataset_is_refused(pdp_target: str, tmp_path: Path) -> None:
    outcome = submit(pdp_target, _store(tmp_path, {}), [plain()], JobRequest("embeddings", ("x",)))
    assert outcome.reasons == ("dataset x is not known",)


def test_platform_not_affirming_refuses_the_job(pdp_target: str, tmp_path: Path) -> None:
    store = _store(tmp_path, {"pii": {"secure-compute": "required"}})
    bad = enclave()
    bad.platform_status = "contraindicated"
    outcome = submit(pdp_target, store, [bad], JobRequest("embeddings", ("pii",)))
    assert outcome.status == "refused" and bad.received == []
    assert "is not attested (contraindicated)" in outcome.reasons[0]


def test_platform_attestation_is_cached_but_jobs_still_run_their_own(
    pdp_target: str, tmp_path: Path
) -> None:
    store = _store(tmp_path, {"pii": {"secure-compute": "required"}})
    executor = enclave()
    audit = EnclaveAudit(tmp_path / "audit.db")

    async def go() -> list[JobOutcome]:
        async with PDPClient(PDPClientConfig(pdp_target)) as pdp:
            scheduler = EnclaveScheduler(pdp, store, [executor], audit=audit)
            first = await scheduler.submit(JobRequest("embeddings", ("pii",)))
            second = await scheduler.submit(JobRequest("embeddings", ("pii",)))
            scheduler.forget_platforms()
            third = await scheduler.submit(JobRequest("embeddings", ("pii",)))
            return [first, second, third]

    outcomes = asyncio.run(go())
    assert all(o.succeeded for o in outcomes)
    assert len({o.job_id for o in outcomes}) == 3 and len(executor.received) == 3
    assert executor.platform_attestations == 2
    assert audit.metrics()["jobs"] == 3


def test_refusals_are_audited(pdp_target: str, tmp_path: Path) -> None:
    store = _store(tmp_path, {"raw": {}})
    audit = EnclaveAudit(tmp_path / "audit.db")
    request = JobRequest("embeddings", ("raw",))
    submit(pdp_target, store, [plain()], request, audit)
    record = audit.job(request.job_id)
    assert record is not None and record.status == "refused"
    assert record.reasons and record.reasons[0].startswith("dataset raw is unlabelled")
