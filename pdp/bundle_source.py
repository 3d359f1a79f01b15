"""Where bundles come from, and how a new revision becomes the current one.

A :class:`BundleLoader` turns bundle bytes into a ready :class:`~pdp.policy.Policy`: read the
archive, verify its signature (unless explicitly allowed unsigned), compile and instantiate
the module. Only when all of that succeeds does the service swap to it; an unsigned,
tampered, truncated or non-loadable bundle is refused with one log line naming why, and the
last good revision keeps serving.

Sources: a ``.tar.gz`` file, an unpacked bundle directory (both polled by modification
time), or an HTTP(S) bundle server polled with ``If-None-Match``/``ETag``. Fetching is
blocking I/O, meant to run on a worker thread.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pdp.bundle import Bundle, BundleError, read_bundle
from pdp.bundle_signing import VerificationKeys, verify_bundle
from pdp.config import HostConfig
from pdp.engine import PolicyEngine
from pdp.errors import PDPError
from pdp.policy import Policy

__all__ = [
    "BundleFetch",
    "BundleLoader",
    "BundleSource",
    "FileBundleSource",
    "HttpBundleSource",
    "open_source",
]

log = logging.getLogger(__name__)

HTTP_TIMEOUT = 10.0
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class BundleFetch:
    """A bundle as fetched: its bytes and a tag identifying this version."""

    data: bytes
    tag: str


class BundleSource(Protocol):
    """Something that yields a new bundle when (and only when) it changed."""

    description: str

    def fetch(self) -> BundleFetch | None:
        """The bundle if it changed since the last successful fetch, else None."""


def _pack_directory(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                tar.add(path, arcname="/" + str(path.relative_to(root)))
    return buf.getvalue()


class FileBundleSource:
    """A bundle file or unpacked bundle directory on local disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)
        self._seen = ""

    def _stamp(self) -> str:
        if self.path.is_dir():
            parts = [
                f"{p}:{p.stat().st_mtime_ns}:{p.stat().st_size}"
                for p in sorted(self.path.rglob("*"))
                if p.is_file()
            ]
            return hashlib.sha256("\n".join(parts).encode()).hexdigest()
        st = self.path.stat()
        return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"

    def fetch(self) -> BundleFetch | None:
        stamp = self._stamp()
        if stamp == self._seen:
            return None
        data = _pack_directory(self.path) if self.path.is_dir() else self.path.read_bytes()
        self._seen = stamp
        return BundleFetch(data, stamp)

    def forget(self) -> None:
        """Make the next fetch return the bundle even if unchanged (after a refusal)."""
        self._seen = ""


class HttpBundleSource:
    """A bundle served over HTTP(S); conditional requests keep polling cheap."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.description = url
        self._etag = ""
        self._headers = dict(headers or {})

    def fetch(self) -> BundleFetch | None:
        req = urllib.request.Request(self.url, headers=self._headers)
        if self._etag:
            req.add_header("If-None-Match", self._etag)
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
                data = resp.read(MAX_DOWNLOAD_BYTES + 1)
                etag = resp.headers.get("ETag", "")
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return None
            raise BundleError(f"bundle server answered {exc.code} for {self.url}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise BundleError(f"cannot reach bundle server {self.url}: {exc}") from exc
        if len(data) > MAX_DOWNLOAD_BYTES:
            raise BundleError(f"bundle at {self.url} exceeds {MAX_DOWNLOAD_BYTES} bytes")
        tag = etag or hashlib.sha256(data).hexdigest()
        if tag == self._etag:
            return None
        self._etag = etag or ""
        return BundleFetch(data, tag)

    def forget(self) -> None:
        """Drop the ETag so the next fetch downloads the bundle again."""
        self._etag = ""


def open_source(location: str) -> FileBundleSource | HttpBundleSource:
    """A source for a path or an ``http(s)://`` URL."""
    if location.startswith(("http://", "https://")):
        return HttpBundleSource(location)
    path = Path(location)
    if not path.exists():
        raise BundleError(f"bundle {location} does not exist")
    return FileBundleSource(path)


class BundleLoader:
    """Verifies and loads bundles into policies sharing one engine."""

    def __init__(
        self,
        *,
        keys: VerificationKeys | None,
        allow_unsigned: bool = False,
        config: HostConfig | None = None,
        **policy_kwargs: Any,
    ) -> None:
        if keys is None and not allow_unsigned:
            raise ValueError("bundle verification keys are required (or allow_unsigned=True)")
        self.keys = keys
        self.allow_unsigned = allow_unsigned
        self.engine = PolicyEngine(config)
        self._policy_kwargs = policy_kwargs

    def load(self, data: bytes, origin: str) -> Policy:
        """Verify and load one bundle; raises :class:`~pdp.errors.PDPError` on refusal."""
        bundle = read_bundle(data)
        if self.keys is not None:
            verify_bundle(bundle, self.keys)
        elif ".signatures.json" in bundle.files:
            log.warning("bundle from %s is signed but no verification key is configured", origin)
        return self._policy(bundle)

    def _policy(self, bundle: Bundle) -> Policy:
        return Policy(
            bundle.wasm,
            bundle.data(),
            engine=self.engine,
            revision=bundle.revision,
            **self._policy_kwargs,
        )

    def try_load(self, source: FileBundleSource | HttpBundleSource) -> Policy | None:
        """Fetch from ``source`` and load; None when unchanged or refused (logged)."""
        try:
            fetched = source.fetch()
        except (PDPError, OSError) as exc:
            log.error("bundle refused: %s: %s", source.description, exc)
            return None
        if fetched is None:
            return None
        try:
            policy = self.load(fetched.data, source.description)
        except PDPError as exc:
            log.error("bundle refused: %s (%s): %s", source.description, exc.code, exc.message)
            return None
        log.info(
            "bundle loaded: %s revision=%r entrypoints=%s",
            source.description,
            policy.revision,
            ",".join(sorted(policy.entrypoints)),
        )
        return policy

    def close(self) -> None:
        """Stop the engine's epoch ticker."""
        self.engine.close()
