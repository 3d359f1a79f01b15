"""The one place gRPC error statuses are built.

Each status carries a human-readable message and, as structured detail, a
``google.rpc.ErrorInfo`` whose ``reason`` is a stable error code and whose ``domain`` names
the service family (``council.pdp``, ``council.auth``, ``council.admin``, …). Each error
family keeps its table of which exception maps to which code next to its errors; the
building and the aborting happen here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status as grpc_rpc_status

from pdp.errors import (
    EntrypointNotFoundError,
    EvaluationTimeoutError,
    InvalidInputError,
    PDPError,
    PolicyAbortError,
    PoolClosedError,
    ResourceExhaustedError,
)

ERROR_DOMAIN = "council.pdp"

_CODES: tuple[tuple[type[PDPError], grpc.StatusCode], ...] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (EntrypointNotFoundError, grpc.StatusCode.NOT_FOUND),
    (EvaluationTimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (PolicyAbortError, grpc.StatusCode.FAILED_PRECONDITION),
    (PoolClosedError, grpc.StatusCode.UNAVAILABLE),
)


def code_for(
    exc: Exception,
    table: Sequence[tuple[type[Exception], grpc.StatusCode]],
    default: grpc.StatusCode,
) -> grpc.StatusCode:
    """The code of the first ``table`` entry ``exc`` is an instance of, else ``default``."""
    return next((code for kind, code in table if isinstance(exc, kind)), default)


def error_status(
    code: grpc.StatusCode,
    text: str,
    *,
    reason: str,
    domain: str = ERROR_DOMAIN,
    metadata: Mapping[str, str] | None = None,
    details: Sequence[message.Message] = (),
) -> status_pb2.Status:
    """A ``google.rpc.Status``: ``code``, ``text``, an ``ErrorInfo`` (reason, domain,
    metadata) and any further ``details`` messages."""
    packed = []
    for detail in (
        error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=metadata or {}),
        *details,
    ):
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=code.value[0], message=text, details=packed)


async def abort(context: Any, status: status_pb2.Status) -> NoReturn:
    """End the RPC with ``status`` (a grpc.aio servicer context)."""
    await context.abort_with_status(grpc_rpc_status.to_status(status))
    raise AssertionError("abort_with_status returned")  # it always raises


def grpc_code(exc: PDPError) -> grpc.StatusCode:
    """The gRPC status code for an engine error (INTERNAL when nothing more specific fits)."""
    return code_for(exc, _CODES, grpc.StatusCode.INTERNAL)


def rpc_status(exc: PDPError, **metadata: str) -> status_pb2.Status:
    """A ``google.rpc.Status`` for ``exc``, with an ``ErrorInfo`` naming its code."""
    return error_status(grpc_code(exc), exc.message, reason=exc.code.upper(), metadata=metadata)


def invalid_argument(text: str, reason: str = "INVALID_REQUEST") -> status_pb2.Status:
    """A status for a malformed request caught before the engine saw it."""
    return error_status(grpc.StatusCode.INVALID_ARGUMENT, text, reason=reason)
