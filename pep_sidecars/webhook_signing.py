"""Standard Webhooks signatures: verifying who sent a webhook, when, and that it is new.

A sender signs ``"{webhook-id}.{webhook-timestamp}.{body}"`` with HMAC-SHA256 under its
secret (``whsec_<base64>``) and sends ``webhook-signature: v1,<base64 mac>``; several
signatures may be given, space-separated (a sender rotating its secret signs with both).
Council adds one header the standard leaves to the receiver: ``webhook-sender`` names the
sender, so the PEP picks that sender's secrets instead of trying every secret it knows. The
name is not signed, and need not be: a forged name only selects secrets the forger lacks.

:class:`SignatureVerifier` checks, in this order, that the headers are present, the sender
is known, the timestamp is a number within the replay window (both directions), and a
signature matches (every comparison constant-time). :class:`ReplayStore` then reserves the
message id: a second message with an id the sender already used inside the window is a
replay. A reservation that did not lead to a delivery is released, because the standard
resends a failed message under the same id and the retry must be judged afresh.

Thread-safety: :class:`SignatureVerifier` is immutable. :class:`ReplayStore` runs every
SQLite call on its own single thread, so any number of coroutines may share it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_TOLERANCE",
    "HEADER_ID",
    "HEADER_SENDER",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "BadSignature",
    "MalformedHeaders",
    "MissingHeaders",
    "ReplayStore",
    "ReplayedMessage",
    "Sender",
    "SenderConfigError",
    "SignatureVerifier",
    "StaleTimestamp",
    "UnknownSender",
    "VerifiedMessage",
    "WebhookRejected",
    "load_senders",
    "parse_secret",
    "sign",
]

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
HEADER_SENDER = "webhook-sender"
SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"

DEFAULT_TOLERANCE = 300.0
"""Seconds a timestamp may lie in the past or the future (the standard's five minutes)."""

# The standard's bounds on secret length; shorter keys are guessable, longer ones pointless.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
MAX_ID_LENGTH = 256
MAX_SIGNATURES = 16


class WebhookRejected(Exception):
    """Base of every reason to refuse a webhook before asking the policy.

    ``code`` is stable and machine-readable; ``remedy`` tells the sender what to do.
    """

    code = "webhook_rejected"

    def __init__(self, message: str, remedy: str, sender: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy
        self.sender = sender


class MissingHeaders(WebhookRejected):
    """Raised when one of the signature headers (or ``webhook-sender``) is absent."""

    code = "webhook_headers_missing"


class MalformedHeaders(WebhookRejected):
    """Raised when a header is present but unusable (a non-numeric timestamp, a huge id)."""

    code = "webhook_headers_malformed"


class UnknownSender(WebhookRejected):
    """Raised when ``webhook-sender`` names no registered sender."""

    code = "webhook_sender_unknown"


class StaleTimestamp(WebhookRejected):
    """Raised when ``webhook-timestamp`` is outside the replay window, past or future."""

    code = "webhook_timestamp_out_of_window"


class BadSignature(WebhookRejected):
    """Raised when no ``v1`` signature matches any of the sender's secrets."""

    code = "webhook_signature_invalid"


class ReplayedMessage(WebhookRejected):
    """Raised when the sender already used this ``webhook-id`` within the replay window."""

    code = "webhook_replayed"


class SenderConfigError(Exception):
    """Raised when the senders file is unreadable or describes a sender wrongly."""


def parse_secret(text: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret; raises ValueError when malformed."""
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"a secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("the secret after whsec_ is not valid base64") from exc
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, this one {len(key)}"
        )
    return key


def _mac(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``webhook-signature`` value a sender holding ``secret`` sends for this message."""
    mac = _mac(parse_secret(secret), msg_id, str(timestamp), body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(mac).decode()}"


@dataclass(frozen=True)
class Sender:
    """A registered sender: its id, the tenant it acts for, and its current secrets.

    More than one secret is accepted during a rotation: a signature under any of them counts.
    """

    id: str
    tenant: str
    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.id or not self.tenant or not self.keys:
            raise SenderConfigError("a sender needs an id, a tenant and at least one secret")

    def __repr__(self) -> str:
        # Keys never reach logs or tracebacks.
        return f"Sender(id={self.id!r}, tenant={self.tenant!r}, keys=<{len(self.keys)}>)"


def load_senders(path: Path) -> dict[str, Sender]:
    """Read a senders file: ``{"<sender id>": {"secret": "whsec_…", "tenant": "<tenant>"}}``.

    ``secret`` may also be a list of secrets (during a rotation).
    """
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SenderConfigError(f"cannot read senders file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise SenderConfigError(f"{path}: expected an object of sender id -> {{secret, tenant}}")
    senders: dict[str, Sender] = {}
    for sender_id, entry in doc.items():
        if not isinstance(entry, dict):
            raise SenderConfigError(f"{path}: sender {sender_id!r} is not an object")
        secrets = entry.get("secret")
        if isinstance(secrets, str):
            secrets = [secrets]
        tenant = entry.get("tenant")
        if not isinstance(secrets, list) or not secrets or not isinstance(tenant, str):
            raise SenderConfigError(
                f"{path}: sender {sender_id!r} needs a string tenant and a secret "
                "(a whsec_ string or a list of them)"
            )
        if not all(isinstance(s, str) for s in secrets):
            raise SenderConfigError(f"{path}: sender {sender_id!r}: every secret is a string")
        try:
            keys = tuple(parse_secret(s) for s in secrets)
        except ValueError as exc:
            raise SenderConfigError(f"{path}: sender {sender_id!r}: {exc}") from exc
        senders[sender_id] = Sender(sender_id, tenant, keys)
    return senders


@dataclass(frozen=True)
class VerifiedMessage:
    """A message whose signature checked out: who sent it, its id and its timestamp."""

    sender: Sender
    msg_id: str
    timestamp: int


@dataclass(frozen=True)
class SignatureVerifier:
    """Checks the Standard Webhooks headers of a request against the registered senders."""

    senders: Mapping[str, Sender]
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if self.tolerance <= 0:
            raise ValueError("tolerance must be positive")

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float | None = None
    ) -> VerifiedMessage:
        """The verified message, or a :class:`WebhookRejected` subclass saying what failed."""
        names = (HEADER_SENDER, HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)
        missing = [name for name in names if not headers.get(name)]
        sender_id = headers.get(HEADER_SENDER, "")
        if missing:
            raise MissingHeaders(
                f"the request lacks the {', '.join(missing)} header(s)",
                "sign the request as Standard Webhooks describes (webhook-id, "
                "webhook-timestamp, webhook-signature) and name yourself in webhook-sender",
                sender_id,
            )
        sender = self.senders.get(sender_id)
        if sender is None:
            raise UnknownSender(
                f"sender {sender_id!r} is not registered with this endpoint",
                "ask the receiver's operator to register your sender id and secret, "
                "or correct the webhook-sender header",
                sender_id,
            )
        msg_id = headers[HEADER_ID]
        if len(msg_id) > MAX_ID_LENGTH or not msg_id.isascii():
            raise MalformedHeaders(
                f"webhook-id must be at most {MAX_ID_LENGTH} ASCII characters",
                "send a short unique ASCII webhook-id, such as msg_<uuid>",
                sender_id,
            )
        raw_ts = headers[HEADER_TIMESTAMP]
        if not raw_ts.isascii() or not raw_ts.isdigit():
            raise MalformedHeaders(
                f"webhook-timestamp {raw_ts[:40]!r} is not whole seconds since the Unix epoch",
                "send the signing time as an integer number of seconds since 1970-01-01 UTC",
                sender_id,
            )
        timestamp = int(raw_ts)
        now = time.time() if now is None else now
        skew = now - timestamp
        if abs(skew) > self.tolerance:
            when = "old" if skew > 0 else "in the future"
            raise StaleTimestamp(
                f"webhook-timestamp {timestamp} is {abs(int(skew))} s {when}; "
                f"the window is ±{int(self.tolerance)} s",
                "sign with the current time (check the sender's clock) and send promptly",
                sender_id,
            )
        if not self._signature_matches(sender, msg_id, raw_ts, body, headers[HEADER_SIGNATURE]):
            raise BadSignature(
                f"no v1 signature in webhook-signature matches a secret of sender {sender_id!r}",
                f"sign '{{webhook-id}}.{{webhook-timestamp}}.{{body}}' with HMAC-SHA256 under "
                f"the secret registered for sender {sender_id} and send the body unaltered",
                sender_id,
            )
        return VerifiedMessage(sender, msg_id, timestamp)

    @staticmethod
    def _signature_matches(
        sender: Sender, msg_id: str, timestamp: str, body: bytes, header: str
    ) -> bool:
        expected = [_mac(key, msg_id, timestamp, body) for key in sender.keys]
        matched = False
        for entry in header.split(" ")[:MAX_SIGNATURES]:
            version, _, encoded = entry.partition(",")
            if version != SIGNATURE_VERSION:
                continue  # v1a (asymmetric) and future schemes are not ours to check
            try:
                given = base64.b64decode(encoded, validate=True)
            except ValueError:  # binascii.Error, or text that is not even ASCII
                continue
            # Compare against every key without stopping early: timing says nothing.
            for mac in expected:
                matched |= hmac.compare_digest(mac, given)
        return matched


class ReplayStore:
    """Message ids already used, per sender, in a SQLite file that survives restarts.

    An id is kept until its timestamp leaves the replay window; after that the timestamp
    check refuses the message anyway, so the row can go.
    """

    def __init__(self, path: Path, tolerance: float = DEFAULT_TOLERANCE) -> None:
        self.path = path
        self.tolerance = tolerance
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-replay")
        self._db: sqlite3.Connection | None = None
        self._closed = False

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        db.execute("pragma journal_mode=wal")
        # The reservation must be on disk before the message is forwarded: a crash right
        # after forwarding must not let the same id through again.
        db.execute("pragma synchronous=full")
        db.execute(
            "create table if not exists seen ("
            " sender text not null, msg_id text not null, expires_at real not null,"
            " primary key (sender, msg_id))"
        )
        db.execute("create index if not exists seen_expiry on seen (expires_at)")
        self._db = db

    async def open(self) -> None:
        """Open (creating if needed) the store."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)

    def _reserve(self, sender: str, msg_id: str, timestamp: int, now: float) -> bool:
        assert self._db is not None
        expires = max(now, timestamp) + self.tolerance
        with self._db:
            self._db.execute("begin immediate")
            self._db.execute("delete from seen where expires_at < ?", (now,))
            cursor = self._db.execute(
                "insert or ignore into seen (sender, msg_id, expires_at) values (?, ?, ?)",
                (sender, msg_id, expires),
            )
        return cursor.rowcount == 1

    async def reserve(self, message: VerifiedMessage, now: float | None = None) -> None:
        """Claim the message's id; raises :class:`ReplayedMessage` if it is taken."""
        now = time.time() if now is None else now
        fresh = await asyncio.get_running_loop().run_in_executor(
            self._executor,
            self._reserve,
            message.sender.id,
            message.msg_id,
            message.timestamp,
            now,
        )
        if not fresh:
            raise ReplayedMessage(
                f"sender {message.sender.id!r} already sent a message with webhook-id "
                f"{message.msg_id!r}",
                "send a fresh webhook-id for a new event; a resent event that was already "
                "delivered needs no resending",
                message.sender.id,
            )

    def _release(self, sender: str, msg_id: str) -> None:
        assert self._db is not None
        with self._db:
            self._db.execute("delete from seen where sender = ? and msg_id = ?", (sender, msg_id))

    async def release(self, message: VerifiedMessage) -> None:
        """Give the id back (the message was not delivered, so a retry may use it)."""
        await asyncio.get_running_loop().run_in_executor(
            self._executor, self._release, message.sender.id, message.msg_id
        )

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def close(self) -> None:
        """Close the database and its thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)
