"""Hex, base64url, URL-query and URI builtins, with Go's byte-level semantics.

OPA runs these on the UTF-8 bytes of a string and may produce byte strings that are not
valid UTF-8 (``hex.decode("ff")``); such strings reach the caller through JSON, where Go
turns every invalid byte into U+FFFD (:mod:`pdp.builtins._golang`). The URL code is Go's
``net/url`` (:mod:`pdp.builtins._gourl`), so that results and error messages agree with OPA.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from pdp.builtins._golang import go_bytes, go_is_print, go_string
from pdp.builtins._gourl import (
    QUERY_COMPONENT,
    URLError,
    escape,
    unescape,
    url_parse,
    valid_optional_port,
)
from pdp.builtins.base import (
    BuiltinError,
    BuiltinSpec,
    EvalContext,
    OperandError,
    operand_type_error,
    string_arg,
)
from pdp.values import RegoSet, encode, to_json_compatible

__all__ = ["BUILTINS", "go_lower"]


# --- Go string helpers -------------------------------------------------------------------


def go_lower(s: str) -> str:
    """Go's ``strings.ToLower``: rune by rune, without Python's context-dependent rules."""
    if s.isascii():
        return s.lower()
    out = []
    for ch in s:
        low = ch.lower()
        # U+0130 is the one rune whose Python lowering grows; Go maps it to plain 'i'.
        out.append(low if len(low) == 1 else "i")
    return "".join(out)


# --- hex and base64url -------------------------------------------------------------------

_HEX_VALUES = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}


def _hex_byte_error(byte: int) -> BuiltinError:
    ch = chr(byte)
    shown = f" '{ch}'" if go_is_print(ch) else ""
    return BuiltinError(f"encoding/hex: invalid byte: U+{byte:04X}{shown}")


def hex_encode(ctx: EvalContext, x: Any) -> str:
    """Serializes the input string using hex-encoding."""
    return go_bytes(string_arg(x, 1)).hex()


def hex_decode(ctx: EvalContext, x: Any) -> str:
    """Deserializes the hex-encoded input string."""
    data = go_bytes(string_arg(x, 1))
    out = bytearray()
    # Pairs are checked left to right, so a bad character wins over an odd length.
    for i in range(0, len(data) - 1, 2):
        hi, lo = _HEX_VALUES.get(data[i]), _HEX_VALUES.get(data[i + 1])
        if hi is None:
            raise _hex_byte_error(data[i])
        if lo is None:
            raise _hex_byte_error(data[i + 1])
        out.append(hi << 4 | lo)
    if len(data) % 2:
        if data[-1] not in _HEX_VALUES:
            raise _hex_byte_error(data[-1])
        raise BuiltinError("encoding/hex: odd length hex string")
    return go_string(bytes(out))


def base64url_encode_no_pad(ctx: EvalContext, x: Any) -> str:
    """Serializes the input string into base64url encoding without padding."""
    return base64.urlsafe_b64encode(go_bytes(string_arg(x, 1))).rstrip(b"=").decode("ascii")


# --- urlquery and uri ---------------------------------------------------------------------


def urlquery_encode(ctx: EvalContext, x: Any) -> str:
    """Encodes the input string into a URL-encoded query component."""
    return escape(go_bytes(string_arg(x, 1)), QUERY_COMPONENT).decode("ascii")


def urlquery_decode(ctx: EvalContext, x: Any) -> str:
    """Decodes a URL-encoded query component."""
    try:
        return go_string(unescape(go_bytes(string_arg(x, 1)), QUERY_COMPONENT))
    except URLError as exc:
        raise BuiltinError(str(exc)) from None


def _go_json_key(key: Any) -> str:
    """A non-string object key as Go's ``json.Encoder`` writes it (HTML characters escaped)."""
    if type(key) in (int, float):
        return encode(key)
    text = json.dumps(to_json_compatible(key), ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


_ENCODE_OBJECT_ERROR = "operand 1 values must be string, array[string], or set[string]"


def urlquery_encode_object(ctx: EvalContext, obj: Any) -> str:
    """Encodes the given object into a URL-encoded query string, keys sorted."""
    if type(obj) is not dict:
        raise operand_type_error(1, obj, "object")
    query: dict[str, list[str]] = {}
    for key, value in obj.items():
        name = key if type(key) is str else _go_json_key(key)
        if type(value) is str:
            query[name] = [value]
        elif type(value) in (list, RegoSet):
            if any(type(v) is not str for v in value):
                raise OperandError(_ENCODE_OBJECT_ERROR)
            query[name] = list(value)
        else:
            raise OperandError(_ENCODE_OBJECT_ERROR)
    parts = []
    for name in sorted(query):
        escaped = escape(go_bytes(name), QUERY_COMPONENT)
        for value in query[name]:
            parts.append(escaped + b"=" + escape(go_bytes(value), QUERY_COMPONENT))
    return b"&".join(parts).decode("ascii")


_MAX_QUERY_PARAMS = 10000


def urlquery_decode_object(ctx: EvalContext, x: Any) -> dict[str, list[str]]:
    """Decodes the given URL query string into an object of value arrays."""
    query = go_bytes(string_arg(x, 1))
    if query.count(b"&") + 1 > _MAX_QUERY_PARAMS:
        raise BuiltinError("number of URL query parameters exceeded limit")
    result: dict[str, list[str]] = {}
    error: str | None = None
    for part in query.split(b"&") if query else ():
        if b";" in part:
            # Go keeps parsing and reports the last semicolon error over any earlier one.
            error = "invalid semicolon separator in query"
            continue
        if not part:
            continue
        raw_key, _, raw_value = part.partition(b"=")
        try:
            key = unescape(raw_key, QUERY_COMPONENT)
            value = unescape(raw_value, QUERY_COMPONENT)
        except URLError as exc:
            error = error or str(exc)
            continue
        result.setdefault(go_string(key), []).append(go_string(value))
    if error is not None:
        raise BuiltinError(error)
    return result


def _split_host_port(host: bytes) -> tuple[bytes, bytes]:
    port = b""
    colon = host.rfind(b":")
    if colon >= 0 and valid_optional_port(host[colon:]):
        host, port = host[:colon], host[colon + 1 :]
    if host.startswith(b"[") and host.endswith(b"]"):
        host = host[1:-1]
    return host, port


def uri_parse(ctx: EvalContext, x: Any) -> dict[str, str]:
    """Parses a URI into its non-empty components, as Go's ``url.Parse`` sees them."""
    try:
        url = url_parse(go_bytes(string_arg(x, 1)))
    except URLError as exc:
        raise BuiltinError(str(exc)) from None
    hostname, port = _split_host_port(url.host)
    parts = {
        "scheme": url.scheme,
        "hostname": hostname,
        "port": port,
        "path": url.path,
        "raw_path": url.raw_path or url.path,
        "raw_query": url.raw_query,
        "fragment": url.fragment,
    }
    return {name: go_string(value) for name, value in parts.items() if value}


def uri_is_valid(ctx: EvalContext, x: Any) -> bool:
    """Reports whether a non-empty string parses as a URI."""
    if type(x) is not str or not x:
        return False
    try:
        url_parse(go_bytes(x))
    except URLError:
        return False
    return True


BUILTINS = (
    BuiltinSpec("hex.encode", hex_encode),
    BuiltinSpec("hex.decode", hex_decode),
    BuiltinSpec("base64url.encode_no_pad", base64url_encode_no_pad),
    BuiltinSpec("urlquery.encode", urlquery_encode),
    BuiltinSpec("urlquery.decode", urlquery_decode),
    BuiltinSpec("urlquery.encode_object", urlquery_encode_object),
    BuiltinSpec("urlquery.decode_object", urlquery_decode_object),
    BuiltinSpec("uri.is_valid", uri_is_valid),
    BuiltinSpec("uri.parse", uri_parse),
)
