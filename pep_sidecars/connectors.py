"""Data connectors, registered by name, and the enforcement point in front of them.

A connector serves named, labelled **datasets** from one source. Its lifecycle is
explicit and the same for every kind:

1. ``validate(options)`` (class method): check and normalise the configuration, raising
   :class:`ConnectorConfigError` before anything is opened;
2. ``await open()``: connect (files, sessions);
3. ``await datasets()`` / ``describe(name)`` / ``read(name, limit)`` / ``query(name, q)``;
4. ``await close()``: idempotent.

Kinds register with :func:`register_connector` and are built from a :class:`ConnectorSpec`
by :func:`create_connector`. Two ship here:

* ``sqlite``: tables and views of a SQLite file, opened read-only. Labels come from a
  catalog table (``council_catalog(dataset, labels, description)``; labels as a JSON array
  or comma-separated) and from the configuration; both apply. Queries are built from
  validated identifiers and bound parameters, never from caller text, and stop at a
  deadline. Blocking SQLite calls run on the connector's own thread.
* ``http``: JSON endpoints fetched with aiohttp; each dataset is a URL with its labels. A
  response must be JSON no larger than ``max_bytes``; the records are a list of objects
  (optionally found under a dotted ``records`` path). Queries filter, project and order
  the fetched records locally.

:class:`ConnectorPEP` asks the PDP (``council/connector/decision``) before every read or
query, with the dataset's labels (looked up afresh, so a relabelled table is judged by its
new labels), the operation and the caller. A denial raises :class:`AccessDeniedError`,
carrying the policy's reasons and the decision id. Obligations are honoured or the request
is refused: ``max_rows`` caps the rows returned, ``cache_ttl_seconds`` is the PDP client's.
Each decision becomes a usage event (feature ``connector:<kind>``).

Thread safety: one connector and one PEP per event loop.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import json
import math
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
import yaml

from pep_sidecars.pdp_client import PDPClient, PDPDecision, PDPUnavailable
from pep_sidecars.usage import UsageReporter

__all__ = [
    "DEFAULT_LIMIT",
    "ENTRYPOINT",
    "HONOURED_OBLIGATIONS",
    "MAX_LIMIT",
    "OPERATIONS",
    "AccessDeniedError",
    "Caller",
    "Condition",
    "Connector",
    "ConnectorConfigError",
    "ConnectorError",
    "ConnectorPEP",
    "ConnectorSpec",
    "ConnectorStateError",
    "Dataset",
    "DatasetNotFoundError",
    "DecisionUnavailableError",
    "HTTPConnector",
    "InvalidQueryError",
    "ObligationError",
    "Query",
    "ReadResult",
    "SQLiteConnector",
    "UpstreamError",
    "connector_kinds",
    "create_connector",
    "load_specs",
    "register_connector",
]

ENTRYPOINT = "council/connector/decision"
OPERATIONS = ("read", "query")
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
HONOURED_OBLIGATIONS = frozenset({"max_rows", "cache_ttl_seconds"})
DEFAULT_SQLITE_TIMEOUT = 5.0
DEFAULT_HTTP_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
CATALOG_TABLE = "council_catalog"
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=", "like")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_LABEL = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
_SQL_OPS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "like": "LIKE"}

T = TypeVar("T")
C = TypeVar("C", bound="type[Connector]")


# --- errors -------------------------------------------------------------------------------


class ConnectorError(Exception):
    """Base class of every connector and connector-PEP error; ``code`` is stable."""

    code = "connector_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConnectorConfigError(ConnectorError):
    """A connector's configuration is invalid (unknown kind, missing or bad option)."""

    code = "invalid_config"


class ConnectorStateError(ConnectorError):
    """A connector was used before ``open()`` or after ``close()``."""

    code = "not_open"


class DatasetNotFoundError(ConnectorError):
    """No connector serves a dataset of that name."""

    code = "dataset_not_found"


class InvalidQueryError(ConnectorError):
    """A query or read request is malformed (unknown column, bad operator, bad limit)."""

    code = "invalid_query"


class UpstreamError(ConnectorError):
    """The data source failed: SQLite error or deadline, HTTP error status, bad JSON."""

    code = "upstream_error"


class DecisionUnavailableError(ConnectorError):
    """The PDP could not be asked; nothing is read (fail closed)."""

    code = "pdp_unavailable"


class ObligationError(ConnectorError):
    """The policy allowed the request on a condition this PEP cannot honour; refused."""

    code = "obligation_unsupported"


class AccessDeniedError(ConnectorError):
    """The policy denied the operation; ``reasons`` explain, ``decision_id`` finds the log."""

    code = "access_denied"

    def __init__(self, dataset: str, operation: str, decision: PDPDecision) -> None:
        reasons = decision.reasons or ("the policy gave no reason",)
        super().__init__(
            f"{operation} on dataset '{dataset}' denied (decision {decision.decision_id}): "
            + "; ".join(reasons)
        )
        self.dataset = dataset
        self.operation = operation
        self.reasons = reasons
        self.decision_id = decision.decision_id
        self.decision = decision


# --- values --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A dataset as the policy sees it."""

    name: str
    labels: tuple[str, ...]
    connector: str
    kind: str
    tenant: str = ""
    description: str = ""

    def policy_input(self) -> dict[str, Any]:
        """The ``input.dataset`` document."""
        return {
            "name": self.name,
            "labels": list(self.labels),
            "connector": self.connector,
            "kind": self.kind,
            "tenant": self.tenant,
        }


@dataclass(frozen=True)
class Caller:
    """Who asks, from a verified token (``verified`` false for anything else)."""

    subject: str
    tenant: str
    scopes: frozenset[str]
    verified: bool
    token_id: str = ""

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], *, verified: bool) -> Caller:
        """A caller from access-token claims (``sub``, ``tenant``, ``scope``, ``jti``)."""
        return cls(
            subject=str(claims.get("sub", "")),
            tenant=str(claims.get("tenant", "")),
            scopes=frozenset(str(claims.get("scope", "")).split()),
            verified=verified,
            token_id=str(claims.get("jti", "")),
        )

    def policy_input(self) -> dict[str, Any]:
        """The ``input.subject`` document."""
        return {
            "id": self.subject,
            "tenant": self.tenant,
            "scopes": sorted(self.scopes),
            "verified": self.verified,
        }


@dataclass(frozen=True)
class Condition:
    """``column <op> value``; ``op`` is one of :data:`COMPARISONS`."""

    column: str
    op: str
    value: str | int | float | bool | None

    def __post_init__(self) -> None:
        if self.op not in COMPARISONS:
            raise InvalidQueryError(f"operator {self.op!r} is not one of {', '.join(COMPARISONS)}")
        if isinstance(self.value, float) and not math.isfinite(self.value):
            raise InvalidQueryError("values must be finite numbers")
        if self.op == "like" and not isinstance(self.value, str):
            raise InvalidQueryError("'like' compares with a string pattern")


def _check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidQueryError(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return limit


@dataclass(frozen=True)
class Query:
    """A structured query over one dataset: no caller text reaches a query language.

    Attributes:
        columns: columns to return (empty: all).
        where: conditions, all of which must hold.
        order_by: (column, descending) pairs.
        limit: most rows returned (the policy's ``max_rows`` may lower it).
    """

    columns: tuple[str, ...] = ()
    where: tuple[Condition, ...] = ()
    order_by: tuple[tuple[str, bool], ...] = ()
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        _check_limit(self.limit)

    @classmethod
    def from_json(cls, doc: Any) -> Query:
        """Parse ``{"columns": [...], "where": {col: value | {"op", "value"}} | [...],
        "order_by": ["col", "-col"], "limit": n}``; :class:`InvalidQueryError` if malformed."""
        if not isinstance(doc, dict):
            raise InvalidQueryError("a query is a JSON object")
        unknown = set(doc) - {"columns", "where", "order_by", "limit"}
        if unknown:
            raise InvalidQueryError(f"unknown query member(s): {', '.join(sorted(unknown))}")
        columns = doc.get("columns", [])
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InvalidQueryError("columns must be a list of column names")
        order = doc.get("order_by", [])
        if not isinstance(order, list) or not all(isinstance(c, str) and c for c in order):
            raise InvalidQueryError("order_by must be a list of column names ('-col': descending)")
        return cls(
            columns=tuple(columns),
            where=_conditions(doc.get("where", {})),
            order_by=tuple((c.lstrip("-"), c.startswith("-")) for c in order),
            limit=doc.get("limit", DEFAULT_LIMIT),
        )

    def with_limit(self, limit: int) -> Query:
        """The same query with another limit."""
        return Query(self.columns, self.where, self.order_by, limit)


def _scalar(value: Any, column: str) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise InvalidQueryError(f"the value for {column!r} must be a string, number, boolean or null")


def _conditions(where: Any) -> tuple[Condition, ...]:
    items: list[tuple[str, Any]]
    if isinstance(where, dict):
        items = list(where.items())
    elif isinstance(where, list):
        items = []
        for entry in where:
            if not isinstance(entry, dict) or not isinstance(entry.get("column"), str):
                raise InvalidQueryError("where entries are {column, op, value} objects")
            items.append((entry["column"], entry))
    else:
        raise InvalidQueryError("where must be an object or a list of conditions")
    conditions = []
    for column, spec in items:
        if isinstance(spec, dict):
            op, value = spec.get("op", "="), spec.get("value")
        else:
            op, value = "=", spec
        if not isinstance(op, str):
            raise InvalidQueryError("op must be a string")
        conditions.append(Condition(column, op, _scalar(value, column)))
    return tuple(conditions)


@dataclass(frozen=True)
class ReadResult:
    """Rows of one dataset (``decision_id``: the decision that let them out, set by the PEP)."""

    dataset: str
    columns: tuple[str, ...]
    records: list[dict[str, Any]]
    truncated: bool
    decision_id: str = ""

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON-ready document."""
        return {
            "dataset": self.dataset,
            "columns": list(self.columns),
            "records": self.records,
            "count": len(self.records),
            "truncated": self.truncated,
            "decision_id": self.decision_id,
        }


# --- configuration and registry --------------------------------------------------------


@dataclass(frozen=True)
class ConnectorSpec:
    """One configured connector.

    Attributes:
        name: the connector's name (letters, digits, ``_.-``).
        kind: a registered kind (``sqlite``, ``http``).
        tenant: the tenant owning its datasets ("" for none; the policy then skips the check).
        options: kind-specific options, checked by the kind's ``validate``.
    """

    name: str
    kind: str
    tenant: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConnectorConfigError(f"connector name {self.name!r} is not a valid name")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


_REGISTRY: dict[str, type[Connector]] = {}


def register_connector(cls: C) -> C:
    """Class decorator registering a :class:`Connector` subclass under its ``kind``."""
    if not cls.kind or cls.kind in _REGISTRY:
        raise ValueError(f"connector kind {cls.kind!r} is empty or already registered")
    _REGISTRY[cls.kind] = cls
    return cls


def connector_kinds() -> tuple[str, ...]:
    """The registered kinds."""
    return tuple(sorted(_REGISTRY))


def create_connector(spec: ConnectorSpec) -> Connector:
    """Validate ``spec`` and build its (unopened) connector."""
    cls = _REGISTRY.get(spec.kind)
    if cls is None:
        raise ConnectorConfigError(
            f"connector {spec.name!r}: unknown kind {spec.kind!r}"
            f" (known: {', '.join(connector_kinds())})"
        )
    return cls(spec.name, spec.tenant, cls.validate(spec.name, spec.options))


def load_specs(path: Path) -> tuple[ConnectorSpec, ...]:
    """Connector specs from a JSON or YAML file: ``{"connectors": [{name, kind, tenant,
    options}]}``; relative paths in options stay relative to the file's folder."""
    try:
        text = path.read_text()
        doc = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConnectorConfigError(f"cannot read connector config {path}: {exc}") from exc
    entries = doc.get("connectors") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConnectorConfigError(f"{path}: expected {{'connectors': [...]}} with at least one")
    specs = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) - {"name", "kind", "tenant", "options"}:
            raise ConnectorConfigError(f"{path}: each connector is {{name, kind, tenant, options}}")
        options = dict(entry.get("options") or {})
        options.setdefault("base_dir", str(path.parent))
        specs.append(
            ConnectorSpec(
                name=str(entry.get("name", "")),
                kind=str(entry.get("kind", "")),
                tenant=str(entry.get("tenant", "")),
                options=options,
            )
        )
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConnectorConfigError(f"{path}: connector names must be unique")
    return tuple(specs)


def _labels(value: Any, where: str) -> tuple[str, ...]:
    """Labels from a list or a JSON/comma-separated string, validated and deduplicated."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ConnectorConfigError(f"{where}: labels are not a JSON list") from exc
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConnectorConfigError(f"{where}: labels must be a list of strings")
    bad = [v for v in value if not _LABEL.match(v)]
    if bad:
        raise ConnectorConfigError(f"{where}: malformed label(s) {', '.join(map(repr, bad))}")
    return tuple(sorted(set(value)))


def _positive(options: Mapping[str, Any], key: str, default: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConnectorConfigError(f"option {key!r} must be a positive number")
    return float(value)


def _label_map(options: Mapping[str, Any], where: str) -> dict[str, tuple[str, ...]]:
    raw = options.get("labels", {})
    if not isinstance(raw, dict):
        raise ConnectorConfigError(f"{where}: 'labels' maps dataset names to label lists")
    return {
        str(name): _labels(labels, f"{where} labels of {name!r}") for name, labels in raw.items()
    }


# --- the interface --------------------------------------------------------------------------


class Connector(abc.ABC):
    """A source of named datasets. See the module docstring for the lifecycle."""

    kind: ClassVar[str] = ""

    def __init__(self, name: str, tenant: str, options: Mapping[str, Any]) -> None:
        self.name = name
        self.tenant = tenant
        self.options = options

    @classmethod
    @abc.abstractmethod
    def validate(cls, name: str, options: Mapping[str, Any]) -> Mapping[str, Any]:
        """Checked, normalised options; :class:`ConnectorConfigError` when invalid."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect to the source."""

    @abc.abstractmethod
    async def datasets(self) -> dict[str, Dataset]:
        """Every dataset this connector serves, by name."""

    @abc.abstractmethod
    async def describe(self, name: str) -> Dataset:
        """One dataset with its current labels; :class:`DatasetNotFoundError` if none."""

    @abc.abstractmethod
    async def read(self, name: str, *, limit: int) -> ReadResult:
        """Up to ``limit`` rows of a dataset."""

    @abc.abstractmethod
    async def query(self, name: str, query: Query) -> ReadResult:
        """The rows of a dataset matching ``query``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the source. Idempotent."""

    def _dataset(self, name: str, labels: Iterable[str], description: str = "") -> Dataset:
        return Dataset(
            name, tuple(sorted(set(labels))), self.name, self.kind, self.tenant, description
        )


# --- SQLite ----------------------------------------------------------------------------


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@register_connector
class SQLiteConnector(Connector):
    """Tables and views of a SQLite file, read-only.

    Options:
        path: the database file (relative to the config file's folder).
        catalog: table holding ``(dataset, labels, description)`` (default
            ``council_catalog``; absent tables contribute nothing). Never served itself.
        labels: dataset name → labels, added to the catalog's.
        timeout: seconds a statement may run before it is interrupted.
    """

    kind = "sqlite"

    def __init__(self, name: str, tenant: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, tenant, options)
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    @classmethod
    def validate(cls, name: str, options: Mapping[str, Any]) -> Mapping[str, Any]:
        where = f"sqlite connector {name!r}"
        unknown = set(options) - {"path", "catalog", "labels", "timeout", "base_dir"}
        if unknown:
            raise ConnectorConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
        raw = options.get("path")
        if not isinstance(raw, str) or not raw:
            raise ConnectorConfigError(f"{where}: option 'path' (the database file) is required")
        path = Path(options.get("base_dir", ".")) / raw
        if not path.is_file():
            raise ConnectorConfigError(f"{where}: no database file at {path}")
        catalog = options.get("catalog", CATALOG_TABLE)
        if not isinstance(catalog, str) or not catalog:
            raise ConnectorConfigError(f"{where}: 'catalog' must be a table name")
        return {
            "path": path,
            "catalog": catalog,
            "labels": _label_map(options, where),
            "timeout": _positive(options, "timeout", DEFAULT_SQLITE_TIMEOUT),
        }

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None or self._db is None:
            raise ConnectorStateError(f"connector {self.name!r} is not open")
        db = self._db
        deadline = time.monotonic() + self.options["timeout"]

        def call() -> T:
            # Interrupts a statement running past the deadline (SQLITE_INTERRUPT).
            db.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
            try:
                return fn(db)
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise UpstreamError(
                        f"connector {self.name!r}: statement ran longer than"
                        f" {self.options['timeout']} s"
                    ) from exc
                raise UpstreamError(f"connector {self.name!r}: {exc}") from exc
            except sqlite3.Error as exc:
                raise UpstreamError(f"connector {self.name!r}: {exc}") from exc
            finally:
                db.set_progress_handler(None, 0)

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def open(self) -> None:
        if self._db is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{self.name}")
        uri = f"file:{quote(str(self.options['path']))}?mode=ro"

        def connect() -> sqlite3.Connection:
            db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            db.execute("PRAGMA query_only = 1")
            db.row_factory = sqlite3.Row
            return db

        try:
            self._db = await asyncio.get_running_loop().run_in_executor(executor, connect)
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise UpstreamError(f"connector {self.name!r}: cannot open database: {exc}") from exc
        self._executor = executor

    def _catalog(self, db: sqlite3.Connection) -> dict[str, tuple[tuple[str, ...], str]]:
        table = self.options["catalog"]
        exists = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?", (table,)
        ).fetchone()
        if not exists:
            return {}
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({_quote(table)})")}
        describe = "description" if "description" in columns else "''"
        rows = db.execute(f"SELECT dataset, labels, {describe} FROM {_quote(table)}")
        catalog: dict[str, tuple[tuple[str, ...], str]] = {}
        for dataset, labels, description in rows:
            try:
                parsed = _labels(labels or "", f"catalog row {dataset!r}")
            except ConnectorConfigError as exc:
                # A broken catalog row must not make its dataset look unlabelled (and so
                # merely "needs labels"): refuse to serve it at all.
                raise UpstreamError(f"connector {self.name!r}: {exc.message}") from exc
            catalog[str(dataset)] = (parsed, str(description or ""))
        return catalog

    def _list(self, db: sqlite3.Connection) -> dict[str, Dataset]:
        catalog = self._catalog(db)
        names = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
                " AND name NOT LIKE 'sqlite_%' AND name != ? ORDER BY name",
                (self.options["catalog"],),
            )
        ]
        found = {}
        for name in names:
            labels, description = catalog.get(name, ((), ""))
            extra = self.options["labels"].get(name, ())
            found[name] = self._dataset(name, (*labels, *extra), description)
        return found

    async def datasets(self) -> dict[str, Dataset]:
        return await self._run(self._list)

    async def describe(self, name: str) -> Dataset:
        found = (await self.datasets()).get(name)
        if found is None:
            raise DatasetNotFoundError(f"connector {self.name!r} has no dataset {name!r}")
        return found

    def _columns(self, db: sqlite3.Connection, name: str) -> list[str]:
        return [row[1] for row in db.execute(f"PRAGMA table_xinfo({_quote(name)})")]

    def _select(
        self,
        db: sqlite3.Connection,
        name: str,
        query: Query,
    ) -> ReadResult:
        if name not in self._list(db):
            # Re-checked on the connector's thread: only a listed dataset ever reaches SQL.
            raise DatasetNotFoundError(f"connector {self.name!r} has no dataset {name!r}")
        available = self._columns(db, name)
        wanted = [*query.columns, *(c.column for c in query.where), *(c for c, _ in query.order_by)]
        missing = sorted({c for c in wanted if c not in available})
        if missing:
            raise InvalidQueryError(
                f"dataset {name!r} has no column(s) {', '.join(missing)}"
                f" (columns: {', '.join(available)})"
            )
        projection = ", ".join(_quote(c) for c in query.columns) if query.columns else "*"
        sql = f"SELECT {projection} FROM {_quote(name)}"
        params: list[Any] = []
        clauses = []
        for cond in query.where:
            if cond.value is None and cond.op in ("=", "!="):
                clauses.append(f"{_quote(cond.column)} IS {'NOT ' if cond.op == '!=' else ''}NULL")
                continue
            clauses.append(f"{_quote(cond.column)} {_SQL_OPS[cond.op]} ?")
            params.append(cond.value)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if query.order_by:
            sql += " ORDER BY " + ", ".join(
                f"{_quote(c)}{' DESC' if desc else ''}" for c, desc in query.order_by
            )
        sql += " LIMIT ?"
        params.append(query.limit + 1)  # one more than asked tells whether there is more
        cursor = db.execute(sql, params)
        columns = tuple(d[0] for d in cursor.description)
        rows = cursor.fetchall()
        records = [
            {k: _json_value(row[k]) for k in row.keys()}  # noqa: SIM118 (sqlite3.Row)
            for row in rows[: query.limit]
        ]
        return ReadResult(name, columns, records, len(rows) > query.limit)

    async def read(self, name: str, *, limit: int) -> ReadResult:
        query = Query(limit=limit)
        return await self._run(lambda db: self._select(db, name, query))

    async def query(self, name: str, query: Query) -> ReadResult:
        return await self._run(lambda db: self._select(db, name, query))

    async def close(self) -> None:
        db, executor = self._db, self._executor
        self._db = self._executor = None
        if executor is None:
            return
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(executor, db.close)
        executor.shutdown(wait=True)


# --- HTTP ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Endpoint:
    url: str
    labels: tuple[str, ...]
    records: tuple[str, ...]
    description: str


def _like(pattern: str) -> re.Pattern[str]:
    """SQL LIKE (``%``, ``_``; case-insensitive as SQLite's for ASCII) as a regex."""
    parts = (".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _matches(record: Mapping[str, Any], cond: Condition) -> bool:
    value = record.get(cond.column)
    if cond.op == "like":
        return isinstance(value, str) and bool(_like(str(cond.value)).fullmatch(value))
    if cond.op == "=":
        return value == cond.value
    if cond.op == "!=":
        return value != cond.value
    if (
        value is None
        or cond.value is None
        or isinstance(value, bool) != isinstance(cond.value, bool)
    ):
        return False
    try:
        if cond.op == "<":
            return bool(value < cond.value)
        if cond.op == "<=":
            return bool(value <= cond.value)
        if cond.op == ">":
            return bool(value > cond.value)
        return bool(value >= cond.value)
    except TypeError:
        return False  # a string compared with a number matches nothing, as in a filter


def _sort_key(value: Any) -> tuple[int, Any]:
    # Nulls first, then numbers, then strings, then anything else by its JSON text.
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True))


@register_connector
class HTTPConnector(Connector):
    """JSON endpoints over HTTP(S), one dataset per URL.

    Options:
        base_url: joined with relative dataset URLs.
        datasets: name → ``{url, labels, records, description}``; ``records`` is a dotted
            path to the list inside the response (default: the response itself).
        headers: sent with every request (e.g. an upstream API key).
        timeout: seconds per fetch; max_bytes: largest response accepted.
    """

    kind = "http"

    def __init__(self, name: str, tenant: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, tenant, options)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def validate(cls, name: str, options: Mapping[str, Any]) -> Mapping[str, Any]:
        where = f"http connector {name!r}"
        known = {"base_url", "datasets", "headers", "timeout", "max_bytes", "labels", "base_dir"}
        unknown = set(options) - known
        if unknown:
            raise ConnectorConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
        base = options.get("base_url", "")
        if not isinstance(base, str):
            raise ConnectorConfigError(f"{where}: base_url must be a string")
        raw = options.get("datasets")
        if not isinstance(raw, dict) or not raw:
            raise ConnectorConfigError(f"{where}: 'datasets' maps names to {{url, labels}}")
        extra = _label_map(options, where)
        endpoints = {}
        for ds_name, spec in raw.items():
            if not _NAME.match(str(ds_name)):
                raise ConnectorConfigError(f"{where}: dataset name {ds_name!r} is not valid")
            if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
                raise ConnectorConfigError(f"{where}: dataset {ds_name!r} needs a 'url'")
            url = urljoin(base, spec["url"]) if base else spec["url"]
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConnectorConfigError(f"{where}: {url!r} is not an absolute http(s) URL")
            records = spec.get("records", "")
            if not isinstance(records, str):
                raise ConnectorConfigError(f"{where}: 'records' is a dotted path")
            labels = _labels(spec.get("labels", []), f"{where} dataset {ds_name!r}")
            endpoints[str(ds_name)] = _Endpoint(
                url,
                tuple(sorted({*labels, *extra.get(str(ds_name), ())})),
                tuple(p for p in records.split(".") if p),
                str(spec.get("description", "")),
            )
        headers = options.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ConnectorConfigError(f"{where}: headers must map strings to strings")
        max_bytes = options.get("max_bytes", DEFAULT_MAX_BYTES)
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ConnectorConfigError(f"{where}: max_bytes must be a positive integer")
        return {
            "datasets": MappingProxyType(endpoints),
            "headers": MappingProxyType(dict(headers)),
            "timeout": _positive(options, "timeout", DEFAULT_HTTP_TIMEOUT),
            "max_bytes": max_bytes,
        }

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.options["timeout"]),
                headers=dict(self.options["headers"]),
            )

    async def datasets(self) -> dict[str, Dataset]:
        return {
            name: self._dataset(name, ep.labels, ep.description)
            for name, ep in self.options["datasets"].items()
        }

    async def describe(self, name: str) -> Dataset:
        found = (await self.datasets()).get(name)
        if found is None:
            raise DatasetNotFoundError(f"connector {self.name!r} has no dataset {name!r}")
        return found

    async def _fetch(self, name: str) -> list[dict[str, Any]]:
        if self._session is None:
            raise ConnectorStateError(f"connector {self.name!r} is not open")
        endpoint = self.options["datasets"].get(name)
        if endpoint is None:
            raise DatasetNotFoundError(f"connector {self.name!r} has no dataset {name!r}")
        limit = self.options["max_bytes"]
        try:
            async with self._session.get(endpoint.url, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise UpstreamError(
                        f"dataset {name!r}: {endpoint.url} answered {resp.status} {resp.reason}"
                    )
                body = bytearray()
                async for chunk in resp.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > limit:
                        raise UpstreamError(f"dataset {name!r}: response larger than {limit} bytes")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(
                f"dataset {name!r}: {endpoint.url} unreachable ({type(exc).__name__}: {exc})"
            ) from exc
        try:
            doc: Any = json.loads(body)
        except ValueError as exc:
            raise UpstreamError(f"dataset {name!r}: the response is not JSON ({exc})") from exc
        for step in endpoint.records:
            if not isinstance(doc, dict) or step not in doc:
                raise UpstreamError(
                    f"dataset {name!r}: no {'.'.join(endpoint.records)!r} in the response"
                )
            doc = doc[step]
        if isinstance(doc, dict):
            doc = [doc]
        if not isinstance(doc, list):
            raise UpstreamError(f"dataset {name!r}: the response holds no list of records")
        return [item if isinstance(item, dict) else {"value": item} for item in doc]

    @staticmethod
    def _result(
        name: str, records: list[dict[str, Any]], limit: int, columns: Sequence[str]
    ) -> ReadResult:
        kept = records[:limit]
        if columns:
            kept = [{c: r.get(c) for c in columns} for r in kept]
        names: dict[str, None] = dict.fromkeys(columns)
        for record in kept:
            names.update(dict.fromkeys(record))
        return ReadResult(name, tuple(names), kept, len(records) > limit)

    async def read(self, name: str, *, limit: int) -> ReadResult:
        return self._result(name, await self._fetch(name), limit, ())

    async def query(self, name: str, query: Query) -> ReadResult:
        records = [r for r in await self._fetch(name) if all(_matches(r, c) for c in query.where)]
        for column, descending in reversed(query.order_by):
            records.sort(key=lambda r, c=column: _sort_key(r.get(c)), reverse=descending)
        return self._result(name, records, query.limit, query.columns)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


# --- the enforcement point --------------------------------------------------------------


class ConnectorPEP:
    """Asks the PDP before every operation on a connector's dataset; see the module docstring.

    Lifecycle: ``await open()`` opens every connector and indexes dataset names (which must
    be unique across connectors); ``await close()`` closes them in reverse order. The PDP
    client and usage reporter belong to the caller.
    """

    def __init__(
        self,
        connectors: Iterable[Connector],
        pdp: PDPClient,
        *,
        usage: UsageReporter | None = None,
        entrypoint: str = ENTRYPOINT,
    ) -> None:
        self.connectors = tuple(connectors)
        names = [c.name for c in self.connectors]
        if len(set(names)) != len(names):
            raise ConnectorConfigError("connector names must be unique")
        self._pdp = pdp
        self._usage = usage
        self._entrypoint = entrypoint
        self._index: dict[str, Connector] = {}
        self._opened: list[Connector] = []

    async def open(self) -> None:
        """Open the connectors (closing those already open if one fails) and index them."""
        try:
            for connector in self.connectors:
                await connector.open()
                self._opened.append(connector)
            await self._reindex()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close every opened connector, last first. Idempotent."""
        while self._opened:
            connector = self._opened.pop()
            with contextlib.suppress(Exception):
                await connector.close()

    async def _reindex(self) -> None:
        index: dict[str, Connector] = {}
        for connector in self._opened:
            for name in await connector.datasets():
                other = index.get(name)
                if other is not None:
                    raise ConnectorConfigError(
                        f"dataset {name!r} is served by both {other.name!r} and {connector.name!r}"
                    )
                index[name] = connector
        self._index = index

    async def _locate(self, name: str) -> Connector:
        connector = self._index.get(name)
        if connector is None:
            # A table created since the last look is found on the next request.
            await self._reindex()
            connector = self._index.get(name)
        if connector is None:
            raise DatasetNotFoundError(f"no dataset named {name!r}")
        return connector

    async def datasets(self) -> list[Dataset]:
        """Every dataset of every connector, with its labels."""
        found: list[Dataset] = []
        for connector in self._opened:
            found.extend((await connector.datasets()).values())
        return sorted(found, key=lambda d: d.name)

    async def authorize(
        self, caller: Caller, name: str, operation: str
    ) -> tuple[Connector, Dataset, PDPDecision]:
        """Ask the PDP; return what the operation needs or raise the denial."""
        if operation not in OPERATIONS:
            raise InvalidQueryError(
                f"operation {operation!r} is not one of {', '.join(OPERATIONS)}"
            )
        connector = await self._locate(name)
        dataset = await connector.describe(name)
        input_doc = {
            "operation": operation,
            "dataset": dataset.policy_input(),
            "subject": caller.policy_input(),
        }
        try:
            decision = await self._pdp.decide(self._entrypoint, input_doc)
        except PDPUnavailable as exc:
            raise DecisionUnavailableError(
                f"{exc.message}; {operation} on dataset {name!r} refused without a decision"
            ) from exc
        if not decision.allow:
            self._record(caller, dataset, operation, decision, rows=None)
            raise AccessDeniedError(name, operation, decision)
        unknown = sorted(set(decision.obligations) - HONOURED_OBLIGATIONS)
        if unknown:
            raise ObligationError(
                f"the policy requires {', '.join(unknown)} for dataset {name!r}"
                f" (decision {decision.decision_id}), which this connector cannot honour"
            )
        return connector, dataset, decision

    @staticmethod
    def _cap(limit: int, decision: PDPDecision) -> int:
        cap = decision.obligations.get("max_rows")
        if cap is None:
            return limit
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            # Zero rows would be a denial in disguise; the policy should deny instead.
            raise ObligationError(
                f"obligation max_rows={cap!r} (decision {decision.decision_id})"
                " is not a positive row count"
            )
        return min(limit, cap)

    async def read(self, caller: Caller, name: str, *, limit: int = DEFAULT_LIMIT) -> ReadResult:
        """Read up to ``limit`` rows of a dataset, if the policy allows it."""
        _check_limit(limit)
        connector, dataset, decision = await self.authorize(caller, name, "read")
        capped = self._cap(limit, decision)
        return await self._run(
            caller, dataset, "read", decision, connector.read(name, limit=capped)
        )

    async def query(self, caller: Caller, name: str, query: Query) -> ReadResult:
        """Run a structured query on a dataset, if the policy allows it."""
        connector, dataset, decision = await self.authorize(caller, name, "query")
        capped = self._cap(query.limit, decision)
        return await self._run(
            caller, dataset, "query", decision, connector.query(name, query.with_limit(capped))
        )

    async def _run(
        self,
        caller: Caller,
        dataset: Dataset,
        operation: str,
        decision: PDPDecision,
        work: Awaitable[ReadResult],
    ) -> ReadResult:
        try:
            result = await work
        except ConnectorError:
            self._record(caller, dataset, operation, decision, rows=0, failed=True)
            raise
        self._record(caller, dataset, operation, decision, rows=len(result.records))
        return replace(result, decision_id=decision.decision_id)

    def _record(
        self,
        caller: Caller,
        dataset: Dataset,
        operation: str,
        decision: PDPDecision,
        *,
        rows: int | None,
        failed: bool = False,
    ) -> None:
        if self._usage is None:
            return
        attributes: dict[str, Any] = {
            "dataset": dataset.name,
            "connector": dataset.connector,
            "operation": operation,
        }
        if failed:
            attributes["failed"] = True
        self._usage.record(
            feature=f"connector:{dataset.kind}",
            tenant=caller.tenant,
            subject=caller.subject,
            allowed=decision.allow,
            decision_id=decision.decision_id,
            quantity=float(rows) if rows is not None else 1.0,
            unit="row" if rows is not None else "request",
            attributes=attributes,
        )
