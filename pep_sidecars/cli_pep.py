"""The CLI enforcement point: ask the PDP before a command runs, with token and posture.

Before ``council exec`` (or a gated ``council`` admin sub-command) runs anything it builds
the policy input of ``council/cli/decision`` (see ``rego/council/cli/cli.rego``)::

    {feature, command, argv, user, host,
     token:  {present, verified, error?, claims},
     device: {id, source, error?, posture}}

* The token (``--token``, ``--token-file`` or ``$COUNCIL_TOKEN``) is verified against the
  gateway's JWK Set (``council.v1.Tokens/Jwks``) or a JWKS file. When there is nothing to
  verify it with, or verification fails, its claims still go in, decoded but marked
  ``verified: false`` with the reason in ``error``; the policy refuses such tokens for
  admin features. A token bound to a client certificate (``cnf.x5t#S256``) verifies only
  when this process presents that certificate (``--tls-cert``).
* The device posture comes fresh from the gateway (``council.v1.Posture/Status``), or from
  a posture file, which the policy treats as self-reported.

Facts that cannot be had (gateway down, device unknown) become ``error`` members, never
exceptions: the policy decides what they mean, and denies with a reason. Only the PDP
being unreachable stops everything: :class:`DecisionUnavailableError` (fail closed).

:func:`authorize_cli` is the one call a command makes: it gathers, asks, and raises
:class:`CLIDeniedError` (with the policy's reasons and the decision id) or
:class:`ObligationError` (the policy asks for something the caller cannot do) unless the
command may proceed. :class:`JwksVerifier` is shared with the connector sidecar.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import json
import os
import socket
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.tokens import ALGORITHMS, DEFAULT_LEEWAY, TOKEN_TYPE
from pep_sidecars.pdp_client import (
    PDPClient,
    PDPClientConfig,
    PDPDecision,
    PDPUnavailable,
    TLSFiles,
)
from pep_sidecars.usage import UsageReporter
from proto.council.v1 import posture_pb2, posture_pb2_grpc, tokens_pb2, tokens_pb2_grpc

__all__ = [
    "ALWAYS_HONOURED",
    "DEFAULT_AUDIENCE",
    "DEFAULT_ISSUER",
    "ENTRYPOINT",
    "TOKEN_ENV",
    "CLIContext",
    "CLIDeniedError",
    "CLIPEPError",
    "DecisionUnavailableError",
    "JwksVerifier",
    "ObligationError",
    "TokenRejectedError",
    "authorize_cli",
    "build_input",
    "certificate_thumbprint",
    "check_obligations",
    "decide_cli",
    "device_input",
    "fetch_jwks",
    "read_token",
    "record_usage",
    "token_input",
]

ENTRYPOINT = "council/cli/decision"
TOKEN_ENV = "COUNCIL_TOKEN"
DEFAULT_AUDIENCE = "council"
DEFAULT_ISSUER = "council-gateway"
GATEWAY_TIMEOUT = 5.0
ALWAYS_HONOURED = frozenset({"cache_ttl_seconds"})
"""Obligations every caller honours: the PDP client applies the cache TTL itself."""


# --- errors -------------------------------------------------------------------------------


class CLIPEPError(Exception):
    """Base class of the CLI enforcement point's errors; ``code`` is stable."""

    code = "cli_pep_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CLIDeniedError(CLIPEPError):
    """The policy denied the command; ``reasons`` say why, ``decision_id`` finds the log entry."""

    code = "denied"

    def __init__(self, feature: str, decision: PDPDecision) -> None:
        reasons = decision.reasons or ("the policy gave no reason",)
        super().__init__(
            f"feature '{feature}' denied by policy (decision {decision.decision_id}): "
            + "; ".join(reasons)
        )
        self.feature = feature
        self.decision = decision
        self.reasons = reasons
        self.decision_id = decision.decision_id


class DecisionUnavailableError(CLIPEPError):
    """The PDP could not be asked; the command must not run (fail closed)."""

    code = "pdp_unavailable"


class ObligationError(CLIPEPError):
    """The policy allowed the command on conditions this caller cannot honour."""

    code = "obligation_unsupported"

    def __init__(self, message: str, decision: PDPDecision) -> None:
        super().__init__(message)
        self.decision = decision


class TokenRejectedError(CLIPEPError):
    """A token failed verification against the JWK Set (the message says which check)."""

    code = "token_invalid"


# --- token verification -------------------------------------------------------------------


class JwksVerifier:
    """Verifies the gateway's access tokens against its published JWK Set.

    Checks what :class:`gateway.tokens.TokenVerifier` checks, minus the lifetime ceiling,
    which the policies judge per feature: ``typ``, a known ``kid`` whose ``alg`` matches,
    the signature, issuer, audience, ``exp``/``nbf``/``iat`` (with leeway), required
    claims, and certificate binding. Immutable; safe from any thread.
    """

    def __init__(
        self,
        jwks: Mapping[str, Any],
        *,
        audience: str = DEFAULT_AUDIENCE,
        issuer: str = DEFAULT_ISSUER,
        leeway: float = DEFAULT_LEEWAY,
    ) -> None:
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        keys: dict[str, tuple[str, Any]] = {}
        for entry in jwks.get("keys", ()):
            kid, alg = entry.get("kid"), entry.get("alg")
            if not isinstance(kid, str) or alg not in ALGORITHMS:
                continue  # keys for other uses or algorithms never verify our tokens
            try:
                keys[kid] = (alg, jwt.PyJWK(entry, algorithm=alg).key)
            except jwt.PyJWKError:
                continue
        self._keys = keys

    @property
    def kids(self) -> frozenset[str]:
        """Ids of the usable keys."""
        return frozenset(self._keys)

    def knows(self, token: str) -> bool:
        """Whether the token's ``kid`` is one of this set's keys (False if unreadable)."""
        try:
            return str(jwt.get_unverified_header(token).get("kid", "")) in self._keys
        except jwt.DecodeError:
            return False

    def verify(self, token: str, *, client_thumbprint: str | None = None) -> dict[str, Any]:
        """The verified claims; :class:`TokenRejectedError` naming the failed check.

        ``client_thumbprint`` is the presenter's certificate (base64url SHA-256 of its DER);
        a certificate-bound token verifies only with the same one.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise TokenRejectedError(f"not a JWT: {exc}") from exc
        if header.get("typ") != TOKEN_TYPE:
            raise TokenRejectedError(f"not a Council access token (typ must be {TOKEN_TYPE})")
        entry = self._keys.get(str(header.get("kid", "")))
        if entry is None:
            raise TokenRejectedError("signed by a key the gateway does not publish")
        alg, key = entry
        if header.get("alg") != alg:
            raise TokenRejectedError(f"algorithm must be {alg}")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejectedError("the token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenRejectedError(f"invalid token: {exc}") from exc
        if not all(isinstance(claims.get(k), str) for k in ("sub", "tenant", "scope", "jti")):
            raise TokenRejectedError("sub, tenant, scope and jti must be strings")
        cnf = claims.get("cnf") or {}
        bound = cnf.get("x5t#S256") if isinstance(cnf, dict) else None
        if bound and bound != client_thumbprint:
            raise TokenRejectedError(
                "the token is bound to a client certificate this caller does not present"
            )
        return claims


def certificate_thumbprint(cert_pem: bytes) -> str:
    """RFC 8705 ``x5t#S256`` of a PEM certificate: base64url SHA-256 of its DER."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def _unverified_claims(token: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return {}
    return claims if isinstance(claims, dict) else {}


def token_input(
    token: str | None,
    verifier: JwksVerifier | None,
    *,
    client_thumbprint: str | None = None,
    unavailable: str = "",
) -> dict[str, Any]:
    """The ``input.token`` document; ``unavailable`` says why there is no verifier."""
    if not token:
        return {"present": False, "verified": False, "claims": {}}
    if verifier is None:
        why = unavailable or "no JWK Set to verify it with (pass --gateway or --jwks)"
        return {
            "present": True,
            "verified": False,
            "error": why,
            "claims": _unverified_claims(token),
        }
    try:
        claims = verifier.verify(token, client_thumbprint=client_thumbprint)
    except TokenRejectedError as exc:
        return {
            "present": True,
            "verified": False,
            "error": exc.message,
            "claims": _unverified_claims(token),
        }
    return {"present": True, "verified": True, "claims": claims}


def read_token(token: str | None, token_file: Path | None) -> str | None:
    """The token from the flag, the file, or ``$COUNCIL_TOKEN`` (first given wins).

    Raises ``OSError`` when the file cannot be read.
    """
    if token:
        return token.strip()
    if token_file is not None:
        return token_file.read_text().strip() or None
    return os.environ.get(TOKEN_ENV, "").strip() or None


# --- facts from the gateway ---------------------------------------------------------------


def _rpc_error(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"


async def fetch_jwks(channel: grpc.aio.Channel, *, timeout: float = GATEWAY_TIMEOUT) -> dict:
    """The gateway's JWK Set. Raises ``grpc.aio.AioRpcError`` or ``ValueError``."""
    reply = await tokens_pb2_grpc.TokensStub(channel).Jwks(
        tokens_pb2.JwksRequest(), timeout=timeout
    )
    jwks = json.loads(reply.jwks_json)
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError("the gateway's JWKS is not a JWK Set")
    return jwks


def _posture_document(status: posture_pb2.PostureStatus) -> dict[str, Any]:
    """A ``PostureStatus`` message in the shape of ``PostureStatus.to_policy_input()``."""
    return {
        **dict(status.checks),
        "fresh": status.fresh,
        "compliant": status.compliant,
        "failed": list(status.failed),
        "reasons": list(status.reasons),
        "age_seconds": status.age_seconds if status.HasField("age_seconds") else None,
    }


async def device_input(
    device_id: str | None,
    *,
    channel: grpc.aio.Channel | None,
    posture_file: Path | None = None,
    timeout: float = GATEWAY_TIMEOUT,
) -> dict[str, Any]:
    """The ``input.device`` document (``{}`` when no device is named).

    A posture file holds either a ``to_policy_input()`` document or
    ``{"device_id", "posture"}``; it is marked ``source: file`` (self-reported).
    """
    if posture_file is not None:
        try:
            doc = json.loads(posture_file.read_text())
        except (OSError, ValueError) as exc:
            return {"id": device_id or "", "source": "file", "error": f"{posture_file}: {exc}"}
        if not isinstance(doc, dict):
            return {"id": device_id or "", "source": "file", "error": "not a JSON object"}
        posture = doc.get("posture", doc)
        return {
            "id": device_id or str(doc.get("device_id", "")),
            "source": "file",
            "posture": posture,
        }
    if not device_id:
        return {}
    if channel is None:
        return {
            "id": device_id,
            "source": "none",
            "error": "no gateway to ask for the device's posture (--gateway)",
        }
    stub = posture_pb2_grpc.PostureStub(channel)
    try:
        status = await stub.Status(posture_pb2.StatusRequest(device_id=device_id), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return {"id": device_id, "source": "gateway", "error": _rpc_error(exc)}
    return {"id": device_id, "source": "gateway", "posture": _posture_document(status)}


# --- the request ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CLIContext:
    """Where the CLI enforcement point gets its facts and decisions.

    Attributes:
        pdp: ``host:port`` of the PDP's gRPC listener.
        gateway: ``host:port`` of the gateway (JWKS, posture, usage); None: none of them.
        jwks_file: a JWK Set file, used instead of asking the gateway.
        tls: client certificate, key and CA for the gateway channel (the gateway always
            requires mTLS).
        pdp_tls: the same for the PDP channel, when the PDP sits behind mTLS; None for a
            PDP reached in plaintext on a private address.
        audience / issuer: what verified tokens must name.
        timeout: seconds per gateway call.
    """

    pdp: str = "127.0.0.1:9191"
    gateway: str | None = None
    jwks_file: Path | None = None
    tls: TLSFiles | None = None
    pdp_tls: TLSFiles | None = None
    audience: str = DEFAULT_AUDIENCE
    issuer: str = DEFAULT_ISSUER
    timeout: float = GATEWAY_TIMEOUT

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")

    def channel(self, target: str) -> grpc.aio.Channel:
        """A channel to ``target``: mTLS when ``tls`` is set."""
        if self.tls is not None:
            return grpc.aio.secure_channel(target, self.tls.credentials())
        return grpc.aio.insecure_channel(target)


async def _verifier(
    context: CLIContext, channel: grpc.aio.Channel | None
) -> tuple[JwksVerifier | None, str]:
    """A verifier and, when there is none, why."""
    try:
        if context.jwks_file is not None:
            jwks = json.loads(context.jwks_file.read_text())
        elif channel is not None:
            jwks = await fetch_jwks(channel, timeout=context.timeout)
        else:
            return None, ""
    except grpc.aio.AioRpcError as exc:
        return None, f"the gateway's JWKS could not be fetched ({_rpc_error(exc)})"
    except (OSError, ValueError) as exc:
        return None, f"the JWK Set could not be read ({exc})"
    return JwksVerifier(jwks, audience=context.audience, issuer=context.issuer), ""


async def build_input(
    feature: str,
    argv: Sequence[str],
    *,
    context: CLIContext,
    token: str | None = None,
    device_id: str | None = None,
    posture_file: Path | None = None,
) -> dict[str, Any]:
    """The ``council/cli/decision`` input for running ``argv`` as ``feature``."""
    thumbprint = None
    if context.tls is not None:
        # An unparsable certificate binds nothing; the channels using it fail on their own.
        with contextlib.suppress(ValueError):
            thumbprint = certificate_thumbprint(context.tls.cert.read_bytes())
    channel = context.channel(context.gateway) if context.gateway else None
    try:
        verifier, unavailable = await _verifier(context, channel)
        device = await device_input(
            device_id, channel=channel, posture_file=posture_file, timeout=context.timeout
        )
    finally:
        if channel is not None:
            await channel.close()
    doc: dict[str, Any] = {
        "feature": feature,
        "command": argv[0] if argv else "",
        "argv": list(argv),
        "user": getpass.getuser(),
        "host": socket.gethostname(),
        "token": token_input(
            token, verifier, client_thumbprint=thumbprint, unavailable=unavailable
        ),
    }
    if device:
        doc["device"] = device
    return doc


def check_obligations(decision: PDPDecision, honoured: Collection[str]) -> None:
    """Raise :class:`ObligationError` if the decision obliges anything not in ``honoured``."""
    unknown = sorted(set(decision.obligations) - set(honoured) - ALWAYS_HONOURED)
    if unknown:
        raise ObligationError(
            f"the policy requires {', '.join(unknown)} (decision {decision.decision_id}),"
            " which this command cannot honour; it does not run",
            decision,
        )


async def decide_cli(
    feature: str,
    input_doc: Mapping[str, Any],
    *,
    context: CLIContext,
    pdp: PDPClient | None = None,
) -> PDPDecision:
    """Ask the PDP; :class:`DecisionUnavailableError` when it cannot be asked.

    ``pdp`` reuses a client; without one, a client is opened and closed here.
    """
    client = pdp or PDPClient(PDPClientConfig(target=context.pdp, tls=context.pdp_tls))
    try:
        return await client.decide(ENTRYPOINT, input_doc)
    except PDPUnavailable as exc:
        raise DecisionUnavailableError(
            f"{exc.message}; refusing to run '{feature}' without a decision"
        ) from exc
    finally:
        if pdp is None:
            await client.close()


async def authorize_cli(
    feature: str,
    *,
    context: CLIContext,
    argv: Sequence[str] = (),
    token: str | None = None,
    device_id: str | None = None,
    posture_file: Path | None = None,
    honoured: Collection[str] = (),
    pdp: PDPClient | None = None,
    usage: UsageReporter | None = None,
) -> PDPDecision:
    """Ask whether ``feature`` may run; return the allowing decision or raise.

    Raises :class:`DecisionUnavailableError` when the PDP cannot be asked,
    :class:`CLIDeniedError` on a denial and :class:`ObligationError` when the decision
    carries obligations outside ``honoured`` (e.g. ``record_session`` for a command that
    cannot run recorded). ``usage`` records the decision as a usage event of feature
    ``cli:<feature>``.
    """
    input_doc = await build_input(
        feature, argv, context=context, token=token, device_id=device_id, posture_file=posture_file
    )
    decision = await decide_cli(feature, input_doc, context=context, pdp=pdp)
    if usage is not None:
        record_usage(usage, feature, input_doc, decision)
    if not decision.allow:
        raise CLIDeniedError(feature, decision)
    check_obligations(decision, honoured)
    return decision


def record_usage(
    usage: UsageReporter,
    feature: str,
    input_doc: Mapping[str, Any],
    decision: PDPDecision,
    **attributes: Any,
) -> str:
    """Queue the usage event of one CLI decision; returns the event id."""
    claims = input_doc.get("token", {}).get("claims", {})
    return usage.record(
        feature=f"cli:{feature}",
        tenant=str(claims.get("tenant", "")),
        subject=str(claims.get("sub") or input_doc.get("user", "")),
        allowed=decision.allow,
        decision_id=decision.decision_id,
        attributes={"command": input_doc.get("command", ""), **attributes},
    )
