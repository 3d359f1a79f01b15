"""The tamper-evident decision log: every decision, hash-chained in SQLite, with signed checkpoints.

:class:`DecisionLog` is a :class:`~pdp.service.DecisionSink`. ``record()`` only appends to an
in-memory queue; a background writer thread masks, encodes and hash-chains the decisions and
writes them in batches, one transaction per batch, to a SQLite database in WAL mode with
``synchronous=NORMAL``: a commit appends to the WAL without a disk sync, so the caller's hot
path never waits for the disk. A crash of the process loses nothing committed; a power loss
can lose the last transactions, but always a suffix, never a hole in the chain.

Tables
------
``decisions``: one row per decision, ``seq`` contiguous from 1. ``input`` is the request's
input JSON text: as received when nothing was erased, else the canonical encoding of the
masked document. ``result`` is the canonical encoding of ``{"allow", "reasons",
"obligations", "defined", "result"}`` (``result`` being the policy's full result).
``erased`` is the JSON list of the pointers actually erased; ``error`` says why the row was
stored fail-closed (the mask failed, the input could not be decoded), else NULL.

``checkpoints``: every ``checkpoint_every`` rows and at ``close()``, ``{idx, seq, hash,
row_count, timestamp_ns, key_id, signature}``; ``idx`` counts checkpoints from 1.

``meta``: ``format``, ``log_id`` (random, bound into every checkpoint signature),
``public_key`` (PEM) and ``key_id`` when the log is signed.

Canonical encoding
------------------
``canonical(v)`` is ``json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
allow_nan=False)`` as ASCII bytes: no whitespace, object keys sorted by code point, every
non-ASCII character escaped as ``\\uXXXX`` (lowercase hex, UTF-16 surrogate pairs), integers
in decimal, floats as the shortest repr that round-trips, NaN and infinities rejected.

Row hash: ``hash = sha256(canonical(row)).hexdigest()`` where ``row`` is the object of every
column except ``hash`` itself, with the stored values: ``seq``, ``decision_id``,
``timestamp_ns``, ``entrypoint``, ``revision``, ``request_id``, ``input``, ``result``,
``erased`` (these three as their JSON *text*, i.e. JSON strings), ``error`` (string or null),
``duration_ns`` and ``prev_hash``. ``prev_hash`` is the previous row's ``hash``; for seq 1 it
is 64 zeros. The hash thus covers the exact stored text, so a verifier needs no JSON parser
that agrees with this one.

Checkpoint signature: Ed25519 over ``canonical({"type": "council.decision-log.checkpoint/1",
"log_id", "idx", "seq", "hash", "row_count", "timestamp_ns", "key_id"})``, stored base64.
``key_id`` is the first 16 hex digits of SHA-256 over the raw 32-byte public key.

What verification proves
------------------------
:func:`verify` detects edited, deleted, inserted and reordered rows, forged or edited
checkpoints, deleted checkpoints, and a tail truncated before the last checkpoint. Deleting
the last checkpoints together with the rows after the checkpoint before them looks like a
log that was never written further: only copies of the checkpoints kept elsewhere catch it.
Verifying against the key stored in the log only proves internal consistency (someone with
write access can re-key and re-sign); pass the trusted public key to prove authorship.

Masking
-------
``mask(request, decision)`` returns JSON Pointers (RFC 6901, ``~1`` for ``/`` and ``~0`` for
``~``) as in OPA's ``system.log.mask``: ``/input/password``, ``/input/users/0/ssn``, or
``/input`` for the whole input; ``/result/...`` erases inside the policy's full result. Each
pointer removes the key, or the array element, it names (missing paths are ignored). Unlike
OPA, all pointers resolve against the original document, so erasing ``/input/a/0`` and
``/input/a/1`` removes the first two elements, not the first and third. When the mask
callable raises, returns something other than a list of strings, or names a root other than
``input`` or ``result``, the row is stored fail-closed: input, obligations and full result
erased, only ``allow``, ``reasons`` and ``defined`` kept, and the failure in ``error``.

Writers may share a file: each batch re-reads the tail inside an immediate (write-locked)
transaction, so two processes appending to one file still produce one valid chain.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

import sqlite_utils
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pdp.decision import Decision
from pdp.keyfile import KeyFileError, load_ed25519_key
from pdp.service import DecisionRequest

__all__ = [
    "GENESIS_HASH",
    "DecisionLog",
    "DecisionLogError",
    "MaskFunction",
    "VerifyReport",
    "canonical",
    "erase_paths",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "row_hash",
    "rows_after",
    "show",
    "tail",
    "verify",
]

FORMAT = "council-decision-log/1"
CHECKPOINT_TYPE = "council.decision-log.checkpoint/1"
GENESIS_HASH = "0" * 64

MaskFunction = Callable[[DecisionRequest, Decision], list[str]]

# Every column of ``decisions`` except ``hash``: exactly what the row hash covers.
_HASHED_COLUMNS = (
    "seq",
    "decision_id",
    "timestamp_ns",
    "entrypoint",
    "revision",
    "request_id",
    "input",
    "result",
    "erased",
    "error",
    "duration_ns",
    "prev_hash",
)
_SORTED_HASHED_COLUMNS = tuple(sorted(_HASHED_COLUMNS))
_COLUMNS = (*_HASHED_COLUMNS, "hash")
_INSERT_DECISION = (
    f"INSERT INTO decisions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_JSON_COLUMNS = ("input", "result", "erased")


class DecisionLogError(Exception):
    """The decision log cannot be opened, written or read."""


# --- encoding ---------------------------------------------------------------------------


# One encoder, reused: json.dumps with non-default options builds a new one per call.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)
_canonical_text = _ENCODER.encode
_encode_str = encode_basestring_ascii


def canonical(value: Any) -> bytes:
    """The canonical JSON encoding (see the module docstring) of ``value``."""
    return _ENCODER.encode(value).encode("ascii")


# The canonical object with a slot per hashed column, keys already in sorted order.
_HASH_TEMPLATE = "{" + ",".join(f'"{key}":%s' for key in _SORTED_HASHED_COLUMNS) + "}"


def row_hash(row: dict[str, Any]) -> str:
    """The chain hash of a ``decisions`` row (its ``hash`` column, if present, is ignored).

    Equal to ``sha256(canonical({k: row[k] for k in the hashed columns}))``, assembled by hand
    from the C string escaper: the columns are strings, integers and nulls, and a generic
    encode of the object costs several times as much on the writer's critical path.
    """
    text = _HASH_TEMPLATE % tuple(
        _encode_str(v)
        if type(v) is str
        else "null"
        if v is None
        else str(v)
        if type(v) is int
        else _canonical_text(v)
        for v in [row[key] for key in _SORTED_HASHED_COLUMNS]
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _checkpoint_payload(log_id: str, cp: dict[str, Any]) -> bytes:
    return canonical(
        {
            "type": CHECKPOINT_TYPE,
            "log_id": log_id,
            "idx": cp["idx"],
            "seq": cp["seq"],
            "hash": cp["hash"],
            "row_count": cp["row_count"],
            "timestamp_ns": cp["timestamp_ns"],
            "key_id": cp["key_id"],
        }
    )


# --- keys -------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """The short id of a public key: 16 hex digits of SHA-256 over its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_signing_key(path: str | Path, *, create: bool = True) -> Ed25519PrivateKey:
    """Load the Ed25519 signing key from a PEM file, generating it (mode 0600) if missing.

    The public half for ``verify --public-key`` comes from ``openssl pkey -in KEY -pubout``.
    """
    try:
        return load_ed25519_key(Path(path), create=create)[0]
    except KeyFileError as exc:
        raise DecisionLogError(exc.message) from exc


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """Load an Ed25519 public key from a PEM file (a private key file is accepted too)."""
    pem = Path(path).read_bytes()
    try:
        key: Any = serialization.load_pem_public_key(pem)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(pem, password=None).public_key()
        except ValueError as exc:
            raise DecisionLogError(f"{path}: not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise DecisionLogError(f"{path}: not an Ed25519 key")
    return key


# --- masking ----------------------------------------------------------------------------

_ERASED = object()
_INDEX = re.compile(r"0|[1-9][0-9]*")


def _unescape(token: str) -> str:
    # RFC 6901 order: ~1 first, so "~01" decodes to "~1" and not "/".
    return token.replace("~1", "/").replace("~0", "~")


def erase_paths(
    input_doc: Any, result_doc: Any, paths: list[str] | tuple[str, ...]
) -> tuple[Any, Any, list[str]]:
    """Erase each JSON Pointer in ``paths`` from ``input_doc`` or ``result_doc``.

    ``input_doc`` is modified in place; ``result_doc`` is copied first if touched (it is the
    decision the caller holds). Returns ``(input, result, erased)`` where ``erased`` lists
    the pointers that named something. Raises ``ValueError`` for malformed pointers.
    """
    if not isinstance(paths, list | tuple):
        raise ValueError(f"mask returned {type(paths).__name__}, not a list of paths")
    roots: dict[str, Any] = {"input": input_doc, "result": result_doc}
    result_copied = False
    erased: list[str] = []
    # (container, key) of every value replaced by _ERASED; removed after all paths resolve
    # so that array indices in later paths still refer to the original document.
    marked: list[tuple[Any, Any]] = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"mask path {path!r} is not a JSON Pointer")
        tokens = [_unescape(t) for t in path[1:].split("/")]
        root = tokens[0]
        if root not in roots:
            raise ValueError(f"mask path {path!r} must start with /input or /result")
        if roots[root] is None or roots[root] is _ERASED:
            continue
        if len(tokens) == 1:
            roots[root] = _ERASED
            erased.append(path)
            continue
        if root == "result" and not result_copied:
            roots["result"] = copy.deepcopy(roots["result"])
            result_copied = True
        node = roots[root]
        for token in tokens[1:-1]:
            node = _child(node, token)
            if node is None:
                break
        else:
            last = tokens[-1]
            if isinstance(node, dict) and last in node and node[last] is not _ERASED:
                node[last] = _ERASED
                marked.append((node, last))
                erased.append(path)
            elif (
                isinstance(node, list)
                and _INDEX.fullmatch(last)
                and int(last) < len(node)
                and node[int(last)] is not _ERASED
            ):
                node[int(last)] = _ERASED
                marked.append((node, int(last)))
                erased.append(path)
    # Delete list elements from the highest index down, so that one deletion does not shift
    # the index of another; dict keys come last, in any order.
    marked.sort(key=lambda m: m[1] if isinstance(m[1], int) else -1, reverse=True)
    for container, key in marked:
        del container[key]
    return (
        None if roots["input"] is _ERASED else roots["input"],
        None if roots["result"] is _ERASED else roots["result"],
        erased,
    )


def _child(node: Any, token: str) -> Any:
    """The child of ``node`` named by ``token``, or None when there is none."""
    if isinstance(node, dict):
        child = node.get(token)
    elif isinstance(node, list) and _INDEX.fullmatch(token) and int(token) < len(node):
        child = node[int(token)]
    else:
        return None
    return None if child is _ERASED else child


# --- database ---------------------------------------------------------------------------


def _open_writer(path: Path) -> sqlite_utils.Database:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer thread, not the opening thread, uses this connection from here on.
    db = sqlite_utils.Database(sqlite3.connect(str(path), check_same_thread=False))
    db.enable_wal()
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=10000")
    db.execute("BEGIN IMMEDIATE")
    try:
        db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
        db.table("decisions").create(
            {
                "seq": int,
                "decision_id": str,
                "timestamp_ns": int,
                "entrypoint": str,
                "revision": str,
                "request_id": str,
                "input": str,
                "result": str,
                "erased": str,
                "error": str,
                "duration_ns": int,
                "prev_hash": str,
                "hash": str,
            },
            pk="seq",
            not_null=[c for c in _COLUMNS if c != "error"],
            if_not_exists=True,
        )
        db.table("decisions").create_index(["decision_id"], if_not_exists=True)
        db.table("checkpoints").create(
            {
                "idx": int,
                "seq": int,
                "hash": str,
                "row_count": int,
                "timestamp_ns": int,
                "key_id": str,
                "signature": str,
            },
            pk="idx",
            not_null=["seq", "hash", "row_count", "timestamp_ns"],
            if_not_exists=True,
        )
        db.commit()
    except BaseException:
        db.rollback()
        db.close()
        raise
    return db


def _open_reader(path: str | Path) -> sqlite_utils.Database:
    path = Path(path)
    if not path.is_file():
        raise DecisionLogError(f"no decision log at {path}")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    return sqlite_utils.Database(conn)


def _meta(db: sqlite_utils.Database) -> dict[str, str]:
    return {r["key"]: r["value"] for r in db.query("SELECT key, value FROM meta")}


def _decode_row(row: dict[str, Any]) -> dict[str, Any]:
    for column in _JSON_COLUMNS:
        row[column] = json.loads(row[column])
    return row


# --- the sink ---------------------------------------------------------------------------


class DecisionLog:
    """A :class:`~pdp.service.DecisionSink` appending decisions to a hash-chained SQLite log.

    ``record()`` enqueues and returns; a writer thread writes a batch when ``batch_max``
    decisions are pending or the oldest has waited ``flush_interval`` seconds. When
    ``queue_max`` decisions are pending, ``record()`` blocks until the writer catches up:
    backpressure, never a dropped decision. ``flush()`` returns once everything recorded
    before it is committed; ``close()`` also writes the final checkpoint. A write error stops
    the writer; ``record()``, ``flush()`` and ``close()`` then raise :class:`DecisionLogError`.

    ``mask`` runs on the writer thread, one call per decision; it must not record into this
    log (with a full queue that would wait on itself).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        signing_key: Ed25519PrivateKey | None,
        mask: MaskFunction | None = None,
        batch_max: int = 1024,
        flush_interval: float = 0.1,
        checkpoint_every: int = 10_000,
        queue_max: int = 100_000,
    ) -> None:
        if batch_max < 1 or checkpoint_every < 1 or queue_max < batch_max or flush_interval < 0:
            raise ValueError(
                "need batch_max >= 1, checkpoint_every >= 1, queue_max >= batch_max "
                "and flush_interval >= 0"
            )
        self.path = Path(path)
        self._signing_key = signing_key
        self._mask = mask
        self._batch_max = batch_max
        self._flush_interval = flush_interval
        self._checkpoint_every = checkpoint_every
        self._queue_max = queue_max
        self._db = _open_writer(self.path)
        try:
            self._log_id, self._key_id = self._init_meta()
        except BaseException:
            self._db.close()
            raise
        self._checkpoints = self._db.table("checkpoints")

        # One lock guards the queue and the counters; the conditions share it.
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._pending: deque[tuple[Decision, DecisionRequest]] = deque()
        self._accepted = 0
        self._written = 0
        self._flush_target = 0
        self._closing = False
        self._error: BaseException | None = None
        # A daemon, so a process that never calls close() still exits; close() is what
        # makes the queue durable.
        self._thread = threading.Thread(
            target=self._run, name=f"decision-log:{self.path.name}", daemon=True
        )
        self._thread.start()

    def _init_meta(self) -> tuple[str, str | None]:
        """Create or check the meta table; return (log_id, key_id)."""
        db = self._db
        public = self._signing_key.public_key() if self._signing_key else None
        db.execute("BEGIN IMMEDIATE")
        try:
            meta = _meta(db)
            if not meta:
                meta = {"format": FORMAT, "log_id": secrets.token_hex(16)}
                if public is not None:
                    meta["public_key"] = _public_pem(public)
                    meta["key_id"] = key_id(public)
                db.table("meta").insert_all({"key": k, "value": v} for k, v in meta.items())
            db.commit()
        except BaseException:
            db.rollback()
            raise
        if meta.get("format") != FORMAT:
            raise DecisionLogError(f"{self.path} is not a Council decision log")
        stored = meta.get("key_id")
        given = key_id(public) if public is not None else None
        if stored != given:
            # One key per log file: mixing keys (or signed and unsigned checkpoints) in one
            # chain would leave a verifier unable to tell a rotation from a forgery.
            raise DecisionLogError(
                f"{self.path} is {'signed by key ' + stored if stored else 'unsigned'}, "
                f"but {'key ' + given if given else 'no key'} was given; start a new log file"
            )
        return meta["log_id"], given

    # -- caller side --

    def record(self, decision: Decision, request: DecisionRequest) -> None:
        """Queue one decision for the log; blocks only while ``queue_max`` are pending."""
        with self._lock:
            pending = self._pending
            while True:
                if self._closing:
                    raise DecisionLogError("decision log is closed")
                if self._error is not None:
                    raise DecisionLogError("decision log writer failed") from self._error
                if len(pending) < self._queue_max:
                    break
                self._not_full.wait()
            pending.append((decision, request))
            self._accepted += 1
            n = len(pending)
            # The writer sleeps while the queue is empty and gathers until a batch is full.
            if n in (1, self._batch_max):
                self._not_empty.notify()

    def flush(self) -> None:
        """Return once every decision recorded before this call is committed."""
        with self._lock:
            target = self._accepted
            self._flush_target = max(self._flush_target, target)
            self._not_empty.notify()
            while self._written < target and self._error is None:
                self._progress.wait()
            if self._written < target:
                raise DecisionLogError("decision log writer failed") from self._error

    def close(self) -> None:
        """Write everything queued and a final checkpoint, then stop the writer. Idempotent."""
        with self._lock:
            self._closing = True
            self._not_empty.notify()
            # Blocked record() calls wake to refuse: the decision was not accepted.
            self._not_full.notify_all()
        self._thread.join()
        if self._error is not None:
            lost = self._accepted - self._written
            raise DecisionLogError(
                f"decision log writer failed; {lost} decisions not written"
            ) from self._error

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writer side --

    def _run(self) -> None:
        try:
            while True:
                batch, final = self._next_batch()
                rows = [self._prepare(decision, request) for decision, request in batch]
                self._commit(rows, final=final)
                with self._lock:
                    self._written += len(batch)
                    self._progress.notify_all()
                if final:
                    return
        except BaseException as exc:
            with self._lock:
                self._error = exc
                self._not_full.notify_all()
                self._progress.notify_all()
        finally:
            self._db.close()

    def _next_batch(self) -> tuple[list[tuple[Decision, DecisionRequest]], bool]:
        """Wait for work; return up to ``batch_max`` decisions and whether this is the last."""
        with self._lock:
            pending = self._pending
            while not pending and not self._closing:
                self._not_empty.wait()
            if (
                0 < len(pending) < self._batch_max
                and not self._closing
                and self._flush_target <= self._written
            ):
                # Gather: a fuller batch is one transaction instead of many. record() at
                # batch_max, flush() and close() cut the wait short.
                self._not_empty.wait(self._flush_interval)
            batch = [pending.popleft() for _ in range(min(len(pending), self._batch_max))]
            if batch:
                self._not_full.notify_all()
            return batch, self._closing and not pending

    def _prepare(self, decision: Decision, request: DecisionRequest) -> dict[str, Any]:
        """Mask and encode one decision into a row (without seq and hashes)."""
        row: dict[str, Any] = {
            "decision_id": decision.decision_id,
            "timestamp_ns": decision.timestamp_ns,
            "entrypoint": decision.entrypoint,
            "revision": decision.revision,
            "request_id": request.request_id,
            "error": None,
            "duration_ns": decision.duration_ns,
        }
        try:
            paths = self._mask(request, decision) if self._mask is not None else []
            result_doc = decision.result
            erased: list[str] = []
            if isinstance(paths, list | tuple) and not paths:
                # Nothing to erase: keep the input exactly as received (the engine checked
                # it is JSON) and skip a parse and an encode.
                input_text = request.input_json
                row["input"] = "null" if input_text is None else input_text.decode("utf-8")
            else:
                # erase_paths rejects anything but a list of pointers (None included).
                input_doc = None if request.input_json is None else json.loads(request.input_json)
                input_doc, result_doc, erased = erase_paths(input_doc, result_doc, paths)
                row["input"] = _canonical_text(input_doc)
            row["result"] = _canonical_text(
                {
                    "allow": decision.allow,
                    "reasons": list(decision.reasons),
                    "obligations": decision.obligations,
                    "defined": decision.defined,
                    "result": result_doc,
                }
            )
            row["erased"] = _canonical_text(erased) if erased else "[]"
        except Exception as exc:
            # Fail closed: whatever went wrong, nothing that might have needed masking is
            # stored. The decision itself (allow, reasons) is still logged.
            row["input"] = "null"
            row["result"] = _canonical_text(
                {
                    "allow": decision.allow is True,
                    "reasons": [str(r) for r in decision.reasons],
                    "obligations": None,
                    "defined": decision.defined is True,
                    "result": None,
                }
            )
            row["erased"] = _canonical_text(["/input", "/result"])
            row["error"] = f"stored fail-closed: {type(exc).__name__}: {exc}"
        return row

    def _commit(self, rows: list[dict[str, Any]], *, final: bool) -> None:
        """Chain ``rows`` onto the stored tail and write them, plus due checkpoints, atomically."""
        db = self._db
        # IMMEDIATE takes the write lock before reading the tail, so the tail cannot move
        # under us even if another process appends to the same file.
        db.execute("BEGIN IMMEDIATE")
        try:
            last = db.execute("SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1")
            seq, prev = last.fetchone() or (0, GENESIS_HASH)
            last_cp = db.execute("SELECT idx, seq FROM checkpoints ORDER BY idx DESC LIMIT 1")
            cp_idx, cp_seq = last_cp.fetchone() or (0, 0)
            checkpoints: list[dict[str, Any]] = []
            for row in rows:
                seq += 1
                row["seq"] = seq
                row["prev_hash"] = prev
                prev = row["hash"] = row_hash(row)
                if seq % self._checkpoint_every == 0:
                    cp_idx += 1
                    checkpoints.append(self._checkpoint(cp_idx, seq, prev))
                    cp_seq = seq
            if final and seq > cp_seq:
                checkpoints.append(self._checkpoint(cp_idx + 1, seq, prev))
            # executemany with a fixed statement: sqlite-utils' insert_all re-derives the
            # columns and JSON-converts every value, several times the cost of the insert.
            if rows:
                db.conn.executemany(_INSERT_DECISION, [[r[c] for c in _COLUMNS] for r in rows])
            if checkpoints:
                self._checkpoints.insert_all(checkpoints)
            db.commit()
        except BaseException:
            db.rollback()
            raise

    def _checkpoint(self, idx: int, seq: int, chain_hash: str) -> dict[str, Any]:
        cp: dict[str, Any] = {
            "idx": idx,
            "seq": seq,
            "hash": chain_hash,
            # seq is contiguous from 1, so the count is the seq; the verifier counts rows.
            "row_count": seq,
            "timestamp_ns": time.time_ns(),
            "key_id": self._key_id,
            "signature": None,
        }
        if self._signing_key is not None:
            signature = self._signing_key.sign(_checkpoint_payload(self._log_id, cp))
            cp["signature"] = base64.b64encode(signature).decode("ascii")
        return cp


# --- verification -----------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify`: ``ok``, or the first bad seq and what is wrong there."""

    ok: bool
    rows: int
    checkpoints: int
    last_seq: int
    # The seq of the last checkpoint: rows after it (a log still being written, or one whose
    # writer crashed) are chained but not yet covered by a signature.
    checkpointed_seq: int
    key_id: str | None
    first_bad_seq: int | None = None
    problem: str | None = None

    def __str__(self) -> str:
        signed = f"signed by key {self.key_id}" if self.key_id else "unsigned"
        if self.ok:
            uncovered = self.last_seq - self.checkpointed_seq
            tail = f"; {uncovered} after the last checkpoint" if uncovered else ""
            return f"ok: {self.rows} decisions, {self.checkpoints} checkpoints, {signed}{tail}"
        where = f"seq {self.first_bad_seq}: " if self.first_bad_seq is not None else ""
        return f"TAMPERED: {where}{self.problem}"


class _Found(Exception):
    """Stops verification at the first problem."""

    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


def verify(path: str | Path, public_key: Ed25519PublicKey | None = None) -> VerifyReport:
    """Check the whole chain and every checkpoint; report the first problem by seq.

    With ``public_key``, the log must be signed by exactly that key; without it, the key
    stored in the log is used (which proves consistency, not authorship).
    """
    db = _open_reader(path)
    state = {"rows": 0, "checkpoints": 0, "last_seq": 0, "checkpointed_seq": 0, "key_id": None}
    try:
        _verify(db, public_key, state)
    except _Found as found:
        return VerifyReport(False, first_bad_seq=found.seq, problem=found.problem, **state)
    except (sqlite3.DatabaseError, KeyError, ValueError, TypeError) as exc:
        # A dropped table, a missing column, a value of the wrong type: damage, not a crash.
        problem = f"log structure damaged: {type(exc).__name__}: {exc}"
        return VerifyReport(False, problem=problem, **state)
    finally:
        db.close()
    return VerifyReport(True, **state)


def _verify(db: sqlite_utils.Database, given: Ed25519PublicKey | None, state: dict) -> None:
    meta = _meta(db)
    if meta.get("format") != FORMAT:
        raise _Found(None, "not a Council decision log (meta.format missing)")
    stored = (
        serialization.load_pem_public_key(meta["public_key"].encode())
        if "public_key" in meta
        else None
    )
    if stored is not None and not isinstance(stored, Ed25519PublicKey):
        raise _Found(None, "meta.public_key is not an Ed25519 key")
    if given is not None and stored is None:
        raise _Found(None, "the log is unsigned, but a public key was given")
    if given is not None and stored is not None and key_id(given) != key_id(stored):
        raise _Found(None, f"the log names key {key_id(stored)}, not the given {key_id(given)}")
    key = given or stored
    state["key_id"] = key_id(key) if key is not None else None
    if key is not None and meta.get("key_id") != state["key_id"]:
        raise _Found(None, "meta.key_id does not match meta.public_key")

    checkpoints = list(db.query("SELECT * FROM checkpoints ORDER BY idx"))
    state["checkpoints"] = len(checkpoints)
    # The first structurally bad checkpoint; rows before its seq are still checked first so
    # the report names the earliest problem.
    cp_problem: _Found | None = None
    by_seq: dict[int, list[dict[str, Any]]] = {}
    prev_seq = 0
    for expected_idx, cp in enumerate(checkpoints, start=1):
        problem = None
        if cp["idx"] != expected_idx:
            problem = f"checkpoint #{expected_idx} is missing (deleted)"
        elif cp["seq"] <= prev_seq:
            problem = f"checkpoint #{cp['idx']} does not advance past seq {prev_seq}"
        elif key is not None and not _signature_ok(key, meta["log_id"], cp):
            problem = f"checkpoint #{cp['idx']} has an invalid signature (forged or edited)"
        elif key is None and (cp["signature"] or cp["key_id"]):
            # A signed checkpoint in a log whose meta names no key: the key was removed to
            # pass the log off as unsigned.
            problem = f"checkpoint #{cp['idx']} is signed, but the log names no public key"
        if problem is not None:
            cp_problem = _Found(cp["seq"], problem)
            break
        by_seq.setdefault(cp["seq"], []).append(cp)
        prev_seq = state["checkpointed_seq"] = cp["seq"]

    limit = cp_problem.seq if cp_problem is not None else None
    expected, prev_hash = 1, GENESIS_HASH
    for row in db.query("SELECT * FROM decisions ORDER BY seq"):
        seq = row["seq"]
        if limit is not None and seq > limit:
            break
        state["last_seq"] = seq
        if seq != expected:
            if isinstance(seq, int) and seq > expected:
                missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
                raise _Found(expected, f"seq {missing} missing (rows deleted)")
            raise _Found(expected, f"unexpected seq {seq!r} where {expected} should be")
        # Contiguous from 1: the seq is the number of rows so far.
        state["rows"] = seq
        if row["prev_hash"] != prev_hash:
            raise _Found(
                seq,
                f"prev_hash does not match the hash of seq {seq - 1} "
                "(rows reordered, deleted or inserted)",
            )
        if row_hash(row) != row["hash"]:
            raise _Found(seq, "row content does not match its hash (row edited)")
        for cp in by_seq.pop(seq, ()):
            if cp["hash"] != row["hash"]:
                raise _Found(
                    seq,
                    f"checkpoint #{cp['idx']} hash differs from the chain "
                    "(rows up to here rewritten)",
                )
            if cp["row_count"] != seq:
                raise _Found(
                    seq, f"checkpoint #{cp['idx']} counts {cp['row_count']} rows, found {seq}"
                )
        prev_hash = row["hash"]
        expected = seq + 1
    if cp_problem is not None:
        raise cp_problem
    if by_seq:
        cp = by_seq[min(by_seq)][0]
        raise _Found(
            cp["seq"],
            f"log truncated: checkpoint #{cp['idx']} covers seq {cp['seq']}, "
            f"but the log ends at seq {state['last_seq']}",
        )


def _signature_ok(key: Ed25519PublicKey, log_id: str, cp: dict[str, Any]) -> bool:
    if not cp["signature"] or cp["key_id"] != key_id(key):
        return False
    try:
        signature = base64.b64decode(cp["signature"], validate=True)
        key.verify(signature, _checkpoint_payload(log_id, cp))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


# --- queries ----------------------------------------------------------------------------


def tail(path: str | Path, n: int) -> list[dict[str, Any]]:
    """The last ``n`` decisions, oldest first, with ``input``/``result``/``erased`` decoded."""
    db = _open_reader(path)
    try:
        rows = db.query(
            "SELECT * FROM (SELECT * FROM decisions ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            [max(n, 0)],
        )
        return [_decode_row(r) for r in rows]
    finally:
        db.close()


def rows_after(path: str | Path, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
    """Up to ``limit`` decisions with a seq above ``seq``, oldest first, decoded."""
    db = _open_reader(path)
    try:
        rows = db.query("SELECT * FROM decisions WHERE seq > ? ORDER BY seq LIMIT ?", [seq, limit])
        return [_decode_row(r) for r in rows]
    finally:
        db.close()


def show(path: str | Path, decision_id: str) -> dict[str, Any] | None:
    """The decision with this id, decoded, or None."""
    db = _open_reader(path)
    try:
        rows: Iterator[dict[str, Any]] = db.query(
            "SELECT * FROM decisions WHERE decision_id = ? ORDER BY seq LIMIT 1", [decision_id]
        )
        row = next(rows, None)
        return _decode_row(row) if row is not None else None
    finally:
        db.close()
