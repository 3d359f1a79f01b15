"""mTLS for Council's gRPC servers and clients, and the gRPC edge of the auth path.

* :func:`server_credentials`: TLS that requires a client certificate chaining to the CA.
  The files are re-read when they change, because leaves live a day: a renewed server
  certificate or CA bundle takes effect on the next handshake, without a restart.
* :func:`channel_credentials`: the client side, for sidecars, agents and the CLI.
* :func:`peer_identity`: the authenticated peer's SPIFFE identity, from grpc's auth context.
* :class:`RevocationList` + :class:`RevocationInterceptor`: gRPC's TLS stack verifies the
  chain and validity dates at the handshake but knows no CRL, and an HTTP/2 connection
  outlives the moment it was checked; so every RPC's peer certificate is checked here
  against the CA-signed CRL and its own expiry.
* :func:`auth_status` / :func:`abort`: the one place :class:`~gateway.tokens.AuthError`
  becomes a gRPC status (code, message, ``google.rpc.ErrorInfo``), and :func:`wrap_handler`,
  which runs a check before any kind of handler. Both interceptors and the Tokens servicer
  use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import grpc
from cryptography import x509
from google.rpc import status_pb2

from gateway.ca import CAError, CertificateIdentity, certificate_identity, trust_domain_of
from gateway.status import abort as abort_with_status
from gateway.status import code_for, error_status
from gateway.tokens import (
    AuthError,
    CertificateRejectedError,
    InvalidRequestError,
    KeyStoreError,
    MissingCredentialError,
    ScopeDeniedError,
)

__all__ = [
    "ERROR_DOMAIN",
    "RevocationInterceptor",
    "RevocationList",
    "abort",
    "auth_status",
    "channel_credentials",
    "peer_identity",
    "server_credentials",
    "wrap_handler",
]

log = logging.getLogger(__name__)

ERROR_DOMAIN = "council.auth"
DEFAULT_RELOAD_INTERVAL = 30.0
"""Seconds between checks of certificate files and of the CRL for changes."""

# --- statuses ----------------------------------------------------------------------------

_CODES: tuple[tuple[type[AuthError], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (ScopeDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (KeyStoreError, grpc.StatusCode.UNAVAILABLE),
)


def auth_status(exc: AuthError) -> status_pb2.Status:
    """A ``google.rpc.Status`` for ``exc``: UNAUTHENTICATED unless a more specific code fits.

    The ``ErrorInfo`` reason is the error's code in capitals (``TOKEN_REPLAYED``,
    ``SCOPE_DENIED``, …), so clients can branch on it without parsing the message.
    """
    code = code_for(exc, _CODES, grpc.StatusCode.UNAUTHENTICATED)
    return error_status(code, exc.message, reason=exc.code.upper(), domain=ERROR_DOMAIN)


async def abort(context: grpc.aio.ServicerContext, exc: AuthError) -> NoReturn:
    """End the RPC with the status for ``exc``."""
    await abort_with_status(context, auth_status(exc))


Guard = Callable[[grpc.aio.ServicerContext], Awaitable[None]]


def wrap_handler(handler: grpc.RpcMethodHandler | None, guard: Guard) -> Any:
    """The same handler, with ``guard(context)`` awaited before its behaviour runs.

    The guard runs in the RPC's own task, so context variables it sets are visible to the
    servicer. It refuses a call by aborting the context.
    """
    if handler is None:
        return None
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.response_streaming:
        inner = handler.stream_stream if handler.request_streaming else handler.unary_stream

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await guard(context)
            result = inner(request, context)
            if inspect.isasyncgen(result):
                async for item in result:
                    yield item
            elif inspect.isawaitable(result):
                # A handler that writes with context.write() and returns nothing.
                await result

        if handler.request_streaming:
            return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)

    inner = handler.stream_unary if handler.request_streaming else handler.unary_unary

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await guard(context)
        result = inner(request, context)
        return await result if inspect.isawaitable(result) else result

    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
    return grpc.unary_unary_rpc_method_handler(unary, **kwargs)


# --- peer identity -----------------------------------------------------------------------


def peer_identity(context: grpc.aio.ServicerContext) -> CertificateIdentity | None:
    """The SPIFFE identity of the peer's verified client certificate; None without one.

    Raises :class:`CertificateRejectedError` for a certificate that names no SPIFFE id.
    """
    pems = context.auth_context().get("x509_pem_cert")
    if not pems:
        return None
    try:
        return certificate_identity(pems[0])
    except CAError as exc:
        raise CertificateRejectedError(f"client certificate rejected: {exc.message}") from exc


# --- revocation --------------------------------------------------------------------------


class RevocationList:
    """The revoked serials of a CRL signed by the CA, reloaded when the file changes.

    ``start()`` begins polling the file (in an executor, never on the loop); ``close()``
    stops. A CRL that fails to load or verify after start keeps the last good list in
    force (and is logged): revocations can be added by a new file, never lost by a bad one.
    """

    def __init__(
        self,
        crl_path: str | Path,
        ca_cert_path: str | Path,
        *,
        refresh_interval: float = DEFAULT_RELOAD_INTERVAL,
    ) -> None:
        self.crl_path = Path(crl_path)
        self._ca = x509.load_pem_x509_certificate(Path(ca_cert_path).read_bytes())
        self.trust_domain = trust_domain_of(self._ca)
        self._interval = refresh_interval
        self._mtime_ns = -1
        self._revoked: frozenset[int] = frozenset()
        self._task: asyncio.Task[None] | None = None
        self.reload()

    def is_revoked(self, serial: int) -> bool:
        """Whether the CA revoked the certificate with this serial."""
        return serial in self._revoked

    def reload(self) -> bool:
        """Re-read the CRL if its file changed; return whether it did. Blocking (disk)."""
        try:
            mtime = self.crl_path.stat().st_mtime_ns
        except OSError as exc:
            raise KeyStoreError(f"cannot read the CRL {self.crl_path}: {exc}") from exc
        if mtime == self._mtime_ns:
            return False
        try:
            crl = x509.load_pem_x509_crl(self.crl_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"{self.crl_path}: not a PEM CRL: {exc}") from exc
        if crl.issuer != self._ca.subject or not crl.is_signature_valid(
            self._ca.public_key()  # type: ignore[arg-type]
        ):
            raise KeyStoreError(f"{self.crl_path} is not signed by the CA")
        self._revoked = frozenset(r.serial_number for r in crl)
        self._mtime_ns = mtime
        return True

    async def start(self) -> None:
        """Poll the CRL file every ``refresh_interval`` seconds until :meth:`close`."""
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name="council-crl-watch")

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._interval)
            try:
                if await loop.run_in_executor(None, self.reload):
                    log.info("CRL reloaded: %d revoked serials", len(self._revoked))
            except KeyStoreError as exc:
                log.error("keeping the previous revocation list: %s", exc.message)

    async def close(self) -> None:
        """Stop polling; idempotent."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class RevocationInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every RPC whose client certificate is revoked, expired, foreign or missing.

    Install it first, on servers whose port requires client certificates; a refusal is
    UNAUTHENTICATED with reason ``CERTIFICATE_REJECTED`` (or ``CREDENTIAL_MISSING``).
    """

    def __init__(
        self, revocations: RevocationList, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._revocations = revocations
        self._clock = clock

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        return wrap_handler(await continuation(handler_call_details), self._check)

    async def _check(self, context: grpc.aio.ServicerContext) -> None:
        try:
            self.check(peer_identity(context))
        except AuthError as exc:
            await abort(context, exc)

    def check(self, identity: CertificateIdentity | None) -> None:
        """Raise :class:`AuthError` unless ``identity`` may call: present, ours, live."""
        if identity is None:
            raise MissingCredentialError("a client certificate is required")
        if identity.trust_domain != self._revocations.trust_domain:
            raise CertificateRejectedError(
                f"{identity.spiffe_id} is not in trust domain {self._revocations.trust_domain}"
            )
        if self._revocations.is_revoked(identity.serial):
            raise CertificateRejectedError(
                f"certificate {identity.serial:x} of {identity.spiffe_id} has been revoked"
            )
        if identity.not_after <= datetime.fromtimestamp(self._clock(), UTC):
            raise CertificateRejectedError(
                f"certificate of {identity.spiffe_id} expired at {identity.not_after.isoformat()}"
            )


# --- credentials -------------------------------------------------------------------------


def server_credentials(
    cert_path: str | Path,
    key_path: str | Path,
    ca_path: str | Path,
    *,
    reload_interval: float = DEFAULT_RELOAD_INTERVAL,
) -> grpc.ServerCredentials:
    """TLS server credentials that require client certificates issued by the CA.

    gRPC asks for the configuration at each handshake; the files are stat-ed at most every
    ``reload_interval`` seconds and re-read only when one changed.
    """
    paths = (Path(cert_path), Path(key_path), Path(ca_path))

    def read() -> grpc.ServerCertificateConfiguration:
        cert, key, ca = (p.read_bytes() for p in paths)
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def stamp() -> tuple[int, ...]:
        return tuple(os.stat(p).st_mtime_ns for p in paths)

    last_stamp, last_check = stamp(), time.monotonic()

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        nonlocal last_stamp, last_check
        now = time.monotonic()
        if now - last_check < reload_interval:
            return None
        last_check = now
        try:
            current = stamp()
            if current == last_stamp:
                return None
            config = read()
        except OSError as exc:
            # Mid-rotation (one file replaced, the other not yet) or gone: keep serving
            # with the configuration in force and look again next time.
            log.warning("keeping the current TLS configuration: %s", exc)
            return None
        last_stamp = current
        log.info("TLS certificate files changed; new handshakes use them")
        return config

    return grpc.dynamic_ssl_server_credentials(read(), fetch, require_client_authentication=True)


def channel_credentials(
    cert_path: str | Path, key_path: str | Path, ca_path: str | Path
) -> grpc.ChannelCredentials:
    """Client credentials presenting a CA-issued certificate and trusting only that CA."""
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca_path).read_bytes(),
        private_key=Path(key_path).read_bytes(),
        certificate_chain=Path(cert_path).read_bytes(),
    )
