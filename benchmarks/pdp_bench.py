"""The PDP server under load, against a bare gRPC servicer and OPA's own server, in one run.

Three servers run as separate processes on 127.0.0.1, each measured with the same style of
closed-loop load (a fixed number of requests in flight, for a fixed time):

* Council's PDP (``council pdp serve``, decision log on): ``Decide`` one at a time, and
  ``DecideBatch`` with batches of ``--batch`` inputs;
* a bare grpc.aio servicer that answers ``Decide`` with a constant (the ceiling for a
  Python gRPC server on this machine);
* OPA (``opa run --server`` over the same Rego and data), ``POST /v1/data/...`` with
  keep-alive connections.

Printed: RPS and p50/p99 latency per server, Council/bare, Council/OPA, and batched
decisions per second / OPA RPS.

    .venv/bin/python benchmarks/pdp_bench.py [--seconds 5] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from council.opa_tool import find_opa  # noqa: E402
from council.policy_build import build_bundle  # noqa: E402
from proto.council.v1 import decisions_pb2, decisions_pb2_grpc  # noqa: E402

# The per-request check services make most: role-based access (rego/examples/rbac).
ENTRYPOINT = "examples/rbac/decision"
INPUT = {"user": "bob", "action": "write", "type": "dataset"}
INPUT_JSON = json.dumps(INPUT).encode()

BARE_SERVER = """
import asyncio, sys
import grpc
sys.path.insert(0, {root!r})
from proto.council.v1 import decisions_pb2, decisions_pb2_grpc

class Bare(decisions_pb2_grpc.DecisionsServicer):
    async def Decide(self, request, context):
        return decisions_pb2.Decision(allow=True, decision_id="constant", policy_revision="bare")

async def main():
    server = grpc.aio.server()
    decisions_pb2_grpc.add_DecisionsServicer_to_server(Bare(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"grpc=127.0.0.1:{{port}}", flush=True)
    await server.wait_for_termination()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Result:
    """Throughput and latency of one measured run."""

    def __init__(
        self, label: str, ops: int, seconds: float, latencies: list[float], per_op: int = 1
    ):
        self.label = label
        self.rps = ops / seconds
        self.decisions_per_s = ops * per_op / seconds
        ordered = sorted(latencies)
        self.p50 = statistics.median(ordered) * 1e3 if ordered else 0.0
        self.p99 = ordered[int(len(ordered) * 0.99) - 1] * 1e3 if ordered else 0.0

    def line(self) -> str:
        return (
            f"{self.label:44} {self.rps:10.0f} {self.decisions_per_s:12.0f} "
            f"{self.p50:8.2f} {self.p99:8.2f}"
        )


async def closed_loop(
    call: Callable[[], Awaitable[None]], seconds: float, concurrency: int
) -> tuple[int, float, list[float]]:
    """Keep ``concurrency`` calls in flight for ``seconds``; count completions."""
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - start, latencies


async def grpc_decide(addr: str, label: str, seconds: float, concurrency: int) -> Result:
    async with grpc.aio.insecure_channel(addr) as ch:
        stub = decisions_pb2_grpc.DecisionsStub(ch)
        req = decisions_pb2.DecideRequest(entrypoint=ENTRYPOINT, input_json=INPUT_JSON)
        first = await stub.Decide(req)
        assert first.allow, first

        async def call() -> None:
            await stub.Decide(req)

        await closed_loop(call, min(1.0, seconds / 3), concurrency)
        ops, elapsed, lat = await closed_loop(call, seconds, concurrency)
    return Result(label, ops, elapsed, lat)


async def grpc_batch(addr: str, seconds: float, concurrency: int, batch: int) -> Result:
    async with grpc.aio.insecure_channel(
        addr, options=[("grpc.max_receive_message_length", 1 << 28)]
    ) as ch:
        stub = decisions_pb2_grpc.DecisionsStub(ch)
        req = decisions_pb2.DecideBatchRequest(
            entrypoint=ENTRYPOINT,
            items=[decisions_pb2.DecideRequest(input_json=INPUT_JSON) for _ in range(batch)],
        )
        first = await stub.DecideBatch(req)
        assert all(d.allow for d in first.decisions)

        async def call() -> None:
            await stub.DecideBatch(req)

        ops, elapsed, lat = await closed_loop(call, seconds, concurrency)
    return Result(
        f"council DecideBatch x{batch} (batches/s, decisions/s)", ops, elapsed, lat, batch
    )


async def opa_http(port: int, seconds: float, concurrency: int) -> Result:
    url = f"http://127.0.0.1:{port}/v1/data/{ENTRYPOINT}"
    body = json.dumps({"input": INPUT}).encode()
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(url, data=body) as resp:
            first = await resp.json()
            assert first["result"]["allow"] is True, first

        async def call() -> None:
            async with session.post(url, data=body) as resp:
                await resp.read()

        await closed_loop(call, min(1.0, seconds / 3), concurrency)
        ops, elapsed, lat = await closed_loop(call, seconds, concurrency)
    return Result("opa run --server (HTTP, keep-alive)", ops, elapsed, lat)


def start(
    cmd: list[str], pattern: str, **kwargs: object
) -> tuple[subprocess.Popen[str], re.Match[str]]:
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )  # type: ignore[call-overload]
    line = proc.stdout.readline() if proc.stdout else ""
    match = re.search(pattern, line)
    if not match:
        proc.kill()
        raise RuntimeError(
            f"{cmd[0]} did not start: {line}{proc.stderr.read() if proc.stderr else ''}"
        )
    return proc, match


def wait_http(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle.tar.gz"
        build_bundle(ROOT / "rego", bundle, revision="bench")
        try:
            council, m = start(
                [
                    sys.executable,
                    "-m",
                    "council",
                    "pdp",
                    "serve",
                    "--bundle",
                    str(bundle),
                    "--allow-unsigned",
                    "--grpc",
                    "127.0.0.1:0",
                    "--http",
                    "127.0.0.1:0",
                    "--log",
                    str(Path(tmp) / "decisions.db"),
                ],
                r"grpc=([\d.]+:\d+)",
                cwd=ROOT,
            )
            procs.append(council)
            council_addr = m.group(1)
            bare, m = start(
                [sys.executable, "-c", BARE_SERVER.format(root=str(ROOT))], r"grpc=([\d.]+:\d+)"
            )
            procs.append(bare)
            bare_addr = m.group(1)
            opa_port = free_port()
            opa = subprocess.Popen(
                [
                    str(find_opa()),
                    "run",
                    "--server",
                    "--addr",
                    f"127.0.0.1:{opa_port}",
                    "--log-level",
                    "error",
                    "--bundle",
                    str(ROOT / "rego"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(opa)
            wait_http(opa_port)
            time.sleep(0.5)

            s, c = args.seconds, args.concurrency
            results = [
                asyncio.run(grpc_decide(bare_addr, "bare grpc.aio servicer (constant)", s, c)),
                asyncio.run(grpc_decide(council_addr, "council Decide", s, c)),
                asyncio.run(grpc_batch(council_addr, s, 2, args.batch)),
                asyncio.run(opa_http(opa_port, s, c)),
            ]
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()

    bare_r, council_r, batch_r, opa_r = results
    print(
        f"entrypoint {ENTRYPOINT}, {args.concurrency} in flight, "
        f"{args.seconds:.0f}s each, {os.cpu_count()} CPUs"
    )
    print(f"{'server':44} {'req/s':>10} {'decisions/s':>12} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(r.line())
    print(f"Decide RPS / bare servicer RPS: {council_r.rps / bare_r.rps:.2f} (target >= 0.8)")
    print(f"Decide RPS / OPA RPS:           {council_r.rps / opa_r.rps:.2f}")
    print(f"DecideBatch decisions/s:        {batch_r.decisions_per_s:.0f} (target >= 50000)")
    ratio = batch_r.decisions_per_s / opa_r.rps
    print(f"DecideBatch decisions/s / OPA RPS: {ratio:.1f} (target >= 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
