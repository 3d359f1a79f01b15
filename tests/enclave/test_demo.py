"""Demo step 1 against real processes: swtpm, bwrap and the PDP.

A dataset labelled ``secure-compute: required`` goes through the scheduler PEP to the
attested enclave executor; the job's measured launch is quoted by the software TPM, the
verifier's Rego appraisal affirms it under the software-tpm policy, the key broker unseals
the dataset key from the TPM and delivers a per-job key to the job's attested key, the job
computes real MiniLM embeddings inside ``bwrap --unshare-all`` and signs them, and the
outputs verify offline with nothing but the verifier's public keys.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_bwrap, needs_tpm
from enclave_data import people_jsonl, reviews_jsonl

from agents.enclave.executor import JobOutcome, JobRequest
from agents.enclave.transforms.embeddings import parse_texts
from agents.enclave.transforms.minilm import Encoder
from council.enclave_cmd import add_enclave_parser
from council.enclave_stack import EnclaveStack, StackConfig
from gateway.enclave_release import ReleaseDenied

pytestmark = [needs_tpm, needs_bwrap]


class Demo:
    """An enclave stack on its own event loop; each step runs to completion."""

    def __init__(self, state: Path, pdp: str) -> None:
        self.state = state
        self.loop = asyncio.new_event_loop()
        self.stack = EnclaveStack(StackConfig(state, pdp))
        self.loop.run_until_complete(self.stack.start())

    def submit(self, transform: str, *datasets: str) -> JobOutcome:
        assert self.stack.scheduler is not None
        request = JobRequest(transform, datasets)
        return self.loop.run_until_complete(self.stack.scheduler.submit(request))

    def close(self) -> None:
        self.loop.run_until_complete(self.stack.close())
        self.loop.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, pdp_target: str) -> Iterator[Demo]:
    started = Demo(tmp_path_factory.mktemp("enclave-state"), pdp_target)
    broker = started.stack.broker
    assert broker is not None
    broker.import_dataset("reviews", reviews_jsonl(), {"secure-compute": "required"})
    broker.import_dataset("people", people_jsonl(), {"secure-compute": "required"})
    broker.import_dataset("catalog", b'"a public sentence"\n', {"secure-compute": "none"})
    public = people_jsonl(entities=15, seed=3, prefix="q")
    broker.import_dataset("registry", public, {"secure-compute": "none"})
    broker.import_dataset("genome", b"ACGT", {"secure-compute": "hardware"})
    yield started
    started.close()


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_enclave_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["enclave", *argv])
    return int(args.func(args))


def test_demo_step_1_labelled_dataset_runs_attested_and_signed(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = demo.submit("embeddings", "reviews")
    assert outcome.succeeded, outcome.reasons
    assert outcome.executor == "enclave" and outcome.ear_status == "affirming"
    assert outcome.out_dir is not None

    # Offline verification, as a relying party: only the verifier's JWKS file is needed.
    capsys.readouterr()
    jwks = demo.state / "verifier-jwks.json"
    assert _cli("verify", str(outcome.out_dir), "--jwks", str(jwks)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] and report["job_id"] == outcome.job_id
    assert report["ear"]["tpm"]["status"] == "affirming"
    assert report["ear"]["tpm"]["tee_class"] == "software-tpm"
    assert report["envelope_digest"] == outcome.envelope_digest
    assert set(report["subjects"]) == {"embeddings.npy", "ids.json"}

    # The sandbox computed the real model's embeddings of the decrypted dataset.
    matrix = np.load(io.BytesIO((outcome.out_dir / "embeddings.npy").read_bytes()))
    ids, texts = parse_texts(reviews_jsonl())
    assert json.loads((outcome.out_dir / "ids.json").read_text()) == ids
    assert np.allclose(matrix, Encoder().encode(texts), atol=1e-5)

    # The audit row ties nonce, evidence, EAR and envelope together.
    assert demo.stack.audit is not None
    record = demo.stack.audit.job(outcome.job_id)
    assert record is not None and record.status == "succeeded"
    assert record.nonce and record.evidence_digest and record.ear_digest == outcome.ear_digest
    assert record.envelope_digest == outcome.envelope_digest

    # Nothing of the dataset is left in the job's directory but the signed outputs.
    job_dir = outcome.out_dir.parent
    assert not (job_dir / "inputs").exists()

    # The release gate lets it out.
    assert demo.stack.release_gate is not None
    released = demo.stack.release_gate.release(outcome.out_dir, demo.state / "released" / "r1")
    assert released.verified.job_id == outcome.job_id


def test_entity_resolution_over_mixed_labels_runs_in_the_enclave(demo: Demo) -> None:
    # A required dataset and a public one: the strictest label sends both to the enclave.
    outcome = demo.submit("entity-resolution", "people", "registry")
    assert outcome.succeeded, outcome.reasons
    assert outcome.executor == "enclave" and outcome.ear_status == "affirming"
    assert outcome.out_dir is not None
    metrics = json.loads((outcome.out_dir / "metrics.json").read_text())
    assert metrics["records"] > 68 and metrics["holdout"]["f1"] > 0.85
    statement = json.loads((outcome.out_dir / ".council" / "statement.dsse.json").read_text())
    assert statement["payloadType"] == "application/vnd.in-toto+json"


def test_failed_job_leaves_no_outputs_and_no_staged_inputs(demo: Demo) -> None:
    # "catalog" is not person records: the transform fails inside the attested job.
    outcome = demo.submit("entity-resolution", "people", "catalog")
    assert outcome.status == "failed" and outcome.ear_status == "affirming"
    assert "ValueError" in outcome.reasons[0]
    job_dir = demo.state / "jobs" / outcome.job_id
    assert (job_dir / "manifest.json").exists()
    assert not (job_dir / "out").exists() and not (job_dir / "inputs").exists()


def test_plain_dataset_runs_plain_and_its_output_is_not_releasable(demo: Demo) -> None:
    outcome = demo.submit("embeddings", "catalog")
    assert outcome.succeeded and outcome.executor == "plain"
    assert outcome.out_dir is not None and (outcome.out_dir / "embeddings.npy").exists()
    assert demo.stack.release_gate is not None
    with pytest.raises(ReleaseDenied) as exc:
        demo.stack.release_gate.release(outcome.out_dir, demo.state / "released" / "plain")
    assert exc.value.code == "missing"


def test_hardware_dataset_is_refused_here_with_the_reason(demo: Demo) -> None:
    outcome = demo.submit("embeddings", "genome")
    assert outcome.status == "refused"
    assert "requires a hardware TEE" in outcome.reasons[0]


def test_counters_and_jobs_command(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.stack.audit is not None
    metrics = demo.stack.audit.metrics()
    enclave_jobs = [j for j in demo.stack.audit.jobs() if j.executor == "enclave"]
    succeeded = [j for j in enclave_jobs if j.status == "succeeded"]
    # 100 % of enclave jobs attested; unsigned enclave outputs stay at 0 (the one unsigned
    # output counted is the plain job's, refused at the release gate).
    assert succeeded and all(j.ear_status == "affirming" for j in enclave_jobs)
    assert metrics["attested_jobs"] == len(enclave_jobs)
    assert all(j.envelope_digest for j in succeeded)
    capsys.readouterr()
    assert _cli("jobs", "--json", "--state-dir", str(demo.state)) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {j["job_id"] for j in listed["jobs"]} >= {j.job_id for j in enclave_jobs}
    assert listed["metrics"]["attestation_failures"] == {}


def test_council_enclave_import_and_run_commands(
    tmp_path: Path, pdp_target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    people = tmp_path / "people.jsonl"
    people.write_bytes(people_jsonl(entities=12))
    common = ["--state-dir", str(state), "--pdp", pdp_target]
    assert _cli("import", "crm", str(people), "--label", "secure-compute=required", *common) == 0
    assert json.loads(capsys.readouterr().out)["encrypted"] is True
    code = _cli(
        "run",
        "--dataset",
        "crm",
        "--transform",
        "entity-resolution",
        "--param",
        "epochs=50",
        *common,
    )
    outcome = json.loads(capsys.readouterr().out)
    assert code == 0 and outcome["status"] == "succeeded" and outcome["ear_status"] == "affirming"
    assert _cli("verify", outcome["out_dir"], "--state-dir", str(state)) == 0
    capsys.readouterr()
    # Under the hardware-only default policy this host's executor is refused.
    code = _cli(
        "run",
        "--dataset",
        "crm",
        "--transform",
        "entity-resolution",
        "--appraisal-policy",
        "default",
        *common,
    )
    refused = json.loads(capsys.readouterr().out)
    assert code == 1 and refused["status"] == "refused"
    assert "does not allow tee class software-tpm" in refused["reasons"][0]
