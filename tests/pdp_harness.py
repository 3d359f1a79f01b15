"""Running a real PDP server on 127.0.0.1 from synchronous tests.

The server's event loop runs on its own thread, so tests use ordinary blocking gRPC and
HTTP clients against real sockets.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from council.policy_build import build_bundle
from gateway.lifecycle import Server
from gateway.pdp_server import PDPServer, PDPServerConfig
from pdp.bundle_signing import VerificationKeys, sign_bundle
from proto.council.v1 import usage_pb2, usage_pb2_grpc

T = TypeVar("T")


class LoopThread:
    """An asyncio loop on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class SigningKey:
    """An RSA key pair for signing test bundles."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def keys(self) -> VerificationKeys:
        return VerificationKeys.single(self.public_pem, algorithm="RS256")

    def sign(self, bundle: Path) -> bytes:
        return sign_bundle(bundle, self.private, "RS256")


def build_signed(source: Path, out: Path, key: SigningKey, revision: str) -> Path:
    """Build ``source`` with opa and sign it; returns ``out``."""
    build_bundle(source, out, revision=revision)
    out.write_bytes(key.sign(out))
    return out


S = TypeVar("S", bound=Server)


@contextmanager
def running_server(server: S) -> Iterator[tuple[S, LoopThread]]:
    """Start any Council server on its own loop thread, yield it, and stop it cleanly."""
    loop = LoopThread()
    try:
        loop.run(server.start())
        yield server, loop
    finally:
        try:
            loop.run(server.stop())
        finally:
            loop.close()


@contextmanager
def running_pdp(config: PDPServerConfig) -> Iterator[tuple[PDPServer, LoopThread]]:
    """Start a PDP, yield it with its loop, and stop it cleanly."""
    with running_server(PDPServer(config)) as running:
        yield running


class RecordingUsage(usage_pb2_grpc.UsageServicer):
    """A minimal ``council.v1.Usage`` servicer that keeps every event it is sent."""

    def __init__(self) -> None:
        self.events: list[usage_pb2.UsageEvent] = []

    async def Report(
        self, request: usage_pb2.ReportUsageRequest, context: grpc.aio.ServicerContext
    ) -> usage_pb2.ReportUsageResponse:
        self.events.extend(request.events)
        return usage_pb2.ReportUsageResponse(acknowledged=[e.event_id for e in request.events])
