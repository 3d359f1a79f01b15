"""The OPA Wasm host on real modules built by the pinned opa."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import pdp
from pdp.builtins import BuiltinError, BuiltinRegistry, BuiltinSpec, HaltError, default_registry
from pdp.bundle import read_bundle

BASICS = """
package basics

s := {3, 1, "a", [2]}
o := {1: "x", "k": {"b", "a"}}
allow if input.user == "alice"
greeting := concat(" ", ["hello", input.user])
from_data := data.basics.items[input.i]
conflict := x if { x := input.a }
conflict := x if { x := input.b }
range_count := count([1 | some i in numbers.range(1, input.n)])
busy if {
    some i in numbers.range(1, 20000)
    some j in numbers.range(1, 20000)
    i * j == -1
}
deep := count([x | walk(input, [_, x])])
"""
BASIC_EPS = [
    "basics/s",
    "basics/o",
    "basics/allow",
    "basics/greeting",
    "basics/from_data",
    "basics/conflict",
    "basics/range_count",
    "basics/busy",
    "basics/deep",
]


def _upper_first(ctx: Any, word: Any) -> Any:
    if not isinstance(word, str):
        raise BuiltinError("operand 1 must be string")
    if word == "halt":
        raise HaltError("halted on purpose")
    return word[:1].upper() + word[1:]


@pytest.fixture(scope="module")
def basics(compile_policy) -> bytes:
    return compile_policy(BASICS, BASIC_EPS)


@pytest.fixture
def policy(basics: bytes):
    with pdp.load(basics, {"basics": {"items": ["zero", "one"]}}) as p:
        yield p


def test_entrypoints_and_abi(policy: pdp.Policy) -> None:
    assert set(policy.entrypoints) == set(BASIC_EPS)
    assert policy.module.abi_version[0] == 1
    assert policy.module.has_fast_path


@pytest.mark.parametrize("spelling", ["basics/allow", "basics.allow", "data.basics.allow"])
def test_entrypoint_spellings(policy: pdp.Policy, spelling: str) -> None:
    assert policy.evaluate(spelling, {"user": "alice"}) == [{"result": True}]


def test_undefined_is_empty_result_set(policy: pdp.Policy) -> None:
    assert policy.evaluate("basics/allow", {"user": "bob"}) == []


def test_sets_come_back_sorted_and_keys_as_json_text(policy: pdp.Policy) -> None:
    assert policy.evaluate("basics/s") == [{"result": [1, 3, "a", [2]]}]
    assert policy.evaluate("basics/o") == [{"result": {"1": "x", "k": ["a", "b"]}}]


def test_data_document_and_set_data(policy: pdp.Policy) -> None:
    assert policy.evaluate("basics/from_data", {"i": 1}) == [{"result": "one"}]
    policy.set_data({"basics": {"items": ["nil", "uno"]}})
    assert policy.evaluate("basics/from_data", {"i": 1}) == [{"result": "uno"}]


def test_evaluate_json_round_trip(policy: pdp.Policy) -> None:
    out = policy.evaluate_json("basics/greeting", b'{"user": "zo\\u00eb"}')
    assert json.loads(out) == [{"result": "hello zoë"}]


def test_unknown_entrypoint(policy: pdp.Policy) -> None:
    with pytest.raises(pdp.EntrypointNotFoundError, match="basics/nope"):
        policy.evaluate("basics/nope")


@pytest.mark.parametrize("raw", [b"{", b"[1,]", b"nul", b"\xff"])
def test_invalid_input_json(policy: pdp.Policy, raw: bytes) -> None:
    with pytest.raises(pdp.InvalidInputError):
        policy.evaluate_json("basics/allow", raw)


def test_input_size_limit(basics: bytes) -> None:
    config = pdp.HostConfig(max_input_bytes=64)
    with pdp.load(basics, config=config) as p, pytest.raises(pdp.InvalidInputError, match="limit"):
        p.evaluate("basics/allow", {"user": "x" * 100})


def test_conflict_aborts_with_opa_code_and_instance_survives(policy: pdp.Policy) -> None:
    with pytest.raises(pdp.PolicyAbortError) as err:
        policy.evaluate("basics/conflict", {"a": 1, "b": 2})
    assert err.value.code == "eval_conflict_error"
    assert "var assignment conflict" in err.value.message
    assert policy.evaluate("basics/conflict", {"a": 1, "b": 1}) == [{"result": 1}]


def test_timeout_interrupts_and_next_request_works(basics: bytes) -> None:
    config = pdp.HostConfig(eval_timeout=0.2, epoch_tick=0.01)
    with pdp.load(basics, config=config) as p:
        with pytest.raises(pdp.EvaluationTimeoutError):
            p.evaluate("basics/busy")
        assert p.evaluate("basics/allow", {"user": "alice"}) == [{"result": True}]


def test_memory_cap_stops_runaway_allocation(basics: bytes) -> None:
    config = pdp.HostConfig(max_memory_bytes=16 * 1024 * 1024)
    with pdp.load(basics, config=config) as p:
        with pytest.raises(pdp.ResourceExhaustedError):
            p.evaluate("basics/range_count", {"n": 50_000_000})
        assert p.evaluate("basics/range_count", {"n": 10}) == [{"result": 10}]


def test_too_deep_input_is_invalid(policy: pdp.Policy) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(pdp.InvalidInputError, match="deep"):
        policy.evaluate_json("basics/deep", deep)


def test_depth_limit_applies_to_python_documents_too(basics: bytes) -> None:
    config = pdp.HostConfig(max_input_depth=8)
    nested: list = []
    for _ in range(20):
        nested = [nested]
    with pdp.load(basics, config=config) as p:
        with pytest.raises(pdp.InvalidInputError, match="deeper than 8"):
            p.evaluate("basics/deep", nested)
        assert p.evaluate("basics/deep", [[1]]) == [{"result": 3}]


def test_stack_exhaustion_traps_and_instance_is_replaced(basics: bytes) -> None:
    # Past the JSON check (which refuses such input), the module's own recursive
    # parser would overflow the Wasm stack: that must trap, not crash the process.
    deep = b"[" * 200_000 + b"]" * 200_000
    config = pdp.HostConfig(max_wasm_stack=256 * 1024, pool_size=1)
    with pdp.load(basics, config=config) as p:
        eid = p.module.entrypoint_id("basics/deep")
        with (
            pytest.raises((pdp.ResourceExhaustedError, pdp.WasmTrapError)),
            p.pool.instance() as inst,
        ):
            inst.evaluate(eid, deep)
        assert p.pool.live == 0
        assert p.evaluate("basics/deep", [[1]]) == [{"result": 3}]


def test_eval_context_path_matches_fast_path(basics: bytes) -> None:
    slow = pdp.HostConfig(use_opa_eval=False)
    data = {"basics": {"items": ["zero", "one"]}}
    with pdp.load(basics, data) as fast_p, pdp.load(basics, data, config=slow) as slow_p:
        for ep, inp in [
            ("basics/s", None),
            ("basics/o", None),
            ("basics/allow", {"user": "alice"}),
            ("basics/greeting", {"user": "x"}),
            ("basics/from_data", {"i": 0}),
        ]:
            assert fast_p.evaluate(ep, inp) == slow_p.evaluate(ep, inp), ep
        with pytest.raises(pdp.PolicyAbortError):
            slow_p.evaluate("basics/conflict", {"a": 1, "b": 2})


def _hosted_registry() -> BuiltinRegistry:
    registry = default_registry().copy()
    registry.register(BuiltinSpec("upper_first", _upper_first))
    return registry


HOSTED_CAPS = """
package hosted

shout := upper_first(input.word)
"""


@pytest.fixture(scope="module")
def hosted(compile_policy) -> bytes:
    # `upper_first` is not an OPA builtin: declare it through capabilities so opa
    # compiles the call to a host import, as it would any host builtin.
    return compile_policy(HOSTED_CAPS, ["hosted/shout"], capabilities=_caps())


def _caps() -> dict[str, Any]:
    from council.opa_tool import run_opa

    caps = json.loads(run_opa(["capabilities", "--current"]).stdout)
    caps["builtins"].append(
        {
            "name": "upper_first",
            "decl": {"type": "function", "args": [{"type": "any"}], "result": {"type": "string"}},
        }
    )
    return caps


def test_missing_builtin_refused_at_load_with_its_name(hosted: bytes) -> None:
    with pytest.raises(pdp.UnsupportedBuiltinError) as err:
        pdp.load(hosted, registry=BuiltinRegistry())
    assert err.value.names == ["upper_first"]
    assert "upper_first" in str(err.value)


def test_host_builtin_called_with_decoded_values(hosted: bytes) -> None:
    with pdp.load(hosted, registry=_hosted_registry()) as p:
        assert p.evaluate("hosted/shout", {"word": "council"}) == [{"result": "Council"}]


def test_builtin_error_undefined_unless_strict(hosted: bytes) -> None:
    with pdp.load(hosted, registry=_hosted_registry()) as p:
        assert p.evaluate("hosted/shout", {"word": 7}) == []
        with pytest.raises(pdp.BuiltinEvalError) as err:
            p.evaluate("hosted/shout", {"word": 7}, strict=True)
        assert err.value.code == "eval_builtin_error"
        assert err.value.message == "upper_first: operand 1 must be string"
        assert p.evaluate("hosted/shout", {"word": "ok"}) == [{"result": "Ok"}]


def test_halt_aborts_even_when_not_strict(hosted: bytes) -> None:
    with (
        pdp.load(hosted, registry=_hosted_registry()) as p,
        pytest.raises(pdp.BuiltinEvalError, match="halted on purpose"),
    ):
        p.evaluate("hosted/shout", {"word": "halt"})


def test_print_goes_to_the_hook(compile_policy) -> None:
    wasm = compile_policy(
        'package printing\n\nout if { print("user is", input.user); true }\n', ["printing/out"]
    )
    lines: list[str] = []
    with pdp.load(wasm, print_hook=lines.append) as p:
        assert p.evaluate("printing/out", {"user": "alice"}) == [{"result": True}]
    assert lines and "user is alice" in lines[-1]


def test_pool_is_thread_safe(basics: bytes) -> None:
    config = pdp.HostConfig(pool_size=3)
    errors: list[BaseException] = []
    with pdp.load(basics, {"basics": {"items": ["a", "b"]}}, config=config) as p:

        def worker(n: int) -> None:
            try:
                for i in range(150):
                    user = f"u{n}-{i}"
                    got = p.evaluate("basics/greeting", {"user": user})
                    assert got == [{"result": f"hello {user}"}]
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert p.pool.live <= 3
    assert not errors


def test_bundle_loading_uses_manifest_and_data(council_bundle) -> None:
    bundle = read_bundle(council_bundle)
    assert bundle.revision == "test"
    assert "council" in bundle.data()
    with pdp.load(council_bundle) as p:
        assert "council/authz/decision" in p.entrypoints


@pytest.mark.parametrize(
    "blob",
    [b"", b"not a bundle", b"\0asm\x02\0\0\0garbage"],
)
def test_unloadable_modules_are_refused(blob: bytes) -> None:
    with pytest.raises(pdp.PolicyLoadError):
        pdp.load(blob)


def test_wrong_abi_version_is_refused() -> None:
    import wasmtime

    wat = """
    (module
      (import "env" "memory" (memory 2))
      (global (export "opa_wasm_abi_version") i32 (i32.const 2))
      (global (export "opa_wasm_abi_minor_version") i32 (i32.const 0)))
    """
    with pytest.raises(pdp.PolicyLoadError, match=r"ABI 2\.0"):
        pdp.load(wasmtime.wat2wasm(wat))
