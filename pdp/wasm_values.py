"""Reading and writing OPA values directly in a module's linear memory.

The ABI's way to pass a value to the host is ``opa_value_dump`` (a call into Wasm that
serialises it) and back ``opa_value_parse``; for the small arguments and results of most
builtin calls that round trip costs more than the builtin. OPA's Wasm library stores values
as plain C structs (``wasm/src/value.h``: a type byte, then per type a flag, lengths and
32-bit pointers), so the host can read them, and write scalar results, in place.

That layout is the library's, not the ABI's. :func:`layout_matches` therefore checks it on
each module at load time against the ABI's own functions, and the host only uses this path
when the check passes; otherwise it stays on dump/parse.

Not thread-safe: a :class:`LinearMemory` belongs to one instance.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from typing import Any

from pdp.values import RegoSet, freeze, number_text

__all__ = ["LayoutMismatch", "LinearMemory"]

NULL, BOOLEAN, NUMBER, STRING, ARRAY, OBJECT, SET, STRING_INTERNED, BOOLEAN_INTERNED = range(1, 10)
REPR_INT, REPR_REF = 1, 2
MAX_DEPTH = 256

_u32 = struct.Struct("<I").unpack_from
_two_u32 = struct.Struct("<II").unpack_from
_three_u32 = struct.Struct("<III").unpack_from
_i64 = struct.Struct("<q").unpack_from
_STRING_HEADER = struct.Struct("<BBxxII")
_NUMBER_REF = struct.Struct("<BBxxxxxxIIBxxxxxxx")


class _Truncated(Exception):
    """An address beyond the current view (the memory may have grown)."""


class LayoutMismatch(Exception):
    """Memory does not hold what the value layout says (the fast path must not be used)."""


class LinearMemory:
    """A view of one instance's linear memory, for reading and writing OPA values.

    ``size()`` returns the memory's current size; the view is rebuilt when an address
    falls beyond it (memory only grows and, with the engine's settings, never moves).
    """

    def __init__(self, base: int, size: Callable[[], int]) -> None:
        self._base = base
        self._size = size
        self._view = self._make_view()

    def _make_view(self) -> memoryview:
        size = self._size()
        return memoryview((ctypes.c_ubyte * size).from_address(self._base)).cast("B")

    def _ensure(self, end: int) -> memoryview:
        view = self._view
        if end > len(view):
            view = self._view = self._make_view()
            if end > len(view):
                raise LayoutMismatch(f"address {end} beyond linear memory")
        return view

    # --- reading ------------------------------------------------------------------------

    def read(self, addr: int) -> Any:
        """The Rego value at ``addr``."""
        try:
            return self._read(self._view, addr, 0)
        except (IndexError, struct.error, _Truncated):
            # Memory grew since the view was taken: take a new one and try once more.
            self._view = self._make_view()
            try:
                return self._read(self._view, addr, 0)
            except (IndexError, struct.error, _Truncated) as exc:
                raise LayoutMismatch(f"value at {addr} runs past linear memory") from exc

    def _read(self, view: memoryview, addr: int, depth: int) -> Any:
        kind = view[addr]
        if kind in (STRING, STRING_INTERNED):
            length, ptr = _two_u32(view, addr + 4)
            if ptr + length > len(view):
                raise _Truncated
            data = view[ptr : ptr + length].tobytes()
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise LayoutMismatch("string is not UTF-8") from exc
        if depth > MAX_DEPTH:
            raise LayoutMismatch("value nests too deeply to read in place")
        if kind == ARRAY:
            elems, length = _two_u32(view, addr + 4)
            if elems + 8 * length > len(view):
                raise _Truncated
            return [
                self._read(view, _u32(view, elems + 8 * i + 4)[0], depth + 1) for i in range(length)
            ]
        if kind == NUMBER:
            rep = view[addr + 1]
            if rep == REPR_INT:
                return _i64(view, addr + 8)[0]
            if rep == REPR_REF:
                ptr, length = _two_u32(view, addr + 8)
                if ptr + length > len(view):
                    raise _Truncated
                return _number(view[ptr : ptr + length].tobytes())
            raise LayoutMismatch(f"unknown number representation {rep}")
        if kind in (BOOLEAN, BOOLEAN_INTERNED):
            return view[addr + 1] != 0
        if kind == NULL:
            return None
        if kind == OBJECT:
            out: dict[Any, Any] = {}
            for key_addr, value_addr in self._chains(view, addr, 12):
                key = self._read(view, key_addr, depth + 1)
                if type(key) is not str:
                    # Non-string keys need the full codec's key wrappers.
                    raise LayoutMismatch("non-string object key")
                out[key] = self._read(view, value_addr, depth + 1)
            return out
        if kind == SET:
            return RegoSet(self._read(view, v, depth + 1) for v, _ in self._chains(view, addr, 8))
        raise LayoutMismatch(f"unknown value type {kind}")

    def _chains(self, view: memoryview, addr: int, elem_size: int) -> list[tuple[int, int]]:
        """(first, second) pointers of every element of an object/set hash table."""
        buckets, n, length = _three_u32(view, addr + 4)
        out: list[tuple[int, int]] = []
        for b in range(n):
            elem = _u32(view, buckets + 4 * b)[0]
            while elem:
                if elem_size == 12:
                    k, v, elem = _three_u32(view, elem)
                    out.append((k, v))
                else:
                    v, elem = _two_u32(view, elem)
                    out.append((v, 0))
                if len(out) > length:
                    raise LayoutMismatch("hash table holds more elements than its length")
        if len(out) != length:
            raise LayoutMismatch("hash table length does not match its elements")
        return out

    # --- writing ----------------------------------------------------------------------------

    def scalar_size(self, value: Any) -> int | None:
        """Bytes :meth:`write_scalar` needs for ``value``, or None if it cannot write it."""
        t = type(value)
        if t is str:
            return _STRING_HEADER.size + len(value.encode("utf-8"))
        if t is bool:
            return 2
        if t is int or t is float:
            # Numbers are written as text, the representation opa_value_parse gives them,
            # so the library treats them exactly as parsed ones.
            return _NUMBER_REF.size + len(number_text(value))
        if value is None:
            return 1
        return None

    def write_scalar(self, addr: int, value: Any) -> None:
        """Write ``value`` as an OPA value at ``addr`` (a block of :meth:`scalar_size`)."""
        t = type(value)
        if t is str:
            data = value.encode("utf-8")
            end = addr + _STRING_HEADER.size + len(data)
            view = self._ensure(end)
            _STRING_HEADER.pack_into(view, addr, STRING, 0, len(data), addr + _STRING_HEADER.size)
            view[addr + _STRING_HEADER.size : end] = data
        elif t is bool:
            view = self._ensure(addr + 2)
            view[addr] = BOOLEAN
            view[addr + 1] = 1 if value else 0
        elif t is int or t is float:
            text = number_text(value).encode()
            end = addr + _NUMBER_REF.size + len(text)
            view = self._ensure(end)
            _NUMBER_REF.pack_into(
                view, addr, NUMBER, REPR_REF, addr + _NUMBER_REF.size, len(text), 0
            )
            view[addr + _NUMBER_REF.size : end] = text
        elif value is None:
            self._ensure(addr + 1)[addr] = NULL
        else:
            raise LayoutMismatch(f"cannot write {t.__name__} in place")


def _number(text: bytes) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def same_value(a: Any, b: Any) -> bool:
    """Equality as the self-test needs it (sets and numbers by value)."""
    return freeze(a) == freeze(b)
