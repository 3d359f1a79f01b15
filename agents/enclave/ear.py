"""EAR attestation results as signed JWTs: issue (the verifier) and verify (any relying party).

An EAR (EAT Attestation Result, draft-ietf-rats-ear) says what the verifier concluded about
one piece of evidence. Claims of the JWTs made here:

- ``eat_profile``: :data:`EAR_PROFILE`; ``iat``, ``exp``; ``eat_nonce``: the job's nonce
  (base64url);
- ``ear.verifier-id``: ``{"developer", "build"}``;
- ``submods``: one entry per verifier plugin, ``{"ear.status", "ear.trustworthiness-vector",
  "ear.appraisal-policy-id"}`` plus Council's ``council.tee-class`` and ``council.reasons``
  (so a relying party reads *software-tpm: isolated, not encrypted* without knowing plugins);
- ``cnf``: ``{"jwk": <the job's Ed25519 key>}`` (RFC 7800): the key the job signs outputs
  with; ``council.job``: ``{"id", "manifest_digest", "dataset_ids", "enc_jwk"}``, the rest of
  what the evidence was bound to (``enc_jwk`` is the job's X25519 key for key deliveries).

Signed EdDSA (Ed25519) or ES256 with a key from the verifier's key ring; relying parties
verify with the verifier's JWKS (:func:`verify_ear`). Module without network or clock: the
caller passes ``now``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

from agents.enclave.binding import b64url, b64url_decode
from agents.enclave.job_keys import JobPublicKey

__all__ = [
    "ALGORITHMS",
    "EAR_PROFILE",
    "STATUSES",
    "TRUSTWORTHINESS_CLAIMS",
    "EARClaims",
    "EARError",
    "Submod",
    "ear_digest",
    "issue_ear",
    "verify_ear",
]

EAR_PROFILE = "tag:github.com,2023:veraison/ear"
ALGORITHMS = ("EdDSA", "ES256")
STATUSES = ("affirming", "warning", "contraindicated", "none")
TRUSTWORTHINESS_CLAIMS = (
    "instance-identity",
    "configuration",
    "executables",
    "file-system",
    "hardware",
    "runtime-opaque",
    "storage-opaque",
    "sourced-data",
)
JWT_TYPE = "JWT"


class EARError(Exception):
    """An EAR did not verify or does not say what the caller needs. ``code`` is stable:
    ``bad_signature``, ``unknown_key``, ``expired``, ``malformed``, ``not_affirming``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Submod:
    """One submodule's appraisal (one verifier plugin's verdict)."""

    status: str
    trustworthiness_vector: Mapping[str, int]
    policy_id: str
    tee_class: str
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"ear.status must be one of {STATUSES}")
        unknown = set(self.trustworthiness_vector) - set(TRUSTWORTHINESS_CLAIMS)
        if unknown:
            raise ValueError(f"unknown trustworthiness claims {sorted(unknown)}")
        for name, value in self.trustworthiness_vector.items():
            if isinstance(value, bool) or not isinstance(value, int) or not -128 <= value <= 127:
                raise ValueError(f"trustworthiness claim {name} must be an int8")
        object.__setattr__(self, "trustworthiness_vector", dict(self.trustworthiness_vector))
        object.__setattr__(self, "reasons", tuple(self.reasons))

    def to_claims(self) -> dict[str, Any]:
        """The submodule as EAR JSON claims."""
        return {
            "ear.status": self.status,
            "ear.trustworthiness-vector": dict(self.trustworthiness_vector),
            "ear.appraisal-policy-id": self.policy_id,
            "council.tee-class": self.tee_class,
            "council.reasons": list(self.reasons),
        }

    @classmethod
    def from_claims(cls, doc: Any) -> Submod:
        """Parse :meth:`to_claims` output; ``ValueError`` if malformed."""
        if not isinstance(doc, Mapping):
            raise ValueError("a submodule must be an object")
        tv = doc.get("ear.trustworthiness-vector", {})
        if not isinstance(tv, Mapping):
            raise ValueError("ear.trustworthiness-vector must be an object")
        reasons = doc.get("council.reasons", [])
        if not isinstance(reasons, list):
            raise ValueError("council.reasons must be an array")
        return cls(
            status=str(doc.get("ear.status")),
            trustworthiness_vector=dict(tv),
            policy_id=str(doc.get("ear.appraisal-policy-id", "")),
            tee_class=str(doc.get("council.tee-class", "")),
            reasons=tuple(str(r) for r in reasons),
        )


@dataclass(frozen=True)
class EARClaims:
    """A verified EAR, as a relying party uses it."""

    submods: Mapping[str, Submod]
    nonce: bytes
    issued_at: int
    expires_at: int
    job_id: str
    manifest_digest: str
    dataset_ids: tuple[str, ...]
    job_public_key: JobPublicKey
    verifier_id: Mapping[str, str]
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def status(self) -> str:
        """The worst submodule status (``none`` if there are no submodules)."""
        order = {"affirming": 0, "warning": 1, "none": 2, "contraindicated": 3}
        if not self.submods:
            return "none"
        return max((s.status for s in self.submods.values()), key=order.__getitem__)

    @property
    def affirming(self) -> bool:
        """True when every submodule is ``affirming``."""
        return bool(self.submods) and all(s.status == "affirming" for s in self.submods.values())

    def require_affirming(self) -> None:
        """Raise ``EARError(not_affirming)`` unless :attr:`affirming`."""
        if not self.affirming:
            reasons = [r for s in self.submods.values() for r in s.reasons]
            detail = f" ({'; '.join(reasons)})" if reasons else ""
            raise EARError("not_affirming", f"attestation result is {self.status}{detail}")


def ear_digest(token: str | bytes) -> str:
    """``sha256:<hex>`` of the EAR's compact serialization, as predicates and audit cite it."""
    raw = token.encode("ascii") if isinstance(token, str) else token
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def issue_ear(
    *,
    private_key: Any,
    algorithm: str,
    kid: str,
    issued_at: int,
    lifetime: int,
    nonce: bytes,
    verifier_id: Mapping[str, str],
    submods: Mapping[str, Submod],
    job_public_key: JobPublicKey,
    job_id: str,
    manifest_digest: str,
    dataset_ids: Sequence[str],
) -> str:
    """Sign an EAR (see the module docstring) and return its compact JWT serialization."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}")
    if lifetime <= 0:
        raise ValueError("lifetime must be positive")
    claims = {
        "eat_profile": EAR_PROFILE,
        "iat": issued_at,
        "exp": issued_at + lifetime,
        "eat_nonce": b64url(nonce),
        "ear.verifier-id": dict(verifier_id),
        "submods": {name: sub.to_claims() for name, sub in submods.items()},
        "cnf": {"jwk": job_public_key.sig_jwk()},
        "council.job": {
            "id": job_id,
            "manifest_digest": manifest_digest,
            "dataset_ids": sorted(dataset_ids),
            "enc_jwk": job_public_key.enc_jwk(),
        },
    }
    return jwt.encode(
        claims, private_key, algorithm=algorithm, headers={"kid": kid, "typ": JWT_TYPE}
    )


def _keys_by_kid(jwks: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    keys = {}
    for entry in jwks.get("keys", []):
        if not isinstance(entry, Mapping) or "kid" not in entry:
            continue
        try:
            keys[str(entry["kid"])] = jwt.PyJWK(dict(entry))
        except jwt.PyJWTError:
            continue
    return keys


def verify_ear(
    token: str, jwks: Mapping[str, Any], *, now: float, leeway: float = 30.0
) -> EARClaims:
    """Verify an EAR's signature against ``jwks`` and parse it; raises :class:`EARError`.

    Only :data:`ALGORITHMS` are accepted, and only with the key whose ``kid`` the header
    names; the key's own ``alg`` must agree with the header (no algorithm confusion).
    Status is *not* checked here: call :meth:`EARClaims.require_affirming` for that.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise EARError("malformed", f"not a JWT: {exc}") from exc
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise EARError("malformed", f"algorithm {alg!r} is not accepted")
    key = _keys_by_kid(jwks).get(str(kid))
    if key is None:
        raise EARError("unknown_key", f"no verifier key with kid {kid!r}")
    if key.algorithm_name != alg:
        raise EARError("bad_signature", f"key {kid} is for {key.algorithm_name}, not {alg}")
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            # Times are checked below against the caller's ``now``, not the system clock,
            # so an offline verification is reproducible.
            options={"require": ["iat", "exp"], "verify_iat": False, "verify_exp": False},
        )
    except jwt.InvalidSignatureError as exc:
        raise EARError("bad_signature", "signature does not verify") from exc
    except jwt.PyJWTError as exc:
        raise EARError("malformed", str(exc)) from exc
    if not isinstance(claims["exp"], int) or not isinstance(claims["iat"], int):
        raise EARError("malformed", "iat and exp must be integers")
    if claims["exp"] < now - leeway:
        raise EARError("expired", "attestation result has expired")
    if claims["iat"] > now + leeway:
        raise EARError("malformed", "attestation result is issued in the future")
    try:
        return _parse(claims)
    except (KeyError, TypeError, ValueError) as exc:
        raise EARError("malformed", f"EAR claims: {exc}") from exc


def _parse(claims: Mapping[str, Any]) -> EARClaims:
    if claims.get("eat_profile") != EAR_PROFILE:
        raise ValueError(f"eat_profile is not {EAR_PROFILE}")
    submods = claims["submods"]
    if not isinstance(submods, Mapping) or not submods:
        raise ValueError("submods must be a non-empty object")
    job = claims["council.job"]
    public = JobPublicKey.from_jwks(claims["cnf"]["jwk"], job["enc_jwk"])
    dataset_ids = job["dataset_ids"]
    if not isinstance(dataset_ids, list):
        raise ValueError("council.job.dataset_ids must be an array")
    return EARClaims(
        submods={str(k): Submod.from_claims(v) for k, v in submods.items()},
        nonce=b64url_decode(claims["eat_nonce"]),
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
        job_id=str(job["id"]),
        manifest_digest=str(job["manifest_digest"]),
        dataset_ids=tuple(str(d) for d in dataset_ids),
        job_public_key=public,
        verifier_id=dict(claims["ear.verifier-id"]),
        raw=dict(claims),
    )
