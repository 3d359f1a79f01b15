"""The decision service: the current policy revision, decisions, and where they are logged.

Transport-free: the gRPC servicers and the AuthZEN handler call :meth:`DecisionService.decide`
and :meth:`DecisionService.decide_batch` from worker threads and translate the results.

Revisions swap atomically: :meth:`DecisionService.swap` replaces the current policy with one
reference assignment. A request that picked up the old policy finishes on it; if that policy
was retired between pick-up and checkout, the request retries on the new one, so a swap never
fails an in-flight request. Retired policies are closed once no request holds them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pdp.decision import Decision, DecisionIds, interpret_result
from pdp.errors import PDPError, PoolClosedError
from pdp.policy import Policy

__all__ = ["DecisionRequest", "DecisionService", "DecisionSink"]


@dataclass(frozen=True)
class DecisionRequest:
    """One question for the policy."""

    entrypoint: str
    input_json: bytes | None
    request_id: str = ""


class DecisionSink(Protocol):
    """Where decisions go after they are made (the decision log). Must not block."""

    def record(self, decision: Decision, request: DecisionRequest) -> None:
        """Accept one decision; durable by the time :meth:`close` returns."""

    def close(self) -> None:
        """Flush and release resources."""


class _Revision:
    """A policy plus the number of requests currently using it."""

    __slots__ = ("active", "lock", "policy", "retired")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.active = 0
        self.retired = False
        self.lock = threading.Lock()

    def enter(self) -> None:
        with self.lock:
            self.active += 1

    def leave(self) -> None:
        with self.lock:
            self.active -= 1
            done = self.retired and self.active == 0
        if done:
            self.policy.close()

    def retire(self) -> None:
        with self.lock:
            self.retired = True
            done = self.active == 0
        if done:
            self.policy.close()


class DecisionService:
    """Answers decisions with the current policy and hands each one to the sinks."""

    def __init__(self, policy: Policy, sinks: Sequence[DecisionSink] = ()) -> None:
        self._current = _Revision(policy)
        self._sinks = list(sinks)
        self._ids = DecisionIds()
        self._swap_lock = threading.Lock()

    @property
    def policy(self) -> Policy:
        """The policy currently answering."""
        return self._current.policy

    @property
    def revision(self) -> str:
        """The current bundle revision."""
        return self._current.policy.revision

    def add_sink(self, sink: DecisionSink) -> None:
        """Send every later decision to ``sink`` too."""
        self._sinks = [*self._sinks, sink]

    def swap(self, policy: Policy) -> None:
        """Make ``policy`` the current revision; the old one retires when idle."""
        with self._swap_lock:
            old, self._current = self._current, _Revision(policy)
        old.retire()

    def _acquire(self) -> _Revision:
        while True:
            rev = self._current
            rev.enter()
            if not rev.retired:
                return rev
            rev.leave()

    def decide(self, request: DecisionRequest) -> Decision:
        """Evaluate one request. Raises :class:`~pdp.errors.PDPError` for bad requests."""
        start = time.perf_counter_ns()
        while True:
            rev = self._acquire()
            try:
                result_set = rev.policy.evaluate_raw(request.entrypoint, request.input_json)
                break
            except PoolClosedError:
                continue
            finally:
                rev.leave()
        decision = self._decision(request, result_set, rev.policy.revision, start)
        for sink in self._sinks:
            sink.record(decision, request)
        return decision

    def decide_batch(self, requests: Sequence[DecisionRequest]) -> list[Decision | PDPError]:
        """Evaluate many requests on one instance checkout; errors are returned per item."""
        start = time.perf_counter_ns()
        while True:
            rev = self._acquire()
            try:
                results = rev.policy.evaluate_batch(
                    [(r.entrypoint, r.input_json) for r in requests]
                )
                break
            except PoolClosedError:
                continue
            finally:
                rev.leave()
        out: list[Decision | PDPError] = []
        sinks = self._sinks
        revision = rev.policy.revision
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, PDPError):
                out.append(result)
                continue
            decision = self._decision(request, result, revision, start)
            for sink in sinks:
                sink.record(decision, request)
            out.append(decision)
        return out

    def _decision(
        self, request: DecisionRequest, result_set: list[dict[str, Any]], revision: str, start: int
    ) -> Decision:
        allow, reasons, obligations, result, defined = interpret_result(
            request.entrypoint, result_set
        )
        return Decision(
            allow=allow,
            reasons=reasons,
            obligations=obligations,
            decision_id=self._ids.next(),
            revision=revision,
            entrypoint=request.entrypoint,
            result=result,
            defined=defined,
            duration_ns=time.perf_counter_ns() - start,
        )

    def close(self) -> None:
        """Close the sinks (flushing them), then the current policy. Idempotent."""
        for sink in self._sinks:
            sink.close()
        self._sinks = []
        self._current.retire()
