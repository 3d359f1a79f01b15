"""GraphQL documents as OPA's ``graphql.*`` builtins see them.

OPA parses GraphQL with github.com/vektah/gqlparser/v2 and hands policies that library's Go
AST, turned into JSON and pruned (no ``Position``, no nulls, no empty objects or arrays). This
module reproduces that pipeline in Python: a lexer and parser that accept and reject exactly
what gqlparser does (with its error texts and positions, comment attachment included), node
classes named after gqlparser's structs, the pruned JSON form (:func:`to_value`) and the
reverse conversion OPA applies to AST objects passed back in (:func:`from_value`), which
follows Go's ``encoding/json`` plus gqlparser's own ``UnmarshalJSON`` methods.

One deliberate difference from OPA 1.22.3: the ``Description`` of operations, fragments and
variable definitions is left out of the JSON when it is empty. gqlparser 2.5.64 emits it as
``""``, but OPA's conformance suite (written against the gqlparser OPA shipped before)
expects those nodes without it; a non-empty description is kept.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, NamedTuple, TypeVar

from pdp.builtins._golang import go_quote
from pdp.values import to_json_compatible

__all__ = [
    "Argument",
    "ArgumentDefinition",
    "ChildValue",
    "DecodeError",
    "Definition",
    "Directive",
    "DirectiveDefinition",
    "EnumValueDefinition",
    "Field",
    "FieldDefinition",
    "FragmentDefinition",
    "FragmentSpread",
    "GqlError",
    "InlineFragment",
    "MalformedAST",
    "Node",
    "OperationDefinition",
    "OperationTypeDefinition",
    "Position",
    "QueryDocument",
    "SchemaDefinition",
    "SchemaDocument",
    "Type",
    "Value",
    "VariableDefinition",
    "VariableKind",
    "from_value",
    "go_uint",
    "parse_query",
    "parse_schema",
    "to_value",
]


class Position(NamedTuple):
    """Where a token starts: 1-based line and column (in code points), and the source name."""

    line: int
    column: int
    file: str = ""


class GqlError(Exception):
    """A gqlparser error: a message and the locations it points at.

    ``str()`` gives gqlparser's ``Error()`` text, ``<file>:<line>:<col>: <message>``, with
    ``input`` standing for an unnamed source.
    """

    def __init__(self, message: str, *locations: Position | None) -> None:
        super().__init__(message)
        self.message = message
        self.locations = [loc for loc in locations if loc is not None]

    @classmethod
    def at(cls, pos: Position | None, message: str) -> GqlError:
        """An error at ``pos``; gqlparser reports a missing position as line and column -1."""
        return cls(message, pos if pos is not None else Position(-1, -1))

    def __str__(self) -> str:
        if not self.locations:
            return f"input: {self.message}"
        loc = self.locations[0]
        return f"{loc.file or 'input'}:{loc.line}:{loc.column}: {self.message}"


class DecodeError(Exception):
    """An AST object does not fit gqlparser's Go types: Go's ``json.UnmarshalTypeError``."""

    def __init__(self, value: str, go_type: str) -> None:
        super().__init__(value, go_type)
        self.value = value
        self.go_type = go_type
        self.struct = ""
        self.field = ""

    def __str__(self) -> str:
        if self.struct or self.field:
            return (
                f"json: cannot unmarshal {self.value} into Go struct field "
                f"{self.struct}.{self.field} of type {self.go_type}"
            )
        return f"json: cannot unmarshal {self.value} into Go value of type {self.go_type}"


class MalformedAST(Exception):
    """An AST object gqlparser would dereference nil on (OPA itself panics)."""


# ---------------------------------------------------------------------------------------------
# AST nodes. FIELDS lists (attribute, Go field name, kind) for every field gqlparser's structs
# serialise; kinds drive both the pruned JSON form and the Go-style decoding.

STR = "str"
OPTSTR = "optstr"  # a string left out of the JSON when empty (see the module docstring)
BOOL = "bool"
INT = "int"
STRS = "strs"
SELECTIONS = "selections"


def _one(cls_name: str) -> tuple[str, str]:
    return ("one", cls_name)


def _many(cls_name: str) -> tuple[str, str]:
    return ("many", cls_name)


_CLASSES: dict[str, type[Node]] = {}
_N = TypeVar("_N", bound="Node")


class Node:
    """Base of the AST node classes; each mirrors one gqlparser struct."""

    __slots__ = ("position",)
    FIELDS: ClassVar[tuple[tuple[str, str, Any], ...]] = ()
    # Keys read by gqlparser's hand-written UnmarshalJSON (exact case, other fields ignored);
    # None means Go's default decoding (case-insensitive keys, every field).
    DECODES: ClassVar[frozenset[str] | None] = None

    def __init_subclass__(cls) -> None:
        _CLASSES[cls.__name__] = cls

    def __init__(self, **values: Any) -> None:
        self.position: Position | None = None
        for attr, _go, kind in self.FIELDS:
            setattr(self, attr, _zero(kind))
        for attr, value in values.items():
            setattr(self, attr, value)


def _zero(kind: Any) -> Any:
    if kind is STR or kind is OPTSTR:
        return ""
    if kind is BOOL:
        return False
    if kind is INT:
        return 0
    if kind is STRS or kind is SELECTIONS or kind[0] == "many":
        return []
    return None


_COMMENT = ("comment", "Comment", _one("CommentGroup"))
_BEFORE = ("before_description_comment", "BeforeDescriptionComment", _one("CommentGroup"))
_AFTER = ("after_description_comment", "AfterDescriptionComment", _one("CommentGroup"))
_END = ("end_of_definition_comment", "EndOfDefinitionComment", _one("CommentGroup"))


def _slots(fields: tuple[tuple[str, str, Any], ...], *extra: str) -> tuple[str, ...]:
    return tuple(attr for attr, _go, _kind in fields) + extra


class Comment(Node):
    """One ``#`` comment line, ``#`` included."""

    FIELDS = (("value", "Value", STR),)
    __slots__ = _slots(FIELDS)


class CommentGroup(Node):
    """Consecutive comments attached to the node that follows them."""

    FIELDS = (("comments", "List", _many("Comment")),)
    __slots__ = _slots(FIELDS)


class Type(Node):
    """A type reference: a named type, or a list of ``elem``; either may be non-null."""

    FIELDS = (
        ("named_type", "NamedType", STR),
        ("elem", "Elem", _one("Type")),
        ("non_null", "NonNull", BOOL),
    )
    __slots__ = _slots(FIELDS)

    def name(self) -> str:
        """The innermost named type."""
        t = self
        while not t.named_type:
            if t.elem is None:
                raise MalformedAST("type reference without a named type")
            t = t.elem
        return t.named_type

    def __str__(self) -> str:
        bang = "!" if self.non_null else ""
        if self.named_type:
            return self.named_type + bang
        if self.elem is None:
            raise MalformedAST("type reference without a named type")
        return f"[{self.elem}]{bang}"


class VariableKind:
    """gqlparser's ``ValueKind`` numbers."""

    VARIABLE = 0
    INT = 1
    FLOAT = 2
    STRING = 3
    BLOCK = 4
    BOOLEAN = 5
    NULL = 6
    ENUM = 7
    LIST = 8
    OBJECT = 9


class Value(Node):
    """A literal or variable; lists and objects keep their items in ``children``."""

    FIELDS = (
        ("raw", "Raw", STR),
        ("children", "Children", _many("ChildValue")),
        ("kind", "Kind", INT),
        _COMMENT,
        ("definition", "Definition", _one("Definition")),
        ("variable_definition", "VariableDefinition", _one("VariableDefinition")),
        ("expected_type", "ExpectedType", _one("Type")),
        ("expected_type_has_default", "ExpectedTypeHasDefault", BOOL),
    )
    __slots__ = _slots(FIELDS)

    def __str__(self) -> str:
        k = self.kind
        if k == VariableKind.VARIABLE:
            return "$" + self.raw
        if k in (VariableKind.STRING, VariableKind.BLOCK):
            return _graphql_quote(self.raw)
        if k == VariableKind.LIST:
            return "[" + ",".join(str(c.value) for c in self.children) + "]"
        if k == VariableKind.OBJECT:
            return "{" + ",".join(f"{c.name}:{c.value}" for c in self.children) + "}"
        if 0 <= k <= VariableKind.OBJECT:
            return self.raw
        raise MalformedAST(f"unknown value kind {k}")


_GRAPHQL_ESCAPES = {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}


def _graphql_quote(text: str) -> str:
    out = ['"']
    for ch in text:
        cp = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif cp in (8, 9, 10, 12, 13):
            out.append(_GRAPHQL_ESCAPES[cp])
        elif cp < 0x20 or 0x7F <= cp <= 0x9F:
            out.append(f"\\u{cp:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class ChildValue(Node):
    """An item of a list value (no name) or a field of an object value."""

    FIELDS = (("name", "Name", STR), ("value", "Value", _one("Value")), _COMMENT)
    __slots__ = _slots(FIELDS)


class Argument(Node):
    """A ``name: value`` argument of a field or directive."""

    FIELDS = (("name", "Name", STR), ("value", "Value", _one("Value")), _COMMENT)
    __slots__ = _slots(FIELDS)


class Directive(Node):
    """A directive use, ``@name(args)``."""

    FIELDS = (
        ("name", "Name", STR),
        ("arguments", "Arguments", _many("Argument")),
        ("parent_definition", "ParentDefinition", _one("Definition")),
        ("definition", "Definition", _one("DirectiveDefinition")),
        ("location", "Location", STR),
    )
    __slots__ = _slots(FIELDS)


class VariableDefinition(Node):
    """``$name: Type = default @directives`` of an operation."""

    FIELDS = (
        ("description", "Description", OPTSTR),
        ("variable", "Variable", STR),
        ("type", "Type", _one("Type")),
        ("default_value", "DefaultValue", _one("Value")),
        ("directives", "Directives", _many("Directive")),
        _COMMENT,
        ("definition", "Definition", _one("Definition")),
        ("used", "Used", BOOL),
    )
    __slots__ = _slots(FIELDS)


class OperationDefinition(Node):
    """A query, mutation or subscription."""

    FIELDS = (
        ("description", "Description", OPTSTR),
        ("operation", "Operation", STR),
        ("name", "Name", STR),
        ("variable_definitions", "VariableDefinitions", _many("VariableDefinition")),
        ("directives", "Directives", _many("Directive")),
        ("selection_set", "SelectionSet", SELECTIONS),
        _COMMENT,
    )
    DECODES = frozenset({"Operation", "Name", "VariableDefinitions", "Directives", "SelectionSet"})
    __slots__ = _slots(FIELDS)


class Field(Node):
    """A field selection; ``alias`` equals ``name`` when no alias is written."""

    FIELDS = (
        ("alias", "Alias", STR),
        ("name", "Name", STR),
        ("arguments", "Arguments", _many("Argument")),
        ("directives", "Directives", _many("Directive")),
        ("selection_set", "SelectionSet", SELECTIONS),
        _COMMENT,
        ("definition", "Definition", _one("FieldDefinition")),
        ("object_definition", "ObjectDefinition", _one("Definition")),
    )
    DECODES = frozenset(
        {
            "Alias",
            "Name",
            "Arguments",
            "Directives",
            "SelectionSet",
            "Definition",
            "ObjectDefinition",
        }
    )
    __slots__ = _slots(FIELDS)


class FragmentSpread(Node):
    """``...Name``."""

    FIELDS = (
        ("name", "Name", STR),
        ("directives", "Directives", _many("Directive")),
        ("object_definition", "ObjectDefinition", _one("Definition")),
        ("definition", "Definition", _one("FragmentDefinition")),
        _COMMENT,
    )
    __slots__ = _slots(FIELDS)


class InlineFragment(Node):
    """``... on Type { ... }`` (the type condition is optional)."""

    FIELDS = (
        ("type_condition", "TypeCondition", STR),
        ("directives", "Directives", _many("Directive")),
        ("selection_set", "SelectionSet", SELECTIONS),
        ("object_definition", "ObjectDefinition", _one("Definition")),
        _COMMENT,
    )
    DECODES = frozenset({"TypeCondition", "Directives", "SelectionSet", "ObjectDefinition"})
    __slots__ = _slots(FIELDS)


class FragmentDefinition(Node):
    """``fragment Name on Type { ... }``."""

    FIELDS = (
        ("description", "Description", OPTSTR),
        ("name", "Name", STR),
        ("variable_definition", "VariableDefinition", _many("VariableDefinition")),
        ("type_condition", "TypeCondition", STR),
        ("directives", "Directives", _many("Directive")),
        ("selection_set", "SelectionSet", SELECTIONS),
        ("definition", "Definition", _one("Definition")),
        _COMMENT,
    )
    DECODES = frozenset(
        {"Name", "VariableDefinition", "TypeCondition", "Directives", "SelectionSet", "Definition"}
    )
    __slots__ = _slots(FIELDS)


class QueryDocument(Node):
    """An executable document: operations and fragments."""

    FIELDS = (
        ("operations", "Operations", _many("OperationDefinition")),
        ("fragments", "Fragments", _many("FragmentDefinition")),
        _COMMENT,
    )
    __slots__ = _slots(FIELDS)


class Definition(Node):
    """A type definition or extension (scalar, object, interface, union, enum, input)."""

    FIELDS = (
        ("kind", "Kind", STR),
        ("description", "Description", STR),
        ("name", "Name", STR),
        ("directives", "Directives", _many("Directive")),
        ("interfaces", "Interfaces", STRS),
        ("fields", "Fields", _many("FieldDefinition")),
        ("types", "Types", STRS),
        ("enum_values", "EnumValues", _many("EnumValueDefinition")),
        ("built_in", "BuiltIn", BOOL),
        _BEFORE,
        _AFTER,
        _END,
    )
    # type_positions: where each union member is written (not serialised by gqlparser).
    __slots__ = _slots(FIELDS, "type_positions")

    def __init__(self, **values: Any) -> None:
        self.type_positions: list[Position | None] = []
        super().__init__(**values)


class FieldDefinition(Node):
    """A field of an object or interface, or an input field of an input object."""

    FIELDS = (
        ("description", "Description", STR),
        ("name", "Name", STR),
        ("arguments", "Arguments", _many("ArgumentDefinition")),
        ("default_value", "DefaultValue", _one("Value")),
        ("type", "Type", _one("Type")),
        ("directives", "Directives", _many("Directive")),
        _BEFORE,
        _AFTER,
    )
    __slots__ = _slots(FIELDS)


class ArgumentDefinition(Node):
    """An argument of a field or directive definition."""

    FIELDS = (
        ("description", "Description", STR),
        ("name", "Name", STR),
        ("default_value", "DefaultValue", _one("Value")),
        ("type", "Type", _one("Type")),
        ("directives", "Directives", _many("Directive")),
        _BEFORE,
        _AFTER,
    )
    __slots__ = _slots(FIELDS)


class EnumValueDefinition(Node):
    """A value of an enum."""

    FIELDS = (
        ("description", "Description", STR),
        ("name", "Name", STR),
        ("directives", "Directives", _many("Directive")),
        _BEFORE,
        _AFTER,
    )
    __slots__ = _slots(FIELDS)


class DirectiveDefinition(Node):
    """``directive @name(args) repeatable on LOCATIONS``, or a directive extension."""

    FIELDS = (
        ("description", "Description", STR),
        ("name", "Name", STR),
        ("arguments", "Arguments", _many("ArgumentDefinition")),
        ("directives", "Directives", _many("Directive")),
        ("locations", "Locations", STRS),
        ("is_repeatable", "IsRepeatable", BOOL),
        _BEFORE,
        _AFTER,
    )
    __slots__ = _slots(FIELDS)


class OperationTypeDefinition(Node):
    """``query: Type`` inside a schema definition."""

    FIELDS = (("operation", "Operation", STR), ("type", "Type", STR), _COMMENT)
    __slots__ = _slots(FIELDS)


class SchemaDefinition(Node):
    """``schema { ... }`` or ``extend schema ...``."""

    FIELDS = (
        ("description", "Description", STR),
        ("directives", "Directives", _many("Directive")),
        ("operation_types", "OperationTypes", _many("OperationTypeDefinition")),
        _BEFORE,
        _AFTER,
        _END,
    )
    __slots__ = _slots(FIELDS)


class SchemaDocument(Node):
    """A type-system document, kept as written (extensions not merged)."""

    FIELDS = (
        ("schema", "Schema", _many("SchemaDefinition")),
        ("schema_extension", "SchemaExtension", _many("SchemaDefinition")),
        ("directives", "Directives", _many("DirectiveDefinition")),
        ("directive_extensions", "DirectiveExtensions", _many("DirectiveDefinition")),
        ("definitions", "Definitions", _many("Definition")),
        ("extensions", "Extensions", _many("Definition")),
        _COMMENT,
    )
    __slots__ = _slots(FIELDS)


# ---------------------------------------------------------------------------------------------
# Pruned JSON form.


def to_value(node: Node) -> dict[str, Any]:
    """The Rego object OPA returns for ``node``: every serialised field of the gqlparser
    struct, minus nulls and (recursively) empty objects and arrays."""
    out: dict[str, Any] = {}
    for attr, go_name, kind in node.FIELDS:
        value = getattr(node, attr)
        if kind is STR or kind is BOOL or kind is INT:
            out[go_name] = value
        elif kind is OPTSTR or kind is STRS:
            if value:
                out[go_name] = list(value) if kind is STRS else value
        elif kind is SELECTIONS or kind[0] == "many":
            items = [item for x in value if x is not None and (item := to_value(x))]
            if items:
                out[go_name] = items
        elif value is not None:
            sub = to_value(value)
            if sub:
                out[go_name] = sub
    return out


# ---------------------------------------------------------------------------------------------
# Decoding AST objects the way OPA does: Rego → JSON → Go struct via encoding/json, with
# gqlparser's hand-written UnmarshalJSON methods for operations, fragments and fields.

_INT64 = 1 << 63

# Go types named in decoding errors, where they are not plain string/bool fields.
_GO_TYPES = {
    ("OperationDefinition", "Operation"): "ast.Operation",
    ("OperationTypeDefinition", "Operation"): "ast.Operation",
    ("Definition", "Kind"): "ast.DefinitionKind",
    ("Directive", "Location"): "ast.DirectiveLocation",
    ("DirectiveDefinition", "Locations"): "[]ast.DirectiveLocation",
}
_GO_LISTS = {
    "OperationDefinition": "ast.OperationList",
    "FragmentDefinition": "ast.FragmentDefinitionList",
    "VariableDefinition": "ast.VariableDefinitionList",
    "Directive": "ast.DirectiveList",
    "Argument": "ast.ArgumentList",
    "ChildValue": "ast.ChildValueList",
    "SchemaDefinition": "ast.SchemaDefinitionList",
    "DirectiveDefinition": "ast.DirectiveDefinitionList",
    "Definition": "ast.DefinitionList",
    "FieldDefinition": "ast.FieldList",
    "ArgumentDefinition": "ast.ArgumentDefinitionList",
    "EnumValueDefinition": "ast.EnumValueList",
    "OperationTypeDefinition": "ast.OperationTypeDefinitionList",
    "Comment": "[]*ast.Comment",
}


def from_value(cls: type[_N], value: Any) -> _N:
    """Decode a Rego AST object into ``cls`` as Go's ``json.Unmarshal`` into the gqlparser
    struct would, raising :class:`DecodeError` (with Go's message) where Go fails."""
    node = _Decoder().unmarshal(lambda d, data: d.struct(cls, data), to_json_compatible(value))
    return node if node is not None else cls()


def _json_type(value: Any) -> str:
    t = type(value)
    if t is str:
        return "string"
    if t is bool:
        return "bool"
    if t is int or t is float:
        return "number"
    if t is list:
        return "array"
    return "object"


def _go_type(struct: str, go_name: str, kind: Any) -> str:
    special = _GO_TYPES.get((struct, go_name))
    if special is not None:
        return special
    if kind is BOOL:
        return "bool"
    if kind is INT:
        return "ast.ValueKind"
    if kind is STRS:
        return "[]string"
    if kind is SELECTIONS:
        return "[]json.RawMessage"
    if kind is STR or kind is OPTSTR:
        return "string"
    return f"ast.{kind[1]}" if kind[0] == "one" else _GO_LISTS[kind[1]]


class _Decoder:
    """One ``json.Unmarshal`` call: type mismatches are saved (the first one is reported,
    decoding goes on) and tagged with the struct and field path being decoded; errors from
    gqlparser's own ``UnmarshalJSON`` methods abort at once and get the same tagging."""

    def __init__(self) -> None:
        self.saved: DecodeError | None = None
        self.struct_name: str | None = None
        self.stack: list[str] = []

    def unmarshal(self, decode: Any, data: Any) -> Any:
        try:
            result = decode(self, data)
        except DecodeError as e:
            # The context is deliberately not unwound: Go tags an aborting error with the
            # innermost field being decoded.
            self._tag(e)
            raise
        if self.saved is not None:
            raise self.saved
        return result

    def _tag(self, e: DecodeError) -> None:
        if self.struct_name is not None or self.stack:
            e.struct = self.struct_name or ""
            e.field = ".".join(self.stack + ([e.field] if e.field else []))

    def save(self, value: Any, go_type: str) -> None:
        if self.saved is None:
            e = DecodeError(_json_type(value), go_type)
            self._tag(e)
            self.saved = e

    def struct(self, cls: type[Node], data: Any) -> Node | None:
        if cls.DECODES is not None:
            return _custom(cls, data)
        if data is None:
            return None
        if type(data) is not dict:
            self.save(data, f"ast.{cls.__name__}")
            return None
        node = cls()
        outer_struct, depth = self.struct_name, len(self.stack)
        for key in sorted(data):
            spec = _field_for(cls, key)
            if spec is None:
                continue
            attr, go_name, kind = spec
            self.struct_name = cls.__name__
            self.stack.append(go_name)
            go_type = _go_type(cls.__name__, go_name, kind)
            setattr(node, attr, self.value(kind, data[key], go_type, getattr(node, attr)))
            del self.stack[depth:]
            self.struct_name = outer_struct
        return node

    def value(self, kind: Any, data: Any, go_type: str, current: Any) -> Any:
        """Decode ``data`` into a field of ``kind`` whose value so far is ``current``."""
        if kind is STR or kind is OPTSTR or kind is BOOL:
            wanted = bool if kind is BOOL else str
            if data is None:
                return current
            if type(data) is not wanted:
                self.save(data, go_type)
                return current
            return data
        if kind is INT:
            if data is None:
                return current
            if type(data) is int and -_INT64 <= data < _INT64:
                return data
            if type(data) in (int, float):
                if self.saved is None:
                    e = DecodeError(f"number {data!r}", go_type)
                    self._tag(e)
                    self.saved = e
            else:
                self.save(data, go_type)
            return current
        if data is None:
            return None if kind[0] == "one" else []
        if kind is STRS:
            if type(data) is not list:
                self.save(data, go_type)
                return current
            element = go_type[2:]
            out = []
            for item in data:
                if item is not None and type(item) is not str:
                    self.save(item, element)
                out.append(item if type(item) is str else "")
            return out
        if kind is SELECTIONS:
            return _selection_set(data)
        cls = _CLASSES[kind[1]]
        if kind[0] == "one":
            return self.struct(cls, data)
        if type(data) is not list:
            self.save(data, go_type)
            return current
        return [self.struct(cls, item) for item in data]


def _field_for(cls: type[Node], key: str) -> tuple[str, str, Any] | None:
    for spec in cls.FIELDS:
        if spec[1] == key:
            return spec
    folded = key.casefold()
    for spec in cls.FIELDS:
        if spec[1].casefold() == folded:
            return spec
    return None


def _custom(cls: type[Node], data: Any) -> Node | None:
    """gqlparser's UnmarshalJSON: exact keys only, each decoded by its own json.Unmarshal."""
    if data is None:
        return None
    if type(data) is not dict:
        raise DecodeError(_json_type(data), "map[string]json.RawMessage")
    node = cls()
    for key in sorted(data):
        if key not in cls.DECODES:
            continue
        attr, go_name, kind = next(spec for spec in cls.FIELDS if spec[1] == key)

        go_type = _go_type(cls.__name__, go_name, kind)

        def decode(d: _Decoder, item: Any, kind: Any = kind, go_type: str = go_type) -> Any:
            return d.value(kind, item, go_type, _zero(kind))

        setattr(node, attr, _Decoder().unmarshal(decode, data[key]))
    return node


def _selection_set(data: Any) -> list[Node]:
    if type(data) is not list:
        raise DecodeError(_json_type(data), "[]json.RawMessage")
    out: list[Node] = []
    for item in data:
        # gqlparser tries Field, then FragmentSpread, then InlineFragment, and silently
        # drops an item none of them accepts. Field accepts almost anything, so spreads and
        # inline fragments passed as objects come back as fields.
        for cls in (Field, FragmentSpread, InlineFragment):
            try:
                node = _Decoder().unmarshal(lambda d, x, cls=cls: d.struct(cls, x), item)
            except DecodeError:
                continue
            out.append(node if node is not None else cls())
            break
    return out


# ---------------------------------------------------------------------------------------------
# Lexer. It runs over the UTF-8 bytes, as gqlparser's does, counting columns in code points.

INVALID, EOF, BANG, DOLLAR, AMP, PAREN_L, PAREN_R, SPREAD, COLON, EQUALS, AT = range(11)
BRACKET_L, BRACKET_R, BRACE_L, BRACE_R, PIPE, NAME, INT_T, FLOAT_T, STRING = range(11, 20)
BLOCK_STRING, COMMENT = 20, 21

_KIND_TEXT = (
    "<Invalid>",
    "<EOF>",
    "!",
    "$",
    "&",
    "(",
    ")",
    "...",
    ":",
    "=",
    "@",
    "[",
    "]",
    "{",
    "}",
    "|",
    "Name",
    "Int",
    "Float",
    "String",
    "BlockString",
    "Comment",
)

_PUNCTUATORS = {
    ord("!"): BANG,
    ord("$"): DOLLAR,
    ord("&"): AMP,
    ord("("): PAREN_L,
    ord(")"): PAREN_R,
    ord(":"): COLON,
    ord("="): EQUALS,
    ord("@"): AT,
    ord("["): BRACKET_L,
    ord("]"): BRACKET_R,
    ord("{"): BRACE_L,
    ord("}"): BRACE_R,
    ord("|"): PIPE,
}

_NAME_START = frozenset(b"_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NAME_CHAR = _NAME_START | frozenset(b"0123456789")
_DIGITS = frozenset(b"0123456789")
_HEX = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}
_SIMPLE_ESCAPES = {
    ord('"'): b'"',
    ord("/"): b"/",
    ord("\\"): b"\\",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
}


class Token(NamedTuple):
    """A lexical token: kind, value and position."""

    kind: int
    value: str
    pos: Position

    def describe(self) -> str:
        """gqlparser's ``Token.String()``."""
        text = _KIND_TEXT[self.kind]
        return f"{text} {go_quote(self.value)}" if self.value else text


def _rune_width(lead: int) -> int:
    if lead < 0xC0:
        return 1
    if lead < 0xE0:
        return 2
    if lead < 0xF0:
        return 3
    return 4


def _encode_rune(cp: int) -> bytes:
    if 0xD800 <= cp <= 0xDFFF:
        cp = 0xFFFD
    return chr(cp).encode("utf-8")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


class _Lexer:
    __slots__ = ("data", "end", "end_runes", "file", "line", "line_start", "start", "start_runes")

    def __init__(self, source: str, file: str) -> None:
        self.data = source.encode("utf-8", "surrogatepass")
        self.file = file
        self.start = self.start_runes = self.end = self.end_runes = 0
        self.line = 1
        self.line_start = 0

    def _token(self, kind: int, value: str | None = None) -> tuple[Token, GqlError | None]:
        if value is None:
            value = _text(self.data[self.start : self.end])
        col = self.start_runes - self.line_start + 1
        return Token(kind, value, Position(self.line, col, self.file)), None

    def _error(self, message: str) -> tuple[Token, GqlError | None]:
        pos = Position(self.line, self.end_runes - self.line_start + 1, self.file)
        return Token(INVALID, "", pos), GqlError(message, pos)

    def _advance(self, nbytes: int = 1, nrunes: int = 1) -> None:
        self.end += nbytes
        self.end_runes += nrunes

    def _newline(self) -> None:
        self.line += 1
        self.line_start = self.end_runes

    def read(self) -> tuple[Token, GqlError | None]:
        """The next token, or an INVALID token and the error that produced it."""
        self._skip_whitespace()
        data = self.data
        self.start = self.end
        self.start_runes = self.end_runes
        if self.end >= len(data):
            return self._token(EOF)
        r = data[self.start]
        self._advance()
        kind = _PUNCTUATORS.get(r)
        if kind is not None:
            return self._token(kind, "")
        if r == 0x2E and data[self.start : self.start + 3] == b"...":
            self._advance(2, 2)
            return self._token(SPREAD, "")
        if r == 0x23:
            return self._read_comment()
        if r in _NAME_START:
            while self.end < len(data) and data[self.end] in _NAME_CHAR:
                self._advance()
            return self._token(NAME)
        if r == 0x2D or r in _DIGITS:
            return self._read_number()
        if r == 0x22:
            if data[self.start : self.start + 3] == b'"""':
                return self._read_block_string()
            return self._read_string()
        self._advance(-1, -1)
        if r < 0x20 and r not in (9, 10, 13):
            return self._error(f'Cannot contain the invalid character "\\u{r:04x}"')
        if r == 0x27:
            return self._error(
                "Unexpected single quote character ('), did you mean to use a double quote (\")?"
            )
        return self._error(f'Cannot parse the unexpected character "{chr(r)}".')

    def _skip_whitespace(self) -> None:
        data = self.data
        while self.end < len(data):
            c = data[self.end]
            if c in (9, 32, 44):
                self._advance()
            elif c == 10:
                self._advance()
                self._newline()
            elif c == 13:
                self._advance()
                self._newline()
                if self.end < len(data) and data[self.end] == 10:
                    self._advance()
            elif c == 0xEF and data[self.end + 1 : self.end + 3] == b"\xbb\xbf":
                self._advance(3, 1)
            else:
                return

    def _read_comment(self) -> tuple[Token, GqlError | None]:
        data = self.data
        while self.end < len(data):
            c = data[self.end]
            if c > 0x1F or c == 9:
                self._advance(_rune_width(c), 1)
            else:
                break
        return self._token(COMMENT)

    def _accept(self, chars: bytes) -> bool:
        if self.end < len(self.data) and self.data[self.end] in chars:
            self._advance()
            return True
        return False

    def _accept_digits(self) -> int:
        count = 0
        while self.end < len(self.data) and self.data[self.end] in _DIGITS:
            self._advance()
            count += 1
        return count

    def _describe_next(self) -> str:
        if self.end < len(self.data):
            return f'"{chr(self.data[self.end])}"'
        return "<EOF>"

    def _read_number(self) -> tuple[Token, GqlError | None]:
        self._advance(-1, -1)
        is_float = False
        self._accept(b"-")
        if self._accept(b"0"):
            consumed = self._accept_digits()
            if consumed:
                self._advance(-consumed, -consumed)
                return self._error(
                    f"Invalid number, unexpected digit after 0: {self._describe_next()}."
                )
        elif not self._accept_digits():
            return self._error(f"Invalid number, expected digit but got: {self._describe_next()}.")
        if self._accept(b"."):
            is_float = True
            if not self._accept_digits():
                return self._error(
                    f"Invalid number, expected digit but got: {self._describe_next()}."
                )
        if self._accept(b"eE"):
            is_float = True
            self._accept(b"-+")
            if not self._accept_digits():
                return self._error(
                    f"Invalid number, expected digit but got: {self._describe_next()}."
                )
        return self._token(FLOAT_T if is_float else INT_T)

    def _escape_error(self, shown: bytes) -> tuple[Token, GqlError | None]:
        return self._error(f"Invalid character escape sequence: \\{_text(shown)}.")

    def _read_string(self) -> tuple[Token, GqlError | None]:
        data = self.data
        n = len(data)
        buf: bytearray | None = None
        self.start += 1
        self.start_runes += 1
        while self.end < n:
            c = data[self.end]
            if c in (10, 13):
                break
            if c < 0x20 and c != 9:
                return self._error(f'Invalid character within String: "\\u{c:04x}".')
            if c == 0x22:
                token, _ = self._token(STRING, None if buf is None else _text(bytes(buf)))
                self._advance()
                return token, None
            if c != 0x5C:
                w = _rune_width(c)
                if buf is not None:
                    buf += data[self.end : self.end + w]
                self._advance(w, 1)
                continue
            if self.end + 1 >= n:
                self._advance()
                return self._error("Invalid character escape sequence.")
            if buf is None:
                buf = bytearray(data[self.start : self.end])
            escape = data[self.end + 1]
            if escape == 0x75:
                if self.end + 2 < n and data[self.end + 2] == 0x7B:
                    cp, used, ok = _unhex_braced(data[self.end + 3 :])
                    if not ok:
                        self._advance()
                        return self._escape_error(data[self.end : self.end + 2 + used])
                    self._advance(3 + used, 3 + used)
                    buf += _encode_rune(cp)
                    continue
                if self.end + 6 >= n:
                    self._advance()
                    return self._escape_error(data[self.end :])
                cp = _unhex(data[self.end + 2 : self.end + 6])
                if cp is None:
                    self._advance()
                    return self._escape_error(data[self.end : self.end + 5])
                self._advance(6, 6)
                if 0xD800 <= cp < 0xDC00 and self.end + 6 < n:
                    nxt = data[self.end : self.end + 6]
                    low = _unhex(nxt[2:])
                    if nxt[:2] == b"\\u" and low is not None and 0xDC00 <= low <= 0xDFFF:
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
                        self._advance(6, 6)
                buf += _encode_rune(cp)
            else:
                simple = _SIMPLE_ESCAPES.get(escape)
                if simple is None:
                    self._advance()
                    return self._error(f"Invalid character escape sequence: \\{chr(escape)}.")
                buf += simple
                self._advance(2, 2)
        return self._error("Unterminated string.")

    def _read_block_string(self) -> tuple[Token, GqlError | None]:
        data = self.data
        n = len(data)
        buf = bytearray()
        self.start += 3
        self.start_runes += 3
        self._advance(2, 2)
        while self.end < n:
            c = data[self.end]
            if c == 0x22:
                quotes = 1
                while self.end + quotes < n and data[self.end + quotes] == 0x22:
                    quotes += 1
                if quotes >= 3:
                    buf += b'"' * (quotes - 3)
                    token, _ = self._token(BLOCK_STRING, _block_string_value(_text(bytes(buf))))
                    self._advance(quotes, quotes)
                    return token, None
            if c < 0x20 and c not in (9, 10, 13):
                return self._error(f'Invalid character within String: "\\u{c:04x}".')
            if c == 0x5C and data[self.end : self.end + 4] == b'\\"""':
                buf += b'"""'
                self._advance(4, 4)
            elif c == 13:
                if self.end + 1 < n and data[self.end + 1] == 10:
                    self._advance()
                buf += b"\n"
                self._advance()
                self._newline()
            else:
                w = _rune_width(c)
                buf += data[self.end : self.end + w]
                self._advance(w, 1)
                if c == 10:
                    self._newline()
        return self._error("Unterminated string.")


def _unhex(digits: bytes) -> int | None:
    value = 0
    for c in digits:
        d = _HEX.get(c)
        if d is None:
            return None
        value = value << 4 | d
    return value


def _unhex_braced(data: bytes) -> tuple[int, int, bool]:
    value = 0
    used = 0
    while used < len(data) and used <= 8:
        c = data[used]
        if c == 0x7D:
            used += 1
            valid = used > 1 and (value < 0xD800 or 0xDFFF < value <= 0x10FFFF)
            return (value, used, True) if valid else (0, used, False)
        d = _HEX.get(c)
        if d is None:
            return 0, used, False
        value = value << 4 | d
        used += 1
    return 0, used, False


_BLANK_INDENT = 1 << 31


def _leading_whitespace(line: str) -> int:
    for i, ch in enumerate(line):
        if ch not in " \t":
            return i
    return _BLANK_INDENT


def _block_string_value(raw: str) -> str:
    lines = raw.split("\n")
    common = _BLANK_INDENT
    for line in lines:
        indent = _leading_whitespace(line)
        if indent < len(line) and indent < common:
            common = indent
            if common == 0:
                break
    if common != _BLANK_INDENT:
        lines = lines[:1] + [line[common:] for line in lines[1:]]
    start, end = 0, len(lines)
    while start < end and _leading_whitespace(lines[start]) == _BLANK_INDENT:
        start += 1
    while start < end and _leading_whitespace(lines[end - 1]) == _BLANK_INDENT:
        end -= 1
    return "\n".join(lines[start:end])


# ---------------------------------------------------------------------------------------------
# Parser. gqlparser's error and comment behaviour depends on exactly when it peeks at and
# consumes tokens, so the parser keeps its peek/next discipline; the first error wins, which
# here means raising at once.

MAX_NESTING_DEPTH = 1000

_DIRECTIVE_LOCATIONS = frozenset(
    {
        "QUERY",
        "MUTATION",
        "SUBSCRIPTION",
        "FIELD",
        "FRAGMENT_DEFINITION",
        "FRAGMENT_SPREAD",
        "INLINE_FRAGMENT",
        "VARIABLE_DEFINITION",
        "SCHEMA",
        "SCALAR",
        "OBJECT",
        "FIELD_DEFINITION",
        "ARGUMENT_DEFINITION",
        "INTERFACE",
        "UNION",
        "ENUM",
        "ENUM_VALUE",
        "INPUT_OBJECT",
        "INPUT_FIELD_DEFINITION",
        "DIRECTIVE_DEFINITION",
    }
)

_TYPE_KEYWORDS = {
    "scalar": "SCALAR",
    "type": "OBJECT",
    "interface": "INTERFACE",
    "union": "UNION",
    "enum": "ENUM",
    "input": "INPUT_OBJECT",
}


class _Description(NamedTuple):
    text: str = ""
    comment: CommentGroup | None = None
    present: bool = False


def _join_comments(before: CommentGroup | None, after: CommentGroup | None) -> CommentGroup | None:
    if before is None:
        return after
    if after is None:
        return before
    return CommentGroup(comments=before.comments + after.comments)


class _Parser:
    def __init__(self, source: str, file: str = "") -> None:
        self.lexer = _Lexer(source, file)
        self.peeked = False
        self.peek_token: Token = Token(INVALID, "", Position(0, 0, file))
        self.peek_error: GqlError | None = None
        self.prev: Token = self.peek_token
        self.comment: CommentGroup | None = None
        self.consuming_comments = False
        self.depth = 0

    # -- token plumbing --

    def peek(self) -> Token:
        if not self.peeked:
            self.peek_token, self.peek_error = self.lexer.read()
            self.peeked = True
            if self.peek_token.kind == COMMENT:
                self._consume_comment_group()
        return self.peek_token

    def next(self) -> Token:
        if self.peeked:
            self.peeked = False
            self.comment = None
            self.prev, err = self.peek_token, self.peek_error
        else:
            self.prev, err = self.lexer.read()
            if err is None and self.prev.kind == COMMENT:
                self._consume_comment_group()
        if err is not None:
            raise err
        return self.prev

    def _consume_comment_group(self) -> None:
        if self.consuming_comments:
            return
        self.consuming_comments = True
        comments = []
        while self.peek().kind == COMMENT:
            tok = self.next()
            comments.append(Comment(value=tok.value, position=tok.pos))
        self.comment = CommentGroup(comments=comments)
        self.consuming_comments = False

    def error(self, tok: Token, message: str) -> GqlError:
        return GqlError(message, tok.pos)

    def unexpected(self, tok: Token | None = None) -> GqlError:
        tok = tok if tok is not None else self.peek()
        return self.error(tok, f"Unexpected {tok.describe()}")

    def expect(self, kind: int) -> tuple[Token, CommentGroup | None]:
        tok = self.peek()
        comment = self.comment
        if tok.kind == kind:
            return self.next(), comment
        raise self.error(tok, f"Expected {_KIND_TEXT[kind]}, found {_KIND_TEXT[tok.kind]}")

    def expect_keyword(self, word: str) -> CommentGroup | None:
        tok = self.peek()
        comment = self.comment
        if tok.kind == NAME and tok.value == word:
            self.next()
            return comment
        raise self.error(tok, f"Expected {go_quote(word)}, found {tok.describe()}")

    def skip(self, kind: int) -> bool:
        if self.peek().kind != kind:
            return False
        self.next()
        return True

    def many(self, start: int, end: int, item: Any) -> None:
        if not self.skip(start):
            return
        while self.peek().kind != end:
            item()
        self.next()

    def some(self, start: int, end: int, item: Any) -> CommentGroup | None:
        if not self.skip(start):
            return None
        called = False
        while self.peek().kind != end:
            called = True
            item()
        if not called:
            tok = self.peek()
            raise self.error(tok, f"expected at least one definition, found {_KIND_TEXT[tok.kind]}")
        comment = self.comment
        self.next()
        return comment

    def enter_nested(self) -> None:
        if self.depth >= MAX_NESTING_DEPTH:
            raise self.error(self.peek(), f"exceeded maximum nesting depth of {MAX_NESTING_DEPTH}")
        self.depth += 1

    def peek_pos(self) -> Position:
        return self.peek().pos

    def parse_name(self) -> str:
        return self.expect(NAME)[0].value

    # -- shared productions --

    def parse_description(self) -> _Description:
        tok = self.peek()
        if tok.kind not in (STRING, BLOCK_STRING):
            return _Description()
        comment = self.comment
        return _Description(self.next().value, comment, True)

    def parse_value(self, is_const: bool) -> Value:
        tok = self.peek()
        kind = tok.kind
        if kind == BRACKET_L:
            return self._parse_composite(is_const, VariableKind.LIST)
        if kind == BRACE_L:
            return self._parse_composite(is_const, VariableKind.OBJECT)
        if kind == DOLLAR:
            if is_const:
                raise self.unexpected()
            return Value(raw=self.parse_variable(), kind=VariableKind.VARIABLE, position=tok.pos)
        if kind == INT_T:
            vkind = VariableKind.INT
        elif kind == FLOAT_T:
            vkind = VariableKind.FLOAT
        elif kind == STRING:
            vkind = VariableKind.STRING
        elif kind == BLOCK_STRING:
            vkind = VariableKind.BLOCK
        elif kind == NAME:
            if tok.value in ("true", "false"):
                vkind = VariableKind.BOOLEAN
            elif tok.value == "null":
                vkind = VariableKind.NULL
            else:
                vkind = VariableKind.ENUM
        else:
            raise self.unexpected()
        self.next()
        return Value(raw=tok.value, kind=vkind, position=tok.pos)

    def _parse_composite(self, is_const: bool, vkind: int) -> Value:
        self.enter_nested()
        pos = self.peek_pos()
        comment = self.comment
        children: list[ChildValue] = []
        if vkind == VariableKind.LIST:
            self.many(
                BRACKET_L,
                BRACKET_R,
                lambda: children.append(ChildValue(value=self.parse_value(is_const))),
            )
        else:
            self.many(BRACE_L, BRACE_R, lambda: children.append(self._parse_object_field(is_const)))
        self.depth -= 1
        return Value(children=children, kind=vkind, position=pos, comment=comment)

    def _parse_object_field(self, is_const: bool) -> ChildValue:
        field = ChildValue(position=self.peek_pos(), comment=self.comment)
        field.name = self.parse_name()
        self.expect(COLON)
        field.value = self.parse_value(is_const)
        return field

    def parse_variable(self) -> str:
        self.expect(DOLLAR)
        return self.parse_name()

    def parse_directives(self, is_const: bool) -> list[Directive]:
        directives = []
        while self.peek().kind == AT:
            self.expect(AT)
            directive = Directive(position=self.peek_pos())
            directive.name = self.parse_name()
            directive.arguments = self.parse_arguments(is_const)
            directives.append(directive)
        return directives

    def parse_arguments(self, is_const: bool) -> list[Argument]:
        arguments: list[Argument] = []

        def one() -> None:
            arg = Argument(position=self.peek_pos(), comment=self.comment)
            arg.name = self.parse_name()
            self.expect(COLON)
            arg.value = self.parse_value(is_const)
            arguments.append(arg)

        self.some(PAREN_L, PAREN_R, one)
        return arguments

    def parse_type_reference(self) -> Type:
        typ = Type()
        if self.skip(BRACKET_L):
            self.enter_nested()
            typ.position = self.peek_pos()
            typ.elem = self.parse_type_reference()
            self.expect(BRACKET_R)
            self.depth -= 1
        else:
            typ.position = self.peek_pos()
            typ.named_type = self.parse_name()
        if self.skip(BANG):
            typ.non_null = True
        return typ

    def parse_operation_type(self) -> str:
        tok = self.next()
        if tok.value in ("query", "mutation", "subscription"):
            return tok.value
        raise self.unexpected(tok)

    # -- executable documents --

    def parse_query_document(self) -> QueryDocument:
        doc = QueryDocument()
        while self.peek().kind != EOF:
            doc.position = self.peek_pos()
            description = self.parse_description()
            tok = self.peek()
            if tok.kind == NAME and tok.value in ("query", "mutation", "subscription"):
                doc.operations.append(self.parse_operation(description))
            elif tok.kind == NAME and tok.value == "fragment":
                doc.fragments.append(self.parse_fragment_definition(description))
            elif tok.kind == BRACE_L:
                doc.operations.append(self.parse_operation(description))
            else:
                raise self.unexpected()
        return doc

    def parse_operation(self, description: _Description) -> OperationDefinition:
        if self.peek().kind == BRACE_L:
            if description.present:
                raise self.unexpected(self.prev)
            # gqlparser reads its comment only after the selection set, when none is pending.
            op = OperationDefinition(position=self.peek_pos(), operation="query")
            op.selection_set = self.parse_required_selection_set()
            return op
        op = OperationDefinition(description=description.text, position=self.peek_pos())
        op.comment = _join_comments(description.comment, self.comment)
        op.operation = self.parse_operation_type()
        if self.peek().kind == NAME:
            op.name = self.next().value
        op.variable_definitions = self.parse_variable_definitions()
        op.directives = self.parse_directives(False)
        op.selection_set = self.parse_required_selection_set()
        return op

    def parse_variable_definitions(self) -> list[VariableDefinition]:
        defs: list[VariableDefinition] = []

        def one() -> None:
            description = self.parse_description()
            vd = VariableDefinition(description=description.text, position=self.peek_pos())
            vd.comment = _join_comments(description.comment, self.comment)
            vd.variable = self.parse_variable()
            self.expect(COLON)
            vd.type = self.parse_type_reference()
            if self.skip(EQUALS):
                vd.default_value = self.parse_value(True)
            vd.directives = self.parse_directives(False)
            defs.append(vd)

        self.some(PAREN_L, PAREN_R, one)
        return defs

    def parse_required_selection_set(self) -> list[Node]:
        tok = self.peek()
        if tok.kind != BRACE_L:
            raise self.error(tok, f"Expected {{, found {_KIND_TEXT[tok.kind]}")
        return self.parse_selection_set()

    def parse_selection_set(self) -> list[Node]:
        self.enter_nested()
        selections: list[Node] = []
        self.some(BRACE_L, BRACE_R, lambda: selections.append(self.parse_selection()))
        self.depth -= 1
        return selections

    def parse_selection(self) -> Node:
        if self.peek().kind == SPREAD:
            return self.parse_fragment()
        field = Field(position=self.peek_pos(), comment=self.comment)
        field.alias = self.parse_name()
        field.name = self.parse_name() if self.skip(COLON) else field.alias
        field.arguments = self.parse_arguments(False)
        field.directives = self.parse_directives(False)
        if self.peek().kind == BRACE_L:
            field.selection_set = self.parse_selection_set()
        return field

    def parse_fragment(self) -> Node:
        _, comment = self.expect(SPREAD)
        tok = self.peek()
        if tok.kind == NAME and tok.value != "on":
            spread = FragmentSpread(position=tok.pos, comment=comment)
            spread.name = self.parse_fragment_name()
            spread.directives = self.parse_directives(False)
            return spread
        inline = InlineFragment(position=tok.pos, comment=comment)
        if tok.value == "on":
            self.next()
            inline.type_condition = self.parse_name()
        inline.directives = self.parse_directives(False)
        inline.selection_set = self.parse_required_selection_set()
        return inline

    def parse_fragment_definition(self, description: _Description) -> FragmentDefinition:
        frag = FragmentDefinition(description=description.text, position=self.peek_pos())
        frag.comment = _join_comments(description.comment, self.comment)
        self.expect_keyword("fragment")
        frag.name = self.parse_fragment_name()
        frag.variable_definition = self.parse_variable_definitions()
        self.expect_keyword("on")
        frag.type_condition = self.parse_name()
        frag.directives = self.parse_directives(False)
        frag.selection_set = self.parse_required_selection_set()
        return frag

    def parse_fragment_name(self) -> str:
        if self.peek().value == "on":
            raise self.unexpected()
        return self.parse_name()

    # -- type-system documents --

    def parse_schema_document(self) -> SchemaDocument:
        doc = SchemaDocument(position=self.peek_pos())
        while self.peek().kind != EOF:
            description = _Description()
            if self.peek().kind in (STRING, BLOCK_STRING):
                description = self.parse_description()
            tok = self.peek()
            if tok.kind != NAME:
                raise self.unexpected()
            word = tok.value
            if word in _TYPE_KEYWORDS:
                doc.definitions.append(self.parse_type_definition(description))
            elif word == "schema":
                doc.schema.append(self.parse_schema_definition(description))
            elif word == "directive":
                doc.directives.append(self.parse_directive_definition(description))
            elif word == "extend":
                if description.text:
                    raise self.unexpected(self.prev)
                self.parse_extension(doc)
            else:
                raise self.unexpected()
        doc.comment = self.comment
        return doc

    def parse_schema_definition(self, description: _Description) -> SchemaDefinition:
        comment = self.expect_keyword("schema")
        sd = SchemaDefinition(
            position=self.peek_pos(),
            before_description_comment=description.comment,
            description=description.text,
            after_description_comment=comment,
        )
        sd.directives = self.parse_directives(True)
        sd.end_of_definition_comment = self.some(
            BRACE_L, BRACE_R, lambda: sd.operation_types.append(self.parse_operation_type_def())
        )
        return sd

    def parse_operation_type_def(self) -> OperationTypeDefinition:
        op = OperationTypeDefinition(position=self.peek_pos(), comment=self.comment)
        op.operation = self.parse_operation_type()
        self.expect(COLON)
        op.type = self.parse_name()
        return op

    def parse_type_definition(self, description: _Description) -> Definition:
        keyword = self.peek().value
        comment = self.expect_keyword(keyword)
        kind = _TYPE_KEYWORDS[keyword]
        d = Definition(
            position=self.peek_pos(),
            kind=kind,
            before_description_comment=description.comment,
            description=description.text,
            after_description_comment=comment,
        )
        d.name = self.parse_name()
        if kind in ("OBJECT", "INTERFACE"):
            d.interfaces = self.parse_implements()
        d.directives = self.parse_directives(True)
        self._parse_definition_body(d)
        return d

    def _parse_definition_body(self, d: Definition) -> None:
        kind = d.kind
        if kind in ("OBJECT", "INTERFACE"):
            d.end_of_definition_comment = self.some(
                BRACE_L, BRACE_R, lambda: d.fields.append(self.parse_field_definition())
            )
        elif kind == "INPUT_OBJECT":
            d.end_of_definition_comment = self.some(
                BRACE_L, BRACE_R, lambda: d.fields.append(self.parse_input_value_definition())
            )
        elif kind == "ENUM":
            d.end_of_definition_comment = self.some(
                BRACE_L, BRACE_R, lambda: d.enum_values.append(self.parse_enum_value())
            )
        elif kind == "UNION":
            self.parse_union_members(d)

    def parse_implements(self) -> list[str]:
        types: list[str] = []
        if self.peek().value == "implements":
            self.next()
            self.skip(AMP)
            types.append(self.parse_name())
            while self.skip(AMP):
                types.append(self.parse_name())
        return types

    def parse_union_members(self, d: Definition) -> None:
        if not self.skip(EQUALS):
            return
        self.skip(PIPE)
        d.type_positions.append(self.peek_pos())
        d.types.append(self.parse_name())
        while self.skip(PIPE):
            d.type_positions.append(self.peek_pos())
            d.types.append(self.parse_name())

    def _described(self, node: Any) -> None:
        description = self.parse_description()
        if description.text:
            node.before_description_comment = description.comment
            node.description = description.text
        self.peek()
        node.after_description_comment = self.comment
        node.position = self.peek_pos()
        node.name = self.parse_name()

    def parse_field_definition(self) -> FieldDefinition:
        fd = FieldDefinition()
        self._described(fd)
        fd.arguments = self.parse_argument_definitions()
        self.expect(COLON)
        fd.type = self.parse_type_reference()
        fd.directives = self.parse_directives(True)
        return fd

    def parse_argument_definitions(self) -> list[ArgumentDefinition]:
        args: list[ArgumentDefinition] = []

        def one() -> None:
            arg = ArgumentDefinition()
            self._described(arg)
            self.expect(COLON)
            arg.type = self.parse_type_reference()
            if self.skip(EQUALS):
                arg.default_value = self.parse_value(True)
            arg.directives = self.parse_directives(True)
            args.append(arg)

        self.some(PAREN_L, PAREN_R, one)
        return args

    def parse_input_value_definition(self) -> FieldDefinition:
        fd = FieldDefinition()
        self._described(fd)
        self.expect(COLON)
        fd.type = self.parse_type_reference()
        if self.skip(EQUALS):
            fd.default_value = self.parse_value(True)
        fd.directives = self.parse_directives(True)
        return fd

    def parse_enum_value(self) -> EnumValueDefinition:
        ev = EnumValueDefinition()
        self._described(ev)
        ev.directives = self.parse_directives(True)
        return ev

    def parse_extension(self, doc: SchemaDocument) -> None:
        comment = self.expect_keyword("extend")
        word = self.peek().value
        if word == "schema":
            doc.schema_extension.append(self.parse_schema_extension(comment))
        elif word in _TYPE_KEYWORDS:
            doc.extensions.append(self.parse_type_extension(word, comment))
        elif word == "directive":
            doc.directive_extensions.append(self.parse_directive_extension(comment))
        else:
            raise self.unexpected()

    def parse_schema_extension(self, comment: CommentGroup | None) -> SchemaDefinition:
        self.expect_keyword("schema")
        sd = SchemaDefinition(position=self.peek_pos(), after_description_comment=comment)
        sd.directives = self.parse_directives(True)
        sd.end_of_definition_comment = self.some(
            BRACE_L, BRACE_R, lambda: sd.operation_types.append(self.parse_operation_type_def())
        )
        if not sd.directives and not sd.operation_types:
            raise self.unexpected()
        return sd

    def parse_type_extension(self, keyword: str, comment: CommentGroup | None) -> Definition:
        self.expect_keyword(keyword)
        kind = _TYPE_KEYWORDS[keyword]
        d = Definition(position=self.peek_pos(), after_description_comment=comment, kind=kind)
        d.name = self.parse_name()
        if kind in ("OBJECT", "INTERFACE"):
            d.interfaces = self.parse_implements()
        # gqlparser reads an input extension's directives as non-constant.
        d.directives = self.parse_directives(kind != "INPUT_OBJECT")
        self._parse_definition_body(d)
        if not (d.interfaces or d.directives or d.fields or d.types or d.enum_values):
            raise self.unexpected()
        return d

    def parse_directive_definition(self, description: _Description) -> DirectiveDefinition:
        comment = self.expect_keyword("directive")
        self.expect(AT)
        dd = DirectiveDefinition(
            position=self.peek_pos(),
            before_description_comment=description.comment,
            description=description.text,
            after_description_comment=comment,
        )
        dd.name = self.parse_name()
        dd.arguments = self.parse_argument_definitions()
        dd.directives = self.parse_directives(True)
        tok = self.peek()
        if tok.kind == NAME and tok.value == "repeatable":
            dd.is_repeatable = True
            self.skip(NAME)
        self.expect_keyword("on")
        self.skip(PIPE)
        dd.locations = [self.parse_directive_location()]
        while self.skip(PIPE):
            dd.locations.append(self.parse_directive_location())
        return dd

    def parse_directive_extension(self, comment: CommentGroup | None) -> DirectiveDefinition:
        self.expect_keyword("directive")
        self.expect(AT)
        dd = DirectiveDefinition(position=self.peek_pos(), after_description_comment=comment)
        dd.name = self.parse_name()
        dd.directives = self.parse_directives(True)
        if not dd.directives:
            raise self.unexpected()
        return dd

    def parse_directive_location(self) -> str:
        tok, _ = self.expect(NAME)
        if tok.value in _DIRECTIVE_LOCATIONS:
            return tok.value
        raise self.unexpected(tok)


def parse_query(source: str) -> QueryDocument:
    """Parse an executable document as gqlparser's ``ParseQuery``; raises :class:`GqlError`."""
    return _Parser(source).parse_query_document()


def parse_schema(source: str, file: str = "", built_in: bool = False) -> SchemaDocument:
    """Parse a type-system document as gqlparser's ``ParseSchema``; raises :class:`GqlError`."""
    doc = _Parser(source, file).parse_schema_document()
    for d in doc.definitions + doc.extensions:
        d.built_in = built_in
    return doc


_GO_UINT = re.compile(r"[0-9]+\Z")


def go_uint(text: str) -> int | None:
    """``strconv.ParseUint(text, 10, 64)``, or None where Go reports an error."""
    if not _GO_UINT.match(text):
        return None
    value = int(text)
    return value if value < 1 << 64 else None
