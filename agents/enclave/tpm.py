"""TPM 2.0 operations for enclave jobs, through tpm2-tools against a swtpm.

Why tpm2-tools: PyPI ``tpm2-pytss`` ships no wheel for this platform (it builds against
libtss2-dev), while Debian's ``tpm2-tools`` is one package and speaks the swtpm TCTI directly.
Each operation is a few short-lived tpm2 processes with ``TPM2TOOLS_TCTI`` set.

No resource manager sits between the tools and the TPM, and swtpm holds only three transient
objects, so every operation flushes all transient objects and sessions when it ends (even on
failure): a :class:`Tpm` must be the only client of its TPM. Operations on one TPM are
serialized by a lock shared by every :class:`Tpm` of the same TCTI in this process.

Keys live under the persistent ECC storage root key that provisioning created
(:data:`agents.enclave.swtpm.SRK_HANDLE`); an attestation key or a sealed blob is a
public/private pair of TPM blobs that only this TPM can load, so they can be stored anywhere.

Lifecycle: ``Tpm(tcti)`` → operations → ``close()`` (removes its scratch directory); also a
context manager.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from agents.enclave import measured_launch
from agents.enclave.swtpm import EK_RSA_HANDLE, SRK_HANDLE
from gateway.attestation import tpm as tpm_verifier

DEFAULT_TIMEOUT = 30.0
# TPM2B_DATA holds at most a SHA-512 digest; the binding is a 32-byte SHA-256.
MAX_QUALIFYING_DATA = 64
# MAX_SYM_DATA: the largest secret a sealed data object holds.
MAX_SEALED_SIZE = 128
SEAL_BLOB_VERSION = 1
TPM_CC_POLICY_PCR = 0x0000017F
PCR_SELECT_SIZE = 3
AK_ATTRIBUTES = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign"
# No userwithauth: the sealed secret is released by the PCR policy alone, never by a password.
SEALED_ATTRIBUTES = "fixedtpm|fixedparent|adminwithpolicy|noda"

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


class TpmError(Exception):
    """A TPM command failed; ``code`` is stable, the message carries the tool's error."""

    code = "tpm_error"


class UnsealError(TpmError):
    """The TPM refused to unseal: the PCRs differ from the sealed policy, or the blob is not
    this TPM's."""

    code = "unseal_refused"


def _lock_for(tcti: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(tcti, threading.Lock())


def pcr_selection(pcrs: Iterable[int]) -> bytes:
    """TPML_PCR_SELECTION of ``pcrs`` in the SHA-256 bank, as TPM2_PolicyPCR hashes it."""
    bitmap = bytearray(PCR_SELECT_SIZE)
    for pcr in pcrs:
        if not 0 <= pcr < measured_launch.PCR_COUNT:
            raise ValueError(f"PCR {pcr} is not 0..{measured_launch.PCR_COUNT - 1}")
        bitmap[pcr // 8] |= 1 << (pcr % 8)
    return struct.pack(">IHB", 1, tpm_verifier.TPM_ALG_SHA256, PCR_SELECT_SIZE) + bytes(bitmap)


def pcr_policy_digest(pcr_values: Mapping[int, bytes]) -> bytes:
    """The policy digest of TPM2_PolicyPCR over ``pcr_values`` from a fresh SHA-256 session:
    ``H(0^32 || TPM_CC_PolicyPCR || selection || H(values in ascending PCR order))``."""
    pcrs = sorted(pcr_values)
    values_digest = hashlib.sha256(b"".join(pcr_values[p] for p in pcrs)).digest()
    return hashlib.sha256(
        bytes(32) + struct.pack(">I", TPM_CC_POLICY_PCR) + pcr_selection(pcrs) + values_digest
    ).digest()


def _pcr_list(pcrs: Iterable[int]) -> str:
    selected = sorted(set(pcrs))
    if not selected:
        raise ValueError("select at least one PCR")
    pcr_selection(selected)
    return "sha256:" + ",".join(str(p) for p in selected)


@dataclass(frozen=True)
class AttestationKey:
    """A restricted ECDSA-SHA256 P-256 signing key of one TPM, as loadable blobs.

    ``public`` is the TPM2B_PUBLIC (what enrolment inspects), ``private`` the TPM2B_PRIVATE
    wrapped by the storage root key (useless off this TPM).
    """

    public: bytes
    private: bytes

    @property
    def public_pem(self) -> bytes:
        """The key as PEM SubjectPublicKeyInfo (what evidence carries)."""
        return tpm_verifier.parse_public(self.public).pem()

    @property
    def name(self) -> bytes:
        """The TPM name (nameAlg || SHA-256 of the public area)."""
        return tpm_verifier.parse_public(self.public).name

    def to_json(self) -> dict[str, str]:
        """Both blobs, base64: store this to reload the key later."""
        return {
            "public": base64.b64encode(self.public).decode("ascii"),
            "private": base64.b64encode(self.private).decode("ascii"),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, str]) -> AttestationKey:
        """The key stored by :meth:`to_json`."""
        try:
            return cls(
                base64.b64decode(doc["public"], validate=True),
                base64.b64decode(doc["private"], validate=True),
            )
        except (KeyError, TypeError, binascii.Error) as exc:
            raise ValueError(f"not a stored attestation key: {exc}") from exc


@dataclass(frozen=True)
class Quote:
    """What TPM2_Quote returned: TPMS_ATTEST, TPMT_SIGNATURE, and the quoted PCR values."""

    attest: bytes
    signature: bytes
    pcr_values: dict[int, bytes]


class Tpm:
    """A client of one TPM (see the module docstring)."""

    def __init__(self, tcti: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.tcti = tcti
        self._timeout = timeout
        self._lock = _lock_for(tcti)
        self._env = {**os.environ, "TPM2TOOLS_TCTI": tcti}
        self._scratch: Path | None = Path(tempfile.mkdtemp(prefix="council-tpm-"))

    def close(self) -> None:
        """Remove the scratch directory. Idempotent."""
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    def __enter__(self) -> Tpm:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- plumbing -------------------------------------------------------------------------

    def tool(self, name: str, *args: str, error: type[TpmError] = TpmError) -> bytes:
        """Run one tpm2-tools program (``tpm2_<name>``) against this TPM; its stdout.

        Callers hold :meth:`operation`; raises ``error`` with the tool's last error line.
        """
        command = [f"tpm2_{name}", *args]
        try:
            result = subprocess.run(
                command, env=self._env, capture_output=True, timeout=self._timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise error(f"tpm2_{name} timed out after {self._timeout}s") from exc
        except FileNotFoundError as exc:
            raise error(f"tpm2_{name} is not installed (Debian package tpm2-tools)") from exc
        if result.returncode != 0:
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            detail = next((ln for ln in reversed(lines) if "ERROR" in ln and "(0x" in ln), "")
            raise error(f"tpm2_{name} failed: {detail or (lines[-1] if lines else '')}")
        return result.stdout

    @contextmanager
    def operation(self, *, objects: bool = True, sessions: bool = False) -> Iterator[Path]:
        """Hold the TPM, give a fresh scratch directory, and afterwards flush every transient
        object if ``objects`` and every session if ``sessions`` (swtpm has no resource manager
        to do it; each flush is one more process, so operations that load nothing skip it)."""
        if self._scratch is None:
            raise TpmError("this Tpm is closed")
        with self._lock, tempfile.TemporaryDirectory(dir=self._scratch) as work:
            try:
                yield Path(work)
            except BaseException:
                # The operation's own error is the one worth reporting.
                with contextlib.suppress(TpmError):
                    self._flush(objects, sessions)
                raise
            self._flush(objects, sessions)

    def _flush(self, objects: bool, sessions: bool) -> None:
        if objects:
            self.tool("flushcontext", "--transient-object")
        if sessions:
            self.tool("flushcontext", "--loaded-session")
            self.tool("flushcontext", "--saved-session")

    # --- PCRs -----------------------------------------------------------------------------

    def pcr_read(self, pcrs: Iterable[int]) -> dict[int, bytes]:
        """The current SHA-256-bank values of ``pcrs``."""
        selection = _pcr_list(pcrs)
        with self.operation(objects=False) as work:
            out = work / "pcrs"
            self.tool("pcrread", selection, "-o", str(out))
            raw = out.read_bytes()
        return _split_values(selection, raw)

    def pcr_extend(self, pcr: int, digest: bytes) -> None:
        """Extend SHA-256-bank PCR ``pcr`` with the 32-byte ``digest``."""
        if len(digest) != tpm_verifier.SHA256_SIZE:
            raise ValueError("a SHA-256 PCR is extended with a 32-byte digest")
        _pcr_list([pcr])
        with self.operation(objects=False):
            self.tool("pcrextend", f"{pcr}:sha256={digest.hex()}")

    def pcr_reset(self, pcr: int) -> None:
        """Reset a PCR resettable at locality 0 (16, 23) to zeros."""
        if pcr not in measured_launch.RESETTABLE_PCRS:
            raise ValueError(f"PCR {pcr} cannot be reset by software")
        with self.operation(objects=False):
            self.tool("pcrreset", str(pcr))

    # --- attestation ----------------------------------------------------------------------

    def create_ak(self) -> AttestationKey:
        """Create a new attestation key under the storage root key."""
        with self.operation() as work:
            self.tool(
                "create",
                "-C",
                hex(SRK_HANDLE),
                "-G",
                "ecc256:ecdsa-sha256:null",
                "-a",
                AK_ATTRIBUTES,
                "-u",
                str(work / "ak.pub"),
                "-r",
                str(work / "ak.priv"),
            )
            return AttestationKey((work / "ak.pub").read_bytes(), (work / "ak.priv").read_bytes())

    def _load(self, work: Path, public: bytes, private: bytes, stem: str) -> Path:
        """Load a key blob pair under the SRK; its context file (valid until the flush)."""
        (work / f"{stem}.pub").write_bytes(public)
        (work / f"{stem}.priv").write_bytes(private)
        context = work / f"{stem}.ctx"
        self.tool(
            "load",
            "-C",
            hex(SRK_HANDLE),
            "-u",
            str(work / f"{stem}.pub"),
            "-r",
            str(work / f"{stem}.priv"),
            "-c",
            str(context),
        )
        return context

    def quote(self, ak: AttestationKey, pcrs: Iterable[int], qualifying_data: bytes) -> Quote:
        """TPM2_Quote of the SHA-256 ``pcrs`` signed by ``ak`` with ``qualifying_data`` as
        extraData (the job binding: SHA-256 of the canonical binding document)."""
        if not 0 < len(qualifying_data) <= MAX_QUALIFYING_DATA:
            raise ValueError(f"qualifying data is 1..{MAX_QUALIFYING_DATA} bytes")
        selection = _pcr_list(pcrs)
        with self.operation() as work:
            context = self._load(work, ak.public, ak.private, "ak")
            self.tool(
                "quote",
                "-c",
                str(context),
                "-l",
                selection,
                "-q",
                qualifying_data.hex(),
                "-g",
                "sha256",
                "-m",
                str(work / "attest"),
                "-s",
                str(work / "signature"),
                "-o",
                str(work / "pcrs"),
                "-F",
                "values",
            )
            return Quote(
                attest=(work / "attest").read_bytes(),
                signature=(work / "signature").read_bytes(),
                pcr_values=_split_values(selection, (work / "pcrs").read_bytes()),
            )

    def ek_certificate(self) -> bytes:
        """The DER RSA EK certificate from its NV index (written by provisioning)."""
        with self.operation(objects=False) as work:
            out = work / "ek.der"
            self.tool("nvread", hex(tpm_verifier.EK_CERT_NV_INDEX), "-C", "o", "-o", str(out))
            return out.read_bytes()

    def activate_credential(
        self, ak: AttestationKey, credential_blob: bytes, encrypted_secret: bytes
    ) -> bytes:
        """TPM2_ActivateCredential: recover an enrolment challenge made for ``ak`` and this
        TPM's RSA EK (``gateway.attestation.tpm.begin_enrolment``). The EK's policy demands
        PolicySecret with the endorsement hierarchy, hence the policy session."""
        with self.operation(sessions=True) as work:
            context = self._load(work, ak.public, ak.private, "ak")
            # tpm2-tools' credential file: magic, version, TPM2B_ID_OBJECT, encrypted secret.
            challenge = work / "challenge"
            challenge.write_bytes(
                struct.pack(">II", 0xBADCC0DE, 1) + credential_blob + encrypted_secret
            )
            session = work / "session.ctx"
            self.tool("startauthsession", "--policy-session", "-S", str(session))
            self.tool("policysecret", "-S", str(session), "-c", "e")
            out = work / "credential"
            self.tool(
                "activatecredential",
                "-c",
                str(context),
                "-C",
                hex(EK_RSA_HANDLE),
                "-i",
                str(challenge),
                "-o",
                str(out),
                "-P",
                f"session:{session}",
            )
            return out.read_bytes()

    # --- sealing --------------------------------------------------------------------------

    def seal(
        self,
        secret: bytes,
        pcrs: Iterable[int],
        pcr_values: Mapping[int, bytes] | None = None,
    ) -> bytes:
        """Seal ``secret`` (≤ 128 bytes) so that only this TPM releases it, and only while the
        SHA-256 ``pcrs`` hold ``pcr_values`` (default: their current values).

        Passing ``pcr_values`` seals to a state not yet reached, e.g. the replay of an event
        log before the launch it describes. The blob is JSON (version, pcrs, policy digest,
        base64 public and private parts).
        """
        if not 0 < len(secret) <= MAX_SEALED_SIZE:
            raise ValueError(f"a sealed secret is 1..{MAX_SEALED_SIZE} bytes")
        selected = sorted(set(pcrs))
        _pcr_list(selected)
        values = dict(pcr_values) if pcr_values is not None else self.pcr_read(selected)
        if set(values) != set(selected) or any(len(v) != 32 for v in values.values()):
            raise ValueError("pcr_values must give a 32-byte value for exactly the sealed PCRs")
        policy = pcr_policy_digest(values)
        with self.operation() as work:
            (work / "policy").write_bytes(policy)
            (work / "secret").write_bytes(secret)
            self.tool(
                "create",
                "-C",
                hex(SRK_HANDLE),
                "-L",
                str(work / "policy"),
                "-a",
                SEALED_ATTRIBUTES,
                "-i",
                str(work / "secret"),
                "-u",
                str(work / "sealed.pub"),
                "-r",
                str(work / "sealed.priv"),
            )
            public = (work / "sealed.pub").read_bytes()
            private = (work / "sealed.priv").read_bytes()
        doc = {
            "version": SEAL_BLOB_VERSION,
            "pcrs": selected,
            "policy": policy.hex(),
            "public": base64.b64encode(public).decode("ascii"),
            "private": base64.b64encode(private).decode("ascii"),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def unseal(self, blob: bytes) -> bytes:
        """The secret of a :meth:`seal` blob; :class:`UnsealError` if any sealed PCR differs
        from its sealed value (the TPM, not this code, enforces the policy)."""
        try:
            doc = json.loads(blob)
            if doc["version"] != SEAL_BLOB_VERSION:
                raise ValueError(f"sealed blob version {doc['version']!r}")
            selection = _pcr_list(int(p) for p in doc["pcrs"])
            public = base64.b64decode(doc["public"], validate=True)
            private = base64.b64decode(doc["private"], validate=True)
        except (UnicodeDecodeError, KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ValueError(f"not a sealed blob: {exc}") from exc
        with self.operation(sessions=True) as work:
            context = self._load(work, public, private, "sealed")
            session = work / "session.ctx"
            self.tool("startauthsession", "--policy-session", "-S", str(session))
            # PolicyPCR folds in the PCRs' *current* values; TPM2_Unseal then compares the
            # session digest with the object's policy, so any changed PCR refuses.
            self.tool("policypcr", "-S", str(session), "-l", selection)
            out = work / "secret"
            self.tool(
                "unseal",
                "-c",
                str(context),
                "-p",
                f"session:{session}",
                "-o",
                str(out),
                error=UnsealError,
            )
            return out.read_bytes()


def _split_values(selection: str, raw: bytes) -> dict[int, bytes]:
    """Concatenated 32-byte values of a ``sha256:a,b`` selection, keyed by PCR."""
    pcrs = [int(p) for p in selection.split(":", 1)[1].split(",")]
    if len(raw) != 32 * len(pcrs):
        raise TpmError(f"expected {len(pcrs)} PCR values, got {len(raw)} bytes")
    return {pcr: raw[32 * i : 32 * (i + 1)] for i, pcr in enumerate(pcrs)}


def attest(
    tpm: Tpm,
    ak: AttestationKey,
    qualifying_data: bytes,
    event_log: measured_launch.EventLog,
    *,
    pcrs: Iterable[int] = (),
) -> bytes:
    """Evidence for the ``tpm`` verifier: a quote by ``ak`` over the log's PCRs (plus
    ``pcrs``) with ``qualifying_data`` as extraData, and the log itself.

    ``qualifying_data`` is the job binding the verifier is given as ``expected_report_data``
    (SHA-256 of the canonical binding document, 32 bytes). The log must be the complete
    record of every extend of those PCRs since their reset, or the verifier refuses.
    """
    selected = sorted(set(event_log.pcrs) | set(pcrs))
    if not selected:
        raise ValueError("nothing to quote: the event log is empty and no PCR was given")
    quote = tpm.quote(ak, selected, qualifying_data)
    return tpm_verifier.encode_evidence(
        ak_public=ak.public_pem,
        quote=quote.attest,
        signature=quote.signature,
        pcr_values=quote.pcr_values,
        event_log=event_log.events,
    )
