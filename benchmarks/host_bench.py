"""Council's Wasm host vs opa-py-wasm (same policy.wasm) vs regopy (same Rego), one run.

The decision: the shipped gateway authorization policy (``rego/council/authz``: a dozen
rules, a ``reasons`` set built with ``sprintf``, role inheritance through
``graph.reachable``, CIDR checks) over a data document with 1,000 users. The same input is
evaluated repeatedly by each engine; the script prints per-decision times and the ratios
Council/baseline, then memory per pooled Council instance.

    .venv/bin/python benchmarks/host_bench.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pdp  # noqa: E402
from council.policy_build import build_bundle  # noqa: E402
from pdp.bundle import read_bundle  # noqa: E402

ENTRYPOINT = "council/authz/decision"
POLICY_DIR = ROOT / "rego" / "council" / "authz"

INPUT = {
    "subject": {
        "id": "user-0421",
        "device": {"posture": {"disk_encrypted": True, "firewall_on": False, "os_patched": True}},
    },
    "action": "write",
    "resource": {"type": "dataset", "tenant": "tenant-07", "labels": ["pii", "internal"]},
    "context": {"ip": "172.16.4.20", "feature": "analytics"},
}


def make_data(n_users: int = 1000) -> dict[str, Any]:
    """The shipped data document, grown to ``n_users`` users over 25 tenants."""
    base = json.loads((POLICY_DIR / "data.json").read_text())
    roles = list(base["roles"])
    base["users"] = {
        f"user-{i:04d}": {
            "tenant": f"tenant-{i % 25:02d}",
            "roles": [roles[i % len(roles)]] if i % 7 else [roles[i % len(roles)], "viewer"],
            "clearance": i % 4,
        }
        for i in range(n_users)
    }
    base["tenants"] = {
        f"tenant-{t:02d}": {
            "edition": "enterprise" if t % 3 else "team",
            "networks": [f"10.{t}.0.0/16", "192.168.0.0/16"],
        }
        for t in range(25)
    }
    return {"council": {"authz": base}}


def timed(fn: Callable[[], Any], seconds: float) -> tuple[float, int]:
    """Median seconds per call over rounds filling ``seconds``, and the calls made."""
    fn()
    rounds: list[float] = []
    calls = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        n = 200
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - t0) / n)
        calls += n
    return statistics.median(rounds), calls


def bench_council(wasm: bytes, data: dict[str, Any], seconds: float) -> dict[str, Any]:
    with pdp.Policy(wasm, data, config=pdp.HostConfig(pool_size=1)) as policy:
        result = policy.evaluate(ENTRYPOINT, INPUT)
        per_call, calls = timed(lambda: policy.evaluate(ENTRYPOINT, INPUT), seconds)
        raw = json.dumps(INPUT).encode()
        per_raw, _ = timed(lambda: policy.evaluate_json(ENTRYPOINT, raw), seconds)
    return {"result": result[0]["result"], "per_call": per_call, "per_raw": per_raw, "calls": calls}


def bench_opa_py_wasm(wasm: bytes, data: dict[str, Any], seconds: float) -> dict[str, Any]:
    from opapywasm import OpaWasmPolicy, PolicyConfig

    policy = OpaWasmPolicy.from_wasm_bytes(wasm, PolicyConfig(pool_size=1))
    try:
        policy.set_data(data)
        result = policy.evaluate(INPUT, ENTRYPOINT)
        per_call, calls = timed(lambda: policy.evaluate(INPUT, ENTRYPOINT), seconds)
    finally:
        policy.close()
    return {"result": result, "per_call": per_call, "calls": calls}


def bench_regopy(data: dict[str, Any], seconds: float) -> dict[str, Any]:
    from regopy import Interpreter

    builder = Interpreter()
    builder.add_data(data)
    # The Rego sources, not the bundle's copies: opa build drops compiled entrypoint rules
    # from the Rego it puts next to policy.wasm.
    for path in sorted(POLICY_DIR.glob("*.rego")):
        if not path.name.endswith("_test.rego"):
            builder.add_module(path.name, path.read_text())
    # regopy renders strings built by sprintf differently from OPA (and its JSON output then
    # breaks), so it reports the reasons' count; it still evaluates the whole decision.
    query = (
        'x = {"allow": data.council.authz.decision.allow, '
        '"reasons": count(data.council.authz.decision.reasons), '
        '"obligations": data.council.authz.decision.obligations}'
    )
    bundle = builder.build(query, [])
    runner = Interpreter()

    def once() -> Any:
        runner.set_input(INPUT)
        return runner.query_bundle(bundle)

    # An Output is only readable until the interpreter runs its next query.
    result = json.loads(str(once()))["bindings"]["x"]
    per_call, calls = timed(once, seconds)
    return {"result": result, "per_call": per_call, "calls": calls}


def instance_memory(wasm: bytes, data: dict[str, Any], instances: int = 8) -> tuple[float, float]:
    """(Python heap KiB, Wasm linear memory KiB) per additional pooled instance."""
    with pdp.Policy(wasm, data, config=pdp.HostConfig(pool_size=instances)) as policy:
        eid = policy.module.entrypoint_id(ENTRYPOINT)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        held = [policy.pool._acquire(None) for _ in range(instances)]
        for inst in held:
            inst.evaluate(eid, json.dumps(INPUT).encode())
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        py_kib = sum(s.size_diff for s in after.compare_to(before, "filename")) / 1024 / instances
        linear = statistics.mean(
            pdp.wasm_raw.memory_data_size(inst._ctx, inst._mem_addr) for inst in held
        )
        for inst in held:
            policy.pool._release(inst)
    return py_kib, linear / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per engine")
    args = parser.parse_args()

    data = make_data()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bundle.tar.gz"
        build_bundle(POLICY_DIR, out, entrypoints=[ENTRYPOINT])
        bundle = read_bundle(out)
    wasm = bundle.wasm

    council = bench_council(wasm, data, args.seconds)
    opw = bench_opa_py_wasm(wasm, data, args.seconds)
    rp = bench_regopy(data, args.seconds)

    decision = council["result"]
    summary = {
        "allow": decision["allow"],
        "reasons": len(decision["reasons"]),
        "obligations": decision["obligations"],
    }
    # opa-py-wasm returns sets in the module's internal order; Council sorts them as OPA does.
    opw_sorted = {**opw["result"], "reasons": sorted(opw["result"]["reasons"])}
    if council["result"] != opw_sorted or summary != rp["result"]:
        print("engines disagree:", json.dumps([council["result"], opw["result"], rp["result"]]))
        return 1
    reasons = len(decision["reasons"])
    print(f"decision: allow={decision['allow']}, {reasons} reasons (all engines agree)")
    print(f"{'engine':34} {'µs/decision':>12}")
    print(f"{'council (dict in, dict out)':34} {council['per_call'] * 1e6:12.1f}")
    print(f"{'council (JSON bytes in and out)':34} {council['per_raw'] * 1e6:12.1f}")
    print(f"{'opa-py-wasm (same policy.wasm)':34} {opw['per_call'] * 1e6:12.1f}")
    print(f"{'regopy (compiled bundle)':34} {rp['per_call'] * 1e6:12.1f}")
    print(
        f"ratio vs opa-py-wasm: {opw['per_call'] / council['per_call']:.1f}x faster (target >= 3x)"
    )
    print(
        f"ratio vs regopy:      {rp['per_call'] / council['per_call']:.1f}x faster (target >= 20x)"
    )
    py_kib, linear_kib = instance_memory(wasm, data)
    print(
        f"memory per pooled instance: {linear_kib:.0f} KiB Wasm linear memory, "
        f"{py_kib:.0f} KiB Python heap"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
