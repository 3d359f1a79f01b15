"""String builtins the OPA Wasm module leaves to the host.

``sprintf`` and ``strings.render_template`` hand Rego values to Go's ``fmt`` and
``text/template``; :mod:`pdp.builtins.gofmt` and :mod:`pdp.builtins.gotemplate` emulate
those. The rest (``strings.any_prefix_match``, ``strings.any_suffix_match``,
``strings.count``, ``strings.split_n``, ``indexof_n``) are plain string operations with OPA's
argument checks. String interpolation (``$"..."``) is compiled into the module itself
(``opa_template_string``), so it never reaches the host.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pdp.builtins._golang import go_quote
from pdp.builtins.base import (
    BuiltinError,
    BuiltinSpec,
    EvalContext,
    OperandError,
    array_arg,
    object_arg,
    operand_type_error,
    string_arg,
)
from pdp.builtins.gofmt import JSONNumber, sprintf
from pdp.builtins.gotemplate import TemplateError, render
from pdp.values import RegoSet, sort_key, type_name

__all__ = ["BUILTINS", "rego_text"]

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


# --- Rego text form --------------------------------------------------------------------


def _number_text(n: int | float) -> str:
    if type(n) is int:
        return str(n)
    # The module hands the host numbers as text but Python keeps only the value; repr()
    # gives back the usual spelling of a non-integral or ".0" literal.
    return repr(n)


def rego_text(value: Any) -> str:
    """The text OPA prints for a Rego value (``ast.Value.String()``), as ``%v`` shows it."""
    t = type(value)
    if t is str:
        return go_quote(value)
    if t is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if t is int or t is float:
        return _number_text(value)
    if t is list or t is tuple:
        return "[" + ", ".join(rego_text(v) for v in value) + "]"
    if t is dict:
        keys = sorted(value, key=sort_key)
        return "{" + ", ".join(f"{rego_text(k)}: {rego_text(value[k])}" for k in keys) + "}"
    if t is RegoSet:
        if not value:
            return "set()"
        return "{" + ", ".join(rego_text(v) for v in value) + "}"
    raise TypeError(f"not a Rego value: {t.__name__}")


# --- sprintf ---------------------------------------------------------------------------


def _go_arg(value: Any) -> Any:
    """The Go value OPA passes to fmt for one element of sprintf's array."""
    t = type(value)
    if t is int or t is float or t is str:
        return value
    return rego_text(value)


@functools.lru_cache(maxsize=1024)
def _plain_verbs(fmt: str) -> tuple[tuple[str, ...], str] | None:
    """Split a format using only ``%s``, ``%d``, ``%v`` and ``%%`` into literal pieces and
    verb letters; None when it needs the full fmt emulation (flags, widths, other verbs)."""
    pieces: list[str] = []
    verbs: list[str] = []
    start = 0
    for match in _VERB.finditer(fmt):
        verb = match.group(1)
        if verb not in ("s", "d", "v", "%"):
            return None
        if verb == "%":
            continue
        pieces.append(fmt[start : match.start()].replace("%%", "%"))
        verbs.append(verb)
        start = match.end()
    pieces.append(fmt[start:].replace("%%", "%"))
    return tuple(pieces), "".join(verbs)


_VERB = re.compile(r"%(.?)", re.DOTALL)


def _sprintf_plain(fmt: str, values: list[Any]) -> str | None:
    """The common case without the fmt machinery: strings under ``%s``/``%v`` and ints under
    ``%d``/``%v``, one value per verb. None whenever Go's output could differ."""
    plan = _plain_verbs(fmt)
    if plan is None or len(plan[1]) != len(values):
        return None
    pieces, verbs = plan
    out = [pieces[0]]
    for verb, value, piece in zip(verbs, values, pieces[1:], strict=True):
        t = type(value)
        if t is str and verb != "d":
            out.append(value)
        elif t is int and verb != "s":
            out.append(str(value))
        else:
            return None
        out.append(piece)
    return "".join(out)


def sprintf_(ctx: EvalContext, fmt: Any, values: Any) -> Any:
    """Format values with a Go ``fmt`` format string."""
    fmt = string_arg(fmt, 1)
    values = array_arg(values, 2)
    plain = _sprintf_plain(fmt, values)
    if plain is not None:
        return plain
    return sprintf(fmt, [_go_arg(v) for v in values])


# --- affix matching --------------------------------------------------------------------


def _string_elements(value: Any, pos: int) -> list[str]:
    """OPA's ``StringSliceOperand``: the strings of an array or set."""
    t = type(value)
    if t is not list and t is not RegoSet:
        raise operand_type_error(pos, value, "array", "set")
    out = []
    for item in value:
        if type(item) is not str:
            kind = type_name(value)
            raise OperandError(
                f"operand {pos} must be {kind} of strings but got {kind} containing "
                f"{type_name(item)}"
            )
        out.append(item)
    return out


def _any_affix_match(search: Any, base: Any, suffix: bool) -> bool:
    if type(search) is str:
        searches = [search]
    elif type(search) in (list, RegoSet):
        searches = _string_elements(search, 1)
    else:
        raise operand_type_error(1, search, "string", "set", "array")
    if type(base) is str:
        bases = [base]
    elif type(base) in (list, RegoSet):
        bases = _string_elements(base, 2)
    else:
        raise operand_type_error(2, base, "string", "set", "array")
    if suffix:
        return any(s.endswith(b) for s in searches for b in bases)
    return any(s.startswith(b) for s in searches for b in bases)


def any_prefix_match(ctx: EvalContext, search: Any, base: Any) -> Any:
    """True if any of the search strings starts with any of the base strings."""
    return _any_affix_match(search, base, suffix=False)


def any_suffix_match(ctx: EvalContext, search: Any, base: Any) -> Any:
    """True if any of the search strings ends with any of the base strings."""
    return _any_affix_match(search, base, suffix=True)


# --- counting, splitting, searching ----------------------------------------------------


def strings_count(ctx: EvalContext, search: Any, substring: Any) -> Any:
    """Count the non-overlapping occurrences of a substring (runes + 1 for "")."""
    search = string_arg(search, 1)
    substring = string_arg(substring, 2)
    return search.count(substring)


def _go_int_operand(value: Any, pos: int) -> int:
    """OPA's ``IntOperand``: an integral number that fits Go's int."""
    t = type(value)
    if t is not int and t is not float:
        raise operand_type_error(pos, value, "number")
    if (t is float and not value.is_integer()) or not _INT64_MIN <= value <= _INT64_MAX:
        raise OperandError(f"operand {pos} must be integer number but got floating-point number")
    return int(value)


def _go_split(text: str, sep: str, limit: int) -> list[str]:
    """Go's ``strings.SplitN`` (``limit`` < 0: no limit)."""
    if limit == 0:
        return []
    if sep == "":
        chars = list(text)
        if limit < 0 or limit > len(chars):
            return chars
        return [*chars[: limit - 1], "".join(chars[limit - 1 :])]
    return text.split(sep, limit - 1) if limit > 0 else text.split(sep)


def split_n(ctx: EvalContext, text: Any, delimiter: Any, n: Any) -> Any:
    """Split a string at a delimiter: the first n parts (n >= 0) or the last -n parts."""
    text = string_arg(text, 1)
    delimiter = string_arg(delimiter, 2)
    n = _go_int_operand(n, 3)
    if n >= 0:
        # Asking for n+1 parts and keeping n leaves out the unsplit remainder.
        limit = n + 1 if n < _INT64_MAX else -1
        return _go_split(text, delimiter, limit)[:n]
    parts = _go_split(text, delimiter, -1)
    return parts[max(len(parts) + n, 0) :]


def indexof_n(ctx: EvalContext, haystack: Any, needle: Any) -> Any:
    """Every code-point index at which the needle starts, overlapping matches included."""
    haystack = string_arg(haystack, 1)
    needle = string_arg(needle, 2)
    if needle == "":
        raise BuiltinError("empty search character")
    out = []
    i = haystack.find(needle)
    while i >= 0:
        out.append(i)
        i = haystack.find(needle, i + 1)
    return out


# --- render_template -------------------------------------------------------------------


def _json_error(text_char: str, where: str) -> BuiltinError:
    return BuiltinError(f"invalid character '{text_char}' {where}")


def _check_json_string(s: str) -> None:
    # OPA re-reads the Rego text of the variables as JSON; Go's quoting escapes some
    # characters in ways JSON does not accept (\a, \v, \xNN, \UNNNNNNNN).
    quoted = go_quote(s)
    i = quoted.find("\\")
    while i >= 0:
        esc = quoted[i + 1]
        if esc in "avxU":
            raise _json_error(esc, "in string escape code")
        i = quoted.find("\\", i + 2)


def _first_char(value: Any) -> str:
    return rego_text(value)[0]


def _to_go_data(value: Any) -> Any:
    """Decode a Rego value as OPA does for templates: its text form read back as JSON."""
    t = type(value)
    if t is str:
        _check_json_string(value)
        return value
    if t is bool or value is None:
        return value
    if t is int or t is float:
        return JSONNumber(_number_text(value))
    if t is list:
        return [_to_go_data(v) for v in value]
    if t is dict:
        out = {}
        for k in sorted(value, key=sort_key):
            if type(k) is not str:
                raise _json_error(_first_char(k), "looking for beginning of object key string")
            _check_json_string(k)
            out[k] = _to_go_data(value[k])
        return out
    if t is RegoSet:
        if not value:
            raise _json_error("s", "looking for beginning of value")
        first = next(iter(value))
        if type(first) is not str:
            raise _json_error(_first_char(first), "looking for beginning of object key string")
        _check_json_string(first)
        raise _json_error("," if len(value) > 1 else "}", "after object key")
    raise TypeError(f"not a Rego value: {t.__name__}")


def render_template(ctx: EvalContext, template: Any, variables: Any) -> Any:
    """Render a Go text/template with the given variables."""
    template = string_arg(template, 1)
    variables = object_arg(variables, 2)
    data = _to_go_data(variables)
    try:
        out = render(template, data)
    except TemplateError as e:
        raise BuiltinError(e.message) from None
    return out.replace("<no value>", "<undefined>")


BUILTINS = (
    BuiltinSpec("sprintf", sprintf_),
    BuiltinSpec("strings.any_prefix_match", any_prefix_match),
    BuiltinSpec("strings.any_suffix_match", any_suffix_match),
    BuiltinSpec("strings.count", strings_count),
    BuiltinSpec("strings.split_n", split_n),
    BuiltinSpec("strings.render_template", render_template),
    BuiltinSpec("indexof_n", indexof_n),
)
