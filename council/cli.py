"""The ``council`` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from council import opa_tool
from council.bundle_cmd import add_sign_parser, add_verify_parser
from council.ca_cmd import add_ca_parser
from council.decisions_cmd import add_decisions_parser
from council.enclave_cmd import add_enclave_parser
from council.exec_cmd import add_connector_parsers, add_exec_parser
from council.gateway_cmd import add_gateway_parser
from council.posture_cmd import add_agent_parser
from council.sidecar_webhook_cmd import add_webhook_sidecar_parser

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _print_json(value: object) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")


# --- opa ------------------------------------------------------------------------------


def cmd_opa_install(args: argparse.Namespace) -> int:
    path = opa_tool.install(force=args.force)
    print(f"opa {opa_tool.OPA_VERSION} at {path}")
    return EXIT_OK


def cmd_opa_version(_args: argparse.Namespace) -> int:
    print(opa_tool.OPA_VERSION)
    return EXIT_OK


# --- policy -----------------------------------------------------------------------------


def cmd_policy_build(args: argparse.Namespace) -> int:
    from council.policy_build import build_bundle

    result = build_bundle(
        Path(args.dir),
        Path(args.output),
        entrypoints=args.entrypoint,
        revision=args.revision,
        include_print=args.include_print,
    )
    if args.signing_key:
        from pdp.bundle_signing import load_key_material, sign_bundle

        signed = sign_bundle(
            result.path, load_key_material(args.signing_key), args.signing_alg, keyid=args.keyid
        )
        result.path.write_bytes(signed)
    signed_note = f", signed {args.signing_alg}" if args.signing_key else ""
    print(f"wrote {result.path} (entrypoints: {', '.join(result.entrypoints)}{signed_note})")
    return EXIT_OK


def cmd_policy_eval(args: argparse.Namespace) -> int:
    import pdp

    data = json.loads(Path(args.data).read_text()) if args.data else None
    input_doc = None
    if args.input == "-":
        input_doc = json.load(sys.stdin)
    elif args.input:
        input_doc = json.loads(Path(args.input).read_text())
    config = pdp.HostConfig(strict_builtin_errors=args.strict, pool_size=1)
    with pdp.load(args.bundle, data, config=config) as policy:
        try:
            result = policy.evaluate(args.entrypoint, input_doc)
        except pdp.PDPError as exc:
            print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
            return EXIT_FAIL
    _print_json(result)
    return EXIT_OK


def _passthrough(opa_args: list[str]) -> int:
    res = opa_tool.run_opa(opa_args)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.returncode


def cmd_policy_test(args: argparse.Namespace) -> int:
    flags = ["test", "--explain", "fails", "--timeout", "60s"]
    if args.verbose:
        flags.append("-v")
    return _passthrough([*flags, *args.dirs])


def cmd_policy_check(args: argparse.Namespace) -> int:
    return _passthrough(["check", "--strict", *args.dirs])


def cmd_policy_conformance(args: argparse.Namespace) -> int:
    from council.conformance import DEFAULT_CACHE, format_summary, run_conformance

    root = Path(args.path)
    if not root.is_dir():
        print(f"conformance corpus not found at {root}", file=sys.stderr)
        return EXIT_USAGE

    def progress(result: object) -> None:
        if args.verbose and not result.wasm_pass:  # type: ignore[attr-defined]
            print(f"FAIL {result.case_id} [{result.note}]: {result.detail}")  # type: ignore[attr-defined]

    report = run_conformance(
        root,
        folders=args.folder or (),
        match=args.match or "",
        cache_dir=Path(args.cache) if args.cache else DEFAULT_CACHE,
        workers=args.workers,
        progress=progress,
    )
    report_path = (
        Path(args.report) if args.report else DEFAULT_CACHE.parent / "conformance-report.json"
    )
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report.to_json(), indent=1))
    if args.verbose_ref:
        for r in report.results:
            if r.wasm_pass and not r.reference_pass:
                print(f"REF-FAIL {r.case_id} [{r.note}]: {r.detail}")
    lines = list(format_summary(report))
    print("\n".join(lines[:-1]))
    print(f"report: {report_path}")
    print(lines[-1])
    if args.floor is not None and report.wasm_passed < args.floor:
        print(f"below the floor of {args.floor}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def cmd_pdp_serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from gateway.pdp_server import PDPServerConfig, serve_forever
    from pdp.bundle_signing import VerificationKeys, load_key_material

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    keys = None
    if args.verification_key:
        keys = VerificationKeys.single(
            load_key_material(args.verification_key),
            algorithm=args.signing_alg,
            keyid=args.verification_key_id,
            scope=args.scope or "",
        )
    elif not args.allow_unsigned:
        print("error: --verification-key is required (or --allow-unsigned)", file=sys.stderr)
        return EXIT_USAGE
    config = PDPServerConfig(
        bundle=args.bundle,
        grpc_addr=args.grpc,
        http_addr=args.http,
        keys=keys,
        allow_unsigned=args.allow_unsigned,
        log_db=Path(args.log) if args.log else None,
        log_key=Path(args.log_key) if args.log_key else None,
        envoy_entrypoint=args.envoy_entrypoint,
        authzen_entrypoint=args.authzen_entrypoint,
        authzen_base_url=args.authzen_base_url,
        poll_interval=args.poll_interval,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(config))
    return EXIT_OK


def cmd_demo(_args: argparse.Namespace) -> int:
    from council.demo import run_demo

    return run_demo()


def cmd_proto_gen(_args: argparse.Namespace) -> int:
    from council.protogen import generate

    for path in generate():
        print(path)
    return EXIT_OK


# --- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="council", description="Council zero-trust gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    opa = sub.add_parser("opa", help="the pinned OPA toolchain").add_subparsers(
        dest="opa_cmd", required=True
    )
    p = opa.add_parser(
        "install", help=f"build opa {opa_tool.OPA_VERSION} with go install if missing"
    )
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_opa_install)
    p = opa.add_parser("version", help="print the pinned OPA version")
    p.set_defaults(func=cmd_opa_version)

    pol = sub.add_parser("policy", help="build, evaluate and test Rego").add_subparsers(
        dest="policy_cmd", required=True
    )
    p = pol.add_parser("build", help="compile a Rego directory to a Wasm bundle")
    p.add_argument("dir")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("-e", "--entrypoint", action="append", help="entrypoint (pkg/rule); repeatable")
    p.add_argument("--revision")
    p.add_argument("--include-print", action="store_true", help="keep print() calls")
    p.add_argument("--signing-key", help="sign the bundle (PEM file/text or HMAC secret)")
    p.add_argument("--signing-alg", default="RS256", help="signature algorithm (OPA's names)")
    p.add_argument("--keyid", help="key id written into the signature")
    p.set_defaults(func=cmd_policy_build)

    p = pol.add_parser("eval", help="evaluate an entrypoint in Council's Wasm host")
    p.add_argument("bundle", help="bundle .tar.gz or bare .wasm")
    p.add_argument("entrypoint")
    p.add_argument("--input", help="JSON file, or - for stdin")
    p.add_argument("--data", help="JSON data document (overrides the bundle's)")
    p.add_argument("--strict", action="store_true", help="strict builtin errors")
    p.set_defaults(func=cmd_policy_eval)

    p = pol.add_parser("test", help="run Rego unit tests (opa test)")
    p.add_argument("dirs", nargs="+")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_policy_test)

    p = pol.add_parser("check", help="type-check Rego strictly (opa check --strict)")
    p.add_argument("dirs", nargs="+")
    p.set_defaults(func=cmd_policy_check)

    add_sign_parser(pol)
    add_verify_parser(pol)

    p = pol.add_parser("conformance", help="run OPA's conformance cases in Council's host")
    p.add_argument("path", help="folder of <category>/*.yaml case files")
    p.add_argument("--folder", action="append", help="only this category; repeatable")
    p.add_argument("--match", help="only cases whose note or id contains this text")
    p.add_argument("--report", help="where to write the JSON report")
    p.add_argument("--cache", help="build cache folder")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--floor", type=int, help="fail if fewer cases pass (Wasm-harness rules)")
    p.add_argument("-v", "--verbose", action="store_true", help="print each failing case")
    p.add_argument("--verbose-ref", action="store_true", help="print reference-only failures")
    p.set_defaults(func=cmd_policy_conformance)

    add_decisions_parser(sub)
    add_agent_parser(sub)
    add_ca_parser(sub)
    add_gateway_parser(sub)
    add_enclave_parser(sub)

    sidecar = sub.add_parser("sidecar", help="enforcement-point sidecars").add_subparsers(
        dest="sidecar_cmd", required=True
    )
    add_webhook_sidecar_parser(sidecar)
    add_connector_parsers(sidecar)
    add_exec_parser(sub)

    pdp_cmd = sub.add_parser("pdp", help="the policy decision point").add_subparsers(
        dest="pdp_cmd", required=True
    )
    p = pdp_cmd.add_parser("serve", help="serve decisions over gRPC and HTTP")
    p.add_argument("--bundle", required=True, help="bundle file, directory or http(s) URL")
    p.add_argument("--grpc", default="127.0.0.1:9191", help="gRPC HOST:PORT (port 0: any)")
    p.add_argument("--http", default="127.0.0.1:8181", help="HTTP HOST:PORT (port 0: any)")
    p.add_argument("--log", help="decision log SQLite file")
    p.add_argument("--log-key", help="Ed25519 key for log checkpoints (default: DB.key)")
    p.add_argument("--verification-key", help="bundle verification key (PEM or secret)")
    p.add_argument("--verification-key-id", default="default")
    p.add_argument("--signing-alg", default="RS256")
    p.add_argument("--scope")
    p.add_argument("--allow-unsigned", action="store_true", help="accept unsigned bundles")
    p.add_argument("--envoy-entrypoint", default="envoy/authz/decision")
    p.add_argument("--authzen-entrypoint", default="examples/authzen/decision")
    p.add_argument("--authzen-base-url", help="public base URL for AuthZEN metadata")
    p.add_argument("--poll-interval", type=float, default=2.0)
    p.set_defaults(func=cmd_pdp_serve)

    p = sub.add_parser("demo", help="start Council's processes and run the product demo")
    p.set_defaults(func=cmd_demo)

    proto = sub.add_parser("proto", help="Council's gRPC contracts").add_subparsers(
        dest="proto_cmd", required=True
    )
    p = proto.add_parser("gen", help="regenerate the Python stubs next to the .proto files")
    p.set_defaults(func=cmd_proto_gen)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``council`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except opa_tool.OpaToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
