"""Go's ``encoding/base64`` decoder and ``encoding/pem`` block scanner.

Both decide results and error texts OPA shows (``illegal base64 data at input byte N``,
which PEM candidates are skipped), so they are reproduced rather than delegated to
:mod:`base64`, which accepts and rejects different inputs.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

from pdp.builtins._golang import GoError, go_string

__all__ = [
    "STD_ALPHABET",
    "URL_ALPHABET",
    "CorruptInputError",
    "PemBlock",
    "go_base64_decode",
    "pem_decode",
]

STD_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_VALUES = {a: {c: i for i, c in enumerate(a)} for a in (STD_ALPHABET, URL_ALPHABET)}
_STD_CLEAN = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


class CorruptInputError(GoError):
    """``base64.CorruptInputError``: the offset of the first byte Go rejects."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"illegal base64 data at input byte {offset}")


def go_base64_decode(
    data: str | bytes, alphabet: bytes = STD_ALPHABET, *, padded: bool = True
) -> bytes:
    """``base64.Encoding.DecodeString`` (non-strict): CR and LF are skipped anywhere.

    ``alphabet`` is :data:`STD_ALPHABET` or :data:`URL_ALPHABET`; ``padded=False`` is Go's
    ``WithPadding(NoPadding)``. Raises :class:`CorruptInputError` with Go's offset.
    """
    src = data.encode("utf-8") if isinstance(data, str) else data
    if padded and alphabet == STD_ALPHABET:
        clean = src.replace(b"\n", b"").replace(b"\r", b"")
        if _STD_CLEAN.fullmatch(clean):
            # Well-formed input decodes the same in C; the loop below is for Go's error offsets.
            return binascii.a2b_base64(clean)
    values = _VALUES[alphabet]
    out = bytearray()
    n = len(src)
    si = 0
    while si < n:
        dbuf = [0, 0, 0, 0]
        dlen = 4
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return bytes(out)
                if j == 1 or padded:
                    raise CorruptInputError(si - j)
                dlen = j
                break
            c = src[si]
            si += 1
            value = values.get(c)
            if value is not None:
                dbuf[j] = value
                j += 1
                continue
            if c in (0x0A, 0x0D):
                continue
            if not padded or c != 0x3D or j < 2:
                raise CorruptInputError(si - 1)
            if j == 2:
                # "==" ends the input: only newlines may separate the two signs.
                while si < n and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    raise CorruptInputError(n)
                if src[si] != 0x3D:
                    raise CorruptInputError(si - 1)
                si += 1
            while si < n and src[si] in (0x0A, 0x0D):
                si += 1
            if si < n:
                raise CorruptInputError(si)
            dlen = j
            break
        val = dbuf[0] << 18 | dbuf[1] << 12 | dbuf[2] << 6 | dbuf[3]
        out += val.to_bytes(3, "big")[: dlen - 1]
    return bytes(out)


@dataclass
class PemBlock:
    """A decoded PEM block (``pem.Block``)."""

    type: str
    headers: dict[str, str]
    bytes: bytes


def _get_line(data: bytes) -> tuple[bytes, bytes, int]:
    i = data.find(b"\n")
    if i < 0:
        i = j = len(data)
    else:
        j = i + 1
        if i > 0 and data[i - 1] == 0x0D:
            i -= 1
    return data[:i].rstrip(b" \t"), data[j:], j


def _pem_base64(data: bytes) -> bytes | None:
    try:
        return go_base64_decode(data.replace(b" ", b"").replace(b"\t", b""))
    except CorruptInputError:
        return None


def pem_decode(data: bytes) -> tuple[PemBlock | None, bytes]:
    """``pem.Decode``: the first well-formed block in ``data`` and the input after it.

    Returns ``(None, data)`` when there is none. Malformed candidates are skipped, as Go does.
    """
    rest = data
    end_trailer_index = 0
    while True:
        if end_trailer_index < 0 or end_trailer_index > len(rest):
            return None, data
        rest = rest[end_trailer_index:]
        end_index = rest.find(b"\n-----END ")
        if end_index < 0:
            return None, data
        end_trailer_index = end_index + len(b"\n-----END ")
        begin_index = rest.rfind(b"-----BEGIN ", 0, end_index)
        if begin_index < 0 or (begin_index > 0 and rest[begin_index - 1] != 0x0A):
            continue
        skip = begin_index + len(b"-----BEGIN ")
        rest = rest[skip:]
        end_index -= skip
        end_trailer_index -= skip
        type_line, rest, consumed = _get_line(rest)
        end_index -= consumed
        end_trailer_index -= consumed
        if not type_line.endswith(b"-----"):
            continue
        type_line = type_line[: -len(b"-----")]
        headers: dict[str, str] = {}
        while True:
            if not rest:
                return None, data
            line, nxt, consumed = _get_line(rest)
            key, colon, val = line.partition(b":")
            if not colon:
                break
            headers[go_string(key.strip())] = go_string(val.strip())
            rest = nxt
            end_index -= consumed
            end_trailer_index -= consumed
        if headers and end_index < 0:
            continue
        end_trailer = rest[end_trailer_index:]
        trailer_len = len(type_line) + len(b"-----")
        if len(end_trailer) < trailer_len:
            continue
        rest_of_end_line = end_trailer[trailer_len:]
        end_trailer = end_trailer[:trailer_len]
        if not end_trailer.startswith(type_line) or not end_trailer.endswith(b"-----"):
            continue
        if _get_line(rest_of_end_line)[0]:
            continue
        body = b""
        if end_index > 0:
            decoded = _pem_base64(rest[:end_index])
            if decoded is None:
                continue
            body = decoded
        _, after, _ = _get_line(rest[end_index + len(b"\n-----END ") - 1 :])
        return PemBlock(go_string(type_line), headers, body), after
