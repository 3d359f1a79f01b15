"""Device posture: real host facts, signed reports, and the gateway's intake over real gRPC.

The agent reads this machine, so the tests assert the facts' structure and sources, never
their values. The service tests run a real ``grpc.aio`` server on 127.0.0.1 with a plain
channel (mTLS is the gateway's business, not the intake's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from agents import posture_keys
from agents.posture import (
    FACT_NAMES,
    REPORT_TYPE,
    Fact,
    build_report,
    canonical,
    collect_facts,
    days_since_update_fact,
    disk_encryption_fact,
)
from council.opa_tool import PROJECT_ROOT
from council.posture_cmd import add_agent_parser
from gateway.posture import (
    CHECKS,
    ComplianceThresholds,
    IdentityMismatchError,
    IntakeClosedError,
    PostureConfig,
    PostureIntake,
)
from gateway.posture_servicer import ERROR_DOMAIN, add_posture_service
from proto.council.v1 import posture_pb2, posture_pb2_grpc

DEVICE = "laptop-42"
TENANT = "acme"

# Facts of an imaginary, fully compliant device, for tests about verification rather than
# about this host.
GOOD_FACTS = {
    "os": Fact(
        {"id": "debian", "name": "Debian", "version_id": "12", "pretty_name": "D"}, True, "t"
    ),
    "kernel": Fact("6.1.0-18-amd64", True, "uname"),
    "days_since_update": Fact(2, True, "/var/log/dpkg.log"),
    "disk_encrypted": Fact(True, True, "/sys/dev/block/254:1/dm/uuid", "CRYPT-LUKS2"),
    "firewall_on": Fact(True, True, "netlink nf_tables", "inet filter input policy drop"),
    "screen_lock": Fact("not_applicable", True, "environment", "no display"),
    "agent_version": Fact("0.1.0", True, "package metadata"),
}


# --- helpers ------------------------------------------------------------------------------------


def _intake(tmp_path: Path, clock: Callable[[], float] = time.time, **config: Any) -> PostureIntake:
    return PostureIntake(PostureConfig(db_path=tmp_path / "posture.db", **config), clock=clock)


@contextlib.asynccontextmanager
async def serving(intake: PostureIntake) -> AsyncIterator[posture_pb2_grpc.PostureStub]:
    """A real gRPC server with the Posture service on 127.0.0.1, and a stub talking to it."""
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="posture-test")
    server = grpc.aio.server()
    add_posture_service(server, intake, executor)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield posture_pb2_grpc.PostureStub(channel)
    finally:
        await channel.close()
        await server.stop(grace=None)
        executor.shutdown(wait=True)
        intake.close()


def error_info(exc: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo detail of a failed call's google.rpc.Status."""
    raw = dict(exc.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


async def enroll(stub: posture_pb2_grpc.PostureStub, key: posture_keys.DeviceKey) -> None:
    reply = await stub.Enroll(posture_keys.enrollment_request(key, DEVICE, TENANT))
    assert reply.device_id == DEVICE and reply.tenant == TENANT
    assert reply.key_id == key.key_id


@pytest.fixture
def key(tmp_path: Path) -> posture_keys.DeviceKey:
    return posture_keys.load_device_key(tmp_path / "keys", create=True)


@pytest.fixture
def other_key(tmp_path: Path) -> posture_keys.DeviceKey:
    return posture_keys.load_device_key(tmp_path / "other-keys", create=True)


# --- facts from this machine ---------------------------------------------------------------------


def test_collected_facts_have_values_sources_and_determination() -> None:
    facts = collect_facts()
    assert tuple(facts) == FACT_NAMES
    for name, fact in facts.items():
        assert isinstance(fact.determined, bool), name
        assert isinstance(fact.source, str) and fact.source, name
        assert isinstance(fact.detail, str), name
        if not fact.determined:
            assert fact.value is None and fact.detail, f"{name} must say why it is unknown"
    # Linux always answers these; the rest depend on privileges and the host.
    assert facts["kernel"].determined and facts["kernel"].source == "uname"
    assert facts["os"].determined and facts["os"].source in ("os-release", "platform")
    assert set(facts["os"].value) == {"id", "name", "version_id", "pretty_name"}
    days = facts["days_since_update"]
    if days.determined:
        assert isinstance(days.value, int) and days.value >= 0
        assert days.source.startswith(("/var/log/dpkg.log", "/var/lib/apt", "/var/lib/dpkg"))
    disk = facts["disk_encrypted"]
    assert disk.value in (True, False) if disk.determined else disk.value is None
    if disk.determined:
        assert disk.source.startswith("/sys/"), disk.source
    firewall = facts["firewall_on"]
    assert "nf_tables" in firewall.source or "tables_names" in firewall.source
    assert facts["screen_lock"].value in ("enabled", "disabled", "not_applicable", None)
    if (
        not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        and not Path("/tmp/.X11-unix").is_dir()
    ):
        assert facts["screen_lock"].value == "not_applicable"


def test_a_report_of_real_facts_is_canonical_and_float_free() -> None:
    report = build_report(DEVICE, collect_facts())
    assert report["type"] == REPORT_TYPE and len(report["nonce"]) == 32
    payload = canonical(report)
    assert json.loads(payload) == report
    json.loads(payload, parse_float=lambda text: pytest.fail(f"float {text} in a report"))
    assert canonical(json.loads(payload)) == payload


def test_canonical_refuses_what_other_languages_would_read_differently() -> None:
    with pytest.raises(ValueError, match="floats"):
        canonical({"a": 1.5})
    with pytest.raises(ValueError, match="2\\*\\*53"):
        canonical({"a": 2**60})
    with pytest.raises(ValueError, match="not a string"):
        canonical({"a": {1: "x"}})
    assert canonical({"b": "é", "a": [True, None]}) == b'{"a":[true,null],"b":"\\u00e9"}'


def test_days_since_update_prefers_the_newest_dpkg_log_then_stamps(tmp_path: Path) -> None:
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "dpkg.log").write_text("2024-03-10 10:00:00 status installed libc:amd64 2.36\n")
    (logs / "dpkg.log.1").write_text(
        "2024-03-01 09:00:00 install vim:amd64 <none> 9.0\n"
        "2024-03-02 09:00:00 upgrade curl:amd64 7.88 7.89\n"
    )
    with gzip.open(logs / "dpkg.log.2.gz", "wt") as fh:
        fh.write("2024-02-01 09:00:00 upgrade zsh:amd64 5.8 5.9\n")
    now = time.mktime(time.strptime("2024-03-12 09:00:00", "%Y-%m-%d %H:%M:%S"))
    stamp, info = tmp_path / "upgrade-stamp", tmp_path / "info"
    fact = days_since_update_fact(now=now, log_dir=logs, upgrade_stamp=stamp, dpkg_info=info)
    assert fact == Fact(10, True, str(logs / "dpkg.log.1"), fact.detail)
    assert "2024-03-02T09:00:00" in fact.detail

    empty = tmp_path / "nolog"
    empty.mkdir()
    info.mkdir()
    os.utime(info, (now - 3 * 86_400, now - 3 * 86_400))
    fact = days_since_update_fact(now=now, log_dir=empty, upgrade_stamp=stamp, dpkg_info=info)
    assert (fact.value, fact.source) == (3, str(info))
    stamp.touch()
    os.utime(stamp, (now - 86_400, now - 86_400))
    fact = days_since_update_fact(now=now, log_dir=empty, upgrade_stamp=stamp, dpkg_info=info)
    assert (fact.value, fact.source) == (1, str(stamp))

    missing = days_since_update_fact(
        now=now, log_dir=empty, upgrade_stamp=tmp_path / "x", dpkg_info=tmp_path / "y"
    )
    assert not missing.determined and missing.value is None and missing.detail


def _fake_sysfs(root: Path, *, crypt: bool) -> Path:
    """LVM on (maybe) LUKS on vda2, laid out like /sys, with / pointing at the LV."""
    block = root / "devices" / "block"
    part = block / "vda" / "vda2"
    part.mkdir(parents=True)
    (part / "partition").write_text("2\n")
    lower = part
    if crypt:
        lower = block / "dm-0"
        (lower / "dm").mkdir(parents=True)
        (lower / "dm" / "uuid").write_text("CRYPT-LUKS2-0123abcd-luks\n")
        (lower / "slaves").mkdir()
        (lower / "slaves" / "vda2").symlink_to(part)
    top = block / "dm-1"
    (top / "dm").mkdir(parents=True)
    (top / "dm" / "uuid").write_text("LVM-abcdef\n")
    (top / "slaves").mkdir()
    (top / "slaves" / lower.name).symlink_to(lower)
    dev_block = root / "dev" / "block"
    dev_block.mkdir(parents=True)
    st_dev = os.stat("/").st_dev
    (dev_block / f"{os.major(st_dev)}:{os.minor(st_dev)}").symlink_to(top)
    return dev_block


def test_disk_encryption_walks_the_device_stack(tmp_path: Path) -> None:
    encrypted = disk_encryption_fact(sys_dev_block=_fake_sysfs(tmp_path / "a", crypt=True))
    assert encrypted.value is True and encrypted.determined
    assert encrypted.source.endswith("dm-0/dm/uuid") and "LUKS2" in encrypted.detail
    plain = disk_encryption_fact(sys_dev_block=_fake_sysfs(tmp_path / "b", crypt=False))
    assert plain.value is False and plain.determined
    assert "dm-1 -> vda2 -> vda" in plain.detail
    mounts = tmp_path / "mounts"
    mounts.write_text("overlay / overlay rw,lowerdir=/l 0 0\n")
    hidden = disk_encryption_fact(sys_dev_block=tmp_path / "empty", mounts=mounts)
    assert not hidden.determined and "overlay" in hidden.detail


# --- device keys ---------------------------------------------------------------------------------


def test_device_key_is_private_stable_and_refused_when_exposed(tmp_path: Path) -> None:
    key_dir = tmp_path / "k"
    first = posture_keys.load_device_key(key_dir, create=True)
    assert stat.S_IMODE((key_dir / "device.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    again = posture_keys.load_device_key(key_dir, create=True)
    assert again.public_key == first.public_key and len(first.public_key) == 32
    os.chmod(key_dir / "device.key", 0o644)
    with pytest.raises(posture_keys.DeviceKeyError, match="chmod 600"):
        posture_keys.load_device_key(key_dir)
    with pytest.raises(posture_keys.DeviceKeyError, match="no device key"):
        posture_keys.load_device_key(tmp_path / "none")
    device = posture_keys.EnrolledDevice(DEVICE, TENANT, "127.0.0.1:1", first.key_id)
    posture_keys.save_enrollment(key_dir, device)
    assert stat.S_IMODE((key_dir / "device.json").stat().st_mode) == 0o600
    assert posture_keys.load_enrollment(key_dir) == device


# --- the intake over real gRPC -------------------------------------------------------------------


def test_enrolled_device_submits_fresh_report_and_status_shows_it(
    tmp_path: Path, key: posture_keys.DeviceKey
) -> None:
    async def scenario() -> None:
        async with serving(_intake(tmp_path)) as stub:
            await enroll(stub, key)
            again = await stub.Enroll(posture_keys.enrollment_request(key, DEVICE, TENANT))
            assert again.created is False

            facts = collect_facts()
            reply = await stub.Submit(posture_keys.submission(key, DEVICE, facts))
            assert reply.accepted, reply.reasons
            status = reply.status
            assert status.fresh and status.enrolled and status.reported
            assert set(status.checks) == set(CHECKS)
            assert 0 <= status.age_seconds < 60
            # This host's real facts decide compliance: every false check is listed with a
            # reason starting with its name, and "unknown" never counts as a pass.
            failed = {name for name, ok in status.checks.items() if not ok}
            assert set(status.failed) == failed
            assert status.compliant == (not failed)
            for name in failed:
                assert any(r.startswith(f"{name}: ") for r in status.reasons)
            if not facts["firewall_on"].determined or facts["firewall_on"].value is False:
                assert "firewall_on" in status.failed

            current = await stub.Status(posture_pb2.StatusRequest(device_id=DEVICE))
            assert current.fresh and current.issued_at_ms == status.issued_at_ms

    asyncio.run(scenario())


def test_compliant_device_passes_every_check(tmp_path: Path, key: posture_keys.DeviceKey) -> None:
    async def scenario() -> None:
        async with serving(_intake(tmp_path)) as stub:
            await enroll(stub, key)
            reply = await stub.Submit(posture_keys.submission(key, DEVICE, GOOD_FACTS))
            assert reply.accepted
            assert reply.status.compliant and reply.status.fresh
            assert list(reply.status.failed) == [] and list(reply.status.reasons) == []
            assert all(reply.status.checks.values())

    asyncio.run(scenario())


def test_stale_and_future_reports_are_rejected(tmp_path: Path, key: posture_keys.DeviceKey) -> None:
    async def scenario() -> None:
        async with serving(_intake(tmp_path, max_age_seconds=600)) as stub:
            await enroll(stub, key)
            old = posture_keys.submission(key, DEVICE, GOOD_FACTS, now=time.time() - 3600)
            reply = await stub.Submit(old)
            assert (reply.accepted, reply.rejection) == (False, "stale")
            assert "3600 s ago" in reply.reasons[0] and "600 s" in reply.reasons[0]

            ahead = posture_keys.submission(key, DEVICE, GOOD_FACTS, now=time.time() + 3600)
            reply = await stub.Submit(ahead)
            assert (reply.accepted, reply.rejection) == (False, "future")

            status = await stub.Status(posture_pb2.StatusRequest(device_id=DEVICE))
            assert not status.reported and not status.fresh and "fresh" in status.failed

    asyncio.run(scenario())


def test_forged_reports_are_rejected_for_their_signature(
    tmp_path: Path, key: posture_keys.DeviceKey, other_key: posture_keys.DeviceKey
) -> None:
    async def scenario() -> None:
        async with serving(_intake(tmp_path)) as stub:
            await enroll(stub, key)
            by_other = posture_keys.submission(other_key, DEVICE, GOOD_FACTS)
            reply = await stub.Submit(by_other)
            assert (reply.accepted, reply.rejection) == (False, "signature")
            assert key.key_id in reply.reasons[0]

            # A real device report, edited after signing to claim a firewall.
            genuine = posture_keys.submission(key, DEVICE, collect_facts())
            doc = json.loads(genuine.report_json)
            doc["facts"]["firewall_on"] = GOOD_FACTS["firewall_on"].to_json()
            edited = posture_pb2.SubmitRequest(
                device_id=DEVICE, report_json=canonical(doc), signature=genuine.signature
            )
            reply = await stub.Submit(edited)
            assert (reply.accepted, reply.rejection) == (False, "signature")

            garbage = posture_pb2.SubmitRequest(
                device_id=DEVICE, report_json=os.urandom(300), signature=os.urandom(64)
            )
            reply = await stub.Submit(garbage)
            assert (reply.accepted, reply.rejection) == (False, "signature")

            # Nothing forged was recorded.
            status = await stub.Status(posture_pb2.StatusRequest(device_id=DEVICE))
            assert not status.reported

    asyncio.run(scenario())


def test_replayed_and_reordered_reports_are_rejected(
    tmp_path: Path, key: posture_keys.DeviceKey
) -> None:
    async def scenario() -> None:
        async with serving(_intake(tmp_path)) as stub:
            await enroll(stub, key)
            earlier = posture_keys.submission(key, DEVICE, GOOD_FACTS, now=time.time() - 5)
            request = posture_keys.submission(key, DEVICE, GOOD_FACTS)
            assert (await stub.Submit(request)).accepted
            reply = await stub.Submit(request)
            assert (reply.accepted, reply.rejection) == (False, "replay")
            assert "nonce" in reply.reasons[0]
            reply = await stub.Submit(earlier)
            assert (reply.accepted, reply.rejection) == (False, "replay")
            assert "not newer" in reply.reasons[0]

    asyncio.run(scenario())


def test_unenrolled_and_mismatched_devices_are_rejected(
    tmp_path: Path, key: posture_keys.DeviceKey
) -> None:
    async def scenario() -> None:
        async with serving(_intake(tmp_path)) as stub:
            reply = await stub.Submit(posture_keys.submission(key, DEVICE, GOOD_FACTS))
            assert (reply.accepted, reply.rejection) == (False, "unenrolled")
            assert DEVICE in reply.reasons[0]

            await enroll(stub, key)
            await stub.Enroll(posture_keys.enrollment_request(key, "desk-7", TENANT))
            claims_other = posture_keys.submission(key, "desk-7", GOOD_FACTS)
            claims_other.device_id = DEVICE
            reply = await stub.Submit(claims_other)
            assert (reply.accepted, reply.rejection) == (False, "device_mismatch")

    asyncio.run(scenario())


def test_non_compliant_reports_are_accepted_and_name_the_failed_check(
    tmp_path: Path, key: posture_keys.DeviceKey
) -> None:
    off = {**GOOD_FACTS, "firewall_on": Fact(False, True, "netlink nf_tables", "0 rules")}
    unknown_disk = {
        **GOOD_FACTS,
        "disk_encrypted": Fact(None, False, "/proc/mounts", "/ is an overlay mount"),
    }

    async def scenario() -> None:
        async with serving(_intake(tmp_path)) as stub:
            await enroll(stub, key)
            reply = await stub.Submit(posture_keys.submission(key, DEVICE, off))
            assert reply.accepted and reply.status.fresh and not reply.status.compliant
            assert list(reply.status.failed) == ["firewall_on"]
            assert reply.status.reasons[0].startswith("firewall_on: no firewall")

            reply = await stub.Submit(posture_keys.submission(key, DEVICE, unknown_disk))
            assert list(reply.status.failed) == ["disk_encrypted"]
            assert "could not determine" in reply.status.reasons[0]
            assert "overlay" in reply.status.reasons[0]

    asyncio.run(scenario())


def test_thresholds_this_host_fails_are_named(tmp_path: Path, key: posture_keys.DeviceKey) -> None:
    strict = ComplianceThresholds(
        min_kernel="999.0", max_days_since_update=0, require_screen_lock=True
    )
    facts = collect_facts()

    async def scenario() -> None:
        async with serving(_intake(tmp_path, thresholds=strict)) as stub:
            await enroll(stub, key)
            reply = await stub.Submit(posture_keys.submission(key, DEVICE, facts))
            assert reply.accepted
            assert "kernel_supported" in reply.status.failed
            (reason,) = [r for r in reply.status.reasons if r.startswith("kernel_supported: ")]
            assert facts["kernel"].value in reason and "999.0" in reason

    asyncio.run(scenario())


def test_posture_turns_stale_as_time_passes(tmp_path: Path, key: posture_keys.DeviceKey) -> None:
    now = [time.time()]
    intake = _intake(tmp_path, clock=lambda: now[0], max_age_seconds=600)
    with intake:
        intake.enroll(DEVICE, key.public_key, TENANT)
        request = posture_keys.submission(key, DEVICE, GOOD_FACTS, now=now[0])
        assert intake.submit(request.device_id, request.report_json, request.signature).ok
        now[0] += 601
        status = intake.posture_for(DEVICE)
        assert status.compliant and not status.fresh and not status.ok
        assert status.failed == ("fresh",)
        assert status.reasons[0].startswith("fresh: latest report is 601 s old")
        doc = status.to_policy_input()
        assert doc["fresh"] is False and doc["failed"] == ["fresh"]


def test_policy_input_carries_every_check_authz_rego_reads(
    tmp_path: Path, key: posture_keys.DeviceKey
) -> None:
    data = json.loads((PROJECT_ROOT / "rego/council/authz/data.json").read_text())
    with _intake(tmp_path) as intake:
        missing = intake.posture_for("never-seen").to_policy_input()
        assert all(missing[check] is False for check in data["posture_checks"])
        assert missing["reasons"][0].startswith("disk_encrypted: device 'never-seen' is not")
        intake.enroll(DEVICE, key.public_key, TENANT)
        assert intake.posture_for(DEVICE).failed == tuple(sorted((*CHECKS, "fresh")))
        request = posture_keys.submission(key, DEVICE, GOOD_FACTS)
        intake.submit(DEVICE, request.report_json, request.signature)
        doc = intake.posture_for(DEVICE).to_policy_input()
        assert all(doc[check] is True for check in data["posture_checks"])
        assert doc["compliant"] is True and doc["fresh"] is True
        json.dumps(doc)  # plain JSON, ready for input.subject.device.posture


def test_identity_bound_at_enrollment_is_enforced(
    tmp_path: Path, key: posture_keys.DeviceKey
) -> None:
    with _intake(tmp_path) as intake:
        intake.enroll(DEVICE, key.public_key, TENANT, identity="spiffe://council/agent/a")
        request = posture_keys.submission(key, DEVICE, GOOD_FACTS)
        with pytest.raises(IdentityMismatchError, match="enrolled by spiffe://council/agent/a"):
            intake.submit(
                DEVICE, request.report_json, request.signature, identity="spiffe://council/agent/b"
            )
        assert intake.submit(
            DEVICE, request.report_json, request.signature, identity="spiffe://council/agent/a"
        ).fresh


def test_mtls_identity_that_enrolled_the_device_must_submit_for_it(
    tmp_path: Path, key: posture_keys.DeviceKey
) -> None:
    from gateway.ca import CertificateAuthority
    from gateway.mtls import channel_credentials, server_credentials

    with CertificateAuthority.init(tmp_path / "ca", "council.test") as ca:
        server_cert = ca.issue("gateway", "posture", ips=["127.0.0.1"])
        agents = {name: ca.issue("agent", name) for name in ("a", "b")}
        server_files = server_cert.write(tmp_path / "server")
        agent_files = {name: cert.write(tmp_path / name) for name, cert in agents.items()}
        ca_file = tmp_path / "ca.pem"
        ca_file.write_bytes(ca.certificate_pem)

    async def scenario() -> None:
        intake = _intake(tmp_path)
        executor = ThreadPoolExecutor(max_workers=2)
        server = grpc.aio.server()
        add_posture_service(server, intake, executor)
        port = server.add_secure_port("127.0.0.1:0", server_credentials(*server_files, ca_file))
        await server.start()

        def stub(name: str) -> tuple[grpc.aio.Channel, posture_pb2_grpc.PostureStub]:
            creds = channel_credentials(*agent_files[name], ca_file)
            channel = grpc.aio.secure_channel(f"127.0.0.1:{port}", creds)
            return channel, posture_pb2_grpc.PostureStub(channel)

        (chan_a, stub_a), (chan_b, stub_b) = stub("a"), stub("b")
        try:
            await enroll(stub_a, key)
            reply = await stub_b.Submit(posture_keys.submission(key, DEVICE, GOOD_FACTS))
            assert (reply.accepted, reply.rejection) == (False, "identity")
            assert agents["a"].spiffe_id in reply.reasons[0]
            assert agents["b"].spiffe_id in reply.reasons[0]
            reply = await stub_a.Submit(posture_keys.submission(key, DEVICE, GOOD_FACTS))
            assert reply.accepted and reply.status.fresh
        finally:
            await chan_a.close()
            await chan_b.close()
            await server.stop(grace=None)
            executor.shutdown()
            intake.close()

    asyncio.run(scenario())


def test_bad_requests_get_clear_statuses_with_error_info(
    tmp_path: Path, key: posture_keys.DeviceKey, other_key: posture_keys.DeviceKey
) -> None:
    async def expect(call: Any, code: grpc.StatusCode, reason: str) -> str:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == code, err.value.details()
        info = error_info(err.value)
        assert (info.reason, info.domain) == (reason, ERROR_DOMAIN)
        return err.value.details() or ""

    async def scenario() -> None:
        async with serving(_intake(tmp_path)) as stub:
            bad_key = posture_pb2.EnrollRequest(device_id=DEVICE, public_key=b"xx", tenant=TENANT)
            msg = await expect(
                stub.Enroll(bad_key), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"
            )
            assert "32-byte" in msg
            bad_id = posture_keys.enrollment_request(key, "no spaces/allowed", TENANT)
            await expect(stub.Enroll(bad_id), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
            await enroll(stub, key)
            await expect(
                stub.Enroll(posture_keys.enrollment_request(other_key, DEVICE, TENANT)),
                grpc.StatusCode.ALREADY_EXISTS,
                "ALREADY_ENROLLED",
            )

            short_sig = posture_pb2.SubmitRequest(
                device_id=DEVICE, report_json=b"{}", signature=b"1"
            )
            await expect(
                stub.Submit(short_sig), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"
            )
            empty = posture_pb2.SubmitRequest(device_id=DEVICE)
            await expect(stub.Submit(empty), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
            huge = posture_pb2.SubmitRequest(
                device_id=DEVICE, report_json=b"x" * 100_000, signature=b"s" * 64
            )
            await expect(stub.Submit(huge), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")

            # Correctly signed by the device, but not a report: the device's bug, not a forgery.
            for payload in (
                b"[1,2]",
                b'{"a": 1}',
                b"\xff\xfe",
                b"[" * 5000 + b"]" * 5000,
                b'{"a":NaN}',
            ):
                signed = posture_pb2.SubmitRequest(
                    device_id=DEVICE, report_json=payload, signature=key.sign(payload)
                )
                await expect(
                    stub.Submit(signed), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"
                )
            doc = build_report(DEVICE, GOOD_FACTS)
            doc["facts"]["kernel"]["extra"] = 1
            await expect(
                stub.Submit(posture_keys.sign_report(key, doc)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_REQUEST",
            )

            await expect(
                stub.Status(posture_pb2.StatusRequest()),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_REQUEST",
            )
            await expect(
                stub.Status(posture_pb2.StatusRequest(device_id="ghost")),
                grpc.StatusCode.NOT_FOUND,
                "UNENROLLED",
            )
            # After all that garbage the service still works.
            assert (await stub.Submit(posture_keys.submission(key, DEVICE, GOOD_FACTS))).accepted

    asyncio.run(scenario())


def test_closed_intake_refuses_work(tmp_path: Path) -> None:
    intake = _intake(tmp_path)
    intake.close()
    intake.close()
    with pytest.raises(IntakeClosedError):
        intake.posture_for(DEVICE)
    with pytest.raises(IntakeClosedError):
        intake.enroll(DEVICE, b"\x01" * 32, TENANT)


# --- the agent's command line ---------------------------------------------------------------------


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="council")
    add_agent_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_collect_prints_the_facts(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_cli(["agent", "posture", "collect", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == set(FACT_NAMES)
    assert all({"value", "determined", "source", "detail"} == set(f) for f in doc.values())
    assert _run_cli(["agent", "posture", "collect"]) == 0
    assert "source: uname" in capsys.readouterr().out


def test_cli_enrolls_and_submits_against_a_real_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_dir = str(tmp_path / "agent")

    async def scenario() -> None:
        executor = ThreadPoolExecutor(max_workers=2)
        server = grpc.aio.server()
        intake = _intake(tmp_path)
        add_posture_service(server, intake, executor)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        gateway = f"127.0.0.1:{port}"
        try:
            enroll_argv = ["agent", "posture", "enroll", "--gateway", gateway]
            enroll_argv += ["--device-id", DEVICE, "--tenant", TENANT, "--key-dir", key_dir]
            assert await asyncio.to_thread(_run_cli, enroll_argv) == 0
            submit_argv = ["agent", "posture", "submit", "--key-dir", key_dir]
            assert await asyncio.to_thread(_run_cli, submit_argv) == 0
            status = await asyncio.to_thread(intake.posture_for, DEVICE)
            assert status.fresh and status.tenant == TENANT
        finally:
            await server.stop(grace=None)
            executor.shutdown()
            intake.close()

    asyncio.run(scenario())
    out = capsys.readouterr().out
    assert f"enrolled: device {DEVICE} in tenant {TENANT}" in out
    assert f"accepted: device {DEVICE}" in out
    assert stat.S_IMODE((Path(key_dir) / "device.key").stat().st_mode) == 0o600
    assert _run_cli(["agent", "posture", "submit", "--key-dir", str(tmp_path / "none")]) == 1
