"""The OpenID AuthZEN Authorization API 1.0 over HTTP: access evaluation(s) and PDP metadata.

:func:`add_authzen_routes` adds to an aiohttp application

* ``POST /access/v1/evaluation``: one AuthZEN request, answered with a Decision,
  ``{"decision": bool, "context": {...}}``;
* ``POST /access/v1/evaluations``: many requests in one call; the top-level ``subject``,
  ``action``, ``resource`` and ``context`` are defaults for every item of ``evaluations``,
  ``options.evaluations_semantic`` picks ``execute_all`` (the default),
  ``deny_on_first_deny`` or ``permit_on_first_permit``; the answer is
  ``{"evaluations": [Decision, ...]}`` in request order (shorter when it short-circuits). A
  request without ``evaluations`` (or with an empty one) is a single evaluation, as the
  spec says, and gets a single Decision;
* ``GET /.well-known/authzen-configuration``: the PDP metadata document.

The policy input is the AuthZEN request itself, ``{"subject", "action", "resource",
"context"}`` (``context`` is ``{}`` when the request has none), evaluated at one configured
entrypoint. A Decision's ``context`` carries the decision id, the policy revision, and the
policy's reasons and obligations when there are any. Items of ``evaluations`` are bare
``{"decision": bool}`` unless the caller sets ``options.include_context`` to ``true``: the
spec makes ``context`` optional, and the interop runners compare items exactly. An item
whose evaluation failed is ``false`` with ``context.error`` (``status``, ``message``,
``code``), as the spec's error example shows.

Errors that concern the whole request are problem+json responses (:mod:`gateway.problem`).
Every response, errors included, echoes the request's ``X-Request-ID``, which also goes to
the decision log with each decision.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from gateway.problem import http_status, pdp_problem, problem_response
from pdp.decision import Decision
from pdp.errors import EntrypointNotFoundError, InvalidInputError, PDPError
from pdp.jsondoc import check_depth
from pdp.pool import encode_document
from pdp.service import DecisionRequest, DecisionService

__all__ = [
    "AUTHZEN",
    "EVALUATIONS_PATH",
    "EVALUATION_PATH",
    "MAX_EVALUATIONS",
    "METADATA_PATH",
    "AuthzenConfig",
    "add_authzen_routes",
]

EVALUATION_PATH = "/access/v1/evaluation"
EVALUATIONS_PATH = "/access/v1/evaluations"
METADATA_PATH = "/.well-known/authzen-configuration"

MAX_EVALUATIONS = 10_000
"""Most items one ``evaluations`` request may carry; bigger batches are refused."""

REQUEST_ID_HEADER = "X-Request-ID"

METADATA_MAX_AGE = 3600
"""Seconds a PEP may cache the metadata document (it changes only with configuration)."""

EXECUTE_ALL = "execute_all"
DENY_ON_FIRST_DENY = "deny_on_first_deny"
PERMIT_ON_FIRST_PERMIT = "permit_on_first_permit"
SEMANTICS = (EXECUTE_ALL, DENY_ON_FIRST_DENY, PERMIT_ON_FIRST_PERMIT)

# The entities of a request, and the string members each must have.
_PARTS = ("subject", "action", "resource", "context")
_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "subject": ("type", "id"),
    "action": ("name",),
    "resource": ("type", "id"),
}

_T = TypeVar("_T")


@dataclass(frozen=True)
class AuthzenConfig:
    """What the AuthZEN handlers of one application evaluate with."""

    service: DecisionService
    executor: Executor
    entrypoint: str
    base_url: str | None


AUTHZEN = web.AppKey("council_authzen", AuthzenConfig)
"""Where :func:`add_authzen_routes` keeps its configuration in the application."""


class _Refused(Exception):
    """A request refused before evaluation; ``detail`` tells the caller what is wrong."""

    def __init__(
        self, detail: str, status: int = HTTPStatus.BAD_REQUEST, code: str = "invalid_request"
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = int(status)
        self.code = code


def add_authzen_routes(
    app: web.Application,
    service: DecisionService,
    executor: Executor,
    *,
    entrypoint: str,
    base_url: str | None = None,
) -> None:
    """Serve the AuthZEN Access Evaluation API and PDP metadata from ``app``.

    Decisions come from ``service`` at ``entrypoint`` (``pkg/rule``) and run on
    ``executor``, never on the event loop. ``base_url`` is the PDP identifier published in
    the metadata (e.g. ``https://pdp.example.com``); without it the identifier is the
    origin each metadata request was addressed to. The request body limit is the
    application's ``client_max_size``.
    """
    if not entrypoint:
        raise ValueError("an AuthZEN entrypoint is required")
    if base_url is not None:
        base_url = _checked_base_url(base_url)
    app[AUTHZEN] = AuthzenConfig(service, executor, entrypoint, base_url)
    app.router.add_post(EVALUATION_PATH, _endpoint(_evaluate_one))
    app.router.add_post(EVALUATIONS_PATH, _endpoint(_evaluate_many))
    app.router.add_get(METADATA_PATH, _metadata)


def _checked_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"AuthZEN base URL {base_url!r} is not an absolute http(s) URL")
    if parts.query or parts.fragment:
        raise ValueError(f"AuthZEN base URL {base_url!r} must have no query or fragment")
    return base_url.rstrip("/")


def _request_id_headers(request: web.Request) -> dict[str, str]:
    request_id = request.headers.get(REQUEST_ID_HEADER)
    return {REQUEST_ID_HEADER: request_id} if request_id else {}


async def _metadata(request: web.Request) -> web.Response:
    config = request.app[AUTHZEN]
    base = config.base_url or str(request.url.origin())
    document = {
        "policy_decision_point": base,
        "access_evaluation_endpoint": base + EVALUATION_PATH,
        "access_evaluations_endpoint": base + EVALUATIONS_PATH,
    }
    headers = {**_request_id_headers(request), "Cache-Control": f"max-age={METADATA_MAX_AGE}"}
    return web.json_response(document, headers=headers)


_BodyHandler = Callable[[AuthzenConfig, dict[str, Any], str], Awaitable[dict[str, Any]]]


def _endpoint(handle_body: _BodyHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a handler of the parsed body with reading, error rendering and the request id."""

    async def handler(request: web.Request) -> web.Response:
        headers = _request_id_headers(request)
        request_id = headers.get(REQUEST_ID_HEADER, "")
        try:
            body = await _read_object(request)
            answer = await handle_body(request.app[AUTHZEN], body, request_id)
        except _Refused as exc:
            return problem_response(exc.status, exc.detail, code=exc.code, headers=headers)
        except PDPError as exc:
            return pdp_problem(exc, headers=headers)
        return web.Response(
            body=json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode(),
            content_type="application/json",
            headers=headers,
        )

    return handler


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _reject_constant(name: str) -> Any:
    # Python's parser accepts NaN and Infinity; JSON (RFC 8259) and OPA do not.
    raise ValueError(f"{name} is not a JSON value")


async def _read_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or :class:`_Refused` saying why it is not one."""
    if hdrs.CONTENT_TYPE in request.headers:
        mimetype = request.content_type
        if mimetype != "application/json" and not mimetype.endswith("+json"):
            raise _Refused(
                f"content type {mimetype!r} is not JSON; send application/json",
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _Refused(
            f"request body exceeds the limit of {request.client_max_size} bytes",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "payload_too_large",
        ) from None
    if not raw.strip():
        raise _Refused("request body is empty; send an AuthZEN request object")
    try:
        check_depth(raw)
    except InvalidInputError:
        raise _Refused("request body nests too deeply") from None
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise _Refused("request body nests too deeply") from None
    except ValueError as exc:
        raise _Refused(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _Refused(f"request body must be a JSON object, not {_json_type(body)}")
    return body


def _check_parts(doc: Mapping[str, Any], where: str) -> None:
    """Check the type of every entity present in ``doc`` (null counts as absent)."""
    for key in _PARTS:
        value = doc.get(key)
        if value is None:
            continue
        path = where + key
        if not isinstance(value, dict):
            raise _Refused(f"{path} must be an object, not {_json_type(value)}")
        for field in _REQUIRED.get(key, ()):
            member = value.get(field)
            if member is None:
                raise _Refused(f"{path}.{field} is required")
            if not isinstance(member, str):
                raise _Refused(f"{path}.{field} must be a string, not {_json_type(member)}")
        properties = value.get("properties")
        if key != "context" and properties is not None and not isinstance(properties, dict):
            raise _Refused(f"{path}.properties must be an object, not {_json_type(properties)}")


def _policy_input(parts: Mapping[str, Any], where: str) -> bytes:
    """The policy input for one evaluation whose entities have been checked."""
    for key in _REQUIRED:
        if parts.get(key) is None:
            hint = " (in the item or as a top-level default)" if where else ""
            raise _Refused(f"{where}{key} is required{hint}")
    doc = {
        "subject": parts["subject"],
        "action": parts["action"],
        "resource": parts["resource"],
        "context": parts.get("context") or {},
    }
    try:
        return encode_document(doc)
    except InvalidInputError as exc:
        raise _Refused(f"{where.rstrip('.') or 'request'}: {exc.message}") from None


async def _run(config: AuthzenConfig, fn: Callable[..., _T], *args: Any) -> _T:
    """Run blocking evaluation work on the executor."""
    return await asyncio.get_running_loop().run_in_executor(config.executor, fn, *args)


def _context(decision: Decision) -> dict[str, Any]:
    context: dict[str, Any] = {"decision_id": decision.decision_id}
    if decision.revision:
        context["policy_revision"] = decision.revision
    if decision.reasons:
        context["reasons"] = list(decision.reasons)
    if decision.obligations:
        context["obligations"] = decision.obligations
    return context


async def _evaluate_one(
    config: AuthzenConfig, body: dict[str, Any], request_id: str
) -> dict[str, Any]:
    _check_parts(body, "")
    request = DecisionRequest(config.entrypoint, _policy_input(body, ""), request_id)
    decision = await _run(config, config.service.decide, request)
    return {"decision": decision.allow, "context": _context(decision)}


def _options(options: Any) -> tuple[str, bool]:
    """``(evaluations_semantic, include_context)`` from the ``options`` member."""
    if options is None:
        return EXECUTE_ALL, False
    if not isinstance(options, dict):
        raise _Refused(f"options must be an object, not {_json_type(options)}")
    semantic = options.get("evaluations_semantic")
    if semantic is None:
        semantic = EXECUTE_ALL
    if semantic not in SEMANTICS:
        raise _Refused(
            f"options.evaluations_semantic must be one of {', '.join(SEMANTICS)}, "
            f"not {json.dumps(semantic)}"
        )
    include_context = options.get("include_context", False)
    if not isinstance(include_context, bool):
        raise _Refused(
            f"options.include_context must be a boolean, not {_json_type(include_context)}"
        )
    return semantic, include_context


def _decide_until(
    service: DecisionService, requests: Sequence[DecisionRequest], stop_on: bool
) -> list[Decision | PDPError]:
    """Decide in order and stop after the first decision equal to ``stop_on``.

    A failed evaluation counts as a denial: it stops ``deny_on_first_deny`` and never
    satisfies ``permit_on_first_permit``. Runs on a worker thread.
    """
    out: list[Decision | PDPError] = []
    for request in requests:
        try:
            decision = service.decide(request)
        except PDPError as exc:
            out.append(exc)
            allowed = False
        else:
            out.append(decision)
            allowed = decision.allow
        if allowed == stop_on:
            break
    return out


def _item(result: Decision | PDPError, include_context: bool) -> dict[str, Any]:
    if isinstance(result, PDPError):
        error = {"status": http_status(result), "message": result.message, "code": result.code}
        return {"decision": False, "context": {"error": error}}
    if include_context:
        return {"decision": result.allow, "context": _context(result)}
    return {"decision": result.allow}


async def _evaluate_many(
    config: AuthzenConfig, body: dict[str, Any], request_id: str
) -> dict[str, Any]:
    items = body.get("evaluations")
    if items is None or items == []:
        return await _evaluate_one(config, body, request_id)
    if not isinstance(items, list):
        raise _Refused(f"evaluations must be an array, not {_json_type(items)}")
    if len(items) > MAX_EVALUATIONS:
        raise _Refused(
            f"evaluations has {len(items)} items; at most {MAX_EVALUATIONS} are accepted"
        )
    semantic, include_context = _options(body.get("options"))
    _check_parts(body, "")
    requests = []
    for index, item in enumerate(items):
        where = f"evaluations[{index}]"
        if not isinstance(item, dict):
            raise _Refused(f"{where} must be an object, not {_json_type(item)}")
        _check_parts(item, where + ".")
        # An item's own entity replaces the default as a whole; the two are not merged.
        merged = {key: body.get(key) if item.get(key) is None else item[key] for key in _PARTS}
        requests.append(
            DecisionRequest(config.entrypoint, _policy_input(merged, where + "."), request_id)
        )
    if semantic == EXECUTE_ALL:
        results = await _run(config, config.service.decide_batch, requests)
    else:
        stop_on = semantic == PERMIT_ON_FIRST_PERMIT
        results = await _run(config, _decide_until, config.service, requests, stop_on)
    for result in results:
        # A missing entrypoint is the PDP's configuration, not one item's problem.
        if isinstance(result, EntrypointNotFoundError):
            raise result
    return {"evaluations": [_item(result, include_context) for result in results]}
