"""Tokeniser for Rego source, reproducing the scanner OPA v1.22.3 parses modules with.

It works on the UTF-8 bytes of the source, as OPA does: token offsets and the text spans
built from them are byte offsets, columns count runes. A few of OPA's scanner quirks are
kept on purpose because they show in parse results and error messages (for example, a
literal's end is taken one byte before the scanner's position, whatever the width of the
character that follows it).
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

__all__ = [
    "KEYWORD_TOKENS",
    "TOKEN_NAMES",
    "Position",
    "Scanner",
    "is_letter",
]

# Token kinds, in OPA's order.
(
    ILLEGAL,
    EOF,
    WHITESPACE,
    IDENT,
    COMMENT,
    PACKAGE,
    IMPORT,
    AS,
    DEFAULT,
    ELSE,
    NOT,
    SOME,
    WITH,
    NULL,
    TRUE,
    FALSE,
    NUMBER,
    STRING,
    TEMPLATE_PART,
    TEMPLATE_END,
    RAW_TEMPLATE_PART,
    RAW_TEMPLATE_END,
    LBRACK,
    RBRACK,
    LBRACE,
    RBRACE,
    LPAREN,
    RPAREN,
    COMMA,
    COLON,
    ADD,
    SUB,
    MUL,
    QUO,
    REM,
    AND,
    OR,
    UNIFY,
    EQUAL,
    ASSIGN,
    IN,
    NEQ,
    GT,
    LT,
    GTE,
    LTE,
    DOT,
    SEMICOLON,
    DOLLAR,
    EVERY,
    CONTAINS,
    IF,
    LOGICAL_AND,
    LOGICAL_OR,
) = range(54)

TOKEN_NAMES: tuple[str, ...] = (
    "illegal",
    "eof",
    "whitespace",
    "identifier",
    "comment",
    "package",
    "import",
    "as",
    "default",
    "else",
    "not",
    "some",
    "with",
    "null",
    "true",
    "false",
    "number",
    "string",
    "template-string-part",
    "template-string-end",
    "raw-template-string-part",
    "raw-template-string-end",
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    ",",
    ":",
    "plus",
    "minus",
    "mul",
    "div",
    "rem",
    "and",
    "or",
    "eq",
    "equal",
    "assign",
    "in",
    "neq",
    "gt",
    "lt",
    "gte",
    "lte",
    ".",
    ";",
    "dollar",
    "every",
    "contains",
    "if",
    "and",
    "or",
)

KEYWORD_TOKENS: dict[str, int] = {
    "package": PACKAGE,
    "import": IMPORT,
    "as": AS,
    "default": DEFAULT,
    "else": ELSE,
    "not": NOT,
    "some": SOME,
    "with": WITH,
    "null": NULL,
    "true": TRUE,
    "false": FALSE,
}
"""The scanner's base keywords; future keywords are added per module."""

_BOM = 0xFEFF
_NBSP = 0xA0
_RUNE_ERROR = 0xFFFD

_SINGLE: dict[int, int] = {
    ord("["): LBRACK,
    ord("]"): RBRACK,
    ord("{"): LBRACE,
    ord("}"): RBRACE,
    ord("("): LPAREN,
    ord(")"): RPAREN,
    ord(","): COMMA,
    ord("+"): ADD,
    ord("-"): SUB,
    ord("*"): MUL,
    ord("/"): QUO,
    ord("%"): REM,
    ord("&"): AND,
    ord("|"): OR,
    ord(";"): SEMICOLON,
    ord("."): DOT,
}

# A two-character operator: first char -> (token alone, token when followed by '=').
_WITH_EQ: dict[int, tuple[int, int]] = {
    ord(":"): (COLON, ASSIGN),
    ord("="): (UNIFY, EQUAL),
    ord(">"): (GT, GTE),
    ord("<"): (LT, LTE),
}

_SIMPLE_ESCAPES = frozenset(b'\\"/bfnrt')
_WHITESPACE_RUN = re.compile(rb"[ \t\r\n]+")
# Runs of ASCII characters that a string, raw string or comment simply steps over.
_STRING_RUN = re.compile(rb'[^"\\\n\x00\x80-\xff]*')
_RAW_STRING_RUN = re.compile(rb"[^`\n\x00\x80-\xff]*")
_COMMENT_RUN = re.compile(rb"[^\n\x00\x80-\xff]*")
_IDENT_RUN = re.compile(rb"[A-Za-z0-9_]+")


def decode_rune(data: bytes, i: int) -> tuple[int, int]:
    """Go's ``utf8.DecodeRune`` at ``data[i]``: (rune, width), (U+FFFD, 1) when invalid."""
    b = data[i]
    if b < 0x80:
        return b, 1
    if 0xC2 <= b <= 0xDF:
        width = 2
    elif 0xE0 <= b <= 0xEF:
        width = 3
    elif 0xF0 <= b <= 0xF4:
        width = 4
    else:
        return _RUNE_ERROR, 1
    try:
        text = data[i : i + width].decode("utf-8")
    except UnicodeDecodeError:
        return _RUNE_ERROR, 1
    if len(text) != 1:
        return _RUNE_ERROR, 1
    return ord(text), width


def _lower(ch: int) -> int:
    return 0x20 | ch


def is_letter(ch: int) -> bool:
    """An ASCII letter or underscore, the characters that start identifiers."""
    return 0x61 <= _lower(ch) <= 0x7A or ch == 0x5F


def _is_decimal(ch: int) -> bool:
    return 0x30 <= ch <= 0x39


def _is_digit(ch: int) -> bool:
    if _is_decimal(ch):
        return True
    return ch >= 0x80 and unicodedata.category(chr(ch)) == "Nd"


class Position(NamedTuple):
    """Where a token starts (byte offset, row, rune column) and ends (byte offset)."""

    offset: int
    end: int
    row: int
    col: int


class Scanner:
    """Rego tokeniser over UTF-8 bytes.

    ``keywords`` maps keyword text to token kind; modules extend it with future keywords,
    and copies made by :meth:`copy` share it, as the parser's saved states do in OPA.
    """

    __slots__ = ("bs", "col", "curr", "errors", "keywords", "offset", "row", "width")

    def __init__(self, source: bytes) -> None:
        self.bs = source
        self.keywords: dict[str, int] = dict(KEYWORD_TOKENS)
        self.errors: list[str] = []
        self.offset = 0
        self.row = 1
        self.col = 0
        self.width = 0
        self.curr = -1
        self._next()
        if self.curr == _BOM:
            self._next()

    def copy(self) -> Scanner:
        """A copy at the same position sharing the keyword table."""
        cpy = Scanner.__new__(Scanner)
        cpy.bs = self.bs
        cpy.keywords = self.keywords
        cpy.errors = list(self.errors)
        cpy.offset = self.offset
        cpy.row = self.row
        cpy.col = self.col
        cpy.width = self.width
        cpy.curr = self.curr
        return cpy

    def with_keywords(self, extra: dict[str, int]) -> Scanner:
        """A copy whose keyword table is this one's plus ``extra``."""
        cpy = self.copy()
        cpy.keywords = {}
        for kw, tok in self.keywords.items():
            cpy.add_keyword(kw, tok)
        for kw, tok in extra.items():
            cpy.add_keyword(kw, tok)
        return cpy

    def without_keywords(self, drop: dict[str, int]) -> tuple[Scanner, dict[str, int]]:
        """A copy without the keywords in ``drop``, and this scanner's keyword table."""
        cpy = self.copy()
        cpy.keywords = {}
        for kw, tok in self.keywords.items():
            if kw not in drop:
                cpy.add_keyword(kw, tok)
        return cpy, self.keywords

    def add_keyword(self, kw: str, tok: int) -> None:
        """Make ``kw`` scan as ``tok``; ``every`` brings ``in`` along, as in OPA."""
        self.keywords[kw] = tok
        if tok == EVERY:
            self.keywords["in"] = IN

    def is_keyword(self, text: str) -> bool:
        """Whether ``text`` currently scans as a keyword."""
        return text in self.keywords

    def scan(
        self, template: bool = False, raw: bool = False
    ) -> tuple[int, Position, bytes, list[str]]:
        """Read the next token: (kind, position, literal bytes, scanner errors).

        ``template`` continues a template string after its ``}`` (``raw`` for the
        backquoted form).
        """
        start = self.offset - self.width
        row, col = self.row, self.col
        tok = ILLEGAL
        lit = b""
        curr = self.curr
        if template:
            lit, tok = self._scan_template(raw)
        elif curr in (0x20, 0x09, 0x0A, 0x0D):
            lit = bytes((curr,))
            self._next()
            tok = WHITESPACE
        elif is_letter(curr):
            lit = self._scan_identifier()
            tok = self.keywords.get(lit.decode("latin-1"), IDENT)
        elif _is_decimal(curr):
            lit = self._scan_number()
            tok = NUMBER
        else:
            ch = curr
            self._next()
            if ch == -1:
                tok = EOF
            elif ch in _SINGLE:
                tok = _SINGLE[ch]
            elif ch in _WITH_EQ:
                alone, with_eq = _WITH_EQ[ch]
                if self.curr == 0x3D:
                    self._next()
                    tok = with_eq
                else:
                    tok = alone
            elif ch == 0x23:
                lit = self._scan_comment()
                tok = COMMENT
            elif ch == 0x22:
                lit = self._scan_string()
                tok = STRING
            elif ch == 0x60:
                lit = self._scan_raw_string()
                tok = STRING
            elif ch == 0x21:
                if self.curr == 0x3D:
                    self._next()
                    tok = NEQ
                else:
                    self._error("illegal ! character")
            elif ch == _NBSP:
                self._error("illegal non-breaking space character, use a regular space instead")
            elif ch == 0x24:
                if self.curr == 0x60:
                    self._next()
                    lit, tok = self._scan_template(True)
                elif self.curr == 0x22:
                    self._next()
                    lit, tok = self._scan_template(False)
                else:
                    self._error("illegal $ character")
        end = self.offset - self.width
        errs = self.errors
        self.errors = []
        return tok, Position(start, end, row, col), lit, errs

    def skip_whitespace(self) -> bool:
        """Skip a run of whitespace at the current position; whether it held a newline.

        Equivalent to scanning the whitespace tokens one by one.
        """
        if self.curr not in (0x20, 0x09, 0x0A, 0x0D):
            return False
        start = self.offset - self.width
        end = _WHITESPACE_RUN.match(self.bs, start).end()
        newline = self.bs.rfind(b"\n", start, end)
        if newline == -1:
            self.col += end - 1 - start
        else:
            self.row += self.bs.count(b"\n", start + 1, end)
            self.col = end - 1 - newline
        self.offset = end
        self.width = 1
        self._next()
        return newline != -1

    def _advance(self, run: re.Pattern[bytes]) -> None:
        """Step over the run of plain ASCII characters starting at the current one.

        The run holds no newline, NUL or non-ASCII byte, so stepping over it is only
        column counting; the character after it becomes the current one.
        """
        start = self.offset - self.width
        end = run.match(self.bs, start).end()
        if end > start:
            self.col += end - 1 - start
            self.offset = end
            self.width = 1
            self._next()

    def _scan_identifier(self) -> bytes:
        start = self.offset - 1
        end = _IDENT_RUN.match(self.bs, start).end()
        if end - start > 1:
            self.col += end - 1 - start
            self.offset = end
            self.width = 1
            self._next()
        while is_letter(self.curr) or _is_digit(self.curr):
            self._next()
        return self.bs[start : self.offset - 1]

    def _scan_number(self) -> bytes:
        start = self.offset - 1
        if self.curr != 0x2E:
            while _is_decimal(self.curr):
                self._next()
        if self.curr == 0x2E:
            self._next()
            found = False
            while _is_decimal(self.curr):
                self._next()
                found = True
            if not found:
                self._error("expected fraction")
        if self.curr != -1 and _lower(self.curr) == 0x65:
            self._next()
            if self.curr in (0x2B, 0x2D):
                self._next()
            found = False
            while _is_decimal(self.curr):
                self._next()
                found = True
            if not found:
                self._error("expected exponent")
        if is_letter(self.curr):
            self._error("illegal number format")
            while is_letter(self.curr) or _is_digit(self.curr):
                self._next()
        return self.bs[start : self.offset - 1]

    def _scan_escape(self) -> None:
        if self.curr in _SIMPLE_ESCAPES:
            self._next()
        elif self.curr == 0x75:
            for _ in range(4):
                self._next()
        else:
            self._error("illegal escape sequence")

    def _scan_string(self) -> bytes:
        start = self._literal_start()
        while True:
            self._advance(_STRING_RUN)
            ch = self.curr
            if ch == 0x0A or ch < 0:
                self._error("non-terminated string")
                break
            self._next()
            if ch == 0x22:
                break
            if ch == 0x5C:
                self._scan_escape()
        return self.bs[start : self.offset - 1]

    def _scan_raw_string(self) -> bytes:
        start = self._literal_start()
        while True:
            self._advance(_RAW_STRING_RUN)
            ch = self.curr
            self._next()
            if ch == 0x60:
                break
            if ch < 0:
                self._error("non-terminated string")
                break
        return self.bs[start : self.offset - 1]

    def _scan_template(self, raw: bool) -> tuple[bytes, int]:
        tok = RAW_TEMPLATE_PART if raw else TEMPLATE_PART
        start = self._literal_start()
        escapes: list[int] = []
        while True:
            ch = self.curr
            if ch < 0 or (ch == 0x0A and not raw):
                self._error("non-terminated string")
                break
            self._next()
            if ch == (0x60 if raw else 0x22):
                tok = RAW_TEMPLATE_END if raw else TEMPLATE_END
                break
            if ch == 0x7B:
                break
            if ch == 0x5C:
                if self.curr == 0x7B:
                    escapes.append(self.offset - 1)
                    self._next()
                elif not raw:
                    self._scan_escape()
        end = self.offset - 1
        if not escapes:
            return self.bs[start:end], tok
        # Drop the backslash in front of each escaped '{'.
        out = bytearray()
        frm = start
        for esc in escapes:
            if esc > frm:
                out += self.bs[frm : esc - 1]
            frm = esc
        if frm < end:
            out += self.bs[frm:end]
        return bytes(out), tok

    def _scan_comment(self) -> bytes:
        start = self._literal_start()
        self._advance(_COMMENT_RUN)
        while self.curr not in (0x0A, -1):
            self._next()
        end = self.offset - 1
        if self.offset > 1 and self.bs[self.offset - 2] == 0x0D:
            end -= 1
        return self.bs[start:end]

    def _literal_start(self) -> int:
        return self.offset - (self.width + 1)

    def _next(self) -> None:
        bs = self.bs
        if self.offset >= len(bs):
            self.curr = -1
            self.offset = len(bs) + 1
            return
        b = bs[self.offset]
        self.curr = b
        self.width = 1
        if b == 0:
            self._error("illegal null character")
        elif b >= 0x80:
            self.curr, self.width = decode_rune(bs, self.offset)
            if self.curr == _RUNE_ERROR and self.width == 1:
                self._error("illegal utf-8 character")
            elif self.curr == _BOM and self.offset > 0:
                self._error("illegal byte-order mark")
        self.offset += self.width
        if self.curr == 0x0A:
            self.row += 1
            self.col = 0
        else:
            self.col += 1

    def _error(self, reason: str) -> None:
        self.errors.append(reason)
