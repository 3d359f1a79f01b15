"""Differential test: the scalar-parser and encoding builtins against ``opa eval``.

Every case becomes one rule of a single module, evaluated in one ``opa eval`` call by
:func:`opa_oracle.eval_calls` (with ``--v0-compatible``). Cases producing integers above
Python's 4300-digit parsing limit are left to the unit tests.
"""

from __future__ import annotations

from typing import Any

import pytest
from opa_oracle import OPA, Outcome, eval_calls, host_outcome, mismatches

from pdp.builtins import casts, encoding, identifiers, semver, units
from pdp.builtins.base import EvalContext
from pdp.values import RegoSet

pytestmark = pytest.mark.differential


_UNITS = [
    "10K", "10k", "10Ki", "10KI", "10ki", "1m", "100m", "500m", "1000m", "1.1Ki", "0.0005K",
    "-3.5E2m", "1e10", "3.2E4", "2.5e3K", "1e-2", "7.8E-1", "5E", "5e", "1e", "1E", "42",
    "+5", "-5K", "1e+5", "010.5", "5.", ".5K", ".0", "0.0", "-0", "123456789123456789.123m",
    "1.5e1000m", "0.33333333333333333333m", "0.00000000005", "0.00000000004999", "-0.00000000005",
    '"100TI"', '"10"K', "", "G", "foo", "0.0.0", ".5.2", "1..5", "1e5e5", "1/2", "5-", "+-5",
    "100 k", " 327Mi ", "1e1234567", "1e0000001", "0.05e-999999", "0e-999999",
    "1e-999999", "5mi", "5MI", "5Mi", "5mI", "5Kb", "5Ä", "5é", "5μ", "5\tK", "1E3M", "10e",
    "10E", "10Ei", "10eI", "١", "5٣", "4E2G", "1e+", "1e-", "1.", ".", "-", "+", "e5", "-e5",
    "1ee5", "1e5K", "1e-5Ei",
]  # fmt: skip

_BYTES = [
    "10KB", "10KIB", "10kb", "10Kib", "200mb", "300GiB", "1.1KB", "1.1KiB", ".5KB", "100k",
    "100ki", "100m", "100mib", "100g", "10e", "10eb", "10ei", "10eib", '"100TIB"', "1e3KB",
    "3.2E2MiB", "4.5e1GiB", "5e6", "1e-2KB", "6.4E1GB", "7.5e1TiB", "5e2MiB", "5E", "2e2GiB",
    "123456789012345678901234567890", "0.1e30", "1e-400", "1e400", "1e28", "1e29", "2.5e50",
    "9007199254740993", "18446744073709551615", "18446744073709551617", "36893488147419103231",
    "0.1", "0.9", "-0.9", "-1.5KB", "1.00000000000000000001e20", "3.3333333333333333333e30",
    "123.456e-1KiB", "1e-20EiB", "7e-18EB", "0.000000000000000001e", "1.5ei", "1.5İB",
    "1kİb", "", "GB", "foo", "0.0.0", ".5.2", "100 kb", " 327MiB ", "1e1234567",
    "0.05e-999999", "5XB", "5ÄB", "١",
]  # fmt: skip

_SEMVER = [
    ("1.0.0", "2.0.0"), ("2.0.0", "1.0.0"), ("1.0.0", "1.0.0"), ("v1.0.0", "1.0.0"),
    ("1.0.0-alpha", "1.0.0"), ("1.0.0", "1.0.0-alpha"), ("1.0.0-alpha", "1.0.0-alpha.1"),
    ("1.0.0-alpha.1", "1.0.0-alpha.beta"), ("1.0.0-alpha.beta", "1.0.0-beta"),
    ("1.0.0-beta", "1.0.0-beta.2"), ("1.0.0-beta.2", "1.0.0-beta.11"),
    ("1.0.0-beta.11", "1.0.0-rc.1"), ("1.0.0-rc.1", "1.0.0"), ("1.0.0+build", "1.0.0"),
    ("1.0.0-1", "1.0.0-a"), ("1.0.0-a", "1.0.0-1"), ("1.0.0-A", "1.0.0-a"),
    ("9223372036854775807.0.0", "1.0.0"), ("1.0.0-99999999999999999999", "1.0.0-1"),
    ("1.0.0-x.99999999999999999999.a", "1.0.0-x.99999999999999999998.b"),
    ("1", "1.0.0"), ("1.0.0", "1"), ("01.0.0", "1.0.0"), ("1.0.0", "1.0.0-01"),
    ("1.0.0-", "1.0.0"), ("1.0.0+", "1.0.0"), ("1.0.0+a..b", "1.0.0"), ("vv1.0.0", "1.0.0"),
    ("9223372036854775808.0.0", "1.0.0"), ("1.0.0-a_b", "1.0.0"), ("1.2.3.4", "1.0.0"),
    ("+1.0.0", "1.0.0"), ("1.0.0\n", "1.0.0"), ("1.0.0-é", "1.0.0"), ('1."0.0', "1.0.0"),
]  # fmt: skip

_UUIDS = [
    "00000000-0000-4000-8000-000000000000", "{00000000-0000-4000-8000-000000000000}",
    "(00000000-0000-4000-8000-000000000000!", "urn:uuid:000003e8-48b9-21ee-b200-325096b39f47",
    "URN:UUID:000003E8-48B9-21EE-B200-325096B39F47", "000003e8-48b9-21ee-b200-325096b39f47",
    "6bea8ef2d3d33cd184e09bab06a52ece", "38074da4-0b00-388d-9c3c-362de965547a",
    "c232ab00-9414-11ec-b3c8-9f6bdeced846", "c232ab00-9414-11ec-f3c8-0f6bdeced846",
    "c232ab00-9414-11ec-d3c8-036bdeced846", "c232ab00-9414-11ec-33c8-016bdeced846",
    "000003e8-48b9-2fff-b207-325096b39f47", "ffffffff-ffff-1fff-bfff-ffffffffffff",
    "00000000-0000-1000-8000-000000000000", "urn:uuix:000003e8-48b9-21ee-b200-325096b39f47",
    "00000000-0000-4000-8000-00000000000g", "00000000x0000-4000-8000-000000000000",
    "6bea8ef2d3d33cd184e09bab06a52ecz", "", "not-a-uuid", "0000000-00000-4000-8000-000000000000",
]  # fmt: skip

_URIS = [
    "https://user:pass@example.com:8443/a/b%20c/../d?x=1&y=%2F#frag%20ment",
    "http://[fe80::1%25en0]:8080/a%20b?x=1#f%20g", "http://[::1]", "http://[::1]:",
    "http://[1.2.3.4]/", "http://[::ffff:1.2.3.4]/", "http://[::1%zz]/", "http://%41/",
    "http://a%C3%A4b/", "http://[::1", "http://x]/", "http://a[b]/", "http://[::1]x/",
    "http://[::1]:8a/", "http://a:b:80/", "foo://a:b:80/", "http://a:80:/", "ht tp://x",
    ":x", "a:b/c", "a:b/c?q#f", "x#%zz", "x#", "x?", "x?#", "*", "", "/", "//", "///a",
    "//host/path", "mailto:someone@example.com", "file:///etc/passwd", "HTTP://EXAMPLE.COM/",
    "http://example.com/%2e%2e/%2F", "http://example.com/a%zz", "http://example.com/a%2",
    "http://exa mple.com/", "http://example.com/a b", "http://ex\x7fample.com/", "a\nb",
    "http://us@er@host/", "http://us er@host/", "http://usér@host/", "http://u%zz@host/",
    "http://host/?a=1?b=2", "http://host/é?é=1#é", "http://host/%ff", "http://[::1%25]/",
    "http://[fe80::1%25%41]/", "http://[fe80::1%25%00]/", "http://[fe80::1%25é]/",
    "http://[1::2::3]/", "http://[12345::]/", "http://[1:2:3:4:5:6:7:8:9]/", "http://[1:2]/",
    "http://[::1.2.3]/", "http://[::1.2.3.4.5]/", "http://[::01.2.3.4]/", "http://[::256.2.3.4]/",
    "http://[1:2:3:4:5:6:7::]/", "http://[1:2:3:4:5:6:7:8::]/", "http://[1:2:3:4:5:6:1.2.3.4]/",
    "http://[1:2:3:4:5:1.2.3.4]/", "http://[::1:]/", "http://[:1]/", "http://[g::]/",
    "http://[1.2.3.4%25z]/", "http://[%25z]/", "http://[1]/", "http://[]/", "http://[::]:80",
    "http://[::ffff:1.2.3.4%25eth0]:1/", "http://[1:2:3:4:5:6:7:1.2.3.4]/",
    "http://[1.2..3]/", "http://[1.2.3.]/", "http://[.1.2.3]/", "http://[1.2.3.4.5]/",
    "http://[1.2.3a]/", "http://[1.2.3]/", "http://[a::b%]/", "http://:80/", "http://h:/",
    "https://h:65536/", "http://h:-1/", "scheme+x-y.z://h/", "1http://h/", "-x:y", "a/b:c",
    "./a:b", "http:", "http:/", "http:?", "http:#", "http://h/p?", "http://h/p?q?",
    "http://host/a%2fb", "http://host/a?b#c#d", "http://ho%25st/", "http://h/\u00e9",
]  # fmt: skip

_QUERIES = [
    "a=b+1",
    "",
    "hello world",
    "a&b=c",
    "é/ü?#%+~-_.!*'()",
    "\x00\x7f\xff",
    "\U0001f600",
]
_QUERY_DECODE = [
    "a%3Db%2B1", "a+b", "%zz", "a%e2%8", "%", "%4", "%4G", "%ff%fe", "%E2%82%AC", "%e2%82",
    "100%", "%%", "a%2", "é%41",
]  # fmt: skip
_QUERY_OBJECTS = [
    "a=value_a1&b=value_b&a=value_a2", "a=value_a1&b", "", "a=1;b=2", "a=1&b=%x", "&&a&&",
    "=x", "a==b", "a=1;b=2&c=%x&d", "c=%x&a=1;b", "a+b=c+d", "%zz=1&b=%yy", "k=%ff",
]  # fmt: skip
_HEX = ["6c6f72656d20697073756d", "fghijkl", "abc", "ab\n", "a√", "ff", "FFfe", "", "e282",
        "e282ac", "a", "zz", "0g", "f0\u00ad", "c3"]  # fmt: skip
_TEXTS = ["", "hello", "there", "lorem ipsum", "é", "\U0001f600", "\x00\xff", "a?b/c+d"]

CASES: list[tuple[str, tuple[Any, ...]]] = [
    *(("units.parse", (s,)) for s in _UNITS),
    ("units.parse", (5,)),
    *(("units.parse_bytes", (s,)) for s in _BYTES),
    ("units.parse_bytes", (None,)),
    *(("semver.compare", pair) for pair in _SEMVER),
    ("semver.compare", (1, "1.0.0")),
    ("semver.compare", ("1.0.0", ["x"])),
    *(("semver.is_valid", (a,)) for a, _ in _SEMVER),
    ("semver.is_valid", (1,)),
    ("semver.is_valid", (None,)),
    *(("uuid.parse", (s,)) for s in _UUIDS),
    ("uuid.parse", (123,)),
    ("rand.intn", ("x", 0)),
    ("rand.intn", ("x", 0.0)),
    ("rand.intn", (1, 5)),
    ("rand.intn", ("x", 1.5)),
    ("rand.intn", ("x", 99999999999999999999)),
    ("rand.intn", ("x", "5")),
    *(("hex.encode", (s,)) for s in _TEXTS),
    ("hex.encode", (1,)),
    *(("hex.decode", (s,)) for s in _HEX),
    ("hex.decode", (True,)),
    *(("base64url.encode_no_pad", (s,)) for s in _TEXTS),
    ("base64url.encode_no_pad", ([],)),
    *(("urlquery.encode", (s,)) for s in [*_QUERIES, *_TEXTS]),
    ("urlquery.encode", (1,)),
    *(("urlquery.decode", (s,)) for s in _QUERY_DECODE),
    ("urlquery.decode", (None,)),
    ("urlquery.encode_object", ({},)),
    ("urlquery.encode_object", ({"a": "b", "c": "d"},)),
    ("urlquery.encode_object", ({"a": "c=b+1"},)),
    ("urlquery.encode_object", ({"a": ["b+1", "c+2"]},)),
    ("urlquery.encode_object", ({"a": RegoSet(["z", "b", "y"])},)),
    ("urlquery.encode_object", ({"b": "x y", "a": ["é", "&"], "é": "1", "A": []},)),
    ("urlquery.encode_object", ({1: "a", 2.5: "b", None: "d", (1, "<a>"): "e"},)),
    ("urlquery.encode_object", ({False: "c", "x": ["y"]},)),
    ("urlquery.encode_object", ({"a": 1},)),
    ("urlquery.encode_object", ({"a": [1]},)),
    ("urlquery.encode_object", ({"a": None},)),
    ("urlquery.encode_object", ({"a": {"b": "c"}},)),
    ("urlquery.encode_object", ({"a": RegoSet([1])},)),
    ("urlquery.encode_object", ([],)),
    ("urlquery.encode_object", ("a=b",)),
    *(("urlquery.decode_object", (s,)) for s in _QUERY_OBJECTS),
    ("urlquery.decode_object", (1,)),
    *(("uri.parse", (s,)) for s in _URIS),
    ("uri.parse", (1,)),
    *(("uri.is_valid", (s,)) for s in _URIS),
    ("uri.is_valid", (1,)),
    ("uri.is_valid", (None,)),
    ("cast_array", ([1, "a"],)),
    ("cast_array", (RegoSet([3, 1, "a"]),)),
    ("cast_array", ("x",)),
    ("cast_array", ({"a": 1},)),
    ("cast_set", ([3, 1, 1],)),
    ("cast_set", (RegoSet([2, 1]),)),
    ("cast_set", (None,)),
    ("cast_string", ("x",)),
    ("cast_string", (1,)),
    ("cast_boolean", (False,)),
    ("cast_boolean", ("true",)),
    ("cast_null", (None,)),
    ("cast_null", (0,)),
    ("cast_object", ({"a": [1]},)),
    ("cast_object", ([],)),
    ("numbers.range_step", (0, 10, 2)),
    ("numbers.range_step", (0, -10, 2)),
    ("numbers.range_step", (10, 3, 2)),
    ("numbers.range_step", (0, 10, -2)),
    ("numbers.range_step", (0, 10, 0)),
    ("numbers.range_step", (2, 2, 2)),
    ("numbers.range_step", (2, 5, 2)),
    ("numbers.range_step", (0, 10, 99999999999999999999)),
    ("numbers.range_step", (99999999999999999990, 99999999999999999999, 4)),
    ("numbers.range_step", (1.0, 3, 1)),
    ("numbers.range_step", (1.5, 3, 1)),
    ("numbers.range_step", (1, 3.5, 1)),
    ("numbers.range_step", (1, 3, 0.5)),
    ("numbers.range_step", ("1", 3, 1)),
    ("numbers.range_step", (1, None, 1)),
    ("numbers.range_step", (1, 3, [])),
    ("numbers.range_step", (1, 3, -0.5)),
]


SPECS = {s.name: s for m in (casts, encoding, identifiers, semver, units) for s in m.BUILTINS}


def _run_python(name: str, args: tuple[Any, ...]) -> Outcome:
    return host_outcome(SPECS[name].fn, EvalContext(strict=True), name, args)


def test_builtins_agree_with_opa_eval() -> None:
    if not OPA.exists():
        pytest.skip("pinned opa binary not installed")
    found = mismatches(CASES, eval_calls(CASES, v0_compatible=True), _run_python)
    assert not found, "\n".join(found)
