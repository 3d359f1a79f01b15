"""The host builtin registry.

Copy-on-write: readers take the current immutable snapshot without locking; writers build a
new mapping under a lock and swap it in. No builtin code ever runs under the lock.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from pdp.builtins.base import BuiltinSpec

__all__ = ["BuiltinRegistry", "all_builtin_specs", "default_registry"]

# Modules of this package that hold infrastructure rather than builtins.
_NOT_GROUPS = frozenset({"base", "registry"})


class BuiltinRegistry:
    """A name → :class:`BuiltinSpec` mapping, safe to read from any thread."""

    def __init__(self, specs: Iterable[BuiltinSpec] = ()) -> None:
        self._lock = threading.Lock()
        table: dict[str, BuiltinSpec] = {}
        for spec in specs:
            if spec.name in table:
                raise ValueError(f"builtin {spec.name} declared twice")
            table[spec.name] = spec
        self._specs: Mapping[str, BuiltinSpec] = MappingProxyType(table)

    def register(self, spec: BuiltinSpec, *, replace: bool = False) -> None:
        """Add ``spec``; with ``replace`` it may override an existing declaration."""
        with self._lock:
            if spec.name in self._specs and not replace:
                raise ValueError(f"builtin {spec.name} is already registered")
            table = dict(self._specs)
            table[spec.name] = spec
            self._specs = MappingProxyType(table)

    def get(self, name: str) -> BuiltinSpec | None:
        """Return the declaration of ``name``, or None."""
        return self._specs.get(name)

    def snapshot(self) -> Mapping[str, BuiltinSpec]:
        """The current, immutable table."""
        return self._specs

    def copy(self) -> BuiltinRegistry:
        """An independent registry with the same declarations (e.g. to add test builtins)."""
        return BuiltinRegistry(self._specs.values())

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)


def all_builtin_specs() -> tuple[BuiltinSpec, ...]:
    """Every builtin declared by the group modules of :mod:`pdp.builtins`.

    A group module is any module of the package exposing a ``BUILTINS`` sequence.
    """
    import pdp.builtins as package

    specs: list[BuiltinSpec] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name in _NOT_GROUPS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        specs.extend(getattr(module, "BUILTINS", ()))
    return tuple(specs)


def default_registry() -> BuiltinRegistry:
    """A new registry holding every builtin this host implements."""
    return BuiltinRegistry(all_builtin_specs())
