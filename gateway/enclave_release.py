"""The release gate: an enclave job's outputs leave only with a valid signed envelope.

:meth:`ReleaseGate.release` copies an output directory into a private staging directory
first and verifies *the copy* (EAR signature by the verifier's keys, affirming status, DSSE
signature by the attested job key, every subject's digest, the manifest and EAR bindings;
:func:`agents.enclave.signing.verify_output_dir`), then moves it to its destination. So a
file changed after verification cannot be released, and nothing partial is left at the
destination on refusal.

Each refusal counts as an unsigned output and a refused release in the audit; each release
counts as released. If the audit write fails, the release fails (fail closed).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.enclave.signing import OutputVerificationError, VerifiedOutputs, verify_output_dir
from gateway.enclave_audit import EnclaveAudit

__all__ = ["ReleaseDenied", "ReleaseGate", "ReleasedOutputs"]


class ReleaseDenied(Exception):
    """The outputs were not released; ``code`` is the verification failure's code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ReleasedOutputs:
    """Where released outputs went and what vouched for them."""

    destination: Path
    verified: VerifiedOutputs


class ReleaseGate:
    """Releases only validly signed outputs (see the module docstring)."""

    def __init__(
        self,
        verifier_jwks: Callable[[], Mapping[str, Any]],
        *,
        audit: EnclaveAudit | None = None,
    ) -> None:
        self._jwks = verifier_jwks
        self._audit = audit

    def release(self, out_dir: Path, destination: Path) -> ReleasedOutputs:
        """Copy, verify the copy, then move it to ``destination`` (which must not exist)."""
        if destination.exists():
            raise FileExistsError(f"{destination} already exists")
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".release-", dir=destination.parent))
        copy = staging / "out"
        try:
            shutil.copytree(out_dir, copy, symlinks=True)
            try:
                verified = verify_output_dir(copy, self._jwks())
            except OutputVerificationError as exc:
                if self._audit is not None:
                    self._audit.unsigned_output()
                    self._audit.release(released=False)
                raise ReleaseDenied(exc.code, exc.message) from exc
            if self._audit is not None:
                self._audit.release(released=True)
            os.replace(copy, destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return ReleasedOutputs(destination, verified)
