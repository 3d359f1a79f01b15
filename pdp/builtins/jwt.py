"""JSON Web Token builtins (``io.jwt.*``) with OPA's semantics and error messages.

OPA implements these in ``v1/topdown/tokens.go`` on top of Go's standard library and
lestrrat-go/jwx v3. Much of their observable behaviour, including error text, comes from
those Go libraries, so this module reproduces the relevant parts of them:

* OPA's own padding repair for base64url (the base64 and ``encoding/pem`` decoders are
  :mod:`pdp.builtins._goencoding`'s);
* JSON decoding as OPA's ``util.UnmarshalJSON`` does it (a ``json.Decoder`` followed by a
  ``Token`` call), including Go's syntax-error messages;
* the ``fastjson`` parser jwx uses to read the ``alg``/``typ`` headers of a token to sign;
* Go's ``json.Marshal`` output (sorted keys, HTML-safe);
* JWK (set) parsing, key export, signing and verification as jwx does them.

Cryptography is done with ``cryptography``. Signatures are deterministic where the
algorithm is (HS*, RS*, EdDSA); ES* and PS* signatures are randomised, as in Go.

Tokens travel through this module as bytes: Go strings are byte strings, and a nested token
or a payload need not be valid UTF-8.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils, x25519

from pdp.builtins._goencoding import (
    STD_ALPHABET,
    URL_ALPHABET,
    CorruptInputError,
    go_base64_decode,
    pem_decode,
)
from pdp.builtins._golang import go_bytes, go_quote_bytes, go_string
from pdp.builtins.base import (
    BuiltinError,
    BuiltinSpec,
    EvalContext,
    object_arg,
    string_arg,
)
from pdp.values import RegoSet, encode, sort_key

__all__ = ["BUILTINS"]


# --- Go text -------------------------------------------------------------------------------


def _quote_char(c: int) -> str:
    """Go's ``encoding/json`` rendering of an offending byte in a syntax error."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    return "'" + go_quote_bytes(chr(c).encode())[1:-1] + "'"


# --- base64 --------------------------------------------------------------------------------

_CLEAN_URL_B64 = re.compile(rb"[A-Za-z0-9_-]*={0,2}")


def _b64url_decode(data: bytes) -> bytes:
    """OPA's ``base64url.decode``: add missing padding, then decode strictly padded."""
    if not data.endswith(b"="):
        rem = len(data) % 4
        if rem == 1:
            raise BuiltinError(f"illegal base64url string: {go_string(data)}")
        data += b"=" * ((4 - rem) % 4)
    if len(data) % 4 == 0 and _CLEAN_URL_B64.fullmatch(data):
        return base64.urlsafe_b64decode(data)
    try:
        return go_base64_decode(data, URL_ALPHABET)
    except CorruptInputError as exc:
        raise BuiltinError(str(exc)) from None


def _b64url_encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _jwx_b64decode(value: str) -> bytes | None:
    """jwx's lenient base64: the alphabet and padding are guessed; None when undecodable."""
    src = go_bytes(value)
    url = not (b"+" in src or b"/" in src)
    padded = src.endswith(b"=")
    try:
        return go_base64_decode(src, URL_ALPHABET if url else STD_ALPHABET, padded=padded)
    except CorruptInputError:
        return None


# --- JSON as Go's encoding/json reads it ---------------------------------------------------


class _JSONSyntaxError(Exception):
    """Go's ``*json.SyntaxError``."""


class _JSONEOFError(Exception):
    """The input ended inside a value (Go's ``io.ErrUnexpectedEOF``)."""


_WS = b" \t\n\r"
_DIGITS = b"0123456789"
_HEX = b"0123456789abcdefABCDEF"
_PLAIN_STRING = re.compile(rb'[^"\\\x00-\x1f]*')
_MAX_DEPTH = 10000

_BEGIN_VALUE, _BEGIN_VALUE_OR_EMPTY, _BEGIN_KEY, _BEGIN_KEY_OR_EMPTY, _END_VALUE = range(5)
_IN_ARRAY, _IN_KEY, _IN_VALUE = range(3)


def _syntax(c: int, context: str) -> _JSONSyntaxError:
    return _JSONSyntaxError(f"invalid character {_quote_char(c)} {context}")


def _skip_ws(data: bytes, i: int) -> int:
    n = len(data)
    while i < n and data[i] in _WS:
        i += 1
    return i


def _scan_string(data: bytes, i: int) -> int:
    """Scan a string body starting after its opening quote; return the index after it."""
    n = len(data)
    while True:
        i = _PLAIN_STRING.match(data, i).end()  # type: ignore[union-attr]
        if i == n:
            raise _JSONEOFError
        c = data[i]
        if c == 0x22:
            return i + 1
        if c < 0x20:
            raise _syntax(c, "in string literal")
        i += 1
        if i == n:
            raise _JSONEOFError
        c = data[i]
        if c in b'bfnrt\\/"':
            i += 1
        elif c == 0x75:
            for _ in range(4):
                i += 1
                if i == n:
                    raise _JSONEOFError
                if data[i] not in _HEX:
                    raise _syntax(data[i], "in \\u hexadecimal character escape")
            i += 1
        else:
            raise _syntax(c, "in string escape code")


def _scan_digits(data: bytes, i: int) -> int:
    n = len(data)
    while i < n and data[i] in _DIGITS:
        i += 1
    return i


def _scan_number(data: bytes, i: int) -> int:
    n = len(data)
    if data[i] == 0x2D:
        i += 1
        if i == n:
            raise _JSONEOFError
        if data[i] not in _DIGITS:
            raise _syntax(data[i], "in numeric literal")
    i = i + 1 if data[i] == 0x30 else _scan_digits(data, i)
    if i < n and data[i] == 0x2E:
        i += 1
        if i == n:
            raise _JSONEOFError
        if data[i] not in _DIGITS:
            raise _syntax(data[i], "after decimal point in numeric literal")
        i = _scan_digits(data, i)
    if i < n and data[i] in b"eE":
        i += 1
        if i < n and data[i] in b"+-":
            i += 1
        if i == n:
            raise _JSONEOFError
        if data[i] not in _DIGITS:
            raise _syntax(data[i], "in exponent of numeric literal")
        i = _scan_digits(data, i)
    return i


def _scan_literal(data: bytes, i: int) -> int:
    word = {0x74: b"true", 0x66: b"false", 0x6E: b"null"}[data[i]]
    name = word.decode()
    n = len(data)
    for k in range(1, len(word)):
        if i + k == n:
            raise _JSONEOFError
        if data[i + k] != word[k]:
            raise _syntax(data[i + k], f"in literal {name} (expecting {chr(word[k])!r})")
    return i + len(word)


def _scan_value(data: bytes, i: int) -> int:
    """Check one JSON value at ``i`` (after optional whitespace) as Go's scanner does.

    Returns the index just after the value. Raises :class:`_JSONSyntaxError` with Go's
    message, or :class:`_JSONEOFError` when the input ends inside the value.
    """
    n = len(data)
    stack: list[int] = []
    state = _BEGIN_VALUE
    while True:
        if state == _END_VALUE:
            if not stack:
                return i
            i = _skip_ws(data, i)
            if i == n:
                raise _JSONEOFError
            c = data[i]
            top = stack[-1]
            if top == _IN_KEY:
                if c != 0x3A:
                    raise _syntax(c, "after object key")
                stack[-1] = _IN_VALUE
                state = _BEGIN_VALUE
            elif top == _IN_VALUE:
                if c == 0x2C:
                    stack[-1] = _IN_KEY
                    state = _BEGIN_KEY
                elif c == 0x7D:
                    stack.pop()
                else:
                    raise _syntax(c, "after object key:value pair")
            elif c == 0x2C:
                state = _BEGIN_VALUE
            elif c == 0x5D:
                stack.pop()
            else:
                raise _syntax(c, "after array element")
            i += 1
            continue
        i = _skip_ws(data, i)
        if i == n:
            raise _JSONEOFError
        c = data[i]
        if (state == _BEGIN_VALUE_OR_EMPTY and c == 0x5D) or (
            state == _BEGIN_KEY_OR_EMPTY and c == 0x7D
        ):
            stack.pop()
            i += 1
            state = _END_VALUE
            continue
        if state in (_BEGIN_KEY, _BEGIN_KEY_OR_EMPTY):
            if c != 0x22:
                raise _syntax(c, "looking for beginning of object key string")
            i = _scan_string(data, i + 1)
            state = _END_VALUE
            continue
        if c in b"{[":
            stack.append(_IN_KEY if c == 0x7B else _IN_ARRAY)
            if len(stack) > _MAX_DEPTH:
                raise _syntax(c, "exceeded max depth")
            i += 1
            state = _BEGIN_KEY_OR_EMPTY if c == 0x7B else _BEGIN_VALUE_OR_EMPTY
            continue
        if c == 0x22:
            i = _scan_string(data, i + 1)
        elif c == 0x2D or c in _DIGITS:
            i = _scan_number(data, i)
        elif c in b"tfn":
            i = _scan_literal(data, i)
        else:
            raise _syntax(c, "looking for beginning of value")
        state = _END_VALUE


def _json_valid(data: bytes) -> bool:
    """Go's ``json.Valid``: exactly one value, surrounded by whitespace only."""
    try:
        end = _scan_value(data, 0)
    except (_JSONSyntaxError, _JSONEOFError):
        return False
    return _skip_ws(data, end) == len(data)


def _parse_float(text: str) -> int | float:
    value = float(text)
    if math.isinf(value):
        # Beyond float64 but still an (integral) Rego number.
        return int(Decimal(text))
    return value


def _replace_surrogates(value: Any) -> Any:
    """Turn the lone surrogates a ``\\uD800``-style escape yields into U+FFFD, as Go does."""
    t = type(value)
    if t is str:
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
        return value
    if t is list:
        return [_replace_surrogates(v) for v in value]
    if t is dict:
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value


def _json_value(data: bytes) -> Any:
    """Decode an already-checked JSON text into Rego values the way Go decodes it."""
    text = go_string(data)
    try:
        value = json.loads(text, parse_float=_parse_float)
    except RecursionError:
        raise BuiltinError("invalid JSON: exceeded max depth") from None
    if "\\u" in text:
        value = _replace_surrogates(value)
    return value


def _decode_first_value(data: bytes) -> tuple[int, int]:
    """Locate the first JSON value as ``json.Decoder.Decode`` reads it; raise Go's error text."""
    start = _skip_ws(data, 0)
    if start == len(data):
        raise BuiltinError("EOF")
    try:
        return start, _scan_value(data, start)
    except _JSONSyntaxError as exc:
        raise BuiltinError(str(exc)) from None
    except _JSONEOFError:
        raise BuiltinError("unexpected EOF") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _unmarshal_json(data: bytes) -> Any:
    """OPA's ``util.UnmarshalJSON``: decode one value, then reject a following token."""
    if b"\\u" not in data:
        # Fast path: without \u escapes (which Python's decoder reads more leniently than
        # Go), text Python accepts as one value is exactly what Go accepts.
        try:
            return json.loads(
                go_string(data), parse_float=_parse_float, parse_constant=_reject_constant
            )
        except (ValueError, RecursionError):
            pass
    start, end = _decode_first_value(data)
    i = _skip_ws(data, end)
    if i < len(data):
        c = data[i]
        if c in b"]}:,":
            raise BuiltinError(f"invalid character {_quote_char(c)} looking for beginning of value")
        if c in b"[{":
            raise BuiltinError(f"error: invalid character '{chr(c)}' after top-level value")
        _, tok_end = _decode_first_value(data[i:])
        token = data[i : i + tok_end]
        if c == 0x22:
            shown = _json_value(token)
        elif c in b"tf":
            shown = f"%!s(bool={token.decode()})"
        elif c == 0x6E:
            shown = None
        else:
            shown = token.decode()
        if shown is not None:
            raise BuiltinError(f"error: invalid character '{shown}' after top-level value")
    return _json_value(data[start:end])


def _unmarshal_error(data: bytes) -> str:
    """The error ``json.Unmarshal`` reports for text that is not exactly one JSON value."""
    try:
        end = _scan_value(data, 0)
    except _JSONSyntaxError as exc:
        return str(exc)
    except _JSONEOFError:
        return "unexpected end of JSON input"
    return f"invalid character {_quote_char(data[_skip_ws(data, end)])} after top-level value"


def _extract_json_object(data: bytes) -> dict[str, Any]:
    """OPA's ``extractJSONObject``."""
    try:
        value = _unmarshal_json(data)
    except BuiltinError as exc:
        raise BuiltinError(f"invalid JSON: {exc.message}") from None
    if type(value) is not dict:
        raise BuiltinError("decoded JSON type was not an Object")
    return value


# --- JSON as Go's json.Marshal writes it ---------------------------------------------------

_HTML_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _marshal_string(s: str) -> str:
    if any(0xD800 <= ord(c) <= 0xDFFF for c in s):
        s = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)
    return json.dumps(s, ensure_ascii=False).translate(_HTML_ESCAPES)


def _marshal_number(value: int | float) -> str:
    if type(value) is int:
        return str(value)
    if not math.isfinite(value):
        raise BuiltinError(f"json: unsupported value: {value}")
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def _marshal(value: Any) -> str:
    """``json.Marshal(ast.JSON(value))``: sets become arrays, object keys are sorted and
    non-string keys become their JSON text."""
    t = type(value)
    if value is None:
        return "null"
    if t is bool:
        return "true" if value else "false"
    if t is int or t is float:
        return _marshal_number(value)
    if t is str:
        return _marshal_string(value)
    if t is list or t is tuple or t is RegoSet:
        return "[" + ",".join(_marshal(v) for v in value) + "]"
    if t is dict:
        items = {(k if type(k) is str else encode(k)): v for k, v in value.items()}
        return (
            "{"
            + ",".join(f"{_marshal_string(k)}:{_marshal(items[k])}" for k in sorted(items))
            + "}"
        )
    raise BuiltinError(f"json: unsupported type: {t.__name__}")


# --- fastjson (how jwx reads the header of a token to sign) ------------------------------


class _FastJSONError(Exception):
    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


@dataclass
class _FJValue:
    kind: str  # object, array, string, number, true, false, null
    raw: bytes = b""
    items: list[tuple[bytes, _FJValue]] | None = None


_FJ_MAX_DEPTH = 300
_FJ_UNESCAPES = {
    0x22: b'"',
    0x5C: b"\\",
    0x2F: b"/",
    0x62: b"\b",
    0x66: b"\f",
    0x6E: b"\n",
    0x72: b"\r",
    0x74: b"\t",
}
_HEX4 = re.compile(rb"[0-9a-fA-F]{4}")


def _fj_unescape(s: bytes) -> bytes:
    """fastjson's ``unescapeStringBestEffort``."""
    n = s.find(b"\\")
    if n < 0:
        return s
    out = bytearray(s[:n])
    s = s[n + 1 :]
    while s:
        ch = s[0]
        s = s[1:]
        if ch in _FJ_UNESCAPES:
            out += _FJ_UNESCAPES[ch]
        elif ch == 0x75:
            xs = s[:4]
            if len(xs) < 4 or not _HEX4.fullmatch(xs):
                out += b"\\u"
            else:
                x = int(xs, 16)
                s = s[4:]
                if not 0xD800 <= x < 0xE000:
                    out += chr(x).encode()
                elif len(s) < 6 or s[:2] != b"\\u" or not _HEX4.fullmatch(s[2:6]):
                    out += b"\\u" + xs
                else:
                    x1 = int(s[2:6], 16)
                    if 0xD800 <= x < 0xDC00 and 0xDC00 <= x1 < 0xE000:
                        out += chr(0x10000 + ((x - 0xD800) << 10) + (x1 - 0xDC00)).encode()
                    else:
                        out += "\ufffd".encode()
                    s = s[6:]
        else:
            out += b"\\" + bytes([ch])
        n = s.find(b"\\")
        if n < 0:
            out += s
            break
        out += s[:n]
        s = s[n + 1 :]
    return bytes(out)


class _FastJSON:
    """A port of the parts of valyala/fastjson's parser that decide its error messages."""

    def __init__(self, data: bytes) -> None:
        self.b = data

    def ws(self, i: int) -> int:
        return _skip_ws(self.b, i)

    def value(self, i: int, depth: int) -> tuple[_FJValue, int]:
        b = self.b
        if i == len(b):
            raise _FastJSONError("cannot parse empty string", i)
        depth += 1
        if depth > _FJ_MAX_DEPTH:
            raise _FastJSONError(
                f"too big depth for the nested JSON; it exceeds {_FJ_MAX_DEPTH}", i
            )
        c = b[i]
        if c == 0x7B:
            return self._nested(self.obj, i, depth, "cannot parse object: ")
        if c == 0x5B:
            return self._nested(self.array, i, depth, "cannot parse array: ")
        if c == 0x22:
            try:
                raw, end = self.string(i + 1)
            except _FastJSONError as exc:
                raise _FastJSONError("cannot parse string: " + exc.message, exc.pos) from None
            return _FJValue("string", raw), end
        for word in (b"true", b"false", b"null"):
            if c == word[0]:
                if b.startswith(word, i):
                    return _FJValue(word.decode()), i + len(word)
                if c == 0x6E and b[i : i + 3].lower() == b"nan":
                    return _FJValue("number"), i + 3
                raise _FastJSONError(f"unexpected value found: {go_quote_bytes(b[i:])}", i)
        try:
            return _FJValue("number"), self.number(i)
        except _FastJSONError as exc:
            raise _FastJSONError("cannot parse number: " + exc.message, exc.pos) from None

    def _nested(
        self, parse: Callable[[int, int], tuple[_FJValue, int]], i: int, depth: int, what: str
    ) -> tuple[_FJValue, int]:
        try:
            return parse(i + 1, depth)
        except _FastJSONError as exc:
            raise _FastJSONError(what + exc.message, exc.pos) from None

    def array(self, i: int, depth: int) -> tuple[_FJValue, int]:
        b = self.b
        i = self.ws(i)
        if i == len(b):
            raise _FastJSONError("missing ']'", i)
        if b[i] == 0x5D:
            return _FJValue("array"), i + 1
        while True:
            i = self.ws(i)
            try:
                _, i = self.value(i, depth)
            except _FastJSONError as exc:
                raise _FastJSONError("cannot parse array value: " + exc.message, exc.pos) from None
            i = self.ws(i)
            if i == len(b):
                raise _FastJSONError("unexpected end of array", i)
            if b[i] == 0x2C:
                i += 1
                continue
            if b[i] == 0x5D:
                return _FJValue("array"), i + 1
            raise _FastJSONError("missing ',' after array value", i)

    def obj(self, i: int, depth: int) -> tuple[_FJValue, int]:
        b = self.b
        i = self.ws(i)
        if i == len(b):
            raise _FastJSONError("missing '}'", i)
        items: list[tuple[bytes, _FJValue]] = []
        if b[i] == 0x7D:
            return _FJValue("object", items=items), i + 1
        while True:
            i = self.ws(i)
            if i == len(b) or b[i] != 0x22:
                raise _FastJSONError('cannot find opening \'"" for object key', i)
            try:
                key, i = self.key(i + 1)
            except _FastJSONError as exc:
                raise _FastJSONError("cannot parse object key: " + exc.message, exc.pos) from None
            i = self.ws(i)
            if i == len(b) or b[i] != 0x3A:
                raise _FastJSONError("missing ':' after object key", i)
            i = self.ws(i + 1)
            try:
                value, i = self.value(i, depth)
            except _FastJSONError as exc:
                raise _FastJSONError("cannot parse object value: " + exc.message, exc.pos) from None
            items.append((key, value))
            i = self.ws(i)
            if i == len(b):
                raise _FastJSONError("unexpected end of object", i)
            if b[i] == 0x2C:
                i += 1
                continue
            if b[i] == 0x7D:
                return _FJValue("object", items=items), i + 1
            raise _FastJSONError("missing ',' after object value", i)

    def key(self, i: int) -> tuple[bytes, int]:
        b = self.b
        for j in range(i, len(b)):
            if b[j] == 0x22:
                return b[i:j], j + 1
            if b[j] == 0x5C:
                return self.string(i)
        raise _FastJSONError("missing closing '\"'", len(b))

    def string(self, i: int) -> tuple[bytes, int]:
        b = self.b
        q = b.find(b'"', i)
        if q < 0:
            raise _FastJSONError("missing closing '\"'", len(b))
        if q == i or b[q - 1] != 0x5C:
            return b[i:q], q + 1
        seg = i
        while True:
            j = q - 1
            while j > seg and b[j - 1] == 0x5C:
                j -= 1
            if (q - j) % 2 == 0:
                return b[i:q], q + 1
            seg = q + 1
            q = b.find(b'"', seg)
            if q < 0:
                raise _FastJSONError("missing closing '\"'", len(b))
            if q == seg or b[q - 1] != 0x5C:
                return b[i:q], q + 1

    def number(self, i: int) -> int:
        b = self.b
        for j in range(i, len(b)):
            ch = b[j]
            if ch in _DIGITS or ch in b".-eE+":
                continue
            if j == i or (j == i + 1 and b[i] in b"-+"):
                if b[j : j + 3].lower() in (b"inf", b"nan"):
                    return j + 3
                raise _FastJSONError(f"unexpected char: {go_quote_bytes(b[i : i + 1])}", i)
            return j
        return len(b)


def _start_end(b: bytes) -> bytes:
    return b if len(b) <= 80 else b[:40] + b"..." + b[-40:]


def _fastjson_parse(data: bytes) -> _FJValue:
    """fastjson's ``Parser.Parse``; raises BuiltinError with fastjson's message."""
    parser = _FastJSON(data)
    i = parser.ws(0)
    try:
        value, end = parser.value(i, 0)
    except _FastJSONError as exc:
        tail = go_quote_bytes(_start_end(data[exc.pos :]))
        raise BuiltinError(f"cannot parse JSON: {exc.message}; unparsed tail: {tail}") from None
    end = parser.ws(end)
    if end < len(data):
        raise BuiltinError(f"unexpected tail: {go_quote_bytes(_start_end(data[end:]))}")
    return value


def _fastjson_get(value: _FJValue, key: str) -> _FJValue | None:
    if value.kind != "object" or value.items is None:
        return None
    wanted = key.encode()
    for k, v in value.items:
        if _fj_unescape(k) == wanted:
            return v
    return None


def _header_string(header: _FJValue | BuiltinError, key: str) -> str:
    """jwsbb's ``HeaderGetString``."""
    if isinstance(header, BuiltinError):
        raise header
    value = _fastjson_get(header, key)
    if value is None:
        raise BuiltinError(f'jwsbb: header "{key}" not found')
    if value.kind != "string":
        raise BuiltinError(f"value doesn't contain string; it contains {value.kind}")
    return go_string(_fj_unescape(value.raw))


# --- keys ------------------------------------------------------------------------------------

_TOKEN_ALGORITHMS = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "HS256",
        "HS384",
        "HS512",
        "EdDSA",
    }
)

# Names jwx accepts as a key's "alg" (signature, key encryption and content encryption).
_KEY_ALGORITHMS = _TOKEN_ALGORITHMS | {
    "ES256K",
    "Ed25519",
    "none",
    "A128GCMKW",
    "A128KW",
    "A192GCMKW",
    "A192KW",
    "A256GCMKW",
    "A256KW",
    "dir",
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A192KW",
    "ECDH-ES+A256KW",
    "PBES2-HS256+A128KW",
    "PBES2-HS384+A192KW",
    "PBES2-HS512+A256KW",
    "RSA1_5",
    "RSA-OAEP",
    "RSA-OAEP-256",
    "RSA-OAEP-384",
    "RSA-OAEP-512",
    "A128CBC-HS256",
    "A128GCM",
    "A192CBC-HS384",
    "A192GCM",
    "A256CBC-HS512",
    "A256GCM",
}

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_EC_CURVES: dict[str, Callable[[], ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
_OKP_CURVES = frozenset({"Ed25519", "Ed448", "X25519", "X448"})
# Curves Go's crypto/x509 can parse keys on.
_GO_X509_CURVES = frozenset({"secp224r1", "secp256r1", "secp384r1", "secp521r1"})


def _signature_family(alg: str) -> tuple[str, Callable[[], hashes.HashAlgorithm] | None]:
    """jws algorithm → (dsig family, hash); family "" when jwx knows no such algorithm."""
    if alg in ("EdDSA", "Ed25519"):
        return "EdDSA", None
    prefix, bits = alg[:2], alg[2:]
    if bits in _HASHES and prefix in ("HS", "RS", "PS", "ES"):
        return prefix, _HASHES[bits]
    return "", None


_RAW_KIND = {
    "RSA": "rsa",
    "EC": "ecdsa",
    "OKP": "okp",
    "oct": "symmetric",
}
_VALIDATION_KIND = {
    "RSA": "RSA",
    "EC": "ECDSA",
    "OKP": "OKP",
}
_BYTE_FIELDS = {
    "RSA": ("n", "e", "d", "p", "q", "dp", "dq", "qi"),
    "EC": ("x", "y", "d"),
    "OKP": ("x", "d"),
    "oct": ("k",),
}
_REQUIRED = {
    ("RSA", True): ("d", "e", "n"),
    ("RSA", False): ("e", "n"),
    ("EC", True): ("crv", "d", "x", "y"),
    ("EC", False): ("crv", "x", "y"),
    ("OKP", True): ("crv", "d", "x"),
    ("OKP", False): ("crv", "x"),
    ("oct", False): ("k",),
}
_STRING_FIELDS = ("kid", "use", "x5t", "x5t#S256", "x5u")
_PROBE_TYPE = 'struct { Kty string "json:\\"kty\\""; D json.RawMessage "json:\\"d,omitempty\\"" }'


def _go_json_type(value: Any) -> str:
    """The JSON kind Go names in "cannot unmarshal X into ..." errors."""
    if value is None:
        return "null"
    t = type(value)
    if t is bool:
        return "bool"
    if t is int or t is float:
        return "number"
    if t is str:
        return "string"
    if t is list:
        return "array"
    return "object"


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


@dataclass(frozen=True)
class _JWK:
    """A key parsed (and validated) as jwx parses a JWK."""

    kty: str
    private: bool
    alg: str
    kid: str
    crv: str
    fields: tuple[tuple[str, bytes], ...]

    @property
    def type_name(self) -> str:
        """jwx's Go type name for the key, as printed with ``%T``."""
        kind = _RAW_KIND[self.kty]
        if self.kty == "oct":
            return "*jwk.symmetricKey"
        return f"*jwk.{kind}{'Private' if self.private else 'Public'}Key"

    def field(self, name: str) -> bytes | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None

    @functools.cached_property
    def raw_key(self) -> Any:
        """``jwk.Export``: the raw key (cryptography object, or bytes for ``oct``).

        Cached on the (immutable) key, as building and checking an RSA key is costly.
        """
        try:
            return self._export()
        except BuiltinError as exc:
            raise BuiltinError(
                f"jwk.Export: failed to export jwk.Key to raw format: {exc.message}"
            ) from None

    def _export(self) -> Any:
        if self.kty == "oct":
            return self.field("k")
        if self.kty == "RSA":
            return self._export_rsa()
        if self.kty == "EC":
            return _ec_public(self)[1] if not self.private else _ec_private(self)
        return _okp_key(self)

    def _export_rsa(self) -> Any:
        n, e = self.field("n"), self.field("e")
        if not self.private:
            return _rsa_public(_int(n or b""), _int(e or b""))
        values = {name: self.field(name) for name in ("d", "q", "p", "n", "e")}
        for name, value in values.items():
            if not value:
                raise BuiltinError(f'missing "{name}" value')
        p, q, d = _int(values["p"] or b""), _int(values["q"] or b""), _int(values["d"] or b"")
        n_int, e_int = _int(values["n"] or b""), _int(values["e"] or b"")
        public = _rsa_public(n_int, e_int)
        problem = _go_rsa_private_key_problem(n_int, e_int, d, p, q)
        if problem:
            # Go exports such a key and only fails when signing with it.
            return _UnusableRSAKey(public, problem)
        # Go recomputes the CRT values from d, p and q, ignoring "dp", "dq" and "qi".
        numbers = rsa.RSAPrivateNumbers(
            p,
            q,
            d,
            rsa.rsa_crt_dmp1(d, p),
            rsa.rsa_crt_dmq1(d, q),
            rsa.rsa_crt_iqmp(p, q),
            public.public_numbers(),
        )
        try:
            return numbers.private_key(unsafe_skip_rsa_key_validation=True)
        except (ValueError, UnsupportedAlgorithm):
            return _UnusableRSAKey(public, "crypto/rsa: invalid private key")


@dataclass(frozen=True)
class _UnusableRSAKey:
    """An RSA private key Go accepts from a JWK but refuses to sign with."""

    public: rsa.RSAPublicKey
    problem: str

    @property
    def key_size(self) -> int:
        return self.public.key_size


def _go_rsa_private_key_problem(n: int, e: int, d: int, p: int, q: int) -> str:
    """The consistency checks Go's crypto/rsa makes before signing; "" when the key is fine."""
    if n % 2 == 0:
        return "crypto/rsa: public modulus is even"
    if e < 2:
        return "crypto/rsa: public exponent too small or negative"
    if p >= n or q >= n or p < 2 or q < 2:
        return "crypto/rsa: invalid prime"
    if (p * q) % n:
        return "crypto/rsa: p * q != n"
    for prime in (p, q):
        if (e * (d % (prime - 1))) % (prime - 1) != 1:
            return "crypto/rsa: invalid CRT exponent"
    return ""


def _rsa_public(n: int, e: int) -> rsa.RSAPublicKey:
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise BuiltinError("invalid rsa.PublicKey: crypto/rsa: invalid public key") from None


def _ec_public(jwk: _JWK) -> tuple[ec.EllipticCurve, ec.EllipticCurvePublicKey]:
    curve = _EC_CURVES[jwk.crv]()
    x, y = _int(jwk.field("x") or b""), _int(jwk.field("y") or b"")
    try:
        return curve, ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    except ValueError:
        raise BuiltinError("invalid ECDSA public key: crypto/ecdh: invalid public key") from None


def _ec_private(jwk: _JWK) -> ec.EllipticCurvePrivateKey:
    curve, _ = _ec_public(jwk)
    try:
        return ec.derive_private_key(_int(jwk.field("d") or b""), curve)
    except ValueError:
        raise BuiltinError("invalid ecdsa.PrivateKey") from None


def _okp_key(jwk: _JWK) -> Any:
    try:
        return _build_okp_key(jwk)
    except BuiltinError as exc:
        which = "private" if jwk.private else "public"
        raise BuiltinError(
            f"jwk.OKP{which.capitalize()}Key: failed to build {which} key: {exc.message}"
        ) from None


def _build_okp_key(jwk: _JWK) -> Any:
    x, d = jwk.field("x") or b"", jwk.field("d")
    if jwk.crv == "Ed25519":
        if d is None:
            return ed25519.Ed25519PublicKey.from_public_bytes(x)
        key = ed25519.Ed25519PrivateKey.from_private_bytes(d)
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        if raw != x:
            raise BuiltinError("ed25519: invalid x value given d value")
        return key
    if jwk.crv == "X25519":
        if d is None:
            return x25519.X25519PublicKey.from_public_bytes(x)
        return x25519.X25519PrivateKey.from_private_bytes(d)
    raise BuiltinError(f"invalid curve algorithm {jwk.crv}")


def _validate_jwk(jwk: _JWK) -> None:
    """jwx's ``Key.Validate``; raises the bare reason."""
    if jwk.kty == "oct":
        if not jwk.field("k"):
            raise BuiltinError('missing "k" field')
        return
    if jwk.kty == "RSA":
        n = (jwk.field("n") or b"").lstrip(b"\x00")
        if not n:
            raise BuiltinError('missing "n" value')
        e = (jwk.field("e") or b"").lstrip(b"\x00")
        if not e:
            raise BuiltinError('missing "e" value')
        exponent = _int(e)
        if exponent % 2 == 0:
            raise BuiltinError("invalid rsa public exponent: must be a positive odd integer")
        if exponent.bit_length() >= 64:
            raise BuiltinError(
                "rsa public exponent too large for this platform: "
                f"{exponent.bit_length()} bits (max 63)"
            )
        if jwk.private and not jwk.field("d"):
            raise BuiltinError('missing "d" value')
        return
    if jwk.kty == "EC":
        if jwk.crv not in _EC_CURVES:
            raise BuiltinError(
                f'invalid curve algorithm "{jwk.crv}": '
                f'unknown elliptic curve algorithm: "{jwk.crv}"'
            )
        curve = _EC_CURVES[jwk.crv]()
        size = (curve.key_size + 7) // 8
        for name in ("x", "y"):
            value = jwk.field(name) or b""
            if len(value) != size:
                raise BuiltinError(f'invalid "{name}" length ({len(value)}) for curve "{jwk.crv}"')
        x, y = _int(jwk.field("x") or b""), _int(jwk.field("y") or b"")
        if x == 0 and y == 0:
            raise BuiltinError("invalid ECDSA public key: identity point is not a valid public key")
        for name, coordinate in (("x", x), ("y", y)):
            if coordinate.bit_length() > curve.key_size:
                raise BuiltinError(
                    f"invalid ECDSA public key: {name} coordinate is {coordinate.bit_length()} "
                    f'bits, exceeds curve "{jwk.crv}" field size of {curve.key_size} bits'
                )
        _ec_public(jwk)
        if jwk.private:
            d = jwk.field("d") or b""
            if len(d) != size:
                raise BuiltinError(f'invalid "d" length ({len(d)}) for curve "{jwk.crv}"')
        return
    x = jwk.field("x")
    if not x:
        raise BuiltinError('missing "x" field')
    sizes = {"Ed25519": ("ed25519", 32), "X25519": ("x25519", 32)}
    if jwk.crv in sizes:
        name, size = sizes[jwk.crv]
        if len(x) != size:
            raise BuiltinError(f"{name}: wrong public key size")
    if jwk.private:
        d = jwk.field("d")
        if not d:
            raise BuiltinError('missing "d" field')
        if jwk.crv in sizes and len(d) != sizes[jwk.crv][1]:
            raise BuiltinError(f"{sizes[jwk.crv][0]}: wrong private key size")


def _parse_jwk(value: Any) -> _JWK:
    """jwx's ``jwk.ParseKey`` for one decoded JSON value; errors carry its wording."""
    if value is not None and type(value) is not dict:
        raise BuiltinError(
            "jwk.ParseKey: jwk.Parse: failed to probe data: probe: failed to unmarshal data: "
            f"json: cannot unmarshal {_go_json_type(value)} into Go value of type {_PROBE_TYPE}"
        )
    obj: dict[str, Any] = value or {}
    kty = obj.get("kty")
    if kty is not None and type(kty) is not str:
        raise BuiltinError(
            "jwk.ParseKey: jwk.Parse: failed to probe data: probe: failed to unmarshal data: "
            f"json: cannot unmarshal {_go_json_type(kty)} into Go struct field .kty of type string"
        )
    kty = kty or ""
    if kty not in _RAW_KIND:
        raise BuiltinError(f"jwk.ParseKey: invalid key type from JSON ({kty})")
    private = kty != "oct" and "d" in obj
    probe = _JWK(kty, private, "", "", "", ())
    where = f"failed to unmarshal JSON into key ({probe.type_name})"

    def fail(reason: str) -> BuiltinError:
        return BuiltinError(f"jwk.ParseKey: {where}: {where}: {reason}")

    fields: list[tuple[str, bytes]] = []
    alg = kid = crv = ""
    for name, raw_item in obj.items():
        if name == "kty":
            continue
        # Go decodes null into a string as "".
        item = "" if raw_item is None else raw_item
        if name in _BYTE_FIELDS[kty]:
            if type(item) is not str:
                raise fail(
                    f"failed to decode value for key {name}: error reading next value: "
                    f"json: cannot unmarshal {_go_json_type(item)} into Go value of type string"
                )
            decoded = _jwx_b64decode(item)
            if decoded is None:
                raise fail(
                    f"failed to decode value for key {name}: expected base64 encoded []byte "
                    "(string)"
                )
            fields.append((name, decoded))
        elif name == "alg" or name in _STRING_FIELDS or (name == "crv" and kty in ("EC", "OKP")):
            if type(item) is not str:
                prefix = "" if name == "alg" else "error reading next value: "
                raise fail(
                    f"failed to decode value for key {name}: {prefix}json: cannot unmarshal "
                    f"{_go_json_type(item)} into Go value of type string"
                )
            if name == "alg":
                if item not in _KEY_ALGORITHMS:
                    shown = item if len(item) <= 64 else item[:64] + "..."
                    raise fail(
                        f"failed to decode value for key alg: invalid key value: "
                        f"{go_quote_bytes(go_bytes(shown))}: invalid key algorithm"
                    )
                alg = item
            elif name == "kid":
                kid = item
            elif name == "crv":
                if item not in _EC_CURVES and item not in _OKP_CURVES:
                    raise fail(
                        f"failed to decode value for key crv: unknown EllipticCurveAlgorithm: "
                        f"{go_quote_bytes(go_bytes(item))}"
                    )
                crv = item
    present = {name for name, _ in fields} | ({"crv"} if crv else set())
    for name in _REQUIRED[(kty, private)]:
        if name not in present:
            raise fail(f"required field {name} is missing")
    jwk = _JWK(kty, private, alg, kid, crv, tuple(fields))
    try:
        _validate_jwk(jwk)
    except BuiltinError as exc:
        kind = (
            "SymmetricKey"
            if kty == "oct"
            else f"{_VALIDATION_KIND[kty]}{'Private' if private else 'Public'}Key"
        )
        raise BuiltinError(
            "jwk.ParseKey: jwk.Parse: key validation failed: key validation failed: "
            f"jwk.{kind}: {exc.message}"
        ) from None
    return jwk


@functools.lru_cache(maxsize=100)
def _parse_jwk_set(data: bytes) -> tuple[_JWK, ...]:
    """jwx's ``jwk.Parse``: a JWK set (``{"keys": [...]}``) or a single JWK.

    Cached by source text: policies sign and verify with the same few keys.
    """
    try:
        header: _FJValue | None = _fastjson_parse(data)
    except BuiltinError:
        header = None
    if header is not None and _fastjson_get(header, "keys") is not None:
        if not _json_valid(data):
            raise BuiltinError(f"jwk.Parse: failed to unmarshal JWK set: {_unmarshal_error(data)}")
        keys = _json_value(data)["keys"]
        if type(keys) is not list:
            shown = {"object": "{", "null": "<nil>"}.get(_go_json_type(keys), str(keys))
            raise BuiltinError(
                f'jwk.Parse: failed to unmarshal JWK set: failed to decode "keys": '
                f"expected '[' but got {shown}"
            )
        result: list[_JWK] = []
        for index, item in enumerate(keys):
            try:
                result.append(_parse_jwk(item))
            except BuiltinError as exc:
                raise BuiltinError(
                    "jwk.Parse: failed to unmarshal JWK set: "
                    f'failed to decode key #{index} in "keys": {exc.message}'
                ) from None
        return tuple(result)
    try:
        start, end = _decode_first_value(data)
    except BuiltinError as exc:
        raise BuiltinError(
            "jwk.Parse: failed to parse sole key: jwk.ParseKey: jwk.Parse: failed to probe "
            f"data: probe: failed to unmarshal data: {exc.message}"
        ) from None
    try:
        return (_parse_jwk(_json_value(data[start:end])),)
    except BuiltinError as exc:
        raise BuiltinError(f"jwk.Parse: failed to parse sole key: {exc.message}") from None


@dataclass(frozen=True)
class _VerificationKey:
    alg: str
    kid: str
    key: Any


def _check_go_curve(key: Any, what: str) -> Any:
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _GO_X509_CURVES:
        raise BuiltinError(f"{what}: x509: unsupported elliptic curve")
    return key


@functools.lru_cache(maxsize=100)
def _keys_from_cert_or_jwk(certificate: str) -> tuple[_VerificationKey, ...]:
    """OPA's ``parseKeysFromCertOrJWK``: a PEM certificate or public key, a JWK, or a JWKS.

    Cached like OPA's ``io_jwt_keys`` cache: the result depends only on the string.
    """
    data = go_bytes(certificate)
    block, rest = pem_decode(data)
    if block is not None:
        block_type, der = block.type, block.bytes
        if rest:
            raise BuiltinError("extra data after a PEM certificate block")
        if block_type == "CERTIFICATE":
            what = "failed to parse a PEM certificate"
            try:
                cert = x509.load_der_x509_certificate(der)
            except ValueError:
                raise BuiltinError(f"{what}: x509: malformed certificate") from None
            try:
                key = cert.public_key()
            except (ValueError, UnsupportedAlgorithm):
                key = None
            return (_VerificationKey("", "", _check_go_curve(key, what)),)
        if block_type == "PUBLIC KEY":
            what = "failed to parse a PEM public key"
            try:
                key = serialization.load_der_public_key(der)
            except (ValueError, UnsupportedAlgorithm):
                raise BuiltinError(f"{what}: x509: malformed public key") from None
            return (_VerificationKey("", "", _check_go_curve(key, what)),)
        raise BuiltinError("failed to extract a Key from the PEM certificate")
    try:
        jwks = _parse_jwk_set(data)
    except BuiltinError as exc:
        raise BuiltinError(
            "failed to parse a JWK key (set): jwk.ParseString: failed to parse string: "
            + exc.message
        ) from None
    keys = []
    for jwk in jwks:
        key = jwk.raw_key
        if jwk.alg and jwk.alg not in _TOKEN_ALGORITHMS:
            continue
        keys.append(_VerificationKey(jwk.alg, jwk.kid, key))
    return tuple(keys)


# --- signatures ------------------------------------------------------------------------------


def _public(key: Any) -> Any:
    """The public half of a private key (jwx verifies with either)."""
    if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        return key.public_key()
    if isinstance(key, _UnusableRSAKey):
        return key.public
    return key


def _rsa_verify(
    key: rsa.RSAPublicKey, message: bytes, signature: bytes, pad: padding.AsymmetricPadding, h: Any
) -> bool:
    # Go refuses RSA keys under 1024 bits (GODEBUG rsa1024min) even for verification.
    if key.key_size < 1024:
        return False
    try:
        key.verify(signature, message, pad, h)
    except (InvalidSignature, ValueError):
        return False
    return True


def _ecdsa_verify(
    key: ec.EllipticCurvePublicKey, message: bytes, r: int, s: int, h: hashes.HashAlgorithm
) -> bool:
    try:
        key.verify(utils.encode_dss_signature(r, s), message, ec.ECDSA(h))
    except (InvalidSignature, ValueError):
        return False
    return True


def _ed25519_verify(key: ed25519.Ed25519PublicKey, message: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _jws_verify(key: Any, alg: str, message: bytes, signature: bytes) -> bool:
    """jwsbb's ``Verify``: check ``signature`` with ``key`` under the token's ``alg``."""
    family, hash_factory = _signature_family(alg)
    if family == "HS":
        if not isinstance(key, bytes) or not key or hash_factory is None:
            return False
        digest = getattr(hashlib, hash_factory.name)
        return hmac.compare_digest(hmac.new(key, message, digest).digest(), signature)
    key = _public(key)
    if family in ("RS", "PS") and isinstance(key, rsa.RSAPublicKey) and hash_factory:
        h = hash_factory()
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if family == "RS"
            else padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
        )
        return _rsa_verify(key, message, signature, pad, h)
    if family == "ES" and isinstance(key, ec.EllipticCurvePublicKey) and hash_factory:
        size = (key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            return False
        r, s = _int(signature[:size]), _int(signature[size:])
        return _ecdsa_verify(key, message, r, s, hash_factory())
    if family == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
        return _ed25519_verify(key, message, signature)
    return False


_SIGN_TARGETS = {
    "HS": ("[]byte", "keyconv: failed to produce []byte from"),
    "RS": ("*rsa.PrivateKey", "failed to produce rsa.PrivateKey from"),
    "PS": ("*rsa.PrivateKey", "failed to produce rsa.PrivateKey from"),
    "ES": ("*ecdsa.PrivateKey", "keyconv: failed to produce ecdsa.PrivateKey from"),
    "EdDSA": ("ed25519.PrivateKey", "failed to produce ed25519.PrivateKey from"),
}
_SIGN_KEY_TYPES = {"HS": "oct", "RS": "RSA", "PS": "RSA", "ES": "EC", "EdDSA": "OKP"}


def _jws_sign(jwk: _JWK, alg: str, message: bytes) -> bytes:
    """jwsbb's ``Sign`` with a jwx key, including its key-conversion error messages."""
    family, hash_factory = _signature_family(alg)
    required, conversion = _SIGN_TARGETS[family]
    name = jwk.type_name

    def unusable(reason: str) -> BuiltinError:
        return BuiltinError(
            f"jwsbb.Sign: invalid key type {name}. {required} is required: "
            f"{conversion} {name}: {reason}"
        )

    if jwk.kty == "OKP" and family == "EdDSA" and not jwk.private:
        wanted = "ed25519.PublicKey" if jwk.crv == "Ed25519" else "*ecdh.PublicKey"
        raise unusable(
            "jwk.Export: failed to assign key: argument to AssignIfCompatible() must be "
            f"compatible with {wanted} (was *ed25519.PrivateKey)"
        )
    if jwk.kty != _SIGN_KEY_TYPES[family] or (family != "HS" and not jwk.private):
        raise unusable(f"jwk.Export: no suitable exporter found for key type '{name}'")
    try:
        key = jwk.raw_key
    except BuiltinError as exc:
        raise unusable(exc.message) from None
    if family == "HS":
        assert hash_factory is not None
        return hmac.new(key, message, getattr(hashlib, hash_factory.name)).digest()
    if family in ("RS", "PS"):
        assert hash_factory is not None
        if key.key_size < 1024:
            raise BuiltinError(
                f"crypto/rsa: {key.key_size}-bit keys are insecure "
                "(see https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size)"
            )
        if isinstance(key, _UnusableRSAKey):
            raise BuiltinError(key.problem)
        h = hash_factory()
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if family == "RS"
            else padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
        )
        return key.sign(message, pad, h)
    if family == "ES":
        assert hash_factory is not None
        r, s = utils.decode_dss_signature(key.sign(message, ec.ECDSA(hash_factory())))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise unusable(
            "jwk.Export: failed to assign key: argument to AssignIfCompatible() must be "
            "compatible with *ecdh.PrivateKey (was *ed25519.PrivateKey)"
        )
    return key.sign(message)


# --- tokens ----------------------------------------------------------------------------------


@dataclass
class _Token:
    header: bytes
    payload: bytes
    signature: bytes
    decoded_header: dict[str, Any] | None = None

    @property
    def signing_input(self) -> bytes:
        return self.header + b"." + self.payload

    def decode_header(self) -> dict[str, Any]:
        try:
            raw = _b64url_decode(self.header)
        except BuiltinError as exc:
            raise BuiltinError(f"JWT header had invalid encoding: {exc.message}") from None
        try:
            header = _extract_json_object(raw)
        except BuiltinError as exc:
            raise BuiltinError(f"bad JWT header: {exc.message}") from None
        if "enc" in header:
            raise BuiltinError("JWT is a JWE object, which is not supported")
        self.decoded_header = header
        return header

    def decode_signature(self) -> bytes:
        return _b64url_decode(self.signature)


def _split_token(data: bytes) -> _Token:
    """OPA's ``decodeJWT``: three dot-separated sections."""
    if b"." not in data:
        raise BuiltinError("encoded JWT had no period separators")
    parts = data.split(b".")
    if len(parts) != 3:
        raise BuiltinError(f"encoded JWT must have 3 sections, found {len(parts)}")
    return _Token(parts[0], parts[1], parts[2])


def _token_arg(value: Any) -> _Token:
    return _split_token(go_bytes(string_arg(value, 1)))


_GO_AST_TYPES = {
    "null": "ast.Null",
    "boolean": "ast.Boolean",
    "number": "ast.Number",
    "string": "ast.String",
    "array": "*ast.Array",
    "object": "*ast.object",
}


def _as_string(value: Any) -> str:
    """Go's unchecked ``.(ast.String)`` assertion: OPA panics on anything else."""
    if type(value) is str:
        return value
    kind = _GO_AST_TYPES[_go_json_type(value).replace("bool", "boolean")]
    raise BuiltinError(f"interface conversion: ast.Value is {kind}, not ast.String")


@dataclass
class _Header:
    alg: str = ""
    kid: str = ""
    typ: str = ""
    cty: str = ""
    crit: frozenset[str] | None = None
    unknown: tuple[str, ...] = ()

    def valid(self) -> bool:
        """RFC 7515: ``alg`` is required and every critical parameter must be understood."""
        if not self.alg:
            return False
        return not (self.crit and any(u in self.crit for u in self.unknown))


def _parse_header(header: dict[str, Any]) -> _Header:
    """OPA's ``parseTokenHeader`` (keys visited in Rego's sorted order)."""
    parsed = _Header()
    unknown = []
    for key in sorted(header):
        value = header[key]
        if key in ("alg", "kid", "typ", "cty"):
            if type(value) is not str:
                raise BuiltinError(f"{key}: must be a string")
            setattr(parsed, key, value)
        elif key == "crit":
            if type(value) is not list:
                raise BuiltinError("crit: must be a list")
            crit = frozenset(v for v in value if type(v) is str)
            if not crit:
                raise BuiltinError("crit: must be a nonempty list")
            parsed.crit = crit
        else:
            unknown.append(key)
    parsed.unknown = tuple(unknown)
    return parsed


# --- builtins --------------------------------------------------------------------------------


def _decode(data: bytes) -> list[Any]:
    token = _split_token(data)
    header = token.decode_header()
    try:
        payload_raw = _b64url_decode(token.payload)
    except BuiltinError as exc:
        raise BuiltinError(f"JWT payload had invalid encoding: {exc.message}") from None
    if "cty" in header and _as_string(header["cty"]) == "JWT":
        return _decode(payload_raw.strip(b"\"'"))
    payload = _extract_json_object(payload_raw)
    try:
        signature = _b64url_decode(token.signature)
    except BuiltinError as exc:
        raise BuiltinError(f"JWT signature had invalid encoding: {exc.message}") from None
    return [header, payload, signature.hex()]


def jwt_decode(ctx: EvalContext, jwt: Any) -> list[Any]:
    """Decodes a JSON Web Token and outputs it as an object."""
    return _decode(go_bytes(string_arg(jwt, 1)))


def _verify_with_keys(
    jwt: Any, certificate: Any, check: Callable[[Any, bytes, bytes], bool]
) -> bool:
    """OPA's ``builtinJWTVerify``: try the key matching the token's ``kid``, else each key."""
    token = _token_arg(jwt)
    keys = _keys_from_cert_or_jwk(string_arg(certificate, 2))
    signature = token.decode_signature()
    header = _parse_header(token.decode_header())
    message = token.signing_input
    if header.kid:
        for key in keys:
            if key.kid == header.kid:
                return check(key.key, message, signature)
    for key in keys:
        if key.alg and key.alg != header.alg:
            continue
        if check(key.key, message, signature):
            return True
    return False


def _rsa_checker(pss: bool, hash_factory: Callable[[], hashes.HashAlgorithm]) -> Any:
    def check(key: Any, message: bytes, signature: bytes) -> bool:
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        h = hash_factory()
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(h), salt_length=padding.PSS.AUTO)
            if pss
            else padding.PKCS1v15()
        )
        return _rsa_verify(key, message, signature, pad, h)

    return check


def _ecdsa_checker(hash_factory: Callable[[], hashes.HashAlgorithm]) -> Any:
    def check(key: Any, message: bytes, signature: bytes) -> bool:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return False
        half = len(signature) // 2
        r, s = _int(signature[:half]), _int(signature[half:])
        return _ecdsa_verify(key, message, r, s, hash_factory())

    return check


def _eddsa_check(key: Any, message: bytes, signature: bytes) -> bool:
    return isinstance(key, ed25519.Ed25519PublicKey) and _ed25519_verify(key, message, signature)


def _verifier(check: Callable[[Any, bytes, bytes], bool], doc: str) -> Callable[..., bool]:
    def verify(ctx: EvalContext, jwt: Any, certificate: Any) -> bool:
        return _verify_with_keys(jwt, certificate, check)

    verify.__doc__ = doc
    return verify


def _hmac_verifier(digest: str, doc: str) -> Callable[..., bool]:
    def verify(ctx: EvalContext, jwt: Any, secret: Any) -> bool:
        data = go_bytes(string_arg(jwt, 1))
        key = go_bytes(string_arg(secret, 2))
        token = _split_token(data)
        mac = hmac.new(key, token.signing_input, getattr(hashlib, digest)).digest()
        return hmac.compare_digest(token.decode_signature(), mac)

    verify.__doc__ = doc
    return verify


@dataclass
class _Constraints:
    keys: tuple[_VerificationKey, ...] | None = None
    secret: str = ""
    alg: str = ""
    iss: str = ""
    aud: str = ""
    time: float = -1.0

    def verify(self, kid: str, alg: str, message: bytes, signature: bytes) -> bool:
        if self.keys is not None:
            if kid:
                for key in self.keys:
                    if key.kid == kid:
                        return _jws_verify(key.key, alg, message, signature)
            return any(
                _jws_verify(key.key, alg, message, signature)
                for key in self.keys
                if not key.alg or key.alg == alg
            )
        return _jws_verify(go_bytes(self.secret), alg, message, signature)

    def valid_audience(self, aud: Any) -> bool:
        if type(aud) is str:
            return aud == self.aud
        if type(aud) is list:
            return any(type(a) is str and a == self.aud for a in aud)
        return False


def _time_value(value: Any) -> float:
    if type(value) not in (int, float):
        raise BuiltinError("token time constraint: must be a number")
    try:
        seconds = float(value)
    except OverflowError:
        raise BuiltinError("token time constraint: unvalid float64") from None
    if seconds < 0:
        raise BuiltinError("token time constraint: must not be negative")
    return seconds


def _parse_constraints(ctx: EvalContext, obj: dict[Any, Any]) -> _Constraints:
    constraints = _Constraints()
    for name in sorted(obj, key=sort_key):
        value = obj[name]
        if name == "cert":
            if type(value) is not str:
                raise BuiltinError("cert constraint: must be a string")
            constraints.keys = _keys_from_cert_or_jwk(value)
        elif name in ("secret", "alg", "iss", "aud"):
            if type(value) is not str:
                raise BuiltinError(f"{name} constraint: must be a string")
            setattr(constraints, name, value)
        elif name == "time":
            constraints.time = _time_value(value)
        else:
            raise BuiltinError(f"unknown token validation constraint: {_as_string(name)}")
    if constraints.time == -1:
        constraints.time = _time_value(ctx.now_ns)
    keys = (constraints.keys is not None) + (constraints.secret != "")
    if keys > 1:
        raise BuiltinError("duplicate key constraints")
    if keys < 1:
        raise BuiltinError("no key constraint")
    return constraints


def _exact(number: int | float) -> Decimal:
    return Decimal(number) if type(number) is int else Decimal(repr(number))


def jwt_decode_verify(ctx: EvalContext, jwt: Any, constraints: Any) -> list[Any]:
    """Verifies a JWT signature under parameterized constraints and decodes the claims."""
    options = _parse_constraints(ctx, object_arg(constraints, 2))
    unverified: list[Any] = [False, {}, {}]
    data = go_bytes(string_arg(jwt, 1))
    while True:
        token = _split_token(data)
        header = _parse_header(token.decode_header())
        if not header.valid():
            return unverified
        if options.alg and options.alg != header.alg:
            return unverified
        signature = token.decode_signature()
        if not options.verify(header.kid, header.alg, token.signing_input, signature):
            return unverified
        try:
            payload_raw = _b64url_decode(token.payload)
        except BuiltinError as exc:
            raise BuiltinError(f"JWT payload had invalid encoding: {exc.message}") from None
        if header.cty.upper() != "JWT":
            break
        data = payload_raw
    payload = _extract_json_object(payload_raw)
    if options.iss and ("iss" not in payload or _as_string(payload["iss"]) != options.iss):
        return unverified
    if "aud" in payload:
        if not options.valid_audience(payload["aud"]):
            return unverified
    elif options.aud:
        return unverified
    now = _exact(options.time / 1e9)
    if "exp" in payload:
        exp = payload["exp"]
        if type(exp) not in (int, float):
            raise BuiltinError("exp value must be a number")
        if now >= _exact(exp):
            return unverified
    if "nbf" in payload:
        nbf = payload["nbf"]
        if type(nbf) not in (int, float):
            raise BuiltinError("nbf value must be a number")
        if now < _exact(nbf):
            return unverified
    return [True, token.decoded_header, payload]


def _encode_sign(headers: bytes, payload: bytes, key_source: bytes) -> str:
    """OPA's ``commonBuiltinJWTEncodeSign``."""
    keys = _parse_jwk_set(key_source)
    if not keys:
        raise BuiltinError("no keys found in JWK set")
    try:
        parsed: _FJValue | BuiltinError = _fastjson_parse(headers)
    except BuiltinError as exc:
        parsed = exc
    try:
        alg = _header_string(parsed, "alg")
    except BuiltinError as exc:
        raise BuiltinError(f"missing or invalid 'alg' header: {exc.message}") from None
    if alg not in _TOKEN_ALGORITHMS:
        raise BuiltinError(f"unknown JWS algorithm: {alg}")
    try:
        is_jwt = _header_string(parsed, "typ") == "JWT"
    except BuiltinError:
        is_jwt = True
    if is_jwt and not _json_valid(payload):
        raise BuiltinError("type is JWT but payload is not JSON")
    message = _b64url_encode(headers) + b"." + _b64url_encode(payload)
    signature = _jws_sign(keys[0], alg, message)
    return (message + b"." + _b64url_encode(signature)).decode()


def jwt_encode_sign(ctx: EvalContext, headers: Any, payload: Any, key: Any) -> str:
    """Encodes and optionally signs a JSON Web Token from objects."""
    return _encode_sign(
        _marshal(headers).encode(), _marshal(payload).encode(), _marshal(key).encode()
    )


def jwt_encode_sign_raw(ctx: EvalContext, headers: Any, payload: Any, key: Any) -> str:
    """Encodes and optionally signs a JSON Web Token from JSON strings."""
    key_source = go_bytes(string_arg(key, 3))
    header_bytes = go_bytes(string_arg(headers, 1))
    return _encode_sign(header_bytes, go_bytes(string_arg(payload, 2)), key_source)


def _specs() -> Iterator[BuiltinSpec]:
    for bits, h in (("256", hashes.SHA256), ("384", hashes.SHA384), ("512", hashes.SHA512)):
        yield BuiltinSpec(
            f"io.jwt.verify_rs{bits}",
            _verifier(_rsa_checker(False, h), f"Verifies an RS{bits} JWT signature."),
        )
        yield BuiltinSpec(
            f"io.jwt.verify_ps{bits}",
            _verifier(_rsa_checker(True, h), f"Verifies a PS{bits} JWT signature."),
        )
        yield BuiltinSpec(
            f"io.jwt.verify_es{bits}",
            _verifier(_ecdsa_checker(h), f"Verifies an ES{bits} JWT signature."),
        )
        yield BuiltinSpec(
            f"io.jwt.verify_hs{bits}",
            _hmac_verifier(f"sha{bits}", f"Verifies an HS{bits} JWT signature."),
        )


BUILTINS = (
    BuiltinSpec("io.jwt.decode", jwt_decode),
    BuiltinSpec("io.jwt.decode_verify", jwt_decode_verify, deterministic=False),
    BuiltinSpec("io.jwt.encode_sign", jwt_encode_sign, deterministic=False),
    BuiltinSpec("io.jwt.encode_sign_raw", jwt_encode_sign_raw, deterministic=False),
    BuiltinSpec("io.jwt.verify_eddsa", _verifier(_eddsa_check, "Verifies an EdDSA JWT signature.")),
    *_specs(),
)
