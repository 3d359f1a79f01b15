"""Demo step 4 as one test against real processes: a high-risk admin call is refused without
posture and allowed with a short-lived token plus a fresh signed posture report; a signed
webhook the policy denies is answered with the policy's reason."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from pdp_harness import SigningKey, build_signed, running_pdp

from council.demo_zero_trust import run_zero_trust
from council.opa_tool import PROJECT_ROOT
from gateway.pdp_server import PDPServerConfig


def test_demo_step_4(tmp_path: Path) -> None:
    key = SigningKey()
    bundle = build_signed(PROJECT_ROOT / "rego", tmp_path / "bundle.tar.gz", key, "step4")
    processes: list[subprocess.Popen[str]] = []
    lines: list[str] = []
    with running_pdp(PDPServerConfig(bundle=str(bundle), keys=key.keys())) as (pdp, _):
        try:
            outcome = run_zero_trust(
                tmp_path / "step4", f"127.0.0.1:{pdp.grpc_port}", processes, lines.append
            )
        finally:
            for proc in processes:
                proc.send_signal(signal.SIGTERM)
            for proc in processes:
                assert proc.wait(timeout=30) == 0

    assert outcome.admin_without_posture == 1
    assert "device posture check fresh failed" in outcome.admin_without_posture_reason
    assert outcome.admin_with_posture == 0
    assert 0 < outcome.token_lifetime <= 900
    assert set(outcome.posture_facts) >= {
        "disk_encrypted",
        "firewall_on",
        "kernel",
        "days_since_update",
    }
    assert 200 <= outcome.webhook_allowed_status < 300
    assert outcome.webhook_denied_status == 403
    problem = outcome.webhook_denied_problem
    assert problem["decision_id"]
    assert any("invoice.paid" in reason for reason in problem["reasons"])
    assert any("-> HTTP 403" in line for line in lines)
    assert outcome.connector_allowed_status == 200 and outcome.connector_rows == 2
    assert outcome.connector_denied_status == 403
    assert outcome.connector_denied_problem["decision_id"]
    assert any("pii" in reason for reason in outcome.connector_denied_problem["reasons"])


def test_council_demo_runs_every_built_step() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "council", "demo"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "FAILED" not in result.stdout
    assert "EAR affirming" in result.stdout
    assert "-> HTTP 403" in result.stdout
    assert "chain intact=True" in result.stdout
