"""The device's Ed25519 key, its enrollment record, and signed submissions.

Key directory layout (created 0700; files 0600, written atomically):

``device.key``   the private key, PKCS#8 PEM, unencrypted: the agent runs unattended, so
                 the file mode is the protection, and :func:`load_device_key` refuses a key
                 that group or others can read, as ssh does.
``device.json``  ``{"device_id", "tenant", "gateway", "key_id"}`` written after the gateway
                 accepted the enrollment, so ``submit`` needs no flags repeated.

Thread safety: :class:`DeviceKey` is immutable; signing is safe from any thread. Creating a
key is atomic (``O_EXCL``), so two agents racing on one directory end with one key.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.posture import Fact, build_report, canonical
from pdp.keyfile import KeyFileError, load_ed25519_key
from proto.council.v1 import posture_pb2

__all__ = [
    "DEFAULT_KEY_DIR",
    "DeviceKey",
    "DeviceKeyError",
    "EnrolledDevice",
    "enrollment_request",
    "key_id",
    "load_device_key",
    "load_enrollment",
    "save_enrollment",
    "sign_report",
    "submission",
]

DEFAULT_KEY_DIR = Path.home() / ".council" / "posture"
KEY_FILE = "device.key"
ENROLLMENT_FILE = "device.json"
PRIVATE_MODE = 0o600
DIR_MODE = 0o700


class DeviceKeyError(Exception):
    """The key directory, key file or enrollment record is missing, unsafe or unreadable."""

    code = "device_key"


def key_id(public_key: bytes) -> str:
    """First 16 hex digits of SHA-256 over the raw 32-byte public key (the gateway's too)."""
    return hashlib.sha256(public_key).hexdigest()[:16]


@dataclass(frozen=True)
class DeviceKey:
    """A device's signing key."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key, as enrolled."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def key_id(self) -> str:
        """This key's id (see :func:`key_id`)."""
        return key_id(self.public_key)

    def sign(self, payload: bytes) -> bytes:
        """The 64-byte Ed25519 signature over ``payload``."""
        return self.private_key.sign(payload)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only, replacing ``path`` atomically."""
    target = path.with_name(path.name + ".tmp")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(target, path)


def _key_dir(key_dir: Path) -> Path:
    key_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return key_dir


def load_device_key(key_dir: Path = DEFAULT_KEY_DIR, *, create: bool = False) -> DeviceKey:
    """The key in ``key_dir``; with ``create``, a new one is generated when none exists."""
    try:
        key, _ = load_ed25519_key(
            key_dir / KEY_FILE,
            create=create,
            what="device key",
            missing_hint="run `posture enroll` first",
            dir_mode=DIR_MODE,
        )
    except KeyFileError as exc:
        raise DeviceKeyError(exc.message) from exc
    return DeviceKey(key)


@dataclass(frozen=True)
class EnrolledDevice:
    """What the agent remembers about its enrollment."""

    device_id: str
    tenant: str
    gateway: str
    key_id: str


def save_enrollment(key_dir: Path, device: EnrolledDevice) -> None:
    """Record an accepted enrollment in ``key_dir/device.json`` (0600)."""
    doc = json.dumps(device.__dict__, indent=2, sort_keys=True).encode()
    _write_private(_key_dir(key_dir) / ENROLLMENT_FILE, doc)


def load_enrollment(key_dir: Path = DEFAULT_KEY_DIR) -> EnrolledDevice:
    """The enrollment recorded by :func:`save_enrollment`."""
    path = key_dir / ENROLLMENT_FILE
    try:
        doc = json.loads(path.read_text())
        return EnrolledDevice(*(str(doc[k]) for k in ("device_id", "tenant", "gateway", "key_id")))
    except FileNotFoundError as exc:
        raise DeviceKeyError(f"{path} missing: this device is not enrolled yet") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeviceKeyError(f"{path} is unreadable: {exc}") from exc


def enrollment_request(key: DeviceKey, device_id: str, tenant: str) -> posture_pb2.EnrollRequest:
    """The ``Enroll`` request registering ``key`` for ``device_id`` in ``tenant``."""
    return posture_pb2.EnrollRequest(device_id=device_id, public_key=key.public_key, tenant=tenant)


def submission(
    key: DeviceKey,
    device_id: str,
    facts: Mapping[str, Fact],
    *,
    now: float | None = None,
) -> posture_pb2.SubmitRequest:
    """A signed ``Submit`` request carrying a new report of ``facts``."""
    return sign_report(key, build_report(device_id, facts, now=now))


def sign_report(key: DeviceKey, report: Mapping[str, Any]) -> posture_pb2.SubmitRequest:
    """Sign an already built report document (canonical encoding) into a ``Submit`` request."""
    payload = canonical(report)
    return posture_pb2.SubmitRequest(
        device_id=str(report.get("device_id", "")),
        report_json=payload,
        signature=key.sign(payload),
    )
