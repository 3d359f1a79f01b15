"""``uuid.parse``, ``uuid.rfc4122`` and ``rand.intn``.

The two random builtins return one value per argument for the whole evaluation, as OPA
caches them per query; the cache is :attr:`EvalContext.cache`. ``uuid.parse`` accepts the
layouts of Go's ``github.com/google/uuid`` (plain, ``urn:uuid:``, braced, and undashed) and
reports the fields OPA reports.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from pdp.builtins.base import (
    UNDEFINED,
    BuiltinSpec,
    EvalContext,
    OperandError,
    int_arg,
    string_arg,
)
from pdp.values import freeze

__all__ = ["BUILTINS", "rand_intn", "uuid_parse", "uuid_rfc4122"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
# Offset between the Gregorian reform (15 Oct 1582) and the Unix epoch in 100 ns ticks.
_GREGORIAN_OFFSET = (2440587 - 2299160) * 86400 * 10_000_000
_DOMAINS = ("Person", "Group", "Org")


def _uuid_bytes(text: str) -> bytes | None:
    """The 16 bytes of a UUID in one of the layouts Go's uuid.Parse accepts, or None."""
    s = text.encode("utf-8", "surrogatepass")
    if len(s) == 32:
        return bytes.fromhex(s.decode("ascii")) if all(c in _HEX_DIGITS for c in s) else None
    if len(s) == 45:
        if s[:9].lower() != b"urn:uuid:":
            return None
        s = s[9:]
    elif len(s) == 38:
        # Go drops the first byte and ignores the last without checking for braces.
        s = s[1:37]
    elif len(s) != 36:
        return None
    if s[8:9] + s[13:14] + s[18:19] + s[23:24] != b"----":
        return None
    digits = s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
    if not all(c in _HEX_DIGITS for c in digits):
        return None
    return bytes.fromhex(digits.decode("ascii"))


def _variant(b: int) -> str:
    if b & 0xC0 == 0x80:
        return "RFC4122"
    if b & 0xE0 == 0xC0:
        return "Microsoft"
    if b & 0xE0 == 0xE0:
        return "Future"
    return "Reserved"


def _mac_variables(first: int) -> str:
    if first & 0b11 == 0b11:
        return "local:multicast"
    if first & 0b01:
        return "global:multicast"
    if first & 0b10:
        return "local:unicast"
    return "global:unicast"


def _wrap_int64(n: int) -> int:
    return (n - _INT64_MIN) % 2**64 + _INT64_MIN


def uuid_parse(ctx: EvalContext, x: Any) -> Any:
    """Parses the string value as an UUID and returns an object with its well-defined fields."""
    raw = _uuid_bytes(string_arg(x, 1))
    if raw is None:
        return UNDEFINED
    version = raw[6] >> 4
    out: dict[str, Any] = {"version": version, "variant": _variant(raw[8])}
    if version in (1, 2):
        ticks = (
            int.from_bytes(raw[0:4], "big")
            | int.from_bytes(raw[4:6], "big") << 32
            | (int.from_bytes(raw[6:8], "big") & 0xFFF) << 48
        )
        # Go multiplies in int64 and silently wraps for far-future timestamps.
        out["time"] = _wrap_int64((ticks - _GREGORIAN_OFFSET) * 100)
        out["nodeid"] = "-".join(f"{b:02x}" for b in raw[10:16])
        out["macvariables"] = _mac_variables(raw[10])
        out["clocksequence"] = int.from_bytes(raw[8:10], "big") & 0x3FFF
        if version == 2:
            out["id"] = int.from_bytes(raw[0:4], "big")
            out["domain"] = _DOMAINS[raw[9]] if raw[9] < len(_DOMAINS) else f"Domain{raw[9]}"
    return out


def uuid_rfc4122(ctx: EvalContext, k: Any) -> str:
    """Returns a new UUIDv4, the same one for a given ``k`` throughout the evaluation."""
    key = ("uuid.rfc4122", freeze(k))
    cached = ctx.cache.get(key)
    if cached is None:
        cached = ctx.cache[key] = str(uuid.uuid4())
    return cached


def rand_intn(ctx: EvalContext, s: Any, n: Any) -> int:
    """Returns a random integer in [0, abs(n)), the same one for a given (s, n) per evaluation."""
    seed = string_arg(s, 1)
    bound = int_arg(n, 2)
    if not _INT64_MIN <= bound <= _INT64_MAX:
        raise OperandError("operand 2 must be integer number but got floating-point number")
    if bound == 0:
        return 0
    bound = abs(bound)
    key = ("rand.intn", seed, bound)
    cached = ctx.cache.get(key)
    if cached is None:
        cached = ctx.cache[key] = secrets.randbelow(bound)
    return cached


BUILTINS = (
    BuiltinSpec("uuid.parse", uuid_parse),
    BuiltinSpec("uuid.rfc4122", uuid_rfc4122, deterministic=False),
    BuiltinSpec("rand.intn", rand_intn, deterministic=False),
)
