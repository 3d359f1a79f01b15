"""OPA bundles: reading the ``.tar.gz`` format ``opa build`` writes.

A bundle holds ``/.manifest`` (revision, roots, Wasm entrypoints), data files
(``data.json``/``data.yaml`` anywhere; a file at ``a/b/data.json`` is mounted at
``data.a.b``), Rego sources, ``/policy.wasm`` and optionally ``/.signatures.json``.
Reading is pure and thread-safe; every malformed input raises :class:`BundleError`.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pdp.errors import PolicyLoadError

__all__ = ["Bundle", "BundleError", "read_bundle"]

MAX_BUNDLE_BYTES = 512 * 1024 * 1024
"""Refuse bundles that expand beyond this many bytes (decompression bombs)."""


class BundleError(PolicyLoadError):
    """The bundle archive is unreadable, truncated, or inconsistent."""

    code = "bundle_error"


@dataclass(frozen=True)
class Bundle:
    """The files of a bundle, keyed by their path without the leading slash."""

    files: Mapping[str, bytes]
    manifest: Mapping[str, Any] = field(default_factory=dict)

    @property
    def revision(self) -> str:
        """The manifest's revision string ('' if absent)."""
        return str(self.manifest.get("revision", ""))

    @property
    def wasm(self) -> bytes:
        """The policy module named by the manifest (``/policy.wasm`` by default)."""
        modules = {
            str(w.get("module", "/policy.wasm")).lstrip("/") for w in self.manifest.get("wasm", [])
        }
        name = next(iter(sorted(modules)), "policy.wasm")
        if len(modules) > 1:
            raise BundleError("bundles with several Wasm modules are not supported")
        try:
            return self.files[name]
        except KeyError:
            raise BundleError(f"bundle has no Wasm module at /{name}") from None

    def data(self) -> dict[str, Any]:
        """Merge every data file into one document, each mounted at its directory path."""
        root: dict[str, Any] = {}
        for path in sorted(self.files):
            base = path.rsplit("/", 1)[-1]
            if base not in ("data.json", "data.yaml", "data.yml"):
                continue
            raw = self.files[path]
            try:
                value = json.loads(raw) if base == "data.json" else yaml.safe_load(raw)
            except (ValueError, yaml.YAMLError) as exc:
                raise BundleError(f"/{path} is not valid: {exc}") from exc
            if value is None:
                continue
            parts = [p for p in path.split("/")[:-1] if p]
            _mount(root, parts, value, path)
        return root


def _mount(root: dict[str, Any], parts: list[str], value: Any, path: str) -> None:
    node = root
    for part in parts:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise BundleError(f"/{path} collides with data at {'.'.join(parts)}")
        node = child
    if not parts:
        if not isinstance(value, dict):
            raise BundleError(f"/{path} at the data root must be an object")
        _merge(root, value, path)
    elif isinstance(value, dict):
        _merge(node, value, path)
    else:
        parent = root
        for part in parts[:-1]:
            parent = parent[part]
        if parent.get(parts[-1]) not in ({}, None):
            raise BundleError(f"/{path} collides with other data")
        parent[parts[-1]] = value


def _merge(dst: dict[str, Any], src: dict[str, Any], path: str) -> None:
    for key, value in src.items():
        if key in dst and isinstance(dst[key], dict) and isinstance(value, dict):
            _merge(dst[key], value, path)
        elif key in dst:
            raise BundleError(f"/{path} redefines data key {key!r}")
        else:
            dst[key] = value


def read_bundle(source: bytes | str | Path) -> Bundle:
    """Read a bundle from its bytes or from a ``.tar.gz`` file path."""
    blob = source if isinstance(source, bytes) else Path(source).read_bytes()
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name.lstrip("/")
                if name.startswith("./"):
                    name = name[2:]
                if ".." in name.split("/"):
                    raise BundleError(f"bundle member {member.name!r} escapes the bundle root")
                total += member.size
                if total > MAX_BUNDLE_BYTES:
                    raise BundleError("bundle expands beyond the size limit")
                extracted = tar.extractfile(member)
                if extracted is None:
                    continue
                files[name] = extracted.read()
    except (tarfile.TarError, EOFError, OSError, Exception) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"bundle archive is unreadable: {exc}") from exc
    manifest: dict[str, Any] = {}
    if ".manifest" in files:
        try:
            manifest = json.loads(files[".manifest"])
        except ValueError as exc:
            raise BundleError(f"bundle manifest is not JSON: {exc}") from exc
        if not isinstance(manifest, dict):
            raise BundleError("bundle manifest must be a JSON object")
    return Bundle(files=files, manifest=manifest)
