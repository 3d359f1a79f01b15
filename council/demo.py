"""``council demo``: Council's processes started for real, and the product demo run against them.

The demo builds and signs the shipped policies with a development key, starts the PDP as
its own process (``council pdp serve``), and walks through the steps of DESIGN.md's demo
that are built so far, each against the live processes over real sockets. Steps whose
capability is not built yet say so plainly; nothing is simulated.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from council.opa_tool import PROJECT_ROOT
from council.policy_build import build_bundle
from council.processes import spawn_council
from pdp.bundle_signing import sign_bundle

DEV_KEYS = PROJECT_ROOT / ".cache" / "dev-keys"


@dataclass
class Stack:
    """The running processes and where they listen."""

    workdir: Path
    pdp_grpc: str = ""
    pdp_http: str = ""
    processes: list[subprocess.Popen[str]] = field(default_factory=list)


def _dev_signing_key() -> tuple[ec.EllipticCurvePrivateKey, Path]:
    """The development bundle-signing key (ES256), created once under .cache/dev-keys."""
    DEV_KEYS.mkdir(parents=True, exist_ok=True)
    private = DEV_KEYS / "bundle-signing.pem"
    public = DEV_KEYS / "bundle-signing.pub.pem"
    if not private.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        private.chmod(0o600)
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    loaded = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    return loaded, public


@contextmanager
def running_stack(workdir: Path) -> Iterator[Stack]:
    """Build, sign and serve the policies; stop every process on exit."""
    stack = Stack(workdir)
    key, public = _dev_signing_key()
    bundle = workdir / "council-bundle.tar.gz"
    build_bundle(PROJECT_ROOT / "rego", bundle, revision=time.strftime("demo-%Y%m%dT%H%M%S"))
    bundle.write_bytes(sign_bundle(bundle, key, "ES256"))
    try:
        match = spawn_council(
            [
                "pdp",
                "serve",
                "--bundle",
                str(bundle),
                "--grpc",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--verification-key",
                str(public),
                "--signing-alg",
                "ES256",
                "--log",
                str(workdir / "decisions.db"),
            ],
            r"grpc=(\S+) http=(\S+)",
            stack.processes,
            workdir / "logs" / "pdp.log",
        )
        stack.pdp_grpc, stack.pdp_http = match.group(1), match.group(2)
        yield stack
    finally:
        for proc in reversed(stack.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in stack.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


# --- steps -----------------------------------------------------------------------------------


def _decide(stack: Stack, entrypoint: str, doc: dict[str, object]) -> object:
    from proto.council.v1 import decisions_pb2, decisions_pb2_grpc

    with grpc.insecure_channel(stack.pdp_grpc) as channel:
        stub = decisions_pb2_grpc.DecisionsStub(channel)
        return stub.Decide(
            decisions_pb2.DecideRequest(entrypoint=entrypoint, input_json=json.dumps(doc).encode())
        )


def step_policy_decisions(stack: Stack, say: Callable[[str], None]) -> None:
    """The PDP answers with the policy's own reasons, over gRPC and AuthZEN."""
    request = {
        "subject": {"id": "bob"},
        "action": "read",
        "resource": {"type": "dataset", "tenant": "globex", "labels": ["pii"]},
        "context": {"ip": "203.0.113.9"},
    }
    decision = _decide(stack, "council/authz/decision", request)
    say(f"bob reads a globex pii dataset -> allow={decision.allow}")  # type: ignore[attr-defined]
    for reason in decision.reasons:  # type: ignore[attr-defined]
        say(f"    reason: {reason}")
    ok = _decide(
        stack,
        "council/authz/decision",
        {
            **request,
            "resource": {"type": "dataset", "tenant": "acme"},
            "context": {"ip": "10.1.2.3"},
        },
    )
    say(f"bob reads an acme dataset from 10.1.2.3 -> allow={ok.allow} (decision {ok.decision_id})")  # type: ignore[attr-defined]
    body = json.dumps(
        {
            "subject": {
                "type": "user",
                "id": "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
            },
            "action": {"name": "can_delete_todo"},
            "resource": {
                "type": "todo",
                "id": "7240d0db-8ff0-41ec-98b2-34a096273b9f",
                "properties": {"ownerID": "rick@the-citadel.com"},
            },
        }
    ).encode()
    req = urllib.request.Request(
        f"http://{stack.pdp_http}/access/v1/evaluation",
        data=body,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = json.loads(resp.read())
    say(f"AuthZEN: Rick deletes a todo he owns -> decision={answer['decision']}")


def step_secure_compute(stack: Stack, say: Callable[[str], None]) -> None:
    """Demo step 1 (see :mod:`council.demo_secure_compute`)."""
    from council.demo_secure_compute import run_secure_compute

    run_secure_compute(stack.workdir / "step1", stack.pdp_grpc, say)


def step_zero_trust(stack: Stack, say: Callable[[str], None]) -> None:
    """Demo step 4 (see :mod:`council.demo_zero_trust`)."""
    from council.demo_zero_trust import run_zero_trust

    run_zero_trust(stack.workdir / "step4", stack.pdp_grpc, stack.processes, say)


def step_decision_log(stack: Stack, say: Callable[[str], None]) -> None:
    """Every decision is in the hash-chained log, which verifies."""
    from pdp.decision_log import verify

    pdp = stack.processes[0]
    pdp.send_signal(signal.SIGTERM)
    pdp.wait(timeout=20)
    report = verify(stack.workdir / "decisions.db")
    say(
        f"decision log: {report.rows} decisions, chain intact={report.ok}, "
        f"signed checkpoints={report.checkpoints}"
    )


@dataclass(frozen=True)
class Step:
    """One numbered step of the demo."""

    title: str
    run: Callable[[Stack, Callable[[str], None]], None] | None
    missing: str = ""


def steps() -> list[Step]:
    """DESIGN.md's demo, in order, plus the PDP walkthrough it stands on."""
    return [
        Step("PDP: decisions with the policy's reasons (gRPC, AuthZEN)", step_policy_decisions),
        Step(
            "1. secure-compute dataset runs an attested enclave job with signed outputs",
            step_secure_compute,
        ),
        Step(
            "2. feedback -> retrain proposal -> approval -> retrain",
            None,
            "capability 2 (continuous learning) is not built yet",
        ),
        Step(
            "3. tenant analytics report, invoice stub, quota block with explanation",
            None,
            "capability 3 (analytics, billing, quotas) is not built yet",
        ),
        Step(
            "4. admin session with short-lived token + posture; webhook denied by the PEP",
            step_zero_trust,
        ),
        Step(
            "5. cold tier, rot repair, PII minimization",
            None,
            "capability 5 (data lifecycle hygiene) is not built yet",
        ),
        Step(
            "6. incident resolved with the support toolkit; telemetry dashboard",
            None,
            "capability 6 (customer operations) is not built yet",
        ),
        Step("Decision log verification", step_decision_log),
    ]


def run_demo(say: Callable[[str], None] = print) -> int:
    """Run every available step; returns a process exit code."""
    failures = 0
    with (
        tempfile.TemporaryDirectory(prefix="council-demo-") as tmp,
        running_stack(Path(tmp)) as stack,
    ):
        say(f"PDP listening: grpc={stack.pdp_grpc} http={stack.pdp_http}")
        for step in steps():
            say("")
            say(f"== {step.title}")
            if step.run is None:
                say(f"   not available: {step.missing}")
                continue
            try:
                step.run(stack, lambda line: say("   " + line))
            except Exception as exc:
                failures += 1
                say(f"   FAILED: {exc}")
    return 1 if failures else 0
