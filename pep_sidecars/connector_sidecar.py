"""``council sidecar connector``: the connector enforcement point as an HTTP service.

Routes (aiohttp):

``GET /datasets/{name}?op=read&limit=N``   read up to N rows (default 100)
``POST /datasets/{name}/query``            body: a :class:`~pep_sidecars.connectors.Query`
``GET /healthz``                           liveness

Every data request carries ``Authorization: Bearer <access token>``; the token is verified
against the gateway's JWK Set (``council.v1.Tokens/Jwks``, refreshed every
``jwks_refresh`` seconds and when a token names an unknown key, at most every
``jwks_min_interval`` seconds). The verified claims become the caller the policy judges;
this listener is plain HTTP, so certificate-bound tokens are refused.

Answers: 200 with ``{dataset, operation, columns, records, count, truncated,
decision_id}``; otherwise RFC 9457 problem+json from :mod:`gateway.problem`: 401 (no or bad
token), 403 (policy denial, with ``reasons``, ``decision_id`` and a ``hint``), 404 (no such
dataset), 400 (bad request), 502 (the data source failed), 503 (PDP or gateway
unreachable: fail closed, with ``Retry-After``), 500 (an obligation that cannot be
honoured). Every decision is reported as a usage event to the gateway.

Lifecycle: :meth:`ConnectorSidecar.start` loads the connector config, opens the
connectors, the PDP client, the usage reporter and the gateway channel, then binds;
:meth:`ConnectorSidecar.close` undoes it in reverse order after a grace period.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web

from gateway.lifecycle import serve_until_signalled
from gateway.problem import problem_middleware, problem_response
from pep_sidecars.cli_pep import (
    DEFAULT_ISSUER,
    JwksVerifier,
    TokenRejectedError,
    fetch_jwks,
)
from pep_sidecars.connectors import (
    DEFAULT_LIMIT,
    AccessDeniedError,
    Caller,
    ConnectorConfigError,
    ConnectorError,
    ConnectorPEP,
    DatasetNotFoundError,
    DecisionUnavailableError,
    InvalidQueryError,
    Query,
    UpstreamError,
    create_connector,
    load_specs,
)
from pep_sidecars.pdp_client import PDPClient, PDPClientConfig, TLSFiles
from pep_sidecars.usage import UsageReporter, UsageReporterConfig

__all__ = ["DEFAULT_AUDIENCE", "ConnectorSidecar", "ConnectorSidecarConfig", "serve_connector"]

log = logging.getLogger(__name__)

DEFAULT_AUDIENCE = "council-connector"
"""The audience connector tokens are requested for (one of the gateway's defaults)."""
DEFAULT_JWKS_REFRESH = 300.0
DEFAULT_JWKS_MIN_INTERVAL = 5.0
DEFAULT_MAX_BODY = 64 * 1024
RETRY_AFTER_SECONDS = "5"
DENIAL_HINT = (
    "each reason names what is missing: request a token with the missing scopes, ask for the"
    " clearance, or ask the data owner to label the dataset; quote the decision id"
)

# Stable problem codes and statuses of the connector errors, mapped here and nowhere else.
_STATUSES: tuple[tuple[type[ConnectorError], HTTPStatus], ...] = (
    (AccessDeniedError, HTTPStatus.FORBIDDEN),
    (DatasetNotFoundError, HTTPStatus.NOT_FOUND),
    (InvalidQueryError, HTTPStatus.BAD_REQUEST),
    (UpstreamError, HTTPStatus.BAD_GATEWAY),
    (DecisionUnavailableError, HTTPStatus.SERVICE_UNAVAILABLE),
)


@dataclass(frozen=True)
class ConnectorSidecarConfig:
    """How to run the connector sidecar.

    Attributes:
        listen: ``host:port`` of the HTTP listener (port 0: any free port).
        pdp: ``host:port`` of the PDP's gRPC listener.
        gateway: ``host:port`` of the gateway (JWKS, usage intake).
        config_file: the connectors (JSON or YAML, see :func:`connectors.load_specs`).
        usage_spool: SQLite file holding usage events not yet acknowledged.
        tls: client certificate, key and CA for the gateway channel (always mTLS).
        pdp_tls: the same for the PDP channel when the PDP sits behind mTLS; None for a
            PDP reached in plaintext on a private address.
        audience / issuer: what accepted tokens must name.
        jwks_refresh / jwks_min_interval: see the module docstring.
        max_body: largest query body accepted, in bytes.
        grace: seconds in-flight requests get at shutdown.
    """

    listen: str
    pdp: str
    gateway: str
    config_file: Path
    usage_spool: Path
    tls: TLSFiles | None = None
    pdp_tls: TLSFiles | None = None
    audience: str = DEFAULT_AUDIENCE
    issuer: str = DEFAULT_ISSUER
    jwks_refresh: float = DEFAULT_JWKS_REFRESH
    jwks_min_interval: float = DEFAULT_JWKS_MIN_INTERVAL
    max_body: int = DEFAULT_MAX_BODY
    grace: float = 5.0

    def __post_init__(self) -> None:
        if self.jwks_refresh <= 0 or self.jwks_min_interval < 0 or self.max_body <= 0:
            raise ValueError("jwks_refresh and max_body must be positive")


class _GatewayKeysUnavailable(Exception):
    """No JWK Set could be fetched yet: tokens cannot be verified."""


class _Keys:
    """The gateway's JWK Set, fetched lazily and refreshed as the module docstring says."""

    def __init__(self, config: ConnectorSidecarConfig, channel: grpc.aio.Channel) -> None:
        self._config = config
        self._channel = channel
        self._verifier: JwksVerifier | None = None
        self._fetched = 0.0
        self._attempted = -float("inf")
        self._lock = asyncio.Lock()

    async def verifier_for(self, token: str) -> JwksVerifier:
        current = self._verifier
        if (
            current is None
            or time.monotonic() - self._fetched > self._config.jwks_refresh
            or not current.knows(token)
        ):
            await self._refresh()
        if self._verifier is None:
            raise _GatewayKeysUnavailable(
                f"the gateway at {self._config.gateway} did not provide its token keys"
            )
        return self._verifier

    async def _refresh(self) -> None:
        async with self._lock:
            now = time.monotonic()
            # Tokens naming unknown keys must not make us hammer the gateway.
            if now - self._attempted < self._config.jwks_min_interval:
                return
            self._attempted = now
            try:
                jwks = await fetch_jwks(self._channel)
            except (grpc.aio.AioRpcError, ValueError) as exc:
                log.warning("connector sidecar: cannot fetch the gateway's JWKS: %s", exc)
                return
            self._verifier = JwksVerifier(
                jwks, audience=self._config.audience, issuer=self._config.issuer
            )
            self._fetched = now


SIDECAR_KEY: web.AppKey[ConnectorSidecar] = web.AppKey("connector_sidecar")


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host or "127.0.0.1", int(port)


def _problem(exc: ConnectorError) -> web.Response:
    """The one place connector errors become HTTP problems."""
    status = next(
        (s for kind, s in _STATUSES if isinstance(exc, kind)), HTTPStatus.INTERNAL_SERVER_ERROR
    )
    if isinstance(exc, AccessDeniedError):
        return problem_response(
            status.value,
            f"the policy denied {exc.operation} on dataset '{exc.dataset}'",
            code=exc.code,
            reasons=list(exc.reasons),
            decision_id=exc.decision_id,
            dataset=exc.dataset,
            operation=exc.operation,
            hint=DENIAL_HINT,
            headers={"council-decision-id": exc.decision_id},
        )
    if status == HTTPStatus.SERVICE_UNAVAILABLE:
        return problem_response(
            status.value, exc.message, code=exc.code, headers={"Retry-After": RETRY_AFTER_SECONDS}
        )
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        log.error("connector sidecar: %s: %s", exc.code, exc.message)
    return problem_response(status.value, exc.message, code=exc.code)


def _unauthorized(detail: str, code: str) -> web.Response:
    # RFC 6750: the challenge tells clients which scheme to use and why this one failed.
    challenge = 'Bearer realm="council"'
    if code != "token_missing":
        quoted = detail.replace('"', "'").replace("\\", "/")
        challenge += f', error="invalid_token", error_description="{quoted}"'
    return problem_response(
        HTTPStatus.UNAUTHORIZED.value, detail, code=code, headers={"WWW-Authenticate": challenge}
    )


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    try:
        return int(raw)
    except ValueError:
        raise InvalidQueryError(f"limit must be an integer, not {raw!r}") from None


def _open_usage(
    config: ConnectorSidecarConfig, credentials: grpc.ChannelCredentials | None
) -> UsageReporter:
    try:
        config.usage_spool.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return UsageReporter(
            UsageReporterConfig(
                gateway=config.gateway,
                spool=config.usage_spool,
                source="pep:connector",
                credentials=credentials,
            )
        )
    except (OSError, sqlite3.Error) as exc:
        # Usage events are the sidecar's accepted records: no spool, no service.
        raise ConnectorConfigError(
            f"cannot open the usage spool {config.usage_spool}: {exc}"
        ) from exc


class ConnectorSidecar:
    """The connector PEP behind an HTTP listener."""

    def __init__(self, config: ConnectorSidecarConfig) -> None:
        self.config = config
        self.port = 0
        self._pdp: PDPClient | None = None
        self._usage: UsageReporter | None = None
        self._channel: grpc.aio.Channel | None = None
        self._keys: _Keys | None = None
        self.pep: ConnectorPEP | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Open everything and bind; on failure, close what was opened and re-raise."""
        config = self.config
        try:
            specs = load_specs(config.config_file)
            connectors = [create_connector(spec) for spec in specs]
            self._pdp = PDPClient(PDPClientConfig(target=config.pdp, tls=config.pdp_tls))
            credentials = config.tls.credentials() if config.tls else None
            self._usage = _open_usage(config, credentials)
            await self._usage.start()
            self._channel = (
                grpc.aio.secure_channel(config.gateway, credentials)
                if credentials is not None
                else grpc.aio.insecure_channel(config.gateway)
            )
            self._keys = _Keys(config, self._channel)
            self.pep = ConnectorPEP(connectors, self._pdp, usage=self._usage)
            await self.pep.open()
            app = web.Application(middlewares=[problem_middleware], client_max_size=config.max_body)
            app[SIDECAR_KEY] = self
            app.router.add_get("/healthz", _healthz)
            app.router.add_get("/datasets/{name}", _read)
            app.router.add_post("/datasets/{name}/query", _query)
            self._runner = web.AppRunner(app, shutdown_timeout=config.grace)
            await self._runner.setup()
            host, port = _split(config.listen)
            site = web.TCPSite(self._runner, host, port)
            await site.start()
            self.port = self._runner.addresses[0][1]
            log.info("connector sidecar listening on %s:%d", host, self.port)
        except BaseException:
            await self.close()
            raise

    def banner(self) -> str:
        """The start-up line: where callers connect and which PDP decides."""
        host = _split(self.config.listen)[0]
        return (
            f"council connector PEP listening on http://{host}:{self.port} "
            f"-> pdp {self.config.pdp}, gateway {self.config.gateway}"
        )

    async def stop(self) -> None:
        """Same as :meth:`close` (the lifecycle name servers share)."""
        await self.close()

    async def close(self) -> None:
        """Stop listening, then close the connectors, channel, usage reporter and PDP client."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.pep is not None:
            await self.pep.close()
            self.pep = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        if self._usage is not None:
            await self._usage.close()
            self._usage = None
        if self._pdp is not None:
            await self._pdp.close()
            self._pdp = None

    async def caller(self, request: web.Request) -> Caller | web.Response:
        """The verified caller of a request, or the 401/503 answer to give instead."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _unauthorized(
                "send a gateway access token as 'Authorization: Bearer <token>'", "token_missing"
            )
        assert self._keys is not None
        try:
            verifier = await self._keys.verifier_for(token)
            claims = verifier.verify(token)
        except _GatewayKeysUnavailable as exc:
            return problem_response(
                HTTPStatus.SERVICE_UNAVAILABLE.value,
                f"{exc}; tokens cannot be verified, so nothing is served",
                code="gateway_unavailable",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        except TokenRejectedError as exc:
            return _unauthorized(exc.message, exc.code)
        return Caller.from_claims(claims, verified=True)

    async def answer(self, request: web.Request, operation: str) -> web.Response:
        """Authenticate, run the operation through the PEP, and render the outcome.

        The caller is authenticated before the request is looked at any further, so an
        anonymous client learns nothing about datasets or query syntax.
        """
        caller = await self.caller(request)
        if isinstance(caller, web.Response):
            return caller
        assert self.pep is not None
        name = request.match_info["name"]
        try:
            if operation == "read":
                result = await self.pep.read(caller, name, limit=_limit(request))
            else:
                result = await self.pep.query(caller, name, await _parse_query(request))
        except ConnectorError as exc:
            return _problem(exc)
        return web.json_response(
            {**result.to_json(), "operation": operation},
            headers={"council-decision-id": result.decision_id},
        )


async def _parse_query(request: web.Request) -> Query:
    try:
        body: Any = await request.json(loads=json.loads)
    except ValueError:
        raise InvalidQueryError("the query body is not JSON") from None
    return Query.from_json(body)


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _read(request: web.Request) -> web.Response:
    op = request.query.get("op", "read")
    if op != "read":
        hint = "use POST /datasets/{name}/query" if op == "query" else "only op=read is served"
        return _problem(InvalidQueryError(f"GET does not run op={op!r}; {hint}"))
    return await request.app[SIDECAR_KEY].answer(request, "read")


async def _query(request: web.Request) -> web.Response:
    return await request.app[SIDECAR_KEY].answer(request, "query")


async def serve_connector(config: ConnectorSidecarConfig) -> None:
    """Run the sidecar until SIGINT or SIGTERM."""
    await serve_until_signalled(ConnectorSidecar(config))
