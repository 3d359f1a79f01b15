"""The PDP over real sockets: Decide, DecideBatch, Envoy Check, health, reflection, AuthZEN,
signed bundles and hot swaps, the decision log, and recovery from runaway policies."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from pdp_harness import SigningKey, build_signed, running_pdp

from council.opa_tool import PROJECT_ROOT
from gateway.pdp_server import PDPServerConfig
from pdp.config import HostConfig
from pdp.decision_log import verify
from proto.council.v1 import decisions_pb2, decisions_pb2_grpc

REGO = PROJECT_ROOT / "rego"
AUTHZ = "council/authz/decision"

GOOD_DEVICE = {"posture": {"disk_encrypted": True, "firewall_on": True, "os_patched": True}}


def request(user: str, action: str = "read", tenant: str = "acme", **extra: object) -> bytes:
    doc = {
        "subject": {"id": user, **extra},
        "action": action,
        "resource": {"type": "dataset", "tenant": tenant},
        "context": {"ip": "10.0.0.7"},
    }
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="module")
def bundle_v1(key: SigningKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_signed(REGO, tmp_path_factory.mktemp("b1") / "bundle.tar.gz", key, "rev-1")


@pytest.fixture(scope="module")
def bundle_v2(key: SigningKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_signed(REGO, tmp_path_factory.mktemp("b2") / "bundle.tar.gz", key, "rev-2")


@pytest.fixture
def pdp(bundle_v1: Path, key: SigningKey, tmp_path: Path):
    live = tmp_path / "live.tar.gz"
    shutil.copy(bundle_v1, live)
    config = PDPServerConfig(
        bundle=str(live),
        keys=key.keys(),
        log_db=tmp_path / "decisions.db",
        poll_interval=3600,
        host=HostConfig(pool_size=2, eval_timeout=1.0),
    )
    with running_pdp(config) as (server, loop):
        server.live_path = live  # type: ignore[attr-defined]
        yield server, loop


def channel(server) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")


def error_reason(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info.reason


# --- Decide / DecideBatch ----------------------------------------------------------------


def test_decide_allow_and_deny_with_policy_reasons(pdp) -> None:
    server, _ = pdp
    with channel(server) as ch:
        stub = decisions_pb2_grpc.DecisionsStub(ch)
        ok = stub.Decide(decisions_pb2.DecideRequest(entrypoint=AUTHZ, input_json=request("bob")))
        assert ok.allow and list(ok.reasons) == []
        assert ok.policy_revision == "rev-1"
        assert json.loads(ok.obligations_json) == {"cache_ttl_seconds": 30}
        no = stub.Decide(
            decisions_pb2.DecideRequest(
                entrypoint=AUTHZ, input_json=request("bob", tenant="globex")
            )
        )
        assert not no.allow
        assert "subject belongs to tenant 'acme', resource to tenant 'globex'" in no.reasons
        assert ok.decision_id != no.decision_id


def test_decide_batch_answers_each_item(pdp) -> None:
    server, _ = pdp
    with channel(server) as ch:
        stub = decisions_pb2_grpc.DecisionsStub(ch)
        out = stub.DecideBatch(
            decisions_pb2.DecideBatchRequest(
                entrypoint=AUTHZ,
                items=[
                    decisions_pb2.DecideRequest(input_json=request("alice")),
                    decisions_pb2.DecideRequest(input_json=b"{not json"),
                    decisions_pb2.DecideRequest(entrypoint="no/such", input_json=b"{}"),
                    decisions_pb2.DecideRequest(input_json=request("mallory")),
                ],
            )
        )
    first, bad_json, bad_ep, unknown = out.decisions
    assert first.allow and not first.HasField("error")
    assert bad_json.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert bad_ep.error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert not unknown.allow and "subject 'mallory' is not a known user" in unknown.reasons


@pytest.mark.parametrize(
    ("req", "code", "reason"),
    [
        (
            decisions_pb2.DecideRequest(entrypoint=AUTHZ, input_json=b"{"),
            "INVALID_ARGUMENT",
            "INVALID_INPUT",
        ),
        (
            decisions_pb2.DecideRequest(entrypoint="nope/x", input_json=b"{}"),
            "NOT_FOUND",
            "ENTRYPOINT_NOT_FOUND",
        ),
        (decisions_pb2.DecideRequest(input_json=b"{}"), "INVALID_ARGUMENT", "INVALID_REQUEST"),
        (
            decisions_pb2.DecideRequest(entrypoint=AUTHZ, input_json=b"[" * 5000 + b"]" * 5000),
            "INVALID_ARGUMENT",
            "INVALID_INPUT",
        ),
    ],
)
def test_bad_requests_get_clear_statuses_and_server_keeps_serving(pdp, req, code, reason) -> None:
    server, _ = pdp
    with channel(server) as ch:
        stub = decisions_pb2_grpc.DecisionsStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.Decide(req)
        assert err.value.code().name == code
        assert err.value.details()
        assert error_reason(err.value) == reason
        assert stub.Decide(
            decisions_pb2.DecideRequest(entrypoint=AUTHZ, input_json=request("bob"))
        ).allow


# --- Envoy ext_authz ----------------------------------------------------------------------


def check_request(
    method: str, path: str, headers: dict[str, str]
) -> external_auth_pb2.CheckRequest:
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        id="req-1", method=method, path=path, host="svc.local", scheme="https", headers=headers
    )
    return external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            request=attribute_context_pb2.AttributeContext.Request(http=http)
        )
    )


def test_envoy_check_allows_and_denies_with_reasons(bundle_v1: Path, key: SigningKey) -> None:
    config = PDPServerConfig(
        bundle=str(bundle_v1), keys=key.keys(), envoy_entrypoint="envoy/authz/decision"
    )
    with running_pdp(config) as (server, _), channel(server) as ch:
        stub = external_auth_pb2_grpc.AuthorizationStub(ch)
        ok = stub.Check(check_request("GET", "/public/index.html", {}))
        assert ok.status.code == 0 and ok.HasField("ok_response")
        headers = {h.header.key: h.header.value for h in ok.ok_response.headers}
        assert headers["x-council-caller"] == "anonymous"
        denied = stub.Check(
            check_request(
                "DELETE", "/api/admin/users/1", {"authorization": "Bearer tok-analytics-1"}
            )
        )
        assert denied.status.code == 7  # PERMISSION_DENIED
        assert denied.denied_response.status.code == 403
        body = json.loads(denied.denied_response.body)
        assert 'service "analytics" may not call /api/admin/' in body["reasons"]
        assert body["status"] == 403 and body["decision_id"]
        no_token = stub.Check(check_request("GET", "/api/datasets/1", {}))
        assert no_token.denied_response.status.code == 401


# --- health, reflection, AuthZEN ---------------------------------------------------------------


def test_health_and_reflection(pdp) -> None:
    server, _ = pdp
    with channel(server) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "council.v1.Decisions", "envoy.service.auth.v3.Authorization"):
            resp = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        responses = refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"council.v1.Decisions", "envoy.service.auth.v3.Authorization"} <= names


def test_authzen_on_the_same_process(pdp) -> None:
    server, _ = pdp
    body = json.dumps(
        {
            "subject": {
                "type": "user",
                "id": "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
            },
            "action": {"name": "can_read_user"},
            "resource": {"type": "user", "id": "beth@the-smiths.com"},
        }
    ).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}/access/v1/evaluation",
        data=body,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["decision"] is True


# --- decision log ----------------------------------------------------------------------------


def test_every_decision_logged_masked_and_verifiable(
    bundle_v1: Path, key: SigningKey, tmp_path: Path
) -> None:
    db = tmp_path / "log.db"
    config = PDPServerConfig(bundle=str(bundle_v1), keys=key.keys(), log_db=db)
    secret = {
        "attributes": {
            "request": {
                "http": {
                    "method": "GET",
                    "path": "/public/x",
                    "headers": {"authorization": "Bearer s3cr3t"},
                }
            }
        }
    }
    with running_pdp(config) as (server, _), channel(server) as ch:
        stub = decisions_pb2_grpc.DecisionsStub(ch)
        ids = [
            stub.Decide(
                decisions_pb2.DecideRequest(entrypoint=AUTHZ, input_json=request(u))
            ).decision_id
            for u in ("alice", "bob", "carol")
        ]
        ids.append(
            stub.Decide(
                decisions_pb2.DecideRequest(
                    entrypoint="envoy/authz/decision", input_json=json.dumps(secret).encode()
                )
            ).decision_id
        )
    report = verify(db)
    assert report.ok, report.problem
    assert report.rows == 4
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = {r[0]: r[1] for r in conn.execute("select decision_id, input from decisions")}
    assert set(rows) == set(ids)
    assert "s3cr3t" not in rows[ids[-1]]
    assert (
        "authorization" not in json.loads(rows[ids[-1]])["attributes"]["request"]["http"]["headers"]
    )


# --- bundles: hot swap and refusals ---------------------------------------------------------------


def test_hot_swap_under_load_drops_nothing(pdp, bundle_v2: Path) -> None:
    server, loop = pdp
    errors: list[BaseException] = []
    revisions: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        with channel(server) as ch:
            stub = decisions_pb2_grpc.DecisionsStub(ch)
            while not stop.is_set():
                try:
                    d = stub.Decide(
                        decisions_pb2.DecideRequest(entrypoint=AUTHZ, input_json=request("bob"))
                    )
                    assert d.allow
                    revisions.add(d.policy_revision)
                except BaseException as exc:
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    tmp = server.live_path.with_suffix(".new")
    shutil.copy(bundle_v2, tmp)
    os.replace(tmp, server.live_path)
    assert loop.run(server.reload_now())
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert revisions == {"rev-1", "rev-2"}
    assert server.revision == "rev-2"


def _rewrite(src: Path, dst: Path, edit) -> None:
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for member in tin:
            data = tin.extractfile(member).read() if member.isfile() else b""
            data = edit(member.name, data)
            if data is None:
                continue
            member.size = len(data)
            import io

            tout.addfile(member, io.BytesIO(data))


def _tamper_data(name: str, data: bytes) -> bytes:
    if name.lstrip("/") == "data.json":
        doc = json.loads(data)
        doc["council"]["authz"]["users"]["bob"]["clearance"] = 3
        return json.dumps(doc).encode()
    return data


def _strip_signature(name: str, data: bytes) -> bytes | None:
    return None if name.endswith(".signatures.json") else data


@pytest.mark.parametrize("kind", ["unsigned", "tampered", "truncated", "garbage", "other-key"])
def test_bad_bundles_are_refused_and_last_good_keeps_serving(
    pdp, bundle_v2: Path, kind: str, caplog
) -> None:
    server, loop = pdp
    bad = server.live_path.with_suffix(".bad")
    if kind == "unsigned":
        _rewrite(bundle_v2, bad, _strip_signature)
    elif kind == "tampered":
        _rewrite(bundle_v2, bad, _tamper_data)
    elif kind == "truncated":
        bad.write_bytes(bundle_v2.read_bytes()[:5000])
    elif kind == "garbage":
        bad.write_bytes(b"this is not a bundle")
    else:
        other = SigningKey()
        bad.write_bytes(other.sign(bundle_v2))
    os.replace(bad, server.live_path)
    with caplog.at_level("ERROR"):
        assert not loop.run(server.reload_now())
    assert any("bundle refused" in r.getMessage() for r in caplog.records)
    assert server.revision == "rev-1"
    with channel(server) as ch:
        d = decisions_pb2_grpc.DecisionsStub(ch).Decide(
            decisions_pb2.DecideRequest(entrypoint=AUTHZ, input_json=request("bob"))
        )
    assert d.allow and d.policy_revision == "rev-1"


def test_http_bundle_server_with_etag(bundle_v1: Path, bundle_v2: Path, key: SigningKey) -> None:
    from pdp_harness import LoopThread

    state = {"blob": bundle_v1.read_bytes(), "etag": '"v1"', "hits": [], "ok": 0, "not_modified": 0}

    async def serve(request: web.Request) -> web.Response:
        state["hits"].append(request.headers.get("If-None-Match"))
        if request.headers.get("If-None-Match") == state["etag"]:
            state["not_modified"] += 1
            return web.Response(status=304)
        state["ok"] += 1
        return web.Response(body=state["blob"], headers={"ETag": state["etag"]})

    server_loop = LoopThread()
    app = web.Application()
    app.router.add_get("/bundles/council.tar.gz", serve)
    runner = web.AppRunner(app)
    server_loop.run(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    server_loop.run(site.start())
    port = site._server.sockets[0].getsockname()[1]
    try:
        config = PDPServerConfig(
            bundle=f"http://127.0.0.1:{port}/bundles/council.tar.gz",
            keys=key.keys(),
            poll_interval=3600,
        )
        with running_pdp(config) as (pdp_server, loop):
            assert pdp_server.revision == "rev-1"
            assert not loop.run(pdp_server.reload_now())
            assert state["not_modified"] == 1
            state["blob"], state["etag"] = bundle_v2.read_bytes(), '"v2"'
            assert loop.run(pdp_server.reload_now())
            assert pdp_server.revision == "rev-2"
            assert state["hits"] == [None, '"v1"', '"v1"']
    finally:
        server_loop.run(runner.cleanup())
        server_loop.close()


# --- runaway policies -----------------------------------------------------------------------------

RUNAWAY = """
package runaway

# METADATA
# entrypoint: true
spin if {
    some i in numbers.range(1, 100000)
    some j in numbers.range(1, 100000)
    i * j == -1
}

# METADATA
# entrypoint: true
ok := true
"""


def test_runaway_policy_is_stopped_and_next_request_works(key: SigningKey, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "runaway.rego").write_text(RUNAWAY)
    bundle = build_signed(src, tmp_path / "runaway.tar.gz", key, "runaway")
    config = PDPServerConfig(
        bundle=str(bundle), keys=key.keys(), host=HostConfig(eval_timeout=0.3, epoch_tick=0.01)
    )
    with running_pdp(config) as (server, _), channel(server) as ch:
        stub = decisions_pb2_grpc.DecisionsStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.Decide(decisions_pb2.DecideRequest(entrypoint="runaway/spin"))
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert error_reason(err.value) == "EVAL_TIMEOUT"
        assert stub.Decide(decisions_pb2.DecideRequest(entrypoint="runaway/ok")).allow


# --- the command ---------------------------------------------------------------------------


def test_cli_serve_prints_ports_and_shuts_down_cleanly(
    bundle_v1: Path, key: SigningKey, tmp_path: Path
) -> None:
    pub = tmp_path / "pub.pem"
    pub.write_text(key.public_pem)
    db = tmp_path / "cli.db"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "council",
            "pdp",
            "serve",
            "--bundle",
            str(bundle_v1),
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--verification-key",
            str(pub),
            "--signing-alg",
            "RS256",
            "--log",
            str(db),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    try:
        line = proc.stdout.readline()
        match = re.search(
            r"grpc=127\.0\.0\.1:(\d+) http=127\.0\.0\.1:(\d+) revision=\"rev-1\"", line
        )
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        grpc_port = int(match.group(1))
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
            stub = decisions_pb2_grpc.DecisionsStub(ch)
            for _ in range(5):
                assert stub.Decide(
                    decisions_pb2.DecideRequest(entrypoint=AUTHZ, input_json=request("bob"))
                ).allow
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    report = verify(db)
    assert report.ok and report.rows == 5
