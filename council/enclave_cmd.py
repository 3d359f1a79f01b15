"""``council enclave``: secure-compute jobs from the command line.

    council enclave import ID FILE --label secure-compute=required [--state-dir D]
    council enclave run --dataset D [--dataset D2] --transform T [--param K=V] [--pdp HOST:PORT]
    council enclave verify OUTPUT_DIR [--jwks FILE]
    council enclave jobs [--json]

``run`` starts this host's enclave stack (swtpm, verifier, key broker, executors) from the
state directory, submits the job through the scheduler PEP, which asks the PDP (``council pdp
serve`` must be running with a bundle built from ``rego/``), and prints the outcome. ``verify``
checks a signed output directory offline with the verifier's public keys (the state
directory's ``verifier-jwks.json`` unless ``--jwks``). ``jobs`` prints the audit rows and the
counters. Exit codes: 0 done, 1 refused or failed, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_STATE_DIR = Path(".council") / "enclave"
DEFAULT_PDP = "127.0.0.1:9191"


def _print_json(value: object) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")


def _pairs(values: list[str] | None, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} must be KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _stack_config(args: argparse.Namespace) -> Any:
    from council.enclave_stack import StackConfig

    return StackConfig(
        state_dir=Path(args.state_dir),
        pdp=args.pdp,
        appraisal_policy=args.appraisal_policy,
    )


def cmd_import(args: argparse.Namespace) -> int:
    """Store a dataset with its labels (encrypted and sealed unless secure-compute: none)."""
    from council.enclave_stack import EnclaveStack

    labels = {k: str(v) for k, v in _pairs(args.label, "--label").items()}
    data = Path(args.file).read_bytes()

    async def run() -> Any:
        async with EnclaveStack(_stack_config(args)) as stack:
            assert stack.broker is not None
            return stack.broker.import_dataset(args.id, data, labels)

    record = asyncio.run(run())
    _print_json(record.to_json())
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Submit one job through the scheduler and print its outcome."""
    from agents.enclave.executor import JobRequest
    from council.enclave_stack import EnclaveStack

    request = JobRequest(args.transform, tuple(args.dataset), _pairs(args.param, "--param"))

    async def run() -> Any:
        async with EnclaveStack(_stack_config(args)) as stack:
            assert stack.scheduler is not None
            return await stack.scheduler.submit(request)

    outcome = asyncio.run(run())
    _print_json(outcome.to_json())
    return EXIT_OK if outcome.succeeded else EXIT_FAIL


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify a signed output directory offline."""
    from agents.enclave.signing import OutputVerificationError, verify_output_dir

    jwks_path = Path(args.jwks) if args.jwks else Path(args.state_dir) / "verifier-jwks.json"
    try:
        jwks = json.loads(jwks_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"error: cannot read the verifier's keys from {jwks_path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        verified = verify_output_dir(Path(args.output_dir), jwks)
    except OutputVerificationError as exc:
        print(f"REFUSED {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_FAIL
    submods = {
        name: {"status": s.status, "tee_class": s.tee_class, "policy": s.policy_id}
        for name, s in verified.ear.submods.items()
    }
    _print_json(
        {
            "verified": True,
            "job_id": verified.job_id,
            "manifest_digest": verified.manifest_digest,
            "envelope_digest": verified.envelope_digest,
            "subjects": dict(verified.subjects),
            "inputs": verified.predicate.get("inputs", []),
            "ear": submods,
        }
    )
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace) -> int:
    """Print the audited jobs and the counters."""
    from gateway.enclave_audit import EnclaveAudit

    path = Path(args.state_dir) / "audit.db"
    if not path.exists():
        print(f"no enclave jobs yet ({path} does not exist)", file=sys.stderr)
        return EXIT_OK
    audit = EnclaveAudit(path)
    try:
        jobs, metrics = audit.jobs(limit=args.limit), audit.metrics()
    finally:
        audit.close()
    if args.json:
        _print_json({"jobs": [j.to_dict() for j in jobs], "metrics": metrics})
        return EXIT_OK
    for job in jobs:
        print(
            f"{job.job_id}  {job.status:<9} {job.executor:<8} {job.transform:<18} "
            f"{','.join(job.dataset_ids)}  ear={job.ear_status or '-'}"
        )
        print(f"    nonce={job.nonce or '-'} evidence={job.evidence_digest or '-'}")
        print(f"    ear={job.ear_digest or '-'} envelope={job.envelope_digest or '-'}")
        for reason in job.reasons:
            print(f"    reason: {reason}")
    failures = ", ".join(f"{k}={v}" for k, v in sorted(metrics["attestation_failures"].items()))
    print(
        f"jobs={metrics['jobs']} attested={metrics['attested_jobs']} "
        f"unsigned_outputs={metrics['unsigned_outputs']} "
        f"attestation_failures: {failures or 'none'}"
    )
    return EXIT_OK


def add_enclave_parser(subparsers: Any) -> None:
    """Register ``council enclave import|run|verify|jobs`` on the top-level parser."""
    enclave = subparsers.add_parser("enclave", help="attested secure-compute jobs").add_subparsers(
        dest="enclave_cmd", required=True
    )

    def common(p: argparse.ArgumentParser, *, stack: bool) -> None:
        p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="enclave state")
        if stack:
            p.add_argument("--pdp", default=DEFAULT_PDP, help="PDP gRPC HOST:PORT")
            p.add_argument(
                "--appraisal-policy",
                default="software-tpm",
                help="appraisal policy id (software-tpm: this host's isolated, not encrypted "
                "executor; default: hardware TEEs only)",
            )

    p = enclave.add_parser("import", help="store a labelled dataset (sealed to the TPM)")
    p.add_argument("id")
    p.add_argument("file")
    p.add_argument("--label", action="append", help="KEY=VALUE, e.g. secure-compute=required")
    common(p, stack=True)
    p.set_defaults(func=cmd_import)

    p = enclave.add_parser("run", help="submit a job through the scheduler")
    p.add_argument("--dataset", action="append", required=True, help="dataset id; repeatable")
    p.add_argument("--transform", required=True, help="embeddings | entity-resolution")
    p.add_argument("--param", action="append", help="KEY=VALUE transform parameter")
    common(p, stack=True)
    p.set_defaults(func=cmd_run)

    p = enclave.add_parser("verify", help="verify signed outputs offline")
    p.add_argument("output_dir")
    p.add_argument("--jwks", help="the verifier's JWK Set (default: STATE/verifier-jwks.json)")
    common(p, stack=False)
    p.set_defaults(func=cmd_verify)

    p = enclave.add_parser("jobs", help="list audited jobs and counters")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    common(p, stack=False)
    p.set_defaults(func=cmd_jobs)
