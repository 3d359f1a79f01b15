"""Symmetric formats shared by the key broker and the job: key deliveries and sealed blobs.

**Key delivery** (broker → job), a JSON object::

    {"v": 1, "alg": "ECDH-ES+X25519/HKDF-SHA256/A256GCM", "kid": key id, "epk": b64url,
     "iv": b64url(12 bytes), "ct": b64url}

The broker makes an ephemeral X25519 key, agrees a secret with the job's attested X25519
key, derives a 32-byte wrapping key with HKDF-SHA256 (salt = ephemeral public ‖ recipient
public, info = :data:`DELIVERY_INFO`) and encrypts the per-job key with AES-256-GCM whose
associated data is the job id and the key id. Only the holder of that job's private key
can open it, and only for that job and key id: a delivery replayed to another job fails
both ways (another ECDH secret, other associated data).

**Blob** (datasets at rest and staged per job): ``MAGIC ‖ iv(12) ‖ AES-256-GCM(ct+tag)``
with caller-chosen associated data, so a blob moved to another dataset or job does not
decrypt.

Key material is handled in ``bytearray`` so :func:`zeroize` can wipe it. Python and the
``cryptography`` bindings may keep transient copies (immutable ``bytes``) that no code can
wipe; the wipe shortens how long the key sits in memory, it does not guarantee absence.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agents.enclave.binding import b64url, b64url_decode

__all__ = [
    "BLOB_MAGIC",
    "DELIVERY_ALG",
    "DELIVERY_INFO",
    "DecryptionError",
    "dataset_aad",
    "decrypt_blob",
    "delivery_aad",
    "encrypt_blob",
    "length_prefixed",
    "open_key_delivery",
    "seal_key_delivery",
    "staged_aad",
    "zeroize",
]

DELIVERY_ALG = "ECDH-ES+X25519/HKDF-SHA256/A256GCM"
DELIVERY_INFO = b"council enclave key delivery v1"
BLOB_MAGIC = b"CEB1"
_IV = 12


class DecryptionError(Exception):
    """A delivery or blob did not authenticate: wrong key, wrong associated data, or
    tampered bytes. The cause is deliberately not distinguished."""


def zeroize(buf: bytearray) -> None:
    """Overwrite ``buf`` with zeros in place."""
    buf[:] = bytes(len(buf))


def length_prefixed(*parts: str) -> bytes:
    """Each part as a 4-byte big-endian length and its UTF-8 bytes."""
    # Length prefixes keep ("ab", "c") and ("a", "bc") apart, which plain ‖ would not.
    out = bytearray()
    for part in parts:
        raw = part.encode()
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def delivery_aad(job_id: str, key_id: str) -> bytes:
    """The associated data of a delivery: job id ‖ key id, length-prefixed."""
    return length_prefixed(job_id, key_id)


def staged_aad(job_id: str, dataset_id: str) -> bytes:
    """Associated data of a dataset staged for one job under its per-job key."""
    return b"staged" + length_prefixed(job_id, dataset_id)


def dataset_aad(dataset_id: str) -> bytes:
    """Associated data of a dataset at rest under its dataset key."""
    return b"at-rest" + length_prefixed(dataset_id)


def _wrapping_key(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=epk + recipient, info=DELIVERY_INFO).derive(shared)


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def seal_key_delivery(
    key: bytes | bytearray, recipient: bytes, *, job_id: str, key_id: str
) -> dict[str, Any]:
    """Encrypt ``key`` to the raw X25519 public key ``recipient`` (see module docstring)."""
    ephemeral = X25519PrivateKey.generate()
    epk = _raw(ephemeral.public_key())
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    wrap = _wrapping_key(shared, epk, recipient)
    iv = os.urandom(_IV)
    ct = AESGCM(wrap).encrypt(iv, bytes(key), delivery_aad(job_id, key_id))
    return {
        "v": 1,
        "alg": DELIVERY_ALG,
        "kid": key_id,
        "epk": b64url(epk),
        "iv": b64url(iv),
        "ct": b64url(ct),
    }


def open_key_delivery(
    delivery: Mapping[str, Any], private: X25519PrivateKey, *, job_id: str
) -> bytearray:
    """Decrypt a delivery for ``job_id`` with the job's X25519 key.

    Raises :class:`DecryptionError` if it was not made for this key and job, or was changed.
    """
    try:
        if delivery.get("v") != 1 or delivery.get("alg") != DELIVERY_ALG:
            raise ValueError("unsupported delivery format")
        key_id = str(delivery["kid"])
        epk = b64url_decode(delivery["epk"])
        iv = b64url_decode(delivery["iv"])
        ct = b64url_decode(delivery["ct"])
        shared = private.exchange(X25519PublicKey.from_public_bytes(epk))
    except (KeyError, TypeError, ValueError) as exc:
        raise DecryptionError(f"malformed key delivery: {exc}") from exc
    wrap = _wrapping_key(shared, epk, _raw(private.public_key()))
    try:
        return bytearray(AESGCM(wrap).decrypt(iv, ct, delivery_aad(job_id, key_id)))
    except InvalidTag:
        raise DecryptionError("key delivery does not open for this job and key") from None


def encrypt_blob(key: bytes | bytearray, plaintext: bytes, aad: bytes) -> bytes:
    """``MAGIC ‖ iv ‖ AES-256-GCM(plaintext)`` under ``key`` with ``aad``."""
    iv = os.urandom(_IV)
    return BLOB_MAGIC + iv + AESGCM(bytes(key)).encrypt(iv, plaintext, aad)


def decrypt_blob(key: bytes | bytearray, blob: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`encrypt_blob`; :class:`DecryptionError` if it does not open."""
    if not blob.startswith(BLOB_MAGIC) or len(blob) < len(BLOB_MAGIC) + _IV + 16:
        raise DecryptionError("not a Council encrypted blob")
    iv = blob[len(BLOB_MAGIC) : len(BLOB_MAGIC) + _IV]
    try:
        return AESGCM(bytes(key)).decrypt(iv, blob[len(BLOB_MAGIC) + _IV :], aad)
    except InvalidTag:
        raise DecryptionError("blob does not open with this key and associated data") from None
