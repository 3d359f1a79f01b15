"""The gateway process over real sockets: mTLS, short-lived admin tokens, posture on the
admin path, policy decisions from a real PDP, usage intake, JWKS over HTTP, and
``council gateway serve`` as a subprocess.

The PDP serves a bundle built with opa from the whole of ``rego/`` and signed; each test gets
its own gateway (state directory, CA, certificates) on 127.0.0.1, run on a loop thread, and
talks to it with ordinary blocking gRPC and HTTP clients.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf import message as pb_message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from pdp_harness import LoopThread, SigningKey, build_signed, running_pdp, running_server

from agents import posture_keys
from agents.posture import Fact
from council.gateway_cmd import add_gateway_parser
from council.opa_tool import PROJECT_ROOT
from gateway.admin_servicer import check_obligations, method_scopes
from gateway.ca import CertificateAuthority
from gateway.gateway_server import ADMIN_AUDIENCE, GatewayConfig, GatewayServer
from gateway.mtls import channel_credentials
from gateway.pdp_server import PDPServerConfig
from gateway.tokens import TokenService
from pdp.config import HostConfig
from pep_sidecars.pdp_client import PDPDecision
from pep_sidecars.usage import UsageReporter, UsageReporterConfig
from proto.council.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    posture_pb2,
    posture_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
)

REGO = PROJECT_ROOT / "rego"
TD = "council.test"
OPS = f"spiffe://{TD}/cli/ops"
ACME_ADMIN = f"spiffe://{TD}/cli/acme-admin"
OPS_DEVICE, ACME_DEVICE = "ops-laptop", "acme-laptop"

GOOD_FACTS = {
    "os": Fact(
        {"id": "debian", "name": "Debian", "version_id": "12", "pretty_name": "D"}, True, "t"
    ),
    "kernel": Fact("6.1.0-18-amd64", True, "uname"),
    "days_since_update": Fact(2, True, "/var/log/dpkg.log"),
    "disk_encrypted": Fact(True, True, "/sys/dev/block/254:1/dm/uuid", "CRYPT-LUKS2"),
    "firewall_on": Fact(True, True, "netlink nf_tables", "inet filter input policy drop"),
    "screen_lock": Fact("not_applicable", True, "environment", "no display"),
    "agent_version": Fact("0.1.0", True, "package metadata"),
}
UNENCRYPTED = {**GOOD_FACTS, "disk_encrypted": Fact(False, True, "/sys/dev/block/8:1", "plain")}


# --- the PDP (one per module) -------------------------------------------------------------


@pytest.fixture(scope="module")
def pdp_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    key = SigningKey()
    bundle = build_signed(REGO, tmp_path_factory.mktemp("bundle") / "b.tar.gz", key, "gw-1")
    config = PDPServerConfig(
        bundle=str(bundle), keys=key.keys(), poll_interval=3600, host=HostConfig(pool_size=2)
    )
    with running_pdp(config) as (server, _loop):
        yield f"127.0.0.1:{server.grpc_port}"


# --- a gateway per test -------------------------------------------------------------------


@dataclass
class Env:
    """A CA, client certificates, device keys, and a running gateway."""

    root: Path
    ca: CertificateAuthority
    server: GatewayServer
    loop: LoopThread

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"

    @property
    def ca_cert(self) -> Path:
        return self.ca.directory / "ca.crt"

    def files(self, name: str) -> tuple[Path, Path]:
        return self.root / "certs" / f"{name}.crt", self.root / "certs" / f"{name}.key"

    def channel(self, name: str = "ops", ca_cert: Path | None = None) -> grpc.Channel:
        cert, key = self.files(name)
        creds = channel_credentials(cert, key, ca_cert or self.ca_cert)
        return grpc.secure_channel(self.target, creds)

    def device_key(self, device: str) -> posture_keys.DeviceKey:
        return posture_keys.load_device_key(self.root / "devices" / device, create=True)


def make_certificates(ca: CertificateAuthority, root: Path) -> None:
    for kind, name in (("cli", "ops"), ("cli", "acme-admin"), ("agent", "laptops")):
        ca.issue(kind, name).write(root / "certs" / name)


@contextmanager
def running_gateway(config: GatewayConfig) -> Iterator[tuple[GatewayServer, LoopThread]]:
    with running_server(GatewayServer(config)) as running:
        yield running


@contextmanager
def gateway_env(tmp_path: Path, pdp: str, **overrides: Any) -> Iterator[Env]:
    ca = CertificateAuthority.init(tmp_path / "ca", TD)
    make_certificates(ca, tmp_path)
    config = GatewayConfig(state=tmp_path / "state", ca_dir=ca.directory, pdp=pdp, **overrides)
    try:
        with running_gateway(config) as (server, loop):
            credentials = server.state.credentials
            credentials.enroll_client(OPS, "council", ["admin:*"], device_id=OPS_DEVICE)
            credentials.enroll_client(ACME_ADMIN, "acme", ["admin:*"], device_id=ACME_DEVICE)
            env = Env(tmp_path, ca, server, loop)
            with env.channel("laptops") as agent:
                stub = posture_pb2_grpc.PostureStub(agent)
                for device, tenant in ((OPS_DEVICE, "council"), (ACME_DEVICE, "acme")):
                    request = posture_keys.enrollment_request(
                        env.device_key(device), device, tenant
                    )
                    stub.Enroll(request, timeout=5)
            yield env
    finally:
        ca.close()


@pytest.fixture
def env(tmp_path: Path, pdp_target: str) -> Iterator[Env]:
    with gateway_env(tmp_path, pdp_target) as environment:
        yield environment


# --- client helpers -----------------------------------------------------------------------


def submit(env: Env, device: str, facts: dict[str, Fact], **kw: Any) -> posture_pb2.SubmitResponse:
    """Sign and submit a posture report for ``device`` over the agent's mTLS channel."""
    request = posture_keys.submission(env.device_key(device), device, facts, **kw)
    with env.channel("laptops") as agent:
        return posture_pb2_grpc.PostureStub(agent).Submit(request, timeout=5)


def exchange(channel: grpc.Channel, *scopes: str, api_key: str = "", bind: bool = False) -> str:
    metadata = (("authorization", f"ApiKey {api_key}"),) if api_key else None
    request = tokens_pb2.ExchangeRequest(
        scopes=scopes, audience=ADMIN_AUDIENCE, bind_to_certificate=bind
    )
    reply = tokens_pb2_grpc.TokensStub(channel).Exchange(request, metadata=metadata, timeout=5)
    return reply.access_token


def call(channel: grpc.Channel, method: str, request: pb_message.Message, auth: str | None) -> Any:
    metadata = (("authorization", auth),) if auth else None
    stub = admin_pb2_grpc.AdminStub(channel)
    return getattr(stub, method)(request, metadata=metadata, timeout=10)


def admin(
    channel: grpc.Channel, method: str, request: pb_message.Message, **exchange_kw: Any
) -> Any:
    """A fresh token with the method's scope, then the call."""
    (scope,) = method_scopes()[f"/council.v1.Admin/{method}"]
    token = exchange(channel, scope, **exchange_kw)
    return call(channel, method, request, f"Bearer {token}")


@dataclass
class Refusal:
    code: grpc.StatusCode
    message: str
    domain: str
    reason: str
    metadata: dict[str, str]
    details: list[Any]


def refused(fn: Any, *args: Any, **kw: Any) -> Refusal:
    """Run a blocking call that must fail; return its status and ErrorInfo."""
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kw)
    exc = info.value
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    if status is None:
        return Refusal(exc.code(), exc.details() or "", "", "", {}, [])  # type: ignore[attr-defined]
    detail = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(detail)
    return Refusal(
        exc.code(),  # type: ignore[attr-defined]
        exc.details() or "",  # type: ignore[attr-defined]
        detail.domain,
        detail.reason,
        dict(detail.metadata),
        list(status.details),
    )


SET_QUOTA = admin_pb2.SetQuotaRequest(
    tenant="acme", feature="webhook", soft_limit=800, hard_limit=1000
)


def denied_by_policy(refusal: Refusal) -> str:
    assert (refusal.code, refusal.domain, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "council.admin",
        "POLICY_DENIED",
    ), refusal
    assert len(refusal.metadata["decision_id"]) >= 16
    return refusal.message


# --- the admin path -----------------------------------------------------------------------


def test_short_lived_scoped_token_and_fresh_compliant_posture_allow_an_admin_call(
    env: Env,
) -> None:
    assert submit(env, OPS_DEVICE, GOOD_FACTS).accepted
    with env.channel() as channel:
        token = exchange(channel, "admin:quota:write")
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 300 and claims["device_id"] == OPS_DEVICE
        quota = call(channel, "SetQuota", SET_QUOTA, f"Bearer {token}")
        assert (quota.tenant, quota.feature, quota.soft_limit, quota.hard_limit) == (
            "acme",
            "webhook",
            800,
            1000,
        )
        assert (quota.unit, quota.updated_by) == ("request", OPS)

        # One call per token: the same token again is a replay, refused before the policy.
        again = refused(call, channel, "SetQuota", SET_QUOTA, f"Bearer {token}")
        assert (again.code, again.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REPLAYED")

        got = admin(
            channel, "GetQuota", admin_pb2.GetQuotaRequest(tenant="acme", feature="webhook")
        )
        assert got == quota
    stored = env.server.state.usage.get_quota("acme", "webhook")
    assert stored is not None and stored.hard_limit == 1000


def test_api_keys_long_lived_and_expired_tokens_are_refused_by_the_admin_api(env: Env) -> None:
    assert submit(env, ACME_DEVICE, GOOD_FACTS).accepted
    credentials = env.server.state.credentials
    api_key = credentials.create_api_key(
        "user:alice", "acme", ["admin:quota:read"], device_id=ACME_DEVICE
    )
    get = admin_pb2.GetQuotaRequest(tenant="acme", feature="webhook")
    keys = env.server.state.keys
    past = TokenService(env.server.config.tokens, keys, clock=lambda: time.time() - 3600)
    expired = past.issue("user:alice", "acme", ["admin:quota:read"], audience=ADMIN_AUDIENCE)
    now = int(time.time())
    current = keys.current
    day_long = jwt.encode(
        {**expired.claims.to_dict(), "iat": now, "nbf": now, "exp": now + 86400},
        current.private_key,
        algorithm=current.algorithm,
        headers={"kid": current.kid, "typ": "at+jwt"},
    )
    with env.channel("acme-admin") as channel:
        for header in (f"ApiKey {api_key}", f"Bearer {api_key}"):
            r = refused(call, channel, "GetQuota", get, header)
            assert (r.code, r.reason) == (grpc.StatusCode.UNAUTHENTICATED, "LONG_LIVED_CREDENTIAL")
            assert "API keys are not accepted by admin methods" in r.message
        r = refused(call, channel, "GetQuota", get, f"Bearer {day_long}")
        assert (r.code, r.reason) == (grpc.StatusCode.UNAUTHENTICATED, "LONG_LIVED_CREDENTIAL")
        assert "exceeds the 900s maximum" in r.message
        r = refused(call, channel, "GetQuota", get, f"Bearer {expired.token}")
        assert (r.code, r.reason, r.message) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "TOKEN_EXPIRED",
            "the token has expired",
        )
        r = refused(call, channel, "GetQuota", get, None)
        assert (r.code, r.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIAL_MISSING")

        # A token without the method's scope never reaches the policy (and is not burnt).
        reader = exchange(channel, "admin:quota:read", api_key=api_key)
        r = refused(call, channel, "SetQuota", SET_QUOTA, f"Bearer {reader}")
        assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_DENIED")
        assert "admin:quota:write" in r.message

        # The same API key exchanged for a short-lived token is fine; the quota is unset.
        r = refused(call, channel, "GetQuota", get, f"Bearer {reader}")
        assert (r.code, r.domain, r.reason) == (
            grpc.StatusCode.NOT_FOUND,
            "council.admin",
            "NOT_FOUND",
        )
        r = refused(call, channel, "GetQuota", get, f"Bearer {reader}")
        assert r.reason == "TOKEN_REPLAYED"


def test_missing_forged_and_non_compliant_posture_deny_naming_the_failed_check(
    env: Env,
) -> None:
    with env.channel() as channel:
        message = denied_by_policy(refused(admin, channel, "SetQuota", SET_QUOTA))
        assert message == (
            "/council.v1.Admin/SetQuota denied by policy: device posture check fresh failed:"
            f" no posture report received from device '{OPS_DEVICE}'"
        )

        # A report signed by a key other than the enrolled one is refused at intake, so the
        # device still has no posture and the admin call is still denied.
        forger = posture_keys.load_device_key(env.root / "forger", create=True)
        forged = posture_keys.submission(forger, OPS_DEVICE, GOOD_FACTS)
        with env.channel("laptops") as agent:
            reply = posture_pb2_grpc.PostureStub(agent).Submit(forged, timeout=5)
        assert (reply.accepted, reply.rejection) == (False, "signature")
        message = denied_by_policy(refused(admin, channel, "SetQuota", SET_QUOTA))
        assert "device posture check fresh failed: no posture report received" in message

        assert submit(env, OPS_DEVICE, UNENCRYPTED).accepted
        message = denied_by_policy(refused(admin, channel, "SetQuota", SET_QUOTA))
        assert message == (
            "/council.v1.Admin/SetQuota denied by policy: device posture check disk_encrypted"
            " failed: the root disk is not encrypted (plain)"
        )

        assert submit(env, OPS_DEVICE, GOOD_FACTS).accepted
        admin(channel, "SetQuota", SET_QUOTA)


def test_a_report_older_than_the_admin_limit_is_denied(env: Env) -> None:
    assert submit(env, OPS_DEVICE, GOOD_FACTS, now=time.time() - 400).accepted
    with env.channel() as channel:
        message = denied_by_policy(refused(admin, channel, "SetQuota", SET_QUOTA))
        assert "device posture check fresh failed: the latest report is 400 s old" in message
        assert "admin calls need one at most 300 s old" in message


def test_posture_that_goes_stale_denies_and_a_token_without_device_is_refused(
    tmp_path: Path, pdp_target: str
) -> None:
    with gateway_env(tmp_path, pdp_target, posture_max_age_seconds=1.0) as env:
        assert submit(env, OPS_DEVICE, GOOD_FACTS, now=time.time() - 0.5).accepted
        time.sleep(0.7)
        with env.channel() as channel:
            message = denied_by_policy(refused(admin, channel, "SetQuota", SET_QUOTA))
            assert "device posture check fresh failed: latest report is" in message
            assert "more than the 1 s allowed" in message

            no_device = env.server.state.credentials.create_api_key(
                "robot", "council", ["admin:quota:write"]
            )
            message = denied_by_policy(
                refused(admin, channel, "SetQuota", SET_QUOTA, api_key=no_device)
            )
            assert "the token names no device; admin calls need an enrolled device" in message


def test_tenants_act_on_their_own_tenant_and_platform_operations_are_the_platforms(
    env: Env,
) -> None:
    assert submit(env, ACME_DEVICE, GOOD_FACTS).accepted
    with env.channel("acme-admin") as channel:
        other = admin_pb2.GetQuotaRequest(tenant="globex", feature="webhook")
        message = denied_by_policy(refused(admin, channel, "GetQuota", other))
        assert message.endswith("a token of tenant 'acme' may not administer tenant 'globex'")

        message = denied_by_policy(refused(admin, channel, "SetQuota", SET_QUOTA))
        assert "SetQuota is a platform operation; tenant 'acme' is not a platform tenant" in message

        escalate = admin_pb2.CreateApiKeyRequest(
            subject="user:bob", tenant="acme", scopes=["webhook:send", "admin:*"]
        )
        message = denied_by_policy(refused(admin, channel, "CreateApiKey", escalate))
        assert "only platform tenants may grant admin scopes, and admin:* covers admin:*" in message

        ok = admin_pb2.CreateApiKeyRequest(
            subject="user:bob", tenant="acme", scopes=["webhook:send"]
        )
        created = admin(channel, "CreateApiKey", ok)
        assert created.api_key.startswith(f"ck_{created.key_id}_")
        # The new key works for what it was given, and only that.
        reply = tokens_pb2_grpc.TokensStub(channel).Exchange(
            tokens_pb2.ExchangeRequest(scopes=["webhook:send"], audience="council-webhook"),
            metadata=(("authorization", f"ApiKey {created.api_key}"),),
            timeout=5,
        )
        assert (
            jwt.decode(reply.access_token, options={"verify_signature": False})["tenant"] == "acme"
        )

        devices = admin(channel, "ListDevices", admin_pb2.ListDevicesRequest(tenant="acme"))
        assert [(d.device_id, d.tenant, d.fresh, d.compliant) for d in devices.devices] == [
            (ACME_DEVICE, "acme", True, True)
        ]
        every = admin_pb2.ListDevicesRequest(tenant="")
        message = denied_by_policy(refused(admin, channel, "ListDevices", every))
        assert "may not administer every tenant" in message


def test_a_token_is_good_only_from_the_identity_it_was_issued_to(env: Env) -> None:
    assert submit(env, OPS_DEVICE, GOOD_FACTS).accepted
    with env.channel() as ops:
        token = exchange(ops, "admin:quota:write")
    with env.channel("acme-admin") as thief:
        message = denied_by_policy(refused(call, thief, "SetQuota", SET_QUOTA, f"Bearer {token}"))
        assert f"the token was issued to {OPS} but presented by {ACME_ADMIN}" in message
    with env.channel() as ops:
        bound = exchange(ops, "admin:quota:write", bind=True)
    with env.channel("acme-admin") as thief:
        r = refused(call, thief, "SetQuota", SET_QUOTA, f"Bearer {bound}")
        assert (r.code, r.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


def test_platform_operations_credentials_keys_and_jwks(env: Env) -> None:
    assert submit(env, OPS_DEVICE, GOOD_FACTS).accepted
    http = f"http://127.0.0.1:{env.server.http_port}"
    with env.channel() as channel:
        enroll = admin_pb2.EnrollClientRequest(
            spiffe_id=f"spiffe://{TD}/sidecar/webhook-1", tenant="acme", scopes=["webhook:send"]
        )
        assert admin(channel, "EnrollClient", enroll).spiffe_id == enroll.spiffe_id
        assert env.server.state.credentials.client(enroll.spiffe_id).scopes == ("webhook:send",)
        foreign = admin_pb2.EnrollClientRequest(
            spiffe_id="spiffe://elsewhere.test/cli/x", tenant="acme", scopes=["webhook:send"]
        )
        r = refused(admin, channel, "EnrollClient", foreign)
        assert (r.code, r.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
        assert "not in this gateway's trust domain council.test" in r.message

        created = admin(
            channel,
            "CreateApiKey",
            admin_pb2.CreateApiKeyRequest(subject="ci", tenant="acme", scopes=["webhook:send"]),
        )
        revoke = admin_pb2.RevokeApiKeyRequest(key_id=created.key_id)
        assert admin(channel, "RevokeApiKey", revoke).key_id == created.key_id
        r = refused(exchange, channel, "webhook:send", api_key=created.api_key)
        assert (r.code, r.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIAL_INVALID")
        r = refused(admin, channel, "RevokeApiKey", admin_pb2.RevokeApiKeyRequest(key_id="nope"))
        assert (r.code, r.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")

        before = json.loads(urllib.request.urlopen(f"{http}/.well-known/jwks.json").read())
        rotated = admin(channel, "RotateSigningKey", admin_pb2.RotateSigningKeyRequest())
        with urllib.request.urlopen(f"{http}/.well-known/jwks.json") as response:
            assert response.headers["Content-Type"].startswith("application/jwk-set+json")
            over_http = json.loads(response.read())
        rpc = tokens_pb2_grpc.TokensStub(channel).Jwks(tokens_pb2.JwksRequest(), timeout=5)
        assert over_http == json.loads(rpc.jwks_json)
        kids = [k["kid"] for k in over_http["keys"]]
        assert kids == list(rotated.verifying_kids) == [before["keys"][0]["kid"], rotated.kid]
        # A token signed with the new key verifies with nothing but the published JWKS.
        token = exchange(channel, "admin:quota:read")
        public = jwt.PyJWKSet.from_dict(over_http)[jwt.get_unverified_header(token)["kid"]]
        claims = jwt.decode(token, public, algorithms=["EdDSA"], audience=ADMIN_AUDIENCE)
        assert claims["sub"] == OPS


def test_pdp_down_fails_closed(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    with gateway_env(tmp_path, dead, pdp_timeout=0.5, pdp_retries=1) as env:
        assert submit(env, OPS_DEVICE, GOOD_FACTS).accepted
        with env.channel() as channel:
            r = refused(admin, channel, "SetQuota", SET_QUOTA)
        assert (r.code, r.domain, r.reason) == (
            grpc.StatusCode.UNAVAILABLE,
            "council.admin",
            "POLICY_UNAVAILABLE",
        )
        assert f"no policy decision could be obtained (policy decision point at {dead}" in r.message
        assert env.server.state.usage.get_quota("acme", "webhook") is None


def test_unsupported_obligations_refuse_an_allowed_call() -> None:
    ok = PDPDecision(True, (), {"cache_ttl_seconds": 5}, "d1", "r")
    check_obligations(ok, "/council.v1.Admin/SetQuota")
    demanding = replace(ok, obligations={"record_session": True, "cache_ttl_seconds": 5})
    with pytest.raises(Exception, match="record_session, which the admin service cannot"):
        check_obligations(demanding, "/council.v1.Admin/SetQuota")


def test_policy_data_names_the_scope_admin_proto_requires() -> None:
    data = json.loads((REGO / "council" / "admin" / "data.json").read_text())
    from_policy = {m: {spec["scope"]} for m, spec in data["methods"].items()}
    assert from_policy == method_scopes()


# --- mTLS ---------------------------------------------------------------------------------


def health_check(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined]
    return grpc.StatusCode.OK


def test_expired_foreign_and_revoked_client_certificates_are_refused(
    tmp_path: Path, pdp_target: str
) -> None:
    with gateway_env(tmp_path, pdp_target, crl_refresh_interval=0.1) as env:
        past = datetime.now(UTC) - timedelta(days=2)
        env.ca.issue("cli", "old", ttl=timedelta(hours=1), now=past).write(
            tmp_path / "certs" / "old"
        )
        with CertificateAuthority.init(tmp_path / "other-ca", TD) as other:
            other.issue("cli", "ops").write(tmp_path / "certs" / "foreign")
        victim = env.ca.issue("cli", "victim")
        victim.write(tmp_path / "certs" / "victim")

        with env.channel("ops") as ok:
            assert health_check(ok) == grpc.StatusCode.OK
        # Expired and foreign certificates die in the handshake.
        for name in ("old", "foreign"):
            with env.channel(name) as channel:
                assert health_check(channel) == grpc.StatusCode.UNAVAILABLE
        with env.channel("victim") as channel:
            assert health_check(channel) == grpc.StatusCode.OK
            env.ca.revoke(victim.serial, reason="laptop stolen")
            deadline = time.monotonic() + 5
            while health_check(channel) == grpc.StatusCode.OK and time.monotonic() < deadline:
                time.sleep(0.05)
            r = refused(
                health_pb2_grpc.HealthStub(channel).Check,
                health_pb2.HealthCheckRequest(),
                timeout=5,
            )
        assert (r.code, r.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CERTIFICATE_REJECTED")
        assert "has been revoked" in r.message


# --- usage intake -------------------------------------------------------------------------


def event(event_id: str, **fields: Any) -> usage_pb2.UsageEvent:
    base: dict[str, Any] = {
        "event_id": event_id,
        "timestamp_ns": time.time_ns(),
        "tenant": "acme",
        "feature": "webhook",
        "subject": "sender:crm",
        "allowed": True,
        "decision_id": "d-" + event_id,
        "quantity": 1.0,
        "unit": "request",
        "source": "pep:webhook",
        "attributes_json": b'{"event_type": "invoice.paid"}',
    }
    return usage_pb2.UsageEvent(**{**base, **fields})


def test_usage_reports_are_idempotent_and_a_bad_event_does_not_sink_its_batch(env: Env) -> None:
    store = env.server.state.usage
    with env.channel("laptops") as channel:
        stub = usage_pb2_grpc.UsageStub(channel)
        batch = [event("e1"), event("e2", allowed=False), event("e3", quantity=3)]
        first = stub.Report(usage_pb2.ReportUsageRequest(events=batch), timeout=5)
        again = stub.Report(usage_pb2.ReportUsageRequest(events=batch), timeout=5)
        assert list(first.acknowledged) == list(again.acknowledged) == ["e1", "e2", "e3"]
        assert store.event_count() == 3

        mixed = [
            event("e4", feature="connector:sqlite"),
            event("bad-1", tenant=""),
            event("e1"),
            event("bad 2", quantity=-1, attributes_json=b"[1]"),
        ]
        r = refused(stub.Report, usage_pb2.ReportUsageRequest(events=mixed), timeout=5)
        assert (r.code, r.domain, r.reason) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "council.usage",
            "INVALID_USAGE_EVENTS",
        )
        assert r.metadata == {"acknowledged": "2", "rejected": "2"}
        assert r.message.startswith("2 of 4 usage event(s) rejected and not stored")
        bad = error_details_pb2.BadRequest()
        assert r.details[1].Unpack(bad)
        assert [v.field for v in bad.field_violations] == [
            "events[1].tenant",
            "events[3].event_id",
            "events[3].quantity",
            "events[3].attributes_json",
        ]
        acked = usage_pb2.ReportUsageResponse()
        assert r.details[2].Unpack(acked)
        assert list(acked.acknowledged) == ["e4", "e1"]
    assert store.event_count() == 4
    counts = {
        (c.feature, c.events, c.allowed, c.denied, c.quantity) for c in store.counts(tenant="acme")
    }
    assert counts == {("webhook", 3, 2, 1, 4.0), ("connector:sqlite", 1, 1, 0, 1.0)}

    assert submit(env, OPS_DEVICE, GOOD_FACTS).accepted
    with env.channel() as channel:
        usage = admin(
            channel, "GetUsage", admin_pb2.GetUsageRequest(tenant="acme", feature="webhook")
        )
    assert [(c.tenant, c.feature, c.events, c.denied, c.quantity) for c in usage.counts] == [
        ("acme", "webhook", 3, 1, 4.0)
    ]


def test_a_pep_usage_reporter_delivers_to_the_gateway_over_mtls(env: Env) -> None:
    cert, key = env.files("laptops")
    reporter = UsageReporter(
        UsageReporterConfig(
            gateway=env.target,
            spool=env.root / "spool.db",
            source="pep:test",
            flush_interval=3600,
            credentials=channel_credentials(cert, key, env.ca_cert),
        )
    )

    async def scenario() -> int:
        await reporter.start()
        reporter.record(
            feature="cli:exec", tenant="acme", subject="bob", allowed=True, decision_id="d"
        )
        reporter.record(
            feature="cli:exec", tenant="acme", subject="bob", allowed=False, decision_id="e"
        )
        sent = await reporter.flush()
        assert reporter.spooled_count() == 0
        await reporter.close()
        return sent

    assert env.loop.run(scenario()) == 2
    (count,) = env.server.state.usage.counts(feature="cli:exec")
    assert (count.events, count.allowed, count.denied) == (2, 1, 1)


# --- HTTP ---------------------------------------------------------------------------------


def test_http_health_status_and_problem_json(env: Env) -> None:
    http = f"http://127.0.0.1:{env.server.http_port}"
    assert json.loads(urllib.request.urlopen(f"{http}/health").read()) == {"status": "ok"}
    status = json.loads(urllib.request.urlopen(f"{http}/status").read())
    assert status["trust_domain"] == TD and status["grpc_port"] == env.server.grpc_port
    assert status["devices"] == 2 and status["serving_certificate"]["spiffe_id"].endswith(
        "/gateway/gateway"
    )
    assert [k["current"] for k in status["signing_keys"]] == [True]
    page = urllib.request.Request(f"{http}/status", headers={"Accept": "text/html"})
    body = urllib.request.urlopen(page).read().decode()
    assert "<h1>Council gateway</h1>" in body and TD in body
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{http}/admin/delete-everything")
    assert info.value.code == 404
    assert info.value.headers["Content-Type"].startswith("application/problem+json")
    assert json.loads(info.value.read())["status"] == 404


# --- the commands -------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="council")
    add_gateway_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_gateway_serve_subprocess_with_admin_commands_and_sigterm(
    tmp_path: Path, pdp_target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state, ca_dir = tmp_path / "state", tmp_path / "ca"
    assert run_cli(
        ["gateway", "bootstrap", "--state", str(state), "--spiffe-id", OPS, "--tenant", "council",
         "--scope", "admin:*", "--device-id", OPS_DEVICE]
    ) == 0  # fmt: skip
    assert f"enrolled {OPS} in tenant council" in capsys.readouterr().out
    log = (tmp_path / "gateway.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "council", "gateway", "serve", "--grpc", "127.0.0.1:0",
         "--http", "127.0.0.1:0", "--state", str(state), "--ca", str(ca_dir),
         "--pdp", pdp_target, "--trust-domain", TD],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert banner.startswith("council gateway serving grpc=127.0.0.1:"), (
            tmp_path / "gateway.log"
        ).read_text()
        fields = dict(part.split("=", 1) for part in banner.split()[3:])
        assert fields["trust_domain"] == TD and fields["pdp"] == pdp_target
        target, http = fields["grpc"], fields["http"]
        jwks = json.loads(urllib.request.urlopen(f"http://{http}/.well-known/jwks.json").read())
        assert len(jwks["keys"]) == 1

        with CertificateAuthority.load(ca_dir) as ca:
            make_certificates(ca, tmp_path)
        certs = tmp_path / "certs"
        creds = channel_credentials(certs / "laptops.crt", certs / "laptops.key", ca_dir / "ca.crt")
        device = posture_keys.load_device_key(tmp_path / "device", create=True)
        with grpc.secure_channel(target, creds) as agent:
            stub = posture_pb2_grpc.PostureStub(agent)
            stub.Enroll(posture_keys.enrollment_request(device, OPS_DEVICE, "council"), timeout=5)
            assert stub.Submit(posture_keys.submission(device, OPS_DEVICE, GOOD_FACTS)).accepted

        def admin_cli(name: str, *argv: str) -> int:
            return run_cli(
                ["admin", "--gateway", target, "--ca-cert", str(ca_dir / "ca.crt"),
                 "--cert", str(certs / f"{name}.crt"), "--key", str(certs / f"{name}.key"),
                 *argv]
            )  # fmt: skip

        quota = ["quota", "set", "--tenant", "acme", "--feature", "webhook"]
        assert admin_cli("ops", *quota, "--soft", "80", "--hard", "100") == 0
        printed = json.loads(capsys.readouterr().out)
        assert (printed["hard_limit"], printed["updated_by"]) == (100, OPS)
        assert admin_cli("ops", "quota", "get", "--tenant", "acme", "--feature", "webhook") == 0
        assert json.loads(capsys.readouterr().out)["soft_limit"] == 80

        assert admin_cli("ops", *quota, "--soft", "100", "--hard", "80") == 1
        err = capsys.readouterr().err
        assert "SetQuota refused: INVALID_ARGUMENT: the soft limit (100) must not exceed" in err
        assert admin_cli("acme-admin", "quota", "get", "--tenant", "acme", "--feature", "x") == 1
        assert "token exchange refused: UNAUTHENTICATED" in capsys.readouterr().err
        assert admin_cli("ops", "devices", "list", "--tenant", "council") == 0
        listed = json.loads(capsys.readouterr().out)["devices"]
        assert [d["device_id"] for d in listed] == [OPS_DEVICE]

        # The device turns non-compliant: the next admin command is denied with the check.
        with grpc.secure_channel(target, creds) as agent:
            request = posture_keys.submission(device, OPS_DEVICE, UNENCRYPTED)
            assert posture_pb2_grpc.PostureStub(agent).Submit(request, timeout=5).accepted
        assert admin_cli("ops", "keys", "rotate") == 1
        err = capsys.readouterr().err
        assert "RotateSigningKey refused: PERMISSION_DENIED" in err
        assert "device posture check disk_encrypted failed" in err and "\ndecision: " in err

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_gateway_serve_refuses_a_mismatched_trust_domain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    CertificateAuthority.init(tmp_path / "ca", TD).close()
    code = run_cli(
        ["gateway", "serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0",
         "--state", str(tmp_path / "state"), "--ca", str(tmp_path / "ca"),
         "--pdp", "127.0.0.1:1", "--trust-domain", "other.test"]
    )  # fmt: skip
    assert code == 1
    assert "is for trust domain council.test, not other.test" in capsys.readouterr().err
