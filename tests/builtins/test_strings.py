"""Tests for the string builtins, Go's fmt emulation and the text/template emulation."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from council.opa_tool import find_opa
from pdp.builtins._golang import go_quote
from pdp.builtins.base import BuiltinError, EvalContext, OperandError
from pdp.builtins.gofmt import GoInt, JSONNumber, sprint, sprintf, sprintln
from pdp.builtins.gotemplate import TemplateError, render
from pdp.builtins.strings import (
    BUILTINS,
    any_prefix_match,
    any_suffix_match,
    indexof_n,
    rego_text,
    render_template,
    split_n,
    sprintf_,
    strings_count,
)
from pdp.values import RegoSet, rego_equal

CTX = EvalContext(strict=True)
SPECS = {spec.name: spec for spec in BUILTINS}


# --- Go fmt ----------------------------------------------------------------------------

# Expected outputs are Go 1.26's fmt.Sprintf (the toolchain OPA v1.22.3 is built with).
GO_SPRINTF = [
    ("%v|%d|%s", [5, 5, "x"], "5|5|x"),
    ("%+v|%#v|%+d|%#x|%x", [5, 5, 5, 255, "héllo"], "5|5|+5|0xff|68c3a96c6c6f"),
    ("%05s|%-05d|%05d|%+05d|% 5d", ["ab", 3, -3, 3, 3], "000ab|3    |-0003|+0003|    3"),
    ("%.0d|%5.0d|%.3d|%8.3d", [0, 0, 7, -7], "|     |007|    -007"),
    ("%b|%o|%O|%#o|%#b|%X|%#X", [5, 8, 8, 8, 5, 255, 255], "101|10|0o10|010|0b101|FF|0XFF"),
    (
        "%c|%q|%+q|%U|%#U|%#U",
        [0x1F600, 0x1F600, 0x1F600, 0x1F600, 0x1F600, 7],
        "😀|'😀'|'\\U0001f600'|U+1F600|U+1F600 '😀'|U+0007",
    ),
    ("%c|%q|%U", [-1, 0xD800, -1], "\ufffd|'�'|U+FFFFFFFFFFFFFFFF"),
    ("%v|%v|%v|%v|%v", [1e6, 1e21, 123456.0, 1e-5, 0.0001], "1e+06|1e+21|123456|1e-05|0.0001"),
    (
        "%f|%.2f|%e|%E|%g|%G|%F",
        [3.14159, 2.675, 1234.5, 0.5, 1e-7, 1e21, 1.5],
        "3.141590|2.67|1.234500e+03|5.000000E-01|1e-07|1E+21|1.500000",
    ),
    ("%.0f|%.0f|%.0f|%.1f|%.3g|%.0g", [0.5, 1.5, 2.5, 0.25, 100.0, 123.0], "0|2|2|0.2|100|1e+02"),
    ("%#.3g|%#g|%#.0e|%#.0f|%#v", [1.0, 100000.0, 5.0, 5.0, 1.0], "1.00|100000.|5.e+00|5.|1"),
    (
        "%x|%X|%.3x|%#x|%b",
        [1.5, -0.1, 1 / 3, 1.5, 1.0],
        "0x1.8p+00|-0X1.999999999999AP-04|0x1.555p-02|0x1.8000p+00|4503599627370496p-52",
    ),
    (
        "%08.3f|%+08.3f|% 08.3f|%-08.3f|",
        [-3.14159, 3.14159, 3.14159, 3.14159],
        "-003.142|+003.142| 003.142|3.142   |",
    ),
    (
        "%v|%5v|%05v|%+v|%v",
        [float("inf"), float("-inf"), float("inf"), float("inf"), -0.0],
        "+Inf| -Inf| +Inf|+Inf|-0",
    ),
    (
        "%s|%5.1s|%.3s|%q|%#q|%#q|%+q",
        ["a", "héllo", "héllo", "é\x01", "a`b", "ab", "é"],
        'a|    h|hél|"é\\x01"|"a`b"|`ab`|"\\u00e9"',
    ),
    (
        "%x|% x|%# X|%.2x|%10x|",
        ["héllo", "hé", "hé", "héllo", ""],
        "68c3a96c6c6f|68 c3 a9|0X68 0XC3 0XA9|68c3|          |",
    ),
    ("%t|%5t|%v", [True, False, None], "true|false|<nil>"),
    (
        "%d|%s|%x|%+v|%#v",
        [2**70, 2**70, 2**70, 2**70, -(2**70)],
        "1180591620717411303424|1180591620717411303424|400000000000000000|"
        "+1180591620717411303424|-1180591620717411303424",
    ),
    (
        "%030.25d|%-30d|%.0d|%#o|%O",
        [2**70, 2**70, 2**64, 2**64, -(2**64)],
        "     0001180591620717411303424|1180591620717411303424        |18446744073709551616|"
        "02000000000000000000000|-0o2000000000000000000000",
    ),
    (
        "%T|%T|%T|%T|%T|%T",
        [1, 2**70, 1.5, "s", GoInt(1), JSONNumber("1")],
        "int64|*big.Int|float64|string|int|json.Number",
    ),
    ("%d|%s|%f|%t", ["x", 5, "y", 1], "%!d(string=x)|%!s(int64=5)|%!f(string=y)|%!t(int64=1)"),
    (
        "%5.2z|%!|%.|%5.|%é",
        [1, 1, 1, 1, 1],
        "%!z(int64=   01)|%!!(int64=1)|%!|(int64=1)%!|(int64=    1)%!é(int64=1)",
    ),
    ("%.", [1], "%!.(int64=1)"),
    (
        "%f|%z|%w|%#w|%p",
        [2**70, 1.5, "x", "x", "x"],
        '%!f(big.Int=1180591620717411303424)|%!z(float64=1.5)|%!w(string=x)|%!w(string="x")|'
        "%!p(string=x)",
    ),
    ("%d %d", [1], "1 %!d(MISSING)"),
    (
        "%d",
        [1, 2, "x", 2**70, 1.5, None],
        "1%!(EXTRA int64=2, string=x, *big.Int=1180591620717411303424, float64=1.5, <nil>)",
    ),
    ("%[2]d %[1]d %d", [1, 2], "2 1 2"),
    ("%[3]d|%[0]d|%[x]d", [1], "%!d(BADINDEX)|%!d(BADINDEX)|%!d(BADINDEX)"),
    ("%[2]*[1]d", [12, 5], "   12"),
    ("%*d|%-*d|%*d|", [3, 1, 3, 1, -3, 1], "  1|1  |1  |"),
    ("%*d|%.*d|%.*d", ["x", 1, -3, 1, 2, 1], "%!(BADWIDTH)1|%!(BADPREC)1|01"),
    ("%*d", [1000001, 1], "%!(BADWIDTH)1"),
    ("%12345678d", [1], "%!(NOVERB)%!(EXTRA int64=1)"),
    ("abc%|100%%|%5%|%-", [], "abc%!|(MISSING)100%|%|%!(NOVERB)"),
    ("%[1]d %d %d", [1, 2], "1 2 %!d(MISSING)"),
    (
        "%v|%d|%s|%#v",
        [[1, "a", None, [True]], {"b": JSONNumber("1"), "a": "x"}, [JSONNumber("1")], ["a", None]],
        "[1 a <nil> [true]]|map[%!d(string=a):%!d(string=x) %!d(string=b):%!d(json.Number=1)]|"
        '[1]|[]interface {}{"a", interface {}(nil)}',
    ),
]


@pytest.mark.parametrize(("fmt", "args", "expected"), GO_SPRINTF)
def test_go_sprintf(fmt: str, args: list[Any], expected: str) -> None:
    assert sprintf(fmt, args) == expected


def test_go_sprint_and_sprintln() -> None:
    # Spaces go only between two operands that are both not strings.
    assert sprint([1, 2, "a", "b", 3, JSONNumber("4"), 5, 6.5]) == "1 2ab345 6.5"
    assert sprintln([1, "a", None]) == "1 a <nil>\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc", '"abc"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\a\b\f\n\r\t\v\x00\x7f", '"\\a\\b\\f\\n\\r\\t\\v\\x00\\x7f"'),
        ("é\u00a0\u200b😀\U000e0001", '"é\\u00a0\\u200b😀\\U000e0001"'),
    ],
)
def test_go_quote(text: str, expected: str) -> None:
    assert go_quote(text) == expected


# --- sprintf ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "values", "expected"),
    [
        ("hi", [], "hi"),
        ("hi %s", ["there"], "hi there"),
        ("hi %02d", [5], "hi 05"),
        ("%s", [123456789123456789123], "123456789123456789123"),
        ("%d|%d", [5.0, 1.5], "%!d(float64=5)|%!d(float64=1.5)"),
        (
            "%v|%d|%s|%v",
            [[1, "a", 1.0, {"b": RegoSet()}], [1], True, RegoSet([2, 1])],
            '[1, "a", 1.0, {"b": set()}]|%!d(string=[1])|true|{1, 2}',
        ),
        ("%v|%v", [None, {(1, 2): "x", 1: RegoSet(["a\n"])}], 'null|{1: {"a\\n"}, [1, 2]: "x"}'),
    ],
)
def test_sprintf(fmt: str, values: list[Any], expected: str) -> None:
    assert sprintf_(CTX, fmt, values) == expected


def test_sprintf_operand_errors() -> None:
    with pytest.raises(OperandError, match="operand 1 must be string but got number"):
        sprintf_(CTX, 1, [])
    with pytest.raises(OperandError, match="operand 2 must be array but got set"):
        sprintf_(CTX, "%s", RegoSet(["x"]))


def test_rego_text() -> None:
    value = {"b": [1, 2.5, None, True], "a": RegoSet(), 1: {"x": RegoSet([3, 1])}}
    assert rego_text(value) == '{1: {"x": {1, 3}}, "a": set(), "b": [1, 2.5, null, true]}'


# --- affix matching, count, split_n, indexof_n -----------------------------------------


@pytest.mark.parametrize(
    ("search", "base", "prefix", "suffix"),
    [
        ("abc", "ab", True, False),
        ("abc", "bc", False, True),
        ("abc", ["x", "ab"], True, False),
        (["x", "abc"], RegoSet(["bc", "q"]), False, True),
        ([], ["a"], False, False),
        (["a"], [], False, False),
        ("", "", True, True),
        ("héllo", ["hé", "lo"], True, True),
    ],
)
def test_any_affix_match(search: Any, base: Any, prefix: bool, suffix: bool) -> None:
    assert any_prefix_match(CTX, search, base) is prefix
    assert any_suffix_match(CTX, search, base) is suffix


@pytest.mark.parametrize(
    ("search", "base", "message"),
    [
        (1, "a", "operand 1 must be one of {string, set, array} but got number"),
        ("a", None, "operand 2 must be one of {string, set, array} but got null"),
        ([1], "a", "operand 1 must be array of strings but got array containing number"),
        ("a", RegoSet(["a", 1]), "operand 2 must be set of strings but got set containing number"),
        ({"a": 1}, 1, "operand 1 must be one of {string, set, array} but got object"),
    ],
)
def test_any_affix_match_errors(search: Any, base: Any, message: str) -> None:
    for fn in (any_prefix_match, any_suffix_match):
        with pytest.raises(OperandError) as err:
            fn(CTX, search, base)
        assert err.value.message == message


@pytest.mark.parametrize(
    ("text", "sub", "expected"),
    [("cheese", "e", 3), ("dummy", "", 6), ("", "", 1), ("11111", "11", 2), ("héé", "", 4)],
)
def test_strings_count(text: str, sub: str, expected: int) -> None:
    assert strings_count(CTX, text, sub) == expected


@pytest.mark.parametrize(
    ("text", "sep", "n", "expected"),
    [
        ("a,b,c", ",", 2, ["a", "b"]),
        ("a,b,c", ",", 10, ["a", "b", "c"]),
        ("a,b,c", ",", 0, []),
        ("a,b,c", ",", -1, ["c"]),
        ("a,b,c", ",", -5, ["a", "b", "c"]),
        ("héllo", "", 3, ["h", "é", "l"]),
        ("héllo", "", -2, ["l", "o"]),
        ("", "", 2, []),
        ("", ",", 2, [""]),
        ("a,b", ",", 1.0, ["a"]),
        ("a,b", ",", 2**63 - 1, ["a", "b"]),
    ],
)
def test_split_n(text: str, sep: str, n: Any, expected: list[str]) -> None:
    assert split_n(CTX, text, sep, n) == expected


def test_split_n_errors() -> None:
    for n in (1.5, 2**63):
        with pytest.raises(OperandError) as err:
            split_n(CTX, "a", ",", n)
        assert err.value.message == "operand 3 must be integer number but got floating-point number"


@pytest.mark.parametrize(
    ("text", "search", "expected"),
    [
        ("dogcatdogcat", "cat", [3, 9]),
        ("aaaa", "aa", [0, 1, 2]),
        ("😇😀😇😀😇😀", "😀", [1, 3, 5]),
        ("dogcat", "rabbit", []),
    ],
)
def test_indexof_n(text: str, search: str, expected: list[int]) -> None:
    assert indexof_n(CTX, text, search) == expected


def test_indexof_n_empty_search() -> None:
    with pytest.raises(BuiltinError) as err:
        indexof_n(CTX, "abc", "")
    assert err.value.message == "empty search character"
    assert err.value.prefix


# --- render_template -------------------------------------------------------------------

VARS = {
    "a": "s",
    "n": 2023,
    "arr": [1, "x", None, True],
    "m": {"k": "v", "z": [1]},
    "t": True,
    "e": "",
    "nul": None,
}

RENDERED = [
    ("{{.a}} {{.n}} {{.t}} {{.nul}} {{.missing}}", "s 2023 true <undefined> <undefined>"),
    ("{{.m}} {{.arr}} {{.m.z}}", "map[k:v z:[1]] [1 x <nil> true] [1]"),
    ("{{range $i, $e := .arr}}{{$i}}={{$e}};{{end}}", "0=1;1=x;2=<undefined>;3=true;"),
    (
        "{{range $k, $v := .m}}{{$k}}:{{$v}} {{end}}|{{range .missing}}x{{else}}empty{{end}}",
        "k:v z:[1] |empty",
    ),
    (
        "{{range 3}}{{.}}{{end}}{{range .arr}}{{if not .}}{{break}}{{end}}[{{.}}]{{end}}",
        "012[1][x]",
    ),
    (
        "{{if .e}}a{{else if .t}}b{{end}} {{with .m}}{{.k}}{{end}} {{with $x := .a}}{{$x}}{{end}}",
        "b v s",
    ),
    ("{{$x := 1}}{{$x = 2}}{{$x}} {{ .a -}}  \n  {{- .a }} {{/* c */}}", "2 ss "),
    (
        '{{printf "%d|%5.2f|%q|%v" .n 3.14159 .a .missing}} {{print 1 2 "a" "b"}}',
        '%!d(json.Number=2023)| 3.14|"s"|<nil> 1 2ab',
    ),
    (
        '{{html "<a href=\'x\'>&"}} {{js "<é\\n"}} {{urlquery "a b/é"}}',
        "&lt;a href=&#39;x&#39;&gt;&amp; \\u003Cé\\u000A a+b%2F%C3%A9",
    ),
    (
        '{{len .arr}} {{len .m}} {{len .n}} {{len "héllo"}} {{index .arr 1}} {{index .m "k"}} '
        '{{index "abc" 1}}',
        "4 2 4 6 x v 98",
    ),
    (
        '{{slice .arr 1 3}} {{slice .arr 1 4}} {{eq .a "s"}} {{eq .n "2023"}} {{lt 1 2}} {{ge '
        "1.5 2.5}}",
        "[x <nil>] [x <nil> true] true true true false",
    ),
    ('{{define "x"}}<{{.}}>{{end}}{{template "x" .a}}{{block "b" .n}}[{{.}}]{{end}}', "<s>[2023]"),
    (
        "{{1.5}} {{1e3}} {{0x10}} {{'a'}} {{-5}} {{1_000}} {{017}} {{1+2i}}",
        "1.5 1000 16 97 -5 1000 15 (1+2i)",
    ),
]


@pytest.mark.parametrize(("template", "expected"), RENDERED)
def test_render_template(template: str, expected: str) -> None:
    assert render_template(CTX, template, VARS) == expected


RENDER_ERRORS = [
    (
        "{{.a.b}}",
        'template: template:1:4: executing "template" at <.a.b>: can\'t evaluate field b in type '
        "interface {}",
    ),
    ("{{.a}", "template: template:1: bad character U+007D '}'"),
    (
        "{{eq .n 1}}",
        'template: template:1:2: executing "template" at <eq .n 1>: error calling eq: '
        "incompatible types for comparison: json.Number and int",
    ),
    (
        "{{index .arr 5}}",
        'template: template:1:2: executing "template" at <index .arr 5>: error calling index: '
        "index out of range: 5",
    ),
    (
        "{{index .arr 4}}",
        'template: template:1:2: executing "template" at <index .arr 4>: error calling index: '
        "reflect: slice index out of range",
    ),
    (
        "{{.nul.x}}",
        'template: template:1:6: executing "template" at <.nul.x>: nil pointer evaluating '
        "interface {}.x",
    ),
    (
        "{{range .n}}{{end}}",
        'template: template:1:8: executing "template" at <.n>: range can\'t iterate over 2023',
    ),
    ("line1\n{{.a\n}}{{if}}", "template: template:3: missing value for if"),
    ("{{if .t}}", "template: template:1: unexpected EOF"),
    ("{{foo}}", 'template: template:1: function "foo" not defined'),
    ("{{$x}}", 'template: template:1: undefined variable "$x"'),
    ("{{break}}", "template: template:1: {{break}} outside {{range}}"),
    (
        "{{1 2}}",
        'template: template:1:2: executing "template" at <1>: can\'t give argument to '
        "non-function 1",
    ),
    (
        '{{template "nope"}}',
        'template: template:1:11: executing "template" at <{{template "nope"}}>: template "nope" '
        "not defined",
    ),
    (
        '{{define "r"}}{{template "r"}}{{end}}{{template "r"}}',
        'template: template:1:25: executing "r" at <{{template "r"}}>: exceeded maximum template '
        "depth (100000)",
    ),
    (
        '{{define "a"}}1{{end}}{{define "a"}}2{{end}}',
        'template: template:1: template: multiple definition of template "a"',
    ),
    ("{{99999999999999999999}}", 'template: template:1: integer overflow: "99999999999999999999"'),
    (
        "{{18446744073709551615}}",
        'template: template:1:2: executing "template" at <18446744073709551615>: '
        "18446744073709551615 overflows int",
    ),
    (
        "{{range .e}}{{end}}",
        'template: template:1:8: executing "template" at <.e>: range can\'t iterate over ',
    ),
    (
        "{{printf .n}}",
        'template: template:1:9: executing "template" at <.n>: wrong type for value; expected '
        "string; got json.Number",
    ),
    ('{{"\\q"}}', "template: template:1: invalid syntax"),
    ("{{/* x", "template: template:1: unclosed comment"),
]


@pytest.mark.parametrize(("template", "message"), RENDER_ERRORS)
def test_render_template_errors(template: str, message: str) -> None:
    with pytest.raises(BuiltinError) as err:
        render_template(CTX, template, VARS)
    assert err.value.message == message
    assert err.value.code == "eval_builtin_error"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"s": RegoSet([1, 2])},
            "invalid character '1' looking for beginning of object key string",
        ),
        ({"s": RegoSet()}, "invalid character 's' looking for beginning of value"),
        ({"s": RegoSet(["a"])}, "invalid character '}' after object key"),
        ({"s": RegoSet(["a", "b"])}, "invalid character ',' after object key"),
        ({"s": "\x01"}, "invalid character 'x' in string escape code"),
        ({"s": ["\U000e0001"]}, "invalid character 'U' in string escape code"),
        ({"s": {1: 2}}, "invalid character '1' looking for beginning of object key string"),
    ],
)
def test_render_template_variables_must_be_json(variables: dict[str, Any], message: str) -> None:
    with pytest.raises(BuiltinError) as err:
        render_template(CTX, "{{.s}}", variables)
    assert err.value.message == message


def test_render_template_nested_recursion_is_an_error() -> None:
    with pytest.raises(TemplateError, match="max expression depth exceeded"):
        render("{{" + "(" * 400 + "1" + ")" * 400 + "}}", {})


# --- differential against opa eval -----------------------------------------------------


def _lit(value: Any) -> str:
    """A Rego literal for ``value``; its type is hidden so that OPA checks it at run time."""
    return f'object.get({{}}, "k", {_rego(value)})'


def _rego(value: Any) -> str:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_rego(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_rego(k)}: {_rego(v)}" for k, v in value.items()) + "}"
    if isinstance(value, RegoSet):
        return "{" + ", ".join(_rego(v) for v in value) + "}" if value else "set()"
    raise TypeError(value)


def _call(name: str, args: list[Any]) -> str:
    return f"{name}({', '.join(_lit(a) for a in args)})"


def _python(name: str, args: list[Any]) -> tuple[str, Any]:
    spec = SPECS[name]
    try:
        return "ok", spec.fn(CTX, *args)
    except BuiltinError as e:
        return e.code, f"{name}: {e.message}" if e.prefix else e.message


DIFF_OK: list[tuple[str, list[Any]]] = [
    (
        "sprintf",
        [
            "%v|%d|%s|%v|%T|%T|%v",
            [[1, "a", {"b": RegoSet()}], [1], True, RegoSet([2, 1]), 1.5, 2**70, None],
        ],
    ),
    (
        "sprintf",
        ["%x %o %b %X %#x %O %+d % d %08.3f", [255, 255, 5, 255, 2**70, -(2**70), 5, 5, -1.5]],
    ),
    (
        "sprintf",
        ["%v %v %v %.2f %e %g %G %E %F", [1e21, 1e20, 1e-7, 2.675, 1234.5, 1e-5, 1e21, 0.5, 2.5]],
    ),
    ("sprintf", ["%q %q %c %U %#U %t %t", ["héllo\n", 65, 0x1F600, 0x1F600, 0xE9, True, "x"]]),
    ("sprintf", ["%d %d|%d|%*d|%[2]s %[1]s|%!|100%%|%z", [1, 2, 3, 4, "a", "b", 1.5]]),
    (
        "sprintf",
        ["%s|%v|%5.1f|%-8.3s|%10.4v|", ["\x01\u00a0é\t", ['\x01"\\'], 2.25, "abcdef", "abcdefgh"]],
    ),
    ("sprintf", ["%v %v %v", [{"b": [1, {"c": RegoSet(["x", 1])}], "a": None}, [], {}]]),
    ("strings.any_prefix_match", [["x", "abc"], RegoSet(["ab", "q"])]),
    ("strings.any_suffix_match", [["x", "abc"], RegoSet(["bc", "q"])]),
    ("strings.any_prefix_match", ["héllo", ["é", "hé"]]),
    ("strings.any_suffix_match", [[], ["a"]]),
    ("strings.count", ["héé", ""]),
    ("strings.count", ["11111", "11"]),
    ("strings.split_n", ["a,b,c", ",", 2]),
    ("strings.split_n", ["a,b,c", ",", -2]),
    ("strings.split_n", ["héllo", "", 3]),
    ("strings.split_n", ["", ",", 2]),
    ("indexof_n", ["ééé", "éé"]),
    ("indexof_n", ["aaaa", "aa"]),
    *[("strings.render_template", [t, VARS]) for t, _ in RENDERED],
]

DIFF_ERRORS: list[tuple[str, list[Any]]] = [
    ("sprintf", [1, []]),
    ("sprintf", ["%s", "x"]),
    ("strings.any_prefix_match", [1, "a"]),
    ("strings.any_suffix_match", ["a", [1]]),
    ("strings.any_prefix_match", [RegoSet([1]), "a"]),
    ("strings.any_suffix_match", ["a", RegoSet(["a", 1])]),
    ("strings.count", ["a", None]),
    ("strings.split_n", ["a,b", ",", 1.5]),
    ("strings.split_n", ["a,b", ",", 2**63]),
    ("strings.split_n", ["a,b", ",", "x"]),
    ("indexof_n", ["abc", ""]),
    ("indexof_n", [1, "a"]),
    ("strings.render_template", ["x", []]),
    ("strings.render_template", ["{{.s}}", {"s": RegoSet(["a", "b"])}]),
    ("strings.render_template", ["{{.s}}", {"s": "\x01"}]),
    *[("strings.render_template", [t, VARS]) for t, _ in RENDER_ERRORS],
]


def _opa_repl(queries: list[str]) -> list[dict[str, Any]]:
    """Run queries through one ``opa run`` REPL with strict builtin errors; one answer each.

    Unlike ``opa eval``, which stops at the first error, the REPL answers every query.
    """
    script = "strict-builtin-errors\njson\n" + "\n".join(queries) + "\n"
    binary = find_opa()
    proc = subprocess.run(
        [str(binary), "run"], input=script, capture_output=True, text=True, timeout=60, check=True
    )
    text = proc.stdout[proc.stdout.index("{") :]
    decoder = json.JSONDecoder()
    answers = []
    pos = 0
    while pos < len(text):
        answer, pos = decoder.raw_decode(text, pos)
        answers.append(answer)
        while pos < len(text) and text[pos].isspace():
            pos += 1
    assert len(answers) == len(queries)
    return answers


@pytest.mark.differential
def test_differential_results() -> None:
    answers = _opa_repl([_call(name, args) for name, args in DIFF_OK])
    for (name, args), answer in zip(DIFF_OK, answers, strict=True):
        assert "errors" not in answer, (name, args, answer)
        want = answer["result"][0]["expressions"][0]["value"]
        code, got = _python(name, args)
        assert code == "ok", (name, args, got)
        assert rego_equal(got, want), (name, args, got, want)


@pytest.mark.differential
def test_differential_errors() -> None:
    answers = _opa_repl([_call(name, args) for name, args in DIFF_ERRORS])
    for (name, args), answer in zip(DIFF_ERRORS, answers, strict=True):
        error = answer["errors"][0]
        assert _python(name, args) == (error["code"], error["message"]), (name, args)
