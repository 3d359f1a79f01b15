"""OPA as the oracle of the differential builtin tests: the pinned ``opa eval`` on a table of calls.

:func:`eval_calls` evaluates every call of a table as one rule of a single module, in one
``opa eval --show-builtin-errors`` run, which reports each failing builtin call (code,
message, row) without aborting the evaluation. Arguments travel in ``input`` so that OPA's
compiler can neither fold nor type-check them. :func:`opa_batch` and :func:`opa_strict` are
the two other oracles of the crypto tests: a plain batch (errors leave a rule undefined) and
one strict-mode query per call (the error message of that one call, as strict mode stops at
the first error).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pdp.builtins.base import UNDEFINED, BuiltinError, EvalContext
from pdp.values import RegoSet, rego_equal, to_json_compatible

OPA = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "opa"

Outcome = tuple[Any, ...]
"""("ok", value), ("undefined",) or ("error", code, message)."""

Case = tuple[str, Sequence[Any]]
"""A builtin's name and its arguments."""


def render(value: Any, ref: str) -> tuple[str, Any]:
    """Rego text for ``value`` built from references into ``input``, and the JSON to store.

    JSON values are plain references; sets, tuples and objects with non-string keys become
    literals whose leaves are references, so OPA's type checker only ever sees ``any``.
    """
    t = type(value)
    if t is RegoSet or t is tuple or (t is list and not _plain(value)):
        parts = [render(v, f"{ref}[{k}]") for k, v in enumerate(value)]
        if t is RegoSet:
            text = "{" + ", ".join(p[0] for p in parts) + "}" if parts else "set()"
        else:
            text = "[" + ", ".join(p[0] for p in parts) + "]"
        return text, [p[1] for p in parts]
    if t is dict and not _plain(value):
        keys = [render(k, f"{ref}[{n}][0]") for n, k in enumerate(value)]
        vals = [render(v, f"{ref}[{n}][1]") for n, v in enumerate(value.values())]
        text = "{" + ", ".join(f"{k[0]}: {v[0]}" for k, v in zip(keys, vals, strict=True)) + "}"
        return text, [[k[1], v[1]] for k, v in zip(keys, vals, strict=True)]
    return ref, value


def _plain(value: Any) -> bool:
    """Whether ``value`` is plain JSON (no sets, tuples or non-string keys)."""
    t = type(value)
    if t is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if t is list:
        return all(_plain(v) for v in value)
    return t is not RegoSet and t is not tuple


def eval_calls(
    cases: Sequence[Case], *, v0_compatible: bool = False, timeout: float | None = None
) -> list[Outcome]:
    """OPA's outcome of every call in ``cases``, from one ``opa eval`` run."""
    lines = ["package t"]
    args: list[list[Any]] = []
    for i, (name, call_args) in enumerate(cases):
        rendered = [render(arg, f"input.a[{i}][{j}]") for j, arg in enumerate(call_args)]
        args.append([r[1] for r in rendered])
        lines.append(f"r{i} := {name}({', '.join(r[0] for r in rendered)})")
    flags = ["--v0-compatible"] if v0_compatible else []
    with tempfile.TemporaryDirectory() as tmp:
        module, input_file = Path(tmp, "t.rego"), Path(tmp, "input.json")
        module.write_text("\n".join(lines) + "\n", encoding="utf-8")
        input_file.write_text(json.dumps({"a": args}), encoding="utf-8")
        proc = subprocess.run(
            [
                *(str(OPA), "eval", *flags, "--show-builtin-errors", "--format", "json"),
                *("-d", str(module), "-i", str(input_file), "data.t"),
            ],
            capture_output=True,
            check=False,
            timeout=timeout,
        )
    output = json.loads(proc.stdout)
    assert "result" in output, output.get("errors")
    values = output["result"][0]["expressions"][0]["value"]
    # Rule r<i> sits on line i + 2 of the module.
    errors = {e["location"]["row"] - 2: e for e in output.get("errors", [])}
    results: list[Outcome] = []
    for i in range(len(cases)):
        if i in errors:
            results.append(("error", errors[i]["code"], errors[i]["message"]))
        elif f"r{i}" in values:
            results.append(("ok", values[f"r{i}"]))
        else:
            results.append(("undefined",))
    return results


def host_outcome(
    fn: Callable[..., Any], ctx: EvalContext, name: str, args: Sequence[Any]
) -> Outcome:
    """Council's outcome of builtin ``name`` (implemented by ``fn``), in OPA's terms."""
    try:
        value = fn(ctx, *args)
    except BuiltinError as exc:
        return ("error", exc.code, f"{name}: {exc.message}" if exc.prefix else exc.message)
    if value is UNDEFINED:
        return ("undefined",)
    return ("ok", to_json_compatible(value))


def same_outcome(ours: Outcome, theirs: Outcome) -> bool:
    """Whether two outcomes agree: equal Rego values, or the very same error."""
    if ours[0] != theirs[0]:
        return False
    return rego_equal(ours[1], theirs[1]) if ours[0] == "ok" else ours == theirs


def mismatches(
    cases: Sequence[Case],
    theirs: Sequence[Outcome],
    ours_of: Callable[[str, Any], Outcome],
    same: Callable[[Outcome, Outcome], bool] = same_outcome,
) -> list[str]:
    """A readable line for every case where Council's outcome differs from OPA's."""
    out = []
    for (name, args), want in zip(cases, theirs, strict=True):
        got = ours_of(name, args)
        if not same(got, want):
            out.append(f"{name}{args!r}:\n  opa:  {want!r}\n  ours: {got!r}")
    return out


def opa_batch(calls: dict[str, tuple[str, tuple[Any, ...]]]) -> dict[str, Any]:
    """Evaluate ``name(args...)`` for every entry in one non-strict ``opa eval``.

    Each call is a rule; arguments travel as input. Errors leave a rule undefined.
    """
    rules = [
        f"r{i} := {name}({', '.join(f'input[{i}][{j}]' for j in range(len(args)))})"
        for i, (name, args) in enumerate(calls.values())
    ]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "t.rego").write_text("package t\n" + "\n".join(rules))
        Path(tmp, "input.json").write_text(json.dumps([list(a) for _, a in calls.values()]))
        command = [str(OPA), "eval", "--format", "json", "-d", f"{tmp}/t.rego"]
        out = subprocess.run(
            [*command, "-i", f"{tmp}/input.json", "data.t"],
            capture_output=True,
            text=True,
            check=True,
        )
    value = json.loads(out.stdout)["result"][0]["expressions"][0]["value"]
    return {key: value.get(f"r{i}", "undefined") for i, key in enumerate(calls)}


def opa_strict(name: str, args: tuple[Any, ...]) -> Any:
    """One strict ``opa eval`` of ``name(args...)`` (arguments passed as input, so that type
    errors surface at evaluation): the value, or ("error", code, message)."""
    query = f"x := {name}({', '.join(f'input[{j}]' for j in range(len(args)))})"
    out = subprocess.run(
        [str(OPA), "eval", "--strict-builtin-errors", "--format", "json", "--stdin-input", query],
        input=json.dumps(list(args)),
        capture_output=True,
        text=True,
        check=False,
    )
    result = json.loads(out.stdout)
    if "errors" in result:
        err = result["errors"][0]
        return ("error", err["code"], err["message"])
    return result["result"][0]["bindings"]["x"]


def opa_strict_many(calls: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    """:func:`opa_strict` for every call, 16 ``opa`` processes at a time."""
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda c: opa_strict(*c), calls))
