"""Ed25519 private keys kept in PEM files readable by their owner only.

Used for every long-lived signing key the project creates on disk (decision-log
checkpoints, device posture reports, session recordings).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["KeyFileError", "load_ed25519_key"]

PRIVATE_MODE = 0o600


class KeyFileError(Exception):
    """The key file is missing, exposed, unreadable, or holds something else."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _create(path: Path, dir_mode: int) -> bool:
    """Write a new key at ``path``; False if another process created one first."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(mode=dir_mode, parents=True, exist_ok=True)
    # O_EXCL: never overwrite a key another process created meanwhile; 0600 from the first
    # byte, not chmod after the write.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def load_ed25519_key(
    path: Path,
    *,
    create: bool,
    what: str = "signing key",
    missing_hint: str = "",
    dir_mode: int = 0o700,
) -> tuple[Ed25519PrivateKey, bool]:
    """The key at ``path`` and whether this call created it.

    With ``create`` a missing key is generated (concurrent creators end up sharing one).
    A key readable or writable by group or others is refused. Error messages name the key
    as ``what`` and add ``missing_hint`` when there is no key.
    """
    created = False
    if create and not path.exists():
        try:
            created = _create(path, dir_mode)
        except OSError as exc:
            raise KeyFileError(f"cannot create {what} {path}: {exc.strerror}") from exc
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"{what} {path} is accessible by group or others"
                f" (mode {stat.S_IMODE(mode):04o}); chmod 600 it"
            )
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        hint = f"; {missing_hint}" if missing_hint else ""
        raise KeyFileError(f"no {what} at {path}{hint}") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key, created
