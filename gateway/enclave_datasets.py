"""The dataset catalogue: labels, digests and where each dataset's bytes are.

Layout under the root, one directory per dataset::

    <id>/meta.json    {"id", "labels", "digest" (sha256 of the plaintext), "size",
                       "encrypted", "created_at"}
    <id>/data         the plaintext, for datasets labelled secure-compute: none
    <id>/data.enc     the ciphertext under the dataset key (agents.enclave.crypto blob,
                       associated data: the dataset id), for every other dataset
    <id>/key.sealed   the dataset key sealed to the TPM (written by the key broker)

Labels are what the scheduling policy reads; the store keeps them as given and judges
nothing (an unlabelled dataset is stored, and refused by the policy when a job asks for it).

Thread-safety: metadata writes replace files atomically; no locking beyond that.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["DATASET_ID", "DatasetRecord", "DatasetStore", "UnknownDataset"]

DATASET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class UnknownDataset(KeyError):
    """No dataset with that id is in the catalogue."""


@dataclass(frozen=True)
class DatasetRecord:
    """One catalogue entry."""

    id: str
    labels: Mapping[str, str]
    digest: str
    size: int
    encrypted: bool
    created_at: float
    directory: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    @property
    def data_path(self) -> Path:
        """Where the bytes are: ciphertext if :attr:`encrypted`, else plaintext."""
        return self.directory / ("data.enc" if self.encrypted else "data")

    @property
    def sealed_key_path(self) -> Path:
        """The TPM-sealed dataset key (encrypted datasets only)."""
        return self.directory / "key.sealed"

    def to_json(self) -> dict[str, Any]:
        """The metadata document."""
        return {
            "id": self.id,
            "labels": dict(self.labels),
            "digest": self.digest,
            "size": self.size,
            "encrypted": self.encrypted,
            "created_at": self.created_at,
        }


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


class DatasetStore:
    """Datasets on disk (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _dir(self, dataset_id: str) -> Path:
        if not DATASET_ID.match(dataset_id):
            raise ValueError(f"dataset id {dataset_id!r} must match {DATASET_ID.pattern}")
        return self.root / dataset_id

    def write(
        self,
        dataset_id: str,
        *,
        labels: Mapping[str, str],
        digest: str,
        size: int,
        payload: bytes,
        encrypted: bool,
        sealed_key: bytes | None = None,
    ) -> DatasetRecord:
        """Store a dataset's bytes (and sealed key) and then its metadata, replacing any."""
        directory = self._dir(dataset_id)
        directory.mkdir(exist_ok=True, mode=0o700)
        record = DatasetRecord(dataset_id, labels, digest, size, encrypted, time.time(), directory)
        _atomic_write(record.data_path, payload)
        if sealed_key is not None:
            _atomic_write(record.sealed_key_path, sealed_key)
        stale = directory / ("data" if encrypted else "data.enc")
        stale.unlink(missing_ok=True)
        _atomic_write(directory / "meta.json", json.dumps(record.to_json()).encode())
        return record

    def get(self, dataset_id: str) -> DatasetRecord:
        """The record of ``dataset_id``; :class:`UnknownDataset` if absent."""
        directory = self._dir(dataset_id)
        try:
            doc = json.loads((directory / "meta.json").read_text())
        except FileNotFoundError:
            raise UnknownDataset(dataset_id) from None
        return DatasetRecord(
            id=doc["id"],
            labels=doc["labels"],
            digest=doc["digest"],
            size=int(doc["size"]),
            encrypted=bool(doc["encrypted"]),
            created_at=float(doc["created_at"]),
            directory=directory,
        )

    def list(self) -> list[DatasetRecord]:
        """Every dataset, by id."""
        return [
            self.get(p.name)
            for p in sorted(self.root.iterdir())
            if (p / "meta.json").exists() and DATASET_ID.match(p.name)
        ]
