"""``council.v1.Usage``: a thin adapter from gRPC to :class:`~gateway.usage_intake.UsageStore`.

This module is the one place usage errors become gRPC statuses. A batch whose events are
all valid is answered with their ids. A batch with invalid events still has its valid
events stored, and is answered INVALID_ARGUMENT carrying three details: a
``google.rpc.ErrorInfo`` (reason ``INVALID_USAGE_EVENTS``, metadata ``acknowledged`` and
``rejected`` counts), a ``google.rpc.BadRequest`` naming each bad field as
``events[<index>].<field>``, and the ``ReportUsageResponse`` listing what was acknowledged,
so a reporter can drop exactly those from its spool. A store failure is UNAVAILABLE and
acknowledges nothing: the reporter keeps and resends the batch.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import NoReturn

import grpc
from google.rpc import error_details_pb2, status_pb2

from gateway import status as statuses
from gateway.usage_intake import (
    InvalidUsageRequestError,
    ReportResult,
    UsageError,
    UsageStore,
    UsageStoreError,
)
from proto.council.v1 import usage_pb2, usage_pb2_grpc

__all__ = ["ERROR_DOMAIN", "SERVICE_NAME", "UsageServicer", "add_usage_service"]

log = logging.getLogger(__name__)

ERROR_DOMAIN = "council.usage"
SERVICE_NAME = usage_pb2.DESCRIPTOR.services_by_name["Usage"].full_name
MAX_LISTED_PROBLEMS = 10
"""Problems spelled out in the status message; the BadRequest detail lists them all."""

_CODES: tuple[tuple[type[UsageError], grpc.StatusCode], ...] = (
    (InvalidUsageRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (UsageStoreError, grpc.StatusCode.UNAVAILABLE),
)


def error_status(exc: UsageError) -> status_pb2.Status:
    """The status of a request refused as a whole, with an ErrorInfo naming the error code."""
    code = statuses.code_for(exc, _CODES, grpc.StatusCode.INTERNAL)
    return statuses.error_status(code, exc.message, reason=exc.code.upper(), domain=ERROR_DOMAIN)


def partial_status(result: ReportResult, received: int) -> status_pb2.Status:
    """INVALID_ARGUMENT for a batch with invalid events, reporting what was still stored."""
    rejected = sorted({p.index for p in result.problems})
    listed = "; ".join(f"{p.field}: {p.description}" for p in result.problems[:MAX_LISTED_PROBLEMS])
    more = len(result.problems) - MAX_LISTED_PROBLEMS
    message_text = (
        f"{len(rejected)} of {received} usage event(s) rejected and not stored"
        f" ({len(result.acknowledged)} acknowledged): {listed}"
        + (f"; and {more} more problem(s)" if more > 0 else "")
    )
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=p.field, description=p.description)
            for p in result.problems
        ]
    )
    reply = usage_pb2.ReportUsageResponse(acknowledged=result.acknowledged)
    return statuses.error_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        message_text,
        reason="INVALID_USAGE_EVENTS",
        domain=ERROR_DOMAIN,
        metadata={"acknowledged": str(len(result.acknowledged)), "rejected": str(len(rejected))},
        details=(bad, reply),
    )


async def _abort(context: grpc.aio.ServicerContext, status: status_pb2.Status) -> NoReturn:
    await statuses.abort(context, status)


class UsageServicer(usage_pb2_grpc.UsageServicer):
    """Serves Report from a :class:`UsageStore`; ``executor`` runs the SQLite work."""

    def __init__(self, store: UsageStore, executor: Executor) -> None:
        self._store = store
        self._executor = executor

    async def Report(
        self, request: usage_pb2.ReportUsageRequest, context: grpc.aio.ServicerContext
    ) -> usage_pb2.ReportUsageResponse:
        events = list(request.events)
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, self._store.report, events)
        except UsageError as exc:
            if isinstance(exc, UsageStoreError):
                log.error("usage batch of %d event(s) not stored: %s", len(events), exc.message)
            await _abort(context, error_status(exc))
        if result.problems:
            log.warning(
                "usage batch: %d problem(s) in %d event(s); %d acknowledged",
                len(result.problems),
                len(events),
                len(result.acknowledged),
            )
            await _abort(context, partial_status(result, len(events)))
        return usage_pb2.ReportUsageResponse(acknowledged=result.acknowledged)


def add_usage_service(
    server: grpc.aio.Server, store: UsageStore, executor: Executor
) -> UsageServicer:
    """Register the Usage service on ``server``; :data:`SERVICE_NAME` names it for health."""
    servicer = UsageServicer(store, executor)
    usage_pb2_grpc.add_UsageServicer_to_server(servicer, server)
    return servicer
