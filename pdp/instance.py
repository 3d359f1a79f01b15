"""One live policy instance: a wasmtime store, the module's memory, its data, the ABI calls.

The data document is parsed into the Wasm heap once; every evaluation then starts from the
heap mark just past it, so the heap needs no explicit freeing. With ABI 1.2+ an evaluation
is a single ``opa_eval`` call (input copied straight into linear memory, result read back as
JSON); older modules go through the ``eval`` context calls.

Thread-safety: an instance is used by one thread at a time (the pool guarantees it). After
a trap the instance is ``broken`` and must be discarded; it never evaluates again.
"""

from __future__ import annotations

import ctypes
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import wasmtime

from pdp import wasm_raw as raw
from pdp.builtins.base import UNDEFINED, BuiltinError, EvalContext, HaltError
from pdp.config import WASM_PAGE
from pdp.errors import (
    BuiltinEvalError,
    EntrypointNotFoundError,
    EvaluationError,
    EvaluationTimeoutError,
    InvalidInputError,
    PDPError,
    PolicyAbortError,
    PolicyLoadError,
    ResourceExhaustedError,
    WasmTrapError,
)
from pdp.values import RegoSet, decode, decode_json_compatible, encode, to_json_compatible
from pdp.wasm_values import LayoutMismatch, LinearMemory, same_value

if TYPE_CHECKING:
    from pdp.module import PolicyModule

__all__ = ["PolicyInstance"]

log = logging.getLogger(__name__)

_I32 = wasmtime.ValType.i32()
_S = raw.I32_STRIDE
_string_at = ctypes.string_at
_memmove = ctypes.memmove
_call = raw.func_call_unchecked
_mem_data = raw.memory_data
_mem_size = raw.memory_data_size
_set_deadline = raw.set_epoch_deadline

# (name, params, results) of the exports the host calls; all i32.
_EXPORTS = (
    ("opa_malloc", 1, 1),
    ("opa_json_parse", 2, 1),
    ("opa_json_dump", 1, 1),
    ("opa_value_parse", 2, 1),
    ("opa_value_dump", 1, 1),
    ("opa_heap_ptr_get", 0, 1),
    ("opa_heap_ptr_set", 1, 0),
    ("opa_eval_ctx_new", 0, 1),
    ("opa_eval_ctx_set_input", 2, 0),
    ("opa_eval_ctx_set_data", 2, 0),
    ("opa_eval_ctx_set_entrypoint", 2, 0),
    ("opa_eval_ctx_get_result", 1, 1),
    ("eval", 1, 1),
    ("builtins", 0, 1),
    ("entrypoints", 0, 1),
)
SUPPORTED_ABI_MAJOR = 1

# Every value type, both number representations, multi-byte UTF-8, nesting: what the
# in-place codec must agree with the ABI's dump on before a module may use it.
_LAYOUT_SAMPLE = (
    "[null, true, false, 0, -7, 4611686018427387904, 123456789012345678901234567890, 1.5, "
    '-2.25e-7, "", "h\u00e9llo \u2603", {"a": [1, {"b": "c"}], "d": {}}, {"x", "y", 3}, '
    "set(), []]"
)
_LAYOUT_SCALARS = ("", "snowman \u2603", True, False, None, 0, -1, 2**70, -(2**63), 1.5, -2.5e-9)

PrintHook = Callable[[str], None]


class PolicyInstance:
    """A module instantiated in its own store, with the data document loaded."""

    def __init__(self, module: PolicyModule, print_hook: PrintHook | None = None) -> None:
        self.module = module
        config = module.engine.config
        self._engine = module.engine
        self._deadline_ticks = config.deadline_ticks
        self._deadline_set_at = -(10**9)
        self._strict = config.strict_builtin_errors
        self._print_hook = print_hook
        self.broken = False
        self.data_generation = -1
        self._pending: BaseException | None = None
        self._ectx = EvalContext(strict=self._strict, print=print_hook)
        self._dispatch: dict[int, tuple[str, Callable[..., Any]]] = {}

        self._store = store = wasmtime.Store(module.engine.wasm_engine)
        store.set_limits(memory_size=config.max_memory_bytes)
        self._ctx = raw.context_address(store)
        self._callbacks: list[Any] = []
        imports = self._imports(module.wasm_module, config.max_memory_pages)
        self._refresh_deadline(force=True)
        try:
            self._wasm_instance = wasmtime.Instance(store, module.wasm_module, imports)
        except wasmtime.WasmtimeError as exc:
            raise PolicyLoadError(f"cannot instantiate policy module: {exc}") from exc
        self._bind_exports()
        self._mem_addr = ctypes.addressof(self._memory._memory)
        # Fixed for the memory's lifetime: the engine forbids relocating linear memory.
        self._mem_base = _mem_data(self._ctx, self._mem_addr)
        self._known_size = _mem_size(self._ctx, self._mem_addr)
        self._trap = ctypes.c_void_p()
        self._trap_addr = ctypes.addressof(self._trap)
        self._initial_heap = self._call0("opa_heap_ptr_get")
        self._data_addr = 0
        self._heap_base = self._initial_heap
        self._memory_values: LinearMemory | None = None

    # --- set-up ---------------------------------------------------------------------

    def _imports(self, wasm_module: wasmtime.Module, max_pages: int) -> list[Any]:
        imports: list[Any] = []
        for imp in wasm_module.imports:
            name = imp.name
            if imp.module != "env":
                raise PolicyLoadError(f"unexpected import {imp.module}.{name}")
            if name == "memory":
                mem_type = imp.type
                assert isinstance(mem_type, wasmtime.MemoryType)
                minimum = mem_type.limits.min
                if minimum > max_pages:
                    raise PolicyLoadError(
                        f"module needs {minimum} memory pages, over the cap of {max_pages}"
                    )
                self._memory = wasmtime.Memory(
                    self._store, wasmtime.MemoryType(wasmtime.Limits(minimum, max_pages))
                )
                imports.append(self._memory)
            elif name.startswith("opa_builtin") and name[11:].isdigit():
                arity = int(name[11:])
                imports.append(self._host_func(arity + 2, 1, self._builtin_callback))
            elif name == "opa_abort":
                imports.append(self._host_func(1, 0, self._abort_callback))
            elif name == "opa_println":
                imports.append(self._host_func(1, 0, self._println_callback))
            else:
                raise PolicyLoadError(f"unexpected import env.{name}")
        return imports

    def _host_func(self, nparams: int, nresults: int, target: Callable[..., int]) -> Any:
        callback = raw.CallbackType(target)
        self._callbacks.append(callback)  # the C side holds only a raw pointer
        ty = wasmtime.FuncType([_I32] * nparams, [_I32] * nresults)
        return raw.new_host_func(self._store, ty, callback)

    def _bind_exports(self) -> None:
        major, minor = self.abi_version()
        if major != SUPPORTED_ABI_MAJOR:
            raise PolicyLoadError(
                f"module speaks OPA Wasm ABI {major}.{minor}; "
                f"this host supports {SUPPORTED_ABI_MAJOR}.x"
            )
        exports = self._wasm_instance.exports(self._store)
        self._f: dict[str, raw.RawFunc] = {}
        for name, nparams, nresults in _EXPORTS:
            func = exports.get(name)
            if not isinstance(func, wasmtime.Func):
                raise PolicyLoadError(f"module does not export function {name}")
            self._f[name] = raw.RawFunc(func, nparams, nresults)
        fast = exports.get("opa_eval")
        use_fast = isinstance(fast, wasmtime.Func) and self.module.engine.config.use_opa_eval
        self._f_eval = raw.RawFunc(fast, 7, 1) if use_fast else None
        if not hasattr(self, "_memory"):
            raise PolicyLoadError("module does not import env.memory")

    def abi_version(self) -> tuple[int, int]:
        """The module's ``opa_wasm_abi_version`` and ``opa_wasm_abi_minor_version``."""
        exports = self._wasm_instance.exports(self._store)
        values = []
        for name in ("opa_wasm_abi_version", "opa_wasm_abi_minor_version"):
            glob = exports.get(name)
            if not isinstance(glob, wasmtime.Global):
                raise PolicyLoadError(f"module does not export global {name}")
            values.append(int(glob.value(self._store)))
        return values[0], values[1]

    def read_json_export(self, name: str) -> Any:
        """Call a no-argument export returning a value address and decode it as JSON."""
        self._refresh_deadline(force=True)
        addr = self._call0(name)
        return json.loads(self._read_cstring(self._call1("opa_json_dump", addr)))

    def bind_builtins(self, ids: dict[str, int], registry_snapshot: Any) -> None:
        """Map the module's builtin ids to host implementations (all must exist)."""
        self._dispatch = {bid: (name, registry_snapshot[name].fn) for name, bid in ids.items()}

    # --- raw calls --------------------------------------------------------------------

    def _refresh_deadline(self, force: bool = False) -> None:
        """Keep the epoch deadline between one and two timeouts away.

        Setting the deadline is a call into wasmtime; doing it only when half the budget
        is spent takes it off the per-evaluation path. An evaluation therefore runs for at
        least ``eval_timeout`` and at most twice that before it is interrupted.
        """
        epoch = self._engine.epoch
        if force or epoch - self._deadline_set_at >= self._deadline_ticks:
            _set_deadline(self._ctx, 2 * self._deadline_ticks)
            self._deadline_set_at = epoch

    def _invoke(self, f: raw.RawFunc, ctx: int) -> None:
        err = _call(ctx, f.func_addr, f.buf_addr, f.length, self._trap_addr)
        if err or self._trap.value:
            self._raise_trap(err)

    def _call0(self, name: str, ctx: int | None = None) -> int:
        f = self._f[name]
        self._invoke(f, self._ctx if ctx is None else ctx)
        return f.args[0] & 0xFFFFFFFF

    def _call1(self, name: str, a: int, ctx: int | None = None) -> int:
        f = self._f[name]
        f.args[0] = a
        self._invoke(f, self._ctx if ctx is None else ctx)
        return f.args[0] & 0xFFFFFFFF

    def _call2(self, name: str, a: int, b: int, ctx: int | None = None) -> int:
        f = self._f[name]
        args = f.args
        args[0] = a
        args[_S] = b
        self._invoke(f, self._ctx if ctx is None else ctx)
        return args[0] & 0xFFFFFFFF

    def _raise_trap(self, err: int | None) -> None:
        trap_addr, self._trap.value = self._trap.value, None
        pending, self._pending = self._pending, None
        if isinstance(pending, (PolicyAbortError, BuiltinEvalError)):
            # A deliberate abort: the next evaluation resets the heap, so the instance
            # stays usable.
            raise pending
        self.broken = True
        if pending is not None:
            raise pending
        if err:
            exc = wasmtime.WasmtimeError._from_ptr(
                ctypes.cast(err, ctypes.POINTER(wasmtime._ffi.wasmtime_error_t))
            )
            raise WasmTrapError(f"wasm error: {exc}")
        trap = wasmtime.Trap._from_ptr(
            ctypes.cast(trap_addr, ctypes.POINTER(wasmtime._ffi.wasm_trap_t))
        )
        code = trap.trap_code
        message = trap.message.splitlines()[0] if trap.message else "trap"
        if code == wasmtime.TrapCode.INTERRUPT:
            raise EvaluationTimeoutError(
                f"evaluation exceeded its deadline of {self.module.engine.config.eval_timeout}s"
            )
        if code == wasmtime.TrapCode.STACK_OVERFLOW:
            raise ResourceExhaustedError("evaluation exhausted the Wasm stack (recursion too deep)")
        raise WasmTrapError(f"policy trapped: {message}")

    # --- memory -----------------------------------------------------------------------

    def _read_cstring(self, addr: int) -> bytes:
        return _string_at(self._mem_base + addr)

    def _ensure_memory(self, end: int) -> None:
        if end <= self._known_size:
            return
        size = self._known_size = _mem_size(self._ctx, self._mem_addr)
        if end <= size:
            return
        pages = -(-(end - size) // WASM_PAGE)
        prev = ctypes.c_uint64()
        err = raw.memory_grow(self._ctx, self._mem_addr, pages, ctypes.byref(prev))
        if err:
            wasmtime.WasmtimeError._from_ptr(
                ctypes.cast(err, ctypes.POINTER(wasmtime._ffi.wasmtime_error_t))
            )
            raise ResourceExhaustedError(f"input of {end} bytes does not fit under the memory cap")

    def _write(self, addr: int, data: bytes) -> None:
        # Only ever called on a block opa_malloc just returned, so it is in bounds.
        _memmove(self._mem_base + addr, data, len(data))

    # --- data ---------------------------------------------------------------------------

    def load_data(self, data_json: bytes, generation: int) -> None:
        """Parse ``data_json`` into the heap, replacing any previous data document."""
        self._refresh_deadline(force=True)
        self._call1("opa_heap_ptr_set", self._initial_heap)
        addr = self._call1("opa_malloc", len(data_json))
        self._write(addr, data_json)
        parsed = self._call2("opa_json_parse", addr, len(data_json))
        if parsed == 0:
            raise InvalidInputError("data document is not valid JSON")
        self._data_addr = parsed
        self._heap_base = self._call0("opa_heap_ptr_get")
        self.data_generation = generation

    # --- evaluation ---------------------------------------------------------------------

    def evaluate(
        self, entrypoint_id: int, input_json: bytes | None, strict: bool | None = None
    ) -> list[dict[str, Any]]:
        """Evaluate one entrypoint and return OPA's result set, as JSON-compatible data.

        ``input_json`` must be valid JSON (the caller validates it) or None for no input.
        Sets in the result become arrays in Rego's sorted order and non-string object keys
        their JSON text, exactly as OPA serialises results.
        """
        if self.broken:
            raise EvaluationError("instance is broken")
        ectx = self._ectx
        ectx.strict = self._strict if strict is None else strict
        ectx.now_ns = time.time_ns()
        if ectx.cache:
            ectx.cache = {}
        try:
            if self._f_eval is not None:
                return _result_set(self._eval_fast(entrypoint_id, input_json))
            return _result_set(self._eval_ctx(entrypoint_id, input_json))
        except PDPError:
            raise
        except Exception as exc:
            self.broken = True
            raise EvaluationError(f"evaluation failed: {exc}") from exc

    def _eval_fast(self, entrypoint_id: int, input_json: bytes | None) -> bytes:
        f = self._f_eval
        assert f is not None
        heap = self._heap_base
        args = f.args
        if input_json is None:
            input_addr = input_len = 0
        else:
            input_len = len(input_json)
            self._ensure_memory(heap + input_len + WASM_PAGE)
            _memmove(self._mem_base + heap, input_json, input_len)
            input_addr = heap
        args[0] = 0
        args[_S] = entrypoint_id
        args[2 * _S] = self._data_addr
        args[3 * _S] = input_addr
        args[4 * _S] = input_len
        args[5 * _S] = heap + input_len
        args[6 * _S] = 1  # result format: Rego value text, so sets keep their identity
        if self._engine.epoch - self._deadline_set_at >= self._deadline_ticks:
            self._refresh_deadline(force=True)
        err = _call(self._ctx, f.func_addr, f.buf_addr, f.length, self._trap_addr)
        if err or self._trap.value:
            self._raise_trap(err)
        if self._pending is not None:
            pending, self._pending = self._pending, None
            raise pending
        return _string_at(self._mem_base + (args[0] & 0xFFFFFFFF))

    def _eval_ctx(self, entrypoint_id: int, input_json: bytes | None) -> bytes:
        self._call1("opa_heap_ptr_set", self._heap_base)
        ectx_addr = self._call0("opa_eval_ctx_new")
        if input_json is not None:
            addr = self._call1("opa_malloc", len(input_json))
            self._write(addr, input_json)
            value = self._call2("opa_json_parse", addr, len(input_json))
            if value == 0:
                raise InvalidInputError("input is not valid JSON")
            self._call2("opa_eval_ctx_set_input", ectx_addr, value)
        self._call2("opa_eval_ctx_set_data", ectx_addr, self._data_addr)
        self._call2("opa_eval_ctx_set_entrypoint", ectx_addr, entrypoint_id)
        self._call1("eval", ectx_addr)
        if self._pending is not None:
            pending, self._pending = self._pending, None
            raise pending
        result = self._call1("opa_eval_ctx_get_result", ectx_addr)
        return self._read_cstring(self._call1("opa_value_dump", result))

    # --- imports ------------------------------------------------------------------------

    def _abort_callback(self, _env: int, _caller: int, args_ptr: int, _n: int) -> int:
        addr = ctypes.c_int32.from_address(args_ptr).value & 0xFFFFFFFF
        try:
            message = self._read_cstring(addr).decode("utf-8", "replace")
        except Exception:
            message = "(unreadable abort message)"
        if "malloc" in message or "out of memory" in message:
            self._pending = ResourceExhaustedError(f"policy ran out of memory: {message}")
        else:
            self._pending = PolicyAbortError(message)
        return raw.new_trap(message)

    def _println_callback(self, _env: int, _caller: int, args_ptr: int, _n: int) -> int:
        addr = ctypes.c_int32.from_address(args_ptr).value & 0xFFFFFFFF
        line = self._read_cstring(addr).decode("utf-8", "replace")
        if self._print_hook is not None:
            self._print_hook(line)
        else:
            log.info("policy print: %s", line)
        return 0

    def _builtin_callback(self, _env: int, caller: int, args_ptr: int, nargs: int) -> int:
        slots = (ctypes.c_int32 * (nargs * _S)).from_address(args_ptr)
        builtin_id = slots[0]
        entry = self._dispatch.get(builtin_id)
        name = entry[0] if entry else f"#{builtin_id}"
        try:
            if entry is None:
                raise HaltError(f"builtin id {builtin_id} is not bound", prefix=False)
            ctx = raw.caller_context(caller)
            addrs = [slots[i * _S] & 0xFFFFFFFF for i in range(2, nargs)]
            values = self._read_args(addrs, ctx)
            result = entry[1](self._ectx, *values)
            slots[0] = 0 if result is UNDEFINED else self._write_result(result, ctx)
            return 0
        except BuiltinError as exc:
            if not (self._ectx.strict or isinstance(exc, HaltError)):
                slots[0] = 0
                return 0
            message = f"{name}: {exc.message}" if exc.prefix else exc.message
            self._pending = BuiltinEvalError(exc.code, message)
        except PDPError as exc:
            self._pending = exc
        except Exception as exc:
            # A defect in a builtin: undefined like any builtin error outside strict mode,
            # but logged, since OPA itself would never get here.
            log.warning("builtin %s raised %r", name, exc, exc_info=True)
            if not self._ectx.strict:
                slots[0] = 0
                return 0
            self._pending = BuiltinEvalError("eval_builtin_error", f"{name}: {exc}")
        return raw.new_trap(self._pending.message if self._pending else "builtin failed")

    def _read_args(self, addrs: list[int], ctx: int) -> list[Any]:
        memory = self._memory_values
        if memory is not None:
            try:
                return [memory.read(a) for a in addrs]
            except LayoutMismatch:
                pass
        return [self._dump_value(a, ctx) for a in addrs]

    def _write_result(self, result: Any, ctx: int) -> int:
        memory = self._memory_values
        if memory is not None:
            size = memory.scalar_size(result)
            if size is not None:
                addr = self._call1("opa_malloc", size, ctx)
                memory.write_scalar(addr, result)
                return addr
        return self._parse_value(encode(result), ctx)

    def check_value_layout(self) -> bool:
        """Whether this module's values can be read and written in place (see
        :mod:`pdp.wasm_values`): compare the in-place codec with the ABI's dump/parse on
        values of every type. Run once, before the data document is loaded."""
        memory = LinearMemory(self._mem_base, lambda: _mem_size(self._ctx, self._mem_addr))
        self._refresh_deadline(force=True)
        try:
            addr = self._parse_value(_LAYOUT_SAMPLE, self._ctx)
            if not same_value(memory.read(addr), self._dump_value(addr, self._ctx)):
                return False
            for scalar in _LAYOUT_SCALARS:
                size = memory.scalar_size(scalar)
                assert size is not None
                block = self._call1("opa_malloc", size)
                memory.write_scalar(block, scalar)
                if not same_value(self._dump_value(block, self._ctx), scalar):
                    return False
        except (LayoutMismatch, BuiltinError, ValueError):
            return False
        finally:
            self._call1("opa_heap_ptr_set", self._initial_heap)
        return True

    def use_values_in_place(self, enabled: bool) -> None:
        """Turn the in-place value codec on (after :meth:`check_value_layout` passed)."""
        self._memory_values = (
            LinearMemory(self._mem_base, lambda: _mem_size(self._ctx, self._mem_addr))
            if enabled
            else None
        )

    def _dump_value(self, addr: int, ctx: int) -> Any:
        text_addr = self._call1("opa_value_dump", addr, ctx)
        return decode(_string_at(self._mem_base + text_addr))

    def _parse_value(self, text: str, ctx: int) -> int:
        data = text.encode("utf-8")
        addr = self._call1("opa_malloc", len(data), ctx)
        _memmove(self._mem_base + addr, data, len(data))
        value = self._call2("opa_value_parse", addr, len(data), ctx)
        if value == 0:
            raise BuiltinError(f"host produced a value the module cannot parse: {text[:80]}")
        return value

    def entrypoint_id(self, name: str) -> int:
        """Resolve an entrypoint name (``a/b``, ``a.b`` or ``data.a.b``) to its id."""
        try:
            return self.module.entrypoint_id(name)
        except KeyError:
            raise EntrypointNotFoundError(f"unknown entrypoint {name!r}") from None


def _result_set(text: bytes) -> list[dict[str, Any]]:
    """Turn the module's result set (a Rego set of ``{"result": v}`` objects) into a list.

    The outer set's body is read as an array; see :func:`decode_json_compatible` for the
    fast paths inside.
    """
    if text == b"set()":
        return []
    if text[:1] == b"{" and text[-1:] == b"}":
        return decode_json_compatible(b"[" + text[1:-1] + b"]")
    value = decode(text)
    return to_json_compatible(list(value) if isinstance(value, RegoSet) else value)
