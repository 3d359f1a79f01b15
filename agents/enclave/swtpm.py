"""Run and provision a software TPM 2.0 (swtpm) as a child process.

Lifecycle: :func:`provision` manufactures a TPM state directory once (swtpm_setup: an RSA and
an ECC endorsement key with certificates issued by a local platform CA, and an ECC storage root
key persisted at :data:`SRK_HANDLE`); :class:`Swtpm` then serves that state on two loopback TCP
ports (``start`` → ``health`` → ``stop``/``close``, or as a context manager). The TPM's state
survives restarts in its directory; PCRs start from their initial values at every start
(``startup-clear``).

The platform CA is a directory (:class:`PlatformCA`) that swtpm_localca fills on first use with
a self-signed root and an issuing CA. The root is what a verifier pins for EK certificates; one
CA directory can serve many TPMs, like a manufacturer.

Ports: the swtpm TCTI expects the control channel at the data port + 1, so :class:`Swtpm`
picks a free consecutive pair on 127.0.0.1 unless given one, and retries with a new pair if
another process takes it between the probe and swtpm's bind.

Thread-safety: ``start``, ``stop`` and ``close`` are not meant to race; ``health`` may be
called from any thread.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

SRK_HANDLE = 0x81000001
EK_RSA_HANDLE = 0x81010001
DEFAULT_HOST = "127.0.0.1"
DEFAULT_STARTUP_TIMEOUT = 5.0
DEFAULT_STOP_GRACE = 2.0
DEFAULT_PROBE_TIMEOUT = 2.0
SETUP_TIMEOUT = 60.0
PORT_ATTEMPTS = 5
REQUIRED_TOOLS = ("swtpm", "swtpm_setup", "swtpm_localca", "tpm2_quote")
# TPM2_GetRandom(8): header (tag TPM_ST_NO_SESSIONS, size, TPM_CC_GetRandom) + bytesRequested.
_GET_RANDOM = struct.pack(">HIIH", 0x8001, 12, 0x0000017B, 8)
_TPM_RESPONSE_HEADER = 10


class SwtpmError(Exception):
    """swtpm could not be provisioned, started or reached; ``code`` is stable."""

    code = "swtpm_error"


def missing_tools() -> list[str]:
    """The swtpm / tpm2-tools programs not on PATH (Debian: swtpm, swtpm-tools, tpm2-tools)."""
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


@dataclass(frozen=True)
class PlatformCA:
    """A local platform CA directory managed by swtpm_localca (see the module docstring)."""

    directory: Path

    @property
    def root_certificate(self) -> Path:
        """The self-signed root (PEM) a verifier pins."""
        return self.directory / "swtpm-localca-rootca-cert.pem"

    @property
    def issuer_certificate(self) -> Path:
        """The issuing CA (PEM) that signs EK certificates; an intermediate of the root."""
        return self.directory / "issuercert.pem"

    def _write_config(self) -> Path:
        """swtpm_setup and swtpm_localca configuration pointing at this directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        ca_conf = self.directory / "swtpm-localca.conf"
        ca_conf.write_text(
            f"statedir = {self.directory}\n"
            f"signingkey = {self.directory / 'signkey.pem'}\n"
            f"issuercert = {self.issuer_certificate}\n"
            f"certserial = {self.directory / 'certserial'}\n"
        )
        options = self.directory / "swtpm-localca.options"
        options.write_text(
            "--platform-manufacturer Council\n--platform-version 2.1\n--platform-model swtpm\n"
        )
        setup_conf = self.directory / "swtpm_setup.conf"
        setup_conf.write_text(
            "create_certs_tool = /usr/bin/swtpm_localca\n"
            f"create_certs_tool_config = {ca_conf}\n"
            f"create_certs_tool_options = {options}\n"
            "active_pcr_banks = sha256\n"
        )
        return setup_conf


@dataclass(frozen=True)
class Provisioned:
    """A manufactured TPM state: where it is, its CA, and its RSA EK certificate (DER)."""

    state_dir: Path
    ca: PlatformCA
    ek_certificate: bytes


def provision(state_dir: Path, ca: PlatformCA, *, overwrite: bool = False) -> Provisioned:
    """Manufacture a TPM 2.0 state in ``state_dir`` with EK certificates from ``ca``.

    Only the SHA-256 PCR bank is active, so every quote and policy uses it. An existing state
    is kept as it is (provisioning is idempotent, so a platform keeps its enrolled AKs across
    runs) unless ``overwrite``, which re-manufactures it with a new EK and un-enrols every AK.
    """
    if missing := missing_tools():
        raise SwtpmError(f"missing programs: {', '.join(missing)}")
    state_dir.mkdir(parents=True, exist_ok=True)
    cert_dir = state_dir / "ek-certificates"
    cert_dir.mkdir(exist_ok=True)
    command = [
        "swtpm_setup",
        "--tpm2",
        "--tpmstate",
        str(state_dir),
        "--create-ek-cert",
        "--create-spk",
        "--ecc",
        "--config",
        str(ca._write_config()),
        "--write-ek-cert-files",
        str(cert_dir),
        "--pcr-banks",
        "sha256",
        "--overwrite" if overwrite else "--not-overwrite",
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=SETUP_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SwtpmError(f"swtpm_setup timed out after {SETUP_TIMEOUT}s") from exc
    ek_cert = cert_dir / "ek-rsa2048.crt"
    if result.returncode != 0 or not ek_cert.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise SwtpmError(f"swtpm_setup failed ({result.returncode}): {' | '.join(tail)}")
    return Provisioned(state_dir=state_dir, ca=ca, ek_certificate=ek_cert.read_bytes())


@dataclass(frozen=True)
class SwtpmConfig:
    """How to serve a provisioned state. ``port`` 0 picks a free pair (data, data + 1)."""

    state_dir: Path
    host: str = DEFAULT_HOST
    port: int = 0
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    stop_grace: float = DEFAULT_STOP_GRACE

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65534:
            raise ValueError("port must be 0 (pick one) or a data port below 65535")
        if self.startup_timeout <= 0 or self.stop_grace <= 0:
            raise ValueError("timeouts must be positive")


def _free_port_pair(host: str) -> int:
    """A port P such that P and P + 1 were both free on ``host`` a moment ago."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind((host, port + 1))
            except OSError:
                continue
        return port
    raise SwtpmError("no free consecutive port pair found")


class Swtpm:
    """One swtpm process serving a provisioned state; see the module docstring."""

    def __init__(self, config: SwtpmConfig) -> None:
        self.config = config
        self._process: subprocess.Popen[bytes] | None = None
        self._port = config.port

    @property
    def port(self) -> int:
        """The data port (control is port + 1); 0 before the first start with port 0."""
        return self._port

    @property
    def tcti(self) -> str:
        """The TCTI configuration string tpm2-tools use to reach this TPM."""
        if self._process is None:
            raise SwtpmError("swtpm is not running")
        return f"swtpm:host={self.config.host},port={self._port}"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> Swtpm:
        """Start swtpm and wait until it answers a TPM command; idempotent while running."""
        if self.running:
            return self
        if missing := missing_tools():
            raise SwtpmError(f"missing programs: {', '.join(missing)}")
        attempts = PORT_ATTEMPTS if self.config.port == 0 else 1
        last = "never started"
        for _ in range(attempts):
            port = self.config.port or _free_port_pair(self.config.host)
            process = subprocess.Popen(
                self._command(port),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            self._process, self._port = process, port
            last = self._await_ready()
            if not last:
                return self
            self._terminate()
        raise SwtpmError(f"swtpm did not start: {last}")

    def _command(self, port: int) -> list[str]:
        host = self.config.host
        return [
            "swtpm",
            "socket",
            "--tpm2",
            "--tpmstate",
            f"dir={self.config.state_dir}",
            "--server",
            f"type=tcp,port={port},bindaddr={host}",
            "--ctrl",
            f"type=tcp,port={port + 1},bindaddr={host}",
            "--flags",
            "not-need-init,startup-clear",
            "--log",
            f"file={self.config.state_dir / 'swtpm.log'},level=1",
        ]

    def _await_ready(self) -> str:
        """'' once the TPM answers, else why not (process exited or timed out)."""
        assert self._process is not None
        deadline = time.monotonic() + self.config.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read() if self._process.stderr else b""
                return f"exited {self._process.returncode}: {stderr.decode(errors='replace')}"
            if self.health():
                return ""
            time.sleep(0.02)
        return f"no answer within {self.config.startup_timeout}s"

    def health(self) -> bool:
        """Whether the TPM executes a command (TPM2_GetRandom) with success right now.

        swtpm serves one connection at a time, so while a client holds the TPM this waits
        for it, up to the probe timeout, and may report False for a busy but healthy TPM.
        """
        if not self.running:
            return False
        try:
            with socket.create_connection(
                (self.config.host, self._port), timeout=DEFAULT_PROBE_TIMEOUT
            ) as conn:
                conn.sendall(_GET_RANDOM)
                header = b""
                while len(header) < _TPM_RESPONSE_HEADER:
                    chunk = conn.recv(_TPM_RESPONSE_HEADER - len(header))
                    if not chunk:
                        return False
                    header += chunk
        except OSError:
            return False
        _tag, _size, code = struct.unpack(">HII", header)
        return code == 0

    def stop(self) -> None:
        """Stop the process: SIGTERM, then SIGKILL after the grace period. Idempotent."""
        self._terminate()

    def _terminate(self) -> None:
        if self._process is None:
            return
        tcti = self.tcti
        process, self._process = self._process, None
        if process.poll() is None:
            # An orderly TPM2_Shutdown first: without it every stop counts as a disorderly
            # shutdown, which the TPM's dictionary-attack protection treats as a failed
            # authorization, locking keys out after a few restarts.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["tpm2_shutdown", "-T", tcti],
                    capture_output=True,
                    timeout=self.config.stop_grace,
                    check=False,
                )
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.config.stop_grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def close(self) -> None:
        """Same as :meth:`stop`."""
        self.stop()

    def __enter__(self) -> Swtpm:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # A leaked instance must not leave an orphan swtpm holding the state directory.
        with contextlib.suppress(Exception):
            self._terminate()
