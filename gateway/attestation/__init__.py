"""Attestation verifiers, one plugin module per TEE, registered by name on import.

See :mod:`gateway.attestation.plugins` for the interface and the plugin lifecycle.
"""

from __future__ import annotations

import importlib
import pkgutil

from gateway.attestation.plugins import (
    AttestationError,
    Reason,
    ReferenceValues,
    VerifiedEvidence,
    Verifier,
    get,
    names,
    register,
)

__all__ = [
    "AttestationError",
    "Reason",
    "ReferenceValues",
    "VerifiedEvidence",
    "Verifier",
    "get",
    "names",
    "register",
]


def _register_plugins() -> None:
    """Import every module of this package and register its ``VERIFIER``, so a new TEE is
    one new module and no list here has to change."""
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name == "plugins":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        verifier = getattr(module, "VERIFIER", None)
        if verifier is not None:
            register(verifier)


_register_plugins()
