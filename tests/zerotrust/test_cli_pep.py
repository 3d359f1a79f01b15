"""The CLI enforcement point over real processes and sockets.

A real PDP serves a bundle built and signed from ``rego/``; a real ``grpc.aio`` gateway on
127.0.0.1 serves ``Tokens`` (JWKS), ``Posture`` (a real intake with enrolled devices and
signed reports) and a minimal ``Usage`` servicer that records the events it receives.
``council exec`` runs as a real subprocess (``python -m council exec``); commands run under a
real pty when recorded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from pdp_harness import LoopThread, RecordingUsage, SigningKey, build_signed, running_pdp

from agents import posture_keys
from agents.posture import Fact, build_report
from council.opa_tool import PROJECT_ROOT
from gateway.pdp_server import PDPServerConfig
from gateway.posture import PostureConfig, PostureIntake
from gateway.posture_servicer import add_posture_service
from gateway.tokens import CredentialStore, KeyRing, TokenConfig, TokenService
from gateway.tokens_servicer import TokensServicer
from pdp.config import HostConfig
from pep_sidecars.cli_pep import (
    CLIContext,
    CLIDeniedError,
    DecisionUnavailableError,
    ObligationError,
    authorize_cli,
)
from pep_sidecars.session_recorder import (
    RecorderConfig,
    RecorderSetupError,
    RecordingExistsError,
    RecordingInvalidError,
    SessionRecorder,
    load_public_key,
    recorded_output,
    verify_recording,
)
from proto.council.v1 import tokens_pb2_grpc, usage_pb2_grpc

REGO = PROJECT_ROOT / "rego"
TENANT = "acme"

GOOD_FACTS = {
    "os": Fact(
        {"id": "debian", "name": "Debian", "version_id": "12", "pretty_name": "D"}, True, "t"
    ),
    "kernel": Fact("6.1.0-18-amd64", True, "uname"),
    "days_since_update": Fact(2, True, "/var/log/dpkg.log"),
    "disk_encrypted": Fact(True, True, "/sys/dev/block/254:1/dm/uuid", "CRYPT-LUKS2"),
    "firewall_on": Fact(True, True, "netlink nf_tables", "inet filter input policy drop"),
    "screen_lock": Fact("not_applicable", True, "environment", "no display"),
    "agent_version": Fact("0.1.0", True, "package metadata"),
}
UNENCRYPTED = {
    **GOOD_FACTS,
    "disk_encrypted": Fact(False, True, "/proc/self/mounts", "root on /dev/sda1"),
}


# --- the gateway --------------------------------------------------------------------------


class Clock:
    """The gateway's clock: real time plus an offset a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Gateway:
    address: str
    tokens: TokenService
    keys: KeyRing
    intake: PostureIntake
    usage: RecordingUsage
    clock: Clock

    def token(self, *scopes: str, device_id: str = "", **kw: Any) -> str:
        return self.tokens.issue("alice", TENANT, scopes, device_id=device_id, **kw).token

    def device(self, device_id: str, facts: dict[str, Fact] | None = GOOD_FACTS) -> None:
        """Enroll a device and, unless ``facts`` is None, submit a signed report of them."""
        key = posture_keys.load_device_key(self.keys.directory.parent / device_id, create=True)
        self.intake.enroll(device_id, key.public_key, TENANT)
        if facts is not None:
            request = posture_keys.sign_report(key, build_report(device_id, facts))
            self.intake.submit(device_id, request.report_json, request.signature)


@contextlib.contextmanager
def running_gateway(loop: LoopThread, root: Path) -> Iterator[Gateway]:
    config = TokenConfig(audiences=("council", "council-connector"))
    keys = KeyRing(root / "keys", config)
    service = TokenService(config, keys)
    credentials = CredentialStore(root / "credentials.db")
    clock = Clock()
    intake = PostureIntake(PostureConfig(db_path=root / "posture.db"), clock=clock)
    usage = RecordingUsage()
    executor = ThreadPoolExecutor(max_workers=2)

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        tokens_pb2_grpc.add_TokensServicer_to_server(TokensServicer(service, credentials), server)
        add_posture_service(server, intake, executor)
        usage_pb2_grpc.add_UsageServicer_to_server(usage, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = loop.run(start())
    try:
        yield Gateway(f"127.0.0.1:{port}", service, keys, intake, usage, clock)
    finally:
        loop.run(server.stop(grace=None))
        executor.shutdown(wait=True)
        intake.close()
        credentials.close()


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pdp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LoopThread]]:
    key = SigningKey()
    bundle = build_signed(REGO, tmp_path_factory.mktemp("bundle") / "b.tar.gz", key, "rev-cli")
    config = PDPServerConfig(
        bundle=str(bundle), keys=key.keys(), poll_interval=3600, host=HostConfig(pool_size=2)
    )
    with running_pdp(config) as (server, loop):
        yield f"127.0.0.1:{server.grpc_port}", loop


@pytest.fixture
def gateway(pdp: tuple[str, LoopThread], tmp_path: Path) -> Iterator[Gateway]:
    with running_gateway(pdp[1], tmp_path / "gateway") as gw:
        yield gw


@pytest.fixture
def closed_port() -> str:
    """An address nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class Exec:
    returncode: int
    stdout: str
    stderr: str


def exec_args(tmp_path: Path, pdp: str, feature: str, command: list[str], *flags: str) -> list[str]:
    """The ``council exec`` command line with its state under ``tmp_path``."""
    return [
        sys.executable,
        "-m",
        "council",
        "exec",
        "--feature",
        feature,
        "--pdp",
        pdp,
        "--usage-spool",
        str(tmp_path / "usage.db"),
        "--recording-dir",
        str(tmp_path / "recordings"),
        "--recording-key",
        str(tmp_path / "recorder.key"),
        *flags,
        "--",
        *command,
    ]


EXEC_ENV = {k: v for k, v in os.environ.items() if k != "COUNCIL_TOKEN"}


def council_exec(tmp_path: Path, pdp: str, feature: str, command: list[str], *flags: str) -> Exec:
    """Run ``council exec`` as a subprocess, stdin closed, output captured."""
    res = subprocess.run(
        exec_args(tmp_path, pdp, feature, command, *flags),
        check=False,
        cwd=tmp_path,
        env=EXEC_ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Exec(res.returncode, res.stdout, res.stderr)


def marker_command(marker: Path, code: int = 0) -> list[str]:
    """A command that leaves ``marker`` behind, prints a line and exits with ``code``."""
    return ["sh", "-c", f"echo ran > {marker}; echo hello from the command; exit {code}"]


def sealed_dirs(tmp_path: Path) -> list[Path]:
    root = tmp_path / "recordings"
    return sorted(p for p in root.glob("??/*") if p.is_dir()) if root.exists() else []


# --- council exec --------------------------------------------------------------------------


def test_allowed_command_runs_and_its_exit_code_is_propagated(
    pdp: tuple[str, LoopThread], gateway: Gateway, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    token = gateway.token("cli:exec")
    res = council_exec(
        tmp_path, pdp[0], "exec:diagnostics", marker_command(marker, 7),
        "--gateway", gateway.address, "--token", token,
    )  # fmt: skip
    assert res.returncode == 7, res.stderr
    assert marker.read_text() == "ran\n"
    assert "hello from the command" in res.stdout
    assert res.stderr == ""  # council exec adds nothing to an allowed command's output
    assert sealed_dirs(tmp_path) == []  # not a high-risk feature: no recording
    [event] = gateway.usage.events
    assert event.feature == "cli:exec:diagnostics"
    assert event.allowed and event.decision_id
    assert event.tenant == TENANT and event.subject == "alice"
    assert event.source == "pep:cli"
    assert json.loads(event.attributes_json) == {
        "command": "sh",
        "exit_code": 7,
        "recorded": False,
    }


def test_denied_command_prints_reasons_exits_77_and_does_not_run(
    pdp: tuple[str, LoopThread], gateway: Gateway, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    token = gateway.token("webhook:send")
    res = council_exec(
        tmp_path, pdp[0], "exec:diagnostics", marker_command(marker),
        "--gateway", gateway.address, "--token", token,
    )  # fmt: skip
    assert res.returncode == 77
    assert not marker.exists()
    assert res.stdout == ""
    assert "denied: feature 'exec:diagnostics' (decision " in res.stderr
    assert (
        "  - the token lacks scope(s) cli:exec needed by feature 'exec:diagnostics'"
        " (it carries: webhook:send)"
    ) in res.stderr
    [event] = gateway.usage.events
    assert not event.allowed and event.decision_id in res.stderr


def test_pdp_down_fails_closed_with_69(gateway: Gateway, tmp_path: Path, closed_port: str) -> None:
    marker = tmp_path / "marker"
    res = council_exec(
        tmp_path, closed_port, "exec:diagnostics", marker_command(marker),
        "--gateway", gateway.address, "--token", gateway.token("cli:exec"),
    )  # fmt: skip
    assert res.returncode == 69
    assert not marker.exists()
    assert "cannot reach the policy decision point" in res.stderr
    assert "refusing to run 'exec:diagnostics' without a decision" in res.stderr
    assert gateway.usage.events == []


def test_high_risk_admin_session_is_recorded_sealed_and_verifiable(
    pdp: tuple[str, LoopThread], gateway: Gateway, tmp_path: Path
) -> None:
    gateway.device("laptop-ok")
    marker = tmp_path / "marker"
    token = gateway.token("admin:quota:write", device_id="laptop-ok", lifetime=300)
    res = council_exec(
        tmp_path, pdp[0], "admin:quota", marker_command(marker, 3),
        "--gateway", gateway.address, "--token", token, "--device-id", "laptop-ok",
    )  # fmt: skip
    assert res.returncode == 3, res.stderr
    assert marker.exists()
    assert "hello from the command" in res.stdout  # teed to the user
    [sealed] = sealed_dirs(tmp_path)
    assert f"session recorded and sealed at {sealed}" in res.stderr
    public = load_public_key(tmp_path / "recorder.key.pub")
    manifest = verify_recording(sealed, public)
    assert manifest.exit_code == 3 and manifest.feature == "admin:quota"
    assert manifest.command[0] == "sh"
    assert "hello from the command" in recorded_output(sealed)
    [event] = gateway.usage.events
    assert event.allowed and event.decision_id == manifest.decision_id
    attributes = json.loads(event.attributes_json)
    assert attributes["recorded"] is True
    assert attributes["recording"] == manifest.recording_sha256 == sealed.name
    for name in ("session.cast", "manifest.json", "manifest.sig"):
        assert (sealed / name).stat().st_mode & 0o777 == 0o444
    assert sealed.stat().st_mode & 0o777 == 0o555

    # Tampering with the recording, or with the manifest, fails verification.
    os.chmod(sealed, 0o755)
    cast = sealed / "session.cast"
    original = cast.read_bytes()
    os.chmod(cast, 0o644)
    cast.write_bytes(original.replace(b"hello from the command", b"nothing to see here...."))
    with pytest.raises(RecordingInvalidError, match="changed after sealing"):
        verify_recording(sealed, public)
    cast.write_bytes(original)
    verify_recording(sealed, public)
    doc = json.loads((sealed / "manifest.json").read_text())
    doc["exit_code"] = 0
    os.chmod(sealed / "manifest.json", 0o644)
    (sealed / "manifest.json").write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")))
    with pytest.raises(RecordingInvalidError, match="signature does not verify"):
        verify_recording(sealed, public)


def test_recording_that_cannot_be_set_up_refuses_to_run(
    pdp: tuple[str, LoopThread], gateway: Gateway, tmp_path: Path
) -> None:
    gateway.device("laptop-ok")
    marker = tmp_path / "marker"
    (tmp_path / "recordings").write_text("a file where the store should be")
    token = gateway.token("admin:quota:write", lifetime=300)
    res = council_exec(
        tmp_path, pdp[0], "admin:quota", marker_command(marker),
        "--gateway", gateway.address, "--token", token, "--device-id", "laptop-ok",
    )  # fmt: skip
    assert res.returncode == 73
    assert not marker.exists()
    assert "the policy requires this session to be recorded" in res.stderr
    assert "the command does not run" in res.stderr


def test_admin_feature_without_verification_keys_is_denied(
    pdp: tuple[str, LoopThread], gateway: Gateway, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    token = gateway.token("admin:quota:write", lifetime=300)
    res = council_exec(
        tmp_path, pdp[0], "admin:quota", marker_command(marker), "--token", token,
        "--posture-file", str(tmp_path / "none.json"), "--device-id", "laptop-ok",
    )  # fmt: skip
    assert res.returncode == 77
    assert not marker.exists()
    assert (
        "admin feature 'admin:quota' needs a token verified against the gateway's keys; this"
        " one was not verified (no JWK Set to verify it with (pass --gateway or --jwks))"
    ) in res.stderr
    assert "a posture from 'file' is self-reported" in res.stderr


def test_admin_feature_refuses_long_lived_and_expired_tokens(
    pdp: tuple[str, LoopThread], gateway: Gateway, tmp_path: Path
) -> None:
    gateway.device("laptop-ok")
    marker = tmp_path / "marker"
    long_config = TokenConfig(default_lifetime=86400, max_lifetime=86400)
    long_lived = TokenService(long_config, gateway.keys).issue(
        "alice", TENANT, ["admin:quota:write"]
    )
    res = council_exec(
        tmp_path, pdp[0], "admin:quota", marker_command(marker),
        "--gateway", gateway.address, "--token", long_lived.token, "--device-id", "laptop-ok",
    )  # fmt: skip
    assert res.returncode == 77
    assert "needs a short-lived token (at most 900 s); this one lives 86400 s" in res.stderr

    past = TokenService(gateway.tokens.config, gateway.keys, clock=lambda: time.time() - 3600)
    expired = past.issue("alice", TENANT, ["admin:quota:write"], lifetime=300).token
    token_file = tmp_path / "token"
    token_file.write_text(expired + "\n")
    res = council_exec(
        tmp_path, pdp[0], "admin:quota", marker_command(marker),
        "--gateway", gateway.address, "--token-file", str(token_file), "--device-id", "laptop-ok",
    )  # fmt: skip
    assert res.returncode == 77
    assert "this one was not verified (the token has expired)" in res.stderr
    assert re.search(r"the token expired 3[23]\d\d s ago; request a new one", res.stderr)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("non-compliant", "device posture check 'disk_encrypted' failed: the root disk is not"),
        ("stale", "device posture check 'fresh' failed:"),
        ("forged", "device posture check 'fresh' failed:"),
        ("unenrolled", "device 'laptop-x' posture is unavailable: NOT_FOUND"),
    ],
)
def test_admin_feature_needs_fresh_compliant_posture(
    pdp: tuple[str, LoopThread], gateway: Gateway, tmp_path: Path, case: str, expected: str
) -> None:
    if case == "non-compliant":
        gateway.device("laptop-x", UNENCRYPTED)
    elif case == "stale":
        gateway.device("laptop-x")
        gateway.clock.offset = 3600  # the report is now an hour old
    elif case == "forged":
        gateway.device("laptop-x", None)
        forger = posture_keys.load_device_key(tmp_path / "forger", create=True)
        forged = posture_keys.sign_report(forger, build_report("laptop-x", GOOD_FACTS))
        with pytest.raises(Exception, match="signature"):
            gateway.intake.submit("laptop-x", forged.report_json, forged.signature)
    marker = tmp_path / "marker"
    token = gateway.token("admin:quota:write", lifetime=300)
    res = council_exec(
        tmp_path, pdp[0], "admin:quota", marker_command(marker),
        "--gateway", gateway.address, "--token", token, "--device-id", "laptop-x",
    )  # fmt: skip
    assert res.returncode == 77, res.stderr
    assert expected in res.stderr
    assert not marker.exists()


def test_usage_events_wait_in_the_spool_when_the_gateway_is_down(
    pdp: tuple[str, LoopThread], gateway: Gateway, tmp_path: Path, closed_port: str
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(gateway.keys.jwks()))
    marker = tmp_path / "marker"
    token = gateway.token("cli:exec")
    res = council_exec(
        tmp_path, pdp[0], "exec:diagnostics", marker_command(marker),
        "--gateway", closed_port, "--jwks", str(jwks), "--token", token,
    )  # fmt: skip
    assert res.returncode == 0 and marker.exists()
    # The next run, with the gateway back, delivers both events.
    res = council_exec(
        tmp_path, pdp[0], "exec:diagnostics", ["true"],
        "--gateway", gateway.address, "--token", token,
    )  # fmt: skip
    assert res.returncode == 0
    assert [e.allowed for e in gateway.usage.events] == [True, True]
    assert len({e.decision_id for e in gateway.usage.events}) == 2


def test_command_not_found_is_127(
    pdp: tuple[str, LoopThread], gateway: Gateway, tmp_path: Path
) -> None:
    res = council_exec(
        tmp_path, pdp[0], "exec:diagnostics", ["no-such-command-here"],
        "--gateway", gateway.address, "--token", gateway.token("cli:exec"),
    )  # fmt: skip
    assert res.returncode == 127
    assert "no-such-command-here: command not found" in res.stderr


def read_until(master: int, needle: bytes, seen: bytearray, timeout: float = 20) -> None:
    """Read the terminal until ``needle`` has appeared (or fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        assert time.monotonic() < deadline, f"{needle!r} never appeared in {bytes(seen)!r}"
        if select.select([master], [], [], 0.1)[0]:
            with contextlib.suppress(OSError):
                seen += os.read(master, 4096)


def test_recorded_session_on_a_terminal_passes_keys_and_ctrl_c_through(
    pdp: tuple[str, LoopThread], gateway: Gateway, tmp_path: Path
) -> None:
    """``council exec`` on a real terminal: input reaches the command, ^C interrupts it, the
    user's terminal settings come back, and the session is sealed."""
    gateway.device("laptop-ok")
    token = gateway.token("admin:quota:write", lifetime=300)
    command = ["sh", "-c", 'read name; echo "hi $name"; echo ready; sleep 30']
    args = exec_args(
        tmp_path, pdp[0], "admin:quota", command,
        "--gateway", gateway.address, "--token", token, "--device-id", "laptop-ok",
    )  # fmt: skip
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, cwd=tmp_path, env=EXEC_ENV,
        start_new_session=True,
    )  # fmt: skip
    seen = bytearray()
    try:
        os.write(master, b"council\r")
        read_until(master, b"ready", seen)
        # ^C, as typed: the command's own terminal signals it. Typed again until it takes,
        # since one landing between `echo ready` and `sleep` starting is swallowed by sh.
        deadline = time.monotonic() + 20
        while proc.poll() is None:
            assert time.monotonic() < deadline, f"^C never stopped the command: {bytes(seen)!r}"
            os.write(master, b"\x03")
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)
        assert proc.returncode == 128 + signal.SIGINT
        read_until(master, b"session recorded and sealed at", seen)
        assert termios.tcgetattr(slave) == before
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
    assert b"hi council" in seen
    # Only the command and council exec's own messages reach the user's terminal.
    assert b"grpc" not in seen.lower() and b"fork" not in seen.lower()
    [sealed] = sealed_dirs(tmp_path)
    manifest = verify_recording(sealed, load_public_key(tmp_path / "recorder.key.pub"))
    assert manifest.exit_code == 130
    output = recorded_output(sealed)
    assert "hi council" in output and "ready" in output


# --- authorize_cli (for the council admin sub-commands) ------------------------------------


def test_authorize_cli_allows_denies_and_checks_obligations(
    pdp: tuple[str, LoopThread], gateway: Gateway, closed_port: str
) -> None:
    gateway.device("laptop-ok")
    context = CLIContext(pdp=pdp[0], gateway=gateway.address)

    async def authorize(feature: str, scope: str, **kw: Any) -> Any:
        token = gateway.token(scope, lifetime=300)
        return await authorize_cli(feature, context=context, token=token, **kw)

    loop = pdp[1]
    decision = loop.run(authorize("admin:decisions", "admin:decisions:read", device_id="laptop-ok"))
    assert decision.allow and decision.obligations == {}

    with pytest.raises(ObligationError, match="requires record_session"):
        loop.run(authorize("admin:quota", "admin:quota:write", device_id="laptop-ok"))
    decision = loop.run(
        authorize(
            "admin:quota", "admin:quota:write", device_id="laptop-ok", honoured={"record_session"}
        )
    )
    assert decision.obligations["record_session"] is True

    with pytest.raises(CLIDeniedError) as denied:
        loop.run(authorize("admin:quota", "admin:quota:write"))
    assert denied.value.decision_id
    assert any("no device was named" in r for r in denied.value.reasons)

    down = CLIContext(pdp=closed_port, gateway=gateway.address)
    with pytest.raises(DecisionUnavailableError, match="refusing to run 'admin:quota'"):
        loop.run(authorize_cli("admin:quota", context=down, token="x"))


# --- the recorder on its own ---------------------------------------------------------------


def test_recorder_refuses_to_overwrite_and_checks_its_key(tmp_path: Path) -> None:
    config = RecorderConfig(store=tmp_path / "store", signing_key=tmp_path / "k" / "rec.key")
    recorder = SessionRecorder(config)
    sealed = recorder.run(
        ["sh", "-c", "kill -TERM $$"], user="u", feature="f", decision_id="d", stdin_fd=None
    )
    assert sealed.exit_code == 128 + 15
    verify_recording(sealed.directory, recorder.public_key)

    # Sealing the very same bytes again would land on the same address: refused.
    again = tmp_path / "store" / ".incoming" / "again.cast"
    shutil.copyfile(sealed.directory / "session.cast", again)
    with pytest.raises(RecordingExistsError, match="already sealed"):
        recorder._seal(
            again,
            argv=["x"],
            executable="/bin/x",
            user="u",
            feature="f",
            decision_id="d2",
            started_at=0.0,
            ended_at=1.0,
            exit_code=0,
        )
    verify_recording(sealed.directory, recorder.public_key)

    # Another key does not verify it; a moved recording is not at its address.
    other = SessionRecorder(RecorderConfig(store=tmp_path / "s2", signing_key=tmp_path / "o.key"))
    with pytest.raises(RecordingInvalidError, match="does not verify"):
        verify_recording(sealed.directory, other.public_key)
    moved = tmp_path / "moved"
    shutil.copytree(sealed.directory, moved)
    with pytest.raises(RecordingInvalidError, match="content address"):
        verify_recording(moved, recorder.public_key)

    os.chmod(config.signing_key, 0o644)
    with pytest.raises(RecorderSetupError, match="chmod 600"):
        SessionRecorder(config)


def test_recorder_keeps_utf8_and_input_passthrough(tmp_path: Path) -> None:
    recorder = SessionRecorder(
        RecorderConfig(store=tmp_path / "store", signing_key=tmp_path / "rec.key")
    )
    read_end, write_end = os.pipe()
    os.write(write_end, "données\n".encode())
    os.close(write_end)
    out_read, out_write = os.pipe()
    try:
        sealed = recorder.run(
            ["sh", "-c", "read line; printf 'got %s\\n' \"$line\"; printf 'é\\n'"],
            user="u",
            feature="f",
            decision_id="d",
            stdin_fd=read_end,
            stdout_fd=out_write,
        )
    finally:
        os.close(read_end)
        os.close(out_write)
    with os.fdopen(out_read, "rb") as fh:
        teed = fh.read().decode()
    output = recorded_output(sealed.directory)
    assert "got données" in output and "é" in output
    assert output == teed  # what the user saw is what was recorded
    header = json.loads((sealed.directory / "session.cast").read_text().splitlines()[0])
    assert header["version"] == 2 and header["width"] == 80 and header["height"] == 24
    signature = base64.b64decode((sealed.directory / "manifest.sig").read_bytes())
    assert len(signature) == 64


def test_recording_cannot_start_without_a_writable_store(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(RecorderSetupError, match="not writable"):
        SessionRecorder(
            RecorderConfig(store=tmp_path / "file" / "store", signing_key=tmp_path / "k.key")
        )
