"""``council.v1.Posture``: a thin adapter from gRPC messages to :class:`PostureIntake`.

The intake blocks on SQLite, so every call runs in the executor, never on the event loop.
This module is the one place posture errors become gRPC statuses: a report that fails
verification is an answer (``accepted = false`` with the rejection code), while a malformed
request, an enrollment conflict or an unknown device in ``Status`` is a status carrying a
``google.rpc.ErrorInfo`` whose ``reason`` is the error's code in capitals.

When the channel is mTLS, the peer's SPIFFE id (:func:`gateway.mtls.peer_identity`) is
passed to the intake as the caller's identity, bound at enrollment and compared at
submission; plain channels pass none, so the device signature remains the authentication
either way. A client certificate without a SPIFFE id fails as :mod:`gateway.mtls` says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import NoReturn, TypeVar

import grpc
from google.rpc import status_pb2

from gateway import mtls
from gateway.posture import (
    EnrollmentConflictError,
    IntakeClosedError,
    InvalidPostureRequestError,
    PostureError,
    PostureIntake,
    PostureStatus,
    RejectedReportError,
    UnknownDeviceError,
)
from gateway.status import abort, code_for, error_status
from gateway.tokens import AuthError
from proto.council.v1 import posture_pb2, posture_pb2_grpc

__all__ = [
    "ERROR_DOMAIN",
    "SERVICE_NAME",
    "PostureServicer",
    "add_posture_service",
    "status_message",
]

log = logging.getLogger(__name__)

ERROR_DOMAIN = "council.posture"
SERVICE_NAME = posture_pb2.DESCRIPTOR.services_by_name["Posture"].full_name

_CODES: tuple[tuple[type[PostureError], grpc.StatusCode], ...] = (
    (InvalidPostureRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (EnrollmentConflictError, grpc.StatusCode.ALREADY_EXISTS),
    (UnknownDeviceError, grpc.StatusCode.NOT_FOUND),
    (IntakeClosedError, grpc.StatusCode.UNAVAILABLE),
)

T = TypeVar("T")


def _rpc_status(exc: PostureError, **metadata: str) -> status_pb2.Status:
    code = code_for(exc, _CODES, grpc.StatusCode.INTERNAL)
    return error_status(
        code, exc.message, reason=exc.code.upper(), domain=ERROR_DOMAIN, metadata=metadata
    )


async def _abort(context: grpc.aio.ServicerContext, exc: PostureError, **metadata: str) -> NoReturn:
    await abort(context, _rpc_status(exc, **metadata))


async def _identity(context: grpc.aio.ServicerContext) -> str:
    """The caller's SPIFFE id on an mTLS channel, "" on a plain one."""
    try:
        identity = mtls.peer_identity(context)
    except AuthError as exc:
        await mtls.abort(context, exc)
    return identity.spiffe_id if identity is not None else ""


def status_message(status: PostureStatus) -> posture_pb2.PostureStatus:
    """The wire form of a :class:`PostureStatus`."""
    msg = posture_pb2.PostureStatus(
        device_id=status.device_id,
        tenant=status.tenant,
        enrolled=status.enrolled,
        reported=status.reported,
        fresh=status.fresh,
        compliant=status.compliant,
        checks=dict(status.checks),
        failed=status.failed,
        reasons=status.reasons,
        issued_at_ms=status.issued_at_ms or 0,
    )
    if status.age_seconds is not None:
        msg.age_seconds = status.age_seconds
    return msg


class PostureServicer(posture_pb2_grpc.PostureServicer):
    """Serves Enroll, Submit and Status from a :class:`PostureIntake`."""

    def __init__(self, intake: PostureIntake, executor: Executor) -> None:
        self._intake = intake
        self._executor = executor

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def Enroll(
        self, request: posture_pb2.EnrollRequest, context: grpc.aio.ServicerContext
    ) -> posture_pb2.EnrollResponse:
        identity = await _identity(context)
        try:
            enrolled = await self._run(
                lambda: self._intake.enroll(
                    request.device_id, request.public_key, request.tenant, identity=identity
                )
            )
        except PostureError as exc:
            await _abort(context, exc, device_id=request.device_id[:128])
        log.info(
            "device %s %s in tenant %s (key %s)",
            enrolled.device_id,
            "enrolled" if enrolled.created else "re-enrolled unchanged",
            enrolled.tenant,
            enrolled.key_id,
        )
        return posture_pb2.EnrollResponse(
            device_id=enrolled.device_id,
            tenant=enrolled.tenant,
            key_id=enrolled.key_id,
            created=enrolled.created,
        )

    async def Submit(
        self, request: posture_pb2.SubmitRequest, context: grpc.aio.ServicerContext
    ) -> posture_pb2.SubmitResponse:
        identity = await _identity(context)
        try:
            status = await self._run(
                lambda: self._intake.submit(
                    request.device_id, request.report_json, request.signature, identity=identity
                )
            )
        except RejectedReportError as exc:
            log.warning(
                "posture report from %r rejected (%s): %s",
                request.device_id[:128],
                exc.code,
                exc.message,
            )
            return posture_pb2.SubmitResponse(
                accepted=False, rejection=exc.code, reasons=[exc.message]
            )
        except PostureError as exc:
            await _abort(context, exc, device_id=request.device_id[:128])
        return posture_pb2.SubmitResponse(accepted=True, status=status_message(status))

    async def Status(
        self, request: posture_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> posture_pb2.PostureStatus:
        if not request.device_id:
            await _abort(context, InvalidPostureRequestError("device_id is required"))
        try:
            status = await self._run(lambda: self._intake.posture_for(request.device_id))
            if not status.enrolled:
                raise UnknownDeviceError(f"device {request.device_id!r} is not enrolled")
        except PostureError as exc:
            await _abort(context, exc, device_id=request.device_id[:128])
        return status_message(status)


def add_posture_service(
    server: grpc.aio.Server, intake: PostureIntake, executor: Executor
) -> PostureServicer:
    """Register the Posture service on ``server``; :data:`SERVICE_NAME` names it for health."""
    servicer = PostureServicer(intake, executor)
    posture_pb2_grpc.add_PostureServicer_to_server(servicer, server)
    return servicer
