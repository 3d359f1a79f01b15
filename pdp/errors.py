"""Errors raised by the decision engine.

One base class, a flat set of subclasses, each with a stable string ``code``. Transports
(gRPC, HTTP) map these codes to statuses in exactly one place each; wasmtime's own
exceptions never leave this package untranslated.
"""

from __future__ import annotations


class PDPError(Exception):
    """Base class of every error the engine raises."""

    code = "pdp_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PolicyLoadError(PDPError):
    """The module or bundle cannot be loaded: not Wasm, wrong ABI, missing exports."""

    code = "policy_load_error"


class UnsupportedBuiltinError(PolicyLoadError):
    """The module needs host builtins this host does not implement (names listed)."""

    code = "unsupported_builtin"

    def __init__(self, names: list[str]) -> None:
        super().__init__("policy requires builtins the host does not provide: " + ", ".join(names))
        self.names = names


class EntrypointNotFoundError(PDPError):
    """The requested entrypoint is not exported by the module."""

    code = "entrypoint_not_found"


class InvalidInputError(PDPError):
    """The input (or data) document is not valid JSON or exceeds a size limit."""

    code = "invalid_input"


class EvaluationError(PDPError):
    """Evaluation started but did not produce a result."""

    code = "eval_error"


class PolicyAbortError(EvaluationError):
    """The policy called ``opa_abort``: conflicts and other runtime errors OPA detects.

    ``code`` follows OPA's: ``eval_conflict_error`` for assignment/insert conflicts.
    """

    code = "eval_abort"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        if "conflict" in message:
            self.code = "eval_conflict_error"


class BuiltinEvalError(EvaluationError):
    """A host builtin failed and the evaluation runs with strict builtin errors (or halts).

    ``code`` is OPA's (``eval_builtin_error`` or ``eval_type_error``) and the message is
    OPA's, prefixed with the builtin's name.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class EvaluationTimeoutError(EvaluationError):
    """The evaluation ran past its deadline and was interrupted."""

    code = "eval_timeout"


class ResourceExhaustedError(EvaluationError):
    """The evaluation hit the memory cap or exhausted the Wasm stack (deep recursion)."""

    code = "eval_resource_exhausted"


class WasmTrapError(EvaluationError):
    """Any other Wasm trap; the instance that trapped is discarded."""

    code = "wasm_trap"


class PoolClosedError(PDPError):
    """The instance pool was closed while a caller was waiting for an instance."""

    code = "pool_closed"
