"""Rego values in Python, and their text form on the OPA Wasm heap.

Mapping: ``null`` → ``None``, booleans → ``bool``, numbers → ``int`` (exact, any size) or
``float``, strings → ``str``, arrays → ``list``, objects → ``dict``, sets → :class:`RegoSet`.
Object keys that are arrays become tuples (the one place a tuple stands for an array), so
they can be dict keys.

The host exchanges values with the module as text: ``opa_value_dump`` writes JSON extended
with Rego sets (``{1, 2}``, ``set()``) and non-string object keys, and ``opa_value_parse``
reads the same. :func:`decode` and :func:`encode` speak that format; plain JSON takes the C
fast path of :mod:`json`.

Everything here is pure and thread-safe.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = [
    "ObjectKey",
    "RegoSet",
    "ValueDecodeError",
    "compare",
    "decode",
    "decode_json_compatible",
    "encode",
    "freeze",
    "rego_equal",
    "sort_key",
    "sorted_values",
    "to_json_compatible",
    "type_name",
]


class ValueDecodeError(ValueError):
    """Raised when text is not a Rego value in OPA's value-dump format."""


def freeze(value: Any) -> Any:
    """Return a hashable key for ``value`` such that equal Rego values give equal keys.

    Booleans are tagged because Python treats ``True == 1``; integral floats become ints
    because Rego treats ``1 == 1.0``.
    """
    t = type(value)
    if t is str or value is None:
        return value
    if t is bool:
        return ("b", value)
    if t is int:
        return value
    if t is float:
        return int(value) if value.is_integer() else value
    if t is list or t is tuple:
        return ("a", tuple(freeze(v) for v in value))
    if t is dict:
        return ("o", frozenset((freeze(k), freeze(v)) for k, v in value.items()))
    if t is RegoSet:
        return ("s", frozenset(value._items))
    if t is ObjectKey:
        return value._frozen
    raise TypeError(f"not a Rego value: {t.__name__}")


class RegoSet:
    """An immutable Rego set. Iterates in Rego's standard order, as OPA's sets do."""

    __slots__ = ("_items", "_sorted")

    def __init__(self, values: Iterable[Any] = ()) -> None:
        items: dict[Any, Any] = {}
        for v in values:
            items.setdefault(freeze(v), v)
        self._items = items
        self._sorted: list[Any] | None = None

    def __iter__(self) -> Iterator[Any]:
        if self._sorted is None:
            self._sorted = sorted(self._items.values(), key=sort_key)
        return iter(self._sorted)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, value: Any) -> bool:
        try:
            return freeze(value) in self._items
        except TypeError:
            return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RegoSet) and self._items.keys() == other._items.keys()

    def __hash__(self) -> int:
        return hash(frozenset(self._items))

    def __repr__(self) -> str:
        return "RegoSet(" + repr(list(self)) + ")"

    def union(self, other: Iterable[Any]) -> RegoSet:
        """Return the union of this set and ``other``."""
        return RegoSet([*self._items.values(), *other])

    def intersection(self, other: RegoSet) -> RegoSet:
        """Return the elements present in both sets."""
        return RegoSet(v for k, v in self._items.items() if k in other._items)

    def difference(self, other: RegoSet) -> RegoSet:
        """Return the elements of this set absent from ``other``."""
        return RegoSet(v for k, v in self._items.items() if k not in other._items)


_TYPE_ORDER = {
    type(None): 0,
    bool: 1,
    int: 2,
    float: 2,
    str: 3,
    list: 4,
    tuple: 4,
    dict: 5,
    RegoSet: 6,
}
_TYPE_NAMES = ("null", "boolean", "number", "string", "array", "object", "set")


def type_name(value: Any) -> str:
    """Rego's name for the type of ``value`` (``type_name`` builtin, error messages)."""
    try:
        return _TYPE_NAMES[_TYPE_ORDER[type(value)]]
    except KeyError:
        raise TypeError(f"not a Rego value: {type(value).__name__}") from None


def _cmp(a: Any, b: Any) -> int:
    return (a > b) - (a < b)


def compare(a: Any, b: Any) -> int:
    """Compare two values in Rego's standard order; negative, zero or positive.

    null < booleans < numbers < strings < arrays < objects < sets; arrays element-wise then
    by length; objects key, value, key, value… over sorted keys, then by size; sets like
    arrays of their sorted elements. Strings compare by code point, which is UTF-8 byte
    order, as in Go.
    """
    if type(a) is ObjectKey:
        a = a.value
    if type(b) is ObjectKey:
        b = b.value
    ta, tb = _TYPE_ORDER[type(a)], _TYPE_ORDER[type(b)]
    if ta != tb:
        return ta - tb
    if ta == 0:
        return 0
    if ta <= 3:
        return _cmp(a, b)
    if ta == 4:
        return _compare_sequences(a, b)
    if ta == 5:
        ak = sorted(a, key=sort_key)
        bk = sorted(b, key=sort_key)
        for ka, kb in zip(ak, bk, strict=False):
            c = compare(ka, kb) or compare(a[ka], b[kb])
            if c:
                return c
        return len(ak) - len(bk)
    return _compare_sequences(list(a), list(b))


def _compare_sequences(a: Any, b: Any) -> int:
    for x, y in zip(a, b, strict=False):
        c = compare(x, y)
        if c:
            return c
    return len(a) - len(b)


sort_key = functools.cmp_to_key(compare)


def sorted_values(values: Iterable[Any]) -> list[Any]:
    """Return ``values`` sorted in Rego's standard order."""
    return sorted(values, key=sort_key)


def rego_equal(a: Any, b: Any) -> bool:
    """Rego equality: numbers by value, sets without order, booleans distinct from numbers."""
    return freeze(a) == freeze(b)


# --- text form ------------------------------------------------------------------------

_TOKENS = re.compile(
    r'[ \t\n\r]*(?:"((?:[^"\\]|\\.)*)"'
    r"|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
    r"|(set\(\)|true|false|null|[\[\]{}:,])"
    r"|(\S))"
)
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}
_json_string = json.decoder.scanstring  # type: ignore[attr-defined]


def decode(text: str | bytes, *, lenient: bool = False) -> Any:
    """Parse OPA's value-dump text (JSON plus Rego sets and non-string keys).

    Plain JSON takes :mod:`json`'s C path; anything else is tokenised with one regular
    expression pass and assembled from the token list. ``lenient`` also accepts trailing
    commas, as Rego's own literal syntax does.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        return json.loads(text)
    except ValueError:
        pass
    tokens = _TOKENS.findall(text)
    if not tokens:
        raise ValueDecodeError("empty value")
    parser = _TokenParser(tokens, lenient)
    value = parser.value()
    if parser.pos != len(tokens):
        raise ValueDecodeError(f"trailing tokens after value (token {parser.pos})")
    return value


class _TokenParser:
    __slots__ = ("lenient", "pos", "tokens")

    def __init__(self, tokens: list[tuple[str, str, str, str]], lenient: bool) -> None:
        self.tokens = tokens
        self.pos = 0
        self.lenient = lenient

    def _next(self) -> tuple[str, str, str, str]:
        try:
            tok = self.tokens[self.pos]
        except IndexError:
            raise ValueDecodeError("unexpected end of value") from None
        self.pos += 1
        if tok[3]:
            raise ValueDecodeError(f"unexpected character {tok[3]!r}")
        return tok

    def _peek_punct(self) -> str:
        if self.pos < len(self.tokens):
            return self.tokens[self.pos][2]
        return ""

    def value(self) -> Any:
        string, number, punct, _ = self._next()
        if punct == "":
            if number:
                if "." in number or "e" in number or "E" in number:
                    return float(number)
                return int(number)
            if "\\" in string:
                return _json_string('"' + string + '"', 1)[0]
            return string
        if punct == "[":
            return self._items("]")
        if punct == "{":
            return self._brace()
        if punct == "set()":
            return RegoSet()
        if punct in _LITERALS:
            return _LITERALS[punct]
        raise ValueDecodeError(f"unexpected {punct!r}")

    def _items(self, close: str) -> list[Any]:
        items: list[Any] = []
        if self._peek_punct() == close:
            self.pos += 1
            return items
        while True:
            items.append(self.value())
            punct = self._next()[2]
            if punct == close:
                return items
            if punct != ",":
                raise ValueDecodeError(f"expected ',' or {close!r}")
            if self.lenient and self._peek_punct() == close:
                self.pos += 1
                return items

    def _brace(self) -> Any:
        if self._peek_punct() == "}":
            self.pos += 1
            return {}
        first = self.value()
        if self._peek_punct() != ":":
            punct = self._next()[2]
            if punct == "}":
                return RegoSet([first])
            if punct != ",":
                raise ValueDecodeError("expected ',' or '}' in set")
            rest = [first]
            if not (self.lenient and self._peek_punct() == "}"):
                rest.extend(self._items("}"))
            else:
                self.pos += 1
            return RegoSet(rest)
        obj: dict[Any, Any] = {}
        key = first
        while True:
            if self._next()[2] != ":":
                raise ValueDecodeError("expected ':' in object")
            obj[_hashable_key(key)] = self.value()
            punct = self._next()[2]
            if punct == "}":
                return obj
            if punct != ",":
                raise ValueDecodeError("expected ',' or '}' in object")
            if self.lenient and self._peek_punct() == "}":
                self.pos += 1
                return obj
            key = self.value()


def _hashable_key(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable_key(k) for k in key)
    if isinstance(key, dict):
        return ObjectKey(key)
    return key


class ObjectKey:
    """An object used as an object key (Rego allows it; Python dicts are unhashable).

    Immutable; equal and hashed as the Rego object it holds.
    """

    __slots__ = ("_frozen", "value")

    def __init__(self, value: dict[Any, Any]) -> None:
        self.value = {_hashable_key(k): v for k, v in value.items()}
        self._frozen = freeze(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectKey) and self._frozen == other._frozen

    def __hash__(self) -> int:
        return hash(self._frozen)

    def __repr__(self) -> str:
        return f"ObjectKey({self.value!r})"


_TYPE_ORDER[ObjectKey] = 5


def number_text(value: int | float) -> str:
    """A Rego number as text: exact integers, shortest round-trip floats, integral floats
    written as integers."""
    if type(value) is int:
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a Rego number")
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def encode(value: Any) -> str:
    """Render ``value`` in the text form ``opa_value_parse`` reads."""
    t = type(value)
    if t is str:
        return json.dumps(value, ensure_ascii=False)
    if t is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if t is int or t is float:
        return number_text(value)
    if t is list or t is tuple:
        return "[" + ",".join(encode(v) for v in value) + "]"
    if t is dict:
        return "{" + ",".join(encode(k) + ":" + encode(v) for k, v in value.items()) + "}"
    if t is RegoSet:
        if not value:
            return "set()"
        return "{" + ",".join(encode(v) for v in value) + "}"
    if t is ObjectKey:
        return encode(value.value)
    raise TypeError(f"not a Rego value: {t.__name__}")


def to_json_compatible(value: Any) -> Any:
    """Turn a Rego value into plain JSON data: sets become sorted arrays and non-string
    object keys their JSON text, as OPA does when it serialises a result."""
    t = type(value)
    if t is list or t is tuple:
        return [to_json_compatible(v) for v in value]
    if t is dict:
        return {_json_key(k): to_json_compatible(v) for k, v in value.items()}
    if t is RegoSet:
        return [to_json_compatible(v) for v in value]
    if t is ObjectKey:
        return to_json_compatible(value.value)
    return value


# Over the text outside strings (segments joined with NUL, which JSON text never holds):
# a brace followed by anything but a string or its closing brace opens a set of
# non-strings or an object with a non-string key; a brace followed by a string that is
# followed by a comma or a closing brace opens a set of strings.
_BRACE_NOT_STRING = re.compile(r"\{\s*[^\s}\x00]")
_SET_OF_STRINGS = re.compile(r"\{\s*\x00\s*[,}]")


def _json_text_of_plain_value(text: str) -> str | None:
    """Rewrite value text into JSON text when its sets hold only strings.

    Splitting on quotes separates strings (odd parts) from structure (even parts) in one
    C-level call, which is valid while no string holds an escaped character. ``set()``
    becomes ``[]``; a set of strings becomes an array of its strings in sorted order
    (code-point order, as OPA sorts them). Returns None for anything else.
    """
    if "\\" in text:
        return None
    parts = text.split('"')
    n = len(parts)
    if n % 2 == 0:
        return None
    structure = "\x00".join(parts[0::2])
    if _BRACE_NOT_STRING.search(structure):
        return None
    if "set()" in structure:
        parts[0::2] = [seg.replace("set()", "[]") for seg in parts[0::2]]
    if not _SET_OF_STRINGS.search(structure):
        return '"'.join(parts)
    out: list[str] = []
    i = 0
    while i < n:
        seg = parts[i]
        stripped = seg.rstrip()
        if stripped.endswith("{") and i + 2 < n and parts[i + 2].lstrip()[:1] in (",", "}"):
            # A set of strings opens here: collect its elements up to the closing brace.
            elements = [parts[i + 1]]
            j = i + 2
            while parts[j].strip() == "," and j + 2 < n:
                elements.append(parts[j + 1])
                j += 2
            tail = parts[j].lstrip()
            if not tail.startswith("}"):
                return None
            out.append(stripped[:-1] + "[")
            out.append(",".join('"' + e + '"' for e in sorted(elements)))
            parts[j] = "]" + tail[1:]
            i = j
            continue
        out.append(seg)
        if i + 1 < n:
            out.append('"' + parts[i + 1] + '"')
        i += 2
    return "".join(out)


def decode_json_compatible(text: str | bytes) -> Any:
    """Decode value text straight to :func:`to_json_compatible` form.

    Faster than ``to_json_compatible(decode(text))`` for what results usually hold: JSON,
    possibly with sets of strings (``{"a", "b"}``, ``set()``). Anything else takes the full
    parser.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    rewritten = _json_text_of_plain_value(text)
    if rewritten is not None:
        try:
            return json.loads(rewritten)
        except ValueError:
            pass
    return to_json_compatible(decode(text))


def _json_key(key: Any) -> str:
    """A non-string key's JSON text, as OPA writes it when serialising an object."""
    if type(key) is str:
        return key
    return json.dumps(to_json_compatible(key), separators=(",", ":"), ensure_ascii=False)
