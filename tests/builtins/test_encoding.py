"""Unit tests for hex, base64url, urlquery and uri builtins and the Go string helpers."""

from __future__ import annotations

from typing import Any

import pytest

from pdp.builtins._golang import go_quote_bytes, go_string
from pdp.builtins.base import BuiltinError, EvalContext, OperandError
from pdp.builtins.encoding import (
    base64url_encode_no_pad,
    go_lower,
    hex_decode,
    hex_encode,
    uri_is_valid,
    uri_parse,
    urlquery_decode,
    urlquery_decode_object,
    urlquery_encode,
    urlquery_encode_object,
)
from pdp.values import RegoSet

CTX = EvalContext()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"abc", "abc"),
        (b"\xff", "\ufffd"),
        # Go replaces each byte of a truncated sequence on its own.
        (b"\xe2\x82A", "\ufffd\ufffdA"),
        (b"\xf0\x9f\x98", "\ufffd\ufffd\ufffd"),
        (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),
        (b"a\xc3\xa9\xc3", "a\xe9\ufffd"),
    ],
)
def test_go_string(data: bytes, expected: str) -> None:
    assert go_string(data) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", '"abc"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\n\t\x00\x7f", '"\\n\\t\\x00\\x7f"'),
        ("é\u0085\u00ad", '"é\\u0085\\u00ad"'),
        ("\U0001f600\U000e0001", '"\U0001f600\\U000e0001"'),
        (b"%\xe2\x82", '"%\\xe2\\x82"'),
    ],
)
def test_go_quote(value: str | bytes, expected: str) -> None:
    assert go_quote_bytes(value) == expected


def test_go_lower_is_per_rune() -> None:
    assert go_lower("KİB") == "kib"
    assert go_lower("ΑΣ") == "ασ"


def test_hex() -> None:
    assert hex_encode(CTX, "lorem ipsum") == "6c6f72656d20697073756d"
    assert hex_encode(CTX, "é") == "c3a9"
    assert hex_decode(CTX, "6c6f72656d20697073756d") == "lorem ipsum"
    assert hex_decode(CTX, "FFfe") == "\ufffd\ufffd"
    assert hex_decode(CTX, "e282ac") == "€"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fghijkl", "encoding/hex: invalid byte: U+0067 'g'"),
        ("abc", "encoding/hex: odd length hex string"),
        ("abz", "encoding/hex: invalid byte: U+007A 'z'"),
        ("ab\n", "encoding/hex: invalid byte: U+000A"),
        ("a√", "encoding/hex: invalid byte: U+00E2 'â'"),
        ("f0\u00ad", "encoding/hex: invalid byte: U+00C2 'Â'"),
    ],
)
def test_hex_decode_errors(text: str, message: str) -> None:
    with pytest.raises(BuiltinError) as exc:
        hex_decode(CTX, text)
    assert exc.value.message == message


def test_base64url_encode_no_pad() -> None:
    assert base64url_encode_no_pad(CTX, "hello") == "aGVsbG8"
    assert base64url_encode_no_pad(CTX, "\xff\xfe") == "w7_Dvg"
    with pytest.raises(OperandError):
        base64url_encode_no_pad(CTX, [])


def test_urlquery_encode_decode() -> None:
    assert urlquery_encode(CTX, "a=b+1") == "a%3Db%2B1"
    assert urlquery_encode(CTX, "hello world/é~-_.") == "hello+world%2F%C3%A9~-_."
    assert urlquery_decode(CTX, "a%3Db%2B1") == "a=b+1"
    assert urlquery_decode(CTX, "a+b%20c") == "a b c"
    assert urlquery_decode(CTX, "%ff%E2%82%AC") == "\ufffd€"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("%zz", 'invalid URL escape "%zz"'),
        ("a%e2%8", 'invalid URL escape "%8"'),
        ("100%", 'invalid URL escape "%"'),
        ("%4G%zz", 'invalid URL escape "%4G"'),
    ],
)
def test_urlquery_decode_errors(text: str, message: str) -> None:
    with pytest.raises(BuiltinError) as exc:
        urlquery_decode(CTX, text)
    assert exc.value.message == message


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({}, ""),
        ({"c": "d", "a": "b"}, "a=b&c=d"),
        ({"a": ["b+1", "c+2"]}, "a=b%2B1&a=c%2B2"),
        ({"a": RegoSet(["z", "b"])}, "a=b&a=z"),
        ({"a": [], "b": "x y"}, "b=x+y"),
        ({1: "a", (1, "<a>"): "b"}, "1=a&%5B1%2C%22%5Cu003ca%5Cu003e%22%5D=b"),
    ],
)
def test_urlquery_encode_object(obj: dict[Any, Any], expected: str) -> None:
    assert urlquery_encode_object(CTX, obj) == expected


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"a": 1}, "operand 1 values must be string, array[string], or set[string]"),
        ({"a": ["x", 1]}, "operand 1 values must be string, array[string], or set[string]"),
        ([], "operand 1 must be object but got array"),
    ],
)
def test_urlquery_encode_object_errors(obj: Any, message: str) -> None:
    with pytest.raises(OperandError) as exc:
        urlquery_encode_object(CTX, obj)
    assert exc.value.message == message


def test_urlquery_decode_object() -> None:
    assert urlquery_decode_object(CTX, "a=1&b=2&a=3") == {"a": ["1", "3"], "b": ["2"]}
    assert urlquery_decode_object(CTX, "a=1&b") == {"a": ["1"], "b": [""]}
    assert urlquery_decode_object(CTX, "&&a+b=c+d&") == {"a b": ["c d"]}
    assert urlquery_decode_object(CTX, "") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=1;b=2", "invalid semicolon separator in query"),
        ("c=%x&a=1;b", "invalid semicolon separator in query"),
        ("%zz=1&b=%yy", 'invalid URL escape "%zz"'),
        ("&" * 10000, "number of URL query parameters exceeded limit"),
    ],
)
def test_urlquery_decode_object_errors(text: str, message: str) -> None:
    with pytest.raises(BuiltinError) as exc:
        urlquery_decode_object(CTX, text)
    assert exc.value.message == message


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "https://user:pw@example.com:8443/a/b%20c?x=1&y=%2F#frag%20ment",
            {
                "scheme": "https",
                "hostname": "example.com",
                "port": "8443",
                "path": "/a/b c",
                "raw_path": "/a/b c",
                "raw_query": "x=1&y=%2F",
                "fragment": "frag ment",
            },
        ),
        (
            "http://[fe80::1%25en0]:8080/a%2fb",
            {
                "scheme": "http",
                "hostname": "fe80::1%en0",
                "port": "8080",
                "path": "/a/b",
                "raw_path": "/a%2fb",
            },
        ),
        ("foo://a:b:80/", {"scheme": "foo", "hostname": "a:b", "port": "80", "path": "/",
                           "raw_path": "/"}),
        ("mailto:someone@example.com?subject=hi", {"scheme": "mailto", "raw_query": "subject=hi"}),
        ("HTTP://EXAMPLE.COM", {"scheme": "http", "hostname": "EXAMPLE.COM"}),
        ("x?#", {"path": "x", "raw_path": "x"}),
        ("", {}),
    ],
)  # fmt: skip
def test_uri_parse(uri: str, expected: dict[str, str]) -> None:
    assert uri_parse(CTX, uri) == expected
    assert uri_is_valid(CTX, uri) is (uri != "")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://a:b:80/", 'parse "http://a:b:80/": invalid port ":b:80" after host'),
        ("http://[1.2.3.4]/", 'parse "http://[1.2.3.4]/": invalid IP-literal'),
        ("http://%41/", 'parse "http://%41/": invalid URL escape "%41"'),
        (":x", 'parse ":x": missing protocol scheme'),
        ("a\nb", 'parse "a\\nb": net/url: invalid control character in URL'),
        ("x#%zz", 'parse "x#%zz": invalid URL escape "%zz"'),
        (
            "http://[1::2::3]/",
            'parse "http://[1::2::3]/": invalid host: '
            'ParseAddr("1::2::3"): multiple :: in address (at ":3")',
        ),
    ],
)
def test_uri_parse_errors(uri: str, message: str) -> None:
    with pytest.raises(BuiltinError) as exc:
        uri_parse(CTX, uri)
    assert exc.value.message == message
    assert uri_is_valid(CTX, uri) is False


def test_uri_is_valid_rejects_non_strings() -> None:
    assert uri_is_valid(CTX, 1) is False
    with pytest.raises(OperandError):
        uri_parse(CTX, 1)
