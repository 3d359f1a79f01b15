"""Tests for the regex and glob builtins (``pdp.builtins.regex``).

Unit tables pin behaviour that differs between Go's regexp and naive use of RE2 (empty
matches, ``$`` expansion, Go's error wording); the differential test runs every case
through ``opa eval`` in one call and compares results and error messages.
"""

from __future__ import annotations

from typing import Any

import pytest
from opa_oracle import OPA, eval_calls, host_outcome, mismatches

from pdp.builtins import regex
from pdp.builtins.base import BuiltinError, EvalContext, OperandError

CTX = EvalContext(strict=True)
SPECS = {s.name: s for s in regex.BUILTINS}


def call(name: str, *args: Any) -> Any:
    return SPECS[name].fn(CTX, *args)


@pytest.mark.parametrize(
    ("pattern", "text", "n", "expected"),
    [
        ("a.", "paranormal", -1, ["ar", "an", "al"]),
        ("a.", "paranormal", 2, ["ar", "an"]),
        ("a.", "paranormal", 0, []),
        ("^a.", "abacadaeaf", -1, ["ab"]),
        (".$", "abacadaeaf", -1, ["f"]),
        ("[abcdef]{2}", "abacadaeaf", -1, ["ab", "ac", "ad", "ae", "af"]),
        ("bork", "paranormal", -1, []),
        # Go drops an empty match that touches the previous match.
        ("a*", "baaac", -1, ["", "aaa", ""]),
        ("", "héllo", -1, ["", "", "", "", "", ""]),
        ("é.", "xéaéb", -1, ["éa", "éb"]),
        ("(?i)L", "hello", -1, ["l", "l"]),
    ],
)
def test_find_n(pattern: str, text: str, n: int, expected: list[str]) -> None:
    assert call("regex.find_n", pattern, text, n) == expected


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("^[a-z]+\\[[0-9]+\\]$", "", [""]),
        ("^[a-z]+", "foobar baz", ["", " baz"]),
        ("[a-z]+$", "foobar baz", ["foobar ", ""]),
        ("^[a-z]+$", "foobar baz", ["foobar baz"]),
        ("^[a-z ]+$", "foobar baz", ["", ""]),
        ("a", "banana", ["b", "n", "n", ""]),
        ("z+", "pizza", ["pi", "a"]),
        ("", "abc", ["a", "b", "c"]),
        ("x*", "axbc", ["a", "b", "c"]),
    ],
)
def test_split(pattern: str, text: str, expected: list[str]) -> None:
    assert call("regex.split", pattern, text) == expected


@pytest.mark.parametrize(
    ("text", "pattern", "replacement", "expected"),
    [
        ("-wy-wxxy-", "w(x*)y", "0", "-0-0-"),
        ("foo", "(foo)", "$1$1", "foofoo"),
        ("foo", "^[a-z]", "F", "Foo"),
        ("foo", "^[a-z]+$", "M", "M"),
        ("foo bar", "[a-z]", "_", "___ ___"),
        ("foo barx", "[a-z]{3}", "_", "_ _x"),
        ("baaac", "a*", "X", "XbXcX"),
        # `$1x` names group "1x", which does not exist; `${1}x` is group 1 then "x".
        ("ab", "(a)", "$1x", "b"),
        ("ab", "(a)", "${1}x", "axb"),
        ("ab", "(?P<n>a)", "[${n}|$n]", "[a|a]b"),
        ("ab", "(a)", "$$1", "$1b"),
        ("ab", "(a)", "$", "$b"),
        ("ab", "(a)", "${", "${b"),
        ("ab", "(a)", "$01", "b"),
        ("ab", "(a)", "$2", "b"),
    ],
)
def test_replace(text: str, pattern: str, replacement: str, expected: str) -> None:
    assert call("regex.replace", text, pattern, replacement) == expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("[", "error parsing regexp: missing closing ]: `[`"),
        ("a**", "error parsing regexp: invalid nested repetition operator: `**`"),
        ("x{1001}", "error parsing regexp: invalid repeat count: `{1001}`"),
        ("(?i", "error parsing regexp: invalid or unsupported Perl syntax: `(?i`"),
        ("a\\", "error parsing regexp: trailing backslash at end of expression: ``"),
        ("*", "error parsing regexp: missing argument to repetition operator: `*`"),
        ("\\C", "error parsing regexp: invalid escape sequence: `\\C`"),
        ("(?<=a)b", "error parsing regexp: invalid named capture: `(?<=a)b`"),
        ("(?P<>a)", "error parsing regexp: invalid named capture: `(?P<>`"),
    ],
)
def test_go_syntax_errors(pattern: str, message: str) -> None:
    with pytest.raises(BuiltinError) as info:
        call("regex.find_n", pattern, "x", 1)
    assert info.value.message == message
    assert info.value.code == "eval_builtin_error"


def test_operand_errors() -> None:
    with pytest.raises(OperandError, match="operand 3 must be number but got string"):
        call("regex.find_n", "a", "a", "1")
    with pytest.raises(OperandError, match="operand 3 must be integer number"):
        call("regex.find_n", "a", "a", 1.5)
    with pytest.raises(OperandError, match="operand 2 must be string but got number"):
        call("regex.split", "a", 1)


@pytest.mark.parametrize(
    ("template", "text", "start", "end", "expected"),
    [
        ("urn:foo:{.*}", "urn:foo:bar:baz", "{", "}", True),
        ("urn:foo:<.*>", "urn:foo:bar:baz", "<", ">", True),
        ("a.b{[0-9]+}", "a.b12", "{", "}", True),
        ("a.b{[0-9]+}", "axb12", "{", "}", False),
        ("{a{2}}", "aa", "{", "}", True),
    ],
)
def test_template_match(template: str, text: str, start: str, end: str, expected: bool) -> None:
    assert call("regex.template_match", template, text, start, end) is expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("urn:{.*", "x", "{", "}"), 'unbalanced braces in "urn:{.*"'),
        (("x", "x", "", "}"), "start delimiter has to be exactly one character long but is 0 long"),
        # OPA reports the start delimiter's length for a bad end delimiter.
        (("x", "x", "{", "ab"), "end delimiter has to be exactly one character long but is 1 long"),
        (("{(}", "(", "{", "}"), "error parsing regexp: missing closing ): `^($`"),
    ],
)
def test_template_match_errors(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(BuiltinError) as info:
        call("regex.template_match", *args)
    assert info.value.message == message


@pytest.mark.parametrize(
    ("glob1", "glob2", "expected"),
    [
        ("a.a.[0-9]+z", ".b.b2359825792*594823z", True),
        ("[a-z]+", "[0-9]*", False),
        ("b.*", "bar", True),
        (r"[a-z]+\[[0-9]+\]", "foo\\[1\\]", True),
        (r"[a-z]+\[[0-9]+\]", 'foo["bar"]', False),
        ("a*a+", "aa", True),
        ("a.*b", "acc", False),
    ],
)
def test_globs_match(glob1: str, glob2: str, expected: bool) -> None:
    assert call("regex.globs_match", glob1, glob2) is expected


@pytest.mark.parametrize(
    ("glob", "message"),
    [
        ("pqrs]", "input:pqrs], pos:5, set-close ']' with no preceding '['"),
        ("*a", "input:*a, pos:1, flag '*' must be preceded by a non-flag"),
        ("a\\", "input:a\\, pos:1, input ends with a \\ (escape) character"),
        ("[a", "input:[a, pos:2, found [ without matching ]"),
        ("[b-a]", "input:[b-a], pos:4, range is out of order: 'a' comes before 'b' in Unicode"),
        ("[-a]", "input:[-a], pos:2, range character '-' must be preceded by a Unicode character"),
    ],
)
def test_globs_match_errors(glob: str, message: str) -> None:
    with pytest.raises(BuiltinError) as info:
        call("regex.globs_match", glob, "a")
    assert info.value.message == message + ": the input provided is invalid"


def test_glob_quote_meta() -> None:
    assert call("glob.quote_meta", "*.github.com") == "\\*.github.com"
    assert call("glob.quote_meta", "a?b[c]{d}\\e!f-g,h") == "a\\?b\\[c\\]\\{d\\}\\\\e!f-g,h"


# --- differential test against opa eval ---------------------------------------------------

_TEXTS = ["paranormal", "", "baaac", "héllo wörld", "a\nb\nc", "日本語", "foo bar  baz"]
_PATTERNS = ["a.", "a*", "", "^", "$", "\\b", "(a)|(b)", "[", "a**", "\\C", "(?m)^.", ".",
             "(?<=a)", "\\s+", "(?P<n>o)", "é|ö", "[^a-z]", "a{2}", "x{1001}", "(?i"]  # fmt: skip
_REPLACEMENTS = ["X", "$1", "${1}x", "$1x", "$$", "$", "${n}", "$n", "$0", "$01", "${", "$é"]
_GLOBS = [
    ("a.a.[0-9]+z", ".b.b2359825792*594823z"), ("[a-z]+", "[0-9]*"), ("pqrs]", "[a-b]+"),
    ("b.*", "bar"), (r"[a-z]+\[[0-9]+\]", "foo\\[1\\]"), ("a*", ""), ("", ""), ("a+", ""),
    ("*a", "a"), ("a\\", "a"), ("[a-", "a"), ("[a-]", "a"), ("[b-a]", "a"), ("[a", "a"),
    ("[a-b", "a"), ("[a--]", "a"), ("a+b+", "ab"), ("[abc]+", "[cde]+"), ("x*y*z", "z"),
    ("a*a+", "aa"), ("[\\]]", "]"), ("é.+", "é"), (".+", ""), ("a.", ".b"), ("[a-c]*d", "bbd"),
]  # fmt: skip
_TEMPLATES = [
    ("urn:foo:{.*}", "urn:foo:bar:baz", "{", "}"), ("urn:foo:{.*", "x", "{", "}"),
    ("urn:foo:.*}", "x", "{", "}"), ("{[}", "x", "{", "}"), ("x", "x", "", "}"),
    ("x", "x", "{", "ab"), ("x", "x", "é", "}"), ("{a{2}}", "aa", "{", "}"),
    ('a"\n{b}', 'a"\nb', "{", "}"), ("pre<a|b>post", "prebpost", "<", ">"),
    ("a$b{.}", "a$bc", "{", "}"),
]  # fmt: skip

CASES: list[tuple[str, tuple[Any, ...]]] = [
    *(("regex.find_n", (p, t, n)) for p in _PATTERNS for t in _TEXTS for n in (-1, 1)),
    ("regex.find_n", ("a", "aaa", 1.5)),
    ("regex.find_n", ("a", 1, 1)),
    *(("regex.split", (p, t)) for p in _PATTERNS for t in _TEXTS),
    *(("regex.replace", (t, p, r)) for p in _PATTERNS for t in _TEXTS[:4] for r in _REPLACEMENTS),
    ("regex.replace", (1, "a", "b")),
    *(("regex.globs_match", g) for g in _GLOBS),
    *(("regex.template_match", t) for t in _TEMPLATES),
    *(("glob.quote_meta", (s,)) for s in ["*.github.com", "a?b[c]{d}\\e!f-g,h", "", 1]),
]


@pytest.mark.differential
def test_regex_builtins_agree_with_opa_eval() -> None:
    if not OPA.exists():
        pytest.skip("pinned opa binary not installed")
    found = mismatches(
        CASES, eval_calls(CASES), lambda name, args: host_outcome(SPECS[name].fn, CTX, name, args)
    )
    assert not found, "\n".join(found)
