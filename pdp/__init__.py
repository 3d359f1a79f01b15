"""Council's decision engine: OPA Wasm policies evaluated in wasmtime, with host builtins.

Knows nothing of the network; the gateway's servers are thin adapters over this package.
"""

from pdp.config import HostConfig
from pdp.errors import (
    BuiltinEvalError,
    EntrypointNotFoundError,
    EvaluationError,
    EvaluationTimeoutError,
    InvalidInputError,
    PDPError,
    PolicyAbortError,
    PolicyLoadError,
    ResourceExhaustedError,
    UnsupportedBuiltinError,
    WasmTrapError,
)
from pdp.policy import Policy, load

__all__ = [
    "BuiltinEvalError",
    "EntrypointNotFoundError",
    "EvaluationError",
    "EvaluationTimeoutError",
    "HostConfig",
    "InvalidInputError",
    "PDPError",
    "Policy",
    "PolicyAbortError",
    "PolicyLoadError",
    "ResourceExhaustedError",
    "UnsupportedBuiltinError",
    "WasmTrapError",
    "load",
]
