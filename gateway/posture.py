"""Posture intake: the device registry, signed report verification, and compliance.

A device is enrolled once (device id → tenant, raw Ed25519 public key). Its agent then
submits reports (format and canonical encoding: :mod:`agents.posture`), each signed over its
exact canonical bytes. :meth:`PostureIntake.submit` accepts a report only when, in this
order:

1. the device is enrolled (else ``unenrolled``);
2. the signature verifies under the enrolled key over the bytes received (``signature``);
   nothing of an unauthenticated payload is parsed before this;
3. the payload is a canonical report naming the same device (malformed → invalid input,
   another device → ``device_mismatch``), and an mTLS peer identity, when both the
   enrollment and the submission carry one, is the same (``identity``);
4. ``issued_at_ms`` is at most ``max_age_seconds`` old (``stale``) and at most
   ``max_skew_seconds`` ahead of the gateway's clock (``future``);
5. the nonce was never accepted for the device and the report is newer than the latest
   accepted one (``replay``). Nonces are remembered for the freshness window only: an older
   replay fails step 4 anyway.

Accepted reports replace the device's previous one; compliance is evaluated when asked
(:meth:`PostureIntake.posture_for`), so a threshold change or the passing of time applies at
once. Every check is false unless the report positively shows compliance: a fact the agent
could not determine fails its check, with the agent's explanation in the reason.

Storage is one SQLite file (WAL) through sqlite-utils: ``devices``, ``reports`` (latest per
device) and ``nonces``. Each submission runs in one ``BEGIN IMMEDIATE`` transaction, so
two gateway processes sharing the file cannot both accept one nonce.

Thread safety: every public method blocks (SQLite) and is safe from any thread; one lock
serialises use of the connection. Async callers run them in an executor.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agents.posture import REPORT_TYPE, canonical
from agents.posture_keys import key_id

__all__ = [
    "CHECKS",
    "ComplianceThresholds",
    "DeviceMismatchError",
    "Enrollment",
    "EnrollmentConflictError",
    "FutureReportError",
    "IdentityMismatchError",
    "IntakeClosedError",
    "InvalidPostureRequestError",
    "PostureConfig",
    "PostureError",
    "PostureIntake",
    "PostureStatus",
    "RejectedReportError",
    "ReplayError",
    "SignatureError",
    "StaleReportError",
    "UnknownDeviceError",
    "evaluate",
]

CHECKS = ("disk_encrypted", "firewall_on", "os_patched", "kernel_supported", "screen_locked")
FRESH = "fresh"

DEFAULT_MAX_AGE_SECONDS = 600.0
DEFAULT_MAX_SKEW_SECONDS = 30.0
DEFAULT_MAX_REPORT_BYTES = 64 * 1024
DEFAULT_MAX_DAYS_SINCE_UPDATE = 30
BUSY_TIMEOUT_MS = 10_000
ED25519_PUBLIC_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64

_NAME = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_NONCE = re.compile(r"^[0-9a-f]{32}$")
_VERSION = re.compile(r"^\d+(?:\.\d+)*")
_REPORT_KEYS = frozenset({"type", "device_id", "issued_at_ms", "nonce", "facts"})
_FACT_KEYS = frozenset({"value", "determined", "source", "detail"})


# --- errors -------------------------------------------------------------------------------------


class PostureError(Exception):
    """Base class of every error the posture intake raises."""

    code = "posture_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidPostureRequestError(PostureError):
    """A request is malformed: bad device id, tenant, key, signature length or report shape."""

    code = "invalid_request"


class EnrollmentConflictError(PostureError):
    """The device is already enrolled with another key or tenant."""

    code = "already_enrolled"


class IntakeClosedError(PostureError):
    """The intake was closed; no more requests are served."""

    code = "closed"


class RejectedReportError(PostureError):
    """A well-formed report failed verification; ``code`` says which step."""

    code = "rejected"


class UnknownDeviceError(RejectedReportError):
    """The device id is not enrolled."""

    code = "unenrolled"


class SignatureError(RejectedReportError):
    """The signature does not verify under the device's enrolled key."""

    code = "signature"


class DeviceMismatchError(RejectedReportError):
    """A correctly signed report names another device than the submission."""

    code = "device_mismatch"


class IdentityMismatchError(RejectedReportError):
    """The mTLS peer submitting differs from the one that enrolled the device."""

    code = "identity"


class StaleReportError(RejectedReportError):
    """The report is older than the maximum age."""

    code = "stale"


class FutureReportError(RejectedReportError):
    """The report is dated further ahead than the allowed clock skew."""

    code = "future"


class ReplayError(RejectedReportError):
    """The nonce was already used, or the report is not newer than the latest accepted."""

    code = "replay"


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComplianceThresholds:
    """What a compliant device must show.

    Attributes:
        max_days_since_update: most whole days since a package install/upgrade (os_patched).
        require_disk_encryption: the root device must sit on dm-crypt (disk_encrypted).
        require_firewall: inbound filtering must be active (firewall_on).
        min_kernel: lowest kernel release, dotted numbers like "5.15"; "" accepts any.
        require_screen_lock: a screen lock must be enabled where the host has a display
            (headless hosts report "not_applicable", which passes).

    A requirement switched off makes its check pass, so the policy input always carries
    every name in :data:`CHECKS`.
    """

    max_days_since_update: int = DEFAULT_MAX_DAYS_SINCE_UPDATE
    require_disk_encryption: bool = True
    require_firewall: bool = True
    min_kernel: str = ""
    require_screen_lock: bool = True

    def __post_init__(self) -> None:
        if self.max_days_since_update < 0:
            raise ValueError("max_days_since_update must be >= 0")
        if self.min_kernel and not re.fullmatch(r"\d+(?:\.\d+)*", self.min_kernel):
            raise ValueError(f"min_kernel {self.min_kernel!r} is not like '5.15'")


@dataclass(frozen=True)
class PostureConfig:
    """How the intake stores and judges reports.

    Attributes:
        db_path: the SQLite registry file (created with its folder).
        max_age_seconds: a report older than this is refused, and a stored one turns stale.
        max_skew_seconds: how far ahead of the gateway's clock a report may be dated.
        max_report_bytes: largest report payload accepted.
        thresholds: the compliance requirements.
    """

    db_path: Path
    max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS
    max_skew_seconds: float = DEFAULT_MAX_SKEW_SECONDS
    max_report_bytes: int = DEFAULT_MAX_REPORT_BYTES
    thresholds: ComplianceThresholds = field(default_factory=ComplianceThresholds)

    def __post_init__(self) -> None:
        if self.max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be > 0")
        if self.max_skew_seconds < 0:
            raise ValueError("max_skew_seconds must be >= 0")
        if self.max_report_bytes <= 0:
            raise ValueError("max_report_bytes must be > 0")


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrollment:
    """An enrolled device."""

    device_id: str
    tenant: str
    key_id: str
    created: bool


@dataclass(frozen=True)
class PostureStatus:
    """What the gateway believes about a device right now.

    Attributes:
        device_id / tenant: the device and its tenant ("" when not enrolled).
        enrolled / reported: whether the device is enrolled and has an accepted report.
        fresh: the latest report is within the maximum age.
        compliant: every check in ``checks`` passes (freshness aside).
        checks: check name → passes; every name of :data:`CHECKS` is present.
        failed: failed names, sorted; ``"fresh"`` included when stale or missing.
        reasons: one per failed name, each starting with ``"<name>: "``.
        age_seconds: seconds since the latest report was issued; None without one.
        issued_at_ms: when the latest report was issued; None without one.
    """

    device_id: str
    tenant: str
    enrolled: bool
    reported: bool
    fresh: bool
    compliant: bool
    checks: Mapping[str, bool]
    failed: tuple[str, ...]
    reasons: tuple[str, ...]
    age_seconds: float | None
    issued_at_ms: int | None

    @property
    def ok(self) -> bool:
        """Fresh and compliant: what a policy requiring posture wants."""
        return self.fresh and self.compliant

    def to_policy_input(self) -> dict[str, Any]:
        """The ``input.subject.device.posture`` document.

        Every check and ``fresh`` are top-level booleans, so a policy reads
        ``posture.<check>`` and treats a missing name as failed; ``compliant``, ``failed``,
        ``reasons`` and ``age_seconds`` come along for the policy's messages.
        """
        return {
            **self.checks,
            FRESH: self.fresh,
            "compliant": self.compliant,
            "failed": list(self.failed),
            "reasons": list(self.reasons),
            "age_seconds": self.age_seconds,
        }


# --- compliance --------------------------------------------------------------------------------


def _fact(facts: Mapping[str, Any], name: str) -> tuple[Any, str | None]:
    """(value, None) for a determined fact, else (None, why it cannot be used)."""
    fact = facts.get(name)
    if not isinstance(fact, Mapping):
        return None, f"the report has no {name!r} fact"
    if fact.get("determined") is not True:
        return None, (
            f"the agent could not determine it ({fact.get('source', '?')}: "
            f"{fact.get('detail') or 'no detail'})"
        )
    return fact.get("value"), None


def _bool_check(facts: Mapping[str, Any], name: str, what: str) -> tuple[bool, str]:
    value, why = _fact(facts, name)
    if why is not None:
        return False, why
    if value is True:
        return True, ""
    if value is False:
        detail = facts[name].get("detail") or facts[name].get("source")
        return False, f"{what} ({detail})"
    return False, f"reported value {value!r} is not a boolean"


def _version_tuple(text: str) -> tuple[int, ...] | None:
    match = _VERSION.match(text)
    return tuple(int(p) for p in match.group(0).split(".")) if match else None


def evaluate(facts: Mapping[str, Any], thresholds: ComplianceThresholds) -> dict[str, str | None]:
    """Check name → None when it passes, else the reason (without the name prefix)."""
    out: dict[str, str | None] = dict.fromkeys(CHECKS)
    if thresholds.require_disk_encryption:
        ok, why = _bool_check(facts, "disk_encrypted", "the root disk is not encrypted")
        out["disk_encrypted"] = None if ok else why
    if thresholds.require_firewall:
        ok, why = _bool_check(facts, "firewall_on", "no firewall filters inbound traffic")
        out["firewall_on"] = None if ok else why

    days, why = _fact(facts, "days_since_update")
    if why is not None:
        out["os_patched"] = why
    elif not isinstance(days, int) or isinstance(days, bool) or days < 0:
        out["os_patched"] = f"reported days_since_update {days!r} is not a whole number of days"
    elif days > thresholds.max_days_since_update:
        out["os_patched"] = (
            f"last package update {days} days ago, more than "
            f"{thresholds.max_days_since_update} allowed"
        )

    if thresholds.min_kernel:
        kernel, why = _fact(facts, "kernel")
        have = _version_tuple(kernel) if isinstance(kernel, str) else None
        want = _version_tuple(thresholds.min_kernel)
        assert want is not None  # __post_init__ validated it
        if why is not None:
            out["kernel_supported"] = why
        elif have is None:
            out["kernel_supported"] = f"kernel release {kernel!r} has no version number"
        elif have < want:
            out["kernel_supported"] = f"kernel {kernel} is older than {thresholds.min_kernel}"

    if thresholds.require_screen_lock:
        lock, why = _fact(facts, "screen_lock")
        if why is not None:
            out["screen_locked"] = why
        elif lock not in ("enabled", "not_applicable"):
            out["screen_locked"] = f"screen lock is {lock!r}, not enabled"
    return out


# --- parsing ----------------------------------------------------------------------------------


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidPostureRequestError(
            f"{what} must be 1-128 characters of letters, digits and ._:@- (got {value!r:.60})"
        )
    return value


def _parse_report(payload: bytes) -> dict[str, Any]:
    """The report document in ``payload``; InvalidPostureRequestError unless canonical."""
    try:
        doc = json.loads(payload)
        encoded = canonical(doc) if isinstance(doc, dict) else None
    except (ValueError, RecursionError) as exc:
        raise InvalidPostureRequestError(f"report is not a canonical JSON object: {exc}") from exc
    if encoded is None:
        raise InvalidPostureRequestError("report is not a JSON object")
    if encoded != payload:
        raise InvalidPostureRequestError(
            "report is not in canonical encoding (sorted keys, no whitespace, ASCII)"
        )
    if set(doc) != _REPORT_KEYS:
        raise InvalidPostureRequestError(
            f"report must have exactly the keys {sorted(_REPORT_KEYS)}, has {sorted(doc)}"
        )
    if doc["type"] != REPORT_TYPE:
        raise InvalidPostureRequestError(f"report type {doc['type']!r} is not {REPORT_TYPE!r}")
    issued = doc["issued_at_ms"]
    if not isinstance(issued, int) or isinstance(issued, bool) or issued < 0:
        raise InvalidPostureRequestError("issued_at_ms must be a non-negative integer")
    if not isinstance(doc["nonce"], str) or not _NONCE.match(doc["nonce"]):
        raise InvalidPostureRequestError("nonce must be 32 lowercase hex digits")
    if not isinstance(doc["device_id"], str):
        raise InvalidPostureRequestError("device_id must be a string")
    facts = doc["facts"]
    if not isinstance(facts, dict):
        raise InvalidPostureRequestError("facts must be an object")
    for name, fact in facts.items():
        if not isinstance(fact, dict) or set(fact) != _FACT_KEYS:
            raise InvalidPostureRequestError(
                f"fact {name!r} must be an object with keys {sorted(_FACT_KEYS)}"
            )
        if not isinstance(fact["determined"], bool):
            raise InvalidPostureRequestError(f"fact {name!r}: determined must be a boolean")
        if not isinstance(fact["source"], str) or not isinstance(fact["detail"], str):
            raise InvalidPostureRequestError(f"fact {name!r}: source and detail must be strings")
    return doc


# --- the intake ------------------------------------------------------------------------------


class PostureIntake:
    """The enrollment registry and report store, with verification and compliance."""

    def __init__(self, config: PostureConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        config.db_path.parent.mkdir(parents=True, exist_ok=True)
        # Every method may run on any executor thread; the lock, not the thread, owns it.
        conn = sqlite3.connect(str(config.db_path), check_same_thread=False, isolation_level=None)
        self._db = sqlite_utils.Database(conn)
        try:
            self._db.enable_wal()
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            with self._transaction():
                self._create_tables()
        except BaseException:
            self._db.close()
            raise

    def _create_tables(self) -> None:
        self._db.table("devices").create(
            {
                "device_id": str,
                "tenant": str,
                "public_key": str,
                "key_id": str,
                "enrolled_at_ms": int,
                "identity": str,
            },
            pk="device_id",
            not_null=["tenant", "public_key", "key_id", "enrolled_at_ms", "identity"],
            if_not_exists=True,
        )
        self._db.table("reports").create(
            {
                "device_id": str,
                "issued_at_ms": int,
                "received_at_ms": int,
                "nonce": str,
                "report": str,
                "identity": str,
            },
            pk="device_id",
            not_null=["issued_at_ms", "received_at_ms", "nonce", "report", "identity"],
            if_not_exists=True,
        )
        self._db.table("nonces").create(
            {"device_id": str, "nonce": str, "issued_at_ms": int},
            pk=("device_id", "nonce"),
            not_null=["issued_at_ms"],
            if_not_exists=True,
        )
        self._db.table("nonces").create_index(["issued_at_ms"], if_not_exists=True)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction under the lock; IMMEDIATE takes SQLite's write lock up front
        so a check-then-insert cannot interleave with another process."""
        with self._lock:
            if self._closed:
                raise IntakeClosedError("posture intake is closed")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.rollback()
                raise
            self._db.commit()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _device(self, device_id: str) -> dict[str, Any] | None:
        rows = list(self._db.query("SELECT * FROM devices WHERE device_id = ?", [device_id]))
        return rows[0] if rows else None

    # --- enrollment ---------------------------------------------------------------------

    def enroll(
        self, device_id: str, public_key: bytes, tenant: str, *, identity: str = ""
    ) -> Enrollment:
        """Register ``public_key`` for ``device_id`` in ``tenant``; idempotent for the same key.

        ``identity`` is the enrolling peer's mTLS identity, when known; later submissions
        from a different identity are refused.
        """
        _check_name(device_id, "device_id")
        _check_name(tenant, "tenant")
        if not isinstance(public_key, bytes) or len(public_key) != ED25519_PUBLIC_KEY_BYTES:
            raise InvalidPostureRequestError(
                f"public_key must be the raw {ED25519_PUBLIC_KEY_BYTES}-byte Ed25519 key"
            )
        try:
            Ed25519PublicKey.from_public_bytes(public_key)
        except ValueError as exc:
            raise InvalidPostureRequestError(f"public_key is not an Ed25519 key: {exc}") from exc
        encoded = base64.b64encode(public_key).decode("ascii")
        kid = key_id(public_key)
        with self._transaction():
            existing = self._device(device_id)
            if existing is not None:
                if existing["public_key"] != encoded or existing["tenant"] != tenant:
                    raise EnrollmentConflictError(
                        f"device {device_id!r} is already enrolled in tenant "
                        f"{existing['tenant']!r} with key {existing['key_id']}"
                    )
                return Enrollment(device_id, tenant, kid, created=False)
            self._db.table("devices").insert(
                {
                    "device_id": device_id,
                    "tenant": tenant,
                    "public_key": encoded,
                    "key_id": kid,
                    "enrolled_at_ms": self._now_ms(),
                    "identity": identity,
                }
            )
        return Enrollment(device_id, tenant, kid, created=True)

    # --- reports ------------------------------------------------------------------------

    def submit(
        self, device_id: str, report_json: bytes, signature: bytes, *, identity: str = ""
    ) -> PostureStatus:
        """Verify and record one signed report; the device's status afterwards.

        Raises a :class:`RejectedReportError` subclass for a report that fails a check and
        :class:`InvalidPostureRequestError` for a malformed request.
        """
        _check_name(device_id, "device_id")
        if not report_json:
            raise InvalidPostureRequestError("report_json is empty")
        if len(report_json) > self.config.max_report_bytes:
            raise InvalidPostureRequestError(
                f"report of {len(report_json)} bytes exceeds {self.config.max_report_bytes}"
            )
        if len(signature) != ED25519_SIGNATURE_BYTES:
            raise InvalidPostureRequestError(
                f"signature must be {ED25519_SIGNATURE_BYTES} bytes, got {len(signature)}"
            )
        with self._transaction():
            device = self._device(device_id)
            if device is None:
                raise UnknownDeviceError(f"device {device_id!r} is not enrolled")
            try:
                key = Ed25519PublicKey.from_public_bytes(base64.b64decode(device["public_key"]))
                key.verify(signature, report_json)
            except InvalidSignature as exc:
                raise SignatureError(
                    f"signature does not verify under device {device_id!r}'s enrolled key "
                    f"{device['key_id']}: forged or altered after signing"
                ) from exc
            except (ValueError, binascii.Error) as exc:
                raise PostureError(f"stored key of {device_id!r} is corrupt") from exc
            report = _parse_report(report_json)
            if report["device_id"] != device_id:
                raise DeviceMismatchError(
                    f"report is for device {report['device_id']!r}, submitted as {device_id!r}"
                )
            if device["identity"] and identity and device["identity"] != identity:
                raise IdentityMismatchError(
                    f"device {device_id!r} was enrolled by {device['identity']}, not {identity}"
                )
            now = self._now_ms()
            self._check_freshness(report["issued_at_ms"], now)
            self._check_replay(device_id, report, now)
            self._db.table("nonces").insert(
                {
                    "device_id": device_id,
                    "nonce": report["nonce"],
                    "issued_at_ms": report["issued_at_ms"],
                }
            )
            self._db.table("reports").upsert(
                {
                    "device_id": device_id,
                    "issued_at_ms": report["issued_at_ms"],
                    "received_at_ms": now,
                    "nonce": report["nonce"],
                    "report": report_json.decode("ascii"),
                    "identity": identity,
                },
                pk="device_id",
            )
        return self.posture_for(device_id)

    def _check_freshness(self, issued_ms: int, now_ms: int) -> None:
        age = (now_ms - issued_ms) / 1000
        if age > self.config.max_age_seconds:
            raise StaleReportError(
                f"report issued {age:.0f} s ago, more than the "
                f"{self.config.max_age_seconds:.0f} s allowed"
            )
        if -age > self.config.max_skew_seconds:
            raise FutureReportError(
                f"report is dated {-age:.0f} s in the future, more than the "
                f"{self.config.max_skew_seconds:.0f} s clock skew allowed"
            )

    def _check_replay(self, device_id: str, report: Mapping[str, Any], now_ms: int) -> None:
        # Nonces older than any acceptable report can never pass the freshness check again,
        # so forgetting them keeps the table bounded without reopening a replay window.
        horizon = now_ms - int((self.config.max_age_seconds + self.config.max_skew_seconds) * 1000)
        self._db.execute("DELETE FROM nonces WHERE issued_at_ms < ?", [horizon])
        seen = self._db.execute(
            "SELECT 1 FROM nonces WHERE device_id = ? AND nonce = ?",
            [device_id, report["nonce"]],
        ).fetchone()
        if seen:
            raise ReplayError(f"nonce {report['nonce']} was already used")
        latest = self._db.execute(
            "SELECT issued_at_ms FROM reports WHERE device_id = ?", [device_id]
        ).fetchone()
        if latest and report["issued_at_ms"] <= latest[0]:
            raise ReplayError(
                f"report issued at {report['issued_at_ms']} ms is not newer than "
                f"the latest accepted one ({latest[0]} ms)"
            )

    # --- status -------------------------------------------------------------------------

    def posture_for(self, device_id: str) -> PostureStatus:
        """The device's posture now: freshness and compliance of its latest report.

        Never raises for an unknown device: it gets a status failing every check, which is
        what a policy input needs.
        """
        with self._lock:
            if self._closed:
                raise IntakeClosedError("posture intake is closed")
            device = self._device(device_id)
            rows = list(
                self._db.query(
                    "SELECT issued_at_ms, report FROM reports WHERE device_id = ?", [device_id]
                )
            )
        if device is None or not rows:
            why = (
                f"device {device_id!r} is not enrolled"
                if device is None
                else f"no posture report received from device {device_id!r}"
            )
            names = (*CHECKS, FRESH)
            return PostureStatus(
                device_id=device_id,
                tenant=device["tenant"] if device else "",
                enrolled=device is not None,
                reported=False,
                fresh=False,
                compliant=False,
                checks=dict.fromkeys(CHECKS, False),
                failed=tuple(sorted(names)),
                reasons=tuple(f"{name}: {why}" for name in sorted(names)),
                age_seconds=None,
                issued_at_ms=None,
            )
        issued_ms = rows[0]["issued_at_ms"]
        facts = json.loads(rows[0]["report"])["facts"]
        results = evaluate(facts, self.config.thresholds)
        age = (self._now_ms() - issued_ms) / 1000
        fresh = -self.config.max_skew_seconds <= age <= self.config.max_age_seconds
        problems = {name: why for name, why in results.items() if why is not None}
        if not fresh:
            problems[FRESH] = (
                f"latest report is {age:.0f} s old, more than the "
                f"{self.config.max_age_seconds:.0f} s allowed"
            )
        return PostureStatus(
            device_id=device_id,
            tenant=device["tenant"],
            enrolled=True,
            reported=True,
            fresh=fresh,
            compliant=all(why is None for why in results.values()),
            checks={name: why is None for name, why in results.items()},
            failed=tuple(sorted(problems)),
            reasons=tuple(f"{name}: {problems[name]}" for name in sorted(problems)),
            age_seconds=age,
            issued_at_ms=issued_ms,
        )

    # --- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the database; idempotent. Calls after close raise IntakeClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()

    def __enter__(self) -> PostureIntake:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
