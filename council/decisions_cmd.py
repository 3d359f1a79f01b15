"""``council decisions``: read and verify the decision log.

    council decisions tail [--db PATH] [-n N] [--follow]
    council decisions show ID [--db PATH]
    council decisions verify [--db PATH] [--public-key PEM]

``verify`` exits 0 when the log is intact and 1, naming the first bad seq, otherwise. The
log module (SQLite, the engine package) is imported only when a command runs, so the rest of
the CLI starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

EXIT_OK, EXIT_FAIL = 0, 1
DEFAULT_DB = "decisions.db"
FOLLOW_POLL_SECONDS = 0.5


def _line(row: dict[str, Any]) -> str:
    """One decision as a line: seq, UTC time, allow/deny, entrypoint, id, reasons."""
    ts = datetime.fromtimestamp(row["timestamp_ns"] / 1e9, tz=UTC)
    stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    result = row["result"]
    verdict = "allow" if result.get("allow") else "deny "
    reasons = "; ".join(result.get("reasons") or [])
    flag = "  [fail-closed]" if row["error"] else ""
    return (
        f"{row['seq']:>8}  {stamp}  {verdict}  {row['entrypoint']}  {row['decision_id']}"
        f"{'  ' + reasons if reasons else ''}{flag}"
    )


def cmd_decisions_tail(args: argparse.Namespace) -> int:
    """Print the last N decisions; with --follow, keep printing new ones until interrupted."""
    from pdp import decision_log

    try:
        rows = decision_log.tail(args.db, args.n)
        for row in rows:
            print(_line(row))
        if not args.follow:
            return EXIT_OK
        last = rows[-1]["seq"] if rows else 0
        while True:
            sys.stdout.flush()
            time.sleep(FOLLOW_POLL_SECONDS)
            for row in decision_log.rows_after(args.db, last):
                print(_line(row))
                last = row["seq"]
    except KeyboardInterrupt:
        return EXIT_OK
    except decision_log.DecisionLogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL


def cmd_decisions_show(args: argparse.Namespace) -> int:
    """Print one decision's full row as JSON."""
    from pdp import decision_log

    try:
        row = decision_log.show(args.db, args.decision_id)
    except decision_log.DecisionLogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if row is None:
        print(f"no decision {args.decision_id} in {args.db}", file=sys.stderr)
        return EXIT_FAIL
    json.dump(row, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")
    return EXIT_OK


def cmd_decisions_verify(args: argparse.Namespace) -> int:
    """Verify the hash chain and the signed checkpoints; exit 1 with the reason if broken."""
    from pdp import decision_log

    try:
        key = decision_log.load_public_key(args.public_key) if args.public_key else None
        report = decision_log.verify(args.db, key)
    except (decision_log.DecisionLogError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(report, file=sys.stdout if report.ok else sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAIL


def add_decisions_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``council decisions {tail,show,verify}`` on the top-level subparsers."""
    dec = subparsers.add_parser("decisions", help="read and verify the decision log")
    sub = dec.add_subparsers(dest="decisions_cmd", required=True)

    p = sub.add_parser("tail", help="print the latest decisions")
    p.add_argument("--db", default=DEFAULT_DB, help=f"decision log (default {DEFAULT_DB})")
    p.add_argument("-n", type=int, default=20, help="how many (default 20)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new decisions")
    p.set_defaults(func=cmd_decisions_tail)

    p = sub.add_parser("show", help="print one decision as JSON")
    p.add_argument("decision_id")
    p.add_argument("--db", default=DEFAULT_DB, help=f"decision log (default {DEFAULT_DB})")
    p.set_defaults(func=cmd_decisions_show)

    p = sub.add_parser("verify", help="check the hash chain and signed checkpoints")
    p.add_argument("--db", default=DEFAULT_DB, help=f"decision log (default {DEFAULT_DB})")
    p.add_argument(
        "--public-key",
        help="trusted Ed25519 public key (PEM); without it the key stored in the log is used",
    )
    p.set_defaults(func=cmd_decisions_verify)
