"""Tests for ``http.send`` against real local servers (127.0.0.1 and a Unix socket only)."""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import json
import re
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import pdp.builtins.http as http_module
from council.opa_tool import TOOL_DIR
from pdp.builtins.base import BuiltinError, EvalContext, OperandError
from pdp.builtins.http import (
    USER_AGENT,
    canonical_header_key,
    clear_inter_query_cache,
    go_json_marshal,
    http_send,
    parse_go_url,
)
from pdp.values import RegoSet

OPA = TOOL_DIR / "opa"


# --- a local server --------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()):
        self.send_response(code)
        names = {k for k, _ in headers}
        for name, value in headers:
            self.send_header(name, value)
        if "Content-Length" not in names and code not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code not in (204, 304):
            self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path
        self.server.hits[path.split("?")[0]] += 1
        if path.startswith("/echo"):
            peer = (
                self.connection.getpeercert()
                if isinstance(self.connection, ssl.SSLSocket)
                else None
            )
            echo = {
                "method": self.command,
                "path": path,
                "headers": sorted([k.lower(), v] for k, v in self.headers.items()),
                "body": body.decode(),
                "client_cert": bool(peer),
            }
            self._reply(200, json.dumps(echo).encode(), (("Content-Type", "application/json"),))
        elif path.startswith("/status/"):
            code = int(path.split("/")[2])
            self._reply(code, b"status body", (("X-Multi", "a"), ("X-Multi", "b")))
        elif path.startswith("/redirect/"):
            self._reply(int(path.split("/")[2]), b"", (("Location", "/echo/redirected"),))
        elif path == "/gzip":
            data = gzip.compress(b'{"zipped": true}', mtime=0)
            self._reply(
                200, data, (("Content-Type", "application/json"), ("Content-Encoding", "gzip"))
            )
        elif path == "/yaml":
            self._reply(
                200, b"a: 1\nb: [x, y]\nday: 2001-12-14\n", (("Content-Type", "application/yaml"),)
            )
        elif path == "/vendor-json":
            self._reply(200, b'{"x": 1.5}', (("Content-Type", "application/vnd.api+json"),))
        elif path == "/bad-json":
            self._reply(200, b"{bad", (("Content-Type", "application/json; charset=utf-8"),))
        elif path == "/max-age":
            self._reply(
                200,
                b'"fresh"',
                (("Content-Type", "application/json"), ("Cache-Control", "max-age=60")),
            )
        elif path == "/no-store":
            self._reply(200, b"x", (("Cache-Control", "no-store"),))
        elif path == "/etag":
            if self.headers.get("If-None-Match") == '"v1"':
                self._reply(304, b"", (("Cache-Control", "max-age=60"), ("X-Revalidated", "yes")))
            else:
                self._reply(200, b"tagged", (("ETag", '"v1"'), ("Cache-Control", "max-age=0")))
        elif path == "/slow":
            threading.Event().wait(1.0)
            self._reply(200, b"late")
        else:
            self._reply(404, b"nope")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out hang up on purpose


def _serve(server: socketserver.BaseServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    srv = _QuietServer(("127.0.0.1", 0), _Handler)
    srv.hits = Counter()
    _serve(srv)
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _fresh_inter_query_cache() -> None:
    clear_inter_query_cache()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(request: dict[str, Any], ctx: EvalContext | None = None) -> Any:
    return http_send(ctx or EvalContext(), request)


# --- requests and responses ------------------------------------------------------------


def test_get_returns_opa_response_shape(server: Any) -> None:
    resp = send({"method": "get", "url": f"{server.base}/echo"})
    assert resp["status"] == "200 OK"
    assert resp["status_code"] == 200
    assert resp["headers"]["content-type"] == ["application/json"]
    assert json.loads(resp["raw_body"]) == resp["body"]
    port = server.server_address[1]
    assert resp["body"]["method"] == "GET"
    assert resp["body"]["headers"] == [
        ["accept-encoding", "gzip"],
        ["host", f"127.0.0.1:{port}"],
        ["user-agent", "Go-http-client/1.1"],
    ]


def test_custom_headers_are_canonical_and_add_opa_user_agent(server: Any) -> None:
    resp = send(
        {
            "method": "put",
            "url": f"{server.base}/echo?q=1",
            "headers": {"x-foo": "bar", "content-type": "text/plain", "Host": "example.com"},
            "raw_body": "raw",
        }
    )
    headers = dict(resp["body"]["headers"])
    assert headers["x-foo"] == "bar"
    assert headers["host"] == "example.com"
    assert headers["user-agent"] == USER_AGENT
    # A Host header also becomes the TLS server name, so Go drops keep-alives.
    assert headers["connection"] == "close"
    assert headers["content-length"] == "3"
    assert resp["body"]["path"] == "/echo?q=1"
    assert resp["body"]["body"] == "raw"


def test_body_is_marshalled_like_go_and_raw_body_wins(server: Any) -> None:
    resp = send(
        {"method": "post", "url": f"{server.base}/echo", "body": {"b": RegoSet([2, 1]), "a": "<&>"}}
    )
    assert resp["body"]["body"] == '{"a":"\\u003c\\u0026\\u003e","b":[1,2]}'
    resp = send({"method": "post", "url": f"{server.base}/echo", "body": {"x": 1}, "raw_body": "r"})
    assert resp["body"]["body"] == "r"
    assert go_json_marshal({"k": 2.0, "f": 0.5}) == b'{"f":0.5,"k":2}'


def test_content_length_only_where_go_sends_it(server: Any) -> None:
    deleted = send({"method": "delete", "url": f"{server.base}/echo"})
    assert "content-length" not in dict(deleted["body"]["headers"])
    posted = send({"method": "post", "url": f"{server.base}/echo"})
    assert dict(posted["body"]["headers"])["content-length"] == "0"


def test_response_bodies_are_decoded_by_content_type(server: Any) -> None:
    assert send({"method": "get", "url": f"{server.base}/yaml"})["body"] == {
        "a": 1,
        "b": ["x", "y"],
        "day": "2001-12-14",
    }
    assert send({"method": "get", "url": f"{server.base}/vendor-json"})["body"] == {"x": 1.5}
    bad = send({"method": "get", "url": f"{server.base}/bad-json"})
    assert bad["body"] is None and bad["raw_body"] == "{bad"
    text = send({"method": "get", "url": f"{server.base}/status/200"})
    assert text["body"] is None and text["raw_body"] == "status body"
    assert text["headers"]["x-multi"] == ["a", "b"]
    forced = send({"method": "get", "url": f"{server.base}/yaml", "force_json_decode": True})
    assert forced["body"] is None


def test_gzip_is_decoded_transparently(server: Any) -> None:
    resp = send({"method": "get", "url": f"{server.base}/gzip"})
    assert resp["body"] == {"zipped": True}
    assert "content-encoding" not in resp["headers"]
    assert "content-length" not in resp["headers"]
    # Asked for explicitly, it is the caller's to decode.
    raw = send(
        {"method": "get", "url": f"{server.base}/gzip", "headers": {"accept-encoding": "gzip"}}
    )
    assert raw["body"] is None and raw["headers"]["content-encoding"] == ["gzip"]


def test_redirects(server: Any) -> None:
    unfollowed = send({"method": "get", "url": f"{server.base}/redirect/302"})
    assert unfollowed["status_code"] == 302
    assert unfollowed["headers"]["location"] == ["/echo/redirected"]
    followed = send(
        {
            "method": "post",
            "url": f"{server.base}/redirect/302",
            "enable_redirect": True,
            "body": "x",
            "headers": {"content-type": "text/plain", "authorization": "secret"},
        }
    )
    echo = followed["body"]
    assert (echo["method"], echo["path"], echo["body"]) == ("GET", "/echo/redirected", "")
    headers = dict(echo["headers"])
    assert "content-type" not in headers
    assert headers["authorization"] == "secret"
    assert headers["referer"] == f"{server.base}/redirect/302"
    kept = send(
        {
            "method": "post",
            "url": f"{server.base}/redirect/307",
            "enable_redirect": True,
            "body": "x",
        }
    )
    assert (kept["body"]["method"], kept["body"]["body"]) == ("POST", '"x"')


def test_head_and_no_content(server: Any) -> None:
    head = send({"method": "head", "url": f"{server.base}/status/200"})
    assert head["raw_body"] == "" and head["headers"]["content-length"] == ["11"]
    assert send({"method": "get", "url": f"{server.base}/status/204"})["status"] == "204 No Content"


def test_unix_socket() -> None:
    class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp, "http.sock"))
        srv = UnixHTTPServer(path, _Handler)
        srv.hits = Counter()
        _serve(srv)
        try:
            url = f"unix://localhost/echo?socket={urllib.parse.quote(path, safe='')}&b=2&a=1"
            resp = send({"method": "get", "url": url})
        finally:
            srv.shutdown()
            srv.server_close()
    assert resp["body"]["path"] == "/echo?a=1&b=2"
    assert dict(resp["body"]["headers"])["host"] == "localhost"


# --- errors ------------------------------------------------------------------------------


def test_request_validation_errors() -> None:
    with pytest.raises(OperandError) as info:
        send({"bad_key": "bad_value", "method": "get", "url": "http://127.0.0.1:1"})
    assert info.value.message == 'http.send: operand 1 invalid request parameters(s): {"bad_key"}'
    assert info.value.prefix is False
    with pytest.raises(OperandError) as info:
        send({"method": "get"})
    assert (
        info.value.message == 'http.send: operand 1 missing required request parameters(s): {"url"}'
    )
    with pytest.raises(BuiltinError, match="invalid value for raise_error field"):
        send({"method": "get", "url": "http://x", "raise_error": 1})
    with pytest.raises(OperandError, match="operand 1 must be object but got string"):
        send("http://x")  # type: ignore[arg-type]


def test_validation_error_as_result() -> None:
    result = send({"method": "get", "raise_error": False})
    assert result == {
        "status_code": 0,
        "error": {
            "code": "eval_http_send_internal_error",
            "message": "eval_type_error: http.send: operand 1 missing required request "
            'parameters(s): {"url"}',
        },
    }


def test_network_errors() -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    reason = f'Get "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'
    with pytest.raises(BuiltinError) as info:
        send({"method": "get", "url": url})
    assert info.value.message == reason and info.value.prefix
    result = send({"method": "get", "url": url, "raise_error": False})
    assert result == {
        "status_code": 0,
        "error": {"code": "eval_http_send_network_error", "message": reason},
    }
    scheme = send({"method": "get", "url": "ftp://127.0.0.1/x", "raise_error": False})
    assert (
        scheme["error"]["message"] == 'Get "ftp://127.0.0.1/x": unsupported protocol scheme "ftp"'
    )


def test_timeout(server: Any) -> None:
    url = f"{server.base}/slow"
    with pytest.raises(BuiltinError) as info:
        send({"method": "get", "url": url, "timeout": "100ms"})
    assert info.value.message == f"Get {url}: request timed out"
    result = send({"method": "get", "url": url, "timeout": 100_000_000, "raise_error": False})
    assert result["error"] == {
        "code": "eval_http_send_network_error",
        "message": f'Get "{url}": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)",
    }


@pytest.mark.parametrize(
    ("extra", "error", "message"),
    [
        ({"method": 1}, BuiltinError, 'http.send: "method" must be a string'),
        ({"timeout": True}, OperandError,
         "http.send: operand 1 'timeout' must be one of {string, number} but got boolean"),
        ({"timeout": "1x"}, BuiltinError,
         'http.send: invalid timeout value "1x": time: unknown unit "x" in duration "1x"'),
        ({"timeout": 1.5}, BuiltinError,
         "http.send: invalid timeout number value 1.5, must be int64"),
        ({"enable_redirect": "true"}, BuiltinError,
         'http.send: strconv.ParseBool: parsing "\\"true\\"": invalid syntax'),
        ({"headers": []}, BuiltinError, "http.send: invalid type for headers key"),
        ({"headers": {"a": True}}, BuiltinError,
         "http.send: invalid type for headers value %!q(bool=true)"),
        ({"cache": 1}, BuiltinError, 'http.send: invalid value for "cache" field'),
        ({"force_cache": True}, BuiltinError,
         "http.send: 'force_cache' set but 'force_cache_duration_seconds' parameter is missing"),
        ({"tls_ca_cert": "garbage"}, BuiltinError, "http.send: could not append certificates"),
        ({"tls_client_cert": "x", "tls_client_key": "y"}, BuiltinError,
         "http.send: tls: failed to find any PEM data in certificate input"),
        ({"max_retry_attempts": -1}, BuiltinError,
         'http.send: invalid value -1 for field "max_retry_attempts"'),
        ({"url": "127.0.0.1:1"}, BuiltinError,
         'http.send: parse "127.0.0.1:1": first path segment in URL cannot contain colon'),
        ({"method": "g t"}, BuiltinError, 'http.send: net/http: invalid method "G T"'),
    ],
)  # fmt: skip
def test_option_errors(extra: dict[str, Any], error: type, message: str) -> None:
    request = {"method": "get", "url": f"http://127.0.0.1:{_free_port()}", **extra}
    with pytest.raises(error) as info:
        send(request)
    assert type(info.value) is error
    shown = info.value.message if not info.value.prefix else f"http.send: {info.value.message}"
    assert shown == message


# --- caching -----------------------------------------------------------------------------


def test_intra_query_cache(server: Any) -> None:
    ctx = EvalContext()
    request = {"method": "get", "url": f"{server.base}/echo/intra"}
    before = server.hits["/echo/intra"]
    first = send(request, ctx)
    assert send(request, ctx) is first
    assert server.hits["/echo/intra"] == before + 1
    send(request)  # another evaluation asks again
    assert server.hits["/echo/intra"] == before + 2
    failing = {"method": "get", "url": f"{server.base}/status/500"}
    before = server.hits["/status/500"]
    send(failing, ctx)
    send(failing, ctx)
    assert server.hits["/status/500"] == before + 2  # 500 is not a cacheable status


def test_cache_ignored_headers_are_left_out_of_the_key(server: Any) -> None:
    ctx = EvalContext()
    base = {
        "method": "get",
        "url": f"{server.base}/echo/ignored",
        "cache_ignored_headers": ["x-id"],
    }
    before = server.hits["/echo/ignored"]
    send({**base, "headers": {"x-id": "1"}}, ctx)
    send({**base, "headers": {"x-id": "2"}}, ctx)
    assert server.hits["/echo/ignored"] == before + 1


def test_inter_query_cache_honours_max_age(server: Any) -> None:
    request = {"method": "get", "url": f"{server.base}/max-age", "cache": True}
    before = server.hits["/max-age"]
    assert send(request)["body"] == "fresh"
    assert send(request)["body"] == "fresh"
    assert server.hits["/max-age"] == before + 1
    later = EvalContext(now_ns=EvalContext().now_ns + 120 * 10**9)
    send(request, later)
    assert server.hits["/max-age"] == before + 2


def test_inter_query_cache_no_store_and_force_cache(server: Any) -> None:
    plain = {"method": "get", "url": f"{server.base}/no-store", "cache": True}
    before = server.hits["/no-store"]
    send(plain)
    send(plain)
    assert server.hits["/no-store"] == before + 2
    forced = {**plain, "force_cache": True, "force_cache_duration_seconds": 60}
    send(forced)
    send(forced)
    assert server.hits["/no-store"] == before + 3


def test_inter_query_cache_revalidates_with_etag(server: Any) -> None:
    request = {"method": "get", "url": f"{server.base}/etag", "cache": True}
    before = server.hits["/etag"]
    first = send(request)
    assert first["raw_body"] == "tagged"
    second = send(request)  # stale at once: revalidated, answered 304
    assert second["raw_body"] == "tagged"
    assert second["headers"]["x-revalidated"] == ["yes"]
    third = send(request)  # fresh for 60 s after the 304
    assert third["raw_body"] == "tagged"
    assert server.hits["/etag"] == before + 2


def test_retries(monkeypatch: pytest.MonkeyPatch, server: Any) -> None:
    calls = []
    real_do = http_module._do

    def flaky(req: Any) -> Any:
        calls.append(req)
        if len(calls) == 1:
            raise http_module._url_failure("Get", "u", "connection reset")
        return real_do(req)

    monkeypatch.setattr(http_module, "_do", flaky)
    resp = send({"method": "get", "url": f"{server.base}/echo", "max_retry_attempts": 1})
    assert resp["status_code"] == 200 and len(calls) == 2


# --- URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "host", "escaped_path", "query"),
    [
        ("http://example.com", "example.com", "", ""),
        ("https://u:p@[::1]:8443/a%20b/c%2Fd?x=1#f", "[::1]:8443", "/a%20b/c%2Fd", "x=1"),
        # Not a valid encoding as written: Go re-escapes the decoded path.
        ("http://h/a b/c%2Fd", "h", "/a%20b/c/d", ""),
        ("http://h/%7Efoo/ü", "h", "/~foo/%C3%BC", ""),
    ],
)
def test_go_url_parsing(raw: str, host: str, escaped_path: str, query: str) -> None:
    url = parse_go_url(raw)
    assert (url.host, url.escaped_path(), url.raw_query) == (host, escaped_path, query)


def test_canonical_header_key() -> None:
    assert canonical_header_key("x-foo-BAR") == "X-Foo-Bar"
    assert canonical_header_key("a b") == "a b"


# --- TLS -----------------------------------------------------------------------------------


def _certificate(
    name: str, issuer: tuple[Any, Any] | None = None, *, ca: bool = False, sans: list[Any] = ()
) -> tuple[Any, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[1].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return key, builder.sign(issuer[0] if issuer else key, hashes.SHA256())


def _pem(key: Any, cert: Any) -> tuple[str, str]:
    return (
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


@pytest.fixture(scope="module")
def tls_server() -> Iterator[Any]:
    ca = _certificate("Test CA", ca=True)
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    leaf = _certificate("localhost", ca, sans=sans)
    client = _certificate("client", ca)
    with tempfile.TemporaryDirectory() as tmp:
        cert_pem, key_pem = _pem(*leaf)
        Path(tmp, "srv.pem").write_text(cert_pem)
        Path(tmp, "srv.key").write_text(key_pem)
        ca_pem = _pem(*ca)[0]
        Path(tmp, "ca.pem").write_text(ca_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(Path(tmp, "srv.pem"), Path(tmp, "srv.key"))
        context.load_verify_locations(Path(tmp, "ca.pem"))
        context.verify_mode = ssl.CERT_OPTIONAL
        srv = _QuietServer(("127.0.0.1", 0), _Handler)
        srv.hits = Counter()
        srv.socket = context.wrap_socket(srv.socket, server_side=True)
        _serve(srv)
        srv.base = f"https://127.0.0.1:{srv.server_address[1]}"
        srv.ca_pem, srv.ca_file = ca_pem, str(Path(tmp, "ca.pem"))
        srv.client_pem = _pem(*client)
        yield srv
        srv.shutdown()
        srv.server_close()


def test_tls_trust(tls_server: Any) -> None:
    url = f"{tls_server.base}/echo"
    unknown = send({"method": "get", "url": url, "raise_error": False})
    assert unknown["error"]["message"] == (
        f'Get "{url}": tls: failed to verify certificate: '
        "x509: certificate signed by unknown authority"
    )
    for option in (
        {"tls_ca_cert": tls_server.ca_pem},
        {"tls_ca_cert": tls_server.ca_pem.replace("\n", "\\n")},
        {"tls_ca_cert_file": tls_server.ca_file},
        {"tls_insecure_skip_verify": True},
    ):
        assert send({"method": "get", "url": url, **option})["status_code"] == 200


def test_tls_server_name_and_client_certificate(tls_server: Any) -> None:
    url = f"{tls_server.base}/echo"
    mismatch = send(
        {"method": "get", "url": url, "tls_ca_cert": tls_server.ca_pem,
         "tls_server_name": "other.example", "raise_error": False}
    )  # fmt: skip
    assert mismatch["error"]["message"] == (
        f'Get "{url}": tls: failed to verify certificate: '
        "x509: certificate is valid for localhost, not other.example"
    )
    cert, key = tls_server.client_pem
    resp = send(
        {"method": "get", "url": url, "tls_ca_cert": tls_server.ca_pem,
         "tls_client_cert": cert, "tls_client_key": key}
    )  # fmt: skip
    assert resp["body"]["client_cert"] is True


# --- against OPA ---------------------------------------------------------------------------


def _differential_requests(base: str) -> list[dict[str, Any]]:
    refused = f"http://127.0.0.1:{_free_port()}"
    return [
        {"method": "get", "url": f"{base}/echo"},
        {"method": "post", "url": f"{base}/echo", "body": {"b": [1, 2], "a": "<&>"}},
        {"method": "delete", "url": f"{base}/echo"},
        {"method": "put", "url": f"{base}/echo?q=1&r=a%20b", "headers": {"x-foo": "bar"}},
        {"method": "get", "url": f"{base}/echo", "headers": {"Host": "example.com"}},
        {"method": "get", "url": f"{base}/status/500"},
        {"method": "head", "url": f"{base}/status/200"},
        {"method": "get", "url": f"{base}/redirect/302"},
        {"method": "post", "url": f"{base}/redirect/302", "enable_redirect": True, "body": "x"},
        {"method": "post", "url": f"{base}/redirect/307", "enable_redirect": True, "body": "x"},
        {"method": "get", "url": f"{base}/gzip"},
        {"method": "get", "url": f"{base}/yaml"},
        {"method": "get", "url": f"{base}/bad-json"},
        {"method": "get", "url": f"{base}/vendor-json"},
        {"method": "get", "url": f"{base}/status/200", "force_json_decode": True},
        {"method": "get", "url": f"{base}/slow", "timeout": "200ms", "raise_error": False},
        {"method": "get", "url": refused, "raise_error": False},
        {"method": "get", "url": "ftp://127.0.0.1:1/x", "raise_error": False},
        {"method": "get", "url": "127.0.0.1:1", "raise_error": False},
        {"method": "get", "url": f"{base}/echo", "headers": {"a b": "x"}, "raise_error": False},
        {"method": "get", "url": f"{base}/echo", "timeout": "1", "raise_error": False},
        {"method": "get", "url": f"{base}/echo", "cache": 1, "raise_error": False},
        {"method": "get", "url": f"{base}/e%63ho/a%2Fb c"},
        {"method": "get", "url": f'"{base}/echo"'},
    ]


def _normalise(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("error"), dict):
        # OPA's evaluator puts the call's location in front; its Wasm SDK has none.
        message = re.sub(r"^\S+:\d+: ", "", value["error"]["message"])
        value = {**value, "error": {**value["error"], "message": message}}
    if isinstance(value, dict) and isinstance(value.get("headers"), dict):
        value = {**value, "headers": {k: v for k, v in value["headers"].items() if k != "date"}}
    return value


@pytest.mark.differential
def test_agrees_with_opa_eval(server: Any) -> None:
    if not OPA.exists():
        pytest.skip("pinned opa binary not installed")
    requests = _differential_requests(server.base)
    module = "package t\n" + "\n".join(
        f"r{i} := http.send({json.dumps(r)})" for i, r in enumerate(requests)
    )
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "t.rego").write_text(module, encoding="utf-8")
        proc = subprocess.run(
            [str(OPA), "eval", "--format", "json", "-d", str(Path(tmp, "t.rego")), "data.t"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    theirs = json.loads(proc.stdout)["result"][0]["expressions"][0]["value"]
    mismatches = []
    for i, request in enumerate(requests):
        try:
            ours: Any = send(request)
        except BuiltinError:
            ours = None
        if _normalise(theirs.get(f"r{i}")) != _normalise(ours):
            mismatches.append(f"{request}:\n  opa:  {theirs.get(f'r{i}')}\n  ours: {ours}")
    assert not mismatches, "\n".join(mismatches)
