"""The shared wasmtime engine and the clock that bounds evaluations.

One :class:`PolicyEngine` compiles modules and is shared by every instance made from them.
Evaluations are bounded with epoch interruption rather than fuel: fuel metering slows every
Wasm instruction, while an epoch check costs a load and compare at loop heads and calls. A
daemon thread advances the epoch every ``epoch_tick``; each evaluation sets its deadline
relative to the current epoch. Thread-safe: wasmtime engines and modules are shareable, and
the ticker only increments an atomic counter.
"""

from __future__ import annotations

import threading

import wasmtime

from pdp.config import HostConfig

__all__ = ["PolicyEngine"]


class PolicyEngine:
    """A wasmtime engine configured for OPA modules, with its epoch ticker."""

    def __init__(self, config: HostConfig | None = None) -> None:
        self.config = config or HostConfig()
        wcfg = wasmtime.Config()
        wcfg.epoch_interruption = True
        wcfg.max_wasm_stack = self.config.max_wasm_stack
        wcfg.cranelift_opt_level = "speed" if self.config.optimize else "none"
        # Linear memory is reserved up front and never relocated, so an instance can keep
        # its memory's base address instead of asking wasmtime for it on every access.
        wcfg.memory_may_move = False
        self.wasm_engine = wasmtime.Engine(wcfg)
        self.epoch = 0
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="council-epoch", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        engine, period = self.wasm_engine, self.config.epoch_tick
        while not self._stop.wait(period):
            engine.increment_epoch()
            # A Python-side mirror of the epoch (possibly a tick behind), so instances can
            # tell when their deadline needs refreshing without a call into wasmtime.
            self.epoch += 1

    def close(self) -> None:
        """Stop the epoch ticker. Idempotent; evaluations still running can no longer time out."""
        self._stop.set()
        if self._ticker.is_alive() and threading.current_thread() is not self._ticker:
            self._ticker.join(timeout=1)

    def __enter__(self) -> PolicyEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
