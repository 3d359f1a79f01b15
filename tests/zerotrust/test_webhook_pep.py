"""The webhook PEP over real sockets: a real PDP serving a signed bundle built from rego/, the
real receiver started by the PEP on a private Unix socket, the PEP on 127.0.0.1, and a real
``council.v1.Usage`` gRPC servicer recording the usage events the PEP sends."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from pdp_harness import LoopThread, SigningKey, build_signed, running_pdp

from council.opa_tool import PROJECT_ROOT
from gateway.pdp_server import PDPServerConfig
from pdp.config import HostConfig
from pdp.decision_log import DecisionLogError, show, tail
from pep_sidecars.pdp_client import PDPClientConfig
from pep_sidecars.webhook import UpstreamConfig, WebhookPEP, WebhookPEPConfig
from pep_sidecars.webhook_receiver import ReceiverConfig, serve
from pep_sidecars.webhook_signing import (
    Sender,
    SignatureVerifier,
    StaleTimestamp,
    load_senders,
    parse_secret,
    sign,
)
from proto.council.v1 import usage_pb2, usage_pb2_grpc

REGO = PROJECT_ROOT / "rego"
ENTRYPOINT = "council/webhook/decision"
PROBLEM = "application/problem+json"
WAIT_SECONDS = 10.0


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


SECRETS = {"acme-billing": new_secret(), "acme-crm": new_secret(), "globex-ops": new_secret()}
TENANTS = {"acme-billing": "acme", "acme-crm": "acme", "globex-ops": "globex"}


def eventually(check: Callable[[], Any], what: str) -> Any:
    """Poll ``check`` until it returns something truthy (background writers, async sends)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# --- the real collaborators ---------------------------------------------------------------


class UsageRecorder(usage_pb2_grpc.UsageServicer):
    """A minimal ``council.v1.Usage`` servicer: stores every event once, acknowledges all."""

    def __init__(self) -> None:
        self.events: dict[str, usage_pb2.UsageEvent] = {}

    async def Report(
        self, request: usage_pb2.ReportUsageRequest, context: grpc.aio.ServicerContext
    ) -> usage_pb2.ReportUsageResponse:
        for event in request.events:
            self.events.setdefault(event.event_id, event)
        return usage_pb2.ReportUsageResponse(acknowledged=[e.event_id for e in request.events])

    def for_webhook(self, msg_id: str) -> list[usage_pb2.UsageEvent]:
        return [
            e
            for e in list(self.events.values())
            if json.loads(e.attributes_json or b"{}").get("webhook_id") == msg_id
        ]


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def usage(loop: LoopThread) -> Iterator[tuple[UsageRecorder, int]]:
    recorder = UsageRecorder()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        usage_pb2_grpc.add_UsageServicer_to_server(recorder, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = loop.run(start())
    yield recorder, port
    loop.run(server.stop(0))


@pytest.fixture(scope="module")
def pdp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    key = SigningKey()
    folder = tmp_path_factory.mktemp("webhook-pdp")
    bundle = build_signed(REGO, folder / "bundle.tar.gz", key, "webhook-rev")
    config = PDPServerConfig(
        bundle=str(bundle),
        keys=key.keys(),
        log_db=folder / "decisions.db",
        poll_interval=3600,
        host=HostConfig(pool_size=2),
    )
    with running_pdp(config) as (server, _loop):
        yield server, folder / "decisions.db"


def senders() -> dict[str, Sender]:
    return {
        sid: Sender(sid, TENANTS[sid], (parse_secret(secret),)) for sid, secret in SECRETS.items()
    }


def receiver_command(db: Path) -> tuple[str, ...]:
    return (
        sys.executable,
        "-m",
        "pep_sidecars.webhook_receiver",
        "--unix",
        "{socket}",
        "--db",
        str(db),
    )


def pep_config(
    state: Path, receiver_db: Path, pdp_target: str, gateway: str | None, **extra: Any
) -> WebhookPEPConfig:
    fields: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "upstream": UpstreamConfig(command=receiver_command(receiver_db)),
        "pdp": PDPClientConfig(target=pdp_target, timeout=1.0, retries=1, backoff=0.02),
        "senders": senders(),
        "state_dir": state,
        "gateway": gateway,
        "max_body": 128 * 1024,
        "inspect_fields": ("livemode",),
        "usage_flush_interval": 0.05,
        **extra,
    }
    return WebhookPEPConfig(**fields)


def stored(receiver_db: Path, msg_id: str) -> list[dict[str, Any]]:
    """Rows the receiver stored for this webhook-id."""
    if not receiver_db.exists():
        return []
    db = sqlite3.connect(f"{receiver_db.resolve().as_uri()}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute("select * from events where webhook_id = ?", (msg_id,)).fetchall()
    finally:
        db.close()
    return [dict(r) for r in rows]


class Running:
    """A started PEP and where its receiver stores events."""

    def __init__(self, pep: WebhookPEP, receiver_db: Path) -> None:
        self.pep = pep
        self.receiver_db = receiver_db

    @property
    def port(self) -> int:
        return self.pep.port

    def stored(self, msg_id: str) -> list[dict[str, Any]]:
        return stored(self.receiver_db, msg_id)

    def total(self) -> int:
        db = sqlite3.connect(f"{self.receiver_db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return int(db.execute("select count(*) from events").fetchone()[0])
        finally:
            db.close()


def start_pep(loop: LoopThread, config: WebhookPEPConfig, receiver_db: Path) -> Running:
    pep = WebhookPEP(config)
    try:
        loop.run(pep.start())
    except BaseException:
        loop.run(pep.close())
        raise
    return Running(pep, receiver_db)


@pytest.fixture(scope="module")
def pep(
    loop: LoopThread, pdp: tuple[Any, Path], usage: tuple[UsageRecorder, int], tmp_path_factory
) -> Iterator[Running]:
    server, _ = pdp
    folder = tmp_path_factory.mktemp("webhook-pep")
    running = start_pep(
        loop,
        pep_config(
            folder / "state",
            folder / "received.db",
            f"127.0.0.1:{server.grpc_port}",
            f"127.0.0.1:{usage[1]}",
        ),
        folder / "received.db",
    )
    yield running
    loop.run(running.pep.close())


# --- a sender --------------------------------------------------------------------------------


class Reply:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    @property
    def problem(self) -> dict[str, Any]:
        assert self.headers.get_content_type() == PROBLEM, (self.status, self.body)
        doc = json.loads(self.body)
        assert doc["status"] == self.status
        assert doc["title"] and doc["detail"] and doc["code"] and doc["type"]
        if self.status in (400, 401, 403, 409):
            # Each refusal kind is a problem type of its own.
            assert doc["type"] == "urn:council:problem:webhook:" + doc["code"]
        return doc


def signed_headers(
    sender: str, body: bytes, msg_id: str | None = None, ts: int | None = None
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) if ts is None else ts
    return {
        "webhook-sender": sender,
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(SECRETS.get(sender, new_secret()), msg_id, ts, body),
    }


def send(
    port: int,
    body: bytes,
    headers: dict[str, str] | list[tuple[str, str]],
    path: str | None = None,
    method: str = "POST",
) -> Reply:
    """One request with exactly these headers (plus Host and Content-Length if absent)."""
    path = path or f"/hooks/{uuid.uuid4().hex}"
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    names = {k.lower() for k, _ in items}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_SECONDS)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if "host" not in names:
            conn.putheader("Host", f"127.0.0.1:{port}")
        if "content-length" not in names:
            conn.putheader("Content-Length", str(len(body)))
        for name, value in items:
            conn.putheader(name, value)
        conn.endheaders(body)
        return Reply(conn.getresponse())
    finally:
        conn.close()


def event(type_: str, **extra: Any) -> bytes:
    return json.dumps({"type": type_, "data": {"id": uuid.uuid4().hex}, **extra}).encode()


def post(port: int, sender: str, body: bytes, **kw: Any) -> tuple[Reply, str]:
    headers = signed_headers(sender, body)
    headers["Content-Type"] = "application/json"
    return send(port, body, headers, **kw), headers["webhook-id"]


def webhook_decisions(log_db: Path) -> list[dict[str, Any]]:
    try:
        rows = tail(log_db, 10_000)
    except DecisionLogError:
        return []
    return [r for r in rows if r["entrypoint"] == ENTRYPOINT]


# --- signatures (no sockets) --------------------------------------------------------------


def test_signature_is_standard_webhooks_hmac() -> None:
    # The Standard Webhooks reference vector (standard-webhooks/standard-webhooks, spec tests).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert (
        sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_verifier_checks_window_both_ways_and_rotated_secrets() -> None:
    old, new = new_secret(), new_secret()
    verifier = SignatureVerifier(
        {"s": Sender("s", "t", (parse_secret(old), parse_secret(new)))}, tolerance=60
    )
    body = b"{}"
    now = 1_700_000_000
    headers = {
        "webhook-sender": "s",
        "webhook-id": "m1",
        "webhook-timestamp": str(now),
        "webhook-signature": "v1a,ignored " + sign(new, "m1", now, body),
    }
    assert verifier.verify(headers, body, now=now + 59).msg_id == "m1"
    with pytest.raises(StaleTimestamp, match="old"):
        verifier.verify(headers, body, now=now + 61)
    with pytest.raises(StaleTimestamp, match="future"):
        verifier.verify(headers, body, now=now - 61)


def test_senders_file_is_validated(tmp_path: Path) -> None:
    good = tmp_path / "senders.json"
    good.write_text(json.dumps({"a": {"secret": [new_secret(), new_secret()], "tenant": "t"}}))
    assert len(load_senders(good)["a"].keys) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": {"secret": "whsec_c2hvcnQ=", "tenant": "t"}}))
    with pytest.raises(Exception, match="24 to 64 bytes"):
        load_senders(bad)
    assert "whsec" not in repr(load_senders(good)["a"])


# --- the PEP over real sockets ---------------------------------------------------------------


def test_signed_webhook_is_forwarded_unchanged(pep: Running, pdp: tuple[Any, Path]) -> None:
    body = b'{"type": "invoice.paid",  "data": {"amount": 4200, "note": "caf\xc3\xa9"}}\n'
    signed = signed_headers("acme-billing", body)
    sent = [
        ("Host", "hooks.example.test"),
        ("Content-Type", "application/json; charset=utf-8"),
        ("Content-Length", str(len(body))),
        *signed.items(),
        ("X-Trace-Context", "abc-123"),
        ("X-Multi", "one"),
        ("X-Multi", "two"),
        ("User-Agent", "billing-sender/1.0"),
        # Hop-by-hop: they describe this connection and are not passed on.
        ("Connection", "keep-alive, X-Hop"),
        ("X-Hop", "for-the-proxy-only"),
    ]
    path = "/hooks/acme/billing?source=erp&note=a%20b&x=%2F"
    reply = send(pep.port, body, sent, path=path)
    assert reply.status == 202, reply.body
    # The receiver's own response comes back through the PEP.
    assert reply.headers.get_content_type() == "application/json"
    stored_seq = json.loads(reply.body)["event"]

    (row,) = pep.stored(signed["webhook-id"])
    assert row["seq"] == stored_seq
    assert row["method"] == "POST"
    assert row["path"] == path
    assert row["body"] == body
    forwarded = [tuple(h) for h in json.loads(row["headers"])]
    expected = [h for h in sent if h[0] not in ("Connection", "X-Hop")]
    assert sorted(forwarded) == sorted(expected)
    # Repeated fields keep their order.
    assert [v for k, v in forwarded if k == "X-Multi"] == ["one", "two"]

    # The PDP was asked, and saw the facts the PEP extracted.
    decision = eventually(
        lambda: [
            d
            for d in webhook_decisions(pdp[1])
            if d["input"]["request"]["path"] == "/hooks/acme/billing"
        ],
        "the decision in the PDP's log",
    )
    seen = decision[0]["input"]
    assert seen["sender"] == {"id": "acme-billing", "tenant": "acme"}
    assert seen["event"] == {"type": "invoice.paid", "type_source": "body"}
    assert seen["payload"]["size"] == len(body)
    assert seen["payload"]["content_type"] == "application/json"
    assert seen["payload"]["keys"] == ["data", "type"]
    assert seen["source"]["ip"] == "127.0.0.1"
    assert decision[0]["result"]["allow"] is True


def test_event_type_from_header_when_body_has_none(pep: Running) -> None:
    body = json.dumps({"customer": {"id": "c1"}}).encode()
    headers = signed_headers("acme-crm", body)
    headers |= {"Content-Type": "application/json", "webhook-event-type": "customer.created"}
    reply = send(pep.port, body, headers)
    assert reply.status == 202, reply.body
    assert len(pep.stored(headers["webhook-id"])) == 1


def test_bad_signature_is_refused_before_the_policy(pep: Running, pdp: tuple[Any, Path]) -> None:
    body = event("invoice.paid")
    headers = signed_headers("acme-billing", body)
    headers["Content-Type"] = "application/json"
    tampered = body.replace(b"invoice.paid", b"invoice.void")
    bad_path = f"/hooks/bad-{uuid.uuid4().hex}"
    reply = send(pep.port, tampered, headers, path=bad_path)
    assert reply.status == 401
    problem = reply.problem
    assert problem["code"] == "webhook_signature_invalid"
    assert problem["sender"] == "acme-billing"
    assert "secret registered for sender acme-billing" in problem["remedy"]
    assert reply.headers["WWW-Authenticate"].startswith("Webhook-Signature")
    assert pep.stored(headers["webhook-id"]) == []

    # A good request after the bad one is logged; nothing was logged for the bad one.
    good, _ = post(pep.port, "acme-billing", event("invoice.paid"), path="/hooks/after")
    assert good.status == 202
    eventually(
        lambda: any(
            d["input"]["request"]["path"] == "/hooks/after" for d in webhook_decisions(pdp[1])
        ),
        "the later decision",
    )
    assert not any(d["input"]["request"]["path"] == bad_path for d in webhook_decisions(pdp[1]))


def test_missing_headers_and_unknown_sender(pep: Running) -> None:
    body = event("invoice.paid")
    reply = send(pep.port, body, {"Content-Type": "application/json"})
    assert reply.status == 400
    problem = reply.problem
    assert problem["code"] == "webhook_headers_missing"
    assert "webhook-id" in problem["detail"] and "webhook-signature" in problem["detail"]

    reply = send(pep.port, body, signed_headers("initech-hr", body))
    assert reply.status == 401
    assert reply.problem["code"] == "webhook_sender_unknown"
    assert "register" in reply.problem["remedy"]


def test_replayed_webhook_id_is_refused(pep: Running, usage: tuple[UsageRecorder, int]) -> None:
    body = event("payment.succeeded")
    headers = signed_headers("acme-billing", body) | {"Content-Type": "application/json"}
    assert send(pep.port, body, headers, path="/hooks/pay").status == 202
    again = send(pep.port, body, headers, path="/hooks/pay")
    assert again.status == 409
    problem = again.problem
    assert problem["code"] == "webhook_replayed"
    assert "fresh webhook-id" in problem["remedy"]
    assert len(pep.stored(headers["webhook-id"])) == 1
    # Both attempts are metered; the replay as refused without a decision.
    recorded = eventually(
        lambda: (e := usage[0].for_webhook(headers["webhook-id"])) and len(e) == 2 and e,
        "two usage events",
    )
    assert sorted((e.allowed, bool(e.decision_id)) for e in recorded) == [
        (False, False),
        (True, True),
    ]


def test_timestamps_outside_the_window(pep: Running) -> None:
    body = event("invoice.paid")
    for skew, word in ((-600, "old"), (600, "in the future")):
        headers = signed_headers("acme-billing", body, ts=int(time.time()) + skew)
        reply = send(pep.port, body, headers | {"Content-Type": "application/json"})
        assert reply.status == 401
        problem = reply.problem
        assert problem["code"] == "webhook_timestamp_out_of_window"
        assert word in problem["detail"]
        assert "current time" in problem["remedy"]
        assert pep.stored(headers["webhook-id"]) == []
    headers = signed_headers("acme-billing", body) | {"webhook-timestamp": "yesterday"}
    reply = send(pep.port, body, headers)
    assert reply.status == 400
    assert reply.problem["code"] == "webhook_headers_malformed"


def test_odd_header_bytes_are_refused_not_crashed_on(pep: Running) -> None:
    body = event("invoice.paid")
    raw = [(k, v.encode()) for k, v in signed_headers("acme-billing", body).items()]
    odd_id = [(k, "msg_caf\u00e9".encode() if k == "webhook-id" else v) for k, v in raw]
    odd_sig = [(k, b"v1,\xff\xfe v1,####" if k == "webhook-signature" else v) for k, v in raw]
    for headers, status, code in (
        (odd_id, 400, "webhook_headers_malformed"),
        (odd_sig, 401, "webhook_signature_invalid"),
    ):
        reply = send(pep.port, body, [(k, v.decode("latin-1")) for k, v in headers])
        assert reply.status == status
        assert reply.problem["code"] == code


def test_policy_denial_names_the_reason_and_decision(
    pep: Running, pdp: tuple[Any, Path], usage: tuple[UsageRecorder, int]
) -> None:
    body = event("user.deleted")
    reply, msg_id = post(pep.port, "acme-billing", body)
    assert reply.status == 403
    problem = reply.problem
    assert problem["code"] == "webhook_denied_by_policy"
    assert "sender acme-billing may not send event type user.deleted" in problem["reasons"]
    assert "sender acme-billing may not send event type user.deleted" in problem["detail"]
    assert problem["decision_id"] in problem["remedy"]
    assert pep.stored(msg_id) == []
    logged = eventually(lambda: show(pdp[1], problem["decision_id"]), "the denial in the log")
    assert logged["result"]["allow"] is False

    # The role rule speaks too, through the same path.
    reply, _ = post(pep.port, "acme-crm", event("invoice.paid"))
    assert reply.status == 403
    assert (
        "event type invoice.paid needs the billing role, which sender acme-crm lacks (roles: crm)"
        in reply.problem["reasons"]
    )
    recorded = eventually(lambda: usage[0].for_webhook(msg_id), "the denial's usage event")
    assert [(e.feature, e.tenant, e.subject, e.allowed, e.decision_id) for e in recorded] == [
        ("webhook", "acme", "acme-billing", False, problem["decision_id"])
    ]


def test_denied_message_may_be_resent_and_is_judged_again(pep: Running) -> None:
    body = event("user.deleted")
    headers = signed_headers("acme-billing", body) | {"Content-Type": "application/json"}
    assert send(pep.port, body, headers).status == 403
    # Not 409: the id was never delivered, so a retry is not a replay.
    assert send(pep.port, body, headers).status == 403


def test_payload_limits(pep: Running) -> None:
    big = event("invoice.paid", padding="x" * 70_000)
    reply, _ = post(pep.port, "acme-billing", big)
    assert reply.status == 403
    assert (
        f"payload of {len(big)} bytes exceeds the 65536-byte limit for tenant acme"
        in (reply.problem["reasons"])
    )
    huge = event("invoice.paid", padding="x" * 200_000)
    reply, _ = post(pep.port, "acme-billing", huge)
    assert reply.status == 413
    assert reply.problem["code"] == "webhook_payload_too_large"


def test_inspected_field_reaches_the_policy(pep: Running) -> None:
    reply, _ = post(pep.port, "globex-ops", event("alert.fired", livemode=False))
    assert reply.status == 403
    assert reply.problem["reasons"] == [
        "tenant globex does not accept test-mode events (livemode is false)"
    ]
    reply, _ = post(pep.port, "globex-ops", event("alert.fired", livemode=True))
    assert reply.status == 202


def test_decisions_are_cached_for_the_policy_ttl(pep: Running, pdp: tuple[Any, Path]) -> None:
    path = f"/hooks/cached-{uuid.uuid4().hex}"
    body = json.dumps({"type": "customer.updated", "data": {"id": "same"}}).encode()
    first, first_id = post(pep.port, "acme-billing", body, path=path)
    second, second_id = post(pep.port, "acme-billing", body, path=path)
    assert (first.status, second.status) == (202, 202)
    assert first_id != second_id
    assert len(pep.stored(first_id)) == len(pep.stored(second_id)) == 1
    # Same policy input twice inside cache_ttl_seconds (30): one evaluation.
    eventually(
        lambda: any(d["input"]["request"]["path"] == path for d in webhook_decisions(pdp[1])),
        "the first decision",
    )
    marker, _ = post(pep.port, "acme-billing", event("invoice.paid"), path=path + "-marker")
    assert marker.status == 202
    eventually(
        lambda: any(
            d["input"]["request"]["path"] == path + "-marker" for d in webhook_decisions(pdp[1])
        ),
        "the marker decision",
    )
    assert len([d for d in webhook_decisions(pdp[1]) if d["input"]["request"]["path"] == path]) == 1


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _table_inodes(table: str) -> dict[str, str]:
    """inode -> the rest of the row, from /proc/net/<table>."""
    out = {}
    lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
    for line in lines:
        cols = line.split()
        inode = cols[9] if table.startswith("tcp") or table.startswith("udp") else cols[6]
        out[inode] = line
    return out


@pytest.mark.skipif(not Path("/proc/net/unix").exists(), reason="needs Linux /proc")
def test_upstream_listens_on_no_tcp_port(pep: Running) -> None:
    pid = pep.pep.upstream_pid
    assert pid is not None
    sockets = _socket_inodes(pid)
    assert sockets, "the receiver holds no sockets at all?"
    inet = {}
    for table in ("tcp", "tcp6", "udp", "udp6"):
        inet |= _table_inodes(table)
    assert not sockets & inet.keys(), "the receiver has an internet socket"
    unix = _table_inodes("unix")
    address = pep.pep.upstream_address.removeprefix("unix:")
    assert any(address in unix[i] for i in sockets & unix.keys())
    # Only the PEP's user can even reach the socket's directory.
    assert stat.S_IMODE(os.stat(Path(address).parent).st_mode) == 0o700


@contextmanager
def in_loop_receiver(loop: LoopThread, db: Path) -> Iterator[str]:
    """The real receiver served on this test's loop; yields its ``unix:`` upstream URL."""
    with tempfile.TemporaryDirectory(prefix="wh-test-") as folder:
        config = ReceiverConfig(Path(folder) / "r.sock", db)
        stop = asyncio.Event()

        async def begin() -> asyncio.Task[None]:
            task = asyncio.create_task(serve(config, stop))
            while not config.socket.exists():
                if task.done():
                    task.result()  # raises what stopped the receiver
                await asyncio.sleep(0.01)
            return task

        task = loop.run(begin())
        try:
            yield f"unix:{config.socket}"
        finally:
            loop.loop.call_soon_threadsafe(stop.set)
            loop.run(asyncio.wait_for(asyncio.shield(task), WAIT_SECONDS))


def test_pdp_down_fails_closed_and_the_id_survives(
    loop: LoopThread, pdp: tuple[Any, Path], tmp_path: Path
) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    state, received = tmp_path / "state", tmp_path / "received.db"
    body = event("invoice.paid")
    headers = signed_headers("acme-billing", body) | {"Content-Type": "application/json"}
    target = f"127.0.0.1:{pdp[0].grpc_port}"

    def run_pep(pdp_target: str, url: str) -> Running:
        upstream = UpstreamConfig(url=url)
        return start_pep(
            loop, pep_config(state, received, pdp_target, None, upstream=upstream), received
        )

    with in_loop_receiver(loop, received) as url:
        down = run_pep(f"127.0.0.1:{closed_port}", url)
        try:
            reply = send(down.port, body, headers, path="/hooks/fail-closed")
            assert reply.status == 503
            assert reply.problem["code"] == "webhook_policy_unavailable"
            assert reply.headers["Retry-After"]
            assert "same webhook-id" in reply.problem["remedy"]
            assert down.total() == 0
        finally:
            loop.run(down.pep.close())

        # Same state, a reachable PDP: the retry under the same id is delivered, once.
        up = run_pep(target, url)
        try:
            assert send(up.port, body, headers, path="/hooks/fail-closed").status == 202
        finally:
            loop.run(up.pep.close())
        again = run_pep(target, url)
        try:
            # The replay store is on disk: a restart does not forget the delivered id.
            assert send(again.port, body, headers, path="/hooks/fail-closed").status == 409
            assert again.total() == 1
        finally:
            loop.run(again.pep.close())


def test_upstream_down_is_a_problem_and_releases_the_id(
    loop: LoopThread, pdp: tuple[Any, Path], tmp_path: Path
) -> None:
    config = pep_config(
        tmp_path / "state",
        tmp_path / "unused.db",
        f"127.0.0.1:{pdp[0].grpc_port}",
        None,
        upstream=UpstreamConfig(url=f"unix:{tmp_path}/nobody-listens.sock"),
    )
    running = start_pep(loop, config, tmp_path / "unused.db")
    body = event("invoice.paid")
    headers = signed_headers("acme-billing", body) | {"Content-Type": "application/json"}
    try:
        first = send(running.port, body, headers)
        assert first.status == 502
        assert first.problem["code"] == "webhook_upstream_unavailable"
        assert first.problem["decision_id"]
        assert send(running.port, body, headers).status == 502  # not 409
    finally:
        loop.run(running.pep.close())


def test_tcp_upstream_response_streams_back(
    loop: LoopThread, pdp: tuple[Any, Path], tmp_path: Path
) -> None:
    seen: list[tuple[str, bytes]] = []

    async def upstream(request: web.Request) -> web.StreamResponse:
        seen.append((request.path_qs, await request.read()))
        if "fail" in request.path:
            return web.Response(status=500, text="receiver broke")
        response = web.StreamResponse(status=207, headers={"X-Upstream": "yes"})
        await response.prepare(request)  # no Content-Length: chunked, streamed
        for part in (b"first,", b"second,", b"third"):
            await response.write(part)
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async def serve_upstream() -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", upstream)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    runner, port = loop.run(serve_upstream())
    config = pep_config(
        tmp_path / "state",
        tmp_path / "unused.db",
        f"127.0.0.1:{pdp[0].grpc_port}",
        None,
        upstream=UpstreamConfig(url=f"http://127.0.0.1:{port}"),
    )
    running = start_pep(loop, config, tmp_path / "unused.db")
    try:
        body = event("invoice.created")
        reply, _ = post(running.port, "acme-billing", body, path="/in?x=1")
        assert (reply.status, reply.headers["X-Upstream"]) == (207, "yes")
        assert reply.body == b"first,second,third"
        assert seen[-1] == ("/in?x=1", body)
        # A failing receiver answers for itself, and the id stays usable for the retry.
        headers = signed_headers("acme-billing", body) | {"Content-Type": "application/json"}
        assert send(running.port, body, headers, path="/fail").status == 500
        assert send(running.port, body, headers, path="/fail").status == 500
    finally:
        loop.run(running.pep.close())
        loop.run(runner.cleanup())


def test_upstream_config_is_checked() -> None:
    for bad in (
        {},
        {"url": "http://127.0.0.1:1", "command": ("x", "{socket}")},
        {"command": ("receiver", "--port", "8080")},
        {"url": "ftp://host"},
        {"url": "unix:relative.sock"},
        {"url": "http://127.0.0.1:9000/prefix"},
    ):
        with pytest.raises(ValueError):
            UpstreamConfig(**bad)


# --- the command ------------------------------------------------------------------------------

CLI = """
import argparse, sys
from council.sidecar_webhook_cmd import add_webhook_sidecar_parser
parser = argparse.ArgumentParser(prog="council")
add_webhook_sidecar_parser(parser.add_subparsers(dest="sidecar", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@contextmanager
def cli_pep(pdp: tuple[Any, Path], tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int, int]]:
    """``council sidecar webhook`` in the shipped configuration: (process, port, receiver pid)."""
    senders_file = tmp_path / "senders.json"
    senders_file.write_text(
        json.dumps({sid: {"secret": s, "tenant": TENANTS[sid]} for sid, s in SECRETS.items()})
    )
    argv = [
        sys.executable,
        "-c",
        CLI,
        "webhook",
        "--listen",
        "127.0.0.1:0",
        "--receiver-db",
        str(tmp_path / "received.db"),
        "--pdp",
        f"127.0.0.1:{pdp[0].grpc_port}",
        "--senders",
        str(senders_file),
        "--state",
        str(tmp_path / "state"),
        "--tolerance",
        "120",
        "--inspect-field",
        "livemode",
    ]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=PROJECT_ROOT
    )
    socket_dir: Path | None = None
    try:
        banner = proc.stdout.readline() if proc.stdout else ""
        assert "council webhook PEP listening on http://127.0.0.1:" in banner, banner
        port = int(banner.split("http://127.0.0.1:")[1].split()[0])
        receiver_pid = int(banner.split("pid ")[1].split(")")[0])
        socket_dir = Path(banner.split("upstream unix:")[1].split()[0]).parent
        yield proc, port, receiver_pid
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # A killed PEP cannot remove its private directory; the test does.
        if socket_dir is not None:
            shutil.rmtree(socket_dir, ignore_errors=True)


def test_cli_runs_the_shipped_configuration(pdp: tuple[Any, Path], tmp_path: Path) -> None:
    with cli_pep(pdp, tmp_path) as (proc, port, receiver_pid):
        assert not _socket_inodes(receiver_pid) & (
            _table_inodes("tcp").keys() | _table_inodes("tcp6").keys()
        )
        reply, msg_id = post(port, "acme-billing", event("invoice.paid"))
        assert reply.status == 202
        assert len(stored(tmp_path / "received.db", msg_id)) == 1
        # The options reach the PEP: a 120 s window, and livemode shown to the policy.
        body = event("invoice.paid")
        old = signed_headers("acme-billing", body, ts=int(time.time()) - 200)
        assert send(port, body, old | {"Content-Type": "application/json"}).status == 401
        reply, _ = post(port, "globex-ops", event("alert.fired", livemode=False))
        assert reply.status == 403
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT_SECONDS) == 0
        # The PEP stopped (and reaped) its receiver on the way out.
        assert gone(receiver_pid)


def test_receiver_stops_when_its_pep_is_killed(pdp: tuple[Any, Path], tmp_path: Path) -> None:
    with cli_pep(pdp, tmp_path) as (proc, _port, receiver_pid):
        proc.kill()
        proc.wait()
        eventually(lambda: gone(receiver_pid), "the orphaned receiver to exit")


def test_cli_refuses_half_a_tls_configuration(tmp_path: Path) -> None:
    senders_file = tmp_path / "senders.json"
    senders_file.write_text("{}")
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            CLI,
            "webhook",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:1",
            "--pdp",
            "127.0.0.1:1",
            "--senders",
            str(senders_file),
            "--state",
            str(tmp_path),
            "--pdp-cert",
            "c.pem",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=WAIT_SECONDS,
        check=False,
    )
    assert res.returncode == 2
    assert "go together" in res.stderr
