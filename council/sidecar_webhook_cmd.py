"""``council sidecar webhook``: run the webhook PEP in front of a webhook receiver.

    council sidecar webhook --listen HOST:PORT --pdp HOST:PORT --senders FILE --state DIR
        (--receiver-db FILE | --upstream-command CMD | --upstream URL)
        [--gateway HOST:PORT] [--entrypoint council/webhook/decision]
        [--pdp-ca CA --pdp-cert CERT --pdp-key KEY] [--tolerance S] [--max-body BYTES]
        [--inspect-field PATH ...]

The upstream is one of:

``--receiver-db FILE``
    start Council's own receiver (:mod:`pep_sidecars.webhook_receiver`) storing events in
    FILE, on a Unix socket in a private directory: it listens on no TCP port, so only the
    PEP can reach it. This is the shipped configuration.
``--upstream-command CMD``
    start any receiver the same way; ``{socket}`` in CMD (split like a shell would) becomes
    the Unix socket path it must listen on.
``--upstream URL``
    forward to a receiver already running at ``http://host:port`` or ``unix:/path.sock``;
    keeping it unreachable around the PEP is then the operator's job.

``--senders`` is a JSON object: sender id → ``{"secret": "whsec_…", "tenant": "…"}``.
With ``--pdp-ca``, ``--pdp-cert`` and ``--pdp-key`` the PDP channel is mTLS, and the
gateway's usage channel presents the same certificate. The PEP prints one line when it
is ready and stops cleanly on SIGINT or SIGTERM. Exit codes: 0 stopped, 1 failed to start,
2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _upstream(args: argparse.Namespace) -> Any:
    from pep_sidecars.webhook import UpstreamConfig

    if args.receiver_db:
        db = str(Path(args.receiver_db).resolve())
        command = (
            sys.executable,
            "-m",
            "pep_sidecars.webhook_receiver",
            "--unix",
            "{socket}",
            "--db",
            db,
        )
        return UpstreamConfig(command=command)
    if args.upstream_command:
        return UpstreamConfig(command=tuple(shlex.split(args.upstream_command)))
    return UpstreamConfig(url=args.upstream)


async def _serve(config: Any) -> int:
    from gateway.lifecycle import wait_for_stop_signal
    from pep_sidecars.webhook import UpstreamError, WebhookPEP

    pep = WebhookPEP(config)
    try:
        await pep.start()
    except (UpstreamError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        await pep.close()
        return EXIT_FAIL
    print(pep.banner(), flush=True)
    try:
        await wait_for_stop_signal()
    finally:
        await pep.close()
    return EXIT_OK


def cmd_sidecar_webhook(args: argparse.Namespace) -> int:
    """Run the webhook PEP until interrupted."""
    import logging

    from pep_sidecars.pdp_client import PDPClientConfig, TLSFiles
    from pep_sidecars.webhook import WebhookPEPConfig
    from pep_sidecars.webhook_signing import SenderConfigError, load_senders

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    tls = None
    given = [args.pdp_ca, args.pdp_cert, args.pdp_key]
    if any(given):
        if not all(given):
            print("error: --pdp-ca, --pdp-cert and --pdp-key go together", file=sys.stderr)
            return EXIT_USAGE
        tls = TLSFiles(cert=Path(args.pdp_cert), key=Path(args.pdp_key), ca=Path(args.pdp_ca))
    # Only the options given override the PEP's own defaults (one place for each).
    overrides = {
        name: value
        for name, value in (
            ("entrypoint", args.entrypoint),
            ("tolerance", args.tolerance),
            ("max_body", args.max_body),
        )
        if value is not None
    }
    try:
        senders = load_senders(Path(args.senders))
        config = WebhookPEPConfig(
            listen=args.listen,
            upstream=_upstream(args),
            pdp=PDPClientConfig(target=args.pdp, tls=tls),
            senders=senders,
            state_dir=Path(args.state),
            gateway=args.gateway,
            gateway_credentials=tls.credentials() if tls is not None else None,
            inspect_fields=tuple(args.inspect_field or ()),
            **overrides,
        )
    except (SenderConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_serve(config))


def add_webhook_sidecar_parser(sidecar_subparsers: Any) -> None:
    """Register ``webhook`` under the ``council sidecar`` sub-command group."""
    # Nothing heavy is imported here: building the parser must not slow down every command.
    p = sidecar_subparsers.add_parser(
        "webhook",
        help="the webhook PEP: verify signatures, ask the PDP, forward to the receiver",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--listen", required=True, help="HOST:PORT for senders (port 0: any)")
    upstream = p.add_mutually_exclusive_group(required=True)
    upstream.add_argument(
        "--receiver-db", help="start Council's receiver on a private Unix socket, storing here"
    )
    upstream.add_argument(
        "--upstream-command", help="start this receiver; {socket} becomes its Unix socket path"
    )
    upstream.add_argument("--upstream", help="running receiver: http://HOST:PORT or unix:/PATH")
    p.add_argument("--pdp", required=True, help="PDP gRPC HOST:PORT")
    p.add_argument("--gateway", help="gateway gRPC HOST:PORT for usage events")
    p.add_argument("--senders", required=True, help="JSON: sender id -> {secret, tenant}")
    p.add_argument("--state", required=True, help="directory for the replay store and spool")
    p.add_argument("--entrypoint", help="policy decision to ask (default: the webhook policy's)")
    p.add_argument("--pdp-ca", help="CA bundle to verify the PDP (with cert and key: mTLS)")
    p.add_argument("--pdp-cert", help="client certificate for mTLS to the PDP and gateway")
    p.add_argument("--pdp-key", help="client key for mTLS to the PDP and gateway")
    p.add_argument(
        "--tolerance", type=float, help="replay window in seconds, past and future (default 300)"
    )
    p.add_argument("--max-body", type=int, help="largest body in bytes (default 1 MiB)")
    p.add_argument(
        "--inspect-field",
        action="append",
        help="dotted path into the JSON body whose value the policy sees; repeatable",
    )
    p.set_defaults(func=cmd_sidecar_webhook)
