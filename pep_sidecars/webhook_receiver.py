"""A small webhook receiver that stores every request it gets in SQLite.

It is the upstream the webhook PEP ships with: it listens on a Unix domain socket only
(never a TCP port), so in the shipped configuration the one way to reach it is through the
PEP, which starts it on a socket in a private directory.

Each request becomes one row of ``events``: method, path with query, every header as
received (order and duplicates kept), the body bytes and their SHA-256. A second request
with a ``webhook-id`` already stored is answered ``200`` and not stored again (Standard
Webhooks senders resend under the same id); a new one is answered ``202`` with its row id.
The receiver stops on SIGTERM/SIGINT, and by itself when the process that started it dies.

    python -m pep_sidecars.webhook_receiver --unix PATH --db FILE
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from gateway.problem import problem_middleware

__all__ = ["EventStore", "ReceiverConfig", "StoredEvent", "build_app", "main", "serve"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 4 * 1024 * 1024
PARENT_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class ReceiverConfig:
    """Where the receiver listens and stores.

    Attributes:
        socket: Unix socket path to bind (its directory should be private to the PEP).
        db: SQLite file for received events.
        max_body: largest body accepted, in bytes.
    """

    socket: Path
    db: Path
    max_body: int = DEFAULT_MAX_BODY


@dataclass(frozen=True)
class StoredEvent:
    """The outcome of storing one request."""

    seq: int
    duplicate: bool


class EventStore:
    """The ``events`` table, written from one thread so the event loop never waits on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="receiver-db")
        self._db: sqlite3.Connection | None = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), check_same_thread=False)
        db.execute("pragma journal_mode=wal")
        db.execute(
            "create table if not exists events ("
            " seq integer primary key, received_ns integer not null, webhook_id text unique,"
            " method text not null, path text not null, headers text not null,"
            " body blob not null, sha256 text not null)"
        )
        db.commit()
        self._db = db

    async def open(self) -> None:
        """Open (creating if needed) the database."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)

    def _store(
        self, webhook_id: str | None, method: str, path: str, headers: str, body: bytes
    ) -> StoredEvent:
        assert self._db is not None
        with self._db:
            cursor = self._db.execute(
                "insert or ignore into events"
                " (received_ns, webhook_id, method, path, headers, body, sha256)"
                " values (?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time_ns(),
                    webhook_id,
                    method,
                    path,
                    headers,
                    body,
                    hashlib.sha256(body).hexdigest(),
                ),
            )
        if cursor.rowcount == 1:
            return StoredEvent(int(cursor.lastrowid or 0), duplicate=False)
        row = self._db.execute(
            "select seq from events where webhook_id = ?", (webhook_id,)
        ).fetchone()
        return StoredEvent(int(row[0]), duplicate=True)

    async def store(self, request: web.Request, body: bytes) -> StoredEvent:
        """Store one request (committed before this returns)."""
        headers = json.dumps(
            [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers]
        )
        return await asyncio.get_running_loop().run_in_executor(
            self._executor,
            self._store,
            request.headers.get("webhook-id") or None,
            request.method,
            request.raw_path,
            headers,
            body,
        )

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def close(self) -> None:
        """Close the database and its thread. Idempotent."""
        if self._db is None:
            return
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)


STORE_KEY: web.AppKey[EventStore] = web.AppKey("store", EventStore)


async def _receive(request: web.Request) -> web.Response:
    body = await request.read()
    stored = await request.app[STORE_KEY].store(request, body)
    if stored.duplicate:
        return web.json_response({"event": stored.seq, "duplicate": True}, status=200)
    return web.json_response({"event": stored.seq, "duplicate": False}, status=202)


def build_app(store: EventStore, max_body: int = DEFAULT_MAX_BODY) -> web.Application:
    """The receiver application: every method on every path is stored."""
    app = web.Application(client_max_size=max_body, middlewares=[problem_middleware])
    app[STORE_KEY] = store
    app.router.add_route("*", "/{tail:.*}", _receive)
    return app


async def serve(config: ReceiverConfig, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then shut down and close the store."""
    store = EventStore(config.db)
    await store.open()
    runner = web.AppRunner(build_app(store, config.max_body), access_log=None)
    await runner.setup()
    try:
        with contextlib.suppress(FileNotFoundError):
            config.socket.unlink()  # left over from a receiver that did not shut down
        site = web.UnixSite(runner, str(config.socket))
        await site.start()
        # Belt and braces: the directory is private, and so is the socket itself.
        os.chmod(config.socket, 0o600)
        log.info("webhook receiver on unix:%s storing in %s", config.socket, config.db)
        await stop.wait()
    finally:
        await runner.cleanup()
        await store.close()
        with contextlib.suppress(FileNotFoundError):
            config.socket.unlink()


async def _watch_parent(stop: asyncio.Event) -> None:
    """Set ``stop`` once the process that started us is gone (we were re-parented).

    The PEP stops its receiver at shutdown; this covers a PEP that was killed, so no
    orphaned receiver keeps the events database open.
    """
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_POLL_SECONDS)
    log.warning("parent process %d is gone; stopping", parent)
    stop.set()


async def _main(config: ReceiverConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_parent(stop))
    try:
        await serve(config, stop)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (``python -m pep_sidecars.webhook_receiver``)."""
    parser = argparse.ArgumentParser(
        prog="webhook-receiver", description="store received webhooks in SQLite"
    )
    parser.add_argument("--unix", required=True, help="Unix socket path to listen on")
    parser.add_argument("--db", required=True, help="SQLite file for received events")
    parser.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_main(ReceiverConfig(Path(args.unix), Path(args.db), args.max_body)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
