"""The gateway process: token service, posture intake, usage intake and the admin API.

One gRPC port, mTLS required (client certificates of the gateway's CA; revoked or expired
ones refused per call by :class:`~gateway.mtls.RevocationInterceptor`), serving
``council.v1.Tokens``, ``council.v1.Posture``, ``council.v1.Usage`` and
``council.v1.Admin`` (behind :class:`~gateway.auth_interceptor.AdminAuthInterceptor` and
the PDP at ``--pdp``), plus health and reflection. One HTTP port (aiohttp) serving
``GET /.well-known/jwks.json`` (the token verification keys, for anyone), ``GET /health``
and ``GET /status`` (a read-only summary, JSON or, for browsers, HTML). HTTP errors are
problem+json (:mod:`gateway.problem`).

State lives in one directory, 0700::

    keys/            token signing keys (KeyRing)
    credentials.db   API keys and enrolled mTLS clients
    replay.db        used admin token ids
    posture.db       device registry and posture reports
    usage.db         usage events and quotas
    tls/gateway.*    the gateway's own serving certificate, when it issues it

The CA directory (``council ca init``) supplies the trust anchor and the CRL. Unless a
certificate is given, the gateway issues its own serving certificate from that CA at every
start (so it needs ``ca.key``), valid for ``cert_ttl``.

Lifecycle: :meth:`GatewayServer.start` opens the state (blocking work in the executor),
binds both ports; :meth:`GatewayServer.stop` stops accepting, lets in-flight calls finish
within the grace period, then closes the PDP client, the CRL watcher and the stores, in
reverse order of creation. A start that fails half-way undoes what it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import ipaddress
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from cryptography import x509
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway.admin_servicer import ENTRYPOINT, AdminServicer, enrolled_devices, method_scopes
from gateway.auth_interceptor import AdminAuthConfig, AdminAuthInterceptor
from gateway.ca import (
    CA_CERT,
    CA_KEY,
    CRL_FILE,
    DEFAULT_LEAF_TTL,
    CAError,
    CertificateAuthority,
    certificate_identity,
    trust_domain_of,
)
from gateway.lifecycle import serve_until_signalled
from gateway.mtls import RevocationInterceptor, RevocationList, server_credentials
from gateway.posture import ComplianceThresholds, PostureConfig, PostureIntake
from gateway.posture_servicer import SERVICE_NAME as POSTURE_SERVICE
from gateway.posture_servicer import add_posture_service
from gateway.problem import problem_middleware
from gateway.tokens import (
    CredentialStore,
    KeyRing,
    ReplayCache,
    TokenConfig,
    TokenService,
    TokenVerifier,
)
from gateway.tokens_servicer import TokensServicer
from gateway.usage_intake import UsageConfig, UsageStore
from gateway.usage_servicer import SERVICE_NAME as USAGE_SERVICE
from gateway.usage_servicer import add_usage_service
from pep_sidecars.pdp_client import PDPClient, PDPClientConfig
from proto.council.v1 import admin_pb2, admin_pb2_grpc, tokens_pb2, tokens_pb2_grpc

__all__ = [
    "ADMIN_AUDIENCE",
    "DEFAULT_AUDIENCES",
    "GatewayConfig",
    "GatewayError",
    "GatewayServer",
    "GatewayState",
    "default_token_config",
    "serve_forever",
]

log = logging.getLogger(__name__)

ADMIN_AUDIENCE = "council-admin"
"""The ``aud`` of tokens the admin API accepts."""
DEFAULT_AUDIENCES = ("council", ADMIN_AUDIENCE, "council-webhook", "council-connector")
ADMIN_TOKEN_LIFETIME = 300.0
"""Admin tokens live five minutes: each is good for one call anyway."""
TOKENS_SERVICE = tokens_pb2.DESCRIPTOR.services_by_name["Tokens"].full_name
ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name
JWKS_CONTENT_TYPE = "application/jwk-set+json"
JWKS_MAX_AGE = 60
"""Seconds HTTP caches may keep the JWKS: short, so a rotated-in key is soon published."""
STATE_DIR_MODE = 0o700


class GatewayError(Exception):
    """The gateway cannot start: no CA, a trust domain mismatch, unusable files or ports."""

    code = "gateway_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def default_token_config() -> TokenConfig:
    """Council's token settings: the default audiences, admin tokens living 5 minutes."""
    return TokenConfig(
        audiences=DEFAULT_AUDIENCES, scope_lifetimes={"admin:*": ADMIN_TOKEN_LIFETIME}
    )


@dataclass(frozen=True)
class GatewayConfig:
    """How to run the gateway.

    Attributes:
        state: the state directory (created, 0700).
        ca_dir: the CA directory (``ca.crt``, ``crl.pem``; ``ca.key`` to self-issue).
        pdp: ``host:port`` of the PDP's gRPC listener.
        grpc_addr / http_addr: ``host:port`` to listen on (port 0 picks a free one).
        trust_domain: when set, the CA must be for this trust domain; a missing CA is then
            created for it.
        cert / key: the serving certificate and key; None to self-issue from the CA.
        server_names: DNS names in a self-issued certificate (``127.0.0.1`` and an IP
            listen address are added as IP names).
        cert_ttl: validity of a self-issued certificate.
        tokens: issuing and verification settings; must list ``admin_audience``.
        admin_audience: the audience admin tokens must carry.
        posture_max_age_seconds / thresholds: the posture intake's freshness and
            compliance requirements.
        pdp_timeout / pdp_retries: per-attempt timeout and extra attempts on the PDP.
        crl_refresh_interval: seconds between checks of the CRL file.
        grace: seconds in-flight calls get at shutdown.
        workers: threads for SQLite and disk work.
    """

    state: Path
    ca_dir: Path
    pdp: str
    grpc_addr: str = "127.0.0.1:0"
    http_addr: str = "127.0.0.1:0"
    trust_domain: str | None = None
    cert: Path | None = None
    key: Path | None = None
    server_names: tuple[str, ...] = ("localhost",)
    cert_ttl: timedelta = DEFAULT_LEAF_TTL
    tokens: TokenConfig = field(default_factory=default_token_config)
    admin_audience: str = ADMIN_AUDIENCE
    posture_max_age_seconds: float = 600.0
    thresholds: ComplianceThresholds = field(default_factory=ComplianceThresholds)
    pdp_timeout: float = 1.0
    pdp_retries: int = 2
    crl_refresh_interval: float = 30.0
    grace: float = 5.0
    workers: int = 8

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both cert and key, or neither (to self-issue)")
        if self.admin_audience not in self.tokens.audiences:
            raise ValueError(f"the token audiences must include {self.admin_audience!r}")
        if self.grace < 0 or self.workers < 1 or self.crl_refresh_interval <= 0:
            raise ValueError("grace must be >= 0, workers >= 1, crl_refresh_interval > 0")
        for addr in (self.grpc_addr, self.http_addr, self.pdp):
            _split(addr)


def _split(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{addr!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass
class GatewayState:
    """What a running gateway holds open: its trust, certificate, keys and stores."""

    trust_domain: str
    cert: Path
    key: Path
    keys: KeyRing
    credentials: CredentialStore
    replay: ReplayCache
    posture: PostureIntake
    usage: UsageStore
    revocations: RevocationList

    def close(self) -> None:
        """Close the stores, last opened first. Blocking (SQLite)."""
        for store in (self.usage, self.posture, self.replay, self.credentials):
            store.close()


class GatewayServer:
    """One gateway: its state, its gRPC and HTTP listeners, its PDP client."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.grpc_port = 0
        self.http_port = 0
        self._executor = ThreadPoolExecutor(
            max_workers=config.workers, thread_name_prefix="council-gateway"
        )
        self._started_at = 0.0
        self._state: GatewayState | None = None
        self._pdp: PDPClient | None = None
        self._grpc: grpc.aio.Server | None = None
        self._runner: web.AppRunner | None = None

    @property
    def state(self) -> GatewayState:
        """The open state; RuntimeError before :meth:`start` or after :meth:`stop`."""
        if self._state is None:
            raise RuntimeError("the gateway is not running")
        return self._state

    # --- start-up -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the state, start the CRL watcher, bind both listeners."""
        loop = asyncio.get_running_loop()
        try:
            self._state = await loop.run_in_executor(self._executor, self._open_state)
            await self._state.revocations.start()
            self._pdp = PDPClient(
                PDPClientConfig(
                    target=self.config.pdp,
                    timeout=self.config.pdp_timeout,
                    retries=self.config.pdp_retries,
                )
            )
            await self._start_grpc(self._state, self._pdp)
            await self._start_http()
        except BaseException:
            await self.stop()
            raise
        self._started_at = time.time()

    def _open_state(self) -> GatewayState:
        """Blocking: the state directory, the CA, the serving certificate, the stores."""
        root = self.config.state
        root.mkdir(parents=True, exist_ok=True, mode=STATE_DIR_MODE)
        os.chmod(root, STATE_DIR_MODE)
        trust_domain = self._trust_domain()
        if self.config.cert is not None and self.config.key is not None:
            cert, key = self.config.cert, self.config.key
        else:
            cert, key = self._issue_serving_certificate()
        revocations = RevocationList(
            self.config.ca_dir / CRL_FILE,
            self.config.ca_dir / CA_CERT,
            refresh_interval=self.config.crl_refresh_interval,
        )
        with contextlib.ExitStack() as opened:
            # Whatever opened before a failure is closed again, in reverse order.
            credentials = CredentialStore(root / "credentials.db")
            opened.callback(credentials.close)
            replay = ReplayCache(root / "replay.db")
            opened.callback(replay.close)
            posture = PostureIntake(
                PostureConfig(
                    db_path=root / "posture.db",
                    max_age_seconds=self.config.posture_max_age_seconds,
                    thresholds=self.config.thresholds,
                )
            )
            opened.callback(posture.close)
            usage = UsageStore(UsageConfig(db_path=root / "usage.db"))
            opened.callback(usage.close)
            state = GatewayState(
                trust_domain=trust_domain,
                cert=cert,
                key=key,
                keys=KeyRing(root / "keys", self.config.tokens),
                credentials=credentials,
                replay=replay,
                posture=posture,
                usage=usage,
                revocations=revocations,
            )
            opened.pop_all()
        return state

    def _trust_domain(self) -> str:
        """The CA's trust domain, creating the CA when asked to and none exists."""
        ca_dir, wanted = self.config.ca_dir, self.config.trust_domain
        if not (ca_dir / CA_CERT).exists():
            if not wanted:
                raise GatewayError(
                    f"{ca_dir} holds no CA: run `council ca init` or pass --trust-domain"
                )
            try:
                CertificateAuthority.init(ca_dir, wanted).close()
            except CAError as exc:
                raise GatewayError(exc.message) from exc
            log.info("created a CA for spiffe://%s in %s", wanted, ca_dir)
        try:
            root = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
            found = trust_domain_of(root)
        except (OSError, ValueError, CAError) as exc:
            raise GatewayError(f"{ca_dir / CA_CERT}: not a Council CA certificate: {exc}") from exc
        if wanted and wanted != found:
            raise GatewayError(f"the CA in {ca_dir} is for trust domain {found}, not {wanted}")
        return found

    def _issue_serving_certificate(self) -> tuple[Path, Path]:
        if not (self.config.ca_dir / CA_KEY).exists():
            raise GatewayError(
                f"{self.config.ca_dir} has no {CA_KEY} to issue the gateway's certificate;"
                " pass a certificate and key instead"
            )
        ips = {"127.0.0.1"}
        host = _split(self.config.grpc_addr)[0]
        with contextlib.suppress(ValueError):  # a host name, not an address
            if not ipaddress.ip_address(host).is_unspecified:
                ips.add(host)
        try:
            with CertificateAuthority.load(self.config.ca_dir) as ca:
                issued = ca.issue(
                    "gateway",
                    "gateway",
                    ttl=self.config.cert_ttl,
                    dns=self.config.server_names,
                    ips=sorted(ips),
                )
        except CAError as exc:
            raise GatewayError(f"cannot issue the gateway's certificate: {exc.message}") from exc
        return issued.write(self.config.state / "tls" / "gateway")

    async def _start_grpc(self, state: GatewayState, pdp: PDPClient) -> None:
        tokens = self.config.tokens
        guard = AdminAuthConfig(
            audience=self.config.admin_audience,
            method_scopes=method_scopes(),
            max_lifetime=tokens.max_lifetime,
        )
        server = grpc.aio.server(
            interceptors=[
                RevocationInterceptor(state.revocations),
                AdminAuthInterceptor(
                    guard,
                    TokenVerifier(tokens, state.keys),
                    state.replay,
                    executor=self._executor,
                ),
            ],
            options=[("grpc.so_reuseport", 0)],
        )
        tokens_pb2_grpc.add_TokensServicer_to_server(
            TokensServicer(
                TokenService(tokens, state.keys), state.credentials, executor=self._executor
            ),
            server,
        )
        add_posture_service(server, state.posture, self._executor)
        add_usage_service(server, state.usage, self._executor)
        admin_pb2_grpc.add_AdminServicer_to_server(
            AdminServicer(
                credentials=state.credentials,
                keys=state.keys,
                intake=state.posture,
                usage=state.usage,
                pdp=pdp,
                executor=self._executor,
                trust_domain=state.trust_domain,
            ),
            server,
        )
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        names = (TOKENS_SERVICE, POSTURE_SERVICE, USAGE_SERVICE, ADMIN_SERVICE)
        reflection.enable_server_reflection(
            (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        credentials = server_credentials(state.cert, state.key, self.config.ca_dir / CA_CERT)
        self._grpc = server
        try:
            self.grpc_port = server.add_secure_port(self.config.grpc_addr, credentials)
        except RuntimeError as exc:
            raise GatewayError(f"cannot bind gRPC on {self.config.grpc_addr}: {exc}") from exc
        await server.start()
        for name in ("", *names):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def _start_http(self) -> None:
        app = web.Application(middlewares=[problem_middleware])
        app[GATEWAY_KEY] = self
        app.router.add_get("/.well-known/jwks.json", _jwks)
        app.router.add_get("/health", _health)
        app.router.add_get("/status", _status)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runner = runner
        host, port = _split(self.config.http_addr)
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise GatewayError(f"cannot bind HTTP on {self.config.http_addr}: {exc}") from exc
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.http_port = sockets[0].getsockname()[1] if sockets else port

    def banner(self) -> str:
        """The one start-up line: where the gateway listens and what it trusts."""
        grpc_host = _split(self.config.grpc_addr)[0]
        http_host = _split(self.config.http_addr)[0]
        return (
            f"council gateway serving grpc={grpc_host}:{self.grpc_port} "
            f"http={http_host}:{self.http_port} trust_domain={self.state.trust_domain} "
            f"pdp={self.config.pdp}"
        )

    # --- status -----------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        """The token verification keys as a JWK Set (what Tokens/Jwks returns)."""
        return self.state.keys.jwks()

    @staticmethod
    def _counts(state: GatewayState) -> dict[str, Any]:
        """Blocking: sizes of the registries and the serving certificate, for /status."""
        serving = certificate_identity(state.cert.read_bytes())
        return {
            "serving_certificate": {
                "spiffe_id": serving.spiffe_id,
                "not_after": serving.not_after.isoformat(),
            },
            "devices": len(enrolled_devices(state.posture)),
            "usage_events": state.usage.event_count(),
            "quotas": state.usage.quota_count(),
        }

    async def status(self) -> dict[str, Any]:
        """A read-only summary: listeners, trust, signing keys, registry sizes."""
        state = self.state
        loop = asyncio.get_running_loop()
        counts = await loop.run_in_executor(self._executor, self._counts, state)
        current = state.keys.current.kid
        return {
            "service": "council-gateway",
            "trust_domain": state.trust_domain,
            "grpc_port": self.grpc_port,
            "http_port": self.http_port,
            "started_at": datetime.fromtimestamp(self._started_at, UTC).isoformat(),
            "uptime_seconds": round(time.time() - self._started_at, 3),
            "pdp": {"target": self.config.pdp, "admin_entrypoint": ENTRYPOINT},
            "signing_keys": [
                {"kid": k.kid, "alg": k.algorithm, "current": k.kid == current}
                for k in state.keys.verifying_keys()
            ],
            **counts,
        }

    # --- shutdown ---------------------------------------------------------------------

    async def stop(self) -> None:
        """Graceful shutdown; idempotent."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._grpc is not None:
            await self._grpc.stop(self.config.grace)
            self._grpc = None
        if self._pdp is not None:
            await self._pdp.close()
            self._pdp = None
        if self._state is not None:
            state, self._state = self._state, None
            await state.revocations.close()
            await asyncio.get_running_loop().run_in_executor(self._executor, state.close)
        self._executor.shutdown(wait=True)


# --- HTTP handlers ---------------------------------------------------------------------

GATEWAY_KEY: web.AppKey[GatewayServer] = web.AppKey("gateway", GatewayServer)


async def _jwks(request: web.Request) -> web.Response:
    return web.json_response(
        request.app[GATEWAY_KEY].jwks(),
        content_type=JWKS_CONTENT_TYPE,
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )


async def _health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _status(request: web.Request) -> web.Response:
    doc = await request.app[GATEWAY_KEY].status()
    if "text/html" not in request.headers.get("Accept", ""):
        return web.json_response(doc)
    rows = "".join(
        f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(str(value))}</td></tr>"
        for name, value in doc.items()
    )
    page = (
        "<!doctype html><meta charset=utf-8><title>Council gateway</title>"
        f"<h1>Council gateway</h1><table>{rows}</table>"
    )
    return web.Response(text=page, content_type="text/html")


async def serve_forever(config: GatewayConfig, ready: asyncio.Event | None = None) -> None:
    """Run a gateway until cancelled or SIGINT/SIGTERM, printing the banner once bound."""
    await serve_until_signalled(GatewayServer(config), ready)
