"""Unit tests for ``semver.compare`` and ``semver.is_valid``."""

from __future__ import annotations

from typing import Any

import pytest

from pdp.builtins.base import BuiltinError, EvalContext, OperandError
from pdp.builtins.semver import semver_compare, semver_is_valid

CTX = EvalContext()

# SemVer 2.0.0 precedence example, lowest first.
ORDERED = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "2.0.0",
]


@pytest.mark.parametrize("i", range(len(ORDERED)))
def test_compare_follows_precedence(i: int) -> None:
    for j, other in enumerate(ORDERED):
        expected = (i > j) - (i < j)
        assert semver_compare(CTX, ORDERED[i], other) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("v1.0.0", "1.0.0", 0),
        ("1.0.0+build.1", "1.0.0+build.2", 0),
        ("1.0.0-1", "1.0.0-a", -1),
        ("1.0.0-A", "1.0.0-a", -1),
        ("9223372036854775807.0.0", "1.0.0", 1),
        # Numeric identifiers saturate at 2**63-1 as Go's strconv.Atoi reads them.
        ("1.0.0-x.99999999999999999999.a", "1.0.0-x.99999999999999999998.b", -1),
        ("1.0.0-99999999999999999999", "1.0.0-99999999999999999998", 0),
    ],
)
def test_compare_cases(a: str, b: str, expected: int) -> None:
    assert semver_compare(CTX, a, b) == expected


@pytest.mark.parametrize(
    ("version", "valid"),
    [
        ("1.0.0", True),
        ("v1.0.0", True),
        ("1.0.0-rc.1+build.5", True),
        ("1.0.0-0a", True),
        ("1", False),
        ("vv1.0.0", False),
        ("01.0.0", False),
        ("1.0.0-01", False),
        ("1.0.0-", False),
        ("1.0.0+", False),
        ("1.0.0+a..b", False),
        ("1.0.0-a_b", False),
        ("1.2.3.4", False),
        ("+1.0.0", False),
        ("1.0.0\n", False),
        ("9223372036854775808.0.0", False),
        ("1.0.0-é", False),
        (1, False),
        (None, False),
    ],
)
def test_is_valid(version: Any, valid: bool) -> None:
    assert semver_is_valid(CTX, version) is valid


def test_compare_errors() -> None:
    with pytest.raises(BuiltinError) as exc:
        semver_compare(CTX, "1", "1.0.0")
    assert exc.value.message == 'operand 1: string "1" is not a valid SemVer'
    with pytest.raises(BuiltinError) as exc:
        semver_compare(CTX, "1.0.0", 'x"\n')
    assert exc.value.message == 'operand 2: string "x\\"\\n" is not a valid SemVer'
    with pytest.raises(OperandError, match="operand 2 must be string but got array"):
        semver_compare(CTX, "1.0.0", [])
