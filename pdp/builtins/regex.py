"""Regular-expression and glob builtins: ``regex.*`` (host-side ones) and ``glob.quote_meta``.

OPA compiles patterns with Go's ``regexp`` package, which is RE2. Council uses Google's RE2
through ``google-re2`` so syntax and matching agree; what the binding does differently from
Go is handled here: iteration over matches (Go skips an empty match that touches the
previous match), ``$``-expansion of replacement templates, and Go's wording of syntax errors.

Matching runs on UTF-8 bytes, as Go does, so offsets and advancing "one character" after an
empty match are exact.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import re2

from pdp.builtins._golang import go_quote
from pdp.builtins.base import BuiltinError, BuiltinSpec, EvalContext, int_arg, string_arg

__all__ = [
    "BUILTINS",
    "GoRegexp",
    "GoRegexpError",
    "compile_go_regexp",
    "go_quote_meta",
]

# RE2 (C++) error-code text → Go regexp/syntax ErrorCode text.
_GO_ERROR_CODES = {
    "missing ]": "missing closing ]",
    "missing )": "missing closing )",
    "unexpected )": "unexpected )",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid repetition size": "invalid repeat count",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid named capture group": "invalid named capture",
    "invalid escape sequence": "invalid escape sequence",
    "invalid character class": "invalid character class",
    "invalid character class range": "invalid character class range",
    "invalid UTF-8": "invalid UTF-8",
    "pattern too large - compile failed": "expression too large",
    "pattern too large - reverse compile failed": "expression too large",
}

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False

# `\C` (any byte) is RE2-only; Go rejects it. Found outside escapes of a preceding backslash.
_BACKSLASH_C = re.compile(r"(?<!\\)(?:\\\\)*\\C")
_LOOKBEHIND = re.compile(r"(?<!\\)(?:\\\\)*(\(\?<[=!])")


class GoRegexpError(Exception):
    """A pattern Go's regexp package rejects; ``str()`` is Go's message."""


class GoRegexp:
    """A compiled pattern with Go's ``regexp`` matching API over UTF-8 bytes."""

    __slots__ = ("_names", "_re", "pattern")

    def __init__(self, pattern: str, compiled: Any) -> None:
        self.pattern = pattern
        self._re = compiled
        self._names: dict[str, int] = {
            (k.decode() if isinstance(k, bytes) else k): v for k, v in compiled.groupindex.items()
        }

    def search(self, data: bytes, pos: int) -> Any:
        """Leftmost-first match starting at or after byte offset ``pos``, or None."""
        return self._re.search(data, pos)

    def all_matches(self, data: bytes, n: int = -1) -> Iterator[Any]:
        """Successive matches as Go's ``FindAll*`` yields them (at most ``n`` when n >= 0).

        An empty match right where the previous match ended is skipped, and after an empty
        match the search resumes one UTF-8 sequence further on.
        """
        if n < 0:
            n = len(data) + 1
        end = len(data)
        pos, count, prev_end = 0, 0, -1
        while count < n and pos <= end:
            m = self._re.search(data, pos)
            if m is None:
                return
            start, stop = m.span()
            accept = True
            if stop == pos:
                if start == prev_end:
                    accept = False
                pos += _utf8_width(data, pos) if pos < end else 1
            else:
                pos = stop
            prev_end = stop
            if accept:
                yield m
                count += 1

    def find_all(self, text: str, n: int) -> list[str]:
        """Go's ``FindAllString``."""
        data = text.encode()
        return [m.group().decode() for m in self.all_matches(data, n)]

    def split(self, text: str) -> list[str]:
        """Go's ``Split(s, -1)``."""
        if self.pattern and not text:
            return [""]
        data = text.encode()
        out: list[bytes] = []
        beg = end = 0
        for m in self.all_matches(data):
            end = m.start()
            if m.end() != 0:
                out.append(data[beg:end])
            beg = m.end()
        if end != len(data):
            out.append(data[beg:])
        return [b.decode() for b in out]

    def replace_all(self, text: str, template: str) -> str:
        """Go's ``ReplaceAllString``: every match replaced by the expanded ``template``."""
        data = text.encode()
        tmpl = template.encode()
        parts: list[bytes] = []
        last = 0
        for m in self.all_matches(data):
            parts.append(data[last : m.start()])
            parts.append(self._expand(tmpl, data, m))
            last = m.end()
        parts.append(data[last:])
        return b"".join(parts).decode()

    def _group(self, data: bytes, m: Any, index: int) -> bytes | None:
        if index > self._re.groups:
            return None
        start, stop = m.span(index)
        if start < 0:
            return None
        return data[start:stop]

    def _expand(self, template: bytes, data: bytes, m: Any) -> bytes:
        out = bytearray()
        while template:
            before, dollar, after = template.partition(b"$")
            if not dollar:
                break
            out += before
            template = after
            if template.startswith(b"$"):
                out += b"$"
                template = template[1:]
                continue
            parsed = _extract_group_ref(template)
            if parsed is None:
                out += b"$"
                continue
            name, num, template = parsed
            if num >= 0:
                chunk = self._group(data, m, num)
            else:
                index = self._names.get(name)
                chunk = None if index is None else self._group(data, m, index)
            if chunk is not None:
                out += chunk
        out += template
        return bytes(out)


def _utf8_width(data: bytes, pos: int) -> int:
    """Length of the UTF-8 sequence at ``pos`` (1 for an invalid lead byte, as Go steps)."""
    b = data[pos]
    if b < 0x80:
        return 1
    for width, lead_mask, lead in ((2, 0xE0, 0xC0), (3, 0xF0, 0xE0), (4, 0xF8, 0xF0)):
        if b & lead_mask == lead:
            return width if pos + width <= len(data) else 1
    return 1


def _extract_group_ref(template: bytes) -> tuple[str, int, bytes] | None:
    """Parse ``name`` or ``{name}`` after a ``$`` like Go's ``regexp.extract``."""
    if not template:
        return None
    text = template.decode("utf-8", "surrogateescape")
    brace = text.startswith("{")
    if brace:
        text = text[1:]
    i = 0
    while i < len(text) and (text[i].isalpha() or text[i].isdecimal() or text[i] == "_"):
        i += 1
    if i == 0:
        return None
    name = text[:i]
    if brace:
        if i >= len(text) or text[i] != "}":
            return None
        i += 1
    num = -1
    if name.isascii() and name.isdigit() and not (name[0] == "0" and len(name) > 1):
        num = int(name) if len(name) <= 9 else -1
    rest = text[i:].encode("utf-8", "surrogateescape")
    return name, num, rest


def _go_error(pattern: str, message: str) -> GoRegexpError:
    code, _, arg = message.partition(": ")
    if code == "trailing \\":
        return GoRegexpError("error parsing regexp: trailing backslash at end of expression: ``")
    if code == "invalid perl operator" and arg.startswith("(?<"):
        found = _LOOKBEHIND.search(pattern)
        if found is not None:
            rest = pattern[found.start(1) :]
            close = rest.find(">")
            arg = rest if close < 0 else rest[: close + 1]
            return GoRegexpError(f"error parsing regexp: invalid named capture: `{arg}`")
    go_code = _GO_ERROR_CODES.get(code)
    if go_code is None:
        return GoRegexpError(f"error parsing regexp: {message}")
    return GoRegexpError(f"error parsing regexp: {go_code}: `{arg}`")


@functools.lru_cache(maxsize=256)
def _compile_cached(pattern: str) -> GoRegexp | GoRegexpError:
    bad_escape = _BACKSLASH_C.search(pattern)
    if bad_escape is not None:
        return GoRegexpError("error parsing regexp: invalid escape sequence: `\\C`")
    try:
        compiled = re2.compile(pattern.encode(), _OPTIONS)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else ""
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return _go_error(pattern, message)
    return GoRegexp(pattern, compiled)


def compile_go_regexp(pattern: str) -> GoRegexp:
    """Compile ``pattern`` like Go's ``regexp.Compile``; raise :class:`GoRegexpError`."""
    result = _compile_cached(pattern)
    if isinstance(result, GoRegexpError):
        raise GoRegexpError(str(result))
    return result


def _regexp(pattern: str) -> GoRegexp:
    try:
        return compile_go_regexp(pattern)
    except GoRegexpError as exc:
        raise BuiltinError(str(exc)) from None


def go_quote_meta(text: str) -> str:
    """Go's ``regexp.QuoteMeta``: backslash before every regexp metacharacter."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in text)


# --- regex.* builtins ------------------------------------------------------------------


def regex_find_n(ctx: EvalContext, pattern: Any, value: Any, number: Any) -> list[str]:
    """Returns the specified number of matches when matching the input against the pattern."""
    p = string_arg(pattern, 1)
    s = string_arg(value, 2)
    n = int_arg(number, 3)
    return _regexp(p).find_all(s, n)


def regex_split(ctx: EvalContext, pattern: Any, value: Any) -> list[str]:
    """Splits the input string by the occurrences of the given pattern."""
    p = string_arg(pattern, 1)
    s = string_arg(value, 2)
    return _regexp(p).split(s)


def regex_replace(ctx: EvalContext, value: Any, pattern: Any, replacement: Any) -> str:
    """Replaces every match of the pattern in the string, expanding ``$1``/``${name}``."""
    s = string_arg(value, 1)
    p = string_arg(pattern, 2)
    r = string_arg(replacement, 3)
    return _regexp(p).replace_all(s, r)


def regex_template_match(
    ctx: EvalContext, template: Any, value: Any, delimiter_start: Any, delimiter_end: Any
) -> bool:
    """Matches a string against a template whose delimited parts are regular expressions."""
    tpl = string_arg(template, 1)
    s = string_arg(value, 2)
    start = string_arg(delimiter_start, 3)
    end = string_arg(delimiter_end, 4)
    start_len = len(start.encode())
    if start_len != 1:
        raise BuiltinError(
            f"start delimiter has to be exactly one character long but is {start_len} long"
        )
    if len(end.encode()) != 1:
        # OPA reports the start delimiter's length here too.
        raise BuiltinError(
            f"end delimiter has to be exactly one character long but is {start_len} long"
        )
    generated = _template_pattern(tpl, start, end)
    return _regexp(generated).search(s.encode(), 0) is not None


def _template_pattern(tpl: str, start: str, end: str) -> str:
    """Turn ``urn:{.*}`` into the anchored regexp ``^urn:(.*)$``, checking every part."""
    spans: list[tuple[int, int]] = []
    level = 0
    open_at = 0
    for i, ch in enumerate(tpl):
        if ch == start:
            level += 1
            if level == 1:
                open_at = i
        elif ch == end:
            level -= 1
            if level == 0:
                spans.append((open_at, i + 1))
            elif level < 0:
                raise BuiltinError(f"unbalanced braces in {go_quote(tpl)}")
    if level != 0:
        raise BuiltinError(f"unbalanced braces in {go_quote(tpl)}")
    parts = ["^"]
    last = 0
    for lo, hi in spans:
        inner = tpl[lo + 1 : hi - 1]
        parts.append(go_quote_meta(tpl[last:lo]))
        parts.append(f"({inner})")
        _regexp(f"^{inner}$")
        last = hi
    parts.append(go_quote_meta(tpl[last:]))
    parts.append("$")
    return "".join(parts)


def glob_quote_meta(ctx: EvalContext, pattern: Any) -> str:
    """Escapes the glob metacharacters ``* ? \\ [ ] { }`` in a string."""
    p = string_arg(pattern, 1)
    return "".join("\\" + c if c in "*?\\[]{}" else c for c in p)


# --- regex.globs_match: intersection of two regex-like globs ----------------------------
#
# The "globs" here are OPA's restricted regex dialect from the glob-intersection library:
# characters, `.`, character sets `[...]` with ranges, each optionally followed by `*` or
# `+`, and `\` escapes. The question is whether some string matches both.

_FLAG_NONE, _FLAG_PLUS, _FLAG_STAR = 0, 1, 2
_CHAR, _DOT, _SET = 0, 1, 2


class _Token:
    __slots__ = ("flag", "kind", "value")

    def __init__(self, kind: int, value: Any = None) -> None:
        self.kind = kind
        self.value = value  # the character, or a frozenset of characters for a set
        self.flag = _FLAG_NONE

    def same(self, other: _Token) -> bool:
        return self.kind == other.kind and self.value == other.value


class _GlobError(Exception):
    pass


def _glob_error(text: str, pos: int, message: str) -> _GlobError:
    return _GlobError(f"input:{text}, pos:{pos}, {message}: the input provided is invalid")


def _next_rune(text: str, i: int) -> tuple[int, str, bool] | None:
    """(next index, character, escaped) or None at the end of input."""
    if i >= len(text):
        return None
    if text[i] == "\\":
        if i == len(text) - 1:
            raise _glob_error(text, i, "input ends with a \\ (escape) character")
        return i + 2, text[i + 1], True
    return i + 1, text[i], False


def _glob_tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while True:
        step = _next_rune(text, i)
        if step is None:
            break
        i, ch, escaped = step
        if escaped:
            token = _Token(_CHAR, ch)
        elif ch == ".":
            token = _Token(_DOT)
        elif ch == "]":
            raise _glob_error(text, i, "set-close ']' with no preceding '['")
        elif ch == "[":
            i, token = _glob_set(text, i)
        elif ch in "+*":
            raise _glob_error(text, i, f"flag '{ch}' must be preceded by a non-flag")
        else:
            token = _Token(_CHAR, ch)
        flag_step = _next_rune(text, i)
        if flag_step is not None and not flag_step[2] and flag_step[1] in "+*":
            token.flag = _FLAG_PLUS if flag_step[1] == "+" else _FLAG_STAR
            i = flag_step[0]
        tokens.append(token)
    return tokens


def _glob_set(text: str, i: int) -> tuple[int, _Token]:
    chars: set[str] = set()
    prev = ""
    have_prev = False
    while True:
        step = _next_rune(text, i)
        if step is None:
            raise _glob_error(text, i, "found [ without matching ]")
        i, ch, escaped = step
        if escaped:
            chars.add(ch)
            prev, have_prev = ch, True
        elif ch == "-":
            if not have_prev:
                raise _glob_error(
                    text, i, "range character '-' must be preceded by a Unicode character"
                )
            if i >= len(text) - 1:
                raise _glob_error(
                    text, i, "range character '-' must be followed by a Unicode character"
                )
            i, hi, hi_escaped = _next_rune(text, i)  # type: ignore[misc]
            if not hi_escaped and hi in "]-":
                raise _glob_error(
                    text, i, "range character '-' cannot be followed by a special symbol"
                )
            if hi < prev:
                raise _glob_error(
                    text, i, f"range is out of order: '{hi}' comes before '{prev}' in Unicode"
                )
            chars.update(chr(c) for c in range(ord(prev), ord(hi) + 1))
            have_prev = False
        elif ch == "]":
            return i, _Token(_SET, frozenset(chars))
        else:
            chars.add(ch)
            prev, have_prev = ch, True


def _simplify(tokens: list[_Token]) -> list[_Token]:
    """Merge runs of equal flagged tokens (``a*a+`` → ``a+``)."""
    if not tokens:
        return tokens
    out = [tokens[0]]
    latest = tokens[0]
    for token in tokens[1:]:
        if _FLAG_NONE not in (token.flag, latest.flag) and token.same(latest):
            plus = _FLAG_PLUS in (token.flag, latest.flag)
            out[-1].flag = _FLAG_PLUS if plus else _FLAG_STAR
            continue
        latest = token
        out.append(token)
    return out


def _token_match(a: _Token, b: _Token) -> bool:
    if a.kind > b.kind:
        a, b = b, a
    if a.kind == _CHAR:
        if b.kind == _CHAR:
            return a.value == b.value
        if b.kind == _DOT:
            return True
        return a.value in b.value
    if a.kind == _DOT:
        return True
    return not a.value.isdisjoint(b.value)


def _trim(g1: list[_Token], g2: list[_Token]) -> tuple[list[_Token], list[_Token]] | None:
    left = 0
    while (
        left < len(g1)
        and left < len(g2)
        and g1[left].flag == _FLAG_NONE
        and g2[left].flag == _FLAG_NONE
    ):
        if not _token_match(g1[left], g2[left]):
            return None
        left += 1
    if left > 0:
        left -= 1
    r1, r2 = len(g1) - 1, len(g2) - 1
    while (
        r1 >= 0
        and r1 >= left
        and r2 >= 0
        and r2 >= left
        and g1[r1].flag == _FLAG_NONE
        and g2[r2].flag == _FLAG_NONE
    ):
        if not _token_match(g1[r1], g2[r2]):
            return None
        r1, r2 = r1 - 1, r2 - 1
    if r1 < len(g1) - 1:
        r1, r2 = r1 + 1, r2 + 1
    return g1[left : r1 + 1], g2[left : r2 + 1]


def _intersect_normal(g1: list[_Token], g2: list[_Token]) -> bool:
    i = 0
    while i < len(g1) and i < len(g2):
        if g1[i].flag == _FLAG_NONE and g2[i].flag == _FLAG_NONE:
            if not _token_match(g1[i], g2[i]):
                return False
        else:
            return _intersect_special(g1[i:], g2[i:])
        i += 1
    return i == len(g1) and i == len(g2)


def _intersect_special(g1: list[_Token], g2: list[_Token]) -> bool:
    if g1[0].flag != _FLAG_NONE:
        flagged, other = g1, g2
    else:
        flagged, other = g2, g1
    if flagged[0].flag == _FLAG_PLUS:
        return _intersect_plus(flagged, other)
    return _intersect_star(flagged, other)


def _intersect_plus(plussed: list[_Token], other: list[_Token]) -> bool:
    if not _token_match(plussed[0], other[0]):
        return False
    if _intersect_star(plussed, other[1:]):
        return True
    return other[0].flag != _FLAG_NONE and _intersect_normal(plussed[1:], other)


def _intersect_star(starred: list[_Token], other: list[_Token]) -> bool:
    star = starred[0]
    following = starred[1] if len(starred) > 1 else None
    for i, token in enumerate(other):
        if (
            following is not None
            and _token_match(token, following)
            and _intersect_normal(starred[1:], other[i:])
        ):
            return True
        if not _token_match(token, star):
            return False
    return following is None


def globs_intersect(lhs: str, rhs: str) -> bool:
    """Whether some string matches both restricted-regex globs (raises on a bad glob)."""
    g1 = _simplify(_glob_tokens(lhs))
    g2 = _simplify(_glob_tokens(rhs))
    trimmed = _trim(g1, g2)
    if trimmed is None:
        return False
    return _intersect_normal(*trimmed)


def regex_globs_match(ctx: EvalContext, glob1: Any, glob2: Any) -> bool:
    """Checks whether two glob-style regular expressions match at least one common string."""
    a = string_arg(glob1, 1)
    b = string_arg(glob2, 2)
    try:
        return globs_intersect(a, b)
    except _GlobError as exc:
        raise BuiltinError(str(exc)) from None


BUILTINS = (
    BuiltinSpec("regex.find_n", regex_find_n),
    BuiltinSpec("regex.split", regex_split),
    BuiltinSpec("regex.replace", regex_replace),
    BuiltinSpec("regex.template_match", regex_template_match),
    BuiltinSpec("regex.globs_match", regex_globs_match),
    BuiltinSpec("glob.quote_meta", glob_quote_meta),
)
