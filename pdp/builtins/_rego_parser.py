"""Rego v1 module parser reproducing OPA v1.22.3's ``ast.ParseModule``.

The parser follows the structure of OPA's recursive-descent parser closely, because the
parse results of Rego depend on its exact backtracking: the numbering of wildcards
(``_`` becomes ``$0``, ``$1``, ... in parse order, rewound when the parser backtracks),
which comments are kept, which error is reported where, and the term cache that replays a
term parsed earlier at the same offset together with the parser state after it.

:func:`parse_module` returns the module as the Rego value that OPA's JSON encoding of
``ast.Module`` yields (what ``rego.parse_module`` returns), or raises :class:`ParseErrors`.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from functools import cmp_to_key
from typing import Any

from pdp.builtins import _rego_lexer as lx
from pdp.builtins._golang import go_quote, go_string
from pdp.builtins._rego_lexer import TOKEN_NAMES, Scanner

__all__ = ["MarshalError", "ParseError", "ParseErrors", "parse_module"]

PARSE_ERR = "rego_parse_error"

# ---------------------------------------------------------------------------------------
# Names OPA's parser consults
# ---------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_BUILTIN_NAMES = _words(
    """
abs all and any array.concat array.flatten array.reverse array.slice assign base64.decode
base64.encode base64.is_valid base64url.decode base64url.encode base64url.encode_no_pad
bits.and bits.lsh bits.negate bits.or bits.rsh bits.xor cast_array cast_boolean cast_null
cast_object cast_set cast_string ceil concat contains count crypto.hmac.equal
crypto.hmac.md5 crypto.hmac.sha1 crypto.hmac.sha256 crypto.hmac.sha512 crypto.md5
crypto.parse_private_keys crypto.sha1 crypto.sha256
crypto.x509.parse_and_verify_certificates
crypto.x509.parse_and_verify_certificates_with_options
crypto.x509.parse_certificate_request crypto.x509.parse_certificates
crypto.x509.parse_keypair crypto.x509.parse_rsa_private_key div endswith eq equal floor
format_int glob.match glob.quote_meta graph.reachable graph.reachable_paths
graphql.is_valid graphql.parse graphql.parse_and_verify graphql.parse_query
graphql.parse_schema graphql.schema_is_valid gt gte hex.decode hex.encode http.send
indexof indexof_n internal.member_2 internal.member_3 internal.print
internal.template_string internal.test_case intersection io.jwt.decode
io.jwt.decode_verify io.jwt.encode_sign io.jwt.encode_sign_raw io.jwt.verify_eddsa
io.jwt.verify_es256 io.jwt.verify_es384 io.jwt.verify_es512 io.jwt.verify_hs256
io.jwt.verify_hs384 io.jwt.verify_hs512 io.jwt.verify_ps256 io.jwt.verify_ps384
io.jwt.verify_ps512 io.jwt.verify_rs256 io.jwt.verify_rs384 io.jwt.verify_rs512 is_array
is_boolean is_null is_number is_object is_set is_string json.filter json.is_valid
json.marshal json.marshal_with_options json.match_schema json.patch json.remove
json.unmarshal json.verify_schema lower lt lte max min minus mul neq net.cidr_contains
net.cidr_contains_matches net.cidr_expand net.cidr_intersects net.cidr_is_valid
net.cidr_merge net.cidr_overlap net.lookup_ip_addr numbers.range numbers.range_step
object.filter object.get object.keys object.remove object.subset object.union
object.union_n opa.runtime or plus print product providers.aws.sign_req rand.intn re_match
regex.find_all_string_submatch_n regex.find_n regex.globs_match regex.is_valid regex.match
regex.replace regex.split regex.template_match rego.metadata.chain rego.metadata.rule
rego.parse_module rem replace round semver.compare semver.is_valid set_diff sort split
sprintf startswith strings.any_prefix_match strings.any_suffix_match strings.count
strings.render_template strings.replace_n strings.reverse strings.split_n substring sum
time.add_date time.clock time.date time.diff time.format time.now_ns
time.parse_duration_ns time.parse_ns time.parse_rfc3339_ns time.weekday to_number trace
trim trim_left trim_prefix trim_right trim_space trim_suffix type_name union units.parse
units.parse_bytes upper uri.is_valid uri.parse urlquery.decode urlquery.decode_object
urlquery.encode urlquery.encode_object uuid.parse uuid.rfc4122 walk yaml.is_valid
yaml.marshal yaml.unmarshal
"""
)
"""Every builtin OPA v1.22.3 declares (its ``BuiltinMap``)."""

_VOID_BUILTINS = frozenset({"internal.print", "internal.test_case", "print"})

# Infix builtins and their arity, for telling which operand a call's text starts with.
_INFIX_ARITY: dict[str, int] = dict.fromkeys(
    _words("eq assign internal.member_2 gt gte lt lte neq equal plus minus mul div rem and or"), 2
)
_INFIX_ARITY["internal.member_3"] = 3

_KEYWORDS_V1 = _words(
    "not package import as default else with null true false some if contains in every"
)

_FUTURE_V0 = {"in": lx.IN, "every": lx.EVERY, "contains": lx.CONTAINS, "if": lx.IF}
_FUTURE_V1 = {"not": lx.NOT, "and": lx.LOGICAL_AND, "or": lx.LOGICAL_OR}
_ALL_FUTURE = {**_FUTURE_V1, **_FUTURE_V0}
_ALLOWED_FUTURE = {**_FUTURE_V0, **_FUTURE_V1}
_FUTURE_TOKENS = frozenset(_ALL_FUTURE.values())
_BASE_KEYWORD_NAMES = frozenset(lx.KEYWORD_TOKENS)

_RULE_NAME_FOLLOWERS = (lx.ASSIGN, lx.UNIFY, lx.IF, lx.CONTAINS, lx.LPAREN)
_OPERATOR_RULE_NAME_FOLLOWERS = (lx.ASSIGN, lx.UNIFY, lx.IF, lx.CONTAINS)
_PATH_RULE_NAME_FOLLOWERS = (lx.ASSIGN, lx.UNIFY, lx.LPAREN)
_KEYWORD_RULE_NAME_FOLLOWERS: dict[int, tuple[int, ...]] = {
    lx.EVERY: _RULE_NAME_FOLLOWERS,
    lx.IF: _RULE_NAME_FOLLOWERS,
    lx.IN: _RULE_NAME_FOLLOWERS,
    lx.SOME: _RULE_NAME_FOLLOWERS,
    lx.AS: _RULE_NAME_FOLLOWERS,
    lx.PACKAGE: _PATH_RULE_NAME_FOLLOWERS,
    lx.IMPORT: _PATH_RULE_NAME_FOLLOWERS,
    lx.NOT: _OPERATOR_RULE_NAME_FOLLOWERS,
    lx.LOGICAL_AND: _OPERATOR_RULE_NAME_FOLLOWERS,
    lx.LOGICAL_OR: _OPERATOR_RULE_NAME_FOLLOWERS,
    lx.CONTAINS: (lx.IF, lx.CONTAINS),
}

_HEAD_OPERATORS = frozenset(
    (
        lx.ADD,
        lx.SUB,
        lx.MUL,
        lx.QUO,
        lx.REM,
        lx.AND,
        lx.OR,
        lx.EQUAL,
        lx.NEQ,
        lx.GT,
        lx.GTE,
        lx.LT,
        lx.LTE,
    )
)
_RELATION_TOKENS = (lx.EQUAL, lx.NEQ, lx.LT, lx.GT, lx.LTE, lx.GTE)

_INFIX_KEYWORD_EXAMPLES = {"in": "x in xs", "and": "x and y", "or": "x or y"}

# ---------------------------------------------------------------------------------------
# AST
# ---------------------------------------------------------------------------------------


class Loc:
    """A source location: file, row, rune column, byte offset and the node's text."""

    __slots__ = ("col", "file", "offset", "row", "text")

    def __init__(self, file: str, row: int, col: int, offset: int, text: bytes | None) -> None:
        self.file = file
        self.row = row
        self.col = col
        self.offset = offset
        self.text = text

    def copy(self) -> Loc:
        """A copy that can be changed independently."""
        return Loc(self.file, self.row, self.col, self.offset, self.text)


class Value:
    """Base of the term values."""

    __slots__ = ()


class Null(Value):
    """``null``."""

    __slots__ = ()


class Boolean(Value):
    """``true`` or ``false``."""

    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value


class Number(Value):
    """A number, kept as its literal text as OPA does."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class String(Value):
    """A string."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value


class Var(Value):
    """A variable; wildcards are named ``$0``, ``$1``, ... in parse order."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class Ref(Value):
    """A reference: head term followed by the path terms."""

    __slots__ = ("terms",)

    def __init__(self, terms: list[Term]) -> None:
        self.terms = terms


class Array(Value):
    """An array literal."""

    __slots__ = ("terms",)

    def __init__(self, terms: list[Term]) -> None:
        self.terms = terms


class Object(Value):
    """An object literal; pairs in source order, duplicate keys kept as OPA keeps them."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[Term, Term]]) -> None:
        self.pairs = pairs


class Set(Value):
    """A set literal; equal elements are dropped after the first."""

    __slots__ = ("terms",)

    def __init__(self, terms: Iterable[Term]) -> None:
        kept: list[Term] = []
        for t in terms:
            if not any(_key_equal(k.value, t.value) for k in kept):
                kept.append(t)
        self.terms = kept


class ArrayCompr(Value):
    """``[term | body]``."""

    __slots__ = ("body", "term")

    def __init__(self, term: Term, body: list[Expr]) -> None:
        self.term = term
        self.body = body


class SetCompr(Value):
    """``{term | body}``."""

    __slots__ = ("body", "term")

    def __init__(self, term: Term, body: list[Expr]) -> None:
        self.term = term
        self.body = body


class ObjectCompr(Value):
    """``{key: value | body}``."""

    __slots__ = ("body", "key", "value")

    def __init__(self, key: Term, value: Term, body: list[Expr]) -> None:
        self.key = key
        self.value = value
        self.body = body


class Call(Value):
    """A call: operator ref followed by the arguments."""

    __slots__ = ("terms",)

    def __init__(self, terms: list[Term]) -> None:
        self.terms = terms


class TemplateString(Value):
    """``$"..."`` or ``$`...```: string parts and embedded expressions."""

    __slots__ = ("multi_line", "parts")

    def __init__(self, parts: list[Term | Expr], multi_line: bool) -> None:
        self.parts = parts
        self.multi_line = multi_line


class Not(Value):
    """A negated body (``not { ... }`` with ``future.keywords.not``); an expression's terms."""

    __slots__ = ("body", "explicit", "loc")

    def __init__(self, body: list[Expr], explicit: bool, loc: Loc | None) -> None:
        self.body = body
        self.explicit = explicit
        self.loc = loc


class Term:
    """A value with its source location."""

    __slots__ = ("loc", "value")

    def __init__(self, value: Value, loc: Loc | None = None) -> None:
        self.value = value
        self.loc = loc

    def copy(self) -> Term:
        """A deep copy of the term (locations are shared, as OPA's copies do)."""
        return Term(_copy_value(self.value), self.loc)


class SomeDecl:
    """``some x, y`` or ``some x in xs`` (a membership call as the one symbol)."""

    __slots__ = ("loc", "symbols")

    def __init__(self, symbols: list[Term], loc: Loc | None) -> None:
        self.symbols = symbols
        self.loc = loc


class Every:
    """``every [key,] value in domain { body }``."""

    __slots__ = ("body", "domain", "key", "loc", "value")

    def __init__(self, loc: Loc | None) -> None:
        self.key: Term | None = None
        self.value: Term | None = None
        self.domain: Term | None = None
        self.body: list[Expr] = []
        self.loc = loc


class Logical:
    """``lhs and rhs`` / ``lhs or rhs`` (``op`` is "and" or "or")."""

    __slots__ = ("explicit_lhs", "explicit_rhs", "lhs", "loc", "op", "rhs")

    def __init__(
        self,
        op: str,
        lhs: list[Expr],
        rhs: list[Expr],
        loc: Loc | None,
        *,
        explicit_lhs: bool,
        explicit_rhs: bool,
    ) -> None:
        self.op = op
        self.lhs = lhs
        self.rhs = rhs
        self.explicit_lhs = explicit_lhs
        self.explicit_rhs = explicit_rhs
        self.loc = loc


class With:
    """``with target as value``."""

    __slots__ = ("loc", "target", "value")

    def __init__(self, loc: Loc) -> None:
        self.loc = loc
        self.target: Term | None = None
        self.value: Term | None = None


ExprTerms = Term | list[Term] | SomeDecl | Every | Not | Logical


class Expr:
    """One expression of a body: a term, a call's terms, or a some/every/not/and/or node."""

    __slots__ = ("generated", "index", "loc", "negated", "terms", "with_")

    def __init__(self, terms: ExprTerms, loc: Loc | None = None) -> None:
        self.terms = terms
        self.index = 0
        self.negated = False
        self.generated = False
        self.with_: list[With] = []
        self.loc = loc

    def operator(self) -> Ref | None:
        """The called operator's ref, for call expressions."""
        terms = self.terms
        if type(terms) is list and terms and type(terms[0].value) is Ref:
            return terms[0].value
        return None

    def is_global(self, name: str) -> bool:
        """Whether this is a call of the one-segment builtin ``name`` (``eq``, ``assign``)."""
        terms = self.terms
        if type(terms) is not list:
            return False
        ref = terms[0].value
        return (
            type(ref) is Ref
            and len(ref.terms) == 1
            and type(ref.terms[0].value) is Var
            and ref.terms[0].value.name == name
        )

    def operand(self, pos: int) -> Term | None:
        """The operand at zero-based ``pos`` of a call expression."""
        terms = self.terms
        if type(terms) is not list or pos + 1 >= len(terms):
            return None
        return terms[pos + 1]


Body = list[Expr]


class Head:
    """A rule head: name and ref, function args, key and value."""

    __slots__ = (
        "args",
        "assign",
        "generated_value",
        "key",
        "keywords",
        "loc",
        "name",
        "reference",
        "value",
    )

    def __init__(self) -> None:
        self.name = ""
        self.reference: list[Term] = []
        self.args: list[Term] | None = None
        self.key: Term | None = None
        self.value: Term | None = None
        self.assign = False
        self.loc: Loc | None = None
        self.keywords: list[int] = []
        self.generated_value = False

    def ref(self) -> list[Term]:
        """The rule's ref, made from its name when it has none."""
        if self.reference:
            return self.reference
        return [Term(Var(self.name))]

    def copy(self) -> Head:
        """A deep copy, without the keywords (as OPA's ``Head.Copy``)."""
        cpy = Head()
        cpy.name = self.name
        cpy.reference = [t.copy() for t in self.reference]
        cpy.args = None if self.args is None else [t.copy() for t in self.args]
        cpy.key = self.key.copy() if self.key is not None else None
        cpy.value = self.value.copy() if self.value is not None else None
        cpy.assign = self.assign
        cpy.loc = self.loc
        cpy.generated_value = self.generated_value
        return cpy


def _var_head(name: str, loc: Loc | None) -> Head:
    head = Head()
    head.name = name
    head.reference = [Term(Var(name), loc)]
    return head


def _ref_head(ref: list[Term], value: Term | None = None) -> Head:
    head = Head()
    head.reference = ref
    if len(ref) < 2:
        first = ref[0].value
        head.name = first.name if type(first) is Var else ""
    head.value = value
    return head


class Rule:
    """A rule with its body, ``else`` chain and default flag."""

    __slots__ = ("body", "default", "else_", "generated_body", "head", "loc")

    def __init__(self, loc: Loc | None) -> None:
        self.loc = loc
        self.head: Head = Head()
        self.body: Body = []
        self.else_: Rule | None = None
        self.default = False
        self.generated_body = False


class Import:
    """``import path [as alias]``."""

    __slots__ = ("alias", "alias_loc", "loc", "path")

    def __init__(self, loc: Loc) -> None:
        self.loc = loc
        self.path: Term | None = None
        self.alias = ""
        self.alias_loc: Loc | None = None


class Package:
    """``package path``; the path starts with ``data``."""

    __slots__ = ("loc", "path")

    def __init__(self, loc: Loc) -> None:
        self.loc = loc
        self.path: list[Term] = []


class Comment:
    """A comment's text (after ``#``) and location."""

    __slots__ = ("loc", "text")

    def __init__(self, text: bytes | None, loc: Loc) -> None:
        self.text = text
        self.loc = loc


Statement = Package | Import | Rule | list


def _copy_value(v: Value) -> Value:
    t = type(v)
    if t is Ref:
        return Ref([x.copy() for x in v.terms])
    if t is Array:
        return Array([x.copy() for x in v.terms])
    if t is Call:
        return Call([x.copy() for x in v.terms])
    if t is Set:
        s = Set(())
        s.terms = [x.copy() for x in v.terms]
        return s
    if t is Object:
        return Object([(k.copy(), x.copy()) for k, x in v.pairs])
    return v


def _is_wildcard(name: str) -> bool:
    return name.startswith("$") or name == "_"


def _body_text(body: Body) -> str:
    return "; ".join(_expr_text(e) for e in body)


def _expr_text(expr: Expr) -> str:
    terms = expr.terms
    if type(terms) is list:
        op = terms[0].value
        name = _ref_string(op.terms) if type(op) is Ref else term_string(terms[0])
        text = f"{name}({', '.join(term_string(t) for t in terms[1:])})"
    elif type(terms) is Term:
        text = term_string(terms)
    elif type(terms) is SomeDecl:
        text = "some " + ", ".join(term_string(t) for t in terms.symbols)
    else:
        text = "<expr>"
    if expr.negated:
        text = "not " + text
    return text


def _ref_string(terms: list[Term]) -> str:
    if not terms:
        return ""
    head = terms[0].value
    if len(terms) == 1:
        if type(head) is String:
            return head.value
        return term_string(terms[0])
    if type(head) is Var and all(type(t.value) is String for t in terms[1:]):
        name = ".".join([head.name] + [t.value.value for t in terms[1:]])
        if name in _BUILTIN_NAMES:
            return name
    out = [head.value if type(head) is String else term_string(terms[0])]
    for t in terms[1:]:
        v = t.value
        if type(v) is String:
            if _VAR_COMPATIBLE.match(v.value) and v.value not in _KEYWORDS_V1:
                out.append("." + v.value)
            else:
                out.append("[" + go_quote(v.value) + "]")
        else:
            out.append("[" + term_string(t) + "]")
    return "".join(out)


_VAR_COMPATIBLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def term_string(term: Term | None) -> str:
    """A term as OPA prints it in messages (``Term.String``)."""
    if term is None:
        return "<nil>"
    return value_string(term.value)


def value_string(v: Value) -> str:
    """A value as OPA prints it in messages."""
    t = type(v)
    if t is Var:
        return "_" if _is_wildcard(v.name) else v.name
    if t is String:
        return go_quote(v.value)
    if t is Number:
        return v.text
    if t is Boolean:
        return "true" if v.value else "false"
    if t is Null:
        return "null"
    if t is Ref:
        return _ref_string(v.terms)
    if t is Array:
        return "[" + ", ".join(term_string(x) for x in v.terms) + "]"
    if t is Set:
        if not v.terms:
            return "set()"
        items = sorted(v.terms, key=_term_key)
        return "{" + ", ".join(term_string(x) for x in items) + "}"
    if t is Object:
        pairs = sorted(v.pairs, key=_pair_key)
        return "{" + ", ".join(f"{term_string(k)}: {term_string(x)}" for k, x in pairs) + "}"
    if t is Call:
        terms = v.terms
        return f"{term_string(terms[0])}({', '.join(term_string(x) for x in terms[1:])})"
    if t is ArrayCompr:
        return f"[{term_string(v.term)} | {_body_text(v.body)}]"
    if t is SetCompr:
        return f"{{{term_string(v.term)} | {_body_text(v.body)}}}"
    if t is ObjectCompr:
        return f"{{{term_string(v.key)}: {term_string(v.value)} | {_body_text(v.body)}}}"
    return "<value>"


_VALUE_NAMES: dict[type, str] = {
    String: "string",
    Boolean: "boolean",
    Number: "number",
    Null: "null",
    Var: "var",
    Object: "object",
    Set: "set",
    Ref: "ref",
    Call: "call",
    Array: "array",
    ArrayCompr: "arraycomprehension",
    ObjectCompr: "objectcomprehension",
    SetCompr: "setcomprehension",
    TemplateString: "templatestring",
    Not: "not",
}


def value_name(v: Value) -> str:
    """OPA's ``ValueName``."""
    return _VALUE_NAMES[type(v)]


def _is_ground(v: Value) -> bool:
    t = type(v)
    if t is Var or t is TemplateString:
        return False
    if t is Ref:
        return all(_is_ground(x.value) for x in v.terms[1:])
    if t is Array or t is Set or t is Call:
        return all(_is_ground(x.value) for x in v.terms)
    if t is Object:
        return all(_is_ground(k.value) and _is_ground(x.value) for k, x in v.pairs)
    if t is ArrayCompr or t is SetCompr:
        return _is_ground(v.term.value) and _body_ground(v.body)
    if t is ObjectCompr:
        return _is_ground(v.key.value) and _is_ground(v.value.value) and _body_ground(v.body)
    if t is Not:
        return _body_ground(v.body)
    return True


def _body_ground(body: Body) -> bool:
    for expr in body:
        terms = expr.terms
        if type(terms) is Term:
            if not _is_ground(terms.value):
                return False
        elif type(terms) is list:
            if not all(_is_ground(x.value) for x in terms):
                return False
        elif type(terms) is SomeDecl:
            if not all(_is_ground(x.value) for x in terms.symbols):
                return False
        elif type(terms) is Not:
            if not _body_ground(terms.body):
                return False
        else:
            return False
        for w in expr.with_:
            if not (_is_ground(w.target.value) and _is_ground(w.value.value)):
                return False
    return True


# ---------------------------------------------------------------------------------------
# Ordering (OPA's ast.Compare), for the order of set elements and object keys
# ---------------------------------------------------------------------------------------

_VALUE_ORDER: dict[type, int] = {
    Null: 0,
    Boolean: 1,
    Number: 2,
    String: 3,
    TemplateString: 4,
    Var: 5,
    Ref: 6,
    Array: 7,
    Object: 8,
    Set: 9,
    ArrayCompr: 10,
    ObjectCompr: 11,
    SetCompr: 12,
    Call: 13,
    Not: 111,
}

_EXPR_ORDER: dict[type, int] = {SomeDecl: 0, Term: 1, list: 2, Every: 3, Not: 4}


def _cmp(a: Any, b: Any) -> int:
    return (a > b) - (a < b)


def _number_decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        return Decimal(0)


def _cmp_terms(a: list[Term], b: list[Term]) -> int:
    for x, y in zip(a, b, strict=False):
        c = compare_values(x.value, y.value)
        if c:
            return c
    return _cmp(len(a), len(b))


def _cmp_opt_term(a: Term | None, b: Term | None) -> int:
    if a is None or b is None:
        return _cmp(a is not None, b is not None)
    return compare_values(a.value, b.value)


def compare_values(a: Value, b: Value) -> int:
    """OPA's ``Compare`` on two values: negative, zero or positive."""
    ta, tb = type(a), type(b)
    if ta is not tb:
        return _cmp(_VALUE_ORDER[ta], _VALUE_ORDER[tb])
    if ta is Null:
        return 0
    if ta is Boolean:
        return _cmp(a.value, b.value)
    if ta is Number:
        if a.text == b.text:
            return 0
        return _cmp(_number_decimal(a.text), _number_decimal(b.text))
    if ta is String:
        return _cmp(a.value, b.value)
    if ta is Var:
        return _cmp(a.name, b.name)
    if ta is Ref or ta is Array or ta is Call:
        return _cmp_terms(a.terms, b.terms)
    if ta is Set:
        return _cmp_terms(_sorted_terms(a.terms), _sorted_terms(b.terms))
    if ta is Object:
        pa = sorted(a.pairs, key=_pair_key)
        pb = sorted(b.pairs, key=_pair_key)
        for (ka, va), (kb, vb) in zip(pa, pb, strict=False):
            c = compare_values(ka.value, kb.value) or compare_values(va.value, vb.value)
            if c:
                return c
        return _cmp(len(pa), len(pb))
    if ta is ArrayCompr or ta is SetCompr:
        return compare_values(a.term.value, b.term.value) or _cmp_body(a.body, b.body)
    if ta is ObjectCompr:
        return (
            compare_values(a.key.value, b.key.value)
            or compare_values(a.value.value, b.value.value)
            or _cmp_body(a.body, b.body)
        )
    if ta is TemplateString:
        if a.multi_line != b.multi_line:
            return -1 if not a.multi_line else 1
        if len(a.parts) != len(b.parts):
            return len(a.parts) - len(b.parts)
        for x, y in zip(a.parts, b.parts, strict=True):
            c = _cmp_node(x, y)
            if c:
                return c
        return 0
    if ta is Not:
        return _cmp_body(a.body, b.body)
    return 0


def _cmp_node(a: Term | Expr, b: Term | Expr) -> int:
    if type(a) is Term and type(b) is Term:
        return compare_values(a.value, b.value)
    if type(a) is Expr and type(b) is Expr:
        return _cmp_expr(a, b)
    return _cmp(type(a) is Expr, type(b) is Expr)


def _cmp_body(a: Body, b: Body) -> int:
    for x, y in zip(a, b, strict=False):
        c = _cmp_expr(x, y)
        if c:
            return c
    return _cmp(len(a), len(b))


def _cmp_expr(a: Expr, b: Expr) -> int:
    oa = _EXPR_ORDER.get(type(a.terms), 5 if getattr(a.terms, "op", "") == "and" else 6)
    ob = _EXPR_ORDER.get(type(b.terms), 5 if getattr(b.terms, "op", "") == "and" else 6)
    c = _cmp(oa, ob) or _cmp(a.index, b.index) or _cmp(a.negated, b.negated)
    if c:
        return c
    ta, tb = a.terms, b.terms
    if type(ta) is Term:
        c = compare_values(ta.value, tb.value)
    elif type(ta) is list:
        c = _cmp_terms(ta, tb)
    elif type(ta) is SomeDecl:
        c = _cmp_terms(ta.symbols, tb.symbols)
    elif type(ta) is Every:
        c = (
            _cmp_opt_term(ta.key, tb.key)
            or _cmp_opt_term(ta.value, tb.value)
            or _cmp_opt_term(ta.domain, tb.domain)
            or _cmp_body(ta.body, tb.body)
        )
    elif type(ta) is Not:
        c = _cmp_body(ta.body, tb.body)
    elif type(ta) is Logical:
        c = _cmp_body(ta.lhs, tb.lhs) or _cmp_body(ta.rhs, tb.rhs)
    if c:
        return c
    for wa, wb in zip(a.with_, b.with_, strict=False):
        c = _cmp_opt_term(wa.target, wb.target) or _cmp_opt_term(wa.value, wb.value)
        if c:
            return c
    return _cmp(len(a.with_), len(b.with_))


def _key_equal(a: Value, b: Value) -> bool:
    return compare_values(a, b) == 0


_term_key = cmp_to_key(lambda x, y: compare_values(x.value, y.value))
_pair_key = cmp_to_key(lambda x, y: compare_values(x[0].value, y[0].value))


def _sorted_terms(terms: list[Term]) -> list[Term]:
    return sorted(terms, key=_term_key)


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


class ParseError:
    """One OPA AST error: code, message, location and, for parser errors, the source line."""

    __slots__ = ("code", "detail", "loc", "message")

    def __init__(
        self, code: str, message: str, loc: Loc | None, detail: tuple[str, int] | None = None
    ) -> None:
        self.code = code
        self.message = message
        self.loc = loc
        self.detail = detail

    def __str__(self) -> str:
        prefix = ""
        loc = self.loc
        if loc is not None:
            prefix = f"{loc.file}:{loc.row}" if loc.file else f"{loc.row}:{loc.col}"
        text = f"{prefix}: " if prefix else ""
        text += f"{self.code}: {self.message}"
        if self.detail is not None:
            line, idx = self.detail
            stripped = line.lstrip("\t")
            indent = max(idx - (len(line) - len(stripped)), 0)
            text += f"\n\t{stripped}\n\t{' ' * indent}^"
        return text


class ParseErrors(Exception):
    """The errors ``ast.ParseModule`` returned; ``str()`` is OPA's message for them.

    ``single`` marks an error OPA returns on its own rather than in a list (the empty
    module), whose message has no "1 error occurred" header.
    """

    def __init__(self, errors: list[ParseError], single: bool = False) -> None:
        super().__init__(errors)
        self.errors = errors
        self.single = single

    def __str__(self) -> str:
        errs = self.errors
        if self.single:
            return str(errs[0])
        if len(errs) == 1:
            return "1 error occurred: " + str(errs[0])
        return f"{len(errs)} errors occurred:\n" + "\n".join(str(e) for e in errs)


class MarshalError(Exception):
    """Go's ``encoding/json`` refused a number literal while encoding the module."""


def _error_detail(bs: bytes, offset: int) -> tuple[str, int]:
    if offset >= len(bs):
        offset = len(bs) - 1
    elif offset < 0:
        offset = 0
    if not bs:
        return "", 0
    while offset > 0 and bs[offset] in b"\t\n\v\f\r \x85\xa0":
        offset -= 1
    begin = offset
    while begin > 0 and bs[begin] not in b"\r\n":
        begin -= 1
    if bs[begin] in b"\r\n":
        begin += 1
    end = offset
    while end < len(bs) and bs[end] not in b"\r\n":
        end += 1
    begin = min(begin, end)
    line = bs[begin:end]
    idx = offset - begin
    # The caret is placed by byte index, and the line printed as Go prints the bytes.
    stripped = line.lstrip(b"\t")
    tabs = len(line) - len(stripped)
    return "\t" * tabs + go_string(stripped), idx


# ---------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------


class _State:
    """Everything the parser rewinds when it backtracks."""

    __slots__ = (
        "col",
        "comments",
        "errors",
        "hints",
        "last_end",
        "lit",
        "offset",
        "row",
        "s",
        "skipped_nl",
        "text",
        "tok",
        "tok_end",
        "wildcard",
    )

    def __init__(self, scanner: Scanner) -> None:
        self.errors: tuple[ParseError, ...] = ()
        self.comments: tuple[Comment, ...] = ()
        self.hints: tuple[str, ...] = ()
        self.s = scanner
        self.row = 0
        self.col = 0
        self.offset = 0
        self.text: bytes | None = None
        self.lit = ""
        self.last_end = 0
        self.tok_end = 0
        self.wildcard = 0
        self.tok = lx.ILLEGAL
        self.skipped_nl = False

    def copy(self) -> _State:
        cpy = _State.__new__(_State)
        cpy.errors = self.errors
        cpy.comments = self.comments
        cpy.hints = self.hints
        cpy.s = self.s.copy()
        cpy.row = self.row
        cpy.col = self.col
        cpy.offset = self.offset
        cpy.text = self.text
        cpy.lit = self.lit
        cpy.last_end = self.last_end
        cpy.tok_end = self.tok_end
        cpy.wildcard = self.wildcard
        cpy.tok = self.tok
        cpy.skipped_nl = self.skipped_nl
        return cpy


class _CacheEntry:
    __slots__ = ("next", "offset", "post", "term")

    def __init__(
        self, offset: int, term: Term | None, post: _State, nxt: _CacheEntry | None
    ) -> None:
        self.offset = offset
        self.term = term
        self.post = post
        self.next = nxt


class _Parser:
    def __init__(self, filename: str, source: bytes) -> None:
        self.file = filename
        self.bs = source
        self.s = _State(Scanner(source))
        self.cache: _CacheEntry | None = None
        self.not_bodies = False

    # -- state ---------------------------------------------------------------------------

    def clone(self, scanner: Scanner) -> _Parser:
        q = _Parser.__new__(_Parser)
        q.file = self.file
        q.bs = self.bs
        q.s = self.save()
        q.s.s = scanner
        q.cache = None
        q.not_bodies = self.not_bodies
        return q

    def future_parser(self) -> _Parser:
        return self.clone(self.s.s.with_keywords(_ALL_FUTURE))

    def save(self) -> _State:
        return self.s.copy()

    def restore(self, st: _State) -> None:
        self.s = st

    def loc(self) -> Loc:
        s = self.s
        return Loc(self.file, s.row, s.col, s.offset, s.text)

    def text(self, offset: int, end: int) -> bytes | None:
        bs = self.bs
        if 0 <= offset < len(bs) and offset <= end <= len(bs):
            return bs[offset:end]
        return None

    def extend_loc(self, start: Loc) -> Loc:
        cpy = start.copy()
        cpy.text = self.text(start.offset, self.s.last_end)
        return cpy

    def set_loc(self, term: Term | None, loc: Loc | None, offset: int, end: int) -> Term | None:
        if term is not None:
            cpy = loc.copy() if loc is not None else Loc(self.file, 0, 0, 0, None)
            cpy.text = self.text(offset, end)
            term.loc = cpy
        return term

    # -- scanning ------------------------------------------------------------------------

    def scan(self) -> None:
        self.do_scan(True)

    def scan_ws(self) -> None:
        self.do_scan(False)

    def do_scan(self, skipws: bool, template: bool = False, raw: bool = False) -> None:
        s = self.s
        if s.tok != lx.WHITESPACE:
            s.last_end = s.tok_end
            s.skipped_nl = False
        while True:
            if skipws and s.s.skip_whitespace():
                s.skipped_nl = True
            tok, pos, lit, errs = s.s.scan(template, raw)
            s.tok = tok
            s.lit = go_string(lit)
            s.tok_end = pos.end
            s.row = pos.row
            s.col = pos.col
            s.offset = pos.offset
            s.text = self.text(pos.offset, pos.end)
            if errs:
                for msg in errs:
                    self.error(self.loc(), msg)
                s.tok = lx.ILLEGAL
            if s.tok == lx.WHITESPACE:
                if lit == b"\n":
                    s.skipped_nl = True
                if skipws:
                    continue
            if s.tok != lx.COMMENT:
                break
            text = s.text
            body: bytes | None
            if text:
                body = text[1:]
                if body == b"\r":
                    body = None
                else:
                    while len(body) > 1 and body[-1] == 0x0D:
                        body = body[:-1]
            else:
                body = lit[1:]
            s.comments = (*s.comments, Comment(body, self.loc()))

    # -- errors --------------------------------------------------------------------------

    def _with_hints(self, reason: str) -> str:
        hints = self.s.hints
        if len(hints) == 1:
            reason += f" (hint: {hints[0]})"
        elif hints:
            reason += f" (hints: {', '.join(hints)})"
        return reason

    def error(self, loc: Loc, reason: str) -> None:
        msg = self._with_hints(reason)
        err = ParseError(PARSE_ERR, msg, loc, _error_detail(self.bs, loc.offset))
        self.s.errors = (*self.s.errors, err)
        self.s.hints = ()

    def hint(self, text: str) -> None:
        self.s.hints = (*self.s.hints, text)

    def illegal(self, note: str = "") -> None:
        tok = self.s.tok
        if tok == lx.ILLEGAL:
            self.error(self.loc(), "illegal token")
            return
        name = TOKEN_NAMES[tok]
        kind = "keyword" if name in _BASE_KEYWORD_NAMES or tok in _FUTURE_TOKENS else "token"
        if note:
            self.error(self.loc(), f"unexpected {name} {kind}: {note}")
        else:
            self.error(self.loc(), f"unexpected {name} {kind}")

    # -- keywords ------------------------------------------------------------------------

    def is_allowed_ref_keyword(self, tok: int) -> bool:
        name = TOKEN_NAMES[tok]
        return name in _KEYWORDS_V1 or self.s.s.is_keyword(name)

    def is_ident_or_allowed_ref_keyword(self) -> bool:
        if self.s.tok == lx.IDENT:
            return True
        if self.is_allowed_ref_keyword(self.s.tok):
            self.s.tok = lx.IDENT
            return True
        return False

    def scan_ahead_ref(self) -> bool:
        if self.is_allowed_ref_keyword(self.s.tok):
            st = self.save()
            self.scan_ws()
            tok = self.s.tok
            self.restore(st)
            if tok in (lx.DOT, lx.LBRACK):
                self.s.tok = lx.IDENT
                return True
        return False

    def scan_ahead_logical_call(self) -> None:
        if self.s.tok not in (lx.LOGICAL_AND, lx.LOGICAL_OR):
            return
        st = self.save()
        self.scan_ws()
        tok = self.s.tok
        self.restore(st)
        if tok == lx.LPAREN:
            self.s.tok = lx.IDENT

    def logical_keywords_active(self) -> bool:
        return self.s.s.is_keyword("and") or self.s.s.is_keyword("or")

    def reclassify_keyword(self) -> None:
        s = self.s
        if s.tok != lx.IDENT:
            return
        tok = _ALL_FUTURE.get(s.lit)
        if tok is not None and s.s.is_keyword(s.lit):
            s.tok = tok

    def err_keyword_rule_name(self, is_default: bool) -> bool:
        followers = _KEYWORD_RULE_NAME_FOLLOWERS.get(self.s.tok)
        if followers is None:
            return False
        keyword, loc = self.s.tok, self.loc()
        if not is_default:
            st = self.save()
            self.scan()
            nxt = self.s.tok
            self.restore(st)
            if nxt not in followers:
                return False
        self.error(loc, f"{TOKEN_NAMES[keyword]} keyword cannot be used for rule name")
        return True

    def is_negated(self) -> bool:
        if self.s.tok != lx.NOT:
            return False
        st = self.save()
        self.scan_ws()
        tok = self.s.tok
        self.restore(st)
        return tok not in (lx.DOT, lx.LBRACK)

    # -- statements ----------------------------------------------------------------------

    def parse(self) -> list[Statement]:
        for name, tok in _FUTURE_V0.items():
            self.s.s.add_keyword(name, tok)
        self.scan()
        stmts: list[Statement] = []
        while self.s.tok != lx.EOF:
            if self.err_keyword_rule_name(False):
                break
            if self.s.tok == lx.PACKAGE:
                st = self.save()
                pkg = self.parse_package()
                if pkg is not None:
                    if self.s.tok == lx.SUB:
                        self.illegal()
                        break
                    stmts.append(pkg)
                    continue
                if self.s.errors:
                    break
                self.restore(st)
            if self.s.tok == lx.IMPORT:
                st = self.save()
                imp = self.parse_import()
                if imp is not None:
                    if self.s.tok == lx.SUB:
                        self.illegal()
                        break
                    root = imp.path.value.terms[0].value
                    if type(root) is Var and root.name == "rego":
                        self.rego_import(imp)
                        self.reclassify_keyword()
                    elif type(root) is Var and root.name == "future":
                        self.future_import(imp)
                        self.reclassify_keyword()
                    stmts.append(imp)
                    continue
                if self.s.errors:
                    break
                self.restore(st)
            st = self.save()
            rules = self.parse_rules()
            if rules is not None:
                stmts.extend(rules)
                continue
            if self.s.errors:
                break
            self.restore(st)
            body = self.parse_query(True, lx.EOF)
            if body is not None:
                stmts.append(body)
                continue
            break
        return stmts

    def parse_package(self) -> Package | None:
        if self.s.tok != lx.PACKAGE:
            return None
        pkg = Package(self.loc())
        self.scan_ws()
        if self.s.tok in (lx.DOT, lx.LBRACK):
            return None
        if self.s.tok == lx.WHITESPACE:
            self.scan()
        if not self.is_ident_or_allowed_ref_keyword():
            self.illegal()
            return None
        term = self.parse_term()
        path: list[Term] | None = None
        if term is not None:
            v = term.value
            if type(v) is Var:
                path = [Term(Var("data"), term.loc), Term(String(v.name), term.loc)]
            elif type(v) is Ref:
                first = v.terms[0]
                if type(first.value) is not Var:
                    self.error(
                        first.loc,
                        f"unexpected {value_name(first.value)} token: expecting var",
                    )
                    return None
                path = [Term(Var("data"), first.loc), Term(String(first.value.name), first.loc)]
                for part in v.terms[1:]:
                    if type(part.value) is not String:
                        self.error(
                            part.loc,
                            f"unexpected {value_name(part.value)} token: expecting string",
                        )
                        return None
                    path.append(part)
            else:
                self.illegal()
                return None
        if path is None:
            if not self.s.errors:
                self.error(self.loc(), "expected path")
            return None
        pkg.path = path
        return pkg

    def parse_import(self) -> Import | None:
        if self.s.tok != lx.IMPORT:
            return None
        imp = Import(self.loc())
        self.scan_ws()
        if self.s.tok in (lx.DOT, lx.LBRACK):
            return None
        if self.s.tok == lx.WHITESPACE:
            self.scan()
        if not self.is_ident_or_allowed_ref_keyword():
            self.illegal()
            return None
        present, prev = self.s.s.without_keywords(_ALL_FUTURE)
        q = self.clone(present)
        term = q.parse_term()
        if term is not None:
            v = term.value
            if type(v) is Var:
                imp.path = Term(Ref([term]), term.loc)
            elif type(v) is Ref:
                for part in v.terms[1:]:
                    if type(part.value) is not String:
                        self.error(
                            part.loc,
                            f"unexpected {value_name(part.value)} token: expecting string",
                        )
                        return None
                imp.path = term
        self.s = q.s
        self.s.s = q.s.s.with_keywords(prev)

        if imp.path is None:
            self.error(self.loc(), "expected path")
            return None
        path = imp.path.value.terms
        root = path[0].value
        if not (type(root) is Var and root.name in ("data", "input", "future", "rego")):
            self.hint("if this is unexpected, try updating OPA")
            self.error(
                imp.path.loc,
                "unexpected import path, must begin with one of: {data, future, input, rego}, "
                f"got: {term_string(path[0])}",
            )
            return None

        if self.s.tok == lx.AS:
            self.scan()
            if self.s.tok != lx.IDENT:
                self.illegal("expected var")
                return None
            alias = self.parse_term()
            if alias is not None:
                v = alias.value
                if type(v) is Var:
                    imp.alias = v.name
                    imp.alias_loc = alias.loc
                    return imp
                if (
                    type(v) is Ref
                    and len(v.terms) == 1
                    and type(v.terms[0].value) is Var
                    and v.terms[0].value.name in ("data", "input")
                ):
                    self.error(
                        alias.loc,
                        "unexpected import alias, must not be a reserved name, got: "
                        + term_string(v.terms[0]),
                    )
                    return None
            self.illegal("expected var")
            return None

        if len(path) == 1:
            name = path[0].value.name
            if name in _KEYWORDS_V1:
                self.hint("import a different path or use an alias")
                self.error(
                    path[0].loc, f"unexpected import path, must not end with a keyword, got: {name}"
                )
        elif not (type(root) is Var and root.name == "future"):
            last = path[-1]
            name = last.value.value
            if name in _KEYWORDS_V1:
                self.hint("import a different path or use an alias")
                self.error(
                    last.loc, f"unexpected import path, must not end with a keyword, got: {name}"
                )
        return imp

    def future_import(self, imp: Import) -> None:
        path = imp.path.value.terms
        if len(path) == 1 or not (
            type(path[1].value) is String and path[1].value.value == "keywords"
        ):
            self.error(imp.path.loc, "invalid import, must be `future.keywords`")
            return
        if imp.alias:
            self.error(imp.alias_loc, "`future` imports cannot be aliased")
            return
        kwds = list(_ALLOWED_FUTURE)
        if len(path) == 3:
            kw = path[2].value
            if type(kw) is not String:
                self.error(
                    imp.path.loc,
                    "invalid import, must be `future.keywords.x`, e.g. `import future.keywords.in`",
                )
                return
            if kw.value not in _ALLOWED_FUTURE:
                self.error(
                    imp.path.loc,
                    f"unexpected keyword, must be one of [{' '.join(sorted(_ALLOWED_FUTURE))}]",
                )
                return
            kwds = [kw.value]
        for kw in kwds:
            if kw == "not":
                self.not_bodies = True
            self.s.s.add_keyword(kw, _ALLOWED_FUTURE[kw])

    def rego_import(self, imp: Import) -> None:
        path = imp.path.value.terms
        second = path[1].value if len(path) == 2 else None
        version = second.value if type(second) is String else None
        if version not in ("v1", "v2"):
            self.error(
                imp.path.loc,
                f"invalid import `{_ref_string(path)}`, must be one of: `rego.v1`, `rego.v2`",
            )
            return
        if imp.alias:
            self.error(imp.alias_loc, "`rego` imports cannot be aliased")
            return
        if version == "v2":
            for name, tok in {**_FUTURE_V0, **_FUTURE_V1}.items():
                self.s.s.add_keyword(name, tok)
            self.not_bodies = True

    # -- rules ---------------------------------------------------------------------------

    def parse_rules(self) -> list[Rule] | None:
        rule = Rule(self.loc())
        self.scan_ahead_ref()
        if self.s.tok == lx.DEFAULT:
            self.scan()
            rule.default = True
            self.scan_ahead_ref()
        if self.s.tok != lx.IDENT:
            if rule.default:
                self.err_keyword_rule_name(True)
            return None

        parsed = self.parse_head(rule.default)
        if parsed is None:
            return None
        head, uses_contains = parsed
        rule.head = head
        if uses_contains:
            head.keywords.append(lx.CONTAINS)

        if rule.default:
            if not self.validate_default_rule_value(rule):
                return None
            if head.args and not self.validate_default_rule_args(rule):
                return None
            rule.body = _implicit_true_body(rule.loc)
            return [rule]

        has_if = self.s.tok == lx.IF
        ref = head.ref()
        if has_if and not uses_contains and len(ref) == 2:
            v = ref[1]
            if (not _is_ground(v.value) or type(v.value) is Ref) and not head.args:
                head.key = ref[1]
            if head.value is None:
                head.generated_value = True
                head.value = Term(Boolean(True), head.loc)
            else:
                if type(ref[0].value) is not Var:
                    return None
                head.name = ref[0].value.name

        ref = head.ref()
        if not has_if and not uses_contains and not head.args and len(ref) == 2:
            if type(ref[0].value) is not Var:
                return None
            head.name = ref[0].value.name
            head.key = ref[1]
            if head.value is None:
                head.reference = ref[:-1]

        if has_if or self.s.tok == lx.LBRACE:
            body_done = False
            if has_if:
                head.keywords.append(lx.IF)
                self.scan()
                st = self.save()
                leading_brace = self.s.tok == lx.LBRACE
                expr = self.parse_literal()
                if expr is not None:
                    is_set_literal = (
                        type(expr.terms) is Term and leading_brace and type(expr.terms.value) is Set
                    )
                    if not is_set_literal:
                        _append(rule.body, expr)
                        body_done = True
                if not body_done:
                    if not leading_brace:
                        return None
                    self.restore(st)
            if not body_done:
                self.scan()
                body = self.parse_body(lx.RBRACE)
                if body is None:
                    return None
                rule.body = body
                self.scan()
        elif uses_contains:
            rule.body = _implicit_true_body(rule.loc)
            rule.generated_body = True
            rule.loc = head.loc
            return [rule]
        else:
            return None

        if self.s.tok == lx.ELSE and not self.scan_ahead_ref():
            ref = head.ref()
            if len(ref) > 1 and not _is_ground(Ref(ref)):
                self.error(
                    self.loc(), "else keyword cannot be used on rules with variables in head"
                )
                return None
            if head.key is not None:
                self.error(self.loc(), "else keyword cannot be used on multi-value rules")
                return None
            rule.else_ = self.parse_else(head)
            if rule.else_ is None:
                return None

        if rule.loc is not None:
            rule.loc.text = self.text(rule.loc.offset, self.s.last_end)

        rules = [rule]
        while self.s.tok == lx.LBRACE:
            if rule.else_ is not None:
                self.error(self.loc(), "expected else keyword")
                return None
            loc = self.loc()
            self.scan()
            nxt = Rule(None)
            body = self.parse_body(lx.RBRACE)
            if body is None:
                return None
            nxt.body = body
            self.scan()
            loc.text = self.text(loc.offset, self.s.last_end)
            nxt.loc = loc
            nxt.head = head.copy()
            nxt.head.keywords = head.keywords
            if nxt.head.args:
                for arg in nxt.head.args:
                    if type(arg.value) is Var and _is_wildcard(arg.value.name):
                        arg.value = self.gen_wildcard()
            _set_loc_head(nxt.head, loc)
            rules.append(nxt)
        return rules

    def parse_else(self, head: Head) -> Rule | None:
        rule = Rule(self.loc())
        rule.head = head.copy()
        rule.head.generated_value = False
        if rule.head.args:
            for arg in rule.head.args:
                if type(arg.value) is Var and _is_wildcard(arg.value.name):
                    arg.value = self.gen_wildcard()
        rule.head.loc = self.loc()
        try:
            return self._parse_else(rule, head)
        finally:
            rule.loc.text = self.text(rule.loc.offset, self.s.last_end)

    def _parse_else(self, rule: Rule, head: Head) -> Rule | None:
        self.scan()
        tok = self.s.tok
        if tok in (lx.LBRACE, lx.IF):
            rule.head.generated_value = True
            rule.head.value = Term(Boolean(True))
        elif tok in (lx.ASSIGN, lx.UNIFY):
            rule.head.assign = tok == lx.ASSIGN
            self.scan()
            rule.head.value = self.parse_term_infix_call()
            if rule.head.value is None:
                return None
            hl = rule.head.loc
            if hl is not None:
                hl.text = self.text(hl.offset, self.s.last_end)
        else:
            self.illegal("expected else value term or rule body")
            return None

        has_if = self.s.tok == lx.IF
        has_lbrace = self.s.tok == lx.LBRACE
        if not has_if and not has_lbrace:
            rule.body = _implicit_true_body(rule.loc)
            rule.generated_body = True
            return rule
        if has_if:
            rule.head.keywords.append(lx.IF)
            self.scan()
        if self.s.tok == lx.LBRACE:
            self.scan()
            body = self.parse_body(lx.RBRACE)
            if body is None:
                return None
            rule.body = body
            self.scan()
        elif self.s.tok != lx.EOF:
            expr = self.parse_literal()
            if expr is None:
                return None
            _append(rule.body, expr)
            for e in rule.body:
                e.loc = rule.loc
        else:
            self.illegal("rule body expected")
            return None
        if self.s.tok == lx.ELSE:
            rule.else_ = self.parse_else(head)
            if rule.else_ is None:
                return None
        return rule

    def parse_head(self, default_rule: bool) -> tuple[Head, bool] | None:
        loc = self.loc()
        result = self._parse_head(default_rule)
        if result is not None:
            head = result[0]
            head.loc = loc
            loc.text = self.text(loc.offset, self.s.last_end)
        return result

    def _parse_head(self, default_rule: bool) -> tuple[Head, bool] | None:
        term = self.parse_var()
        ref = self.parse_head_finish(term)
        if ref is None:
            self.illegal("expected rule head name")
            return None
        v = ref.value
        if type(v) is Var:
            head = _var_head(v.name, ref.loc)
        elif type(v) is Ref:
            head = _ref_head(v.terms)
        elif type(v) is Call:
            op, args = v.terms[0], v.terms[1:]
            if type(op.value) is Var:
                head_ref = [op]
            elif type(op.value) is Ref:
                if type(op.value.terms[0].value) is not Var:
                    self.illegal(f"rule head ref {value_string(op.value)} invalid")
                    return None
                head_ref = op.value.terms
            else:
                head_ref = []
            head = _ref_head(head_ref)
            head.args = list(args)
        else:
            return None

        name = _ref_string(head.ref())
        tok = self.s.tok
        if tok == lx.CONTAINS:
            if head.args is not None:
                self.illegal(
                    "the contains keyword can only be used with multi-value rule definitions "
                    f"(e.g., {name} contains <VALUE> {{ ... }})"
                )
            self.scan()
            head.key = self.parse_term_infix_call()
            if head.key is None:
                self.illegal(f"expected rule key term (e.g., {name} contains <VALUE> {{ ... }})")
            return head, True
        if tok == lx.UNIFY:
            self.scan()
            head.value = self.parse_term_infix_call()
            if head.value is None:
                self.illegal(
                    f"expected rule value term (e.g., {name}[{term_string(head.key)}] = "
                    "<VALUE> { ... })"
                )
        elif tok == lx.ASSIGN:
            self.scan()
            head.assign = True
            head.value = self.parse_term_infix_call()
            if head.value is None:
                if head.args:
                    self.illegal(
                        f"expected function value term (e.g., {name}(...) := <VALUE> {{ ... }})"
                    )
                elif head.key is not None:
                    self.illegal(
                        f"expected partial rule value term (e.g., {name}[...] := <VALUE> {{ ... }})"
                    )
                elif default_rule:
                    self.illegal(
                        f"expected default rule value term (e.g., default {name} := <VALUE>)"
                    )
                else:
                    self.illegal(f"expected rule value term (e.g., {name} := <VALUE> {{ ... }})")

        if head.value is None and head.key is None and (len(head.ref()) != 2 or head.args):
            head.generated_value = True
            head.value = Term(Boolean(True), None)
        return head, False

    def parse_head_finish(self, head: Term) -> Term | None:
        offset = self.s.offset
        self.scan_ws()
        if self.s.tok in _HEAD_OPERATORS:
            self.illegal()
        elif self.s.tok == lx.WHITESPACE:
            self.do_scan(True)
        if self.s.tok in (lx.LPAREN, lx.DOT, lx.LBRACK):
            return self.parse_ref(head, offset)
        if self.s.tok == lx.WHITESPACE:
            self.scan()
        if type(head.value) is Var and head.value.name in ("data", "input"):
            return Term(Ref([head]), head.loc)
        return head

    def validate_default_rule_value(self, rule: Rule) -> bool:
        head = rule.head
        if head.value is None:
            self.error(rule.loc, "illegal default rule (must have a value)")
            return False
        valid = True

        def visit(v: Value) -> None:
            nonlocal valid
            t = type(v)
            if t in (ArrayCompr, ObjectCompr, SetCompr):
                return
            if t in (Ref, Var, Call):
                self.error(
                    rule.loc,
                    f"illegal default rule (value cannot contain {value_name(v)})",
                )
                valid = False
                return
            for child in _child_terms(v):
                visit(child.value)

        visit(head.value.value)
        return valid

    def validate_default_rule_args(self, rule: Rule) -> bool:
        valid = True
        seen: set[str] = set()
        for arg in rule.head.args or ():
            v = arg.value
            if type(v) is Var:
                if v.name in seen:
                    self.error(
                        rule.loc,
                        f"illegal default rule (arguments cannot be repeated {value_string(v)})",
                    )
                    valid = False
                    continue
                seen.add(v.name)
            else:
                self.error(
                    rule.loc,
                    f"illegal default rule (arguments cannot contain {value_name(v)})",
                )
                valid = False
        return valid

    # -- bodies and literals -------------------------------------------------------------

    def parse_body(self, end: int) -> Body | None:
        return self.parse_query(False, end)

    def parse_query(self, require_semi: bool, end: int) -> Body | None:
        if self.s.tok == end:
            self.error(self.loc(), "found empty body")
            return None
        body: Body = []
        while True:
            expr = self.parse_literal()
            if expr is None:
                return None
            _append(body, expr)
            if self.s.tok == lx.SEMICOLON:
                self.scan()
                continue
            if self.s.tok == end or require_semi:
                return body
            if not self.s.skipped_nl:
                if not self.s.errors:
                    self.hint_missing_infix_keyword()
                    self.illegal(f"expected \\n or ; or {TOKEN_NAMES[end]}")
                return None

    def parse_literal(self) -> Expr | None:
        offset = self.s.offset
        loc = self.loc()
        expr = self._parse_literal()
        if expr is not None:
            loc.text = self.text(offset, self.s.last_end)
            expr.loc = loc
            terms = expr.terms
            if type(terms) is Not and not terms.explicit:
                for inner in terms.body:
                    inner.loc = loc
        return expr

    def _parse_literal(self) -> Expr | None:
        if self.s.tok == lx.LBRACE and self.logical_keywords_active():
            st = self.save()
            cache = self.cache
            brace_offset = self.s.offset
            body_loc = self.loc()
            self.scan()
            body = self.parse_body(lx.RBRACE)
            if body is not None:
                self.scan()
                if self.s.tok in (lx.LOGICAL_AND, lx.LOGICAL_OR):
                    if _is_ambiguous_union_body(body):
                        self.error_ambiguous_union_body(body_loc, brace_offset, body, "")
                        return None
                    outer = self.parse_logical_or_chain(body, True, body_loc)
                    if outer is None:
                        return None
                    return self.attach_with(outer)
            self.restore(st)
            self.cache = cache

        if self.s.tok == lx.LPAREN and self.logical_keywords_active():
            group = self.parse_logical_group(False, "")
            if group[3]:
                body, explicit, gloc, _ = group
                if body is None:
                    return None
                return self.fold_logical_tail(body, explicit, gloc)

        if self.is_allowed_ref_keyword(self.s.tok):
            st = self.save()
            self.scan_ws()
            tok = self.s.tok
            self.restore(st)
            if tok in (lx.DOT, lx.LBRACK):
                self.s.tok = lx.IDENT
                return self.parse_literal_expr(False, None)

        not_loc = None
        negated = self.is_negated()
        if negated:
            not_loc = self.loc()
            self.scan()

        if negated and self.not_bodies and self.s.tok == lx.LBRACE:
            nb = self.parse_not_body(not_loc)
            if nb is None:
                return None
            return self.fold_logical_tail([_indexed(nb, 0)], False, nb.loc)

        if self.s.tok == lx.SOME:
            if negated:
                self.illegal("illegal negation of 'some'")
                return None
            return self.parse_some()
        if self.s.tok == lx.EVERY:
            if negated:
                self.illegal("illegal negation of 'every'")
                return None
            return self.parse_every()
        return self.parse_literal_expr(negated, not_loc)

    def parse_literal_expr(self, negated: bool, not_loc: Loc | None) -> Expr | None:
        st = self.save()
        if negated and self.not_bodies and self.s.tok == lx.LPAREN:
            body, explicit, _, committed = self.parse_logical_group(True, "not ")
            if committed:
                if body is None:
                    return None
                spanned = self.extend_loc(not_loc)
                not_expr = Expr(Not(body, explicit, spanned), spanned)
                return self.fold_logical_tail([not_expr], False, spanned)

        expr = self.parse_expr()
        if expr is None:
            return None
        with_loc = None
        if self.s.tok == lx.WITH:
            with_loc = self.loc()
            withs = self.parse_with()
            if withs is None:
                return None
            expr.with_ = withs

        if negated and self.not_bodies:
            withs = expr.with_
            expr.with_ = []
            spanned = self.extend_loc(not_loc) if not_loc is not None else None
            expr = Expr(Not([expr], False, spanned), spanned)
            expr.with_ = withs
        else:
            expr.negated = negated

        if self.s.tok in (lx.LOGICAL_AND, lx.LOGICAL_OR):
            if with_loc is not None:
                self.err_with_on_operand(with_loc, TOKEN_NAMES[self.s.tok])
                return None
            if expr.loc is None:
                start = Loc(self.file, st.row, st.col, st.offset, None)
                start.text = self.text(start.offset, self.s.last_end)
                expr.loc = start
            if not_loc is None and (expr.loc.text or b"").startswith(b"{"):
                if _is_empty_object_term(expr):
                    self.error(expr.loc, "found empty body")
                    return None
                self.error_brace_led_operand(
                    expr.loc, expr.loc.text or b"", TOKEN_NAMES[self.s.tok]
                )
                return None
            outer = self.parse_logical_or_chain([expr], False, expr.loc)
            if outer is None:
                return None
            return self.attach_with(outer)
        return expr

    def parse_with(self) -> list[With] | None:
        withs: list[With] = []
        while True:
            w = With(self.loc())
            self.scan()
            if self.s.tok != lx.IDENT:
                self.illegal("expected ident")
                return None
            w.target = self.parse_term()
            if w.target is None:
                return None
            if type(w.target.value) not in (Ref, Var):
                self.illegal("expected with target path")
            if self.s.tok != lx.AS:
                self.illegal("expected as keyword")
                return None
            self.scan()
            w.value = self.parse_term_infix_call()
            if w.value is None:
                return None
            w.loc.text = self.text(w.loc.offset, self.s.last_end)
            withs.append(w)
            if self.s.tok != lx.WITH:
                break
        return withs

    def attach_with(self, e: Expr | None) -> Expr | None:
        if e is not None and self.s.tok == lx.WITH:
            withs = self.parse_with()
            if withs is None:
                return None
            e.with_ = withs
        return e

    def hint_missing_infix_keyword(self) -> None:
        if self.s.hints:
            return
        kw = "in"
        tok = self.s.tok
        if tok == lx.IDENT:
            kw = self.s.lit
            if kw not in _INFIX_KEYWORD_EXAMPLES:
                return
        elif tok == lx.COMMA:
            st = self.save()
            self.scan()
            term = self.future_parser().parse_term_infix_call()
            self.restore(st)
            if term is None or type(term.value) is not Call or not term.value.terms:
                return
            if _call_name(term.value) not in ("internal.member_2", "internal.member_3"):
                return
        else:
            return
        self.hint(f"`import future.keywords.{kw}` for `{_INFIX_KEYWORD_EXAMPLES[kw]}` expressions")

    def err_with_on_operand(self, loc: Loc, kw: str) -> None:
        self.hint(
            "Wrap the operand in `(...)` or `{...}` to scope, or move `with` after the "
            f"`{kw}` expression to apply it to the whole expression"
        )
        self.error(loc, f"`with` modifier is not allowed on operand of `{kw}`")

    def fold_logical_tail(self, body: Body, explicit: bool, loc: Loc | None) -> Expr | None:
        if self.s.tok in (lx.LOGICAL_AND, lx.LOGICAL_OR):
            outer = self.parse_logical_or_chain(body, explicit, loc)
            if outer is None:
                return None
            return self.attach_with(outer)
        return self.attach_with(body[0])

    def parse_some(self) -> Expr | None:
        decl = SomeDecl([], self.loc())
        st = self.save()
        self.scan()
        term = self.parse_term_infix_call()
        if term is not None and type(term.value) is Call:
            call = term.value
            name = _call_name(call)
            if name == "internal.member_2":
                if len(call.terms) != 3:
                    self.illegal("illegal domain")
                    return None
            elif name == "internal.member_3":
                if len(call.terms) != 4:
                    self.illegal("illegal domain")
                    return None
            else:
                self.illegal("expected `x in xs` or `x, y in xs` expression")
                return None
            decl.symbols = [term]
            expr = Expr(decl, decl.loc)
            if self.s.tok == lx.WITH:
                withs = self.parse_with()
                if withs is None:
                    return None
                expr.with_ = withs
            return expr

        self.restore(st)
        while True:
            self.scan()
            if self.s.tok != lx.IDENT:
                self.illegal("expected var")
                return None
            decl.symbols.append(self.parse_var())
            self.scan()
            if self.s.tok != lx.COMMA:
                break
        return Expr(decl, decl.loc)

    def parse_not_body(self, not_loc: Loc) -> Expr | None:
        brace_offset = self.s.offset
        brace_loc = self.loc()
        st = self.save()
        self.scan()
        empty = self.s.tok == lx.RBRACE
        body = self.parse_body(lx.RBRACE)
        if body is None:
            if empty:
                return None
            failed = self.save()
            self.restore(st)
            term = self.parse_term_infix_call()
            if term is not None:
                self.error_operand_brace_needs_body(
                    brace_loc, self.text(brace_offset, self.s.last_end) or b"", term, "not "
                )
                return None
            self.restore(failed)
            return None
        self.scan()
        if _is_ambiguous_union_body(body):
            self.error_ambiguous_union_body(brace_loc, brace_offset, body, "not ")
            return None
        spanned = self.extend_loc(not_loc)
        return Expr(Not(body, True, spanned), spanned)

    def parse_logical_or_chain(
        self, lhs_body: Body, lhs_explicit: bool, lhs_loc: Loc | None
    ) -> Expr | None:
        if self.s.tok == lx.LOGICAL_AND:
            and_expr = self.parse_logical_and_chain(lhs_body, lhs_explicit, lhs_loc)
            if and_expr is None:
                return None
            lhs_body = [_indexed(and_expr, 0)]
            lhs_explicit = False
            lhs_loc = and_expr.loc
        while self.s.tok == lx.LOGICAL_OR:
            self.scan()
            rhs_body, rhs_explicit, rhs_loc = self.parse_logical_operand("or")
            if rhs_body is None:
                return None
            if self.s.tok == lx.LOGICAL_AND:
                and_expr = self.parse_logical_and_chain(rhs_body, rhs_explicit, rhs_loc)
                if and_expr is None:
                    return None
                rhs_body = [_indexed(and_expr, 0)]
                rhs_explicit = False
            self.check_void_call_operands(lhs_body, rhs_body, "or")
            expr_loc = self.extend_loc(lhs_loc) if lhs_loc is not None else None
            node = Logical(
                "or",
                lhs_body,
                rhs_body,
                expr_loc,
                explicit_lhs=lhs_explicit,
                explicit_rhs=rhs_explicit,
            )
            lhs_body = [Expr(node, expr_loc)]
            lhs_explicit = False
            lhs_loc = expr_loc
        return lhs_body[0]

    def parse_logical_and_chain(
        self, lhs_body: Body, lhs_explicit: bool, lhs_loc: Loc | None
    ) -> Expr | None:
        while self.s.tok == lx.LOGICAL_AND:
            self.scan()
            rhs_body, rhs_explicit, _ = self.parse_logical_operand("and")
            if rhs_body is None:
                return None
            self.check_void_call_operands(lhs_body, rhs_body, "and")
            expr_loc = self.extend_loc(lhs_loc) if lhs_loc is not None else None
            node = Logical(
                "and",
                lhs_body,
                rhs_body,
                expr_loc,
                explicit_lhs=lhs_explicit,
                explicit_rhs=rhs_explicit,
            )
            lhs_body = [Expr(node, expr_loc)]
            lhs_explicit = False
            lhs_loc = expr_loc
        return lhs_body[0]

    def parse_logical_operand(self, op: str) -> tuple[Body | None, bool, Loc | None]:
        if self.s.tok == lx.LBRACE:
            brace_offset = self.s.offset
            loc = self.loc()
            st = self.save()
            self.scan()
            empty = self.s.tok == lx.RBRACE
            body = self.parse_body(lx.RBRACE)
            if body is None:
                if empty or op == "":
                    return None, False, None
                failed = self.save()
                self.restore(st)
                term = self.parse_term_infix_call()
                if term is not None:
                    self.error_brace_led_operand(
                        loc, self.text(brace_offset, self.s.last_end) or b"", op
                    )
                    return None, False, None
                self.restore(failed)
                return None, False, None
            self.scan()
            if _is_ambiguous_union_body(body):
                self.error_ambiguous_union_body(loc, brace_offset, body, "")
            return body, True, loc

        not_loc = None
        negated = self.is_negated()
        if negated:
            not_loc = self.loc()
            self.scan()

        if negated and self.not_bodies and self.s.tok == lx.LBRACE:
            nb = self.parse_not_body(not_loc)
            if nb is None:
                return None, False, None
            return [_indexed(nb, 0)], False, nb.loc

        if (
            self.s.tok == lx.LPAREN
            and self.logical_keywords_active()
            and (not negated or self.not_bodies)
        ):
            prefix = "not " if negated else ""
            body, explicit, gloc, committed = self.parse_logical_group(True, prefix)
            if committed:
                if body is None:
                    return None, False, None
                if negated:
                    spanned = self.extend_loc(not_loc)
                    not_expr = Expr(Not(body, explicit, spanned), spanned)
                    return [not_expr], False, spanned
                return body, explicit, gloc

        start_offset = self.s.offset
        start_loc = self.loc()
        expr = self.parse_expr()
        if expr is None:
            return None, False, None
        if expr.loc is None:
            start_loc.text = self.text(start_offset, self.s.last_end)
            expr.loc = start_loc
        if negated and self.not_bodies:
            spanned = self.extend_loc(not_loc)
            expr = Expr(Not([expr], False, spanned), spanned)
        elif negated:
            expr.negated = True
        return [expr], False, expr.loc

    def error_operand_brace_needs_body(
        self, loc: Loc, operand: bytes, term: Term, prefix: str
    ) -> None:
        text = go_string(operand)
        self.hint(
            f"write `{prefix}({text})` to negate the value, or `{prefix}{{{text}}}` for a body "
            "holding it"
        )
        self.error(
            loc,
            "`{...}` in an operand position must contain expression(s), got: "
            + value_name(_brace_led_value(term)),
        )

    def error_brace_led_operand(self, loc: Loc, operand: bytes, op: str) -> None:
        self.hint(f"wrap the operand to keep the value: `({go_string(operand)}) {op} ...`")
        self.error(loc, f"operand of `{op}` cannot begin with `{{` unless the braces hold a body")

    def check_void_call_operands(self, lhs: Body, rhs: Body, op: str) -> None:
        for side in (lhs, rhs):
            name, loc = _void_call_operand(side)
            if name:
                self.hint(
                    f"`{name}` produces no value and always succeeds, so the operand can never "
                    "fail; move it out of the operand, or add an expression that can fail"
                )
                self.error(loc, f"operand of `{op}` cannot consist only of calls to `{name}`")

    def error_ambiguous_union_body(
        self, loc: Loc, brace_offset: int, body: Body, prefix: str
    ) -> None:
        braces = self.text(brace_offset, self.s.last_end) or b""
        union = braces
        e = body[0].loc
        if e is not None:
            rel = e.offset - brace_offset
            etext = e.text or b""
            if rel > 0 and rel + len(etext) <= len(braces):
                union = braces[:rel] + b"(" + etext + b")" + braces[rel + len(etext) :]
        b_text, u_text = go_string(braces), go_string(union)
        self.hint(
            f"write `{prefix}({b_text})` for the comprehension, or `{prefix}{u_text}` for the "
            "set union"
        )
        self.error(
            loc,
            "ambiguous `{ ... | ... }` operand: read as a body holding a set-union expression, "
            "not as a comprehension",
        )

    def expect_rparen(self) -> bool:
        if self.s.tok != lx.RPAREN:
            self.error(self.loc(), "expected ) to close parenthesized group")
            return False
        self.scan()
        return True

    def parse_logical_group(
        self, operand_context: bool, prefix: str
    ) -> tuple[Body | None, bool, Loc | None, bool]:
        st = self.save()
        open_loc = self.loc()
        self.scan()
        if self.s.tok == lx.RPAREN:
            if operand_context:
                self.error(open_loc, "empty parenthesized group")
                return None, False, None, True
            self.restore(st)
            return None, False, None, False

        lhs_body, lhs_explicit, lhs_loc = self.parse_logical_operand("")
        if lhs_body is None:
            self.restore(st)
            return None, False, None, False

        tok = self.s.tok
        if tok in (lx.LOGICAL_AND, lx.LOGICAL_OR):
            expr = self.parse_logical_or_chain(lhs_body, lhs_explicit, lhs_loc)
            if expr is None:
                return None, False, None, True
            expr = self.attach_with(expr)
            if expr is None:
                return None, False, None, True
            if not self.expect_rparen():
                return None, False, None, True
            return [_indexed(expr, 0)], False, self.extend_loc(open_loc), True

        if tok == lx.WITH and not lhs_explicit and len(lhs_body) == 1:
            with_loc = self.loc()
            if self.attach_with(lhs_body[0]) is None:
                return None, False, None, True
            if self.s.tok in (lx.LOGICAL_AND, lx.LOGICAL_OR):
                self.err_with_on_operand(with_loc, TOKEN_NAMES[self.s.tok])
                return None, False, None, True
            if not self.expect_rparen():
                return None, False, None, True
            if operand_context or self.s.tok in (lx.LOGICAL_AND, lx.LOGICAL_OR):
                return lhs_body, False, self.extend_loc(open_loc), True
            self.restore(st)
            return None, False, None, False

        if lhs_explicit:
            braces = self.text(lhs_loc.offset, self.s.last_end) or b""
            self.restore(st)
            probe = self.save()
            self.scan()
            term = self.parse_term()
            self.restore(probe)
            if term is None:
                self.hint(f"drop the parens to keep the body: `{prefix}{go_string(braces)}`")
                self.error(open_loc, "`(...)` in an operand position cannot contain a body")
                return None, False, None, True
            return None, False, None, False

        if _is_logical_body(lhs_body) or _is_negated_operand(lhs_body):
            if not self.expect_rparen():
                return None, False, None, True
            return lhs_body, False, self.extend_loc(open_loc), True

        self.restore(st)
        return None, False, None, False

    def parse_every(self) -> Expr | None:
        qb = Every(self.loc())
        self.scan()
        term = self.parse_term_infix_call()
        if term is None:
            return None
        if type(term.value) is not Call:
            self.illegal("expected `x[, y] in xs { ... }` expression")
            return None
        call = term.value.terms
        name = _call_name(term.value)
        if name == "internal.member_2":
            if len(call) != 3:
                self.illegal("illegal domain")
                return None
            qb.value, qb.domain = call[1], call[2]
        elif name == "internal.member_3":
            if len(call) != 4:
                self.illegal("illegal domain")
                return None
            qb.key, qb.value, qb.domain = call[1], call[2], call[3]
            if type(qb.key.value) is not Var:
                self.illegal("expected key to be a variable")
                return None
        else:
            self.illegal("expected `x[, y] in xs { ... }` expression")
            return None
        if type(qb.value.value) is not Var:
            self.illegal("expected value to be a variable")
            return None
        if self.s.tok == lx.LBRACE:
            self.scan()
            body = self.parse_body(lx.RBRACE)
            if body is None:
                return None
            self.scan()
            qb.body = body
            expr = Expr(qb, qb.loc)
            if self.s.tok == lx.WITH:
                withs = self.parse_with()
                if withs is None:
                    return None
                expr.with_ = withs
            return expr
        self.illegal("missing body")
        return None

    def parse_expr(self) -> Expr | None:
        lhs = self.parse_term_infix_call()
        if lhs is None:
            return None
        op = self.parse_term_op(lx.ASSIGN, lx.UNIFY)
        if op is not None:
            rhs = self.parse_term_infix_call()
            if rhs is not None:
                return Expr([op, lhs, rhs])
            return None
        if type(lhs.value) is Call:
            return Expr(list(lhs.value.terms))
        return Expr(lhs)

    # -- terms ---------------------------------------------------------------------------

    def parse_term_infix_call(self) -> Term | None:
        return self.parse_term_in(None, True, self.s.offset)

    def parse_term_infix_call_in_list(self) -> Term | None:
        return self.parse_term_in(None, False, self.s.offset)

    def _infix(self, op: Term, lhs: Term, rhs: Term, offset: int) -> Term:
        call = Term(Call([op, lhs, rhs]))
        self.set_loc(call, lhs.loc, offset, self.s.last_end)
        return call

    def parse_term_in(self, lhs: Term | None, key_val: bool, offset: int) -> Term | None:
        if lhs is None:
            lhs = self.parse_term_relation(None, offset)
        if lhs is None:
            return None
        if key_val and self.s.tok == lx.COMMA:
            st = self.save()
            self.scan()
            mhs = self.parse_term_relation(None, offset)
            if mhs is not None:
                op = self.parse_term_op_name(("internal", "member_3"), lx.IN)
                if op is not None:
                    rhs = self.parse_term_relation(None, self.s.offset)
                    if rhs is not None:
                        call = Term(Call([op, lhs, mhs, rhs]))
                        self.set_loc(call, lhs.loc, offset, self.s.last_end)
                        if self.s.tok == lx.IN:
                            return self.parse_term_in(call, key_val, offset)
                        return call
            self.restore(st)
        self.scan_ahead_ref()
        op = self.parse_term_op_name(("internal", "member_2"), lx.IN)
        if op is not None:
            rhs = self.parse_term_relation(None, self.s.offset)
            if rhs is not None:
                call = self._infix(op, lhs, rhs, offset)
                if self.s.tok == lx.IN:
                    return self.parse_term_in(call, key_val, offset)
                return call
        return lhs

    def _binary(
        self,
        lhs: Term | None,
        offset: int,
        operand: Callable[[int], Term | None],
        ops: tuple[int, ...],
        again: Callable[[Term, int], Term | None],
    ) -> Term | None:
        if lhs is None:
            lhs = operand(offset)
        if lhs is None:
            return None
        op = self.parse_term_op(*ops)
        if op is not None:
            rhs = operand(self.s.offset)
            if rhs is not None:
                call = self._infix(op, lhs, rhs, offset)
                if self.s.tok in ops:
                    return again(call, offset)
                return call
        return lhs

    def parse_term_relation(self, lhs: Term | None, offset: int) -> Term | None:
        return self._binary(
            lhs,
            offset,
            lambda o: self.parse_term_or(None, o),
            _RELATION_TOKENS,
            self.parse_term_relation,
        )

    def parse_term_or(self, lhs: Term | None, offset: int) -> Term | None:
        return self._binary(
            lhs, offset, lambda o: self.parse_term_and(None, o), (lx.OR,), self.parse_term_or
        )

    def parse_term_and(self, lhs: Term | None, offset: int) -> Term | None:
        return self._binary(
            lhs, offset, lambda o: self.parse_term_arith(None, o), (lx.AND,), self.parse_term_and
        )

    def parse_term_arith(self, lhs: Term | None, offset: int) -> Term | None:
        return self._binary(
            lhs,
            offset,
            lambda o: self.parse_term_factor(None, o),
            (lx.ADD, lx.SUB),
            self.parse_term_arith,
        )

    def parse_term_factor(self, lhs: Term | None, offset: int) -> Term | None:
        return self._binary(
            lhs,
            offset,
            lambda _o: self.parse_term(),
            (lx.MUL, lx.QUO, lx.REM),
            self.parse_term_factor,
        )

    def parse_term(self) -> Term | None:
        off = self.s.offset
        entry = self.cache
        while entry is not None and entry.offset >= off:
            if entry.offset == off:
                self.restore(entry.post)
                return entry.term
            entry = entry.next
        s0 = self.save()

        term: Term | None = None
        minus_loc: Loc | None = None
        self.scan_ahead_logical_call()
        tok = self.s.tok
        if tok == lx.NULL:
            term = Term(Null(), self.loc())
        elif tok == lx.TRUE:
            term = Term(Boolean(True), self.loc())
        elif tok == lx.FALSE:
            term = Term(Boolean(False), self.loc())
        elif tok == lx.SUB:
            loc = self.loc()
            st = self.save()
            self.scan()
            if self.s.tok in (lx.IDENT, lx.CONTAINS):
                minus_loc = loc
                term = self.parse_var()
            else:
                self.restore(st)
                term = self.parse_number()
        elif tok in (lx.DOT, lx.NUMBER):
            term = self.parse_number()
        elif tok == lx.STRING:
            term = self.parse_string()
        elif tok in (lx.TEMPLATE_PART, lx.TEMPLATE_END):
            term = self.parse_template_string(False)
        elif tok in (lx.RAW_TEMPLATE_PART, lx.RAW_TEMPLATE_END):
            term = self.parse_template_string(True)
        elif tok in (lx.IDENT, lx.CONTAINS):
            term = self.parse_var()
        elif tok == lx.LBRACK:
            term = self.parse_array()
        elif tok == lx.LBRACE:
            term = self.parse_set_or_object()
        elif tok == lx.LPAREN:
            offset = self.s.offset
            self.scan()
            r = self.parse_term_infix_call()
            if r is not None:
                if self.s.tok == lx.RPAREN:
                    if r.loc is not None:
                        r.loc.text = self.text(offset, self.s.tok_end)
                    term = r
                else:
                    self.error(self.loc(), "non-terminated expression")
        else:
            self.illegal()

        term = self.parse_term_finish(term, False)
        if minus_loc is not None and term is not None:
            zero = Term(Number("0"), minus_loc)
            minus = Term(Call([Term(Ref([Term(Var("minus"))])), zero, term]))
            term = self.set_loc(minus, minus_loc, minus_loc.offset, self.s.last_end)

        # Remember the term and the state after it, dropping entries at or past its offset.
        o0 = s0.offset
        nxt = self.cache
        while nxt is not None and nxt.offset >= o0:
            nxt = nxt.next
        self.cache = _CacheEntry(o0, term, self.save(), nxt)
        return term

    def parse_term_finish(self, head: Term | None, skipws: bool) -> Term | None:
        if head is None:
            return None
        offset = self.s.offset
        self.do_scan(skipws)
        tok = self.s.tok
        if tok in (lx.LPAREN, lx.DOT, lx.LBRACK):
            return self.parse_ref(head, offset)
        if tok == lx.WHITESPACE:
            self.scan()
        if type(head.value) is Var and head.value.name in ("data", "input"):
            return Term(Ref([head]), head.loc)
        return head

    def parse_number(self) -> Term | None:
        prefix = ""
        loc = self.loc()
        if self.s.tok == lx.SUB:
            prefix = "-"
            self.scan()
            if self.s.tok not in (lx.NUMBER, lx.DOT):
                self.illegal("expected number")
                return None
        if self.s.tok == lx.DOT:
            prefix += "."
            self.scan()
            if self.s.tok != lx.NUMBER:
                self.illegal("expected number")
                return None
        lit = self.s.lit
        if not prefix.endswith(".") and len(lit) > 1 and lit[0] == "0":
            is_decimal = lit[1] == "."
            is_scientific = len(lit) > 2 and lit[1] in "eE"
            if not is_decimal and not is_scientific:
                self.illegal("expected number without leading zero")
                return None
        text = prefix + lit
        problem = _validate_number(text)
        if problem == "number too big":
            self.error(self.loc(), problem)
            return None
        if problem:
            self.illegal(problem)
            return None
        return Term(Number(text), loc)

    def parse_string(self) -> Term | None:
        lit = self.s.lit
        if lit[0] == '"':
            if lit == '""':
                return Term(String(""), self.loc())
            inner = lit[1:-1]
            if "\\" not in inner:
                return Term(String(inner), self.loc())
            value = _json_unquote(lit)
            if value is None:
                self.error(self.loc(), f"illegal string literal: {lit}")
                return None
            return Term(String(value), self.loc())
        if len(lit) < 2:
            return None
        return Term(String(lit[1:-1]), self.loc())

    def parse_template_string(self, multi_line: bool) -> Term | None:
        loc = self.loc()
        parts: list[Term | Expr] = []
        while True:
            tok, lit = self.s.tok, self.s.lit
            if tok in (lx.TEMPLATE_PART, lx.TEMPLATE_END):
                inner = lit[1:-1]
                if "\\" in inner:
                    unquoted = _json_unquote('"' + inner + '"')
                    if unquoted is None:
                        self.error(self.loc(), f"illegal template-string part: {lit}")
                        return None
                    inner = unquoted
            elif tok in (lx.RAW_TEMPLATE_PART, lx.RAW_TEMPLATE_END):
                inner = lit[1:-1]
            else:
                self.error(self.loc(), "expected template-string part")
                return None
            if inner:
                parts.append(Term(String(inner), self.loc()))
            if tok in (lx.TEMPLATE_END, lx.RAW_TEMPLATE_END):
                break

            n_before = len(self.s.comments)
            self.scan()
            n_after = len(self.s.comments)
            expr = self.parse_literal()
            if expr is None:
                self.error(self.loc(), "invalid template-string expression")
                return None
            problem = ""
            if expr.negated:
                problem = "unexpected negation ('not') in template-string expression"
            elif expr.is_global("eq"):
                problem = "unexpected unification ('=') in template-string expression"
            elif expr.is_global("assign"):
                problem = "unexpected assignment (':=') in template-string expression"
            elif type(expr.terms) is Every:
                problem = "unexpected 'every' in template-string expression"
            elif type(expr.terms) is SomeDecl:
                problem = "unexpected 'some' in template-string expression"
            if problem:
                self.error(expr.loc, problem)
                return None
            if (
                type(expr.terms) is Term
                and n_after == n_before
                and type(expr.terms.value) in (String, Number, Boolean, Null)
            ):
                parts.append(expr.terms)
            else:
                parts.append(expr)
            if self.s.tok != lx.RBRACE:
                self.error(self.loc(), "expected } to end template string expression")
                return None
            self.do_scan(False, template=True, raw=multi_line)
        loc.text = self.text(loc.offset, self.s.tok_end)
        return Term(TemplateString(parts, multi_line), loc)

    def parse_call(self, operator: Term, offset: int) -> Term | None:
        loc = operator.loc
        end = 0
        term: Term | None = None
        self.scan()
        if self.s.tok == lx.RPAREN:
            end = self.s.tok_end
            self.scan_ws()
            op = operator.value
            if (
                type(op) is Ref
                and len(op.terms) == 1
                and type(op.terms[0].value) is Var
                and op.terms[0].value.name == "set"
            ):
                term = Term(Set(()))
            else:
                term = Term(Call([operator]))
        else:
            terms = self.parse_term_list(lx.RPAREN, [operator])
            if terms is not None:
                end = self.s.tok_end
                self.scan_ws()
                term = Term(Call(terms))
        return self.set_loc(term, loc, offset, end)

    def parse_ref(self, head: Term, offset: int) -> Term | None:
        loc = head.loc
        end = 0
        term = self._parse_ref(head, offset, loc)
        if isinstance(term, tuple):
            term, end = term
        return self.set_loc(term, loc, offset, end)

    def _parse_ref(
        self, head: Term, offset: int, loc: Loc | None
    ) -> tuple[Term | None, int] | None:
        if type(head.value) not in (
            Var,
            Array,
            Object,
            Set,
            ArrayCompr,
            ObjectCompr,
            SetCompr,
            Call,
        ):
            self.error(loc, f"illegal ref (head cannot be {value_name(head.value)})")
        ref = [head]
        while True:
            tok = self.s.tok
            if tok == lx.DOT:
                self.scan_ws()
                if self.s.tok != lx.IDENT and not self.is_allowed_ref_keyword(self.s.tok):
                    self.illegal("expected identifier")
                    return None
                ref.append(Term(String(self.s.lit), self.loc()))
                self.scan_ws()
            elif tok == lx.LPAREN:
                operator = self.set_loc(Term(Ref(ref)), loc, offset, self.s.offset)
                term = self.parse_call(operator, offset)
                if term is not None:
                    if self.s.tok == lx.WHITESPACE:
                        self.scan()
                        return term, self.s.last_end
                    if self.s.tok in (lx.DOT, lx.LBRACK):
                        term = self.parse_ref(term, offset)
                return term, self.s.last_end
            elif tok == lx.LBRACK:
                self.scan()
                term = self.parse_term_infix_call()
                if term is None:
                    return None
                if self.s.tok != lx.RBRACK:
                    self.illegal("expected [")
                    return None
                ref.append(term)
                self.scan_ws()
            elif tok == lx.WHITESPACE:
                end = self.s.last_end
                self.scan()
                return Term(Ref(ref)), end
            else:
                return Term(Ref(ref)), self.s.last_end

    def parse_array(self) -> Term | None:
        loc = self.loc()
        offset = self.s.offset
        term = self._parse_array()
        return self.set_loc(term, loc, offset, self.s.tok_end)

    def _parse_array(self) -> Term | None:
        self.scan()
        if self.s.tok == lx.RBRACK:
            return Term(Array([]))
        potential_comprehension = True
        if self.s.tok == lx.COMMA:
            potential_comprehension = False
            self.scan()
        st = self.save()
        head = self.parse_term()
        if head is None:
            return None
        tok = self.s.tok
        if tok == lx.RBRACK:
            return Term(Array([head]))
        if tok == lx.COMMA:
            self.scan()
            terms = self.parse_term_list(lx.RBRACK, [head])
            if terms is not None:
                return Term(Array(terms))
            return None
        if tok == lx.OR and potential_comprehension:
            self.scan()
            body = self.parse_body(lx.RBRACK)
            if body is not None:
                return Term(ArrayCompr(head, body))
            if self.s.tok != lx.COMMA:
                return None
        self.restore(st)
        terms = self.parse_term_list(lx.RBRACK, [])
        if terms is not None:
            return Term(Array(terms))
        return None

    def parse_set_or_object(self) -> Term | None:
        loc = self.loc()
        offset = self.s.offset
        term = self._parse_set_or_object()
        return self.set_loc(term, loc, offset, self.s.tok_end)

    def _parse_set_or_object(self) -> Term | None:
        self.scan()
        if self.s.tok == lx.RBRACE:
            return Term(Object([]))
        potential_comprehension = True
        if self.s.tok == lx.COMMA:
            potential_comprehension = False
            self.scan()
        st = self.save()
        head = self.parse_term()
        if head is None:
            return None
        tok = self.s.tok
        if tok == lx.OR:
            if potential_comprehension:
                return self.parse_set(st, head, potential_comprehension)
        elif tok in (lx.RBRACE, lx.COMMA):
            return self.parse_set(st, head, potential_comprehension)
        elif tok == lx.COLON:
            return self.parse_object(head, potential_comprehension)
        self.restore(st)
        head = self.parse_term_infix_call_in_list()
        if head is None:
            return None
        tok = self.s.tok
        if tok in (lx.RBRACE, lx.COMMA):
            return self.parse_set(st, head, False)
        if tok == lx.COLON:
            return self.parse_object(head, potential_comprehension)
        self.illegal("non-terminated set")
        return None

    def parse_set(self, st: _State, head: Term, potential_comprehension: bool) -> Term | None:
        tok = self.s.tok
        if tok == lx.RBRACE:
            return Term(Set([head]))
        if tok == lx.COMMA:
            self.scan()
            terms = self.parse_term_list(lx.RBRACE, [head])
            if terms is not None:
                return Term(Set(terms))
        elif tok == lx.OR:
            if potential_comprehension:
                self.scan()
                body = self.parse_body(lx.RBRACE)
                if body is not None:
                    return Term(SetCompr(head, body))
                if self.s.tok != lx.COMMA:
                    return None
            self.restore(st)
            terms = self.parse_term_list(lx.RBRACE, [])
            if terms is not None:
                return Term(Set(terms))
        return None

    def parse_object(self, key: Term, potential_comprehension: bool) -> Term | None:
        self.scan()
        st = self.save()
        v = self.parse_term()
        if v is None:
            return None
        if potential_comprehension:
            if self.s.tok in (lx.RBRACE, lx.COMMA):
                return self.parse_object_finish(key, v, True)
            if self.s.tok == lx.OR:
                term = self.parse_object_finish(key, v, True)
                if term is not None:
                    return term
        self.restore(st)
        v = self.parse_term_infix_call_in_list()
        if v is None:
            return None
        if self.s.tok in (lx.RBRACE, lx.COMMA):
            return self.parse_object_finish(key, v, False)
        self.illegal("non-terminated object")
        return None

    def parse_object_finish(
        self, key: Term, val: Term, potential_comprehension: bool
    ) -> Term | None:
        tok = self.s.tok
        if tok == lx.RBRACE:
            return Term(Object([(key, val)]))
        if tok == lx.OR:
            if potential_comprehension:
                self.scan()
                body = self.parse_body(lx.RBRACE)
                if body is not None:
                    return Term(ObjectCompr(key, val, body))
            else:
                self.illegal("non-terminated object")
        elif tok == lx.COMMA:
            self.scan()
            pairs = self.parse_term_pair_list(lx.RBRACE, [(key, val)])
            if pairs is not None:
                return Term(Object(pairs))
        return None

    def parse_term_list(self, end: int, r: list[Term]) -> list[Term] | None:
        if self.s.tok == end:
            return r
        while True:
            term = self.parse_term_infix_call_in_list()
            if term is None:
                return None
            r.append(term)
            if self.s.tok == end:
                return r
            if self.s.tok == lx.COMMA:
                self.scan()
                if self.s.tok == end:
                    return r
                continue
            self.illegal(f'expected "," or "{TOKEN_NAMES[end]}"')
            return None

    def parse_term_pair_list(
        self, end: int, r: list[tuple[Term, Term]]
    ) -> list[tuple[Term, Term]] | None:
        if self.s.tok == end:
            return r
        while True:
            key = self.parse_term_infix_call_in_list()
            if key is None:
                return None
            if self.s.tok != lx.COLON:
                self.illegal('expected ":"')
                return None
            self.scan()
            val = self.parse_term_infix_call_in_list()
            if val is None:
                return None
            r.append((key, val))
            if self.s.tok == end:
                return r
            if self.s.tok == lx.COMMA:
                self.scan()
                if self.s.tok == end:
                    return r
                continue
            self.illegal(f'expected "," or "{TOKEN_NAMES[end]}"')
            return None

    def parse_term_op(self, *values: int) -> Term | None:
        if self.s.tok in values:
            loc = self.loc()
            r = Term(Ref([Term(Var(TOKEN_NAMES[self.s.tok]), loc)]), loc)
            self.scan()
            return r
        return None

    def parse_term_op_name(self, path: tuple[str, str], *values: int) -> Term | None:
        if self.s.tok in values:
            loc = self.loc()
            t = Term(Ref([Term(Var(path[0]), loc), Term(String(path[1]), loc)]), loc)
            self.scan()
            return t
        return None

    def parse_var(self) -> Term:
        if self.s.lit == "_":
            return Term(self.gen_wildcard(), self.loc())
        return Term(Var(self.s.lit), self.loc())

    def gen_wildcard(self) -> Var:
        v = Var(f"${self.s.wildcard}")
        self.s.wildcard += 1
        return v


# ---------------------------------------------------------------------------------------
# Parser helpers
# ---------------------------------------------------------------------------------------


def _append(body: Body, expr: Expr) -> None:
    expr.index = len(body)
    body.append(expr)


def _indexed(expr: Expr, index: int) -> Expr:
    expr.index = index
    return expr


def _implicit_true_body(loc: Loc | None) -> Body:
    expr = Expr(Term(Boolean(True), loc), loc)
    expr.generated = True
    return [expr]


def _set_loc_head(head: Head, loc: Loc) -> None:
    head.loc = loc
    for t in (*head.reference, *(head.args or ()), head.key, head.value):
        if t is not None:
            _set_loc_term(t, loc)


def _set_loc_term(term: Term, loc: Loc) -> None:
    term.loc = loc
    for child in _child_terms(term.value):
        _set_loc_term(child, loc)


def _child_terms(v: Value) -> list[Term]:
    t = type(v)
    if t is Ref or t is Array or t is Call:
        return list(v.terms)
    if t is Set:
        return _sorted_terms(v.terms)
    if t is Object:
        out: list[Term] = []
        for k, x in sorted(v.pairs, key=_pair_key):
            out.extend((k, x))
        return out
    if t is TemplateString:
        out = []
        for part in v.parts:
            if type(part) is Term:
                out.append(part)
            elif type(part.terms) is Term:
                out.append(part.terms)
            elif type(part.terms) is list:
                out.extend(part.terms)
        return out
    return []


def _call_name(call: Call) -> str:
    op = call.terms[0].value
    if type(op) is Ref:
        return _ref_string(op.terms)
    return value_string(op)


def _is_ambiguous_union_body(body: Body) -> bool:
    if not body:
        return False
    first = body[0]
    terms = first.terms
    if type(terms) is not list:
        return False
    op = first.operator()
    if op is None or len(op.terms) != 1:
        return False
    head = op.terms[0].value
    if type(head) is not Var or head.name != "or":
        return False
    if terms[0].loc is None or terms[0].loc.text != b"|":
        return False
    return first.loc is None or not (first.loc.text or b"").strip().startswith(b"(")


def _brace_led_value(t: Term) -> Value:
    v = t.value
    if type(v) is Call and v.terms:
        name = _call_name(v)
        arity = _INFIX_ARITY.get(name)
        if arity is not None and len(v.terms) == arity + 1:
            return _brace_led_value(v.terms[1])
    return v


def _is_empty_object_term(expr: Expr) -> bool:
    if expr.with_:
        return False
    t = expr.terms
    return type(t) is Term and type(t.value) is Object and not t.value.pairs


def _void_call_operand(body: Body) -> tuple[str, Loc | None]:
    name = ""
    loc = None
    for expr in body:
        if expr.negated or type(expr.terms) is not list:
            return "", None
        op = expr.operator()
        op_name = _ref_string(op.terms) if op is not None else ""
        if op_name not in _VOID_BUILTINS:
            return "", None
        if not name:
            name, loc = op_name, expr.loc
    return name, loc


def _is_logical_body(body: Body) -> bool:
    return len(body) == 1 and type(body[0].terms) is Logical


def _is_negated_operand(body: Body) -> bool:
    if len(body) != 1:
        return False
    return body[0].negated or type(body[0].terms) is Not


_GO_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_MAX_BINARY_EXP = 100000


def _validate_number(text: str) -> str:
    """OPA's ``validateNumber`` (Go's ``big.Float`` parsing): "" when fine, else its complaint."""
    if not _GO_FLOAT.match(text):
        return "invalid float"
    mantissa, _, exp_text = text.lower().partition("e")
    if len(exp_text.lstrip("+-0")) > 19:
        return "invalid float"
    exp10 = int(exp_text) if exp_text else 0
    if not -(2**63) <= exp10 < 2**63:
        return "invalid float"
    int_part, _, frac = mantissa.lstrip("+-").partition(".")
    digits = (int_part + frac).lstrip("0")
    if not digits:
        return ""
    # log10 of the mantissa's digits read as one integer: 0.d1d2... * 10**len(digits).
    mant_log10 = len(digits) + math.log10(float("0." + digits[:17]))
    log2_10 = math.log2(10)
    # Go first checks the binary exponent of mantissa * 2**(exp10 - fraction digits).
    exp2 = math.floor(mant_log10 * log2_10) + 1 - len(frac) + exp10
    if not -(2**31) <= exp2 <= 2**31 - 1:
        return "invalid float"
    value_exp2 = math.floor((mant_log10 - len(frac) + exp10) * log2_10) + 1
    if value_exp2 > _MAX_BINARY_EXP or value_exp2 < -_MAX_BINARY_EXP:
        return "number too big"
    return ""


def _json_unquote(lit: str) -> str | None:
    """Decode a JSON string literal as Go's ``json.Unmarshal`` does, None if invalid."""
    try:
        value = json.loads(lit)
    except ValueError:
        return None
    if type(value) is not str:
        return None
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        value = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    return value


# ---------------------------------------------------------------------------------------
# Module assembly (OPA's parseModule)
# ---------------------------------------------------------------------------------------


class _RuleError(Exception):
    pass


def _stmt_loc(stmt: Statement) -> Loc | None:
    if type(stmt) is list:
        return stmt[0].loc if stmt else None
    return stmt.loc


def _rule(loc: Loc | None, head: Head, body: Body, generated_body: bool = False) -> Rule:
    rule = Rule(loc)
    rule.head = head
    rule.body = body
    rule.generated_body = generated_body
    return rule


def _rule_from_body(body: Body) -> Rule:
    if len(body) != 1:
        raise _RuleError("multiple expressions cannot be used for rule head")
    expr = body[0]
    if expr.with_:
        raise _RuleError("expressions using with keyword cannot be used for rule head")
    if expr.negated:
        raise _RuleError("negated expressions cannot be used for rule head")
    terms = expr.terms
    if type(terms) is SomeDecl:
        raise _RuleError("'some' declarations cannot be used for rule head")
    if type(terms) is Term:
        v = terms.value
        if type(v) is Ref:
            if len(v.terms) > 2:
                return _complete_rule_with_dots(terms)
            return _partial_set_rule(terms)
        raise _RuleError(f"{value_name(v)} cannot be used for rule name")
    if type(terms) is not list:
        raise _RuleError("expression cannot be used for rule head")
    if expr.is_global("eq") or expr.is_global("assign"):
        rule = _complete_rule_from_eq(expr)
        if expr.is_global("assign"):
            rule.head.assign = True
        return rule
    op = expr.operator()
    if op is not None and _ref_string(op.terms) in _BUILTIN_NAMES:
        raise _RuleError("rule name conflicts with built-in function")
    return _rule_from_call(terms)


def _complete_rule_from_eq(expr: Expr) -> Rule:
    lhs, rhs = expr.operand(0), expr.operand(1)
    if lhs is None or rhs is None:
        raise _RuleError("assignment requires two operands")
    rule = None
    for build in (_rule_from_call_eq, _partial_object_rule):
        try:
            rule = build(lhs, rhs)
            break
        except _RuleError:
            continue
    if rule is None:
        rule = _complete_rule_from_eq_terms(lhs, rhs)
    rule.loc = expr.loc
    rule.head.loc = expr.loc
    return rule


def _require_var_head(ref: list[Term]) -> None:
    if type(ref[0].value) is not Var:
        raise _RuleError(f"invalid rule head: {_ref_string(ref)}")


def _complete_rule_from_eq_terms(lhs: Term, rhs: Term) -> Rule:
    v = lhs.value
    if type(v) is Var:
        head = _var_head(v.name, lhs.loc)
    elif type(v) is Ref:
        _require_var_head(v.terms)
        head = _ref_head(v.terms)
        if len(v.terms) > 1 and not _is_ground(v.terms[-1].value):
            raise _RuleError("ref not ground")
    else:
        raise _RuleError(f"{value_name(v)} cannot be used for rule name")
    head.value = rhs
    head.loc = lhs.loc
    return _rule(lhs.loc, head, _implicit_true_body(rhs.loc), True)


def _complete_rule_with_dots(term: Term) -> Rule:
    ref = term.value.terms
    _require_var_head(ref)
    head = _ref_head(ref, Term(Boolean(True), term.loc))
    head.generated_value = True
    head.loc = term.loc
    return _rule(term.loc, head, _implicit_true_body(term.loc))


def _partial_object_rule(lhs: Term, rhs: Term) -> Rule:
    v = lhs.value
    if type(v) is not Ref:
        raise _RuleError(f"{value_name(v)} cannot be used as rule name")
    _require_var_head(v.terms)
    head = _ref_head(v.terms, rhs)
    if len(v.terms) == 2:
        head.name = v.terms[0].value.name
        head.key = v.terms[1]
    head.loc = rhs.loc
    return _rule(rhs.loc, head, _implicit_true_body(rhs.loc), True)


def _partial_set_rule(term: Term) -> Rule:
    ref = term.value.terms
    if len(ref) == 1:
        raise _RuleError("refs cannot be used for rule head")
    _require_var_head(ref)
    head = _ref_head(ref)
    if len(ref) == 2:
        head = _var_head(ref[0].value.name, ref[0].loc)
        head.key = ref[1]
    head.loc = term.loc
    return _rule(term.loc, head, _implicit_true_body(term.loc))


def _rule_from_call_eq(lhs: Term, rhs: Term) -> Rule:
    call = lhs.value
    if type(call) is not Call:
        raise _RuleError("must be call")
    op = call.terms[0].value
    if type(op) is not Ref:
        raise _RuleError(f"{value_name(op)}s cannot be used in function signature")
    _require_var_head(op.terms)
    head = _ref_head(op.terms, rhs)
    head.loc = lhs.loc
    head.args = list(call.terms[1:])
    return _rule(lhs.loc, head, _implicit_true_body(rhs.loc))


def _rule_from_call(terms: list[Term]) -> Rule:
    if len(terms) <= 1:
        raise _RuleError("rule argument list must take at least one argument")
    loc = terms[0].loc
    ref = terms[0].value.terms
    _require_var_head(ref)
    head = _ref_head(ref, Term(Boolean(True), loc))
    head.loc = loc
    head.args = list(terms[1:])
    return _rule(loc, head, _implicit_true_body(loc))


def _check_rego_v1(rule: Rule) -> list[ParseError]:
    head = rule.head
    kind = "function" if head.args else "rule"
    errs = []

    def err(msg: str) -> None:
        errs.append(ParseError(PARSE_ERR, msg, rule.loc))

    if len(head.reference) < 2 and head.name in _KEYWORDS_V1:
        err(f"{head.name} keyword cannot be used for rule name")
    if rule.generated_body and head.generated_value:
        err(f"{kind} must have value assignment and/or body declaration")
    if not rule.generated_body and lx.IF not in head.keywords and not rule.default:
        err(f"`if` keyword is required before {kind} body")
    if head.value is None and head.key is not None and lx.CONTAINS not in head.keywords:
        err("`contains` keyword is required for partial set rules")
    return errs


class Module:
    """A parsed module: package, imports, rules and the comments kept by the parser."""

    __slots__ = ("comments", "imports", "package", "rules")

    def __init__(self, package: Package | None, comments: tuple[Comment, ...]) -> None:
        self.package = package
        self.imports: list[Import] = []
        self.rules: list[Rule] = []
        self.comments = comments


def parse_module_ast(filename: str, source: str) -> Module:
    """Parse ``source`` as OPA's ``ast.ParseModule(filename, source)`` does."""
    parser = _Parser(filename, source.encode("utf-8", "surrogatepass"))
    stmts = parser.parse()
    if parser.s.errors:
        raise ParseErrors(list(parser.s.errors))
    comments = parser.s.comments
    if not stmts:
        raise ParseErrors(
            [ParseError(PARSE_ERR, "empty module", Loc(filename, 0, 0, 0, None))], single=True
        )
    errs: list[ParseError] = []
    first = stmts[0]
    pkg = first if type(first) is Package else None
    if pkg is None:
        errs.append(ParseError(PARSE_ERR, "package expected", _stmt_loc(first)))
    mod = Module(pkg, comments)
    for stmt in stmts[1:]:
        if type(stmt) is Import:
            mod.imports.append(stmt)
        elif type(stmt) is Rule:
            mod.rules.append(stmt)
        elif type(stmt) is list:
            try:
                rule = _rule_from_body(stmt)
            except _RuleError as exc:
                errs.append(ParseError(PARSE_ERR, str(exc), stmt[0].loc))
                continue
            rule.generated_body = True
            mod.rules.append(rule)
        elif type(stmt) is Package:
            errs.append(ParseError(PARSE_ERR, "unexpected package", stmt.loc))
    for rule in mod.rules:
        r: Rule | None = rule
        while r is not None:
            errs.extend(_check_rego_v1(r))
            r = r.else_
    if errs:
        raise ParseErrors(errs)
    return mod


# ---------------------------------------------------------------------------------------
# The JSON form of the module, as a Rego value
# ---------------------------------------------------------------------------------------

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?\Z")
_INT_TEXT = re.compile(r"-?\d+\Z")


def _number_value(text: str, chain: tuple[str, ...]) -> int | float:
    if _INT_TEXT.match(text):
        return int(text)
    if not _JSON_NUMBER.match(text):
        msg = f"json: invalid number literal {go_quote(text)}"
        for name in reversed((*chain, "ast.Number")):
            msg = f"json: error calling MarshalJSON for type {name}: {msg}"
        raise MarshalError(msg)
    d = Decimal(text)
    as_float = float(text)
    # Integral values stay exact ints while they can still be printed as decimal text.
    if d == d.to_integral_value() and (d.adjusted() < 4000 or math.isinf(as_float)):
        return int(d)
    return as_float


def _term_json(term: Term, chain: tuple[str, ...]) -> dict[str, Any]:
    chain = (*chain, "*ast.Term")
    v = term.value
    t = type(v)
    out: Any
    if t is Null:
        out = {}
    elif t is Boolean or t is String:
        out = v.value
    elif t is Number:
        out = _number_value(v.text, chain)
    elif t is Var:
        out = v.name
    elif t is Ref or t is Call:
        out = [_term_json(x, chain) for x in v.terms]
    elif t is Array:
        sub = (*chain, "*ast.Array")
        out = [_term_json(x, sub) for x in v.terms]
    elif t is Set:
        sub = (*chain, "*ast.set")
        out = [_term_json(x, sub) for x in _sorted_terms(v.terms)]
    elif t is Object:
        sub = (*chain, "*ast.object")
        out = [[_term_json(k, sub), _term_json(x, sub)] for k, x in sorted(v.pairs, key=_pair_key)]
    elif t is ArrayCompr or t is SetCompr:
        out = {"term": _term_json(v.term, chain), "body": _body_json(v.body, chain)}
    elif t is ObjectCompr:
        out = {
            "key": _term_json(v.key, chain),
            "value": _term_json(v.value, chain),
            "body": _body_json(v.body, chain),
        }
    elif t is TemplateString:
        parts = [_term_json(p, chain) if type(p) is Term else _expr_json(p, chain) for p in v.parts]
        out = {"parts": parts or None, "multi_line": v.multi_line}
    else:
        raise TypeError(f"unexpected term value {t.__name__}")
    return {"type": value_name(v), "value": out}


def _body_json(body: Body, chain: tuple[str, ...]) -> list[Any]:
    chain = (*chain, "ast.Body")
    return [_expr_json(e, chain) for e in body]


def _expr_json(expr: Expr, chain: tuple[str, ...]) -> dict[str, Any]:
    chain = (*chain, "*ast.Expr")
    terms = expr.terms
    out: dict[str, Any] = {"index": expr.index}
    if type(terms) is Term:
        out["terms"] = _term_json(terms, chain)
    elif type(terms) is list:
        out["terms"] = [_term_json(t, chain) for t in terms]
    elif type(terms) is SomeDecl:
        sub = (*chain, "*ast.SomeDecl")
        out["terms"] = {"symbols": [_term_json(t, sub) for t in terms.symbols]}
    elif type(terms) is Every:
        sub = (*chain, "*ast.Every")
        out["terms"] = {
            "key": _term_json(terms.key, sub) if terms.key is not None else None,
            "value": _term_json(terms.value, sub),
            "domain": _term_json(terms.domain, sub),
            "body": _body_json(terms.body, sub),
        }
    elif type(terms) is Not:
        sub = (*chain, "*ast.Not")
        out["terms"] = {
            "type": "not",
            "body": _body_json(terms.body, sub),
            "explicit_body": terms.explicit,
        }
    elif type(terms) is Logical:
        sub = (*chain, f"*ast.Logical{terms.op.capitalize()}")
        node: dict[str, Any] = {
            "type": terms.op,
            "lhs": _body_json(terms.lhs, sub),
            "rhs": _body_json(terms.rhs, sub),
        }
        if terms.explicit_lhs:
            node["explicit_lhs"] = True
        if terms.explicit_rhs:
            node["explicit_rhs"] = True
        out["terms"] = node
    if expr.with_:
        sub = (*chain, "*ast.With")
        out["with"] = [
            {"target": _term_json(w.target, sub), "value": _term_json(w.value, sub)}
            for w in expr.with_
        ]
    if expr.generated:
        out["generated"] = True
    if expr.negated:
        out["negated"] = True
    return out


def _rule_json(rule: Rule, chain: tuple[str, ...]) -> dict[str, Any]:
    chain = (*chain, "*ast.Rule")
    head = rule.head
    hchain = (*chain, "*ast.Head")
    hout: dict[str, Any] = {"ref": [_term_json(t, hchain) for t in head.ref()]}
    if head.name:
        hout["name"] = head.name
    if head.args:
        hout["args"] = [_term_json(t, hchain) for t in head.args]
    if head.key is not None:
        hout["key"] = _term_json(head.key, hchain)
    if head.value is not None:
        hout["value"] = _term_json(head.value, hchain)
    if head.assign:
        hout["assign"] = True
    out: dict[str, Any] = {"head": hout, "body": _body_json(rule.body, chain)}
    if rule.default:
        out["default"] = True
    if rule.else_ is not None:
        out["else"] = _rule_json(rule.else_, chain)
    return out


def module_json(mod: Module) -> dict[str, Any]:
    """The module as Go's ``encoding/json`` renders OPA's ``ast.Module``, as a Rego value."""
    pkg_chain = ("*ast.Package",)
    out: dict[str, Any] = {
        "package": {"path": [_term_json(t, pkg_chain) for t in mod.package.path]}
    }
    if mod.imports:
        imports = []
        for imp in mod.imports:
            item: dict[str, Any] = {"path": _term_json(imp.path, ("*ast.Import",))}
            if imp.alias:
                item["alias"] = imp.alias
            imports.append(item)
        out["imports"] = imports
    if mod.rules:
        out["rules"] = [_rule_json(r, ()) for r in mod.rules]
    if mod.comments:
        out["comments"] = [
            {
                "Text": None if c.text is None else base64.b64encode(c.text).decode("ascii"),
                "Location": {"file": c.loc.file, "row": c.loc.row, "col": c.loc.col},
            }
            for c in mod.comments
        ]
    return out


def parse_module(filename: str, source: str) -> dict[str, Any]:
    """``rego.parse_module``: the module's JSON form as a Rego value.

    Raises :class:`ParseErrors` for a module OPA cannot parse, and :class:`MarshalError`
    for one whose JSON encoding fails in OPA (a number literal written ``.5``).
    """
    return module_json(parse_module_ast(filename, source))
