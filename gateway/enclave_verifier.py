"""The enclave verifier service (RATS verifier role, RFC 9334): nonces in, EARs out.

Per job:

1. :meth:`EnclaveVerifier.challenge` issues a 32-byte nonce, single use, valid at most
   :data:`MAX_NONCE_TTL` seconds, stored in SQLite (so a restart neither forgets issued
   nonces nor lets a used one be used again).
2. The attester binds its evidence to ``SHA-256(canonical JSON {nonce, job_id,
   manifest_digest, job_public_key, dataset_ids})`` (:class:`agents.enclave.binding.JobBinding`)
   and sends it with those fields (:class:`AttestationRequest`).
3. :meth:`EnclaveVerifier.attest` refuses evidence it has seen before (``evidence_replayed``),
   consumes the nonce (``nonce_unknown`` / ``nonce_reused`` / ``nonce_expired``), has the
   named plugin verify the evidence against the recomputed binding and the plugin's
   reference values (the plugin's :class:`~gateway.attestation.Reason` on refusal), then asks
   the PDP to appraise the verified claims with the job context (Rego,
   ``council/enclave/appraisal/decision``), and signs the verdict as an EAR JWT.

A refusal before appraisal raises :class:`AttestationRefused`; an appraisal always yields a
signed EAR, whatever its status, so a relying party can see *why* (the key broker releases
keys only for ``affirming``). The nonce is consumed before verification, so a failed attempt
cannot be retried with the same nonce.

Relying parties verify EARs with :meth:`EnclaveVerifier.jwks` (the verifier's key ring).
Every outcome is counted in the :class:`~gateway.enclave_audit.EnclaveAudit` when one is
given; if that write fails the attestation fails (fail closed).

Thread-safety: the nonce store serializes on a lock; :meth:`attest` is a coroutine that runs
the plugin and SQLite work in the default executor.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agents.enclave.binding import JobBinding, b64url, sha256_digest
from agents.enclave.ear import Submod, ear_digest, issue_ear
from agents.enclave.job_keys import JobPublicKey
from gateway.attestation import AttestationError, ReferenceValues, VerifiedEvidence, get
from gateway.enclave_audit import EnclaveAudit
from gateway.tokens import KeyRing, TokenConfig
from pep_sidecars.pdp_client import PDPClient, PDPUnavailable

__all__ = [
    "APPRAISAL_ENTRYPOINT",
    "MAX_NONCE_TTL",
    "AttestationRefused",
    "AttestationRequest",
    "AttestationResult",
    "Challenge",
    "DatasetRef",
    "EnclaveVerifier",
    "EnclaveVerifierConfig",
    "NonceStore",
]

APPRAISAL_ENTRYPOINT = "council/enclave/appraisal/decision"
MAX_NONCE_TTL = 60.0
DEFAULT_EAR_LIFETIME = 300
NONCE_SIZE = 32
# Rows stay this long after their nonce expired, then go: an old quote presented later
# still fails, as an unknown nonce instead of a reused one.
_RETAIN_SECONDS = 3600.0
DEVELOPER = "council"
BUILD = "council-gateway 0.1.0"


class AttestationRefused(Exception):
    """Evidence was refused before appraisal. ``reason`` is a stable code: ``nonce_unknown``,
    ``nonce_reused``, ``nonce_expired``, ``evidence_replayed``, ``appraisal_unavailable``, or
    a plugin :class:`~gateway.attestation.Reason` value."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Challenge:
    """An issued nonce and when it stops being accepted (unix seconds)."""

    nonce: bytes
    issued_at: float
    expires_at: float


class NonceStore:
    """Single-use nonces and seen evidence digests, in SQLite (see the module docstring)."""

    def __init__(self, path: str | Path, *, ttl: float = MAX_NONCE_TTL) -> None:
        if not 0 < ttl <= MAX_NONCE_TTL:
            raise ValueError(f"nonce ttl must be in (0, {MAX_NONCE_TTL}] seconds")
        self.ttl = ttl
        self._lock = threading.Lock()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db: sqlite3.Connection | None = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None
        )
        self._db.execute("pragma journal_mode=wal")
        self._db.executescript(
            "create table if not exists nonces (nonce blob primary key, issued_at real not null,"
            " expires_at real not null, used_at real);"
            "create table if not exists seen_evidence (digest text primary key,"
            " seen_at real not null);"
        )

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the nonce store is closed")
        return self._db

    def issue(self, now: float) -> Challenge:
        """A fresh random nonce valid for ``ttl`` seconds from ``now``."""
        nonce = os.urandom(NONCE_SIZE)
        with self._lock:
            db = self._conn()
            db.execute("delete from nonces where expires_at < ?", (now - _RETAIN_SECONDS,))
            db.execute("delete from seen_evidence where seen_at < ?", (now - _RETAIN_SECONDS,))
            db.execute(
                "insert into nonces(nonce, issued_at, expires_at) values (?, ?, ?)",
                (nonce, now, now + self.ttl),
            )
        return Challenge(nonce, now, now + self.ttl)

    def consume(self, nonce: bytes, now: float) -> None:
        """Mark ``nonce`` used; :class:`AttestationRefused` if unknown, used or expired."""
        with self._lock:
            db = self._conn()
            db.execute("begin immediate")
            try:
                row = db.execute(
                    "select expires_at, used_at from nonces where nonce = ?", (nonce,)
                ).fetchone()
                if row is not None and row[1] is None:
                    db.execute("update nonces set used_at = ? where nonce = ?", (now, nonce))
                db.execute("commit")
            except BaseException:
                db.execute("rollback")
                raise
        if row is None:
            raise AttestationRefused("nonce_unknown", "the nonce was not issued by this verifier")
        if row[1] is not None:
            raise AttestationRefused("nonce_reused", "the nonce has already been used")
        if now > row[0]:
            raise AttestationRefused("nonce_expired", "the nonce has expired")

    def remember_evidence(self, digest: str, now: float) -> None:
        """Record an evidence digest; :class:`AttestationRefused` if it was seen before."""
        with self._lock:
            try:
                self._conn().execute(
                    "insert into seen_evidence(digest, seen_at) values (?, ?)", (digest, now)
                )
            except sqlite3.IntegrityError:
                raise AttestationRefused(
                    "evidence_replayed", "this evidence was already presented"
                ) from None

    def close(self) -> None:
        """Close the database. Idempotent."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


@dataclass(frozen=True)
class DatasetRef:
    """A dataset a job reads, with its labels (the appraisal reads ``secure-compute``)."""

    id: str
    labels: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        """As the appraisal and scheduling policies read it."""
        return {"id": self.id, "labels": dict(self.labels)}


@dataclass(frozen=True)
class AttestationRequest:
    """Evidence plus everything it claims to be bound to."""

    plugin: str
    evidence: bytes
    binding: JobBinding
    transform: str
    datasets: Sequence[DatasetRef]


@dataclass(frozen=True)
class AttestationResult:
    """A signed EAR and what the relying party and audit need from it."""

    ear: str
    status: str
    reasons: tuple[str, ...]
    policy_id: str
    evidence_digest: str
    ear_digest: str
    nonce: str
    expires_at: int
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def affirming(self) -> bool:
        """True when the appraisal affirmed the evidence."""
        return self.status == "affirming"


@dataclass(frozen=True)
class EnclaveVerifierConfig:
    """How the verifier runs.

    Attributes:
        db: SQLite file for nonces and seen evidence.
        keys_dir: the key ring directory of the EAR signing keys.
        references: reference values per plugin name; a plugin without an entry is refused.
        appraisal_policy: the appraisal policy id the Rego appraisal applies (``default``:
            hardware TEEs only; ``software-tpm`` also admits the isolated, not encrypted
            swtpm + bubblewrap executor).
        nonce_ttl: seconds a nonce is valid, at most :data:`MAX_NONCE_TTL`.
        ear_lifetime: seconds an EAR is valid.
        algorithm: EAR signature algorithm, ``EdDSA`` or ``ES256``.
        entrypoint: the PDP entrypoint of the appraisal.
    """

    db: Path
    keys_dir: Path
    references: Mapping[str, ReferenceValues]
    appraisal_policy: str = "default"
    nonce_ttl: float = MAX_NONCE_TTL
    ear_lifetime: int = DEFAULT_EAR_LIFETIME
    algorithm: str = "EdDSA"
    entrypoint: str = APPRAISAL_ENTRYPOINT
    developer: str = DEVELOPER
    build: str = BUILD

    def __post_init__(self) -> None:
        if not 0 < self.nonce_ttl <= MAX_NONCE_TTL:
            raise ValueError(f"nonce_ttl must be in (0, {MAX_NONCE_TTL}] seconds")
        if self.ear_lifetime <= 0:
            raise ValueError("ear_lifetime must be positive")
        if not self.appraisal_policy:
            raise ValueError("appraisal_policy must not be empty")
        object.__setattr__(self, "references", MappingProxyType(dict(self.references)))


def _job_reference(reference: ReferenceValues, plugin: str, binding: JobBinding) -> ReferenceValues:
    """``reference`` with the job's own measurements for plugins that take them.

    A plugin whose reference values carry ``job_events`` (the ``tpm`` plugin) is told the
    manifest digest this job must have measured, so a measured launch of another manifest is
    refused by the plugin itself, not only by the appraisal.
    """
    extra = reference.extra.get(plugin)
    if not isinstance(extra, Mapping) or "job_events" not in extra:
        return reference
    events = dict(extra.get("job_events") or {})
    events["job-manifest"] = binding.manifest_digest.removeprefix("sha256:")
    return replace(reference, extra={**reference.extra, plugin: {**extra, "job_events": events}})


class EnclaveVerifier:
    """The verifier service (see the module docstring)."""

    def __init__(
        self,
        config: EnclaveVerifierConfig,
        pdp: PDPClient,
        *,
        audit: EnclaveAudit | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._pdp = pdp
        self._audit = audit
        self._clock = clock
        self._nonces = NonceStore(config.db, ttl=config.nonce_ttl)
        token_config = TokenConfig(
            issuer="council-enclave-verifier",
            algorithm=config.algorithm,
            default_lifetime=float(config.ear_lifetime),
            max_lifetime=float(config.ear_lifetime),
        )
        self._keys = KeyRing(config.keys_dir, token_config, clock=clock)

    def jwks(self) -> dict[str, Any]:
        """The public keys relying parties verify EARs with (JWK Set)."""
        return self._keys.jwks()

    def challenge(self) -> Challenge:
        """A fresh single-use nonce."""
        return self._nonces.issue(self._clock())

    async def attest(self, request: AttestationRequest) -> AttestationResult:
        """Verify, appraise and sign; see the module docstring."""
        loop = asyncio.get_running_loop()
        job_id = request.binding.job_id
        try:
            verified = await loop.run_in_executor(None, self._verify, request)
            result = await self._appraise(request, verified)
        except AttestationRefused as exc:
            if self._audit is not None:
                await loop.run_in_executor(
                    None, partial(self._audit.attestation_failed, exc.reason, job_id=job_id)
                )
            raise
        if self._audit is not None:
            await loop.run_in_executor(None, self._record, job_id, result)
        return result

    def _record(self, job_id: str, result: AttestationResult) -> None:
        assert self._audit is not None
        self._audit.attested(
            job_id,
            nonce=result.nonce,
            evidence_digest=result.evidence_digest,
            ear_digest=result.ear_digest,
            ear_status=result.status,
        )
        if not result.affirming:
            self._audit.attestation_failed(f"appraisal_{result.status}", job_id=job_id)

    def _verify(self, request: AttestationRequest) -> VerifiedEvidence:
        now = self._clock()
        try:
            verifier = get(request.plugin)
        except AttestationError as exc:
            raise AttestationRefused(exc.reason.value, exc.message) from exc
        reference = self.config.references.get(request.plugin)
        if reference is None:
            raise AttestationRefused(
                "unsupported", f"no reference values are configured for {request.plugin!r}"
            )
        self._nonces.remember_evidence(sha256_digest(request.evidence), now)
        self._nonces.consume(request.binding.nonce, now)
        try:
            return verifier.verify(
                request.evidence,
                expected_report_data=request.binding.report_data(),
                now=datetime.fromtimestamp(now, UTC),
                reference=_job_reference(reference, request.plugin, request.binding),
            )
        except AttestationError as exc:
            raise AttestationRefused(exc.reason.value, exc.message) from exc
        except Exception as exc:
            # The plugin contract: anything but AttestationError is a bug, refused all the same.
            raise AttestationRefused(
                "verification_failed", f"{request.plugin} verifier failed: {exc!r}"
            ) from exc

    async def _appraise(
        self, request: AttestationRequest, verified: VerifiedEvidence
    ) -> AttestationResult:
        binding = request.binding
        input_doc = {
            "policy_id": self.config.appraisal_policy,
            "claims": verified.to_claims(),
            "job": {
                "id": binding.job_id,
                "manifest_digest": binding.manifest_digest,
                "transform": request.transform,
                "datasets": [d.to_json() for d in request.datasets],
            },
        }
        try:
            decision = await self._pdp.decide(self.config.entrypoint, input_doc)
        except PDPUnavailable as exc:
            raise AttestationRefused("appraisal_unavailable", exc.message) from exc
        result = decision.result if isinstance(decision.result, Mapping) else {}
        status = str(result.get("status", "none"))
        vector = result.get("trustworthiness_vector")
        if status not in ("affirming", "warning", "contraindicated", "none") or not isinstance(
            vector, Mapping
        ):
            # A policy answer without a verdict is no verdict: the EAR says "none".
            status, vector = "none", {}
        if status == "affirming" and not decision.allow:
            status = "contraindicated"
        policy_id = f"{result.get('policy_id', self.config.appraisal_policy)}@{decision.revision}"
        submod = Submod(
            status=status,
            trustworthiness_vector={str(k): int(v) for k, v in vector.items()},
            policy_id=policy_id,
            tee_class=verified.tee_class,
            reasons=tuple(decision.reasons),
        )
        key = self._keys.current
        issued_at = int(self._clock())
        token = issue_ear(
            private_key=key.private_key,
            algorithm=key.algorithm,
            kid=key.kid,
            issued_at=issued_at,
            lifetime=self.config.ear_lifetime,
            nonce=binding.nonce,
            verifier_id={"developer": self.config.developer, "build": self.config.build},
            submods={verified.verifier: submod},
            job_public_key=JobPublicKey.from_doc(binding.job_public_key),
            job_id=binding.job_id,
            manifest_digest=binding.manifest_digest,
            dataset_ids=binding.dataset_ids,
        )
        return AttestationResult(
            ear=token,
            status=status,
            reasons=tuple(decision.reasons),
            policy_id=policy_id,
            evidence_digest=verified.evidence_digest,
            ear_digest=ear_digest(token),
            nonce=b64url(binding.nonce),
            expires_at=issued_at + self.config.ear_lifetime,
            claims=verified.to_claims(),
        )

    def close(self) -> None:
        """Close the nonce store. Idempotent; the PDP client belongs to the caller."""
        self._nonces.close()
