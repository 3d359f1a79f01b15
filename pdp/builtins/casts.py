"""The deprecated ``cast_*`` builtins and ``numbers.range_step``.

The casts only check a type (``cast_array`` and ``cast_set`` also convert between arrays
and sets); Rego v1 rejects them at compile time, but modules built for v0 still call them.
"""

from __future__ import annotations

from typing import Any

from pdp.builtins.base import (
    BuiltinError,
    BuiltinSpec,
    EvalContext,
    OperandError,
    operand_type_error,
)
from pdp.values import RegoSet

__all__ = [
    "BUILTINS",
    "cast_array",
    "cast_boolean",
    "cast_null",
    "cast_object",
    "cast_set",
    "cast_string",
    "numbers_range_step",
]


def cast_array(ctx: EvalContext, x: Any) -> list[Any]:
    """Returns an array or set as an array (sets in sorted order)."""
    if type(x) is list:
        return x
    if type(x) is RegoSet:
        return list(x)
    raise operand_type_error(1, x, "array", "set")


def cast_set(ctx: EvalContext, x: Any) -> RegoSet:
    """Returns an array or set as a set."""
    if type(x) is RegoSet:
        return x
    if type(x) is list:
        return RegoSet(x)
    raise operand_type_error(1, x, "array", "set")


def cast_string(ctx: EvalContext, x: Any) -> str:
    """Returns ``x`` if it is a string, else fails with a type error."""
    if type(x) is not str:
        raise operand_type_error(1, x, "string")
    return x


def cast_boolean(ctx: EvalContext, x: Any) -> bool:
    """Returns ``x`` if it is a boolean, else fails with a type error."""
    if type(x) is not bool:
        raise operand_type_error(1, x, "boolean")
    return x


def cast_null(ctx: EvalContext, x: Any) -> None:
    """Returns ``x`` if it is null, else fails with a type error."""
    if x is not None:
        raise operand_type_error(1, x, "null")


def cast_object(ctx: EvalContext, x: Any) -> dict[Any, Any]:
    """Returns ``x`` if it is an object, else fails with a type error."""
    if type(x) is not dict:
        raise operand_type_error(1, x, "object")
    return x


def _integer(value: Any, pos: int) -> int:
    """OPA's ``BigIntOperand``: any integral number, of any size."""
    t = type(value)
    if t is int:
        return value
    if t is float:
        if value.is_integer():
            return int(value)
        raise OperandError(f"operand {pos} must be integer number but got floating-point number")
    raise operand_type_error(pos, value, "integer")


def numbers_range_step(ctx: EvalContext, a: Any, b: Any, step: Any) -> list[int]:
    """Returns the numbers from ``a`` to ``b`` (inclusive) in increments of a positive step."""
    start, stop, inc = _integer(a, 1), _integer(b, 2), _integer(step, 3)
    if inc <= 0:
        raise BuiltinError("numbers.range_step: step must be a positive integer")
    if start <= stop:
        return list(range(start, stop + 1, inc))
    return list(range(start, stop - 1, -inc))


BUILTINS = (
    BuiltinSpec("cast_array", cast_array),
    BuiltinSpec("cast_boolean", cast_boolean),
    BuiltinSpec("cast_null", cast_null),
    BuiltinSpec("cast_object", cast_object),
    BuiltinSpec("cast_set", cast_set),
    BuiltinSpec("cast_string", cast_string),
    BuiltinSpec("numbers.range_step", numbers_range_step),
)
