"""The job sandbox: bubblewrap (``bwrap --unshare-all``) and what of it is measured.

Isolation, not encryption: the job runs in new user, mount, PID, network, IPC, UTS and
cgroup namespaces, with no network, no capabilities, a cleared environment, and a file
system made of read-only binds of exactly the runtime it needs (the Python installation,
the project's virtualenv, system libraries), read-only binds of exactly the code files it
executes, a read-only ``/job/inputs`` (staged, encrypted inputs), a read-only
``/job/manifest.json``, a private writable ``/job/out`` and a fresh ``/tmp``. The host (and
anyone root on it) can still read its memory; the attestation result says so.

Measurement: a :class:`SandboxProfile` has one canonical form whose SHA-256 is the
``sandbox-profile`` event of a measured launch, and :func:`code_listing` lists the code files
with their digests: the ``transform-code`` event. The files listed are exactly the files
bound into the sandbox, so the measurement and the isolation cannot drift apart.

Per-job host directories (inputs, outputs) are not part of the profile: they differ per job,
while the profile is a reference value that stays the same across jobs.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agents.enclave.binding import canonical_json, sha256_digest
from agents.enclave.transforms import TransformSpec, file_digest

__all__ = [
    "JOB_INPUTS",
    "JOB_MANIFEST",
    "JOB_OUT",
    "PROJECT_ROOT",
    "RUNTIME_SOURCES",
    "SandboxProfile",
    "code_listing",
    "default_profile",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
JOB_INPUTS = "/job/inputs"
JOB_OUT = "/job/out"
JOB_MANIFEST = "/job/manifest.json"
RUNNER_MODULE = "agents.enclave.job_runner"
# The job runtime every transform shares: the runner and what it imports.
RUNTIME_SOURCES = tuple(
    PROJECT_ROOT / p
    for p in (
        "agents/__init__.py",
        "agents/enclave/__init__.py",
        "agents/enclave/job_runner.py",
        "agents/enclave/binding.py",
        "agents/enclave/crypto.py",
        "agents/enclave/ear.py",
        "agents/enclave/job_keys.py",
        "agents/enclave/signing.py",
        "agents/enclave/transforms/__init__.py",
    )
)
# Namespace and privilege flags. --unshare-all drops the network too; --die-with-parent
# kills the job if the executor dies, so no orphan keeps a key.
ISOLATION_FLAGS = (
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--clearenv",
    "--cap-drop",
    "ALL",
)
# OpenBLAS misdetects some processors; where the host pins these, the job must too.
PASSTHROUGH_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class SandboxProfile:
    """How jobs are sandboxed (see the module docstring).

    Attributes:
        bwrap: the bubblewrap program.
        python: the interpreter the job runs (the project's virtualenv).
        runtime_binds: host paths bound read-only at the same place.
        symlinks: ``(target, link)`` pairs created in the sandbox (merged-/usr layouts).
        env: the job's whole environment.
        flags: the isolation flags.
    """

    bwrap: str
    python: str
    runtime_binds: tuple[str, ...]
    symlinks: tuple[tuple[str, str], ...]
    env: Mapping[str, str] = field(default_factory=dict)
    flags: tuple[str, ...] = ISOLATION_FLAGS

    def __post_init__(self) -> None:
        missing = [p for p in self.runtime_binds if not Path(p).exists()]
        if missing:
            raise ValueError(f"runtime paths do not exist: {', '.join(missing)}")
        if "--unshare-all" not in self.flags or "--die-with-parent" not in self.flags:
            raise ValueError("a sandbox profile must unshare all namespaces and die with parent")
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    def document(self) -> dict[str, Any]:
        """The canonical form that is measured."""
        return {
            "bwrap": self.bwrap,
            "python": self.python,
            "runtime_binds": list(self.runtime_binds),
            "symlinks": [list(s) for s in self.symlinks],
            "env": dict(self.env),
            "flags": list(self.flags),
            "mounts": {"inputs": JOB_INPUTS, "out": JOB_OUT, "manifest": JOB_MANIFEST},
            "runner": RUNNER_MODULE,
        }

    def canonical(self) -> bytes:
        """Canonical JSON of :meth:`document`: the ``sandbox-profile`` measurement."""
        return canonical_json(self.document())

    def digest(self) -> str:
        """``sha256:<hex>`` of :meth:`canonical`."""
        return sha256_digest(self.canonical())

    def argv(
        self,
        *,
        code_files: Sequence[Path],
        inputs_dir: Path,
        out_dir: Path,
        manifest: Path,
        mode: str,
    ) -> list[str]:
        """The bwrap command line of one job (``mode``: ``enclave`` or ``plain``)."""
        args = [self.bwrap, *self.flags]
        for path in self.runtime_binds:
            args += ["--ro-bind", path, path]
        for target, link in self.symlinks:
            args += ["--symlink", target, link]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for path in code_files:
            args += ["--ro-bind", str(path), str(path)]
        args += ["--ro-bind", str(inputs_dir), JOB_INPUTS]
        args += ["--bind", str(out_dir), JOB_OUT]
        args += ["--ro-bind", str(manifest), JOB_MANIFEST]
        for key, value in self.env.items():
            args += ["--setenv", key, value]
        args += ["--chdir", "/tmp", "--", self.python, "-I", "-m", RUNNER_MODULE, mode]
        return args


def default_profile() -> SandboxProfile:
    """The profile for this host: this interpreter and virtualenv, system libraries."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise FileNotFoundError("bubblewrap (bwrap) is not installed")
    binds = ["/usr", "/etc/ld.so.cache"]
    for prefix in (sys.base_prefix, sys.prefix):
        if prefix not in binds and not prefix.startswith("/usr/"):
            binds.append(prefix)
    symlinks = tuple(
        (os.readlink(link), link)
        for link in ("/bin", "/lib", "/lib64", "/sbin")
        if os.path.islink(link)
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "HF_HUB_OFFLINE": "1", "LANG": "C.UTF-8"}
    env.update({k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ})
    python = str(Path(sys.prefix) / "bin" / "python")
    return SandboxProfile(bwrap, python, tuple(binds), symlinks, env)


def code_files(spec: TransformSpec | None) -> tuple[Path, ...]:
    """The files one job executes: the runtime, plus the transform's sources and data."""
    extra = spec.files() if spec is not None else ()
    return tuple(dict.fromkeys((*RUNTIME_SOURCES, *extra)))


def code_listing(spec: TransformSpec | None) -> bytes:
    """Canonical JSON ``{"transform", "files": [{path, sha256}]}``: the ``transform-code``
    measurement (``spec`` None: the runtime alone, as a platform probe measures it)."""
    files = []
    for path in code_files(spec):
        files.append({"path": str(path), "sha256": _cached_digest(path)})
    return canonical_json({"transform": spec.name if spec else "", "files": files})


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _cached_digest(path: Path) -> str:
    # Model weights are large and never change under a running executor: hash once per
    # (path, size, mtime), so per-job measurement stays cheap.
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(path)
    return _DIGESTS[key]
