"""How an enforcement point asks the PDP: bounded retries, fail closed, TTL cache.

Every PEP goes through :class:`PDPClient`. It never lets a request through without an
answer from the PDP: when the PDP is unreachable after its bounded retries, or answers with
an error, :meth:`PDPClient.decide` raises :class:`PDPUnavailable` and the PEP refuses.

Caching follows the policy: a decision whose obligations carry ``cache_ttl_seconds`` may be
reused for that long for the same entrypoint and input (allows and denials alike); without
it nothing is cached. Cached answers keep their original decision id.

Thread-safety: one client per event loop (grpc.aio); the cache is loop-local.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from proto.council.v1 import decisions_pb2, decisions_pb2_grpc

__all__ = ["PDPClient", "PDPClientConfig", "PDPDecision", "PDPUnavailable", "TLSFiles"]

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
DEFAULT_TIMEOUT = 1.0
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF = 0.05
DEFAULT_CACHE_ENTRIES = 10_000
MAX_CACHE_TTL = 300.0


class PDPUnavailable(Exception):
    """No decision could be obtained; the caller must refuse the request (fail closed)."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class TLSFiles:
    """Client certificate, key and CA bundle for mTLS to the PDP."""

    cert: Path
    key: Path
    ca: Path

    def credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials presenting the certificate and trusting only the CA."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.key.read_bytes(),
            certificate_chain=self.cert.read_bytes(),
        )


@dataclass(frozen=True)
class PDPClientConfig:
    """Where the PDP is and how hard to try.

    Attributes:
        target: ``host:port`` of the PDP's gRPC listener.
        timeout: seconds per attempt.
        retries: extra attempts after the first, for transient failures only.
        backoff: seconds before the first retry; doubles each time.
        tls: mTLS files, or None for a plaintext channel (loopback/tests).
        cache_entries: most cached decisions kept (least recently used dropped).
    """

    target: str
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    tls: TLSFiles | None = None
    cache_entries: int = DEFAULT_CACHE_ENTRIES

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.retries < 0 or self.backoff < 0:
            raise ValueError("timeout must be positive; retries and backoff non-negative")


@dataclass(frozen=True)
class PDPDecision:
    """The PDP's answer as a PEP uses it."""

    allow: bool
    reasons: tuple[str, ...]
    obligations: dict[str, Any]
    decision_id: str
    revision: str
    result: Any = None
    cached: bool = False
    expires_at: float = field(default=0.0, compare=False)

    @property
    def cache_ttl(self) -> float:
        """Seconds the policy allows this decision to be reused (0: not at all)."""
        ttl = self.obligations.get("cache_ttl_seconds", 0)
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0:
            return 0.0
        return min(float(ttl), MAX_CACHE_TTL)


def _cache_key(entrypoint: str, input_json: bytes) -> str:
    return hashlib.sha256(entrypoint.encode() + b"\0" + input_json).hexdigest()


class PDPClient:
    """An asynchronous client of ``council.v1.Decisions`` for enforcement points."""

    def __init__(self, config: PDPClientConfig) -> None:
        self.config = config
        if config.tls is not None:
            self._channel = grpc.aio.secure_channel(config.target, config.tls.credentials())
        else:
            self._channel = grpc.aio.insecure_channel(config.target)
        self._stub = decisions_pb2_grpc.DecisionsStub(self._channel)
        self._cache: OrderedDict[str, PDPDecision] = OrderedDict()

    async def decide(self, entrypoint: str, input_doc: Any) -> PDPDecision:
        """Ask the PDP (or the cache). Raises :class:`PDPUnavailable` when it cannot."""
        input_json = json.dumps(input_doc, sort_keys=True, separators=(",", ":")).encode()
        key = _cache_key(entrypoint, input_json)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None:
            if cached.expires_at > now:
                self._cache.move_to_end(key)
                return PDPDecision(**{**cached.__dict__, "cached": True})
            del self._cache[key]
        decision = await self._ask(entrypoint, input_json)
        ttl = decision.cache_ttl
        if ttl > 0:
            stored = PDPDecision(**{**decision.__dict__, "expires_at": now + ttl})
            self._cache[key] = stored
            while len(self._cache) > self.config.cache_entries:
                self._cache.popitem(last=False)
        return decision

    async def _ask(self, entrypoint: str, input_json: bytes) -> PDPDecision:
        request = decisions_pb2.DecideRequest(entrypoint=entrypoint, input_json=input_json)
        delay = self.config.backoff
        last: grpc.aio.AioRpcError | None = None
        for attempt in range(self.config.retries + 1):
            try:
                reply = await self._stub.Decide(request, timeout=self.config.timeout)
            except grpc.aio.AioRpcError as exc:
                last = exc
                if exc.code() not in RETRYABLE or attempt == self.config.retries:
                    break
                await asyncio.sleep(delay)
                delay *= 2
                continue
            return PDPDecision(
                allow=reply.allow,
                reasons=tuple(reply.reasons),
                obligations=json.loads(reply.obligations_json or b"{}"),
                decision_id=reply.decision_id,
                revision=reply.policy_revision,
                result=json.loads(reply.result_json) if reply.result_json else None,
            )
        assert last is not None
        attempts = self.config.retries + 1
        raise PDPUnavailable(
            f"policy decision point at {self.config.target} did not answer "
            f"({last.code().name}: {last.details()}) after {attempts} attempt(s)",
            last.code(),
        ) from last

    def forget(self) -> None:
        """Drop every cached decision (e.g. after a policy change is announced)."""
        self._cache.clear()

    async def close(self) -> None:
        """Close the channel. Idempotent."""
        await self._channel.close()

    async def __aenter__(self) -> PDPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
