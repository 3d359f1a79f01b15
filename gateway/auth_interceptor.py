"""Admin methods accept only short-lived, scoped, one-time access tokens.

:class:`AdminAuthInterceptor` guards the gRPC methods named in :class:`AdminAuthConfig`.
A call must carry ``authorization: Bearer <token>`` metadata where the token

* is a Council access token signed by the current key or a retired key still in its window,
  for the configured audience, within ``nbf``/``exp``;
* lives no longer than ``max_lifetime`` (a long-lived token is refused like an API key);
* carries every scope the method requires;
* if bound to a certificate (``cnf``), arrives over mTLS with that certificate;
* has a ``jti`` never seen before: admin tokens are good for one call, even across
  restarts (the replay cache is SQLite, consulted in an executor, never on the loop).

The checks run cheapest first and the ``jti`` is consumed last, so a refused call never
burns a token. The verified :class:`~gateway.tokens.TokenClaims` are available to the
servicer through :func:`current_claims`. Other methods pass through untouched.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType

import grpc

from gateway.mtls import abort, peer_identity, wrap_handler
from gateway.tokens import (
    API_KEY_PREFIX,
    MAX_LIFETIME,
    AuthError,
    InvalidTokenError,
    LongLivedCredentialError,
    MissingCredentialError,
    ReplayCache,
    ScopeDeniedError,
    TokenClaims,
    TokenVerifier,
    parse_scopes,
)

__all__ = ["AdminAuthConfig", "AdminAuthInterceptor", "current_claims"]

_CLAIMS: ContextVar[TokenClaims | None] = ContextVar("council_admin_claims", default=None)


def current_claims() -> TokenClaims:
    """The verified claims of the admin call being served; LookupError outside one."""
    claims = _CLAIMS.get()
    if claims is None:
        raise LookupError("no verified admin token in this context")
    return claims


@dataclass(frozen=True)
class AdminAuthConfig:
    """Which methods are admin methods and what each requires.

    Attributes:
        audience: the ``aud`` admin tokens must carry.
        method_scopes: full method name (``/council.v1.Admin/SetQuota``) → scopes, all
            required. A key ending in ``/`` (``/council.v1.Admin/``) covers every method of
            that service without an entry of its own, so a method added later is guarded
            by default rather than left open.
        max_lifetime: longest ``exp - iat`` accepted, in seconds.
    """

    audience: str
    method_scopes: Mapping[str, frozenset[str]]
    max_lifetime: float = MAX_LIFETIME

    def __post_init__(self) -> None:
        if not self.audience:
            raise ValueError("audience must not be empty")
        if not 0 < self.max_lifetime <= MAX_LIFETIME:
            raise ValueError(f"max_lifetime must be in (0, {MAX_LIFETIME:g}]")
        frozen = {}
        for method, scopes in self.method_scopes.items():
            if not method.startswith("/") or method.count("/") != 2:
                raise ValueError(f"{method!r} is not /package.Service/Method or /package.Service/")
            frozen[method] = parse_scopes(scopes)
        object.__setattr__(self, "method_scopes", MappingProxyType(frozen))

    def required_scopes(self, method: str) -> frozenset[str] | None:
        """The scopes ``method`` requires, or None when it is not an admin method."""
        scopes = self.method_scopes.get(method)
        if scopes is None:
            scopes = self.method_scopes.get(method[: method.rfind("/") + 1])
        return scopes


def _bearer(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
    """The bearer token of the call, refusing anything else with a message saying why."""
    values = [v for k, v in metadata or () if k == "authorization"]
    if not values:
        raise MissingCredentialError(
            "admin methods need `authorization: Bearer <short-lived token>`;"
            " get one from council.v1.Tokens/Exchange"
        )
    if len(values) > 1:
        raise InvalidTokenError("more than one authorization header")
    value = values[0].decode() if isinstance(values[0], bytes) else values[0]
    scheme, _, credential = value.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() == "apikey" or credential.startswith(API_KEY_PREFIX):
        raise LongLivedCredentialError(
            "API keys are not accepted by admin methods; exchange the key for a"
            " short-lived token at council.v1.Tokens/Exchange"
        )
    if scheme.lower() != "bearer" or not credential:
        raise InvalidTokenError("the authorization header must be `Bearer <token>`")
    return credential


class AdminAuthInterceptor(grpc.aio.ServerInterceptor):
    """Guards admin methods with one-time, short-lived, scoped tokens.

    ``executor`` runs the replay cache's SQLite writes (None: the loop's default executor).
    The interceptor owns neither the verifier nor the cache; whoever made them closes them.
    """

    def __init__(
        self,
        config: AdminAuthConfig,
        verifier: TokenVerifier,
        replay: ReplayCache,
        *,
        executor: Executor | None = None,
    ) -> None:
        self._config = config
        self._verifier = verifier
        self._replay = replay
        self._executor = executor

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        required = self._config.required_scopes(handler_call_details.method)
        if required is None:
            return handler
        return wrap_handler(handler, functools.partial(self._guard, required))

    async def _guard(self, required: frozenset[str], context: grpc.aio.ServicerContext) -> None:
        try:
            claims = await self.authorize(context, required)
        except AuthError as exc:
            await abort(context, exc)
        # The RPC runs in its own task with its own context copy, so the claims cannot leak
        # into another call and need no reset.
        _CLAIMS.set(claims)

    async def authorize(
        self, context: grpc.aio.ServicerContext, required: frozenset[str]
    ) -> TokenClaims:
        """Verify the call's token for scopes ``required``; consume its ``jti``."""
        token = _bearer(context.invocation_metadata())
        claims = self._verifier.verify(
            token, audience=self._config.audience, max_lifetime=self._config.max_lifetime
        )
        missing = sorted(required - claims.scopes)
        if missing:
            raise ScopeDeniedError(f"the token lacks scope(s) {', '.join(missing)}")
        if claims.cnf_thumbprint:
            peer = peer_identity(context)
            if peer is None or peer.thumbprint != claims.cnf_thumbprint:
                raise InvalidTokenError("the token is bound to another client certificate")
        # Keep the jti as long as the verifier could still accept the token.
        keep_until = claims.expires_at + self._verifier.config.leeway
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._replay.consume, claims.jti, keep_until)
        return claims
