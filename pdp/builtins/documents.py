"""Structured-document builtins: object.subset, graph.reachable_paths, json.patch,
json.marshal_with_options, json.match_schema, json.verify_schema and yaml.*.

Output formats follow the Go libraries OPA uses: ``encoding/json`` for JSON text (sorted
keys, HTML-safe escapes), go-yaml v3 (through OPA's YAML↔JSON bridge) for YAML, and OPA's
fork of gojsonschema for JSON Schema results and messages.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import yaml

from pdp.builtins._golang import go_quote
from pdp.builtins.base import (
    UNDEFINED,
    BuiltinError,
    BuiltinSpec,
    EvalContext,
    OperandError,
    array_arg,
    object_arg,
    operand_type_error,
    string_arg,
)
from pdp.builtins.regex import GoRegexpError, compile_go_regexp
from pdp.values import RegoSet, freeze, rego_equal, sorted_values, type_name

__all__ = ["BUILTINS", "go_json_dumps", "rego_text"]

_MISSING: Any = object()
# Python's stack runs out long before Go's would; such input fails with this message.
_TOO_DEEP = "document nests too deeply"


# --- shared helpers ---------------------------------------------------------------------


def _find_key(obj: dict[Any, Any], key: Any) -> Any:
    """The stored key of ``obj`` equal to ``key`` under Rego equality, or ``_MISSING``.

    Python would treat ``True`` and ``1`` as the same dict key; Rego does not.
    """
    if type(key) is str:
        return key if key in obj else _MISSING
    for k in obj:
        if type(k) is not str and rego_equal(k, key):
            return k
    return _MISSING


def _obj_get(obj: dict[Any, Any], key: Any) -> Any:
    k = _find_key(obj, key)
    return _MISSING if k is _MISSING else obj[k]


def _number_text(value: int | float) -> str:
    """The JSON text of a Rego number as Council holds it."""
    if type(value) is int:
        return str(value)
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def rego_text(value: Any) -> str:
    """A value in Rego syntax, as OPA prints terms in error messages (``%v``)."""
    t = type(value)
    if value is None:
        return "null"
    if t is bool:
        return "true" if value else "false"
    if t is int or t is float:
        return _number_text(value)
    if t is str:
        return go_quote(value)
    if t is list or t is tuple:
        return "[" + ", ".join(rego_text(v) for v in value) + "]"
    if t is dict:
        keys = sorted_values(value)
        return "{" + ", ".join(f"{rego_text(k)}: {rego_text(value[k])}" for k in keys) + "}"
    if t is RegoSet:
        if not value:
            return "set()"
        return "{" + ", ".join(rego_text(v) for v in value) + "}"
    raise TypeError(f"not a Rego value: {t.__name__}")


def _go_ast_type(value: Any) -> str:
    """Go's ``%T`` of an OPA scalar value."""
    return {
        "null": "ast.Null",
        "boolean": "ast.Boolean",
        "number": "ast.Number",
        "string": "ast.String",
    }.get(type_name(value), "ast.Value")


# --- Go encoding/json -------------------------------------------------------------------

_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
_JSON_SHORT["\t"] = "\\t"
_JSON_NEEDS_ESCAPE = re.compile('[\\x00-\\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')


def _json_escape_char(m: re.Match[str]) -> str:
    ch = m.group()
    short = _JSON_SHORT.get(ch)
    if short is not None:
        return short
    if "\ud800" <= ch <= "\udfff":
        return "\\ufffd"
    return f"\\u{ord(ch):04x}"


def _json_string(text: str) -> str:
    return '"' + _JSON_NEEDS_ESCAPE.sub(_json_escape_char, text) + '"'


def _json_key(key: Any) -> str:
    """OPA's string form of an object key: strings as is, anything else as its JSON."""
    return key if type(key) is str else go_json_dumps(key)


def go_json_dumps(value: Any) -> str:
    """``json.Marshal`` of a Rego value as OPA converts it (sets → arrays, keys sorted)."""
    parts: list[str] = []
    _json_compact(value, parts)
    return "".join(parts)


def _json_compact(value: Any, out: list[str]) -> None:
    t = type(value)
    if t is str:
        out.append(_json_string(value))
    elif value is None:
        out.append("null")
    elif t is bool:
        out.append("true" if value else "false")
    elif t is int or t is float:
        out.append(_number_text(value))
    elif t is dict:
        items = sorted((_json_key(k), v) for k, v in value.items())
        out.append("{")
        for i, (k, v) in enumerate(items):
            if i:
                out.append(",")
            out.append(_json_string(k))
            out.append(":")
            _json_compact(v, out)
        out.append("}")
    else:
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _json_compact(v, out)
        out.append("]")


def _json_indent(compact: str, prefix: str, indent: str) -> str:
    """Go's ``json.Indent`` applied to compact JSON text."""
    out: list[str] = []
    depth = 0
    in_string = False
    escaped = False
    need_indent = False
    for ch in compact:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if need_indent and ch not in "]}":
            need_indent = False
            depth += 1
            out.append("\n" + prefix + indent * depth)
        if ch == '"':
            in_string = True
            out.append(ch)
        elif ch in "[{":
            need_indent = True
            out.append(ch)
        elif ch == ",":
            out.append(",\n" + prefix + indent * depth)
        elif ch == ":":
            out.append(": ")
        elif ch in "]}":
            if need_indent:
                need_indent = False
            else:
                depth -= 1
                out.append("\n" + prefix + indent * depth)
            out.append(ch)
        else:
            out.append(ch)
    return "".join(out)


def json_marshal_with_options(ctx: EvalContext, x: Any, opts: Any) -> str:
    """Serializes the input term to JSON, with prefix/indent/pretty options."""
    options = object_arg(opts, 2)
    indent = "\t"
    prefix = ""
    implicit_pretty = False
    explicit: bool | None = None
    for idx, key in enumerate(sorted_values(options)):
        value = options[key]
        if type(key) is not str:
            raise OperandError(
                f"operand 2 failed to stringify key {rego_text(key)} at index {idx}: "
                f"operand {idx} must be string but got {type_name(key)}"
            )
        if key in ("prefix", "indent"):
            if type(value) is not str:
                raise OperandError(
                    f"operand 2 key {go_quote(key)} failed cast to string: "
                    f"operand {idx} must be string but got {type_name(value)}"
                )
            if key == "prefix":
                prefix = value
            else:
                indent = value
            implicit_pretty = True
        elif key == "pretty":
            if type(value) is not bool:
                raise OperandError(f"operand 2 key {go_quote(key)} failed cast to bool")
            explicit = value
        else:
            raise OperandError(f"operand 2 object contained unknown key {go_quote(key)}")
    pretty = implicit_pretty if explicit is None else explicit
    text = go_json_dumps(x)
    if pretty:
        return prefix + _json_indent(text, prefix, indent)
    return text


# --- object.subset ----------------------------------------------------------------------


def _object_subset(sup: dict[Any, Any], sub: dict[Any, Any]) -> bool:
    for key, sub_value in sub.items():
        sup_value = _obj_get(sup, key)
        if sup_value is _MISSING:
            return False
        if rego_equal(sub_value, sup_value):
            continue
        ts, tb = type(sup_value), type(sub_value)
        if ts is dict and tb is dict:
            ok = _object_subset(sup_value, sub_value)
        elif ts is RegoSet and tb is RegoSet:
            ok = _set_subset(sup_value, sub_value)
        elif ts is list and tb is list:
            ok = _array_subset(sup_value, sub_value)
        else:
            ok = False
        if not ok:
            return False
    return True


def _set_subset(sup: RegoSet, sub: RegoSet) -> bool:
    return all(v in sup for v in sub)


def _array_subset(sup: list[Any], sub: list[Any]) -> bool:
    """Whether ``sub`` occurs as a contiguous run inside ``sup``."""
    if len(sub) > len(sup):
        return False
    if rego_equal(sub, sup):
        return True
    start = matched = 0
    while True:
        if matched == len(sub):
            return True
        if start + matched == len(sup):
            return False
        if rego_equal(sup[start + matched], sub[matched]):
            matched += 1
        else:
            start += 1
            matched = 0


def _array_set_subset(sup: list[Any], sub: RegoSet) -> bool:
    # OPA counts every array element found in the set, duplicates included, and stops
    # as soon as the count reaches the set's size; reproduced as is.
    unmatched = len(sub)
    for v in sup:
        if v in sub:
            unmatched -= 1
        if unmatched == 0:
            return True
    return False


def object_subset(ctx: EvalContext, sup: Any, sub: Any) -> bool:
    """Determines if an object, set or array is a subset of another one."""
    ts, tb = type(sup), type(sub)
    if ts is dict and tb is dict:
        return _object_subset(sup, sub)
    if ts is RegoSet and tb is RegoSet:
        return _set_subset(sup, sub)
    if ts is list and tb is list:
        return _array_subset(sup, sub)
    if ts is list and tb is RegoSet:
        return _array_set_subset(sup, sub)
    raise OperandError("both arguments object.subset must be of the same type or array and set")


# --- graph.reachable_paths --------------------------------------------------------------


def _vertices(edges: Any) -> list[Any]:
    t = type(edges)
    if t is list or t is RegoSet:
        return list(edges)
    return []


def graph_reachable_paths(ctx: EvalContext, graph: Any, initial: Any) -> RegoSet:
    """Computes the set of reachable paths in the graph from a set of starting nodes."""
    g = object_arg(graph, 1)
    if type(initial) not in (list, RegoSet):
        raise operand_type_error(2, initial, "{array, set}")
    paths: list[list[Any]] = []

    def walk(root: Any, path: list[Any], reached: RegoSet) -> None:
        edges = _obj_get(g, root)
        if edges is _MISSING:
            paths.append(path)
            return
        path = [*path, root]
        neighbours = _vertices(edges)
        if not neighbours:
            paths.append(path)
            return
        reached = reached.union([root])
        for neighbour in neighbours:
            if neighbour in reached:
                paths.append(path)
            else:
                walk(neighbour, path, reached)

    for node in list(initial):
        edges = _obj_get(g, node)
        if edges is _MISSING:
            continue
        neighbours = _vertices(edges)
        if not neighbours:
            paths.append([node])
            continue
        for neighbour in neighbours:
            walk(neighbour, [node], RegoSet([node]))
    return RegoSet(paths)


# --- json.patch -------------------------------------------------------------------------


class _PatchError(Exception):
    pass


_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _array_index(length: int, key: Any) -> int:
    t = type(key)
    if t is int or (t is float and key.is_integer()):
        index = int(key)
        if not _INT64_MIN <= index <= _INT64_MAX:
            raise _PatchError("invalid number type for indexing")
        return index
    if t is float:
        raise _PatchError("invalid number type for indexing")
    if t is str:
        if key == "-":
            return length
        if not _INT_TEXT.fullmatch(key) or not _INT64_MIN <= int(key) <= _INT64_MAX:
            raise _PatchError("invalid string for indexing")
        if key != "0" and key.startswith("0"):
            raise _PatchError("leading zeros are not allowed in JSON paths")
        return int(key)
    raise _PatchError("invalid type for indexing")


def _not_composite(node: Any) -> _PatchError:
    return _PatchError(
        f"expected composite type, found value: {rego_text(node)} (type: {_go_ast_type(node)})"
    )


def _is_composite(value: Any) -> bool:
    return type(value) in (dict, list, RegoSet)


def _find_child(value: Any, key: Any) -> Any:
    """OPA's ``Value.Find`` one step down, on the node's original value, or ``_MISSING``."""
    t = type(value)
    if t is dict:
        return _obj_get(value, key)
    if t is RegoSet:
        return key if key in value else _MISSING
    if t is list and type(key) in (int, float) and float(key).is_integer():
        index = int(key)
        return value[index] if 0 <= index < len(value) else _MISSING
    return _MISSING


def _key_form(key: Any) -> Any:
    """``key`` as Council stores object keys: arrays become tuples."""
    if type(key) is list:
        return tuple(_key_form(k) for k in key)
    if type(key) is dict:
        raise _PatchError("objects as object keys are not supported")
    return key


_GONE: Any = object()  # a deleted node or scalar child (None is Rego's null)


class _EditTree:
    """A port of OPA's edit tree, the structure ``json.patch`` edits through.

    A node keeps the value it was made from plus the edits below it: for objects and sets
    the children that were touched (``None``/``_GONE`` once deleted), for arrays which
    original elements are gone and where new elements sit. OPA resolves some array paths
    against the *original* array even after insertions; that is reproduced, as are its
    error messages, which print the original values.
    """

    __slots__ = ("composites", "eliminated", "insertions", "keys", "scalars", "value")

    def __init__(self, value: Any) -> None:
        self._reset(value)

    def _reset(self, value: Any) -> None:
        self.value = value
        self.keys: dict[Any, Any] = {}
        self.scalars: dict[Any, Any] = {}
        self.composites: dict[Any, _EditTree | None] = {}
        if type(value) is list:
            self.eliminated = [False] * len(value)
            self.insertions = [False] * len(value)

    def _collapse(self) -> None:
        self._reset(self.render())

    # insertion

    def insert(self, key: Any, value: Any) -> _EditTree:
        if self.value is _GONE:
            raise _PatchError("deleted node encountered during insert operation")
        t = type(self.value)
        if t is dict:
            return self._insert_keyed(key, value)
        if t is RegoSet:
            if not rego_equal(key, value):
                raise _PatchError(
                    f"set key {rego_text(key)} does not equal value to be inserted "
                    f"{rego_text(value)}"
                )
            if _is_composite(key):
                self._collapse()
            return self._insert_keyed(key, value)
        if t is list:
            index = _array_index(len(self.insertions), key)
            if not 0 <= index <= len(self.insertions):
                raise _PatchError("index for array insertion out of bounds")
            return self._insert_at(index, value)
        raise _not_composite(self.value)

    def _insert_keyed(self, key: Any, value: Any) -> _EditTree:
        fk = freeze(key)
        self.scalars.pop(fk, None)
        self.composites.pop(fk, None)
        self.keys[fk] = key
        child = _EditTree(value)
        if _is_composite(value):
            self.composites[fk] = child
        else:
            self.scalars[fk] = value
        return child

    def _shift(self, start: int, delta: int) -> None:
        self.scalars = {(i + delta if i >= start else i): v for i, v in self.scalars.items()}
        self.composites = {(i + delta if i >= start else i): v for i, v in self.composites.items()}

    def _insert_at(self, index: int, value: Any) -> _EditTree:
        self._shift(index, 1)
        self.insertions.insert(index, True)
        child = _EditTree(value)
        if _is_composite(value):
            self.composites[index] = child
        else:
            self.scalars[index] = value
        return child

    # deletion

    def delete(self, key: Any) -> None:
        if self.value is _GONE:
            raise _PatchError("deleted node encountered during delete operation")
        t = type(self.value)
        if t is dict:
            fk = freeze(key)
            if fk in self.keys:
                self._mark_deleted(fk, key)
                return
            self._fallback_delete(key)
        elif t is RegoSet:
            if _is_composite(key):
                self._collapse()
            else:
                fk = freeze(key)
                child = self.scalars.get(fk, _MISSING)
                if child is _GONE:
                    raise _PatchError(
                        f"cannot delete the already deleted scalar node for key {rego_text(key)}"
                    )
                if child is not _MISSING and rego_equal(key, child):
                    self.keys[fk] = key
                    self.scalars[fk] = _GONE
                    return
            self._fallback_delete(key)
        elif t is list:
            index = _array_index(len(self.insertions), key)
            if not 0 <= index < len(self.insertions):
                raise _PatchError("index for array delete out of bounds")
            self.scalars.pop(index, None)
            self.composites.pop(index, None)
            self._shift(index + 1, -1)
            if not self.insertions[index]:
                nth = 1 + self.insertions[:index].count(False)
                for j, gone in enumerate(self.eliminated):
                    nth -= not gone
                    if nth == 0:
                        self.eliminated[j] = True
                        break
            del self.insertions[index]
        else:
            raise _not_composite(self.value)

    def _mark_deleted(self, fk: Any, key: Any) -> None:
        if fk in self.scalars:
            if self.scalars[fk] is _GONE:
                raise _PatchError(
                    f"cannot delete the already deleted scalar node for key {rego_text(key)}"
                )
            self.scalars[fk] = _GONE
        else:
            if self.composites.get(fk) is None:
                raise _PatchError(
                    f"cannot delete the already deleted composite node for key {rego_text(key)}"
                )
            self.composites[fk] = None
        self.keys[fk] = key

    def _fallback_delete(self, key: Any) -> None:
        value = _find_child(self.value, key)
        if value is _MISSING:
            raise _PatchError(f"cannot delete child key {rego_text(key)} that does not exist")
        fk = freeze(key)
        self.keys[fk] = key
        if _is_composite(value):
            self.composites[fk] = None
        else:
            self.scalars[fk] = _GONE

    # navigation

    def unfold(self, path: list[Any]) -> _EditTree:
        if not path:
            return self
        if self.value is _GONE:
            raise _PatchError("nil value encountered where composite value was expected")
        key, rest = path[0], path[1:]
        t = type(self.value)
        if t is dict:
            fk = freeze(key)
            if fk in self.keys:
                if fk in self.scalars:
                    term = self.scalars[fk]
                    if term is _GONE:
                        raise _PatchError(
                            "cannot unfold the already deleted scalar node for key "
                            f"{rego_text(key)}"
                        )
                    return _EditTree(term).unfold(rest)
                child = self.composites.get(fk)
                if child is None:
                    raise _PatchError(
                        f"cannot unfold the already deleted composite node for key {rego_text(key)}"
                    )
                return child.unfold(rest)
            value = _find_child(self.value, key)
            if value is _MISSING:
                raise _PatchError(
                    f"path {rego_text(key)} does not exist in object term {rego_text(self.value)}"
                )
            return self.insert(key, value).unfold(rest)
        if t is RegoSet:
            if _is_composite(key):
                self._collapse()
            else:
                term = self.scalars.get(freeze(key), _MISSING)
                if term is _GONE:
                    raise _PatchError(
                        f"cannot unfold the already deleted scalar node for key {rego_text(key)}"
                    )
                if term is not _MISSING:
                    return _EditTree(term).unfold(rest)
            value = _find_child(self.value, key)
            if value is _MISSING:
                label = key if type(key) is str else rego_text(key)
                raise _PatchError(
                    f"path {label} does not exist in set term {rego_text(self.value)}"
                )
            return self.insert(key, value).unfold(rest)
        if t is list:
            index = _array_index(len(self.insertions), key)
            if index in self.scalars:
                return _EditTree(self.scalars[index]).unfold(rest)
            child = self.composites.get(index)
            if child is not None:
                return child.unfold(rest)
            value = _find_child(self.value, index)
            if value is _MISSING:
                raise _PatchError(
                    f"path {index} does not exist in array term {rego_text(self.value)}"
                )
            self.delete(index)
            return self.insert(index, value).unfold(rest)
        raise _PatchError(
            f"expected composite type for path {rego_text(key)}, found value: "
            f"{rego_text(self.value)} (type: {_go_ast_type(self.value)})"
        )

    def render(self) -> Any:
        value = self.value
        t = type(value)
        if value is _GONE or t not in (dict, list, RegoSet):
            return value
        if t is list:
            out: list[Any] = []
            next_original = 0
            for i, inserted in enumerate(self.insertions):
                if inserted:
                    child = self.composites.get(i)
                    out.append(self.scalars[i] if child is None else child.render())
                    continue
                while self.eliminated[next_original]:
                    next_original += 1
                out.append(value[next_original])
                next_original += 1
            return out
        if not self.keys:
            return value
        items: list[tuple[Any, Any]] = [
            (self.keys[fk], term) for fk, term in self.scalars.items() if term is not _GONE
        ]
        items += [
            (self.keys[fk], child.render())
            for fk, child in self.composites.items()
            if child is not None
        ]
        if t is dict:
            items += [(k, v) for k, v in value.items() if freeze(k) not in self.keys]
            return {_key_form(k): v for k, v in items}
        return RegoSet([*(v for _, v in items), *(v for v in value if freeze(v) not in self.keys)])

    # whole-path operations

    def insert_at_path(self, path: list[Any], value: Any) -> None:
        if value is _GONE:
            raise _PatchError("cannot insert nil value into EditTree")
        if not path:
            self._reset(value)
            return
        self.unfold(path[:-1]).insert(path[-1], value)

    def delete_at_path(self, path: list[Any]) -> None:
        if not path:
            if self.value is _GONE:
                raise _PatchError("deleted node encountered during delete operation")
            self._reset(_GONE)
            return
        self.unfold(path[:-1]).delete(path[-1])

    def render_at_path(self, path: list[Any]) -> Any:
        return self.unfold(path).render()


def _patch_path(value: Any) -> list[Any]:
    if type(value) is str:
        if value == "":
            return []
        return [seg.replace("~1", "/").replace("~0", "~") for seg in value.lstrip("/").split("/")]
    if type(value) is list:
        return list(value)
    raise OperandError(
        "operand 2 must be one of {set, array} containing string paths or array of path "
        f"segments but got {type_name(value)}"
    )


def _patch_value(operation: dict[str, Any]) -> Any:
    if "value" not in operation:
        raise _PatchError("missing required attribute 'value'")
    return operation["value"]


def _apply_patch(tree: _EditTree, operation: Any) -> None:
    if type(operation) is not dict:
        raise _PatchError(
            "must be an array of JSON-Patch objects, but at least one element is not an object"
        )
    if "path" not in operation:
        raise _PatchError("missing required attribute 'path'")
    if "op" not in operation:
        raise _PatchError("missing required attribute 'op'")
    op = operation["op"]
    if type(op) is not str:
        raise _PatchError(f"attribute 'op' must be a string but found: {type_name(op)}")
    path = _patch_path(operation["path"])
    if op == "add":
        tree.insert_at_path(path, _patch_value(operation))
    elif op == "remove":
        tree.delete_at_path(path)
    elif op == "replace":
        tree.delete_at_path(path)
        tree.insert_at_path(path, _patch_value(operation))
    elif op in ("move", "copy"):
        if "from" not in operation:
            raise _PatchError("missing required attribute 'from'")
        source = _patch_path(operation["from"])
        chunk = tree.render_at_path(source)
        if op == "move":
            tree.delete_at_path(source)
        tree.insert_at_path(path, chunk)
    elif op == "test":
        chunk = tree.render_at_path(path)
        value = _patch_value(operation)
        if chunk is _GONE or not rego_equal(chunk, value):
            found = "<nil>" if chunk is _GONE else rego_text(chunk)
            raise _PatchError(
                "value from EditTree != patch value.\n\n"
                f"Expected: {rego_text(value)}\n\nFound: {found}"
            )
    else:
        raise _PatchError(f"unrecognized op: '{op}'")


def json_patch(ctx: EvalContext, obj: Any, patches: Any) -> Any:
    """Patches an object according to RFC6902."""
    operations = array_arg(patches, 2)
    tree = _EditTree(obj)
    try:
        for operation in operations:
            _apply_patch(tree, operation)
    except _PatchError as exc:
        raise BuiltinError(str(exc)) from None
    result = tree.render()
    # OPA crashes when the whole document was removed; there is no result to give.
    return UNDEFINED if result is _GONE else result


# --- Go number formatting ---------------------------------------------------------------


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of a finite non-zero float64 and the exponent
    ``dp`` such that value = 0.<digits> × 10**dp (Go's ``decimalSlice`` convention)."""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    lead_zeros = len(whole + frac) - len((whole + frac).lstrip("0"))
    dp = len(whole) - lead_zeros + (int(exponent) if exponent else 0)
    return digits.rstrip("0") or "0", dp


def _shortest_digits32(value: float) -> tuple[str, int]:
    """As :func:`_shortest_digits` for the float32 nearest to ``value``."""
    import struct

    target = struct.unpack("<f", struct.pack("<f", value))[0]
    for precision in range(1, 10):
        text = f"{target:.{precision - 1}e}"
        if struct.unpack("<f", struct.pack("<f", float(text)))[0] == target:
            return _shortest_digits(float(text))
    return _shortest_digits(target)


def _go_format_g(value: float, bits: int = 64) -> str:
    """Go's ``strconv.FormatFloat(value, 'g', -1, bits)``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, dp = _shortest_digits32(value) if bits == 32 else _shortest_digits(value)
    sign = "-" if value < 0 else ""
    exp = dp - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return f"{sign}{digits}{'0' * (dp - len(digits))}"
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def _json_number_value(value: float) -> int | float:
    """The Rego number OPA ends up with after Go JSON-encodes a float64 and reads it back."""
    if value.is_integer() and abs(value) < 1e21:
        # Go prints the shortest round-trip digits, not the exact binary value.
        return int(Decimal(repr(value)))
    return value


def _go_string_from_bytes(data: bytes) -> str:
    """Decode like Go's JSON encoder reads a string: each invalid byte becomes U+FFFD."""
    out: list[str] = []
    i = 0
    while i < len(data):
        for width in (1, 2, 3, 4):
            try:
                out.append(data[i : i + width].decode("utf-8"))
            except UnicodeDecodeError:
                continue
            i += width
            break
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


# --- YAML: parsing (libyaml events) and decoding with go-yaml v3 semantics --------------


class _YamlError(Exception):
    """A YAML failure; ``str()`` is OPA's message (without the builtin name)."""


class _YNode:
    __slots__ = ("alias", "children", "kind", "line", "style", "tag", "value")

    def __init__(self, kind: str, tag: str, value: str, style: str, line: int) -> None:
        self.kind = kind  # "scalar", "seq", "map" or "alias"
        self.tag = tag
        self.value = value
        self.style = style  # scalar style ("" plain) or "tagged" for explicit tags
        self.line = line
        self.children: list[_YNode] = []
        self.alias: _YNode | None = None


_LONG_TAG_PREFIX = "tag:yaml.org,2002:"


def _short_tag(tag: str) -> str:
    if tag.startswith(_LONG_TAG_PREFIX):
        return "!!" + tag[len(_LONG_TAG_PREFIX) :]
    return tag


def _yaml_parse_error(exc: yaml.YAMLError) -> _YamlError:
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None)
    if not problem:
        problem = "unknown problem parsing YAML content"
    scanner = isinstance(exc, yaml.scanner.ScannerError)
    line = 0
    context_mark = getattr(exc, "context_mark", None)
    problem_mark = getattr(exc, "problem_mark", None)
    if context_mark is not None and context_mark.line != 0:
        line = context_mark.line + (1 if scanner else 0)
    elif problem_mark is not None and problem_mark.line != 0:
        line = problem_mark.line + (1 if scanner else 0)
    where = f"line {line}: " if line else ""
    return _YamlError(f"yaml: {where}{problem}")


def _yaml_first_document(text: str) -> _YNode | None:
    """Parse every document (all must be well-formed) and return the first one's root."""
    anchors: dict[str, _YNode] = {}
    documents: list[_YNode | None] = []
    stack: list[_YNode] = []
    root: _YNode | None = None

    def attach(node: _YNode) -> None:
        nonlocal root
        if stack:
            stack[-1].children.append(node)
        else:
            root = node

    try:
        for event in yaml.parse(text.encode("utf-8", "surrogatepass"), Loader=yaml.CSafeLoader):
            line = event.start_mark.line + 1 if event.start_mark is not None else 0
            if isinstance(event, yaml.DocumentStartEvent):
                root = None
            elif isinstance(event, yaml.DocumentEndEvent):
                documents.append(root)
            elif isinstance(event, yaml.AliasEvent):
                target = anchors.get(event.anchor)
                if target is None:
                    raise _YamlError(f"yaml: unknown anchor '{event.anchor}' referenced")
                node = _YNode("alias", "", event.anchor, "", line)
                node.alias = target
                attach(node)
            elif isinstance(event, yaml.ScalarEvent):
                node = _yaml_scalar_node(event, line)
                if event.anchor:
                    anchors[event.anchor] = node
                attach(node)
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                is_seq = isinstance(event, yaml.SequenceStartEvent)
                tag = event.tag or ""
                explicit = tag not in ("", "!")
                default = "!!seq" if is_seq else "!!map"
                node = _YNode(
                    "seq" if is_seq else "map",
                    _short_tag(tag) if explicit else default,
                    "",
                    "tagged" if explicit else "",
                    line,
                )
                if event.anchor:
                    anchors[event.anchor] = node
                attach(node)
                stack.append(node)
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                stack.pop()
    except yaml.YAMLError as exc:
        raise _yaml_parse_error(exc) from None
    return documents[0] if documents else None


def _yaml_scalar_node(event: Any, line: int) -> _YNode:
    tag = event.tag or ""
    style = event.style or ""
    if tag not in ("", "!"):
        return _YNode("scalar", _short_tag(tag), event.value, "tagged", line)
    if style:
        return _YNode("scalar", "!!str", event.value, style, line)
    if event.value == "<<":
        return _YNode("scalar", "!!merge", event.value, "", line)
    resolved_tag, _ = _yaml_resolve("", event.value)
    return _YNode("scalar", resolved_tag, event.value, "", line)


class _GoTime:
    """A timestamp decoded from an explicit ``!!timestamp`` (JSON-encoded as RFC 3339)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_YAML_SPECIAL = {
    "true": ("!!bool", True),
    "True": ("!!bool", True),
    "TRUE": ("!!bool", True),
    "false": ("!!bool", False),
    "False": ("!!bool", False),
    "FALSE": ("!!bool", False),
    "": ("!!null", None),
    "~": ("!!null", None),
    "null": ("!!null", None),
    "Null": ("!!null", None),
    "NULL": ("!!null", None),
    ".nan": ("!!float", math.nan),
    ".NaN": ("!!float", math.nan),
    ".NAN": ("!!float", math.nan),
    ".inf": ("!!float", math.inf),
    ".Inf": ("!!float", math.inf),
    ".INF": ("!!float", math.inf),
    "+.inf": ("!!float", math.inf),
    "+.Inf": ("!!float", math.inf),
    "+.INF": ("!!float", math.inf),
    "-.inf": ("!!float", -math.inf),
    "-.Inf": ("!!float", -math.inf),
    "-.INF": ("!!float", -math.inf),
    "<<": ("!!merge", "<<"),
}
_RESOLVABLE = ("", "!!str", "!!bool", "!!int", "!!float", "!!null", "!!timestamp")
_INT64 = (-(2**63), 2**63 - 1)


def _go_parse_int(text: str, base: int = 0) -> int | None:
    """Go's ``strconv.ParseInt``/``ParseUint`` accepted syntax (no range check)."""
    sign = 1
    body = text
    if body[:1] in "+-" and body:
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if base == 0:
        base = 10
        lower = body[:2].lower()
        if lower in ("0x", "0o", "0b"):
            base = {"0x": 16, "0o": 8, "0b": 2}[lower]
            body = body[2:]
        elif body.startswith("0") and len(body) > 1:
            base = 8
            body = body[1:]
    allowed = "0123456789abcdef"[:base]
    if not body or any(c not in allowed for c in body.lower()):
        return None
    return sign * int(body, base)


def _yaml_int(text: str) -> int | None:
    """``ParseInt(text, 0, 64)`` then ``ParseUint``: an int64, uint64 or None."""
    value = _go_parse_int(text)
    if value is None:
        return None
    if _INT64[0] <= value <= _INT64[1]:
        return value
    if not text.startswith(("-", "+")) and 0 <= value < 2**64:
        return value
    return None


def _yaml_resolve(tag: str, text: str) -> tuple[str, Any]:
    """go-yaml v3 ``resolve``: the tag and value a scalar resolves to."""
    if tag not in _RESOLVABLE:
        return tag, text
    rtag, out = _yaml_resolve_plain(tag, text)
    if tag in ("", rtag, "!!str"):
        return rtag, out
    if tag == "!!float" and rtag == "!!int":
        return "!!float", float(out)
    raise _YamlError(f"yaml: cannot decode {rtag} `{text}` as a {tag}")


def _yaml_resolve_plain(tag: str, text: str) -> tuple[str, Any]:
    first = text[:1]
    if first == "":
        hint = "N"
    elif first in "+-":
        hint = "S"
    elif first in "0123456789":
        hint = "D"
    elif first in "yYnNtTfFoO~<":
        hint = "M"
    elif first == ".":
        hint = "."
    else:
        hint = ""
    if not hint or tag in ("!!str", "!!binary"):
        return "!!str", text
    special = _YAML_SPECIAL.get(text)
    if special is not None:
        return special
    if hint == ".":
        parsed = _go_parse_float(text)
        if parsed is not None:
            return "!!float", parsed
    elif hint in "DS":
        if tag in ("", "!!timestamp"):
            stamp = _yaml_timestamp(text)
            if stamp is not None:
                return "!!timestamp", stamp
        plain = text.replace("_", "")
        value = _yaml_int(plain)
        if value is not None:
            return "!!int", value
        if _YAML_FLOAT.fullmatch(plain):
            parsed = _go_parse_float(plain)
            if parsed is not None:
                return "!!float", parsed
        for prefix, base in (("0b", 2), ("0o", 8)):
            if plain.startswith(prefix):
                value = _go_parse_int(plain[2:], base)
                if value is not None and value < 2**64:
                    return "!!int", value
            elif plain.startswith("-" + prefix):
                value = _go_parse_int("-" + plain[3:], base)
                if value is not None and value >= _INT64[0]:
                    return "!!int", value
    return "!!str", text


def _go_parse_float(text: str) -> float | None:
    """Go's ``strconv.ParseFloat(text, 64)`` for plain decimal text; None when Go fails
    (bad syntax or out of range)."""
    if not _YAML_FLOAT.fullmatch(text):
        return None
    value = float(text)
    return None if math.isinf(value) else value


_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?P<sep>[Tt ])(\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?"
)


def _yaml_timestamp(text: str) -> str | None:
    """Parse a YAML timestamp like go-yaml v3; the RFC 3339 text Go would marshal, or None."""
    if not re.match(r"\d{4}-", text):
        return None
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        return None
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    sep, zone = m.group("sep"), m.group("zone")
    if sep is not None and (sep == " ") == (zone is not None):
        return None
    try:
        date = datetime.date(year, month, day) if year else datetime.date(2000, month, day)
    except ValueError:
        return None
    if sep is None:
        return f"{year:04d}-{date.month:02d}-{date.day:02d}T00:00:00Z"
    hour, minute, second = int(m.group(5)), int(m.group(6)), int(m.group(7))
    if hour > 23 or minute > 59 or second > 59:
        return None
    frac = (m.group(8) or "")[:9].rstrip("0")
    stamp = datetime.datetime(2000, 1, 1, hour, minute, second)
    offset = 0
    if zone and zone != "Z":
        offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * (1 if zone[0] == "+" else -1)
    frac_text = f".{frac}" if frac else ""
    zone_text = "Z" if offset == 0 else f"{zone[0]}{zone[1:3]}:{zone[4:6]}"  # type: ignore[index]
    return (
        f"{year:04d}-{date.month:02d}-{date.day:02d}T"
        f"{stamp.hour:02d}:{stamp.minute:02d}:{stamp.second:02d}{frac_text}{zone_text}"
    )


def _go_key_string(key: tuple[str, Any]) -> str | None:
    """OPA's ``keyString`` for a decoded map key, or None when it has no string form."""
    kind, value = key
    if kind == "s":
        return value
    if kind == "i":
        return str(value)
    if kind == "f":
        text = _go_format_g(value, 32)
        return {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(text, text)
    if kind == "b":
        return "true" if value else "false"
    return None


def _go_syntax(value: Any) -> str:
    """An approximation of Go's ``%#v`` for decoded YAML values (error messages only)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_format_g(value)
    if isinstance(value, int):
        # Go prints a uint64 (YAML integers beyond int64) in hex under %#v.
        return f"0x{value:x}" if value > _INT64[1] else str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bytes):
        return go_quote(_go_string_from_bytes(value))
    if isinstance(value, _GoTime):
        return value.text
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(_go_syntax(v) for v in value) + "}"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0][1]))
        if all(k[0] == "s" for k in value):
            body = ", ".join(f"{go_quote(k[1])}:{_go_syntax(v)}" for k, v in items)
            return "map[string]interface {}{" + body + "}"
        body = ", ".join(f"{_go_syntax(k[1])}:{_go_syntax(v)}" for k, v in items)
        return "map[interface {}]interface {}{" + body + "}"
    return str(value)


_ALIAS_RATIO_LOW, _ALIAS_RATIO_HIGH = 400000, 4000000


_BAD: Any = object()  # a mapping go-yaml could not decode (see type_errors)


class _YamlDecoder:
    """Decodes a node tree into Python values the way go-yaml v3 fills an ``interface{}``.

    Maps are dicts keyed by ``(kind, value)`` pairs so that ``1``, ``"1"`` and ``true``
    stay distinct keys, as in Go's ``map[interface{}]interface{}``.
    """

    def __init__(self) -> None:
        self.decode_count = 0
        self.alias_count = 0
        self.alias_depth = 0
        self.active_aliases: set[int] = set()
        self.type_errors: list[str] = []

    def decode_document(self, root: _YNode) -> Any:
        """Decode a document; mappings with repeated keys fail it, all reported together."""
        value = self.decode(root)
        if self.type_errors:
            raise _YamlError("yaml: unmarshal errors:\n  " + "\n  ".join(self.type_errors))
        return value

    def decode(self, node: _YNode) -> Any:
        self.decode_count += 1
        if self.alias_depth > 0:
            self.alias_count += 1
        if (
            self.alias_count > 100
            and self.decode_count > 1000
            and self.alias_count / self.decode_count > self._allowed_ratio()
        ):
            raise _YamlError("yaml: document contains excessive aliasing")
        if node.kind == "alias":
            if id(node) in self.active_aliases:
                raise _YamlError(f"yaml: anchor '{node.value}' value contains itself")
            self.active_aliases.add(id(node))
            self.alias_depth += 1
            try:
                return self.decode(node.alias)  # type: ignore[arg-type]
            finally:
                self.alias_depth -= 1
                self.active_aliases.discard(id(node))
        if node.kind == "scalar":
            return self._scalar(node)
        if node.kind == "seq":
            items = (self.decode(child) for child in node.children)
            return [item for item in items if item is not _BAD]
        return self._mapping(node)

    def _allowed_ratio(self) -> float:
        if self.decode_count <= _ALIAS_RATIO_LOW:
            return 0.99
        if self.decode_count >= _ALIAS_RATIO_HIGH:
            return 0.10
        span = _ALIAS_RATIO_HIGH - _ALIAS_RATIO_LOW
        return 0.99 - 0.89 * ((self.decode_count - _ALIAS_RATIO_LOW) / span)

    def _scalar(self, node: _YNode) -> Any:
        if node.tag == "!!str":
            return node.value
        tag, value = _yaml_resolve(node.tag, node.value)
        if tag == "!!binary":
            cleaned = value.replace("\r", "").replace("\n", "")
            try:
                return base64.b64decode(cleaned.encode(), validate=True)
            except (binascii.Error, ValueError):
                raise _YamlError("yaml: !!binary value contains invalid base64 data") from None
        if tag == "!!timestamp":
            return _GoTime(value)
        return value

    def _key(self, node: _YNode, string_map: bool) -> tuple[str, Any] | None:
        """Decode a mapping key; None when Go would leave the entry out."""
        target = node
        while target.kind == "alias" and target.alias is not None:
            target = target.alias
        value = self.decode(node)
        if value is _BAD:
            return None
        if isinstance(value, (list, dict)):
            raise _YamlError(f"yaml: invalid map key: {_go_syntax(value)}")
        if string_map:
            if value is None:
                return None
            if isinstance(value, bytes):
                return ("s", _go_string_from_bytes(value))
            return ("s", target.value)
        if value is None:
            return ("n", None)
        if isinstance(value, bool):
            return ("b", value)
        if isinstance(value, int):
            return ("i", value)
        if isinstance(value, float):
            return ("f", value)
        if isinstance(value, bytes):
            return ("s", _go_string_from_bytes(value))
        if isinstance(value, _GoTime):
            return ("t", value.text)
        return ("s", value)

    def _mapping(self, node: _YNode) -> Any:
        out: dict[tuple[str, Any], Any] = {}
        string_map = all(
            k.kind == "scalar" and k.tag in ("!!str", "!!merge") for k in node.children[::2]
        )
        return out if self._fill(node, out, None, string_map) else _BAD

    def _fill(
        self,
        node: _YNode,
        out: dict[tuple[str, Any], Any],
        merged: set[Any] | None,
        string_map: bool,
    ) -> bool:
        pairs = list(zip(node.children[::2], node.children[1::2], strict=True))
        repeated = [
            f"line {kj.line}: mapping key {go_quote(kj.value)} already defined at line {ki.line}"
            for i, (ki, _) in enumerate(pairs)
            for kj, _ in pairs[i + 1 :]
            if ki.kind == kj.kind and ki.value == kj.value
        ]
        if repeated:
            self.type_errors.extend(repeated)
            return False
        merge_node: _YNode | None = None
        for key_node, value_node in pairs:
            if key_node.kind == "scalar" and key_node.value == "<<" and key_node.tag == "!!merge":
                merge_node = value_node
                continue
            key = self._key(key_node, string_map)
            if key is None:
                continue
            if merged is not None:
                if key in merged:
                    continue
                merged.add(key)
            value = self.decode(value_node)
            if value is not _BAD:
                out[key] = value
        if merge_node is not None:
            self._merge(pairs, merge_node, out, merged, string_map)
        return True

    def _merge(
        self,
        pairs: list[tuple[_YNode, _YNode]],
        merge_node: _YNode,
        out: dict[tuple[str, Any], Any],
        merged: set[Any] | None,
        string_map: bool,
    ) -> None:
        fields = merged
        if fields is None:
            fields = set()
            for key_node, _ in pairs:
                key = self._key(key_node, string_map)
                if key is not None:
                    fields.add(key)
        sources = merge_node.children if merge_node.kind == "seq" else [merge_node]
        for source in sources:
            target = source.alias if source.kind == "alias" else source
            if target is None or target.kind != "map":
                raise _YamlError("yaml: map merge requires map or sequence of maps as the value")
            self.decode_count += 1
            self._fill(target, out, fields, string_map)


def _yaml_normalize(root: _YNode) -> None:
    """OPA's normalisation before decoding: plain timestamps stay strings, several merge
    keys collapse into one, and duplicate scalar keys keep the last value."""
    seen: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.kind == "scalar" and node.tag == "!!timestamp" and node.style == "":
            node.tag = "!!str"
        elif node.kind == "map":
            node.children = _dedupe_keys(_collapse_merge_keys(node.children))
        if node.alias is not None:
            todo.append(node.alias)
        todo.extend(node.children)


def _collapse_merge_keys(content: list[_YNode]) -> list[_YNode]:
    first = -1
    merged: list[_YNode] = []
    for i in range(0, len(content) - 1, 2):
        key = content[i]
        if key.kind != "scalar" or key.tag != "!!merge":
            continue
        if first < 0:
            first = i
        value = content[i + 1]
        if value.kind == "seq":
            merged.extend(value.children)
        else:
            merged.append(value)
    if first < 0 or len(merged) < 2:
        return content
    out: list[_YNode] = []
    for i in range(0, len(content) - 1, 2):
        if i == first:
            seq = _YNode("seq", "!!seq", "", "", content[i + 1].line)
            seq.children = merged
            out.extend((content[i], seq))
        elif not (content[i].kind == "scalar" and content[i].tag == "!!merge"):
            out.extend((content[i], content[i + 1]))
    return out


def _dedupe_keys(content: list[_YNode]) -> list[_YNode]:
    seen: dict[str, int] = {}
    keep = [True] * len(content)
    for i in range(0, len(content) - 1, 2):
        key = content[i]
        if key.kind != "scalar" or key.tag == "!!merge":
            continue
        try:
            decoded = _YamlDecoder()._key(key, False)
        except _YamlError:
            continue
        ident = _go_key_string(decoded)
        if ident is None:
            continue
        if ident in seen:
            content[seen[ident]] = content[i + 1]
            keep[i] = keep[i + 1] = False
            continue
        seen[ident] = i + 1
    return [n for n, k in zip(content, keep, strict=True) if k]


def _yaml_to_rego(value: Any) -> Any:
    """JSON-encode a decoded YAML value as Go would and read it back as a Rego value."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            text = _go_key_string(key)
            if text is None:
                kind = "%!s(<nil>)" if key[0] == "n" else "time.Time"
                shown = "<nil>" if key[0] == "n" else key[1]
                raise _YamlError(
                    f"unsupported map key of type: {kind}, key: {shown}, value: {_go_syntax(item)}"
                )
            out[text] = item
        return {k: _yaml_to_rego(out[k]) for k in sorted(out)}
    if isinstance(value, list):
        return [_yaml_to_rego(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise _YamlError(f"json: unsupported value: {_go_format_g(value)}")
        return _json_number_value(value)
    if isinstance(value, bytes):
        return _go_string_from_bytes(value)
    if isinstance(value, _GoTime):
        return value.text
    raise TypeError(f"unexpected YAML value {value!r}")


def _yaml_unmarshal(text: str) -> Any:
    root = _yaml_first_document(text)
    if root is None:
        return None
    _yaml_normalize(root)
    return _yaml_to_rego(_YamlDecoder().decode_document(root))


def yaml_unmarshal(ctx: EvalContext, x: Any) -> Any:
    """Deserializes the input string as YAML (the first document)."""
    text = string_arg(x, 1)
    try:
        return _yaml_unmarshal(text)
    except _YamlError as exc:
        raise BuiltinError(str(exc)) from None
    except RecursionError:
        raise BuiltinError(_TOO_DEEP) from None


def yaml_is_valid(ctx: EvalContext, x: Any) -> bool:
    """Verifies the input string is a valid YAML document."""
    if type(x) is not str:
        return False
    try:
        _yaml_unmarshal(x)
    except (_YamlError, RecursionError):
        return False
    return True


# --- YAML: emitting like go-yaml v3 (indent 2, unlimited width) --------------------------


def _yaml_printable(cp: int) -> bool:
    return (
        cp == 0x0A
        or 0x20 <= cp <= 0x7E
        or 0xA0 <= cp <= 0xD7FF
        or (0xE000 <= cp <= 0xFFFD and cp != 0xFEFF)
    )


_YAML_BREAKS = "\r\n\x85\u2028\u2029"
_YAML_ESCAPES = {
    0x00: "0",
    0x07: "a",
    0x08: "b",
    0x09: "t",
    0x0A: "n",
    0x0B: "v",
    0x0C: "f",
    0x0D: "r",
    0x1B: "e",
    0x22: '"',
    0x5C: "\\",
    0x85: "N",
    0xA0: "_",
    0x2028: "L",
    0x2029: "P",
}


class _ScalarAnalysis:
    __slots__ = ("block", "multiline", "plain", "single")

    def __init__(self, value: str) -> None:
        if not value:
            self.multiline = False
            self.plain = True
            self.single = True
            self.block = False
            return
        block_ind = False
        line_breaks = special = tabs = False
        leading_space = leading_break = trailing_space = trailing_break = False
        break_space = space_break = False
        previous_space = previous_break = False
        if value.startswith(("---", "...")):
            block_ind = True
        preceded_by_ws = True
        last = len(value) - 1
        for i, ch in enumerate(value):
            followed_by_ws = i == last or value[i + 1] in " \t"
            if i == 0:
                if ch in "#,[]{}&*!|>'\"%@`" or (ch in "?:-" and followed_by_ws):
                    block_ind = True
            elif (ch == ":" and followed_by_ws) or (ch == "#" and preceded_by_ws):
                block_ind = True
            if ch == "\t":
                tabs = True
            elif not _yaml_printable(ord(ch)):
                special = True
            if ch == " ":
                if i == 0:
                    leading_space = True
                if i == last:
                    trailing_space = True
                if previous_break:
                    break_space = True
                previous_space, previous_break = True, False
            elif ch in _YAML_BREAKS:
                line_breaks = True
                if i == 0:
                    leading_break = True
                if i == last:
                    trailing_break = True
                if previous_space:
                    space_break = True
                previous_space, previous_break = False, True
            else:
                previous_space = previous_break = False
            preceded_by_ws = ch in " \t\x00" + _YAML_BREAKS
        self.multiline = line_breaks
        self.plain = self.single = self.block = True
        if leading_space or leading_break or trailing_space or trailing_break:
            self.plain = False
        if trailing_space:
            self.block = False
        if break_space:
            self.plain = self.single = False
        if space_break or tabs or special:
            self.plain = self.single = False
        if space_break or special:
            self.block = False
        if line_breaks or block_ind:
            self.plain = False


def _yaml_key_less(a: str, b: str) -> bool:
    """go-yaml's ordering of string map keys (digit runs compare numerically)."""
    digits = False
    for i in range(min(len(a), len(b))):
        ca, cb = a[i], b[i]
        if ca == cb:
            digits = ca.isdecimal()
            continue
        la, lb = ca.isalpha(), cb.isalpha()
        if la and lb:
            return ca < cb
        if la or lb:
            return la if digits else lb
        an = bn = 0
        if ca == "0" or cb == "0":
            j = i - 1
            while j >= 0 and a[j].isdecimal():
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and a[ai].isdecimal():
            an = _wrap_int64(an * 10 + ord(a[ai]) - 48)
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdecimal():
            bn = _wrap_int64(bn * 10 + ord(b[bi]) - 48)
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ca < cb
    return len(a) < len(b)


def _wrap_int64(n: int) -> int:
    n &= 0xFFFFFFFFFFFFFFFF
    return n - (1 << 64) if n >= 1 << 63 else n


def _yaml_key_order(keys: list[str]) -> list[str]:
    import functools

    def cmp(a: str, b: str) -> int:
        if _yaml_key_less(a, b):
            return -1
        if _yaml_key_less(b, a):
            return 1
        return 0

    return sorted(keys, key=functools.cmp_to_key(cmp))


_PLAIN, _SINGLE, _DOUBLE, _LITERAL = "plain", "single", "double", "literal"


class _YamlEmitter:
    """The subset of go-yaml v3's emitter reached by marshalling JSON-like data."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.column = 0
        self.whitespace = True
        self.indention = True
        self.indent = -1
        self.indents: list[int] = []

    def text(self) -> str:
        return "".join(self.out)

    # low-level writers

    def _put(self, text: str) -> None:
        self.out.append(text)
        self.column += len(text)

    def _put_break(self) -> None:
        self.out.append("\n")
        self.column = 0
        self.indention = True

    def _write_indent(self) -> None:
        indent = max(self.indent, 0)
        if (
            not self.indention
            or self.column > indent
            or (self.column == indent and not self.whitespace)
        ):
            self._put_break()
        if self.column < indent:
            self._put(" " * (indent - self.column))
        self.whitespace = True

    def _indicator(self, text: str, need_ws: bool, is_ws: bool, is_indention: bool) -> None:
        if need_ws and not self.whitespace:
            self._put(" ")
        self._put(text)
        self.whitespace = is_ws
        self.indention = self.indention and is_indention

    def _increase_indent(self, flow: bool, in_sequence_item: bool) -> None:
        self.indents.append(self.indent)
        if self.indent < 0:
            self.indent = 2 if flow else 0
        elif in_sequence_item:
            self.indent += 2
        else:
            self.indent = 2 * ((self.indent + 2) // 2)

    def _pop_indent(self) -> None:
        self.indent = self.indents.pop()

    # document

    def document(self, value: Any) -> str:
        self.node(value, in_sequence_item=False, simple_key=False)
        self.indent = -1
        self._write_indent()
        return self.text()

    def node(self, value: Any, in_sequence_item: bool, simple_key: bool) -> None:
        if isinstance(value, dict):
            self._mapping(value, in_sequence_item)
        elif isinstance(value, list):
            self._sequence(value, in_sequence_item)
        else:
            text, style = _yaml_scalar_repr(value)
            self.scalar(text, style, in_sequence_item, simple_key)

    def _sequence(self, items: list[Any], in_sequence_item: bool) -> None:
        if not items:
            self._indicator("[", True, True, False)
            self._indicator("]", False, False, False)
            return
        self._increase_indent(False, in_sequence_item)
        for item in items:
            self._write_indent()
            self._indicator("-", True, False, True)
            self.node(item, in_sequence_item=True, simple_key=False)
        self._pop_indent()

    def _mapping(self, mapping: dict[str, Any], in_sequence_item: bool) -> None:
        if not mapping:
            self._indicator("{", True, True, False)
            self._indicator("}", False, False, False)
            return
        self._increase_indent(False, in_sequence_item)
        for key in _yaml_key_order(list(mapping)):
            self._write_indent()
            key_text, key_style = _yaml_scalar_repr(key)
            if len(key_text.encode()) <= 128 and not _ScalarAnalysis(key_text).multiline:
                self.scalar(key_text, key_style, False, simple_key=True)
                self._indicator(":", False, False, False)
            else:
                self._indicator("?", True, False, True)
                self.scalar(key_text, key_style, False, simple_key=False)
                self._write_indent()
                self._indicator(":", True, False, True)
            self.node(mapping[key], in_sequence_item=False, simple_key=False)
        self._pop_indent()

    # scalars

    def scalar(self, value: str, style: str, in_sequence_item: bool, simple_key: bool) -> None:
        analysis = _ScalarAnalysis(value)
        if simple_key and analysis.multiline:
            style = _DOUBLE
        if style == _PLAIN and (not analysis.plain or (not value and simple_key)):
            style = _SINGLE
        if style == _SINGLE and not analysis.single:
            style = _DOUBLE
        if style == _LITERAL and (not analysis.block or simple_key):
            style = _DOUBLE
        self._increase_indent(True, in_sequence_item)
        if style == _PLAIN:
            if value and not self.whitespace:
                self._put(" ")
            self._put(value)
            if value:
                self.whitespace = False
            self.indention = False
        elif style == _SINGLE:
            self._single_quoted(value)
        elif style == _DOUBLE:
            self._double_quoted(value)
        else:
            self._literal(value)
        self._pop_indent()

    def _single_quoted(self, value: str) -> None:
        self._indicator("'", True, False, False)
        breaks = False
        for ch in value:
            if ch in _YAML_BREAKS:
                if not breaks and ch == "\n":
                    self._put_break()
                self._write_break(ch)
                breaks = True
            else:
                if breaks:
                    self._write_indent()
                self._put("''" if ch == "'" else ch)
                self.indention = False
                breaks = False
        self._indicator("'", False, False, False)
        self.whitespace = False
        self.indention = False

    def _write_break(self, ch: str) -> None:
        if ch == "\n":
            self._put_break()
        else:
            self.out.append(ch)
            self.column = 0
            self.indention = True

    def _double_quoted(self, value: str) -> None:
        self._indicator('"', True, False, False)
        parts: list[str] = []
        for ch in value:
            cp = ord(ch)
            if not _yaml_printable(cp) or cp == 0xFEFF or ch in _YAML_BREAKS or ch in '"\\':
                short = _YAML_ESCAPES.get(cp)
                if short is not None:
                    parts.append("\\" + short)
                elif cp <= 0xFF:
                    parts.append(f"\\x{cp:02X}")
                elif cp <= 0xFFFF:
                    parts.append(f"\\u{cp:04X}")
                else:
                    parts.append(f"\\U{cp:08X}")
            else:
                parts.append(ch)
        self._put("".join(parts))
        self._indicator('"', False, False, False)
        self.whitespace = False
        self.indention = False

    def _literal(self, value: str) -> None:
        self._indicator("|", True, False, False)
        if value[:1] in (" ", *_YAML_BREAKS):
            self._indicator("2", False, False, False)
        chomp = ""
        if not value or value[-1] not in _YAML_BREAKS:
            chomp = "-"
        elif len(value) == 1 or value[-2] in _YAML_BREAKS:
            chomp = "+"
        if chomp:
            self._indicator(chomp, False, False, False)
        self._put_break()
        self.whitespace = True
        breaks = True
        for ch in value:
            if ch in _YAML_BREAKS:
                self._write_break(ch)
                breaks = True
            else:
                if breaks:
                    self._write_indent()
                self._put(ch)
                self.indention = False
                breaks = False


_BASE60_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_YAML11_BOOLS = frozenset(
    "y Y yes Yes YES on On ON n N no No NO off Off OFF".split()  # noqa: SIM905
)


def _yaml_scalar_repr(value: Any) -> tuple[str, str]:
    """Text and requested style of a scalar, as go-yaml v3's encoder picks them."""
    if value is None:
        return "null", _PLAIN
    if isinstance(value, bool):
        return ("true" if value else "false"), _PLAIN
    if isinstance(value, int):
        return str(value), _PLAIN
    if isinstance(value, float):
        text = _go_format_g(value)
        return {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(text, text), _PLAIN
    if "\n" in value:
        return value, _LITERAL
    tag, _ = _yaml_resolve_plain("", value)
    base60 = bool(value) and value[0] in "+-0123456789" and ":" in value
    if base60:
        base60 = _BASE60_FLOAT.fullmatch(value) is not None
    old_bool = value in _YAML11_BOOLS
    if tag == "!!str" and not base60 and not old_bool:
        return value, _PLAIN
    return value, _DOUBLE


def _yaml_plain_data(value: Any) -> Any:
    """Strip the decoder's key tags: the JSON-derived tree has string keys only."""
    if isinstance(value, dict):
        return {key[1]: _yaml_plain_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_yaml_plain_data(v) for v in value]
    return value


def yaml_marshal(ctx: EvalContext, x: Any) -> str:
    """Serializes the input term to YAML."""
    try:
        root = _yaml_first_document(go_json_dumps(x))
        data = None if root is None else _YamlDecoder().decode_document(root)
        return _YamlEmitter().document(_yaml_plain_data(data))
    except _YamlError as exc:
        raise BuiltinError(str(exc)) from None
    except RecursionError:
        raise BuiltinError(_TOO_DEEP) from None


# --- JSON Schema (OPA's fork of gojsonschema) -------------------------------------------
#
# A schema compiles into _SubSchema nodes the way gojsonschema parses it (drafts 4, 6, 7 or
# its default "hybrid" mode, picked from "$schema"), then validation walks document and
# schema in gojsonschema's order. Error order and the score used to pick the most
# relevant failing branch of anyOf/oneOf/contains follow it too; where Go iterates a map
# (object properties, patternProperties, dependencies) keys are taken in sorted order.


class _SchemaError(Exception):
    """The schema does not compile; ``str()`` is gojsonschema's message."""


class _Num:
    """A JSON number kept as its text, as Go's decoder does with ``UseNumber``."""

    __slots__ = ("frac", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.frac = Fraction(Decimal(text))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _load_json(text: str) -> Any:
    import json

    return json.loads(text, parse_int=_Num, parse_float=_Num, parse_constant=_reject_constant)


def _schema_input(value: Any) -> Any:
    """The JSON document OPA hands gojsonschema for a builtin argument."""
    if type(value) is str:
        try:
            return _load_json(value)
        except (ValueError, InvalidOperation):
            raise _SchemaError("invalid JSON string") from None
    if type(value) in (dict, list):
        return _load_json(go_json_dumps(value))
    raise _SchemaError("wrong type, expected string or object")


_DRAFT4, _DRAFT6, _DRAFT7, _HYBRID = 4, 6, 7, 2**31 - 1
_DRAFT_URLS = {
    "http://json-schema.org/draft-04/schema": _DRAFT4,
    "http://json-schema.org/draft-06/schema": _DRAFT6,
    "http://json-schema.org/draft-07/schema": _DRAFT7,
}
_JSON_TYPES = ("array", "boolean", "integer", "number", "null", "object", "string")


def _tpl(template: str, **details: Any) -> str:
    """Fill a gojsonschema message template (``{{.name}}`` placeholders)."""
    return re.sub(r"\{\{\.(\w+)\}\}", lambda m: _tpl_value(details.get(m.group(1))), template)


def _tpl_value(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(str(v) for v in value) + "]"
    if isinstance(value, Fraction):
        return _big_float_text(value)
    return str(value)


def _big_float_text(value: Fraction) -> str:
    """``%v`` of a ``big.Float`` made from a rational: shortest digits, Go's %g layout."""
    if value == 0:
        return "0"
    dec = Decimal(value.numerator) / Decimal(value.denominator)
    sign, digits_tuple, exponent = dec.normalize().as_tuple()
    digits = "".join(str(d) for d in digits_tuple)
    if len(digits) > 19:
        digits, dp = _shortest_digits(float(value))
    else:
        dp = len(digits) + int(exponent)
    exp = dp - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{prefix}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return f"{prefix}{digits}{'0' * (dp - len(digits))}"
    return f"{prefix}{digits[:dp]}.{digits[dp:]}"


def _invalid_type(expected: str, given: str) -> _SchemaError:
    return _SchemaError(
        _tpl(
            "Invalid type. Expected: {{.expected}}, given: {{.given}}",
            expected=expected,
            given=given,
        )
    )


def _must_be_of_a(x: str, y: str) -> _SchemaError:
    return _SchemaError(f"{x} must be of a {y}")


def _must_be_of_an(x: str, y: str) -> _SchemaError:
    return _SchemaError(f"{x} must be of an {y}")


def _go_json_float(value: float) -> str:
    """Go's ``encoding/json`` text for a float64."""
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, dp = _shortest_digits(value)
    sign = "-" if value < 0 else ""
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        exp = dp - 1
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp_text = f"{abs(exp):02d}" if exp >= 0 else str(-exp)
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{exp_text}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return f"{sign}{digits}{'0' * (dp - len(digits))}"
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def _marshal_without_number(value: Any) -> str:
    """gojsonschema's canonical JSON for const/enum/uniqueItems (numbers as float64)."""
    if isinstance(value, _Num):
        number = float(value.frac)
        if math.isinf(number):
            raise _SchemaError(
                f"json: cannot unmarshal number {value.text} into Go value of type float64"
            )
        return _go_json_float(number)
    if isinstance(value, dict):
        items = sorted(value.items())
        return (
            "{"
            + ",".join(f"{_json_string(k)}:{_marshal_without_number(v)}" for k, v in items)
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_marshal_without_number(v) for v in value) + "]"
    if isinstance(value, str):
        return _json_string(value)
    if value is None:
        return "null"
    return "true" if value else "false"


def _schema_int(value: Any) -> int | None:
    """gojsonschema's ``mustBeInteger``: an integral number written without a fraction."""
    if not isinstance(value, _Num) or value.frac.denominator != 1:
        return None
    if not re.fullmatch(r"-?[0-9]+", value.text):
        return None
    number = int(value.text)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


class _Ref:
    """A JSON reference: URL text without fragment, plus the fragment (a JSON pointer)."""

    __slots__ = ("fragment", "url")

    def __init__(self, url: str, fragment: str) -> None:
        self.url = url
        self.fragment = fragment

    @classmethod
    def parse(cls, text: str) -> _Ref:
        url, _, fragment = text.partition("#")
        return cls(url, _percent_decode(fragment))

    def __str__(self) -> str:
        return self.url + ("#" + self.fragment if self.fragment else "")

    def canonical(self) -> bool:
        scheme, _, rest = self.url.partition(":")
        if not _URL_SCHEME.fullmatch(scheme) or not rest:
            return False
        if scheme.lower() == "file":
            return rest.startswith("/")
        return rest.startswith("//") and len(rest.split("/")[2]) > 0

    def resolve(self, child: _Ref) -> _Ref:
        """Go's ``URL.ResolveReference`` of ``child`` against this URL (fragment dropped)."""
        c_scheme, c_auth, c_path, c_query = _split_url(child.url)
        b_scheme, b_auth, b_path, b_query = _split_url(self.url)
        if c_scheme or c_auth is not None:
            path = _resolve_path(c_path, "") if c_path else ""
            return _Ref(_join_url(c_scheme or b_scheme, c_auth, path, c_query), child.fragment)
        if not c_path and c_query is None:
            c_query = b_query
        path = _resolve_path(b_path, c_path)
        return _Ref(_join_url(b_scheme, b_auth, path, c_query), child.fragment)


_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")


def _percent_decode(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def _split_url(url: str) -> tuple[str, str | None, str, str | None]:
    scheme = ""
    m = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", url)
    if m:
        scheme, url = m.group(1).lower(), url[m.end() :]
    url, query_mark, query = url.partition("?")
    authority: str | None = None
    if url.startswith("//"):
        end = url.find("/", 2)
        authority, url = (url[2:], "") if end < 0 else (url[2:end], url[end:])
    return scheme, authority, url, (query if query_mark else None)


def _join_url(scheme: str, authority: str | None, path: str, query: str | None) -> str:
    out = f"{scheme}:" if scheme else ""
    if authority is not None:
        out += "//" + authority
        if path and not path.startswith("/"):
            path = "/" + path
    out += path
    if query is not None:
        out += "?" + query
    return out


def _resolve_path(base: str, ref: str) -> str:
    if not ref:
        full = base
    elif not ref.startswith("/"):
        full = base[: base.rfind("/") + 1] + ref
    else:
        full = ref
    if not full:
        return ""
    out: list[str] = []
    segments = full.split("/")
    for i, seg in enumerate(segments):
        if seg == ".":
            if i == len(segments) - 1:
                out.append("")
        elif seg == "..":
            if len(out) > 1:
                out.pop()
            if i == len(segments) - 1:
                out.append("")
        else:
            out.append(seg)
    joined = "/".join(out)
    return "/" + joined.lstrip("/")


def _pointer_get(document: Any, pointer: str) -> Any:
    """Follow a JSON pointer like gojsonpointer (errors carry its messages)."""
    if not pointer:
        return document
    if not pointer.startswith("/"):
        raise _SchemaError('JSON pointer must be empty or start with a "/')
    node = document
    for token in pointer[1:].split("/"):
        if isinstance(node, dict):
            key = token.replace("~1", "/").replace("~0", "~")
            if key not in node:
                raise _SchemaError(f"Object has no key '{key}'")
            node = node[key]
        elif isinstance(node, list):
            if not re.fullmatch(r"[+-]?[0-9]+", token):
                raise _SchemaError(f"Invalid array index '{token}'")
            index = int(token)
            if not 0 <= index < len(node):
                raise _SchemaError(f"Out of bound array[0,{len(node)}] index '{index}'")
            node = node[index]
        else:
            raise _SchemaError(f"Invalid token reference '{token}'")
    return node


def _schema_url_draft(document: Any) -> int | None:
    """The draft named by ``$schema`` (None: not one of 4, 6, 7 or absent)."""
    if isinstance(document, bool):
        return None
    if not isinstance(document, dict):
        raise _SchemaError("schema is invalid")
    if "$schema" not in document:
        return None
    value = document["$schema"]
    if not isinstance(value, str):
        raise _SchemaError("$schema must be of type string")
    return _DRAFT_URLS.get(_Ref.parse(value).url)


class _SubSchema:
    __slots__ = (
        "additional_items",
        "additional_properties",
        "all_of",
        "any_of",
        "const",
        "contains",
        "dependencies",
        "draft",
        "else_",
        "enum",
        "exclusive_maximum",
        "exclusive_minimum",
        "format",
        "if_",
        "items",
        "items_single",
        "max_items",
        "max_length",
        "max_properties",
        "maximum",
        "min_items",
        "min_length",
        "min_properties",
        "minimum",
        "multiple_of",
        "not_",
        "one_of",
        "parent",
        "pass_",
        "pattern",
        "pattern_properties",
        "properties",
        "property",
        "property_names",
        "ref_schema",
        "required",
        "then",
        "types",
        "unique_items",
    )

    def __init__(self, prop: str, parent: _SubSchema | None, draft: int | None = None) -> None:
        self.property = prop
        self.parent = parent
        self.draft = draft
        self.pass_: bool | None = None
        self.types: list[str] = []
        self.ref_schema: _SubSchema | None = None
        self.items: list[_SubSchema] = []
        self.items_single = False
        self.properties: list[_SubSchema] = []
        self.multiple_of: Fraction | None = None
        self.maximum: Fraction | None = None
        self.exclusive_maximum: Fraction | None = None
        self.minimum: Fraction | None = None
        self.exclusive_minimum: Fraction | None = None
        self.min_length: int | None = None
        self.max_length: int | None = None
        self.pattern: Any = None
        self.format = ""
        self.min_properties: int | None = None
        self.max_properties: int | None = None
        self.required: list[str] = []
        self.dependencies: dict[str, Any] = {}
        self.additional_properties: Any = None
        self.pattern_properties: dict[str, _SubSchema] = {}
        self.property_names: _SubSchema | None = None
        self.min_items: int | None = None
        self.max_items: int | None = None
        self.unique_items = False
        self.contains: _SubSchema | None = None
        self.additional_items: Any = None
        self.const: str | None = None
        self.enum: list[str] | None = None
        self.one_of: list[_SubSchema] = []
        self.any_of: list[_SubSchema] = []
        self.all_of: list[_SubSchema] = []
        self.not_: _SubSchema | None = None
        self.if_: _SubSchema | None = None
        self.then: _SubSchema | None = None
        self.else_: _SubSchema | None = None

    def types_text(self) -> str:
        if len(self.types) > 1:
            return "[" + ",".join(self.types) + "]"
        return self.types[0] if self.types else "Undefined"


class _SchemaCompiler:
    """Parses a schema document into :class:`_SubSchema` nodes, resolving ``$ref``."""

    def __init__(self) -> None:
        self.pool: dict[str, tuple[Any, int | None]] = {}
        self.ref_pool: dict[str, _SubSchema] = {}

    def compile(self, document: Any) -> _SubSchema:
        root_ref = _Ref("", "")
        draft = _schema_url_draft(document)
        self._register(document, root_ref, draft)
        self.pool[str(root_ref)] = (document, draft)
        root = _SubSchema("(Root)", None, draft if draft is not None else _HYBRID)
        self._parse(document, root)
        return root

    # the document pool: subschemas addressable by "$id", "$ref" made absolute

    def _register(self, node: Any, base: _Ref, draft: int | None) -> None:
        if isinstance(node, list):
            for item in node:
                self._register(item, base, draft)
            return
        if not isinstance(node, dict):
            return
        local = base
        key_id = "id" if "id" in node else "$id"
        ident = node.get(key_id)
        if isinstance(ident, str):
            local = base.resolve(_Ref.parse(ident))
            if str(local) in self.pool:
                raise _SchemaError(f'Reference already exists: "{local}"')
            self.pool[str(local)] = (node, draft)
        ref = node.get("$ref")
        if isinstance(ref, str):
            node["$ref"] = str(local.resolve(_Ref.parse(ref)))
        for key, value in node.items():
            if key in ("const", "enum"):
                continue
            if key in ("properties", "dependencies", "patternProperties"):
                if isinstance(value, dict):
                    for child in value.values():
                        self._register(child, local, draft)
            else:
                self._register(value, local, draft)

    def _document(self, ref: _Ref) -> tuple[Any, int | None]:
        found = self.pool.get(str(ref))
        if found is not None:
            return found
        base = self.pool.get(ref.url)
        if base is not None:
            entry = (_pointer_get(base[0], ref.fragment), base[1])
            self.pool[str(ref)] = entry
            return entry
        if not ref.canonical():
            raise _SchemaError(f"Reference {ref} must be canonical")
        raise _SchemaError(f"remote reference loading disabled: {ref}")

    # parsing

    def _parse(self, node: Any, schema: _SubSchema) -> None:
        if schema.draft is None:
            schema.draft = schema.parent.draft  # type: ignore[union-attr]
        draft = schema.draft
        if draft >= _DRAFT6 and isinstance(node, bool):
            schema.pass_ = node
            return
        if not isinstance(node, dict):
            raise _SchemaError("Expected: Valid Schema, given: Invalid JSON")
        key_id = "id" if draft == _DRAFT4 or (draft == _HYBRID and "id" in node) else "$id"
        self._string(node, key_id)
        if "definitions" in node:
            definitions = node["definitions"]
            if not isinstance(definitions, dict):
                raise _invalid_type("Array Of Schemas", "definitions")
            for value in definitions.values():
                if not isinstance(value, (bool, dict)):
                    raise _invalid_type("Array Of Schemas", "definitions")
                self._parse(value, _SubSchema("definitions", schema))
        self._string(node, "title")
        self._string(node, "description")
        ref = self._string(node, "$ref")
        if ref is not None:
            key = str(_Ref.parse(ref))
            if key in self.ref_pool:
                schema.ref_schema = self.ref_pool[key]
            else:
                self._parse_reference(_Ref.parse(ref), schema)
                return
        self._parse_types(node, schema)
        self._parse_object_keywords(node, schema)
        self._parse_array_keywords(node, schema)
        self._parse_number_keywords(node, schema)
        self._parse_string_keywords(node, schema)
        self._parse_more_object_keywords(node, schema)
        self._parse_items_etc(node, schema)
        self._parse_combinators(node, schema)

    def _parse_reference(self, ref: _Ref, schema: _SubSchema) -> None:
        target = _SubSchema("$ref", schema)
        self.ref_pool.setdefault(str(ref), target)
        document, draft = self._document(ref)
        target.draft = draft
        if not isinstance(document, (bool, dict)):
            raise _SchemaError("Valid Schema must be of type object")
        self._parse(document, target)
        schema.ref_schema = target

    @staticmethod
    def _string(node: dict[str, Any], key: str) -> str | None:
        if key not in node:
            return None
        value = node[key]
        if not isinstance(value, str):
            raise _invalid_type("string", key)
        return value

    @staticmethod
    def _slice(node: dict[str, Any], key: str) -> list[Any] | None:
        if key not in node:
            return None
        value = node[key]
        if not isinstance(value, list):
            raise _must_be_of_an(key, "array")
        return value

    def _child(self, value: Any, prop: str, parent: _SubSchema) -> _SubSchema:
        child = _SubSchema(prop, parent)
        self._parse(value, child)
        return child

    def _parse_types(self, node: dict[str, Any], schema: _SubSchema) -> None:
        if "type" not in node:
            return
        value = node["type"]
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list):
            raise _invalid_type("type", "string/Array Of Strings")
        for name in names:
            if not isinstance(name, str):
                raise _invalid_type("type", "string/Array Of Strings")
            if name not in _JSON_TYPES:
                raise _SchemaError(
                    _tpl(
                        "has a primitive type that is NOT VALID -- given: {{.given}} "
                        "Expected valid values are:{{.expected}}",
                        given=f"/{name}/",
                        expected=_JSON_TYPES,
                    )
                )
            if name in schema.types:
                raise _SchemaError(f"{name} type is duplicated")
            schema.types.append(name)

    def _parse_object_keywords(self, node: dict[str, Any], schema: _SubSchema) -> None:
        if "properties" in node:
            properties = node["properties"]
            if not isinstance(properties, dict):
                raise _SchemaError("Properties must be of type object")
            for name in sorted(properties):
                schema.properties.append(self._child(properties[name], name, schema))
        if "additionalProperties" in node:
            value = node["additionalProperties"]
            if isinstance(value, bool):
                schema.additional_properties = value
            elif isinstance(value, dict):
                schema.additional_properties = self._child(value, "additionalProperties", schema)
            else:
                raise _invalid_type("boolean/Valid Schema", "additionalProperties")
        if "patternProperties" in node:
            patterns = node["patternProperties"]
            if not isinstance(patterns, dict):
                raise _invalid_type("Valid Schema", "patternProperties")
            for pattern in sorted(patterns):
                try:
                    compile_go_regexp(pattern)
                except GoRegexpError:
                    raise _SchemaError(f"Invalid regex pattern '{pattern}'") from None
                schema.pattern_properties[pattern] = self._child(patterns[pattern], pattern, schema)
        if "propertyNames" in node and schema.draft >= _DRAFT6:  # type: ignore[operator]
            value = node["propertyNames"]
            if not isinstance(value, (bool, dict)):
                raise _invalid_type("Valid Schema", "patternProperties")
            schema.property_names = self._child(value, "propertyNames", schema)
        if "dependencies" in node:
            self._parse_dependencies(node["dependencies"], schema)

    def _parse_dependencies(self, value: Any, schema: _SubSchema) -> None:
        if not isinstance(value, dict):
            raise _SchemaError("dependencies must be of type object")
        bad = _SchemaError("Dependency must be of type Schema Or Array Of Strings")
        for name in sorted(value):
            dep = value[name]
            if isinstance(dep, list):
                names: list[str] = []
                for item in dep:
                    if not isinstance(item, str):
                        raise bad
                    names.append(item)
                    schema.dependencies[name] = list(names)
            elif isinstance(dep, (bool, dict)):
                schema.dependencies[name] = self._child(dep, name, schema)
            else:
                raise bad

    def _parse_array_keywords(self, node: dict[str, Any], schema: _SubSchema) -> None:
        if "items" in node:
            items = node["items"]
            if isinstance(items, list):
                for item in items:
                    if not isinstance(item, (dict, bool)):
                        raise _invalid_type("Valid Schema/Array Of Schemas", "items")
                    schema.items.append(self._child(item, "items", schema))
                    schema.items_single = False
            elif isinstance(items, (dict, bool)):
                schema.items.append(self._child(items, "items", schema))
                schema.items_single = True
            else:
                raise _invalid_type("Valid Schema/Array Of Schemas", "items")
        if "additionalItems" in node:
            value = node["additionalItems"]
            if isinstance(value, bool):
                schema.additional_items = value
            elif isinstance(value, dict):
                schema.additional_items = self._child(value, "additionalItems", schema)
            else:
                raise _invalid_type("boolean/Valid Schema", "additionalItems")

    def _parse_number_keywords(self, node: dict[str, Any], schema: _SubSchema) -> None:
        draft = schema.draft
        if "multipleOf" in node:
            value = node["multipleOf"]
            if not isinstance(value, _Num):
                raise _invalid_type("Number", "multipleOf")
            if value.frac <= 0:
                raise _SchemaError("multipleOf must be strictly greater than 0")
            schema.multiple_of = value.frac
        for key, bound, exclusive in (
            ("minimum", "minimum", "exclusiveMinimum"),
            ("maximum", "maximum", "exclusiveMaximum"),
        ):
            if key in node:
                value = node[key]
                if not isinstance(value, _Num):
                    raise _must_be_of_a(key, "Number")
                setattr(schema, bound, value.frac)
            if exclusive not in node:
                continue
            value = node[exclusive]
            attr = "exclusive_minimum" if key == "minimum" else "exclusive_maximum"
            if draft == _DRAFT4 or (draft == _HYBRID and isinstance(value, bool)):
                if not isinstance(value, bool):
                    raise _invalid_type("boolean", exclusive)
                if getattr(schema, bound) is None:
                    raise _SchemaError(f"{exclusive} cannot be used without {key}")
                if value:
                    setattr(schema, attr, getattr(schema, bound))
                    setattr(schema, bound, None)
            elif isinstance(value, _Num):
                setattr(schema, attr, value.frac)
            elif draft == _HYBRID:
                raise _invalid_type("boolean/number", exclusive)
            else:
                raise _invalid_type("number", exclusive)

    def _non_negative(self, node: dict[str, Any], key: str) -> int | None:
        if key not in node:
            return None
        value = _schema_int(node[key])
        if value is None:
            raise _must_be_of_an(key, "integer")
        if value < 0:
            raise _SchemaError(f"{key} must be greater than or equal to 0")
        return value

    def _parse_string_keywords(self, node: dict[str, Any], schema: _SubSchema) -> None:
        schema.min_length = self._non_negative(node, "minLength")
        schema.max_length = self._non_negative(node, "maxLength")
        if (
            schema.min_length is not None
            and schema.max_length is not None
            and schema.min_length > schema.max_length
        ):
            raise _SchemaError("minLength cannot be greater than maxLength")
        pattern = self._string(node, "pattern")
        if pattern is not None:
            try:
                schema.pattern = compile_go_regexp(pattern)
            except GoRegexpError:
                raise _SchemaError("pattern must be a valid regex") from None
        fmt = self._string(node, "format")
        if fmt is not None:
            schema.format = fmt

    def _parse_more_object_keywords(self, node: dict[str, Any], schema: _SubSchema) -> None:
        schema.min_properties = self._non_negative(node, "minProperties")
        schema.max_properties = self._non_negative(node, "maxProperties")
        if (
            schema.min_properties is not None
            and schema.max_properties is not None
            and schema.min_properties > schema.max_properties
        ):
            raise _SchemaError("minProperties cannot be greater than maxProperties")
        for item in self._slice(node, "required") or []:
            if not isinstance(item, str):
                raise _invalid_type("string", "required")
            if item in schema.required:
                raise _SchemaError("required items must be unique")
            schema.required.append(item)

    def _parse_items_etc(self, node: dict[str, Any], schema: _SubSchema) -> None:
        draft = schema.draft
        schema.min_items = self._non_negative(node, "minItems")
        schema.max_items = self._non_negative(node, "maxItems")
        if "uniqueItems" in node:
            value = node["uniqueItems"]
            if not isinstance(value, bool):
                raise _must_be_of_a("uniqueItems", "boolean")
            schema.unique_items = value
        if "contains" in node and draft >= _DRAFT6:  # type: ignore[operator]
            schema.contains = self._child(node["contains"], "contains", schema)
        if "const" in node and draft >= _DRAFT6:  # type: ignore[operator]
            schema.const = _marshal_without_number(node["const"])
        enum = self._slice(node, "enum")
        if enum is not None:
            schema.enum = []
            for item in enum:
                text = _marshal_without_number(item)
                if text in schema.enum:
                    raise _SchemaError("enum items must be unique")
                schema.enum.append(text)

    def _parse_combinators(self, node: dict[str, Any], schema: _SubSchema) -> None:
        for key, attr in (("oneOf", "one_of"), ("anyOf", "any_of"), ("allOf", "all_of")):
            for item in self._slice(node, key) or []:
                getattr(schema, attr).append(self._child(item, key, schema))
        if "not" in node:
            value = node["not"]
            if not isinstance(value, (bool, dict)):
                raise _must_be_of_an("not", "object")
            schema.not_ = self._child(value, "not", schema)
        if schema.draft >= _DRAFT7:  # type: ignore[operator]
            for key, attr in (("if", "if_"), ("then", "then"), ("else", "else_")):
                if key in node:
                    value = node[key]
                    if not isinstance(value, (bool, dict)):
                        raise _must_be_of_an(key, "object")
                    setattr(schema, attr, self._child(value, key, schema))


_SCHEMA_MESSAGES = {
    "false": "False always fails validation",
    "required": "{{.property}} is required",
    "invalid_type": "Invalid type. Expected: {{.expected}}, given: {{.given}}",
    "number_any_of": "Must validate at least one schema (anyOf)",
    "number_one_of": "Must validate one and only one schema (oneOf)",
    "number_all_of": "Must validate all the schemas (allOf)",
    "number_not": "Must not validate the schema (not)",
    "missing_dependency": "Has a dependency on {{.dependency}}",
    "const": "{{.field}} does not match: {{.allowed}}",
    "enum": "{{.field}} must be one of the following: {{.allowed}}",
    "array_no_additional_items": "No additional items allowed on array",
    "array_min_items": "Array must have at least {{.min}} items",
    "array_max_items": "Array must have at most {{.max}} items",
    "unique": "{{.type}} items[{{.i}},{{.j}}] must be unique",
    "contains": "At least one of the items must match",
    "array_min_properties": "Must have at least {{.min}} properties",
    "array_max_properties": "Must have at most {{.max}} properties",
    "additional_property_not_allowed": "Additional property {{.property}} is not allowed",
    "invalid_property_name": 'Property name of "{{.property}}" does not match',
    "string_gte": "String length must be greater than or equal to {{.min}}",
    "string_lte": "String length must be less than or equal to {{.max}}",
    "pattern": "Does not match pattern '{{.pattern}}'",
    "format": "Does not match format '{{.format}}'",
    "multiple_of": "Must be a multiple of {{.multiple}}",
    "number_gte": "Must be greater than or equal to {{.min}}",
    "number_gt": "Must be greater than {{.min}}",
    "number_lte": "Must be less than or equal to {{.max}}",
    "number_lt": "Must be less than {{.max}}",
    "condition_then": 'Must validate "then" as "if" was valid',
    "condition_else": 'Must validate "else" as "if" was not valid',
}


class _Result:
    __slots__ = ("errors", "score")

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []
        self.score = 0

    def valid(self) -> bool:
        return not self.errors

    def add(self, kind: str, context: tuple[str, ...], **details: Any) -> None:
        text = ".".join(context)
        field = text[len("(Root).") :] if text.startswith("(Root).") else text
        desc = _tpl(_SCHEMA_MESSAGES[kind], field=field, context=text, **details)
        self.errors.append(
            {"error": f"{field}: {desc}", "type": kind, "field": field, "desc": desc}
        )
        self.score -= 2

    def merge(self, other: _Result) -> None:
        self.errors.extend(other.errors)
        self.score += other.score


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, _Num):
        return "integer" if value.frac.denominator == 1 else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _Validator:
    """gojsonschema's validation walk."""

    def sub(self, schema: _SubSchema, value: Any, context: tuple[str, ...]) -> _Result:
        result = _Result()
        self.recursive(schema, value, result, context)
        return result

    def recursive(
        self, schema: _SubSchema, value: Any, result: _Result, context: tuple[str, ...]
    ) -> None:
        if schema.pass_ is not None:
            if not schema.pass_:
                result.add("false", context)
            return
        if schema.ref_schema is not None:
            self.recursive(schema.ref_schema, value, result, context)
            return
        kind = _json_kind(value)
        if schema.types:
            ok = kind in schema.types or (kind == "integer" and "number" in schema.types)
            if not ok:
                result.add("invalid_type", context, expected=schema.types_text(), given=kind)
                return
        self.schema_keywords(schema, value, result, context)
        if isinstance(value, _Num):
            self.number(schema, value, result, context)
            self.common(schema, value, result, context)
        elif isinstance(value, list):
            self.array(schema, value, result, context)
            self.common(schema, value, result, context)
        elif isinstance(value, dict):
            self.object(schema, value, result, context)
            self.common(schema, value, result, context)
            for prop in schema.properties:
                if prop.property in value:
                    self.recursive(prop, value[prop.property], result, (*context, prop.property))
        else:
            self.common(schema, value, result, context)
            if isinstance(value, str):
                self.string(schema, value, result, context)
        result.score += 1

    def schema_keywords(
        self, schema: _SubSchema, value: Any, result: _Result, context: tuple[str, ...]
    ) -> None:
        if schema.any_of:
            best: _Result | None = None
            valid = False
            for option in schema.any_of:
                outcome = self.sub(option, value, context)
                if outcome.valid():
                    valid = True
                    break
                if best is None or outcome.score > best.score:
                    best = outcome
            if not valid:
                result.add("number_any_of", context)
                if best is not None:
                    result.merge(best)
        if schema.one_of:
            count = 0
            best = None
            for option in schema.one_of:
                outcome = self.sub(option, value, context)
                if outcome.valid():
                    count += 1
                elif count == 0 and (best is None or outcome.score > best.score):
                    best = outcome
            if count != 1:
                result.add("number_one_of", context)
                if count == 0 and best is not None:
                    result.merge(best)
        if schema.all_of:
            count = 0
            for option in schema.all_of:
                outcome = self.sub(option, value, context)
                if outcome.valid():
                    count += 1
                result.merge(outcome)
            if count != len(schema.all_of):
                result.add("number_all_of", context)
        if schema.not_ is not None and self.sub(schema.not_, value, context).valid():
            result.add("number_not", context)
        if schema.dependencies and isinstance(value, dict):
            for key in sorted(value):
                dep = schema.dependencies.get(key)
                if isinstance(dep, list):
                    for needed in dep:
                        if needed not in value:
                            result.add("missing_dependency", context, dependency=needed)
                elif dep is not None:
                    self.recursive(dep, value, result, context)
        if schema.if_ is not None:
            if_valid = self.sub(schema.if_, value, context).valid()
            if schema.then is not None and if_valid:
                outcome = self.sub(schema.then, value, context)
                if not outcome.valid():
                    result.add("condition_then", context)
                    result.merge(outcome)
            if schema.else_ is not None and not if_valid:
                outcome = self.sub(schema.else_, value, context)
                if not outcome.valid():
                    result.add("condition_else", context)
                    result.merge(outcome)
        result.score += 1

    def common(
        self, schema: _SubSchema, value: Any, result: _Result, context: tuple[str, ...]
    ) -> None:
        if schema.const is not None and _marshal_without_number(value) != schema.const:
            result.add("const", context, allowed=schema.const)
        if schema.enum is not None and _marshal_without_number(value) not in schema.enum:
            result.add("enum", context, allowed=", ".join(schema.enum))
        if schema.format and not _format_ok(schema.format, value):
            result.add("format", context, format=schema.format)
        result.score += 1

    def array(
        self, schema: _SubSchema, value: list[Any], result: _Result, context: tuple[str, ...]
    ) -> None:
        count = len(value)
        if schema.items_single:
            for i, item in enumerate(value):
                result.merge(self.sub(schema.items[0], item, (*context, str(i))))
        elif schema.items:
            listed = len(schema.items)
            for i in range(min(listed, count)):
                result.merge(self.sub(schema.items[i], value[i], (*context, str(i))))
            if listed < count:
                extra = schema.additional_items
                if extra is False:
                    result.add("array_no_additional_items", context)
                elif isinstance(extra, _SubSchema):
                    for i in range(listed, count):
                        result.merge(self.sub(extra, value[i], (*context, str(i))))
        if schema.min_items is not None and count < schema.min_items:
            result.add("array_min_items", context, min=schema.min_items)
        if schema.max_items is not None and count > schema.max_items:
            result.add("array_max_items", context, max=schema.max_items)
        if schema.unique_items:
            seen: dict[str, int] = {}
            for j, item in enumerate(value):
                text = _marshal_without_number(item)
                if text in seen:
                    result.add("unique", context, type="array", i=seen[text], j=j)
                seen[text] = j
        if schema.contains is not None:
            best: _Result | None = None
            matched = False
            for i, item in enumerate(value):
                outcome = self.sub(schema.contains, item, (*context, str(i)))
                if outcome.valid():
                    matched = True
                    break
                if best is None or outcome.score > best.score:
                    best = outcome
            if not matched:
                result.add("contains", context)
                if best is not None:
                    result.merge(best)
        result.score += 1

    def object(
        self,
        schema: _SubSchema,
        value: dict[str, Any],
        result: _Result,
        context: tuple[str, ...],
    ) -> None:
        if schema.min_properties is not None and len(value) < schema.min_properties:
            result.add("array_min_properties", context, min=schema.min_properties)
        if schema.max_properties is not None and len(value) > schema.max_properties:
            result.add("array_max_properties", context, max=schema.max_properties)
        for name in schema.required:
            if name in value:
                result.score += 1
            else:
                result.add("required", context, property=name)
        declared = {p.property for p in schema.properties}
        for key in sorted(value):
            matched = self.pattern_properties(schema, key, value[key], result, context)
            if key in declared or matched:
                continue
            extra = schema.additional_properties
            if extra is False:
                result.add("additional_property_not_allowed", context, property=key)
            elif isinstance(extra, _SubSchema):
                result.merge(self.sub(extra, value[key], (*context, key)))
        if schema.property_names is not None:
            for key in sorted(value):
                outcome = self.sub(schema.property_names, key, context)
                if not outcome.valid():
                    result.add("invalid_property_name", context, property=key)
                    result.merge(outcome)
        result.score += 1

    def pattern_properties(
        self, schema: _SubSchema, key: str, value: Any, result: _Result, context: tuple[str, ...]
    ) -> bool:
        matched = False
        for pattern, sub in schema.pattern_properties.items():
            if compile_go_regexp(pattern).search(key.encode(), 0) is not None:
                matched = True
                result.merge(self.sub(sub, value, (*context, key)))
        if matched:
            result.score += 1
        return matched

    def string(
        self, schema: _SubSchema, value: str, result: _Result, context: tuple[str, ...]
    ) -> None:
        length = len(value)
        if schema.min_length is not None and length < schema.min_length:
            result.add("string_gte", context, min=schema.min_length)
        if schema.max_length is not None and length > schema.max_length:
            result.add("string_lte", context, max=schema.max_length)
        if schema.pattern is not None and schema.pattern.search(value.encode(), 0) is None:
            result.add("pattern", context, pattern=schema.pattern.pattern)
        result.score += 1

    def number(
        self, schema: _SubSchema, value: _Num, result: _Result, context: tuple[str, ...]
    ) -> None:
        number = value.frac
        if schema.multiple_of is not None and (number / schema.multiple_of).denominator != 1:
            result.add("multiple_of", context, multiple=schema.multiple_of)
        if schema.maximum is not None and number > schema.maximum:
            result.add("number_lte", context, max=schema.maximum)
        if schema.exclusive_maximum is not None and number >= schema.exclusive_maximum:
            result.add("number_lt", context, max=schema.exclusive_maximum)
        if schema.minimum is not None and number < schema.minimum:
            result.add("number_gte", context, min=schema.minimum)
        if schema.exclusive_minimum is not None and number <= schema.exclusive_minimum:
            result.add("number_gt", context, min=schema.exclusive_minimum)
        result.score += 1


# JSON Schema "format" checks, as gojsonschema's Go implementations accept strings.

_RX_HOSTNAME = re.compile(
    r"([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])"
    r"(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9]))*"
)
_RX_UUID = re.compile(
    r"[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}"
)
_RX_JSON_POINTER = re.compile(r"(?:/(?:[^~/]|~0|~1)*)*", re.DOTALL)
_RX_REL_JSON_POINTER = re.compile(r"(?:0|[1-9][0-9]*)(?:#|(?:/(?:[^~/]|~0|~1)*)*)", re.DOTALL)
_RX_URI_TEMPLATE = re.compile(r"([^{]*({[^}]*})?)*", re.DOTALL)
_RX_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_RX_TIME = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:[.,]\d+)?(Z|[+-]\d{2}:\d{2})?")
_RX_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})"
)


def _valid_date(year: str, month: str, day: str) -> bool:
    try:
        datetime.date(int(year) or 2000, int(month), int(day))
    except ValueError:
        return False
    return True


def _valid_clock(hour: str, minute: str, second: str) -> bool:
    return int(hour) < 24 and int(minute) < 60 and int(second) < 60


def _valid_zone(zone: str | None) -> bool:
    return zone is None or zone == "Z" or (int(zone[1:3]) < 24 and int(zone[4:6]) < 60)


def _format_date(text: str) -> bool:
    m = _RX_DATE.fullmatch(text)
    return m is not None and _valid_date(*m.groups())


def _format_time(text: str, zone_required: bool = False) -> bool:
    m = _RX_TIME.fullmatch(text)
    if m is None or (zone_required and m.group(4) is None):
        return False
    return _valid_clock(*m.groups()[:3]) and _valid_zone(m.group(4))


def _format_datetime(text: str) -> bool:
    m = _RX_DATETIME.fullmatch(text)
    if m is not None:
        g = m.groups()
        return _valid_date(*g[:3]) and _valid_clock(*g[3:6]) and _valid_zone(g[6])
    return _format_time(text) or _format_date(text)


def _is_atext(ch: str, dot: bool) -> bool:
    if ch == ".":
        return dot
    if ch in '()<>[]:;@\\,"':
        return False
    return "!" <= ch <= "~" or ord(ch) >= 0x80


class _MailParser:
    """Enough of Go's ``net/mail`` address parser to tell whether one address parses."""

    def __init__(self, text: str) -> None:
        self.s = text

    def skip_space(self) -> None:
        self.s = self.s.lstrip(" \t")

    def atom(self, dot: bool, permissive: bool) -> bool:
        i = 0
        while i < len(self.s) and _is_atext(self.s[i], dot):
            i += 1
        word, rest = self.s[:i], self.s[i:]
        if not word:
            return False
        if not permissive and (word.startswith(".") or word.endswith(".") or ".." in word):
            return False
        self.s = rest
        return True

    def quoted(self) -> str | None:
        i, out = 1, []
        while i < len(self.s):
            ch = self.s[i]
            if ch == '"':
                self.s = self.s[i + 1 :]
                return "".join(out)
            if ch == "\\":
                i += 1
                if i >= len(self.s):
                    return None
                ch = self.s[i]
            elif not (ch in " \t" or ("!" <= ch <= "~" or ord(ch) >= 0x80)):
                return None
            out.append(ch)
            i += 1
        return None

    def addr_spec(self) -> bool:
        saved = self.s
        self.skip_space()
        ok = bool(self.s)
        if ok and self.s[0] == '"':
            ok = bool(self.quoted())
        elif ok:
            ok = self.atom(True, False)
        if ok and self.s.startswith("@"):
            self.s = self.s[1:]
            self.skip_space()
            if self.s.startswith("["):
                close = self.s.find("]")
                literal = self.s[1:close]
                ok = close > 0 and all(_is_atext(c, True) or c in " \t" for c in literal)
                self.s = self.s[close + 1 :]
            else:
                ok = bool(self.s) and self.atom(True, False)
        else:
            ok = False
        if not ok:
            self.s = saved
        return ok

    def comments(self) -> bool:
        self.skip_space()
        while self.s.startswith("("):
            depth, i = 0, 0
            while i < len(self.s):
                if self.s[i] == "\\":
                    i += 1
                elif self.s[i] == "(":
                    depth += 1
                elif self.s[i] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            if depth != 0:
                return False
            self.s = self.s[i + 1 :]
            self.skip_space()
        return True

    def address(self, handle_group: bool) -> int:
        """Parse one address (or a group); the number of addresses, -1 on error."""
        self.skip_space()
        if not self.s:
            return -1
        if self.addr_spec():
            return 1
        if not self.s.startswith("<"):
            words = 0
            while True:
                self.skip_space()
                if self.s.startswith('"'):
                    if self.quoted() is None:
                        return -1
                elif not self.atom(True, True):
                    break
                words += 1
            if not words:
                return -1
        self.skip_space()
        if handle_group and self.s.startswith(":"):
            self.s = self.s[1:]
            return self.group()
        if not self.s.startswith("<"):
            return -1
        self.s = self.s[1:]
        if not self.addr_spec() or not self.s.startswith(">"):
            return -1
        self.s = self.s[1:]
        return 1

    def group(self) -> int:
        count = 0
        self.skip_space()
        if self.s.startswith(";"):
            self.s = self.s[1:]
            return 0 if self.comments() else -1
        while True:
            found = self.address(False)
            if found < 0 or not self.comments():
                return -1
            count += found
            if self.s.startswith(";"):
                self.s = self.s[1:]
                return count if self.comments() else -1
            if not self.s.startswith(","):
                return -1
            self.s = self.s[1:]

    def single_address(self) -> bool:
        return self.address(True) == 1 and self.comments() and not self.s


def _format_email(text: str) -> bool:
    """Whether Go's ``net/mail.ParseAddress`` accepts ``text``."""
    return _MailParser(text).single_address()


def _format_ip(text: str, marker: str) -> bool:
    import ipaddress

    if marker not in text or "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_HEX = "0123456789abcdefABCDEF"


def _valid_escapes(text: str) -> bool:
    i = 0
    while True:
        i = text.find("%", i)
        if i < 0:
            return True
        if len(text) < i + 3 or text[i + 1] not in _HEX or text[i + 2] not in _HEX:
            return False
        i += 3


def _go_url_parse(text: str) -> tuple[bool, str, str]:
    """Whether Go's ``url.Parse`` accepts ``text``; also its scheme and unescaped path."""
    from urllib.parse import unquote

    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return False, "", ""
    rest, _, fragment = text.partition("#")
    if not _valid_escapes(fragment):
        return False, "", ""
    scheme = ""
    for i, ch in enumerate(rest):
        if ch.isalpha():
            continue
        if ch.isdigit() or ch in "+-.":
            if i == 0:
                break
            continue
        if ch == ":":
            if i == 0:
                return False, "", ""
            scheme, rest = rest[:i].lower(), rest[i + 1 :]
        break
    rest, _, _query = rest.partition("?")
    if scheme and not rest.startswith("/"):
        return True, scheme, ""
    if not scheme and ":" in rest.split("/", 1)[0]:
        return False, "", ""
    if (scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        host = authority.rpartition("@")[2]
        if not _valid_escapes(authority):
            return False, "", ""
        if host.startswith("["):
            close = host.find("]")
            if close < 0:
                return False, "", ""
            port = host[close + 1 :]
            if port and (not port.startswith(":") or (not port[1:].isdigit() and port != ":")):
                return False, "", ""
        elif ":" in host:
            port = host.rpartition(":")[2]
            if port and not port.isdigit():
                return False, "", ""
    if not _valid_escapes(rest):
        return False, "", ""
    return True, scheme, unquote(rest)


def _format_uri(text: str, scheme_required: bool, template: bool = False) -> bool:
    ok, scheme, path = _go_url_parse(text)
    if not ok or "\\" in text or (scheme_required and not scheme):
        return False
    return not template or _RX_URI_TEMPLATE.fullmatch(path) is not None


def _format_regex(text: str) -> bool:
    if not text:
        return True
    try:
        compile_go_regexp(text)
    except GoRegexpError:
        return False
    return True


_FORMATS: dict[str, Callable[[str], bool]] = {
    "date": _format_date,
    "time": _format_time,
    "date-time": _format_datetime,
    "hostname": lambda s: _RX_HOSTNAME.fullmatch(s) is not None and len(s.encode()) < 256,
    "email": _format_email,
    "idn-email": _format_email,
    "ipv4": lambda s: _format_ip(s, "."),
    "ipv6": lambda s: _format_ip(s, ":"),
    "uri": lambda s: _format_uri(s, True),
    "uri-reference": lambda s: _format_uri(s, False),
    "iri": lambda s: _format_uri(s, True),
    "iri-reference": lambda s: _format_uri(s, False),
    "uri-template": lambda s: _format_uri(s, False, template=True),
    "uuid": lambda s: _RX_UUID.fullmatch(s) is not None,
    "regex": _format_regex,
    "json-pointer": lambda s: _RX_JSON_POINTER.fullmatch(s) is not None,
    "relative-json-pointer": lambda s: _RX_REL_JSON_POINTER.fullmatch(s) is not None,
}


def _format_ok(name: str, value: Any) -> bool:
    check = _FORMATS.get(name)
    return check is None or not isinstance(value, str) or check(value)


def _compile_schema(value: Any) -> _SubSchema:
    return _SchemaCompiler().compile(_schema_input(value))


def json_verify_schema(ctx: EvalContext, schema: Any) -> list[Any]:
    """Checks that the input is a valid JSON schema object."""
    try:
        _compile_schema(schema)
    except _SchemaError as exc:
        return [False, f"jsonschema: {exc}"]
    except RecursionError:
        return [False, f"jsonschema: {_TOO_DEEP}"]
    return [True, None]


def json_match_schema(ctx: EvalContext, document: Any, schema: Any) -> list[Any]:
    """Checks that the document matches the JSON schema; returns [valid, errors]."""
    try:
        doc = _schema_input(document)
        compiled = _compile_schema(schema)
        result = _Result()
        _Validator().recursive(compiled, doc, result, ("(Root)",))
    except _SchemaError as exc:
        raise BuiltinError(str(exc)) from None
    except RecursionError:
        raise BuiltinError(_TOO_DEEP) from None
    return [result.valid(), result.errors]


BUILTINS = (
    BuiltinSpec("object.subset", object_subset),
    BuiltinSpec("graph.reachable_paths", graph_reachable_paths),
    BuiltinSpec("json.patch", json_patch),
    BuiltinSpec("json.marshal_with_options", json_marshal_with_options),
    BuiltinSpec("json.match_schema", json_match_schema),
    BuiltinSpec("json.verify_schema", json_verify_schema),
    BuiltinSpec("yaml.marshal", yaml_marshal),
    BuiltinSpec("yaml.unmarshal", yaml_unmarshal),
    BuiltinSpec("yaml.is_valid", yaml_is_valid),
)
