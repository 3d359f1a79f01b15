"""The webhook PEP: a reverse proxy that lets a webhook reach its receiver only when its
signature checks out and the policy allows it.

For each request, in this order:

1. the body is read (at most ``max_body`` bytes, else 413);
2. the Standard Webhooks signature is verified (:mod:`pep_sidecars.webhook_signing`):
   missing or malformed headers → 400, unknown sender, bad signature or a timestamp outside
   the replay window → 401, a ``webhook-id`` the sender already used → 409. None of these
   reaches the PDP;
3. the PDP decides on the sender, tenant, event type, payload facts and source address
   (:meth:`WebhookPEP.policy_input`); unreachable → 503 and nothing is forwarded (fail
   closed); denied → 403 with the policy's reasons and the decision id;
4. an allowed request goes to the upstream unchanged — method, path and query as received,
   every end-to-end header (``Host`` and the ``webhook-*`` headers included) and the body
   bytes — and the upstream's response streams back. Only hop-by-hop headers, which belong
   to one connection (RFC 9110 §7.6.1), are not passed on.

Every refusal is ``application/problem+json`` written by :mod:`gateway.problem`, with the
``code`` of its kind and a ``remedy`` member saying what the sender can do.

A message id is kept (replay protection) once the upstream answered it below 500. When the
message was refused by policy, never left the PEP, or the upstream failed, the id is given
back: Standard Webhooks senders retry under the same id, and the retry must be judged anew.

Every request from a registered sender yields one usage event (feature ``webhook``, the
sender's tenant, the sender, allowed or not, the decision id when there was one). Requests
naming no registered sender have no tenant to bill and yield none.

The upstream is either a URL (``http://host:port`` or ``unix:/path.sock``) or a command the
PEP starts itself with ``{socket}`` replaced by a Unix socket path in a fresh directory only
the PEP's user can enter. That second form is the shipped configuration: the receiver then
has no TCP port at all, so nothing can reach it around the PEP.

Lifecycle: ``await start()`` (state stores, usage reporter, PDP client, upstream, then the
listener), ``await close()`` in reverse order. Thread-safety: one PEP per event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.problem import problem_middleware, problem_response
from pep_sidecars.pdp_client import PDPClient, PDPClientConfig, PDPDecision, PDPUnavailable
from pep_sidecars.usage import UsageReporter, UsageReporterConfig
from pep_sidecars.webhook_signing import (
    DEFAULT_TOLERANCE,
    BadSignature,
    MalformedHeaders,
    MissingHeaders,
    ReplayedMessage,
    ReplayStore,
    Sender,
    SignatureVerifier,
    StaleTimestamp,
    UnknownSender,
    VerifiedMessage,
    WebhookRejected,
)

__all__ = [
    "DEFAULT_ENTRYPOINT",
    "HEADER_EVENT_TYPE",
    "UpstreamConfig",
    "UpstreamError",
    "WebhookPEP",
    "WebhookPEPConfig",
]

log = logging.getLogger(__name__)

DEFAULT_ENTRYPOINT = "council/webhook/decision"
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_UPSTREAM_TIMEOUT = 30.0
DEFAULT_START_TIMEOUT = 10.0
DEFAULT_GRACE = 5.0
SOCKET_PLACEHOLDER = "{socket}"
HEADER_EVENT_TYPE = "webhook-event-type"
"""Where the event type comes from when the body has no string ``type`` (not signed)."""

FEATURE = "webhook"
RETRY_AFTER_SECONDS = 5
MAX_KEYS = 64
MAX_FIELD_TEXT = 1024
READ_CHUNK = 64 * 1024

# RFC 9110 §7.6.1: these describe one connection, so a proxy must not forward them.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# aiohttp's client adds these when absent; a request forwarded unchanged must not gain them.
CLIENT_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")

# The one place a refusal kind becomes an HTTP status.
PROBLEM_TYPE = "urn:council:problem:webhook:"
"""Prefix of the problem ``type`` of each refusal kind (followed by its code)."""

REJECTION_TITLE: dict[type[WebhookRejected], str] = {
    MissingHeaders: "Webhook signature headers missing",
    MalformedHeaders: "Webhook signature headers malformed",
    UnknownSender: "Unknown webhook sender",
    StaleTimestamp: "Webhook timestamp outside the replay window",
    BadSignature: "Webhook signature does not verify",
    ReplayedMessage: "Webhook message id already delivered",
}

REJECTION_STATUS: dict[type[WebhookRejected], HTTPStatus] = {
    MissingHeaders: HTTPStatus.BAD_REQUEST,
    MalformedHeaders: HTTPStatus.BAD_REQUEST,
    UnknownSender: HTTPStatus.UNAUTHORIZED,
    StaleTimestamp: HTTPStatus.UNAUTHORIZED,
    BadSignature: HTTPStatus.UNAUTHORIZED,
    ReplayedMessage: HTTPStatus.CONFLICT,
}
# RFC 9110 §15.5.2: a 401 names how to authenticate.
CHALLENGE = {"WWW-Authenticate": 'Webhook-Signature realm="webhook", version="v1"'}


class UpstreamError(Exception):
    """Raised when the upstream command cannot be started or never opens its socket."""


@dataclass(frozen=True)
class UpstreamConfig:
    """Where allowed webhooks go.

    Exactly one of:
        url: ``http://host:port`` or ``unix:/path/to.sock`` of a receiver already running
            (no path: each request keeps the path and query it came with).
        command: argv of a receiver the PEP starts itself; every ``{socket}`` in it becomes
            a Unix socket path in a private directory the PEP creates (the shipped form).

    Attributes:
        timeout: seconds a forwarded request may take, response included.
        start_timeout: seconds a started receiver has to accept connections on its socket.
    """

    url: str | None = None
    command: tuple[str, ...] = ()
    timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    start_timeout: float = DEFAULT_START_TIMEOUT

    def __post_init__(self) -> None:
        if (self.url is None) == (not self.command):
            raise ValueError("give the upstream as a url or as a command, not both or neither")
        if self.command and not any(SOCKET_PLACEHOLDER in arg for arg in self.command):
            raise ValueError(f"the upstream command must contain {SOCKET_PLACEHOLDER}")
        if self.url is not None:
            parsed = URL(self.url)
            if self.url.startswith("unix:"):
                if not self.url[5:].startswith("/"):
                    raise ValueError("a unix upstream is unix:/absolute/path.sock")
            elif parsed.scheme not in ("http", "https") or not parsed.host:
                raise ValueError(f"upstream {self.url!r} is neither http(s)://host:port nor unix:")
            elif parsed.path not in ("", "/") or parsed.query_string:
                # Requests keep their own path and query; a prefix here would change them.
                raise ValueError(f"upstream {self.url!r} takes no path or query")
        if self.timeout <= 0 or self.start_timeout <= 0:
            raise ValueError("timeouts must be positive")


@dataclass(frozen=True)
class WebhookPEPConfig:
    """How to run one webhook PEP.

    Attributes:
        listen: ``host:port`` for senders (port 0 picks a free one).
        upstream: the receiver behind the PEP.
        pdp: how to reach the PDP.
        senders: registered senders by id (see :func:`webhook_signing.load_senders`).
        state_dir: holds the replay store and the usage spool (SQLite files).
        gateway: ``host:port`` of the gateway's usage intake; None spools events only.
        gateway_credentials: channel credentials for the gateway (mTLS), or None.
        entrypoint: the policy decision the PEP asks for.
        tolerance: replay window in seconds, both directions.
        max_body: largest body accepted, in bytes (the policy may set a lower limit).
        inspect_fields: dotted paths into a JSON body whose scalar values the policy sees
            under ``payload.fields`` (e.g. ``livemode``, ``data.amount``).
        usage_flush_interval: seconds between usage sends.
        grace: seconds in-flight requests get at shutdown.
    """

    listen: str
    upstream: UpstreamConfig
    pdp: PDPClientConfig
    senders: Mapping[str, Sender]
    state_dir: Path
    gateway: str | None = None
    gateway_credentials: grpc.ChannelCredentials | None = None
    entrypoint: str = DEFAULT_ENTRYPOINT
    tolerance: float = DEFAULT_TOLERANCE
    max_body: int = DEFAULT_MAX_BODY
    inspect_fields: tuple[str, ...] = field(default=())
    usage_flush_interval: float = 0.5
    grace: float = DEFAULT_GRACE

    def __post_init__(self) -> None:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"listen address {self.listen!r} is not HOST:PORT")
        if self.max_body <= 0 or self.tolerance <= 0 or self.grace < 0:
            raise ValueError("max_body and tolerance must be positive, grace non-negative")


class _UpstreamProcess:
    """A receiver the PEP starts on a Unix socket in a private directory, and stops."""

    def __init__(self, command: tuple[str, ...], start_timeout: float) -> None:
        self._command = command
        self._start_timeout = start_timeout
        self._dir: Path | None = None
        self.socket: Path | None = None
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Path:
        # mkdtemp makes the directory 0700 under a random name: other users cannot connect,
        # and the address appears nowhere but in this process and its child. The system
        # temporary directory keeps the path short (Unix socket paths hold ~100 bytes).
        self._dir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="council-webhook-"))
        self.socket = self._dir / "upstream.sock"
        argv = [arg.replace(SOCKET_PLACEHOLDER, str(self.socket)) for arg in self._command]
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL
            )
        except OSError as exc:
            raise UpstreamError(f"cannot start upstream {argv[0]!r}: {exc}") from exc
        await self._wait_ready()
        return self.socket

    async def _wait_ready(self) -> None:
        assert self.process is not None and self.socket is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout
        while True:
            if self.process.returncode is not None:
                raise UpstreamError(
                    f"upstream exited with status {self.process.returncode} before listening"
                )
            try:
                _reader, writer = await asyncio.open_unix_connection(str(self.socket))
            except OSError:
                if loop.time() > deadline:
                    raise UpstreamError(
                        f"upstream did not listen on {self.socket} within {self._start_timeout} s"
                    ) from None
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            return

    async def close(self, grace: float) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                log.warning("upstream did not stop within %s s; killing it", grace)
                self.process.kill()
                await self.process.wait()
        self.process = None
        if self._dir is not None:
            await asyncio.to_thread(shutil.rmtree, self._dir, True)
            self._dir = None


def _scalar(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, (bool, int, float))
        or (isinstance(value, str) and len(value) <= MAX_FIELD_TEXT)
    )


def _field(doc: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _parse_object(body: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


class WebhookPEP:
    """One webhook enforcement point: listener, verifier, PDP client, upstream."""

    def __init__(self, config: WebhookPEPConfig) -> None:
        self.config = config
        self.port = 0
        self._verifier = SignatureVerifier(config.senders, config.tolerance)
        self._replay = ReplayStore(config.state_dir / "webhook-replay.db", config.tolerance)
        self._usage: UsageReporter | None = None
        self._pdp: PDPClient | None = None
        self._process: _UpstreamProcess | None = None
        self._session: aiohttp.ClientSession | None = None
        self._base = URL("http://upstream")
        self._runner: web.AppRunner | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the stores, connect to the PDP, start the upstream, then listen."""
        await asyncio.to_thread(self.config.state_dir.mkdir, parents=True, exist_ok=True)
        await self._replay.open()
        # The reporter opens its spool on construction, so it is made once the folder exists.
        self._usage = UsageReporter(
            UsageReporterConfig(
                gateway=self.config.gateway,
                spool=self.config.state_dir / "webhook-usage-spool.db",
                source="pep:webhook",
                flush_interval=self.config.usage_flush_interval,
                credentials=self.config.gateway_credentials,
            )
        )
        await self._usage.start()
        self._pdp = PDPClient(self.config.pdp)
        upstream = self.config.upstream
        connector: aiohttp.BaseConnector
        if upstream.command:
            self._process = _UpstreamProcess(upstream.command, upstream.start_timeout)
            connector = aiohttp.UnixConnector(path=str(await self._process.start()))
        elif upstream.url is not None and upstream.url.startswith("unix:"):
            connector = aiohttp.UnixConnector(path=upstream.url[5:])
        else:
            assert upstream.url is not None
            connector = aiohttp.TCPConnector()
            self._base = URL(upstream.url)
        self._session = aiohttp.ClientSession(
            connector=connector,
            # Bodies and encodings pass through as the upstream sent them.
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=upstream.timeout),
        )
        app = web.Application(
            client_max_size=self.config.max_body, middlewares=[problem_middleware]
        )
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=self.config.grace)
        await self._runner.setup()
        host, _, port = self.config.listen.rpartition(":")
        site = web.TCPSite(self._runner, host, int(port))
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1] if sockets else int(port)

    async def close(self) -> None:
        """Stop listening, let in-flight requests finish, then stop everything else.

        Idempotent; resources close in reverse order of :meth:`start`.
        """
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._process is not None:
            await self._process.close(self.config.grace)
            self._process = None
        if self._pdp is not None:
            await self._pdp.close()
            self._pdp = None
        if self._usage is not None:
            await self._usage.close()
            self._usage = None
        await self._replay.close()

    async def __aenter__(self) -> WebhookPEP:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def upstream_pid(self) -> int | None:
        """Process id of the receiver the PEP started, if it started one."""
        if self._process is None or self._process.process is None:
            return None
        return self._process.process.pid

    @property
    def upstream_address(self) -> str:
        """Where allowed requests go, as the banner shows it."""
        if self._process is not None and self._process.socket is not None:
            return f"unix:{self._process.socket}"
        return str(self.config.upstream.url)

    def banner(self) -> str:
        """The start-up line: where senders connect and where allowed webhooks go."""
        host = self.config.listen.rpartition(":")[0]
        pid = self.upstream_pid
        started = f" (started, pid {pid})" if pid is not None else ""
        return (
            f"council webhook PEP listening on http://{host}:{self.port} "
            f"-> upstream {self.upstream_address}{started}, policy {self.config.entrypoint}"
        )

    # --- request handling --------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await self._read_body(request)
        if body is None:
            return problem_response(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body exceeds {self.config.max_body} bytes",
                code="webhook_payload_too_large",
                remedy=f"send events of at most {self.config.max_body} bytes",
            )
        try:
            message = self._verifier.verify(request.headers, body)
            await self._replay.reserve(message)
        except WebhookRejected as exc:
            return self._rejected(exc, request.headers.get("webhook-id", ""))
        delivered = False
        try:
            response, delivered = await self._decide_and_forward(request, message, body)
            return response
        finally:
            # Shielded: a release cut short by a cancelled request would burn the id.
            if not delivered:
                await asyncio.shield(self._replay.release(message))

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The whole body, or None when it is larger than ``max_body``."""
        limit = self.config.max_body
        if request.content_length is not None and request.content_length > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(READ_CHUNK):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _rejected(self, exc: WebhookRejected, msg_id: str) -> web.Response:
        status = REJECTION_STATUS[type(exc)]
        sender = self.config.senders.get(exc.sender)
        if sender is not None:
            self._record(sender, msg_id, status, refused=exc.code)
        log.info("webhook refused (%s) from %r: %s", exc.code, exc.sender, exc.message)
        return problem_response(
            status,
            exc.message,
            code=exc.code,
            type_uri=PROBLEM_TYPE + exc.code,
            title=REJECTION_TITLE[type(exc)],
            headers=CHALLENGE if status == HTTPStatus.UNAUTHORIZED else None,
            remedy=exc.remedy,
            sender=exc.sender,
        )

    async def _decide_and_forward(
        self, request: web.Request, message: VerifiedMessage, body: bytes
    ) -> tuple[web.StreamResponse, bool]:
        """The response for a verified message, and whether the upstream took it."""
        assert self._pdp is not None
        sender = message.sender
        doc = await asyncio.get_running_loop().run_in_executor(None, _parse_object, body)
        policy_input = self.policy_input(request, sender, body, doc)
        event_type = policy_input["event"]["type"]
        try:
            decision = await self._pdp.decide(self.config.entrypoint, policy_input)
        except PDPUnavailable as exc:
            log.error(
                "webhook %s from %s refused, PDP unavailable: %s", message.msg_id, sender.id, exc
            )
            self._record(
                sender,
                message.msg_id,
                HTTPStatus.SERVICE_UNAVAILABLE,
                event_type=event_type,
                refused="pdp_unavailable",
            )
            return (
                problem_response(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    "the policy decision point could not be reached, so the webhook was not "
                    "delivered",
                    code="webhook_policy_unavailable",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                    remedy=f"retry the same webhook (same webhook-id) after "
                    f"{RETRY_AFTER_SECONDS} s",
                    sender=sender.id,
                ),
                False,
            )
        if not decision.allow:
            self._record(
                sender,
                message.msg_id,
                HTTPStatus.FORBIDDEN,
                decision=decision,
                event_type=event_type,
                size=len(body),
            )
            return self._denied(message, decision, event_type), False
        return await self._forward(request, message, decision, event_type, body)

    def _record(
        self,
        sender: Sender,
        msg_id: str,
        status: int,
        *,
        decision: PDPDecision | None = None,
        event_type: str = "",
        size: int | None = None,
        refused: str = "",
    ) -> None:
        """One usage event; ``allowed`` is the policy's answer (False when there was none)."""
        assert self._usage is not None
        attributes: dict[str, Any] = {"webhook_id": msg_id, "status": int(status)}
        if event_type:
            attributes["event_type"] = event_type
        if size is not None:
            attributes["bytes"] = size
        if refused:
            attributes["refused"] = refused
        self._usage.record(
            feature=FEATURE,
            tenant=sender.tenant,
            subject=sender.id,
            allowed=decision is not None and decision.allow,
            decision_id=decision.decision_id if decision is not None else "",
            attributes=attributes,
        )

    def _denied(
        self, message: VerifiedMessage, decision: PDPDecision, event_type: str
    ) -> web.Response:
        sender = message.sender
        reasons = list(decision.reasons)
        detail = "; ".join(reasons) or "the webhook policy gave no reason"
        return problem_response(
            HTTPStatus.FORBIDDEN,
            detail,
            code="webhook_denied_by_policy",
            type_uri=PROBLEM_TYPE + "webhook_denied_by_policy",
            title="Webhook denied by policy",
            remedy=(
                "the event was not delivered and resending it unchanged will be refused "
                f"again; change what the reasons name, or ask the operator of tenant "
                f"{sender.tenant} to allow it, quoting decision {decision.decision_id}"
            ),
            reasons=reasons,
            decision_id=decision.decision_id,
            sender=sender.id,
            tenant=sender.tenant,
            event_type=event_type,
        )

    def policy_input(
        self,
        request: web.Request,
        sender: Sender,
        body: bytes,
        doc: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """What the policy sees about a verified webhook.

        The message id and timestamp stay out on purpose: they differ for every message,
        and leaving them out lets the decision cache (keyed by the input) answer repeats.
        """
        body_type = doc.get("type") if doc is not None else None
        if isinstance(body_type, str):
            event_type, source = body_type, "body"
        elif header_type := request.headers.get(HEADER_EVENT_TYPE, ""):
            event_type, source = header_type, "header"
        else:
            event_type, source = "", "none"
        fields: dict[str, Any] = {}
        if doc is not None:
            for path in self.config.inspect_fields:
                found, value = _field(doc, path)
                if found and _scalar(value):
                    fields[path] = value
        return {
            "sender": {"id": sender.id, "tenant": sender.tenant},
            "tenant": sender.tenant,
            "event": {"type": event_type, "type_source": source},
            "payload": {
                "size": len(body),
                "content_type": request.content_type,
                "json": doc is not None,
                "keys": sorted(doc)[:MAX_KEYS] if doc is not None else [],
                "fields": fields,
            },
            "source": {"ip": request.remote or ""},
            "request": {"method": request.method, "path": request.path},
        }

    def _forward_headers(self, request: web.Request) -> tuple[CIMultiDict[str], set[str]]:
        """The request's end-to-end headers as received, and the client defaults to skip."""
        listed = {
            token.strip().lower()
            for value in request.headers.getall("Connection", [])
            for token in value.split(",")
        }
        headers: CIMultiDict[str] = CIMultiDict()
        for raw_name, raw_value in request.raw_headers:
            name = raw_name.decode("latin-1")
            if name.lower() in HOP_BY_HOP or name.lower() in listed:
                continue
            headers.add(name, raw_value.decode("latin-1"))
        skip = {h for h in CLIENT_AUTO_HEADERS if h not in headers}
        return headers, skip

    async def _forward(
        self,
        request: web.Request,
        message: VerifiedMessage,
        decision: PDPDecision,
        event_type: str,
        body: bytes,
    ) -> tuple[web.StreamResponse, bool]:
        assert self._session is not None
        sender = message.sender
        headers, skip = self._forward_headers(request)
        # raw_path is the request target exactly as the sender wrote it (query included).
        url = self._base.join(URL(request.raw_path, encoded=True))
        try:
            upstream = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=body,
                skip_auto_headers=skip,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.error(
                "upstream %s failed for webhook %s: %r", self.upstream_address, message.msg_id, exc
            )
            status = (
                HTTPStatus.GATEWAY_TIMEOUT
                if isinstance(exc, TimeoutError)
                else HTTPStatus.BAD_GATEWAY
            )
            self._record(
                sender,
                message.msg_id,
                status,
                decision=decision,
                event_type=event_type,
                size=len(body),
                refused="upstream_unavailable",
            )
            return (
                problem_response(
                    status,
                    "the policy allowed the webhook but the receiver behind this endpoint "
                    "did not answer",
                    code="webhook_upstream_unavailable",
                    remedy="retry the same webhook (same webhook-id) later",
                    decision_id=decision.decision_id,
                    sender=sender.id,
                ),
                False,
            )
        async with upstream:
            self._record(
                sender,
                message.msg_id,
                upstream.status,
                decision=decision,
                event_type=event_type,
                size=len(body),
            )
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for raw_name, raw_value in upstream.raw_headers:
                name = raw_name.decode("latin-1")
                if name.lower() not in HOP_BY_HOP:
                    response.headers.add(name, raw_value.decode("latin-1"))
            delivered = upstream.status < HTTPStatus.INTERNAL_SERVER_ERROR
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (aiohttp.ClientError, TimeoutError) as exc:
                # The status line is already out; cutting the connection is the only honest
                # way left to tell the sender the response is incomplete.
                log.warning("upstream response for webhook %s broke off: %r", message.msg_id, exc)
                if request.transport is not None:
                    request.transport.close()
            return response, delivered
