"""A bounded pool of policy instances, safe to use from many threads.

Instances are created lazily up to ``size``. A caller checks one out, evaluates, and returns
it; an instance that trapped is dropped and its slot freed for a fresh one. Data updates
are generation-numbered: :meth:`InstancePool.set_data` only records the new document, and
each instance reloads it the next time it is checked out, so an update never waits for
in-flight evaluations and never mixes two documents within one evaluation.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pdp.errors import InvalidInputError, PoolClosedError
from pdp.instance import PolicyInstance
from pdp.module import PolicyModule

__all__ = ["InstancePool"]


def encode_document(document: Any) -> bytes:
    """Serialise a data/input document as compact JSON bytes, or raise InvalidInputError."""
    try:
        return json.dumps(
            document, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"document is not JSON-serialisable: {exc}") from exc
    except RecursionError:
        raise InvalidInputError("document nests too deeply") from None


class InstancePool:
    """Up to ``size`` instances of one module sharing one data document."""

    def __init__(self, module: PolicyModule, data: Any = None, *, size: int | None = None) -> None:
        self.module = module
        self.size = size or module.engine.config.pool_size
        self._cond = threading.Condition()
        self._idle: list[PolicyInstance] = []
        self._live = 0
        self._closed = False
        self._generation = 0
        self._data_json = encode_document({} if data is None else data)

    def set_data(self, data: Any) -> None:
        """Replace the data document; instances pick it up at their next checkout."""
        self.set_data_json(encode_document({} if data is None else data))

    def set_data_json(self, data_json: bytes) -> None:
        """Replace the data document given as JSON bytes (validated here)."""
        try:
            json.loads(data_json)
        except ValueError as exc:
            raise InvalidInputError(f"data document is not valid JSON: {exc}") from exc
        with self._cond:
            self._data_json = data_json
            self._generation += 1

    def _acquire(self, timeout: float | None) -> PolicyInstance:
        with self._cond:
            while True:
                if self._closed:
                    raise PoolClosedError("instance pool is closed")
                if self._idle:
                    inst = self._idle.pop()
                    break
                if self._live < self.size:
                    self._live += 1
                    inst = None
                    break
                if not self._cond.wait(timeout):
                    raise TimeoutError("no policy instance became free in time")
            generation, data_json = self._generation, self._data_json
        try:
            if inst is None:
                inst = self.module.new_instance()
            if inst.data_generation != generation:
                inst.load_data(data_json, generation)
        except BaseException:
            self._discard()
            raise
        return inst

    def _release(self, inst: PolicyInstance) -> None:
        if inst.broken:
            self._discard()
            return
        with self._cond:
            if self._closed:
                self._live -= 1
            else:
                self._idle.append(inst)
            self._cond.notify()

    def _discard(self) -> None:
        with self._cond:
            self._live -= 1
            self._cond.notify()

    @contextmanager
    def instance(self, timeout: float | None = None) -> Iterator[PolicyInstance]:
        """Check out an instance for the duration of the ``with`` block."""
        inst = self._acquire(timeout)
        try:
            yield inst
        finally:
            self._release(inst)

    def dedicated(self) -> PolicyInstance:
        """A new instance outside the pool, loaded with the current data document.

        For a single long-lived user on its own thread (the decision log's masking), which
        would otherwise compete with requests for pooled instances. The caller owns it; it
        does not follow later :meth:`set_data` calls.
        """
        with self._cond:
            generation, data_json = self._generation, self._data_json
        inst = self.module.new_instance()
        inst.load_data(data_json, generation)
        return inst

    @property
    def live(self) -> int:
        """Instances currently alive (idle or checked out)."""
        return self._live

    def close(self) -> None:
        """Drop idle instances and refuse new checkouts. Idempotent."""
        with self._cond:
            self._closed = True
            self._live -= len(self._idle)
            self._idle.clear()
            self._cond.notify_all()
