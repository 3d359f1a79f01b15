"""Decisions: what a policy's result means for an enforcement point.

The convention (README, "The reasons convention"): an entrypoint returns either

* an object ``{"allow": bool, "reasons": [...], "obligations": {...}}`` (``reasons`` may
  also be called ``deny``), or
* a boolean (``allow``), or
* a set/array of denial messages (``deny``): allowed exactly when it is empty.

Reasons are always the policy's own strings. The only text the engine adds is the plain
statement that the entrypoint was undefined, which is a fact about the evaluation.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Decision", "DecisionIds", "interpret_result"]


@dataclass(frozen=True)
class Decision:
    """One decision, as returned to enforcement points and written to the decision log."""

    allow: bool
    reasons: tuple[str, ...]
    obligations: dict[str, Any]
    decision_id: str
    revision: str
    entrypoint: str
    result: Any = None
    defined: bool = True
    duration_ns: int = 0
    timestamp_ns: int = field(default_factory=time.time_ns)


def _reason_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v if isinstance(v, str) else str(v) for v in value)
    if isinstance(value, dict):
        # A reasons object maps codes to messages; keep the messages.
        return tuple(str(v) for v in value.values())
    return (str(value),)


def interpret_result(
    entrypoint: str, result_set: list[dict[str, Any]]
) -> tuple[bool, tuple[str, ...], dict[str, Any], Any, bool]:
    """Map an entrypoint's result set to (allow, reasons, obligations, result, defined)."""
    if not result_set:
        return False, (f"policy {entrypoint} is undefined for this input",), {}, None, False
    result = result_set[0].get("result")
    if isinstance(result, bool):
        return result, (), {}, result, True
    if isinstance(result, dict) and "allow" in result:
        reasons = _reason_list(result.get("reasons", result.get("deny")))
        obligations = result.get("obligations") or {}
        if not isinstance(obligations, dict):
            obligations = {"value": obligations}
        return result["allow"] is True, reasons, obligations, result, True
    if isinstance(result, list):
        reasons = _reason_list(result)
        return not reasons, reasons, {}, result, True
    kind = type(result).__name__
    return False, (f"policy {entrypoint} returned a {kind}, not a decision",), {}, result, True


class DecisionIds:
    """Unique, sortable decision ids: a per-process random prefix, then a counter.

    Cheaper than a UUID per decision and still unique across restarts and replicas.
    Thread-safe (``itertools.count`` advances atomically under the GIL).
    """

    def __init__(self) -> None:
        self._prefix = f"{time.time_ns() // 1_000_000:011x}{os.urandom(4).hex()}"
        self._counter = itertools.count(1)

    def next(self) -> str:
        """A new id."""
        return f"{self._prefix}-{next(self._counter):010x}"
