"""Usage intake: usage events stored once by id, quotas, and counts for metering.

Enforcement points report events (``council.v1.UsageEvent``: who used which feature of
which tenant, and whether the policy allowed it). :meth:`UsageStore.report` validates each
event on its own, stores the valid ones in one transaction and returns their ids as
acknowledged. Storing is idempotent by ``event_id``: an id seen before is acknowledged
again and never stored twice (the first stored copy wins), so a reporter may resend
whatever it is unsure about. An invalid event is neither stored nor acknowledged, and it
never costs the valid events of its batch their place.

The same database holds ``quotas`` (tenant, feature, soft and hard limit, unit), which
admins set and which quota enforcement reads, and :meth:`UsageStore.counts` sums events by
tenant, feature and unit over a time window.

Storage is one SQLite file (WAL) through sqlite-utils: ``usage_events`` (primary key
``event_id``, indexed by tenant, feature and time) and ``quotas`` (primary key tenant +
feature).

Thread safety: every public method blocks (SQLite) and is safe from any thread; one lock
serialises use of the connection. Async callers run them in an executor.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlite_utils

from proto.council.v1 import usage_pb2

__all__ = [
    "DEFAULT_UNIT",
    "EventProblem",
    "InvalidUsageRequestError",
    "Quota",
    "ReportResult",
    "UsageConfig",
    "UsageCount",
    "UsageError",
    "UsageStore",
    "UsageStoreError",
    "check_name",
]

DEFAULT_UNIT = "request"
"""The unit of an event or quota that names none (proto3's empty string)."""
DEFAULT_MAX_BATCH = 10_000
DEFAULT_MAX_FUTURE_SECONDS = 3600.0
DEFAULT_MAX_ATTRIBUTES_BYTES = 16 * 1024
BUSY_TIMEOUT_MS = 10_000
MAX_TEXT = 512

_EVENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,199}$")
_UNIT = re.compile(r"^[A-Za-z0-9_./-]{1,32}$")


# --- errors ------------------------------------------------------------------------------


class UsageError(Exception):
    """Base class of the usage intake's errors; ``code`` is stable."""

    code = "usage_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidUsageRequestError(UsageError):
    """A request as a whole is malformed: a batch too large, a bad quota or query."""

    code = "invalid_request"


class UsageStoreError(UsageError):
    """The database cannot be opened, read or written, or the store is closed."""

    code = "store_unavailable"


# --- configuration and results -----------------------------------------------------------


@dataclass(frozen=True)
class UsageConfig:
    """Where usage is stored and what a batch may hold.

    Attributes:
        db_path: the SQLite file (created with its folder).
        max_batch: most events in one :meth:`UsageStore.report` call; more is refused whole.
        max_future_seconds: how far ahead of the gateway's clock an event may be dated.
        max_attributes_bytes: largest ``attributes_json`` accepted.
    """

    db_path: Path
    max_batch: int = DEFAULT_MAX_BATCH
    max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS
    max_attributes_bytes: int = DEFAULT_MAX_ATTRIBUTES_BYTES

    def __post_init__(self) -> None:
        if self.max_batch <= 0 or self.max_attributes_bytes <= 0:
            raise ValueError("max_batch and max_attributes_bytes must be > 0")
        if self.max_future_seconds < 0:
            raise ValueError("max_future_seconds must be >= 0")


@dataclass(frozen=True)
class EventProblem:
    """Why one event of a batch was refused: ``field`` is ``events[<index>].<name>``."""

    index: int
    event_id: str
    field: str
    description: str


@dataclass(frozen=True)
class ReportResult:
    """The outcome of one batch.

    Attributes:
        acknowledged: ids of the valid events, in batch order without repeats; each is
            stored now, whether by this batch or an earlier one.
        stored: how many of them this batch stored for the first time.
        problems: one entry per invalid event (not stored, not acknowledged).
    """

    acknowledged: tuple[str, ...]
    stored: int
    problems: tuple[EventProblem, ...]


@dataclass(frozen=True)
class Quota:
    """A tenant's limits for one feature, in ``unit``s."""

    tenant: str
    feature: str
    soft_limit: float
    hard_limit: float
    unit: str
    updated_at_ns: int
    updated_by: str


@dataclass(frozen=True)
class UsageCount:
    """Events of one tenant, feature and unit in a window; ``quantity`` sums allowed ones."""

    tenant: str
    feature: str
    unit: str
    events: int
    allowed: int
    denied: int
    quantity: float


# --- validation --------------------------------------------------------------------------


def check_name(value: str, what: str) -> str:
    """``value`` if it is a tenant or feature name; :class:`InvalidUsageRequestError` if not."""
    if not _NAME.match(value):
        raise InvalidUsageRequestError(
            f"{what} must be 1-200 characters of letters, digits and ._:/@- starting with a"
            f" letter or digit (got {value!r:.60})"
        )
    return value


def _event_problems(
    event: usage_pb2.UsageEvent, config: UsageConfig, now_ns: int
) -> list[tuple[str, str]]:
    """(field, description) for everything wrong with one event; empty when it is valid."""
    problems: list[tuple[str, str]] = []
    if not _EVENT_ID.match(event.event_id):
        problems.append(("event_id", "must be 1-128 characters of letters, digits and ._:-"))
    for name in ("tenant", "feature"):
        if not _NAME.match(getattr(event, name)):
            problems.append((name, "must be 1-200 characters of letters, digits and ._:/@-"))
    if event.timestamp_ns <= 0:
        problems.append(("timestamp_ns", "must be a positive Unix time in nanoseconds"))
    elif event.timestamp_ns > now_ns + int(config.max_future_seconds * 1e9):
        problems.append(
            (
                "timestamp_ns",
                f"lies more than {config.max_future_seconds:.0f} s ahead of the gateway's clock",
            )
        )
    if not math.isfinite(event.quantity) or event.quantity < 0:
        problems.append(("quantity", "must be a finite number >= 0"))
    if event.unit and not _UNIT.match(event.unit):
        problems.append(("unit", "must be 1-32 characters of letters, digits and _./-"))
    for name in ("subject", "decision_id", "source"):
        if len(getattr(event, name)) > MAX_TEXT:
            problems.append((name, f"must be at most {MAX_TEXT} characters"))
    attributes = event.attributes_json
    if len(attributes) > config.max_attributes_bytes:
        problems.append(("attributes_json", f"must be at most {config.max_attributes_bytes} bytes"))
    elif attributes:
        try:
            doc = json.loads(attributes)
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            problems.append(("attributes_json", "must be a UTF-8 JSON object"))
    return problems


def _check_quota(soft: float, hard: float, unit: str) -> None:
    if not (math.isfinite(soft) and math.isfinite(hard)) or soft < 0 or hard < 0:
        raise InvalidUsageRequestError("soft and hard limits must be finite numbers >= 0")
    if soft > hard:
        raise InvalidUsageRequestError(
            f"the soft limit ({soft:g}) must not exceed the hard limit ({hard:g})"
        )
    if not _UNIT.match(unit):
        raise InvalidUsageRequestError("unit must be 1-32 characters of letters, digits and _./-")


# --- the store ---------------------------------------------------------------------------


class UsageStore:
    """Usage events and quotas in one SQLite database."""

    def __init__(self, config: UsageConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        try:
            config.db_path.parent.mkdir(parents=True, exist_ok=True)
            # Any executor thread may call in; the lock, not the thread, owns the connection.
            conn = sqlite3.connect(str(config.db_path), check_same_thread=False)
            self._db = sqlite_utils.Database(conn)
        except (OSError, sqlite3.Error) as exc:
            raise UsageStoreError(f"cannot open the usage store {config.db_path}: {exc}") from exc
        try:
            self._db.enable_wal()
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            with self._db.conn:
                self._create_tables()
        except sqlite3.Error as exc:
            self._db.close()
            raise UsageStoreError(f"cannot open the usage store {config.db_path}: {exc}") from exc

    def _create_tables(self) -> None:
        self._db.table("usage_events").create(
            {
                "event_id": str,
                "timestamp_ns": int,
                "tenant": str,
                "feature": str,
                "subject": str,
                "allowed": int,
                "decision_id": str,
                "quantity": float,
                "unit": str,
                "source": str,
                "attributes_json": str,
                "received_ns": int,
            },
            pk="event_id",
            not_null=["timestamp_ns", "tenant", "feature", "allowed", "quantity", "unit"],
            if_not_exists=True,
        )
        self._db.table("usage_events").create_index(
            ["tenant", "feature", "timestamp_ns"], if_not_exists=True
        )
        self._db.table("quotas").create(
            {
                "tenant": str,
                "feature": str,
                "soft_limit": float,
                "hard_limit": float,
                "unit": str,
                "updated_at_ns": int,
                "updated_by": str,
            },
            pk=("tenant", "feature"),
            not_null=["soft_limit", "hard_limit", "unit", "updated_at_ns", "updated_by"],
            if_not_exists=True,
        )

    @contextlib.contextmanager
    def _session(self, *, write: bool = False) -> Iterator[sqlite_utils.Database]:
        """The database under the lock (in one transaction when ``write``)."""
        with self._lock:
            if self._closed:
                raise UsageStoreError("the usage store is closed")
            try:
                if write:
                    with self._db.conn:
                        yield self._db
                else:
                    yield self._db
            except sqlite3.Error as exc:
                raise UsageStoreError(f"usage store: {exc}") from exc

    # --- events -------------------------------------------------------------------------

    def report(self, events: Sequence[usage_pb2.UsageEvent]) -> ReportResult:
        """Validate each event, store the valid ones (once per id), acknowledge them.

        Raises :class:`InvalidUsageRequestError` for a batch larger than ``max_batch`` (then
        nothing is stored) and :class:`UsageStoreError` when the database fails (then
        nothing is acknowledged).
        """
        if len(events) > self.config.max_batch:
            raise InvalidUsageRequestError(
                f"a batch holds at most {self.config.max_batch} events, this one {len(events)}"
            )
        now_ns = int(self._clock() * 1e9)
        problems: list[EventProblem] = []
        rows: list[tuple[object, ...]] = []
        acknowledged: dict[str, None] = {}
        for index, event in enumerate(events):
            found = _event_problems(event, self.config, now_ns)
            if found:
                problems.extend(
                    EventProblem(index, event.event_id[:128], f"events[{index}].{name}", why)
                    for name, why in found
                )
                continue
            acknowledged[event.event_id] = None
            rows.append(
                (
                    event.event_id,
                    event.timestamp_ns,
                    event.tenant,
                    event.feature,
                    event.subject,
                    int(event.allowed),
                    event.decision_id,
                    event.quantity,
                    event.unit or DEFAULT_UNIT,
                    event.source,
                    event.attributes_json.decode() if event.attributes_json else "{}",
                    now_ns,
                )
            )
        stored = 0
        if rows:
            with self._session(write=True) as db:
                before = db.conn.total_changes
                db.conn.executemany(
                    "INSERT OR IGNORE INTO usage_events (event_id, timestamp_ns, tenant,"
                    " feature, subject, allowed, decision_id, quantity, unit, source,"
                    " attributes_json, received_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                stored = db.conn.total_changes - before
        return ReportResult(tuple(acknowledged), stored, tuple(problems))

    def event_count(self) -> int:
        """How many events are stored."""
        with self._session() as db:
            return int(db.execute("SELECT count(*) FROM usage_events").fetchone()[0])

    def counts(
        self,
        *,
        tenant: str = "",
        feature: str = "",
        since_ns: int = 0,
        until_ns: int = 0,
    ) -> list[UsageCount]:
        """Events per tenant, feature and unit with ``since_ns <= timestamp < until_ns``.

        Empty ``tenant``/``feature`` and zero bounds leave that filter open. Rows come
        sorted by tenant, feature and unit.
        """
        if since_ns < 0 or until_ns < 0 or (until_ns and since_ns >= until_ns):
            raise InvalidUsageRequestError("need 0 <= since_ns < until_ns (0 leaves an end open)")
        where, params = ["1 = 1"], []
        for column, value in (("tenant", tenant), ("feature", feature)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if since_ns:
            where.append("timestamp_ns >= ?")
            params.append(since_ns)
        if until_ns:
            where.append("timestamp_ns < ?")
            params.append(until_ns)
        sql = (
            "SELECT tenant, feature, unit, count(*), sum(allowed),"
            " coalesce(sum(CASE WHEN allowed THEN quantity ELSE 0 END), 0)"
            f" FROM usage_events WHERE {' AND '.join(where)}"
            " GROUP BY tenant, feature, unit ORDER BY tenant, feature, unit"
        )
        with self._session() as db:
            rows = db.execute(sql, params).fetchall()
        return [
            UsageCount(t, f, u, int(n), int(ok), int(n) - int(ok), float(q))
            for t, f, u, n, ok, q in rows
        ]

    # --- quotas -------------------------------------------------------------------------

    def set_quota(
        self,
        tenant: str,
        feature: str,
        soft_limit: float,
        hard_limit: float,
        *,
        unit: str = DEFAULT_UNIT,
        updated_by: str,
    ) -> Quota:
        """Create or replace the quota of ``tenant`` for ``feature``; return it."""
        check_name(tenant, "tenant")
        check_name(feature, "feature")
        unit = unit or DEFAULT_UNIT
        _check_quota(soft_limit, hard_limit, unit)
        quota = Quota(
            tenant,
            feature,
            float(soft_limit),
            float(hard_limit),
            unit,
            int(self._clock() * 1e9),
            updated_by,
        )
        with self._session(write=True) as db:
            db.table("quotas").upsert(asdict(quota), pk=("tenant", "feature"))
        return quota

    def get_quota(self, tenant: str, feature: str) -> Quota | None:
        """The quota of ``tenant`` for ``feature``, or None when none is set."""
        with self._session() as db:
            rows = list(
                db.table("quotas").rows_where("tenant = ? AND feature = ?", [tenant, feature])
            )
        return Quota(**rows[0]) if rows else None

    def quota_count(self) -> int:
        """How many quotas are set."""
        with self._session() as db:
            return int(db.execute("SELECT count(*) FROM quotas").fetchone()[0])

    # --- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the database; idempotent. Later calls raise :class:`UsageStoreError`."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> UsageStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
