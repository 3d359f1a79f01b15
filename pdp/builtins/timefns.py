"""The ``time.*`` builtins: clock, parsing, calendar arithmetic and formatting.

OPA implements these with Go's ``time`` package; :mod:`pdp.builtins.golayout` reproduces
the parts it relies on. Timestamps are integer nanoseconds since the Unix epoch and must fit
in an int64, as in Go. A time argument is either such a number or an array
``[ns, zone]`` / ``[ns, zone, layout]``; the zone is an IANA name, ``"Local"`` or ``""``/
``"UTC"``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pdp.builtins import golayout
from pdp.builtins._golang import go_quote
from pdp.builtins.base import (
    BuiltinError,
    BuiltinSpec,
    EvalContext,
    OperandError,
    int_arg,
    number_arg,
    operand_type_error,
    string_arg,
)
from pdp.builtins.golayout import GoTime, GoTimeError

__all__ = ["BUILTINS"]

_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_TIME_OPERAND = "either number (ns) or [number (ns), string (tz)]"

# OPA's extension of Go durations: days, weeks and (365-day) years, written as hours.
_EXTENDED_UNIT_HOURS = {"d": 24, "w": 7 * 24, "y": 365 * 24}


def _in_range(t: GoTime) -> int:
    """``t`` as int64 nanoseconds, or OPA's error when it does not fit."""
    ns = t.unix_nano()
    if not _I64_MIN <= ns <= _I64_MAX:
        raise BuiltinError("time outside of valid range")
    return ns


def _zone(name: str) -> golayout.Zone:
    try:
        return golayout.load_location(name)
    except GoTimeError as exc:
        raise BuiltinError(str(exc)) from None


def _time_operand(value: Any) -> tuple[GoTime, str]:
    """Decode a time argument into the instant and the optional layout (OPA's ``tzTime``)."""
    zone = golayout.UTC
    layout = ""
    if type(value) is list:
        if not value:
            raise operand_type_error(1, value, _TIME_OPERAND)
        ns = number_arg(value[0], 1)
        # OPA resolves the zone and layout before it looks at the number.
        if len(value) > 1:
            zone = _zone(string_arg(value[1], 1))
        if len(value) > 2:
            layout = string_arg(value[2], 1)
    elif type(value) in (int, float):
        ns = value
    else:
        raise operand_type_error(1, value, _TIME_OPERAND)
    if type(ns) is float:
        if not ns.is_integer():
            raise BuiltinError("timestamp too big")
        ns = int(ns)
    if not _I64_MIN <= ns <= _I64_MAX:
        raise BuiltinError("timestamp too big")
    return GoTime.from_unix_nano(ns, zone), layout


def _int64_operand(value: Any, pos: int) -> int:
    n = int_arg(value, pos)
    if not _I64_MIN <= n <= _I64_MAX:
        raise OperandError(f"operand {pos} must be integer number but got floating-point number")
    return n


def _parse(layout: str, value: str) -> int:
    try:
        t = golayout.parse(layout, value)
    except GoTimeError as exc:
        raise BuiltinError(str(exc)) from None
    return _in_range(t)


def time_now_ns(ctx: EvalContext) -> int:
    """Returns the current time since epoch in nanoseconds."""
    return ctx.now_ns


def time_parse_ns(ctx: EvalContext, layout: Any, value: Any) -> int:
    """Returns the time in nanoseconds parsed from the string in the given format."""
    layout = string_arg(layout, 1)
    value = string_arg(value, 2)
    return _parse(golayout.NAMED_LAYOUTS.get(layout, layout), value)


def time_parse_rfc3339_ns(ctx: EvalContext, value: Any) -> int:
    """Returns the time in nanoseconds parsed from the string in RFC3339 format."""
    return _parse(golayout.RFC3339, string_arg(value, 1))


def _extended_duration(text: str) -> int:
    """Go's ParseDuration after OPA's rewrite of ``d``, ``w`` and ``y`` segments into hours."""
    invalid = GoTimeError("time: invalid duration " + go_quote(text))
    segments = _duration_segments(text)
    if segments is None:
        raise invalid
    sign, parts = segments
    rewritten = [sign]
    for digits, unit in parts:
        hours = _EXTENDED_UNIT_HOURS.get(unit)
        if hours is None:
            rewritten.append(digits + unit)
            continue
        try:
            value = float(digits)
        except ValueError:
            raise invalid from None
        if value == float("inf"):
            # Go's ParseFloat reports overflow as an error.
            raise invalid
        rewritten.append(_shortest_fixed(value * hours) + "h")
    try:
        return golayout.parse_duration("".join(rewritten))
    except GoTimeError as exc:
        # Go's message ends with the quoted rewritten text; show the caller's text instead.
        head = str(exc).rsplit(" ", 1)[0]
        raise GoTimeError(head + " " + go_quote(text)) from None


def _duration_segments(text: str) -> tuple[str, list[tuple[str, str]]] | None:
    """OPA's duration grammar: ``[+-]? ([0-9.]+ (ms|us|µs|ns|[a-z]))+``; None if no match."""
    sign = text[:1] if text[:1] in ("+", "-") else ""
    i = len(sign)
    parts: list[tuple[str, str]] = []
    while i < len(text):
        j = i
        while j < len(text) and (text[j] == "." or "0" <= text[j] <= "9"):
            j += 1
        if j == i:
            return None
        if text.startswith(("ms", "us", "µs", "ns"), j):
            unit = text[j : j + 2]
        elif j < len(text) and "a" <= text[j] <= "z":
            unit = text[j]
        else:
            return None
        parts.append((text[i:j], unit))
        i = j + len(unit)
    return (sign, parts) if parts else None


def _shortest_fixed(value: float) -> str:
    """Go's ``FormatFloat(v, 'f', -1, 64)``: shortest round-trip digits, never an exponent."""
    if value == float("inf"):
        return "+Inf"
    return format(Decimal(repr(value)), "f")


def time_parse_duration_ns(ctx: EvalContext, duration: Any) -> int:
    """Returns the duration in nanoseconds represented by a string."""
    text = string_arg(duration, 1)
    try:
        if not text:
            raise GoTimeError('time: invalid duration ""')
        if not any(c in text for c in "dwy"):
            return golayout.parse_duration(text)
        return _extended_duration(text)
    except GoTimeError as exc:
        raise BuiltinError(str(exc)) from None


def time_format(ctx: EvalContext, x: Any) -> str:
    """Returns the formatted timestamp for the nanoseconds since epoch."""
    t, layout = _time_operand(x)
    if not layout:
        layout = golayout.RFC3339_NANO
    return t.format(golayout.NAMED_LAYOUTS.get(layout, layout))


def time_date(ctx: EvalContext, x: Any) -> list[int]:
    """Returns the ``[year, month, day]`` for the nanoseconds since epoch."""
    return list(_time_operand(x)[0].date())


def time_clock(ctx: EvalContext, x: Any) -> list[int]:
    """Returns the ``[hour, minute, second]`` of the day for the nanoseconds since epoch."""
    return list(_time_operand(x)[0].clock())


def time_weekday(ctx: EvalContext, x: Any) -> str:
    """Returns the day of the week (Monday, Tuesday, ...) for the nanoseconds since epoch."""
    return _time_operand(x)[0].weekday()


def time_add_date(ctx: EvalContext, x: Any, years: Any, months: Any, days: Any) -> int:
    """Returns the nanoseconds since epoch after adding years, months and days to nanoseconds."""
    t, _ = _time_operand(x)
    y = _int64_operand(years, 2)
    m = _int64_operand(months, 3)
    d = _int64_operand(days, 4)
    return _in_range(t.add_date(y, m, d))


def time_diff(ctx: EvalContext, ns1: Any, ns2: Any) -> list[int]:
    """Returns the difference between two unix timestamps in nanoseconds (with optional timezone).

    The result is ``[years, months, days, hours, minutes, seconds]``, computed on the calendar
    of the first argument's zone.
    """
    t1, _ = _time_operand(ns1)
    t2, _ = _time_operand(ns2)
    t2 = t2.in_zone(t1.zone)
    if (t1.unix, t1.nsec) > (t2.unix, t2.nsec):
        t1, t2 = t2, t1
    y1, mo1, d1 = t1.date()
    y2, mo2, d2 = t2.date()
    h1, mi1, s1 = t1.clock()
    h2, mi2, s2 = t2.clock()
    year, month, day = y2 - y1, mo2 - mo1, d2 - d1
    hour, minute, sec = h2 - h1, mi2 - mi1, s2 - s1
    # Borrow from the next larger unit, as a written subtraction would.
    if sec < 0:
        sec += 60
        minute -= 1
    if minute < 0:
        minute += 60
        hour -= 1
    if hour < 0:
        hour += 24
        day -= 1
    if day < 0:
        day += golayout.days_in(mo1, y1)
        month -= 1
    if month < 0:
        month += 12
        year -= 1
    return [year, month, day, hour, minute, sec]


BUILTINS = (
    BuiltinSpec("time.now_ns", time_now_ns, deterministic=False),
    BuiltinSpec("time.parse_ns", time_parse_ns),
    BuiltinSpec("time.parse_rfc3339_ns", time_parse_rfc3339_ns),
    BuiltinSpec("time.parse_duration_ns", time_parse_duration_ns),
    BuiltinSpec("time.format", time_format),
    BuiltinSpec("time.date", time_date),
    BuiltinSpec("time.clock", time_clock),
    BuiltinSpec("time.weekday", time_weekday),
    BuiltinSpec("time.add_date", time_add_date),
    BuiltinSpec("time.diff", time_diff),
)
