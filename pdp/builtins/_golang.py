"""Go's string semantics, shared by the builtins that reproduce Go standard-library output.

Go strings are byte strings; OPA hands them to Rego through ``encoding/json``, where every
byte that is not part of valid UTF-8 becomes U+FFFD, and quotes them in error messages with
``strconv.Quote``. This module holds the one implementation of each of those conversions,
and :class:`GoError`, the error value the Go emulations raise.
"""

from __future__ import annotations

import codecs

__all__ = ["GoError", "go_bytes", "go_is_print", "go_quote", "go_quote_bytes", "go_string"]


class GoError(Exception):
    """An error value as a Go function would return it; ``str()`` is Go's ``Error()`` text."""


def go_bytes(s: str) -> bytes:
    """The UTF-8 bytes Go would hold for ``s``; lone surrogates become U+FFFD as in Go."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s).encode("utf-8")


def _replace_each_byte(err: UnicodeError) -> tuple[str, int]:
    # Python reports a maximal ill-formed run; Go rejects it one byte at a time, so resume
    # after its first byte (the next ones are continuation bytes and fail on their own).
    assert isinstance(err, UnicodeDecodeError)
    return "\ufffd", err.start + 1


codecs.register_error("council-go-utf8", _replace_each_byte)


def go_string(data: bytes) -> str:
    """A Go string of raw bytes as ``encoding/json`` writes it (bad UTF-8 bytes → U+FFFD)."""
    return data.decode("utf-8", "council-go-utf8")


def go_is_print(ch: str) -> bool:
    """Go's ``strconv.IsPrint``: letters, marks, numbers, punctuation, symbols, ASCII space."""
    # Python's printable set excludes exactly the Other and Separator categories but for the
    # ASCII space: the line Go draws (with Python's Unicode tables rather than Go's).
    return ch.isprintable()


_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote(text: str, quote: str = '"', *, ascii_only: bool = False) -> str:
    """``strconv.Quote`` of text (``QuoteToASCII`` with ``ascii_only``; ``QuoteRune`` with
    ``quote="'"``).

    A lone surrogate, which no Go string can hold, is written as the escape ``\\ufffd``.
    """
    return _quote(text, quote, ascii_only=ascii_only, raw_bytes=False)


def go_quote_bytes(data: bytes | str) -> str:
    """``strconv.Quote`` of a Go string given as its bytes (or as text, via :func:`go_bytes`).

    Bytes that are not valid UTF-8 are written as ``\\xNN``; a lone surrogate in text becomes
    a literal U+FFFD first, as it would in Go.
    """
    raw = go_bytes(data) if isinstance(data, str) else data
    # surrogateescape maps each invalid byte to U+DC80..U+DCFF, which _quote writes as \xNN.
    return _quote(raw.decode("utf-8", "surrogateescape"), '"', ascii_only=False, raw_bytes=True)


def _quote(text: str, quote: str, *, ascii_only: bool, raw_bytes: bool) -> str:
    out = [quote]
    for ch in text:
        if ch in (quote, "\\"):
            out.append("\\" + ch)
            continue
        r = ord(ch)
        if (r < 0x80 or not ascii_only) and ch.isprintable():
            out.append(ch)
            continue
        esc = _SIMPLE_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif r < 0x20 or r == 0x7F:
            out.append(f"\\x{r:02x}")
        elif 0xD800 <= r <= 0xDFFF:
            out.append(f"\\x{r - 0xDC00:02x}" if raw_bytes else "\\ufffd")
        elif r < 0x10000:
            out.append(f"\\u{r:04x}")
        else:
            out.append(f"\\U{r:08x}")
    out.append(quote)
    return "".join(out)
