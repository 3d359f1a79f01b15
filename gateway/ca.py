"""Council's local certificate authority for mTLS: a root, short-lived leaves, revocation.

A CA lives in one directory:

``ca.crt``
    the root certificate (PEM); distribute it to every server and client as the trust anchor.
``ca.key``
    the root private key (PEM, PKCS#8, mode 0600).
``index.db``
    SQLite: one row per issued certificate (serial, SPIFFE id, validity, revocation).
``crl.pem``
    the certificate revocation list, signed by the root and rewritten on every revocation.
    Servers load it with :class:`gateway.mtls.RevocationList`, because gRPC's TLS stack
    checks chain and validity but not revocation.

Identities follow SPIFFE: a leaf carries exactly one URI SAN,
``spiffe://<trust-domain>/<kind>/<name>``, and the root carries ``spiffe://<trust-domain>``
so that anyone holding ``ca.crt`` knows the trust domain. The root key may be Ed25519 or
P-256, but leaf keys are always P-256: gRPC's TLS stack (BoringSSL) refuses Ed25519 leaf
certificates in the handshake, while it verifies Ed25519 signatures in the chain.

Thread-safety: a :class:`CertificateAuthority` is meant for one thread (the CLI); the pure
functions (:func:`spiffe_id`, :func:`parse_spiffe_id`, :func:`certificate_identity`) are
safe anywhere.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import os
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlite_utils
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEFAULT_LEAF_TTL",
    "DEFAULT_ROOT_TTL",
    "KINDS",
    "ROOT_KEY_TYPES",
    "CAError",
    "CertificateAuthority",
    "CertificateIdentity",
    "IssuedCertificate",
    "certificate_identity",
    "parse_serial",
    "parse_spiffe_id",
    "spiffe_id",
    "trust_domain_of",
]

KINDS = ("sidecar", "agent", "gateway", "pdp", "cli")
"""What a leaf certificate may identify; the first segment of its SPIFFE path."""

ROOT_KEY_TYPES = ("p256", "ed25519")
DEFAULT_ROOT_TTL = timedelta(days=5 * 365)
DEFAULT_LEAF_TTL = timedelta(hours=24)
MAX_LEAF_TTL = timedelta(days=90)
"""Leaves are meant to be short-lived; anything longer than this is refused, not capped."""
CRL_LIFETIME = timedelta(days=7)
BACKDATE = timedelta(minutes=5)
"""Leaves start this far in the past so that a peer whose clock runs behind accepts them."""

CA_CERT, CA_KEY, INDEX_DB, CRL_FILE = "ca.crt", "ca.key", "index.db", "crl.pem"

_TRUST_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,253}[a-z0-9])?$")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class CAError(Exception):
    """A CA operation failed: missing or existing directory, bad name, unknown serial."""

    code = "ca_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- SPIFFE ids --------------------------------------------------------------------------


def spiffe_id(trust_domain: str, kind: str, name: str) -> str:
    """``spiffe://<trust_domain>/<kind>/<name>``, after checking each part."""
    _check_trust_domain(trust_domain)
    if kind not in KINDS:
        raise CAError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not _NAME.match(name) or name in {".", ".."}:
        raise CAError(f"name {name!r} must be 1-128 of A-Z a-z 0-9 . _ -")
    return f"spiffe://{trust_domain}/{kind}/{name}"


def parse_spiffe_id(uri: str) -> tuple[str, str, str]:
    """``(trust_domain, kind, name)`` of a leaf SPIFFE id; :class:`CAError` if malformed."""
    prefix = "spiffe://"
    if not uri.startswith(prefix):
        raise CAError(f"{uri!r} is not a SPIFFE id")
    parts = uri[len(prefix) :].split("/")
    if len(parts) != 3:
        raise CAError(f"{uri!r} is not of the form spiffe://<trust-domain>/<kind>/<name>")
    trust_domain, kind, name = parts
    spiffe_id(trust_domain, kind, name)
    return trust_domain, kind, name


def _check_trust_domain(trust_domain: str) -> None:
    if not _TRUST_DOMAIN.match(trust_domain):
        raise CAError(
            f"trust domain {trust_domain!r} must be lowercase letters, digits, '.', '-', '_'"
        )


def trust_domain_of(root: x509.Certificate) -> str:
    """The trust domain a Council root certificate was made for (its ``spiffe://`` URI SAN)."""
    try:
        sans = root.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CAError("the root certificate names no trust domain") from None
    for uri in sans.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith("spiffe://") and "/" not in uri[len("spiffe://") :]:
            return uri[len("spiffe://") :]
    raise CAError("the root certificate names no trust domain")


# --- identities of certificates ----------------------------------------------------------


@dataclass(frozen=True)
class CertificateIdentity:
    """What a leaf certificate says about its holder.

    Attributes:
        spiffe_id: the URI SAN, ``spiffe://<trust_domain>/<kind>/<name>``.
        serial: the certificate's serial number (the key of revocation).
        not_after: end of validity (UTC).
        thumbprint: base64url SHA-256 of the DER certificate, RFC 8705's ``x5t#S256``,
            used to bind tokens to the certificate they were issued to.
    """

    spiffe_id: str
    trust_domain: str
    kind: str
    name: str
    serial: int
    not_after: datetime
    thumbprint: str


@functools.lru_cache(maxsize=1024)
def certificate_identity(cert_pem: bytes) -> CertificateIdentity:
    """Parse a leaf certificate (PEM) into its identity; :class:`CAError` if it has none.

    Cached because servers call it on every RPC with the same few peer certificates.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise CAError(f"not a PEM certificate: {exc}") from exc
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CAError("the certificate has no subject alternative names") from None
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    spiffe = [u for u in uris if u.startswith("spiffe://")]
    if len(spiffe) != 1:
        raise CAError(f"the certificate must carry exactly one SPIFFE id, it has {len(spiffe)}")
    trust_domain, kind, name = parse_spiffe_id(spiffe[0])
    der = cert.public_bytes(serialization.Encoding.DER)
    thumb = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    return CertificateIdentity(
        spiffe_id=spiffe[0],
        trust_domain=trust_domain,
        kind=kind,
        name=name,
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
        thumbprint=thumb,
    )


# --- the authority -----------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedCertificate:
    """A freshly issued leaf: certificate and private key (PEM) and what the index records."""

    serial: int
    spiffe_id: str
    not_before: datetime
    not_after: datetime
    cert_pem: bytes
    key_pem: bytes

    def write(self, prefix: str | Path) -> tuple[Path, Path]:
        """Write ``PREFIX.crt`` and ``PREFIX.key`` (the key 0600); return both paths."""
        base = Path(prefix)
        base.parent.mkdir(parents=True, exist_ok=True)
        cert_path = base.with_name(base.name + ".crt")
        key_path = base.with_name(base.name + ".key")
        cert_path.write_bytes(self.cert_pem)
        _write_private(key_path, self.key_pem, exclusive=False)
        return cert_path, key_path


def _write_private(path: Path, data: bytes, *, exclusive: bool) -> None:
    """Write a secret file that is 0600 from its first byte, not chmod-ed after the write."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    # O_CREAT's mode applies only to new files: an existing key file keeps its old mode.
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _hex(serial: int) -> str:
    return format(serial, "x")


def parse_serial(text: str) -> int:
    """A serial written in hex, with or without ``0x`` or ``:`` separators."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise CAError(f"{text!r} is neither a certificate file nor a hex serial") from None


class CertificateAuthority:
    """A CA directory opened for issuing and revoking; close it when done."""

    def __init__(self, directory: Path, root: x509.Certificate, key: object) -> None:
        self.directory = directory
        self.certificate = root
        self.trust_domain = trust_domain_of(root)
        self._key = key
        self._db: sqlite_utils.Database | None = _open_index(directory / INDEX_DB)

    # --- lifecycle --------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        directory: str | Path,
        trust_domain: str,
        *,
        key_type: str = "p256",
        ttl: timedelta = DEFAULT_ROOT_TTL,
        now: datetime | None = None,
    ) -> CertificateAuthority:
        """Create a root for ``trust_domain`` in ``directory``; refuse to overwrite one."""
        _check_trust_domain(trust_domain)
        if key_type not in ROOT_KEY_TYPES:
            raise CAError(f"key type must be one of {', '.join(ROOT_KEY_TYPES)}")
        path = Path(directory)
        if (path / CA_KEY).exists() or (path / CA_CERT).exists():
            raise CAError(f"{path} already holds a CA; refusing to overwrite it")
        path.mkdir(parents=True, exist_ok=True)
        now = now or datetime.now(UTC)
        key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = (
            ed25519.Ed25519PrivateKey.generate()
            if key_type == "ed25519"
            else ec.generate_private_key(ec.SECP256R1())
        )
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
                x509.NameAttribute(NameOID.COMMON_NAME, f"Council root CA {trust_domain}"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        root = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + ttl)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]
                ),
                critical=False,
            )
            .add_extension(ski, critical=False)
            .sign(key, _digest(key))
        )
        # The key first, exclusively: two concurrent inits cannot both win.
        try:
            _write_private(path / CA_KEY, _pem_key(key), exclusive=True)
        except FileExistsError:
            raise CAError(f"{path} already holds a CA; refusing to overwrite it") from None
        (path / CA_CERT).write_bytes(root.public_bytes(serialization.Encoding.PEM))
        ca = cls(path, root, key)
        ca.write_crl(now=now)
        return ca

    @classmethod
    def load(cls, directory: str | Path) -> CertificateAuthority:
        """Open an existing CA directory."""
        path = Path(directory)
        try:
            root = x509.load_pem_x509_certificate((path / CA_CERT).read_bytes())
            key = serialization.load_pem_private_key((path / CA_KEY).read_bytes(), None)
        except FileNotFoundError as exc:
            raise CAError(f"{path} holds no CA (run `council ca init` first): {exc}") from exc
        except ValueError as exc:
            raise CAError(f"{path}: unreadable CA files: {exc}") from exc
        return cls(path, root, key)

    def close(self) -> None:
        """Close the index; idempotent."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> CertificateAuthority:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def certificate_pem(self) -> bytes:
        """The root certificate (PEM): the trust anchor for servers and clients."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def crl_path(self) -> Path:
        """Where :meth:`write_crl` keeps the revocation list."""
        return self.directory / CRL_FILE

    def _index(self) -> sqlite_utils.Database:
        if self._db is None:
            raise CAError("the CA is closed")
        return self._db

    # --- issuing ------------------------------------------------------------------------

    def issue(
        self,
        kind: str,
        name: str,
        *,
        ttl: timedelta = DEFAULT_LEAF_TTL,
        dns: Iterable[str] = (),
        ips: Iterable[str] = (),
        now: datetime | None = None,
    ) -> IssuedCertificate:
        """Issue a short-lived P-256 leaf for ``spiffe://<trust-domain>/<kind>/<name>``.

        ``dns`` and ``ips`` add SANs for servers that clients dial by name or address. The
        leaf is good for client and server authentication and never outlives the root.
        """
        if ttl <= timedelta(0) or ttl > MAX_LEAF_TTL:
            raise CAError(f"ttl must be positive and at most {MAX_LEAF_TTL}")
        uri = spiffe_id(self.trust_domain, kind, name)
        try:
            addresses = [ipaddress.ip_address(ip) for ip in ips]
        except ValueError as exc:
            raise CAError(str(exc)) from exc
        now = now or datetime.now(UTC)
        not_before = now - BACKDATE
        not_after = min(now + ttl, self.certificate.not_valid_after_utc)
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
        sans += [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(a) for a in addresses]
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.trust_domain),
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, kind),
                        x509.NameAttribute(NameOID.COMMON_NAME, name),
                    ]
                )
            )
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.certificate.public_key()  # type: ignore[arg-type]
                ),
                critical=False,
            )
            .sign(self._key, _digest(self._key))  # type: ignore[arg-type]
        )
        db = self._index()
        with db.conn:
            db.table("certificates").insert(
                {
                    "serial": _hex(serial),
                    "spiffe_id": uri,
                    "kind": kind,
                    "name": name,
                    "not_before": not_before.isoformat(),
                    "not_after": not_after.isoformat(),
                    "issued_at": now.isoformat(),
                    "revoked_at": None,
                    "reason": None,
                }
            )
        return IssuedCertificate(
            serial=serial,
            spiffe_id=uri,
            not_before=not_before,
            not_after=not_after,
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=_pem_key(key),
        )

    # --- revocation ---------------------------------------------------------------------

    def serial_of(self, cert_pem: bytes) -> int:
        """The serial of a certificate this CA issued; :class:`CAError` for any other."""
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise CAError(f"not a PEM certificate: {exc}") from exc
        try:
            cert.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            raise CAError("the certificate was not issued by this CA") from None
        return cert.serial_number

    def revoke(
        self, serial: int, *, reason: str = "", now: datetime | None = None
    ) -> dict[str, object]:
        """Revoke a certificate by serial and rewrite the CRL; return its index row.

        Revoking twice keeps the first revocation time. Unknown serials are refused, so a
        typo cannot look like a successful revocation.
        """
        db = self._index()
        table = db.table("certificates")
        rows = list(table.rows_where("serial = ?", [_hex(serial)]))
        if not rows:
            raise CAError(f"no certificate with serial {_hex(serial)} was issued by this CA")
        now = now or datetime.now(UTC)
        if rows[0]["revoked_at"] is None:
            with db.conn:
                table.update(
                    _hex(serial), {"revoked_at": now.isoformat(), "reason": reason or None}
                )
        self.write_crl(now=now)
        return dict(table.get(_hex(serial)))

    def revoked(self, *, now: datetime | None = None) -> list[dict[str, object]]:
        """Index rows of revoked certificates that have not expired yet."""
        now = now or datetime.now(UTC)
        rows = self._index().table("certificates").rows_where("revoked_at IS NOT NULL")
        return [r for r in rows if datetime.fromisoformat(r["not_after"]) > now]

    def write_crl(self, *, now: datetime | None = None) -> Path:
        """Sign a fresh CRL of the unexpired revoked certificates and write it atomically.

        Expired certificates drop out: TLS refuses them anyway, which keeps the list as
        short as the leaves' lifetimes.
        """
        now = now or datetime.now(UTC)
        db = self._index()
        with db.conn:
            meta = db.table("meta")
            rows = list(meta.rows_where("key = ?", ["crl_number"]))
            number = int(rows[0]["value"]) + 1 if rows else 1
            meta.upsert({"key": "crl_number", "value": str(number)}, pk="key")
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - BACKDATE)
            .next_update(now + CRL_LIFETIME)
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for row in self.revoked(now=now):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(str(row["serial"]), 16))
                .revocation_date(datetime.fromisoformat(str(row["revoked_at"])))
                .build()
            )
        crl = builder.sign(self._key, _digest(self._key))  # type: ignore[arg-type]
        tmp = self.crl_path.with_suffix(".tmp")
        tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        # Readers (servers polling the file) must never see a half-written CRL.
        os.replace(tmp, self.crl_path)
        return self.crl_path


def _digest(key: object) -> hashes.HashAlgorithm | None:
    """Ed25519 signs without a separate digest; P-256 signs with SHA-256."""
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _open_index(path: Path) -> sqlite_utils.Database:
    db = sqlite_utils.Database(sqlite3.connect(str(path)))
    db.enable_wal()
    db.execute("PRAGMA busy_timeout=10000")
    with db.conn:
        db.table("certificates").create(
            {
                "serial": str,
                "spiffe_id": str,
                "kind": str,
                "name": str,
                "not_before": str,
                "not_after": str,
                "issued_at": str,
                "revoked_at": str,
                "reason": str,
            },
            pk="serial",
            if_not_exists=True,
        )
        db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    return db
