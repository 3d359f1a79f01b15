"""``council.v1.Tokens``: a thin adapter from gRPC to :class:`~gateway.tokens.TokenService`.

Exchange authenticates the caller's long-lived credential (an API key in the
``authorization`` metadata, else the mTLS client certificate's SPIFFE id), looks it up in
the :class:`~gateway.tokens.CredentialStore` (SQLite, so in an executor) and returns a
short-lived token with the requested scopes. Errors become statuses in
:func:`gateway.mtls.auth_status`.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor

import grpc

from gateway.mtls import abort, peer_identity
from gateway.tokens import (
    API_KEY_PREFIX,
    AuthError,
    Credential,
    CredentialStore,
    InvalidRequestError,
    IssuedToken,
    MissingCredentialError,
    TokenService,
)
from proto.council.v1 import tokens_pb2, tokens_pb2_grpc

__all__ = ["TokensServicer"]


def _api_key(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    """The API key in ``authorization: ApiKey <key>`` (or ``Bearer ck_…``), if any."""
    for key, value in metadata or ():
        if key != "authorization":
            continue
        text = value.decode() if isinstance(value, bytes) else value
        scheme, _, credential = text.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() == "apikey" or credential.startswith(API_KEY_PREFIX):
            return credential
        # Trading a token for a token would let one stolen token renew itself forever.
        raise InvalidRequestError(
            "Exchange takes a long-lived credential (an API key or the client certificate),"
            " not an access token"
        )
    return None


class TokensServicer(tokens_pb2_grpc.TokensServicer):
    """Serves Exchange and Jwks; ``executor`` runs credential look-ups (None: the default)."""

    def __init__(
        self,
        service: TokenService,
        credentials: CredentialStore,
        *,
        executor: Executor | None = None,
    ) -> None:
        self._service = service
        self._credentials = credentials
        self._executor = executor

    async def Exchange(
        self, request: tokens_pb2.ExchangeRequest, context: grpc.aio.ServicerContext
    ) -> tokens_pb2.ExchangeResponse:
        try:
            issued = await self._exchange(request, context)
        except AuthError as exc:
            await abort(context, exc)
        claims = issued.claims
        return tokens_pb2.ExchangeResponse(
            access_token=issued.token,
            token_type="Bearer",
            expires_in=issued.lifetime,
            expires_at=claims.expires_at,
            scopes=sorted(claims.scopes),
            audience=claims.audience,
        )

    async def _exchange(
        self, request: tokens_pb2.ExchangeRequest, context: grpc.aio.ServicerContext
    ) -> IssuedToken:
        api_key = _api_key(context.invocation_metadata())
        peer = peer_identity(context)
        loop = asyncio.get_running_loop()
        credential: Credential
        # An API key, when present, is the credential being exchanged even over mTLS: the
        # caller chose it explicitly, and the certificate may belong to a shared sidecar.
        if api_key is not None:
            credential = await loop.run_in_executor(
                self._executor, self._credentials.authenticate_api_key, api_key
            )
        elif peer is not None:
            credential = await loop.run_in_executor(
                self._executor, self._credentials.client, peer.spiffe_id
            )
        else:
            raise MissingCredentialError(
                "no credential: present an enrolled client certificate or"
                " `authorization: ApiKey <key>`"
            )
        if request.bind_to_certificate and peer is None:
            raise InvalidRequestError("bind_to_certificate needs an mTLS client certificate")
        return self._service.exchange(
            credential,
            request.scopes,
            audience=request.audience,
            lifetime=request.lifetime_seconds,
            cnf_thumbprint=peer.thumbprint if request.bind_to_certificate and peer else "",
        )

    async def Jwks(
        self, request: tokens_pb2.JwksRequest, context: grpc.aio.ServicerContext
    ) -> tokens_pb2.JwksResponse:
        jwks = json.dumps(self._service.jwks(), separators=(",", ":"), sort_keys=True)
        return tokens_pb2.JwksResponse(jwks_json=jwks.encode())
