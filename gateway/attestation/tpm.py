"""Software-TPM verifier: a TPM 2.0 quote by an enrolled attestation key (AK), with the
measured-launch event log it signs, appraised against signed reference values.

This is NOT hardware isolation. A software TPM (swtpm) runs as a process on the host, so its
keys and PCRs are only as safe as the host; the job runs in a sandbox, isolated but not
encrypted. The claims say so: ``tee_class: "software-tpm"``, ``hardware: false`` and
``platform.encrypted_memory: false``.

Evidence is a JSON object (UTF-8) with exactly these members; :func:`encode_evidence` builds it
and ``agents.enclave.tpm.attest`` produces it from a live TPM:

- ``version``: ``1``;
- ``ak_public``: PEM SubjectPublicKeyInfo of the AK (ECC NIST P-256);
- ``quote``: base64 of the TPMS_ATTEST that TPM2_Quote returned;
- ``signature``: base64 of the TPMT_SIGNATURE over it (ECDSA with SHA-256, nothing else);
- ``pcr_values``: ``{"<index>": hex}`` for exactly the PCRs of the quote's selection;
- ``event_log``: the measured-launch events (``agents.enclave.measured_launch``).

Trust in the AK is by enrolment, not by anything in the evidence. At platform registration the
registrar (:func:`begin_enrolment`) checks the TPM's EK certificate chain up to the pinned
platform CA (the swtpm_localca root), checks that the AK's public area is a restricted, fixedTPM
ECDSA-SHA256 signing key, and encrypts a challenge to the EK bound to the AK's name
(TPM2_MakeCredential). Only the TPM holding that EK, with that AK loaded, can recover it
(TPM2_ActivateCredential); a correct answer (:meth:`Enrolment.finish`) yields the AK's DER
SubjectPublicKeyInfo, which the relying party pins in ``ReferenceValues.trusted_keys``. The
verifier trusts exactly those keys.

Reference values for this plugin go in ``ReferenceValues.extra["tpm"]`` (see
:func:`reference_values`):

- ``provider_keys``: raw 32-byte Ed25519 keys of the reference value providers (pinned);
- ``manifest``: a reference-value manifest signed by one of them (:func:`sign_reference_manifest`):
  the accepted digest of each measured component (transform code, sandbox profile ...) and the
  event types every launch must measure;
- ``job_events`` (optional): ``{event type: digest hex}`` the caller knows for this job alone,
  such as the job manifest's digest; the launch must have measured each of them, with exactly
  that digest.

Checks, in order, and the reason each refusal carries: the evidence and its members parse
(``malformed``); the AK is P-256 (``unsupported``) and pinned (``untrusted_chain``); the
signature is ECDSA/SHA-256 (``unsupported``) and valid over the attest bytes
(``bad_signature``); the attest is TPM-generated (``malformed``) and a quote (``unsupported``);
extraData equals the expected binding, right-padded per :mod:`plugins`
(``report_data_mismatch``); the selection is the SHA-256 bank (``unsupported``); the reported
PCR values hash to the signed pcrDigest and the event log replays to exactly those values
(``bad_signature``: the unsigned members must be the signed ones); the manifest is signed by a
pinned provider (``untrusted_chain``) and current at ``now`` (``expired``); every event's digest
is a reference value and every required type was measured (``policy_violation``).

Claims (:class:`VerifiedEvidence`): ``measurement`` is the quote's pcrDigest (hex),
``registers`` ``{"pcr<n>": hex}``, ``platform`` holds ``encrypted_memory: false``, the
``events``, ``measurements`` (``{type: [digest, ...]}`` in log order), ``event_log_digest``
and the TPM clock; ``signer`` holds ``ak_digest`` (``sha256:`` of the pinned DER) and the
algorithm; ``policy.reference_manifest`` names the manifest's provider and digest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import struct
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from agents.enclave import measured_launch
from gateway.attestation.plugins import (
    AttestationError,
    Reason,
    ReferenceValues,
    VerifiedEvidence,
    check_report_data,
    load_certificates,
    require_aware,
    sha256_hex,
)

EVIDENCE_VERSION = 1
TEE_CLASS = "software-tpm"

# TPM 2.0 Library, Part 2 (Structures) constants.
TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_QUOTE = 0x8018
TPM_ALG_RSA = 0x0001
TPM_ALG_SHA256 = 0x000B
TPM_ALG_NULL = 0x0010
TPM_ALG_ECDSA = 0x0018
TPM_ALG_ECC = 0x0023
TPM_ECC_NIST_P256 = 0x0003
# TPMA_OBJECT bits an attestation key must (or must not) have.
TPMA_FIXED_TPM = 1 << 1
TPMA_FIXED_PARENT = 1 << 4
TPMA_SENSITIVE_DATA_ORIGIN = 1 << 5
TPMA_RESTRICTED = 1 << 16
TPMA_DECRYPT = 1 << 17
TPMA_SIGN = 1 << 18
AK_REQUIRED_ATTRIBUTES = (
    TPMA_FIXED_TPM | TPMA_FIXED_PARENT | TPMA_SENSITIVE_DATA_ORIGIN | TPMA_RESTRICTED | TPMA_SIGN
)
SHA256_SIZE = 32
P256_COORDINATE_SIZE = 32
# TCG EK Credential Profile: NV index of the RSA 2048 EK certificate (template L-1: RSA 2048,
# SHA-256 name, AES-128-CFB), the EK the enrolment challenge is encrypted to.
EK_CERT_NV_INDEX = 0x01C00002
EK_RSA_BITS = 2048
EK_SYMMETRIC_KEY_BYTES = 16
# TPM2_MakeCredential caps the credential at the size of a digest of the EK's name algorithm.
CREDENTIAL_SIZE = SHA256_SIZE
MAX_CHAIN_DEPTH = 4

MANIFEST_TYPE = "council.tpm.reference-values/v1"
_EVIDENCE_KEYS = frozenset(
    {"version", "ak_public", "quote", "signature", "pcr_values", "event_log"}
)
_ENVELOPE_KEYS = frozenset({"payload", "public_key", "signature"})
_MANIFEST_KEYS = frozenset(
    {"type", "provider", "issued_at", "expires_at", "required_types", "reference_values"}
)
_ENTRY_KEYS = frozenset({"type", "digest", "description"})
_REFERENCE_KEYS = frozenset({"provider_keys", "manifest", "job_events"})


def _canonical(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, ASCII; one encoding per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class _Reader:
    """Big-endian TPM marshalling reader; anything short or left over is ``malformed``."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def take(self, size: int) -> bytes:
        if self._pos + size > len(self._data):
            raise AttestationError(Reason.MALFORMED, f"{self._what} is truncated")
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def tpm2b(self) -> bytes:
        return self.take(self.u16())

    def done(self) -> None:
        if self._pos != len(self._data):
            raise AttestationError(
                Reason.MALFORMED, f"{self._what} has {len(self._data) - self._pos} trailing bytes"
            )


# --- TPM structures ----------------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    """A TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE, decoded."""

    raw: bytes
    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    # (hash algorithm, ascending PCR indices) per bank, in the order the TPM hashed them.
    selection: tuple[tuple[int, tuple[int, ...]], ...]
    pcr_digest: bytes


def parse_quote(raw: bytes) -> Quote:
    """Decode a TPMS_ATTEST; ``malformed`` unless TPM-generated, ``unsupported`` unless a quote.

    The magic is what makes a signature an attestation: a restricted AK signs data starting
    with TPM_GENERATED_VALUE only when the TPM itself produced it.
    """
    reader = _Reader(raw, "quote")
    if reader.u32() != TPM_GENERATED_VALUE:
        raise AttestationError(Reason.MALFORMED, "quote is not TPM-generated (magic)")
    kind = reader.u16()
    if kind != TPM_ST_ATTEST_QUOTE:
        raise AttestationError(Reason.UNSUPPORTED, f"attestation type {kind:#06x} is not a quote")
    qualified_signer = reader.tpm2b()
    extra_data = reader.tpm2b()
    clock = reader.u64()
    reset_count = reader.u32()
    restart_count = reader.u32()
    safe = reader.u8()
    firmware_version = reader.u64()
    banks = []
    for _ in range(reader.u32()):
        alg = reader.u16()
        bitmap = reader.take(reader.u8())
        pcrs = tuple(i for i in range(len(bitmap) * 8) if bitmap[i // 8] >> (i % 8) & 1)
        banks.append((alg, pcrs))
    pcr_digest = reader.tpm2b()
    reader.done()
    if safe not in (0, 1):
        raise AttestationError(Reason.MALFORMED, "quote clockInfo.safe is not a boolean")
    return Quote(
        raw=bytes(raw),
        qualified_signer=qualified_signer,
        extra_data=extra_data,
        clock=clock,
        reset_count=reset_count,
        restart_count=restart_count,
        safe=bool(safe),
        firmware_version=firmware_version,
        selection=tuple(banks),
        pcr_digest=pcr_digest,
    )


def parse_signature(raw: bytes) -> bytes:
    """The DER ECDSA signature in a TPMT_SIGNATURE; ``unsupported`` unless ECDSA/SHA-256.

    Refusing every other scheme and hash before any cryptography keeps a weaker algorithm from
    being accepted because the key happens to allow it.
    """
    reader = _Reader(raw, "signature")
    sig_alg, hash_alg = reader.u16(), reader.u16()
    if (sig_alg, hash_alg) != (TPM_ALG_ECDSA, TPM_ALG_SHA256):
        raise AttestationError(
            Reason.UNSUPPORTED,
            f"signature scheme {sig_alg:#06x} hash {hash_alg:#06x} (only ECDSA with SHA-256)",
        )
    r, s = reader.tpm2b(), reader.tpm2b()
    reader.done()
    if not 0 < len(r) <= P256_COORDINATE_SIZE or not 0 < len(s) <= P256_COORDINATE_SIZE:
        raise AttestationError(Reason.MALFORMED, "ECDSA signature components have a bad size")
    return encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))


@dataclass(frozen=True)
class TpmPublic:
    """A TPMT_PUBLIC of an ECC key, decoded; ``name`` is nameAlg || H(TPMT_PUBLIC)."""

    raw: bytes
    name_alg: int
    attributes: int
    auth_policy: bytes
    scheme: int
    scheme_hash: int
    curve: int
    key: ec.EllipticCurvePublicKey
    name: bytes

    def der(self) -> bytes:
        """The DER SubjectPublicKeyInfo, the form ``ReferenceValues.trusted_keys`` pins."""
        return self.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def pem(self) -> bytes:
        """The PEM SubjectPublicKeyInfo, the form evidence carries."""
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def parse_public(data: bytes) -> TpmPublic:
    """Decode a TPM2B_PUBLIC (as tpm2_create writes it) holding an ECC P-256 key."""
    outer = _Reader(data, "public area")
    raw = outer.tpm2b()
    outer.done()
    reader = _Reader(raw, "public area")
    if reader.u16() != TPM_ALG_ECC:
        raise AttestationError(Reason.UNSUPPORTED, "only ECC attestation keys are supported")
    name_alg = reader.u16()
    attributes = reader.u32()
    auth_policy = reader.tpm2b()
    if reader.u16() != TPM_ALG_NULL:
        # A symmetric definition makes it a storage key, never a signing key.
        raise AttestationError(Reason.UNSUPPORTED, "key has a symmetric algorithm")
    scheme = reader.u16()
    scheme_hash = reader.u16() if scheme != TPM_ALG_NULL else TPM_ALG_NULL
    curve = reader.u16()
    kdf = reader.u16()
    if kdf != TPM_ALG_NULL:
        reader.u16()
    x, y = reader.tpm2b(), reader.tpm2b()
    reader.done()
    if name_alg != TPM_ALG_SHA256:
        raise AttestationError(Reason.UNSUPPORTED, f"name algorithm {name_alg:#06x}")
    if curve != TPM_ECC_NIST_P256 or {len(x), len(y)} != {P256_COORDINATE_SIZE}:
        raise AttestationError(Reason.UNSUPPORTED, "only NIST P-256 keys are supported")
    try:
        key = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        ).public_key()
    except ValueError as exc:
        raise AttestationError(Reason.MALFORMED, f"public point: {exc}") from exc
    return TpmPublic(
        raw=raw,
        name_alg=name_alg,
        attributes=attributes,
        auth_policy=auth_policy,
        scheme=scheme,
        scheme_hash=scheme_hash,
        curve=curve,
        key=key,
        name=struct.pack(">H", name_alg) + hashlib.sha256(raw).digest(),
    )


def check_attestation_key(public: TpmPublic) -> None:
    """Refuse (``untrusted_chain``) a key that is not a TPM-bound restricted ECDSA-SHA256 signer.

    fixedTPM + sensitiveDataOrigin: the private key was made in this TPM and never leaves it;
    restricted: it signs only TPM-generated attestations (or data that cannot pass for one);
    a fixed ECDSA-SHA256 scheme: the key can sign with nothing weaker.
    """
    missing = AK_REQUIRED_ATTRIBUTES & ~public.attributes
    if missing or public.attributes & TPMA_DECRYPT:
        raise AttestationError(
            Reason.UNTRUSTED_CHAIN,
            f"attributes {public.attributes:#010x} are not those of an attestation key",
        )
    if (public.scheme, public.scheme_hash) != (TPM_ALG_ECDSA, TPM_ALG_SHA256):
        raise AttestationError(Reason.UNTRUSTED_CHAIN, "key scheme is not fixed to ECDSA-SHA256")


# --- evidence ----------------------------------------------------------------------------


def encode_evidence(
    *,
    ak_public: bytes,
    quote: bytes,
    signature: bytes,
    pcr_values: Mapping[int, bytes],
    event_log: Iterable[measured_launch.Event],
) -> bytes:
    """Evidence bytes for this plugin (see the module docstring).

    ``ak_public`` is PEM, ``quote`` the TPMS_ATTEST, ``signature`` the TPMT_SIGNATURE and
    ``pcr_values`` the 32-byte values of the quoted SHA-256 PCRs.
    """
    doc = {
        "version": EVIDENCE_VERSION,
        "ak_public": ak_public.decode("ascii"),
        "quote": base64.b64encode(quote).decode("ascii"),
        "signature": base64.b64encode(signature).decode("ascii"),
        "pcr_values": {str(pcr): value.hex() for pcr, value in sorted(pcr_values.items())},
        "event_log": [event.to_json() for event in event_log],
    }
    return _canonical(doc)


@dataclass(frozen=True)
class _Evidence:
    ak_public: bytes
    quote: bytes
    signature: bytes
    pcr_values: dict[int, bytes]
    events: list[measured_launch.Event]


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise AttestationError(Reason.MALFORMED, f"{what} is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise AttestationError(Reason.MALFORMED, f"{what} is not base64") from exc


def _decode_evidence(evidence: bytes) -> _Evidence:
    try:
        doc = json.loads(evidence)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AttestationError(Reason.MALFORMED, f"evidence is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) != _EVIDENCE_KEYS:
        raise AttestationError(
            Reason.MALFORMED, f"evidence must have exactly {sorted(_EVIDENCE_KEYS)}"
        )
    if doc["version"] != EVIDENCE_VERSION or isinstance(doc["version"], bool):
        raise AttestationError(Reason.UNSUPPORTED, f"evidence version {doc['version']!r}")
    if not isinstance(doc["ak_public"], str) or not isinstance(doc["pcr_values"], dict):
        raise AttestationError(Reason.MALFORMED, "ak_public or pcr_values has the wrong type")
    pcr_values: dict[int, bytes] = {}
    for key, value in doc["pcr_values"].items():
        try:
            index = int(key)
            digest = bytes.fromhex(value)
        except (TypeError, ValueError) as exc:
            raise AttestationError(Reason.MALFORMED, f"pcr_values[{key!r}]: {exc}") from exc
        if str(index) != key or len(digest) != SHA256_SIZE or value != digest.hex():
            raise AttestationError(Reason.MALFORMED, f"pcr_values[{key!r}] is not canonical")
        pcr_values[index] = digest
    try:
        events = measured_launch.parse(doc["event_log"])
    except ValueError as exc:
        raise AttestationError(Reason.MALFORMED, f"event_log: {exc}") from exc
    return _Evidence(
        ak_public=doc["ak_public"].encode("ascii", "replace"),
        quote=_b64(doc["quote"], "quote"),
        signature=_b64(doc["signature"], "signature"),
        pcr_values=pcr_values,
        events=events,
    )


# --- signed reference values -------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceManifest:
    """A verified reference-value manifest: accepted digests per measured event type."""

    provider: str
    issued_at: int
    expires_at: int
    required_types: frozenset[str]
    digests: Mapping[str, frozenset[str]]
    digest: str


def sign_reference_manifest(
    private_key: Ed25519PrivateKey,
    *,
    provider: str,
    reference_values: Iterable[Mapping[str, str]],
    required_types: Iterable[str],
    issued_at: datetime,
    expires_at: datetime,
) -> bytes:
    """A manifest of ``reference_values`` (``{type, digest, description}`` each, digest SHA-256
    hex) that every launch must measure ``required_types`` of, signed by the provider's key.

    The envelope is canonical JSON ``{payload, public_key, signature}`` (base64 each); the
    signature is Ed25519 over the payload bytes.
    """
    entries = []
    for entry in reference_values:
        if set(entry) != _ENTRY_KEYS:
            raise ValueError(f"a reference value must have exactly {sorted(_ENTRY_KEYS)}")
        # Building an Event validates the type and digest the same way the log is validated.
        measured_launch.Event(measured_launch.JOB_PCR, entry["digest"], entry["type"], "")
        entries.append(dict(entry))
    payload = _canonical(
        {
            "type": MANIFEST_TYPE,
            "provider": provider,
            "issued_at": int(issued_at.timestamp()),
            "expires_at": int(expires_at.timestamp()),
            "required_types": sorted(set(required_types)),
            "reference_values": sorted(entries, key=lambda e: (e["type"], e["digest"])),
        }
    )
    public_key = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    envelope = {
        "payload": payload,
        "public_key": public_key,
        "signature": private_key.sign(payload),
    }
    return _canonical({k: base64.b64encode(v).decode("ascii") for k, v in envelope.items()})


def verify_reference_manifest(
    data: bytes, provider_keys: Collection[bytes], now: datetime
) -> ReferenceManifest:
    """Check a manifest's signature against the pinned ``provider_keys`` and its lifetime at
    ``now``: ``untrusted_chain``, ``expired`` or ``malformed`` otherwise."""
    require_aware(now)
    try:
        envelope = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AttestationError(Reason.MALFORMED, f"reference manifest is not JSON: {exc}") from exc
    if not isinstance(envelope, dict) or set(envelope) != _ENVELOPE_KEYS:
        raise AttestationError(Reason.MALFORMED, "reference manifest envelope is malformed")
    payload = _b64(envelope["payload"], "manifest payload")
    public_key = _b64(envelope["public_key"], "manifest public_key")
    if public_key not in provider_keys:
        raise AttestationError(
            Reason.UNTRUSTED_CHAIN, "reference manifest signer is not a pinned provider"
        )
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            _b64(envelope["signature"], "manifest signature"), payload
        )
    except (InvalidSignature, ValueError):
        raise AttestationError(
            Reason.UNTRUSTED_CHAIN, "reference manifest signature is invalid"
        ) from None
    try:
        doc = json.loads(payload)
        if not isinstance(doc, dict) or set(doc) != _MANIFEST_KEYS:
            raise ValueError(f"payload must have exactly {sorted(_MANIFEST_KEYS)}")
        if doc["type"] != MANIFEST_TYPE:
            raise ValueError(f"type {doc['type']!r}")
        digests: dict[str, set[str]] = {}
        for entry in doc["reference_values"]:
            if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
                raise ValueError("reference value entry is malformed")
            event = measured_launch.Event(
                measured_launch.JOB_PCR, entry["digest"], entry["type"], entry["description"]
            )
            digests.setdefault(event.type, set()).add(event.digest)
        required = doc["required_types"]
        if not isinstance(required, list) or not all(isinstance(t, str) for t in required):
            raise ValueError("required_types must be a list of strings")
        issued_at, expires_at = int(doc["issued_at"]), int(doc["expires_at"])
        provider = str(doc["provider"])
    except (UnicodeDecodeError, TypeError, ValueError, KeyError) as exc:
        raise AttestationError(Reason.MALFORMED, f"reference manifest: {exc}") from exc
    if not issued_at <= now.timestamp() <= expires_at:
        raise AttestationError(Reason.EXPIRED, "reference manifest is outside its lifetime")
    return ReferenceManifest(
        provider=provider,
        issued_at=issued_at,
        expires_at=expires_at,
        required_types=frozenset(required),
        digests={t: frozenset(d) for t, d in digests.items()},
        digest=sha256_hex(data),
    )


def ak_trust_anchor(ak_public: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a PEM or DER AK: what ``trusted_keys`` holds for it."""
    loader = (
        serialization.load_pem_public_key
        if ak_public.lstrip().startswith(b"-----")
        else serialization.load_der_public_key
    )
    return loader(ak_public).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def reference_values(
    *,
    trusted_aks: Iterable[bytes],
    manifest: bytes,
    provider_keys: Iterable[bytes],
    job_events: Mapping[str, str] | None = None,
    base: ReferenceValues | None = None,
) -> ReferenceValues:
    """``base`` (default: strict defaults) with the enrolled AKs (PEM or DER) trusted and the
    ``tpm`` reference values set. ``job_events`` maps event types known for one job (e.g.
    ``"job-manifest"``) to the digest that job must have measured."""
    start = base or ReferenceValues()
    tpm_values = {
        "provider_keys": frozenset(provider_keys),
        "manifest": manifest,
        "job_events": dict(job_events or {}),
    }
    return replace(
        start,
        trusted_keys=start.trusted_keys | {ak_trust_anchor(ak) for ak in trusted_aks},
        extra={**start.extra, "tpm": tpm_values},
    )


@dataclass(frozen=True)
class _TpmReference:
    provider_keys: frozenset[bytes]
    manifest: bytes
    job_events: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, reference: ReferenceValues) -> _TpmReference:
        """The ``tpm`` reference values; ValueError if they are missing or ill-typed (a
        configuration error, like an unknown ``min_tcb`` component)."""
        config = reference.extra.get("tpm")
        if not isinstance(config, Mapping) or not {"provider_keys", "manifest"} <= set(config):
            raise ValueError('reference.extra["tpm"] needs provider_keys and manifest')
        if set(config) - _REFERENCE_KEYS:
            raise ValueError(f'unknown reference.extra["tpm"] keys {set(config) - _REFERENCE_KEYS}')
        keys = frozenset(config["provider_keys"])
        if not keys or not all(isinstance(k, bytes) and len(k) == 32 for k in keys):
            raise ValueError("provider_keys must be raw 32-byte Ed25519 public keys")
        if not isinstance(config["manifest"], bytes):
            raise ValueError("manifest must be the signed manifest's bytes")
        job_events = dict(config.get("job_events") or {})
        for kind, digest in job_events.items():
            measured_launch.Event(measured_launch.JOB_PCR, digest, kind, "")
        return cls(keys, config["manifest"], job_events)


# --- the verifier ------------------------------------------------------------------------


class TpmVerifier:
    """Verifies software-TPM evidence (see the module docstring)."""

    name = "tpm"
    tee_class = TEE_CLASS

    def verify(
        self,
        evidence: bytes,
        *,
        expected_report_data: bytes | None,
        now: datetime,
        reference: ReferenceValues,
    ) -> VerifiedEvidence:
        """Verify a quote and its event log at ``now``; see :class:`Verifier`."""
        require_aware(now)
        config = _TpmReference.of(reference)
        doc = _decode_evidence(evidence)
        ak, ak_der = _load_ak(doc.ak_public)
        if ak_der not in reference.trusted_keys:
            raise AttestationError(Reason.UNTRUSTED_CHAIN, "attestation key is not enrolled")
        signature = parse_signature(doc.signature)
        try:
            ak.verify(signature, doc.quote, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise AttestationError(Reason.BAD_SIGNATURE, "quote signature is invalid") from None
        quote = parse_quote(doc.quote)
        check_report_data(quote.extra_data, expected_report_data)
        pcrs = _check_pcrs(quote, doc.pcr_values)
        _check_event_log(doc.events, doc.pcr_values, pcrs)
        manifest = verify_reference_manifest(config.manifest, config.provider_keys, now)
        _appraise_events(doc.events, manifest, config.job_events)
        measurements: dict[str, list[str]] = {}
        for event in doc.events:
            measurements.setdefault(event.type, []).append(event.digest)
        return VerifiedEvidence(
            verifier=self.name,
            tee_class=self.tee_class,
            hardware=False,
            measurement=quote.pcr_digest.hex(),
            report_data=quote.extra_data.hex(),
            registers={f"pcr{pcr}": doc.pcr_values[pcr].hex() for pcr in pcrs},
            # firmwareVersion, resetCount and restartCount are obfuscated by the TPM for a
            # signer outside the endorsement hierarchy, so they are not claims.
            tcb={},
            policy={
                "reference_manifest": {"provider": manifest.provider, "digest": manifest.digest},
            },
            platform={
                "encrypted_memory": False,
                "events": [event.to_json() for event in doc.events],
                "event_log_digest": sha256_hex(measured_launch.canonical(doc.events)),
                "measurements": measurements,
                "clock_ms": quote.clock,
                "clock_safe": quote.safe,
            },
            signer={
                "ak_digest": sha256_hex(ak_der),
                "algorithm": "ecdsa-p256-sha256",
                "qualified_signer": quote.qualified_signer.hex(),
            },
            raw_digest=sha256_hex(quote.raw),
            evidence_digest=sha256_hex(evidence),
            verified_at=now,
        )


def _load_ak(pem: bytes) -> tuple[ec.EllipticCurvePublicKey, bytes]:
    """The AK and its DER SubjectPublicKeyInfo (the form it is pinned in)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise AttestationError(Reason.MALFORMED, f"ak_public does not parse: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise AttestationError(Reason.UNSUPPORTED, "attestation key is not ECC NIST P-256")
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, der


def _check_pcrs(quote: Quote, reported: Mapping[int, bytes]) -> tuple[int, ...]:
    """The quoted PCRs, once the reported values are shown to be the ones the TPM hashed."""
    if len(quote.selection) != 1 or quote.selection[0][0] != TPM_ALG_SHA256:
        raise AttestationError(Reason.UNSUPPORTED, "quote must select exactly the SHA-256 bank")
    pcrs = quote.selection[0][1]
    if not pcrs:
        raise AttestationError(Reason.MALFORMED, "quote selects no PCR")
    if set(reported) != set(pcrs):
        raise AttestationError(
            Reason.MALFORMED,
            f"reported PCRs {sorted(reported)} are not the quoted selection {list(pcrs)}",
        )
    # TPM2_Quote hashes the selected values in selection order with the signing scheme's hash.
    composite = hashlib.sha256(b"".join(reported[pcr] for pcr in pcrs)).digest()
    if not hmac.compare_digest(composite, quote.pcr_digest):
        raise AttestationError(
            Reason.BAD_SIGNATURE,
            "reported PCR values are not the quoted ones",
            details={"check": "pcr_digest"},
        )
    return pcrs


def _check_event_log(
    events: Sequence[measured_launch.Event],
    reported: Mapping[int, bytes],
    pcrs: tuple[int, ...],
) -> None:
    uncovered = {event.pcr for event in events} - set(pcrs)
    if uncovered:
        raise AttestationError(
            Reason.MALFORMED, f"events extend PCRs {sorted(uncovered)} that the quote omits"
        )
    replayed = measured_launch.replay(events, pcrs)
    if any(replayed[pcr] != reported[pcr].hex() for pcr in pcrs):
        raise AttestationError(
            Reason.BAD_SIGNATURE,
            "event log does not replay to the quoted PCR values",
            details={"check": "event_log"},
        )


def _appraise_events(
    events: Sequence[measured_launch.Event],
    manifest: ReferenceManifest,
    job_events: Mapping[str, str],
) -> None:
    for event in events:
        if event.type in job_events:
            accepted = job_events[event.type] == event.digest
        else:
            accepted = event.digest in manifest.digests.get(event.type, frozenset())
        if not accepted:
            raise AttestationError(
                Reason.POLICY_VIOLATION,
                f"{event.type} digest {event.digest} is not a reference value",
                details={"event_type": event.type, "digest": event.digest},
            )
    missing = (manifest.required_types | set(job_events)) - {event.type for event in events}
    if missing:
        raise AttestationError(Reason.POLICY_VIOLATION, f"launch did not measure {sorted(missing)}")


VERIFIER = TpmVerifier()


# --- AK enrolment (registrar side) -------------------------------------------------------


def verify_ek_certificate(
    ek_certificate: bytes,
    *,
    intermediates: Sequence[bytes],
    roots: Sequence[bytes],
    now: datetime,
) -> rsa.RSAPublicKey:
    """The RSA 2048 EK key of a DER EK certificate that chains to one of the pinned PEM
    ``roots`` through PEM ``intermediates``, every certificate valid at ``now``.

    ``untrusted_chain`` if no such chain exists, ``expired`` for a certificate out of its
    validity, ``unsupported`` for another EK key type. EK certificates carry TPM-specific
    subject alternative names, so the chain is walked by issuer name and signature here rather
    than with a TLS path validator.
    """
    require_aware(now)
    leaf = load_certificates(ek_certificate, "EK certificate", pem=False)[0]
    pool = [c for pem in intermediates for c in load_certificates(pem, "intermediate", pem=True)]
    anchors = [c for pem in roots for c in load_certificates(pem, "platform root", pem=True)]
    pinned = {c.fingerprint(hashes.SHA256()) for c in anchors}
    cert = leaf
    for _ in range(MAX_CHAIN_DEPTH):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise AttestationError(Reason.EXPIRED, f"{cert.subject.rfc4514_string()} is expired")
        if cert.fingerprint(hashes.SHA256()) in pinned:
            break
        issuer = _find_issuer(cert, anchors + pool)
        if issuer is None:
            raise AttestationError(
                Reason.UNTRUSTED_CHAIN, "EK certificate does not chain to a pinned platform CA"
            )
        cert = issuer
    else:
        raise AttestationError(Reason.UNTRUSTED_CHAIN, "EK certificate chain is too long")
    key = leaf.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != EK_RSA_BITS:
        raise AttestationError(Reason.UNSUPPORTED, "only RSA 2048 endorsement keys are supported")
    return key


def _find_issuer(
    cert: x509.Certificate, candidates: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject != cert.issuer:
            continue
        try:
            constraints = candidate.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound:
            continue
        if not constraints.value.ca:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return candidate
    return None


def _kdfa(key: bytes, label: bytes, context_u: bytes, context_v: bytes, bits: int) -> bytes:
    """TPM 2.0 KDFa with HMAC-SHA256 (Part 1, 11.4.10.2); the label's NUL is hashed too."""
    fixed = label + b"\0" + context_u + context_v + struct.pack(">I", bits)
    out = b""
    counter = 0
    while len(out) * 8 < bits:
        counter += 1
        out += hmac.new(key, struct.pack(">I", counter) + fixed, hashlib.sha256).digest()
    return out[: bits // 8]


def make_credential(ek: rsa.RSAPublicKey, name: bytes, credential: bytes) -> tuple[bytes, bytes]:
    """TPM2_MakeCredential done in software: ``(TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET)``.

    Only the TPM holding the private half of ``ek`` can recover ``credential``, and only
    through TPM2_ActivateCredential on the loaded object whose name is ``name``; the seed
    is RSA-OAEP-SHA256 encrypted with label "IDENTITY", the credential AES-128-CFB encrypted
    under KDFa(seed, "STORAGE", name) and integrity-protected by HMAC under KDFa(seed,
    "INTEGRITY") (Part 1, 24: Credential Protection).
    """
    if not 0 < len(credential) <= CREDENTIAL_SIZE:
        raise ValueError(f"a credential is 1..{CREDENTIAL_SIZE} bytes")
    seed = os.urandom(SHA256_SIZE)
    encrypted_seed = ek.encrypt(
        seed,
        padding.OAEP(
            mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=b"IDENTITY\0"
        ),
    )
    sym_key = _kdfa(seed, b"STORAGE", name, b"", EK_SYMMETRIC_KEY_BYTES * 8)
    # AES-CFB with a zero IV is the TPM's credential protection, not a choice made here.
    encryptor = Cipher(algorithms.AES(sym_key), CFB(bytes(16))).encryptor()
    enc_identity = encryptor.update(struct.pack(">H", len(credential)) + credential)
    enc_identity += encryptor.finalize()
    hmac_key = _kdfa(seed, b"INTEGRITY", b"", b"", SHA256_SIZE * 8)
    outer_hmac = hmac.new(hmac_key, enc_identity + name, hashlib.sha256).digest()
    id_object = struct.pack(">H", SHA256_SIZE) + outer_hmac + enc_identity
    return (
        struct.pack(">H", len(id_object)) + id_object,
        struct.pack(">H", len(encrypted_seed)) + encrypted_seed,
    )


@dataclass(frozen=True)
class Enrolment:
    """One pending AK enrolment: send the challenge to the attester, check its answer."""

    ak: TpmPublic
    credential_blob: bytes
    encrypted_secret: bytes
    _credential: bytes = field(repr=False)

    def finish(self, answer: bytes) -> bytes:
        """The AK's trust anchor (DER SPKI) if ``answer`` is the activated credential;
        ``untrusted_chain`` otherwise (the AK is not on the TPM whose EK was certified)."""
        if not hmac.compare_digest(answer, self._credential):
            raise AttestationError(
                Reason.UNTRUSTED_CHAIN, "credential activation failed: AK is not on the EK's TPM"
            )
        return self.ak.der()


def begin_enrolment(
    *,
    ak_public: bytes,
    ek_certificate: bytes,
    intermediates: Sequence[bytes],
    roots: Sequence[bytes],
    now: datetime,
) -> Enrolment:
    """Start enrolling the AK with TPM2B_PUBLIC ``ak_public`` on the TPM whose DER EK
    certificate is ``ek_certificate`` (see the module docstring for the protocol)."""
    ek = verify_ek_certificate(ek_certificate, intermediates=intermediates, roots=roots, now=now)
    ak = parse_public(ak_public)
    check_attestation_key(ak)
    credential = os.urandom(CREDENTIAL_SIZE)
    blob, secret = make_credential(ek, ak.name, credential)
    return Enrolment(ak=ak, credential_blob=blob, encrypted_secret=secret, _credential=credential)
