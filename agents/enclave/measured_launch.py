"""Measured launch: extend TPM PCRs with what a job runs, and keep the event log that explains them.

The executor measures, in order, the transform code, the sandbox profile and the job manifest
(and anything else it chooses) before the job starts. Each measurement is one :class:`Event`:
the SHA-256 of the measured bytes is extended into a SHA-256-bank PCR and the event is appended
to an :class:`EventLog`. A quote over those PCRs then signs the log's outcome; the verifier
replays the log (:func:`replay`) and accepts it only if it reproduces exactly the quoted values,
so an event can be neither hidden, reordered nor altered without the quote failing.

Only the digest is extended: an event's type and description are the log's word for what the
digest is. The verifier trusts a digest only through the reference values listed for the
event's type, so relabelling an event cannot make unknown code acceptable.

Encoding: an event is the JSON object ``{"pcr": int, "digest": 64 lowercase hex, "type": str,
"description": str}``; a log is a JSON array of events in extend order. :func:`canonical` gives
the canonical bytes (sorted keys, no whitespace, ASCII), so a log has exactly one encoding and
its digest is stable.

Which PCR: jobs are measured into PCR 23 (:data:`JOB_PCR`), which TPM 2.0 lets software reset
at locality 0, so :meth:`EventLog.fresh` starts each job from a known value and the log covers
the job alone. The price is that whoever controls the host can reset and re-extend it, which a
software TPM cannot prevent anyway: this proves what the executor measured, not that the host
is honest.

Thread-safety: an :class:`EventLog` is not locked; give each job its own.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

JOB_PCR = 23
# PCRs software may reset at locality 0 (TPM 2.0 PC Client profile): debug and application.
RESETTABLE_PCRS = frozenset({16, 23})
PCR_COUNT = 24
DIGEST_SIZE = 32
# Event types the executor records; other lowercase names are allowed (a new measured
# component needs no change here), and the verifier accepts only what reference values name.
TRANSFORM_CODE = "transform-code"
SANDBOX_PROFILE = "sandbox-profile"
JOB_MANIFEST = "job-manifest"
MAX_DESCRIPTION = 1024
_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,63}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_EVENT_KEYS = frozenset({"pcr", "digest", "type", "description"})


class Extender(Protocol):
    """What :meth:`EventLog.measure` needs from a TPM (``agents.enclave.tpm.Tpm`` has it)."""

    def pcr_extend(self, pcr: int, digest: bytes) -> None:
        """Extend SHA-256-bank PCR ``pcr`` with the 32-byte ``digest``."""
        ...

    def pcr_reset(self, pcr: int) -> None:
        """Reset a resettable PCR to its initial value."""
        ...


def initial_value(pcr: int) -> bytes:
    """The value of ``pcr`` after TPM startup or reset: all ones for the DRTM PCRs 17-22
    (until a dynamic launch resets them), zeros otherwise."""
    return b"\xff" * DIGEST_SIZE if 17 <= pcr <= 22 else bytes(DIGEST_SIZE)


def extend(value: bytes, digest: bytes) -> bytes:
    """The TPM2_PCR_Extend of a SHA-256 PCR: ``SHA-256(value || digest)``."""
    return hashlib.sha256(value + digest).digest()


@dataclass(frozen=True)
class Event:
    """One measurement: ``digest`` (64 lowercase hex) was extended into ``pcr``."""

    pcr: int
    digest: str
    type: str
    description: str

    def __post_init__(self) -> None:
        if isinstance(self.pcr, bool) or not isinstance(self.pcr, int):
            raise ValueError("event pcr must be an integer")
        if not 0 <= self.pcr < PCR_COUNT:
            raise ValueError(f"event pcr {self.pcr} is not 0..{PCR_COUNT - 1}")
        if not isinstance(self.digest, str) or not _HEX_DIGEST.fullmatch(self.digest):
            raise ValueError("event digest must be 64 lowercase hex characters (SHA-256)")
        if not isinstance(self.type, str) or not _TYPE_PATTERN.fullmatch(self.type):
            raise ValueError(f"event type {self.type!r} is not a lowercase name")
        if not isinstance(self.description, str) or len(self.description) > MAX_DESCRIPTION:
            raise ValueError(f"event description must be a string of <= {MAX_DESCRIPTION}")

    @classmethod
    def of(cls, type: str, content: bytes, description: str, *, pcr: int = JOB_PCR) -> Event:
        """The event measuring ``content`` (its SHA-256) into ``pcr``."""
        return cls(pcr, hashlib.sha256(content).hexdigest(), type, description)

    @classmethod
    def from_json(cls, doc: Any) -> Event:
        """Parse one event object; ``ValueError`` unless it has exactly the four members."""
        if not isinstance(doc, Mapping) or set(doc) != _EVENT_KEYS:
            raise ValueError(f"an event must have exactly {sorted(_EVENT_KEYS)}")
        return cls(doc["pcr"], doc["digest"], doc["type"], doc["description"])

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object."""
        return {
            "pcr": self.pcr,
            "digest": self.digest,
            "type": self.type,
            "description": self.description,
        }


def canonical(events: Iterable[Event]) -> bytes:
    """The canonical JSON encoding of a log (see the module docstring)."""
    return json.dumps(
        [event.to_json() for event in events],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode("ascii")


def parse(doc: Any) -> list[Event]:
    """Events from a decoded JSON array; ``ValueError`` if it is not a valid log."""
    if not isinstance(doc, list):
        raise ValueError("an event log must be a JSON array")
    return [Event.from_json(item) for item in doc]


def replay(entries: Iterable[Event], pcrs: Iterable[int] = ()) -> dict[int, str]:
    """The final value (lowercase hex) of every PCR the events touch, and of ``pcrs``.

    Each PCR starts from :func:`initial_value`, so ``pcrs`` that no event touches come out at
    their initial value: a quote that includes them proves nothing was extended there.
    """
    values = {pcr: initial_value(pcr) for pcr in pcrs}
    for event in entries:
        current = values.get(event.pcr, initial_value(event.pcr))
        values[event.pcr] = extend(current, bytes.fromhex(event.digest))
    return {pcr: value.hex() for pcr, value in sorted(values.items())}


class EventLog:
    """The events measured so far, in extend order; see the module docstring."""

    def __init__(self, events: Sequence[Event] = ()) -> None:
        self._events: list[Event] = list(events)

    @classmethod
    def fresh(cls, tpm: Extender, pcrs: Iterable[int] = (JOB_PCR,)) -> EventLog:
        """Reset ``pcrs`` (each must be resettable) and return an empty log that replays to
        their values: the start of one job's measured launch."""
        targets = sorted(set(pcrs))
        for pcr in targets:
            if pcr not in RESETTABLE_PCRS:
                raise ValueError(f"PCR {pcr} cannot be reset by software")
        for pcr in targets:
            tpm.pcr_reset(pcr)
        return cls()

    @property
    def events(self) -> tuple[Event, ...]:
        """The recorded events."""
        return tuple(self._events)

    @property
    def pcrs(self) -> list[int]:
        """The PCRs the log touches, ascending."""
        return sorted({event.pcr for event in self._events})

    def measure(self, tpm: Extender, event: Event) -> None:
        """Extend ``event.digest`` into ``event.pcr`` and record the event.

        The event is recorded only after the extend succeeded; if the extend raises, the PCR's
        state is unknown and the log no longer replays, so the job must not be attested.
        """
        tpm.pcr_extend(event.pcr, bytes.fromhex(event.digest))
        self._events.append(event)

    def replay(self) -> dict[int, str]:
        """What the PCRs the log touches must hold now (see :func:`replay`)."""
        return replay(self._events)

    def to_json(self) -> list[dict[str, Any]]:
        """The log as a JSON array."""
        return [event.to_json() for event in self._events]

    def canonical(self) -> bytes:
        """The log's canonical bytes (see :func:`canonical`)."""
        return canonical(self._events)

    @classmethod
    def from_json(cls, doc: Any) -> EventLog:
        """A log from its decoded JSON array (see :func:`parse`)."""
        return cls(parse(doc))
