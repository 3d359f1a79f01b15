"""Per-job attestation overhead: the same job with and without attestation, in one run.

Both jobs run the same transform on the same records in the same bubblewrap sandbox:

* *attested* (the enclave executor): measured launch into the software TPM, a quote bound to
  a fresh nonce and the job's own key, verification and the Rego appraisal by a real PDP
  process, an EAR, key release (unseal from the TPM, per-job key, staging), the transform,
  DSSE signing in the job and offline verification of the outputs;
* *plain* (the plain executor): the sandbox and the transform, nothing else.

Runs alternate between the two so drift affects both alike. Printed: the median wall time per
job of each, the overhead in milliseconds, and attested/plain as a ratio.

    .venv/bin/python benchmarks/enclave_bench.py [--runs 7] [--transform entity-resolution]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.enclave.executor import JobRequest  # noqa: E402
from council.enclave_stack import EnclaveStack, StackConfig  # noqa: E402
from council.policy_build import build_bundle  # noqa: E402

BANNER = re.compile(r"grpc=([\d.]+):(\d+)")


def _records(count: int) -> bytes:
    """Person records with duplicates (entity-resolution) that also carry a text field."""
    lines = []
    for i in range(count):
        entity = i // 2
        lines.append(
            json.dumps(
                {
                    "id": f"r{i}",
                    "entity": f"e{entity}",
                    "name": f"Person {entity} Example",
                    "email": f"person{entity}@example.org",
                    "phone": f"+49 30 {1000000 + entity}",
                    "city": "Berlin",
                    "birth_year": 1970 + entity % 30,
                    "text": f"Customer {entity} asked about invoice {i}.",
                }
            )
        )
    return "\n".join(lines).encode()


def _start_pdp(work: Path) -> tuple[subprocess.Popen[str], str]:
    source = work / "rego" / "council" / "enclave"
    shutil.copytree(
        ROOT / "rego" / "council" / "enclave", source, ignore=shutil.ignore_patterns("*_test.rego")
    )
    bundle = build_bundle(work / "rego", work / "bundle.tar.gz", revision="bench").path
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "council"),
            "pdp",
            "serve",
            "--bundle",
            str(bundle),
            "--allow-unsigned",
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = BANNER.search(line)
        if match:
            return proc, f"{match.group(1)}:{match.group(2)}"
    proc.kill()
    raise RuntimeError("the PDP did not start")


async def _bench(state: Path, pdp: str, runs: int, transform: str, records: int) -> None:
    async with EnclaveStack(StackConfig(state, pdp)) as stack:
        assert stack.broker and stack.enclave and stack.plain
        data = _records(records)
        stack.broker.import_dataset("secure", data, {"secure-compute": "required"})
        stack.broker.import_dataset("public", data, {"secure-compute": "none"})
        secure = await stack.enclave.attest_platform()
        print(f"platform attestation: {secure.status}")
        attested: list[float] = []
        plain: list[float] = []
        phases: dict[str, list[float]] = {}
        for i in range(runs + 1):
            outcome = await stack.enclave.run(JobRequest(transform, ("secure",)))
            baseline = await stack.plain.run(JobRequest(transform, ("public",)))
            if not (outcome.succeeded and baseline.succeeded):
                raise RuntimeError(f"a job failed: {outcome.reasons} {baseline.reasons}")
            if i == 0:
                continue  # warm-up: first imports, model file cache
            attested.append(outcome.timings["total"])
            plain.append(baseline.timings["total"])
            for name, value in outcome.timings.items():
                phases.setdefault(name, []).append(value)
        a, p = statistics.median(attested), statistics.median(plain)
        print(f"transform={transform} records={records} runs={runs}")
        print(f"  attested job  median {a * 1000:8.1f} ms")
        print(f"  plain job     median {p * 1000:8.1f} ms")
        print(f"  overhead      {(a - p) * 1000:8.1f} ms per job")
        print(f"  attested/plain ratio {a / p:.2f}")
        detail = ", ".join(f"{k} {statistics.median(v) * 1000:.0f} ms" for k, v in phases.items())
        print(f"  attested phases (median): {detail}")


def main() -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--transform", default="entity-resolution", choices=["entity-resolution", "embeddings"]
    )
    parser.add_argument("--records", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
        work = Path(tmp)
        pdp, target = _start_pdp(work)
        try:
            asyncio.run(_bench(work / "state", target, args.runs, args.transform, args.records))
        finally:
            pdp.terminate()
            pdp.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
