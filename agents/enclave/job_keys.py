"""A job's own key pair: made inside the job, bound to its evidence, never exported.

Two keys, because one primitive cannot do both jobs: Ed25519 signs the job's outputs (the
DSSE envelope) and X25519 receives the per-job dataset keys (ECDH). Their public halves
travel together as the *job public key* ``{"sig": b64url, "enc": b64url}``; that document
is part of the report-data binding, so the verifier's EAR vouches for both at once.

The private halves live only in the :class:`JobKeys` object of the sandboxed job process;
nothing here serializes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agents.enclave.binding import b64url, b64url_decode, canonical_json, sha256_digest

__all__ = ["JobKeys", "JobPublicKey"]


@dataclass(frozen=True)
class JobPublicKey:
    """The public halves: raw 32-byte Ed25519 (``sig``) and X25519 (``enc``) keys."""

    sig: bytes
    enc: bytes

    def __post_init__(self) -> None:
        if len(self.sig) != 32 or len(self.enc) != 32:
            raise ValueError("job public keys are 32-byte raw Ed25519 and X25519 keys")

    def to_doc(self) -> dict[str, str]:
        """The form bound into report data and carried in messages."""
        return {"sig": b64url(self.sig), "enc": b64url(self.enc)}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> JobPublicKey:
        """Parse :meth:`to_doc` output; ``ValueError`` if malformed."""
        if not isinstance(doc, Mapping) or set(doc) != {"sig", "enc"}:
            raise ValueError("a job public key has exactly 'sig' and 'enc'")
        return cls(b64url_decode(doc["sig"]), b64url_decode(doc["enc"]))

    def sig_jwk(self) -> dict[str, str]:
        """The signing key as an OKP JWK (RFC 8037), the EAR's ``cnf.jwk``."""
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(self.sig)}

    def enc_jwk(self) -> dict[str, str]:
        """The key-agreement key as an OKP JWK (RFC 8037)."""
        return {"kty": "OKP", "crv": "X25519", "x": b64url(self.enc)}

    @classmethod
    def from_jwks(cls, sig_jwk: Mapping[str, Any], enc_jwk: Mapping[str, Any]) -> JobPublicKey:
        """Rebuild from the two JWKs; ``ValueError`` on the wrong key types."""
        if (sig_jwk.get("kty"), sig_jwk.get("crv")) != ("OKP", "Ed25519"):
            raise ValueError("the signing JWK must be OKP/Ed25519")
        if (enc_jwk.get("kty"), enc_jwk.get("crv")) != ("OKP", "X25519"):
            raise ValueError("the key-agreement JWK must be OKP/X25519")
        return cls(b64url_decode(str(sig_jwk.get("x"))), b64url_decode(str(enc_jwk.get("x"))))

    def thumbprint(self) -> str:
        """``sha256:<hex>`` of the canonical document: a short stable name for the pair."""
        return sha256_digest(canonical_json(self.to_doc()))

    def verifier(self) -> Ed25519PublicKey:
        """The Ed25519 key that verifies the job's signatures."""
        return Ed25519PublicKey.from_public_bytes(self.sig)


class JobKeys:
    """The private halves, generated fresh for one job.

    Not thread-safe to share across jobs by design: one instance per job, dropped with it.
    """

    def __init__(self) -> None:
        self._sign = Ed25519PrivateKey.generate()
        self._enc = X25519PrivateKey.generate()
        self.public = JobPublicKey(
            self._sign.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            self._enc.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        )

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        """The Ed25519 private key (for the DSSE signer)."""
        return self._sign

    @property
    def agreement_key(self) -> X25519PrivateKey:
        """The X25519 private key (for opening key deliveries)."""
        return self._enc
