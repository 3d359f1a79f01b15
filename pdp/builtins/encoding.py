"""Hex, base64url, URL-query and URI builtins, with Go's byte-level semantics.

OPA runs these on the UTF-8 bytes of a string and may produce byte strings that are not
valid UTF-8 (``hex.decode("ff")``); such strings reach the caller through JSON, where Go
turns every invalid byte into U+FFFD. :func:`go_string` reproduces that, :func:`go_quote`
reproduces ``strconv.Quote`` as used in Go error messages, and the URL code follows
``net/url`` (Go 1.26, the toolchain OPA v1.22.3 is built with) so that results and error
messages agree with OPA.
"""

from __future__ import annotations

import base64
import json
import unicodedata
from typing import Any

from pdp.builtins.base import (
    BuiltinError,
    BuiltinSpec,
    EvalContext,
    OperandError,
    operand_type_error,
    string_arg,
)
from pdp.values import RegoSet, encode, to_json_compatible

__all__ = ["BUILTINS", "go_bytes", "go_is_print", "go_lower", "go_quote", "go_string"]


# --- Go string helpers -------------------------------------------------------------------


def go_bytes(s: str) -> bytes:
    """The UTF-8 bytes Go would hold for ``s``; lone surrogates become U+FFFD as in Go."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s).encode("utf-8")


def go_string(b: bytes) -> str:
    """Decode bytes as Go's JSON encoder does: each invalid byte becomes one U+FFFD."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        pass
    parts: list[str] = []
    pos = 0
    while True:
        try:
            parts.append(b[pos:].decode("utf-8"))
            return "".join(parts)
        except UnicodeDecodeError as exc:
            # Python reports a maximal ill-formed run; Go rejects it one byte at a time.
            parts.append(b[pos : pos + exc.start].decode("utf-8"))
            parts.append("\ufffd" * (exc.end - exc.start))
            pos += exc.end


def go_is_print(ch: str) -> bool:
    """Go's ``strconv.IsPrint``: letters, marks, numbers, punctuation, symbols, ASCII space."""
    code = ord(ch)
    if code < 0x80:
        return 0x20 <= code < 0x7F
    return unicodedata.category(ch)[0] in "LMNPS"


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


_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def go_quote(value: str | bytes) -> str:
    """Go's ``strconv.Quote`` of a string (given as text or as raw bytes)."""
    data = go_bytes(value) if isinstance(value, str) else value
    out = ['"']
    pos = 0
    while pos < len(data):
        ch, width = _decode_rune(data, pos)
        pos += width
        if ch is None:
            out.append(f"\\x{data[pos - 1]:02x}")
        elif ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif go_is_print(ch):
            out.append(ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _decode_rune(data: bytes, pos: int) -> tuple[str | None, int]:
    """Decode one UTF-8 sequence at ``pos``; (None, 1) for an invalid byte, as Go does."""
    first = data[pos]
    if first < 0x80:
        return chr(first), 1
    for width in (2, 3, 4):
        try:
            return data[pos : pos + width].decode("utf-8"), width
        except UnicodeDecodeError:
            continue
    return None, 1


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


# --- net/url escaping --------------------------------------------------------------------

_PATH, _PATH_SEGMENT, _HOST, _ZONE, _USER_PASSWORD, _QUERY_COMPONENT, _FRAGMENT = range(7)
_UNRESERVED = frozenset(b"-_.~")
_RESERVED = frozenset(b"$&+,/:;=?@")
_HOST_EXTRA = frozenset(b"!$&'()*+,;=:[]<>\"")


def _should_escape(c: int, mode: int) -> bool:
    """Go's ``shouldEscape``: must byte ``c`` be percent-encoded in a component of ``mode``."""
    if 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A:
        return False
    if mode in (_HOST, _ZONE) and c in _HOST_EXTRA:
        return False
    if c in _UNRESERVED:
        return False
    if c in _RESERVED:
        if mode == _PATH:
            return c == 0x3F
        if mode == _PATH_SEGMENT:
            return c in b"/;,?"
        if mode == _USER_PASSWORD:
            return c in b"@/?:"
        if mode == _QUERY_COMPONENT:
            return True
        if mode == _FRAGMENT:
            return False
    return not (mode == _FRAGMENT and c in b"!()*")


def _escape(s: bytes, mode: int) -> bytes:
    out = bytearray()
    for c in s:
        if not _should_escape(c, mode):
            out.append(c)
        elif c == 0x20 and mode == _QUERY_COMPONENT:
            out.append(0x2B)
        else:
            out += b"%%%02X" % c
    return bytes(out)


class _URLError(Exception):
    """A failure inside the URL parser, rendered as Go's error text."""


def _escape_error(s: bytes) -> _URLError:
    return _URLError("invalid URL escape " + go_quote(s))


def _unescape(s: bytes, mode: int) -> bytes:
    """Go's ``unescape``: validate every escape first, then decode."""
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == 0x25:
            if i + 2 >= n or s[i + 1] not in _HEX_VALUES or s[i + 2] not in _HEX_VALUES:
                raise _escape_error(s[i : i + 3])
            if mode == _HOST and _HEX_VALUES[s[i + 1]] < 8 and s[i : i + 3] != b"%25":
                raise _escape_error(s[i : i + 3])
            if mode == _ZONE:
                v = _HEX_VALUES[s[i + 1]] << 4 | _HEX_VALUES[s[i + 2]]
                if s[i : i + 3] != b"%25" and v != 0x20 and _should_escape(v, _HOST):
                    raise _escape_error(s[i : i + 3])
            i += 3
        else:
            if mode in (_HOST, _ZONE) and c < 0x80 and _should_escape(c, mode):
                raise _URLError(f"invalid character {go_quote(s[i : i + 1])} in host name")
            i += 1
    if b"%" not in s and not (mode == _QUERY_COMPONENT and b"+" in s):
        return s
    out = bytearray()
    i = 0
    while i < n:
        c = s[i]
        if c == 0x25:
            out.append(_HEX_VALUES[s[i + 1]] << 4 | _HEX_VALUES[s[i + 2]])
            i += 3
            continue
        out.append(0x20 if c == 0x2B and mode == _QUERY_COMPONENT else c)
        i += 1
    return bytes(out)


def urlquery_encode(ctx: EvalContext, x: Any) -> str:
    """Encodes the input string into a URL-encoded query component."""
    return _escape(go_bytes(string_arg(x, 1)), _QUERY_COMPONENT).decode("ascii")


def urlquery_decode(ctx: EvalContext, x: Any) -> str:
    """Decodes a URL-encoded query component."""
    try:
        return go_string(_unescape(go_bytes(string_arg(x, 1)), _QUERY_COMPONENT))
    except _URLError as exc:
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
        escaped = _escape(go_bytes(name), _QUERY_COMPONENT)
        for value in query[name]:
            parts.append(escaped + b"=" + _escape(go_bytes(value), _QUERY_COMPONENT))
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
            key = _unescape(raw_key, _QUERY_COMPONENT)
            value = _unescape(raw_value, _QUERY_COMPONENT)
        except _URLError as exc:
            error = error or str(exc)
            continue
        result.setdefault(go_string(key), []).append(go_string(value))
    if error is not None:
        raise BuiltinError(error)
    return result


# --- net/url parsing ---------------------------------------------------------------------


class _ParsedURL:
    __slots__ = ("fragment", "host", "path", "raw_path", "raw_query", "scheme")

    def __init__(self) -> None:
        self.scheme = b""
        self.host = b""
        self.path = b""
        self.raw_path = b""
        self.raw_query = b""
        self.fragment = b""


def _parse_url(raw: bytes) -> _ParsedURL:
    """Go's ``url.Parse``; raises :class:`_URLError` with Go's ``*url.Error`` text."""
    before, _, frag = raw.partition(b"#")
    try:
        url = _parse_url_body(before)
    except _URLError as exc:
        raise _URLError(f"parse {go_quote(before)}: {exc}") from None
    if frag:
        try:
            url.fragment = _unescape(frag, _FRAGMENT)
        except _URLError as exc:
            raise _URLError(f"parse {go_quote(raw)}: {exc}") from None
    return url


def _split_scheme(raw: bytes) -> tuple[bytes, bytes]:
    for i, c in enumerate(raw):
        if 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A:
            continue
        if 0x30 <= c <= 0x39 or c in b"+-.":
            if i == 0:
                return b"", raw
            continue
        if c == 0x3A:
            if i == 0:
                raise _URLError("missing protocol scheme")
            return raw[:i], raw[i + 1 :]
        return b"", raw
    return b"", raw


def _parse_url_body(raw: bytes) -> _ParsedURL:
    if any(c < 0x20 or c == 0x7F for c in raw):
        raise _URLError("net/url: invalid control character in URL")
    url = _ParsedURL()
    if raw == b"*":
        url.path = b"*"
        return url
    scheme, rest = _split_scheme(raw)
    url.scheme = scheme.lower()
    if rest.endswith(b"?") and rest.count(b"?") == 1:
        rest = rest[:-1]
    else:
        rest, _, url.raw_query = rest.partition(b"?")
    if not rest.startswith(b"/"):
        if url.scheme:
            return url  # opaque URL: nothing beyond scheme, query and fragment is reported
        if b":" in rest.partition(b"/")[0]:
            raise _URLError("first path segment in URL cannot contain colon")
    if (url.scheme or not rest.startswith(b"///")) and rest.startswith(b"//"):
        authority, slash, tail = rest[2:].partition(b"/")
        rest = slash + tail
        url.host = _parse_authority(url.scheme, authority)
    url.path = _unescape(rest, _PATH)
    url.raw_path = b"" if _escape(url.path, _PATH) == rest else rest
    return url


_USERINFO_EXTRA = frozenset(b"-._:~!$&'()*+,;=%@")


def _parse_authority(scheme: bytes, authority: bytes) -> bytes:
    at = authority.rfind(b"@")
    host = _parse_host(scheme, authority[at + 1 :] if at >= 0 else authority)
    if at >= 0:
        userinfo = authority[:at]
        if any(not (chr(c).isalnum() and c < 0x80) and c not in _USERINFO_EXTRA for c in userinfo):
            raise _URLError("net/url: invalid userinfo")
        for part in userinfo.split(b":", 1):
            _unescape(part, _USER_PASSWORD)
    return host


def _valid_optional_port(port: bytes) -> bool:
    return port == b"" or (port[:1] == b":" and all(0x30 <= c <= 0x39 for c in port[1:]))


def _parse_host(scheme: bytes, host: bytes) -> bytes:
    open_bracket = host.rfind(b"[")
    if open_bracket > 0:
        raise _URLError("invalid IP-literal")
    if open_bracket == 0:
        close_bracket = host.rfind(b"]")
        if close_bracket < 0:
            raise _URLError("missing ']' in host")
        colon_port = host[close_bracket + 1 :]
        if not _valid_optional_port(colon_port):
            raise _URLError(f"invalid port {go_quote(colon_port)} after host")
        colon_port = _unescape(colon_port, _HOST)
        hostname = host[1:close_bracket]
        zone = hostname.find(b"%25")
        if zone >= 0:
            hostname = _unescape(hostname[:zone], _HOST) + _unescape(hostname[zone:], _ZONE)
        else:
            hostname = _unescape(hostname, _HOST)
        if _parse_addr(hostname):
            raise _URLError("invalid IP-literal")
        return b"[" + hostname + b"]" + colon_port
    first = host.find(b":")
    if first >= 0:
        # Go 1.26 takes the first colon for http(s) and the last one for other schemes.
        cut = first if scheme in (b"http", b"https") else host.rfind(b":")
        if not _valid_optional_port(host[cut:]):
            raise _URLError(f"invalid port {go_quote(host[cut:])} after host")
    return _unescape(host, _HOST)


def _addr_error(text: bytes, msg: str, at: bytes = b"") -> _URLError:
    detail = f"ParseAddr({go_quote(text)}): {msg}"
    if at:
        detail += f" (at {go_quote(at)})"
    return _URLError("invalid host: " + detail)


def _parse_addr(text: bytes) -> bool:
    """Go's ``netip.ParseAddr`` as a validator; True when the address is plain IPv4."""
    for c in text:
        if c == 0x2E:
            _parse_ipv4_fields(text, 0, len(text))
            return True
        if c == 0x3A:
            _parse_ipv6(text)
            return False
        if c == 0x25:
            raise _addr_error(text, "missing IPv6 address")
    raise _addr_error(text, "unable to parse IP")


def _parse_ipv4_fields(text: bytes, start: int, end: int) -> None:
    s = text[start:end]
    value = digits = fields = 0
    for i, c in enumerate(s):
        if 0x30 <= c <= 0x39:
            if digits == 1 and value == 0:
                raise _addr_error(text, "IPv4 field has octet with leading zero")
            value = value * 10 + c - 0x30
            digits += 1
            if value > 255:
                raise _addr_error(text, "IPv4 field has value >255")
        elif c == 0x2E:
            if i == 0 or i == len(s) - 1 or s[i - 1] == 0x2E:
                raise _addr_error(text, "IPv4 field must have at least one digit", s[i:])
            if fields == 3:
                raise _addr_error(text, "IPv4 address too long")
            fields += 1
            value = digits = 0
        else:
            raise _addr_error(text, "unexpected character", s[i:])
    if fields < 3:
        raise _addr_error(text, "IPv4 address too short")


def _parse_ipv6(text: bytes) -> None:
    s = text
    zone = b""
    pct = s.find(b"%")
    if pct >= 0:
        s, zone = s[:pct], s[pct + 1 :]
        if not zone:
            raise _addr_error(text, "zone must be a non-empty string")
    ellipsis = -1
    if s[:2] == b"::":
        ellipsis = 0
        s = s[2:]
        if not s:
            return
    i = 0
    while i < 16:
        off = 0
        acc = 0
        while off < len(s) and s[off] in _HEX_VALUES:
            acc = (acc << 4) + _HEX_VALUES[s[off]]
            if off > 3:
                raise _addr_error(text, "each group must have 4 or less digits", s)
            if acc > 0xFFFF:
                raise _addr_error(text, "IPv6 field has value >=2^16", s)
            off += 1
        if off == 0:
            raise _addr_error(text, "each colon-separated field must have at least one digit", s)
        if off < len(s) and s[off] == 0x2E:
            if ellipsis < 0 and i != 12:
                raise _addr_error(
                    text, "embedded IPv4 address must replace the final 2 fields of the address", s
                )
            if i + 4 > 16:
                raise _addr_error(
                    text,
                    "too many hex fields to fit an embedded IPv4 at the end of the address",
                    s,
                )
            end = len(text) - (len(zone) + 1 if zone else 0)
            _parse_ipv4_fields(text, end - len(s), end)
            s = b""
            i += 4
            break
        i += 2
        s = s[off:]
        if not s:
            break
        if s[0] != 0x3A:
            raise _addr_error(text, "unexpected character, want colon", s)
        if len(s) == 1:
            raise _addr_error(text, "colon must be followed by more characters", s)
        s = s[1:]
        if s[0] == 0x3A:
            if ellipsis >= 0:
                raise _addr_error(text, "multiple :: in address", s)
            ellipsis = i
            s = s[1:]
            if not s:
                break
    if s:
        raise _addr_error(text, "trailing garbage after address", s)
    if i < 16:
        if ellipsis < 0:
            raise _addr_error(text, "address string too short")
    elif ellipsis >= 0:
        raise _addr_error(text, "the :: must expand to at least one field of zeros")


def _split_host_port(host: bytes) -> tuple[bytes, bytes]:
    port = b""
    colon = host.rfind(b":")
    if colon >= 0 and _valid_optional_port(host[colon:]):
        host, port = host[:colon], host[colon + 1 :]
    if host.startswith(b"[") and host.endswith(b"]"):
        host = host[1:-1]
    return host, port


def uri_parse(ctx: EvalContext, x: Any) -> dict[str, str]:
    """Parses a URI into its non-empty components, as Go's ``url.Parse`` sees them."""
    try:
        url = _parse_url(go_bytes(string_arg(x, 1)))
    except _URLError as exc:
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
        _parse_url(go_bytes(x))
    except _URLError:
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
