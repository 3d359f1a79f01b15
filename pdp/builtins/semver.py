"""``semver.compare`` and ``semver.is_valid`` with the SemVer 2.0.0 rules OPA applies.

OPA's parser accepts an optional leading ``v``, rejects leading zeros in numeric parts and
numeric pre-release identifiers, and limits major, minor and patch to signed 64-bit
integers. Numeric pre-release identifiers compare as Go's ``strconv.Atoi`` reads them, which
saturates at the 64-bit maximum.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from pdp.builtins._golang import go_quote_bytes
from pdp.builtins.base import BuiltinError, BuiltinSpec, EvalContext, string_arg

__all__ = ["BUILTINS", "semver_compare", "semver_is_valid"]

_INT64_MAX = 2**63 - 1
_IDENTIFIERS = re.compile(r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*")
_NUMERIC = re.compile(r"[0-9]+")


class _Version(NamedTuple):
    major: int
    minor: int
    patch: int
    pre_release: str


def _numeric(part: str) -> int | None:
    if not _NUMERIC.fullmatch(part) or (len(part) > 1 and part[0] == "0"):
        return None
    value = int(part)
    return value if value <= _INT64_MAX else None


def _parse(text: str) -> _Version | None:
    """Parse a version, or None when OPA would reject it."""
    if text.startswith("v"):
        text = text[1:]
    text, has_metadata, metadata = text.partition("+")
    if has_metadata and not _IDENTIFIERS.fullmatch(metadata):
        return None
    text, has_pre, pre = text.partition("-")
    if has_pre and (
        not _IDENTIFIERS.fullmatch(pre)
        or any(len(p) > 1 and p[0] == "0" and p.isdigit() for p in pre.split("."))
    ):
        return None
    parts = text.split(".")
    if len(parts) != 3:
        return None
    numbers = [_numeric(p) for p in parts]
    if None in numbers:
        return None
    major, minor, patch = numbers
    return _Version(major, minor, patch, pre)  # type: ignore[arg-type]


def _is_numeric_id(ident: str) -> bool:
    return bool(ident) and ident.isascii() and ident.isdigit()


def _compare_pre_release(a: str, b: str) -> int:
    a_ids, b_ids = a.split("."), b.split(".")
    for x, y in zip(a_ids, b_ids, strict=False):
        x_num, y_num = _is_numeric_id(x), _is_numeric_id(y)
        if x_num != y_num:
            return -1 if x_num else 1
        if x_num:
            xv, yv = min(int(x), _INT64_MAX), min(int(y), _INT64_MAX)
        else:
            xv, yv = x, y  # type: ignore[assignment]
        if xv != yv:
            return 1 if xv > yv else -1
    # OPA loops forever when identifiers tie only after saturation; report them equal.
    return (len(a_ids) > len(b_ids)) - (len(a_ids) < len(b_ids))


def _compare(a: _Version, b: _Version) -> int:
    for x, y in ((a.major, b.major), (a.minor, b.minor), (a.patch, b.patch)):
        if x != y:
            return 1 if x > y else -1
    if a.pre_release == b.pre_release:
        return 0
    if not a.pre_release:
        return 1
    if not b.pre_release:
        return -1
    return _compare_pre_release(a.pre_release, b.pre_release)


def semver_compare(ctx: EvalContext, a: Any, b: Any) -> int:
    """Compares valid SemVer formatted version strings; returns -1, 0 or 1."""
    a_text, b_text = string_arg(a, 1), string_arg(b, 2)
    a_version = _parse(a_text)
    if a_version is None:
        raise BuiltinError(f"operand 1: string {go_quote_bytes(a_text)} is not a valid SemVer")
    b_version = _parse(b_text)
    if b_version is None:
        raise BuiltinError(f"operand 2: string {go_quote_bytes(b_text)} is not a valid SemVer")
    return _compare(a_version, b_version)


def semver_is_valid(ctx: EvalContext, vsn: Any) -> bool:
    """Validates that the input is a valid SemVer string; false for any non-string."""
    return type(vsn) is str and _parse(vsn) is not None


BUILTINS = (
    BuiltinSpec("semver.compare", semver_compare),
    BuiltinSpec("semver.is_valid", semver_is_valid),
)
