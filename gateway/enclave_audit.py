"""Audit rows and counters for enclave jobs, in SQLite.

One row per job: what it read, where it ran, and the digests that tie it together (the
verifier's nonce, the evidence digest, the EAR digest, the output envelope digest), with its
final status and reasons. Counters: ``jobs``, ``attested_jobs``, ``attestation_failures`` by
reason, ``unsigned_outputs`` (the target is that it stays 0), ``released_outputs`` and
``refused_releases``.

Failure policy: an audit write that fails raises, and callers treat that as a failed job
(fail closed): a job whose attestation cannot be recorded is not run, and an output whose
release cannot be recorded is not released.

Thread-safety: one connection guarded by a lock; safe to share between threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["COUNTERS", "EnclaveAudit", "JobRecord"]

COUNTERS = (
    "jobs",
    "attested_jobs",
    "attestation_failures",
    "unsigned_outputs",
    "released_outputs",
    "refused_releases",
)

_SCHEMA = """
create table if not exists enclave_jobs (
    job_id text primary key,
    created_at real not null,
    finished_at real,
    transform text not null,
    dataset_ids text not null,
    executor text not null,
    status text not null,
    reasons text not null default '[]',
    nonce text,
    evidence_digest text,
    ear_digest text,
    ear_status text,
    envelope_digest text
);
create table if not exists enclave_counters (
    name text not null,
    label text not null default '',
    value integer not null,
    primary key (name, label)
);
"""


@dataclass(frozen=True)
class JobRecord:
    """One audited job."""

    job_id: str
    created_at: float
    finished_at: float | None
    transform: str
    dataset_ids: tuple[str, ...]
    executor: str
    status: str
    reasons: tuple[str, ...]
    nonce: str | None
    evidence_digest: str | None
    ear_digest: str | None
    ear_status: str | None
    envelope_digest: str | None

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON values."""
        return {
            "job_id": self.job_id,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "transform": self.transform,
            "dataset_ids": list(self.dataset_ids),
            "executor": self.executor,
            "status": self.status,
            "reasons": list(self.reasons),
            "nonce": self.nonce,
            "evidence_digest": self.evidence_digest,
            "ear_digest": self.ear_digest,
            "ear_status": self.ear_status,
            "envelope_digest": self.envelope_digest,
        }


_COLUMNS = (
    "job_id, created_at, finished_at, transform, dataset_ids, executor, status, reasons, "
    "nonce, evidence_digest, ear_digest, ear_status, envelope_digest"
)


def _record(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(
        job_id=row[0],
        created_at=row[1],
        finished_at=row[2],
        transform=row[3],
        dataset_ids=tuple(json.loads(row[4])),
        executor=row[5],
        status=row[6],
        reasons=tuple(json.loads(row[7])),
        nonce=row[8],
        evidence_digest=row[9],
        ear_digest=row[10],
        ear_status=row[11],
        envelope_digest=row[12],
    )


class EnclaveAudit:
    """The enclave audit table and counters (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None
        )
        self._db.execute("pragma journal_mode=wal")
        self._db.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the enclave audit log is closed")
        return self._db

    def _bump(self, db: sqlite3.Connection, name: str, label: str = "") -> None:
        db.execute(
            "insert into enclave_counters(name, label, value) values (?, ?, 1) "
            "on conflict(name, label) do update set value = value + 1",
            (name, label),
        )

    def job_started(
        self, job_id: str, *, transform: str, dataset_ids: Iterable[str], executor: str
    ) -> None:
        """Record a submitted job and count it in ``jobs``. A second call for the same job
        (the executor after the scheduler) only fills in the executor."""
        with self._lock:
            db = self._conn()
            db.execute("begin")
            try:
                inserted = db.execute(
                    "insert or ignore into enclave_jobs(job_id, created_at, transform, "
                    "dataset_ids, executor, status) values (?, ?, ?, ?, ?, 'running')",
                    (job_id, time.time(), transform, json.dumps(sorted(dataset_ids)), executor),
                ).rowcount
                if inserted:
                    self._bump(db, "jobs")
                else:
                    db.execute(
                        "update enclave_jobs set executor = ? where job_id = ?",
                        (executor, job_id),
                    )
                db.execute("commit")
            except BaseException:
                db.execute("rollback")
                raise

    def attested(
        self, job_id: str, *, nonce: str, evidence_digest: str, ear_digest: str, ear_status: str
    ) -> None:
        """Record a job's attestation; counts ``attested_jobs`` when the EAR is affirming
        and ``job_id`` is an audited job."""
        with self._lock:
            db = self._conn()
            db.execute("begin")
            try:
                updated = db.execute(
                    "update enclave_jobs set nonce = ?, evidence_digest = ?, ear_digest = ?, "
                    "ear_status = ? where job_id = ?",
                    (nonce, evidence_digest, ear_digest, ear_status, job_id),
                ).rowcount
                # Platform probes are attested too but are no jobs: only job rows count.
                if ear_status == "affirming" and updated:
                    self._bump(db, "attested_jobs")
                db.execute("commit")
            except BaseException:
                db.execute("rollback")
                raise

    def attestation_failed(self, reason: str, *, job_id: str | None = None) -> None:
        """Count an attestation failure under ``reason``."""
        with self._lock:
            self._bump(self._conn(), "attestation_failures", reason)
            if job_id is not None:
                self._conn().execute(
                    "update enclave_jobs set ear_status = coalesce(ear_status, 'failed') "
                    "where job_id = ?",
                    (job_id,),
                )

    def outputs_signed(self, job_id: str, envelope_digest: str) -> None:
        """Record the envelope of a job's verified outputs."""
        with self._lock:
            self._conn().execute(
                "update enclave_jobs set envelope_digest = ? where job_id = ?",
                (envelope_digest, job_id),
            )

    def unsigned_output(self) -> None:
        """Count an output without a valid envelope (an enclave job that failed to sign, or
        a release attempt of an unsigned output)."""
        with self._lock:
            self._bump(self._conn(), "unsigned_outputs")

    def release(self, *, released: bool) -> None:
        """Count a release decision of the gateway's release gate."""
        with self._lock:
            self._bump(self._conn(), "released_outputs" if released else "refused_releases")

    def job_finished(self, job_id: str, status: str, reasons: Iterable[str] = ()) -> None:
        """Close a job's row with its final status and reasons."""
        with self._lock:
            self._conn().execute(
                "update enclave_jobs set finished_at = ?, status = ?, reasons = ? where job_id = ?",
                (time.time(), status, json.dumps(list(reasons)), job_id),
            )

    def jobs(self, limit: int = 100) -> list[JobRecord]:
        """The most recent jobs, newest first."""
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "select job_id, created_at, finished_at, transform, dataset_ids, executor, "
                    "status, reasons, nonce, evidence_digest, ear_digest, ear_status, "
                    "envelope_digest from enclave_jobs order by created_at desc limit ?",
                    (limit,),
                )
                .fetchall()
            )
        return [
            JobRecord(
                job_id=r[0],
                created_at=r[1],
                finished_at=r[2],
                transform=r[3],
                dataset_ids=tuple(json.loads(r[4])),
                executor=r[5],
                status=r[6],
                reasons=tuple(json.loads(r[7])),
                nonce=r[8],
                evidence_digest=r[9],
                ear_digest=r[10],
                ear_status=r[11],
                envelope_digest=r[12],
            )
            for r in rows
        ]

    def job(self, job_id: str) -> JobRecord | None:
        """One job's record, or None."""
        return next((j for j in self.jobs(limit=1_000_000) if j.job_id == job_id), None)

    def metrics(self) -> dict[str, Any]:
        """Counters: plain ones as ints, ``attestation_failures`` as ``{reason: n}``."""
        with self._lock:
            rows = (
                self._conn().execute("select name, label, value from enclave_counters").fetchall()
            )
        out: dict[str, Any] = {name: 0 for name in COUNTERS}
        out["attestation_failures"] = {}
        for name, label, value in rows:
            if name == "attestation_failures":
                out[name][label] = value
            else:
                out[name] = value
        return out

    def close(self) -> None:
        """Close the database. Idempotent."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
