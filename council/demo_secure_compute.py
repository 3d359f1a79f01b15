"""Demo step 1, secure compute, against real processes.

A dataset labelled ``secure-compute: required`` is imported (its key sealed to the software
TPM), an embeddings job goes through the scheduler PEP to the enclave executor (measured
launch, TPM quote, Rego appraisal into an EAR, per-job key release, ``bwrap`` sandbox), its
outputs are verified offline against the job manifest, and an unlabelled dataset is refused
with the policy's reason. The executor is isolated, not encrypted: the EAR says
``software-tpm``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from council.opa_tool import PROJECT_ROOT

REVIEWS = (
    "The enclave kept the customer records sealed during training.",
    "Attestation proved which transform code touched the data.",
    "Bananas ripen faster next to apples.",
)


@dataclass
class SecureComputeOutcome:
    """What step 1 observed, for the demo's narration and its test."""

    job: dict[str, Any] = field(default_factory=dict)
    verify_exit: int = -1
    verify_output: str = ""
    refused: dict[str, Any] = field(default_factory=dict)
    jobs_summary: str = ""


def _enclave(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "council", "enclave", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
        check=False,
    )


def run_secure_compute(workdir: Path, pdp: str, say: Callable[[str], None]) -> SecureComputeOutcome:
    """Run step 1 with its own state under ``workdir``."""
    out = SecureComputeOutcome()
    workdir.mkdir(parents=True, exist_ok=True)
    state = workdir / "enclave"
    common = ["--state-dir", str(state), "--pdp", pdp]
    reviews = workdir / "reviews.jsonl"
    reviews.write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(REVIEWS))
    )
    imported = _enclave(
        "import", "reviews", str(reviews), "--label", "secure-compute=required", *common
    )
    if imported.returncode != 0:
        raise RuntimeError(f"enclave import failed: {imported.stderr}")
    say("imported dataset 'reviews' labelled secure-compute=required (key sealed to the TPM)")

    run = _enclave("run", "--dataset", "reviews", "--transform", "embeddings", *common)
    out.job = json.loads(run.stdout) if run.stdout.strip().startswith("{") else {}
    if run.returncode != 0 or out.job.get("status") != "succeeded":
        raise RuntimeError(f"enclave job failed: {run.stdout}{run.stderr}")
    say(
        f"job {out.job['job_id']} ran on the {out.job['executor']} executor, "
        f"EAR {out.job['ear_status']}, outputs signed ({out.job['envelope_digest'][:23]}...)"
    )
    timings = out.job.get("timings", {})
    say(f"    launch {timings.get('launch', 0):.2f}s, attest {timings.get('attest', 0):.3f}s, "
        f"run {timings.get('run', 0):.2f}s")  # fmt: skip

    verified = _enclave("verify", out.job["out_dir"], "--state-dir", str(state))
    out.verify_exit, out.verify_output = verified.returncode, verified.stdout.strip()
    say(f"offline verification of the outputs -> exit {verified.returncode}")
    if verified.returncode == 0:
        report = json.loads(out.verify_output)
        for name, sub in report["ear"].items():
            say(f"    EAR {name}: {sub['status']} ({sub['tee_class']}, policy {sub['policy']})")
        manifest = report["manifest_digest"][:23]
        say(f"    {len(report['subjects'])} output(s) bound to manifest {manifest}...")
    else:
        say(f"    {verified.stderr.strip()}")

    plain = workdir / "notes.jsonl"
    plain.write_text(json.dumps({"id": 1, "text": "unlabelled"}) + "\n")
    _enclave("import", "notes", str(plain), *common)
    refused = _enclave("run", "--dataset", "notes", "--transform", "embeddings", *common)
    out.refused = json.loads(refused.stdout) if refused.stdout.strip().startswith("{") else {}
    for reason in out.refused.get("reasons", []):
        say(f"unlabelled dataset refused: {reason}")

    jobs = _enclave("jobs", "--state-dir", str(state))
    out.jobs_summary = jobs.stdout.strip().splitlines()[-1] if jobs.stdout.strip() else ""
    say(out.jobs_summary)
    return out
