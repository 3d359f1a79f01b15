"""The AuthZEN Access Evaluation API over real HTTP.

Every decision of the OpenID AuthZEN interop files (Todo and API gateway) is asked of a
server on a real socket, with the policies in ``rego/examples/authzen`` built by the pinned
opa, both alone and as part of the whole ``rego/`` tree (their data is mounted at different
paths in the two). Then malformed requests, engine errors, batch semantics and metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import pdp
from council.opa_tool import PROJECT_ROOT
from council.policy_build import build_bundle
from gateway.authzen import (
    EVALUATION_PATH,
    EVALUATIONS_PATH,
    METADATA_PATH,
    add_authzen_routes,
)
from gateway.problem import PROBLEM_CONTENT_TYPE, http_status, problem_middleware
from pdp.service import DecisionService

AUTHZEN_FILES = PROJECT_ROOT.parent / "shared" / "authzen"
AUTHZEN_REGO = PROJECT_ROOT / "rego" / "examples" / "authzen"
ENTRYPOINT = "examples/authzen/decision"

RICK = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
MORTY = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
JERRY = "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

BODY_LIMIT = 64 * 1024


def _interop_cases() -> list[Any]:
    """One pytest param per request of the shared decision files (skipped when absent)."""
    files = {"todo": "todo-decisions.json", "api-gateway": "api-gateway-decisions.json"}
    if not all((AUTHZEN_FILES / name).is_file() for name in files.values()):
        reason = f"AuthZEN decision files not found in {AUTHZEN_FILES}"
        return [pytest.param(None, None, None, marks=pytest.mark.skip(reason=reason))]
    cases = []
    for scenario, name in files.items():
        doc = json.loads((AUTHZEN_FILES / name).read_text())
        for kind in ("evaluation", "evaluations"):
            for index, case in enumerate(doc.get(kind, [])):
                cases.append(
                    pytest.param(
                        kind, case["request"], case["expected"], id=f"{scenario}-{kind}-{index}"
                    )
                )
    return cases


@contextlib.contextmanager
def serving(
    service: DecisionService,
    executor: ThreadPoolExecutor,
    *,
    entrypoint: str = ENTRYPOINT,
    base_url: str | None = None,
) -> Iterator[str]:
    """An AuthZEN app on 127.0.0.1 (free port), its event loop on a thread; yields its URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="authzen-server", daemon=True)
    thread.start()
    app = web.Application(middlewares=[problem_middleware], client_max_size=BODY_LIMIT)
    add_authzen_routes(app, service, executor, entrypoint=entrypoint, base_url=base_url)
    runner = web.AppRunner(app)

    async def start() -> str:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


class Reply:
    """What came back: status, headers, parsed JSON body (or None when not JSON)."""

    def __init__(self, status: int, headers: dict[str, str], body: Any) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def call(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One HTTP request with a fresh aiohttp client."""

    async def go() -> Reply:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, url, json=json_body, data=data, headers=headers) as resp,
        ):
            raw = await resp.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            return Reply(resp.status, dict(resp.headers), body)

    return asyncio.run(go())


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> Reply:
    """POST ``body`` as JSON."""
    return call("POST", url, json_body=body, headers=headers)


@pytest.fixture(scope="module")
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="authzen-eval") as pool:
        yield pool


@pytest.fixture(scope="module")
def authzen_bundle(opa_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``rego/examples/authzen`` alone, built by the pinned opa."""
    out = tmp_path_factory.mktemp("authzen") / "authzen.tar.gz"
    build_bundle(AUTHZEN_REGO, out, revision="authzen-test")
    return out


@pytest.fixture(scope="module")
def service(authzen_bundle: Path) -> Iterator[DecisionService]:
    svc = DecisionService(pdp.load(authzen_bundle))
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def server(service: DecisionService, executor: ThreadPoolExecutor) -> Iterator[str]:
    with serving(service, executor) as url:
        yield url


@pytest.fixture(scope="module", params=["authzen-alone", "whole-rego-tree"])
def interop_server(request: pytest.FixtureRequest, executor: ThreadPoolExecutor) -> Iterator[str]:
    """A server per bundle layout: the policies' data is mounted differently in each."""
    fixture = "authzen_bundle" if request.param == "authzen-alone" else "council_bundle"
    svc = DecisionService(pdp.load(request.getfixturevalue(fixture)))
    try:
        with serving(svc, executor) as url:
            yield url
    finally:
        svc.close()


# -- the interop decision files ---------------------------------------------------------


@pytest.mark.parametrize(("kind", "request_body", "expected"), _interop_cases())
def test_interop_decision(interop_server: str, kind: str, request_body: Any, expected: Any) -> None:
    if kind == "evaluation":
        reply = post(interop_server + EVALUATION_PATH, request_body)
        assert reply.status == 200, reply.body
        # The interop runner reads a missing decision as false.
        assert reply.body.get("decision", False) is expected, reply.body
    else:
        reply = post(interop_server + EVALUATIONS_PATH, request_body)
        assert reply.status == 200, reply.body
        # Items are compared exactly, as the interop runner does.
        assert reply.body == {"evaluations": expected}


# -- responses ---------------------------------------------------------------------------


def todo_request(subject: str, action: str, owner: str) -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": subject},
        "action": {"name": action},
        "resource": {"type": "todo", "id": "t-1", "properties": {"ownerID": owner}},
    }


def test_denial_context_carries_the_policy_reasons(server: str) -> None:
    reply = post(server + EVALUATION_PATH, todo_request(MORTY, "can_delete_todo", "rick@x"))
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.body["decision"] is False
    context = reply.body["context"]
    assert context["reasons"] == [
        "morty@the-citadel.com holds can_delete_todo only for their own todos; "
        "this todo belongs to rick@x"
    ]
    assert context["decision_id"]
    assert context["policy_revision"] == "authzen-test"


def test_permit_context_has_no_reasons(server: str) -> None:
    reply = post(server + EVALUATION_PATH, todo_request(RICK, "can_delete_todo", "morty@x"))
    assert reply.body["decision"] is True
    assert set(reply.body["context"]) == {"decision_id", "policy_revision"}


def test_unhandled_resource_type_is_denied_with_reason(server: str) -> None:
    body = {
        "subject": {"type": "user", "id": RICK},
        "action": {"name": "can_read"},
        "resource": {"type": "document", "id": "1"},
    }
    reply = post(server + EVALUATION_PATH, body)
    assert reply.body["decision"] is False
    assert reply.body["context"]["reasons"] == ['no policy decides on resources of type "document"']


def test_request_id_is_echoed(server: str) -> None:
    rid = "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"
    reply = post(
        server + EVALUATION_PATH,
        todo_request(RICK, "can_read_todos", ""),
        headers={"X-Request-ID": rid},
    )
    assert reply.status == 200
    assert reply.headers["X-Request-ID"] == rid
    problem = post(server + EVALUATION_PATH, {}, headers={"X-Request-ID": rid})
    assert problem.status == 400
    assert problem.headers["X-Request-ID"] == rid
    assert "X-Request-ID" not in post(server + EVALUATION_PATH, {}).headers


def test_evaluations_without_items_is_a_single_evaluation(server: str) -> None:
    for extra in ({}, {"evaluations": []}):
        body = {**todo_request(JERRY, "can_create_todo", ""), **extra}
        reply = post(server + EVALUATIONS_PATH, body)
        assert reply.status == 200
        assert reply.body["decision"] is False
        assert reply.body["context"]["reasons"]


# -- batches -----------------------------------------------------------------------------


def batch(semantic: str | None, owners: list[str], **options: Any) -> dict[str, Any]:
    """Morty updating todos of the given owners (his own are permitted)."""
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": MORTY},
        "action": {"name": "can_update_todo"},
        "context": {"time": "2025-01-01T00:00:00Z"},
        "evaluations": [
            {"resource": {"type": "todo", "id": str(i), "properties": {"ownerID": owner}}}
            for i, owner in enumerate(owners)
        ],
    }
    if semantic is not None:
        options["evaluations_semantic"] = semantic
    if options:
        body["options"] = options
    return body


MINE, RICKS = "morty@the-citadel.com", "rick@the-citadel.com"


@pytest.mark.parametrize(
    ("semantic", "owners", "expected"),
    [
        (None, [MINE, RICKS, MINE], [True, False, True]),
        ("execute_all", [MINE, RICKS, MINE], [True, False, True]),
        ("deny_on_first_deny", [MINE, RICKS, MINE], [True, False]),
        ("deny_on_first_deny", [MINE, MINE], [True, True]),
        ("permit_on_first_permit", [RICKS, MINE, RICKS], [False, True]),
        ("permit_on_first_permit", [RICKS, RICKS], [False, False]),
    ],
)
def test_evaluations_semantics(
    server: str, semantic: str | None, owners: list[str], expected: list[bool]
) -> None:
    reply = post(server + EVALUATIONS_PATH, batch(semantic, owners))
    assert reply.status == 200, reply.body
    assert reply.body == {"evaluations": [{"decision": d} for d in expected]}


def test_items_override_defaults_as_a_whole(server: str) -> None:
    body = batch(None, [RICKS])
    # Rick's subject replaces the default (Morty) for the second item only.
    body["evaluations"].append({**body["evaluations"][0], "subject": {"type": "user", "id": RICK}})
    reply = post(server + EVALUATIONS_PATH, body)
    assert reply.body == {"evaluations": [{"decision": False}, {"decision": True}]}


def test_include_context_option_adds_reasons_to_items(server: str) -> None:
    reply = post(server + EVALUATIONS_PATH, batch(None, [MINE, RICKS], include_context=True))
    first, second = reply.body["evaluations"]
    assert first["decision"] is True and "reasons" not in first["context"]
    assert second["decision"] is False
    assert second["context"]["reasons"] == [
        f"morty@the-citadel.com holds can_update_todo only for their own todos; "
        f"this todo belongs to {RICKS}"
    ]
    assert first["context"]["decision_id"] != second["context"]["decision_id"]


# -- malformed requests ------------------------------------------------------------------

VALID = todo_request(RICK, "can_read_todos", "")


def with_(**changes: Any) -> dict[str, Any]:
    """VALID with top-level members replaced (None removes one)."""
    body = {**VALID, **changes}
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("path", "raw", "detail"),
    [
        (EVALUATION_PATH, b"not json", "request body is not valid JSON"),
        (EVALUATION_PATH, b"", "request body is empty"),
        (EVALUATION_PATH, b"[1, 2]", "request body must be a JSON object, not an array"),
        (EVALUATION_PATH, b'"text"', "request body must be a JSON object, not a string"),
        (EVALUATION_PATH, b'{"subject": NaN}', "NaN is not a JSON value"),
        (EVALUATION_PATH, b"\xff\xfe{", "request body is not valid JSON"),
        (EVALUATION_PATH, b'{"a":' * 5000 + b"1" + b"}" * 5000, "request body nests too deeply"),
        (EVALUATION_PATH, with_(subject=None), "subject is required"),
        (EVALUATION_PATH, with_(action=None), "action is required"),
        (EVALUATION_PATH, with_(resource=None), "resource is required"),
        (EVALUATION_PATH, with_(subject="rick"), "subject must be an object, not a string"),
        (EVALUATION_PATH, with_(subject={"type": "user"}), "subject.id is required"),
        (
            EVALUATION_PATH,
            with_(subject={"type": "user", "id": 7}),
            "subject.id must be a string, not a number",
        ),
        (
            EVALUATION_PATH,
            with_(resource={"type": True, "id": "1"}),
            "resource.type must be a string, not a boolean",
        ),
        (EVALUATION_PATH, with_(action={}), "action.name is required"),
        (
            EVALUATION_PATH,
            with_(action={"name": "x", "properties": [1]}),
            "action.properties must be an object, not an array",
        ),
        (EVALUATION_PATH, with_(context=[]), "context must be an object, not an array"),
        (EVALUATIONS_PATH, with_(evaluations={}), "evaluations must be an array, not an object"),
        (
            EVALUATIONS_PATH,
            with_(evaluations=[7]),
            "evaluations[0] must be an object, not a number",
        ),
        (
            EVALUATIONS_PATH,
            with_(resource=None, evaluations=[{"resource": VALID["resource"]}, {}]),
            "evaluations[1].resource is required (in the item or as a top-level default)",
        ),
        (
            EVALUATIONS_PATH,
            with_(evaluations=[{"subject": {"id": "x"}}]),
            "evaluations[0].subject.type is required",
        ),
        (
            EVALUATIONS_PATH,
            with_(evaluations=[{}], options={"evaluations_semantic": "first"}),
            "options.evaluations_semantic must be one of execute_all, deny_on_first_deny, "
            'permit_on_first_permit, not "first"',
        ),
        (EVALUATIONS_PATH, with_(evaluations=[{}], options=1), "options must be an object"),
        (
            EVALUATIONS_PATH,
            with_(evaluations=[{}], options={"include_context": "yes"}),
            "options.include_context must be a boolean, not a string",
        ),
        (
            EVALUATIONS_PATH,
            with_(evaluations=[{}] * 10_001),
            "evaluations has 10001 items; at most 10000 are accepted",
        ),
    ],
)
def test_malformed_request_is_a_400_problem(
    server: str, path: str, raw: bytes | dict[str, Any], detail: str
) -> None:
    data = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    if len(data) > BODY_LIMIT:
        pytest.fail(f"test body of {len(data)} bytes is over the server's limit")
    reply = call("POST", server + path, data=data, headers={"Content-Type": "application/json"})
    assert_problem(reply, 400, "Bad Request", "invalid_request")
    assert detail in reply.body["detail"]
    # The server is still there and still answers.
    assert post(server + EVALUATION_PATH, VALID).body["decision"] is True


def assert_problem(reply: Reply, status: int, title: str, code: str) -> None:
    """An RFC 9457 problem with every standard member."""
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].startswith(PROBLEM_CONTENT_TYPE)
    body = reply.body
    assert body["type"] == "about:blank"
    assert body["title"] == title
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["code"] == code


def test_body_over_the_limit_is_a_413_problem(server: str) -> None:
    big = with_(context={"padding": "x" * BODY_LIMIT})
    reply = post(server + EVALUATION_PATH, big)
    assert_problem(reply, 413, "Request Entity Too Large", "payload_too_large")
    assert reply.body["detail"] == f"request body exceeds the limit of {BODY_LIMIT} bytes"


def test_non_json_content_type_is_a_415_problem(server: str) -> None:
    reply = call(
        "POST",
        server + EVALUATION_PATH,
        data=json.dumps(VALID).encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert_problem(reply, 415, "Unsupported Media Type", "unsupported_media_type")
    assert "'text/plain' is not JSON" in reply.body["detail"]


def test_router_errors_are_problems(server: str) -> None:
    reply = call("GET", server + EVALUATION_PATH)
    assert_problem(reply, 405, "Method Not Allowed", "method_not_allowed")
    assert reply.headers["Allow"] == "POST"
    assert reply.body["detail"] == f"GET {EVALUATION_PATH}: Method Not Allowed"
    missing = post(server + "/access/v1/nothing", VALID)
    assert_problem(missing, 404, "Not Found", "not_found")


# -- engine errors -----------------------------------------------------------------------


def test_unknown_entrypoint_is_a_500_problem(
    service: DecisionService, executor: ThreadPoolExecutor
) -> None:
    with serving(service, executor, entrypoint="no/such/rule") as url:
        reply = post(url + EVALUATION_PATH, VALID)
        assert_problem(reply, 500, "Internal Server Error", "entrypoint_not_found")
        assert "unknown entrypoint 'no/such/rule'" in reply.body["detail"]
        many = post(url + EVALUATIONS_PATH, batch(None, [MINE, MINE]))
        assert_problem(many, 500, "Internal Server Error", "entrypoint_not_found")


def test_input_over_the_engine_limit(authzen_bundle: Path, executor: ThreadPoolExecutor) -> None:
    svc = DecisionService(pdp.load(authzen_bundle, config=pdp.HostConfig(max_input_bytes=600)))
    try:
        with serving(svc, executor) as url:
            big = {"type": "todo", "id": "2", "properties": {"ownerID": MINE, "x": "y" * 600}}
            reply = post(url + EVALUATION_PATH, with_(resource=big))
            assert_problem(reply, 400, "Bad Request", "invalid_input")
            assert "exceeds the limit of 600" in reply.body["detail"]
            # In a batch only the item that is too big fails; the others are decided.
            body = batch(None, [MINE, MINE])
            body["evaluations"][1]["resource"] = big
            items = post(url + EVALUATIONS_PATH, body).body["evaluations"]
            assert items[0] == {"decision": True}
            assert items[1]["decision"] is False
            error = items[1]["context"]["error"]
            assert error["status"] == 400 and error["code"] == "invalid_input"
            assert "exceeds the limit of 600" in error["message"]
    finally:
        svc.close()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (pdp.InvalidInputError("x"), 400),
        (pdp.EvaluationTimeoutError("x"), 503),
        (pdp.EntrypointNotFoundError("x"), 500),
        (pdp.PolicyAbortError("eval_conflict_error: x"), 500),
        (pdp.WasmTrapError("x"), 500),
    ],
)
def test_engine_error_statuses(error: pdp.PDPError, status: int) -> None:
    assert http_status(error) == status


# -- metadata ----------------------------------------------------------------------------


def test_metadata_names_the_endpoints(server: str) -> None:
    reply = call("GET", server + METADATA_PATH)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.body == {
        "policy_decision_point": server,
        "access_evaluation_endpoint": server + EVALUATION_PATH,
        "access_evaluations_endpoint": server + EVALUATIONS_PATH,
    }
    assert "max-age" in reply.headers["Cache-Control"]


def test_metadata_uses_the_configured_base_url(
    service: DecisionService, executor: ThreadPoolExecutor
) -> None:
    with serving(service, executor, base_url="https://pdp.example.com/") as url:
        body = call("GET", url + METADATA_PATH).body
    assert body == {
        "policy_decision_point": "https://pdp.example.com",
        "access_evaluation_endpoint": "https://pdp.example.com/access/v1/evaluation",
        "access_evaluations_endpoint": "https://pdp.example.com/access/v1/evaluations",
    }


@pytest.mark.parametrize("base_url", ["pdp.example.com", "https://pdp.example.com/?x=1", "ftp://h"])
def test_bad_base_url_is_refused(
    service: DecisionService, executor: ThreadPoolExecutor, base_url: str
) -> None:
    with pytest.raises(ValueError, match="AuthZEN base URL"):
        add_authzen_routes(
            web.Application(), service, executor, entrypoint=ENTRYPOINT, base_url=base_url
        )
