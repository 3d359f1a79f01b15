"""Short-lived, scoped access tokens: signing keys, issuing, verifying, credentials, replay.

A client trades a long-lived credential (an enrolled mTLS identity or an API key) for a JWT
that lives minutes, names the scopes it carries and the audience it is for, and is signed
with the gateway's current key (EdDSA/Ed25519 by default, or ES256). Admin methods accept
nothing else, and each admin token only once (its ``jti`` goes into a replay cache).

Pieces, each usable alone:

* :class:`TokenConfig`: issuer, audiences, lifetimes (per scope; the shortest applicable
  wins), clock leeway.
* :class:`KeyRing`: signing keys in a directory (0700; key files 0600). :meth:`KeyRing.rotate`
  makes a new current key; retired keys keep verifying until every token they signed has
  expired, then they are deleted. :meth:`KeyRing.jwks` lists the public halves.
* :class:`TokenService`: issues tokens, and exchanges a :class:`Credential` for one after
  checking that the requested scopes are a subset of what the credential may get.
* :class:`TokenVerifier`: signature, ``typ``, issuer, audience, ``exp``/``nbf``, maximum
  lifetime; returns :class:`TokenClaims`.
* :class:`CredentialStore`: API keys (only their SHA-256 is stored) and enrolled mTLS
  clients, in SQLite.
* :class:`ReplayCache`: ``jti`` values already used, in SQLite, so a replay is refused even
  after a restart; entries go once their token could no longer verify.

Errors are :class:`AuthError` subclasses with stable codes; the gRPC edge maps them to
statuses in one place (:func:`gateway.mtls.auth_status`). This module knows no network.

Thread-safety: :class:`KeyRing`, :class:`CredentialStore` and :class:`ReplayCache` are safe
to share between threads (the stores serialize on a lock; the ring swaps an immutable
snapshot); the async servers call the stores from an executor because they touch the disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jwt
import sqlite_utils
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

__all__ = [
    "ALGORITHMS",
    "API_KEY_PREFIX",
    "DEFAULT_LEEWAY",
    "DEFAULT_LIFETIME",
    "MAX_LIFETIME",
    "AuthError",
    "CertificateRejectedError",
    "Credential",
    "CredentialStore",
    "InvalidCredentialError",
    "InvalidRequestError",
    "InvalidTokenError",
    "IssuedToken",
    "KeyRing",
    "KeyStoreError",
    "LongLivedCredentialError",
    "MissingCredentialError",
    "ReplayCache",
    "ScopeDeniedError",
    "SigningKey",
    "TokenClaims",
    "TokenConfig",
    "TokenExpiredError",
    "TokenReplayedError",
    "TokenService",
    "TokenVerifier",
    "parse_scopes",
    "scope_allows",
]

ALGORITHMS = ("EdDSA", "ES256")
DEFAULT_LIFETIME = 900.0
"""Seconds a token lives unless a scope rule or the request asks for less (15 minutes)."""
MAX_LIFETIME = 900.0
"""Ceiling on any token's lifetime; verifiers refuse tokens that claim more."""
DEFAULT_LEEWAY = 30.0
"""Seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""
MAX_SCOPES = 64
TOKEN_TYPE = "at+jwt"
"""RFC 9068's ``typ``: keeps these tokens apart from any other JWT signed elsewhere."""
API_KEY_PREFIX = "ck_"
"""API keys look like ``ck_<key id>_<secret>``, so they are recognisable wherever they leak."""

_SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$")
_SCOPE_PATTERN = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}\*?)$")


# --- errors ------------------------------------------------------------------------------


class AuthError(Exception):
    """Base class of every error of the token and mTLS path; ``code`` is stable."""

    code = "auth_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MissingCredentialError(AuthError):
    """The call carries no credential at all (no client certificate, key or token)."""

    code = "credential_missing"


class InvalidCredentialError(AuthError):
    """An API key that is unknown or revoked, or a certificate identity not enrolled."""

    code = "credential_invalid"


class LongLivedCredentialError(AuthError):
    """An API key or a token living longer than allowed was offered where only short-lived
    tokens are accepted."""

    code = "long_lived_credential"


class InvalidTokenError(AuthError):
    """A token that is malformed, badly signed, signed by an unknown key, for another
    audience or issuer, or not valid yet."""

    code = "token_invalid"


class TokenExpiredError(AuthError):
    """A token whose ``exp`` has passed."""

    code = "token_expired"


class TokenReplayedError(AuthError):
    """A one-time token (admin calls) presented a second time."""

    code = "token_replayed"


class ScopeDeniedError(AuthError):
    """Scopes requested beyond what the credential may get, or a token lacking the scope a
    method requires."""

    code = "scope_denied"


class InvalidRequestError(AuthError):
    """A malformed request: bad scope syntax, unknown audience, negative lifetime."""

    code = "invalid_request"


class CertificateRejectedError(AuthError):
    """A client certificate that is revoked, expired, or carries no SPIFFE identity."""

    code = "certificate_rejected"


class KeyStoreError(AuthError):
    """The key directory or a credential database cannot be read or written."""

    code = "key_store_error"


# --- scopes and configuration ------------------------------------------------------------


def parse_scopes(scopes: str | Iterable[str]) -> frozenset[str]:
    """Concrete scopes from a space-separated string or an iterable; no wildcards."""
    items = scopes.split() if isinstance(scopes, str) else list(scopes)
    bad = [s for s in items if not _SCOPE.match(s)]
    if bad:
        raise InvalidRequestError(f"malformed scope(s): {', '.join(map(repr, bad))}")
    if len(items) > MAX_SCOPES:
        raise InvalidRequestError(f"at most {MAX_SCOPES} scopes per token")
    return frozenset(items)


def scope_allows(pattern: str, scope: str) -> bool:
    """Whether a granted pattern covers ``scope``: equal, or a prefix ending in ``*``.

    ``connector:read:*`` covers ``connector:read:sales``; ``*`` covers everything.
    """
    if pattern.endswith("*"):
        return scope.startswith(pattern[:-1])
    return pattern == scope


def _check_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    items = tuple(patterns)
    bad = [p for p in items if not _SCOPE_PATTERN.match(p)]
    if bad:
        raise InvalidRequestError(f"malformed scope pattern(s): {', '.join(map(repr, bad))}")
    return items


@dataclass(frozen=True)
class TokenConfig:
    """How tokens are issued and verified.

    Attributes:
        issuer: the ``iss`` claim; verifiers require it.
        audiences: audiences a token may be requested for; the first is the default.
        algorithm: ``EdDSA`` (Ed25519) or ``ES256`` for newly generated keys.
        default_lifetime: seconds a token lives when no scope rule applies.
        max_lifetime: ceiling on every lifetime; also how long a retired key keeps verifying.
        scope_lifetimes: scope pattern (exact, or prefix ending in ``*``) → seconds. When
            rules match any requested scope, the shortest of them is the lifetime.
        leeway: seconds of clock skew tolerated by verification.
    """

    issuer: str = "council-gateway"
    audiences: tuple[str, ...] = ("council",)
    algorithm: str = "EdDSA"
    default_lifetime: float = DEFAULT_LIFETIME
    max_lifetime: float = MAX_LIFETIME
    scope_lifetimes: Mapping[str, float] = field(default_factory=dict)
    leeway: float = DEFAULT_LEEWAY

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("issuer must not be empty")
        if not self.audiences or not all(self.audiences):
            raise ValueError("audiences must be a non-empty tuple of non-empty strings")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
        if not 0 < self.default_lifetime <= self.max_lifetime:
            raise ValueError("need 0 < default_lifetime <= max_lifetime")
        if self.leeway < 0:
            raise ValueError("leeway must not be negative")
        _check_patterns(self.scope_lifetimes)
        for pattern, seconds in self.scope_lifetimes.items():
            if not 0 < seconds <= self.max_lifetime:
                raise ValueError(f"lifetime of {pattern!r} must be in (0, max_lifetime]")
        # Frozen all the way down: a caller's later edits to its dict must not leak in.
        object.__setattr__(self, "scope_lifetimes", MappingProxyType(dict(self.scope_lifetimes)))

    def lifetime_for(self, scopes: Iterable[str]) -> float:
        """Seconds a token carrying ``scopes`` may live: the shortest matching rule wins."""
        matching = [
            seconds
            for pattern, seconds in self.scope_lifetimes.items()
            if any(scope_allows(pattern, s) for s in scopes)
        ]
        return min(matching) if matching else self.default_lifetime


# --- keys --------------------------------------------------------------------------------

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class SigningKey:
    """One key of the ring; ``retired_at`` is None for the current key."""

    kid: str
    algorithm: str
    created_at: float
    retired_at: float | None
    private_key: PrivateKey = field(repr=False)

    @property
    def public_key(self) -> PublicKey:
        """The verifying half."""
        return self.private_key.public_key()


def _generate(algorithm: str) -> PrivateKey:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


class KeyRing:
    """The gateway's signing keys, persisted in a directory.

    Layout: ``keyring.json`` (kid, algorithm, creation and retirement times) and one
    ``<kid>.pem`` per key (PKCS#8), all 0600 in a 0700 directory. Writers (opening an empty
    directory, :meth:`rotate`) hold an exclusive ``flock`` on ``.lock`` so that processes
    sharing the directory never mint two current keys. A ring reads the directory when it is
    opened and when it rotates, so rotate in the process that signs. Opening and rotating
    touch the disk: async callers run :meth:`rotate` in an executor.
    """

    MANIFEST = "keyring.json"

    def __init__(
        self,
        directory: str | Path,
        config: TokenConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        with self._locked():
            keys = self._read()
            if not any(k.retired_at is None for k in keys):
                keys = self._write([*keys, self._new_key()])
            self._keys: tuple[SigningKey, ...] = tuple(keys)

    @property
    def retain_for(self) -> float:
        """Seconds a retired key keeps verifying: the longest a token it signed can live."""
        return self._config.max_lifetime + self._config.leeway

    @property
    def current(self) -> SigningKey:
        """The key new tokens are signed with."""
        return next(k for k in self._keys if k.retired_at is None)

    def verifying_keys(self) -> tuple[SigningKey, ...]:
        """The current key and every retired key whose tokens may still be valid."""
        now = self._clock()
        return tuple(
            k for k in self._keys if k.retired_at is None or now < k.retired_at + self.retain_for
        )

    def verification_key(self, kid: str) -> SigningKey | None:
        """The key with this ``kid`` if it may still verify tokens, else None."""
        return next((k for k in self.verifying_keys() if k.kid == kid), None)

    def rotate(self) -> SigningKey:
        """Retire the current key, make a new one current, delete keys past their window."""
        with self._lock, self._locked():
            now = self._clock()
            keys = [k if k.retired_at is not None else _retired(k, now) for k in self._read()]
            self._keys = tuple(self._write([*keys, self._new_key()]))
            return self.current

    def jwks(self) -> dict[str, Any]:
        """The verifying keys' public halves as a JWK Set (RFC 7517), each with its ``kid``."""
        keys = []
        for key in self.verifying_keys():
            jwk = jwt.get_algorithm_by_name(key.algorithm).to_jwk(key.public_key, as_dict=True)
            keys.append({**jwk, "kid": key.kid, "alg": key.algorithm, "use": "sig"})
        return {"keys": keys}

    # --- persistence ------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _new_key(self) -> SigningKey:
        now = self._clock()
        kid = time.strftime("%Y%m%d", time.gmtime(now)) + "-" + secrets.token_hex(6)
        key = SigningKey(kid, self._config.algorithm, now, None, _generate(self._config.algorithm))
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(self.directory / f"{kid}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return key

    def _read(self) -> list[SigningKey]:
        path = self.directory / self.MANIFEST
        try:
            entries = json.loads(path.read_text())["keys"]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(f"{path}: unreadable key manifest: {exc}") from exc
        keys = []
        for entry in entries:
            pem_path = self.directory / f"{entry['kid']}.pem"
            try:
                private = serialization.load_pem_private_key(pem_path.read_bytes(), None)
            except (OSError, ValueError) as exc:
                raise KeyStoreError(f"{pem_path}: unreadable signing key: {exc}") from exc
            expected = (
                ed25519.Ed25519PrivateKey if entry["alg"] == "EdDSA" else ec.EllipticCurvePrivateKey
            )
            if entry["alg"] not in ALGORITHMS or not isinstance(private, expected):
                raise KeyStoreError(f"{pem_path}: not a key for {entry['alg']!r}")
            retired = entry["retired_at"]
            keys.append(
                SigningKey(
                    entry["kid"],
                    entry["alg"],
                    float(entry["created_at"]),
                    None if retired is None else float(retired),
                    private,
                )
            )
        return keys

    def _write(self, keys: list[SigningKey]) -> list[SigningKey]:
        """Persist the manifest atomically, minus keys past their window; return the kept."""
        now = self._clock()
        keep = [k for k in keys if k.retired_at is None or now < k.retired_at + self.retain_for]
        manifest = {
            "keys": [
                {
                    "kid": k.kid,
                    "alg": k.algorithm,
                    "created_at": k.created_at,
                    "retired_at": k.retired_at,
                }
                for k in keep
            ]
        }
        tmp = self.directory / (self.MANIFEST + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(manifest, fh, indent=1)
        os.replace(tmp, self.directory / self.MANIFEST)
        # Key files go only after the manifest stops naming them, so a crash in between
        # leaves an orphan file, never a manifest entry without its key.
        for gone in {k.kid for k in keys} - {k.kid for k in keep}:
            (self.directory / f"{gone}.pem").unlink(missing_ok=True)
        return keep


def _retired(key: SigningKey, when: float) -> SigningKey:
    return SigningKey(key.kid, key.algorithm, key.created_at, when, key.private_key)


# --- tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenClaims:
    """The verified (or just issued) content of an access token."""

    issuer: str
    subject: str
    audience: str
    tenant: str
    scopes: frozenset[str]
    issued_at: int
    not_before: int
    expires_at: int
    jti: str
    kid: str
    device_id: str = ""
    cnf_thumbprint: str = ""
    """RFC 8705 ``cnf.x5t#S256``: the token is only good over mTLS with that certificate."""

    def to_dict(self) -> dict[str, Any]:
        """The claims as a JSON-ready document (for policy input and logs)."""
        doc: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": self.audience,
            "tenant": self.tenant,
            "scope": " ".join(sorted(self.scopes)),
            "iat": self.issued_at,
            "nbf": self.not_before,
            "exp": self.expires_at,
            "jti": self.jti,
        }
        if self.device_id:
            doc["device_id"] = self.device_id
        if self.cnf_thumbprint:
            doc["cnf"] = {"x5t#S256": self.cnf_thumbprint}
        return doc


@dataclass(frozen=True)
class IssuedToken:
    """A signed token and its claims."""

    token: str
    claims: TokenClaims

    @property
    def lifetime(self) -> int:
        """Seconds between issue and expiry."""
        return self.claims.expires_at - self.claims.issued_at


@dataclass(frozen=True)
class Credential:
    """A long-lived credential, authenticated, and what it may be exchanged for.

    Attributes:
        kind: ``api_key`` or ``mtls``.
        subject: becomes ``sub``: the key's subject, or the certificate's SPIFFE id.
        scopes: scope patterns (exact, or prefix ending in ``*``) it may request.
        device_id: the enrolled device, if the credential is bound to one; tokens carry it.
    """

    kind: str
    subject: str
    tenant: str
    scopes: tuple[str, ...]
    device_id: str = ""


class TokenService:
    """Issues tokens with the ring's current key and exchanges credentials for them."""

    def __init__(
        self, config: TokenConfig, keys: KeyRing, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.keys = keys
        self._clock = clock

    def issue(
        self,
        subject: str,
        tenant: str,
        scopes: Iterable[str],
        *,
        audience: str = "",
        device_id: str = "",
        cnf_thumbprint: str = "",
        lifetime: float = 0,
    ) -> IssuedToken:
        """Sign a token; ``lifetime`` (seconds, 0 = the configured one) can only shorten it."""
        granted = parse_scopes(scopes)
        if not granted:
            raise InvalidRequestError("request at least one scope")
        audience = audience or self.config.audiences[0]
        if audience not in self.config.audiences:
            raise InvalidRequestError(
                f"unknown audience {audience!r}; expected one of {', '.join(self.config.audiences)}"
            )
        if lifetime < 0:
            raise InvalidRequestError("lifetime must not be negative")
        allowed = self.config.lifetime_for(granted)
        seconds = int(min(lifetime, allowed) if lifetime else allowed)
        if seconds < 1:
            raise InvalidRequestError("lifetime must be at least one second")
        now = int(self._clock())
        key = self.keys.current
        claims = TokenClaims(
            issuer=self.config.issuer,
            subject=subject,
            audience=audience,
            tenant=tenant,
            scopes=granted,
            issued_at=now,
            not_before=now,
            expires_at=now + seconds,
            jti=uuid.uuid4().hex,
            kid=key.kid,
            device_id=device_id,
            cnf_thumbprint=cnf_thumbprint,
        )
        token = jwt.encode(
            claims.to_dict(),
            key.private_key,
            algorithm=key.algorithm,
            headers={"kid": key.kid, "typ": TOKEN_TYPE},
        )
        return IssuedToken(token, claims)

    def exchange(
        self,
        credential: Credential,
        scopes: Iterable[str],
        *,
        audience: str = "",
        lifetime: float = 0,
        cnf_thumbprint: str = "",
    ) -> IssuedToken:
        """Trade an authenticated credential for a token with a subset of its scopes."""
        requested = parse_scopes(scopes)
        denied = sorted(
            s for s in requested if not any(scope_allows(p, s) for p in credential.scopes)
        )
        if denied:
            raise ScopeDeniedError(
                f"{credential.subject} may not request {', '.join(denied)}"
                f" (allowed: {' '.join(credential.scopes) or 'nothing'})"
            )
        return self.issue(
            credential.subject,
            credential.tenant,
            requested,
            audience=audience,
            device_id=credential.device_id,
            cnf_thumbprint=cnf_thumbprint,
            lifetime=lifetime,
        )

    def jwks(self) -> dict[str, Any]:
        """The JWK Set of the verifying keys."""
        return self.keys.jwks()


class TokenVerifier:
    """Checks tokens against the ring: the current key, or a retired one within its window."""

    def __init__(self, config: TokenConfig, keys: KeyRing) -> None:
        self.config = config
        self.keys = keys

    def verify(self, token: str, *, audience: str, max_lifetime: float = 0) -> TokenClaims:
        """Verify a token for ``audience``; ``max_lifetime`` (0 = the config's) caps exp - iat.

        Raises :class:`InvalidTokenError`, :class:`TokenExpiredError` or
        :class:`LongLivedCredentialError`. Scopes and replay are the caller's to check.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise InvalidTokenError(f"not a JWT: {exc}") from exc
        if header.get("typ") != TOKEN_TYPE:
            raise InvalidTokenError(f"not a Council access token (typ must be {TOKEN_TYPE})")
        key = self.keys.verification_key(str(header.get("kid", "")))
        if key is None:
            raise InvalidTokenError("signed by an unknown or retired key")
        if header.get("alg") != key.algorithm:
            raise InvalidTokenError(f"algorithm must be {key.algorithm}")
        try:
            payload = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.algorithm],
                audience=audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway,
                options={"require": ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpiredError("the token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidTokenError(f"invalid token: {exc}") from exc
        limit = max_lifetime or self.config.max_lifetime
        lifetime = payload["exp"] - payload["iat"]
        if lifetime > limit:
            raise LongLivedCredentialError(
                f"token lifetime {lifetime}s exceeds the {int(limit)}s maximum"
            )
        cnf = payload.get("cnf") or {}
        fields = (payload["sub"], payload.get("tenant"), payload.get("scope"), payload["jti"])
        if not all(isinstance(f, str) for f in fields) or not isinstance(cnf, dict):
            raise InvalidTokenError("sub, tenant, scope and jti must be strings")
        try:
            scopes = parse_scopes(payload["scope"])
        except InvalidRequestError as exc:
            raise InvalidTokenError(exc.message) from exc
        return TokenClaims(
            issuer=payload["iss"],
            subject=payload["sub"],
            audience=audience,
            tenant=payload["tenant"],
            scopes=scopes,
            issued_at=int(payload["iat"]),
            not_before=int(payload["nbf"]),
            expires_at=int(payload["exp"]),
            jti=payload["jti"],
            kid=key.kid,
            device_id=str(payload.get("device_id", "")),
            cnf_thumbprint=str(cnf.get("x5t#S256", "")),
        )


# --- SQLite stores -----------------------------------------------------------------------


def _connect(path: str | Path) -> sqlite_utils.Database:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Used from executor threads, always under the owner's lock.
    db = sqlite_utils.Database(sqlite3.connect(str(path), check_same_thread=False))
    db.enable_wal()
    db.execute("PRAGMA busy_timeout=10000")
    return db


def _secret_hash(secret: str) -> str:
    # A plain SHA-256 suffices: the secret is 256 random bits, so there is nothing to
    # brute-force that a slow password hash would protect.
    return hashlib.sha256(secret.encode()).hexdigest()


class _SQLiteStore:
    """A SQLite database used from many threads: one lock, SQLite errors as KeyStoreError."""

    name = "store"

    def __init__(self, path: str | Path, schema: Callable[[sqlite_utils.Database], None]) -> None:
        self._lock = threading.Lock()
        try:
            self._db: sqlite_utils.Database | None = _connect(path)
            with self._db.conn:
                schema(self._db)
        except sqlite3.Error as exc:
            raise KeyStoreError(f"cannot open the {self.name} at {path}: {exc}") from exc

    @contextlib.contextmanager
    def _session(self) -> Iterator[sqlite_utils.Database]:
        """The database under the lock, in one transaction."""
        with self._lock:
            if self._db is None:
                raise KeyStoreError(f"the {self.name} is closed")
            try:
                with self._db.conn:
                    yield self._db
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                raise KeyStoreError(f"{self.name}: {exc}") from exc

    def close(self) -> None:
        """Close the database; idempotent."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _credential_schema(db: sqlite_utils.Database) -> None:
    db.table("api_keys").create(
        {
            "key_id": str,
            "secret_sha256": str,
            "subject": str,
            "tenant": str,
            "scopes": str,
            "device_id": str,
            "created_at": float,
            "revoked_at": float,
        },
        pk="key_id",
        if_not_exists=True,
    )
    db.table("clients").create(
        {"spiffe_id": str, "tenant": str, "scopes": str, "device_id": str, "enrolled_at": float},
        pk="spiffe_id",
        if_not_exists=True,
    )


class CredentialStore(_SQLiteStore):
    """Long-lived credentials: API keys (hashed) and enrolled mTLS identities, in SQLite."""

    name = "credential store"

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, _credential_schema)

    def create_api_key(
        self, subject: str, tenant: str, scopes: Iterable[str], *, device_id: str = ""
    ) -> str:
        """Create an API key and return it; this is the only time its plaintext exists."""
        patterns = _check_patterns(scopes)
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        with self._session() as db:
            db.table("api_keys").insert(
                {
                    "key_id": key_id,
                    "secret_sha256": _secret_hash(secret),
                    "subject": subject,
                    "tenant": tenant,
                    "scopes": " ".join(patterns),
                    "device_id": device_id,
                    "created_at": time.time(),
                    "revoked_at": None,
                }
            )
        return f"{API_KEY_PREFIX}{key_id}_{secret}"

    def revoke_api_key(self, key_id: str) -> None:
        """Revoke an API key by its id (the part after ``ck_``); unknown ids are refused."""
        with self._session() as db:
            table = db.table("api_keys")
            if not list(table.rows_where("key_id = ?", [key_id])):
                raise InvalidCredentialError(f"no API key {key_id}")
            table.update(key_id, {"revoked_at": time.time()})

    def authenticate_api_key(self, api_key: str) -> Credential:
        """The credential behind an API key; :class:`InvalidCredentialError` otherwise."""
        prefix, _, rest = api_key.partition(API_KEY_PREFIX)
        key_id, _, secret = rest.partition("_")
        with self._session() as db:
            rows = list(db.table("api_keys").rows_where("key_id = ?", [key_id]))
        row = rows[0] if rows and not prefix else None
        if (
            row is None
            or not hmac.compare_digest(row["secret_sha256"], _secret_hash(secret))
            or row["revoked_at"] is not None
        ):
            # One message for unknown, wrong and revoked keys: no oracle for key ids.
            raise InvalidCredentialError("unknown or revoked API key")
        return Credential(
            "api_key",
            row["subject"],
            row["tenant"],
            tuple(row["scopes"].split()),
            row["device_id"] or "",
        )

    def enroll_client(
        self, spiffe_id: str, tenant: str, scopes: Iterable[str], *, device_id: str = ""
    ) -> None:
        """Enroll (or re-enroll) an mTLS identity with the scopes it may request."""
        patterns = _check_patterns(scopes)
        with self._session() as db:
            db.table("clients").upsert(
                {
                    "spiffe_id": spiffe_id,
                    "tenant": tenant,
                    "scopes": " ".join(patterns),
                    "device_id": device_id,
                    "enrolled_at": time.time(),
                },
                pk="spiffe_id",
            )

    def remove_client(self, spiffe_id: str) -> None:
        """Forget an enrolled identity; its certificate then exchanges for nothing."""
        with self._session() as db:
            db.execute("DELETE FROM clients WHERE spiffe_id = ?", [spiffe_id])

    def client(self, spiffe_id: str) -> Credential:
        """The credential of an enrolled mTLS identity; :class:`InvalidCredentialError` if none."""
        with self._session() as db:
            rows = list(db.table("clients").rows_where("spiffe_id = ?", [spiffe_id]))
        if not rows:
            raise InvalidCredentialError(f"{spiffe_id} is not enrolled for token exchange")
        row = rows[0]
        return Credential(
            "mtls", spiffe_id, row["tenant"], tuple(row["scopes"].split()), row["device_id"] or ""
        )


def _replay_schema(db: sqlite_utils.Database) -> None:
    db.table("used_jti").create({"jti": str, "keep_until": float}, pk="jti", if_not_exists=True)
    db.table("used_jti").create_index(["keep_until"], if_not_exists=True)


class ReplayCache(_SQLiteStore):
    """``jti`` values already used, kept until their token could no longer verify anyway.

    Entries are pruned at most every ``prune_interval`` seconds, inside :meth:`consume`, so
    the table stays as small as the number of admin calls in one token lifetime.
    """

    name = "replay cache"

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        prune_interval: float = 60.0,
    ) -> None:
        super().__init__(path, _replay_schema)
        self._clock = clock
        self._prune_interval = prune_interval
        self._last_prune = 0.0

    def consume(self, jti: str, keep_until: float) -> None:
        """Record ``jti`` as used until ``keep_until``; :class:`TokenReplayedError` if it was."""
        now = self._clock()
        if now - self._last_prune >= self._prune_interval:
            self.prune()
        try:
            with self._session() as db:
                db.execute(
                    "INSERT INTO used_jti (jti, keep_until) VALUES (?, ?)", [jti, keep_until]
                )
        except sqlite3.IntegrityError:
            raise TokenReplayedError(
                "this token was already used; admin tokens are good for one call"
            ) from None

    def prune(self) -> int:
        """Delete entries whose token has expired; return how many went."""
        now = self._clock()
        with self._session() as db:
            cursor = db.execute("DELETE FROM used_jti WHERE keep_until < ?", [now])
        self._last_prune = now
        return cursor.rowcount

    def __len__(self) -> int:
        with self._session() as db:
            return db.table("used_jti").count
