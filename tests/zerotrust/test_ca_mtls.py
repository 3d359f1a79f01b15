"""The local CA and mTLS: real grpc.aio servers on 127.0.0.1 and real TLS clients.

Expired and wrong-CA certificates die in the TLS handshake (UNAVAILABLE at the client);
revoked ones, and ones that expire while a connection stays open, are refused per RPC by
the revocation interceptor (UNAUTHENTICATED with an ErrorInfo reason).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import stat
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from google.rpc import error_details_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from council.ca_cmd import add_ca_parser, parse_duration
from gateway.ca import (
    CAError,
    CertificateAuthority,
    certificate_identity,
    parse_spiffe_id,
    spiffe_id,
)
from gateway.mtls import (
    RevocationInterceptor,
    RevocationList,
    channel_credentials,
    peer_identity,
    server_credentials,
)
from gateway.tokens import KeyStoreError

TD = "council.test"


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[CertificateAuthority]:
    with CertificateAuthority.init(tmp_path / "ca", TD) as authority:
        yield authority


def write_leaf(ca: CertificateAuthority, out: Path, kind: str, name: str, **kw: object) -> Path:
    """Issue a leaf and write it as ``out/<name>.crt|.key``; return the prefix."""
    issued = ca.issue(kind, name, **kw)  # type: ignore[arg-type]
    issued.write(out / name)
    return out / name


def files(prefix: Path) -> tuple[Path, Path]:
    return prefix.with_name(prefix.name + ".crt"), prefix.with_name(prefix.name + ".key")


class WhoAmI:
    """A generic service echoing the caller's SPIFFE id, as the servicer sees it."""

    @staticmethod
    async def call(_request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        peer = peer_identity(context)
        return peer.spiffe_id.encode() if peer else b""

    handler = grpc.method_handlers_generic_handler(
        "test.WhoAmI", {"Call": grpc.unary_unary_rpc_method_handler(call)}
    )


@contextlib.asynccontextmanager
async def serving(
    ca_dir: Path,
    server_prefix: Path,
    *,
    revocations: RevocationList | None = None,
    clock: object = time.time,
    reload_interval: float = 30.0,
) -> AsyncIterator[int]:
    """A health + WhoAmI server requiring client certificates; yields its port."""
    revocations = revocations or RevocationList(ca_dir / "crl.pem", ca_dir / "ca.crt")
    server = grpc.aio.server(
        interceptors=[RevocationInterceptor(revocations, clock=clock)]  # type: ignore[arg-type]
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    server.add_generic_rpc_handlers((WhoAmI.handler,))
    cert, key = files(server_prefix)
    creds = server_credentials(cert, key, ca_dir / "ca.crt", reload_interval=reload_interval)
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


def client(port: int, prefix: Path, ca_cert: Path) -> grpc.aio.Channel:
    cert, key = files(prefix)
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", channel_credentials(cert, key, ca_cert))


async def check(channel: grpc.aio.Channel) -> grpc.StatusCode:
    try:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def reason(exc: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None, exc
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert info.domain == "council.auth"
    return info.reason


@pytest.fixture
def server_prefix(ca: CertificateAuthority, tmp_path: Path) -> Path:
    return write_leaf(ca, tmp_path, "gateway", "gw", dns=["localhost"], ips=["127.0.0.1"])


# --- the CA as a library -----------------------------------------------------------------


def test_leaf_carries_one_spiffe_id_a_short_validity_and_an_index_row(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    before = datetime.now(UTC)
    issued = ca.issue("sidecar", "webhook-1", dns=["localhost"], ips=["127.0.0.1"])
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"spiffe://{TD}/sidecar/webhook-1"
    ]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - before
    assert timedelta(hours=23, minutes=59) < lifetime <= timedelta(hours=24, seconds=5)
    cert.verify_directly_issued_by(ca.certificate)

    identity = certificate_identity(issued.cert_pem)
    assert (identity.trust_domain, identity.kind, identity.name) == (TD, "sidecar", "webhook-1")
    assert identity.serial == issued.serial == cert.serial_number

    cert_path, key_path = issued.write(tmp_path / "out" / "wh")
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ca.directory / "ca.key").st_mode) == 0o600
    assert ca.serial_of(cert_path.read_bytes()) == issued.serial


def test_ca_refuses_bad_names_overwrites_and_long_ttls(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    with pytest.raises(CAError, match="already holds a CA"):
        CertificateAuthority.init(ca.directory, TD)
    with pytest.raises(CAError, match="trust domain"):
        CertificateAuthority.init(tmp_path / "other", "Not A Domain")
    with pytest.raises(CAError, match="kind must be one of"):
        ca.issue("admin", "x")
    with pytest.raises(CAError, match="name"):
        ca.issue("agent", "../etc")
    with pytest.raises(CAError, match="ttl"):
        ca.issue("agent", "a", ttl=timedelta(days=365))
    with pytest.raises(CAError, match="no CA"):
        CertificateAuthority.load(tmp_path / "missing")
    assert parse_spiffe_id(spiffe_id(TD, "pdp", "p1")) == (TD, "pdp", "p1")
    with pytest.raises(CAError):
        parse_spiffe_id("spiffe://council.test/pdp")


def test_revocation_list_is_signed_and_drops_expired_certificates(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    live = ca.issue("agent", "live")
    past = datetime.now(UTC) - timedelta(days=2)
    dead = ca.issue("agent", "dead", ttl=timedelta(hours=1), now=past)
    ca.revoke(live.serial, reason="key compromise")
    ca.revoke(dead.serial)
    again = ca.revoke(live.serial)
    assert again["reason"] == "key compromise"  # the first revocation stands

    crl = x509.load_pem_x509_crl(ca.crl_path.read_bytes())
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert {r.serial_number for r in crl} == {live.serial}

    other = CertificateAuthority.init(tmp_path / "other", TD)
    foreign = other.issue("agent", "live")
    with pytest.raises(CAError, match="not issued by this CA"):
        ca.serial_of(foreign.cert_pem)
    with pytest.raises(CAError, match="no certificate with serial"):
        ca.revoke(foreign.serial)
    other.close()


def test_a_bad_crl_keeps_the_last_good_list_in_force(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    issued = ca.issue("agent", "a1")
    ca.revoke(issued.serial)
    revocations = RevocationList(ca.crl_path, ca.directory / "ca.crt")
    assert revocations.is_revoked(issued.serial)

    other = CertificateAuthority.init(tmp_path / "other", TD)
    ca.crl_path.write_bytes(other.crl_path.read_bytes())
    with pytest.raises(KeyStoreError, match="not signed by the CA"):
        revocations.reload()
    ca.crl_path.write_text("garbage")
    with pytest.raises(KeyStoreError, match="not a PEM CRL"):
        revocations.reload()
    assert revocations.is_revoked(issued.serial)
    other.close()


# --- real servers ------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["p256", "ed25519"])
def test_a_valid_certificate_is_served_and_its_spiffe_id_reaches_the_servicer(
    tmp_path: Path, key_type: str
) -> None:
    # An Ed25519 root still works: it signs P-256 leaves, which gRPC's TLS accepts.
    ca = CertificateAuthority.init(tmp_path / "ca", TD, key_type=key_type)
    server_prefix = write_leaf(ca, tmp_path, "gateway", "gw", dns=["localhost"], ips=["127.0.0.1"])
    agent = write_leaf(ca, tmp_path, "agent", "laptop-7")

    async def scenario() -> None:
        async with (
            serving(ca.directory, server_prefix) as port,
            client(port, agent, ca.directory / "ca.crt") as channel,
        ):
            assert await check(channel) == grpc.StatusCode.OK
            who = await channel.unary_unary("/test.WhoAmI/Call")(b"", timeout=5)
            assert who == f"spiffe://{TD}/agent/laptop-7".encode()

    asyncio.run(scenario())
    ca.close()


def test_an_expired_certificate_is_refused_at_the_handshake(
    ca: CertificateAuthority, tmp_path: Path, server_prefix: Path
) -> None:
    past = datetime.now(UTC) - timedelta(hours=3)
    expired = write_leaf(ca, tmp_path, "agent", "old", ttl=timedelta(hours=1), now=past)
    current = write_leaf(ca, tmp_path, "agent", "new")

    async def scenario() -> None:
        async with serving(ca.directory, server_prefix) as port:
            async with client(port, expired, ca.directory / "ca.crt") as channel:
                assert await check(channel) == grpc.StatusCode.UNAVAILABLE
            # The same server serves a current certificate: the refusal is the expiry.
            async with client(port, current, ca.directory / "ca.crt") as channel:
                assert await check(channel) == grpc.StatusCode.OK

    asyncio.run(scenario())


def test_a_certificate_from_another_ca_is_refused_even_with_the_same_trust_domain(
    ca: CertificateAuthority, tmp_path: Path, server_prefix: Path
) -> None:
    with CertificateAuthority.init(tmp_path / "rogue", TD) as rogue:
        impostor = write_leaf(rogue, tmp_path / "rogue-certs", "agent", "laptop-7")
    genuine = write_leaf(ca, tmp_path, "agent", "laptop-7")

    async def scenario() -> None:
        async with serving(ca.directory, server_prefix) as port:
            # The client trusts the real server; only its own certificate is foreign.
            async with client(port, impostor, ca.directory / "ca.crt") as channel:
                assert await check(channel) == grpc.StatusCode.UNAVAILABLE
            async with client(port, genuine, ca.directory / "ca.crt") as channel:
                assert await check(channel) == grpc.StatusCode.OK

    asyncio.run(scenario())


def test_a_revoked_certificate_is_refused_even_on_an_open_connection(
    ca: CertificateAuthority, tmp_path: Path, server_prefix: Path
) -> None:
    agent = write_leaf(ca, tmp_path, "agent", "laptop-7")
    serial = ca.serial_of(files(agent)[0].read_bytes())

    async def scenario() -> None:
        revocations = RevocationList(ca.crl_path, ca.directory / "ca.crt", refresh_interval=0.05)
        await revocations.start()
        try:
            async with (
                serving(ca.directory, server_prefix, revocations=revocations) as port,
                client(port, agent, ca.directory / "ca.crt") as channel,
            ):
                assert await check(channel) == grpc.StatusCode.OK
                ca.revoke(serial)
                deadline = time.monotonic() + 5
                while not revocations.is_revoked(serial) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                # Same channel, same TLS session: the check is per RPC, not per handshake.
                with pytest.raises(grpc.aio.AioRpcError) as unary:
                    await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=5
                    )
                assert unary.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert reason(unary.value) == "CERTIFICATE_REJECTED"
                assert "revoked" in (unary.value.details() or "")
                # Streaming methods go through the same guard.
                watch = health_pb2_grpc.HealthStub(channel).Watch(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
                with pytest.raises(grpc.aio.AioRpcError) as streaming:
                    async for _ in watch:
                        pass
                assert streaming.value.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await revocations.close()

    asyncio.run(scenario())


def test_a_certificate_that_expires_while_connected_is_refused(
    ca: CertificateAuthority, tmp_path: Path, server_prefix: Path
) -> None:
    agent = write_leaf(ca, tmp_path, "agent", "laptop-7", ttl=timedelta(hours=1))
    later = [0.0]

    async def scenario() -> None:
        async with (
            serving(ca.directory, server_prefix, clock=lambda: time.time() + later[0]) as port,
            client(port, agent, ca.directory / "ca.crt") as channel,
        ):
            assert await check(channel) == grpc.StatusCode.OK
            later[0] = 2 * 3600
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "expired" in (refused.value.details() or "")

    asyncio.run(scenario())


def test_server_picks_up_renewed_certificate_files_without_a_restart(
    ca: CertificateAuthority, tmp_path: Path, server_prefix: Path
) -> None:
    # Renewal under a new CA makes the switch observable: old clients fail, new ones pass.
    with CertificateAuthority.init(tmp_path / "ca2", TD) as ca2:
        new_server = ca2.issue("gateway", "gw", dns=["localhost"], ips=["127.0.0.1"])
        new_agent = write_leaf(ca2, tmp_path / "new", "agent", "laptop-7")
    old_agent = write_leaf(ca, tmp_path, "agent", "laptop-7")
    live_ca = tmp_path / "live-ca"
    live_ca.mkdir()
    for name in ("ca.crt", "crl.pem"):
        (live_ca / name).write_bytes((ca.directory / name).read_bytes())

    async def scenario() -> None:
        revocations = RevocationList(ca.crl_path, ca.directory / "ca.crt")
        async with serving(
            live_ca, server_prefix, revocations=revocations, reload_interval=0
        ) as port:
            async with client(port, old_agent, ca.directory / "ca.crt") as channel:
                assert await check(channel) == grpc.StatusCode.OK
            async with client(port, new_agent, ca2.directory / "ca.crt") as channel:
                assert await check(channel) == grpc.StatusCode.UNAVAILABLE
            new_server.write(server_prefix)
            (live_ca / "ca.crt").write_bytes(ca2.certificate_pem)
            async with client(port, old_agent, ca.directory / "ca.crt") as channel:
                assert await check(channel) == grpc.StatusCode.UNAVAILABLE
            async with client(port, new_agent, ca2.directory / "ca.crt") as channel:
                # The revocation interceptor still trusts the same trust domain.
                assert await check(channel) == grpc.StatusCode.OK

    asyncio.run(scenario())


# --- the CLI -----------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="council")
    add_ca_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ca", *argv])
    return int(args.func(args))


def test_cli_init_issue_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path / "ca")
    assert run_cli("init", "--dir", d, "--trust-domain", TD, "--key-type", "ed25519") == 0
    assert run_cli("init", "--dir", d, "--trust-domain", TD) == 1
    out = str(tmp_path / "certs" / "gw")
    args = ["issue", "--dir", d, "--kind", "gateway", "--name", "gw", "--ttl", "2h"]
    assert run_cli(*args, "--dns", "localhost", "--dns", "127.0.0.1", "-o", out) == 0
    identity = certificate_identity(Path(out + ".crt").read_bytes())
    assert identity.spiffe_id == f"spiffe://{TD}/gateway/gw"
    cert = x509.load_pem_x509_certificate(Path(out + ".crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert stat.S_IMODE(os.stat(out + ".key").st_mode) == 0o600

    assert run_cli("issue", "--dir", d, "--kind", "agent", "--name", "a1", "-o", out + "a") == 0
    serial = certificate_identity(Path(out + "a.crt").read_bytes()).serial
    assert run_cli("revoke", "--dir", d, out + ".crt") == 0
    assert run_cli("revoke", "--dir", d, f"{serial:X}") == 0
    assert run_cli("revoke", "--dir", d, "abc123") == 1
    err = capsys.readouterr().err
    assert "already holds a CA" in err and "no certificate with serial abc123" in err
    revocations = RevocationList(Path(d) / "crl.pem", Path(d) / "ca.crt")
    assert revocations.is_revoked(serial) and revocations.is_revoked(identity.serial)

    assert parse_duration("1h30m") == timedelta(minutes=90)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration("24 hours")
