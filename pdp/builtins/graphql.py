"""GraphQL builtins: ``graphql.parse``, ``graphql.parse_and_verify``, ``graphql.parse_query``,
``graphql.parse_schema``, ``graphql.is_valid`` and ``graphql.schema_is_valid``.

OPA implements these with github.com/vektah/gqlparser/v2; :mod:`pdp.builtins.graphql_ast`
reproduces its parser and AST, and this module its schema validation (``ValidateSchemaDocument``
over the schema merged with the spec's prelude) and its default query validation rules, with
their error texts, which OPA passes on (reformatted) in strict mode.

Schemas and queries may be given as GraphQL text or as AST objects (as returned by
``graphql.parse_schema`` / ``graphql.parse_query``); objects are decoded the way OPA decodes
them, through Go's JSON decoding into gqlparser's structs.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from pdp.builtins._golang import go_quote
from pdp.builtins.base import (
    BuiltinError,
    BuiltinSpec,
    EvalContext,
    operand_type_error,
    string_arg,
)
from pdp.builtins.graphql_ast import (
    ArgumentDefinition,
    DecodeError,
    Definition,
    Directive,
    DirectiveDefinition,
    Field,
    FieldDefinition,
    FragmentDefinition,
    FragmentSpread,
    GqlError,
    InlineFragment,
    MalformedAST,
    Node,
    OperationDefinition,
    Position,
    QueryDocument,
    SchemaDocument,
    Type,
    Value,
    VariableDefinition,
    VariableKind,
    from_value,
    go_uint,
    parse_query,
    parse_schema,
    to_value,
)

__all__ = ["BUILTINS"]

_D = TypeVar("_D", QueryDocument, SchemaDocument)

SCALAR, OBJECT, INTERFACE, UNION, ENUM, INPUT_OBJECT = (
    "SCALAR",
    "OBJECT",
    "INTERFACE",
    "UNION",
    "ENUM",
    "INPUT_OBJECT",
)

# The types and directives the GraphQL spec declares implicitly, as gqlparser 2.5.64 defines
# them (descriptions left out: they never reach a policy).
_PRELUDE = """
scalar Int
scalar Float
scalar String
scalar Boolean
scalar ID
directive @defer(if: Boolean = true, label: String) on FRAGMENT_SPREAD | INLINE_FRAGMENT
directive @include(if: Boolean!) on FIELD | FRAGMENT_SPREAD | INLINE_FRAGMENT
directive @skip(if: Boolean!) on FIELD | FRAGMENT_SPREAD | INLINE_FRAGMENT
directive @deprecated(reason: String = "No longer supported")
  on FIELD_DEFINITION | ARGUMENT_DEFINITION | INPUT_FIELD_DEFINITION | ENUM_VALUE
   | DIRECTIVE_DEFINITION
directive @specifiedBy(url: String!) on SCALAR
directive @oneOf on INPUT_OBJECT
type __Schema {
  description: String
  types: [__Type!]!
  queryType: __Type!
  mutationType: __Type
  subscriptionType: __Type
  directives: [__Directive!]!
}
type __Type {
  kind: __TypeKind!
  name: String
  description: String
  specifiedByURL: String
  fields(includeDeprecated: Boolean = false): [__Field!]
  interfaces: [__Type!]
  possibleTypes: [__Type!]
  enumValues(includeDeprecated: Boolean = false): [__EnumValue!]
  inputFields(includeDeprecated: Boolean = false): [__InputValue!]
  ofType: __Type
  isOneOf: Boolean
}
enum __TypeKind { SCALAR OBJECT INTERFACE UNION ENUM INPUT_OBJECT LIST NON_NULL }
type __Field {
  name: String!
  description: String
  args(includeDeprecated: Boolean = false): [__InputValue!]!
  type: __Type!
  isDeprecated: Boolean!
  deprecationReason: String
}
type __InputValue {
  name: String!
  description: String
  type: __Type!
  defaultValue: String
  isDeprecated: Boolean!
  deprecationReason: String
}
type __EnumValue {
  name: String!
  description: String
  isDeprecated: Boolean!
  deprecationReason: String
}
type __Directive {
  name: String!
  description: String
  isRepeatable: Boolean!
  locations: [__DirectiveLocation!]!
  args(includeDeprecated: Boolean = false): [__InputValue!]!
}
enum __DirectiveLocation {
  QUERY MUTATION SUBSCRIPTION FIELD FRAGMENT_DEFINITION FRAGMENT_SPREAD INLINE_FRAGMENT
  VARIABLE_DEFINITION SCHEMA SCALAR OBJECT FIELD_DEFINITION ARGUMENT_DEFINITION INTERFACE
  UNION ENUM ENUM_VALUE INPUT_OBJECT INPUT_FIELD_DEFINITION DIRECTIVE_DEFINITION
}
"""

_PRELUDE_DIRECTIVES = frozenset({"defer", "deprecated", "include", "oneOf", "skip", "specifiedBy"})

# Nesting up to gqlparser's limit of 1000 levels recurses a few frames per level here.
_RECURSION_NEEDED = 20000


@functools.cache
def _prelude() -> SchemaDocument:
    return parse_schema(_PRELUDE, "prelude.graphql", built_in=True)


def _first(items: list[Any], name: str) -> Any:
    for item in items:
        if item.name == name:
            return item
    return None


def _is_leaf(d: Definition) -> bool:
    return d.kind in (ENUM, SCALAR)


def _is_composite(d: Definition) -> bool:
    return d.kind in (OBJECT, INTERFACE, UNION)


def _is_input(d: Definition) -> bool:
    return d.kind in (SCALAR, ENUM, INPUT_OBJECT)


# ---------------------------------------------------------------------------------------------
# Schema: merging and validating a schema document (gqlparser's ValidateSchemaDocument).


class Schema:
    """A validated schema: types with their extensions merged in, and the root types."""

    __slots__ = (
        "directives",
        "mutation",
        "possible_types",
        "query",
        "subscription",
        "types",
    )

    def __init__(self) -> None:
        self.types: dict[str, Definition] = {}
        self.directives: dict[str, DirectiveDefinition] = {}
        self.possible_types: dict[str, list[Definition | None]] = {}
        self.query: Definition | None = None
        self.mutation: Definition | None = None
        self.subscription: Definition | None = None


def _copy_definition(d: Definition) -> Definition:
    # Extensions are merged into copies so cached documents stay as they were parsed.
    new = copy.copy(d)
    for attr in ("directives", "interfaces", "fields", "types", "type_positions", "enum_values"):
        setattr(new, attr, list(getattr(d, attr)))
    return new


def build_schema(user: SchemaDocument) -> Schema:
    """Merge ``user`` with the prelude and validate it; raises :class:`GqlError`."""
    prelude = _prelude()
    definitions = prelude.definitions + user.definitions
    schema = Schema()
    types = schema.types
    for d in definitions:
        if d.name in types:
            raise GqlError.at(d.position, f"Cannot redeclare type {d.name}.")
        types[d.name] = _copy_definition(d)
    ordered = list(types.values())
    for ext in prelude.extensions + user.extensions:
        base = types.get(ext.name)
        if base is None:
            base = Definition(kind=ext.kind, name=ext.name, position=ext.position)
            types[ext.name] = base
            ordered.append(base)
        if base.kind != ext.kind:
            raise GqlError.at(
                ext.position,
                f"Cannot extend type {ext.name} because the base type is a {base.kind}, "
                f"not {ext.kind}.",
            )
        base.directives += ext.directives
        base.interfaces += ext.interfaces
        base.fields += ext.fields
        base.types += ext.types
        base.type_positions += ext.type_positions
        base.enum_values += ext.enum_values

    def possible(name: str, d: Definition | None) -> None:
        schema.possible_types.setdefault(name, []).append(d)

    for d in ordered:
        if d.kind == UNION:
            for t in d.types:
                possible(d.name, types.get(t))
        elif d.kind in (INPUT_OBJECT, OBJECT, INTERFACE):
            for intf in d.interfaces:
                possible(intf, d)
            if d.kind != INTERFACE:
                possible(d.name, d)

    directives = schema.directives
    for dd in prelude.directives + user.directives:
        if dd.name in directives and dd.name not in _PRELUDE_DIRECTIVES:
            raise GqlError.at(dd.position, f"Cannot redeclare directive {dd.name}.")
        directives[dd.name] = copy.copy(dd)
    for ext in prelude.directive_extensions + user.directive_extensions:
        base_dir = directives.get(ext.name)
        if base_dir is None:
            raise GqlError.at(
                ext.position, f"Cannot extend directive @{ext.name} because it is not defined."
            )
        base_dir.directives = base_dir.directives + ext.directives

    schema_defs = prelude.schema + user.schema
    if len(schema_defs) > 1:
        raise GqlError.at(
            schema_defs[1].position,
            "Cannot have multiple schema entry points, consider schema extensions instead.",
        )
    root_positions: dict[str, Position | None] = {}
    for sd in schema_defs + prelude.schema_extension + user.schema_extension:
        for entry in sd.operation_types:
            if entry.operation in root_positions:
                raise GqlError.at(
                    entry.position, f"There can be only one {entry.operation} type in schema."
                )
            root_positions[entry.operation] = entry.position
            root = types.get(entry.type)
            if root is None:
                raise GqlError.at(
                    entry.position,
                    f"Schema root {entry.operation} refers to a type {entry.type} "
                    "that does not exist.",
                )
            if entry.operation == "query":
                schema.query = root
            elif entry.operation == "mutation":
                schema.mutation = root
            elif entry.operation == "subscription":
                schema.subscription = root
        _check_directives(schema, sd.directives, "SCHEMA", None, True)

    for name in sorted(types):
        _check_definition(schema, types[name])
    _check_input_cycles(schema)
    for name in sorted(directives):
        _check_directive_definition(schema, directives[name])

    if not schema_defs:
        schema.query = schema.query or types.get("Query")
        schema.mutation = schema.mutation or types.get("Mutation")
        schema.subscription = schema.subscription or types.get("Subscription")
    for op, root, message in (
        ("query", schema.query, "Query root type must be Object type, it cannot be {}."),
        (
            "mutation",
            schema.mutation,
            "Mutation root type must be Object type if provided, it cannot be {}.",
        ),
        (
            "subscription",
            schema.subscription,
            "Subscription root type must be Object type if provided, it cannot be {}.",
        ),
    ):
        if root is not None and root.kind != OBJECT:
            pos = root_positions.get(op, root.position)
            raise GqlError.at(pos, message.format(root.name))
    if schema.query is not None:
        schema.query.fields = [
            *schema.query.fields,
            FieldDefinition(name="__schema", type=Type(named_type="__Schema", non_null=True)),
            FieldDefinition(
                name="__type",
                type=Type(named_type="__Type"),
                arguments=[
                    ArgumentDefinition(name="name", type=Type(named_type="String", non_null=True))
                ],
            ),
        ]
    return schema


def _type_name(t: Type | None) -> str:
    if t is None:
        raise MalformedAST("field without a type")
    return t.name()


def _check_name(pos: Position | None, name: str) -> None:
    if name.startswith("__"):
        raise GqlError.at(
            pos,
            f'Name "{name}" must not begin with "__", which is reserved by GraphQL introspection.',
        )


def _duplicate_arg(args: list[ArgumentDefinition]) -> ArgumentDefinition | None:
    for i, a in enumerate(args):
        for b in args[i + 1 :]:
            if a.name == b.name:
                return b
    return None


def _check_input_field_names(value: Value | None) -> None:
    if value is None:
        return
    seen: set[str] | None = None
    if value.kind == VariableKind.OBJECT and len(value.children) > 1:
        seen = set()
    for child in value.children:
        if seen is not None:
            if child.name in seen:
                raise GqlError.at(
                    child.position, f'There can be only one input field named "{child.name}".'
                )
            seen.add(child.name)
        _check_input_field_names(child.value)


def _check_directive_definition(schema: Schema, dd: DirectiveDefinition) -> None:
    _check_name(dd.position, dd.name)
    dup = _duplicate_arg(dd.arguments)
    if dup is not None:
        raise GqlError.at(
            dup.position, f"Argument @{dd.name}({dup.name}:) can only be defined once."
        )
    _check_directives(schema, dd.directives, "DIRECTIVE_DEFINITION", dd, True)
    _check_args(schema, dd.arguments, dd)


def _check_type_ref(schema: Schema, t: Type | None) -> None:
    name = _type_name(t)
    if name not in schema.types:
        raise GqlError.at(t.position if t is not None else None, f"Undefined type {name}.")


def _check_args(
    schema: Schema, args: list[ArgumentDefinition], current: DirectiveDefinition | None
) -> None:
    for arg in args:
        _check_name(arg.position, arg.name)
        _check_type_ref(schema, arg.type)
        _check_input_field_names(arg.default_value)
        d = schema.types[_type_name(arg.type)]
        if not _is_input(d):
            raise GqlError.at(
                arg.position,
                f"cannot use {arg.type} as argument {arg.name} because {d.kind} "
                "is not a valid input type",
            )
        _check_directives(schema, arg.directives, "ARGUMENT_DEFINITION", current, True)


def _check_directives(
    schema: Schema,
    directives: list[Directive],
    location: str,
    current: DirectiveDefinition | None,
    single_location: bool,
) -> None:
    seen: set[str] = set()
    for d in directives:
        _check_name(d.position, d.name)
        if current is not None and d.name == current.name:
            raise GqlError.at(d.position, f"Directive {current.name} cannot refer to itself.")
        definition = schema.directives.get(d.name)
        if definition is None:
            raise GqlError.at(d.position, f"Undefined directive {d.name}.")
        if single_location:
            if d.name in seen and not definition.is_repeatable:
                raise GqlError.at(
                    d.position, f"The directive {d.name} can only be used once at this location."
                )
            seen.add(d.name)
        if location not in definition.locations:
            raise GqlError.at(d.position, f"Directive {d.name} is not applicable on {location}.")
        for i, arg in enumerate(d.arguments):
            if _first(definition.arguments, arg.name) is None:
                raise GqlError.at(
                    arg.position, f"Undefined argument {arg.name} for directive {d.name}."
                )
            if _first(d.arguments[:i], arg.name) is not None:
                raise GqlError.at(arg.position, f"There can be only one argument named {arg.name}.")
        for schema_arg in definition.arguments:
            if schema_arg.type.non_null and schema_arg.default_value is None:
                given = _first(d.arguments, schema_arg.name)
                if given is None or given.value.kind == VariableKind.NULL:
                    raise GqlError.at(
                        d.position,
                        f"Argument {schema_arg.name} for directive {d.name} cannot be null.",
                    )
        for arg in d.arguments:
            _check_input_field_names(arg.value)


_EMPTY_WHAT = {INPUT_OBJECT: "input fields", ENUM: "unique enum values", UNION: "member types"}


def _check_definition(schema: Schema, d: Definition) -> None:
    types = schema.types
    for field in d.fields:
        _check_name(field.position, field.name)
        _check_type_ref(schema, field.type)
        _check_input_field_names(field.default_value)
        dup = _duplicate_arg(field.arguments)
        if dup is not None:
            raise GqlError.at(
                dup.position,
                f"Argument {d.name}.{field.name}({dup.name}:) can only be defined once.",
            )
        _check_args(schema, field.arguments, None)
        location = "INPUT_FIELD_DEFINITION" if d.kind == INPUT_OBJECT else "FIELD_DEFINITION"
        _check_directives(schema, field.directives, location, None, True)

    for t in d.types:
        member = types.get(t)
        if member is None:
            raise GqlError.at(d.position, f"Undefined type {go_quote(t)}.")
        if member.kind != OBJECT:
            raise GqlError.at(d.position, f"{d.kind} type {go_quote(t)} must be {OBJECT}.")

    for i, intf in enumerate(d.interfaces):
        if intf in d.interfaces[:i]:
            raise GqlError.at(d.position, f"Type {d.name} can only implement {intf} once.")
        _check_implements(schema, d, intf)

    empty = GqlError.at(
        d.position,
        f"{d.kind} {d.name}: must define one or more {_EMPTY_WHAT.get(d.kind, 'fields')}.",
    )
    if d.kind in (OBJECT, INTERFACE):
        if not d.fields:
            raise empty
        for field in d.fields:
            ft = types.get(_type_name(field.type))
            if ft is not None and ft.kind not in (SCALAR, OBJECT, INTERFACE, UNION, ENUM):
                raise GqlError.at(
                    field.position,
                    f"{d.kind} {d.name}: field must be one of "
                    "SCALAR, OBJECT, INTERFACE, UNION, ENUM.",
                )
    elif d.kind == ENUM:
        if not d.enum_values:
            raise empty
        for value in d.enum_values:
            _check_name(value.position, value.name)
            if value.name in ("true", "false", "null"):
                raise GqlError.at(
                    value.position, f"{d.kind} {d.name}: non-enum value {value.name}."
                )
            _check_directives(schema, value.directives, "ENUM_VALUE", None, True)
    elif d.kind == INPUT_OBJECT:
        if not d.fields:
            raise empty
        for field in d.fields:
            ft = types.get(_type_name(field.type))
            if ft is not None and ft.kind not in (SCALAR, ENUM, INPUT_OBJECT):
                raise GqlError.at(
                    field.position,
                    f"{ft.kind} {field.name}: field must be one of SCALAR, ENUM, INPUT_OBJECT.",
                )
    elif d.kind == UNION and not d.types:
        raise empty

    for i, f1 in enumerate(d.fields):
        for f2 in d.fields[i + 1 :]:
            if f1.name == f2.name:
                raise GqlError.at(
                    f2.position, f"Field {d.name}.{f2.name} can only be defined once."
                )
    for i, v1 in enumerate(d.enum_values):
        for v2 in d.enum_values[i + 1 :]:
            if v1.name == v2.name:
                raise GqlError.at(
                    v2.position, f"Enum value {d.name}.{v2.name} can only be defined once."
                )
    aligned = len(d.type_positions) == len(d.types)
    for i, t1 in enumerate(d.types):
        for j in range(i + 1, len(d.types)):
            if t1 != d.types[j]:
                continue
            pos = d.position
            if aligned and d.type_positions[j] is not None:
                pos = d.type_positions[j]
            raise GqlError.at(pos, f"Union type {d.name} can only include type {t1} once.")

    if not d.built_in:
        _check_name(d.position, d.name)
    _check_directives(schema, d.directives, d.kind, None, False)


def _is_covariant(schema: Schema, required: Type | None, actual: Type | None) -> bool:
    if required is None or actual is None:
        raise MalformedAST("field without a type")
    if required.non_null and not actual.non_null:
        return False
    if required.named_type:
        if required.named_type == actual.named_type:
            return True
        return any(
            pt is not None and pt.name == actual.named_type
            for pt in schema.possible_types.get(required.named_type, ())
        )
    if required.elem is not None and actual.elem is None:
        return False
    return _is_covariant(schema, required.elem, actual.elem)


def _type_compatible(t: Type, other: Type) -> bool:
    if t.named_type != other.named_type:
        return False
    if t.elem is not None and (other.elem is None or not _type_compatible(t.elem, other.elem)):
        return False
    if other.non_null:
        return t.non_null
    return True


def _check_implements(schema: Schema, d: Definition, intf_name: str) -> None:
    intf = schema.types.get(intf_name)
    if intf is None:
        raise GqlError.at(d.position, f"Undefined type {go_quote(intf_name)}.")
    if intf.kind != INTERFACE:
        raise GqlError.at(d.position, f"{go_quote(intf_name)} is a non interface type {intf.kind}.")
    if intf.name == d.name:
        raise GqlError.at(
            d.position,
            f"Type {d.name} cannot implement itself because it would create a circular reference.",
        )
    prefix = f"For {d.name} to implement {intf.name}"
    for required in intf.fields:
        found = _first(d.fields, required.name)
        if found is None:
            raise GqlError.at(d.position, f"{prefix} it must have a field called {required.name}.")
        if not _is_covariant(schema, required.type, found.type):
            raise GqlError.at(
                found.position,
                f"{prefix} the field {required.name} must have type {required.type}.",
            )
        for req_arg in required.arguments:
            found_arg = _first(found.arguments, req_arg.name)
            if found_arg is None:
                raise GqlError.at(
                    found.position,
                    f"{prefix} the field {required.name} must have the same arguments but it "
                    f"is missing {req_arg.name}.",
                )
            if not _type_compatible(req_arg.type, found_arg.type):
                raise GqlError.at(
                    found_arg.position,
                    f"{prefix} the field {required.name} must have the same arguments but "
                    f"{req_arg.name} has the wrong type.",
                )
        for extra in found.arguments:
            if (
                _first(required.arguments, extra.name) is None
                and extra.type.non_null
                and extra.default_value is None
            ):
                raise GqlError.at(
                    extra.position,
                    f"{prefix} any additional arguments on {found.name} must be optional or "
                    f"have a default value but {extra.name} is required.",
                )
    for transitive in intf.interfaces:
        if transitive not in d.interfaces:
            if transitive == d.name:
                raise GqlError.at(
                    d.position,
                    f"Type {d.name} cannot implement {intf_name} because it would create a "
                    "circular reference.",
                )
            raise GqlError.at(
                d.position,
                f"Type {d.name} must implement {transitive} because it is implemented by "
                f"{intf_name}.",
            )


def _check_input_cycles(schema: Schema) -> None:
    visited: set[str] = set()
    path: list[FieldDefinition] = []
    index_by_type: dict[str, int] = {}

    def detect(d: Definition) -> None:
        if d.name in visited:
            return
        visited.add(d.name)
        index_by_type[d.name] = len(path)
        for field in d.fields:
            t = field.type
            if t is None:
                raise MalformedAST("field without a type")
            if not t.non_null or not t.named_type:
                continue
            ft = schema.types.get(t.named_type)
            if ft is None or ft.kind != INPUT_OBJECT:
                continue
            path.append(field)
            start = index_by_type.get(ft.name)
            if start is not None:
                cycle = path[start:]
                names = ".".join(f.name for f in cycle)
                raise GqlError.at(
                    cycle[0].position,
                    f"Cannot reference Input Object {go_quote(ft.name)} within itself through "
                    f"a series of non-null fields: {go_quote(names)}.",
                )
            detect(ft)
            path.pop()
        del index_by_type[d.name]

    for name in sorted(schema.types):
        d = schema.types[name]
        if d.kind == INPUT_OBJECT:
            detect(d)


# ---------------------------------------------------------------------------------------------
# Query validation: gqlparser's walker and its default rules. Errors come out in the order
# gqlparser reports them: walk order, then rule name order for one node.


def _lexical_distance(a: str, b: str) -> int:
    if a == b:
        return 0
    a, b = a.lower(), b.lower()
    if a == b:
        return 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _suggestion_list(typed: str, options: list[str]) -> list[str]:
    threshold = max(math.floor(len(typed.encode()) * 0.4) + 1, 1)
    distances: dict[str, int] = {}
    results = []
    for option in options:
        distance = _lexical_distance(typed, option)
        if distance <= threshold:
            results.append(option)
            distances[option] = distance
    results.sort(key=lambda o: distances[o])
    return results


def _or_list(items: list[str]) -> str:
    items = items[:5]
    if len(items) == 2:
        return f"{items[0]} or {items[1]}"
    if len(items) > 1:
        return ", ".join(items[:-1]) + ", or " + items[-1]
    return "".join(items)


def _quoted_or_list(items: list[str]) -> str:
    return _or_list([f'"{item}"' for item in items])


def _suggest_quoted(prefix: str, typed: str, options: list[str]) -> str:
    suggested = _suggestion_list(typed, options)
    return f" {prefix} {_quoted_or_list(suggested)}?" if suggested else ""


def _suggest_unquoted(prefix: str, typed: str, options: list[str]) -> str:
    suggested = _suggestion_list(typed, options)
    return f" {prefix} {_or_list(suggested)}?" if suggested else ""


_GO_INT = re.compile(r"[+-]?[0-9]+\Z")
_GO_BOOLS = frozenset(
    ["1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"]
)
_HEX_FLOAT = re.compile(r"[+-]?0[xX]")


def _go_int_ok(raw: str, bits: int) -> str | None:
    """None if ``strconv.ParseInt(raw, 10, bits)`` succeeds, else "syntax" or "range"."""
    if not _GO_INT.match(raw):
        return "syntax"
    limit = 1 << (bits - 1)
    return None if -limit <= int(raw) < limit else "range"


def _go_float_ok(raw: str) -> bool:
    if raw != raw.strip() or not raw:
        return False
    try:
        value = float.fromhex(raw) if _HEX_FLOAT.match(raw) else float(raw)
    except (ValueError, OverflowError):
        return False
    return not math.isinf(value) or "inf" in raw.lower()


def _value_ok(v: Value | None) -> bool:
    """Whether gqlparser's ``Value.Value(nil)`` succeeds on ``v``."""
    if v is None:
        return True
    k = v.kind
    if k == VariableKind.VARIABLE:
        vd = v.variable_definition
        return vd is None or _value_ok(vd.default_value)
    if k == VariableKind.INT:
        return _go_int_ok(v.raw, 64) is None
    if k == VariableKind.FLOAT:
        return _go_float_ok(v.raw)
    if k == VariableKind.BOOLEAN:
        return v.raw in _GO_BOOLS
    if k == VariableKind.LIST:
        return all(_value_ok(c.value) for c in v.children)
    if k == VariableKind.OBJECT:
        for c in v.children:
            cv = c.value
            if cv is None:
                raise MalformedAST("object field without a value")
            unset = cv.kind == VariableKind.VARIABLE and (
                cv.variable_definition is None or cv.variable_definition.default_value is None
            )
            if not unset and not _value_ok(cv):
                return False
        return True
    if k in (VariableKind.STRING, VariableKind.BLOCK, VariableKind.ENUM, VariableKind.NULL):
        return True
    raise MalformedAST(f"unknown value kind {k}")


class _FieldsMap:
    """Fields of a selection set by response name, in first-seen order."""

    __slots__ = ("data", "seq")

    def __init__(self) -> None:
        self.seq: list[str] = []
        self.data: dict[str, list[Field]] = {}

    def push(self, name: str, field: Field) -> None:
        if name not in self.data:
            self.seq.append(name)
            self.data[name] = []
        self.data[name].append(field)


class _Conflict:
    __slots__ = ("message", "position", "response_name", "subs")

    def __init__(
        self,
        response_name: str,
        position: Position | None,
        message: str = "",
        subs: list[_Conflict] | None = None,
    ) -> None:
        self.response_name = response_name
        self.position = position
        self.message = message
        self.subs = subs or []

    def reason(self) -> str:
        if not self.subs:
            return self.message
        return " and ".join(
            f'subfields "{s.response_name}" conflict because {s.reason()}' for s in self.subs
        )


class _Overlap:
    """OverlappingFieldsCanBeMerged, with its per-validation memos."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.compared_fields: dict[tuple[int, str], bool] = {}
        self.compared_fragments: dict[tuple[str, str], bool] = {}
        self.cache: dict[int, tuple[_FieldsMap, list[FragmentSpread]]] = {}

    @staticmethod
    def _has(table: dict[Any, bool], key: Any, exclusive: bool) -> bool:
        if key not in table:
            return False
        return True if exclusive else not table[key]

    def collect(self, selection_set: list[Node]) -> tuple[_FieldsMap, list[FragmentSpread]]:
        key = id(selection_set) if selection_set else 0
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        fields = _FieldsMap()
        spreads: list[FragmentSpread] = []

        def walk(ss: list[Node]) -> None:
            for sel in ss:
                if isinstance(sel, Field):
                    fields.push(sel.alias or sel.name, sel)
                elif isinstance(sel, InlineFragment):
                    walk(sel.selection_set)
                elif isinstance(sel, FragmentSpread):
                    spreads.append(sel)

        walk(selection_set)
        self.cache[key] = (fields, spreads)
        return fields, spreads

    def within(self, selection_set: list[Node]) -> list[_Conflict]:
        if not selection_set:
            return []
        fields, spreads = self.collect(selection_set)
        conflicts: list[_Conflict] = []
        for name in fields.seq:
            group = fields.data[name]
            for i, a in enumerate(group):
                for b in group[i + 1 :]:
                    self._add(conflicts, self.find(False, a, b))
        for i, sa in enumerate(spreads):
            self.fields_and_fragment(conflicts, False, fields, sa)
            for sb in spreads[i + 1 :]:
                self.fragments(conflicts, False, sa, sb)
        return conflicts

    @staticmethod
    def _add(conflicts: list[_Conflict], conflict: _Conflict | None) -> None:
        if conflict is not None:
            conflicts.append(conflict)

    def fields_and_fragment(
        self,
        conflicts: list[_Conflict],
        exclusive: bool,
        fields: _FieldsMap,
        spread: FragmentSpread,
    ) -> None:
        key = (id(fields), spread.name)
        if self._has(self.compared_fields, key, exclusive):
            return
        self.compared_fields[key] = exclusive
        if spread.definition is None:
            return
        other, spreads = self.collect(spread.definition.selection_set)
        if other is fields:
            return
        self.between(conflicts, exclusive, fields, other)
        for s in spreads:
            self.fields_and_fragment(conflicts, exclusive, fields, s)

    def fragments(
        self, conflicts: list[_Conflict], exclusive: bool, a: FragmentSpread, b: FragmentSpread
    ) -> None:
        if a.name == b.name:
            return
        if self._has(self.compared_fragments, (a.name, b.name), exclusive):
            return
        self.compared_fragments[(a.name, b.name)] = exclusive
        self.compared_fragments[(b.name, a.name)] = exclusive
        if a.definition is None or b.definition is None:
            return
        fields_a, spreads_a = self.collect(a.definition.selection_set)
        fields_b, spreads_b = self.collect(b.definition.selection_set)
        self.between(conflicts, exclusive, fields_a, fields_b)
        for s in spreads_b:
            self.fragments(conflicts, exclusive, a, s)
        for s in spreads_a:
            self.fragments(conflicts, exclusive, s, b)

    def between_sets(
        self, exclusive: bool, set_a: list[Node], set_b: list[Node]
    ) -> list[_Conflict]:
        fields_a, spreads_a = self.collect(set_a)
        fields_b, spreads_b = self.collect(set_b)
        conflicts: list[_Conflict] = []
        self.between(conflicts, exclusive, fields_a, fields_b)
        for s in spreads_b:
            self.fields_and_fragment(conflicts, exclusive, fields_a, s)
        for s in spreads_a:
            self.fields_and_fragment(conflicts, exclusive, fields_b, s)
        for sa in spreads_a:
            for sb in spreads_b:
                self.fragments(conflicts, exclusive, sa, sb)
        return conflicts

    def between(
        self,
        conflicts: list[_Conflict],
        exclusive: bool,
        fields_a: _FieldsMap,
        fields_b: _FieldsMap,
    ) -> None:
        for name in fields_a.seq:
            group_b = fields_b.data.get(name)
            if group_b is None:
                continue
            for a in fields_a.data[name]:
                for b in group_b:
                    self._add(conflicts, self.find(exclusive, a, b))

    def find(self, parent_exclusive: bool, a: Field, b: Field) -> _Conflict | None:
        oa, ob = a.object_definition, b.object_definition
        if oa is None or ob is None:
            return None
        exclusive = parent_exclusive or (
            oa.name != ob.name
            and oa.kind == OBJECT
            and ob.kind == OBJECT
            and a.definition is not None
            and b.definition is not None
        )
        name = a.alias or a.name
        if not exclusive:
            if a.name != b.name:
                return _Conflict(
                    name, b.position, f'"{a.name}" and "{b.name}" are different fields'
                )
            if not _same_arguments(a.arguments, b.arguments):
                return _Conflict(name, b.position, "they have differing arguments")
        if (
            a.definition is not None
            and b.definition is not None
            and self._types_conflict(a.definition.type, b.definition.type)
        ):
            return _Conflict(
                name,
                b.position,
                f'they return conflicting types "{a.definition.type}" and "{b.definition.type}"',
            )
        subs = self.between_sets(exclusive, a.selection_set, b.selection_set)
        if not subs:
            return None
        return _Conflict(name, b.position, subs=subs)

    def _types_conflict(self, t1: Type | None, t2: Type | None) -> bool:
        if t1 is None or t2 is None:
            raise MalformedAST("field without a type")
        if t1.non_null != t2.non_null or (t1.elem is None) != (t2.elem is None):
            return True
        if t1.elem is not None:
            return self._types_conflict(t1.elem, t2.elem)
        d1 = self.schema.types.get(t1.named_type)
        d2 = self.schema.types.get(t2.named_type)
        if d1 is None or d2 is None:
            raise MalformedAST("field of an unknown type")
        if _is_leaf(d1) or _is_leaf(d2):
            return d1.name != d2.name
        return False


def _same_arguments(args1: list[Any], args2: list[Any]) -> bool:
    if len(args1) != len(args2):
        return False
    return all(
        any(a.name == b.name and _same_value(a.value, b.value) for b in args2) for a in args1
    )


def _same_value(v1: Value | None, v2: Value | None) -> bool:
    if v1 is None or v2 is None:
        raise MalformedAST("argument without a value")
    if v1.kind != v2.kind or v1.raw != v2.raw or len(v1.children) != len(v2.children):
        return False
    c1, c2 = v1.children, v2.children
    if v1.kind == VariableKind.OBJECT:
        c1 = sorted(c1, key=lambda c: c.name.encode("utf-8", "surrogatepass"))
        c2 = sorted(c2, key=lambda c: c.name.encode("utf-8", "surrogatepass"))
    return all(
        a.name == b.name and _same_value(a.value, b.value) for a, b in zip(c1, c2, strict=True)
    )


_INTROSPECTION_LISTS = frozenset({"fields", "interfaces", "possibleTypes", "inputFields"})
_CUSTOM_SCALARS_SKIPPED = ("Int", "Float", "String", "Boolean", "ID")


class _QueryValidator:
    """One run of gqlparser's ``ValidateWithRules`` with its default rules."""

    def __init__(self, schema: Schema, doc: QueryDocument) -> None:
        self.schema = schema
        self.types = schema.types
        self.doc = doc
        self.errors: list[GqlError] = []
        self.fragments: dict[str, FragmentDefinition] = {}
        self.current_operation: OperationDefinition | None = None
        self.validated_spreads: set[str] = set()
        # Rule state, shared across the whole document as in gqlparser.
        self.depth_visiting: dict[str, int] = {}
        self.depth_memo: dict[tuple[str, int], bool] = {}
        self.cycle_visited: set[str] = set()
        self.in_fragment_definition = False
        self.used_fragments: set[str] = set()
        self.overlap = _Overlap(schema)
        self.seen_fragment_names: set[str] = set()
        self.seen_operation_names: set[str] = set()
        self.misplaced_directives: set[tuple[str, int, int]] = set()

    def add(self, message: str, *positions: Position | None) -> None:
        self.errors.append(GqlError(message, *positions))

    def run(self) -> list[GqlError]:
        for frag in self.doc.fragments:
            self.fragments.setdefault(frag.name, frag)
        for op in self.doc.operations:
            self.validated_spreads = set()
            self.walk_operation(op)
        for frag in self.doc.fragments:
            self.validated_spreads = set()
            self.walk_fragment(frag)
        return self.errors

    # -- walker --

    def _root(self, operation: str) -> tuple[Definition | None, str]:
        if operation in ("query", ""):
            return self.schema.query, "QUERY"
        if operation == "mutation":
            return self.schema.mutation, "MUTATION"
        if operation == "subscription":
            return self.schema.subscription, "SUBSCRIPTION"
        raise MalformedAST(f'got unknown operation type "{operation}"')

    def walk_operation(self, op: OperationDefinition) -> None:
        self.current_operation = op
        for vd in op.variable_definitions:
            vd.definition = self.types.get(_type_name(vd.type))
            self.on_variable(vd)
            if vd.default_value is not None:
                vd.default_value.expected_type = vd.type
                vd.default_value.definition = self.types.get(_type_name(vd.type))
        root, location = self._root(op.operation)
        for vd in op.variable_definitions:
            if vd.default_value is not None:
                self.walk_value(vd.default_value)
            self.walk_directives(vd.definition, vd.directives, "VARIABLE_DEFINITION")
        self.walk_directives(root, op.directives, location)
        self.walk_selection_set(root, op.selection_set)
        self.on_operation(op)
        self.current_operation = None

    def walk_fragment(self, frag: FragmentDefinition) -> None:
        d = self.types.get(frag.type_condition)
        frag.definition = d
        self.walk_directives(d, frag.directives, "FRAGMENT_DEFINITION")
        self.walk_selection_set(d, frag.selection_set)
        self.on_fragment(frag)

    def walk_directives(
        self, parent: Definition | None, directives: list[Directive], location: str
    ) -> None:
        for d in directives:
            definition = self.schema.directives.get(d.name)
            d.definition = definition
            d.parent_definition = parent
            d.location = location
            for arg in d.arguments:
                arg_def = _first(definition.arguments, arg.name) if definition else None
                self.walk_argument(arg_def, arg)
            self.on_directive(d)
        self.on_directive_list(directives)

    def walk_argument(self, arg_def: ArgumentDefinition | None, arg: Any) -> None:
        value = arg.value
        if value is None:
            raise MalformedAST("argument without a value")
        if arg_def is not None:
            value.expected_type = arg_def.type
            value.expected_type_has_default = (
                arg_def.default_value is not None
                and arg_def.default_value.kind != VariableKind.NULL
            )
            value.definition = self.types.get(_type_name(arg_def.type))
        self.walk_value(value)

    def walk_value(self, value: Value | None) -> None:
        if value is None:
            raise MalformedAST("missing value")
        op = self.current_operation
        if value.kind == VariableKind.VARIABLE and op is not None:
            vd = next((v for v in op.variable_definitions if v.variable == value.raw), None)
            value.variable_definition = vd
            if vd is not None:
                vd.used = True
        if value.kind == VariableKind.OBJECT:
            for child in value.children:
                if child.value is None:
                    raise MalformedAST("object field without a value")
                if value.definition is not None:
                    fd = _first(value.definition.fields, child.name)
                    if fd is not None:
                        child.value.expected_type = fd.type
                        child.value.expected_type_has_default = (
                            fd.default_value is not None
                            and fd.default_value.kind != VariableKind.NULL
                        )
                        child.value.definition = self.types.get(_type_name(fd.type))
                self.walk_value(child.value)
        if value.kind == VariableKind.LIST:
            for child in value.children:
                if child.value is None:
                    raise MalformedAST("list item without a value")
                if value.expected_type is not None and value.expected_type.elem is not None:
                    child.value.expected_type = value.expected_type.elem
                    child.value.definition = value.definition
                self.walk_value(child.value)
        self.on_value(value)

    def walk_selection_set(self, parent: Definition | None, selections: list[Node]) -> None:
        for sel in selections:
            if isinstance(sel, Field):
                self.walk_field(parent, sel)
            elif isinstance(sel, InlineFragment):
                sel.object_definition = parent
                inner = self.types.get(sel.type_condition) if sel.type_condition else parent
                self.walk_directives(inner, sel.directives, "INLINE_FRAGMENT")
                self.walk_selection_set(inner, sel.selection_set)
                self.on_inline_fragment(sel)
            elif isinstance(sel, FragmentSpread):
                frag = self.fragments.get(sel.name)
                sel.definition = frag
                sel.object_definition = parent
                inner = self.types.get(frag.type_condition) if frag is not None else None
                self.walk_directives(inner, sel.directives, "FRAGMENT_SPREAD")
                if frag is not None and frag.name not in self.validated_spreads:
                    self.validated_spreads.add(frag.name)
                    self.walk_directives(inner, frag.directives, "FRAGMENT_DEFINITION")
                    self.walk_selection_set(inner, frag.selection_set)
                self.on_fragment_spread(sel)
            else:
                raise MalformedAST("unsupported selection")

    def walk_field(self, parent: Definition | None, field: Field) -> None:
        fd: FieldDefinition | None
        if field.name == "__typename":
            fd = FieldDefinition(name="__typename", type=Type(named_type="String"))
        elif parent is not None:
            fd = _first(parent.fields, field.name)
        else:
            fd = None
        field.definition = fd
        field.object_definition = parent
        inner = self.types.get(_type_name(fd.type)) if fd is not None else None
        for arg in field.arguments:
            arg_def = _first(fd.arguments, arg.name) if fd is not None else None
            self.walk_argument(arg_def, arg)
        self.walk_directives(inner, field.directives, "FIELD")
        self.walk_selection_set(inner, field.selection_set)
        self.on_field(field)

    # -- rules, by event --

    def on_operation(self, op: OperationDefinition) -> None:
        root, _ = self._root(op.operation)
        if root is None:
            self.add(f'Schema does not support operation type "{op.operation}"', op.position)
        if not op.name and len(self.doc.operations) > 1:
            self.add("This anonymous operation must be the only defined operation.", op.position)
        for vd in op.variable_definitions:
            if not vd.used:
                where = f' in operation "{op.name}"' if op.name else ""
                self.add(f'Variable "${vd.variable}" is never used{where}.', vd.position)
        self._report_conflicts(self.overlap.within(op.selection_set))
        if self.schema.subscription is not None and op.operation == "subscription":
            self._single_field_subscription(op)
        if op.name in self.seen_operation_names:
            self.add(f'There can be only one operation named "{op.name}".', op.position)
        self.seen_operation_names.add(op.name)
        counts: dict[str, int] = {}
        for vd in op.variable_definitions:
            if counts.get(vd.variable) == 1:
                self.add(f'There can be only one variable named "${vd.variable}".', vd.position)
            counts[vd.variable] = counts.get(vd.variable, 0) + 1
        for vd in op.variable_definitions:
            if vd.definition is not None and not _is_input(vd.definition):
                self.add(
                    f'Variable "${vd.variable}" cannot be non-input type "{vd.type}".',
                    vd.position,
                )

    def _single_field_subscription(self, op: OperationDefinition) -> None:
        fields: list[Field] = []
        entered: set[str] = set()

        def walk(selections: list[Node]) -> None:
            for sel in selections:
                if isinstance(sel, Field):
                    fields.append(sel)
                elif isinstance(sel, InlineFragment):
                    walk(sel.selection_set)
                elif isinstance(sel, FragmentSpread):
                    if sel.definition is None:
                        return
                    if sel.definition.name not in entered:
                        entered.add(sel.definition.name)
                        walk(sel.definition.selection_set)

        walk(op.selection_set)
        seen: set[str] = set()
        unique = []
        for f in fields:
            if f.name not in seen:
                unique.append(f)
            seen.add(f.name)
        name = f"Subscription {go_quote(op.name)}" if op.name else "Anonymous Subscription"
        if len(unique) > 1:
            self.add(f"{name} must select only one top level field.", unique[1].position)
        for f in unique:
            if f.name.startswith("__"):
                self.add(f"{name} must not select an introspection top level field.", f.position)

    def _report_conflicts(self, conflicts: list[_Conflict]) -> None:
        for c in conflicts:
            self.add(
                f'Fields "{c.response_name}" conflict because {c.reason()}. Use different '
                "aliases on the fields to fetch both if this was intentional.",
                c.position,
            )

    def on_field(self, field: Field) -> None:
        parent, fd = field.object_definition, field.definition
        if parent is not None and fd is None:
            message = f'Cannot query field "{field.name}" on type "{parent.name}".'
            suggested_types = self._suggested_type_names(parent, field.name)
            if suggested_types:
                choices = _quoted_or_list(suggested_types)
                message += f" Did you mean to use an inline fragment on {choices}?"
            elif parent.kind in (OBJECT, INTERFACE):
                names = _suggestion_list(field.name, [f.name for f in parent.fields])
                if names:
                    message += f" Did you mean {_quoted_or_list(names)}?"
            self.add(message, field.position)
        if fd is not None and parent is not None:
            for arg in field.arguments:
                if _first(fd.arguments, arg.name) is None:
                    self.add(
                        f'Unknown argument "{arg.name}" on field "{parent.name}.{field.name}".'
                        + _suggest_quoted("Did you mean", arg.name, [a.name for a in fd.arguments]),
                        field.position,
                    )
        if field.name in ("__schema", "__type") and self._depth_field(field, 0):
            self.add("Maximum introspection depth exceeded", field.position)
        if self.current_operation is not None:
            self._report_conflicts(self.overlap.within(field.selection_set))
        if fd is not None:
            for arg_def in fd.arguments:
                if not arg_def.type.non_null or arg_def.default_value is not None:
                    continue
                if any(a.name == arg_def.name for a in field.arguments):
                    continue
                self.add(
                    f'Field "{field.name}" argument "{arg_def.name}" of type "{arg_def.type}" '
                    "is required, but it was not provided.",
                    field.position,
                )
            ft = self.types.get(_type_name(fd.type))
            if ft is not None:
                if _is_leaf(ft) and field.selection_set:
                    self.add(
                        f'Field "{field.name}" must not have a selection since type "{ft.name}" '
                        "has no subfields.",
                        field.position,
                    )
                if not _is_leaf(ft) and not field.selection_set:
                    self.add(
                        f'Field "{field.name}" of type "{fd.type}" must have a selection of '
                        f'subfields. Did you mean "{field.name} {{ ... }}"?',
                        field.position,
                    )
        self._unique_arguments(field.arguments)

    def _suggested_type_names(self, parent: Definition, name: str) -> list[str]:
        if parent.kind not in (INTERFACE, UNION):
            return []
        objects: list[str] = []
        interfaces: list[str] = []
        usage: dict[str, int] = {}
        for possible in self.schema.possible_types.get(parent.name, ()):
            if possible is None or _first(possible.fields, name) is None:
                continue
            objects.append(possible.name)
            for intf in possible.interfaces:
                intf_def = self.types.get(intf)
                if intf_def is not None and _first(intf_def.fields, name) is not None:
                    if not usage.get(intf):
                        interfaces.append(intf)
                    usage[intf] = usage.get(intf, 0) + 1
        suggested = interfaces + objects
        suggested.sort(key=lambda t: (-usage.get(t, 0), t.encode("utf-8", "surrogatepass")))
        return suggested

    def _unique_arguments(self, arguments: list[Any]) -> None:
        counts: dict[str, int] = {}
        for arg in arguments:
            if counts.get(arg.name) == 1:
                self.add(f'There can be only one argument named "{arg.name}".', arg.position)
            counts[arg.name] = counts.get(arg.name, 0) + 1

    def _depth_selections(self, selections: list[Node], depth: int) -> bool:
        for sel in selections:
            if isinstance(sel, Field) and self._depth_field(sel, depth):
                return True
            if isinstance(sel, FragmentSpread) and self._depth_spread(sel, depth):
                return True
            if isinstance(sel, InlineFragment) and self._depth_selections(sel.selection_set, depth):
                return True
        return False

    def _depth_field(self, field: Field, depth: int) -> bool:
        if field.name in _INTROSPECTION_LISTS:
            depth += 1
            if depth >= 3:
                return True
        return self._depth_selections(field.selection_set, depth)

    def _depth_spread(self, spread: FragmentSpread, depth: int) -> bool:
        entry = self.depth_visiting.get(spread.name)
        if entry is not None:
            return depth > entry
        frag = spread.definition
        if frag is None:
            return False
        key = (spread.name, depth)
        if key in self.depth_memo:
            return self.depth_memo[key]
        self.depth_visiting[spread.name] = depth
        try:
            exceeded = self._depth_selections(frag.selection_set, depth)
        finally:
            del self.depth_visiting[spread.name]
        self.depth_memo[key] = exceeded
        return exceeded

    def on_fragment(self, frag: FragmentDefinition) -> None:
        d = frag.definition
        if d is not None and frag.type_condition and not _is_composite(d):
            self.add(
                f'Fragment "{frag.name}" cannot condition on non composite type '
                f'"{frag.type_condition}".',
                frag.position,
            )
        if frag.type_condition not in self.types:
            self.add(
                f'Unknown type "{frag.type_condition}".'
                + _suggest_quoted("Did you mean", frag.type_condition, sorted(self.types)),
                frag.position,
            )
        self._fragment_cycles(frag)
        self.in_fragment_definition = True
        if frag.name not in self.used_fragments:
            self.add(f'Fragment "{frag.name}" is never used.', frag.position)
        self._report_conflicts(self.overlap.within(frag.selection_set))
        if frag.name in self.seen_fragment_names:
            self.add(f'There can be only one fragment named "{frag.name}".', frag.position)
        self.seen_fragment_names.add(frag.name)

    def _fragment_cycles(self, frag: FragmentDefinition) -> None:
        path: list[FragmentSpread] = []
        index_by_name: dict[str, int] = {}

        def visit(f: FragmentDefinition) -> None:
            if f.name in self.cycle_visited:
                return
            self.cycle_visited.add(f.name)
            spreads = _fragment_spreads(f.selection_set)
            if not spreads:
                return
            index_by_name[f.name] = len(path)
            for spread in spreads:
                start = index_by_name.get(spread.name)
                path.append(spread)
                if start is None:
                    target = _first(self.doc.fragments, spread.name)
                    if target is not None:
                        visit(target)
                else:
                    names = ", ".join(f'"{s.name}"' for s in path[start:-1])
                    via = f" via {names}" if names else ""
                    self.add(
                        f'Cannot spread fragment "{spread.name}" within itself{via}.',
                        spread.position,
                    )
                path.pop()
            del index_by_name[f.name]

        visit(frag)

    def on_inline_fragment(self, inline: InlineFragment) -> None:
        tc = inline.type_condition
        ft = self.types.get(tc)
        if ft is not None and not _is_composite(ft):
            self.add(f'Fragment cannot condition on non composite type "{tc}".', inline.position)
        if tc and ft is None:
            self.add(f'Unknown type "{tc}".', inline.position)
        self._report_conflicts(self.overlap.within(inline.selection_set))
        parent = inline.object_definition
        if parent is not None and not self._spread_possible(parent, tc):
            self.add(
                f'Fragment cannot be spread here as objects of type "{parent.name}" can never '
                f'be of type "{tc}".',
                inline.position,
            )

    def _spread_possible(self, parent: Definition, fragment_type: str) -> bool:
        if parent.kind == OBJECT:
            parents: list[Definition | None] = [parent]
        elif parent.kind in (INTERFACE, UNION):
            parents = self.schema.possible_types.get(parent.name, [])
        else:
            return True
        ft = self.types.get(fragment_type)
        if ft is None or not _is_composite(ft):
            return True
        parent_names = {p.name for p in parents if p is not None}
        return any(
            fd is not None and fd.name in parent_names
            for fd in self.schema.possible_types.get(ft.name, ())
        )

    def on_fragment_spread(self, spread: FragmentSpread) -> None:
        if spread.definition is None:
            self.add(f'Unknown fragment "{spread.name}".', spread.position)
        if not self.in_fragment_definition:
            self.used_fragments.add(spread.name)
        parent = spread.object_definition
        if spread.definition is not None and parent is not None:
            tc = spread.definition.type_condition
            if not self._spread_possible(parent, tc):
                self.add(
                    f'Fragment "{spread.name}" cannot be spread here as objects of type '
                    f'"{parent.name}" can never be of type "{tc}".',
                    spread.position,
                )

    def on_directive(self, d: Directive) -> None:
        definition = d.definition
        if definition is not None:
            for arg in d.arguments:
                if _first(definition.arguments, arg.name) is None:
                    self.add(
                        f'Unknown argument "{arg.name}" on directive "@{d.name}".'
                        + _suggest_quoted(
                            "Did you mean", arg.name, [a.name for a in definition.arguments]
                        ),
                        d.position,
                    )
        if definition is None:
            self.add(f'Unknown directive "@{d.name}".', d.position)
        elif d.location not in definition.locations:
            if d.position is None:
                raise MalformedAST("directive without a position")
            key = (d.name, d.position.line, d.position.column)
            if key not in self.misplaced_directives:
                self.add(f'Directive "@{d.name}" may not be used on {d.location}.', d.position)
                self.misplaced_directives.add(key)
        if definition is not None:
            for arg_def in definition.arguments:
                if not arg_def.type.non_null or arg_def.default_value is not None:
                    continue
                if any(a.name == arg_def.name for a in d.arguments):
                    continue
                self.add(
                    f'Directive "@{definition.name}" argument "{arg_def.name}" of type '
                    f'"{arg_def.type}" is required, but it was not provided.',
                    d.position,
                )
        self._unique_arguments(d.arguments)

    def on_directive_list(self, directives: list[Directive]) -> None:
        seen: set[str] = set()
        for d in directives:
            repeatable = d.definition is not None and d.definition.is_repeatable
            if not repeatable and d.name in seen:
                self.add(
                    f'The directive "@{d.name}" can only be used once at this location.',
                    d.position,
                )
            seen.add(d.name)

    def on_variable(self, vd: VariableDefinition) -> None:
        name = _type_name(vd.type)
        if name not in self.types:
            self.add(f'Unknown type "{name}".', vd.position)

    def on_value(self, v: Value) -> None:
        op = self.current_operation
        if op is not None and v.kind == VariableKind.VARIABLE and v.variable_definition is None:
            where = f' by operation "{op.name}"' if op.name else ""
            self.add(f'Variable "{v}" is not defined{where}.', v.position)
        if v.kind == VariableKind.OBJECT:
            seen: set[str] = set()
            for child in v.children:
                if child.name in seen:
                    self.add(
                        f'There can be only one input field named "{child.name}".', child.position
                    )
                seen.add(child.name)
        self._values_of_correct_type(v)
        self._variable_position(v)
        self._one_of_variables(v)

    def _unexpected_type(self, v: Value) -> str:
        et = str(v.expected_type)
        if et in ("Int", "Int!"):
            if _go_int_ok(v.raw, 32) == "range":
                return f"Int cannot represent non 32-bit signed integer value: {v}"
            return f"Int cannot represent non-integer value: {v}"
        if et in ("String", "String!", "[String]"):
            return f"String cannot represent a non string value: {v}"
        if et in ("Boolean", "Boolean!"):
            return f"Boolean cannot represent a non boolean value: {v}"
        if et in ("Float", "Float!"):
            return f"Float cannot represent non numeric value: {v}"
        if et in ("ID", "ID!"):
            return f"ID cannot represent a non-string and non-integer value: {v}"
        if v.definition is not None and v.definition.kind == ENUM:
            return f'Enum "{et}" cannot represent non-enum value: {v}.'
        return f'Expected value of type "{et}", found {v}.'

    def _values_of_correct_type(self, v: Value) -> None:
        d, et = v.definition, v.expected_type
        if d is None or et is None:
            return
        if v.kind == VariableKind.NULL and et.non_null:
            self.add(f'Expected value of type "{et}", found {v}.', v.position)
        if d.kind == SCALAR and d.name not in _CUSTOM_SCALARS_SKIPPED:
            return
        enums = [ev.name for ev in d.enum_values] if d.kind == ENUM else []
        if not _value_ok(v):
            self.add(self._unexpected_type(v), v.position)
        k = v.kind
        if k in (VariableKind.NULL, VariableKind.VARIABLE):
            return
        if k == VariableKind.LIST:
            if et.elem is None:
                self.add(self._unexpected_type(v), v.position)
        elif k == VariableKind.INT:
            if d.name not in ("Int", "Float", "ID"):
                self.add(self._unexpected_type(v), v.position)
        elif k == VariableKind.FLOAT:
            if d.name != "Float":
                self.add(self._unexpected_type(v), v.position)
        elif k in (VariableKind.STRING, VariableKind.BLOCK):
            if d.kind == ENUM:
                self.add(
                    f'Enum "{et}" cannot represent non-enum value: {v}.'
                    + _suggest_quoted("Did you mean the enum value", v.raw, enums),
                    v.position,
                )
            elif d.name not in ("String", "ID"):
                self.add(self._unexpected_type(v), v.position)
        elif k == VariableKind.ENUM:
            if d.kind != ENUM:
                self.add(
                    self._unexpected_type(v)
                    + _suggest_unquoted("Did you mean the enum value", v.raw, enums),
                    v.position,
                )
            elif _first(d.enum_values, v.raw) is None:
                self.add(
                    f'Value "{v}" does not exist in "{et}" enum.'
                    + _suggest_quoted("Did you mean the enum value", v.raw, enums),
                    v.position,
                )
        elif k == VariableKind.BOOLEAN:
            if d.name != "Boolean":
                self.add(self._unexpected_type(v), v.position)
        elif k == VariableKind.OBJECT:
            self._check_object_value(v, d)
        else:
            raise MalformedAST(f"unknown value kind {k}")

    def _check_object_value(self, v: Value, d: Definition) -> None:
        for field in d.fields:
            if field.type.non_null:
                given = next((c.value for c in v.children if c.name == field.name), None)
                if given is None and field.default_value is None:
                    self.add(
                        f'Field "{d.name}.{field.name}" of required type "{field.type}" was not '
                        "provided.",
                        v.position,
                    )
        for directive in d.directives:
            if directive.name != "oneOf":
                continue
            if len(v.children) != 1:
                self.add(f'OneOf Input Object "{d.name}" must specify exactly one key.', v.position)
                continue
            only = v.children[0].value
            if only is None:
                raise MalformedAST("object field without a value")
            if only.kind == VariableKind.NULL:
                self.add(f'Field "{d.name}.{d.fields[0].name}" must be non-null.', only.position)
        for child in v.children:
            if _first(d.fields, child.name) is None:
                self.add(
                    f'Field "{child.name}" is not defined by type "{d.name}".'
                    + _suggest_quoted("Did you mean", child.name, [f.name for f in d.fields]),
                    child.position,
                )

    def _variable_position(self, v: Value) -> None:
        et, vd = v.expected_type, v.variable_definition
        if (
            v.kind != VariableKind.VARIABLE
            or et is None
            or vd is None
            or self.current_operation is None
        ):
            return
        allowed = Type(named_type=et.named_type, elem=et.elem, non_null=et.non_null)
        default = vd.default_value
        if default is not None and default.kind != VariableKind.NULL and et.non_null:
            allowed.non_null = False
        if v.expected_type_has_default:
            allowed.non_null = False
        if vd.type is None:
            raise MalformedAST("variable without a type")
        if not _type_compatible(vd.type, allowed):
            self.add(
                f'Variable "{v}" of type "{vd.type}" used in position expecting type "{et}".',
                v.position,
            )

    def _one_of_variables(self, v: Value) -> None:
        d = v.definition
        if v.kind != VariableKind.OBJECT or d is None:
            return
        if _first(d.directives, "oneOf") is None:
            return
        for child in v.children:
            fv = child.value
            if fv is None or fv.kind != VariableKind.VARIABLE or fv.variable_definition is None:
                continue
            vd = fv.variable_definition
            if not vd.type.non_null:
                self.add(
                    f'Variable "{fv}" is of type "{vd.type}" but must be non-nullable to be used '
                    f'for OneOf Input Object "{d.name}".',
                    vd.position,
                    fv.position,
                )


def _fragment_spreads(selections: list[Node]) -> list[FragmentSpread]:
    spreads: list[FragmentSpread] = []
    pending = [selections]
    while pending:
        for sel in pending.pop():
            if isinstance(sel, FragmentSpread):
                spreads.append(sel)
            elif isinstance(sel, (Field, InlineFragment)):
                pending.append(sel.selection_set)
    return spreads


def validate_query(schema: Schema, doc: QueryDocument) -> list[GqlError]:
    """All errors gqlparser's default rules report for ``doc`` against ``schema``."""
    return _QueryValidator(schema, doc).run()


# ---------------------------------------------------------------------------------------------
# The builtins.


def _format_error(text: str) -> str:
    """OPA's ``formatGqlParserError``: turn ``input:L:C: msg`` into ``msg in GraphQL string at
    location L:C``; anything else is wrapped as a parse error."""
    parts = text.split(":", 3)
    if len(parts) >= 4:
        row, col = go_uint(parts[1]), go_uint(parts[2])
        if row is not None and col is not None:
            message = parts[3].lstrip(" ").removesuffix(".\n")
            return f"{message} in GraphQL string at location {row}:{col}"
    return f"GraphQL parse error: {text}"


def _errors_text(errors: list[GqlError]) -> str:
    return "".join(f"{e}\n" for e in errors)


class _Failure(Exception):
    """A failure OPA reports as the builtin's error, with OPA's message."""


def _ensure_recursion_limit() -> None:
    if sys.getrecursionlimit() < _RECURSION_NEEDED:
        sys.setrecursionlimit(_RECURSION_NEEDED)


@functools.lru_cache(maxsize=16)
def _parse_schema_text(text: str) -> SchemaDocument:
    return parse_schema(text)


@functools.lru_cache(maxsize=16)
def _schema_for_text(text: str) -> Schema:
    return build_schema(_parse_schema_text(text))


def _load(value: Any, pos: int, parse: Callable[[str], _D], cls: type[_D]) -> _D:
    """A document from GraphQL text or from an AST object, with OPA's errors."""
    if type(value) is str:
        try:
            return parse(value)
        except GqlError as e:
            raise _Failure(_format_error(str(e))) from None
    if type(value) is dict:
        try:
            return from_value(cls, value)
        except DecodeError as e:
            raise _Failure(str(e)) from None
    raise operand_type_error(pos, value, "string", "object")


def _load_query(value: Any, pos: int) -> QueryDocument:
    return _load(value, pos, parse_query, QueryDocument)


def _load_schema_doc(value: Any, pos: int) -> SchemaDocument:
    return _load(value, pos, _parse_schema_text, SchemaDocument)


def _build(value: Any, doc: SchemaDocument) -> Schema:
    try:
        if type(value) is str:
            return _schema_for_text(value)
        return build_schema(doc)
    except GqlError as e:
        raise _Failure(f"Error in gqlparser SchemaDocument to Schema conversion: {e}") from None


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a builtin body, turning failures into OPA's builtin errors.

    Malformed AST objects that would crash OPA outright (a nil dereference in gqlparser)
    become a builtin error here instead.
    """

    @functools.wraps(fn)
    def run(ctx: EvalContext, *args: Any) -> Any:
        _ensure_recursion_limit()
        try:
            return fn(ctx, *args)
        except _Failure as e:
            raise BuiltinError(str(e)) from None
        except (MalformedAST, DecodeError, AttributeError, TypeError, IndexError) as e:
            raise BuiltinError(f"malformed GraphQL AST: {e}") from None

    return run


@_guarded
def graphql_parse(ctx: EvalContext, query: Any, schema: Any) -> Any:
    """Parse and validate a GraphQL query against a schema; return both ASTs."""
    query_doc = _load_query(query, 0)
    schema_doc = _load_schema_doc(schema, 1)
    schema_ast = to_value(schema_doc)
    built = _build(schema, schema_doc)
    query_ast = to_value(query_doc)
    errors = validate_query(built, query_doc)
    if errors:
        raise _Failure(_format_error(_errors_text(errors)))
    return [query_ast, schema_ast]


@_guarded
def graphql_parse_and_verify(ctx: EvalContext, query: Any, schema: Any) -> Any:
    """Like ``graphql.parse``, but report failure as ``[false, {}, {}]``."""
    try:
        query_doc = _load_query(query, 0)
        query_ast = to_value(query_doc)
        schema_doc = _load_schema_doc(schema, 1)
        schema_ast = to_value(schema_doc)
        built = _build(schema, schema_doc)
    except (_Failure, BuiltinError):
        return [False, {}, {}]
    if validate_query(built, query_doc):
        return [False, {}, {}]
    return [True, query_ast, schema_ast]


@_guarded
def graphql_parse_query(ctx: EvalContext, query: Any) -> Any:
    """Parse a GraphQL query into its AST object."""
    try:
        return to_value(parse_query(string_arg(query, 1)))
    except GqlError as e:
        raise _Failure(_format_error(str(e))) from None


@_guarded
def graphql_parse_schema(ctx: EvalContext, schema: Any) -> Any:
    """Parse a GraphQL schema into its AST object (without validating it)."""
    try:
        return to_value(_parse_schema_text(string_arg(schema, 1)))
    except GqlError as e:
        raise _Failure(_format_error(str(e))) from None


@_guarded
def graphql_is_valid(ctx: EvalContext, query: Any, schema: Any) -> Any:
    """Whether a GraphQL query is valid against a schema; false for any failure."""
    try:
        query_doc = _load_query(query, 0)
        built = _build(schema, _load_schema_doc(schema, 1))
    except (_Failure, BuiltinError):
        return False
    return not validate_query(built, query_doc)


@_guarded
def graphql_schema_is_valid(ctx: EvalContext, schema: Any) -> Any:
    """Whether a GraphQL schema is valid; false for any failure."""
    try:
        _build(schema, _load_schema_doc(schema, 0))
    except (_Failure, BuiltinError):
        return False
    return True


BUILTINS = (
    BuiltinSpec("graphql.is_valid", graphql_is_valid),
    BuiltinSpec("graphql.parse", graphql_parse),
    BuiltinSpec("graphql.parse_and_verify", graphql_parse_and_verify),
    BuiltinSpec("graphql.parse_query", graphql_parse_query),
    BuiltinSpec("graphql.parse_schema", graphql_parse_schema),
    BuiltinSpec("graphql.schema_is_valid", graphql_schema_is_valid),
)
