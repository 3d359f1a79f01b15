"""``council.v1.Decisions``: a thin adapter from gRPC messages to the decision service.

Evaluations block (they run Wasm), so they run on a thread pool sized like the instance
pool, never on the event loop. Engine errors become statuses in :mod:`gateway.status`.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor

import grpc
from grpc_status import rpc_status as grpc_rpc_status

from gateway.coalescing import CoalescingEvaluator
from gateway.status import invalid_argument, rpc_status
from pdp.decision import Decision
from pdp.errors import PDPError
from pdp.service import DecisionRequest, DecisionService
from proto.council.v1 import decisions_pb2, decisions_pb2_grpc

MAX_BATCH_ITEMS = 10_000
"""Largest DecideBatch accepted; bigger batches are refused, not truncated."""


def decision_message(decision: Decision) -> decisions_pb2.Decision:
    """The wire form of an engine decision."""
    return decisions_pb2.Decision(
        allow=decision.allow,
        reasons=decision.reasons,
        obligations_json=json.dumps(decision.obligations, separators=(",", ":")).encode(),
        decision_id=decision.decision_id,
        policy_revision=decision.revision,
        result_json=json.dumps(decision.result, separators=(",", ":")).encode(),
    )


class DecisionsServicer(decisions_pb2_grpc.DecisionsServicer):
    """Serves Decide and DecideBatch from a :class:`DecisionService`."""

    def __init__(
        self,
        service: DecisionService,
        executor: Executor,
        evaluator: CoalescingEvaluator,
        *,
        workers: int,
    ) -> None:
        self._service = service
        self._executor = executor
        self._evaluator = evaluator
        self._workers = max(1, workers)

    async def Decide(
        self, request: decisions_pb2.DecideRequest, context: grpc.aio.ServicerContext
    ) -> decisions_pb2.Decision:
        if not request.entrypoint:
            await context.abort_with_status(
                grpc_rpc_status.to_status(invalid_argument("entrypoint is required"))
            )
        req = DecisionRequest(request.entrypoint, request.input_json or None, request.request_id)
        try:
            decision = await self._evaluator.decide(req)
        except PDPError as exc:
            await context.abort_with_status(grpc_rpc_status.to_status(rpc_status(exc)))
        return decision_message(decision)

    async def DecideBatch(
        self, request: decisions_pb2.DecideBatchRequest, context: grpc.aio.ServicerContext
    ) -> decisions_pb2.DecideBatchResponse:
        if len(request.items) > MAX_BATCH_ITEMS:
            await context.abort_with_status(
                grpc_rpc_status.to_status(
                    invalid_argument(
                        f"batch of {len(request.items)} items exceeds {MAX_BATCH_ITEMS}"
                    )
                )
            )
        default = request.entrypoint
        reqs = [
            DecisionRequest(item.entrypoint or default, item.input_json or None, item.request_id)
            for item in request.items
        ]
        if any(not r.entrypoint for r in reqs):
            await context.abort_with_status(
                grpc_rpc_status.to_status(
                    invalid_argument("every item needs an entrypoint (or set a default)")
                )
            )
        # Split across the workers: the Wasm part of each evaluation runs without the GIL,
        # so chunks on separate instances overlap.
        loop = asyncio.get_running_loop()
        size = max(1, -(-len(reqs) // self._workers))
        chunks = [reqs[i : i + size] for i in range(0, len(reqs), size)]
        parts = await asyncio.gather(
            *(loop.run_in_executor(self._executor, self._service.decide_batch, c) for c in chunks)
        )
        results = [r for part in parts for r in part]
        out = decisions_pb2.DecideBatchResponse()
        for result in results:
            if isinstance(result, PDPError):
                out.decisions.append(decisions_pb2.Decision(error=rpc_status(result)))
            else:
                out.decisions.append(decision_message(result))
        return out
