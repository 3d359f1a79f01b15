"""Short-lived scoped tokens: the library, then the Tokens service and an admin-guarded
method end to end over mTLS on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import jwt
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway.auth_interceptor import AdminAuthConfig, AdminAuthInterceptor, current_claims
from gateway.ca import CertificateAuthority
from gateway.mtls import (
    RevocationInterceptor,
    RevocationList,
    channel_credentials,
    server_credentials,
)
from gateway.tokens import (
    Credential,
    CredentialStore,
    InvalidCredentialError,
    InvalidRequestError,
    InvalidTokenError,
    KeyRing,
    LongLivedCredentialError,
    ReplayCache,
    ScopeDeniedError,
    TokenConfig,
    TokenExpiredError,
    TokenReplayedError,
    TokenService,
    TokenVerifier,
    scope_allows,
)
from gateway.tokens_servicer import TokensServicer
from proto.council.v1 import tokens_pb2, tokens_pb2_grpc

TD = "council.test"
ADMIN_AUD = "council-admin"
SET_QUOTA = "/test.Admin/SetQuota"


class Clock:
    """A settable clock for key windows and cache expiry."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def config(**overrides: object) -> TokenConfig:
    base: dict[str, object] = {"audiences": (ADMIN_AUD, "council-webhook")}
    return TokenConfig(**{**base, **overrides})  # type: ignore[arg-type]


# --- library -------------------------------------------------------------------------------


def test_config_checks_and_the_shortest_applicable_lifetime_wins() -> None:
    cfg = config(scope_lifetimes={"admin:*": 300, "admin:quota:write": 120, "webhook:send": 600})
    assert cfg.lifetime_for({"connector:read:sales"}) == 900
    assert cfg.lifetime_for({"webhook:send"}) == 600
    assert cfg.lifetime_for({"webhook:send", "admin:users:read"}) == 300
    assert cfg.lifetime_for({"admin:quota:write", "webhook:send"}) == 120
    with pytest.raises(ValueError, match="max_lifetime"):
        config(default_lifetime=3600)
    with pytest.raises(ValueError, match="lifetime of"):
        config(scope_lifetimes={"admin:*": 3600})
    with pytest.raises(ValueError, match="algorithm"):
        config(algorithm="HS256")
    assert scope_allows("connector:read:*", "connector:read:sales")
    assert not scope_allows("connector:read:*", "connector:write:sales")
    assert not scope_allows("admin:quota:write", "admin:quota:writes")


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
def test_issued_tokens_carry_the_claims_and_verify(tmp_path: Path, algorithm: str) -> None:
    cfg = config(algorithm=algorithm)
    keys = KeyRing(tmp_path / "keys", cfg)
    issued = TokenService(cfg, keys).issue(
        "spiffe://council.test/cli/ops",
        "acme",
        ["admin:quota:write", "webhook:send"],
        audience=ADMIN_AUD,
        device_id="dev-1",
    )
    header = jwt.get_unverified_header(issued.token)
    assert header == {"alg": algorithm, "kid": keys.current.kid, "typ": "at+jwt"}
    payload = jwt.decode(issued.token, options={"verify_signature": False})
    assert set(payload) == {
        "iss", "sub", "aud", "tenant", "scope", "iat", "nbf", "exp", "jti", "device_id"
    }  # fmt: skip
    assert payload["scope"] == "admin:quota:write webhook:send"
    assert payload["exp"] - payload["iat"] == 900
    claims = TokenVerifier(cfg, keys).verify(issued.token, audience=ADMIN_AUD)
    assert claims == issued.claims
    with pytest.raises(InvalidTokenError, match=r"(?i)audience"):
        TokenVerifier(cfg, keys).verify(issued.token, audience="council-webhook")


def test_verifier_refuses_forged_foreign_and_long_lived_tokens(tmp_path: Path) -> None:
    cfg = config()
    keys = KeyRing(tmp_path / "keys", cfg)
    verifier = TokenVerifier(cfg, keys)
    good = TokenService(cfg, keys).issue("alice", "acme", ["webhook:send"], audience=ADMIN_AUD)
    head, body, sig = good.token.split(".")
    with pytest.raises(InvalidTokenError):
        verifier.verify(f"{head}.{body}.{sig[::-1]}", audience=ADMIN_AUD)
    other = KeyRing(tmp_path / "other", cfg)
    foreign = TokenService(cfg, other).issue("alice", "acme", ["webhook:send"])
    with pytest.raises(InvalidTokenError, match="unknown or retired key"):
        verifier.verify(foreign.token, audience="council-admin")
    now = int(time.time())
    claims = {**good.claims.to_dict(), "iat": now, "nbf": now, "exp": now + 86400}
    key = keys.current
    headers = {"kid": key.kid, "typ": "at+jwt"}
    day_long = jwt.encode(claims, key.private_key, algorithm="EdDSA", headers=headers)
    with pytest.raises(LongLivedCredentialError, match="exceeds"):
        verifier.verify(day_long, audience=ADMIN_AUD)
    untyped = jwt.encode(good.claims.to_dict(), key.private_key, "EdDSA", {"kid": key.kid})
    with pytest.raises(InvalidTokenError, match="typ"):
        verifier.verify(untyped, audience=ADMIN_AUD)
    old = TokenService(cfg, keys, clock=lambda: time.time() - 3600).issue(
        "alice", "acme", ["webhook:send"], audience=ADMIN_AUD
    )
    with pytest.raises(TokenExpiredError):
        verifier.verify(old.token, audience=ADMIN_AUD)


def test_key_ring_persists_rotates_and_forgets_keys_after_their_tokens_expire(
    tmp_path: Path,
) -> None:
    cfg = config()
    clock = Clock()
    directory = tmp_path / "keys"
    keys = KeyRing(directory, cfg, clock=clock)
    first = keys.current
    assert KeyRing(directory, cfg, clock=clock).current.kid == first.kid  # persisted
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    for path in directory.iterdir():
        if path.name != ".lock":
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path

    token = TokenService(cfg, keys).issue("alice", "acme", ["webhook:send"], audience=ADMIN_AUD)
    second = keys.rotate()
    assert second.kid != first.kid and keys.current.kid == second.kid
    assert [k["kid"] for k in keys.jwks()["keys"]] == [first.kid, second.kid]
    # A process opening the directory now sees the same ring.
    assert KeyRing(directory, cfg, clock=clock).current.kid == second.kid
    assert TokenVerifier(cfg, keys).verify(token.token, audience=ADMIN_AUD).kid == first.kid

    clock.now += cfg.max_lifetime + cfg.leeway + 1
    assert [k["kid"] for k in keys.jwks()["keys"]] == [second.kid]
    with pytest.raises(InvalidTokenError, match="unknown or retired key"):
        TokenVerifier(cfg, keys).verify(token.token, audience=ADMIN_AUD)
    keys.rotate()
    assert not (directory / f"{first.kid}.pem").exists()


def test_api_keys_are_stored_hashed_and_exchange_only_within_their_scopes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "credentials.db"
    store = CredentialStore(db)
    api_key = store.create_api_key("user:alice", "acme", ["admin:quota:*", "webhook:send"])
    secret = api_key.rsplit("_", 1)[1]
    store.close()
    store.close()  # idempotent
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(db.name))
    assert secret.encode() not in raw and api_key.encode() not in raw

    store = CredentialStore(db)
    credential = store.authenticate_api_key(api_key)
    assert credential == Credential(
        "api_key", "user:alice", "acme", ("admin:quota:*", "webhook:send")
    )
    with pytest.raises(InvalidCredentialError):
        store.authenticate_api_key(api_key[:-2] + "xx")
    with pytest.raises(InvalidCredentialError):
        store.authenticate_api_key("not-a-key")

    cfg = config()
    service = TokenService(cfg, KeyRing(tmp_path / "keys", cfg))
    issued = service.exchange(credential, ["admin:quota:write"], audience=ADMIN_AUD)
    assert issued.claims.scopes == {"admin:quota:write"}
    with pytest.raises(ScopeDeniedError, match=r"may not request admin:users:write"):
        service.exchange(credential, ["admin:quota:write", "admin:users:write"])
    with pytest.raises(InvalidRequestError, match="malformed"):
        service.exchange(credential, ["admin:quota:*"])
    with pytest.raises(InvalidRequestError, match="at least one"):
        service.exchange(credential, [])

    store.revoke_api_key(api_key.split("_")[1])
    with pytest.raises(InvalidCredentialError, match="unknown or revoked"):
        store.authenticate_api_key(api_key)
    store.close()


def test_replay_cache_refuses_a_second_use_across_reopen_and_prunes(tmp_path: Path) -> None:
    clock = Clock()
    cache = ReplayCache(tmp_path / "replay.db", clock=clock)
    cache.consume("jti-1", clock.now + 60)
    with pytest.raises(TokenReplayedError):
        cache.consume("jti-1", clock.now + 60)
    cache.close()
    cache = ReplayCache(tmp_path / "replay.db", clock=clock)
    with pytest.raises(TokenReplayedError):
        cache.consume("jti-1", clock.now + 60)
    cache.consume("jti-2", clock.now + 600)
    clock.now += 120
    assert cache.prune() == 1 and len(cache) == 1
    cache.close()


# --- end to end ----------------------------------------------------------------------------


@dataclass
class Env:
    """A CA with server and client certificates, and the token stack on disk."""

    root: Path
    ca: CertificateAuthority
    cfg: TokenConfig
    keys: KeyRing
    service: TokenService
    credentials: CredentialStore
    api_key: str

    @property
    def ca_cert(self) -> Path:
        return self.ca.directory / "ca.crt"

    def prefix(self, name: str) -> Path:
        return self.root / "certs" / name


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    ca = CertificateAuthority.init(tmp_path / "ca", TD)
    certs = tmp_path / "certs"
    ca.issue("gateway", "gw", dns=["localhost"], ips=["127.0.0.1"]).write(certs / "gw")
    ca.issue("agent", "laptop-7").write(certs / "agent")
    ca.issue("cli", "ops").write(certs / "ops")
    cfg = config(scope_lifetimes={"admin:*": 300})
    keys = KeyRing(tmp_path / "keys", cfg)
    credentials = CredentialStore(tmp_path / "gateway.db")
    credentials.enroll_client(
        f"spiffe://{TD}/agent/laptop-7",
        "acme",
        ["admin:quota:write", "webhook:send", "connector:read:*"],
        device_id="dev-7",
    )
    api_key = credentials.create_api_key("user:alice", "globex", ["admin:quota:write"])
    yield Env(tmp_path, ca, cfg, keys, TokenService(cfg, keys), credentials, api_key)
    credentials.close()
    ca.close()


async def set_quota(request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
    """The admin method under test: echoes the verified claims the interceptor provided."""
    return json.dumps({"request": request.decode(), "claims": current_claims().to_dict()}).encode()


ADMIN = grpc.method_handlers_generic_handler(
    "test.Admin",
    {
        "SetQuota": grpc.unary_unary_rpc_method_handler(set_quota),
        "Purge": grpc.unary_unary_rpc_method_handler(set_quota),
    },
)


@contextlib.asynccontextmanager
async def gateway(env: Env) -> AsyncIterator[int]:
    """Tokens + test.Admin behind mTLS, revocation and admin auth; yields the port."""
    ca_dir = env.ca.directory
    replay = ReplayCache(env.root / "gateway.db")
    admin = AdminAuthConfig(
        audience=ADMIN_AUD,
        method_scopes={SET_QUOTA: {"admin:quota:write"}, "/test.Admin/": {"admin:purge"}},
    )
    server = grpc.aio.server(
        interceptors=[
            RevocationInterceptor(RevocationList(ca_dir / "crl.pem", env.ca_cert)),
            AdminAuthInterceptor(admin, TokenVerifier(env.cfg, env.keys), replay),
        ]
    )
    tokens_pb2_grpc.add_TokensServicer_to_server(
        TokensServicer(env.service, env.credentials), server
    )
    server.add_generic_rpc_handlers((ADMIN,))
    cert, key = env.prefix("gw.crt"), env.prefix("gw.key")
    port = server.add_secure_port("127.0.0.1:0", server_credentials(cert, key, env.ca_cert))
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)
        replay.close()


def connect(env: Env, port: int, name: str = "agent") -> grpc.aio.Channel:
    creds = channel_credentials(env.prefix(f"{name}.crt"), env.prefix(f"{name}.key"), env.ca_cert)
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds)


async def exchange(
    channel: grpc.aio.Channel, *scopes: str, api_key: str = "", **fields: object
) -> tokens_pb2.ExchangeResponse:
    metadata = (("authorization", f"ApiKey {api_key}"),) if api_key else None
    request = tokens_pb2.ExchangeRequest(scopes=scopes, audience=ADMIN_AUD, **fields)
    return await tokens_pb2_grpc.TokensStub(channel).Exchange(request, metadata=metadata, timeout=5)


async def admin_call(
    channel: grpc.aio.Channel, authorization: str | None, method: str = SET_QUOTA
) -> dict:
    metadata = (("authorization", authorization),) if authorization else None
    reply = await channel.unary_unary(method)(b"quota=10", metadata=metadata, timeout=5)
    return json.loads(reply)


async def refused(call: object) -> tuple[grpc.StatusCode, str, str]:
    """Await ``call``; return the status code, ErrorInfo reason and message it failed with."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    status = rpc_status.from_call(info.value)  # type: ignore[arg-type]
    assert status is not None
    detail = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(detail)
    assert detail.domain == "council.auth"
    return info.value.code(), detail.reason, info.value.details() or ""


def test_exchange_via_mtls_identity_then_a_scoped_token_passes_the_admin_guard(
    env: Env,
) -> None:
    async def scenario() -> None:
        async with gateway(env) as port, connect(env, port) as channel:
            got = await exchange(channel, "admin:quota:write")
            assert got.token_type == "Bearer" and list(got.scopes) == ["admin:quota:write"]
            assert got.expires_in == 300  # the admin:* rule, shorter than the default
            reply = await admin_call(channel, f"Bearer {got.access_token}")
            claims = reply["claims"]
            assert claims["sub"] == f"spiffe://{TD}/agent/laptop-7"
            assert (claims["tenant"], claims["device_id"]) == ("acme", "dev-7")
            assert claims["aud"] == ADMIN_AUD and claims["exp"] - claims["iat"] == 300
            assert reply["request"] == "quota=10"

            shorter = await exchange(channel, "webhook:send", lifetime_seconds=60)
            assert shorter.expires_in == 60

    asyncio.run(scenario())


def test_exchange_via_api_key_works_but_the_key_itself_is_refused_by_admin(env: Env) -> None:
    async def scenario() -> None:
        async with gateway(env) as port, connect(env, port, "ops") as channel:
            got = await exchange(channel, "admin:quota:write", api_key=env.api_key)
            reply = await admin_call(channel, f"Bearer {got.access_token}")
            assert (reply["claims"]["sub"], reply["claims"]["tenant"]) == ("user:alice", "globex")

            for header in (f"ApiKey {env.api_key}", f"Bearer {env.api_key}"):
                code, why, message = await refused(admin_call(channel, header))
                assert (code, why) == (
                    grpc.StatusCode.UNAUTHENTICATED,
                    "LONG_LIVED_CREDENTIAL",
                )
                assert "exchange" in message
            code, why, _ = await refused(admin_call(channel, None))
            assert (code, why) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIAL_MISSING")

    asyncio.run(scenario())


def test_expired_long_lived_and_replayed_tokens_are_refused(env: Env) -> None:
    past = TokenService(env.cfg, env.keys, clock=lambda: time.time() - 3600)
    expired = past.issue("user:alice", "globex", ["admin:quota:write"], audience=ADMIN_AUD)
    now = int(time.time())
    key = env.keys.current
    long_lived = jwt.encode(
        {**expired.claims.to_dict(), "iat": now, "nbf": now, "exp": now + 7 * 86400},
        key.private_key,
        algorithm=key.algorithm,
        headers={"kid": key.kid, "typ": "at+jwt"},
    )

    async def scenario() -> str:
        async with gateway(env) as port, connect(env, port) as channel:
            code, why, _ = await refused(admin_call(channel, f"Bearer {expired.token}"))
            assert (code, why) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED")
            code, why, _ = await refused(admin_call(channel, f"Bearer {long_lived}"))
            assert (code, why) == (grpc.StatusCode.UNAUTHENTICATED, "LONG_LIVED_CREDENTIAL")

            got = await exchange(channel, "admin:quota:write")
            await admin_call(channel, f"Bearer {got.access_token}")
            code, why, _ = await refused(admin_call(channel, f"Bearer {got.access_token}"))
            assert (code, why) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REPLAYED")
            return got.access_token

    used = asyncio.run(scenario())

    async def after_restart() -> None:
        async with gateway(env) as port, connect(env, port) as channel:
            code, why, _ = await refused(admin_call(channel, f"Bearer {used}"))
            assert (code, why) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REPLAYED")

    asyncio.run(after_restart())


def test_a_refused_call_does_not_burn_the_token(env: Env) -> None:
    async def scenario() -> None:
        async with gateway(env) as port, connect(env, port) as channel:
            got = await exchange(channel, "admin:quota:write")
            bearer = f"Bearer {got.access_token}"
            code, why, message = await refused(admin_call(channel, bearer, "/test.Admin/Purge"))
            assert (code, why) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_DENIED")
            assert "admin:purge" in message  # the service-wide entry guards unlisted methods
            await admin_call(channel, bearer)

    asyncio.run(scenario())


def test_wrong_scope_and_bad_exchange_requests_are_refused_with_clear_statuses(
    env: Env,
) -> None:
    async def scenario() -> None:
        async with gateway(env) as port:
            async with connect(env, port) as channel:
                webhook = await exchange(channel, "webhook:send", "connector:read:sales")
                code, why, message = await refused(
                    admin_call(channel, f"Bearer {webhook.access_token}")
                )
                assert (code, why) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_DENIED")
                assert "admin:quota:write" in message

                code, why, message = await refused(exchange(channel, "admin:users:write"))
                assert (code, why) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_DENIED")
                assert "admin:users:write" in message
                code, why, _ = await refused(exchange(channel, "bad scope!"))
                assert (code, why) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
                code, why, _ = await refused(
                    tokens_pb2_grpc.TokensStub(channel).Exchange(
                        tokens_pb2.ExchangeRequest(scopes=["webhook:send"], audience="other")
                    )
                )
                assert (code, why) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
                code, why, _ = await refused(
                    tokens_pb2_grpc.TokensStub(channel).Exchange(
                        tokens_pb2.ExchangeRequest(scopes=["webhook:send"]),
                        metadata=(("authorization", f"Bearer {webhook.access_token}"),),
                    )
                )
                assert (code, why) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
                code, why, _ = await refused(
                    exchange(channel, "admin:quota:write", api_key=env.api_key + "x")
                )
                assert (code, why) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIAL_INVALID")
            async with connect(env, port, "ops") as channel:
                code, why, message = await refused(exchange(channel, "webhook:send"))
                assert (code, why) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIAL_INVALID")
                assert "not enrolled" in message

    asyncio.run(scenario())


def test_tokens_of_the_previous_key_pass_after_rotation_and_jwks_lists_both(env: Env) -> None:
    async def scenario() -> None:
        async with gateway(env) as port, connect(env, port) as channel:
            before = await exchange(channel, "admin:quota:write")
            old_kid = env.keys.current.kid
            env.keys.rotate()
            after = await exchange(channel, "admin:quota:write")
            stub = tokens_pb2_grpc.TokensStub(channel)
            jwks = json.loads((await stub.Jwks(tokens_pb2.JwksRequest(), timeout=5)).jwks_json)
            assert [k["kid"] for k in jwks["keys"]] == [old_kid, env.keys.current.kid]
            assert all(k["alg"] == "EdDSA" and k["crv"] == "Ed25519" for k in jwks["keys"])
            for token in (before.access_token, after.access_token):
                # Anyone holding the JWKS can verify, with no private key in sight.
                kid = jwt.get_unverified_header(token)["kid"]
                public = jwt.PyJWKSet.from_dict(jwks)[kid]
                claims = jwt.decode(token, public, algorithms=["EdDSA"], audience=ADMIN_AUD)
                assert claims["scope"] == "admin:quota:write"
                await admin_call(channel, f"Bearer {token}")
            assert jwt.get_unverified_header(before.access_token)["kid"] == old_kid

    asyncio.run(scenario())


def test_a_certificate_bound_token_is_refused_over_another_certificate(env: Env) -> None:
    async def scenario() -> None:
        async with gateway(env) as port:
            async with connect(env, port) as channel:
                bound = await exchange(
                    channel, "admin:quota:write", "webhook:send", bind_to_certificate=True
                )
                claims = jwt.decode(bound.access_token, options={"verify_signature": False})
                assert set(claims["cnf"]) == {"x5t#S256"}
            async with connect(env, port, "ops") as stolen:
                code, why, message = await refused(
                    admin_call(stolen, f"Bearer {bound.access_token}")
                )
                assert (code, why) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")
                assert "another client certificate" in message
            # The refusal did not consume it: its owner can still use it, once.
            async with connect(env, port) as channel:
                await admin_call(channel, f"Bearer {bound.access_token}")

    asyncio.run(scenario())
