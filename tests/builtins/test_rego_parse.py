"""Tests for ``rego.parse_module``.

The table tests pin the JSON shape of OPA's ``ast.Module`` and OPA's error messages. The
differential test parses, in one ``opa eval``, every module of OPA's conformance corpus
(when ``../shared`` is present), the project's own policies, a set of tricky modules
written here and mutations of those (truncated, with a character dropped or inserted, so
that most of them fail), and compares each result or error message with ours.
"""

from __future__ import annotations

import glob
import json
import random
import subprocess
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from pdp.builtins.base import BuiltinError, EvalContext, OperandError
from pdp.builtins.rego_parse import rego_parse_module

ROOT = Path(__file__).resolve().parents[2]
OPA = ROOT / ".tools" / "bin" / "opa"
CORPUS = ROOT.parent / "shared" / "conformance" / "opa" / "cases"
CTX = EvalContext(strict=True)

needs_opa = pytest.mark.skipif(not OPA.exists(), reason="pinned opa binary not installed")


def parse(source: str, name: str = "x.rego") -> Any:
    return rego_parse_module(CTX, name, source)


def error(source: str, name: str = "x.rego") -> str:
    with pytest.raises(BuiltinError) as exc:
        parse(source, name)
    return f"rego.parse_module: {exc.value.message}"


def var(name: str) -> dict[str, Any]:
    return {"type": "var", "value": name}


def num(value: int | float) -> dict[str, Any]:
    return {"type": "number", "value": value}


def string(value: str) -> dict[str, Any]:
    return {"type": "string", "value": value}


def ref(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"type": "ref", "value": list(parts)}


def op(name: str) -> dict[str, Any]:
    head, *rest = name.split(".")
    return ref(var(head), *(string(p) for p in rest))


TRUE = {"type": "boolean", "value": True}
TRUE_BODY = [{"index": 0, "terms": TRUE, "generated": True}]


# --- shapes -------------------------------------------------------------------------------


def test_module_package_imports_rules() -> None:
    module = parse("package a.b\n\nimport data.x as y\nimport rego.v1\n\np := 1\n")
    assert module == {
        "package": {"path": [var("data"), string("a"), string("b")]},
        "imports": [
            {"path": ref(var("data"), string("x")), "alias": "y"},
            {"path": ref(var("rego"), string("v1"))},
        ],
        "rules": [
            {
                "head": {"name": "p", "ref": [var("p")], "value": num(1), "assign": True},
                "body": TRUE_BODY,
            }
        ],
    }


def test_partial_set_rule_with_some_in_and_wildcards() -> None:
    rule = parse("package a\np contains x if { some x in [_, 1]; _ = x }")["rules"][0]
    assert rule["head"] == {"name": "p", "ref": [var("p")], "key": var("x")}
    member = {"type": "call", "value": [op("internal.member_2"), var("x")]}
    member["value"].append({"type": "array", "value": [var("$0"), num(1)]})
    assert rule["body"] == [
        {"index": 0, "terms": {"symbols": [member]}},
        {"index": 1, "terms": [op("eq"), var("$1"), var("x")]},
    ]


def test_operators_follow_opa_precedence() -> None:
    body = parse("package a\np if { x := 1 + 2 * 3 == 7 }")["rules"][0]["body"]

    def call(name: str, *args: Any) -> dict[str, Any]:
        return {"type": "call", "value": [op(name), *args]}

    assert body[0]["terms"] == [
        op("assign"),
        var("x"),
        call("equal", call("plus", num(1), call("mul", num(2), num(3))), num(7)),
    ]


def test_collections_are_sorted_and_null_is_an_empty_object() -> None:
    rules = parse('package a\np := {3, 1, "a", 1.0, x} if x := 1\nq := {"b": null, "a": 1}')
    assert rules["rules"][0]["head"]["value"] == {
        "type": "set",
        "value": [num(1), num(3), string("a"), var("x")],
    }
    assert rules["rules"][1]["head"]["value"] == {
        "type": "object",
        "value": [
            [string("a"), num(1)],
            [string("b"), {"type": "null", "value": {}}],
        ],
    }


def test_every_without_key_has_null_key() -> None:
    expr = parse("package a\np if { every x in [1] { x > 0 } }")["rules"][0]["body"][0]
    assert expr["terms"]["key"] is None
    assert expr["terms"]["value"] == var("x")


def test_else_default_and_functions() -> None:
    rules = parse(
        "package a\ndefault d := 1\nf(_, y) := y if { true } else := 2\np[k] := 1 if k := 1\n"
    )["rules"]
    assert rules[0]["default"] is True
    assert rules[0]["body"] == TRUE_BODY
    assert rules[1]["head"]["args"] == [var("$0"), var("y")]
    assert rules[1]["else"]["head"]["args"] == [var("$1"), var("y")]
    assert rules[1]["else"]["head"]["value"] == num(2)
    assert rules[2]["head"] == {
        "name": "p",
        "ref": [var("p"), var("k")],
        "key": var("k"),
        "value": num(1),
        "assign": True,
    }


def test_comments_keep_their_bytes_and_location() -> None:
    module = parse("package a # trailing\n#\r\n# é\np := 1", name="c.rego")
    assert module["comments"] == [
        {"Text": "IHRyYWlsaW5n", "Location": {"file": "c.rego", "row": 1, "col": 11}},
        {"Text": None, "Location": {"file": "c.rego", "row": 2, "col": 1}},
        {"Text": "IMOp", "Location": {"file": "c.rego", "row": 3, "col": 1}},
    ]


def test_template_strings() -> None:
    head = parse('package a\np := $"a{1}b{x}\\{" if x := 1\nq := $""')["rules"]
    assert head[0]["head"]["value"] == {
        "type": "templatestring",
        "value": {
            "multi_line": False,
            "parts": [
                string("a"),
                num(1),
                string("b"),
                {"index": 0, "terms": var("x")},
                string("{"),
            ],
        },
    }
    assert head[1]["head"]["value"]["value"] == {"multi_line": False, "parts": None}


def test_logical_operators_with_future_keywords() -> None:
    body = parse("package a\nimport future.keywords\np if { input.x or not { input.y } }")
    expr = body["rules"][0]["body"][0]["terms"]
    assert expr["type"] == "or"
    assert expr["lhs"] == [{"index": 0, "terms": ref(var("input"), string("x"))}]
    assert expr["rhs"][0]["terms"]["type"] == "not"
    assert expr["rhs"][0]["terms"]["explicit_body"] is True


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("1", 1),
        ("-0", 0),
        ("2.50", 2.5),
        ("1e3", 1000),
        ("1E-2", 0.01),
        ("123456789012345678901234567890", 123456789012345678901234567890),
    ],
)
def test_numbers(literal: str, value: int | float) -> None:
    result = parse(f"package a\np := {literal}")["rules"][0]["head"]["value"]["value"]
    assert result == value
    assert type(result) is type(value)


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "name", "message"),
    [
        (
            "package foo.",
            "x.rego",
            "rego.parse_module: 1 error occurred: x.rego:1: rego_parse_error: unexpected eof "
            "token: expected identifier\n\tpackage foo.\n\t           ^",
        ),
        ("", "x.rego", "rego.parse_module: x.rego:0: rego_parse_error: empty module"),
        (
            "package a\np = ",
            "x.rego",
            "rego.parse_module: 2 errors occurred:\nx.rego:2: rego_parse_error: unexpected eof "
            "token\n\tp = \n\t  ^\nx.rego:2: rego_parse_error: unexpected eof token: expected "
            "rule value term (e.g., p[<nil>] = <VALUE> { ... })\n\tp = \n\t  ^",
        ),
        (
            "package a\np = ",
            "",
            "rego.parse_module: 2 errors occurred:\n2:4: rego_parse_error: unexpected eof token"
            "\n\tp = \n\t  ^\n2:4: rego_parse_error: unexpected eof token: expected rule value "
            "term (e.g., p[<nil>] = <VALUE> { ... })\n\tp = \n\t  ^",
        ),
        (
            "p := 1\npackage a\npackage b\nx.y.z\nq[x]\n",
            "x.rego",
            "rego.parse_module: 5 errors occurred:\nx.rego:1: rego_parse_error: package expected"
            "\nx.rego:2: rego_parse_error: unexpected package\nx.rego:3: rego_parse_error: "
            "unexpected package\nx.rego:4: rego_parse_error: rule must have value assignment "
            "and/or body declaration\nx.rego:5: rego_parse_error: `contains` keyword is required "
            "for partial set rules",
        ),
        (
            "package a\np := .5",
            "x.rego",
            "rego.parse_module: json: error calling MarshalJSON for type *ast.Rule: json: error "
            "calling MarshalJSON for type *ast.Head: json: error calling MarshalJSON for type "
            "*ast.Term: json: error calling MarshalJSON for type ast.Number: json: invalid number "
            'literal ".5"',
        ),
        (
            "package a\nimport foo.bar",
            "x.rego",
            "rego.parse_module: 1 error occurred: x.rego:2: rego_parse_error: unexpected import "
            "path, must begin with one of: {data, future, input, rego}, got: foo (hint: if this is "
            "unexpected, try updating OPA)\n\timport foo.bar\n\t       ^",
        ),
        (
            "package a\n\tp if {\n\t\tx := \n\t}\n",
            "x.rego",
            "rego.parse_module: 1 error occurred: x.rego:4: rego_parse_error: unexpected } token"
            "\n\t}\n\t^",
        ),
        (
            "package a\np { true }",
            "x.rego",
            "rego.parse_module: 1 error occurred: x.rego:2: rego_parse_error: `if` keyword is "
            "required before rule body",
        ),
        (
            "package a\ncount(x)",
            "x.rego",
            "rego.parse_module: 1 error occurred: x.rego:2: rego_parse_error: rule name conflicts "
            "with built-in function",
        ),
        (
            "package a\np := 1e400000",
            "x.rego",
            "rego.parse_module: 2 errors occurred:\nx.rego:2: rego_parse_error: number too big\n\t"
            "p := 1e400000\n\t     ^\nx.rego:2: rego_parse_error: unexpected number token: "
            "expected rule value term (e.g., p := <VALUE> { ... })\n\tp := 1e400000\n\t     ^",
        ),
        (
            'package a\np := $"{x := 1}"',
            "x.rego",
            "rego.parse_module: 2 errors occurred:\nx.rego:2: rego_parse_error: unexpected "
            "assignment (':=') in template-string expression\n\tp := $\"{x := 1}\"\n\t        ^"
            "\nx.rego:2: rego_parse_error: unexpected } token: expected rule value term (e.g., "
            'p := <VALUE> { ... })\n\tp := $"{x := 1}"\n\t              ^',
        ),
        (
            "package a\ndefault p := [x]",
            "x.rego",
            "rego.parse_module: 1 error occurred: x.rego:2: rego_parse_error: illegal default "
            "rule (value cannot contain var)\n\tdefault p := [x]\n\t^",
        ),
        (
            "package a\nevery := 1",
            "x.rego",
            "rego.parse_module: 1 error occurred: x.rego:2: rego_parse_error: every keyword "
            "cannot be used for rule name\n\tevery := 1\n\t^",
        ),
        (
            'package a\np := "é" +\n',
            "x.rego",
            "rego.parse_module: 1 error occurred: x.rego:3: rego_parse_error: unexpected eof "
            'token\n\tp := "é" +\n\t          ^',
        ),
    ],
)
def test_errors(source: str, name: str, message: str) -> None:
    assert error(source, name) == message


def test_operands_must_be_strings() -> None:
    # OPA names the source operand "operand 1" as well.
    for args in ((1, "package a"), ("x.rego", ["package a"])):
        with pytest.raises(OperandError) as exc:
            rego_parse_module(CTX, *args)
        assert exc.value.message.startswith("operand 1 must be string but got ")


# --- differential against opa eval -------------------------------------------------------

TRICKY = r"""
package a
p := -0
q := - 1
r := -x if x := 1
s := 3-1
t := [1, -1, 0.5e3, 0e5, 1E5]
=====
package a
import future.keywords
p if { x := 1; x == 1 or x == 2 }
q if { not { 1 == 2 } }
r if { (1 == 1 or 2 == 2) and 3 == 3 }
s if { {1 == 1} or {2 == 2; 3 == 3} }
=====
package a
import rego.v2
p if { input.x or input.y }
q if { not {input.a} and input.b }
r if { (input.a with input as 1) or input.b }
s if { not (input.a or input.b) }
t if { x := or(input.a, input.b); and(x, x) }
=====
package a
import rego.v2
p if { {x | x := 1} or input.y }
=====
package a
import rego.v2
p if { print(1) or input.y }
=====
package a
import rego.v2
p if { not {1, 2} & input.s == set() }
=====
package a
import rego.v2
p if { {input.a | input.b} or input.c }
=====
package a
import future.keywords.not
p if { not { 1 == 2; input.x } }
q if { not input.y with input as 1 }
=====
package a
import future.keywords.foo
=====
package a
import rego.v3
=====
package a
import data.if
=====
package a
import input.foo as data
=====
package a
p := $"hello {input.name}!"
q := $`multi
line {1+2} \{x}`
r := $"{1}{"s"}{true}{null}{x}" if x := 1
t := $"a\n\u00e9\{"
=====
package a
p := $"{not x}"
=====
package a
p := $"{x # comment
}"
=====
package a
default f(x, x) := 1
=====
package a
default f(1, "a") := 1
=====
package a
p[x] := 1 if x := 1
q[x] if x := 1
r.s.t[u] := 2 if u := "a"
v["a"] if true
w[1].x if true
=====
package a
f(_, _) := 1
g(_) = 1 { true } { false }
h(_) = x if { x := 1 } else = 2 if { true } else := 3
=====
package a
p[x] := 1 if { x := 1 } else := 2
=====
package a
p.q(x) := 1
p.q.r := 2
p.q[r] contains x if { x := 1; r := 1 }
=====
package a
contains := 1
=====
package a
f(x) = 1
input.x = 1
=====
package a
not x
=====
package a.b.c["d"].e
=====
package a[1]
=====
package a-
p := 1
=====
package a
p if { x := {"a": 1, "a": 2, 1: 3, 1.0: 4} }
q := {1, 1.0, "x", {"a"}, [1], {1: 2}, set(), null, true, false, x} if x := 1
=====
package a
p if { x := [y | some y in [3, 2, 1]]; z := {k: v | some k, v in {"a": 1}} }
=====
package a
p if { some x, y, z in input }
=====
package a
p if { every k, v in input { v > k } }
=====
package a
p if { every x, 1 in input { true } }
=====
package a
p if { [1, 2][_] == [_, _][0]; _ = 1 }
=====
package a
p if { x := `raw
string`; y := "esc\"aped\ttab\u0041\\"; z := "\ud83d\ude00" }
=====
package a
p if { x := "illegal \q" }
=====
package a
# METADATA
# title: foo
p if { true } # trailing
=====
package a
p if { x := input.foo.bar[0]["baz qux"].if.contains[1+2] }
if.foo := 1
=====
package a
p if { x := [,1,2]; y := {,1}; z := {, "a": 1}; w := [1,2,] }
=====
package a
p if { x := {1 | 2}; y := [1 | 2]; z := {"a": 1 | true} }
=====
package a
p if { x := {a | b | c} }
=====
package a
p if {
  x := 1
  y := 2 z := 3
}
=====
package a
p if { x := f(1)(2); y := "a".b }
=====
package a
p if { not some x }
=====
package a
p contains x if { x := 1 } { x := 2 }
=====
package a
f(x) contains 1
=====
package a
"a".b(x) := 1
=====
package a
p := 1 if { x } else = 2 else = 3 { y }
=====
package a
p if { x := "é€😀"; y := é }
=====
package a
p if { 1 in [1]; 1, 2 in [1]; f(1, 2 in [2]); k, v in {"a": 1} }
=====
package a
default p := input
default q := f(1)
default r := [x | x := 1]
=====
package a
p := 1 if input.x
else := 2 if input.y
else := 3
=====
package a
p if { x := 1 } # c1
q if { # c3
  y := [ # c4
    1, # c5
  ]
}
=====
package a
p := 1e30103
q := 1e-30102
r := 1e3000000000
=====
package a
p := 0.1
q := 2.5e-3
"""

EXTRA_SOURCES = {
    "crlf.rego": "package a\r\n\r\n# comment\r\np if {\r\n  x := 1\r\n} # c\r\n",
    "crlf_err.rego": "package a\r\np if {\r\n  x := \r\n}\r\n",
    "bom.rego": "\ufeffpackage a\np := 1\nq := 1 \ufeff\n",
    "nbsp.rego": "package a\np :=\u00a01\n",
    "nul.rego": 'package a\np := "\x00"\n',
    "tabs.rego": "package a\n\t\t  p if { x : }\n",
    "lone_cr.rego": "package a\n#\r\n#x\r\r\np := 1",
    "eof_multibyte.rego": "package a\np := 1 # é",
    "unicode_digit.rego": "package a\np\u0663 := 1\n",
    "tmpl_unterminated.rego": "package a\np := $`foo {a} {b}",
}


def _tricky_sources() -> dict[str, str]:
    sources = {
        f"tricky{i:03d}.rego": text.strip("\n") + "\n"
        for i, text in enumerate(TRICKY.split("====="))
    }
    sources.update(EXTRA_SOURCES)
    rng = random.Random(20260)
    noise = [*'{}[]()|&,;:=.-+*/%"`$_ \n\tx1!<>#\\', "not ", " if ", " in ", " else "]
    noise += [" some ", " every ", " with ", " contains ", " := ", " and ", " or "]
    for name, text in list(sources.items()):
        for n in range(3):
            cut = rng.randrange(len(text) + 1)
            sources[f"trunc{n}-{name}"] = text[:cut]
            at = rng.randrange(len(text))
            sources[f"del{n}-{name}"] = text[:at] + text[at + 1 :]
            at = rng.randrange(len(text))
            sources[f"ins{n}-{name}"] = text[:at] + rng.choice(noise) + text[at:]
    return sources


def _corpus_sources() -> dict[str, str]:
    sources: dict[str, str] = {}
    seen: set[str] = set()
    for path in sorted(glob.glob(str(CORPUS / "*" / "*.yaml"))):
        with open(path, encoding="utf-8") as fh:
            doc = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        for i, case in enumerate(doc.get("cases") or []):
            for j, text in enumerate(case.get("modules") or []):
                if text not in seen:
                    seen.add(text)
                    sources[f"{Path(path).parent.name}/{Path(path).stem}#{i}.{j}.rego"] = text
    for path in sorted((ROOT / "rego").rglob("*.rego")):
        sources[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    return sources


def _same(mine: Any, theirs: Any) -> bool:
    """Equal as OPA's JSON, numbers by value (a float stands for a non-integral literal)."""
    if isinstance(theirs, Decimal):
        if type(mine) is int:
            return Decimal(mine) == theirs
        return type(mine) is float and mine == float(theirs)
    if isinstance(theirs, dict):
        return (
            type(mine) is dict
            and mine.keys() == theirs.keys()
            and all(_same(mine[k], theirs[k]) for k in theirs)
        )
    if isinstance(theirs, list):
        return (
            type(mine) is list
            and len(mine) == len(theirs)
            and all(_same(a, b) for a, b in zip(mine, theirs, strict=True))
        )
    return type(mine) is type(theirs) and mine == theirs


def _mine(name: str, source: str) -> tuple[bool, Any]:
    try:
        return True, rego_parse_module(CTX, name, source)
    except BuiltinError as exc:
        return False, f"rego.parse_module: {exc.message}"


@needs_opa
@pytest.mark.differential
def test_differential_against_opa() -> None:
    sources = _tricky_sources()
    if CORPUS.is_dir():
        sources.update(_corpus_sources())
    else:
        for path in sorted((ROOT / "rego").rglob("*.rego")):
            sources[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp, "sources.json")
        data.write_text(json.dumps({"sources": sources}))
        query = "x := {k: rego.parse_module(k, v) | some k, v in data.sources}"
        command = [str(OPA), "eval", "--format", "json", "--show-builtin-errors", "-d"]
        proc = subprocess.Popen([*command, str(data), query], stdout=subprocess.PIPE, text=True)
        # Parse ours while opa works on the same sources.
        mine = {name: _mine(name, text) for name, text in sources.items()}
        stdout, _ = proc.communicate(timeout=300)
    out = json.loads(stdout, parse_float=Decimal, parse_int=Decimal)
    results = out["result"][0]["bindings"]["x"]
    errors = {e["message"] for e in out.get("errors", [])}

    def agrees(name: str) -> bool:
        ok, value = mine[name]
        if name in results:
            return ok and _same(value, results[name])
        return not ok and value in errors

    differ = [name for name in sources if not agrees(name)]
    assert not differ, f"{len(differ)} of {len(sources)} modules differ: {differ[:20]}"
    assert sum(1 for ok, _ in mine.values() if not ok) > 400
