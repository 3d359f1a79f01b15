"""The engine's public face: load a policy, list its entrypoints, evaluate, swap data.

    policy = pdp.load("bundle.tar.gz")
    policy.evaluate("authz/allow", {"user": "alice"})   # -> [{"result": True}]

Thread-safe: evaluations from many threads run on a bounded instance pool; the Wasm code
itself runs with the GIL released, so evaluations overlap on several cores.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pdp.builtins import BuiltinRegistry
from pdp.bundle import Bundle, read_bundle
from pdp.config import HostConfig
from pdp.engine import PolicyEngine
from pdp.errors import EntrypointNotFoundError, InvalidInputError, PDPError
from pdp.instance import PrintHook
from pdp.jsondoc import check_depth, load_document
from pdp.module import PolicyModule
from pdp.pool import InstancePool, encode_document

__all__ = ["Policy", "load"]


class Policy:
    """A loaded policy module with its data document and instance pool."""

    def __init__(
        self,
        wasm: bytes,
        data: Any = None,
        *,
        config: HostConfig | None = None,
        engine: PolicyEngine | None = None,
        registry: BuiltinRegistry | None = None,
        print_hook: PrintHook | None = None,
        revision: str = "",
    ) -> None:
        self._owns_engine = engine is None
        self.engine = engine or PolicyEngine(config)
        self.config = self.engine.config
        try:
            self.module = PolicyModule(self.engine, wasm, registry=registry, print_hook=print_hook)
        except BaseException:
            self.close()
            raise
        self.revision = revision
        self.pool = InstancePool(self.module, data)

    @classmethod
    def from_bundle(cls, bundle: Bundle | bytes | str | Path, **kwargs: Any) -> Policy:
        """Load the Wasm module and data document of an OPA bundle."""
        if not isinstance(bundle, Bundle):
            bundle = read_bundle(bundle)
        kwargs.setdefault("revision", bundle.revision)
        return cls(bundle.wasm, bundle.data(), **kwargs)

    @property
    def entrypoints(self) -> Mapping[str, int]:
        """Entrypoint names (``pkg/rule``) and their ids."""
        return self.module.entrypoints

    def set_data(self, data: Any) -> None:
        """Replace the data document for all subsequent evaluations."""
        self.pool.set_data(data)

    def _entrypoint_id(self, entrypoint: str | int) -> int:
        if isinstance(entrypoint, int):
            if entrypoint not in self.module.entrypoints.values():
                raise EntrypointNotFoundError(f"unknown entrypoint id {entrypoint}")
            return entrypoint
        try:
            return self.module.entrypoint_id(entrypoint)
        except KeyError:
            known = ", ".join(sorted(self.module.entrypoints)) or "none"
            raise EntrypointNotFoundError(
                f"unknown entrypoint {entrypoint!r} (this policy has: {known})"
            ) from None

    def evaluate_raw(
        self,
        entrypoint: str | int,
        input_json: bytes | None,
        *,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Evaluate with the input already serialised; return OPA's result set.

        The input must be valid JSON (checked here) and within ``max_input_bytes``.
        """
        eid = self._entrypoint_id(entrypoint)
        self._check_input(input_json)
        with self.pool.instance(timeout) as inst:
            return inst.evaluate(eid, input_json, strict)

    def evaluate_json(
        self,
        entrypoint: str | int,
        input_json: bytes | None,
        *,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """Like :meth:`evaluate_raw`, with the result set serialised as JSON bytes."""
        result = self.evaluate_raw(entrypoint, input_json, strict=strict, timeout=timeout)
        return json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()

    def _check_size(self, input_json: bytes) -> None:
        if len(input_json) > self.config.max_input_bytes:
            raise InvalidInputError(
                f"input of {len(input_json)} bytes exceeds the limit of "
                f"{self.config.max_input_bytes}"
            )

    def _check_input(self, input_json: bytes | None) -> None:
        if input_json is None:
            return
        self._check_size(input_json)
        try:
            load_document(input_json, self.config.max_input_depth)
        except InvalidInputError as exc:
            raise InvalidInputError(f"input: {exc.message}") from exc

    def evaluate_batch(
        self,
        requests: Sequence[tuple[str | int, bytes | None]],
        *,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> list[list[dict[str, Any]] | PDPError]:
        """Evaluate many (entrypoint, input JSON) pairs on one instance checkout.

        Each item yields its result set or the error it raised; one bad item never fails
        the others. An instance that breaks mid-batch is replaced for the rest.
        """
        out: list[list[dict[str, Any]] | PDPError] = []
        index = 0
        while index < len(requests):
            with self.pool.instance(timeout) as inst:
                while index < len(requests) and not inst.broken:
                    entrypoint, input_json = requests[index]
                    index += 1
                    try:
                        eid = self._entrypoint_id(entrypoint)
                        self._check_input(input_json)
                        out.append(inst.evaluate(eid, input_json, strict))
                    except PDPError as exc:
                        out.append(exc)
        return out

    def evaluate(
        self,
        entrypoint: str | int,
        input: Any = None,
        *,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Evaluate ``entrypoint`` against ``input``; return OPA's result set.

        The result set is ``[{"result": value}]``, or ``[]`` when the entrypoint is
        undefined. Sets in the value come back as arrays, as from OPA's JSON API.
        """
        input_json = None if input is None else encode_document(input)
        if input_json is not None:
            # Serialised here, so valid JSON; size and nesting are bounded like raw input.
            self._check_size(input_json)
            try:
                check_depth(input_json, self.config.max_input_depth)
            except InvalidInputError as exc:
                raise InvalidInputError(f"input: {exc.message}") from exc
        eid = self._entrypoint_id(entrypoint)
        with self.pool.instance(timeout) as inst:
            return inst.evaluate(eid, input_json, strict)

    def close(self) -> None:
        """Release the pool and, if this policy created it, the engine. Idempotent."""
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()
        if self._owns_engine:
            self.engine.close()

    def __enter__(self) -> Policy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(source: bytes | bytearray | str | Path, data: Any = None, **kwargs: Any) -> Policy:
    """Load a policy from a bundle (``.tar.gz`` path or bytes) or a bare ``.wasm`` module.

    ``data`` overrides the bundle's data document when given.
    """
    blob = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    if blob[:4] == b"\0asm":
        return Policy(blob, data, **kwargs)
    bundle = read_bundle(blob)
    kwargs.setdefault("revision", bundle.revision)
    return Policy(bundle.wasm, bundle.data() if data is None else data, **kwargs)
