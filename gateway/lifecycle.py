"""Running a server process until it is told to stop.

Every Council server (PDP, gateway, sidecars) starts, prints one line saying where it
listens, serves until SIGINT or SIGTERM, and then shuts down gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Protocol

__all__ = ["Server", "serve_until_signalled", "wait_for_stop_signal"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Server(Protocol):
    """A server with an explicit lifecycle."""

    async def start(self) -> None:
        """Bind and begin serving."""

    async def stop(self) -> None:
        """Stop accepting, let in-flight work finish, release resources."""

    def banner(self) -> str:
        """The one start-up line: where it listens."""


async def wait_for_stop_signal() -> None:
    """Return once SIGINT or SIGTERM arrives (the handlers are removed again)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


async def serve_until_signalled(server: Server, ready: asyncio.Event | None = None) -> None:
    """Start ``server``, print its banner, serve until a stop signal, then stop it."""
    await server.start()
    print(server.banner(), flush=True)
    if ready is not None:
        ready.set()
    try:
        await wait_for_stop_signal()
    finally:
        await server.stop()
