"""Decision log throughput: records/s into :class:`pdp.decision_log.DecisionLog` vs a no-op sink.

Several threads hand the same pre-built decisions (the ``host_bench`` input, a result with
reasons and obligations) to each sink. Printed per sink:

* hot path: ``record()`` calls per second as the callers see them (the log only enqueues,
  until more than ``queue_max`` (100,000) are pending; its writer thread competes for the
  GIL meanwhile);
* end to end: decisions per second until ``close()`` returns, i.e. all of them committed,
  hash-chained and checkpointed (signed every 1,000 rows);

and the ratios log / no-op. ``--mask`` adds a mask erasing one input path per decision.

    .venv/bin/python benchmarks/decision_log_bench.py [--records 50000] [--threads 4] [--mask]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from pdp.decision import Decision, DecisionIds  # noqa: E402
from pdp.decision_log import DecisionLog  # noqa: E402
from pdp.service import DecisionRequest, DecisionSink  # noqa: E402

ENTRYPOINT = "council/authz/decision"
INPUT = {
    "subject": {
        "id": "user-0421",
        "device": {"posture": {"disk_encrypted": True, "firewall_on": False, "os_patched": True}},
    },
    "action": "write",
    "resource": {"type": "dataset", "tenant": "tenant-07", "labels": ["pii", "internal"]},
    "context": {"ip": "172.16.4.20", "feature": "analytics"},
}


class NullSink:
    """The baseline: a sink that does nothing."""

    def record(self, decision: Decision, request: DecisionRequest) -> None:
        """Discard the decision."""

    def close(self) -> None:
        """Nothing to flush."""


def make_items(n: int) -> list[tuple[Decision, DecisionRequest]]:
    """``n`` distinct decisions with their requests, built before any timing starts."""
    ids = DecisionIds()
    body = json.dumps(INPUT).encode()
    reasons = ("device firewall is off", "dataset is labelled pii")
    result = {"allow": False, "reasons": list(reasons), "obligations": {"log_level": "high"}}
    return [
        (
            Decision(
                allow=False,
                reasons=reasons,
                obligations={"log_level": "high"},
                decision_id=ids.next(),
                revision="bench-1",
                entrypoint=ENTRYPOINT,
                result=result,
                duration_ns=48_000,
            ),
            DecisionRequest(ENTRYPOINT, body, f"req-{i}"),
        )
        for i in range(n)
    ]


def run(
    sink: DecisionSink, items: list[tuple[Decision, DecisionRequest]], threads: int
) -> tuple[float, float]:
    """Feed ``items`` to ``sink`` from ``threads`` threads; return (hot-path s, end-to-end s)."""
    chunks = [items[t::threads] for t in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def worker(chunk: list[tuple[Decision, DecisionRequest]]) -> None:
        record = sink.record
        barrier.wait()
        for decision, request in chunk:
            record(decision, request)

    workers = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    recorded = time.perf_counter()
    sink.close()
    return recorded - start, time.perf_counter() - start


def main() -> None:
    """Run both sinks once and print the rates and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--mask", action="store_true", help="erase /input/context/ip")
    args = parser.parse_args()

    items = make_items(args.records)
    mask: Callable[[DecisionRequest, Decision], list[str]] | None = (
        (lambda _request, _decision: ["/input/context/ip"]) if args.mask else None
    )
    null_hot, null_total = run(NullSink(), items, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        log = DecisionLog(
            Path(tmp) / "bench.db",
            signing_key=Ed25519PrivateKey.generate(),
            mask=mask,
            checkpoint_every=1000,
        )
        log_hot, log_total = run(log, items, args.threads)

    n = args.records
    rows = [
        ("no-op sink, hot path", n / null_hot, None),
        ("decision log, hot path", n / log_hot, null_hot / log_hot),
        ("decision log, end to end", n / log_total, null_total / log_total),
    ]
    print(f"{n} decisions, {args.threads} threads, mask={'on' if args.mask else 'off'}")
    for label, rate, ratio in rows:
        vs_noop = f"   log/no-op {ratio:.3f}" if ratio is not None else ""
        print(f"  {label:<26}{rate:>12,.0f} records/s{vs_noop}")
    print(f"  record() {log_hot / n * 1e6:.2f} us per call (no-op {null_hot / n * 1e6:.2f} us)")


if __name__ == "__main__":
    main()
