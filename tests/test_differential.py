"""Council's host against `opa eval` on the same bundle and the same generated inputs.

Hypothesis draws batches of requests for the shipped authorization policy; each batch is
evaluated request by request in Council's Wasm host and all at once by the reference
evaluator (`opa eval` over the bundle's own Rego and data, one process per batch). The
decisions must be identical, reasons and obligations included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pdp
from council.opa_tool import PROJECT_ROOT, run_opa

pytestmark = pytest.mark.differential

ENTRYPOINT = "council/authz/decision"
REGO_DIR = PROJECT_ROOT / "rego"
BATCH = 40

users = st.sampled_from(["alice", "bob", "carol", "dave", "mallory", ""])
actions = st.sampled_from(["read", "query", "write", "delete", "record", "sync", "run"])
types = st.sampled_from(["dataset", "report", "quota", "connector", "job", "policy", "session"])
tenants = st.sampled_from(["acme", "globex", "initech"])
labels = st.lists(st.sampled_from(["pii", "secure-compute", "public", "internal"]), max_size=3)
octet = st.integers(min_value=0, max_value=255)
ips = st.one_of(
    st.tuples(st.just(10), octet, octet, octet),
    st.tuples(st.just(192), st.just(168), octet, octet),
    st.tuples(octet, octet, octet, octet),
).map(lambda t: ".".join(map(str, t)))
posture = st.fixed_dictionaries(
    {},
    optional={
        "disk_encrypted": st.booleans(),
        "firewall_on": st.booleans(),
        "os_patched": st.one_of(st.booleans(), st.just("yes")),
    },
)
requests = st.fixed_dictionaries(
    {
        "subject": st.fixed_dictionaries(
            {"id": users}, optional={"device": st.fixed_dictionaries({"posture": posture})}
        ),
        "action": actions,
        "resource": st.fixed_dictionaries(
            {"type": types, "tenant": tenants}, optional={"labels": labels}
        ),
        "context": st.fixed_dictionaries(
            {"ip": ips},
            optional={"feature": st.sampled_from(["datasets", "enclave", "analytics", ""])},
        ),
    }
)


@pytest.fixture(scope="module")
def reference_dir() -> Path:
    """The sources the bundle was built from, for `opa eval -b` (the bundle's own Rego
    copies lack the entrypoint rules that opa build compiled into policy.wasm)."""
    return REGO_DIR


@pytest.fixture(scope="module")
def policy(council_bundle: Path):
    with pdp.load(council_bundle) as p:
        yield p


def reference_decisions(reference_dir: Path, batch: list[dict[str, Any]], tmp: Path) -> list[Any]:
    """Evaluate every request of ``batch`` with `opa eval` in one process."""
    inp = tmp / "batch.json"
    inp.write_text(json.dumps({"cases": batch}))
    # Keyed by position, so an undefined decision shows up as a missing key.
    query = (
        "out := {i: d | some i, c in input.cases; d := data.council.authz.decision with input as c}"
    )
    res = run_opa(["eval", "-b", str(reference_dir), "-i", str(inp), "--format", "json", query])
    assert res.returncode == 0, res.stderr or res.stdout
    out = json.loads(res.stdout)["result"][0]["bindings"]["out"]
    return [out.get(str(i)) for i in range(len(batch))]


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(requests, min_size=BATCH, max_size=BATCH))
def test_council_matches_opa_eval(
    policy: pdp.Policy, reference_dir: Path, tmp_path: Path, batch: list[dict[str, Any]]
) -> None:
    expected = reference_decisions(reference_dir, batch, tmp_path)
    assert len(expected) == len(batch)
    for request, want in zip(batch, expected, strict=True):
        got = policy.evaluate(ENTRYPOINT, request)
        assert want is not None, f"reference decision undefined for {request}"
        # Both sides serialise sets as sorted arrays, so reasons compare exactly.
        assert got == [{"result": want}], request
