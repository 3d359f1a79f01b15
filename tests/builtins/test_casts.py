"""Unit tests for the deprecated ``cast_*`` builtins and ``numbers.range_step``."""

from __future__ import annotations

from typing import Any

import pytest

from pdp.builtins.base import BuiltinError, EvalContext, OperandError
from pdp.builtins.casts import (
    cast_array,
    cast_boolean,
    cast_null,
    cast_object,
    cast_set,
    cast_string,
    numbers_range_step,
)
from pdp.values import RegoSet

CTX = EvalContext()


def test_cast_array_and_set_convert() -> None:
    assert cast_array(CTX, [2, 1, 2]) == [2, 1, 2]
    assert cast_array(CTX, RegoSet([3, "a", 1])) == [1, 3, "a"]
    assert cast_set(CTX, [3, 1, 1]) == RegoSet([1, 3])
    assert cast_set(CTX, RegoSet([1])) == RegoSet([1])


@pytest.mark.parametrize(
    ("fn", "value"),
    [
        (cast_string, "x"),
        (cast_boolean, False),
        (cast_null, None),
        (cast_object, {"a": [1]}),
    ],
)
def test_identity_casts(fn: Any, value: Any) -> None:
    assert fn(CTX, value) == value


@pytest.mark.parametrize(
    ("fn", "value", "message"),
    [
        (cast_array, "x", "operand 1 must be one of {array, set} but got string"),
        (cast_set, None, "operand 1 must be one of {array, set} but got null"),
        (cast_string, 1, "operand 1 must be string but got number"),
        (cast_boolean, "true", "operand 1 must be boolean but got string"),
        (cast_null, 0, "operand 1 must be null but got number"),
        (cast_object, [], "operand 1 must be object but got array"),
    ],
)
def test_cast_type_errors(fn: Any, value: Any, message: str) -> None:
    with pytest.raises(OperandError) as exc:
        fn(CTX, value)
    assert exc.value.message == message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((0, 10, 2), [0, 2, 4, 6, 8, 10]),
        ((0, -10, 2), [0, -2, -4, -6, -8, -10]),
        ((10, 3, 2), [10, 8, 6, 4]),
        ((1024, 4096, 1024), [1024, 2048, 3072, 4096]),
        ((2, 2, 2), [2]),
        ((2, 5, 2), [2, 4]),
        ((0, 10, 99999999999999999999), [0]),
        ((2**70, 2**70 + 2, 1), [2**70, 2**70 + 1, 2**70 + 2]),
        ((1.0, 3, 1), [1, 2, 3]),
    ],
)
def test_range_step(args: tuple[Any, ...], expected: list[int]) -> None:
    assert numbers_range_step(CTX, *args) == expected


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((0, 10, -2), BuiltinError, "numbers.range_step: step must be a positive integer"),
        ((0, 10, 0), BuiltinError, "numbers.range_step: step must be a positive integer"),
        (("1", 3, 1), OperandError, "operand 1 must be integer but got string"),
        ((1, None, 1), OperandError, "operand 2 must be integer but got null"),
        (
            (1, 3, 0.5),
            OperandError,
            "operand 3 must be integer number but got floating-point number",
        ),
        # Operands are checked in order before the step's sign.
        (
            (1.5, 3, -1),
            OperandError,
            "operand 1 must be integer number but got floating-point number",
        ),
    ],
)
def test_range_step_errors(args: tuple[Any, ...], error: type, message: str) -> None:
    with pytest.raises(BuiltinError) as exc:
        numbers_range_step(CTX, *args)
    assert type(exc.value) is error
    assert exc.value.message == message
