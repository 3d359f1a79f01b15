"""Recording a command's terminal session into sealed, tamper-evident storage.

When policy answers a CLI request with the obligation ``record_session``, the command runs
under a pseudo-terminal owned by :class:`SessionRecorder`. Everything the command writes to
its terminal goes to the user unchanged and, with a timestamp, to an asciicast v2 recording
(a JSON header line, then one ``[seconds, "o", text]`` line per chunk; ``"r"`` lines when
the window is resized; ``"i"`` lines for keystrokes only when ``record_input`` is set,
since they include passwords typed without echo).

The recording file is opened ``O_APPEND | O_EXCL`` before the command starts, so the
command never runs unrecorded: a store or key that cannot be used raises
:class:`RecorderSetupError` and nothing is started. If writing fails mid-session, the
command is stopped (SIGHUP, then SIGKILL) rather than left running unrecorded.

After the command exits the recording is sealed: a manifest (command, user, host,
feature, decision id, start and end, exit code, the recording's SHA-256 and size, the
signing key's id) is encoded canonically and signed with the recorder's Ed25519 key, and
the three files go to a content-addressed directory ``<store>/<sha[:2]>/<sha>/``::

    session.cast    the recording                   0444
    manifest.json   the canonical manifest           0444
    manifest.sig    base64 Ed25519 signature         0444  (written last: marks completeness)

The directory is made 0555. An existing directory is never reused (:class:`RecordingExistsError`).
:func:`verify_recording` checks a sealed directory against a trusted public key; any
change to any file, or moving the directory, fails with :class:`RecordingInvalidError`.

Thread safety: :meth:`SessionRecorder.run` blocks and may run on any thread (async callers
use an executor); :meth:`SessionRecorder.resize` and :meth:`SessionRecorder.send_signal`
may be called from another thread (e.g. the main thread's signal handlers) while it runs.
One recorder runs one session at a time.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import select
import shlex
import shutil
import signal
import socket
import struct
import termios
import threading
import time
import tty
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pdp.keyfile import KeyFileError, load_ed25519_key

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_STORE",
    "MANIFEST_TYPE",
    "RecorderConfig",
    "RecorderError",
    "RecorderSetupError",
    "RecordingExistsError",
    "RecordingFailedError",
    "RecordingInvalidError",
    "SealedRecording",
    "SessionManifest",
    "SessionRecorder",
    "load_public_key",
    "recorded_output",
    "verify_recording",
]

DEFAULT_STORE = Path.home() / ".council" / "recordings"
DEFAULT_KEY = Path.home() / ".council" / "recorder.key"
MANIFEST_TYPE = "council.session-recording/v1"
RECORDING_FILE = "session.cast"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
INCOMING = ".incoming"
SEALED_FILE_MODE = 0o444
SEALED_DIR_MODE = 0o555
PRIVATE_MODE = 0o600
STORE_MODE = 0o700
READ_CHUNK = 65536
POLL_SECONDS = 0.2
KILL_GRACE_SECONDS = 2.0
DEFAULT_SIZE = (24, 80)


# --- errors ------------------------------------------------------------------------------


class RecorderError(Exception):
    """Base class of the recorder's errors; ``code`` is stable."""

    code = "recorder_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RecorderSetupError(RecorderError):
    """The store or the signing key cannot be used: the command must not run."""

    code = "recording_unavailable"


class RecordingExistsError(RecorderError):
    """A sealed recording with the same address already exists; it is never overwritten."""

    code = "recording_exists"


class RecordingFailedError(RecorderError):
    """Recording or sealing failed after the command started; ``exit_code`` is the command's
    (it was stopped if recording failed while it ran) and ``partial`` the unsealed file."""

    code = "recording_failed"

    def __init__(self, message: str, *, exit_code: int, partial: Path) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.partial = partial


class RecordingInvalidError(RecorderError):
    """A sealed recording fails verification: missing file, bad signature, digest mismatch."""

    code = "recording_invalid"


class _NotStartedError(Exception):
    """The command could not be started (``error`` says why); nothing ran."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


# --- configuration and results ------------------------------------------------------------


@dataclass(frozen=True)
class RecorderConfig:
    """Where recordings go and what signs them.

    Attributes:
        store: directory of sealed recordings (created 0700).
        signing_key: Ed25519 private key, PKCS#8 PEM, mode 0600 (group/other access refused).
        create_key: generate the key when the file does not exist.
        record_input: also record keystrokes (off by default: they include passwords).
    """

    store: Path = DEFAULT_STORE
    signing_key: Path = DEFAULT_KEY
    create_key: bool = True
    record_input: bool = False


@dataclass(frozen=True)
class SessionManifest:
    """What a seal attests; the signature covers :meth:`canonical`."""

    command: tuple[str, ...]
    executable: str
    user: str
    host: str
    feature: str
    decision_id: str
    started_at: float
    ended_at: float
    exit_code: int
    recording_sha256: str
    recording_bytes: int
    key_id: str

    def to_json(self) -> dict[str, Any]:
        """The manifest document."""
        return {
            "type": MANIFEST_TYPE,
            "command": list(self.command),
            "executable": self.executable,
            "user": self.user,
            "host": self.host,
            "feature": self.feature,
            "decision_id": self.decision_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "exit_code": self.exit_code,
            "recording": {
                "file": RECORDING_FILE,
                "format": "asciicast-v2",
                "sha256": self.recording_sha256,
                "bytes": self.recording_bytes,
            },
            "key_id": self.key_id,
        }

    def canonical(self) -> bytes:
        """The exact bytes written to ``manifest.json`` and signed."""
        return _canonical(self.to_json())

    @classmethod
    def from_json(cls, doc: Any) -> SessionManifest:
        """Parse a manifest document; :class:`RecordingInvalidError` if malformed."""
        try:
            if doc["type"] != MANIFEST_TYPE:
                raise RecordingInvalidError(f"not a session manifest (type {doc['type']!r})")
            rec = doc["recording"]
            return cls(
                command=tuple(str(a) for a in doc["command"]),
                executable=str(doc["executable"]),
                user=str(doc["user"]),
                host=str(doc["host"]),
                feature=str(doc["feature"]),
                decision_id=str(doc["decision_id"]),
                started_at=float(doc["started_at"]),
                ended_at=float(doc["ended_at"]),
                exit_code=int(doc["exit_code"]),
                recording_sha256=str(rec["sha256"]),
                recording_bytes=int(rec["bytes"]),
                key_id=str(doc["key_id"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordingInvalidError(f"malformed manifest: {exc!r}") from exc


@dataclass(frozen=True)
class SealedRecording:
    """A sealed session: its directory and manifest."""

    directory: Path
    manifest: SessionManifest

    @property
    def exit_code(self) -> int:
        """The recorded command's exit code."""
        return self.manifest.exit_code


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# --- keys ---------------------------------------------------------------------------------


def _load_signing_key(path: Path, *, create: bool) -> Ed25519PrivateKey:
    try:
        key, created = load_ed25519_key(
            path, create=create, what="recording signing key", dir_mode=STORE_MODE
        )
    except KeyFileError as exc:
        raise RecorderSetupError(exc.message) from exc
    if created:
        _write_public(path)
    return key


def _write_public(private_path: Path) -> None:
    """Write ``<key>.pub`` next to a new key: what auditors need to verify recordings."""
    key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pub = private_path.with_name(private_path.name + ".pub")
    tmp = pub.with_name(pub.name + f".{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(pem)
    os.replace(tmp, pub)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (``recorder.key.pub``) or a raw 32-byte file."""
    data = path.read_bytes()
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


# --- the terminal -----------------------------------------------------------------------


def _window_size(fd: int) -> tuple[int, int]:
    """(rows, cols) of the terminal on ``fd``, or 24x80 when it is not a terminal."""
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return DEFAULT_SIZE
    return (rows, cols) if rows and cols else DEFAULT_SIZE


def _set_window_size(fd: int, size: tuple[int, int]) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    # Shell convention: killed by signal N → 128 + N.
    return 128 - code if code < 0 else code


class _Session:
    """One running session: the child, the pty master and the recording file."""

    def __init__(
        self,
        pid: int,
        master: int,
        recording: int,
        *,
        stdin_fd: int | None,
        stdout_fd: int,
        record_input: bool,
        wake_read: int,
    ) -> None:
        self.pid = pid
        self.master = master
        self.recording = recording
        self.stdin_fd = stdin_fd
        self.stdout_fd: int | None = stdout_fd
        self.record_input = record_input
        self.wake_read = wake_read
        self.start = time.monotonic()
        self.pending_input = bytearray()
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.status: int | None = None
        self.failure: OSError | None = None
        self.size = DEFAULT_SIZE

    def event(self, kind: str, data: str) -> None:
        """Append one asciicast event; a failure stops the command (see module docstring)."""
        if self.failure is not None:
            return
        line = json.dumps([round(time.monotonic() - self.start, 6), kind, data]) + "\n"
        try:
            _write_all(self.recording, line.encode())
        except OSError as exc:
            self.failure = exc
            self.stop_child()

    def stop_child(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGHUP)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while time.monotonic() < deadline and self.reap(block=False) is None:
            time.sleep(0.05)
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)

    def reap(self, *, block: bool) -> int | None:
        if self.status is None:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            if pid:
                self.status = status
        return self.status

    def output(self, data: bytes) -> None:
        if self.stdout_fd is not None:
            try:
                _write_all(self.stdout_fd, data)
            except BrokenPipeError:
                # The user stopped reading (`| head`); the recording keeps everything.
                self.stdout_fd = None
        text = self.decoder.decode(data)
        if text:
            self.event("o", text)

    def read_master(self) -> bool:
        """Move available output; False once the terminal is closed (EIO on Linux)."""
        try:
            data = os.read(self.master, READ_CHUNK)
        except BlockingIOError:
            return True
        except OSError as exc:
            if exc.errno == errno.EIO:
                return False
            raise
        if not data:
            return False
        self.output(data)
        return True

    def read_stdin(self) -> None:
        assert self.stdin_fd is not None
        try:
            data = os.read(self.stdin_fd, READ_CHUNK)
        except OSError:
            data = b""
        if not data:
            if not os.isatty(self.stdin_fd):
                # Piped input ended: pass the end on as the terminal's EOF character.
                self.pending_input += b"\x04"
            self.stdin_fd = None
            return
        self.pending_input += data
        if self.record_input:
            self.event("i", data.decode("utf-8", errors="replace"))

    def write_master(self) -> None:
        try:
            written = os.write(self.master, self.pending_input)
        except BlockingIOError:
            return
        except OSError:
            # The command closed its terminal; input has nowhere to go.
            self.pending_input.clear()
            return
        del self.pending_input[:written]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[written:]


# --- the recorder -------------------------------------------------------------------------


class SessionRecorder:
    """Runs commands under a recorded pseudo-terminal and seals the recordings."""

    def __init__(self, config: RecorderConfig) -> None:
        """Check the store and load (or create) the key; :class:`RecorderSetupError` if not."""
        self.config = config
        self._key = _load_signing_key(config.signing_key, create=config.create_key)
        self.key_id = _key_id(self._key.public_key())
        incoming = config.store / INCOMING
        try:
            config.store.mkdir(mode=STORE_MODE, parents=True, exist_ok=True)
            incoming.mkdir(mode=STORE_MODE, exist_ok=True)
            probe = incoming / f".probe-{secrets.token_hex(6)}"
            probe.touch(mode=PRIVATE_MODE, exist_ok=False)
            probe.unlink()
        except OSError as exc:
            raise RecorderSetupError(
                f"recording store {config.store} is not writable: {exc.strerror}"
            ) from exc
        self._lock = threading.Lock()
        self._session: _Session | None = None
        self._wake_write: int | None = None
        self._resized = threading.Event()

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The key that verifies this recorder's seals."""
        return self._key.public_key()

    # --- control from other threads ---------------------------------------------------

    def resize(self) -> None:
        """The user's window changed (SIGWINCH): pass the new size on at the next turn."""
        self._resized.set()
        self._wake()

    def send_signal(self, signum: int) -> None:
        """Deliver ``signum`` to the command's foreground process group, if one runs."""
        with self._lock:
            session = self._session
        if session is None or session.status is not None:
            return
        try:
            group = os.tcgetpgrp(session.master)
        except OSError:
            group = session.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)

    def _wake(self) -> None:
        with self._lock:
            fd = self._wake_write
        if fd is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(fd, b"\0")

    # --- running ------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        user: str,
        feature: str,
        decision_id: str,
        env: Mapping[str, str] | None = None,
        stdin_fd: int | None = 0,
        stdout_fd: int = 1,
    ) -> SealedRecording:
        """Run ``argv`` recorded; return the sealed recording (exit code in its manifest).

        Raises :class:`RecorderSetupError` before anything runs when the recording file
        cannot be created, ``FileNotFoundError``/``PermissionError`` when the command does
        not exist or is not executable (nothing ran), and :class:`RecordingFailedError`
        when recording or sealing failed after the command started.
        """
        if not argv:
            raise ValueError("no command to run")
        environment = dict(os.environ if env is None else env)
        executable = shutil.which(argv[0], path=environment.get("PATH", os.defpath))
        if executable is None:
            raise FileNotFoundError(errno.ENOENT, "command not found", argv[0])
        if not os.access(executable, os.X_OK):
            raise PermissionError(errno.EACCES, "not executable", executable)
        with self._lock:
            if self._session is not None:
                raise RecorderError("this recorder is already running a session")
        partial = self.config.store / INCOMING / f"{secrets.token_hex(16)}.cast"
        try:
            recording = os.open(
                partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, PRIVATE_MODE
            )
        except OSError as exc:
            raise RecorderSetupError(f"cannot create {partial}: {exc.strerror}") from exc
        started_at = time.time()
        try:
            status = self._record(
                argv,
                executable,
                environment,
                recording,
                started_at=started_at,
                feature=feature,
                stdin_fd=stdin_fd,
                stdout_fd=stdout_fd,
            )
        except _NotStartedError as exc:
            partial.unlink()  # nothing ran, so there is nothing to keep
            raise exc.error from None
        finally:
            os.close(recording)
        ended_at = time.time()
        exit_code, failure = status
        if failure is not None:
            raise RecordingFailedError(
                f"recording to {partial} failed while the command ran ({failure.strerror});"
                f" the command was stopped",
                exit_code=exit_code,
                partial=partial,
            )
        try:
            return self._seal(
                partial,
                argv=argv,
                executable=executable,
                user=user,
                feature=feature,
                decision_id=decision_id,
                started_at=started_at,
                ended_at=ended_at,
                exit_code=exit_code,
            )
        except RecordingExistsError:
            raise
        except OSError as exc:
            raise RecordingFailedError(
                f"the command ran (exit {exit_code}) but its recording could not be sealed:"
                f" {exc.strerror or exc}",
                exit_code=exit_code,
                partial=partial,
            ) from exc

    def _record(
        self,
        argv: Sequence[str],
        executable: str,
        env: dict[str, str],
        recording: int,
        *,
        started_at: float,
        feature: str,
        stdin_fd: int | None,
        stdout_fd: int,
    ) -> tuple[int, OSError | None]:
        """Start the command on a new pty and pump until it exits: (exit code, failure)."""
        size = _window_size(stdout_fd)
        header = {
            "version": 2,
            "width": size[1],
            "height": size[0],
            "timestamp": int(started_at),
            "command": shlex.join(argv),
            "title": f"council exec --feature {feature}",
            "env": {"TERM": env.get("TERM", ""), "SHELL": env.get("SHELL", "")},
        }
        try:
            _write_all(recording, (json.dumps(header) + "\n").encode())
        except OSError as exc:
            raise RecorderSetupError(f"cannot write the recording: {exc.strerror}") from exc
        master, slave = os.openpty()
        _set_window_size(slave, size)
        if stdin_fd is not None and os.isatty(stdin_fd):
            # The command sees the user's terminal settings (erase key, flow control...).
            with contextlib.suppress(termios.error):
                termios.tcsetattr(slave, termios.TCSANOW, termios.tcgetattr(stdin_fd))
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        # posix_spawn, not fork: the calling process has gRPC and executor threads, and
        # glibc spawns with vfork semantics, running no atfork handlers and no Python in
        # the child. The new session leader opens the terminal by name, which makes it
        # the command's controlling terminal (so ^C and job control work inside).
        actions = [(os.POSIX_SPAWN_OPEN, fd, os.ttyname(slave), os.O_RDWR, 0) for fd in (0, 1, 2)]
        try:
            pid = os.posix_spawn(
                executable,
                list(argv),
                env,
                file_actions=actions,
                setsid=True,
                # Python ignores SIGPIPE and SIGXFSZ; the command gets the defaults back,
                # as subprocess's restore_signals does, and an empty signal mask.
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
                setsigmask=(),
            )
        except OSError as exc:
            for fd in (master, slave, wake_read, wake_write):
                os.close(fd)
            raise _NotStartedError(exc) from exc
        os.close(slave)
        os.set_blocking(master, False)
        session = _Session(
            pid,
            master,
            recording,
            stdin_fd=stdin_fd,
            stdout_fd=stdout_fd,
            record_input=self.config.record_input,
            wake_read=wake_read,
        )
        session.size = size
        saved_mode = None
        if stdin_fd is not None and os.isatty(stdin_fd):
            # Raw mode: keystrokes (^C included) go to the command's terminal, which then
            # signals the command itself, as a direct terminal would.
            saved_mode = termios.tcgetattr(stdin_fd)
            tty.setraw(stdin_fd, termios.TCSANOW)  # TCSANOW keeps what was typed ahead
        with self._lock:
            self._session = session
            self._wake_write = wake_write
        try:
            self._pump(session)
        finally:
            with self._lock:
                self._session = None
                self._wake_write = None
            if saved_mode is not None and stdin_fd is not None:
                termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved_mode)
            os.close(master)
            os.close(wake_read)
            os.close(wake_write)
            if session.status is None:
                session.stop_child()
                session.reap(block=True)
        assert session.status is not None
        with contextlib.suppress(OSError):
            os.fsync(recording)
        return _exit_code(session.status), session.failure

    def _pump(self, session: _Session) -> None:
        open_master = True
        while open_master:
            if self._resized.is_set():
                self._resized.clear()
                size = _window_size(session.stdout_fd if session.stdout_fd is not None else 1)
                if size != session.size:
                    session.size = size
                    with contextlib.suppress(OSError):
                        _set_window_size(session.master, size)
                    session.event("r", f"{size[1]}x{size[0]}")
            readers = [session.master, session.wake_read]
            if session.stdin_fd is not None:
                readers.append(session.stdin_fd)
            writers = [session.master] if session.pending_input else []
            try:
                readable, writable, _ = select.select(readers, writers, [], POLL_SECONDS)
            except InterruptedError:
                continue
            if session.wake_read in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(session.wake_read, READ_CHUNK)
            if session.master in writable:
                session.write_master()
            if session.stdin_fd is not None and session.stdin_fd in readable:
                session.read_stdin()
            if session.master in readable:
                open_master = session.read_master()
            if session.master not in readable and session.reap(block=False) is not None:
                # The command exited but something it started still holds the terminal:
                # take what is buffered and stop, as the session is over.
                while session.read_master() and self._readable(session.master):
                    pass
                open_master = False
            if session.failure is not None:
                return
        session.reap(block=True)
        tail = session.decoder.decode(b"", final=True)
        if tail:
            session.event("o", tail)

    @staticmethod
    def _readable(fd: int) -> bool:
        return bool(select.select([fd], [], [], 0)[0])

    # --- sealing --------------------------------------------------------------------------

    def _seal(
        self,
        partial: Path,
        *,
        argv: Sequence[str],
        executable: str,
        user: str,
        feature: str,
        decision_id: str,
        started_at: float,
        ended_at: float,
        exit_code: int,
    ) -> SealedRecording:
        digest, size = _digest(partial)
        manifest = SessionManifest(
            command=tuple(argv),
            executable=executable,
            user=user,
            host=socket.gethostname(),
            feature=feature,
            decision_id=decision_id,
            started_at=started_at,
            ended_at=ended_at,
            exit_code=exit_code,
            recording_sha256=digest,
            recording_bytes=size,
            key_id=self.key_id,
        )
        body = manifest.canonical()
        signature = base64.b64encode(self._key.sign(body)) + b"\n"
        shard = self.config.store / digest[:2]
        shard.mkdir(mode=STORE_MODE, exist_ok=True)
        target = shard / digest
        try:
            target.mkdir(mode=STORE_MODE)
        except FileExistsError:
            raise RecordingExistsError(
                f"a recording is already sealed at {target}; {partial} was left unsealed"
            ) from None
        os.chmod(partial, SEALED_FILE_MODE)
        # A hard link keeps the inode that was digested; a copy could differ.
        os.link(partial, target / RECORDING_FILE)
        os.unlink(partial)
        _write_sealed(target / MANIFEST_FILE, body)
        _write_sealed(target / SIGNATURE_FILE, signature)
        os.chmod(target, SEALED_DIR_MODE)
        _fsync_dir(target)
        _fsync_dir(shard)
        return SealedRecording(target, manifest)


def _digest(path: Path) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def _write_sealed(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SEALED_FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- verification -------------------------------------------------------------------------


def verify_recording(directory: Path, public_key: Ed25519PublicKey) -> SessionManifest:
    """Check a sealed recording against a trusted key; return its manifest.

    Raises :class:`RecordingInvalidError` naming the first failed check: a missing file,
    a signature that does not verify (manifest changed or another key), a recording whose
    SHA-256 or size differs from the manifest, or a directory not named by that digest.
    """
    directory = Path(directory)
    try:
        body = (directory / MANIFEST_FILE).read_bytes()
        signature_text = (directory / SIGNATURE_FILE).read_bytes()
    except OSError as exc:
        raise RecordingInvalidError(f"{directory}: incomplete recording: {exc}") from exc
    try:
        signature = base64.b64decode(signature_text.strip(), validate=True)
        public_key.verify(signature, body)
    except (InvalidSignature, ValueError) as exc:
        raise RecordingInvalidError(
            f"{directory}: the manifest signature does not verify under key"
            f" {_key_id(public_key)} (manifest changed, or sealed by another key)"
        ) from exc
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise RecordingInvalidError(f"{directory}: manifest is not JSON: {exc}") from exc
    manifest = SessionManifest.from_json(doc)
    if manifest.key_id != _key_id(public_key):
        raise RecordingInvalidError(f"{directory}: manifest names key {manifest.key_id}")
    try:
        digest, size = _digest(directory / RECORDING_FILE)
    except OSError as exc:
        raise RecordingInvalidError(f"{directory}: recording unreadable: {exc}") from exc
    if digest != manifest.recording_sha256 or size != manifest.recording_bytes:
        raise RecordingInvalidError(
            f"{directory}: the recording changed after sealing (sha256 {digest}, {size} bytes;"
            f" sealed {manifest.recording_sha256}, {manifest.recording_bytes} bytes)"
        )
    if directory.name != digest:
        raise RecordingInvalidError(
            f"{directory}: not at its content address (expected a directory named {digest})"
        )
    return manifest


def recorded_output(directory: Path) -> str:
    """The terminal output of a recording, concatenated (``"o"`` events only)."""
    parts: list[str] = []
    with (Path(directory) / RECORDING_FILE).open(encoding="utf-8") as fh:
        header = json.loads(fh.readline())
        if header.get("version") != 2:
            raise RecordingInvalidError(f"{directory}: not an asciicast v2 recording")
        for line in fh:
            _, kind, data = json.loads(line)
            if kind == "o":
                parts.append(data)
    return "".join(parts)
