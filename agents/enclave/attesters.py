"""Attesters: the executor's side of a measured launch and its evidence.

An :class:`Attester` does two things per job, in this order, while the executor holds its
launch lock: :meth:`~Attester.launch` starts a fresh measured launch (the events: transform
code, sandbox profile, job manifest), and :meth:`~Attester.evidence` produces evidence over
that launch carrying the job's report-data binding. ``plugin`` names the verifier plugin
that checks the evidence.

- :class:`TpmAttester`: the software TPM (``tpm`` plugin): PCR 23 reset and extended, then
  a quote by the enrolled attestation key plus the event log.
- :class:`SampleAttester`: the ``sample`` plugin's signed claim set, for tests of the
  pipeline without a TPM. It proves nothing, and every shipped appraisal policy refuses it.

Lifecycle: construct, then ``launch``/``evidence`` per job; the TPM attester's TPM client
belongs to its :class:`~agents.enclave.platform.SoftwareTpmPlatform`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.enclave import measured_launch as ml
from agents.enclave.tpm import AttestationKey, Tpm, attest
from gateway.attestation import sample

__all__ = ["Attester", "SampleAttester", "TpmAttester"]


class Attester(Protocol):
    """See the module docstring."""

    plugin: str
    tee_class: str
    hardware: bool

    def launch(self, events: Sequence[ml.Event]) -> None:
        """Start a fresh measured launch made of ``events``."""
        ...

    def evidence(self, report_data: bytes) -> bytes:
        """Evidence over the current launch, bound to ``report_data``."""
        ...


class TpmAttester:
    """Measured launch and quotes on a software TPM."""

    plugin = "tpm"
    tee_class = "software-tpm"
    hardware = False

    def __init__(self, tpm: Tpm, ak: AttestationKey) -> None:
        self._tpm = tpm
        self._ak = ak
        self._log: ml.EventLog | None = None

    def launch(self, events: Sequence[ml.Event]) -> None:
        """Reset PCR 23 and extend it with each event."""
        log = ml.EventLog.fresh(self._tpm)
        for event in events:
            log.measure(self._tpm, event)
        self._log = log

    def evidence(self, report_data: bytes) -> bytes:
        """A quote of the launch's PCRs with ``report_data`` as qualifying data."""
        if self._log is None:
            raise RuntimeError("no measured launch to attest")
        return attest(self._tpm, self._ak, report_data, self._log)


class SampleAttester:
    """Sample evidence whose measurement is the replayed launch. Tests only."""

    plugin = "sample"
    tee_class = "sample"
    hardware = False

    def __init__(
        self,
        key: Ed25519PrivateKey,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._key = key
        self._clock = clock
        self._measurement: bytes | None = None

    def launch(self, events: Sequence[ml.Event]) -> None:
        """Replay ``events`` in software (there is no TPM to extend)."""
        values = ml.replay(events, [ml.JOB_PCR])
        self._measurement = bytes.fromhex(values[ml.JOB_PCR])

    def evidence(self, report_data: bytes) -> bytes:
        """A signed sample claim set over the launch's measurement."""
        if self._measurement is None:
            raise RuntimeError("no measured launch to attest")
        return sample.make_evidence(
            self._key,
            measurement=self._measurement,
            report_data=report_data,
            issued_at=self._clock(),
        )
