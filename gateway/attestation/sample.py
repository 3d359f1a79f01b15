"""Sample verifier: a JSON claim set signed with an Ed25519 key. NOT hardware evidence.

It exists so tests can drive the attestation pipeline end to end without a TEE. Its
claims say ``hardware: false`` and ``tee_class: "sample"``, which the default appraisal
policy refuses; nothing about it proves isolation, only possession of a test key.

Evidence is a JSON object (UTF-8) with exactly these members:

- ``alg``: ``"Ed25519"``;
- ``public_key``: base64 of the raw 32-byte Ed25519 key, which must be one of
  ``ReferenceValues.trusted_keys``;
- ``payload``: base64 of a JSON object ``{"measurement": hex, "report_data": hex of 64
  bytes, "issued_at": unix seconds, "expires_at": unix seconds}``;
- ``signature``: base64 of the Ed25519 signature over the payload bytes.

:func:`make_evidence` produces it (the attester side, for tests).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.attestation.plugins import (
    AttestationError,
    Reason,
    ReferenceValues,
    VerifiedEvidence,
    check_report_data,
    require_aware,
    sha256_hex,
)

ALGORITHM = "Ed25519"
REPORT_DATA_SIZE = 64
_EVIDENCE_KEYS = frozenset({"alg", "public_key", "payload", "signature"})
_PAYLOAD_KEYS = frozenset({"measurement", "report_data", "issued_at", "expires_at"})


def raw_public_key(private_key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key, the form ``ReferenceValues.trusted_keys`` holds."""
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def make_evidence(
    private_key: Ed25519PrivateKey,
    *,
    measurement: bytes,
    report_data: bytes,
    issued_at: datetime,
    ttl: timedelta = timedelta(seconds=60),
) -> bytes:
    """Sign a sample claim set; ``report_data`` is zero-padded to 64 bytes like SNP/TDX."""
    if len(report_data) > REPORT_DATA_SIZE:
        raise ValueError(f"report_data is longer than {REPORT_DATA_SIZE} bytes")
    payload = json.dumps(
        {
            "measurement": measurement.hex(),
            "report_data": report_data.ljust(REPORT_DATA_SIZE, b"\0").hex(),
            "issued_at": int(issued_at.timestamp()),
            "expires_at": int((issued_at + ttl).timestamp()),
        },
        sort_keys=True,
    ).encode()
    members = {
        "public_key": raw_public_key(private_key),
        "payload": payload,
        "signature": private_key.sign(payload),
    }
    doc = {k: base64.b64encode(v).decode("ascii") for k, v in members.items()}
    return json.dumps({"alg": ALGORITHM, **doc}, sort_keys=True).encode()


def _b64(doc: dict[str, object], key: str) -> bytes:
    try:
        return base64.b64decode(str(doc[key]), validate=True)
    except binascii.Error as exc:
        raise AttestationError(Reason.MALFORMED, f"{key} is not base64") from exc


class SampleVerifier:
    """Verifies sample evidence (see the module docstring). Tests only."""

    name = "sample"
    tee_class = "sample"

    def verify(
        self,
        evidence: bytes,
        *,
        expected_report_data: bytes | None,
        now: datetime,
        reference: ReferenceValues,
    ) -> VerifiedEvidence:
        """Verify a signed sample claim set at ``now``; see :class:`Verifier`."""
        require_aware(now)
        try:
            doc = json.loads(evidence)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AttestationError(Reason.MALFORMED, f"evidence is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or set(doc) != _EVIDENCE_KEYS:
            raise AttestationError(
                Reason.MALFORMED, f"evidence must have exactly {sorted(_EVIDENCE_KEYS)}"
            )
        if doc["alg"] != ALGORITHM:
            raise AttestationError(Reason.UNSUPPORTED, f"algorithm {doc['alg']!r}")
        key_bytes = _b64(doc, "public_key")
        if key_bytes not in reference.trusted_keys:
            raise AttestationError(Reason.UNTRUSTED_CHAIN, "signing key is not trusted")
        payload = _b64(doc, "payload")
        try:
            Ed25519PublicKey.from_public_bytes(key_bytes).verify(_b64(doc, "signature"), payload)
        except InvalidSignature:
            raise AttestationError(Reason.BAD_SIGNATURE, "signature is invalid") from None
        try:
            claims = json.loads(payload)
            if not isinstance(claims, dict) or set(claims) != _PAYLOAD_KEYS:
                raise ValueError(f"payload must have exactly {sorted(_PAYLOAD_KEYS)}")
            measurement = bytes.fromhex(claims["measurement"])
            report_data = bytes.fromhex(claims["report_data"])
            issued_at = int(claims["issued_at"])
            expires_at = int(claims["expires_at"])
        except (UnicodeDecodeError, TypeError, ValueError) as exc:
            raise AttestationError(Reason.MALFORMED, f"payload: {exc}") from exc
        if len(report_data) != REPORT_DATA_SIZE:
            raise AttestationError(Reason.MALFORMED, "report_data must be 64 bytes")
        if not issued_at <= now.timestamp() <= expires_at:
            raise AttestationError(Reason.EXPIRED, "sample evidence is outside its lifetime")
        check_report_data(report_data, expected_report_data)
        return VerifiedEvidence(
            verifier=self.name,
            tee_class=self.tee_class,
            hardware=False,
            measurement=measurement.hex(),
            report_data=report_data.hex(),
            registers={},
            tcb={},
            policy={},
            platform={"test_only": True},
            signer={"public_key": key_bytes.hex()},
            raw_digest=sha256_hex(payload),
            evidence_digest=sha256_hex(evidence),
            verified_at=now,
        )


VERIFIER = SampleVerifier()
