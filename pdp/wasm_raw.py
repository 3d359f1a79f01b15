"""Direct calls into wasmtime's C API for the hot path.

wasmtime-py's ``Func.__call__`` re-reads the function type, converts every argument through
``Val`` objects and allocates result arrays: about 20 µs a call. The same call through
``wasmtime_func_call_unchecked`` with a preallocated ``wasmtime_val_raw`` buffer costs a
couple of microseconds. This module declares the handful of C functions the host needs with
``c_void_p`` signatures (so plain ints cross the boundary without conversion objects) on a
private handle to wasmtime's shared library, leaving wasmtime-py's own declarations untouched.

Nothing here is thread-safe by itself: a :class:`RawFunc` belongs to one store, and a store
is used by one thread at a time (see :mod:`pdp.instance`).
"""

from __future__ import annotations

import ctypes
from ctypes import c_size_t, c_uint64, c_void_p
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

_lib = ctypes.CDLL(ffi.dll._name)


def _declare(name: str, restype: Any, *argtypes: Any) -> Any:
    fn = getattr(_lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


func_call_unchecked = _declare(
    "wasmtime_func_call_unchecked", c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p
)
memory_data = _declare("wasmtime_memory_data", c_void_p, c_void_p, c_void_p)
memory_data_size = _declare("wasmtime_memory_data_size", c_size_t, c_void_p, c_void_p)
memory_grow = _declare(
    "wasmtime_memory_grow", c_void_p, c_void_p, c_void_p, c_uint64, ctypes.POINTER(c_uint64)
)
set_epoch_deadline = _declare("wasmtime_context_set_epoch_deadline", None, c_void_p, c_uint64)
caller_context = _declare("wasmtime_caller_context", c_void_p, c_void_p)
trap_new = _declare("wasmtime_trap_new", c_void_p, ctypes.c_char_p, c_size_t)

ValRaw = getattr(ffi, "wasmtime_val_raw", None) or ffi.wasmtime_val_raw_t
VAL_SIZE = ctypes.sizeof(ValRaw)
I32_STRIDE = VAL_SIZE // 4

CallbackType = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_void_p, c_size_t)
"""Signature of an unchecked host function: (env, caller, args_and_results, len) → trap."""

_FinalizerType = ctypes.CFUNCTYPE(None, c_void_p)
_new_unchecked = _declare(
    "wasmtime_func_new_unchecked",
    None,
    c_void_p,
    c_void_p,
    CallbackType,
    c_void_p,
    _FinalizerType,
    c_void_p,
)


def context_address(store: wasmtime.Store) -> int:
    """The address of the store's ``wasmtime_context_t``."""
    return ctypes.cast(store._context(), c_void_p).value  # type: ignore[return-value]


def new_host_func(store: wasmtime.Store, ty: wasmtime.FuncType, callback: Any) -> wasmtime.Func:
    """Create a host function whose ``callback`` (a :data:`CallbackType`) reads and writes the
    raw argument/result buffer itself. The caller must keep ``callback`` alive."""
    raw = ffi.wasmtime_func_t()
    _new_unchecked(
        context_address(store),
        ctypes.cast(ty.ptr(), c_void_p),
        callback,
        None,
        _FinalizerType(),
        ctypes.addressof(raw),
    )
    return wasmtime.Func._from_raw(raw)


def new_trap(message: str) -> int:
    """A new ``wasm_trap_t`` (as an address) that a host callback returns to abort."""
    data = message.encode("utf-8", "replace")
    return trap_new(data, len(data)) or 0


class RawFunc:
    """One exported function, called without wasmtime-py's conversions.

    ``args`` is an int32 view over the ``wasmtime_val_raw`` buffer: argument ``i`` lives at
    ``args[i * I32_STRIDE]``, and after the call the first result at ``args[0]``.
    """

    __slots__ = ("_buf", "_func", "args", "buf_addr", "func_addr", "length")

    def __init__(self, func: wasmtime.Func, nparams: int, nresults: int) -> None:
        self._func = func
        self.func_addr = ctypes.addressof(func._func)
        self.length = max(nparams, nresults, 1)
        self._buf = (ValRaw * self.length)()
        self.buf_addr = ctypes.addressof(self._buf)
        self.args = (ctypes.c_int32 * (self.length * I32_STRIDE)).from_buffer(self._buf)
