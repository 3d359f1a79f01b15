"""``council agent posture``: the device posture agent's commands.

    council agent posture collect [--json]
    council agent posture enroll --gateway HOST:PORT --device-id ID --tenant T [--key-dir D]
    council agent posture submit [--gateway HOST:PORT] [--interval S] [--key-dir D]

``enroll`` creates the device key when the key directory has none, registers it at the
gateway and remembers the enrollment, so ``submit`` needs only the key directory. Exit
codes: 0 done (a submitted report was accepted, compliant or not), 1 refused or failed.
With ``--interval``, ``submit`` keeps reporting until interrupted and survives a gateway
that is down for a while. ``--tls-ca`` (with ``--tls-cert``/``--tls-key`` for mTLS) turns
the plain channel into a TLS one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL = 0, 1
RPC_TIMEOUT_SECONDS = 10.0


def _channel(args: argparse.Namespace, gateway: str) -> Any:
    import grpc

    if not args.tls_ca:
        return grpc.insecure_channel(gateway)
    creds = grpc.ssl_channel_credentials(
        root_certificates=Path(args.tls_ca).read_bytes(),
        private_key=Path(args.tls_key).read_bytes() if args.tls_key else None,
        certificate_chain=Path(args.tls_cert).read_bytes() if args.tls_cert else None,
    )
    return grpc.secure_channel(gateway, creds)


def _rpc_error(exc: Any) -> str:
    """A gRPC error as one line: code name and the server's message."""
    return f"{exc.code().name}: {exc.details()}"


def cmd_collect(args: argparse.Namespace) -> int:
    """Print the facts this host reports, as a table or (``--json``) as JSON."""
    from agents.posture import collect_facts

    facts = collect_facts()
    if args.json:
        doc = {name: fact.to_json() for name, fact in facts.items()}
        json.dump(doc, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
        sys.stdout.write("\n")
        return EXIT_OK
    for name, fact in facts.items():
        value = json.dumps(fact.value, ensure_ascii=False) if fact.determined else "unknown"
        print(f"{name:<18} {value}")
        print(f"{'':<18} source: {fact.source}" + (f"; {fact.detail}" if fact.detail else ""))
    return EXIT_OK


def cmd_enroll(args: argparse.Namespace) -> int:
    """Create the device key if needed and enroll it at the gateway."""
    import grpc

    from agents.posture_keys import (
        DeviceKeyError,
        EnrolledDevice,
        enrollment_request,
        load_device_key,
        save_enrollment,
    )
    from proto.council.v1 import posture_pb2_grpc

    key_dir = Path(args.key_dir)
    try:
        key = load_device_key(key_dir, create=True)
    except DeviceKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    with _channel(args, args.gateway) as channel:
        stub = posture_pb2_grpc.PostureStub(channel)
        try:
            reply = stub.Enroll(
                enrollment_request(key, args.device_id, args.tenant), timeout=RPC_TIMEOUT_SECONDS
            )
        except grpc.RpcError as exc:
            print(f"error: enrollment refused: {_rpc_error(exc)}", file=sys.stderr)
            return EXIT_FAIL
    save_enrollment(
        key_dir, EnrolledDevice(reply.device_id, reply.tenant, args.gateway, reply.key_id)
    )
    state = "enrolled" if reply.created else "already enrolled"
    print(f"{state}: device {reply.device_id} in tenant {reply.tenant}, key {reply.key_id}")
    return EXIT_OK


def _submit_once(args: argparse.Namespace, gateway: str) -> int:
    import grpc

    from agents.posture import collect_facts
    from agents.posture_keys import load_device_key, load_enrollment, submission
    from proto.council.v1 import posture_pb2_grpc

    key_dir = Path(args.key_dir)
    device = load_enrollment(key_dir)
    request = submission(load_device_key(key_dir), device.device_id, collect_facts())
    with _channel(args, gateway) as channel:
        stub = posture_pb2_grpc.PostureStub(channel)
        try:
            reply = stub.Submit(request, timeout=RPC_TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            print(f"error: submit failed: {_rpc_error(exc)}", file=sys.stderr)
            return EXIT_FAIL
    if not reply.accepted:
        print(f"rejected ({reply.rejection}): {'; '.join(reply.reasons)}", file=sys.stderr)
        return EXIT_FAIL
    status = reply.status
    verdict = "compliant" if status.compliant else "non-compliant"
    print(f"accepted: device {status.device_id} {verdict}")
    for reason in status.reasons:
        print(f"  failed {reason}")
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    """Collect, sign and submit a report; with --interval, keep doing so."""
    from agents.posture_keys import DeviceKeyError, load_enrollment

    try:
        gateway = args.gateway or load_enrollment(Path(args.key_dir)).gateway
        if args.interval is None:
            return _submit_once(args, gateway)
        while True:
            # A failed round is reported and retried next round: an agent that gives up
            # would leave the device looking stale, which is the safe but useless outcome.
            _submit_once(args, gateway)
            sys.stdout.flush()
            time.sleep(args.interval)
    except DeviceKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return EXIT_OK


def _positive_seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0 seconds")
    return value


def add_agent_parser(subparsers: Any) -> None:
    """Register ``council agent posture collect|enroll|submit`` on the top-level parser."""
    from agents.posture_keys import DEFAULT_KEY_DIR

    agent = subparsers.add_parser("agent", help="host agents").add_subparsers(
        dest="agent_cmd", required=True
    )
    posture = agent.add_parser("posture", help="device posture agent").add_subparsers(
        dest="posture_cmd", required=True
    )

    p = posture.add_parser("collect", help="print the posture facts of this host")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_collect)

    def connection_flags(p: argparse.ArgumentParser, *, gateway_required: bool) -> None:
        p.add_argument("--gateway", required=gateway_required, help="gateway gRPC HOST:PORT")
        p.add_argument("--key-dir", default=str(DEFAULT_KEY_DIR), help="device key folder")
        p.add_argument("--tls-ca", help="CA certificate (PEM): use TLS")
        p.add_argument("--tls-cert", help="client certificate (PEM) for mTLS")
        p.add_argument("--tls-key", help="client private key (PEM) for mTLS")

    p = posture.add_parser("enroll", help="create the device key and enroll it")
    connection_flags(p, gateway_required=True)
    p.add_argument("--device-id", required=True)
    p.add_argument("--tenant", required=True)
    p.set_defaults(func=cmd_enroll)

    p = posture.add_parser("submit", help="sign and submit a posture report")
    connection_flags(p, gateway_required=False)
    p.add_argument("--interval", type=_positive_seconds, help="repeat every S seconds")
    p.set_defaults(func=cmd_submit)
