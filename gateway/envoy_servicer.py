"""Envoy's external authorization API (``envoy.service.auth.v3.Authorization/Check``).

Envoy (or anything speaking ext_authz) asks the PDP about each HTTP request. The request's
attributes become the policy input in the shape OPA's Envoy plugin uses, so policies written
for ``opa-envoy-plugin`` read the same fields::

    {"attributes": {"source": {...}, "destination": {...},
                    "request": {"http": {"method", "path", "host", "headers", ...}},
                    "context_extensions": {...}},
     "parsed_path": ["api", "v1", "x"], "parsed_query": {"k": ["v"]},
     "parsed_body": <JSON body, when the body is JSON>}

A denial carries the policy's reasons to the caller: HTTP status (403 unless the policy sets
``http_status``), a problem+json body with the reasons and the decision id, and any headers
the policy asks for. Messages and stubs come from the ``xds-protos`` package.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

from gateway.coalescing import CoalescingEvaluator
from gateway.problem import http_status, problem_body
from gateway.status import rpc_status
from pdp.decision import Decision
from pdp.errors import PDPError
from pdp.service import DecisionRequest

DEFAULT_DENY_STATUS = 403


def _peer(peer: Any) -> dict[str, Any]:
    address = peer.address.socket_address
    return {
        "address": {"socketAddress": {"address": address.address, "portValue": address.port_value}},
        "principal": peer.principal,
        "service": peer.service,
        "labels": dict(peer.labels),
        "certificate": peer.certificate,
    }


def check_input(request: external_auth_pb2.CheckRequest) -> dict[str, Any]:
    """The policy input for one CheckRequest (OPA Envoy plugin's shape)."""
    attrs = request.attributes
    http = attrs.request.http
    headers = dict(http.headers)
    split = urlsplit(http.path)
    body = http.body or (http.raw_body.decode("utf-8", "replace") if http.raw_body else "")
    doc: dict[str, Any] = {
        "attributes": {
            "source": _peer(attrs.source),
            "destination": _peer(attrs.destination),
            "request": {
                "http": {
                    "id": http.id,
                    "method": http.method,
                    "path": http.path,
                    "host": http.host,
                    "scheme": http.scheme,
                    "protocol": http.protocol,
                    "headers": headers,
                    "size": http.size,
                    "body": body,
                }
            },
            "context_extensions": dict(attrs.context_extensions),
        },
        "parsed_path": [unquote(p) for p in split.path.split("/") if p],
        "parsed_query": parse_qs(split.query, keep_blank_values=True),
    }
    if body and "json" in headers.get("content-type", ""):
        try:
            doc["parsed_body"] = json.loads(body)
        except ValueError:
            doc["parsed_body"] = None
    return doc


def _headers(values: Any) -> list[base_pb2.HeaderValueOption]:
    if not isinstance(values, dict):
        return []
    return [
        base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=str(k), value=str(v)))
        for k, v in values.items()
    ]


def check_response(decision: Decision) -> external_auth_pb2.CheckResponse:
    """Translate a decision into Envoy's allow/deny response."""
    result = decision.result if isinstance(decision.result, dict) else {}
    obligations = decision.obligations
    if decision.allow:
        ok = external_auth_pb2.OkHttpResponse(
            headers=_headers(obligations.get("headers", result.get("headers"))),
            response_headers_to_add=_headers(obligations.get("response_headers_to_add")),
        )
        ok.headers.append(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key="x-council-decision-id", value=decision.decision_id)
            )
        )
        return external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=code_pb2.OK), ok_response=ok
        )
    status = result.get("http_status", DEFAULT_DENY_STATUS)
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = DEFAULT_DENY_STATUS
    body = result.get("body")
    if not isinstance(body, str):
        body = problem_body(
            status,
            "; ".join(decision.reasons) or "denied by policy",
            code="denied_by_policy",
            reasons=list(decision.reasons),
            decision_id=decision.decision_id,
        ).decode()
    denied = external_auth_pb2.DeniedHttpResponse(
        status=http_status_pb2.HttpStatus(code=status),
        headers=[
            *_headers(result.get("headers")),
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key="content-type", value="application/problem+json")
            ),
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key="x-council-decision-id", value=decision.decision_id)
            ),
        ],
        body=body,
    )
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED, message=denied.body[:200]),
        denied_response=denied,
    )


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):
    """ext_authz Check backed by one policy entrypoint. Fails closed on engine errors."""

    def __init__(self, evaluator: CoalescingEvaluator, entrypoint: str) -> None:
        self._evaluator = evaluator
        self._entrypoint = entrypoint

    async def Check(
        self, request: external_auth_pb2.CheckRequest, context: grpc.aio.ServicerContext
    ) -> external_auth_pb2.CheckResponse:
        doc = json.dumps(check_input(request), separators=(",", ":")).encode()
        req = DecisionRequest(self._entrypoint, doc, request.attributes.request.http.id)
        try:
            decision = await self._evaluator.decide(req)
        except PDPError as exc:
            # An answer Envoy can act on (deny), with the reason in the status; never allow.
            status = rpc_status(exc)
            code = http_status(exc)
            denied = external_auth_pb2.DeniedHttpResponse(
                status=http_status_pb2.HttpStatus(code=code),
                body=problem_body(code, exc.message, code=exc.code).decode(),
                headers=[
                    base_pb2.HeaderValueOption(
                        header=base_pb2.HeaderValue(
                            key="content-type", value="application/problem+json"
                        )
                    )
                ],
            )
            return external_auth_pb2.CheckResponse(status=status, denied_response=denied)
        return check_response(decision)
