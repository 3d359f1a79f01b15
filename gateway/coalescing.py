"""Decisions from many concurrent RPCs evaluated in shared thread-pool jobs.

Evaluations block, so they run off the event loop. Handing each request to the thread pool
on its own costs a thread hand-off and an event-loop wake-up per request, which at high
request rates costs more than the evaluation. This coalescer keeps at most one job per
worker in flight; requests that arrive meanwhile wait in a list and the next job takes all
of them (up to ``max_batch``), evaluating them on one instance checkout. Under light load a
request still goes out alone and immediately.

Use from one event loop only.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor, Future
from typing import Any

from pdp.decision import Decision
from pdp.errors import PDPError
from pdp.service import DecisionRequest, DecisionService

__all__ = ["CoalescingEvaluator"]

DEFAULT_MAX_BATCH = 128


class CoalescingEvaluator:
    """Runs :meth:`DecisionService.decide_batch` jobs for requests awaiting decisions."""

    def __init__(
        self,
        service: DecisionService,
        executor: Executor,
        *,
        workers: int,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self._service = service
        self._executor = executor
        self._workers = max(1, workers)
        self._max_batch = max_batch
        self._pending: list[tuple[DecisionRequest, asyncio.Future[Decision]]] = []
        self._running = 0

    async def decide(self, request: DecisionRequest) -> Decision:
        """The decision for ``request``; raises the engine's error for a bad request."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decision] = loop.create_future()
        self._pending.append((request, future))
        if self._running < self._workers:
            self._launch(loop)
        return await future

    def _launch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        self._running += 1
        job = self._executor.submit(self._service.decide_batch, [r for r, _ in batch])
        job.add_done_callback(lambda done: loop.call_soon_threadsafe(self._finish, batch, done))

    def _finish(
        self,
        batch: list[tuple[DecisionRequest, asyncio.Future[Decision]]],
        job: Future[list[Decision | PDPError]],
    ) -> None:
        self._running -= 1
        try:
            results: list[Any] = job.result()
        except BaseException as exc:  # the job itself failed: every request in it did
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.cancelled():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        if self._pending:
            self._launch(asyncio.get_running_loop())
