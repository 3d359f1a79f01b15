"""Host builtins: the Rego builtins OPA's Wasm library leaves to the host.

Each module of this package implements one family (``units``, ``time``, ``jwt``, …) and
exposes ``BUILTINS``, a tuple of :class:`~pdp.builtins.base.BuiltinSpec`.
"""

from pdp.builtins.base import (
    UNDEFINED,
    BuiltinError,
    BuiltinSpec,
    EvalContext,
    HaltError,
    OperandError,
)
from pdp.builtins.registry import BuiltinRegistry, all_builtin_specs, default_registry

__all__ = [
    "UNDEFINED",
    "BuiltinError",
    "BuiltinRegistry",
    "BuiltinSpec",
    "EvalContext",
    "HaltError",
    "OperandError",
    "all_builtin_specs",
    "default_registry",
]
