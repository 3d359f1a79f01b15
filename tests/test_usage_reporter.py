"""Usage events from a PEP reach the gateway's store: spooled while it is down, sent once
it is up, never twice, and a bad event never blocks the ones behind it."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from gateway.usage_intake import UsageConfig, UsageStore
from gateway.usage_servicer import add_usage_service
from pep_sidecars.usage import UsageReporter, UsageReporterConfig


async def _gateway(
    store: UsageStore, executor: ThreadPoolExecutor, port: int = 0
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    add_usage_service(server, store, executor)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


def _record(reporter: UsageReporter, n: int, tenant: str = "acme") -> list[str]:
    return [
        reporter.record(
            feature="webhook",
            tenant=tenant,
            subject=f"sender-{i}",
            allowed=True,
            decision_id=f"d{i}",
        )
        for i in range(n)
    ]


def test_events_wait_in_the_spool_until_the_gateway_is_up(tmp_path: Path) -> None:
    async def scenario() -> None:
        executor = ThreadPoolExecutor(2)
        store = UsageStore(UsageConfig(db_path=tmp_path / "usage.db"))
        # Reserve a port, then leave it closed: the gateway is "down" at first.
        server, port = await _gateway(store, executor)
        await server.stop(None)
        reporter = UsageReporter(
            UsageReporterConfig(
                gateway=f"127.0.0.1:{port}",
                spool=tmp_path / "spool.db",
                source="pep:test",
                flush_interval=3600,
                timeout=0.5,
            )
        )
        await reporter.start()
        _record(reporter, 5)
        assert await reporter.flush() == 0
        assert reporter.spooled_count() == 5
        server, _ = await _gateway(store, executor, port)
        try:
            # The channel reconnects with backoff; the reporter's periodic flush would simply
            # try again, as this loop does.
            sent = 0
            for _ in range(40):
                sent = await reporter.flush()
                if sent:
                    break
                await asyncio.sleep(0.25)
            assert sent == 5
            assert reporter.spooled_count() == 0
            assert store.event_count() == 5
            # Nothing is sent twice.
            assert await reporter.flush() == 0
            assert store.event_count() == 5
        finally:
            await reporter.close()
            await server.stop(None)
            store.close()
            executor.shutdown()

    asyncio.run(scenario())


def test_spooled_events_survive_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = UsageReporterConfig(gateway=None, spool=tmp_path / "spool.db", source="pep:test")
        first = UsageReporter(config)
        await first.start()
        _record(first, 3)
        await first.close()
        second = UsageReporter(config)
        assert second.spooled_count() == 3
        await second.close()

    asyncio.run(scenario())


def test_a_bad_event_is_dropped_and_does_not_block_the_rest(tmp_path: Path) -> None:
    async def scenario() -> None:
        executor = ThreadPoolExecutor(2)
        store = UsageStore(UsageConfig(db_path=tmp_path / "usage.db"))
        server, port = await _gateway(store, executor)
        reporter = UsageReporter(
            UsageReporterConfig(
                gateway=f"127.0.0.1:{port}",
                spool=tmp_path / "spool.db",
                source="pep:test",
                flush_interval=3600,
            )
        )
        await reporter.start()
        try:
            _record(reporter, 2)
            _record(reporter, 1, tenant="")  # no tenant: the gateway refuses this one
            _record(reporter, 2)
            await reporter.flush()
            assert store.event_count() == 4
            assert reporter.spooled_count() == 0
        finally:
            await reporter.close()
            await server.stop(None)
            store.close()
            executor.shutdown()

    asyncio.run(scenario())
