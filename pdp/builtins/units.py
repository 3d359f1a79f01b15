"""``units.parse`` and ``units.parse_bytes``: quantities with SI and binary suffixes.

OPA computes ``units.parse`` exactly with ``big.Rat`` (the milli factor being the float64
nearest 0.001) and prints non-integral results with ten decimals, rounding half away from
zero. ``units.parse_bytes`` uses ``big.Float`` at 64-bit precision and truncates to an
integer, so its rounding of long mantissas and large exponents is reproduced bit for bit
with a small binary floating-point model of Go's ``math/big`` arithmetic.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from pdp.builtins.base import BuiltinError, BuiltinSpec, EvalContext, string_arg
from pdp.builtins.encoding import go_lower

__all__ = ["BUILTINS", "units_parse", "units_parse_bytes"]

_MAX_EXPONENT_DIGITS = 6

# The number grammar big.Rat and big.Float accept, restricted to the characters the
# splitter below can leave in the amount.
_AMOUNT = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?", re.ASCII)

_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15, "e": 10**18}
_BINARY = {"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "pi": 2**50, "ei": 2**60}

_UNITS: dict[str, int | Fraction] = {
    "": 1,
    # Go sets the milli factor from a float64, so it is the binary value nearest 0.001.
    "m": Fraction(0.001),
    **{u: f for p, f in _DECIMAL.items() for u in {p, p.upper()} - {"m"}},
    **{u: f for p, f in _BINARY.items() for u in (p, p[0].upper() + p[1])},
}

_BYTE_UNITS: dict[str, int] = {
    "": 1,
    **{u: f for p, f in (*_DECIMAL.items(), *_BINARY.items()) for u in (p, p + "b")},
}


class _ExponentTooLarge(Exception):
    """The amount's exponent has more digits than OPA allows."""


def _split_amount(s: str) -> tuple[str, str]:
    """Split ``s`` into amount and unit as OPA's ``extractNumAndUnit`` does.

    Digits, dots and signs belong to the amount; an ``e``/``E`` does too when a digit or
    sign follows it, and then at most six exponent digits may follow.
    """
    n = len(s)
    i = 0
    while i < n:
        c = s[i]
        if c in "eE":
            nxt = s[i + 1] if i + 1 < n else ""
            if not (nxt.isascii() and nxt.isdigit()) and nxt not in ("+", "-"):
                break
            if nxt in ("+", "-"):
                i += 1
            j = i + 1
            while j < n and s[j].isascii() and s[j].isdigit():
                j += 1
            if j - (i + 1) > _MAX_EXPONENT_DIGITS:
                raise _ExponentTooLarge
        elif not ((c.isascii() and c.isdigit()) or c in ".+-"):
            break
        i += 1
    return s[:i], s[i:]


def _parse_amount(text: str) -> tuple[bool, int, int] | None:
    """Parse a decimal amount into (negative, mantissa digits, power of ten), or None."""
    m = _AMOUNT.fullmatch(text)
    if m is None:
        return None
    sign, whole, frac, exp = m.groups()
    frac = frac or ""
    if not whole and not frac:
        return None
    return sign == "-", int(whole + frac), int(exp or 0) - len(frac)


def units_parse(ctx: EvalContext, x: Any) -> int | float:
    """Converts strings like "10G", "5K", "4M", "1500m" and the like into a number."""
    s = string_arg(x, 1).replace('"', "")
    if " " in s:
        raise BuiltinError("units.parse: spaces not allowed in resource strings")
    try:
        amount, unit = _split_amount(s)
    except _ExponentTooLarge:
        raise BuiltinError("units.parse: exponent too large") from None
    if not amount:
        raise BuiltinError("units.parse: no amount provided")
    # Only the tail is lowered so that "m" (milli) and "M" (mega) stay distinct.
    if len(unit.encode("utf-8")) > 1:
        if unit[0].isascii():
            unit = unit[0] + go_lower(unit[1:])
        else:
            # Go cuts the first byte off a multi-byte rune; its bytes print as U+FFFD.
            unit = "\ufffd" * len(unit[0].encode("utf-8")) + go_lower(unit[1:])
    factor = _UNITS.get(unit)
    if factor is None:
        raise BuiltinError(f"units.parse: unit {unit} not recognized")
    parsed = _parse_amount(amount)
    # big.Rat refuses decimal exponents beyond a million, except for a zero mantissa.
    if parsed is None or (parsed[1] and abs(parsed[2]) > 10**6):
        raise BuiltinError("units.parse: could not parse amount to a number")
    negative, digits, exp10 = parsed
    factor = Fraction(factor)
    num = digits * factor.numerator * 10 ** max(exp10, 0)
    den = factor.denominator
    if exp10 < 0:
        # Far below the last printed decimal the result is zero; skip the huge power of ten.
        if -exp10 * 3 > num.bit_length() + 40:
            return 0
        den *= 10**-exp10
    sign = -1 if negative else 1
    whole, rem = divmod(num, den)
    if rem == 0:
        return sign * whole
    # big.Rat.FloatString(10): ten decimals, halves rounded away from zero.
    scaled, rem = divmod(num * 10**10, den)
    if 2 * rem >= den:
        scaled += 1
    whole, frac = divmod(scaled, 10**10)
    if frac == 0:
        return sign * whole
    return float(f"{'-' if negative else ''}{whole}.{frac:010d}")


# --- a model of math/big.Float -----------------------------------------------------------


def _round(num: int, den: int, exp: int, prec: int) -> tuple[int, int]:
    """Round the positive value num/den * 2**exp to ``prec`` bits, ties to even.

    Returns (mantissa, exponent) with value mantissa * 2**exponent. This is what every
    big.Float operation does with its exact result.
    """
    shift = num.bit_length() - den.bit_length() - prec
    while True:
        if shift >= 0:
            q, r = divmod(num, den << shift)
            d = den << shift
        else:
            q, r = divmod(num << -shift, den)
            d = den
        if q >> prec:
            shift += 1
        elif not q >> (prec - 1):
            shift -= 1
        else:
            break
    if 2 * r > d or (2 * r == d and q & 1):
        q += 1
        if q >> prec:
            q >>= 1
            shift += 1
    return q, exp + shift


def _pow5(n: int) -> tuple[int, int]:
    """5**n as Go's ``Float.pow5`` computes it for a 64-bit parse (128-bit result)."""
    if n <= 27:
        return 5**n, 0
    z = (5**27, 0)
    f = (5, 0)
    n -= 27
    while n:
        if n & 1:
            z = _round(z[0] * f[0], 1, z[1] + f[1], 128)
        f = _round(f[0] * f[0], 1, 2 * f[1], 192)
        n >>= 1
    return z


def _parse_float64(digits: int, exp10: int) -> tuple[int, int]:
    """The magnitude ``big.Float.SetString`` gives digits * 10**exp10 at precision 64."""
    if exp10 == 0:
        return _round(digits, 1, 0, 64)
    p, pe = _pow5(abs(exp10))
    # The power of two in 10**exp10 is exact; only the power of five is rounded.
    if exp10 > 0:
        return _round(digits * p, 1, pe + exp10, 64)
    return _round(digits, p, exp10 - pe, 64)


def units_parse_bytes(ctx: EvalContext, x: Any) -> int:
    """Converts strings like "10GB", "5K", "4mb" and the like into an integer byte count."""
    s = go_lower(string_arg(x, 1)).replace('"', "")
    if " " in s:
        raise BuiltinError("units.parse_bytes: spaces not allowed in resource strings")
    try:
        amount, unit = _split_amount(s)
    except _ExponentTooLarge:
        raise BuiltinError("units.parse_bytes: exponent too large") from None
    if not amount:
        raise BuiltinError("units.parse_bytes: no byte amount provided")
    factor = _BYTE_UNITS.get(unit)
    if factor is None:
        raise BuiltinError(f"units.parse_bytes: byte unit {unit} not recognized")
    parsed = _parse_amount(amount)
    if parsed is None:
        raise BuiltinError("units.parse_bytes: could not parse byte amount to a number")
    negative, digits, exp10 = parsed
    if digits == 0:
        return 0
    mant, exp = _parse_float64(digits, exp10)
    mant, exp = _round(mant * factor, 1, exp, 64)
    magnitude = mant << exp if exp >= 0 else mant >> -exp
    return -magnitude if negative else magnitude


BUILTINS = (
    BuiltinSpec("units.parse", units_parse),
    BuiltinSpec("units.parse_bytes", units_parse_bytes),
)
