"""``council.v1.Admin``: operations on the gateway's state, each one decided by policy.

Every call passes two gates before it touches anything:

1. the token guard (:class:`gateway.auth_interceptor.AdminAuthInterceptor`, configured with
   :func:`method_scopes`): a verified, short-lived, one-time token carrying the method's
   ``required_scope`` from ``admin.proto``;
2. the PDP (entrypoint ``council/admin/decision``, asked through
   :class:`~pep_sidecars.pdp_client.PDPClient`) with the method, the token's claims, the
   caller's certificate identity, the posture of the token's device (read from the posture
   intake now, so a report that went stale a second ago counts) and the request's fields.

A denial is PERMISSION_DENIED whose message lists the policy's reasons, with an ErrorInfo
(reason ``POLICY_DENIED``) carrying the decision id. No decision (PDP down, unknown
entrypoint) is UNAVAILABLE: the call is refused, never waved through. A decision that
demands an obligation this service cannot honour is FAILED_PRECONDITION, and nothing runs.

This module is the one place admin errors become gRPC statuses (domain ``council.admin``);
errors of the token path keep :func:`gateway.mtls.auth_status`. Every store blocks on
SQLite or the disk, so operations run in the executor.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, NoReturn, TypeVar

import grpc
from google.rpc import status_pb2

from gateway import mtls
from gateway.auth_interceptor import current_claims
from gateway.ca import CAError, parse_spiffe_id
from gateway.posture import PostureError, PostureIntake
from gateway.posture_servicer import status_message
from gateway.status import abort, error_status
from gateway.tokens import (
    API_KEY_PREFIX,
    AuthError,
    CredentialStore,
    InvalidCredentialError,
    KeyRing,
    TokenClaims,
)
from gateway.usage_intake import (
    InvalidUsageRequestError,
    Quota,
    UsageError,
    UsageStore,
    check_name,
)
from pep_sidecars.pdp_client import PDPClient, PDPDecision, PDPUnavailable
from proto.council.v1 import admin_pb2, admin_pb2_grpc

__all__ = [
    "ENTRYPOINT",
    "ERROR_DOMAIN",
    "SERVICE_NAME",
    "SUPPORTED_OBLIGATIONS",
    "AdminError",
    "AdminServicer",
    "InvalidAdminRequestError",
    "NotFoundError",
    "ObligationUnsupportedError",
    "PolicyDeniedError",
    "PolicyUnavailableError",
    "StateUnavailableError",
    "check_obligations",
    "enrolled_devices",
    "method_scopes",
]

log = logging.getLogger(__name__)

ENTRYPOINT = "council/admin/decision"
ERROR_DOMAIN = "council.admin"
SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name
SUPPORTED_OBLIGATIONS = frozenset({"cache_ttl_seconds"})
"""Obligations this service honours (the decision cache does); any other refuses the call."""
MAX_SUBJECT = 200

T = TypeVar("T")


def method_scopes() -> dict[str, frozenset[str]]:
    """Full method name → the scope ``admin.proto`` requires, for the token guard.

    Raises ValueError for a method without a ``required_scope`` option, so a method added
    later cannot go unguarded.
    """
    scopes = {}
    for method in admin_pb2.DESCRIPTOR.services_by_name["Admin"].methods:
        scope = method.GetOptions().Extensions[admin_pb2.required_scope]
        if not scope:
            raise ValueError(f"{method.full_name} declares no (council.v1.required_scope)")
        scopes[f"/{SERVICE_NAME}/{method.name}"] = frozenset({scope})
    return scopes


# --- errors ------------------------------------------------------------------------------


class AdminError(Exception):
    """Base class of the admin service's refusals; ``code`` is stable."""

    code = "admin_error"
    status = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata


class InvalidAdminRequestError(AdminError):
    """A request field is malformed (a tenant name, a SPIFFE id, limits, a window)."""

    code = "invalid_request"
    status = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(AdminError):
    """The quota or API key the request names does not exist."""

    code = "not_found"
    status = grpc.StatusCode.NOT_FOUND


class PolicyDeniedError(AdminError):
    """The policy denied the call; the message carries its reasons."""

    code = "policy_denied"
    status = grpc.StatusCode.PERMISSION_DENIED


class PolicyUnavailableError(AdminError):
    """No decision could be obtained from the PDP; the call is refused (fail closed)."""

    code = "policy_unavailable"
    status = grpc.StatusCode.UNAVAILABLE


class ObligationUnsupportedError(AdminError):
    """The policy allowed the call on a condition this service cannot meet."""

    code = "obligation_unsupported"
    status = grpc.StatusCode.FAILED_PRECONDITION


class StateUnavailableError(AdminError):
    """A store of the gateway (usage, posture) cannot be read or written right now."""

    code = "state_unavailable"
    status = grpc.StatusCode.UNAVAILABLE


def _rpc_status(exc: AdminError) -> status_pb2.Status:
    return error_status(
        exc.status, exc.message, reason=exc.code.upper(), domain=ERROR_DOMAIN, metadata=exc.metadata
    )


async def _abort(context: grpc.aio.ServicerContext, exc: AdminError) -> NoReturn:
    await abort(context, _rpc_status(exc))


def check_obligations(decision: PDPDecision, method: str) -> None:
    """Raise :class:`ObligationUnsupportedError` if the decision demands what we cannot do."""
    unsupported = sorted(set(decision.obligations) - SUPPORTED_OBLIGATIONS)
    if unsupported:
        raise ObligationUnsupportedError(
            f"{method} allowed only with obligation(s) {', '.join(unsupported)}, which the"
            " admin service cannot honour; refused",
            decision_id=decision.decision_id,
        )


# --- the device registry -----------------------------------------------------------------


def enrolled_devices(intake: PostureIntake, tenant: str = "") -> list[str]:
    """Ids of the devices enrolled for ``tenant`` ("" for every tenant), sorted. Blocking.

    :class:`~gateway.posture.PostureIntake` has no listing of its own, so this reads its
    ``devices`` table through a separate read-only connection: WAL lets it read beside the
    intake's writer without taking the intake's lock or any write lock.
    """
    uri = f"{intake.config.db_path.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        rows = conn.execute(
            "SELECT device_id FROM devices WHERE ? = '' OR tenant = ? ORDER BY device_id",
            [tenant, tenant],
        ).fetchall()
    finally:
        conn.close()
    return [device_id for (device_id,) in rows]


# --- the servicer ------------------------------------------------------------------------


def _tenant(value: str, what: str = "tenant") -> str:
    try:
        return check_name(value, what)
    except InvalidUsageRequestError as exc:
        raise InvalidAdminRequestError(exc.message) from exc


class AdminServicer(admin_pb2_grpc.AdminServicer):
    """The admin operations, each behind the token guard and a policy decision.

    The servicer owns none of the stores or the PDP client; whoever made them closes them.
    """

    def __init__(
        self,
        *,
        credentials: CredentialStore,
        keys: KeyRing,
        intake: PostureIntake,
        usage: UsageStore,
        pdp: PDPClient,
        executor: Executor,
        trust_domain: str,
        entrypoint: str = ENTRYPOINT,
    ) -> None:
        self._credentials = credentials
        self._keys = keys
        self._intake = intake
        self._usage = usage
        self._pdp = pdp
        self._executor = executor
        self._trust_domain = trust_domain
        self._entrypoint = entrypoint

    # --- the gate ---------------------------------------------------------------------

    async def _blocking(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _device(self, claims: TokenClaims) -> dict[str, Any] | None:
        """The policy's view of the token's device, read now; None without a device."""
        if not claims.device_id:
            return None
        status = await self._blocking(lambda: self._intake.posture_for(claims.device_id))
        return {
            "id": claims.device_id,
            "enrolled": status.enrolled,
            "reported": status.reported,
            "tenant": status.tenant,
            "posture": status.to_policy_input(),
        }

    async def _authorize(
        self,
        context: grpc.aio.ServicerContext,
        method: str,
        claims: TokenClaims,
        fields: dict[str, Any],
    ) -> PDPDecision:
        """Ask the policy about this call; raise an :class:`AdminError` unless allowed."""
        full = f"/{SERVICE_NAME}/{method}"
        peer = mtls.peer_identity(context)
        doc = {
            "method": full,
            "token": {**claims.to_dict(), "verified": True},
            "peer": None
            if peer is None
            else {
                "spiffe_id": peer.spiffe_id,
                "trust_domain": peer.trust_domain,
                "kind": peer.kind,
                "name": peer.name,
            },
            "device": await self._device(claims),
            "request": fields,
        }
        try:
            decision = await self._pdp.decide(self._entrypoint, doc)
        except PDPUnavailable as exc:
            log.error("admin %s by %s refused: no decision: %s", full, claims.subject, exc)
            raise PolicyUnavailableError(
                f"{full} refused: no policy decision could be obtained ({exc.message})",
                method=full,
            ) from exc
        if not decision.allow:
            reasons = "; ".join(decision.reasons) or "the policy gave no reason"
            log.warning(
                "admin %s by %s denied (decision %s): %s",
                full,
                claims.subject,
                decision.decision_id,
                reasons,
            )
            raise PolicyDeniedError(
                f"{full} denied by policy: {reasons}",
                decision_id=decision.decision_id,
                policy_revision=decision.revision,
                method=full,
            )
        check_obligations(decision, full)
        log.info(
            "admin %s by %s (tenant %s) allowed, decision %s",
            full,
            claims.subject,
            claims.tenant,
            decision.decision_id,
        )
        return decision

    async def _serve(
        self,
        context: grpc.aio.ServicerContext,
        method: str,
        fields: dict[str, Any],
        operation: Callable[[TokenClaims], T],
    ) -> T:
        """Authorize, then run the blocking ``operation`` in the executor."""
        try:
            claims = current_claims()
            await self._authorize(context, method, claims, fields)
            return await self._blocking(lambda: operation(claims))
        except AdminError as exc:
            await _abort(context, exc)
        except AuthError as exc:
            # Credential and key store errors keep the token path's statuses.
            await mtls.abort(context, exc)
        except InvalidUsageRequestError as exc:
            await _abort(context, InvalidAdminRequestError(exc.message))
        except (UsageError, PostureError) as exc:
            await _abort(context, StateUnavailableError(exc.message))

    # --- credentials and keys ---------------------------------------------------------

    async def CreateApiKey(
        self, request: admin_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.CreateApiKeyResponse:
        def create(claims: TokenClaims) -> admin_pb2.CreateApiKeyResponse:
            if not 0 < len(request.subject) <= MAX_SUBJECT:
                raise InvalidAdminRequestError(f"subject must be 1-{MAX_SUBJECT} characters")
            _tenant(request.tenant)
            api_key = self._credentials.create_api_key(
                request.subject, request.tenant, request.scopes, device_id=request.device_id
            )
            key_id = api_key.removeprefix(API_KEY_PREFIX).partition("_")[0]
            log.info(
                "API key %s created for %s in tenant %s by %s",
                key_id,
                request.subject,
                request.tenant,
                claims.subject,
            )
            return admin_pb2.CreateApiKeyResponse(api_key=api_key, key_id=key_id)

        fields = {
            "tenant": request.tenant,
            "subject": request.subject,
            "scopes": list(request.scopes),
            "device_id": request.device_id,
        }
        return await self._serve(context, "CreateApiKey", fields, create)

    async def RevokeApiKey(
        self, request: admin_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.RevokeApiKeyResponse:
        def revoke(claims: TokenClaims) -> admin_pb2.RevokeApiKeyResponse:
            try:
                self._credentials.revoke_api_key(request.key_id)
            except InvalidCredentialError as exc:
                raise NotFoundError(exc.message, key_id=request.key_id[:64]) from exc
            log.info("API key %s revoked by %s", request.key_id, claims.subject)
            return admin_pb2.RevokeApiKeyResponse(key_id=request.key_id)

        return await self._serve(context, "RevokeApiKey", {"key_id": request.key_id}, revoke)

    async def EnrollClient(
        self, request: admin_pb2.EnrollClientRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.EnrollClientResponse:
        def enroll(claims: TokenClaims) -> admin_pb2.EnrollClientResponse:
            try:
                trust_domain, _kind, _name = parse_spiffe_id(request.spiffe_id)
            except CAError as exc:
                raise InvalidAdminRequestError(exc.message) from exc
            if trust_domain != self._trust_domain:
                raise InvalidAdminRequestError(
                    f"{request.spiffe_id} is not in this gateway's trust domain"
                    f" {self._trust_domain}"
                )
            _tenant(request.tenant)
            self._credentials.enroll_client(
                request.spiffe_id, request.tenant, request.scopes, device_id=request.device_id
            )
            log.info(
                "client %s enrolled in tenant %s by %s",
                request.spiffe_id,
                request.tenant,
                claims.subject,
            )
            return admin_pb2.EnrollClientResponse(spiffe_id=request.spiffe_id)

        fields = {
            "tenant": request.tenant,
            "spiffe_id": request.spiffe_id,
            "scopes": list(request.scopes),
            "device_id": request.device_id,
        }
        return await self._serve(context, "EnrollClient", fields, enroll)

    async def RotateSigningKey(
        self, request: admin_pb2.RotateSigningKeyRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.RotateSigningKeyResponse:
        def rotate(claims: TokenClaims) -> admin_pb2.RotateSigningKeyResponse:
            key = self._keys.rotate()
            log.info("token signing key rotated to %s by %s", key.kid, claims.subject)
            return admin_pb2.RotateSigningKeyResponse(
                kid=key.kid, verifying_kids=[k.kid for k in self._keys.verifying_keys()]
            )

        return await self._serve(context, "RotateSigningKey", {}, rotate)

    # --- quotas and usage -------------------------------------------------------------

    async def SetQuota(
        self, request: admin_pb2.SetQuotaRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.Quota:
        def set_quota(claims: TokenClaims) -> admin_pb2.Quota:
            quota = self._usage.set_quota(
                request.tenant,
                request.feature,
                request.soft_limit,
                request.hard_limit,
                unit=request.unit,
                updated_by=claims.subject,
            )
            log.info(
                "quota of %s for %s set to soft %g / hard %g %s by %s",
                quota.tenant,
                quota.feature,
                quota.soft_limit,
                quota.hard_limit,
                quota.unit,
                claims.subject,
            )
            return _quota_message(quota)

        fields = {
            "tenant": request.tenant,
            "feature": request.feature,
            "soft_limit": request.soft_limit,
            "hard_limit": request.hard_limit,
            "unit": request.unit,
        }
        return await self._serve(context, "SetQuota", fields, set_quota)

    async def GetQuota(
        self, request: admin_pb2.GetQuotaRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.Quota:
        def get_quota(_claims: TokenClaims) -> admin_pb2.Quota:
            quota = self._usage.get_quota(request.tenant, request.feature)
            if quota is None:
                raise NotFoundError(
                    f"no quota is set for tenant {request.tenant!r:.60} and feature"
                    f" {request.feature!r:.60}"
                )
            return _quota_message(quota)

        fields = {"tenant": request.tenant, "feature": request.feature}
        return await self._serve(context, "GetQuota", fields, get_quota)

    async def GetUsage(
        self, request: admin_pb2.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetUsageResponse:
        def get_usage(_claims: TokenClaims) -> admin_pb2.GetUsageResponse:
            if request.tenant:
                _tenant(request.tenant)
            counts = self._usage.counts(
                tenant=request.tenant,
                feature=request.feature,
                since_ns=request.since_ns,
                until_ns=request.until_ns,
            )
            return admin_pb2.GetUsageResponse(
                counts=[
                    admin_pb2.UsageCount(
                        tenant=c.tenant,
                        feature=c.feature,
                        unit=c.unit,
                        events=c.events,
                        allowed=c.allowed,
                        denied=c.denied,
                        quantity=c.quantity,
                    )
                    for c in counts
                ]
            )

        fields = {
            "tenant": request.tenant,
            "feature": request.feature,
            "since_ns": request.since_ns,
            "until_ns": request.until_ns,
        }
        return await self._serve(context, "GetUsage", fields, get_usage)

    # --- devices ----------------------------------------------------------------------

    async def ListDevices(
        self, request: admin_pb2.ListDevicesRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListDevicesResponse:
        def list_devices(_claims: TokenClaims) -> admin_pb2.ListDevicesResponse:
            if request.tenant:
                _tenant(request.tenant)
            try:
                ids = enrolled_devices(self._intake, request.tenant)
            except sqlite3.Error as exc:
                raise StateUnavailableError(f"cannot read the device registry: {exc}") from exc
            return admin_pb2.ListDevicesResponse(
                devices=[status_message(self._intake.posture_for(i)) for i in ids]
            )

        return await self._serve(context, "ListDevices", {"tenant": request.tenant}, list_devices)


def _quota_message(quota: Quota) -> admin_pb2.Quota:
    return admin_pb2.Quota(
        tenant=quota.tenant,
        feature=quota.feature,
        soft_limit=quota.soft_limit,
        hard_limit=quota.hard_limit,
        unit=quota.unit,
        updated_at_ns=quota.updated_at_ns,
        updated_by=quota.updated_by,
    )
