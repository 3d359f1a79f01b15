"""Go's ``time`` package, as far as OPA's ``time.*`` builtins expose it.

OPA hands time values straight to Go's standard library, so the results and error texts
of the Rego builtins are those of Go: layout-driven formatting and parsing against the
reference time ``Mon Jan 2 15:04:05 MST 2006``, ``time.ParseDuration``, ``time.Date``
normalisation (including its int64 wrap-around for absurd inputs), and zone loading with
``time.LoadLocation``'s search order and error messages.

Zone offsets and abbreviations come from :mod:`zoneinfo`; the TZif files themselves are
located and validated the way Go does it, so that names Go accepts (or rejects) behave the
same here. Layout work happens on UTF-8 bytes because Go's layouts are byte-oriented and
its error messages escape bytes, not characters.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import struct
import zipfile
from dataclasses import dataclass
from datetime import UTC as _PY_UTC
from datetime import datetime, timedelta
from importlib import resources
from typing import NamedTuple
from zoneinfo import ZoneInfo

__all__ = [
    "NAMED_LAYOUTS",
    "RFC3339",
    "RFC3339_NANO",
    "UTC",
    "GoTime",
    "GoTimeError",
    "Zone",
    "days_in",
    "go_date",
    "go_quote",
    "load_location",
    "local_zone",
    "parse",
    "parse_duration",
]

RFC3339 = "2006-01-02T15:04:05Z07:00"
RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"

# The layout constants OPA lets policies name instead of spelling the layout out.
NAMED_LAYOUTS: dict[str, str] = {
    "ANSIC": "Mon Jan _2 15:04:05 2006",
    "UnixDate": "Mon Jan _2 15:04:05 MST 2006",
    "RubyDate": "Mon Jan 02 15:04:05 -0700 2006",
    "RFC822": "02 Jan 06 15:04 MST",
    "RFC822Z": "02 Jan 06 15:04 -0700",
    "RFC850": "Monday, 02-Jan-06 15:04:05 MST",
    "RFC1123": "Mon, 02 Jan 2006 15:04:05 MST",
    "RFC1123Z": "Mon, 02 Jan 2006 15:04:05 -0700",
    "RFC3339": RFC3339,
    "RFC3339Nano": RFC3339_NANO,
}

_NS = 1_000_000_000
_DAY = 86_400
_U64 = 1 << 64
_I64_MIN = -(1 << 63)

# Go counts seconds from 0001-01-01 internally and from a far-past "absolute" epoch
# (March 1 of year -292277022399) for calendar maths; Date's overflow behaviour depends on
# both offsets, so they are reproduced exactly.
_UNIX_TO_INTERNAL = (1969 * 365 + 1969 // 4 - 1969 // 100 + 1969 // 400) * _DAY
_ABSOLUTE_YEARS = 292_277_022_400
_ABSOLUTE_TO_INTERNAL = -(_ABSOLUTE_YEARS // 400 * 146_097 + 306) * _DAY
_ABSOLUTE_TO_UNIX = _ABSOLUTE_TO_INTERNAL - _UNIX_TO_INTERNAL

_LONG_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_LONG_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_LONG_DAYS_B = tuple(d.encode() for d in _LONG_DAYS)
_SHORT_DAYS_B = tuple(d[:3].encode() for d in _LONG_DAYS)
_LONG_MONTHS_B = tuple(m.encode() for m in _LONG_MONTHS)
_SHORT_MONTHS_B = tuple(m[:3].encode() for m in _LONG_MONTHS)


class GoTimeError(ValueError):
    """An error Go's time package would return; ``str()`` is Go's message verbatim."""


def _wrap64(x: int) -> int:
    """``x`` reduced to a signed 64-bit integer, as Go's int arithmetic overflows."""
    return (x - _I64_MIN) % _U64 + _I64_MIN


# --- quoting -----------------------------------------------------------------------------


def go_quote(raw: bytes) -> str:
    """Quote like the time package's private ``quote``: non-ASCII and control bytes as ``\\x``."""
    out = ['"']
    for b in raw:
        if b < 0x20 or b >= 0x80:
            out.append(f"\\x{b:02x}")
        elif b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        else:
            out.append(chr(b))
    out.append('"')
    return "".join(out)


# --- zones -------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=_PY_UTC)
# Python's datetime stops at years 1 and 9999. Instants beyond are only ever looked up on
# the way to a result that is far outside OPA's int64-nanosecond range, so clamping them
# cannot change an answer.
_LOOKUP_MIN = (datetime(2, 1, 1, tzinfo=_PY_UTC) - _EPOCH) // timedelta(seconds=1)
_LOOKUP_MAX = (datetime(9998, 12, 31, tzinfo=_PY_UTC) - _EPOCH) // timedelta(seconds=1)


class Zone:
    """A Go ``*time.Location``: UTC, or a zone read from TZif data.

    ``abbreviations`` lists the (name, offset) pairs of the file's local time types in file
    order; Go consults them when parsing a zone abbreviation against the local zone.
    """

    __slots__ = ("_info", "abbreviations")

    def __init__(
        self, info: ZoneInfo | None = None, abbreviations: tuple[tuple[str, int], ...] = ()
    ) -> None:
        self._info = info
        self.abbreviations = abbreviations

    def lookup(self, unix: int) -> tuple[str, int]:
        """The zone abbreviation and UTC offset (seconds) in effect at ``unix`` seconds."""
        if self._info is None:
            return "UTC", 0
        clamped = min(max(unix, _LOOKUP_MIN), _LOOKUP_MAX)
        local = (_EPOCH + timedelta(seconds=clamped)).astimezone(self._info)
        offset = local.utcoffset()
        seconds = 0 if offset is None else offset // timedelta(seconds=1)
        return local.tzname() or "", seconds

    def lookup_name(self, name: str, unix: int) -> int | None:
        """Offset of the abbreviation ``name`` around wall time ``unix``, as Go resolves it."""
        candidates = [off for abbr, off in self.abbreviations if abbr == name]
        for off in candidates:
            found, offset = self.lookup(unix - off)
            if found == name:
                return offset
        return candidates[0] if candidates else None


UTC = Zone()

_BAD_DATA = "malformed time zone information"
_MAX_TZIF_SIZE = 10 << 20


def _tzif_abbreviations(data: bytes) -> tuple[tuple[str, int], ...]:
    """The local time types of a TZif file, validated as strictly as Go's reader is."""
    if data[:4] != b"TZif" or len(data) < 20 or data[4] not in (0, 0x32, 0x33):
        raise GoTimeError(_BAD_DATA)
    pos = 20

    def counts() -> tuple[int, ...]:
        nonlocal pos
        if len(data) < pos + 24:
            raise GoTimeError(_BAD_DATA)
        values = struct.unpack_from(">6I", data, pos)
        pos += 24
        return values

    n_utc, n_std, n_leap, n_time, n_zone, n_char = counts()
    time_size = 4
    if data[4] != 0:
        pos += n_time * 5 + n_zone * 6 + n_char + n_leap * 8 + n_std + n_utc + 20
        n_utc, n_std, n_leap, n_time, n_zone, n_char = counts()
        time_size = 8
    zones_at = pos + n_time * (time_size + 1)
    abbrev_at = zones_at + n_zone * 6
    end = abbrev_at + n_char + n_leap * (time_size + 4) + n_std + n_utc
    if end > len(data) or n_zone == 0:
        raise GoTimeError(_BAD_DATA)
    abbrev = data[abbrev_at : abbrev_at + n_char]
    zones = []
    for i in range(n_zone):
        offset, _isdst, index = struct.unpack_from(">iBB", data, zones_at + 6 * i)
        if index >= len(abbrev):
            raise GoTimeError(_BAD_DATA)
        name = abbrev[index:].split(b"\0", 1)[0]
        zones.append((name.decode("utf-8", "replace"), offset))
    indices = data[pos + n_time * time_size : zones_at]
    if any(i >= n_zone for i in indices):
        raise GoTimeError(_BAD_DATA)
    return tuple(zones)


def _zone_from_tzif(data: bytes) -> Zone:
    abbreviations = _tzif_abbreviations(data)
    try:
        info = ZoneInfo.from_file(io.BytesIO(data))
    except ValueError as exc:
        raise GoTimeError(_BAD_DATA) from exc
    return Zone(info, abbreviations)


class _NotFound(Exception):
    """A zone source does not hold the name (Go's ENOENT, which the search skips)."""


def _errno_text(code: int | None) -> str:
    # Go prints a bare errno in lower case ("is a directory"), without the file name.
    text = os.strerror(code) if code is not None else "input/output error"
    return text[:1].lower() + text[1:]


def _read_zone_file(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except ValueError as exc:  # an embedded NUL byte, which the kernel would call EINVAL
        raise GoTimeError("invalid argument") from exc
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise _NotFound from exc
        raise GoTimeError(_errno_text(exc.errno)) from exc
    try:
        chunks = []
        size = 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > _MAX_TZIF_SIZE:
                raise GoTimeError(f"time: file {path} is too large")
        return b"".join(chunks)
    except OSError as exc:
        raise GoTimeError(_errno_text(exc.errno)) from exc
    finally:
        os.close(fd)


def _read_zone_zip(archive: str, name: str) -> bytes:
    try:
        with zipfile.ZipFile(archive) as zf:
            return zf.read(name)
    except (KeyError, FileNotFoundError) as exc:
        raise _NotFound from exc
    except (OSError, zipfile.BadZipFile) as exc:
        raise GoTimeError("corrupt zip file " + archive) from exc


def _read_embedded(name: str) -> bytes:
    # OPA links Go's embedded tzdata; the tzdata package plays that part here. Its names are
    # exact keys, so paths Go's zip lookup would not match are refused.
    parts = name.split("/")
    if any(p in ("", ".") for p in parts):
        raise _NotFound
    try:
        entry = resources.files("tzdata").joinpath("zoneinfo", *parts)
        if not entry.is_file():
            raise _NotFound
        return entry.read_bytes()
    except (ModuleNotFoundError, OSError) as exc:
        raise _NotFound from exc


_PLATFORM_SOURCES = (
    "/usr/share/zoneinfo/",
    "/usr/share/lib/zoneinfo/",
    "/usr/lib/locale/TZ/",
    "/etc/zoneinfo",
)


def _search(name: str, sources: tuple[str, ...], *, embedded: bool) -> Zone:
    """Go's ``loadLocation``: first good file wins; otherwise the first real error."""
    first_error: GoTimeError | None = None
    readers = [functools.partial(_read_source, source, name) for source in sources]
    if embedded:
        readers.append(functools.partial(_read_embedded, name))
    for read in readers:
        try:
            return _zone_from_tzif(read())
        except _NotFound:
            continue
        except GoTimeError as exc:
            first_error = first_error or exc
    raise first_error or GoTimeError("unknown time zone " + name)


def _read_source(source: str, name: str) -> bytes:
    if source.endswith(".zip"):
        return _read_zone_zip(source, name)
    return _read_zone_file(source + "/" + name if source else name)


@functools.lru_cache(maxsize=256)
def load_location(name: str) -> Zone:
    """Go's ``time.LoadLocation``; raises :class:`GoTimeError` with Go's message."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return local_zone()
    if ".." in name or name[0] in "/\\":
        raise GoTimeError("time: invalid location name")
    first_error: GoTimeError | None = None
    zoneinfo_env = os.environ.get("ZONEINFO", "")
    if zoneinfo_env:
        try:
            return _zone_from_tzif(_read_source(zoneinfo_env, name))
        except _NotFound:
            pass
        except GoTimeError as exc:
            first_error = exc
    try:
        return _search(name, _PLATFORM_SOURCES, embedded=True)
    except GoTimeError as exc:
        raise first_error or exc from None


@functools.lru_cache(maxsize=1)
def local_zone() -> Zone:
    """The process's local zone as Go determines it from ``$TZ`` and ``/etc/localtime``."""
    tz = os.environ.get("TZ")
    try:
        if tz is None:
            return _search("localtime", ("/etc",), embedded=True)
        tz = tz.removeprefix(":")
        if tz.startswith("/"):
            return _search(tz, ("",), embedded=True)
        if tz not in ("", "UTC"):
            return _search(tz, _PLATFORM_SOURCES, embedded=True)
    except GoTimeError:
        pass
    return UTC


# --- calendar ----------------------------------------------------------------------------


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in(month: int, year: int) -> int:
    """Number of days in ``month`` (1-12) of ``year``."""
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 + ((month + (month >> 3)) & 1)


def _days_before(month: int) -> int:
    """Days of a non-leap year before the first of ``month`` (13 gives 365)."""
    return _days_from_civil(1970, month, 1) if month <= 12 else 365


def _norm(hi: int, lo: int, base: int) -> tuple[int, int]:
    if lo < 0:
        n = _wrap64(_wrap64(-lo) - 1) // base + 1
        hi, lo = _wrap64(hi - n), _wrap64(lo + n * base)
    if lo >= base:
        n = lo // base
        hi, lo = _wrap64(hi + n), _wrap64(lo - n * base)
    return hi, lo


def _abs_days(year: int, month: int, day: int) -> int:
    """Go's ``dateToAbsDays`` with its unsigned overflow (month already in 1..12)."""
    jan_feb = 1 if month < 3 else 0
    amonth = month + 12 * jan_feb
    y = (year - jan_feb + _ABSOLUTE_YEARS) % _U64
    ayday = (979 * amonth - 2919) >> 5
    century, cyear = divmod(y, 100)
    cday = 1461 * cyear // 4
    centurydays = (146_097 * century % _U64) // 4
    return (centurydays + _wrap64(cday + ayday + day - 1)) % _U64


@dataclass(frozen=True, slots=True)
class GoTime:
    """An instant (``unix`` seconds plus ``nsec``) viewed in ``zone``, like Go's ``time.Time``."""

    unix: int
    nsec: int
    zone: Zone = UTC

    @classmethod
    def from_unix_nano(cls, ns: int, zone: Zone = UTC) -> GoTime:
        """Go's ``time.Unix(0, ns).In(zone)``."""
        sec, nsec = divmod(ns, _NS)
        return cls(sec, nsec, zone)

    def unix_nano(self) -> int:
        """Nanoseconds since the Unix epoch (exact, unbounded)."""
        return self.unix * _NS + self.nsec

    def in_zone(self, zone: Zone) -> GoTime:
        """The same instant viewed in ``zone``."""
        return GoTime(self.unix, self.nsec, zone)

    def _wall(self) -> tuple[str, int, int]:
        name, offset = self.zone.lookup(self.unix)
        return name, offset, self.unix + offset

    def date(self) -> tuple[int, int, int]:
        """Year, month (1-12) and day in the time's zone."""
        return _civil_from_days(self._wall()[2] // _DAY)

    def clock(self) -> tuple[int, int, int]:
        """Hour, minute and second in the time's zone."""
        secs = self._wall()[2] % _DAY
        return secs // 3600, secs // 60 % 60, secs % 60

    def weekday(self) -> str:
        """English name of the weekday in the time's zone."""
        return _LONG_DAYS[(self._wall()[2] // _DAY + 4) % 7]

    def add_date(self, years: int, months: int, days: int) -> GoTime:
        """Go's ``Time.AddDate``: calendar arithmetic normalised by :func:`go_date`."""
        year, month, day = self.date()
        hour, minute, sec = self.clock()
        return go_date(
            _wrap64(year + years),
            _wrap64(month + months),
            _wrap64(day + days),
            hour=hour,
            minute=minute,
            sec=sec,
            nsec=self.nsec,
            zone=self.zone,
        )

    def format(self, layout: str) -> str:
        """Go's ``Time.Format``."""
        return _format(self, layout.encode())


def go_date(
    year: int,
    month: int,
    day: int,
    *,
    hour: int = 0,
    minute: int = 0,
    sec: int = 0,
    nsec: int = 0,
    zone: Zone = UTC,
) -> GoTime:
    """Go's ``time.Date``: out-of-range fields are normalised and int64 overflow wraps."""
    year, m = _norm(year, _wrap64(month - 1), 12)
    sec, nsec = _norm(sec, nsec, _NS)
    minute, sec = _norm(minute, sec, 60)
    hour, minute = _norm(hour, minute, 60)
    day, hour = _norm(day, hour, 24)
    days = _wrap64(_abs_days(year, m + 1, day))
    unix = _wrap64(_wrap64(days * _DAY) + hour * 3600 + minute * 60 + sec + _ABSOLUTE_TO_UNIX)
    # The offset at the wall time read as UTC is a guess; the offset in force at the
    # corrected instant is the answer (Go gets the same result via the zone's bounds).
    _, offset = zone.lookup(unix)
    if offset:
        _, offset = zone.lookup(unix - offset)
        unix = _wrap64(unix - offset)
    internal = _wrap64(unix + _UNIX_TO_INTERNAL)
    return GoTime(internal - _UNIX_TO_INTERNAL, nsec, zone)


# --- layouts -----------------------------------------------------------------------------


class _Chunk(NamedTuple):
    prefix: bytes
    std: str  # "" when the layout has no further element
    text: bytes  # the layout bytes of the element, quoted in parse errors
    suffix: bytes
    digits: int = 0  # fractional seconds: number of 0s or 9s
    sep: int = 0x2E  # fractional seconds: "." or ","


_TZ_ELEMENTS = {
    0x2D: (b"-070000", b"-07:00:00", b"-0700", b"-07:00", b"-07"),
    0x5A: (b"Z070000", b"Z07:00:00", b"Z0700", b"Z07:00", b"Z07"),
}
_FIXED_ELEMENTS = {0x33: "3", 0x34: "4", 0x35: "5"}


def _lower_at(s: bytes, i: int) -> bool:
    return i < len(s) and 0x61 <= s[i] <= 0x7A


def _digit_at(s: bytes, i: int) -> bool:
    return i < len(s) and 0x30 <= s[i] <= 0x39


def _element_at(layout: bytes, i: int) -> tuple[str, int, int] | None:
    """The layout element starting at ``i``, as (kind, start, end), or None."""
    c = layout[i]
    if c == 0x4A and layout.startswith(b"Jan", i):  # J
        if layout.startswith(b"January", i):
            return "January", i, i + 7
        if not _lower_at(layout, i + 3):
            return "Jan", i, i + 3
    elif c == 0x4D:  # M
        if layout.startswith(b"Mon", i):
            if layout.startswith(b"Monday", i):
                return "Monday", i, i + 6
            if not _lower_at(layout, i + 3):
                return "Mon", i, i + 3
        if layout.startswith(b"MST", i):
            return "MST", i, i + 3
    elif c == 0x30:  # 0
        if i + 1 < len(layout) and 0x31 <= layout[i + 1] <= 0x36:
            return layout[i : i + 2].decode(), i, i + 2
        if layout.startswith(b"002", i):
            return "002", i, i + 3
    elif c == 0x31:  # 1
        if layout.startswith(b"15", i):
            return "15", i, i + 2
        return "1", i, i + 1
    elif c == 0x32:  # 2
        if layout.startswith(b"2006", i):
            return "2006", i, i + 4
        return "2", i, i + 1
    elif c == 0x5F:  # _
        if layout.startswith(b"_2", i):
            # "_2006" is a literal underscore before the year, not a padded day.
            if layout.startswith(b"2006", i + 1):
                return "2006", i + 1, i + 5
            return "_2", i, i + 2
        if layout.startswith(b"__2", i):
            return "__2", i, i + 3
    elif c in _FIXED_ELEMENTS:
        return _FIXED_ELEMENTS[c], i, i + 1
    elif c == 0x50 and layout.startswith(b"PM", i):
        return "PM", i, i + 2
    elif c == 0x70 and layout.startswith(b"pm", i):
        return "pm", i, i + 2
    elif c in _TZ_ELEMENTS:
        for element in _TZ_ELEMENTS[c]:
            if layout.startswith(element, i):
                return element.decode(), i, i + len(element)
    return None


def _next_chunk(layout: bytes) -> _Chunk:
    """Split ``layout`` at its first element (Go's ``nextStdChunk``)."""
    for i, c in enumerate(layout):
        if c in (0x2E, 0x2C):  # "." or ","
            if i + 1 < len(layout) and layout[i + 1] in (0x30, 0x39):
                j = i + 1
                while j < len(layout) and layout[j] == layout[i + 1]:
                    j += 1
                if not _digit_at(layout, j):
                    kind = ".0" if layout[i + 1] == 0x30 else ".9"
                    return _Chunk(layout[:i], kind, layout[i:j], layout[j:], j - i - 1, c)
            continue
        found = _element_at(layout, i)
        if found is not None:
            kind, start, end = found
            return _Chunk(layout[:start], kind, layout[start:end], layout[end:])
    return _Chunk(layout, "", b"", b"")


def _int_bytes(x: int, width: int = 0) -> bytes:
    sign = b"-" if x < 0 else b""
    return sign + str(abs(x)).zfill(width).encode()


def _zone_bytes(kind: str, offset: int) -> bytes:
    """A numeric zone element; Go truncates the offset toward zero and signs it by minutes."""
    if offset == 0 and kind.startswith("Z"):
        return b"Z"
    minutes = abs(offset) // 60 * (1 if offset >= 0 else -1)
    sign, seconds = b"+", offset
    if minutes < 0:
        sign, minutes, seconds = b"-", -minutes, -offset
    out = sign + _int_bytes(minutes // 60, 2)
    if kind.endswith(":00"):
        out += b":"
    if not kind.endswith("07"):
        out += _int_bytes(minutes % 60, 2)
    if kind.endswith(("0000", ":00:00")):
        if kind.endswith(":00:00"):
            out += b":"
        out += _int_bytes(abs(seconds) % 60 * (1 if seconds >= 0 else -1), 2)
    return out


def _nano_bytes(nsec: int, chunk: _Chunk) -> bytes:
    trim = chunk.std == ".9"
    if trim and nsec == 0:
        return b""
    digits = str(nsec).zfill(9)
    if chunk.digits < 9:
        digits = digits[: chunk.digits]
    if trim:
        digits = digits.rstrip("0")
        if not digits:
            return b""
    return bytes([chunk.sep]) + digits.encode()


def _format(t: GoTime, layout: bytes) -> str:
    name, offset, wall = t._wall()
    days, secs = divmod(wall, _DAY)
    year, month, day = _civil_from_days(days)
    yday = days - _days_from_civil(year, 1, 1) + 1
    hour, minute, sec = secs // 3600, secs // 60 % 60, secs % 60
    hour12 = hour % 12 or 12
    weekday = (days + 4) % 7
    fields: dict[str, bytes] = {
        "06": _int_bytes(abs(year) % 100, 2),
        "2006": _int_bytes(year, 4),
        "Jan": _SHORT_MONTHS_B[month - 1],
        "January": _LONG_MONTHS_B[month - 1],
        "1": _int_bytes(month),
        "01": _int_bytes(month, 2),
        "Mon": _SHORT_DAYS_B[weekday],
        "Monday": _LONG_DAYS_B[weekday],
        "2": _int_bytes(day),
        "_2": _int_bytes(day).rjust(2),
        "02": _int_bytes(day, 2),
        "__2": _int_bytes(yday).rjust(3),
        "002": _int_bytes(yday, 3),
        "15": _int_bytes(hour, 2),
        "3": _int_bytes(hour12),
        "03": _int_bytes(hour12, 2),
        "4": _int_bytes(minute),
        "04": _int_bytes(minute, 2),
        "5": _int_bytes(sec),
        "05": _int_bytes(sec, 2),
        "PM": b"PM" if hour >= 12 else b"AM",
        "pm": b"pm" if hour >= 12 else b"am",
    }
    out = bytearray()
    while layout:
        chunk = _next_chunk(layout)
        out += chunk.prefix
        if not chunk.std:
            break
        layout = chunk.suffix
        kind = chunk.std
        if kind in fields:
            out += fields[kind]
        elif kind in (".0", ".9"):
            out += _nano_bytes(t.nsec, chunk)
        elif kind == "MST":
            out += name.encode() if name else _zone_bytes("-0700", offset)
        else:
            out += _zone_bytes(kind, offset)
    return out.decode("utf-8", "replace")


# --- parsing -----------------------------------------------------------------------------


class _Bad(Exception):
    """A value element does not match its layout element."""


def _leading_int(s: bytes) -> tuple[int, bytes]:
    x = 0
    i = 0
    while i < len(s) and 0x30 <= s[i] <= 0x39:
        if x > (1 << 63) // 10:
            raise _Bad
        x = x * 10 + s[i] - 0x30
        if x > 1 << 63:
            raise _Bad
        i += 1
    return x, s[i:]


def _atoi(s: bytes) -> int:
    neg = False
    if s[:1] in (b"-", b"+"):
        neg = s[:1] == b"-"
        s = s[1:]
    x, rest = _leading_int(s)
    if rest:
        raise _Bad
    x = _wrap64(x)
    return _wrap64(-x) if neg else x


def _getnum(s: bytes, fixed: bool) -> tuple[int, bytes]:
    if not _digit_at(s, 0):
        raise _Bad
    if not _digit_at(s, 1):
        if fixed:
            raise _Bad
        return s[0] - 0x30, s[1:]
    return (s[0] - 0x30) * 10 + s[1] - 0x30, s[2:]


def _getnum3(s: bytes, fixed: bool) -> tuple[int, bytes]:
    n = 0
    i = 0
    while i < 3 and _digit_at(s, i):
        n = n * 10 + s[i] - 0x30
        i += 1
    if i == 0 or (fixed and i != 3):
        raise _Bad
    return n, s[i:]


def _lookup(table: tuple[bytes, ...], value: bytes) -> tuple[int, bytes]:
    for i, name in enumerate(table):
        head = value[: len(name)]
        if len(head) == len(name) and _same_letters(head, name):
            return i, value[len(name) :]
    raise _Bad


def _same_letters(a: bytes, b: bytes) -> bool:
    for x, y in zip(a, b, strict=True):
        if x != y:
            lower = x | 0x20
            if lower != (y | 0x20) or not 0x61 <= lower <= 0x7A:
                return False
    return True


def _skip(value: bytes, prefix: bytes) -> bytes:
    """Consume the literal ``prefix``; a space matches any run of spaces. Raises with the rest."""
    while prefix:
        if prefix[0] == 0x20:
            if value and value[0] != 0x20:
                raise _SkipError(value)
            prefix = prefix.lstrip(b" ")
            value = value.lstrip(b" ")
            continue
        if not value or value[0] != prefix[0]:
            raise _SkipError(value)
        prefix, value = prefix[1:], value[1:]
    return value


class _SkipError(Exception):
    def __init__(self, rest: bytes) -> None:
        super().__init__()
        self.rest = rest


def _parse_nanoseconds(value: bytes, nbytes: int) -> tuple[int, str]:
    """Fraction digits after a separator, scaled to nanoseconds; (ns, range error)."""
    if value[0] not in (0x2E, 0x2C):
        raise _Bad
    nbytes = min(nbytes, 10)
    ns = _atoi(value[1:nbytes])
    if ns < 0:
        return ns, "fractional second"
    return ns * 10 ** (10 - nbytes), ""


def _signed_offset_len(value: bytes) -> int:
    if value[:1] not in (b"+", b"-"):
        return 0
    try:
        x, rest = _leading_int(value[1:])
    except _Bad:
        return 0
    if rest == value[1:] or x > 23:
        return 0
    return len(value) - len(rest)


def _zone_name_len(value: bytes) -> int:
    """Length of the zone abbreviation at the start of ``value`` (0 when there is none)."""
    if len(value) < 3:
        return 0
    if value[:4] in (b"ChST", b"MeST"):
        return 4
    if value[:3] == b"GMT":
        return 3 + (_signed_offset_len(value[3:]) if len(value) > 3 else 0)
    if value[0] in (0x2B, 0x2D):
        return _signed_offset_len(value)
    upper = 0
    while upper < min(6, len(value)) and 0x41 <= value[upper] <= 0x5A:
        upper += 1
    if upper == 3:
        return 3
    if upper == 4 and (value[3] == 0x54 or value[:4] == b"WITA"):
        return 4
    if upper == 5 and value[4] == 0x54:
        return 5
    return 0


def _parse_error(
    layout: bytes, value: bytes, elem: bytes, rest: bytes, message: str
) -> GoTimeError:
    if message:
        return GoTimeError("parsing time " + go_quote(value) + message)
    return GoTimeError(
        f"parsing time {go_quote(value)} as {go_quote(layout)}: "
        f"cannot parse {go_quote(rest)} as {go_quote(elem)}"
    )


# Numeric zone layouts by suffix: (value length, colon positions, hour/minute/second slices).
_Slice = tuple[int, int] | None
_ZONE_SHAPES: tuple[tuple[str, int, tuple[int, ...], tuple[_Slice, _Slice, _Slice]], ...] = (
    (":00:00", 9, (3, 6), ((1, 3), (4, 6), (7, 9))),
    (":00", 6, (3,), ((1, 3), (4, 6), None)),
    ("0000", 7, (), ((1, 3), (3, 5), (5, 7))),
    ("07", 3, (), ((1, 3), None, None)),
    ("00", 5, (), ((1, 3), (3, 5), None)),
)


def _parse_numeric_zone(kind: str, value: bytes) -> tuple[int, str, bytes]:
    """(offset seconds, range error, rest) of a numeric zone like ``-07:00``."""
    length, colons, slices = next(
        (length, colons, slices)
        for suffix, length, colons, slices in _ZONE_SHAPES
        if kind.endswith(suffix)
    )
    if len(value) < length or any(value[i] != 0x3A for i in colons):
        raise _Bad
    part = value[:length]
    fields = [0, 0, 0]
    bad = False
    for n, at in enumerate(slices):
        try:
            fields[n] = _getnum(part[at[0] : at[1]] if at else b"00", True)[0]
        except _Bad:
            # Go stops at the first malformed field and leaves the rest at zero.
            bad = True
            break
    hr, mm, ss = fields
    range_error = ""
    if hr > 24:
        range_error = "time zone offset hour"
    if mm > 60:
        range_error = "time zone offset minute"
    if ss > 60:
        range_error = "time zone offset second"
    offset = (hr * 60 + mm) * 60 + ss
    if part[0] == 0x2D:
        offset = -offset
    elif part[0] != 0x2B:
        bad = True
    if range_error:
        return offset, range_error, value[length:]
    if bad:
        raise _Bad
    return offset, "", value[length:]


@dataclass
class _Fields:
    year: int = 0
    month: int = -1
    day: int = -1
    yday: int = -1
    hour: int = 0
    minute: int = 0
    sec: int = 0
    nsec: int = 0
    utc: bool = False
    zone_offset: int = -1  # Go's sentinel: an offset of exactly -1s reads as "none"
    zone_name: bytes = b""
    am: bool = False
    pm: bool = False


def _parse_element(f: _Fields, chunk: _Chunk, rest: bytes, value: bytes) -> tuple[bytes, str]:
    """Consume one layout element from ``value``; returns (remaining value, range error)."""
    kind = chunk.std
    if kind == "06":
        if len(value) < 2:
            raise _Bad
        year = _atoi(value[:2])
        f.year = year + (1900 if year >= 69 else 2000)
        return value[2:], ""
    if kind == "2006":
        if len(value) < 4 or not _digit_at(value, 0):
            raise _Bad
        f.year = _atoi(value[:4])
        return value[4:], ""
    if kind in ("Jan", "January"):
        index, value = _lookup(_SHORT_MONTHS_B if kind == "Jan" else _LONG_MONTHS_B, value)
        f.month = index + 1
        return value, ""
    if kind in ("1", "01"):
        f.month, value = _getnum(value, kind == "01")
        return value, "" if 0 < f.month <= 12 else "month"
    if kind in ("Mon", "Monday"):
        _, value = _lookup(_SHORT_DAYS_B if kind == "Mon" else _LONG_DAYS_B, value)
        return value, ""
    if kind in ("2", "_2", "02"):
        if kind == "_2" and value[:1] == b" ":
            value = value[1:]
        f.day, value = _getnum(value, kind == "02")
        return value, ""
    if kind in ("__2", "002"):
        if kind == "__2":
            for _ in range(2):
                if value[:1] == b" ":
                    value = value[1:]
        f.yday, value = _getnum3(value, kind == "002")
        return value, ""
    if kind == "15":
        f.hour, value = _getnum(value, False)
        return value, "" if f.hour < 24 else "hour"
    if kind in ("3", "03"):
        f.hour, value = _getnum(value, kind == "03")
        return value, "" if f.hour <= 12 else "hour"
    if kind in ("4", "04"):
        f.minute, value = _getnum(value, kind == "04")
        return value, "" if f.minute < 60 else "minute"
    if kind in ("5", "05"):
        f.sec, value = _getnum(value, kind == "05")
        if f.sec >= 60:
            return value, "second"
        # A fraction may follow the seconds even when the layout does not mention one.
        if len(value) >= 2 and value[0] in (0x2E, 0x2C) and _digit_at(value, 1):
            if _next_chunk(rest).std in (".0", ".9"):
                return value, ""
            n = 2
            while _digit_at(value, n):
                n += 1
            f.nsec, range_error = _parse_nanoseconds(value, n)
            return value[n:], range_error
        return value, ""
    if kind in ("PM", "pm"):
        if len(value) < 2:
            raise _Bad
        word = value[:2]
        if word == (b"PM" if kind == "PM" else b"pm"):
            f.pm = True
        elif word == (b"AM" if kind == "PM" else b"am"):
            f.am = True
        else:
            raise _Bad
        return value[2:], ""
    if kind[0] in "Z-":
        if kind[0] == "Z" and value[:1] == b"Z":
            f.utc = True
            return value[1:], ""
        f.zone_offset, range_error, value = _parse_numeric_zone(kind, value)
        return value, range_error
    if kind == "MST":
        if value[:3] == b"UTC":
            f.utc = True
            return value[3:], ""
        n = _zone_name_len(value)
        if n == 0:
            raise _Bad
        f.zone_name = value[:n]
        return value[n:], ""
    if kind == ".0":
        ndigit = 1 + chunk.digits
        if len(value) < ndigit:
            raise _Bad
        f.nsec, range_error = _parse_nanoseconds(value, ndigit)
        return value[ndigit:], range_error
    # ".9": optional, and takes every digit present.
    if len(value) < 2 or value[0] not in (0x2E, 0x2C) or not _digit_at(value, 1):
        return value, ""
    n = 2
    while _digit_at(value, n):
        n += 1
    f.nsec, range_error = _parse_nanoseconds(value, n)
    return value[n:], range_error


def parse(layout: str, value: str, local: Zone | None = None) -> GoTime:
    """Go's ``time.Parse``; the result's zone is UTC (only the instant is meaningful).

    ``local`` stands in for Go's ``time.Local`` when resolving zone abbreviations.
    """
    full_layout, full_value = layout.encode(), value.encode()
    rest_layout, rest = full_layout, full_value
    f = _Fields()
    while True:
        chunk = _next_chunk(rest_layout)
        try:
            rest = _skip(rest, chunk.prefix)
        except _SkipError as exc:
            raise _parse_error(full_layout, full_value, chunk.prefix, exc.rest, "") from None
        if not chunk.std:
            if rest:
                message = ": extra text: " + go_quote(rest)
                raise _parse_error(full_layout, full_value, b"", rest, message)
            break
        rest_layout = chunk.suffix
        try:
            remaining, range_error = _parse_element(f, chunk, rest_layout, rest)
        except _Bad:
            raise _parse_error(full_layout, full_value, chunk.text, rest, "") from None
        if range_error:
            message = f": {range_error} out of range"
            raise _parse_error(full_layout, full_value, chunk.text, remaining, message)
        rest = remaining
    return _assemble(f, full_value, local if local is not None else local_zone())


def _assemble(f: _Fields, full_value: bytes, local: Zone) -> GoTime:
    if f.pm and f.hour < 12:
        f.hour += 12
    elif f.am and f.hour == 12:
        f.hour = 0
    if f.yday >= 0:
        _apply_year_day(f, full_value)
    else:
        f.month = 1 if f.month < 0 else f.month
        f.day = 1 if f.day < 0 else f.day
    if f.day < 1 or f.day > days_in(f.month, f.year):
        raise GoTimeError("parsing time " + go_quote(full_value) + ": day out of range")
    t = go_date(f.year, f.month, f.day, hour=f.hour, minute=f.minute, sec=f.sec, nsec=f.nsec)
    if f.utc:
        return t
    if f.zone_offset != -1:
        return GoTime(t.unix - f.zone_offset, t.nsec)
    if f.zone_name:
        offset = local.lookup_name(f.zone_name.decode("latin-1"), t.unix)
        if offset is not None:
            return GoTime(t.unix - offset, t.nsec)
        # An unknown abbreviation only labels the wall time; the instant stays as if UTC.
    return t


def _apply_year_day(f: _Fields, full_value: bytes) -> None:
    yday = f.yday
    month = day = 0
    if _is_leap(f.year):
        if yday == 31 + 29:
            month, day = 2, 29
        elif yday > 31 + 29:
            yday -= 1
    if yday < 1 or yday > 365:
        raise GoTimeError("parsing time " + go_quote(full_value) + ": day-of-year out of range")
    if month == 0:
        month = (yday - 1) // 31 + 1
        if _days_before(month + 1) < yday:
            month += 1
        day = yday - _days_before(month)
    if f.month >= 0 and f.month != month:
        message = ": day-of-year does not match month"
        raise GoTimeError("parsing time " + go_quote(full_value) + message)
    f.month = month
    if f.day >= 0 and f.day != day:
        message = ": day-of-year does not match day"
        raise GoTimeError("parsing time " + go_quote(full_value) + message)
    f.day = day


# --- durations ---------------------------------------------------------------------------

_UNITS = {
    b"ns": 1,
    b"us": 1_000,
    "µs".encode(): 1_000,
    "μs".encode(): 1_000,
    b"ms": 1_000_000,
    b"s": _NS,
    b"m": 60 * _NS,
    b"h": 3600 * _NS,
}


def parse_duration(text: str) -> int:
    """Go's ``time.ParseDuration``, in nanoseconds; raises with Go's message."""
    orig = s = text.encode()

    def invalid(message: str = "invalid duration") -> GoTimeError:
        return GoTimeError(f"time: {message} {go_quote(orig)}")

    neg = False
    if s[:1] in (b"-", b"+"):
        neg = s[:1] == b"-"
        s = s[1:]
    if s == b"0":
        return 0
    if not s:
        raise invalid()
    total = 0
    while s:
        if not (s[0] == 0x2E or 0x30 <= s[0] <= 0x39):
            raise invalid()
        before = len(s)
        try:
            v, s = _leading_int(s)
        except _Bad:
            raise invalid() from None
        had_int = len(s) != before
        frac, scale, had_frac = 0, 1.0, False
        if s[:1] == b".":
            s = s[1:]
            before = len(s)
            frac, scale, s = _leading_fraction(s)
            had_frac = len(s) != before
        if not had_int and not had_frac:
            raise invalid()
        i = 0
        while i < len(s) and not (s[i] == 0x2E or 0x30 <= s[i] <= 0x39):
            i += 1
        if i == 0:
            raise invalid("missing unit in duration")
        unit_name, s = s[:i], s[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise invalid(f"unknown unit {go_quote(unit_name)} in duration")
        if v > (1 << 63) // unit:
            raise invalid()
        v *= unit
        if frac > 0:
            v += int(float(frac) * (float(unit) / scale))
            if v > 1 << 63:
                raise invalid()
        total = (total + v) % _U64
        if total > 1 << 63:
            raise invalid()
    if neg:
        return _wrap64(-_wrap64(total))
    if total > (1 << 63) - 1:
        raise invalid()
    return total


def _leading_fraction(s: bytes) -> tuple[int, float, bytes]:
    x, scale, overflow = 0, 1.0, False
    i = 0
    while i < len(s) and 0x30 <= s[i] <= 0x39:
        if not overflow:
            if x > ((1 << 63) - 1) // 10:
                overflow = True
            else:
                y = x * 10 + s[i] - 0x30
                if y > 1 << 63:
                    overflow = True
                else:
                    x = y
                    scale *= 10
        i += 1
    return x, scale, s[i:]
