"""The one place HTTP errors become RFC 9457 problem details (``application/problem+json``).

Every problem has the standard members ``type``, ``title``, ``status`` and ``detail``, plus
``code``, a stable machine-readable error code (the engine's :attr:`PDPError.code` for engine
errors, the same codes gRPC clients see in ``ErrorInfo.reason``, lower-cased), and any
further extension members the caller adds. By default ``type`` is ``about:blank``: the
status and ``code`` carry the meaning, so ``title`` is the status phrase, as RFC 9457 asks
for that type. Callers whose problems are kinds of their own (the webhook PEP's signature
and replay refusals) pass a ``type_uri`` naming the kind and a ``title`` describing it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web

from pdp.errors import (
    EvaluationTimeoutError,
    InvalidInputError,
    PDPError,
    PoolClosedError,
)

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "http_status",
    "pdp_problem",
    "problem_body",
    "problem_middleware",
    "problem_response",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"

log = logging.getLogger(__name__)

# Anything not listed is the server's fault (500): an unknown entrypoint is configuration,
# not something the client chose; a conflict, trap or failing builtin is a policy bug.
_STATUSES: tuple[tuple[type[PDPError], HTTPStatus], ...] = (
    (InvalidInputError, HTTPStatus.BAD_REQUEST),
    (EvaluationTimeoutError, HTTPStatus.SERVICE_UNAVAILABLE),
    (PoolClosedError, HTTPStatus.SERVICE_UNAVAILABLE),
)


def http_status(exc: PDPError) -> int:
    """The HTTP status for an engine error (500 when nothing more specific fits)."""
    for kind, status in _STATUSES:
        if isinstance(exc, kind):
            return status.value
    return HTTPStatus.INTERNAL_SERVER_ERROR.value


def problem_body(
    status: int,
    detail: str,
    *,
    code: str,
    type_uri: str = "about:blank",
    title: str | None = None,
    **extensions: Any,
) -> bytes:
    """The RFC 9457 problem document as JSON bytes, for any transport that carries HTTP
    responses (aiohttp here, Envoy's denied responses in the ext_authz servicer)."""
    body = {
        **extensions,
        "type": type_uri,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    return json.dumps(body, ensure_ascii=False).encode()


def problem_response(
    status: int,
    detail: str,
    *,
    code: str,
    headers: Mapping[str, str] | None = None,
    type_uri: str = "about:blank",
    title: str | None = None,
    **extensions: Any,
) -> web.Response:
    """A problem+json response; ``extensions`` become extra members of the problem object."""
    return web.Response(
        status=status,
        body=problem_body(status, detail, code=code, type_uri=type_uri, title=title, **extensions),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def pdp_problem(
    exc: PDPError, *, headers: Mapping[str, str] | None = None, **extensions: Any
) -> web.Response:
    """The problem response for an engine error."""
    status = http_status(exc)
    if status >= 500:
        log.error("policy evaluation failed (%s): %s", exc.code, exc.message)
    return problem_response(status, exc.message, code=exc.code, headers=headers, **extensions)


_BODY_HEADERS = frozenset({"content-type", "content-length"})


def _code_for(status: int) -> str:
    return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Render aiohttp's own HTTP errors (no route, wrong method, a crash) as problems too.

    Install it when creating the application: ``web.Application(middlewares=[problem_middleware])``.
    """
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # Allow (405) and similar headers stay; the body and its type are replaced.
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
        detail = exc.text or ""
        if not detail or detail.startswith(f"{exc.status}:"):
            # aiohttp's default text only repeats the status; say what was asked instead.
            detail = f"{request.method} {request.path}: {exc.reason}"
        return problem_response(exc.status, detail, code=_code_for(exc.status), headers=headers)
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return problem_response(
            HTTPStatus.INTERNAL_SERVER_ERROR.value,
            "the server failed to handle this request",
            code="internal_error",
        )
