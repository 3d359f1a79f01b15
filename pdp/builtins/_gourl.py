"""Go's ``net/url`` parsing and escaping, on Go strings held as bytes.

Follows ``net/url`` of Go 1.26 (the toolchain OPA v1.22.3 is built with) so that the parts
OPA reports (``uri.parse``, URI SANs of certificates) and its ``*url.Error`` texts agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pdp.builtins._golang import GoError, go_quote_bytes, go_string

__all__ = [
    "FRAGMENT",
    "HOST",
    "PATH",
    "QUERY_COMPONENT",
    "USER_PASSWORD",
    "ZONE",
    "AddrCheck",
    "GoURL",
    "URLError",
    "check_addr",
    "escape",
    "unescape",
    "url_parse",
    "valid_optional_port",
]

# Go's encoding modes (``encodePath``, ...): which bytes a component may hold unescaped.
PATH, HOST, ZONE, USER_PASSWORD, QUERY_COMPONENT, FRAGMENT = range(6)
_UNRESERVED = frozenset(b"-_.~")
_RESERVED = frozenset(b"$&+,/:;=?@")
_HOST_EXTRA = frozenset(b"!$&'()*+,;=:[]<>\"")
_HEX_VALUES = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}


class URLError(GoError):
    """A failure inside the URL parser; ``str()`` is Go's error text."""


def _should_escape(c: int, mode: int) -> bool:
    """Go's ``shouldEscape``: must byte ``c`` be percent-encoded in a component of ``mode``."""
    if 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A:
        return False
    if mode in (HOST, ZONE) and c in _HOST_EXTRA:
        return False
    if c in _UNRESERVED:
        return False
    if c in _RESERVED:
        if mode == PATH:
            return c == 0x3F
        if mode == USER_PASSWORD:
            return c in b"@/?:"
        if mode == QUERY_COMPONENT:
            return True
        if mode == FRAGMENT:
            return False
    return not (mode == FRAGMENT and c in b"!()*")


def escape(s: bytes, mode: int) -> bytes:
    """Go's ``escape``: percent-encode what ``mode`` does not allow (space as ``+`` in queries)."""
    out = bytearray()
    for c in s:
        if not _should_escape(c, mode):
            out.append(c)
        elif c == 0x20 and mode == QUERY_COMPONENT:
            out.append(0x2B)
        else:
            out += b"%%%02X" % c
    return bytes(out)


def _escape_error(s: bytes) -> URLError:
    return URLError("invalid URL escape " + go_quote_bytes(s))


def unescape(s: bytes, mode: int) -> bytes:
    """Go's ``unescape``: validate every escape first, then decode; raises :class:`URLError`."""
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == 0x25:
            if i + 2 >= n or s[i + 1] not in _HEX_VALUES or s[i + 2] not in _HEX_VALUES:
                raise _escape_error(s[i : i + 3])
            if mode == HOST and _HEX_VALUES[s[i + 1]] < 8 and s[i : i + 3] != b"%25":
                raise _escape_error(s[i : i + 3])
            if mode == ZONE:
                v = _HEX_VALUES[s[i + 1]] << 4 | _HEX_VALUES[s[i + 2]]
                if s[i : i + 3] != b"%25" and v != 0x20 and _should_escape(v, HOST):
                    raise _escape_error(s[i : i + 3])
            i += 3
        else:
            if mode in (HOST, ZONE) and c < 0x80 and _should_escape(c, mode):
                raise URLError(f"invalid character {go_quote_bytes(s[i : i + 1])} in host name")
            i += 1
    if b"%" not in s and not (mode == QUERY_COMPONENT and b"+" in s):
        return s
    out = bytearray()
    i = 0
    while i < n:
        c = s[i]
        if c == 0x25:
            out.append(_HEX_VALUES[s[i + 1]] << 4 | _HEX_VALUES[s[i + 2]])
            i += 3
            continue
        out.append(0x20 if c == 0x2B and mode == QUERY_COMPONENT else c)
        i += 1
    return bytes(out)


def _valid_encoded(s: bytes, mode: int) -> bool:
    return all(c in b"!$&'()*+,;=:@[]%" or not _should_escape(c, mode) for c in s)


def valid_optional_port(port: bytes) -> bool:
    """Go's ``validOptionalPort``: empty, or a colon followed by digits only."""
    return port == b"" or (port[:1] == b":" and all(0x30 <= c <= 0x39 for c in port[1:]))


# --- netip.ParseAddr, for bracketed hosts ------------------------------------------------

AddrCheck = Callable[[bytes], bool]
"""Validates the text inside ``[...]`` of a host: raises :class:`URLError` (``invalid host:
...``) when it is no IP address, returns whether it is a plain IPv4 address."""


def _addr_error(text: bytes, msg: str, at: bytes = b"") -> URLError:
    detail = f"ParseAddr({go_quote_bytes(text)}): {msg}"
    if at:
        detail += f" (at {go_quote_bytes(at)})"
    return URLError("invalid host: " + detail)


def check_addr(text: bytes) -> bool:
    """Go's ``netip.ParseAddr`` as an :data:`AddrCheck`, with Go's error texts."""
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


# --- url.URL and url.Parse ----------------------------------------------------------------


@dataclass
class GoURL:
    """``net/url.URL`` as ``url.Parse`` fills it (``user`` is the escaped userinfo)."""

    scheme: bytes = b""
    opaque: bytes = b""
    user: bytes | None = None
    host: bytes = b""
    path: bytes = b""
    raw_path: bytes = b""
    omit_host: bool = False
    force_query: bool = False
    raw_query: bytes = b""
    fragment: bytes = b""
    raw_fragment: bytes = b""

    def go_value(self) -> dict[str, Any]:
        """The struct as ``encoding/json`` writes it (``User`` as an empty object)."""
        return {
            "Scheme": go_string(self.scheme),
            "Opaque": go_string(self.opaque),
            "User": None if self.user is None else {},
            "Host": go_string(self.host),
            "Path": go_string(self.path),
            "RawPath": go_string(self.raw_path),
            "OmitHost": self.omit_host,
            "ForceQuery": self.force_query,
            "RawQuery": go_string(self.raw_query),
            "Fragment": go_string(self.fragment),
            "RawFragment": go_string(self.raw_fragment),
        }

    def _escaped_path(self) -> bytes:
        if self.raw_path and _valid_encoded(self.raw_path, PATH):
            try:
                if unescape(self.raw_path, PATH) == self.path:
                    return self.raw_path
            except URLError:
                pass
        if self.path == b"*":
            return b"*"
        return escape(self.path, PATH)

    def _escaped_fragment(self) -> bytes:
        if self.raw_fragment and _valid_encoded(self.raw_fragment, FRAGMENT):
            try:
                if unescape(self.raw_fragment, FRAGMENT) == self.fragment:
                    return self.raw_fragment
            except URLError:
                pass
        return escape(self.fragment, FRAGMENT)

    def string(self) -> bytes:
        """``URL.String``."""
        out = bytearray()
        if self.scheme:
            out += self.scheme + b":"
        if self.opaque:
            out += self.opaque
        else:
            if (self.scheme or self.host or self.user is not None) and not (
                self.omit_host and not self.host and self.user is None
            ):
                if self.host or self.path or self.user is not None:
                    out += b"//"
                if self.user is not None:
                    out += self.user + b"@"
                if self.host:
                    out += escape(self.host, HOST)
            path = self._escaped_path()
            if path and path[:1] != b"/" and self.host:
                out += b"/"
            if not out and b":" in path.split(b"/", 1)[0]:
                out += b"./"
            out += path
        if self.force_query or self.raw_query:
            out += b"?" + self.raw_query
        if self.fragment:
            out += b"#" + self._escaped_fragment()
        return bytes(out)


def url_parse(raw: bytes, addr_check: AddrCheck = check_addr) -> GoURL:
    """Go's ``url.Parse``; raises :class:`URLError` with Go's ``*url.Error`` text.

    ``addr_check`` validates bracketed hosts; the default is Go's exact ``netip.ParseAddr``.
    """
    main, _, frag = raw.partition(b"#")
    try:
        url = _parse(main, addr_check)
    except URLError as exc:
        raise URLError(f"parse {go_quote_bytes(main)}: {exc}") from None
    if frag:
        try:
            url.fragment = unescape(frag, FRAGMENT)
        except URLError as exc:
            raise URLError(f"parse {go_quote_bytes(raw)}: {exc}") from None
        url.raw_fragment = b"" if escape(url.fragment, FRAGMENT) == frag else frag
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
                raise URLError("missing protocol scheme")
            return raw[:i], raw[i + 1 :]
        return b"", raw
    return b"", raw


_USERINFO_EXTRA = frozenset(b"-._:~!$&'()*+,;=%@")


def _parse(raw: bytes, addr_check: AddrCheck) -> GoURL:
    if any(c < 0x20 or c == 0x7F for c in raw):
        raise URLError("net/url: invalid control character in URL")
    url = GoURL()
    if raw == b"*":
        url.path = b"*"
        return url
    scheme, rest = _split_scheme(raw)
    url.scheme = scheme.lower()
    if rest.endswith(b"?") and rest.count(b"?") == 1:
        url.force_query = True
        rest = rest[:-1]
    else:
        rest, _, url.raw_query = rest.partition(b"?")
    if not rest.startswith(b"/"):
        if url.scheme:
            url.opaque = rest
            return url
        if b":" in rest.partition(b"/")[0]:
            raise URLError("first path segment in URL cannot contain colon")
    if (url.scheme or not rest.startswith(b"///")) and rest.startswith(b"//"):
        authority, slash, tail = rest[2:].partition(b"/")
        rest = slash + tail
        at = authority.rfind(b"@")
        url.host = _parse_host(url.scheme, authority[at + 1 :], addr_check)
        if at >= 0:
            url.user = _parse_userinfo(authority[:at])
    elif url.scheme and rest.startswith(b"/"):
        url.omit_host = True
    url.path = unescape(rest, PATH)
    url.raw_path = b"" if escape(url.path, PATH) == rest else rest
    return url


def _parse_userinfo(userinfo: bytes) -> bytes:
    """The userinfo as ``User.String`` writes it back (each part unescaped, then escaped)."""
    if not all(
        0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A or 0x30 <= c <= 0x39 or c in _USERINFO_EXTRA
        for c in userinfo
    ):
        raise URLError("net/url: invalid userinfo")
    name, colon, password = userinfo.partition(b":")
    user = escape(unescape(name, USER_PASSWORD), USER_PASSWORD)
    if colon:
        user += b":" + escape(unescape(password, USER_PASSWORD), USER_PASSWORD)
    return user


def _parse_host(scheme: bytes, host: bytes, addr_check: AddrCheck) -> bytes:
    open_bracket = host.rfind(b"[")
    if open_bracket > 0:
        raise URLError("invalid IP-literal")
    if open_bracket == 0:
        close_bracket = host.rfind(b"]")
        if close_bracket < 0:
            raise URLError("missing ']' in host")
        colon_port = host[close_bracket + 1 :]
        if not valid_optional_port(colon_port):
            raise URLError(f"invalid port {go_quote_bytes(colon_port)} after host")
        colon_port = unescape(colon_port, HOST)
        hostname = host[1:close_bracket]
        zone = hostname.find(b"%25")
        if zone >= 0:
            hostname = unescape(hostname[:zone], HOST) + unescape(hostname[zone:], ZONE)
        else:
            hostname = unescape(hostname, HOST)
        if addr_check(hostname):
            raise URLError("invalid IP-literal")
        return b"[" + hostname + b"]" + colon_port
    first = host.find(b":")
    if first >= 0:
        # Go 1.26 takes the first colon for http(s) and the last one for other schemes.
        cut = first if scheme in (b"http", b"https") else host.rfind(b":")
        if not valid_optional_port(host[cut:]):
            raise URLError(f"invalid port {go_quote_bytes(host[cut:])} after host")
    return unescape(host, HOST)
