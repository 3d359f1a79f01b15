"""``council ca``: the local certificate authority for mTLS.

    council ca init   --dir D --trust-domain TD [--key-type p256|ed25519] [--ttl 1825d]
    council ca issue  --dir D --kind sidecar|agent|gateway|pdp|cli --name N [--ttl 24h]
                      [--dns NAME ...] [--ip ADDR ...] -o PREFIX
    council ca revoke --dir D SERIAL_OR_CERT [--reason TEXT]

``issue`` writes ``PREFIX.crt`` and ``PREFIX.key`` (0600); servers and clients trust
``D/ca.crt``. ``revoke`` takes a hex serial or a certificate file and rewrites ``D/crl.pem``,
which servers reload on their own.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from datetime import timedelta
from pathlib import Path

from gateway.ca import (
    DEFAULT_LEAF_TTL,
    DEFAULT_ROOT_TTL,
    KINDS,
    ROOT_KEY_TYPES,
    CAError,
    CertificateAuthority,
    parse_serial,
)

EXIT_OK, EXIT_FAIL = 0, 1

_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d`` or combinations such as ``1h30m``."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 24h, 30m or 7d")
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: int(number)})
    return total


def cmd_ca_init(args: argparse.Namespace) -> int:
    """Create the root certificate and key for a trust domain."""
    try:
        with CertificateAuthority.init(
            args.dir, args.trust_domain, key_type=args.key_type, ttl=args.ttl
        ) as ca:
            expires = ca.certificate.not_valid_after_utc.isoformat()
            print(f"CA for spiffe://{ca.trust_domain} in {args.dir} (expires {expires})")
    except CAError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def cmd_ca_issue(args: argparse.Namespace) -> int:
    """Issue a short-lived leaf certificate and write it with its key."""
    # A DNS SAN holding an address never matches in TLS: route addresses to IP SANs.
    dns, ips = [], list(args.ip or ())
    for value in args.dns or ():
        try:
            ipaddress.ip_address(value)
            ips.append(value)
        except ValueError:
            dns.append(value)
    try:
        with CertificateAuthority.load(args.dir) as ca:
            issued = ca.issue(args.kind, args.name, ttl=args.ttl, dns=dns, ips=ips)
    except CAError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAIL
    cert_path, key_path = issued.write(args.output)
    print(
        f"wrote {cert_path} and {key_path}: {issued.spiffe_id}, serial {issued.serial:x},"
        f" expires {issued.not_after.isoformat()}"
    )
    return EXIT_OK


def cmd_ca_revoke(args: argparse.Namespace) -> int:
    """Revoke a certificate (by hex serial or file) and rewrite the CRL."""
    target = Path(args.target)
    try:
        with CertificateAuthority.load(args.dir) as ca:
            serial = (
                ca.serial_of(target.read_bytes()) if target.is_file() else parse_serial(args.target)
            )
            row = ca.revoke(serial, reason=args.reason or "")
            crl = ca.crl_path
    except CAError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAIL
    print(f"revoked {row['spiffe_id']} serial {serial:x} at {row['revoked_at']}; CRL: {crl}")
    return EXIT_OK


def add_ca_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``council ca {init,issue,revoke}`` on the top-level subparsers."""
    ca = subparsers.add_parser("ca", help="the local certificate authority for mTLS")
    sub = ca.add_subparsers(dest="ca_cmd", required=True)

    p = sub.add_parser("init", help="create a root CA for a trust domain")
    p.add_argument("--dir", required=True, help="CA directory (created)")
    p.add_argument("--trust-domain", required=True, help="e.g. council.internal")
    p.add_argument("--key-type", choices=ROOT_KEY_TYPES, default="p256")
    p.add_argument(
        "--ttl",
        type=parse_duration,
        default=DEFAULT_ROOT_TTL,
        help=f"root validity (default {DEFAULT_ROOT_TTL.days}d)",
    )
    p.set_defaults(func=cmd_ca_init)

    p = sub.add_parser("issue", help="issue a short-lived certificate with a SPIFFE id")
    p.add_argument("--dir", required=True, help="CA directory")
    p.add_argument("--kind", required=True, choices=KINDS)
    p.add_argument("--name", required=True, help="the last segment of the SPIFFE id")
    p.add_argument(
        "--ttl",
        type=parse_duration,
        default=DEFAULT_LEAF_TTL,
        help=f"validity (default {int(DEFAULT_LEAF_TTL.total_seconds()) // 3600}h)",
    )
    p.add_argument("--dns", action="append", help="DNS SAN for servers; repeatable")
    p.add_argument("--ip", action="append", help="IP SAN for servers; repeatable")
    p.add_argument("-o", "--output", required=True, help="writes PREFIX.crt and PREFIX.key")
    p.set_defaults(func=cmd_ca_issue)

    p = sub.add_parser("revoke", help="revoke a certificate and rewrite the CRL")
    p.add_argument("--dir", required=True, help="CA directory")
    p.add_argument("target", metavar="SERIAL_OR_CERT", help="hex serial or certificate file")
    p.add_argument("--reason", help="recorded in the index")
    p.set_defaults(func=cmd_ca_revoke)
