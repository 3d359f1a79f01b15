"""``http.send``, with OPA's request options, response shape, errors and caching.

OPA sends requests with Go's ``net/http`` client; this module reproduces what a policy can
observe of it with the standard library (``http.client``/``ssl``, blocking, no event loop):

* the request: method upper-cased, canonical header names, OPA's ``User-Agent`` when custom
  headers are given (Go's default otherwise), ``Accept-Encoding: gzip`` with transparent
  decompression, ``Content-Length`` where Go sends it, URL userinfo as basic auth;
* redirects are returned as responses unless ``enable_redirect`` is true, then followed as
  Go does (method and body rules, sensitive headers dropped across hosts, ``Referer``);
* errors: with ``raise_error`` (the default) an ``eval_builtin_error``; otherwise a result
  ``{"status_code": 0, "error": {"code", "message"}}`` whose code tells network errors
  (``eval_http_send_network_error``) from the rest (``eval_http_send_internal_error``);
  messages follow Go's wording for the common failures;
* caching: per evaluation, responses with cacheable status codes and errors are reused for
  an identical request; with ``cache``/``force_cache`` a process-wide cache honours
  ``Cache-Control: max-age``/``Expires`` (or ``force_cache_duration_seconds``) and
  revalidates stale entries with ``ETag``/``Last-Modified``.

The default timeout is 5 s (``HTTP_SEND_TIMEOUT`` overrides it, as in OPA).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gzip
import http.client
import json
import math
import os
import platform
import random
import re
import socket
import ssl
import sys
import tempfile
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import yaml

from pdp.builtins._golang import go_quote
from pdp.builtins.base import (
    BuiltinError,
    BuiltinSpec,
    EvalContext,
    OperandError,
    object_arg,
)
from pdp.builtins.gofmt import JSONNumber
from pdp.builtins.gofmt import sprintf as go_sprintf
from pdp.builtins.net import parse_addr
from pdp.builtins.runtime import rego_string
from pdp.values import RegoSet, encode, freeze, to_json_compatible, type_name

__all__ = [
    "BUILTINS",
    "REQUEST_KEYS",
    "GoURL",
    "URLParseError",
    "clear_inter_query_cache",
    "go_json_marshal",
    "http_send",
    "parse_go_url",
]

OPA_VERSION = "1.22.3"
_GOOS = {"linux": "linux", "darwin": "darwin", "win32": "windows"}.get(sys.platform, sys.platform)
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
    platform.machine().lower(), platform.machine().lower()
)
USER_AGENT = f"Open-Policy-Agent/{OPA_VERSION} ({_GOOS}, {_GOARCH})"
_GO_USER_AGENT = "Go-http-client/1.1"

NETWORK_ERROR = "eval_http_send_network_error"
INTERNAL_ERROR = "eval_http_send_internal_error"

# The options an http.send request object may have.
REQUEST_KEYS = frozenset(
    {
        "method",
        "url",
        "body",
        "enable_redirect",
        "force_json_decode",
        "force_yaml_decode",
        "headers",
        "raw_body",
        "tls_use_system_certs",
        "tls_ca_cert",
        "tls_ca_cert_file",
        "tls_ca_cert_env_variable",
        "tls_client_cert",
        "tls_client_cert_file",
        "tls_client_cert_env_variable",
        "tls_client_key",
        "tls_client_key_file",
        "tls_client_key_env_variable",
        "tls_insecure_skip_verify",
        "tls_server_name",
        "timeout",
        "cache",
        "force_cache",
        "force_cache_duration_seconds",
        "raise_error",
        "caching_mode",
        "max_retry_attempts",
        "cache_ignored_headers",
    }
)
_STRING_KEYS = frozenset(
    {
        "method",
        "url",
        "raw_body",
        "tls_ca_cert",
        "tls_ca_cert_file",
        "tls_ca_cert_env_variable",
        "tls_client_cert",
        "tls_client_cert_file",
        "tls_client_cert_env_variable",
        "tls_client_key",
        "tls_client_key_file",
        "tls_client_key_env_variable",
        "tls_server_name",
    }
)
_CACHEABLE_STATUS = frozenset({200, 203, 204, 206, 300, 301, 404, 405, 410, 414, 501})
_MAX_REDIRECTS = 100  # Go's client with OPA's redirect policy only stops at the timeout
_INTER_QUERY_CACHE_BYTES = 64 << 20


# --- Go's encoding/json ----------------------------------------------------------------


def _integral_floats_as_ints(value: Any) -> Any:
    # OPA keeps number text; an integral number prints without a fraction.
    t = type(value)
    if t is float and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if t is list:
        return [_integral_floats_as_ints(v) for v in value]
    if t is dict:
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    return value


def go_json_marshal(value: Any) -> bytes:
    """``json.Marshal`` of a Rego value as OPA does it (``ast.JSON`` then Go's encoder):
    sets become arrays, keys sorted, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped."""
    text = json.dumps(
        _integral_floats_as_ints(to_json_compatible(value)),
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    )
    text = (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
    return text.encode("utf-8")


# --- Go's net/url ----------------------------------------------------------------------

_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_UNESCAPED = {
    "path": _ALNUM | set("$&+,-./:;=@_~"),
    "host": _ALNUM | set("!\"$&'()*+,-.:;<=>[]_~"),
    "fragment": _ALNUM | set("!$&()*+,-./:;=?@_~"),
    "userpass": _ALNUM | set("$&+,-.;=_~"),
    "query": _ALNUM | set("-._~"),
}
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


class URLParseError(Exception):
    """``url.Parse`` failed; ``str()`` is Go's ``parse "<url>": <reason>``."""


def _should_escape(ch: str, mode: str) -> bool:
    return ch not in _UNESCAPED[mode]


def _escape(s: str, mode: str) -> str:
    out = []
    for b in s.encode("utf-8", "surrogateescape"):
        ch = chr(b)
        if b < 0x80 and not _should_escape(ch, mode):
            out.append(ch)
        elif ch == " " and mode == "query":
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def _unescape(s: str, mode: str) -> str:
    """Go's ``unescape``; raises ValueError with Go's message."""
    raw = s.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x25:  # %
            esc = raw[i : i + 3]
            if len(esc) < 3 or chr(esc[1]) not in _HEXDIGITS or chr(esc[2]) not in _HEXDIGITS:
                raise ValueError("invalid URL escape " + go_quote(esc.decode("latin-1")))
            value = int(esc[1:].decode(), 16)
            if mode == "host" and value < 0x80 and esc != b"%25":
                raise ValueError("invalid URL escape " + go_quote(esc.decode("latin-1")))
            if (
                mode == "zone"
                and esc != b"%25"
                and value != 0x20
                and value < 0x80
                and _should_escape(chr(value), "host")
            ):
                raise ValueError("invalid URL escape " + go_quote(esc.decode("latin-1")))
            out.append(value)
            i += 3
            continue
        if mode in ("host", "zone") and c < 0x80 and _should_escape(chr(c), "host"):
            raise ValueError(f"invalid character {go_quote(chr(c))} in host name")
        if c == 0x2B and mode == "query":
            out.append(0x20)
        else:
            out.append(c)
        i += 1
    return out.decode("utf-8", "surrogateescape")


@dataclass
class GoURL:
    """The fields of Go's ``url.URL`` that requests and signatures read."""

    scheme: str = ""
    opaque: str = ""
    username: str | None = None
    password: str | None = None
    host: str = ""
    path: str = ""
    raw_path: str = ""
    omit_host: bool = False
    force_query: bool = False
    raw_query: str = ""
    fragment: str = ""

    def escaped_path(self) -> str:
        """``URL.EscapedPath``: the path as written when that is a valid encoding of it."""
        if self.raw_path and _valid_encoded(self.raw_path):
            try:
                if _unescape(self.raw_path, "path") == self.path:
                    return self.raw_path
            except ValueError:
                pass
        if self.path == "*":
            return "*"
        return _escape(self.path, "path")

    def request_uri(self) -> str:
        """``URL.RequestURI``: what goes on the request line."""
        result = self.opaque
        if not result:
            result = self.escaped_path() or "/"
        elif result.startswith("//"):
            result = f"{self.scheme}:{result}"
        if self.force_query or self.raw_query:
            result += "?" + self.raw_query
        return result

    def hostname(self) -> str:
        host = self.host
        if host.startswith("["):
            end = host.find("]")
            return host[1:end] if end >= 0 else host[1:]
        colon = host.rfind(":")
        return host[:colon] if colon >= 0 and _valid_port(host[colon:]) else host

    def port(self) -> str:
        host = self.host
        if host.startswith("["):
            end = host.find("]")
            rest = host[end + 1 :] if end >= 0 else ""
            return rest[1:] if rest.startswith(":") else ""
        colon = host.rfind(":")
        return host[colon + 1 :] if colon >= 0 and _valid_port(host[colon:]) else ""

    def userinfo_text(self) -> str:
        if self.username is None:
            return ""
        text = _escape(self.username, "userpass")
        if self.password is not None:
            text += ":" + _escape(self.password, "userpass")
        return text

    def string(self, *, redact: bool = False) -> str:
        """``URL.String`` (``redact`` hides the password like Go's error messages do)."""
        out = []
        if self.scheme:
            out.append(self.scheme + ":")
        if self.opaque:
            out.append(self.opaque)
        else:
            if (self.scheme or self.host or self.username is not None) and not (
                self.omit_host and not self.host and self.username is None
            ):
                if self.host or self.path or self.username is not None:
                    out.append("//")
                if self.username is not None:
                    if redact and self.password is not None:
                        out.append(_escape(self.username, "userpass") + ":***@")
                    else:
                        out.append(self.userinfo_text() + "@")
                if self.host:
                    out.append(_escape(self.host, "host"))
            path = self.escaped_path()
            if path and path[0] != "/" and self.host:
                out.append("/")
            if not out and ":" in path.split("/", 1)[0]:
                out.append("./")
            out.append(path)
        if self.force_query or self.raw_query:
            out.append("?" + self.raw_query)
        if self.fragment:
            out.append("#" + _escape(self.fragment, "fragment"))
        return "".join(out)

    def resolve(self, ref: GoURL) -> GoURL:
        """``URL.ResolveReference``: ``ref`` relative to this URL."""
        url = replace(ref)
        if not ref.scheme:
            url.scheme = self.scheme
        if ref.scheme or ref.host or ref.username is not None:
            _set_path(url, _resolve_path(ref.escaped_path(), ""))
            return url
        if ref.opaque:
            url.username = url.password = None
            url.host = url.path = ""
            return url
        if not ref.path and not ref.force_query and not ref.raw_query:
            url.raw_query = self.raw_query
            if not ref.fragment:
                url.fragment = self.fragment
        url.host = self.host
        url.username, url.password = self.username, self.password
        _set_path(url, _resolve_path(self.escaped_path(), ref.escaped_path()))
        return url


def _valid_encoded(s: str) -> bool:
    return all(c in "!$&'()*+,;=:@[]%" or not _should_escape(c, "path") for c in s)


def _valid_port(port: str) -> bool:
    return port == "" or (port[0] == ":" and all("0" <= c <= "9" for c in port[1:]))


def _resolve_path(base: str, ref: str) -> str:
    if not ref:
        full = base
    elif ref[0] != "/":
        full = base[: base.rfind("/") + 1] + ref
    else:
        full = ref
    if not full:
        return ""
    segments = full.split("/")
    out: list[str] = []
    for seg in segments[1:] if full.startswith("/") else segments:
        if seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    result = "/" + "/".join(out)
    if segments[-1] in (".", "..") and not result.endswith("/"):
        result += "/"
    return result


def _set_path(url: GoURL, p: str) -> None:
    url.path = _unescape(p, "path")
    url.raw_path = "" if _escape(url.path, "path") == p else p


def _get_scheme(raw: str) -> tuple[str, str]:
    for i, c in enumerate(raw):
        if "a" <= c <= "z" or "A" <= c <= "Z":
            continue
        if "0" <= c <= "9" or c in "+-.":
            if i == 0:
                return "", raw
            continue
        if c == ":":
            if i == 0:
                raise ValueError("missing protocol scheme")
            return raw[:i], raw[i + 1 :]
        return "", raw
    return "", raw


def _parse_host(scheme: str, host: str) -> str:
    bracket = host.rfind("[")
    if bracket > 0:
        raise ValueError("invalid IP-literal")
    if bracket == 0:
        close = host.rfind("]")
        if close < 0:
            raise ValueError("missing ']' in host")
        colon_port = host[close + 1 :]
        if not _valid_port(colon_port):
            raise ValueError(f"invalid port {go_quote(colon_port)} after host")
        name = host[1:close]
        zone = name.find("%25")
        if zone >= 0:
            unescaped = _unescape(name[:zone], "host") + _unescape(name[zone:], "zone")
        else:
            unescaped = _unescape(name, "host")
        if ":" not in unescaped.split("%", 1)[0]:
            raise ValueError("invalid IP-literal")
        return "[" + unescaped + "]" + _unescape(colon_port, "host")
    first = host.find(":")
    if first >= 0:
        last = host.rfind(":")
        i = first if scheme in ("http", "https") else last
        if not _valid_port(host[i:]):
            raise ValueError(f"invalid port {go_quote(host[i:])} after host")
    return _unescape(host, "host")


_USERINFO_OK = _ALNUM | set("-._:~!$&'()*+,;=%@")


def _parse(raw: str) -> GoURL:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise ValueError("net/url: invalid control character in URL")
    url = GoURL()
    if raw == "*":
        url.path = "*"
        return url
    scheme, rest = _get_scheme(raw)
    url.scheme = scheme.lower()
    if rest.endswith("?") and rest.count("?") == 1:
        url.force_query = True
        rest = rest[:-1]
    else:
        rest, _, url.raw_query = rest.partition("?")
    if not rest.startswith("/"):
        if url.scheme:
            url.opaque = rest
            return url
        if ":" in rest.split("/", 1)[0]:
            raise ValueError("first path segment in URL cannot contain colon")
    if (url.scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        rest = slash + tail
        at = authority.rfind("@")
        url.host = _parse_host(url.scheme, authority[at + 1 :])
        if at >= 0:
            userinfo = authority[:at]
            if any(c not in _USERINFO_OK for c in userinfo):
                raise ValueError("net/url: invalid userinfo")
            user, colon, password = userinfo.partition(":")
            url.username = _unescape(user, "userpass")
            if colon:
                url.password = _unescape(password, "userpass")
    elif url.scheme and rest.startswith("/"):
        url.omit_host = True
    _set_path(url, rest)
    return url


def parse_go_url(raw: str) -> GoURL:
    """Parse ``raw`` like Go's ``url.Parse``; raises :class:`URLParseError`."""
    base, _, fragment = raw.partition("#")
    try:
        url = _parse(base)
    except ValueError as exc:
        raise URLParseError(f"parse {go_quote(base)}: {exc}") from None
    if fragment:
        try:
            url.fragment = _unescape(fragment, "fragment")
        except ValueError as exc:
            raise URLParseError(f"parse {go_quote(raw)}: {exc}") from None
    return url


def _parse_query(raw: str) -> list[tuple[str, str]]:
    """``url.ParseQuery``; raises ValueError like Go."""
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        if ";" in part:
            raise ValueError("invalid semicolon separator in query")
        key, _, value = part.partition("=")
        pairs.append((_unescape(key, "query"), _unescape(value, "query")))
    return pairs


# --- Go's time.ParseDuration -----------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def _parse_duration(text: str) -> int:
    """Nanoseconds of a Go duration string; raises ValueError with Go's message."""
    invalid = ValueError("time: invalid duration " + go_quote(text))
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid
        m = _DURATION_PART.match(s)
        assert m is not None
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:
            raise invalid
        if not unit:
            raise ValueError("time: missing unit in duration " + go_quote(text))
        if unit not in _DURATION_UNITS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(text)}")
        scale = _DURATION_UNITS[unit]
        value = int(whole or "0") * scale
        if frac:
            value += int(frac) * scale // 10 ** len(frac)
        total += value
        if total > 1 << 63:
            raise invalid
        s = s[m.end() :]
    if not negative and total == 1 << 63:
        raise invalid
    return -total if negative else total


def _atoi64(s: str) -> int | None:
    """OPA's ``util.Atoi64``: an integer, optionally followed by ``.`` and zeros."""
    m = re.fullmatch(r"([-+]?)(\d*)(\.0*)?", s)
    if not m or not 0 < len(s) - len(m.group(1)) <= 19:
        return None
    n = int(m.group(2) or "0")
    if m.group(1) == "-":
        n = -n
    return n if -(1 << 63) <= n < 1 << 63 else None


def _default_timeout_ns() -> int:
    text = os.environ.get("HTTP_SEND_TIMEOUT", "")
    if text:
        try:
            return _parse_duration(text)
        except ValueError:
            pass
    return 5_000_000_000


# --- failures ----------------------------------------------------------------------------


class _Failure(Exception):
    """An ``http.send`` failure shaped like the Go error OPA would hold.

    ``kind`` is ``"url"`` for errors of Go's HTTP client (network failures), ``"plain"``
    for other Go errors, or an OPA error code for errors OPA has already wrapped (their
    message then starts with ``http.send: ``).
    """

    def __init__(
        self, message: str, kind: str, *, timeout: bool = False, op: str = "", url: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.timeout = timeout
        self.op = op
        self.url = url

    def to_error(self) -> BuiltinError:
        """The error raised when ``raise_error`` is true."""
        if self.kind == "eval_type_error":
            return OperandError(self.message, prefix=False)
        if self.kind == "eval_builtin_error":
            return BuiltinError(self.message, prefix=False)
        if self.kind == "url" and self.timeout:
            return BuiltinError(f"{self.op} {self.url}: request timed out")
        return BuiltinError(self.message)

    def to_result(self) -> dict[str, Any]:
        """The result returned when ``raise_error`` is false."""
        plain = self.kind in ("url", "plain")
        message = self.message if plain else f"{self.kind}: {self.message}"
        code = NETWORK_ERROR if self.kind == "url" else INTERNAL_ERROR
        return {"status_code": 0, "error": {"code": code, "message": message}}


def _wrapped(message: str, code: str = "eval_builtin_error") -> _Failure:
    return _Failure(f"http.send: {message}", code)


def _url_failure(op: str, url: str, reason: str, *, timeout: bool = False) -> _Failure:
    return _Failure(f"{op} {go_quote(url)}: {reason}", "url", timeout=timeout, op=op, url=url)


def _url_error_op(method: str) -> str:
    if not method:
        return "Get"
    if method.isascii():
        return method[:1] + method[1:].lower()
    return method


# --- request options (OPA's createHTTPRequest) ----------------------------------------


@dataclass(frozen=True)
class _TLSOptions:
    ca_pem: tuple[str, ...] = ()
    use_system: bool = False
    client_pairs: tuple[tuple[str, str], ...] = ()
    insecure: bool = False


@dataclass
class _Request:
    method: str
    url: GoURL
    headers: dict[str, str]  # canonical name → value
    host: str  # Host header override ("" for the URL's host)
    body: bytes
    timeout_ns: int
    redirect: bool
    tls: _TLSOptions
    server_name: str
    unix_socket: str | None = None
    close: bool = False  # Go's client then uses a transport without keep-alives


def _bool_text(value: Any) -> bool:
    """``strconv.ParseBool(term.String())``."""
    text = rego_string(value)
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"strconv.ParseBool: parsing {go_quote(text)}: invalid syntax")


def _parse_timeout(value: Any) -> int:
    t = type(value)
    if t is int and -(1 << 63) <= value < 1 << 63:
        return value
    if t is int or t is float:
        raise ValueError(f"invalid timeout number value {encode(value)}, must be int64")
    if t is str:
        n = _atoi64(value)
        if n is not None:
            return n
        try:
            return _parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"invalid timeout value {rego_string(value)}: {exc}") from None
    raise _wrapped(
        f"operand 1 'timeout' must be one of {{string, number}} but got {type_name(value)}",
        "eval_type_error",
    )


_TOKEN_CHARS = _ALNUM | set("!#$%&'*+-.^_`|~")


def canonical_header_key(name: str) -> str:
    """Go's ``http.CanonicalHeaderKey``."""
    if not name or any(c not in _TOKEN_CHARS for c in name):
        return name
    out = []
    upper = True
    for c in name:
        out.append(c.upper() if upper else c.lower())
        upper = c == "-"
    return "".join(out)


def _go_value(value: Any) -> Any:
    """A JSON-compatible value as the Go ``any`` that ``ast.JSON`` produces."""
    if type(value) in (int, float):
        return JSONNumber(encode(value))
    if type(value) is list:
        return [_go_value(v) for v in value]
    if type(value) is dict:
        return {k: _go_value(v) for k, v in value.items()}
    return value


def _read_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError as exc:
        raise ValueError(f"open {path}: {_os_reason(exc)}") from None


def _os_reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def _valid_certs(pem: str) -> list[str]:
    """The PEM certificates of ``pem`` that parse (Go's AppendCertsFromPEM skips others)."""
    from cryptography import x509

    out = []
    for block in _PEM_CERT.findall(pem):
        try:
            x509.load_pem_x509_certificate(block.encode("utf-8", "surrogateescape"))
        except ValueError:
            continue
        out.append(block)
    return out


def _prepare(obj: dict[Any, Any]) -> _Request:
    """Validate the options of a request as OPA's ``createHTTPRequest`` does."""
    try:
        return _prepare_unwrapped(obj)
    except ValueError as exc:
        raise _wrapped(str(exc)) from None


def _prepare_unwrapped(obj: dict[Any, Any]) -> _Request:
    method = url_text = ""
    body: bytes | None = None
    redirect = use_system = insecure = False
    ca_cert = ca_file = ca_env = ""
    cert = key = cert_file = key_file = cert_env = key_env = ""
    server_name = ""
    headers: dict[str, Any] = {}
    timeout = _default_timeout_ns()
    for name in sorted(obj):  # OPA visits the (validated, string) keys in sorted order
        value = obj[name]
        text = ""
        if type(value) is str:
            text = value.strip('"')
        elif name in _STRING_KEYS:
            raise ValueError(f"{go_quote(name)} must be a string")
        if name == "method":
            method = text.upper()
        elif name == "url":
            url_text = text
        elif name == "enable_redirect":
            redirect = _bool_text(value)
        elif name == "body":
            if body is None:
                body = go_json_marshal(value)
        elif name == "raw_body":
            body = text.encode("utf-8")
        elif name == "tls_use_system_certs":
            use_system = _bool_text(value)
        elif name == "tls_ca_cert":
            ca_cert = text
        elif name == "tls_ca_cert_file":
            ca_file = text
        elif name == "tls_ca_cert_env_variable":
            ca_env = text
        elif name == "tls_client_cert":
            cert = text
        elif name == "tls_client_cert_file":
            cert_file = text
        elif name == "tls_client_cert_env_variable":
            cert_env = text
        elif name == "tls_client_key":
            key = text
        elif name == "tls_client_key_file":
            key_file = text
        elif name == "tls_client_key_env_variable":
            key_env = text
        elif name == "tls_server_name":
            server_name = text
        elif name == "headers":
            decoded = to_json_compatible(value)
            if type(decoded) is not dict:
                raise ValueError("invalid type for headers key")
            headers = decoded
        elif name == "tls_insecure_skip_verify":
            insecure = _bool_text(value)
        elif name == "timeout":
            timeout = _parse_timeout(value)

    canonical = {canonical_header_key(k): v for k, v in headers.items()}

    pairs: list[tuple[str, str]] = []
    if cert and key:
        _check_key_pair(cert, key)
        pairs.append((cert, key))
    if cert_file and key_file:
        pair = (_read_file(cert_file), _read_file(key_file))
        _check_key_pair(*pair)
        pairs.append(pair)
    if cert_env and key_env:
        pair = (os.environ.get(cert_env, ""), os.environ.get(key_env, ""))
        try:
            _check_key_pair(*pair)
        except ValueError as exc:
            raise ValueError(
                "cannot extract public/private key pair from envvars "
                f"{go_quote(cert_env)}, {go_quote(key_env)}: {exc}"
            ) from None
        pairs.append(pair)

    ca: list[str] = []
    custom_roots = False
    if ca_cert:
        found = _valid_certs(ca_cert.replace("\\n", "\n"))
        if not found:
            raise ValueError("could not append certificates")
        ca += found
        custom_roots = True
    if ca_file:
        found = _valid_certs(_read_file(ca_file))
        if not found:
            raise ValueError(f"could not append CA certificates from {go_quote(ca_file)}")
        ca += found
        custom_roots = True
    if ca_env:
        found = _valid_certs(os.environ.get(ca_env, ""))
        if not found:
            raise ValueError(
                f"could not add CA certificates from envvar {go_quote(ca_env)}: "
                "could not append certificates"
            )
        ca += found
        custom_roots = True

    host_header = canonical.get("Host")
    if not server_name and host_header is not None:
        server_name = host_header if type(host_header) is str else ""

    url_text, unix_socket = _use_socket(url_text)

    method = method or "GET"
    if any(c not in _TOKEN_CHARS for c in method):
        raise ValueError(f"net/http: invalid method {go_quote(method)}")
    try:
        url = parse_go_url(url_text)
    except URLParseError as exc:
        raise ValueError(str(exc)) from None
    if url.host.endswith(":") and url.host.rfind(":") > url.host.rfind("]"):
        url.host = url.host[:-1]

    final_headers: dict[str, str] = {}
    host = ""
    if canonical:
        for k, v in canonical.items():
            if type(v) is not str:
                raise ValueError(go_sprintf("invalid type for headers value %q", [_go_value(v)]))
            final_headers[k] = v
        final_headers.setdefault("User-Agent", USER_AGENT)
        if host_header is not None:
            host = str(host_header)

    tls = _TLSOptions(
        ca_pem=tuple(ca),
        use_system=use_system or not custom_roots,
        client_pairs=tuple(pairs),
        insecure=insecure,
    )
    return _Request(
        method=method,
        url=url,
        headers=final_headers,
        host=host,
        body=body or b"",
        timeout_ns=timeout,
        redirect=redirect,
        tls=tls,
        server_name=server_name,
        unix_socket=unix_socket,
        close=unix_socket is not None
        or insecure
        or bool(server_name)
        or use_system
        or custom_roots
        or bool(pairs),
    )


def _use_socket(url_text: str) -> tuple[str, str | None]:
    """OPA's ``unix://host/path?socket=<path>`` convention: the http URL and socket path."""
    try:
        url = parse_go_url(url_text)
    except URLParseError:
        return url_text, None
    if url.scheme != "unix" or not url.raw_query:
        return url_text, None
    try:
        query = _parse_query(url.raw_query)
    except ValueError:
        return url_text, None
    socket_path = next((v for k, v in query if k == "socket"), "")
    rest = sorted((k, v) for k, v in query if k != "socket")
    url.scheme = "http"
    url.raw_query = "&".join(f"{_escape(k, 'query')}={_escape(v, 'query')}" for k, v in rest)
    return url.string(), socket_path


def _check_key_pair(cert_pem: str, key_pem: str) -> None:
    """Reject a client certificate/key pair the way Go's ``tls.X509KeyPair`` would."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    certs = _PEM_CERT.findall(cert_pem)
    if not certs:
        raise ValueError("tls: failed to find any PEM data in certificate input")
    if "-----BEGIN" not in key_pem:
        raise ValueError("tls: failed to find any PEM data in key input")
    try:
        leaf = x509.load_pem_x509_certificate(certs[0].encode())
    except ValueError as exc:
        raise ValueError(f"tls: failed to parse certificate: {exc}") from None
    try:
        private = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("tls: failed to parse private key") from None
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    leaf_public = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != leaf_public:
        raise ValueError("tls: private key does not match public key")


@functools.lru_cache(maxsize=32)
def _ssl_context(options: _TLSOptions) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    if options.use_system:
        context.load_default_certs()
    if options.ca_pem:
        context.load_verify_locations(cadata="\n".join(options.ca_pem))
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    for cert_pem, key_pem in options.client_pairs:
        with tempfile.TemporaryDirectory() as tmp:
            cert_path = os.path.join(tmp, "cert.pem")
            key_path = os.path.join(tmp, "key.pem")
            for path, text in ((cert_path, cert_pem), (key_path, key_pem)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(text)
            context.load_cert_chain(cert_path, key_path, password=lambda: b"")
    return context


# --- the transport -----------------------------------------------------------------------


@dataclass
class _Response:
    status: str
    status_code: int
    headers: dict[str, list[str]]  # lower-cased name → values
    body: bytes
    body_error: str | None = None


class _Deadline:
    def __init__(self, timeout_ns: int) -> None:
        self.end = time.monotonic() + timeout_ns / 1e9 if timeout_ns > 0 else None

    def remaining(self) -> float | None:
        if self.end is None:
            return None
        return max(self.end - time.monotonic(), 0.001)

    def expired(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end


class _Connection(http.client.HTTPConnection):
    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float | None,
        tls: ssl.SSLContext | None,
        server_name: str,
        unix_socket: str | None,
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._tls = tls
        self._server_name = server_name
        self._unix_socket = unix_socket
        self.endpoints = ""  # "local->remote", as Go names a TCP connection in errors

    def _dial(self) -> socket.socket:
        if self._unix_socket is None:
            sock = socket.create_connection((self.host, self.port), self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.endpoints = f"{_address(sock.getsockname())}->{_address(sock.getpeername())}"
            return sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._unix_socket)
        except BaseException:
            sock.close()
            raise
        return sock

    def connect(self) -> None:
        sock = self._dial()
        if self._tls is not None:
            name = self._server_name or None
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=name)
            except ssl.SSLCertVerificationError as exc:
                if exc.verify_code in (62, 64):  # host name / IP address mismatch
                    raise _NameMismatch(self._name_error(name or self.host)) from None
                raise
        self.sock = sock

    def _name_error(self, name: str) -> str:
        """Go's ``x509.HostnameError`` text, from the certificate the server presented."""
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        try:
            with unverified.wrap_socket(self._dial(), server_hostname=name) as tls_sock:
                der = tls_sock.getpeercert(binary_form=True)
        except OSError:
            der = None
        return _hostname_error(der, name)


class _NameMismatch(Exception):
    """The server's certificate does not name the host asked for."""


def _address(addr: Any) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _hostname_error(der: bytes | None, name: str) -> str:
    from cryptography import x509

    if der is None:
        return f"x509: certificate is not valid for any names, but wanted to match {name}"
    cert = x509.load_der_x509_certificate(der)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = None
    if sans is None:
        return "x509: certificate relies on legacy Common Name field, use SANs instead"
    if _parse_ip_text(name):
        ips = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
        if not ips:
            return (
                f"x509: cannot validate certificate for {name} "
                "because it doesn't contain any IP SANs"
            )
        valid = ", ".join(ips)
    else:
        valid = ", ".join(sans.get_values_for_type(x509.DNSName))
    if not valid:
        return f"x509: certificate is not valid for any names, but wanted to match {name}"
    return f"x509: certificate is valid for {valid}, not {name}"


def _parse_ip_text(name: str) -> bool:
    addr = parse_addr(name)
    return addr is not None and not addr.zone


_INVALID_HEADER_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _host_header(host: str) -> str:
    if host.startswith("["):
        end = host.rfind("]")
        zone = host.rfind("%", 0, end)
        if end >= 0 and zone >= 0:
            host = host[:zone] + host[end:]
    if not host.isascii():
        with contextlib.suppress(UnicodeError):
            host = host.encode("idna").decode("ascii")
    return host


def _round_trip(req: _Request, url: GoURL, deadline: _Deadline) -> _Response:
    """Send one request and read its response (Go's ``Client.send``)."""
    op, url_str = _url_error_op(req.method), url.string(redact=True)
    if url.scheme not in ("http", "https"):
        raise _url_failure(op, url_str, f"unsupported protocol scheme {go_quote(url.scheme)}")
    if not url.host:
        raise _url_failure(op, url_str, "http: no Host in request URL")

    headers = dict(req.headers)
    if url.username is not None and "Authorization" not in headers:
        creds = f"{url.username}:{url.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(creds).decode()
    for name, value in headers.items():
        if not name or any(c not in _TOKEN_CHARS for c in name):
            raise _url_failure(op, url_str, f"net/http: invalid header field name {go_quote(name)}")
        if _INVALID_HEADER_VALUE.search(value):
            raise _url_failure(
                op, url_str, f"net/http: invalid header field value for {go_quote(name)}"
            )

    lines: list[tuple[str, str]] = [("Host", _host_header(req.host or url.host))]
    agent = headers.get("User-Agent", _GO_USER_AGENT)
    if agent:
        lines.append(("User-Agent", agent))
    if req.body or req.method in ("POST", "PUT", "PATCH"):
        lines.append(("Content-Length", str(len(req.body))))
    skip = {"Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer"}
    lines += sorted((k, v) for k, v in headers.items() if k not in skip)
    added_gzip = (
        "Accept-Encoding" not in headers and "Range" not in headers and req.method != "HEAD"
    )
    if added_gzip:
        lines.append(("Accept-Encoding", "gzip"))
    if req.close and "Connection" not in headers:
        lines.append(("Connection", "close"))

    hostname = url.hostname()
    port = int(url.port() or (443 if url.scheme == "https" else 80))
    conn = None
    try:
        try:
            tls = _ssl_context(req.tls) if url.scheme == "https" else None
            server_name = req.server_name or hostname
            conn = _Connection(
                hostname,
                port,
                timeout=deadline.remaining(),
                tls=tls,
                server_name=server_name,
                unix_socket=req.unix_socket,
            )
            conn.putrequest(
                req.method, url.request_uri(), skip_host=True, skip_accept_encoding=True
            )
            for name, value in lines:
                conn.putheader(name, value.encode("utf-8"))
            conn.endheaders(req.body or None)
            resp = conn.getresponse()
            if deadline.expired():
                raise TimeoutError
        except Exception as exc:
            endpoints = conn.endpoints if conn is not None else ""
            raise _network_failure(exc, req, url, deadline, endpoints) from None
        return _read_response(conn, resp, req.method, added_gzip, deadline)
    finally:
        if conn is not None:
            conn.close()


def _read_response(
    conn: _Connection,
    resp: http.client.HTTPResponse,
    method: str,
    added_gzip: bool,
    deadline: _Deadline,
) -> _Response:
    headers: dict[str, list[str]] = {}
    for name, value in resp.getheaders():
        key = name.lower()
        if key == "transfer-encoding":
            continue
        headers.setdefault(key, []).append(value)
    status = f"{resp.status} {resp.reason}" if resp.reason else str(resp.status)

    chunks: list[bytes] = []
    body_error = None
    try:
        while True:
            if deadline.expired():
                raise TimeoutError
            if conn.sock is not None:
                conn.sock.settimeout(deadline.remaining())
            chunk = resp.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except TimeoutError:
        body_error = (
            "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
        )
    except http.client.IncompleteRead:
        body_error = "unexpected EOF"
    except OSError as exc:
        body_error = _os_reason(exc)
    body = b"".join(chunks)

    has_body = method != "HEAD" and headers.get("content-length", [""])[0] != "0"
    has_body = has_body and resp.status not in (204, 304) and not 100 <= resp.status < 200
    encoding = headers.get("content-encoding", [""])[0]
    if added_gzip and has_body and encoding.lower() == "gzip":
        headers.pop("content-encoding", None)
        headers.pop("content-length", None)
        if body and body_error is None:
            try:
                body = gzip.decompress(body)
            except gzip.BadGzipFile:
                body, body_error = b"", "gzip: invalid header"
            except EOFError:
                body, body_error = b"", "unexpected EOF"
            except zlib.error:
                body, body_error = b"", "flate: corrupt input"
    return _Response(status, resp.status, headers, body, body_error)


def _network_failure(
    exc: Exception, req: _Request, url: GoURL, deadline: _Deadline, endpoints: str
) -> _Failure:
    """Go's wording for a failed exchange."""
    op, url_str = _url_error_op(req.method), url.string(redact=True)
    if req.unix_socket is not None:
        dial = f"dial unix {req.unix_socket}"
    else:
        hostname, port = url.hostname(), url.port() or ("443" if url.scheme == "https" else "80")
        dial = f"dial tcp {'[' + hostname + ']' if ':' in hostname else hostname}:{port}"
    if isinstance(exc, TimeoutError) or deadline.expired():
        return _url_failure(
            op,
            url_str,
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            timeout=True,
        )
    if isinstance(exc, socket.gaierror):
        return _url_failure(op, url_str, f"dial tcp: lookup {url.hostname()}: no such host")
    if isinstance(exc, _NameMismatch):
        return _url_failure(op, url_str, f"tls: failed to verify certificate: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _url_failure(op, url_str, "tls: failed to verify certificate: " + _x509_reason(exc))
    if isinstance(exc, ssl.SSLError):
        return _url_failure(op, url_str, f"remote error: tls: {exc.reason or exc}".lower())
    if isinstance(exc, ConnectionRefusedError):
        return _url_failure(op, url_str, f"{dial}: connect: connection refused")
    if isinstance(exc, http.client.RemoteDisconnected):
        return _url_failure(op, url_str, "EOF")
    if isinstance(exc, ConnectionResetError):
        kind = "unix" if req.unix_socket is not None else "tcp"
        return _url_failure(op, url_str, f"read {kind} {endpoints}: read: connection reset by peer")
    if isinstance(exc, http.client.HTTPException):
        return _url_failure(op, url_str, f"net/http: HTTP/1.x transport connection broken: {exc}")
    if isinstance(exc, OSError):
        return _url_failure(op, url_str, f"{dial}: connect: {_os_reason(exc)}")
    return _url_failure(op, url_str, str(exc))


def _x509_reason(exc: ssl.SSLCertVerificationError) -> str:
    message = exc.verify_message or str(exc)
    if "expired" in message or "not yet valid" in message:
        return "x509: certificate has expired or is not yet valid"
    return "x509: certificate signed by unknown authority"


def _redirect_behavior(method: str, status: int) -> tuple[str, bool, bool]:
    if status in (301, 302, 303):
        return (method if method in ("GET", "HEAD") else "GET"), True, False
    if status in (307, 308):
        return method, True, True
    return method, False, False


def _is_domain_or_subdomain(sub: str, parent: str) -> bool:
    if sub == parent:
        return True
    if ":" in sub or "%" in sub:
        return False
    return sub.endswith(parent) and sub[len(sub) - len(parent) - 1 : len(sub) - len(parent)] == "."


_SENSITIVE = {
    "Authorization",
    "Www-Authenticate",
    "Cookie",
    "Cookie2",
    "Proxy-Authorization",
    "Proxy-Authenticate",
}
_BODY_HEADERS = {"Content-Encoding", "Content-Language", "Content-Location", "Content-Type"}


def _do(req: _Request) -> _Response:
    """Go's ``Client.Do``: send, and follow redirects as the request allows."""
    deadline = _Deadline(req.timeout_ns)
    first_url = current_url = req.url
    method, body, host = req.method, req.body, req.host
    include_body = True
    strip_sensitive = False
    headers = dict(req.headers)
    hops = 0
    while True:
        hop = replace(req, method=method, body=body, headers=headers, host=host)
        resp = _round_trip(hop, current_url, deadline)
        next_method, should_redirect, include_on_hop = _redirect_behavior(method, resp.status_code)
        if not should_redirect:
            return resp
        if not include_on_hop:
            include_body = False
        location = resp.headers.get("location", [""])[0]
        if not location:
            return resp
        op = _url_error_op(req.method)
        try:
            target = current_url.resolve(parse_go_url(location))
        except URLParseError as exc:
            reason = str(exc)
            raise _url_failure(
                op,
                current_url.string(redact=True),
                f"failed to parse Location header {go_quote(location)}: {reason}",
            ) from None
        if not req.redirect:
            return resp
        hops += 1
        if hops > _MAX_REDIRECTS:
            raise _url_failure(op, location, f"stopped after {_MAX_REDIRECTS} redirects")
        next_host = ""
        if host and host != current_url.host:
            with contextlib.suppress(URLParseError):
                if not parse_go_url(location).scheme:
                    next_host = host
        if not strip_sensitive and first_url.host != target.host:
            first, dest = first_url.hostname().lower(), target.hostname().lower()
            strip_sensitive = not _is_domain_or_subdomain(dest, first)
        headers = {
            k: v
            for k, v in req.headers.items()
            if not (k in _SENSITIVE and strip_sensitive)
            and not (k in _BODY_HEADERS and not include_body)
        }
        if not (current_url.scheme == "https" and target.scheme == "http"):
            headers["Referer"] = headers.get("Referer") or _referer(current_url)
        method = next_method
        body = req.body if include_body else b""
        host = next_host
        current_url = target


def _referer(url: GoURL) -> str:
    return replace(url, username=None, password=None).string()


def _backoff(retry: int) -> float:
    """OPA's ``util.DefaultBackoff`` in seconds (0.1 s base, ×1.6, 60 s cap, ±20 %)."""
    if retry == 0:
        return 0.0
    delay = 0.1
    while delay < 60 and retry > 0:
        delay *= 1.6
        retry -= 1
    delay = min(delay, 60.0)
    return max(delay * (1 + 0.2 * (random.random() * 2 - 1)), 0.0)


def _retry_count(obj: dict[Any, Any]) -> int:
    if "max_retry_attempts" not in obj:
        return 0
    value = obj["max_retry_attempts"]
    if type(value) is int and 0 <= value < 1 << 63:
        return value
    raise _Failure(f'invalid value {rego_string(value)} for field "max_retry_attempts"', "plain")


def _execute(ctx: EvalContext, obj: dict[Any, Any]) -> _Response:
    """OPA's ``ExecuteHTTPRequest``: build the request, send it, retry network errors."""
    req = _prepare(obj)
    retries = _retry_count(obj)
    attempt = 0
    while True:
        try:
            return _do(req)
        except _Failure:
            if attempt == retries:
                raise
        time.sleep(_backoff(attempt))
        attempt += 1


# --- the response --------------------------------------------------------------------------


def _json_float(text: str) -> Any:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        exact = Decimal(text)
        if exact == exact.to_integral_value():
            return int(exact)
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


class _YAMLLoader(yaml.SafeLoader):
    """YAML without timestamp conversion: Go's decoder keeps timestamps as strings."""


_YAMLLoader.yaml_implicit_resolvers = {
    k: [(tag, regexp) for tag, regexp in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _yaml_to_rego(value: Any) -> Any:
    t = type(value)
    if t is dict:
        return {_yaml_key(k): _yaml_to_rego(v) for k, v in value.items()}
    if t is list:
        return [_yaml_to_rego(v) for v in value]
    if t is float and not math.isfinite(value):
        raise ValueError("unsupported value")
    if t in (str, int, float, bool) or value is None:
        return value
    if t is bytes:
        return base64.b64encode(value).decode()
    return str(value)


def _yaml_key(key: Any) -> str:
    if type(key) is str:
        return key
    if key is None:
        return "null"
    if type(key) is bool:
        return "true" if key else "false"
    return encode(key) if type(key) in (int, float) else str(key)


def _media_type_is_json(value: str) -> bool:
    """Go's ``mime.ParseMediaType`` accepts it and it is ``application/json`` or
    ``application/*+json``."""
    base, _, params = value.partition(";")
    media = base.strip().lower()
    kind, slash, sub = media.partition("/")
    if not kind or any(c not in _TOKEN_CHARS for c in kind):
        return False
    if slash and (not sub or any(c not in _TOKEN_CHARS for c in sub)):
        return False
    for param in params.split(";"):
        if not param.strip():
            continue
        name, eq, _ = param.partition("=")
        if not eq or not name.strip() or any(c not in _TOKEN_CHARS for c in name.strip()):
            return False
    return kind == "application" and (sub == "json" or sub.endswith("+json"))


def _decode_body(
    headers: dict[str, list[str]], body: bytes, force_json: bool, force_yaml: bool
) -> Any:
    content_type = headers.get("content-type", [""])[0]
    text = body.decode("utf-8", "replace")
    try:
        if force_json or _media_type_is_json(content_type):
            return json.loads(text, parse_float=_json_float, parse_constant=_reject_constant)
        if force_yaml or "application/yaml" in content_type or "application/x-yaml" in content_type:
            if text.startswith("\ufeff"):
                text = text[1:]
            return _yaml_to_rego(next(yaml.load_all(text, Loader=_YAMLLoader), None))
    except (ValueError, RecursionError, yaml.YAMLError):
        return None
    return None


def _format(resp: _Response, force_json: bool, force_yaml: bool) -> dict[str, Any]:
    """OPA's ``prepareASTResult``."""
    return {
        "status": resp.status,
        "status_code": resp.status_code,
        "body": _decode_body(resp.headers, resp.body, force_json, force_yaml),
        "raw_body": resp.body.decode("utf-8", "replace"),
        "headers": {k: list(v) for k, v in resp.headers.items()},
    }


def _format_read(resp: _Response, force_json: bool, force_yaml: bool) -> dict[str, Any]:
    if resp.body_error is not None:
        raise _wrapped(resp.body_error)
    return _format(resp, force_json, force_yaml)


# --- caches -----------------------------------------------------------------------------


def _bool_field(obj: dict[Any, Any], name: str) -> bool:
    if name not in obj:
        return False
    value = obj[name]
    if type(value) is not bool:
        raise _wrapped(f'invalid value for "{name}" field')
    return value


def _cache_key(obj: dict[Any, Any]) -> dict[Any, Any]:
    """The request as a cache key: ``cache_ignored_headers`` removed from the headers."""
    key = dict(obj)
    ignored = obj.get("cache_ignored_headers")
    headers = obj.get("headers")
    if ignored is not None and headers is not None:
        if type(ignored) is not list or any(type(h) is not str for h in ignored):
            raise _Failure("cache_ignored_headers must be an array of strings", "plain")
        if type(headers) is not dict:
            raise _wrapped("invalid type for headers key")
        key["headers"] = {k: v for k, v in headers.items() if k not in ignored}
    key["cache_ignored_headers"] = None
    return key


def _force_cache_seconds(obj: dict[Any, Any]) -> int:
    if "force_cache_duration_seconds" not in obj:
        raise _wrapped("'force_cache' set but 'force_cache_duration_seconds' parameter is missing")
    text = rego_string(obj["force_cache_duration_seconds"])
    if not re.fullmatch(r"[+-]?\d+", text):
        raise _wrapped(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(1 << 31) <= value < 1 << 31:
        raise _wrapped(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


@dataclass
class _CachedResponse:
    status: str
    status_code: int
    headers: dict[str, list[str]]
    body: bytes
    expires_ns: int
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.body) + sum(len(k) + sum(map(len, v)) for k, v in self.headers.items())

    def response(self) -> _Response:
        return _Response(self.status, self.status_code, self.headers, self.body)


class _InterQueryCache:
    """Responses shared across evaluations (OPA's inter-query builtin cache), LRU-bounded."""

    def __init__(self, max_bytes: int) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[Any, _CachedResponse] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes

    def get(self, key: Any) -> _CachedResponse | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Any, entry: _CachedResponse) -> None:
        if entry.size > self._max_bytes:
            return
        with self._lock:
            self._remove(key)
            self._entries[key] = entry
            self._bytes += entry.size
            while self._bytes > self._max_bytes:
                self._remove(next(iter(self._entries)))

    def delete(self, key: Any) -> None:
        with self._lock:
            self._remove(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _remove(self, key: Any) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size


_INTER_QUERY = _InterQueryCache(_INTER_QUERY_CACHE_BYTES)


def clear_inter_query_cache() -> None:
    """Forget every response cached across evaluations."""
    _INTER_QUERY.clear()


def _parse_http_time(text: str) -> int | None:
    """Go's ``http.ParseTime`` (RFC 1123, RFC 850, ANSI C) in Unix nanoseconds."""
    for fmt in ("%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"):
        try:
            moment = datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        return int(moment.timestamp()) * 1_000_000_000
    return None


def _cache_control(headers: dict[str, list[str]]) -> dict[str, str]:
    directives: dict[str, str] = {}
    for raw in headers.get("cache-control", [""])[0].split(","):
        part = raw.strip(" ")
        if not part:
            continue
        if "=" in part:
            if part.count("=") == 1:
                name, _, value = part.partition("=")
                directives[name.strip(" ")] = value.strip(",")
        else:
            directives[part] = ""
    return directives


def _expiry_from_headers(headers: dict[str, list[str]]) -> int:
    """When a response expires (Unix ns) per ``max-age`` and ``Date``, else ``Expires``."""
    directives = _cache_control(headers)
    if "max-age" in directives:
        text = directives["max-age"]
        if not re.fullmatch(r"\+?\d+", text):
            raise ValueError(f"strconv.ParseUint: parsing {go_quote(text)}: invalid syntax")
        max_age = min(int(text), (1 << 31) - 1)
        date = headers.get("date", [""])[0]
        if not date:
            raise ValueError("no date header")
        created = _parse_http_time(date)
        if created is None:
            raise ValueError(f"parsing time {go_quote(date)}: cannot parse")
        return created + max_age * 1_000_000_000
    expires = headers.get("expires", [""])[0]
    parsed = _parse_http_time(expires) if expires else None
    return parsed if parsed is not None else 0


def _inter_insert(
    ctx: EvalContext, key: Any, obj: dict[Any, Any], resp: _Response, force_seconds: int
) -> None:
    if resp.status_code not in _CACHEABLE_STATUS:
        return
    if force_seconds <= 0 and "no-store" in _cache_control(resp.headers):
        return
    mode = obj.get("caching_mode", "serialized")
    if mode not in ("serialized", "deserialized"):
        return
    if force_seconds > 0:
        expires = ctx.now_ns + force_seconds * 1_000_000_000
    else:
        try:
            expires = _expiry_from_headers(resp.headers)
        except ValueError:
            return
    entry = _CachedResponse(resp.status, resp.status_code, resp.headers, resp.body, expires)
    _INTER_QUERY.put(key, entry)


def _revalidate(
    ctx: EvalContext,
    key: Any,
    obj: dict[Any, Any],
    entry: _CachedResponse,
    *,
    force_seconds: int,
    flags: tuple[bool, bool],
) -> dict[str, Any] | None:
    """Check a stale cached response with the server (OPA's revalidation)."""
    req = _prepare(obj)
    etag = entry.headers.get("etag", [""])[0]
    modified = entry.headers.get("last-modified", [""])[0]
    if not etag and not modified:
        _INTER_QUERY.delete(key)
        return None
    headers = dict(req.headers)
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    conditional = replace(req, headers=headers)
    retries = _retry_count(obj)
    attempt = 0
    while True:
        try:
            resp = _do(conditional)
            break
        except _Failure:
            if attempt == retries:
                _INTER_QUERY.delete(key)
                raise
        time.sleep(_backoff(attempt))
        attempt += 1
    _INTER_QUERY.delete(key)
    if resp.status_code == 200:
        if resp.body_error is not None:
            raise _Failure(resp.body_error, "plain")
        value = _format(resp, *flags)
        _inter_insert(ctx, key, obj, resp, force_seconds)
        return value
    if resp.status_code != 304:
        return None
    merged = {k: list(v) for k, v in entry.headers.items()}
    merged.update({k: list(v) for k, v in resp.headers.items()})
    if force_seconds > 0:
        expires = ctx.now_ns + force_seconds * 1_000_000_000
    else:
        try:
            expires = _expiry_from_headers(resp.headers)
        except ValueError as exc:
            raise _Failure(str(exc), "plain") from None
    refreshed = _CachedResponse(entry.status, entry.status_code, merged, entry.body, expires)
    _INTER_QUERY.put(key, refreshed)
    return _format(refreshed.response(), *flags)


def _get_response(ctx: EvalContext, obj: dict[Any, Any]) -> Any:
    """OPA's ``getHTTPResponse``: consult the caches, else send the request."""
    key_obj = _cache_key(obj)
    key = ("http.send", freeze(key_obj))
    use_cache = _bool_field(obj, "cache")
    force_seconds = 0
    if _bool_field(obj, "force_cache"):
        use_cache = True
        force_seconds = _force_cache_seconds(obj)

    cached = ctx.cache.get(key)
    if isinstance(cached, _Failure):
        raise cached
    if cached is not None:
        return cached

    if not use_cache:
        try:
            resp = _execute(ctx, obj)
        except _Failure as failure:
            ctx.cache[key] = failure
            raise
        flags = (
            _bool_field(key_obj, "force_json_decode"),
            _bool_field(key_obj, "force_yaml_decode"),
        )
        result = _format_read(resp, *flags)
        if resp.status_code in _CACHEABLE_STATUS:
            ctx.cache[key] = result
        return result

    flags = (_bool_field(key_obj, "force_json_decode"), _bool_field(key_obj, "force_yaml_decode"))
    try:
        result = _check_inter_query(ctx, key, key_obj, force_seconds, flags)
    except _Failure as failure:
        ctx.cache[key] = failure
        raise
    if result is not None:
        ctx.cache[key] = result
        return result
    try:
        resp = _execute(ctx, obj)
    except _Failure as failure:
        ctx.cache[key] = failure
        raise
    result = _format_read(resp, *flags)
    ctx.cache[key] = result
    _inter_insert(ctx, key, key_obj, resp, force_seconds)
    return result


def _check_inter_query(
    ctx: EvalContext,
    key: Any,
    key_obj: dict[Any, Any],
    force_seconds: int,
    flags: tuple[bool, bool],
) -> dict[str, Any] | None:
    entry = _INTER_QUERY.get(key)
    if entry is None:
        return None
    if ctx.now_ns < entry.expires_ns:
        return _format(entry.response(), *flags)
    return _revalidate(ctx, key, key_obj, entry, force_seconds=force_seconds, flags=flags)


# --- http.send ---------------------------------------------------------------------------


def _validate(obj: dict[Any, Any]) -> None:
    invalid = RegoSet(k for k in obj if k not in REQUEST_KEYS)
    if invalid:
        raise _wrapped(
            f"operand 1 invalid request parameters(s): {rego_string(invalid)}", "eval_type_error"
        )
    missing = RegoSet(k for k in ("method", "url") if k not in obj)
    if missing:
        raise _wrapped(
            f"operand 1 missing required request parameters(s): {rego_string(missing)}",
            "eval_type_error",
        )


def http_send(ctx: EvalContext, request: Any) -> Any:
    """Send an HTTP request and return ``{status, status_code, headers, body, raw_body}``
    (or, with ``raise_error: false``, an ``error`` object instead of failing)."""
    obj = object_arg(request, 1)
    raise_error = obj.get("raise_error", True)
    if type(raise_error) is not bool:
        raise BuiltinError("invalid value for raise_error field")
    try:
        _validate(obj)
        return _get_response(ctx, obj)
    except _Failure as failure:
        if raise_error:
            raise failure.to_error() from None
        return failure.to_result()


BUILTINS = (BuiltinSpec("http.send", http_send, deterministic=False),)
