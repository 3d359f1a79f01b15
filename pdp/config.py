"""Host configuration: limits and defaults, as one frozen record."""

from __future__ import annotations

import os
from dataclasses import dataclass

WASM_PAGE = 65536

DEFAULT_MAX_MEMORY_BYTES = 256 * 1024 * 1024
"""Cap on one instance's linear memory; a policy that needs more is stopped."""

DEFAULT_EVAL_TIMEOUT = 2.0
"""Seconds one evaluation may run before it is interrupted."""

DEFAULT_EPOCH_TICK = 0.005
"""Seconds between epoch ticks: the granularity of the evaluation deadline."""

DEFAULT_MAX_INPUT_BYTES = 8 * 1024 * 1024
"""Largest input document accepted, as serialised JSON."""

DEFAULT_MAX_INPUT_DEPTH = 512
"""Deepest nesting of arrays/objects accepted in an input document."""

DEFAULT_MAX_WASM_STACK = 1024 * 1024
"""Bytes of native stack a Wasm call may use; deep recursion traps past it."""


def _default_pool_size() -> int:
    return max(2, os.cpu_count() or 2)


@dataclass(frozen=True)
class HostConfig:
    """How the Wasm host runs policies.

    Attributes:
        max_memory_bytes: cap on each instance's linear memory.
        eval_timeout: seconds before an evaluation is interrupted (epoch deadline).
        epoch_tick: seconds between epoch increments (deadline granularity).
        max_input_bytes: largest serialised input accepted.
        max_input_depth: deepest nesting of arrays and objects accepted in an input.
        max_wasm_stack: native stack bytes available to Wasm.
        strict_builtin_errors: a failing builtin aborts the evaluation with OPA's error
            instead of making its expression undefined (OPA's ``--strict-builtin-errors``).
        pool_size: most instances a pool keeps (and most evaluations run at once).
        optimize: compile with Cranelift's speed optimisations (off trades speed for
            faster compilation, e.g. when compiling thousands of one-shot modules).
        use_opa_eval: use the one-call ``opa_eval`` export when the module has it (ABI
            1.2+); off forces the older ``eval`` context path.
    """

    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES
    eval_timeout: float = DEFAULT_EVAL_TIMEOUT
    epoch_tick: float = DEFAULT_EPOCH_TICK
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
    max_input_depth: int = DEFAULT_MAX_INPUT_DEPTH
    max_wasm_stack: int = DEFAULT_MAX_WASM_STACK
    strict_builtin_errors: bool = False
    pool_size: int = 0
    optimize: bool = True
    use_opa_eval: bool = True

    def __post_init__(self) -> None:
        if self.max_memory_bytes < 2 * WASM_PAGE:
            raise ValueError("max_memory_bytes must allow at least two Wasm pages")
        if self.eval_timeout <= 0 or self.epoch_tick <= 0:
            raise ValueError("eval_timeout and epoch_tick must be positive")
        if self.epoch_tick > self.eval_timeout:
            raise ValueError("epoch_tick must not exceed eval_timeout")
        if self.max_input_bytes <= 0:
            raise ValueError("max_input_bytes must be positive")
        if self.pool_size < 0:
            raise ValueError("pool_size must be >= 0 (0 means one per CPU, at least 2)")
        if self.pool_size == 0:
            object.__setattr__(self, "pool_size", _default_pool_size())

    @property
    def max_memory_pages(self) -> int:
        """The memory cap in 64 KiB Wasm pages."""
        return self.max_memory_bytes // WASM_PAGE

    @property
    def deadline_ticks(self) -> int:
        """Epoch ticks after which an evaluation is interrupted."""
        return max(1, round(self.eval_timeout / self.epoch_tick)) + 1
