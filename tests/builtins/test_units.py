"""Unit tests for ``units.parse`` and ``units.parse_bytes``."""

from __future__ import annotations

from typing import Any

import pytest

from pdp.builtins.base import BuiltinError, EvalContext, OperandError
from pdp.builtins.units import units_parse, units_parse_bytes

CTX = EvalContext()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        (".0", 0),
        ("12345", 12345),
        ("10K", 10_000),
        ("10k", 10_000),
        ("10KI", 10_240),
        ("10Ki", 10_240),
        ("300Gi", 322_122_547_200),
        ("1.1K", 1100),
        ("1.1Ki", 1126.4),
        (".5K", 500),
        ("100M", 100_000_000),
        ("100mi", 104_857_600),
        ("10e", 10**19),
        ("10Ei", 10 * 2**60),
        ('"100TI"', 100 * 2**40),
        ("1e10", 10**10),
        ("3.2E4", 32_000),
        ("2.5e3K", 2_500_000),
        ("1e-2", 0.01),
        ("-3.5E2m", -0.35),
        ("500m", 0.5),
        ("0.0005K", 0.5),
        ("0.0000005M", 0.5),
        ("1m", 0.001),
        # The milli factor is the float64 nearest 0.001, and results keep ten decimals.
        ("1000m", 1),
        ("123456789123456789.123m", 123456789123456.7916929607),
        ("0.00000000005", 0.0000000001),
        ("0.00000000004999", 0),
        ("1e-999999", 0),
        ("010.5", 10.5),
        ("+5", 5),
        ("5.", 5),
    ],
)
def test_units_parse(text: str, expected: Any) -> None:
    result = units_parse(CTX, text)
    assert result == expected
    assert type(result) is type(expected)


def test_units_parse_huge_integers_are_exact() -> None:
    assert units_parse(CTX, "1e99999") == 10**99999
    # 10**999 carries enough factors of two to cancel the binary milli factor exactly.
    milli_num, milli_den = (0.001).as_integer_ratio()
    assert units_parse(CTX, "1.5e1000m") == 15 * 10**999 * milli_num // milli_den


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "units.parse: no amount provided"),
        ("G", "units.parse: no amount provided"),
        ("0.0.0", "units.parse: could not parse amount to a number"),
        (".5.2", "units.parse: could not parse amount to a number"),
        ("5-", "units.parse: could not parse amount to a number"),
        ("0.05e-999999", "units.parse: could not parse amount to a number"),
        ("100 k", "units.parse: spaces not allowed in resource strings"),
        ("1e1234567", "units.parse: exponent too large"),
        ("1/2", "units.parse: unit /2 not recognized"),
        ("5MB", "units.parse: unit Mb not recognized"),
        ("5é", "units.parse: unit \ufffd\ufffd not recognized"),
    ],
)
def test_units_parse_errors(text: str, message: str) -> None:
    with pytest.raises(BuiltinError) as exc:
        units_parse(CTX, text)
    assert type(exc.value) is BuiltinError
    assert exc.value.message == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("10KB", 10_000),
        ("10KIB", 10_240),
        ("1.1KiB", 1126),
        ("-1.5KB", -1500),
        ("-0.9", 0),
        ('"100TIB"', 100 * 2**40),
        ("4.5e1GiB", 48_318_382_080),
        ("1e-2KB", 10),
        ("1kİb", 1024),
        # big.Float keeps a 64-bit mantissa: long inputs and large exponents round.
        ("123456789012345678901234567890", 123456789012345678899921813504),
        ("0.1e30", 99999999999999999997315645440),
        ("18446744073709551617", 2**64),
        ("7e-18EB", 6),
        ("2.5e50", 250000000000000000008959575297147309726996218511360),
        ("0.05e-999999", 0),
    ],
)
def test_units_parse_bytes(text: str, expected: int) -> None:
    result = units_parse_bytes(CTX, text)
    assert result == expected
    assert type(result) is int


def test_units_parse_bytes_huge_exponent_keeps_64_bits() -> None:
    result = units_parse_bytes(CTX, "1e999999")
    assert result.bit_length() > 3_000_000
    assert (result >> (result.bit_length() - 64)) << (result.bit_length() - 64) == result


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "units.parse_bytes: no byte amount provided"),
        ("GB", "units.parse_bytes: no byte amount provided"),
        ("0.0.0", "units.parse_bytes: could not parse byte amount to a number"),
        ("100 kb", "units.parse_bytes: spaces not allowed in resource strings"),
        ("1e1234567", "units.parse_bytes: exponent too large"),
        ("5XB", "units.parse_bytes: byte unit xb not recognized"),
        ("5ÄB", "units.parse_bytes: byte unit äb not recognized"),
    ],
)
def test_units_parse_bytes_errors(text: str, message: str) -> None:
    with pytest.raises(BuiltinError) as exc:
        units_parse_bytes(CTX, text)
    assert exc.value.message == message


@pytest.mark.parametrize("fn", [units_parse, units_parse_bytes])
def test_units_operand_type(fn: Any) -> None:
    with pytest.raises(OperandError, match="operand 1 must be string but got number"):
        fn(CTX, 5)
