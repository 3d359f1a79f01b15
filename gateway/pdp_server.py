"""The PDP process: gRPC (decisions, Envoy Check, health, reflection) and HTTP (AuthZEN).

Lifecycle: :meth:`PDPServer.start` loads the first bundle (refusing to start without one),
binds both listeners and starts the bundle watcher; :meth:`PDPServer.stop` stops accepting,
lets in-flight requests finish within a grace period, then closes the decision log (which
flushes every acknowledged decision) and the engine, in reverse order of creation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway.authzen import add_authzen_routes
from gateway.coalescing import CoalescingEvaluator
from gateway.decisions_servicer import DecisionsServicer
from gateway.envoy_servicer import AuthorizationServicer
from gateway.lifecycle import serve_until_signalled
from gateway.problem import problem_middleware
from pdp.bundle_signing import VerificationKeys
from pdp.bundle_source import BundleLoader, open_source
from pdp.config import HostConfig
from pdp.decision_log import DecisionLog, load_signing_key
from pdp.errors import PDPError
from pdp.service import DecisionRequest, DecisionService
from proto.council.v1 import decisions_pb2, decisions_pb2_grpc

__all__ = ["PDPServer", "PDPServerConfig"]

log = logging.getLogger(__name__)

MASK_ENTRYPOINT = "system/log/mask"
SERVICE_KEY: web.AppKey[DecisionService] = web.AppKey("service", DecisionService)


@dataclass(frozen=True)
class PDPServerConfig:
    """How to run the PDP.

    Attributes:
        bundle: bundle file, unpacked bundle directory, or ``http(s)://`` URL.
        grpc_addr / http_addr: ``host:port`` to listen on (port 0 picks a free one).
        keys: bundle verification keys; None requires ``allow_unsigned``.
        allow_unsigned: accept bundles without a signature (development only).
        log_db: decision log SQLite file; None disables logging.
        log_key: Ed25519 key file signing the log's checkpoints (created if missing).
        envoy_entrypoint / authzen_entrypoint: what Check and AuthZEN evaluate.
        poll_interval: seconds between bundle polls.
        grace: seconds in-flight requests get at shutdown.
    """

    bundle: str
    grpc_addr: str = "127.0.0.1:0"
    http_addr: str = "127.0.0.1:0"
    keys: VerificationKeys | None = None
    allow_unsigned: bool = False
    log_db: Path | None = None
    log_key: Path | None = None
    envoy_entrypoint: str = "envoy/authz/decision"
    authzen_entrypoint: str = "examples/authzen/decision"
    authzen_base_url: str | None = None
    poll_interval: float = 2.0
    grace: float = 5.0
    host: HostConfig = field(default_factory=HostConfig)


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host or "127.0.0.1", int(port)


class PDPServer:
    """One PDP: the decision service behind its gRPC and HTTP listeners."""

    def __init__(self, config: PDPServerConfig) -> None:
        self.config = config
        self.grpc_port = 0
        self.http_port = 0
        self._loader = BundleLoader(
            keys=config.keys, allow_unsigned=config.allow_unsigned, config=config.host
        )
        self._source = open_source(config.bundle)
        self._executor = ThreadPoolExecutor(
            max_workers=config.host.pool_size, thread_name_prefix="council-eval"
        )
        self.service: DecisionService | None = None
        self._grpc: grpc.aio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._log: DecisionLog | None = None
        self._mask_instance: tuple[Any, Any] | None = None

    # --- start-up -------------------------------------------------------------------

    async def start(self) -> None:
        """Load the first bundle, open the decision log, bind both listeners."""
        loop = asyncio.get_running_loop()
        policy = await loop.run_in_executor(self._executor, self._loader.try_load, self._source)
        if policy is None:
            raise PDPError(f"no loadable bundle at {self._source.description}; see the log")
        self.service = DecisionService(policy)
        if self.config.log_db is not None:
            key_path = self.config.log_key or self.config.log_db.with_suffix(".key")
            self._log = DecisionLog(
                self.config.log_db,
                signing_key=load_signing_key(key_path, create=True),
                mask=self._mask,
            )
            self.service.add_sink(self._log)
        await self._start_grpc()
        await self._start_http()
        self._watcher = asyncio.create_task(self._watch(), name="council-bundle-watch")

    def _mask(self, request: DecisionRequest, _decision: Any) -> list[str]:
        """JSON pointers the policy's ``system.log.mask`` rule names for this input.

        Runs on the decision log's writer thread, on an instance of its own per revision:
        borrowing pooled instances would make logging wait behind (and slow) requests. The
        input was validated when the decision was made.
        """
        assert self.service is not None
        policy = self.service.policy
        if MASK_ENTRYPOINT not in policy.entrypoints:
            return []
        if self._mask_instance is None or self._mask_instance[0] is not policy:
            self._mask_instance = (policy, policy.pool.dedicated())
        instance = self._mask_instance[1]
        result = instance.evaluate(policy.module.entrypoint_id(MASK_ENTRYPOINT), request.input_json)
        if instance.broken:
            self._mask_instance = None
        if not result:
            return []
        paths = result[0]["result"]
        return [p for p in paths if isinstance(p, str)]

    async def _start_grpc(self) -> None:
        assert self.service is not None
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ]
        )
        evaluator = CoalescingEvaluator(
            self.service, self._executor, workers=self.config.host.pool_size
        )
        decisions_pb2_grpc.add_DecisionsServicer_to_server(
            DecisionsServicer(
                self.service, self._executor, evaluator, workers=self.config.host.pool_size
            ),
            server,
        )
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(
            AuthorizationServicer(evaluator, self.config.envoy_entrypoint), server
        )
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        names = (
            decisions_pb2.DESCRIPTOR.services_by_name["Decisions"].full_name,
            external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
        self.grpc_port = server.add_insecure_port(self.config.grpc_addr)
        if self.grpc_port == 0:
            raise OSError(f"cannot bind gRPC on {self.config.grpc_addr}")
        await server.start()
        for name in ("", *names[:2]):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._grpc = server

    async def _start_http(self) -> None:
        assert self.service is not None
        app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=[problem_middleware])
        app[SERVICE_KEY] = self.service
        add_authzen_routes(
            app,
            self.service,
            self._executor,
            entrypoint=self.config.authzen_entrypoint,
            base_url=self.config.authzen_base_url,
        )
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/status", self._status)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = _split(self.config.http_addr)
        site = web.TCPSite(runner, host, port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.http_port = sockets[0].getsockname()[1] if sockets else port
        self._runner = runner

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _status(self, request: web.Request) -> web.Response:
        service = request.app[SERVICE_KEY]
        return web.json_response(
            {
                "revision": service.revision,
                "entrypoints": sorted(service.policy.entrypoints),
                "bundle": self._source.description,
            }
        )

    # --- bundle updates -------------------------------------------------------------

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.poll_interval)
            try:
                policy = await loop.run_in_executor(
                    self._executor, self._loader.try_load, self._source
                )
            except Exception:
                log.exception("bundle watcher failed; keeping revision %s", self.revision)
                continue
            if policy is not None and self.service is not None:
                self.service.swap(policy)
                log.info("now serving revision %r", policy.revision)

    async def reload_now(self) -> bool:
        """Poll the bundle source once; True if a new revision was swapped in."""
        loop = asyncio.get_running_loop()
        policy = await loop.run_in_executor(self._executor, self._loader.try_load, self._source)
        if policy is None or self.service is None:
            return False
        self.service.swap(policy)
        return True

    @property
    def revision(self) -> str:
        """The revision currently serving."""
        return self.service.revision if self.service else ""

    def banner(self) -> str:
        """The one start-up line: where the PDP listens and what it serves."""
        host = _split(self.config.grpc_addr)[0]
        http_host = _split(self.config.http_addr)[0]
        return (
            f"council pdp serving grpc={host}:{self.grpc_port} "
            f"http={http_host}:{self.http_port} revision={json.dumps(self.revision)}"
        )

    # --- shutdown -------------------------------------------------------------------

    async def stop(self) -> None:
        """Graceful shutdown; idempotent."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._grpc is not None:
            await self._grpc.stop(self.config.grace)
            self._grpc = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        loop = asyncio.get_running_loop()
        if self.service is not None:
            await loop.run_in_executor(self._executor, self.service.close)
            self.service = None
        self._executor.shutdown(wait=True)
        self._loader.close()


async def serve_forever(config: PDPServerConfig, ready: asyncio.Event | None = None) -> None:
    """Run a PDP until cancelled or SIGINT/SIGTERM, printing the banner once bound."""
    await serve_until_signalled(PDPServer(config), ready)
