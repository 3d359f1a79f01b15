"""``council gateway`` (run the gateway) and ``council admin`` (call its admin API).

    council gateway serve --grpc HOST:PORT --http HOST:PORT --state DIR --ca DIR
                          --pdp HOST:PORT [--trust-domain TD] [--cert F --key F]
    council gateway bootstrap --state DIR --spiffe-id ID --tenant T --scope S ...
                              [--device-id D]

    council admin [--gateway HOST:PORT] --ca-cert F --cert F --key F [--api-key KEY]
        quota set --tenant T --feature F --soft N --hard N [--unit U]
        quota get --tenant T --feature F
        apikey create --subject S --tenant T --scope S ... [--device-id D]
        apikey revoke KEY_ID
        client enroll --spiffe-id ID --tenant T --scope S ... [--device-id D]
        keys rotate
        devices list [--tenant T]
        usage [--tenant T] [--feature F] [--since 24h]

``serve`` prints one line with the ports it bound (port 0 picks free ones) and stops
gracefully on SIGINT/SIGTERM. ``bootstrap`` writes straight into the state directory, with
no gateway running or none reachable yet: it is how the first operator's certificate
identity gets its admin scopes (whoever can write the state directory owns the gateway
anyway). Every ``council admin`` command exchanges the caller's mTLS identity (or
``--api-key`` / ``$COUNCIL_API_KEY``) for a one-time token bound to the certificate,
carrying just the scope the method needs, and makes the call with it. Exit codes: 0 done,
1 refused or failed (the message says why; a policy denial lists the policy's reasons and
the decision id), 2 bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_GATEWAY_GRPC = "127.0.0.1:7443"
DEFAULT_GATEWAY_HTTP = "127.0.0.1:7080"
RPC_TIMEOUT_SECONDS = 10.0
API_KEY_ENV = "COUNCIL_API_KEY"


# --- council gateway ---------------------------------------------------------------------


def cmd_gateway_serve(args: argparse.Namespace) -> int:
    """Run the gateway until SIGINT/SIGTERM."""
    import asyncio
    import logging

    from gateway.gateway_server import GatewayConfig, GatewayError, serve_forever

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if (args.cert is None) != (args.key is None):
        print("error: --cert and --key go together", file=sys.stderr)
        return EXIT_USAGE
    try:
        thresholds = _posture_profile(args.posture_profile)
        config = GatewayConfig(
            state=Path(args.state),
            ca_dir=Path(args.ca),
            pdp=args.pdp,
            grpc_addr=args.grpc,
            http_addr=args.http,
            trust_domain=args.trust_domain,
            cert=Path(args.cert) if args.cert else None,
            key=Path(args.key) if args.key else None,
            posture_max_age_seconds=args.posture_max_age,
            thresholds=thresholds,
            pdp_timeout=args.pdp_timeout,
            grace=args.grace,
        )
    except (ValueError, TypeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_forever(config))
    except GatewayError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def _posture_profile(path: str | None) -> Any:
    """Compliance thresholds from a JSON file (fields of ComplianceThresholds), or defaults."""
    from gateway.posture import ComplianceThresholds

    if path is None:
        return ComplianceThresholds()
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"posture profile {path} must be a JSON object")
    return ComplianceThresholds(**doc)


def cmd_gateway_bootstrap(args: argparse.Namespace) -> int:
    """Enroll an mTLS identity for token exchange directly in the state directory."""
    from gateway.ca import CAError, parse_spiffe_id
    from gateway.tokens import AuthError, CredentialStore

    try:
        parse_spiffe_id(args.spiffe_id)
        store = CredentialStore(Path(args.state) / "credentials.db")
        try:
            store.enroll_client(args.spiffe_id, args.tenant, args.scope, device_id=args.device_id)
        finally:
            store.close()
    except (CAError, AuthError) as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAIL
    device = f", device {args.device_id}" if args.device_id else ""
    print(
        f"enrolled {args.spiffe_id} in tenant {args.tenant} with scopes"
        f" {' '.join(args.scope)}{device}"
    )
    return EXIT_OK


# --- council admin -----------------------------------------------------------------------


class AdminCallError(Exception):
    """An admin call was refused or failed; ``message`` is what the user reads."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _refusal(exc: Any) -> str:
    """A refused call as the user should read it: code, the server's words, decision id."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    text = f"{exc.code().name}: {exc.details()}"
    status = rpc_status.from_call(exc)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.metadata.get("decision_id"):
            text += f"\ndecision: {info.metadata['decision_id']}"
    return text


def admin_call(args: argparse.Namespace, method: str, request: Any) -> Any:
    """Exchange for a one-time token with ``method``'s scope, then call ``method``.

    Raises :class:`AdminCallError` with a readable message when either step is refused.
    """
    import grpc

    from gateway.admin_servicer import SERVICE_NAME, method_scopes
    from gateway.gateway_server import ADMIN_AUDIENCE
    from gateway.mtls import channel_credentials
    from proto.council.v1 import admin_pb2_grpc, tokens_pb2, tokens_pb2_grpc

    (scope,) = method_scopes()[f"/{SERVICE_NAME}/{method}"]
    api_key = args.api_key or os.environ.get(API_KEY_ENV, "")
    try:
        credentials = channel_credentials(args.cert, args.key, args.ca_cert)
    except OSError as exc:
        raise AdminCallError(f"cannot read the TLS files: {exc}") from exc
    with grpc.secure_channel(args.gateway, credentials) as channel:
        try:
            token = tokens_pb2_grpc.TokensStub(channel).Exchange(
                tokens_pb2.ExchangeRequest(
                    scopes=[scope], audience=ADMIN_AUDIENCE, bind_to_certificate=True
                ),
                metadata=(("authorization", f"ApiKey {api_key}"),) if api_key else None,
                timeout=RPC_TIMEOUT_SECONDS,
            )
        except grpc.RpcError as exc:
            raise AdminCallError(f"token exchange refused: {_refusal(exc)}") from exc
        stub = admin_pb2_grpc.AdminStub(channel)
        try:
            return getattr(stub, method)(
                request,
                metadata=(("authorization", f"Bearer {token.access_token}"),),
                timeout=RPC_TIMEOUT_SECONDS,
            )
        except grpc.RpcError as exc:
            raise AdminCallError(f"{method} refused: {_refusal(exc)}") from exc


def _print_message(message: Any) -> None:
    from google.protobuf import json_format

    doc = json_format.MessageToDict(message, preserving_proto_field_name=True)
    json.dump(doc, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")


def _run_admin(args: argparse.Namespace, method: str, request: Any) -> int:
    try:
        reply = admin_call(args, method, request)
    except AdminCallError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAIL
    _print_message(reply)
    return EXIT_OK


def cmd_quota_set(args: argparse.Namespace) -> int:
    """Set a tenant's soft and hard limit for a feature."""
    from proto.council.v1 import admin_pb2

    request = admin_pb2.SetQuotaRequest(
        tenant=args.tenant,
        feature=args.feature,
        soft_limit=args.soft,
        hard_limit=args.hard,
        unit=args.unit,
    )
    return _run_admin(args, "SetQuota", request)


def cmd_quota_get(args: argparse.Namespace) -> int:
    """Show a tenant's quota for a feature."""
    from proto.council.v1 import admin_pb2

    request = admin_pb2.GetQuotaRequest(tenant=args.tenant, feature=args.feature)
    return _run_admin(args, "GetQuota", request)


def cmd_apikey_create(args: argparse.Namespace) -> int:
    """Create an API key; its plaintext is printed this once."""
    from proto.council.v1 import admin_pb2

    request = admin_pb2.CreateApiKeyRequest(
        subject=args.subject, tenant=args.tenant, scopes=args.scope, device_id=args.device_id
    )
    return _run_admin(args, "CreateApiKey", request)


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    """Revoke an API key by its id."""
    from proto.council.v1 import admin_pb2

    return _run_admin(args, "RevokeApiKey", admin_pb2.RevokeApiKeyRequest(key_id=args.key_id))


def cmd_client_enroll(args: argparse.Namespace) -> int:
    """Enroll an mTLS identity for token exchange."""
    from proto.council.v1 import admin_pb2

    request = admin_pb2.EnrollClientRequest(
        spiffe_id=args.spiffe_id, tenant=args.tenant, scopes=args.scope, device_id=args.device_id
    )
    return _run_admin(args, "EnrollClient", request)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Rotate the token signing key."""
    from proto.council.v1 import admin_pb2

    return _run_admin(args, "RotateSigningKey", admin_pb2.RotateSigningKeyRequest())


def cmd_devices_list(args: argparse.Namespace) -> int:
    """List the enrolled devices of a tenant with their posture."""
    from proto.council.v1 import admin_pb2

    return _run_admin(args, "ListDevices", admin_pb2.ListDevicesRequest(tenant=args.tenant))


def cmd_usage(args: argparse.Namespace) -> int:
    """Count usage events per tenant, feature and unit."""
    from proto.council.v1 import admin_pb2

    since_ns = time.time_ns() - int(args.since.total_seconds() * 1e9) if args.since else 0
    request = admin_pb2.GetUsageRequest(tenant=args.tenant, feature=args.feature, since_ns=since_ns)
    return _run_admin(args, "GetUsage", request)


# --- parsers -----------------------------------------------------------------------------


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0 seconds")
    return value


def add_gateway_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``council gateway {serve,bootstrap}`` and ``council admin ...``."""
    from council.ca_cmd import parse_duration

    gateway = subparsers.add_parser("gateway", help="the zero-trust gateway").add_subparsers(
        dest="gateway_cmd", required=True
    )
    p = gateway.add_parser("serve", help="serve tokens, posture, usage and admin over mTLS")
    p.add_argument("--grpc", default=DEFAULT_GATEWAY_GRPC, help="gRPC HOST:PORT (port 0: any)")
    p.add_argument("--http", default=DEFAULT_GATEWAY_HTTP, help="HTTP HOST:PORT (port 0: any)")
    p.add_argument("--state", required=True, help="state directory (created)")
    p.add_argument("--ca", required=True, help="CA directory (council ca init)")
    p.add_argument("--pdp", required=True, help="the PDP's gRPC HOST:PORT")
    p.add_argument("--trust-domain", help="require (or, without a CA, create) this domain")
    p.add_argument("--cert", help="serving certificate (default: issue one from --ca)")
    p.add_argument("--key", help="serving certificate's private key")
    p.add_argument(
        "--posture-max-age", type=_seconds, default=600.0, help="seconds a report stays fresh"
    )
    p.add_argument(
        "--posture-profile",
        help="JSON file of compliance thresholds (max_days_since_update, "
        "require_disk_encryption, require_firewall, min_kernel, require_screen_lock)",
    )
    p.add_argument("--pdp-timeout", type=_seconds, default=1.0, help="seconds per PDP attempt")
    p.add_argument("--grace", type=float, default=5.0, help="seconds in-flight calls get")
    p.set_defaults(func=cmd_gateway_serve)

    p = gateway.add_parser("bootstrap", help="enroll the first operator's mTLS identity")
    p.add_argument("--state", required=True, help="the gateway's state directory")
    p.add_argument("--spiffe-id", required=True, help="spiffe://<trust-domain>/<kind>/<name>")
    p.add_argument("--tenant", required=True)
    p.add_argument("--scope", action="append", required=True, help="scope pattern; repeatable")
    p.add_argument("--device-id", default="", help="the operator's posture device")
    p.set_defaults(func=cmd_gateway_bootstrap)

    admin = subparsers.add_parser("admin", help="call the gateway's admin API")
    admin.add_argument("--gateway", default=DEFAULT_GATEWAY_GRPC, help="gateway gRPC HOST:PORT")
    admin.add_argument("--ca-cert", required=True, help="the CA certificate (PEM)")
    admin.add_argument("--cert", required=True, help="your client certificate (PEM)")
    admin.add_argument("--key", required=True, help="your client private key (PEM)")
    admin.add_argument("--api-key", help=f"exchange this API key (default ${API_KEY_ENV})")
    sub = admin.add_subparsers(dest="admin_cmd", required=True)

    quota = sub.add_parser("quota", help="tenant quotas").add_subparsers(
        dest="quota_cmd", required=True
    )
    p = quota.add_parser("set", help="set a soft and hard limit")
    p.add_argument("--tenant", required=True)
    p.add_argument("--feature", required=True)
    p.add_argument("--soft", type=float, required=True, help="warn past this")
    p.add_argument("--hard", type=float, required=True, help="block past this")
    p.add_argument("--unit", default="", help="what is counted (default: request)")
    p.set_defaults(func=cmd_quota_set)
    p = quota.add_parser("get", help="show a quota")
    p.add_argument("--tenant", required=True)
    p.add_argument("--feature", required=True)
    p.set_defaults(func=cmd_quota_get)

    apikey = sub.add_parser("apikey", help="API keys").add_subparsers(
        dest="apikey_cmd", required=True
    )
    p = apikey.add_parser("create", help="create an API key (printed once)")
    p.add_argument("--subject", required=True, help="e.g. user:alice")
    p.add_argument("--tenant", required=True)
    p.add_argument("--scope", action="append", required=True, help="scope pattern; repeatable")
    p.add_argument("--device-id", default="")
    p.set_defaults(func=cmd_apikey_create)
    p = apikey.add_parser("revoke", help="revoke an API key")
    p.add_argument("key_id", help="the part after ck_ up to the next _")
    p.set_defaults(func=cmd_apikey_revoke)

    client = sub.add_parser("client", help="mTLS clients").add_subparsers(
        dest="client_cmd", required=True
    )
    p = client.add_parser("enroll", help="let a certificate identity exchange for tokens")
    p.add_argument("--spiffe-id", required=True)
    p.add_argument("--tenant", required=True)
    p.add_argument("--scope", action="append", required=True, help="scope pattern; repeatable")
    p.add_argument("--device-id", default="")
    p.set_defaults(func=cmd_client_enroll)

    keys = sub.add_parser("keys", help="token signing keys").add_subparsers(
        dest="keys_cmd", required=True
    )
    p = keys.add_parser("rotate", help="make a new current signing key")
    p.set_defaults(func=cmd_keys_rotate)

    devices = sub.add_parser("devices", help="the device registry").add_subparsers(
        dest="devices_cmd", required=True
    )
    p = devices.add_parser("list", help="devices and their posture")
    p.add_argument("--tenant", default="", help="default: every tenant (platform only)")
    p.set_defaults(func=cmd_devices_list)

    p = sub.add_parser("usage", help="usage counts per tenant, feature and unit")
    p.add_argument("--tenant", default="", help="default: every tenant (platform only)")
    p.add_argument("--feature", default="")
    p.add_argument("--since", type=parse_duration, help="only the last DURATION, e.g. 24h")
    p.set_defaults(func=cmd_usage)
