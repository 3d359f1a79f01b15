"""What a job's evidence is bound to: canonical JSON and the report-data digest.

The attester (the enclave executor) and the verifier compute the same 32 bytes from the same
five fields and compare them with the evidence's report data (TPM ``extraData``, SEV-SNP
``REPORT_DATA``, TDX ``REPORTDATA``)::

    report_data = SHA-256(canonical_json({nonce, job_id, manifest_digest,
                                          job_public_key, dataset_ids}))

Canonical JSON here is RFC 8785 (JCS): sorted keys, no whitespace, UTF-8, numbers as
ECMAScript prints them. Dataset ids are
sorted, so the binding names a *set* of datasets and the order a caller lists them in
cannot change it. Changing any one field changes the digest, which is how the verifier
refuses a quote presented for another job, key, manifest or dataset set.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "JobBinding",
    "b64url",
    "b64url_decode",
    "canonical_json",
    "sha256_digest",
]


def _number(value: float) -> str:
    """ECMAScript's Number-to-String of a finite float, as RFC 8785 requires."""
    if not math.isfinite(value):
        raise ValueError("canonical JSON has no NaN or infinity")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that round-trip, the same digits ECMAScript picks.
    exact = Decimal(repr(abs(value))).normalize()
    _, digit_tuple, exponent = exact.as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = int(exponent) + k
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if n - 1 > 0 else '-'}{abs(n - 1)}"
    return sign + text


def _encode(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("object keys must be strings")
        items = sorted(value.items())
        return "{" + ",".join(f"{_encode(k)}:{_encode(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    raise TypeError(f"{type(value).__name__} is not JSON")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) serialization: sorted keys, no whitespace, UTF-8, ECMAScript numbers.

    Keys sort by code point, which equals JCS's UTF-16 order for every key outside the
    supplementary planes.
    """
    return _encode(value).encode()


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>``, the digest notation used in manifests, claims and audit rows."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url`; raises ``ValueError`` on bad input."""
    if not isinstance(text, str):
        raise ValueError("base64url value must be a string")
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"not base64url: {exc}") from exc


@dataclass(frozen=True)
class JobBinding:
    """The five fields a job's evidence is bound to.

    Attributes:
        nonce: the verifier's 32-byte challenge.
        job_id: the job's id.
        manifest_digest: ``sha256:<hex>`` of the job manifest's canonical JSON.
        job_public_key: the job's public keys, ``{"sig": b64url Ed25519, "enc": b64url
            X25519}`` (see :mod:`agents.enclave.job_keys`).
        dataset_ids: the datasets the job reads.
    """

    nonce: bytes
    job_id: str
    manifest_digest: str
    job_public_key: Mapping[str, str]
    dataset_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.nonce) != 32:
            raise ValueError("nonce must be 32 bytes")
        if not self.job_id:
            raise ValueError("job_id must not be empty")
        if not self.manifest_digest.startswith("sha256:"):
            raise ValueError("manifest_digest must be sha256:<hex>")
        if set(self.job_public_key) != {"sig", "enc"}:
            raise ValueError("job_public_key must have exactly 'sig' and 'enc'")
        object.__setattr__(self, "job_public_key", dict(self.job_public_key))
        object.__setattr__(self, "dataset_ids", tuple(sorted(set(self.dataset_ids))))

    @classmethod
    def create(
        cls,
        *,
        nonce: bytes,
        job_id: str,
        manifest_digest: str,
        job_public_key: Mapping[str, str],
        dataset_ids: Iterable[str],
    ) -> JobBinding:
        """Keyword constructor that accepts any iterable of dataset ids."""
        return cls(nonce, job_id, manifest_digest, job_public_key, tuple(dataset_ids))

    def document(self) -> dict[str, Any]:
        """The canonical-JSON document the digest is taken over."""
        return {
            "nonce": b64url(self.nonce),
            "job_id": self.job_id,
            "manifest_digest": self.manifest_digest,
            "job_public_key": dict(self.job_public_key),
            "dataset_ids": list(self.dataset_ids),
        }

    def report_data(self) -> bytes:
        """SHA-256 of the canonical document: the 32 bytes the evidence must carry."""
        return hashlib.sha256(canonical_json(self.document())).digest()
