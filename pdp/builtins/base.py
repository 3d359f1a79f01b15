"""What every host builtin is written against: its declaration, its errors, its context.

A builtin is a plain Python function ``fn(ctx, *args)`` taking decoded Rego values (see
:mod:`pdp.values`) and returning one, or :data:`UNDEFINED`. It reports failures by raising:

* :class:`OperandError` for a wrongly typed or shaped argument (OPA's ``eval_type_error``),
* :class:`BuiltinError` for any other failure (OPA's ``eval_builtin_error``),
* :class:`HaltError` for failures that end the whole evaluation even in non-strict mode.

As in OPA's Wasm SDK, the first two make the call undefined unless the evaluation runs with
strict builtin errors; then, like a halt, they abort it with OPA's code and message
(``<name>: <message>``).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pdp.values import RegoSet, type_name

__all__ = [
    "UNDEFINED",
    "BuiltinError",
    "BuiltinSpec",
    "EvalContext",
    "HaltError",
    "OperandError",
    "array_arg",
    "bool_arg",
    "collection_arg",
    "int_arg",
    "number_arg",
    "object_arg",
    "operand_type_error",
    "set_arg",
    "string_arg",
]


class _Undefined:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Any = _Undefined()
"""Returned by a builtin whose result is undefined (the expression fails, no error)."""


class BuiltinError(Exception):
    """A builtin failed (OPA ``eval_builtin_error``).

    ``prefix`` adds the builtin's name in front of the message, as OPA does for errors a
    builtin returns; set it to False for errors OPA reports verbatim.
    """

    code = "eval_builtin_error"

    def __init__(self, message: str, *, prefix: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.prefix = prefix


class OperandError(BuiltinError):
    """An argument has the wrong type or shape (OPA ``eval_type_error``)."""

    code = "eval_type_error"


class HaltError(BuiltinError):
    """A failure that aborts the evaluation even without strict builtin errors."""


def operand_type_error(pos: int, got: Any, *expected: str) -> OperandError:
    """OPA's message for operand ``pos`` (1-based) having the wrong type."""
    if len(expected) == 1:
        return OperandError(f"operand {pos} must be {expected[0]} but got {type_name(got)}")
    return OperandError(
        f"operand {pos} must be one of {{{', '.join(expected)}}} but got {type_name(got)}"
    )


def string_arg(value: Any, pos: int) -> str:
    """Return ``value`` if it is a string, else raise OPA's operand type error."""
    if type(value) is not str:
        raise operand_type_error(pos, value, "string")
    return value


def number_arg(value: Any, pos: int) -> int | float:
    """Return ``value`` if it is a number, else raise OPA's operand type error."""
    t = type(value)
    if t is not int and t is not float:
        raise operand_type_error(pos, value, "number")
    return value


def int_arg(value: Any, pos: int) -> int:
    """Return ``value`` as an int if it is an integral number (OPA's ``IntOperand``)."""
    n = number_arg(value, pos)
    if type(n) is float:
        if not n.is_integer():
            raise OperandError(
                f"operand {pos} must be integer number but got floating-point number"
            )
        return int(n)
    return n


def bool_arg(value: Any, pos: int) -> bool:
    """Return ``value`` if it is a boolean, else raise OPA's operand type error."""
    if type(value) is not bool:
        raise operand_type_error(pos, value, "boolean")
    return value


def array_arg(value: Any, pos: int) -> list[Any]:
    """Return ``value`` if it is an array, else raise OPA's operand type error."""
    if type(value) is not list:
        raise operand_type_error(pos, value, "array")
    return value


def object_arg(value: Any, pos: int) -> dict[Any, Any]:
    """Return ``value`` if it is an object, else raise OPA's operand type error."""
    if type(value) is not dict:
        raise operand_type_error(pos, value, "object")
    return value


def set_arg(value: Any, pos: int) -> RegoSet:
    """Return ``value`` if it is a set, else raise OPA's operand type error."""
    if type(value) is not RegoSet:
        raise operand_type_error(pos, value, "set")
    return value


def collection_arg(value: Any, pos: int) -> list[Any]:
    """Return the elements of an array or set (sets in Rego order), else a type error."""
    t = type(value)
    if t is list:
        return value
    if t is RegoSet:
        return list(value)
    raise operand_type_error(pos, value, "array", "set")


@dataclass
class EvalContext:
    """Per-evaluation state shared by the builtins of one evaluation.

    ``now_ns`` is fixed at the start of the evaluation, so every ``time.now_ns()`` in one
    decision agrees, as in OPA. ``cache`` memoises non-deterministic builtins per
    evaluation (``rand.intn``, ``uuid.rfc4122``). ``print`` receives ``print()`` output.
    """

    strict: bool = False
    now_ns: int = field(default_factory=time.time_ns)
    cache: dict[Any, Any] = field(default_factory=dict)
    print: Callable[[str], None] | None = None
    runtime: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltinSpec:
    """Declaration of one host builtin: its Rego name, implementation and arity.

    ``arity`` is read from the implementation's signature (every parameter after ``ctx``).
    ``deterministic`` is False for builtins whose result depends on time, randomness or
    the outside world; such results are cached per evaluation, never across them.
    """

    name: str
    fn: Callable[..., Any]
    deterministic: bool = True
    description: str = ""
    arity: int = field(init=False)

    def __post_init__(self) -> None:
        params = list(inspect.signature(self.fn).parameters.values())
        if not params or params[0].name != "ctx":
            raise TypeError(f"builtin {self.name}: first parameter must be `ctx`")
        if any(p.kind is not p.POSITIONAL_OR_KEYWORD for p in params):
            raise TypeError(f"builtin {self.name}: only plain positional parameters allowed")
        object.__setattr__(self, "arity", len(params) - 1)
        if not self.description:
            doc = inspect.getdoc(self.fn) or ""
            object.__setattr__(self, "description", doc.split("\n", 1)[0])
