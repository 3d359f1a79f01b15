"""The one place engine errors become gRPC statuses.

Each status carries a human-readable message and, as structured detail, a
``google.rpc.ErrorInfo`` whose ``reason`` is the engine's stable error code.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

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


def grpc_code(exc: PDPError) -> grpc.StatusCode:
    """The gRPC status code for an engine error (INTERNAL when nothing more specific fits)."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def rpc_status(exc: PDPError, **metadata: str) -> status_pb2.Status:
    """A ``google.rpc.Status`` for ``exc``, with an ``ErrorInfo`` naming its code."""
    code = grpc_code(exc)
    info = error_details_pb2.ErrorInfo(
        reason=exc.code.upper(), domain=ERROR_DOMAIN, metadata=metadata
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    return status_pb2.Status(code=code.value[0], message=exc.message, details=[detail])


def invalid_argument(message: str, reason: str = "INVALID_REQUEST") -> status_pb2.Status:
    """A status for a malformed request caught before the engine saw it."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN)
    detail = any_pb2.Any()
    detail.Pack(info)
    return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])
