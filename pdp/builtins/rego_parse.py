"""``rego.parse_module``: a Rego module's AST, as OPA v1.22.3 returns it.

The module is parsed as Rego v1 by :mod:`pdp.builtins._rego_parser` and returned in the
shape of OPA's JSON encoding of ``ast.Module`` (package, imports, rules, comments; no
locations except the comments'), which is what the builtin hands back in OPA.
"""

from __future__ import annotations

import sys
from typing import Any

from pdp.builtins._rego_parser import MarshalError, ParseErrors, parse_module
from pdp.builtins.base import BuiltinError, BuiltinSpec, EvalContext, string_arg

__all__ = ["BUILTINS", "rego_parse_module"]

# The parser recurses a dozen frames per nesting level of the source; OPA accepts far
# deeper nesting than Python's default limit allows.
_RECURSION_LIMIT = 20000


def rego_parse_module(ctx: EvalContext, filename: Any, source: Any) -> Any:
    """Parse a Rego module and return its AST as OPA's JSON encoding of it."""
    # OPA reports a bad second operand as operand 1 too.
    name = string_arg(filename, 1)
    text = string_arg(source, 1)
    if sys.getrecursionlimit() < _RECURSION_LIMIT:
        sys.setrecursionlimit(_RECURSION_LIMIT)
    try:
        return parse_module(name, text)
    except (ParseErrors, MarshalError) as exc:
        raise BuiltinError(str(exc)) from None
    except RecursionError:
        raise BuiltinError("max parsing recursion depth exceeded") from None


BUILTINS = (BuiltinSpec("rego.parse_module", rego_parse_module),)
