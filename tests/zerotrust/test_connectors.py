"""The connector PEP: real SQLite files, a real aiohttp upstream, a real PDP and gateway.

The PDP serves a bundle built and signed from ``rego/``; the gateway is a real
``grpc.aio`` server with ``Tokens`` (the JWKS the sidecar verifies against) and a minimal
``Usage`` servicer that records what it receives. The sidecar is exercised over HTTP, in
process and as the ``council sidecar connector`` command.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from pdp_harness import LoopThread, RecordingUsage, SigningKey, build_signed, running_pdp

from council.opa_tool import PROJECT_ROOT
from gateway.pdp_server import PDPServerConfig
from gateway.tokens import CredentialStore, KeyRing, TokenConfig, TokenService
from gateway.tokens_servicer import TokensServicer
from pdp.config import HostConfig
from pep_sidecars.connector_sidecar import ConnectorSidecar, ConnectorSidecarConfig
from pep_sidecars.connectors import (
    AccessDeniedError,
    Caller,
    ConnectorConfigError,
    ConnectorPEP,
    ConnectorSpec,
    DatasetNotFoundError,
    DecisionUnavailableError,
    InvalidQueryError,
    Query,
    UpstreamError,
    create_connector,
)
from pep_sidecars.pdp_client import PDPClient, PDPClientConfig
from proto.council.v1 import tokens_pb2_grpc, usage_pb2_grpc

REGO = PROJECT_ROOT / "rego"
TENANT = "acme"
CONNECTOR_AUDIENCE = "council-connector"


# --- data sources ----------------------------------------------------------------------------


def make_database(path: Path) -> Path:
    """A warehouse: labelled tables, an unlabelled one, one with an unknown label, a view."""
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL)")
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)",
            [(i, f"c{i % 7}", round(i * 9.5, 2)) for i in range(1, 41)],
        )
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?)",
            [(i, f"name {i}", f"p{i}@example.com") for i in range(1, 151)],
        )
        db.execute("CREATE TABLE scratch (x INTEGER)")
        db.execute("CREATE TABLE vault (secret TEXT)")
        db.execute("INSERT INTO vault VALUES ('the combination')")
        db.execute("CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 300")
        db.execute("CREATE TABLE council_catalog (dataset TEXT PRIMARY KEY, labels TEXT)")
        db.executemany(
            "INSERT INTO council_catalog VALUES (?, ?)",
            [("orders", "internal"), ("customers", '["pii", "internal"]'), ("vault", "top-secret")],
        )
    db.close()
    return path


async def upstream_app() -> web.Application:
    """A JSON API: public products (nested under items), PII patients, a failing endpoint."""

    async def products(_request: web.Request) -> web.Response:
        items = [{"sku": f"p{i}", "price": i * 3, "name": f"Product {i}"} for i in range(1, 11)]
        return web.json_response({"meta": {"count": 10}, "items": items})

    async def patients(_request: web.Request) -> web.Response:
        return web.json_response([{"id": 1, "name": "Ada"}, {"id": 2, "name": "Bo"}])

    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.router.add_get("/api/products", products)
    app.router.add_get("/api/patients", patients)
    app.router.add_get("/api/broken", broken)
    return app


# --- the gateway -------------------------------------------------------------------------------


@dataclass
class World:
    loop: LoopThread
    pdp: str
    gateway: str
    tokens: TokenService
    usage: RecordingUsage
    upstream: str
    root: Path

    def token(self, subject: str, *scopes: str, tenant: str = TENANT) -> str:
        return self.tokens.issue(subject, tenant, scopes, audience=CONNECTOR_AUDIENCE).token

    def config_file(self, name: str = "connectors.json") -> Path:
        path = self.root / name
        path.write_text(
            json.dumps(
                {
                    "connectors": [
                        {
                            "name": "warehouse",
                            "kind": "sqlite",
                            "tenant": TENANT,
                            "options": {
                                "path": "warehouse.db",
                                "labels": {"big_orders": ["internal", "financial"]},
                            },
                        },
                        {
                            "name": "shop-api",
                            "kind": "http",
                            "tenant": TENANT,
                            "options": {
                                "base_url": self.upstream,
                                "datasets": {
                                    "products": {
                                        "url": "/api/products",
                                        "labels": ["public"],
                                        "records": "items",
                                    },
                                    "patients": {"url": "/api/patients", "labels": ["pii"]},
                                    "broken": {"url": "/api/broken", "labels": ["public"]},
                                },
                            },
                        },
                    ]
                }
            )
        )
        return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("world")
    make_database(root / "warehouse.db")
    key = SigningKey()
    bundle = build_signed(REGO, root / "bundle.tar.gz", key, "rev-connectors")
    config = PDPServerConfig(
        bundle=str(bundle), keys=key.keys(), poll_interval=3600, host=HostConfig(pool_size=2)
    )
    token_config = TokenConfig(audiences=("council", CONNECTOR_AUDIENCE))
    tokens = TokenService(token_config, KeyRing(root / "keys", token_config))
    credentials = CredentialStore(root / "credentials.db")
    usage = RecordingUsage()
    with running_pdp(config) as (server, loop):

        async def start() -> tuple[grpc.aio.Server, int, web.AppRunner, int]:
            gateway = grpc.aio.server()
            tokens_pb2_grpc.add_TokensServicer_to_server(
                TokensServicer(tokens, credentials), gateway
            )
            usage_pb2_grpc.add_UsageServicer_to_server(usage, gateway)
            port = gateway.add_insecure_port("127.0.0.1:0")
            await gateway.start()
            runner = web.AppRunner(await upstream_app())
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return gateway, port, runner, runner.addresses[0][1]

        gateway, port, runner, http_port = loop.run(start())
        try:
            yield World(
                loop,
                f"127.0.0.1:{server.grpc_port}",
                f"127.0.0.1:{port}",
                tokens,
                usage,
                f"http://127.0.0.1:{http_port}",
                root,
            )
        finally:
            loop.run(runner.cleanup())
            loop.run(gateway.stop(grace=None))
            credentials.close()


def caller(subject: str, *scopes: str, verified: bool = True) -> Caller:
    return Caller(subject, TENANT, frozenset(scopes), verified)


@contextlib.contextmanager
def pep_for(world: World, *specs: ConnectorSpec, pdp: str | None = None) -> Iterator[ConnectorPEP]:
    """An opened ConnectorPEP on the world's loop (closed afterwards)."""
    client_config = PDPClientConfig(target=pdp or world.pdp, retries=0)

    async def make() -> tuple[ConnectorPEP, PDPClient]:
        client = PDPClient(client_config)
        pep = ConnectorPEP([create_connector(s) for s in specs], client)
        await pep.open()
        return pep, client

    pep, client = world.loop.run(make())
    try:
        yield pep
    finally:
        world.loop.run(pep.close())
        world.loop.run(client.close())


def sqlite_spec(world: World, **options: Any) -> ConnectorSpec:
    """The warehouse as the sidecar's config file has it (the view labelled in config)."""
    return ConnectorSpec(
        "warehouse",
        "sqlite",
        TENANT,
        {
            "path": str(world.root / "warehouse.db"),
            "labels": {"big_orders": ["internal", "financial"]},
            **options,
        },
    )


def http_spec(world: World) -> ConnectorSpec:
    doc = json.loads(world.config_file("spec.json").read_text())
    options = doc["connectors"][1]["options"]
    return ConnectorSpec("shop-api", "http", TENANT, options)


# --- SQLite ------------------------------------------------------------------------------------


def test_sqlite_reads_allowed_and_denied_by_labels(world: World) -> None:
    with pep_for(world, sqlite_spec(world)) as pep:
        run = world.loop.run
        bob = caller("bob", "connector:read:orders", "connector:read:customers")
        result = run(pep.read(bob, "orders", limit=5))
        assert result.columns == ("id", "customer", "total")
        assert [r["id"] for r in result.records] == [1, 2, 3, 4, 5]
        assert result.truncated and result.decision_id

        with pytest.raises(AccessDeniedError) as denied:
            run(pep.read(bob, "customers", limit=5))
        assert denied.value.decision_id and denied.value.dataset == "customers"
        assert set(denied.value.reasons) == {
            "label 'pii' on dataset 'customers' needs scope 'connector:read:pii'",
            "label 'pii' on dataset 'customers' needs clearance 2; caller 'bob' has 1",
        }

        # Alice has the clearance and the pii scope; the policy caps pii reads at 100 rows.
        alice = caller("alice", "connector:read:customers", "connector:read:pii")
        result = run(pep.read(alice, "customers", limit=1000))
        assert len(result.records) == 100 and result.truncated

        # The view's labels come from the config; the vault's label is unknown to policy.
        with pytest.raises(AccessDeniedError) as denied:
            run(pep.read(caller("bob", "connector:read:big_orders"), "big_orders"))
        assert denied.value.reasons == (
            "label 'financial' on dataset 'big_orders' needs clearance 2; caller 'bob' has 1",
        )
        with pytest.raises(AccessDeniedError) as denied:
            run(pep.read(caller("alice", "connector:read:vault"), "vault"))
        assert any("unknown label 'top-secret'" in r for r in denied.value.reasons)
        with pytest.raises(AccessDeniedError, match="has no labels"):
            run(pep.read(caller("alice", "connector:read:scratch"), "scratch"))


def test_sqlite_labels_are_read_at_each_request(world: World, tmp_path: Path) -> None:
    db_path = make_database(tmp_path / "live.db")
    spec = ConnectorSpec("live", "sqlite", TENANT, {"path": str(db_path)})
    with pep_for(world, spec) as pep:
        bob = caller("bob", "connector:read:orders")
        assert world.loop.run(pep.read(bob, "orders", limit=1)).records
        with sqlite3.connect(db_path) as db:
            db.execute(
                "UPDATE council_catalog SET labels = 'internal,pii' WHERE dataset = 'orders'"
            )
        with pytest.raises(AccessDeniedError, match="needs scope 'connector:read:pii'"):
            world.loop.run(pep.read(bob, "orders", limit=1))


def test_sqlite_structured_queries(world: World) -> None:
    with pep_for(world, sqlite_spec(world)) as pep:
        run = world.loop.run
        bob = caller("bob", "connector:read:orders", "connector:query:orders")
        query = Query.from_json(
            {
                "columns": ["id", "total"],
                "where": {"customer": "c3", "total": {"op": ">", "value": 100}},
                "order_by": ["-total"],
                "limit": 2,
            }
        )
        result = run(pep.query(bob, "orders", query))
        assert result.records == [{"id": 38, "total": 361.0}, {"id": 31, "total": 294.5}]
        assert result.truncated

        # Identifiers never reach SQL unless they name real columns and datasets.
        evil = Query.from_json({"where": {"id = 1; DROP TABLE orders; --": 1}})
        with pytest.raises(InvalidQueryError, match="has no column"):
            run(pep.query(bob, "orders", evil))
        with pytest.raises(DatasetNotFoundError):
            run(pep.read(bob, 'orders" UNION SELECT secret FROM vault --', limit=1))
        # Querying needs its own scope.
        with pytest.raises(AccessDeniedError, match="needs scope 'connector:query:orders'"):
            run(pep.query(caller("bob", "connector:read:orders"), "orders", Query()))
    with pytest.raises(InvalidQueryError):
        Query.from_json({"where": {"total": {"op": "~", "value": 1}}})
    with pytest.raises(InvalidQueryError):
        Query.from_json({"limit": 0})


def test_pdp_down_fails_closed(world: World) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    with (
        pep_for(world, sqlite_spec(world), pdp=closed) as pep,
        pytest.raises(DecisionUnavailableError, match="refused without a decision"),
    ):
        world.loop.run(pep.read(caller("alice", "connector:read:orders"), "orders", limit=1))


def test_connector_configs_are_validated(world: World) -> None:
    with pytest.raises(ConnectorConfigError, match="unknown kind 'ftp'"):
        create_connector(ConnectorSpec("x", "ftp"))
    with pytest.raises(ConnectorConfigError, match="no database file"):
        create_connector(ConnectorSpec("x", "sqlite", options={"path": "/nonexistent.db"}))
    with pytest.raises(ConnectorConfigError, match="not an absolute http"):
        create_connector(
            ConnectorSpec("x", "http", options={"datasets": {"d": {"url": "ftp://h/x"}}})
        )
    with pytest.raises(ConnectorConfigError, match="malformed label"):
        create_connector(sqlite_spec(world, labels={"orders": ["Bad Label"]}))
    twice = ConnectorSpec("again", "sqlite", TENANT, {"path": str(world.root / "warehouse.db")})
    with (
        pytest.raises(ConnectorConfigError, match="served by both"),
        pep_for(world, sqlite_spec(world), twice),
    ):
        pass


# --- HTTP --------------------------------------------------------------------------------------


def test_http_connector_allowed_and_denied_by_labels(world: World) -> None:
    with pep_for(world, http_spec(world)) as pep:
        run = world.loop.run
        reader = caller("bob", "connector:read:products", "connector:query:products")
        result = run(pep.read(reader, "products", limit=3))
        assert [r["sku"] for r in result.records] == ["p1", "p2", "p3"]
        assert result.truncated and result.columns == ("sku", "price", "name")

        cheap = Query.from_json(
            {
                "columns": ["sku"],
                "where": {"price": {"op": "<=", "value": 9}},
                "order_by": ["-price"],
            }
        )
        assert run(pep.query(reader, "products", cheap)).records == [
            {"sku": "p3"},
            {"sku": "p2"},
            {"sku": "p1"},
        ]
        named = Query.from_json({"where": {"name": {"op": "like", "value": "product 1%"}}})
        assert [r["sku"] for r in run(pep.query(reader, "products", named)).records] == [
            "p1",
            "p10",
        ]

        with pytest.raises(AccessDeniedError) as denied:
            run(pep.read(caller("bob", "connector:read:patients"), "patients", limit=10))
        assert "label 'pii' on dataset 'patients' needs scope 'connector:read:pii'" in (
            denied.value.reasons
        )
        carol = caller("carol", "connector:read:patients", "connector:read:pii")
        assert [r["name"] for r in run(pep.read(carol, "patients", limit=10)).records] == [
            "Ada",
            "Bo",
        ]

        with pytest.raises(UpstreamError, match="answered 500"):
            run(pep.read(caller("bob", "connector:read:broken"), "broken", limit=1))


# --- the sidecar over HTTP ---------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


def call(url: str, *, token: str | None = None, body: Any = None) -> Reply:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return Reply(resp.status, dict(resp.headers), json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), json.loads(exc.read()))


@contextlib.contextmanager
def sidecar(
    world: World, tmp_path: Path, *, pdp: str | None = None, gateway: str | None = None
) -> Iterator[str]:
    config = ConnectorSidecarConfig(
        listen="127.0.0.1:0",
        pdp=pdp or world.pdp,
        gateway=gateway or world.gateway,
        config_file=world.config_file(),
        usage_spool=tmp_path / "usage.db",
    )
    server = ConnectorSidecar(config)
    world.loop.run(server.start())
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        world.loop.run(server.close())


def test_sidecar_serves_allowed_reads_and_explains_denials(world: World, tmp_path: Path) -> None:
    before = len(world.usage.events)
    with sidecar(world, tmp_path) as base:
        token = world.token("bob", "connector:read:orders", "connector:query:orders")
        ok = call(f"{base}/datasets/orders?op=read&limit=2", token=token)
        assert ok.status == 200
        assert ok.body["count"] == 2 and ok.body["truncated"] is True
        assert ok.body["operation"] == "read" and ok.body["decision_id"]
        assert ok.headers["council-decision-id"] == ok.body["decision_id"]

        query = {"columns": ["id"], "where": {"customer": "c1"}, "order_by": ["id"], "limit": 3}
        ok = call(f"{base}/datasets/orders/query", token=token, body=query)
        assert ok.status == 200 and ok.body["records"] == [{"id": 1}, {"id": 8}, {"id": 15}]

        denied = call(f"{base}/datasets/customers", token=token)
        assert denied.status == 403
        assert denied.headers["Content-Type"].startswith("application/problem+json")
        problem = denied.body
        assert problem["code"] == "access_denied" and problem["title"] == "Forbidden"
        assert problem["detail"] == "the policy denied read on dataset 'customers'"
        assert (
            "operation 'read' on dataset 'customers' needs scope 'connector:read:customers'"
            in (problem["reasons"])
        )
        assert (
            "label 'pii' on dataset 'customers' needs scope 'connector:read:pii'"
            in (problem["reasons"])
        )
        assert problem["decision_id"] and problem["hint"]
        assert denied.headers["council-decision-id"] == problem["decision_id"]

        products = call(
            f"{base}/datasets/products?limit=1",
            token=world.token("dave", "connector:read:products"),
        )
        assert products.status == 200 and products.body["records"][0]["sku"] == "p1"
        assert (
            call(f"{base}/datasets/broken", token=world.token("d", "connector:read:broken")).status
            == 502
        )

        missing = call(f"{base}/datasets/nothing", token=token)
        assert missing.status == 404 and missing.body["code"] == "dataset_not_found"
        bad = call(f"{base}/datasets/orders/query", token=token, body=b"{not json")
        assert bad.status == 400 and bad.body["code"] == "invalid_query"
        bad = call(f"{base}/datasets/orders?limit=lots", token=token)
        assert bad.status == 400
        bad = call(f"{base}/datasets/orders?op=delete", token=token)
        assert bad.status == 400 and "only op=read" in bad.body["detail"]

        anonymous = call(f"{base}/datasets/orders")
        assert anonymous.status == 401 and anonymous.body["code"] == "token_missing"
        assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="council"'
        other = TokenConfig(audiences=(CONNECTOR_AUDIENCE,))
        forged = TokenService(other, KeyRing(tmp_path / "forger", other)).issue(
            "bob", TENANT, ["connector:read:orders"], audience=CONNECTOR_AUDIENCE
        )
        rejected = call(f"{base}/datasets/orders", token=forged.token)
        assert rejected.status == 401
        assert rejected.body["detail"] == "signed by a key the gateway does not publish"
        wrong_audience = world.tokens.issue("bob", TENANT, ["connector:read:orders"]).token
        assert call(f"{base}/datasets/orders", token=wrong_audience).status == 401
    # Closing the sidecar flushed its usage events to the gateway.
    events = world.usage.events[before:]
    assert {(e.feature, e.allowed) for e in events} >= {
        ("connector:sqlite", True),
        ("connector:sqlite", False),
        ("connector:http", True),
    }
    read = next(e for e in events if e.allowed and e.feature == "connector:sqlite")
    assert read.unit == "row" and read.quantity == 2 and read.tenant == TENANT
    assert json.loads(read.attributes_json)["dataset"] == "orders"
    assert all(e.source == "pep:connector" and e.decision_id for e in events)


def test_sidecar_fails_closed_with_503_when_pdp_or_gateway_is_down(
    world: World, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    token = world.token("bob", "connector:read:orders")
    with sidecar(world, tmp_path, pdp=closed) as base:
        reply = call(f"{base}/datasets/orders", token=token)
        assert reply.status == 503
        assert reply.body["code"] == "pdp_unavailable"
        assert reply.headers["Retry-After"] == "5"
        assert "refused without a decision" in reply.body["detail"]
    # Without the gateway's keys no token can be verified, so nothing is served.
    with sidecar(world, tmp_path / "no-gateway", gateway=closed) as base:
        reply = call(f"{base}/datasets/orders", token=token)
        assert reply.status == 503 and reply.body["code"] == "gateway_unavailable"
        assert "did not provide its token keys" in reply.body["detail"]


def test_sidecar_command_serves_until_terminated(world: World, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "council", "sidecar", "connector",
            "--listen", f"127.0.0.1:{port}", "--pdp", world.pdp, "--gateway", world.gateway,
            "--config", str(world.config_file()), "--usage-spool", str(tmp_path / "spool.db"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                reply = call(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "the sidecar did not come up"
                time.sleep(0.1)
        assert reply.status == 200
        token = world.token("bob", "connector:read:orders")
        assert call(f"http://127.0.0.1:{port}/datasets/orders?limit=1", token=token).status == 200
        assert call(f"http://127.0.0.1:{port}/datasets/customers", token=token).status == 403
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "connector sidecar listening on 127.0.0.1" in stderr
