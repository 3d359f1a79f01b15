"""Usage events from enforcement points to the gateway, without losing any.

:meth:`UsageReporter.record` only appends to an in-memory list (it never waits on the
network or the disk). A background task moves events into a local SQLite spool, sends
the spool to the gateway's ``council.v1.Usage/Report`` in batches, and deletes what the
gateway acknowledged. When the gateway is down, events wait in the spool (surviving a
restart) and go out once it is back; event ids make resending idempotent.

Lifecycle: ``await start()``, then ``record()`` freely, then ``await close()`` (which
spools and tries a last send).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from proto.council.v1 import usage_pb2, usage_pb2_grpc

__all__ = ["UsageReporter", "UsageReporterConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsageReporterConfig:
    """Where events go and how often.

    Attributes:
        gateway: ``host:port`` of the gateway's gRPC listener (None: spool only).
        spool: SQLite file holding events not yet acknowledged.
        source: this reporter's name in every event, e.g. ``pep:webhook``.
        flush_interval: seconds between sends.
        batch: most events per Report call.
        credentials: channel credentials for mTLS, or None for plaintext.
    """

    gateway: str | None
    spool: Path
    source: str
    flush_interval: float = 0.5
    batch: int = 500
    timeout: float = 2.0
    credentials: grpc.ChannelCredentials | None = None


_VIOLATION_INDEX = re.compile(r"^events\[(\d+)\]")


def _partial_outcome(
    exc: grpc.aio.AioRpcError, batch: list[usage_pb2.UsageEvent]
) -> tuple[list[str], list[usage_pb2.UsageEvent]]:
    """From a refused Report: the ids the gateway still stored, and the events it rejected."""
    status = rpc_status.from_call(exc)
    acked: list[str] = []
    bad: set[int] = set()
    for detail in status.details if status else ():
        reply = usage_pb2.ReportUsageResponse()
        violations = error_details_pb2.BadRequest()
        if detail.Unpack(reply):
            acked.extend(reply.acknowledged)
        elif detail.Unpack(violations):
            for v in violations.field_violations:
                if match := _VIOLATION_INDEX.match(v.field):
                    bad.add(int(match.group(1)))
    if not acked and not bad:
        # A refusal of the whole request: every event in it is unusable as sent.
        bad = set(range(len(batch)))
    return acked, [batch[i] for i in sorted(bad) if i < len(batch)]


class UsageReporter:
    """Buffers, spools and ships usage events."""

    def __init__(self, config: UsageReporterConfig) -> None:
        self.config = config
        self._pending: list[usage_pb2.UsageEvent] = []
        self._db = sqlite3.connect(str(config.spool), check_same_thread=False)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute(
            "create table if not exists spool (event_id text primary key, event blob not null)"
        )
        self._db.commit()
        self._task: asyncio.Task[None] | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stub: usage_pb2_grpc.UsageStub | None = None

    async def start(self) -> None:
        """Open the channel and start the background sender."""
        if self.config.gateway:
            if self.config.credentials is not None:
                self._channel = grpc.aio.secure_channel(
                    self.config.gateway, self.config.credentials
                )
            else:
                self._channel = grpc.aio.insecure_channel(self.config.gateway)
            self._stub = usage_pb2_grpc.UsageStub(self._channel)
        self._task = asyncio.create_task(self._run(), name=f"usage-{self.config.source}")

    def record(
        self,
        *,
        feature: str,
        tenant: str,
        subject: str,
        allowed: bool,
        decision_id: str,
        quantity: float = 1.0,
        unit: str = "request",
        attributes: dict[str, Any] | None = None,
    ) -> str:
        """Queue one event; returns its id. Never blocks."""
        event_id = uuid.uuid4().hex
        self._pending.append(
            usage_pb2.UsageEvent(
                event_id=event_id,
                timestamp_ns=time.time_ns(),
                tenant=tenant,
                feature=feature,
                subject=subject,
                allowed=allowed,
                decision_id=decision_id,
                quantity=quantity,
                unit=unit,
                source=self.config.source,
                attributes_json=json.dumps(attributes or {}, sort_keys=True).encode(),
            )
        )
        return event_id

    def _spool(self, events: list[usage_pb2.UsageEvent]) -> None:
        with self._db:
            self._db.executemany(
                "insert or ignore into spool (event_id, event) values (?, ?)",
                [(e.event_id, e.SerializeToString()) for e in events],
            )

    def _spooled(self, limit: int) -> list[usage_pb2.UsageEvent]:
        rows = self._db.execute("select event from spool order by rowid limit ?", (limit,))
        return [usage_pb2.UsageEvent.FromString(blob) for (blob,) in rows]

    def _forget(self, ids: list[str]) -> None:
        with self._db:
            self._db.executemany("delete from spool where event_id = ?", [(i,) for i in ids])

    def spooled_count(self) -> int:
        """Events waiting for the gateway's acknowledgement (spooled, not in memory)."""
        return int(self._db.execute("select count(*) from spool").fetchone()[0])

    async def flush(self) -> int:
        """Spool what is pending and send what the spool holds; returns events acknowledged."""
        loop = asyncio.get_running_loop()
        pending, self._pending = self._pending, []
        if pending:
            await loop.run_in_executor(None, self._spool, pending)
        if self._stub is None:
            return 0
        sent = 0
        while True:
            batch = await loop.run_in_executor(None, self._spooled, self.config.batch)
            if not batch:
                return sent
            try:
                reply = await self._stub.Report(
                    usage_pb2.ReportUsageRequest(events=batch), timeout=self.config.timeout
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    # The gateway stored the good events and refused the bad ones; resending
                    # the bad ones would block the spool forever, so they are dropped (logged).
                    acked, rejected = _partial_outcome(exc, batch)
                    for event in rejected:
                        log.error(
                            "usage: gateway refused event %s: %s", event.event_id, exc.details()
                        )
                    gone = acked + [e.event_id for e in rejected]
                    await loop.run_in_executor(None, self._forget, gone)
                    sent += len(acked)
                    continue
                log.warning(
                    "usage: gateway %s unavailable (%s); %d event(s) kept in the spool",
                    self.config.gateway,
                    exc.code().name,
                    len(batch),
                )
                return sent
            acked = list(reply.acknowledged)
            await loop.run_in_executor(None, self._forget, acked)
            sent += len(acked)
            if len(acked) < len(batch):
                return sent

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval)
            try:
                await self.flush()
            except Exception:
                log.exception("usage: flush failed; events stay in the spool")

    async def close(self) -> None:
        """Stop the sender, spool everything, try one last send, close. Idempotent."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()
        if self._pending:
            self._spool(self._pending)
            self._pending = []
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        self._db.close()
