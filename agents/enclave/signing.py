"""Signed outputs: an in-toto Statement v1 in a DSSE envelope, and its offline verification.

Layout of a signed output directory (written by the job inside its sandbox)::

    OUT/<outputs ...>                 the transform's files (any depth)
    OUT/.council/manifest.json        the job manifest (canonical JSON)
    OUT/.council/ear.jwt              the verifier's EAR for this job
    OUT/.council/statement.dsse.json  the DSSE envelope

The statement's subjects are every file outside ``.council/`` (path relative to OUT,
``sha256`` digest). Its predicate (type :data:`PREDICATE_TYPE`) names the job, the manifest
digest, the input datasets and their digests, the EAR digest and the policy hash. The
envelope is signed by the job's Ed25519 key, the key the EAR's ``cnf`` claim vouches for,
so a relying party needs only the verifier's public keys (JWKS) to check the whole chain:
EAR signature → job key → envelope → statement → files. :func:`verify_output_dir` does that
with no network.

Libraries: ``in-toto-attestation`` builds and validates the Statement; ``securesystemslib``'s
DSSE computes the pre-authentication encoding and signs/verifies (its key ids are the job
key's thumbprint).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import json_format
from google.protobuf.message import Error as ProtobufError
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from agents.enclave.binding import canonical_json, sha256_digest
from agents.enclave.ear import EARClaims, EARError, ear_digest, verify_ear
from agents.enclave.job_keys import JobPublicKey

__all__ = [
    "ENVELOPE_NAME",
    "META_DIR",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "OutputVerificationError",
    "VerifiedOutputs",
    "collect_subjects",
    "sign_output_dir",
    "verify_output_dir",
]

PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "urn:council:predicate:enclave-job:v1"
META_DIR = ".council"
ENVELOPE_NAME = "statement.dsse.json"
EAR_NAME = "ear.jwt"
MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20


class OutputVerificationError(Exception):
    """An output directory is not validly signed. ``code`` is stable: ``missing``,
    ``bad_ear``, ``not_affirming``, ``bad_signature``, ``bad_statement``,
    ``subject_mismatch``, ``binding_mismatch``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class VerifiedOutputs:
    """What a valid signed output directory proves."""

    job_id: str
    manifest_digest: str
    subjects: Mapping[str, str]
    predicate: Mapping[str, Any]
    ear: EARClaims
    envelope_digest: str


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def collect_subjects(out_dir: Path) -> dict[str, str]:
    """``{relative path: sha256 hex}`` of every regular file outside ``.council/``.

    Symbolic links are refused rather than followed: a link could make a subject name
    point outside the directory after signing.
    """
    subjects: dict[str, str] = {}
    for root, dirs, files in os.walk(out_dir):
        rel_root = Path(root).relative_to(out_dir)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if d != META_DIR]
        for name in dirs + files:
            if (Path(root) / name).is_symlink():
                raise OutputVerificationError(
                    "bad_statement", f"{rel_root / name} is a symbolic link"
                )
        for name in files:
            subjects[(rel_root / name).as_posix()] = _file_digest(Path(root) / name)
    return dict(sorted(subjects.items()))


def _signer(key: Ed25519PrivateKey, public: JobPublicKey) -> CryptoSigner:
    return CryptoSigner(key, SSlibKey.from_crypto(key.public_key(), keyid=public.thumbprint()))


def sign_output_dir(
    out_dir: Path,
    *,
    signing_key: Ed25519PrivateKey,
    public: JobPublicKey,
    manifest: Mapping[str, Any],
    ear: str,
    inputs: Sequence[Mapping[str, str]],
    policy_hash: str,
) -> Path:
    """Write ``.council/{manifest.json, ear.jwt, statement.dsse.json}`` into ``out_dir``.

    ``inputs`` is ``[{"dataset_id", "digest"}]``. Returns the envelope's path. Runs inside
    the job: the private key never leaves it.
    """
    meta = out_dir / META_DIR
    meta.mkdir(exist_ok=True)
    manifest_bytes = canonical_json(manifest)
    (meta / MANIFEST_NAME).write_bytes(manifest_bytes)
    (meta / EAR_NAME).write_text(ear)
    subjects = collect_subjects(out_dir)
    predicate = {
        "job_id": str(manifest["job_id"]),
        "transform": str(manifest["transform"]["name"]),
        "manifest_digest": sha256_digest(manifest_bytes),
        "inputs": [
            {"dataset_id": i["dataset_id"], "digest": i["digest"]}
            for i in sorted(inputs, key=lambda i: i["dataset_id"])
        ],
        "ear_digest": ear_digest(ear),
        "policy_hash": policy_hash,
    }
    statement = Statement(
        [ResourceDescriptor(name=name, digest={"sha256": d}).pb for name, d in subjects.items()],
        PREDICATE_TYPE,
        predicate,
    )
    statement.validate()
    payload = canonical_json(json_format.MessageToDict(statement.pb))
    envelope = Envelope(payload, PAYLOAD_TYPE, {})
    envelope.sign(_signer(signing_key, public))
    path = meta / ENVELOPE_NAME
    path.write_text(json.dumps(envelope.to_dict(), sort_keys=True))
    return path


def _issued_at(token: str) -> float:
    """The unverified ``iat`` of an EAR; the signature is checked right after with it."""
    try:
        iat = jwt.decode(token, options={"verify_signature": False}).get("iat")
    except jwt.PyJWTError as exc:
        raise EARError("malformed", f"not a JWT: {exc}") from exc
    if not isinstance(iat, int):
        raise EARError("malformed", "iat must be an integer")
    return float(iat)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise OutputVerificationError("missing", f"{path.name} is missing") from None


def verify_output_dir(
    out_dir: Path,
    verifier_jwks: Mapping[str, Any],
    *,
    now: float | None = None,
    require_affirming: bool = True,
) -> VerifiedOutputs:
    """Check a signed output directory offline; raise :class:`OutputVerificationError`.

    ``verifier_jwks`` are the verifier's public keys (a JWK Set). With ``now``, the EAR must
    also be within its validity window at that time (a job checking its fresh outputs);
    without it, the EAR is checked as of its own issue time, which is how archived outputs
    are judged: signed under an EAR that was valid, whenever they are verified.
    """
    meta = Path(out_dir) / META_DIR
    ear_token = _read(meta / EAR_NAME).decode("ascii", "replace").strip()
    try:
        at = now if now is not None else _issued_at(ear_token)
        ear = verify_ear(ear_token, verifier_jwks, now=at)
    except EARError as exc:
        raise OutputVerificationError("bad_ear", exc.message) from exc
    if require_affirming and not ear.affirming:
        raise OutputVerificationError("not_affirming", f"the job's EAR is {ear.status}")
    envelope_bytes = _read(meta / ENVELOPE_NAME)
    try:
        envelope = Envelope.from_dict(json.loads(envelope_bytes))
    except (ValueError, KeyError, TypeError) as exc:
        raise OutputVerificationError("bad_signature", f"envelope: {exc}") from exc
    public = ear.job_public_key
    key = SSlibKey.from_crypto(public.verifier(), keyid=public.thumbprint())
    if envelope.payload_type != PAYLOAD_TYPE:
        raise OutputVerificationError("bad_statement", f"payloadType {envelope.payload_type!r}")
    try:
        envelope.verify([key], 1)
    except VerificationError as exc:
        raise OutputVerificationError(
            "bad_signature", "envelope is not signed by the attested job key"
        ) from exc
    try:
        pb = json_format.Parse(envelope.payload, statement_pb2.Statement())
        Statement.copy_from_pb(pb).validate()
        doc = json.loads(envelope.payload)
    except (ProtobufError, ValueError) as exc:
        raise OutputVerificationError("bad_statement", str(exc)) from exc
    if doc.get("predicateType") != PREDICATE_TYPE:
        raise OutputVerificationError("bad_statement", "unexpected predicateType")
    predicate = doc.get("predicate") or {}
    claimed = {s["name"]: s["digest"].get("sha256", "") for s in doc.get("subject", [])}
    actual = collect_subjects(Path(out_dir))
    if claimed != actual:
        names = set(claimed) | set(actual)
        changed = sorted(n for n in names if claimed.get(n) != actual.get(n))
        raise OutputVerificationError(
            "subject_mismatch", f"outputs differ from the signed statement: {', '.join(changed)}"
        )
    manifest_digest = sha256_digest(_read(meta / MANIFEST_NAME))
    checks = {
        "ear_digest": (predicate.get("ear_digest"), ear_digest(ear_token)),
        "manifest_digest": (predicate.get("manifest_digest"), manifest_digest),
        "EAR manifest digest": (ear.manifest_digest, manifest_digest),
        "job_id": (predicate.get("job_id"), ear.job_id),
    }
    for what, (got, want) in checks.items():
        if got != want:
            raise OutputVerificationError("binding_mismatch", f"{what} does not match")
    inputs = sorted(i.get("dataset_id") for i in predicate.get("inputs", []))
    if inputs != sorted(ear.dataset_ids):
        raise OutputVerificationError("binding_mismatch", "input datasets differ from the EAR's")
    return VerifiedOutputs(
        job_id=ear.job_id,
        manifest_digest=manifest_digest,
        subjects=actual,
        predicate=predicate,
        ear=ear,
        envelope_digest=sha256_digest(envelope_bytes),
    )
