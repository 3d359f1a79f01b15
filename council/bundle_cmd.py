"""``council policy sign`` and ``council policy verify``: OPA bundle signatures.

The flags mirror OPA's (``opa build --signing-key``, ``opa run --verification-key``), so
keys, key ids, algorithms and scopes carry over between the two tools unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from pdp.bundle import BundleError
from pdp.bundle_signing import (
    DEFAULT_ALGORITHM,
    DEFAULT_KEY_ID,
    SIGNING_ALGORITHMS,
    VerificationKeys,
    load_key_material,
    sign_bundle,
    verify_bundle,
)

__all__ = ["add_sign_parser", "add_verify_parser", "cmd_policy_sign", "cmd_policy_verify"]

# The same codes as council.cli; not imported from there because cli imports this module.
EXIT_OK, EXIT_FAIL = 0, 1


def _write_atomically(path: Path, data: bytes) -> None:
    # A reader of the output (an agent polling the bundle) never sees half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _key(value: str, alg: str) -> bytes:
    """The key a flag names; a missing file is an error unless the value can be a secret."""
    if alg.startswith("HS") or value.startswith("-----BEGIN") or Path(value).is_file():
        return load_key_material(value)
    raise FileNotFoundError(f"key file not found: {value}")


def cmd_policy_sign(args: argparse.Namespace) -> int:
    """Sign BUNDLE with ``--signing-key``, writing ``-o`` (BUNDLE itself by default)."""
    source = Path(args.bundle)
    output = Path(args.output) if args.output else source
    try:
        signed = sign_bundle(
            source,
            _key(args.signing_key, args.signing_alg),
            args.signing_alg,
            keyid=args.keyid,
            scope=args.scope,
        )
        _write_atomically(output, signed)
    except (BundleError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    details = [args.signing_alg]
    if args.keyid:
        details.append(f"key id {args.keyid!r}")
    if args.scope:
        details.append(f"scope {args.scope!r}")
    print(f"wrote {output} (signed: {', '.join(details)})")
    return EXIT_OK


def cmd_policy_verify(args: argparse.Namespace) -> int:
    """Verify BUNDLE's signature as ``opa run --verification-key`` would."""
    exclude = [p for value in args.exclude_files_verify or () for p in value.split(",") if p]
    try:
        keys = VerificationKeys.single(
            _key(args.verification_key, args.signing_alg),
            algorithm=args.signing_alg,
            keyid=args.verification_key_id,
            scope=args.scope or "",
            exclude_files=exclude,
        )
        verified = verify_bundle(Path(args.bundle), keys)
    except (BundleError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    line = (
        f"verified {args.bundle}: {len(verified.signed_files)} files signed, "
        f"key {verified.keyid!r} ({verified.algorithm})"
    )
    if verified.scope:
        line += f", scope {verified.scope!r}"
    if verified.excluded_files:
        line += f"; not checked: {', '.join(verified.excluded_files)}"
    print(line)
    return EXIT_OK


def _add_alg_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--signing-alg",
        default=DEFAULT_ALGORITHM,
        choices=SIGNING_ALGORITHMS,
        help=f"signature algorithm (default {DEFAULT_ALGORITHM})",
    )


def add_sign_parser(
    policy: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``sign`` on the ``policy`` subcommand group."""
    p = policy.add_parser("sign", help="sign a bundle (writes /.signatures.json as OPA does)")
    p.add_argument("bundle", help="bundle .tar.gz")
    p.add_argument(
        "--signing-key",
        required=True,
        help="PEM private key file or text (RSA, ECDSA, Ed25519), or the HMAC secret",
    )
    _add_alg_flag(p)
    p.add_argument("--keyid", help="key id for the kid header and keyid claim")
    p.add_argument("--scope", help="scope claim")
    p.add_argument("-o", "--output", help="where to write the signed bundle (default: BUNDLE)")
    p.set_defaults(func=cmd_policy_sign)
    return p


def add_verify_parser(
    policy: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``verify`` on the ``policy`` subcommand group."""
    p = policy.add_parser("verify", help="verify a bundle's signature as OPA does")
    p.add_argument("bundle", help="bundle .tar.gz")
    p.add_argument(
        "--verification-key",
        required=True,
        help="PEM public key or certificate file or text, or the HMAC secret",
    )
    p.add_argument(
        "--verification-key-id",
        default=DEFAULT_KEY_ID,
        help=f"name of the key; it verifies whatever kid the bundle names "
        f"(default {DEFAULT_KEY_ID!r})",
    )
    _add_alg_flag(p)
    p.add_argument("--scope", help="scope the signature must carry")
    p.add_argument(
        "--exclude-files-verify",
        action="append",
        metavar="PATTERN",
        help="files that need not be signed (glob, comma-separated; repeatable)",
    )
    p.set_defaults(func=cmd_policy_verify)
    return p
