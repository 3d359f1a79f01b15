"""A compiled OPA Wasm module and what it declares: ABI version, entrypoints, builtins.

Immutable after construction and shared by every instance made from it (thread-safe).
Loading checks the ABI version globals, reads the ``entrypoints`` and ``builtins`` exports
from a first instance (kept as a spare for the pool), and refuses a module that needs a
host builtin this host does not implement, naming each one.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from types import MappingProxyType

import wasmtime

from pdp.builtins import BuiltinRegistry, default_registry
from pdp.engine import PolicyEngine
from pdp.errors import PolicyLoadError, UnsupportedBuiltinError
from pdp.instance import SUPPORTED_ABI_MAJOR, PolicyInstance, PrintHook

__all__ = ["SUPPORTED_ABI_MAJOR", "PolicyModule"]

FAST_PATH_MIN_MINOR = 2
"""``opa_eval`` (one call per evaluation) exists from ABI 1.2 on."""


def normalize_entrypoint(name: str) -> str:
    """Accept ``a/b``, ``a.b``, ``data.a.b`` or ``/a/b`` and return OPA's ``a/b`` form."""
    name = name.strip()
    if name.startswith("data."):
        name = name[5:]
    elif name == "data":
        return ""
    if "/" not in name:
        name = name.replace(".", "/")
    return name.strip("/")


class PolicyModule:
    """A validated, compiled policy module."""

    def __init__(
        self,
        engine: PolicyEngine,
        wasm: bytes,
        *,
        registry: BuiltinRegistry | None = None,
        print_hook: PrintHook | None = None,
        precompiled: bytes | None = None,
    ) -> None:
        self.engine = engine
        self.digest = hashlib.sha256(wasm).hexdigest()
        self.registry = registry or default_registry()
        self.print_hook = print_hook
        try:
            if precompiled is not None:
                self.wasm_module = wasmtime.Module.deserialize(engine.wasm_engine, precompiled)
            else:
                self.wasm_module = wasmtime.Module(engine.wasm_engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise PolicyLoadError(f"not a loadable Wasm module: {exc}") from exc
        self._spare_lock = threading.Lock()
        probe = PolicyInstance(self, print_hook)
        self.abi_version = probe.abi_version()
        entrypoints = probe.read_json_export("entrypoints")
        builtins = probe.read_json_export("builtins")
        if not isinstance(entrypoints, dict) or not isinstance(builtins, dict):
            raise PolicyLoadError("module's entrypoints/builtins exports are not objects")
        self.entrypoints: Mapping[str, int] = MappingProxyType(dict(entrypoints))
        self.builtin_ids: Mapping[str, int] = MappingProxyType(dict(builtins))
        snapshot = self.registry.snapshot()
        missing = sorted(name for name in builtins if name not in snapshot)
        if missing:
            raise UnsupportedBuiltinError(missing)
        self._builtins_snapshot = snapshot
        self.values_in_place = probe.check_value_layout()
        probe.bind_builtins(dict(builtins), snapshot)
        probe.use_values_in_place(self.values_in_place)
        self._spare: PolicyInstance | None = probe

    @property
    def has_fast_path(self) -> bool:
        """True when the module exports ``opa_eval`` (ABI 1.2+)."""
        return self.abi_version[1] >= FAST_PATH_MIN_MINOR

    def entrypoint_id(self, name: str) -> int:
        """The id of entrypoint ``name`` in any accepted spelling; KeyError if absent."""
        if name in self.entrypoints:
            return self.entrypoints[name]
        return self.entrypoints[normalize_entrypoint(name)]

    def new_instance(self) -> PolicyInstance:
        """A fresh instance (the load-time probe is handed out first), builtins bound."""
        with self._spare_lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            return spare
        inst = PolicyInstance(self, self.print_hook)
        inst.bind_builtins(dict(self.builtin_ids), self._builtins_snapshot)
        inst.use_values_in_place(self.values_in_place)
        return inst

    def serialize(self) -> bytes:
        """The compiled machine code, for a cache keyed by ``digest`` and engine settings."""
        return self.wasm_module.serialize()
