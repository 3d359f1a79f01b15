"""The pinned OPA binary: where it lives, how it is installed, how it is run.

OPA is needed only to *build* and *test* Rego (``opa build -t wasm``, ``opa test``,
``opa check``); the PDP and the sidecars never call it. The version is pinned here and
nowhere else. Installation compiles OPA from its Go module with ``go install`` into the
project's git-ignored tool folder; no prebuilt binary is ever downloaded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPA_VERSION = "1.22.3"
OPA_MODULE = "github.com/open-policy-agent/opa"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TOOL_DIR = PROJECT_ROOT / ".tools" / "bin"

_VERSION_LINE = re.compile(r"^Version:\s*(\S+)", re.MULTILINE)


class OpaToolError(RuntimeError):
    """Raised when the pinned ``opa`` is missing, cannot be built, or a command fails."""


@dataclass(frozen=True)
class OpaResult:
    """Outcome of one ``opa`` invocation."""

    returncode: int
    stdout: str
    stderr: str


def installed_version(binary: Path | str) -> str | None:
    """Return the version ``binary version`` reports, or None if it does not run."""
    try:
        out = subprocess.run(
            [str(binary), "version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION_LINE.search(out.stdout)
    return match.group(1).lstrip("v") if match else None


def find_opa() -> Path:
    """Locate an ``opa`` at the pinned version: ``COUNCIL_OPA``, the tool folder, then PATH."""
    candidates: list[Path] = []
    if env := os.environ.get("COUNCIL_OPA"):
        candidates.append(Path(env))
    candidates.append(TOOL_DIR / "opa")
    if on_path := shutil.which("opa"):
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and installed_version(candidate) == OPA_VERSION:
            return candidate
    raise OpaToolError(
        f"opa {OPA_VERSION} not found (looked at {', '.join(map(str, candidates))}); "
        "run `council opa install` or `make opa`"
    )


def install(force: bool = False) -> Path:
    """Build the pinned OPA with ``go install`` unless a matching binary already exists."""
    if not force:
        try:
            return find_opa()
        except OpaToolError:
            pass
    go = shutil.which("go")
    if go is None:
        raise OpaToolError("`go` is not on PATH; it is needed to build opa from its module")
    TOOL_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOBIN=str(TOOL_DIR), CGO_ENABLED=os.environ.get("CGO_ENABLED", "0"))
    proc = subprocess.run(
        [go, "install", f"{OPA_MODULE}@v{OPA_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise OpaToolError(f"go install {OPA_MODULE}@v{OPA_VERSION} failed:\n{proc.stderr}")
    return find_opa()


def run_opa(args: list[str], *, cwd: Path | None = None, timeout: float = 300) -> OpaResult:
    """Run the pinned ``opa`` with ``args`` and return its exit code and output."""
    binary = find_opa()
    proc = subprocess.run(
        [str(binary), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return OpaResult(proc.returncode, proc.stdout, proc.stderr)
