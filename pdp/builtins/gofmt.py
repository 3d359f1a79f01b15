"""Go's ``fmt`` printing verbs, emulated for the builtins that hand values to Go's fmt.

OPA's ``sprintf`` calls Go's ``fmt.Sprintf`` and ``strings.render_template`` runs Go's
``text/template``, whose ``print``/``printf`` and plain actions print through fmt too. This
module reproduces fmt's output for the Go values those builtins can produce, including its
error renderings (``%!d(string=x)``, ``%!v(MISSING)``, ``%!(EXTRA ...)``, ...).

Go values are modelled by Python values:

* ``str`` → ``string``; :class:`JSONNumber` → ``json.Number`` (a string type with a
  ``String`` method);
* ``bool`` → ``bool``; ``None`` → a nil interface;
* ``int`` → ``int64`` when it fits, else ``*big.Int`` (as OPA passes integers);
  :class:`GoInt` → ``int`` (template literals, ``len``);
* ``float`` → ``float64``; ``complex`` → ``complex128``; :class:`GoUint8` → ``uint8``;
* ``list`` → ``[]interface {}``; ``dict`` (string keys) → ``map[string]interface {}``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from pdp.builtins._golang import go_is_print, go_quote

__all__ = [
    "GoInt",
    "GoUint8",
    "JSONNumber",
    "go_type_name",
    "sprint",
    "sprintf",
    "sprintln",
]

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_MASK64 = (1 << 64) - 1
_MAX_RUNE = 0x10FFFF
_TOO_LARGE = 1_000_000  # fmt refuses widths and precisions beyond this magnitude


class GoInt(int):
    """A Go ``int`` (rather than the ``int64`` a plain Python int stands for)."""

    __slots__ = ()


class GoUint8(int):
    """A Go ``uint8`` (a byte of a string, as template ``index`` yields)."""

    __slots__ = ()


class JSONNumber(str):
    """A ``json.Number``: the text of a number, a string kind that prints as itself."""

    __slots__ = ()


def go_type_name(value: Any) -> str:
    """Go's ``reflect.Type.String()`` for the Go value ``value`` stands for."""
    t = type(value)
    if t is str:
        return "string"
    if t is JSONNumber:
        return "json.Number"
    if t is bool:
        return "bool"
    if t is GoInt:
        return "int"
    if t is GoUint8:
        return "uint8"
    if t is complex:
        return "complex128"
    if t is int:
        return "int64" if _INT64_MIN <= value <= _INT64_MAX else "*big.Int"
    if t is float:
        return "float64"
    if t is list:
        return "[]interface {}"
    if t is dict:
        return "map[string]interface {}"
    raise TypeError(f"no Go type for {t.__name__}")


def _is_big(value: Any) -> bool:
    return type(value) is int and not _INT64_MIN <= value <= _INT64_MAX


# --- strconv ---------------------------------------------------------------------------


def _can_backquote(s: str) -> bool:
    for ch in s:
        if ch == "\ufeff":
            return False
        if (ch < " " and ch != "\t") or ch in ("`", "\x7f"):
            return False
    return True


def _valid_rune(r: int) -> int:
    """The rune Go writes for code point ``r`` (U+FFFD for non-characters of UTF-8)."""
    if r > _MAX_RUNE or 0xD800 <= r <= 0xDFFF:
        return 0xFFFD
    return r


# Decimal digits of a float: (significant digits without trailing zeros, decimal point
# position), the value being 0.d1d2d3... × 10**dp. Zero has no digits.
_EXACT = Context(prec=2000, rounding=ROUND_HALF_EVEN, Emax=999_999, Emin=-999_999)


def _digits_of(d: Decimal) -> tuple[str, int]:
    _, coeff, exp = d.as_tuple()
    digits = "".join(map(str, coeff))
    if digits.strip("0") == "":
        return "", 0
    dp = len(digits) + int(exp)
    return digits.rstrip("0"), dp


def _shortest_digits(x: float) -> tuple[str, int]:
    # repr() gives the shortest digits that read back as x, as Go's shortest mode does.
    return _digits_of(Decimal(repr(x)))


def _rounded_digits(x: float, significant: int) -> tuple[str, int]:
    if x == 0:
        return "", 0
    ctx = Context(prec=significant, rounding=ROUND_HALF_EVEN, Emax=999_999, Emin=-999_999)
    return _digits_of(ctx.plus(Decimal(x)))


def _fixed_digits(x: float, decimals: int) -> tuple[str, int]:
    if x == 0:
        return "", 0
    ctx = Context(prec=decimals + 400, rounding=ROUND_HALF_EVEN, Emax=999_999, Emin=-999_999)
    return _digits_of(Decimal(x).quantize(Decimal(1).scaleb(-decimals), context=ctx))


def _fmt_e(digits: str, dp: int, prec: int, e: str) -> str:
    out = digits[:1] or "0"
    if prec > 0:
        frac = digits[1 : prec + 1]
        out += "." + frac + "0" * (prec - len(frac))
    exp = dp - 1 if digits else 0
    sign = "-" if exp < 0 else "+"
    return f"{out}{e}{sign}{abs(exp):02d}"


def _fmt_f(digits: str, dp: int, prec: int) -> str:
    out = digits[:dp] + "0" * max(dp - len(digits), 0) if dp > 0 else "0"
    if prec > 0:
        frac = "".join(digits[j] if 0 <= j < len(digits) else "0" for j in range(dp, dp + prec))
        out += "." + frac
    return out


def _float_bits(x: float) -> tuple[bool, int, int]:
    """Sign, mantissa and binary exponent as Go's genericFtoa sees them."""
    bits = struct.unpack("<Q", struct.pack("<d", x))[0]
    neg = bits >> 63 != 0
    exp = (bits >> 52) & 0x7FF
    mant = bits & ((1 << 52) - 1)
    if exp == 0:
        exp = 1
    else:
        mant |= 1 << 52
    return neg, mant, exp - 1023


def _fmt_hex_float(x: float, prec: int, verb: str) -> str:
    neg, mant, exp = _float_bits(x)
    if mant == 0:
        exp = 0
    mant <<= 8
    while mant != 0 and mant & (1 << 60) == 0:
        mant <<= 1
        exp -= 1
    if 0 <= prec < 15:
        shift = prec * 4
        extra = (mant << shift) & ((1 << 60) - 1)
        mant >>= 60 - shift
        if extra | (mant & 1) > 1 << 59:
            mant += 1
        mant <<= 60 - shift
        if mant & (1 << 61):
            mant >>= 1
            exp += 1
    hexdigits = "0123456789abcdef" if verb == "x" else "0123456789ABCDEF"
    out = ["-" if neg else "", "0", verb, str((mant >> 60) & 1)]
    mant = (mant << 4) & _MASK64
    if prec < 0 and mant != 0:
        out.append(".")
        while mant != 0:
            out.append(hexdigits[(mant >> 60) & 15])
            mant = (mant << 4) & _MASK64
    elif prec > 0:
        out.append(".")
        for _ in range(prec):
            out.append(hexdigits[(mant >> 60) & 15])
            mant = (mant << 4) & _MASK64
    out.append("p" if verb == "x" else "P")
    out.append("-" if exp < 0 else "+")
    out.append(f"{abs(exp):02d}")
    return "".join(out)


def _format_float(x: float, verb: str, prec: int) -> str:
    """``strconv.FormatFloat(x, verb, prec, 64)`` for verbs b e E f g G x X."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if verb == "b":
        neg, mant, exp = _float_bits(x)
        e = exp - 52
        return f"{'-' if neg else ''}{mant}p{'+' if e >= 0 else ''}{e}"
    if verb in "xX":
        return _fmt_hex_float(x, prec, verb)
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    ax = abs(x)
    shortest = prec < 0
    if shortest:
        digits, dp = _shortest_digits(ax)
        if verb in "eE":
            prec = max(len(digits) - 1, 0)
        elif verb == "f":
            prec = max(len(digits) - dp, 0)
        else:
            prec = len(digits)
    elif verb in "eE":
        digits, dp = _rounded_digits(ax, prec + 1)
    elif verb == "f":
        digits, dp = _fixed_digits(ax, prec)
    else:
        if prec == 0:
            prec = 1
        digits, dp = _rounded_digits(ax, prec)
    if verb in "eE":
        return sign + _fmt_e(digits, dp, prec, verb)
    if verb == "f":
        return sign + _fmt_f(digits, dp, prec)
    nd = len(digits)
    eprec = prec
    if eprec > nd >= dp:
        eprec = nd
    if shortest:
        eprec = 6
    exp = dp - 1
    if exp < -4 or exp >= eprec:
        prec = min(prec, nd)
        return sign + _fmt_e(digits, dp, prec - 1, "e" if verb == "g" else "E")
    if prec > dp:
        prec = nd
    return sign + _fmt_f(digits, dp, max(prec - dp, 0))


# --- the printer -----------------------------------------------------------------------


class _Printer:
    """One fmt call's state: Go's ``pp`` and its ``fmt`` flags in one object."""

    __slots__ = (
        "arg",
        "buf",
        "erroring",
        "good_arg_num",
        "minus",
        "plus",
        "plus_v",
        "prec",
        "prec_present",
        "reordered",
        "sharp",
        "sharp_v",
        "space",
        "wid",
        "wid_present",
        "zero",
    )

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.arg: Any = None
        self.erroring = False
        self.reordered = False
        self.good_arg_num = True
        self.clear_flags()

    def clear_flags(self) -> None:
        self.wid_present = self.prec_present = False
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.plus_v = self.sharp_v = False
        self.wid = self.prec = 0

    # -- padding --

    def write_padding(self, n: int) -> None:
        if n > 0:
            self.buf.append(("0" if self.zero and not self.minus else " ") * n)

    def pad(self, s: str) -> None:
        if not self.wid_present or self.wid == 0:
            self.buf.append(s)
            return
        width = self.wid - len(s)
        if self.minus:
            self.buf.append(s)
            self.write_padding(width)
        else:
            self.write_padding(width)
            self.buf.append(s)

    def pad_unzeroed(self, s: str) -> None:
        zero, self.zero = self.zero, False
        self.pad(s)
        self.zero = zero

    # -- fmt's primitive formatters --

    def fmt_boolean(self, v: bool) -> None:
        self.pad("true" if v else "false")

    def fmt_integer(self, v: int, base: int, verb: str, upper: bool = False) -> None:
        negative = v < 0
        u = -v if negative else v
        prec = 0
        if self.prec_present:
            prec = self.prec
            if prec == 0 and u == 0:
                zero, self.zero = self.zero, False
                self.write_padding(self.wid)
                self.zero = zero
                return
        elif self.zero and not self.minus and self.wid_present:
            prec = self.wid
            if negative or self.plus or self.space:
                prec -= 1
        spec = {10: "d", 16: "X" if upper else "x", 8: "o", 2: "b"}[base]
        s = format(u, spec).rjust(prec, "0")
        if self.sharp:
            if base == 2:
                s = "0b" + s
            elif base == 8:
                if s[0] != "0":
                    s = "0" + s
            elif base == 16:
                s = ("0X" if upper else "0x") + s
        if verb == "O":
            s = "0o" + s
        if negative:
            s = "-" + s
        elif self.plus:
            s = "+" + s
        elif self.space:
            s = " " + s
        self.pad_unzeroed(s)

    def fmt_unicode(self, u: int) -> None:
        prec = self.prec if self.prec_present and self.prec > 4 else 4
        s = "U+" + format(u, "X").rjust(prec, "0")
        if self.sharp and u <= _MAX_RUNE and go_is_print(chr(u)):
            s += " '" + chr(u) + "'"
        self.pad_unzeroed(s)

    def fmt_c(self, u: int) -> None:
        self.pad(chr(_valid_rune(u)))

    def fmt_qc(self, u: int) -> None:
        self.pad(go_quote(chr(_valid_rune(u)), "'", ascii_only=self.plus))

    def truncate(self, s: str) -> str:
        if self.prec_present and self.prec < len(s):
            return s[: self.prec]
        return s

    def fmt_s(self, s: str) -> None:
        self.pad(self.truncate(s))

    def fmt_sx(self, s: str, upper: bool) -> None:
        data = s.encode("utf-8", "surrogatepass")
        length = len(data)
        if self.prec_present and self.prec < length:
            length = self.prec
        width = 2 * length
        if width <= 0:
            if self.wid_present:
                self.write_padding(self.wid)
            return
        if self.space:
            if self.sharp:
                width *= 2
            width += length - 1
        elif self.sharp:
            width += 2
        if self.wid_present and self.wid > width and not self.minus:
            self.write_padding(self.wid - width)
        prefix = "0X" if upper else "0x"
        parts: list[str] = []
        if self.sharp:
            parts.append(prefix)
        for i in range(length):
            if self.space and i > 0:
                parts.append(" ")
                if self.sharp:
                    parts.append(prefix)
            h = format(data[i], "02X" if upper else "02x")
            parts.append(h)
        self.buf.append("".join(parts))
        if self.wid_present and self.wid > width and self.minus:
            self.write_padding(self.wid - width)

    def fmt_q(self, s: str) -> None:
        s = self.truncate(s)
        if self.sharp and _can_backquote(s):
            self.pad("`" + s + "`")
            return
        self.pad(go_quote(s, ascii_only=self.plus))

    def fmt_float(self, v: float, verb: str, prec: int) -> None:
        if self.prec_present:
            prec = self.prec
        num = _format_float(v, verb, prec)
        if num[0] in "+-":
            sign, body = num[0], num[1:]
        else:
            sign, body = "+", num
        if self.space and sign == "+" and not self.plus:
            sign = " "
        if body[0] in "IN":
            if body[0] == "N" and not self.space and not self.plus:
                self.pad_unzeroed(body)
            else:
                self.pad_unzeroed(sign + body)
            return
        if self.sharp and verb != "b":
            body = self._sharp_float(body, verb, prec)
        if self.plus or sign != "+":
            if self.zero and not self.minus and self.wid_present and self.wid > len(body) + 1:
                self.buf.append(sign)
                self.write_padding(self.wid - len(body) - 1)
                self.buf.append(body)
                return
            self.pad(sign + body)
            return
        self.pad(body)

    @staticmethod
    def _sharp_float(body: str, verb: str, prec: int) -> str:
        # '#' keeps a decimal point and, for %g-like verbs, trailing zeros up to the
        # precision; Go counts every non-'0' character after the first significant one.
        digits = 0
        if verb in "vgGx":
            digits = 6 if prec == -1 else prec
        tail = ""
        has_point = False
        saw_nonzero = False
        i = 0
        while i < len(body):
            c = body[i]
            if c == ".":
                has_point = True
            elif c in "pP" or (c in "eE" and verb not in "xX"):
                tail = body[i:]
                body = body[:i]
                break
            else:
                if c != "0":
                    saw_nonzero = True
                if saw_nonzero:
                    digits -= 1
            i += 1
        if not has_point:
            if body == "0":
                digits -= 1
            body += "."
        if digits > 0:
            body += "0" * digits
        return body + tail

    # -- pp: printing one operand --

    def bad_verb(self, verb: str, arg: Any) -> None:
        self.erroring = True
        self.buf.append("%!" + verb + "(")
        if arg is None:
            self.buf.append("<nil>")
        elif _is_big(arg):
            # Without its Format method a *big.Int prints as the struct it points to.
            words = []
            n = abs(arg)
            while n:
                words.append(str(n & _MASK64))
                n >>= 64
            neg = "true" if arg < 0 else "false"
            self.buf.append(f"*big.Int=&{{{neg} [{' '.join(words)}]}}")
        else:
            self.buf.append(go_type_name(arg) + "=")
            self.print_arg(arg, "v")
        self.buf.append(")")
        self.erroring = False

    def print_arg(self, arg: Any, verb: str) -> None:
        self.arg = arg
        if arg is None:
            if verb in "Tv":
                self.pad("<nil>")
            else:
                self.bad_verb(verb, None)
            return
        if verb == "T":
            self.fmt_s(go_type_name(arg))
            return
        if verb == "p":
            self.fmt_pointer(arg)
            return
        if _is_big(arg):
            self.format_big_int(arg, verb)
            return
        self.print_value(arg, verb, 0)

    def fmt_pointer(self, arg: Any) -> None:
        if _is_big(arg) or type(arg) in (list, dict):
            # Go prints the operand's memory address, which no emulation can know;
            # a fixed address keeps the shape of the output.
            sharp, self.sharp = self.sharp, not self.sharp
            self.fmt_integer(0xC000010000, 16, "x")
            self.sharp = sharp
            return
        self.bad_verb("p", arg)

    def print_value(self, value: Any, verb: str, depth: int) -> None:
        t = type(value)
        if t is str or t is JSONNumber:
            # json.Number's String method yields its own text, so it prints as a string.
            self.fmt_string(str(value), verb, value)
        elif t is bool:
            if verb in "tv":
                self.fmt_boolean(value)
            else:
                self.bad_verb(verb, value)
        elif t is int or t is GoInt:
            if _is_big(value):
                self.format_big_int(value, verb)
            else:
                self.fmt_int(value, verb)
        elif t is GoUint8:
            if verb == "v" and self.sharp_v:
                sharp, self.sharp = self.sharp, True
                self.fmt_integer(value, 16, "v")
                self.sharp = sharp
            else:
                self.fmt_int(value, verb)
        elif t is float:
            self.fmt_float64(value, verb)
        elif t is complex:
            self.fmt_complex(value, verb)
        elif t is list:
            self.print_list(value, verb, depth)
        elif t is dict:
            self.print_map(value, verb, depth)
        elif value is None:
            self.buf.append("<nil>")
        else:
            raise TypeError(f"no Go type for {t.__name__}")

    def print_list(self, value: list[Any], verb: str, depth: int) -> None:
        if self.sharp_v:
            self.buf.append("[]interface {}{")
            for i, item in enumerate(value):
                if i:
                    self.buf.append(", ")
                self.print_elem(item, verb, depth + 1)
            self.buf.append("}")
            return
        self.buf.append("[")
        for i, item in enumerate(value):
            if i:
                self.buf.append(" ")
            self.print_elem(item, verb, depth + 1)
        self.buf.append("]")

    def print_map(self, value: dict[str, Any], verb: str, depth: int) -> None:
        if self.sharp_v:
            self.buf.append("map[string]interface {}{")
        else:
            self.buf.append("map[")
        for i, key in enumerate(sorted(value)):
            if i:
                self.buf.append(", " if self.sharp_v else " ")
            self.print_elem(key, verb, depth + 1)
            self.buf.append(":")
            self.print_elem(value[key], verb, depth + 1)
        self.buf.append("}" if self.sharp_v else "]")

    def print_elem(self, value: Any, verb: str, depth: int) -> None:
        if value is None:
            # A nil interface inside a composite prints bare, without padding.
            self.buf.append("<nil>" if not self.sharp_v else "interface {}(nil)")
            return
        self.arg = value
        if _is_big(value):
            self.format_big_int(value, verb)
            return
        self.print_value(value, verb, depth)

    def fmt_string(self, s: str, verb: str, arg: Any) -> None:
        if verb == "v":
            if self.sharp_v:
                self.fmt_q(s)
            else:
                self.fmt_s(s)
        elif verb == "s":
            self.fmt_s(s)
        elif verb in "xX":
            self.fmt_sx(s, verb == "X")
        elif verb == "q":
            self.fmt_q(s)
        else:
            self.bad_verb(verb, arg)

    def fmt_int(self, v: int, verb: str) -> None:
        if verb in "vd":
            self.fmt_integer(v, 10, verb)
        elif verb == "b":
            self.fmt_integer(v, 2, verb)
        elif verb in "oO":
            self.fmt_integer(v, 8, verb)
        elif verb in "xX":
            self.fmt_integer(v, 16, verb, verb == "X")
        elif verb == "c":
            self.fmt_c(v & _MASK64)
        elif verb == "q":
            self.fmt_qc(v & _MASK64)
        elif verb == "U":
            self.fmt_unicode(v & _MASK64)
        else:
            self.bad_verb(verb, v)

    def fmt_float64(self, v: float, verb: str) -> None:
        if verb == "v":
            self.fmt_float(v, "g", -1)
        elif verb in "bgGxX":
            self.fmt_float(v, verb, -1)
        elif verb in "feE":
            self.fmt_float(v, verb, 6)
        elif verb == "F":
            self.fmt_float(v, "f", 6)
        else:
            self.bad_verb(verb, v)

    def fmt_complex(self, v: complex, verb: str) -> None:
        if verb not in "vbgGxXfFeE":
            self.bad_verb(verb, v)
            return
        plus = self.plus
        self.buf.append("(")
        self.fmt_float64(v.real, verb)
        self.plus = True
        self.fmt_float64(v.imag, verb)
        self.buf.append("i)")
        self.plus = plus

    def format_big_int(self, v: int, verb: str) -> None:
        """``(*big.Int).Format``: big.Int formats itself and pads by its own rules."""
        base = {"b": 2, "o": 8, "O": 8, "d": 10, "s": 10, "v": 10, "x": 16, "X": 16}.get(verb)
        if base is None:
            self.buf.append(f"%!{verb}(big.Int={v})")
            return
        plus = self.plus or self.plus_v
        sharp = self.sharp or self.sharp_v
        if v < 0:
            sign = "-"
        elif plus:
            sign = "+"
        elif self.space:
            sign = " "
        else:
            sign = ""
        prefix = ""
        if sharp:
            prefix = {"b": "0b", "o": "0", "x": "0x", "X": "0X"}.get(verb, "")
        if verb == "O":
            prefix = "0o"
        digits = format(abs(v), {2: "b", 8: "o", 10: "d", 16: "X" if verb == "X" else "x"}[base])
        left = zeros = right = 0
        if self.prec_present:
            if len(digits) < self.prec:
                zeros = self.prec - len(digits)
            elif digits == "0" and self.prec == 0:
                return
        length = len(sign) + len(prefix) + zeros + len(digits)
        if self.wid_present and length < self.wid:
            d = self.wid - length
            if self.minus:
                right = d
            elif self.zero and not self.prec_present:
                zeros = d
            else:
                left = d
        self.buf.append(" " * left + sign + prefix + "0" * zeros + digits + " " * right)


# --- Printf's format parsing ------------------------------------------------------------


def _parsenum(s: str, start: int, end: int) -> tuple[int, bool, int]:
    """Digits at ``s[start:end]``: (number, present, next index); overflow ends the format."""
    if start >= end:
        return 0, False, end
    num = 0
    isnum = False
    i = start
    while i < end and "0" <= s[i] <= "9":
        if num > _TOO_LARGE or num < -_TOO_LARGE:
            return 0, False, end
        num = num * 10 + ord(s[i]) - 48
        isnum = True
        i += 1
    return num, isnum, i


def _int_from_arg(args: Sequence[Any], arg_num: int) -> tuple[int, bool, int]:
    num, is_int, new_arg_num = 0, False, arg_num
    if arg_num < len(args):
        a = args[arg_num]
        if type(a) in (int, GoInt, GoUint8) and _INT64_MIN <= a <= _INT64_MAX:
            num, is_int = a, True
        new_arg_num = arg_num + 1
        if num > _TOO_LARGE or num < -_TOO_LARGE:
            num, is_int = 0, False
    return num, is_int, new_arg_num


def _parse_arg_number(fmt: str, i: int) -> tuple[int, int, bool]:
    """A bracketed argument index at ``fmt[i]``: (index, bytes consumed, ok)."""
    if len(fmt) - i < 3:
        return 0, 1, False
    for j in range(i + 1, len(fmt)):
        if fmt[j] == "]":
            width, ok, newi = _parsenum(fmt, i + 1, j)
            if not ok or newi != j:
                return 0, j - i + 1, False
            return width - 1, j - i + 1, True
    return 0, 1, False


def _arg_number(p: _Printer, arg_num: int, fmt: str, i: int, nargs: int) -> tuple[int, int, bool]:
    if i >= len(fmt) or fmt[i] != "[":
        return arg_num, i, False
    p.reordered = True
    index, wid, ok = _parse_arg_number(fmt, i)
    if ok and 0 <= index < nargs:
        return index, i + wid, True
    p.good_arg_num = False
    return arg_num, i + wid, ok


def sprintf(fmt: str, args: Sequence[Any]) -> str:
    """Go's ``fmt.Sprintf(fmt, args...)`` for Go values modelled as described above."""
    p = _Printer()
    end = len(fmt)
    arg_num = 0
    after_index = False
    i = 0
    while i < end:
        p.good_arg_num = True
        j = fmt.find("%", i)
        if j < 0:
            p.buf.append(fmt[i:])
            break
        if j > i:
            p.buf.append(fmt[i:j])
        i = j + 1
        p.clear_flags()
        while i < end:
            c = fmt[i]
            if c == "#":
                p.sharp = True
            elif c == "0":
                p.zero = True
            elif c == "+":
                p.plus = True
            elif c == "-":
                p.minus = True
            elif c == " ":
                p.space = True
            else:
                break
            i += 1

        arg_num, i, after_index = _arg_number(p, arg_num, fmt, i, len(args))

        if i < end and fmt[i] == "*":
            i += 1
            p.wid, p.wid_present, arg_num = _int_from_arg(args, arg_num)
            if not p.wid_present:
                p.buf.append("%!(BADWIDTH)")
            if p.wid < 0:
                p.wid = -p.wid
                p.minus = True
                p.zero = False
            after_index = False
        else:
            p.wid, p.wid_present, i = _parsenum(fmt, i, end)
            if after_index and p.wid_present:
                p.good_arg_num = False

        if i + 1 < end and fmt[i] == ".":
            i += 1
            if after_index:
                p.good_arg_num = False
            arg_num, i, after_index = _arg_number(p, arg_num, fmt, i, len(args))
            if i < end and fmt[i] == "*":
                i += 1
                p.prec, p.prec_present, arg_num = _int_from_arg(args, arg_num)
                if p.prec < 0:
                    p.prec = 0
                    p.prec_present = False
                if not p.prec_present:
                    p.buf.append("%!(BADPREC)")
                after_index = False
            else:
                p.prec, p.prec_present, i = _parsenum(fmt, i, end)
                if not p.prec_present:
                    p.prec = 0
                    p.prec_present = True

        if not after_index:
            arg_num, i, after_index = _arg_number(p, arg_num, fmt, i, len(args))

        if i >= end:
            p.buf.append("%!(NOVERB)")
            break

        verb = fmt[i]
        i += 1
        if verb == "%":
            p.buf.append("%")
        elif not p.good_arg_num:
            p.buf.append(f"%!{verb}(BADINDEX)")
        elif arg_num >= len(args):
            p.buf.append(f"%!{verb}(MISSING)")
        else:
            if verb in "vw":
                p.sharp_v, p.sharp = p.sharp, False
                p.plus_v, p.plus = p.plus, False
            if verb == "w":
                p.bad_verb(verb, args[arg_num])
            else:
                p.print_arg(args[arg_num], verb)
            arg_num += 1

    if not p.reordered and arg_num < len(args):
        p.clear_flags()
        p.buf.append("%!(EXTRA ")
        for k, arg in enumerate(args[arg_num:]):
            if k:
                p.buf.append(", ")
            if arg is None:
                p.buf.append("<nil>")
            else:
                p.buf.append(go_type_name(arg) + "=")
                p.print_arg(arg, "v")
        p.buf.append(")")
    return "".join(p.buf)


def _is_string_kind(value: Any) -> bool:
    return type(value) is str or type(value) is JSONNumber


def sprint(args: Sequence[Any]) -> str:
    """Go's ``fmt.Sprint``: operands in %v, spaced where neither neighbour is a string."""
    p = _Printer()
    prev_string = False
    for k, arg in enumerate(args):
        is_string = _is_string_kind(arg)
        if k > 0 and not is_string and not prev_string:
            p.buf.append(" ")
        p.print_arg(arg, "v")
        prev_string = is_string
    return "".join(p.buf)


def sprintln(args: Sequence[Any]) -> str:
    """Go's ``fmt.Sprintln``: operands in %v separated by spaces, then a newline."""
    p = _Printer()
    for k, arg in enumerate(args):
        if k:
            p.buf.append(" ")
        p.print_arg(arg, "v")
    p.buf.append("\n")
    return "".join(p.buf)
