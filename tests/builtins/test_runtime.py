"""Tests for the runtime builtins: ``opa.runtime``, ``trace``, ``internal.print`` (what
``print()`` compiles to) and ``rego.metadata.*``."""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

from council.opa_tool import TOOL_DIR
from pdp.builtins.base import UNDEFINED, BuiltinError, EvalContext, OperandError
from pdp.builtins.runtime import (
    BUILTINS,
    InternalError,
    internal_print,
    opa_runtime,
    rego_metadata_chain,
    rego_metadata_rule,
    rego_string,
    trace,
)
from pdp.values import RegoSet, encode

OPA = TOOL_DIR / "opa"


def _printing_context() -> tuple[EvalContext, list[str]]:
    lines: list[str] = []
    return EvalContext(print=lines.append), lines


# --- rego_string -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (12, "12"),
        (2.5, "2.5"),
        ('a"b\n', '"a\\"b\\n"'),
        ("é\u00a0\x01", '"é\\u00a0\\x01"'),
        ([1, "a"], '[1, "a"]'),
        ({"b": 1, "a": [{}]}, '{"a": [{}], "b": 1}'),
        ({(1, 2): 3, 1: "x"}, '{1: "x", [1, 2]: 3}'),
        (RegoSet(), "set()"),
        (RegoSet([2, 1, "x"]), '{1, 2, "x"}'),
    ],
)
def test_rego_string(value: Any, text: str) -> None:
    assert rego_string(value) == text


# --- internal.print --------------------------------------------------------------------


def test_print_joins_arguments_and_marks_undefined() -> None:
    ctx, lines = _printing_context()
    operands = [RegoSet(["hello"]), RegoSet([1]), RegoSet(), RegoSet([RegoSet()]), RegoSet([None])]
    assert internal_print(ctx, operands) is UNDEFINED
    assert lines == ["hello 1 <undefined> set() null"]


def test_print_writes_the_cross_product() -> None:
    ctx, lines = _printing_context()
    internal_print(ctx, [RegoSet([2, 1]), RegoSet(["b", "a"])])
    assert lines == ["1 a", "1 b", "2 a", "2 b"]


def test_print_without_hook_does_nothing() -> None:
    assert internal_print(EvalContext(), "not even an array") is UNDEFINED


def test_print_errors() -> None:
    ctx, lines = _printing_context()
    with pytest.raises(OperandError, match="operand 1 must be array but got string"):
        internal_print(ctx, "x")
    with pytest.raises(InternalError) as info:
        internal_print(ctx, [RegoSet([1]), [1]])
    assert info.value.code == "eval_internal_error"
    assert info.value.message == "illegal argument type: array"
    assert info.value.prefix is False
    assert lines == []


# --- opa.runtime / trace / rego.metadata -----------------------------------------------


def test_runtime_defaults_to_empty_object() -> None:
    assert opa_runtime(EvalContext()) == {}


def test_runtime_redacts_credentials() -> None:
    runtime = {
        "env": {"HOME": "/root"},
        "version": "1.22.3",
        "config": {
            "services": {"s": {"url": "https://x", "credentials": {"bearer": {"token": "t"}}}},
            "keys": {"k": {"algorithm": "RS256", "key": "secret", "private_key": "p"}},
        },
    }
    result = opa_runtime(EvalContext(runtime=runtime))
    assert result == {
        "env": {"HOME": "/root"},
        "version": "1.22.3",
        "config": {
            "services": {"s": {"url": "https://x"}},
            "keys": {"k": {"algorithm": "RS256"}},
        },
    }
    # The context's own runtime document is left intact.
    assert runtime["config"]["keys"]["k"]["key"] == "secret"
    listed = opa_runtime(EvalContext(runtime={"config": {"services": [{"credentials": 1}]}}))
    assert listed == {"config": {"services": [{}]}}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"services": "x"}, "illegal service config type: string"),
        ({"keys": [1]}, "illegal keys config type: []interface {}"),
        ({"keys": {"k": 1}}, "type assertion error"),
    ],
)
def test_runtime_rejects_malformed_config(config: dict[str, Any], message: str) -> None:
    with pytest.raises(BuiltinError) as info:
        opa_runtime(EvalContext(runtime={"config": config}))
    assert info.value.message == message


def test_trace() -> None:
    assert trace(EvalContext(), "note") is True
    with pytest.raises(OperandError, match="operand 1 must be string but got number"):
        trace(EvalContext(), 1)


@pytest.mark.parametrize(
    ("fn", "name"),
    [(rego_metadata_chain, "rego.metadata.chain"), (rego_metadata_rule, "rego.metadata.rule")],
)
def test_metadata_outside_rules(fn: Any, name: str) -> None:
    with pytest.raises(BuiltinError) as info:
        fn(EvalContext())
    assert type(info.value) is BuiltinError
    assert (
        info.value.message == f"the {name} function must only be called within the scope of a rule"
    )


def test_declarations() -> None:
    specs = {spec.name: spec for spec in BUILTINS}
    assert set(specs) == {
        "opa.runtime", "trace", "internal.print", "rego.metadata.chain", "rego.metadata.rule"
    }  # fmt: skip
    assert not specs["opa.runtime"].deterministic
    assert specs["internal.print"].arity == 1


# --- against OPA -------------------------------------------------------------------------

_PRINT_CASES: list[list[Any]] = [
    [1, "s", 'q"uoé\n\u00a0\x01', [1, "a"], {"b": RegoSet([1, 2]), "a": None}],
    [RegoSet(), None, True, 2.5, {"k": [{}]}, "", -7],
    [{"x": RegoSet(["b", "a"])}, [[], {}], "tab\there"],
]


@pytest.mark.differential
def test_print_agrees_with_opa_eval() -> None:
    """``opa eval`` prints the same lines (an undefined argument included)."""
    if not OPA.exists():
        pytest.skip("pinned opa binary not installed")
    body = "\n".join(
        f"\tprint({', '.join([*map(encode, args), 'input.missing'])})" for args in _PRINT_CASES
    )
    with tempfile.TemporaryDirectory() as tmp:
        module = Path(tmp, "p.rego")
        module.write_text(f"package t\n\np if {{\n{body}\n}}\n", encoding="utf-8")
        proc = subprocess.run(
            [str(OPA), "eval", "--format", "json", "-d", str(module), "data.t.p"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    ctx, lines = _printing_context()
    for args in _PRINT_CASES:
        internal_print(ctx, [*(RegoSet([a]) for a in args), RegoSet()])
    assert proc.stderr == "".join(f"{line}\n" for line in lines)


@pytest.mark.differential
def test_wasm_planner_passes_print_arguments_as_sets() -> None:
    """``opa build`` turns ``print(a, b)`` into one ``internal.print`` call on an array of
    sets, and inlines ``rego.metadata.*`` calls made inside rules."""
    if not OPA.exists():
        pytest.skip("pinned opa binary not installed")
    policy = (
        "# METADATA\n# title: T\npackage t\n\n"
        "p if {\n\tprint(input.a, input.b)\n"
        "\tx := rego.metadata.chain()\n\tx[0].path == input.path\n}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "p.rego").write_text(policy, encoding="utf-8")
        bundle = Path(tmp, "plan.tar.gz")
        command = [str(OPA), "build", "-t", "plan", "--wasm-include-print", "-e", "t/p"]
        subprocess.run(
            [*command, "-o", str(bundle), str(Path(tmp, "p.rego"))],
            capture_output=True,
            check=True,
            timeout=60,
        )
        with tarfile.open(bundle) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("plan.json"))
            extracted = tar.extractfile(member)
            assert extracted is not None
            plan = json.load(extracted)
    builtins = {b["name"]: b["decl"] for b in plan["static"]["builtin_funcs"]}
    assert set(builtins) == {"internal.print"}
    assert builtins["internal.print"]["args"] == [
        {"dynamic": {"of": {"type": "any"}, "type": "set"}, "type": "array"}
    ]
