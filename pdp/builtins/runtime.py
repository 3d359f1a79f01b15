"""Runtime builtins: ``opa.runtime``, ``trace``, ``internal.print`` and ``rego.metadata.*``.

``print(a, b)`` never reaches a host: OPA's compiler rewrites it to
``internal.print([{a | …}, {b | …}])``, one set per argument holding every value the
argument takes (empty when it is undefined), and only compiles it into a Wasm module built
with ``--wasm-include-print``. The host prints the cross product of those sets, one line each.

``rego.metadata.chain()`` and ``rego.metadata.rule()`` are replaced by constants when OPA
compiles a rule that calls them, so a Wasm module only calls them from a query, which OPA
answers with an error.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from pdp.builtins._golang import go_quote
from pdp.builtins.base import (
    UNDEFINED,
    BuiltinError,
    BuiltinSpec,
    EvalContext,
    HaltError,
    array_arg,
    string_arg,
)
from pdp.builtins.gofmt import JSONNumber, go_type_name
from pdp.values import RegoSet, encode, sorted_values, type_name

__all__ = [
    "BUILTINS",
    "internal_print",
    "opa_runtime",
    "rego_metadata_chain",
    "rego_metadata_rule",
    "rego_string",
    "trace",
]


class InternalError(HaltError):
    """OPA's ``eval_internal_error``, which ends the evaluation."""

    code = "eval_internal_error"


def rego_string(value: Any) -> str:
    """A value's text as OPA's ``Term.String()`` writes it (Rego syntax, sorted keys)."""
    t = type(value)
    if t is str:
        return go_quote(value)
    if value is None or t is bool or t is int or t is float:
        return encode(value)
    if t is list or t is tuple:
        return "[" + ", ".join(rego_string(v) for v in value) + "]"
    if t is dict:
        items = (f"{rego_string(k)}: {rego_string(value[k])}" for k in sorted_values(value))
        return "{" + ", ".join(items) + "}"
    if t is RegoSet:
        if not value:
            return "set()"
        return "{" + ", ".join(rego_string(v) for v in value) + "}"
    raise TypeError(f"not a Rego value: {t.__name__}")


# --- opa.runtime -----------------------------------------------------------------------


def _go_type(value: Any) -> str:
    if type(value) in (int, float):
        return go_type_name(JSONNumber(encode(value)))
    if value is None:
        return "<nil>"
    return go_type_name(value)


def _strip_keys(entries: Any, keys: tuple[str, ...]) -> None:
    for entry in entries:
        if type(entry) is not dict:
            raise BuiltinError("type assertion error")
        for key in keys:
            entry.pop(key, None)


def _redact(runtime: dict[str, Any]) -> dict[str, Any]:
    """Drop service credentials and key material from the ``config`` section, as OPA does."""
    config = runtime.get("config")
    if type(config) is not dict:
        return runtime
    config = copy.deepcopy(config)
    services = config.get("services")
    if services is not None:
        if type(services) is list:
            _strip_keys(services, ("credentials",))
        elif type(services) is dict:
            _strip_keys(services.values(), ("credentials",))
        else:
            raise BuiltinError(f"illegal service config type: {_go_type(services)}")
    keys = config.get("keys")
    if keys is not None:
        if type(keys) is not dict:
            raise BuiltinError(f"illegal keys config type: {_go_type(keys)}")
        _strip_keys(keys.values(), ("key", "private_key"))
    return {**runtime, "config": config}


def opa_runtime(ctx: EvalContext) -> Any:
    """The runtime information the host was given (``{}`` when none), credentials removed."""
    if not ctx.runtime:
        return {}
    return _redact(ctx.runtime)


# --- trace / internal.print ------------------------------------------------------------


def trace(ctx: EvalContext, note: Any) -> Any:
    """Always true; a Wasm evaluation has no tracer to receive the note."""
    string_arg(note, 1)
    return True


def _print_choices(operand: Any) -> list[str]:
    t = type(operand)
    if t is str:
        return [operand]
    if operand is None or t in (bool, int, float):
        return [encode(operand)]
    if t is not RegoSet:
        raise InternalError(f"illegal argument type: {type_name(operand)}", prefix=False)
    if not operand:
        return ["<undefined>"]
    return [v if type(v) is str else rego_string(v) for v in operand]


def internal_print(ctx: EvalContext, operands: Any) -> Any:
    """Write ``print()`` output through ``ctx.print``: the arguments joined by spaces, one
    line per combination of their values, ``<undefined>`` for an undefined argument."""
    if ctx.print is None:
        return UNDEFINED
    choices = [_print_choices(op) for op in array_arg(operands, 1)]
    for line in itertools.product(*choices):
        ctx.print(" ".join(line))
    return UNDEFINED


# --- rego.metadata ---------------------------------------------------------------------


def _outside_rule(name: str) -> BuiltinError:
    return BuiltinError(f"the {name} function must only be called within the scope of a rule")


def rego_metadata_chain(ctx: EvalContext) -> Any:
    """Only reachable from a query (OPA inlines rule calls at compile time): an error."""
    raise _outside_rule("rego.metadata.chain")


def rego_metadata_rule(ctx: EvalContext) -> Any:
    """Only reachable from a query (OPA inlines rule calls at compile time): an error."""
    raise _outside_rule("rego.metadata.rule")


BUILTINS = (
    BuiltinSpec("opa.runtime", opa_runtime, deterministic=False),
    BuiltinSpec("trace", trace),
    BuiltinSpec("internal.print", internal_print),
    BuiltinSpec("rego.metadata.chain", rego_metadata_chain),
    BuiltinSpec("rego.metadata.rule", rego_metadata_rule),
)
