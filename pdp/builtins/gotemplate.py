"""Go's ``text/template``, as OPA's ``strings.render_template`` runs it.

OPA parses the template with Go's ``text/template/parse`` and executes it over the variables
decoded from JSON (strings, ``json.Number``, booleans, nil, ``[]interface {}`` and
``map[string]interface {}``), with the method-less copy of ``text/template`` it ships. This
module reimplements that pipeline: the lexer, the parser (with Go's error messages and
positions), and the executor with the builtin functions ``and or not len index slice print
printf println html js urlquery call eq ne lt le gt ge``, ``define``/``template``/``block``,
``range`` (including over integers), ``break``/``continue`` and variables.

Go values are modelled as in :mod:`pdp.builtins.gofmt`; a ``reflect.Value`` of interface
kind (what map and slice lookups yield) is an :class:`_Iface`, the zero ``reflect.Value`` is
``_INVALID``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from pdp.builtins._golang import go_quote
from pdp.builtins.gofmt import (
    GoInt,
    GoUint8,
    JSONNumber,
    go_type_name,
    sprint,
    sprintf,
    sprintln,
)

__all__ = ["TemplateError", "render"]

_NAME = "template"
_MAX_EXEC_DEPTH = 100_000  # Go's limit, reported in its message
_SAFE_EXEC_DEPTH = 100  # where this emulation stops, to stay clear of Python's stack limit
# Go allows 10000 nested parentheses; this emulation stops earlier, with Go's message.
_SAFE_PAREN_DEPTH = 150


class TemplateError(Exception):
    """A parse or execution error, with Go's message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _GoError(Exception):
    """An error returned by a template function (wrapped as ``error calling NAME: ...``)."""


# --- values ---------------------------------------------------------------------------


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_INVALID: Any = _Sentinel("<invalid>")  # the zero reflect.Value
_MISSING: Any = _Sentinel("<missing>")  # no piped-in final argument


class _Iface:
    """A reflect.Value of kind interface: an element of a map or slice (None = nil)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _kind(v: Any) -> str:
    t = type(v)
    if t is str or t is JSONNumber:
        return "string"
    if t is bool:
        return "bool"
    if t is GoInt:
        return "int"
    if t is GoUint8:
        return "uint"
    if t is float:
        return "float"
    if t is complex:
        return "complex"
    if t is list:
        return "slice"
    if t is dict:
        return "map"
    if t is _Iface:
        return "interface"
    return "invalid"


def _type_str(v: Any) -> str:
    if type(v) is _Iface:
        return "interface {}"
    if type(v) is complex:
        return "complex128"
    return go_type_name(v)


def _indirect_interface(v: Any) -> Any:
    if type(v) is _Iface:
        return _INVALID if v.value is None else v.value
    return v


def _to_interface(v: Any) -> Any:
    """The Go value a function taking ``any`` receives (nil for nothing)."""
    if type(v) is _Iface:
        return v.value
    if v is _INVALID:
        return None
    return v


def _is_true(v: Any) -> bool:
    if v is _INVALID:
        return False
    k = _kind(v)
    if k in ("string", "slice", "map"):
        return len(v) > 0
    if k == "interface":
        return v.value is not None
    return v != 0


def _truth(v: Any) -> bool:
    return _is_true(_indirect_interface(v))


def _printable(v: Any) -> Any:
    return "<no value>" if v is _INVALID else _to_interface(v)


def _fmt_value(v: Any, verb: str = "v") -> str:
    """``%v`` (or another verb) of a reflect.Value in an error message."""
    if v is _INVALID:
        return "<invalid reflect.Value>"
    return sprintf("%" + verb, [_to_interface(v)])


# --- strconv ---------------------------------------------------------------------------

_SYNTAX = "invalid syntax"
_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}


def _unquote_char(s: str, i: int, quote: str) -> tuple[int, bool, int]:
    """One (possibly escaped) character of a Go literal at ``s[i]``: (value, is_rune, next)."""
    c = s[i]
    if c == quote and quote in "'\"":
        raise _GoError(_SYNTAX)
    if c != "\\":
        return ord(c), True, i + 1
    if i + 1 >= len(s):
        raise _GoError(_SYNTAX)
    c = s[i + 1]
    i += 2
    if c in _ESCAPES:
        return _ESCAPES[c], False, i
    if c in "xuU":
        n = {"x": 2, "u": 4, "U": 8}[c]
        digits = s[i : i + n]
        if len(digits) < n or any(d not in "0123456789abcdefABCDEF" for d in digits):
            raise _GoError(_SYNTAX)
        v = int(digits, 16)
        if c == "x":
            return v, False, i + n
        if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
            raise _GoError(_SYNTAX)
        return v, True, i + n
    if "0" <= c <= "7":
        digits = c + s[i : i + 2]
        if len(digits) < 3 or any(d not in "01234567" for d in digits):
            raise _GoError(_SYNTAX)
        v = int(digits, 8)
        if v > 255:
            raise _GoError(_SYNTAX)
        return v, False, i + 2
    if c in "'\"":
        if c != quote:
            raise _GoError(_SYNTAX)
        return ord(c), False, i
    raise _GoError(_SYNTAX)


def _unquote(s: str) -> str:
    """``strconv.Unquote`` for double-quoted and raw string literals."""
    if len(s) < 2 or s[0] != s[-1]:
        raise _GoError(_SYNTAX)
    quote, body = s[0], s[1:-1]
    if quote == "`":
        if "`" in body:
            raise _GoError(_SYNTAX)
        return body.replace("\r", "")
    if quote != '"' or "\n" in body:
        raise _GoError(_SYNTAX)
    out = bytearray()
    i = 0
    while i < len(body):
        v, is_rune, i = _unquote_char(body, i, quote)
        if is_rune:
            out += chr(v).encode("utf-8", "surrogatepass")
        else:
            out.append(v)
    return out.decode("utf-8", "replace")


# --- lexer -----------------------------------------------------------------------------

# Item types; those after _KEYWORD are keywords.
(
    _ERROR,
    _BOOL,
    _CHAR,
    _CHAR_CONSTANT,
    _COMMENT,
    _COMPLEX,
    _ASSIGN,
    _DECLARE,
    _EOF,
    _FIELD,
    _IDENTIFIER,
    _LEFT_DELIM,
    _LEFT_PAREN,
    _NUMBER,
    _PIPE,
    _RAW_STRING,
    _RIGHT_DELIM,
    _RIGHT_PAREN,
    _SPACE,
    _STRING,
    _TEXT,
    _VARIABLE,
    _KEYWORD,
    _BLOCK,
    _BREAK,
    _CONTINUE,
    _DOT,
    _DEFINE,
    _ELSE,
    _END,
    _IF,
    _NIL,
    _RANGE,
    _TEMPLATE,
    _WITH,
) = range(35)

_KEYWORDS = {
    ".": _DOT,
    "block": _BLOCK,
    "break": _BREAK,
    "continue": _CONTINUE,
    "define": _DEFINE,
    "else": _ELSE,
    "end": _END,
    "if": _IF,
    "range": _RANGE,
    "nil": _NIL,
    "template": _TEMPLATE,
    "with": _WITH,
}

_SPACES = " \t\r\n"
_LEFT, _RIGHT = "{{", "}}"
_EOF_RUNE = ""


@dataclass(frozen=True)
class _Item:
    typ: int
    pos: int
    val: str
    line: int

    def __str__(self) -> str:
        if self.typ == _EOF:
            return "EOF"
        if self.typ == _ERROR:
            return self.val
        if self.typ > _KEYWORD:
            return f"<{self.val}>"
        if len(self.val.encode("utf-8", "surrogatepass")) > 10:
            return sprintf("%.10q...", [self.val])
        return go_quote(self.val)


def _is_space(r: str) -> bool:
    return r != "" and r in _SPACES


def _is_alnum(r: str) -> bool:
    return r == "_" or (r != "" and (r.isalpha() or r.isdecimal()))


def _has_left_trim(s: str, i: int) -> bool:
    return len(s) - i >= 2 and s[i] == "-" and _is_space(s[i + 1])


def _has_right_trim(s: str, i: int) -> bool:
    return len(s) - i >= 2 and _is_space(s[i]) and s[i + 1] == "-"


class _Lexer:
    """Go's template lexer; positions are code-point offsets into the input."""

    def __init__(self, text: str) -> None:
        self.input = text
        self.pos = 0
        self.start = 0
        self.at_eof = False
        self.paren_depth = 0
        self.line = 1
        self.start_line = 1
        self.inside_action = False
        self.item: _Item | None = None

    def next_item(self) -> _Item:
        self.item = _Item(_EOF, self.pos, "EOF", self.start_line)
        state: Callable[[], Any] | None = (
            self.lex_inside_action if self.inside_action else self.lex_text
        )
        while state is not None:
            state = state()
        return self.item

    def next(self) -> str:
        if self.pos >= len(self.input):
            self.at_eof = True
            return _EOF_RUNE
        r = self.input[self.pos]
        self.pos += 1
        if r == "\n":
            self.line += 1
        return r

    def peek(self) -> str:
        r = self.next()
        self.backup()
        return r

    def backup(self) -> None:
        if not self.at_eof and self.pos > 0:
            self.pos -= 1
            if self.input[self.pos] == "\n":
                self.line -= 1

    def this_item(self, typ: int) -> _Item:
        item = _Item(typ, self.start, self.input[self.start : self.pos], self.start_line)
        self.start = self.pos
        self.start_line = self.line
        return item

    def emit(self, typ: int) -> None:
        self.item = self.this_item(typ)

    def ignore(self) -> None:
        self.line += self.input.count("\n", self.start, self.pos)
        self.start = self.pos
        self.start_line = self.line

    def accept(self, valid: str) -> bool:
        r = self.next()
        if r != "" and r in valid:
            return True
        self.backup()
        return False

    def accept_run(self, valid: str) -> None:
        while True:
            r = self.next()
            if r == "" or r not in valid:
                break
        self.backup()

    def errorf(self, message: str) -> None:
        self.item = _Item(_ERROR, self.start, message, self.start_line)
        self.start = 0
        self.pos = 0
        self.input = ""

    def at_right_delim(self) -> tuple[bool, bool]:
        s = self.input
        if _has_right_trim(s, self.pos) and s.startswith(_RIGHT, self.pos + 2):
            return True, True
        if s.startswith(_RIGHT, self.pos):
            return True, False
        return False, False

    def at_terminator(self) -> bool:
        r = self.peek()
        if _is_space(r) or r in ("", ".", ",", "|", ":", ")", "("):
            return True
        return self.input.startswith(_RIGHT, self.pos)

    def lex_text(self) -> Callable[[], Any] | None:
        s = self.input
        x = s.find(_LEFT, self.pos)
        if x >= 0:
            if x > self.pos:
                self.pos = x
                trim = 0
                if _has_left_trim(s, x + len(_LEFT)):
                    chunk = s[self.start : self.pos]
                    trim = len(chunk) - len(chunk.rstrip(_SPACES))
                self.pos -= trim
                self.line += s.count("\n", self.start, self.pos)
                item = self.this_item(_TEXT)
                self.pos += trim
                self.ignore()
                if item.val:
                    self.item = item
                    return None
            return self.lex_left_delim
        self.pos = len(s)
        if self.pos > self.start:
            self.line += s.count("\n", self.start, self.pos)
            self.emit(_TEXT)
            return None
        self.emit(_EOF)
        return None

    def lex_left_delim(self) -> Callable[[], Any] | None:
        self.pos += len(_LEFT)
        trim = _has_left_trim(self.input, self.pos)
        after = 2 if trim else 0
        if self.input.startswith("/*", self.pos + after):
            self.pos += after
            self.ignore()
            return self.lex_comment
        item = self.this_item(_LEFT_DELIM)
        self.inside_action = True
        self.pos += after
        self.ignore()
        self.paren_depth = 0
        self.item = item
        return None

    def lex_comment(self) -> Callable[[], Any] | None:
        self.pos += 2
        x = self.input.find("*/", self.pos)
        if x < 0:
            self.errorf("unclosed comment")
            return None
        self.pos = x + 2
        delim, trim = self.at_right_delim()
        if not delim:
            self.errorf("comment ends before closing delimiter")
            return None
        self.line += self.input.count("\n", self.start, self.pos)
        self.this_item(_COMMENT)
        if trim:
            self.pos += 2
        self.pos += len(_RIGHT)
        if trim:
            rest = self.input[self.pos :]
            self.pos += len(rest) - len(rest.lstrip(_SPACES))
        self.ignore()
        return self.lex_text

    def lex_right_delim(self) -> Callable[[], Any] | None:
        _, trim = self.at_right_delim()
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += len(_RIGHT)
        item = self.this_item(_RIGHT_DELIM)
        if trim:
            rest = self.input[self.pos :]
            self.pos += len(rest) - len(rest.lstrip(_SPACES))
            self.ignore()
        self.inside_action = False
        self.item = item
        return None

    def lex_inside_action(self) -> Callable[[], Any] | None:
        delim, _ = self.at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self.lex_right_delim
            self.errorf("unclosed left paren")
            return None
        r = self.next()
        if r == _EOF_RUNE:
            self.errorf("unclosed action")
        elif _is_space(r):
            self.backup()
            return self.lex_space
        elif r == "=":
            self.emit(_ASSIGN)
        elif r == ":":
            if self.next() != "=":
                self.errorf("expected :=")
            else:
                self.emit(_DECLARE)
        elif r == "|":
            self.emit(_PIPE)
        elif r == '"':
            return self.lex_quote
        elif r == "`":
            return self.lex_raw_quote
        elif r == "$":
            return self.lex_variable
        elif r == "'":
            return self.lex_char
        elif r == "." and self.pos < len(self.input) and not "0" <= self.input[self.pos] <= "9":
            return self.lex_field
        elif r in ".+-" or "0" <= r <= "9":
            self.backup()
            return self.lex_number
        elif _is_alnum(r):
            self.backup()
            return self.lex_identifier
        elif r == "(":
            self.paren_depth += 1
            self.emit(_LEFT_PAREN)
        elif r == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                self.errorf("unexpected right paren")
            else:
                self.emit(_RIGHT_PAREN)
        elif r <= "\x7f" and r.isprintable():
            self.emit(_CHAR)
        else:
            self.errorf(sprintf("unrecognized character in action: %#U", [ord(r)]))
        return None

    def lex_space(self) -> Callable[[], Any] | None:
        spaces = 0
        while _is_space(self.peek()):
            self.next()
            spaces += 1
        s = self.input
        if _has_right_trim(s, self.pos - 1) and s.startswith(_RIGHT, self.pos + 1):
            self.backup()
            if spaces == 1:
                return self.lex_right_delim
        self.emit(_SPACE)
        return None

    def lex_identifier(self) -> Callable[[], Any] | None:
        while True:
            r = self.next()
            if _is_alnum(r):
                continue
            self.backup()
            word = self.input[self.start : self.pos]
            if not self.at_terminator():
                self.errorf(sprintf("bad character %#U", [_rune_of(r)]))
                return None
            kw = _KEYWORDS.get(word, 0)
            if kw > _KEYWORD:
                self.emit(kw)
            elif word[0] == ".":
                self.emit(_FIELD)
            elif word in ("true", "false"):
                self.emit(_BOOL)
            else:
                self.emit(_IDENTIFIER)
            return None

    def lex_field(self) -> Callable[[], Any] | None:
        return self.lex_field_or_variable(_FIELD)

    def lex_variable(self) -> Callable[[], Any] | None:
        if self.at_terminator():
            self.emit(_VARIABLE)
            return None
        return self.lex_field_or_variable(_VARIABLE)

    def lex_field_or_variable(self, typ: int) -> Callable[[], Any] | None:
        if self.at_terminator():
            self.emit(_VARIABLE if typ == _VARIABLE else _DOT)
            return None
        while True:
            r = self.next()
            if not _is_alnum(r):
                self.backup()
                break
        if not self.at_terminator():
            self.errorf(sprintf("bad character %#U", [_rune_of(r)]))
            return None
        self.emit(typ)
        return None

    def _lex_quoted(self, close: str, typ: int, message: str) -> None:
        while True:
            r = self.next()
            if r == "\\":
                r = self.next()
                if r not in ("", "\n"):
                    continue
                self.errorf(message)
                return
            if r in ("", "\n"):
                self.errorf(message)
                return
            if r == close:
                break
        self.emit(typ)

    def lex_char(self) -> Callable[[], Any] | None:
        self._lex_quoted("'", _CHAR_CONSTANT, "unterminated character constant")
        return None

    def lex_quote(self) -> Callable[[], Any] | None:
        self._lex_quoted('"', _STRING, "unterminated quoted string")
        return None

    def lex_raw_quote(self) -> Callable[[], Any] | None:
        while True:
            r = self.next()
            if r == _EOF_RUNE:
                self.errorf("unterminated raw quoted string")
                return None
            if r == "`":
                break
        self.emit(_RAW_STRING)
        return None

    def lex_number(self) -> Callable[[], Any] | None:
        if not self.scan_number():
            self.errorf(sprintf("bad number syntax: %q", [self.input[self.start : self.pos]]))
            return None
        sign = self.peek()
        if sign in ("+", "-"):
            if not self.scan_number() or self.input[self.pos - 1] != "i":
                self.errorf(sprintf("bad number syntax: %q", [self.input[self.start : self.pos]]))
                return None
            self.emit(_COMPLEX)
            return None
        self.emit(_NUMBER)
        return None

    def scan_number(self) -> bool:
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 11 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        if _is_alnum(self.peek()):
            self.next()
            return False
        return True


def _rune_of(r: str) -> int:
    # Go reports the end of input as rune -1 (printed as U+FFFFFFFFFFFFFFFF by %#U).
    return ord(r) if r else (1 << 64) - 1


# --- nodes -----------------------------------------------------------------------------


@dataclass(eq=False)
class _Node:
    pos: int

    def __str__(self) -> str:
        raise NotImplementedError


@dataclass(eq=False)
class _ListNode(_Node):
    nodes: list[_Node] = field(default_factory=list)

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


@dataclass(eq=False)
class _TextNode(_Node):
    text: str = ""

    def __str__(self) -> str:
        return self.text


@dataclass(eq=False)
class _CommentNode(_Node):
    text: str = ""

    def __str__(self) -> str:
        return "{{" + self.text + "}}"


@dataclass(eq=False)
class _PipeNode(_Node):
    line: int = 0
    is_assign: bool = False
    decl: list[_VariableNode] = field(default_factory=list)
    cmds: list[_CommandNode] = field(default_factory=list)

    def __str__(self) -> str:
        out = ""
        if self.decl:
            out = ", ".join(str(v) for v in self.decl)
            out += " = " if self.is_assign else " := "
        return out + " | ".join(str(c) for c in self.cmds)


@dataclass(eq=False)
class _ActionNode(_Node):
    line: int = 0
    pipe: _PipeNode | None = None

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass(eq=False)
class _CommandNode(_Node):
    args: list[_Node] = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, _PipeNode) else str(a) for a in self.args)


@dataclass(eq=False)
class _IdentifierNode(_Node):
    ident: str = ""

    def __str__(self) -> str:
        return self.ident


@dataclass(eq=False)
class _VariableNode(_Node):
    ident: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclass(eq=False)
class _DotNode(_Node):
    def __str__(self) -> str:
        return "."


@dataclass(eq=False)
class _NilNode(_Node):
    def __str__(self) -> str:
        return "nil"


@dataclass(eq=False)
class _FieldNode(_Node):
    ident: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


@dataclass(eq=False)
class _ChainNode(_Node):
    node: _Node | None = None
    fields: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"({self.node})" if isinstance(self.node, _PipeNode) else str(self.node)
        return head + "".join("." + f for f in self.fields)


@dataclass(eq=False)
class _BoolNode(_Node):
    value: bool = False

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(eq=False)
class _NumberNode(_Node):
    text: str = ""
    is_int: bool = False
    is_uint: bool = False
    is_float: bool = False
    is_complex: bool = False
    int64: int = 0
    float64: float = 0.0
    complex128: complex = 0j

    def __str__(self) -> str:
        return self.text


@dataclass(eq=False)
class _StringNode(_Node):
    quoted: str = ""
    text: str = ""

    def __str__(self) -> str:
        return self.quoted


@dataclass(eq=False)
class _EndNode(_Node):
    def __str__(self) -> str:
        return "{{end}}"


@dataclass(eq=False)
class _ElseNode(_Node):
    line: int = 0

    def __str__(self) -> str:
        return "{{else}}"


@dataclass(eq=False)
class _BranchNode(_Node):
    line: int = 0
    pipe: _PipeNode | None = None
    list: _ListNode | None = None
    else_list: _ListNode | None = None
    keyword: str = ""

    def __str__(self) -> str:
        out = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            out += "{{else}}" + str(self.else_list)
        return out + "{{end}}"


@dataclass(eq=False)
class _TemplateNode(_Node):
    line: int = 0
    name: str = ""
    pipe: _PipeNode | None = None

    def __str__(self) -> str:
        out = "{{template " + go_quote(self.name)
        if self.pipe is not None:
            out += " " + str(self.pipe)
        return out + "}}"


@dataclass(eq=False)
class _BreakNode(_Node):
    line: int = 0

    def __str__(self) -> str:
        return "{{break}}"


@dataclass(eq=False)
class _ContinueNode(_Node):
    line: int = 0

    def __str__(self) -> str:
        return "{{continue}}"


_FUNCTIONS = frozenset(
    {
        "and",
        "call",
        "html",
        "index",
        "slice",
        "js",
        "len",
        "not",
        "or",
        "print",
        "printf",
        "println",
        "urlquery",
        "eq",
        "ge",
        "gt",
        "le",
        "lt",
        "ne",
    }
)


# --- parser ----------------------------------------------------------------------------


def _parse_go_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, ...)`` without the range check; None if malformed."""
    s = text
    neg = False
    if s[:1] in ("+", "-"):
        neg = s[0] == "-"
        s = s[1:]
    base = 10
    prefixed = False
    if len(s) >= 2 and s[0] == "0" and s[1] in "xXoObB":
        base = {"x": 16, "o": 8, "b": 2}[s[1].lower()]
        s = s[2:]
        prefixed = True
    elif len(s) >= 2 and s[0] == "0":
        base = 8
        s = s[1:]
        prefixed = True
    if not _underscores_ok(s, prefixed):
        return None
    s = s.replace("_", "")
    if not s:
        return None
    try:
        n = int(s, base)
    except ValueError:
        return None
    return -n if neg else n


def _underscores_ok(s: str, prefixed: bool) -> bool:
    if "_" not in s:
        return True
    prev = "0" if prefixed else "^"
    for c in s:
        if c == "_":
            if prev != "0":
                return False
            prev = "_"
        else:
            prev = "0"
    return prev != "_"


def _parse_go_float(text: str) -> float | None:
    s = text
    sign = ""
    if s[:1] in ("+", "-"):
        sign, s = s[0], s[1:]
    try:
        if s[:2] in ("0x", "0X"):
            body = s.replace("_", "")
            if "p" not in body.lower():
                return None
            return float.fromhex(sign + body)
        if "_" in s and not _underscores_ok(s.split(".")[0], False):
            return None
        if s.lower() in ("inf", "infinity", "nan") or not s:
            return None
        f = float(sign + s.replace("_", ""))
    except (ValueError, OverflowError):
        return None
    # Go's ParseFloat rejects what overflows float64 rather than return an infinity.
    return None if math.isinf(f) else f


class _Tree:
    """One parsed template (the main one or a ``define``/``block``)."""

    def __init__(self, name: str, text: str, trees: dict[str, _Tree]) -> None:
        self.name = name
        self.text = text
        self.root: _ListNode | None = None
        self.trees = trees
        self.lex: _Lexer | None = None
        self.token: list[_Item] = [_Item(_EOF, 0, "", 0)] * 3
        self.peek_count = 0
        self.vars: list[str] = ["$"]
        self.action_line = 0
        self.range_depth = 0
        self.stack_depth = 0

    # -- token stream --

    def start(self, lex: _Lexer) -> None:
        self.lex = lex
        self.vars = ["$"]
        self.stack_depth = 0

    def next(self) -> _Item:
        if self.peek_count > 0:
            self.peek_count -= 1
        else:
            self.token[0] = self.lex.next_item()  # type: ignore[union-attr]
        return self.token[self.peek_count]

    def backup(self) -> None:
        self.peek_count += 1

    def backup2(self, t1: _Item) -> None:
        self.token[1] = t1
        self.peek_count = 2

    def backup3(self, t2: _Item, t1: _Item) -> None:
        self.token[1] = t1
        self.token[2] = t2
        self.peek_count = 3

    def peek(self) -> _Item:
        if self.peek_count > 0:
            return self.token[self.peek_count - 1]
        self.peek_count = 1
        self.token[0] = self.lex.next_item()  # type: ignore[union-attr]
        return self.token[0]

    def next_non_space(self) -> _Item:
        while True:
            token = self.next()
            if token.typ != _SPACE:
                return token

    def peek_non_space(self) -> _Item:
        token = self.next_non_space()
        self.backup()
        return token

    # -- errors --

    def errorf(self, message: str) -> TemplateError:
        self.root = None
        return TemplateError(f"template: {_NAME}:{self.token[0].line}: {message}")

    def expect(self, expected: int, context: str) -> _Item:
        token = self.next_non_space()
        if token.typ != expected:
            raise self.unexpected(token, context)
        return token

    def unexpected(self, token: _Item, context: str) -> TemplateError:
        if token.typ == _ERROR:
            extra = ""
            if self.action_line not in (0, token.line):
                extra = f" in action started at {_NAME}:{self.action_line}"
                if token.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            return self.errorf(f"{token}{extra}")
        return self.errorf(f"unexpected {token} in {context}")

    # -- grammar --

    def add(self) -> None:
        existing = self.trees.get(self.name)
        if existing is None or _is_empty_tree(existing.root):
            self.trees[self.name] = self
            return
        if not _is_empty_tree(self.root):
            raise self.errorf(f"template: multiple definition of template {go_quote(self.name)}")

    def parse(self) -> None:
        self.root = _ListNode(self.peek().pos)
        while self.peek().typ != _EOF:
            if self.peek().typ == _LEFT_DELIM:
                delim = self.next()
                if self.next_non_space().typ == _DEFINE:
                    sub = _Tree("definition", self.text, self.trees)
                    sub.start(self.lex)  # type: ignore[arg-type]
                    sub.parse_definition()
                    continue
                self.backup2(delim)
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                raise self.errorf(f"unexpected {n}")
            self.root.nodes.append(n)

    def parse_definition(self) -> None:
        context = "define clause"
        token = self.next_non_space()
        if token.typ not in (_STRING, _RAW_STRING):
            raise self.unexpected(token, context)
        try:
            self.name = _unquote(token.val)
        except _GoError as e:
            raise self.errorf(str(e)) from None
        self.expect(_RIGHT_DELIM, context)
        self.root, end = self.item_list()
        if not isinstance(end, _EndNode):
            raise self.errorf(f"unexpected {end} in {context}")
        self.add()

    def item_list(self) -> tuple[_ListNode, _Node]:
        lst = _ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != _EOF:
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                return lst, n
            lst.nodes.append(n)
        raise self.errorf("unexpected EOF")

    def text_or_action(self) -> _Node:
        token = self.next_non_space()
        if token.typ == _TEXT:
            return _TextNode(token.pos, token.val)
        if token.typ == _LEFT_DELIM:
            self.action_line = token.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        if token.typ == _COMMENT:
            return _CommentNode(token.pos, token.val)
        raise self.unexpected(token, "input")

    def action(self) -> _Node:
        token = self.next_non_space()
        typ = token.typ
        if typ == _BLOCK:
            return self.block_control()
        if typ in (_BREAK, _CONTINUE):
            word = "break" if typ == _BREAK else "continue"
            nxt = self.next_non_space()
            if nxt.typ != _RIGHT_DELIM:
                raise self.unexpected(nxt, "{{" + word + "}}")
            if self.range_depth == 0:
                raise self.errorf("{{" + word + "}} outside {{range}}")
            cls = _BreakNode if typ == _BREAK else _ContinueNode
            return cls(token.pos, token.line)
        if typ == _ELSE:
            return self.else_control()
        if typ == _END:
            return _EndNode(self.expect(_RIGHT_DELIM, "end").pos)
        if typ in (_IF, _RANGE, _WITH):
            return self.branch_control({_IF: "if", _RANGE: "range", _WITH: "with"}[typ])
        if typ == _TEMPLATE:
            return self.template_control()
        self.backup()
        token = self.peek()
        return _ActionNode(token.pos, token.line, self.pipeline("command", _RIGHT_DELIM))

    def pipeline(self, context: str, end: int) -> _PipeNode:
        token = self.peek_non_space()
        pipe = _PipeNode(token.pos, token.line)
        while True:
            v = self.peek_non_space()
            if v.typ != _VARIABLE:
                break
            self.next()
            after = self.peek()
            nxt = self.peek_non_space()
            if nxt.typ in (_ASSIGN, _DECLARE):
                pipe.is_assign = nxt.typ == _ASSIGN
                self.next_non_space()
                pipe.decl.append(_VariableNode(v.pos, v.val.split(".")))
                self.vars.append(v.val)
            elif nxt.typ == _CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(_VariableNode(v.pos, v.val.split(".")))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (_VARIABLE, _RIGHT_DELIM, _RIGHT_PAREN):
                        continue
                    raise self.errorf("range can only initialize variables")
                raise self.errorf(f"too many declarations in {context}")
            elif after.typ == _SPACE:
                self.backup3(v, after)
            else:
                self.backup2(v)
            break
        while True:
            token = self.next_non_space()
            if token.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if token.typ in (
                _BOOL,
                _CHAR_CONSTANT,
                _COMPLEX,
                _DOT,
                _FIELD,
                _IDENTIFIER,
                _NUMBER,
                _NIL,
                _RAW_STRING,
                _STRING,
                _VARIABLE,
                _LEFT_PAREN,
            ):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                raise self.unexpected(token, context)

    def check_pipeline(self, pipe: _PipeNode, context: str) -> None:
        if not pipe.cmds:
            raise self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (_BoolNode, _DotNode, _NilNode, _NumberNode, _StringNode)):
                raise self.errorf(f"non executable command in pipeline stage {i + 2}")

    def branch_control(self, context: str) -> _BranchNode:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, _RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, _ElseNode):
                if context == "if" and self.peek().typ == _IF:
                    self.next()
                    else_list = _ListNode(nxt.pos, [self.branch_control("if")])
                elif context == "with" and self.peek().typ == _WITH:
                    self.next()
                    else_list = _ListNode(nxt.pos, [self.branch_control("with")])
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, _EndNode):
                        raise self.errorf(f"expected end; found {nxt}")
        finally:
            del self.vars[mark:]
        return _BranchNode(pipe.pos, pipe.line, pipe, lst, else_list, context)

    def else_control(self) -> _ElseNode:
        peek = self.peek_non_space()
        if peek.typ in (_IF, _WITH):
            return _ElseNode(peek.pos, peek.line)
        token = self.expect(_RIGHT_DELIM, "else")
        return _ElseNode(token.pos, token.line)

    def template_name(self, token: _Item, context: str) -> str:
        if token.typ not in (_STRING, _RAW_STRING):
            raise self.unexpected(token, context)
        try:
            return _unquote(token.val)
        except _GoError as e:
            raise self.errorf(str(e)) from None

    def block_control(self) -> _TemplateNode:
        context = "block clause"
        token = self.next_non_space()
        name = self.template_name(token, context)
        pipe = self.pipeline(context, _RIGHT_DELIM)
        block = _Tree(name, self.text, self.trees)
        block.start(self.lex)  # type: ignore[arg-type]
        block.root, end = block.item_list()
        if not isinstance(end, _EndNode):
            raise self.errorf(f"unexpected {end} in {context}")
        block.add()
        return _TemplateNode(token.pos, token.line, name, pipe)

    def template_control(self) -> _TemplateNode:
        context = "template clause"
        token = self.next_non_space()
        name = self.template_name(token, context)
        pipe = None
        if self.next_non_space().typ != _RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, _RIGHT_DELIM)
        return _TemplateNode(token.pos, token.line, name, pipe)

    def command(self) -> _CommandNode:
        cmd = _CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.typ == _SPACE:
                continue
            if token.typ in (_RIGHT_DELIM, _RIGHT_PAREN):
                self.backup()
            elif token.typ != _PIPE:
                raise self.unexpected(token, "operand")
            break
        if not cmd.args:
            raise self.errorf("empty command")
        return cmd

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == _FIELD:
            chain = _ChainNode(self.peek().pos, node)
            while self.peek().typ == _FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, _FieldNode):
                return _FieldNode(chain.pos, [*node.ident, *chain.fields])
            if isinstance(node, _VariableNode):
                return _VariableNode(chain.pos, [*node.ident, *chain.fields])
            if isinstance(node, (_BoolNode, _StringNode, _NumberNode, _NilNode, _DotNode)):
                raise self.errorf(f"unexpected . after term {go_quote(str(node))}")
            return chain
        return node

    def term(self) -> _Node | None:
        token = self.next_non_space()
        typ = token.typ
        if typ == _IDENTIFIER:
            if token.val not in _FUNCTIONS:
                raise self.errorf(f"function {go_quote(token.val)} not defined")
            return _IdentifierNode(token.pos, token.val)
        if typ == _DOT:
            return _DotNode(token.pos)
        if typ == _NIL:
            return _NilNode(token.pos)
        if typ == _VARIABLE:
            v = _VariableNode(token.pos, token.val.split("."))
            if v.ident[0] not in self.vars:
                raise self.errorf(f"undefined variable {go_quote(v.ident[0])}")
            return v
        if typ == _FIELD:
            return _FieldNode(token.pos, token.val[1:].split("."))
        if typ == _BOOL:
            return _BoolNode(token.pos, token.val == "true")
        if typ in (_CHAR_CONSTANT, _COMPLEX, _NUMBER):
            try:
                return _new_number(token.pos, token.val, typ)
            except _GoError as e:
                raise self.errorf(str(e)) from None
        if typ == _LEFT_PAREN:
            if self.stack_depth >= _SAFE_PAREN_DEPTH:
                raise self.errorf("max expression depth exceeded")
            self.stack_depth += 1
            try:
                return self.pipeline("parenthesized pipeline", _RIGHT_PAREN)
            finally:
                self.stack_depth -= 1
        if typ in (_STRING, _RAW_STRING):
            try:
                text = _unquote(token.val)
            except _GoError as e:
                raise self.errorf(str(e)) from None
            return _StringNode(token.pos, token.val, text)
        self.backup()
        return None


def _is_empty_tree(n: _Node | None) -> bool:
    if n is None or isinstance(n, _CommentNode):
        return True
    if isinstance(n, _ListNode):
        return all(_is_empty_tree(x) for x in n.nodes)
    if isinstance(n, _TextNode):
        return n.text.strip() == ""
    return False


_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _new_number(pos: int, text: str, typ: int) -> _NumberNode:
    n = _NumberNode(pos, text)
    if typ == _CHAR_CONSTANT:
        v, _, i = _unquote_char(text, 1, "'")
        if text[i:] != "'":
            raise _GoError(f"malformed character constant: {text}")
        n.is_int = n.is_uint = n.is_float = True
        n.int64, n.float64 = v, float(v)
        return n
    if typ == _COMPLEX:
        try:
            n.complex128 = complex(text.replace("_", "")[:-1] + "j")
        except ValueError:
            raise _GoError(f"illegal number syntax: {go_quote(text)}") from None
        n.is_complex = True
        _simplify_complex(n)
        return n
    if text.endswith("i"):
        f = _parse_go_float(text[:-1])
        if f is not None:
            n.is_complex = True
            n.complex128 = complex(0, f)
            _simplify_complex(n)
            return n
    i = _parse_go_int(text)
    if i is not None and text[:1] not in ("+", "-") and 0 <= i < 1 << 64:
        n.is_uint = True
    if i is not None and _INT64_MIN <= i <= _INT64_MAX:
        n.is_int = True
        n.int64 = i
        if i == 0:
            n.is_uint = True
    if n.is_int:
        n.is_float = True
        n.float64 = float(n.int64)
    elif n.is_uint:
        n.is_float = True
        n.float64 = float(i)  # type: ignore[arg-type]
    else:
        f = _parse_go_float(text)
        if f is not None:
            if not any(c in text for c in ".eEpP"):
                raise _GoError(f"integer overflow: {go_quote(text)}")
            n.is_float = True
            n.float64 = f
            if f.is_integer() and _INT64_MIN <= f < 2**63:
                n.is_int = True
                n.int64 = int(f)
            if f.is_integer() and 0 <= f < 2**64:
                n.is_uint = True
    if not (n.is_int or n.is_uint or n.is_float):
        raise _GoError(f"illegal number syntax: {go_quote(text)}")
    return n


def _simplify_complex(n: _NumberNode) -> None:
    n.is_float = n.complex128.imag == 0
    if n.is_float:
        n.float64 = n.complex128.real
        n.is_int = n.float64.is_integer() and _INT64_MIN <= n.float64 < 2**63
        if n.is_int:
            n.int64 = int(n.float64)
        n.is_uint = n.float64.is_integer() and 0 <= n.float64 < 2**64


def _parse(text: str) -> dict[str, _Tree]:
    trees: dict[str, _Tree] = {}
    main = _Tree(_NAME, text, trees)
    main.start(_Lexer(text))
    main.parse()
    main.add()
    return trees


# --- execution -------------------------------------------------------------------------


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# Parameter kinds of the builtin functions: "value" (reflect.Value), "any", "string".
@dataclass(frozen=True)
class _Signature:
    fixed: tuple[str, ...]
    variadic: str | None = None


_SIGNATURES = {
    "and": _Signature(("value",), "value"),
    "or": _Signature(("value",), "value"),
    "call": _Signature(("value",), "value"),
    "index": _Signature(("value",), "value"),
    "slice": _Signature(("value",), "value"),
    "len": _Signature(("value",)),
    "not": _Signature(("value",)),
    "eq": _Signature(("value",), "value"),
    "ne": _Signature(("value", "value")),
    "lt": _Signature(("value", "value")),
    "le": _Signature(("value", "value")),
    "gt": _Signature(("value", "value")),
    "ge": _Signature(("value", "value")),
    "print": _Signature((), "any"),
    "println": _Signature((), "any"),
    "printf": _Signature(("string",), "any"),
    "html": _Signature((), "any"),
    "js": _Signature((), "any"),
    "urlquery": _Signature((), "any"),
}

_GO_PARAM_TYPE = {"value": "reflect.Value", "any": "interface {}", "string": "string"}


class _State:
    def __init__(self, tree: _Tree, trees: dict[str, _Tree], out: list[str], depth: int) -> None:
        self.tree = tree
        self.trees = trees
        self.out = out
        self.node: _Node | None = None
        self.vars: list[list[Any]] = []
        self.depth = depth

    # -- errors and variables --

    def errorf(self, message: str) -> TemplateError:
        name = self.tree.name
        if self.node is None:
            return TemplateError(f"template: {name}: {message}")
        text = self.tree.text
        pos = self.node.pos
        line_start = text.rfind("\n", 0, pos) + 1
        line = 1 + text.count("\n", 0, pos)
        col = len(text[line_start:pos].encode("utf-8", "surrogatepass"))
        return TemplateError(
            f"template: {_NAME}:{line}:{col}: executing {go_quote(name)} at <{self.node}>: "
            f"{message}"
        )

    def at(self, node: _Node) -> None:
        self.node = node

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def push(self, name: str, value: Any) -> None:
        self.vars.append([name, value])

    def set_var(self, name: str, value: Any) -> None:
        for var in reversed(self.vars):
            if var[0] == name:
                var[1] = value
                return
        raise self.errorf(f"undefined variable: {name}")

    def set_top_var(self, n: int, value: Any) -> None:
        self.vars[len(self.vars) - n][1] = value

    def var_value(self, name: str) -> Any:
        for var in reversed(self.vars):
            if var[0] == name:
                return var[1]
        raise self.errorf(f"undefined variable: {name}")

    # -- walking --

    def walk(self, dot: Any, node: _Node) -> None:
        self.at(node)
        if isinstance(node, _ActionNode):
            assert node.pipe is not None
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.at(node)
                self.out.append(sprint([_printable(val)]))
        elif isinstance(node, _BreakNode):
            raise _Break
        elif isinstance(node, _ContinueNode):
            raise _Continue
        elif isinstance(node, _ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, _BranchNode):
            if node.keyword == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(node, dot)
        elif isinstance(node, _TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, _TextNode):
            self.out.append(node.text)

    def walk_if_or_with(self, node: _BranchNode, dot: Any) -> None:
        mark = self.mark()
        try:
            assert node.pipe is not None and node.list is not None
            val = self.eval_pipeline(dot, node.pipe)
            truth = _is_true(_indirect_interface(val))
            if truth:
                self.walk(val if node.keyword == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def walk_range(self, dot: Any, r: _BranchNode) -> None:
        self.at(r)
        outer = self.mark()
        assert r.pipe is not None and r.list is not None
        pipe = r.pipe
        try:
            val = self.eval_pipeline(dot, pipe)
            mark = self.mark()

            def one(index: Any, elem: Any) -> None:
                if pipe.decl:
                    if pipe.is_assign:
                        target = elem if len(pipe.decl) == 1 else index
                        self.set_var(pipe.decl[0].ident[0], target)
                    else:
                        self.set_top_var(1, elem)
                if len(pipe.decl) > 1:
                    if pipe.is_assign:
                        self.set_var(pipe.decl[1].ident[0], elem)
                    else:
                        self.set_top_var(2, index)
                try:
                    self.walk(elem, r.list)  # type: ignore[arg-type]
                except _Continue:
                    pass
                finally:
                    self.pop(mark)

            kind = _kind(val)
            ran = False
            if kind in ("int", "uint"):
                if len(pipe.decl) > 1:
                    raise self.errorf(
                        f"can't use {_fmt_value(val)} to iterate over more than one variable"
                    )
                cls = type(val)
                for i in range(int(val)):
                    ran = True
                    one(_INVALID, cls(i))
            elif kind == "slice":
                for i, item in enumerate(val):
                    ran = True
                    one(GoInt(i), _Iface(item))
            elif kind == "map":
                for k in sorted(val):
                    ran = True
                    one(k, _Iface(val[k]))
            elif val is not _INVALID:
                raise self.errorf(f"range can't iterate over {_fmt_value(val)}")
            if not ran and r.else_list is not None:
                self.walk(dot, r.else_list)
        except _Break:
            pass
        finally:
            self.pop(outer)

    def walk_template(self, dot: Any, t: _TemplateNode) -> None:
        self.at(t)
        tree = self.trees.get(t.name)
        if tree is None:
            raise self.errorf(f"template {go_quote(t.name)} not defined")
        if self.depth >= _SAFE_EXEC_DEPTH:
            raise self.errorf(f"exceeded maximum template depth ({_MAX_EXEC_DEPTH})")
        dot = self.eval_pipeline(dot, t.pipe)
        sub = _State(tree, self.trees, self.out, self.depth + 1)
        sub.vars = [["$", dot]]
        assert tree.root is not None
        sub.walk(dot, tree.root)

    # -- evaluation --

    def eval_pipeline(self, dot: Any, pipe: _PipeNode | None) -> Any:
        if pipe is None:
            return _INVALID
        self.at(pipe)
        value = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if type(value) is _Iface:
                value = _INVALID if value.value is None else value.value
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.push(var.ident[0], value)
        return value

    def not_a_function(self, args: Sequence[_Node], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            raise self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: _CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, _FieldNode):
            self.at(first)
            return self.eval_field_chain(dot, first.ident, cmd.args, final)
        if isinstance(first, _ChainNode):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, _IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, _PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, _VariableNode):
            return self.eval_variable(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, _BoolNode):
            return first.value
        if isinstance(first, _DotNode):
            return dot
        if isinstance(first, _NilNode):
            raise self.errorf("nil is not a command")
        if isinstance(first, _NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, _StringNode):
            return first.text
        raise self.errorf(f"can't evaluate command {go_quote(str(first))}")

    def ideal_constant(self, c: _NumberNode) -> Any:
        self.at(c)
        text = c.text
        is_hex_int = len(text) > 2 and text[:2] in ("0x", "0X") and not any(x in text for x in "pP")
        if c.is_complex:
            return c.complex128
        if (
            c.is_float
            and not is_hex_int
            and not text.startswith("'")
            and any(x in text for x in ".eEpP")
        ):
            return c.float64
        if c.is_int:
            return GoInt(c.int64)
        if c.is_uint:
            raise self.errorf(f"{text} overflows int")
        return _INVALID

    def eval_chain(self, dot: Any, chain: _ChainNode, args: Sequence[_Node], final: Any) -> Any:
        self.at(chain)
        if isinstance(chain.node, _NilNode):
            raise self.errorf(f"indirection through explicit nil in {chain}")
        assert chain.node is not None
        pipe = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(pipe, chain.fields, args, final)

    def eval_variable(
        self, dot: Any, variable: _VariableNode, args: Sequence[_Node], final: Any
    ) -> Any:
        self.at(variable)
        value = self.var_value(variable.ident[0])
        if len(variable.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(value, variable.ident[1:], args, final)

    def eval_field_chain(
        self, receiver: Any, ident: Sequence[str], args: Sequence[_Node], final: Any
    ) -> Any:
        for name in ident[:-1]:
            receiver = self.eval_field(name, (), _MISSING, receiver)
        return self.eval_field(ident[-1], args, final, receiver)

    def eval_field(self, name: str, args: Sequence[_Node], final: Any, receiver: Any) -> Any:
        if receiver is _INVALID:
            return _INVALID
        typ = _type_str(receiver)
        if type(receiver) is _Iface:
            if receiver.value is None:
                raise self.errorf(f"nil pointer evaluating {typ}.{name}")
            receiver = receiver.value
        if type(receiver) is dict:
            if len(args) > 1 or final is not _MISSING:
                raise self.errorf(f"{name} is not a method but has arguments")
            if name in receiver:
                return _Iface(receiver[name])
            return _INVALID
        raise self.errorf(f"can't evaluate field {name} in type {typ}")

    def eval_function(
        self,
        dot: Any,
        node: _IdentifierNode,
        cmd: _Node,
        args: Sequence[_Node],
        final: Any,
    ) -> Any:
        self.at(node)
        return self.eval_call(dot, node.ident, cmd, args, final)

    def eval_call(self, dot: Any, name: str, node: _Node, args: Sequence[_Node], final: Any) -> Any:
        sig = _SIGNATURES[name]
        args = args[1:] if args else ()
        num_in = len(args) + (final is not _MISSING)
        num_fixed = len(sig.fixed)
        if sig.variadic is not None:
            if num_in < num_fixed:
                raise self.errorf(
                    f"wrong number of args for {name}: want at least {num_fixed} got {len(args)}"
                )
        elif num_in != num_fixed:
            raise self.errorf(f"wrong number of args for {name}: want {num_fixed} got {num_in}")

        if name in ("and", "or"):
            v: Any = _INVALID
            for arg in args:
                v = self.eval_arg(dot, "value", arg)
                if _truth(v) == (name == "or"):
                    return v
            if final is not _MISSING:
                v = self.validate_type(final, "value")
            return v

        argv: list[Any] = []
        for i, arg in enumerate(args):
            param = sig.fixed[i] if i < num_fixed else sig.variadic
            argv.append(self.eval_arg(dot, param, arg))
        if final is not _MISSING:
            param = sig.fixed[-1] if sig.variadic is None else sig.variadic
            if sig.variadic is not None and num_in - 1 < num_fixed:
                param = sig.fixed[num_in - 1]
            argv.append(self.validate_type(final, param))
        try:
            if name == "call":
                callee = str(args[0]) if args else _fmt_value(final)
                return _call(callee, argv)
            return _BUILTINS[name](argv)
        except _GoError as e:
            self.at(node)
            raise self.errorf(f"error calling {name}: {e}") from None

    def validate_type(self, value: Any, param: str | None) -> Any:
        if value is _INVALID:
            if param is None or param == "value":
                return _INVALID
            if param == "any":
                return None
            raise self.errorf(f"invalid value; expected {_GO_PARAM_TYPE[param]}")
        if param == "string":
            inner = value
            if type(inner) is _Iface and inner.value is not None:
                inner = inner.value
            if type(inner) is str:
                return inner
            raise self.errorf(f"wrong type for value; expected string; got {_type_str(inner)}")
        if param == "any":
            return _to_interface(value)
        return value

    def eval_arg(self, dot: Any, param: str | None, n: _Node) -> Any:
        self.at(n)
        if isinstance(n, _DotNode):
            return self.validate_type(dot, param)
        if isinstance(n, _NilNode):
            if param in ("value", "any"):
                return _INVALID if param == "value" else None
            raise self.errorf(f"cannot assign nil to {_GO_PARAM_TYPE.get(param or '', '')}")
        if isinstance(n, _FieldNode):
            self.at(n)
            value = self.eval_field_chain(dot, n.ident, [n], _MISSING)
            return self.validate_type(value, param)
        if isinstance(n, _VariableNode):
            return self.validate_type(self.eval_variable(dot, n, (), _MISSING), param)
        if isinstance(n, _PipeNode):
            return self.validate_type(self.eval_pipeline(dot, n), param)
        if isinstance(n, _IdentifierNode):
            value = self.eval_function(dot, n, n, (), _MISSING)
            return self.validate_type(value, param)
        if isinstance(n, _ChainNode):
            return self.validate_type(self.eval_chain(dot, n, (), _MISSING), param)
        if param == "string":
            if isinstance(n, _StringNode):
                return n.text
            raise self.errorf(f"expected string; found {n}")
        value = self.eval_empty_interface(n)
        return value

    def eval_empty_interface(self, n: _Node) -> Any:
        self.at(n)
        if isinstance(n, _BoolNode):
            return n.value
        if isinstance(n, _NumberNode):
            return self.ideal_constant(n)
        if isinstance(n, _StringNode):
            return n.text
        raise self.errorf(f"can't handle assignment of {n} to empty interface argument")


# --- builtin functions -----------------------------------------------------------------


def _indirect(v: Any) -> tuple[Any, bool]:
    if type(v) is _Iface:
        if v.value is None:
            return v, True
        return v.value, False
    return v, False


def _index_arg(index: Any, cap: int) -> int:
    k = _kind(index)
    if k in ("int", "uint"):
        x = int(index)
    elif index is _INVALID:
        raise _GoError("cannot index slice/array with nil")
    else:
        raise _GoError(f"cannot index slice/array with type {_type_str(index)}")
    if x < 0 or x > cap:
        raise _GoError(f"index out of range: {x}")
    return x


def _go_cap(items: list[Any]) -> int:
    # JSON decoding appends one element at a time, so a slice's capacity is the size
    # Go's append growth reaches, which `slice` may legally reach into.
    n = len(items)
    if n == 0:
        return 0
    cap = 1
    while cap < n and cap < 256:
        cap *= 2
    return max(cap, n)


def _fn_index(argv: list[Any]) -> Any:
    item = _indirect_interface(argv[0])
    if item is _INVALID:
        raise _GoError("index of untyped nil")
    for raw_index in argv[1:]:
        index = _indirect_interface(raw_index)
        item, is_nil = _indirect(item)
        if is_nil:
            raise _GoError("index of nil pointer")
        k = _kind(item)
        if k == "string":
            data = str(item).encode("utf-8", "surrogatepass")
            x = _index_arg(index, len(data))
            if x == len(data):
                raise _GoError("reflect: string index out of range")
            item = GoUint8(data[x])
        elif k == "slice":
            x = _index_arg(index, len(item))
            if x == len(item):
                raise _GoError("reflect: slice index out of range")
            item = _Iface(item[x])
        elif k == "map":
            if index is _INVALID:
                raise _GoError("value is nil; should be of type string")
            if type(index) is not str:
                raise _GoError(f"value has type {_type_str(index)}; should be string")
            item = _Iface(item.get(index))
        else:
            raise _GoError(f"can't index item of type {_type_str(item)}")
    return item


def _fn_slice(argv: list[Any]) -> Any:
    item = _indirect_interface(argv[0])
    indexes = argv[1:]
    if item is _INVALID:
        raise _GoError("slice of untyped nil")
    if len(indexes) > 3:
        raise _GoError(f"too many slice indexes: {len(indexes)}")
    k = _kind(item)
    if k == "string":
        if len(indexes) == 3:
            raise _GoError("cannot 3-index slice a string")
        data = str(item).encode("utf-8", "surrogatepass")
        length = cap = len(data)
    elif k == "slice":
        length, cap = len(item), _go_cap(item)
    else:
        raise _GoError(f"can't slice item of type {_type_str(item)}")
    idx = [0, length, 0]
    for i, index in enumerate(indexes):
        idx[i] = _index_arg(index, cap)
    if idx[0] > idx[1]:
        raise _GoError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise _GoError(f"invalid slice index: {idx[1]} > {idx[2]}")
    if k == "string":
        result = data[idx[0] : idx[1]].decode("utf-8", "replace")
        return JSONNumber(result) if type(item) is JSONNumber else result
    padded = list(item) + [None] * (cap - length)
    return padded[idx[0] : idx[1]]


def _fn_len(argv: list[Any]) -> Any:
    item, is_nil = _indirect(argv[0])
    if is_nil:
        raise _GoError("len of nil pointer")
    if item is _INVALID:
        raise _GoError("reflect: call of reflect.Value.Type on zero Value")
    k = _kind(item)
    if k == "string":
        return GoInt(len(str(item).encode("utf-8", "surrogatepass")))
    if k in ("slice", "map"):
        return GoInt(len(item))
    raise _GoError(f"len of type {_type_str(item)}")


def _call(name: str, argv: list[Any]) -> Any:
    fn = _indirect_interface(argv[0])
    if fn is _INVALID:
        raise _GoError("call of nil")
    raise _GoError(f"non-function {name} of type {_type_str(fn)}")


_BOOL_K, _COMPLEX_K, _INT_K, _FLOAT_K, _STRING_K, _UINT_K, _INVALID_K = range(1, 8)


def _basic_kind(v: Any) -> int:
    return {
        "bool": _BOOL_K,
        "int": _INT_K,
        "uint": _UINT_K,
        "float": _FLOAT_K,
        "complex": _COMPLEX_K,
        "string": _STRING_K,
    }.get(_kind(v), _INVALID_K)


def _basic_value(v: Any) -> Any:
    return str(v) if type(v) is JSONNumber else v


def _is_nil(v: Any) -> bool:
    return v is _INVALID or (type(v) is _Iface and v.value is None)


def _fn_eq(argv: list[Any]) -> Any:
    arg1 = _indirect_interface(argv[0])
    if len(argv) == 1:
        raise _GoError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for raw_arg in argv[1:]:
        arg = _indirect_interface(raw_arg)
        k2 = _basic_kind(arg)
        truth = False
        if k1 != k2:
            if {k1, k2} == {_INT_K, _UINT_K}:
                truth = int(arg1) == int(arg)
            elif arg1 is not _INVALID and arg is not _INVALID:
                raise _GoError(
                    f"incompatible types for comparison: {_type_str(arg1)} and {_type_str(arg)}"
                )
        elif k1 != _INVALID_K:
            truth = _basic_value(arg1) == _basic_value(arg)
        elif arg1 is not _INVALID and arg is not _INVALID and _kind(arg1) != _kind(arg):
            raise _GoError(
                f"non-comparable types {_fmt_value(arg1, 's')}: {_type_str(arg1)}, "
                f"{_type_str(arg)}: {_fmt_value(arg)}"
            )
        elif _is_nil(arg1) or _is_nil(arg):
            truth = _is_nil(arg) == _is_nil(arg1)
        else:
            raise _GoError(f"non-comparable type {_fmt_value(arg, 's')}: {_type_str(arg)}")
        if truth:
            return True
    return False


def _fn_lt(argv: list[Any]) -> Any:
    arg1 = _indirect_interface(argv[0])
    k1 = _basic_kind(arg1)
    if k1 == _INVALID_K:
        raise _GoError("invalid type for comparison")
    arg2 = _indirect_interface(argv[1])
    k2 = _basic_kind(arg2)
    if k2 == _INVALID_K:
        raise _GoError("invalid type for comparison")
    if k1 != k2:
        if {k1, k2} == {_INT_K, _UINT_K}:
            return int(arg1) < int(arg2)
        raise _GoError(
            f"incompatible types for comparison: {_type_str(arg1)} and {_type_str(arg2)}"
        )
    if k1 in (_BOOL_K, _COMPLEX_K):
        raise _GoError("invalid type for comparison")
    if k1 == _STRING_K:
        a = str(arg1).encode("utf-8", "surrogatepass")
        b = str(arg2).encode("utf-8", "surrogatepass")
        return a < b
    return arg1 < arg2


def _fn_le(argv: list[Any]) -> Any:
    return _fn_lt(argv) or _fn_eq(argv)


def _html_escape(s: str) -> str:
    out = []
    for c in s:
        out.append(_HTML.get(c, c))
    return "".join(out)


_HTML = {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
_JS = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "<": "\\u003C",
    ">": "\\u003E",
    "&": "\\u0026",
    "=": "\\u003D",
}


def _js_escape(s: str) -> str:
    out = []
    for c in s:
        r = ord(c)
        if c in _JS:
            out.append(_JS[c])
        elif r < 0x20:
            out.append(f"\\u00{r:02X}")
        elif r < 0x80 or c.isprintable():
            out.append(c)
        else:
            out.append(f"\\u{r:04X}")
    return "".join(out)


def _eval_args(argv: list[Any]) -> str:
    if len(argv) == 1 and type(argv[0]) is str:
        return argv[0]
    return sprint(["<no value>" if a is None else a for a in argv])


_BUILTINS: dict[str, Callable[[list[Any]], Any]] = {
    "index": _fn_index,
    "slice": _fn_slice,
    "len": _fn_len,
    "not": lambda argv: not _truth(argv[0]),
    "eq": _fn_eq,
    "ne": lambda argv: not _fn_eq(argv),
    "lt": _fn_lt,
    "le": _fn_le,
    "gt": lambda argv: not _fn_le(argv),
    "ge": lambda argv: not _fn_lt(argv),
    "print": sprint,
    "println": sprintln,
    "printf": lambda argv: sprintf(argv[0], argv[1:]),
    "html": lambda argv: _html_escape(_eval_args(argv)),
    "js": lambda argv: _js_escape(_eval_args(argv)),
    "urlquery": lambda argv: quote_plus(_eval_args(argv), safe=""),
}


def render(text: str, data: dict[str, Any]) -> str:
    """Parse ``text`` and execute it over ``data`` as OPA does; raise :class:`TemplateError`.

    ``data`` holds Go values as decoded from JSON (see :mod:`pdp.builtins.gofmt`). Like
    Go, the output of a failed execution is discarded.
    """
    try:
        trees = _parse(text)
    except RecursionError:
        raise TemplateError(f"template: {_NAME}:1: max expression depth exceeded") from None
    tree = trees[_NAME]
    out: list[str] = []
    state = _State(tree, trees, out, 0)
    state.vars = [["$", data]]
    assert tree.root is not None
    try:
        state.walk(data, tree.root)
    except RecursionError:
        raise TemplateError(
            f"template: {_NAME}: exceeded maximum template depth ({_MAX_EXEC_DEPTH})"
        ) from None
    return "".join(out)
