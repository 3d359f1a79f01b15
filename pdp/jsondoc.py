"""Accepting JSON documents (inputs, data) from outside: valid, bounded, never recursing deep.

The nesting limit is explicit rather than inherited from Python's recursion limit, which
other code may raise process-wide; past it a document is refused before any recursive
parser (Python's or the Wasm module's) sees it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pdp.errors import InvalidInputError

__all__ = ["DEFAULT_MAX_DEPTH", "check_depth", "load_document"]

DEFAULT_MAX_DEPTH = 512
"""Deepest nesting of arrays and objects accepted in a document."""

_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_OPENERS = frozenset(b"[{")


def check_depth(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Raise :class:`InvalidInputError` if ``data`` nests deeper than ``max_depth``.

    Documents with fewer brackets than the limit cannot exceed it, which a C-level count
    settles for almost every input; only the rest are scanned (strings skipped).
    """
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return
    depth = 0
    for match in _STRUCTURE.finditer(data):
        first = match.group()[0]
        if first in _OPENERS:
            depth += 1
            if depth > max_depth:
                raise InvalidInputError(f"document nests deeper than {max_depth} levels")
        elif first != 0x22:  # a closing bracket; strings start with '"'
            depth -= 1


def load_document(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse a JSON document after checking its depth; InvalidInputError when it is bad."""
    check_depth(data, max_depth)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InvalidInputError(f"not valid JSON: {exc}") from exc
    except RecursionError:
        raise InvalidInputError("document nests too deeply") from None
