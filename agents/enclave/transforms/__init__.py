"""Transforms that run inside the enclave sandbox, registered by name.

A transform is a module with ``run(inputs, params, out_dir)``: ``inputs`` maps dataset ids
to their plaintext bytes (decrypted inside the sandbox), ``params`` is the job's JSON
parameters, and every file it writes under ``out_dir`` becomes a signed subject.

Each :class:`TransformSpec` names the source files and data files (model weights) the
transform executes; together with the job runtime they are what the executor measures as
the ``transform-code`` event, and exactly what the sandbox mounts. A new transform is one
module plus one entry in :data:`TRANSFORMS` (and a reference value for its digest).
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["TRANSFORMS", "Transform", "TransformSpec", "get"]

_HERE = Path(__file__).resolve().parent


class Transform(Protocol):
    """What a transform module provides."""

    def run(self, inputs: Mapping[str, bytes], params: Mapping[str, Any], out_dir: Path) -> None:
        """Compute outputs from ``inputs`` into ``out_dir``."""
        ...


def _minilm_files() -> tuple[Path, ...]:
    from agents.enclave.transforms.minilm import default_model_dir

    model = default_model_dir()
    names = (
        "config.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
        "modules.json",
        "tokenizer.json",
        "model.safetensors",
    )
    return tuple(model / name for name in names)


@dataclass(frozen=True)
class TransformSpec:
    """A registered transform: its module, source files and data files."""

    name: str
    module: str
    sources: tuple[Path, ...]
    data_files: Callable[[], tuple[Path, ...]] = tuple

    def load(self) -> Transform:
        """Import the transform module."""
        return importlib.import_module(self.module)  # type: ignore[return-value]

    def files(self) -> tuple[Path, ...]:
        """Every file the transform executes or reads besides its inputs."""
        return (*self.sources, *self.data_files())


TRANSFORMS: Mapping[str, TransformSpec] = {
    "embeddings": TransformSpec(
        "embeddings",
        "agents.enclave.transforms.embeddings",
        (_HERE / "embeddings.py", _HERE / "minilm.py"),
        _minilm_files,
    ),
    "entity-resolution": TransformSpec(
        "entity-resolution",
        "agents.enclave.transforms.entity_resolution",
        (_HERE / "entity_resolution.py",),
    ),
}


def get(name: str) -> TransformSpec:
    """The transform registered as ``name``; ``KeyError`` with the known names if none is."""
    try:
        return TRANSFORMS[name]
    except KeyError:
        known = ", ".join(sorted(TRANSFORMS))
        raise KeyError(f"unknown transform {name!r} (known: {known})") from None


def file_digest(path: Path) -> str:
    """SHA-256 hex of a file, read in chunks (model weights are ~90 MB)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
