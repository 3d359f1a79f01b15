"""Verifier plugin interface and registry (the RATS *verifier* role, RFC 9334).

Lifecycle of a plugin:

1. A plugin is one module in this package (``snp.py``, ``tdx.py``, ``sample.py``, later
   ``tpm.py``). It defines a class satisfying :class:`Verifier` and a module-level
   ``VERIFIER`` instance of it.
2. Importing :mod:`gateway.attestation` imports every module of the package and calls
   :func:`register` on each ``VERIFIER`` it finds, so adding a TEE means adding one module
   (plus its reference values); nothing else changes. Names are unique: registering a
   second verifier under a taken name is an error unless ``replace=True``.
3. A caller looks a verifier up with :func:`get` and calls
   ``verify(evidence, expected_report_data=..., now=..., reference=...)``.
   Verifiers are stateless and safe to share between threads. They never touch the
   network and never read the clock: every time check uses ``now``, so a verdict can be
   reproduced offline from the same inputs.
4. ``verify`` either returns a complete :class:`VerifiedEvidence` or raises
   :class:`AttestationError` with a stable :class:`Reason`. It never returns a partial
   result; any other exception is a bug and must be treated as a refusal by callers.

Evidence is the attester's bytes, self-contained: the hardware report plus whatever
endorsements travel with it (certificate chains, collateral). Each plugin documents its
encoding and offers an ``encode_evidence`` helper. Everything inside is checked up to a
trust anchor the verifier pins, so carrying endorsements in the evidence adds no trust.

Report-data binding: ``expected_report_data`` is compared with the evidence's report data
(SEV-SNP ``REPORT_DATA``, TDX ``REPORTDATA``, TPM ``extraData``) after right-padding it
with zero bytes to the field's width, so a 32-byte SHA-256 binding matches a 64-byte
field whose tail is zero. ``None`` skips the comparison (platform attestation that is not
bound to a job).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning


class Reason(StrEnum):
    """Stable refusal codes; appraisal policies and metrics key on these strings."""

    BAD_SIGNATURE = "bad_signature"
    UNTRUSTED_CHAIN = "untrusted_chain"
    EXPIRED = "expired"
    REPORT_DATA_MISMATCH = "report_data_mismatch"
    MALFORMED = "malformed"
    TCB_OUT_OF_DATE = "tcb_out_of_date"
    POLICY_VIOLATION = "policy_violation"
    UNSUPPORTED = "unsupported"
    # A verification library refused for a cause it did not let us classify.
    VERIFICATION_FAILED = "verification_failed"


class AttestationError(Exception):
    """Evidence was refused. ``reason`` is a stable :class:`Reason`; ``message`` is for people."""

    def __init__(
        self, reason: Reason, message: str, *, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = Reason(reason)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


@dataclass(frozen=True)
class ReferenceValues:
    """What the relying party accepts, beyond what the pinned trust anchors prove.

    Every default is the strict choice. Fields a plugin does not use are ignored by it;
    plugin-specific values that have no field here go in ``extra`` under the plugin's name.
    """

    # SEV-SNP guest policy DEBUG / TDX TD attribute DEBUG: a debuggable guest has no
    # confidentiality, so it is refused unless explicitly allowed.
    allow_debug: bool = False
    # SEV-SNP guest policy MIGRATE_MA: a migration agent can export guest memory.
    allow_migration_agent: bool = False
    # SEV-SNP guest policy SMT: whether the guest may run with SMT enabled on the host.
    allow_smt: bool = True
    # Minimum TCB component SVNs (SEV-SNP: "bootloader", "tee", "snp", "microcode", "fmc";
    # another name is a configuration error and raises ValueError).
    min_tcb: Mapping[str, int] = field(default_factory=dict)
    # TDX TCB statuses (Intel's names) accepted; anything else is ``tcb_out_of_date``.
    allowed_tcb_statuses: frozenset[str] = frozenset({"UpToDate"})
    # TDX: lowest tcbEvaluationDataNumber accepted (refuses collateral from before a TCB
    # recovery even while it is still inside its validity window).
    min_tcb_evaluation_data_number: int = 0
    # Raw public keys trusted directly as attestation signers, for plugins without a
    # vendor PKI (sample: 32-byte Ed25519 keys; software TPM: attestation keys).
    trusted_keys: frozenset[bytes] = frozenset()
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifiedEvidence:
    """Normalized claims of evidence that passed verification.

    Hex strings are lowercase. ``measurement`` is the primary launch measurement (SNP
    MEASUREMENT, TDX MRTD); ``registers`` holds the other measured values (RTMRs,
    HOST_DATA, PCRs ...). ``hardware`` is False for evidence no TEE produced (``sample``,
    ``software-tpm``), so an appraisal policy can refuse it without knowing plugin names.
    """

    verifier: str
    tee_class: str
    hardware: bool
    measurement: str
    report_data: str
    registers: Mapping[str, str]
    tcb: Mapping[str, Any]
    policy: Mapping[str, Any]
    platform: Mapping[str, Any]
    signer: Mapping[str, Any]
    raw_digest: str
    evidence_digest: str
    verified_at: datetime

    def to_claims(self) -> dict[str, Any]:
        """The claims as plain JSON values, the ``input`` shape appraisal policies read."""
        return {
            "verifier": self.verifier,
            "tee_class": self.tee_class,
            "hardware": self.hardware,
            "measurement": self.measurement,
            "report_data": self.report_data,
            "registers": dict(self.registers),
            "tcb": _plain(self.tcb),
            "policy": _plain(self.policy),
            "platform": _plain(self.platform),
            "signer": _plain(self.signer),
            "raw_digest": self.raw_digest,
            "evidence_digest": self.evidence_digest,
            "verified_at": self.verified_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }


def _plain(value: Any) -> Any:
    """Mappings and sequences as dicts and lists, so the claims serialize as JSON."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        items = [_plain(v) for v in value]
        return sorted(items) if isinstance(value, frozenset | set) else items
    return value


@runtime_checkable
class Verifier(Protocol):
    """A verifier plugin: evidence bytes and the expected binding in, claims out."""

    name: str
    tee_class: str

    def verify(
        self,
        evidence: bytes,
        *,
        expected_report_data: bytes | None,
        now: datetime,
        reference: ReferenceValues,
    ) -> VerifiedEvidence:
        """Verify ``evidence`` at ``now``; raise :class:`AttestationError` on any refusal."""
        ...


_REGISTRY: dict[str, Verifier] = {}


def register(verifier: Verifier, *, replace: bool = False) -> None:
    """Register ``verifier`` under ``verifier.name``.

    Raises ``TypeError`` if it does not satisfy :class:`Verifier` and ``ValueError`` if the
    name is taken (a silent override could swap a hardware verifier for a weaker one).
    """
    if not isinstance(verifier, Verifier):
        raise TypeError(f"{verifier!r} does not implement the Verifier protocol")
    if verifier.name in _REGISTRY and not replace:
        raise ValueError(f"a verifier named {verifier.name!r} is already registered")
    _REGISTRY[verifier.name] = verifier


def get(name: str) -> Verifier:
    """The verifier registered as ``name``; ``AttestationError(unsupported)`` if none is."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AttestationError(Reason.UNSUPPORTED, f"no verifier named {name!r}") from None


def names() -> list[str]:
    """Names of the registered verifiers, sorted."""
    return sorted(_REGISTRY)


# Helpers shared by the plugins.


def require_aware(now: datetime) -> None:
    """Refuse naive datetimes: comparing them with certificate times would be off by the
    local UTC offset."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def check_report_data(actual: bytes, expected: bytes | None) -> None:
    """Compare the evidence's report data with the expected binding (see module docstring)."""
    if expected is None:
        return
    if len(expected) > len(actual):
        raise AttestationError(
            Reason.REPORT_DATA_MISMATCH,
            f"expected report data is {len(expected)} bytes, the field holds {len(actual)}",
        )
    padded = expected + bytes(len(actual) - len(expected))
    # compare_digest gives no timing signal about how much of the binding matched.
    if not hmac.compare_digest(padded, actual):
        raise AttestationError(
            Reason.REPORT_DATA_MISMATCH, "report data does not match the expected binding"
        )


def sha256_hex(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``, the digest format used in claims."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def load_certificates(
    data: bytes,
    what: str,
    *,
    pem: bool,
    zero_serial_ok: bool = False,
) -> list[x509.Certificate]:
    """Load a DER certificate or a PEM chain from evidence, fully parsed.

    ``cryptography`` parses fields lazily, so a corrupt subject or extension would surface
    as a ``ValueError`` deep inside a check; touching every field here turns it into
    ``malformed``. A serial number that is not positive (RFC 5280) is ``malformed`` too,
    unless ``zero_serial_ok``: AMD issues every VCEK and VLEK with serial 0.
    """
    loader: Callable[[bytes], Any] = (
        x509.load_pem_x509_certificates if pem else x509.load_der_x509_certificate
    )
    # cryptography warns when it parses a serial of 0. Silencing that changes process-wide
    # filters, so only the AMD path does; racing threads could at worst let a warning out.
    quiet = warnings.catch_warnings() if zero_serial_ok else contextlib.nullcontext()
    try:
        with quiet:
            if zero_serial_ok:
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            loaded = loader(data)
            certs = list(loaded) if pem else [loaded]
            for cert in certs:
                if cert.serial_number <= 0 and not zero_serial_ok:
                    raise ValueError("serial number is not positive (RFC 5280)")
                _ = (
                    cert.subject,
                    cert.issuer,
                    cert.not_valid_before_utc,
                    cert.not_valid_after_utc,
                    cert.extensions,
                    cert.signature_algorithm_oid,
                    cert.public_key(),
                )
    except (
        ValueError,
        TypeError,
        UnsupportedAlgorithm,
        x509.InvalidVersion,
        x509.DuplicateExtension,
    ) as exc:
        raise AttestationError(Reason.MALFORMED, f"{what} does not parse: {exc}") from exc
    if not certs:
        raise AttestationError(Reason.MALFORMED, f"{what} holds no certificate")
    return certs
