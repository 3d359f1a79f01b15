"""``council exec`` (the CLI enforcement point) and ``council sidecar connector``.

    council exec --feature F [--pdp HOST:PORT] [--gateway HOST:PORT]
                 [--token TOKEN | --token-file FILE] [--device-id D] [--posture-file FILE]
                 [--jwks FILE] [--recording-dir DIR] [--recording-key FILE]
                 -- COMMAND [ARG ...]

asks the PDP (``council/cli/decision``) with the feature, the command, the local user and
host, the token's claims (verified against the gateway's JWKS, or ``--jwks``) and the
device's posture (fresh from the gateway), then runs the command only if allowed, under
the session recorder when the policy obliges ``record_session``. Exit codes:

====  ==================================================================================
 N    the command's own exit code (128 + signal when a signal ended it)
 2    usage error (no command, unreadable token file, incomplete TLS flags)
 69   the PDP could not be asked (fail closed: nothing ran)
 73   an obligation could not be honoured, e.g. recording could not be set up (nothing
      ran) or failed (the command was stopped or its recording left unsealed)
 77   the policy denied the command; its reasons and the decision id are on stderr
 126  the command is not executable; 127 the command was not found
====  ==================================================================================

Every decision is reported as a usage event (feature ``cli:<F>``) to the gateway's
``council.v1.Usage`` through a local spool (``--usage-spool``), so a gateway that is down
loses nothing.

    council sidecar connector --listen HOST:PORT --pdp HOST:PORT --gateway HOST:PORT
                              --config FILE [--usage-spool FILE]

serves the connectors of FILE over HTTP behind the connector PEP (see
:mod:`pep_sidecars.connector_sidecar`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

EXIT_USAGE = 2
EXIT_PDP_UNAVAILABLE = 69
EXIT_OBLIGATION = 73
EXIT_DENIED = 77
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127
EXIT_FAIL = 1

DEFAULT_PDP = "127.0.0.1:9191"
USAGE_DIR = Path.home() / ".council" / "usage"
RECORD_SESSION = "record_session"


def _say(message: str) -> None:
    print(f"council exec: {message}", file=sys.stderr, flush=True)


def _add_tls_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tls-cert", type=Path, help="client certificate for the gateway (mTLS)")
    p.add_argument("--tls-key", type=Path, help="its private key")
    p.add_argument("--tls-ca", type=Path, help="CA bundle that signed the gateway")
    p.add_argument("--pdp-tls-cert", type=Path, help="client certificate for a PDP behind mTLS")
    p.add_argument("--pdp-tls-key", type=Path, help="its private key")
    p.add_argument("--pdp-tls-ca", type=Path, help="CA bundle that signed the PDP's proxy")


def _tls(args: argparse.Namespace, prefix: str = "tls") -> Any:
    """TLSFiles from the ``--<prefix>-cert/key/ca`` flags, None without them.

    Raises ValueError when the flags are incomplete and OSError when a file is unreadable,
    so that a typo is a usage error here rather than a failed channel later.
    """
    from pep_sidecars.pdp_client import TLSFiles

    given = [getattr(args, f"{prefix}_{part}") for part in ("cert", "key", "ca")]
    if not any(given):
        return None
    if not all(given):
        flag = "--" + prefix.replace("_", "-")
        raise ValueError(f"{flag}-cert, {flag}-key and {flag}-ca go together")
    for path in given:
        path.read_bytes()
    return TLSFiles(cert=given[0], key=given[1], ca=given[2])


def _exit_code(returncode: int) -> int:
    # asyncio reports death by signal N as -N; shells say 128 + N.
    return 128 - returncode if returncode < 0 else returncode


@contextlib.contextmanager
def _signal_handlers(handlers: dict[int, Callable[[], None]]) -> Iterator[None]:
    """Install loop signal handlers for the duration (skipped off the main thread)."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum, handler in handlers.items():
        try:
            loop.add_signal_handler(signum, handler)
        except (ValueError, RuntimeError):
            continue  # not the main thread: the default dispositions stay
        installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def _run_plain(argv: Sequence[str]) -> int:
    """Run ``argv`` with this process's stdio; forward termination signals to it."""
    try:
        proc = await asyncio.create_subprocess_exec(*argv)
    except FileNotFoundError:
        _say(f"{argv[0]}: command not found")
        return EXIT_NOT_FOUND
    except PermissionError:
        _say(f"{argv[0]}: permission denied")
        return EXIT_NOT_EXECUTABLE

    def forward(signum: int) -> Callable[[], None]:
        def send() -> None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

        return send

    # ^C from the terminal reaches the command directly (same process group); this
    # process just keeps waiting so it can report the command's exit code.
    handlers = {signal.SIGINT: lambda: None}
    handlers.update({s: forward(s) for s in (signal.SIGTERM, signal.SIGHUP)})
    with _signal_handlers(handlers):
        return _exit_code(await proc.wait())


async def _run_recorded(
    recorder: Any, argv: Sequence[str], *, user: str, feature: str, decision_id: str
) -> tuple[int, dict[str, Any]]:
    """Run ``argv`` under the session recorder: (exit code, usage attributes)."""
    from pep_sidecars.session_recorder import RecorderError, RecordingFailedError

    loop = asyncio.get_running_loop()
    handlers: dict[int, Callable[[], None]] = {signal.SIGWINCH: recorder.resize}
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        handlers[signum] = functools.partial(recorder.send_signal, signum)
    run = functools.partial(recorder.run, argv, user=user, feature=feature, decision_id=decision_id)
    with _signal_handlers(handlers):
        try:
            sealed = await loop.run_in_executor(None, run)
        except FileNotFoundError:
            _say(f"{argv[0]}: command not found")
            return EXIT_NOT_FOUND, {"recorded": False}
        except PermissionError:
            _say(f"{argv[0]}: permission denied")
            return EXIT_NOT_EXECUTABLE, {"recorded": False}
        except RecordingFailedError as exc:
            _say(f"{exc.message} (command exit code {exc.exit_code})")
            return EXIT_OBLIGATION, {"recorded": False, "exit_code": exc.exit_code}
        except RecorderError as exc:
            _say(f"session recording failed: {exc.message}; the command did not run")
            return EXIT_OBLIGATION, {"recorded": False}
    _say(f"session recorded and sealed at {sealed.directory}")
    attributes = {
        "recorded": True,
        "recording": sealed.manifest.recording_sha256,
        "exit_code": sealed.exit_code,
    }
    return sealed.exit_code, attributes


def _usage(args: argparse.Namespace, tls: Any) -> Any:
    """A usage reporter, or None (with a warning) when its spool cannot be opened."""
    import sqlite3

    from pep_sidecars.usage import UsageReporter, UsageReporterConfig

    spool = args.usage_spool or USAGE_DIR / "cli.db"
    try:
        spool.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return UsageReporter(
            UsageReporterConfig(
                gateway=args.gateway,
                spool=spool,
                source="pep:cli",
                credentials=tls.credentials() if tls is not None else None,
            )
        )
    except (OSError, sqlite3.Error) as exc:
        # Metering is not a precondition of the decision; the decision log still has it.
        _say(f"warning: usage events will not be reported (spool {spool}: {exc})")
        return None


async def _exec(args: argparse.Namespace) -> int:
    from pep_sidecars.cli_pep import (
        DEFAULT_AUDIENCE,
        DEFAULT_ISSUER,
        CLIContext,
        DecisionUnavailableError,
        ObligationError,
        build_input,
        check_obligations,
        decide_cli,
        read_token,
        record_usage,
    )
    from pep_sidecars.session_recorder import (
        DEFAULT_KEY,
        DEFAULT_STORE,
        RecorderConfig,
        RecorderSetupError,
        SessionRecorder,
    )

    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        _say("no command given: council exec --feature F -- COMMAND [ARG ...]")
        return EXIT_USAGE
    try:
        token = read_token(args.token, args.token_file)
        tls = _tls(args)
        pdp_tls = _tls(args, "pdp_tls")
    except OSError as exc:
        _say(f"cannot read {exc.filename}: {exc.strerror}")
        return EXIT_USAGE
    except ValueError as exc:
        _say(str(exc))
        return EXIT_USAGE
    context = CLIContext(
        pdp=args.pdp,
        gateway=args.gateway,
        jwks_file=args.jwks,
        tls=tls,
        pdp_tls=pdp_tls,
        audience=args.audience or DEFAULT_AUDIENCE,
        issuer=args.issuer or DEFAULT_ISSUER,
    )
    input_doc = await build_input(
        args.feature,
        argv,
        context=context,
        token=token,
        device_id=args.device_id,
        posture_file=args.posture_file,
    )
    usage = _usage(args, tls)
    if usage is not None:
        await usage.start()
    try:
        try:
            decision = await decide_cli(args.feature, input_doc, context=context)
        except DecisionUnavailableError as exc:
            _say(f"cannot reach the policy decision point: {exc.message}")
            return EXIT_PDP_UNAVAILABLE

        def report(**attributes: Any) -> None:
            if usage is not None:
                record_usage(usage, args.feature, input_doc, decision, **attributes)

        if not decision.allow:
            report()
            _say(f"denied: feature '{args.feature}' (decision {decision.decision_id})")
            for reason in decision.reasons or ("the policy gave no reason",):
                print(f"  - {reason}", file=sys.stderr)
            return EXIT_DENIED
        try:
            check_obligations(decision, {RECORD_SESSION})
        except ObligationError as exc:
            report(refused=exc.message)
            _say(exc.message)
            return EXIT_OBLIGATION
        if not decision.obligations.get(RECORD_SESSION):
            code = await _run_plain(argv)
            report(exit_code=code, recorded=False)
            return code
        try:
            recorder = SessionRecorder(
                RecorderConfig(
                    store=args.recording_dir or DEFAULT_STORE,
                    signing_key=args.recording_key or DEFAULT_KEY,
                )
            )
        except RecorderSetupError as exc:
            report(refused=exc.message)
            _say(
                f"the policy requires this session to be recorded (decision"
                f" {decision.decision_id}), but recording cannot be set up: {exc.message};"
                " the command does not run"
            )
            return EXIT_OBLIGATION
        code, attributes = await _run_recorded(
            recorder,
            argv,
            user=input_doc["user"],
            feature=args.feature,
            decision_id=decision.decision_id,
        )
        report(**attributes)
        return code
    finally:
        if usage is not None:
            await usage.close()


def cmd_exec(args: argparse.Namespace) -> int:
    """``council exec``: see the module docstring."""
    return asyncio.run(_exec(args))


def add_exec_parser(subparsers: Any) -> None:
    """Register ``council exec`` on the top-level sub-command parsers.

    Imports nothing heavy: every ``council`` invocation builds this parser.
    """
    p = subparsers.add_parser(
        "exec",
        help="run a command if the policy allows it (the CLI enforcement point)",
        description="Ask the PDP before running COMMAND; exit 77 when denied, 69 when the"
        " PDP cannot be asked, 73 when an obligation cannot be honoured.",
    )
    p.add_argument("--feature", required=True, help="the feature the command belongs to")
    p.add_argument("--pdp", default=DEFAULT_PDP, help=f"PDP gRPC HOST:PORT ({DEFAULT_PDP})")
    p.add_argument("--gateway", help="gateway gRPC HOST:PORT (JWKS, posture, usage)")
    token = p.add_mutually_exclusive_group()
    token.add_argument("--token", help="access token (default: $COUNCIL_TOKEN)")
    token.add_argument("--token-file", type=Path, help="file holding the access token")
    p.add_argument("--device-id", help="this device's enrolled id (posture from --gateway)")
    p.add_argument("--posture-file", type=Path, help="posture JSON (self-reported)")
    p.add_argument("--jwks", type=Path, help="JWK Set file instead of the gateway's")
    p.add_argument("--audience", help="token audience required (default: council)")
    p.add_argument("--issuer", help="token issuer required (default: council-gateway)")
    _add_tls_flags(p)
    p.add_argument("--recording-dir", type=Path, help="sealed recordings (~/.council/recordings)")
    p.add_argument("--recording-key", type=Path, help="sealing key (~/.council/recorder.key)")
    p.add_argument("--usage-spool", type=Path, help=f"usage spool (default {USAGE_DIR}/cli.db)")
    # dest "argv": the top-level sub-command parsers already use "command".
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND", help="-- COMMAND [ARG]")
    p.set_defaults(func=cmd_exec)


# --- council sidecar connector ------------------------------------------------------------


def cmd_sidecar_connector(args: argparse.Namespace) -> int:
    """``council sidecar connector``: serve until interrupted."""
    from pep_sidecars.cli_pep import DEFAULT_ISSUER
    from pep_sidecars.connector_sidecar import (
        DEFAULT_AUDIENCE,
        ConnectorSidecarConfig,
        serve_connector,
    )
    from pep_sidecars.connectors import ConnectorError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = ConnectorSidecarConfig(
            listen=args.listen,
            pdp=args.pdp,
            gateway=args.gateway,
            config_file=args.config,
            usage_spool=args.usage_spool or USAGE_DIR / "connector.db",
            tls=_tls(args),
            pdp_tls=_tls(args, "pdp_tls"),
            audience=args.audience or DEFAULT_AUDIENCE,
            issuer=args.issuer or DEFAULT_ISSUER,
        )
        asyncio.run(serve_connector(config))
    except ConnectorError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAIL
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        pass
    return 0


def add_connector_parsers(sidecar_subparsers: Any) -> None:
    """Register ``connector`` on the ``council sidecar`` sub-command parsers."""
    p = sidecar_subparsers.add_parser(
        "connector", help="data connectors behind the connector PEP, over HTTP"
    )
    p.add_argument("--listen", required=True, help="HTTP HOST:PORT (port 0: any)")
    p.add_argument("--pdp", required=True, help="PDP gRPC HOST:PORT")
    p.add_argument("--gateway", required=True, help="gateway gRPC HOST:PORT (JWKS, usage)")
    p.add_argument("--config", required=True, type=Path, help="connectors (JSON or YAML)")
    p.add_argument("--usage-spool", type=Path, help=f"default {USAGE_DIR}/connector.db")
    p.add_argument("--audience", help="token audience required (council-connector)")
    p.add_argument("--issuer", help="token issuer required (council-gateway)")
    _add_tls_flags(p)
    p.set_defaults(func=cmd_sidecar_connector)
