"""Network builtins: ``net.cidr_*`` (those OPA's Wasm library leaves to the host) and
``net.lookup_ip_addr``.

OPA parses addresses with Go's ``net`` package, and its answers carry Go's quirks, which are
reproduced here:

* every address lives in a 128-bit space; an IPv4 address ``a.b.c.d`` is the IPv4-mapped
  ``::ffff:a.b.c.d``, and any address in that range prints in dotted form;
* a network is compared in the IPv4 family when its (masked) address is IPv4 or
  IPv4-mapped, else in the IPv6 family, and addresses never match across families;
* ``net.cidr_merge`` gives a bare IPv4 address its classful default mask (``10.1.2.3`` is
  ``10.1.2.3/8``) and keeps its host bits when the network is left unmerged.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pdp.builtins.base import BuiltinError, BuiltinSpec, EvalContext, HaltError, string_arg
from pdp.values import RegoSet

__all__ = [
    "BUILTINS",
    "CIDR_EXPAND_LIMIT",
    "format_ip",
    "net_cidr_contains_matches",
    "net_cidr_expand",
    "net_cidr_is_valid",
    "net_cidr_merge",
    "net_lookup_ip_addr",
    "parse_addr",
]

CIDR_EXPAND_LIMIT = 1 << 16
"""Most addresses ``net.cidr_expand`` generates. OPA has no bound (only cancellation), so a
larger network fails the way a cancelled OPA evaluation does."""

_V4_MAPPED = 0xFFFF << 32
_ALL128 = (1 << 128) - 1


class CancelError(HaltError):
    """OPA's ``eval_cancel_error``: the evaluation gave up on unbounded work."""

    code = "eval_cancel_error"


# --- parsing (Go's netip.ParseAddr, net.ParseIP, net.ParseCIDR) -----------------------


def _parse_v4_fields(s: str) -> int | None:
    """Dotted-quad text to a 32-bit int, as Go accepts it (no leading zeros)."""
    fields = s.split(".")
    if len(fields) != 4:
        return None
    value = 0
    for field in fields:
        if not field or len(field) > 3 or any(c < "0" or c > "9" for c in field):
            return None
        if len(field) > 1 and field[0] == "0":
            return None
        octet = int(field)
        if octet > 255:
            return None
        value = (value << 8) | octet
    return value


_HEX = frozenset("0123456789abcdefABCDEF")


def _parse_v6(s: str) -> int | None:
    """IPv6 text (without zone) to a 128-bit int, following Go's grammar."""
    groups: list[int] = []
    ellipsis = -1
    if s.startswith("::"):
        ellipsis = 0
        s = s[2:]
        if not s:
            return 0
    while len(groups) < 8:
        end = 0
        while end < len(s) and s[end] in _HEX:
            end += 1
        if end == 0 or end > 4:
            return None
        if end < len(s) and s[end] == ".":
            # An embedded IPv4 address must fill the last 32 bits.
            if (ellipsis < 0 and len(groups) != 6) or len(groups) > 6:
                return None
            v4 = _parse_v4_fields(s)
            if v4 is None:
                return None
            groups += [v4 >> 16, v4 & 0xFFFF]
            s = ""
            break
        groups.append(int(s[:end], 16))
        s = s[end:]
        if not s:
            break
        if s[0] != ":" or len(s) == 1:
            return None
        s = s[1:]
        if s[0] == ":":
            if ellipsis >= 0:
                return None
            ellipsis = len(groups)
            s = s[1:]
            if not s:
                break
    if s:
        return None
    if len(groups) < 8:
        if ellipsis < 0:
            return None
        groups[ellipsis:ellipsis] = [0] * (8 - len(groups))
    elif ellipsis >= 0:
        return None
    value = 0
    for g in groups:
        value = (value << 16) | g
    return value


@dataclass(frozen=True)
class _Addr:
    value: int  # 128-bit; IPv4 addresses are IPv4-mapped
    is4: bool  # written as a dotted IPv4 address
    zone: str


def parse_addr(s: str) -> _Addr | None:
    """Parse an IP address the way Go's ``netip.ParseAddr`` does; None if invalid."""
    for c in s:
        if c == ".":
            v4 = _parse_v4_fields(s)
            return None if v4 is None else _Addr(_V4_MAPPED | v4, True, "")
        if c == ":":
            text, sep, zone = s.partition("%")
            if sep and not zone:
                return None
            v6 = _parse_v6(text)
            return None if v6 is None else _Addr(v6, False, zone)
        if c == "%":
            return None
    return None


def _parse_ip(s: str) -> int | None:
    """Go's ``net.ParseIP``: the 128-bit address, or None (zones are rejected)."""
    addr = parse_addr(s)
    if addr is None or addr.zone:
        return None
    return addr.value


@dataclass(frozen=True)
class _Net:
    """A network from ``net.ParseCIDR``: its masked address and prefix, 128-bit based."""

    addr: int  # masked, 128-bit
    prefix: int  # 0..128 (an IPv4 /n is 96 + n)
    written4: bool  # written in IPv4 notation (Go keeps a 4-byte mask then)

    @property
    def family4(self) -> bool:
        """Whether Go compares this network in the IPv4 family (its masked address is
        IPv4-mapped, which needs a prefix of at least 96 bits)."""
        return self.addr >> 32 == 0xFFFF

    @property
    def last(self) -> int:
        return self.addr | (_ALL128 >> self.prefix)

    def contains(self, ip: int) -> bool:
        """Go's ``(*IPNet).Contains`` for a 128-bit address."""
        if self.family4 != (ip >> 32 == 0xFFFF):
            return False
        mask = _ALL128 ^ (_ALL128 >> self.prefix)
        return ip & mask == self.addr


def _parse_cidr(s: str) -> _Net | None:
    text, sep, length = s.partition("/")
    if not sep:
        return None
    addr = parse_addr(text)
    if addr is None or addr.zone:
        return None
    if not length or any(c < "0" or c > "9" for c in length):
        return None
    bits = 32 if addr.is4 else 128
    n = int(length)
    if n > bits:
        return None
    prefix = n + 96 if addr.is4 else n
    mask = _ALL128 ^ (_ALL128 >> prefix)
    return _Net(addr.value & mask, prefix, addr.is4)


def _cidr_or_error(s: str) -> _Net:
    net = _parse_cidr(s)
    if net is None:
        raise BuiltinError(f"invalid CIDR address: {s}")
    return net


# --- formatting (Go's IP.String and IPNet.String) --------------------------------------


def format_ip(value: int) -> str:
    """Text of a 128-bit address as Go prints it: IPv4-mapped addresses in dotted form."""
    if value >> 32 == 0xFFFF:
        return ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0))
    groups = [(value >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
    # The first longest run of two or more zero groups collapses to "::".
    best_start, best_len = -1, 1
    run_start = -1
    for i, g in enumerate([*groups, 1]):
        if g == 0:
            if run_start < 0:
                run_start = i
        elif run_start >= 0:
            if i - run_start > best_len:
                best_start, best_len = run_start, i - run_start
            run_start = -1
    if best_start < 0:
        return ":".join(f"{g:x}" for g in groups)
    head = ":".join(f"{g:x}" for g in groups[:best_start])
    tail = ":".join(f"{g:x}" for g in groups[best_start + best_len :])
    return f"{head}::{tail}"


def _format_net(addr: int, prefix: int) -> str:
    """Go's ``IPNet.String`` for a 128-bit network; IPv4-mapped ones print as IPv4."""
    if prefix >= 96 and addr >> 32 == 0xFFFF:
        return f"{format_ip(addr)}/{prefix - 96}"
    return f"{format_ip(addr)}/{prefix}"


# --- net.cidr_contains (used by net.cidr_contains_matches) -----------------------------


def _cidr_contains(cidr: Any, other: Any) -> bool:
    a = _cidr_or_error(string_arg(cidr, 1))
    b_text = string_arg(other, 1)
    ip = _parse_ip(b_text)
    if ip is not None:
        return a.contains(ip)
    b = _parse_cidr(b_text)
    if b is None:
        raise BuiltinError(f"not a valid textual representation of an IP address or CIDR: {b_text}")
    if not a.family4 and not b.family4:
        return a.prefix <= b.prefix and b.addr & (_ALL128 ^ (_ALL128 >> a.prefix)) == a.addr
    return a.contains(b.addr) and a.contains(b.last)


_ELEMENT_ERROR = "element must be string or non-empty array"


def _match_terms(operand: int, value: Any) -> Iterator[tuple[Any, Any]]:
    """Yield (cidr, index) pairs of one ``net.cidr_contains_matches`` operand."""
    if type(value) is str:
        yield value, value
        return
    if type(value) is list:
        items: Any = enumerate(value)
    elif type(value) is RegoSet:
        items = ((v, v) for v in value)
    elif type(value) is dict:
        items = ((k, v) for k, v in value.items())
    else:
        return
    for index, element in items:
        if type(element) is str:
            yield element, index
        elif type(element) is list and element:
            yield element[0], index
        else:
            raise BuiltinError(f"operand {operand}: {_ELEMENT_ERROR}")


def net_cidr_contains_matches(ctx: EvalContext, cidrs: Any, cidrs_or_ips: Any) -> Any:
    """Pairs of keys (indices, set elements or the strings themselves) of CIDRs in
    ``cidrs`` that contain an IP or CIDR of ``cidrs_or_ips``."""
    result = []
    for cidr1, index1 in _match_terms(1, cidrs):
        for cidr2, index2 in _match_terms(2, cidrs_or_ips):
            if _cidr_contains(cidr1, cidr2):
                result.append([index1, index2])
    return RegoSet(result)


# --- net.cidr_expand / net.cidr_is_valid -----------------------------------------------


def net_cidr_expand(ctx: EvalContext, cidr: Any) -> Any:
    """The set of every address in ``cidr``."""
    net = _cidr_or_error(string_arg(cidr, 1))
    count = 1 << (128 - net.prefix)
    if count > CIDR_EXPAND_LIMIT:
        raise CancelError(
            "net.cidr_expand: timed out before generating all IP addresses", prefix=False
        )
    return RegoSet(format_ip(a) for a in range(net.addr, net.addr + count))


def net_cidr_is_valid(ctx: EvalContext, cidr: Any) -> Any:
    """Whether ``cidr`` is a valid IPv4 or IPv6 CIDR (a non-string is simply invalid)."""
    return type(cidr) is str and _parse_cidr(cidr) is not None


# --- net.cidr_merge --------------------------------------------------------------------
#
# OPA sorts and merges address ranges compared as Go byte slices. Ranges are 16 bytes,
# except those of IPv6-written networks inside ::ffff:0:0/96, which OPA's helper lays out
# as 28 bytes (a 12-byte prefix in front of the 16-byte address, and the host mask applied
# to the wrong bytes). They sort and merge oddly, and OPA crashes if it then has to
# re-split a merged range holding one; that case (and OPA's other crashes on ranges whose
# spanning network starts with a zero byte) gets the true merged result instead.

_ZERO16 = bytes(16)
_V4_ZERO16 = _V4_MAPPED.to_bytes(16, "big")
_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


@dataclass
class _Range:
    first: bytes
    last: bytes
    text: str | None  # the network's own text while it is unmerged
    members: list[tuple[int, int]]  # true 128-bit [first, last] intervals


def _merge_element(element: Any) -> _Range:
    if type(element) is not str:
        raise BuiltinError("element must be string")
    ip = _parse_ip(element)
    if ip is not None:
        if ip >> 32 != 0xFFFF:
            raise BuiltinError("IPv6 invalid: needs prefix length")
        first_octet = (ip >> 24) & 0xFF
        prefix = 104 if first_octet < 0x80 else 112 if first_octet < 0xC0 else 120
        text = f"{format_ip(ip)}/{prefix - 96}"
        net = _Net(ip & (_ALL128 ^ (_ALL128 >> prefix)), prefix, True)
    else:
        parsed = _parse_cidr(element)
        if parsed is None:
            raise BuiltinError(f"invalid CIDR address: {element}")
        net = parsed
        text = _format_net(net.addr, net.prefix)
    first, last = net.addr, net.last
    if not net.written4 and net.family4:
        raw = first.to_bytes(16, "big")
        host = (_ALL128 >> net.prefix).to_bytes(16, "big")
        first_key = _MAPPED_PREFIX + raw
        last_key = bytes(b | h for b, h in zip(first_key[:16], host, strict=True)) + raw[4:]
    else:
        first_key, last_key = first.to_bytes(16, "big"), last.to_bytes(16, "big")
    return _Range(first_key, last_key, text, [(first, last)])


def _previous_key(key: bytes) -> bytes:
    if key in (_ZERO16, _V4_ZERO16):
        return key
    return (int.from_bytes(key, "big") - 1).to_bytes(len(key), "big")


def _interval_to_cidrs(first: int, last: int) -> list[str]:
    """The fewest networks exactly covering [first, last]."""
    out = []
    while first <= last:
        size = (first & -first).bit_length() - 1 if first else 128
        while size > 0 and first + (1 << size) - 1 > last:
            size -= 1
        out.append(_format_net(first, 128 - size))
        first += 1 << size
    return out


def _union(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(intervals):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def net_cidr_merge(ctx: EvalContext, addrs: Any) -> Any:
    """The smallest set of CIDRs covering the given CIDRs and IPv4 addresses."""
    if type(addrs) is list:
        elements = addrs
    elif type(addrs) is RegoSet:
        elements = list(addrs)
    else:
        raise BuiltinError("operand must be an array")
    ranges = sorted((_merge_element(e) for e in elements), key=lambda r: (r.last, r.first))
    # Walk backwards, folding each range into its predecessor when they touch.
    merged: list[_Range] = []
    for earlier in reversed(ranges):
        if merged and _previous_key(merged[-1].first) <= earlier.last:
            later = merged.pop()
            first = min(earlier.first, later.first)
            merged.append(_Range(first, later.last, None, earlier.members + later.members))
        else:
            merged.append(earlier)
    result: list[str] = []
    for r in merged:
        if r.text is not None:
            result.append(r.text)
        elif len(r.first) == 16 and len(r.last) == 16:
            result += _interval_to_cidrs(int.from_bytes(r.first), int.from_bytes(r.last))
        else:
            for first, last in _union(r.members):
                result += _interval_to_cidrs(first, last)
    return RegoSet(result)


# --- net.lookup_ip_addr ----------------------------------------------------------------


def net_lookup_ip_addr(ctx: EvalContext, name: Any) -> Any:
    """The set of IP addresses ``name`` resolves to (literal addresses resolve to
    themselves). Cached per evaluation, like OPA."""
    host = string_arg(name, 1)
    key = ("net.lookup_ip_addr", host)
    cached = ctx.cache.get(key)
    if cached is not None:
        return cached
    literal = parse_addr(host)
    if literal is not None:
        text = format_ip(literal.value)
        result = RegoSet([f"{text}%{literal.zone}" if literal.zone else text])
    else:
        result = RegoSet(_resolve(host))
    ctx.cache[key] = result
    return result


def _resolve(host: str) -> list[str]:
    if not host:
        raise BuiltinError("lookup : no such host")
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)):
            raise BuiltinError(f"lookup {host}: no such host") from None
        raise BuiltinError(f"lookup {host}: {exc.strerror}") from None
    except (UnicodeError, OSError) as exc:
        raise BuiltinError(f"lookup {host}: {exc}") from None
    out = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        addr = parse_addr(str(sockaddr[0]))
        if addr is None:
            continue
        text = format_ip(addr.value)
        out.append(f"{text}%{addr.zone}" if addr.zone else text)
    return out


BUILTINS = (
    BuiltinSpec("net.cidr_contains_matches", net_cidr_contains_matches),
    BuiltinSpec("net.cidr_expand", net_cidr_expand),
    BuiltinSpec("net.cidr_is_valid", net_cidr_is_valid),
    BuiltinSpec("net.cidr_merge", net_cidr_merge),
    BuiltinSpec("net.lookup_ip_addr", net_lookup_ip_addr, deterministic=False),
)
