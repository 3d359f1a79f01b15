"""Device posture: facts read from the host this agent runs on, and the signed report format.

Facts
-----
:func:`collect_facts` returns one :class:`Fact` per name below. Each says where it came
from (``source``) and whether it could be determined; an undetermined fact has value
``None`` and the gateway treats it as non-compliant, never as a pass.

``os``                 ``{"id", "name", "version_id", "pretty_name"}`` from os-release.
``kernel``             the running kernel's release string (``uname -r``).
``days_since_update``  whole days since a package was last installed or upgraded: the newest
                       ``install``/``upgrade`` line of ``/var/log/dpkg.log*``, else the mtime
                       of ``/var/lib/apt/periodic/upgrade-stamp``, else of ``/var/lib/dpkg/info``.
``disk_encrypted``     whether the block device behind ``/`` sits on dm-crypt: the device
                       stack is walked through ``/sys/dev/block/M:m`` (``slaves/`` and partition
                       parents) looking for a ``dm/uuid`` starting ``CRYPT-``. Self-encrypting
                       drives and file-level encryption are not seen and report ``False``.
``firewall_on``        whether inbound packets are filtered: an nftables base chain on the
                       input hook (families ip, ip6, inet) with a drop policy or any rule, read
                       over netlink (CAP_NET_ADMIN, no ``nft`` binary needed, covers
                       iptables-nft), or legacy iptables ``INPUT`` rules via
                       ``iptables-legacy-save`` when ``/proc/net/ip*_tables_names`` lists tables.
``screen_lock``        ``"enabled"``/``"disabled"`` from GNOME's ``lock-enabled`` setting, or
                       ``"not_applicable"`` when the host has no display at all.
``agent_version``      the installed ``council-gateway`` distribution's version.

Report and canonical encoding
-----------------------------
A report (:func:`build_report`) is the JSON object::

    {"type": "council.posture.report/1", "device_id": str, "issued_at_ms": int,
     "nonce": 32 lowercase hex digits, "facts": {name: {"value", "determined",
     "source", "detail"}}}

It is signed and transmitted in its canonical encoding, :func:`canonical`:
``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
allow_nan=False)`` as ASCII bytes. Object keys are strings sorted by code point, no
whitespace, non-ASCII escaped as ``\\uXXXX``. Floats are refused and integers must lie
within ±2**53, so every JSON implementation reads the same numbers back. The Ed25519
signature covers exactly these bytes; the gateway re-encodes what it parsed and refuses a
payload that is not already canonical, so there is one byte string per report.

Thread safety: every function here is safe to call from any thread; none keeps state.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import math
import os
import platform
import re
import secrets
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "FACT_NAMES",
    "REPORT_TYPE",
    "Fact",
    "build_report",
    "canonical",
    "collect_facts",
]

REPORT_TYPE = "council.posture.report/1"
FACT_NAMES = (
    "os",
    "kernel",
    "days_since_update",
    "disk_encrypted",
    "firewall_on",
    "screen_lock",
    "agent_version",
)
DISTRIBUTION = "council-gateway"
MAX_SAFE_INTEGER = 2**53
COMMAND_TIMEOUT_SECONDS = 5.0
SECONDS_PER_DAY = 86_400

DPKG_LOG_DIR = Path("/var/log")
APT_UPGRADE_STAMP = Path("/var/lib/apt/periodic/upgrade-stamp")
DPKG_INFO_DIR = Path("/var/lib/dpkg/info")
SYS_DEV_BLOCK = Path("/sys/dev/block")
PROC_MOUNTS = Path("/proc/mounts")
LEGACY_TABLE_NAMES = (Path("/proc/net/ip_tables_names"), Path("/proc/net/ip6_tables_names"))
X11_SOCKET_DIR = Path("/tmp/.X11-unix")
RUN_USER_DIR = Path("/run/user")


@dataclass(frozen=True)
class Fact:
    """One observation about the host.

    Attributes:
        value: the observation (JSON: str, int, bool, object of str); None when undetermined.
        determined: whether the agent could actually tell.
        source: where the value came from (file, interface or command).
        detail: what was seen, or why it could not be told.
    """

    value: Any
    determined: bool
    source: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """The fact as it appears in a report."""
        return {
            "value": self.value,
            "determined": self.determined,
            "source": self.source,
            "detail": self.detail,
        }


def _unknown(source: str, detail: str) -> Fact:
    return Fact(None, False, source, detail)


# --- canonical encoding ---------------------------------------------------------------


def _check_portable(value: Any, path: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"{path}: integer {value} is outside ±2**53")
        return
    if isinstance(value, float):
        raise ValueError(f"{path}: floats are not allowed in a signed report")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: object key {key!r} is not a string")
            _check_portable(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_portable(item, f"{path}[{i}]")
        return
    raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


def canonical(doc: Mapping[str, Any]) -> bytes:
    """The canonical encoding of a report (see the module docstring); ValueError if impossible."""
    _check_portable(doc, "$")
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def build_report(
    device_id: str, facts: Mapping[str, Fact], *, now: float | None = None
) -> dict[str, Any]:
    """A report for ``device_id``: the facts, a fresh nonce and the issue time (``now``, Unix s)."""
    issued = time.time() if now is None else now
    return {
        "type": REPORT_TYPE,
        "device_id": device_id,
        "issued_at_ms": int(issued * 1000),
        "nonce": secrets.token_hex(16),
        "facts": {name: fact.to_json() for name, fact in facts.items()},
    }


# --- os, kernel, agent ------------------------------------------------------------------


def os_fact() -> Fact:
    """The operating system from os-release (freedesktop), else ``platform``."""
    try:
        release = platform.freedesktop_os_release()
    except OSError:
        system = platform.system()
        if not system:
            return _unknown("platform", "neither os-release nor platform.system() answered")
        value = {"id": system.lower(), "name": system, "version_id": platform.version()}
        value["pretty_name"] = f"{system} {value['version_id']}".strip()
        return Fact(value, True, "platform", "no os-release file")
    value = {
        "id": release.get("ID", ""),
        "name": release.get("NAME", ""),
        "version_id": release.get("VERSION_ID", ""),
        "pretty_name": release.get("PRETTY_NAME", ""),
    }
    return Fact(value, True, "os-release", "")


def kernel_fact() -> Fact:
    """The running kernel release (``uname -r``)."""
    release = platform.release()
    if not release:
        return _unknown("uname", "uname returned no release")
    return Fact(release, True, "uname", f"{platform.system()} {platform.machine()}".strip())


def agent_version_fact() -> Fact:
    """The version of the installed Council distribution this agent ships in."""
    source = f"package metadata {DISTRIBUTION}"
    try:
        return Fact(importlib.metadata.version(DISTRIBUTION), True, source)
    except importlib.metadata.PackageNotFoundError:
        return _unknown(source, f"{DISTRIBUTION} is not installed")


# --- days since update --------------------------------------------------------------------

_DPKG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:install|upgrade) ")


def _dpkg_logs(log_dir: Path) -> list[Path]:
    """dpkg.log, dpkg.log.1, dpkg.log.2.gz, … newest first (logrotate's numbering)."""

    def rank(path: Path) -> int:
        suffix = path.name.removeprefix("dpkg.log").removesuffix(".gz").lstrip(".")
        return int(suffix) if suffix.isdigit() else 0

    logs = [p for p in log_dir.glob("dpkg.log*") if p.is_file()]
    return sorted(logs, key=rank)


def _read_log(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            return fh.read()
    return path.read_text(encoding="utf-8", errors="replace")


def _last_dpkg_change(log_dir: Path) -> tuple[Path, datetime] | None:
    for path in _dpkg_logs(log_dir):
        try:
            text = _read_log(path)
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        stamps = [m.group(1) for m in map(_DPKG_LINE.match, text.splitlines()) if m]
        if stamps:
            # dpkg writes local wall-clock time without a zone; astimezone() reads it as local.
            when = datetime.strptime(max(stamps), "%Y-%m-%d %H:%M:%S").astimezone()
            return path, when
    return None


def _days(since: float, now: float) -> int:
    # A clock set backwards must not make a device look freshly patched forever; clamp at 0.
    return max(0, math.floor((now - since) / SECONDS_PER_DAY))


def days_since_update_fact(
    *,
    now: float | None = None,
    log_dir: Path = DPKG_LOG_DIR,
    upgrade_stamp: Path = APT_UPGRADE_STAMP,
    dpkg_info: Path = DPKG_INFO_DIR,
) -> Fact:
    """Whole days since the last package install/upgrade, saying which record told."""
    current = time.time() if now is None else now
    found = _last_dpkg_change(log_dir)
    if found is not None:
        path, when = found
        detail = f"last install/upgrade at {when.isoformat(timespec='seconds')}"
        return Fact(_days(when.timestamp(), current), True, str(path), detail)
    for path, what in (
        (upgrade_stamp, "unattended-upgrades stamp"),
        (dpkg_info, "package database directory"),
    ):
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        when = datetime.fromtimestamp(mtime).astimezone().isoformat(timespec="seconds")
        return Fact(_days(mtime, current), True, str(path), f"{what} modified {when}")
    return _unknown(
        "dpkg/apt",
        f"no dpkg log under {log_dir}, no {upgrade_stamp}, no {dpkg_info}: not a dpkg host?",
    )


# --- disk encryption ---------------------------------------------------------------------------


def _root_mount_source(mounts: Path) -> tuple[str, str] | None:
    """(source, fstype) of the mount on ``/``; the last one wins, as in the kernel's view."""
    found = None
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "/":
            found = (fields[0], fields[2])
    return found


def _root_sysfs_device(sys_dev_block: Path, mounts: Path) -> tuple[Path | None, str]:
    """The sysfs directory of the block device holding ``/``, or None and why not."""
    st_dev = os.stat("/").st_dev
    candidate = sys_dev_block / f"{os.major(st_dev)}:{os.minor(st_dev)}"
    if candidate.exists():
        return candidate.resolve(), f"st_dev of / is {os.major(st_dev)}:{os.minor(st_dev)}"
    # btrfs and overlayfs give / an anonymous st_dev; the mount table may still name a device.
    mount = _root_mount_source(mounts)
    if mount is None:
        return None, f"/ is not in {mounts}"
    source, fstype = mount
    if not source.startswith("/dev/"):
        return None, f"/ is a {fstype} mount of {source!r}, not a block device"
    try:
        rdev = os.stat(source).st_rdev
    except OSError as exc:
        return None, f"cannot stat {source}: {exc.strerror}"
    candidate = sys_dev_block / f"{os.major(rdev)}:{os.minor(rdev)}"
    if not candidate.exists():
        return None, f"{source} has no entry under {sys_dev_block}"
    return candidate.resolve(), f"/ is mounted from {source}"


def _device_stack(top: Path) -> Iterator[Path]:
    """``top`` and every device beneath it (dm slaves, the disk holding a partition)."""
    seen: set[Path] = set()
    todo = [top]
    while todo:
        dev = todo.pop()
        if dev in seen:
            continue
        seen.add(dev)
        yield dev
        slaves = dev / "slaves"
        if slaves.is_dir():
            todo.extend(p.resolve() for p in slaves.iterdir())
        if (dev / "partition").exists():
            todo.append(dev.parent)


def disk_encryption_fact(
    *, sys_dev_block: Path = SYS_DEV_BLOCK, mounts: Path = PROC_MOUNTS
) -> Fact:
    """Whether the root filesystem's block device stack contains a dm-crypt layer."""
    top, how = _root_sysfs_device(sys_dev_block, mounts)
    if top is None:
        return _unknown(f"{mounts}, {sys_dev_block}", how)
    names = []
    for dev in _device_stack(top):
        names.append(dev.name)
        try:
            uuid = (dev / "dm" / "uuid").read_text().strip()
        except OSError:
            continue
        if uuid.startswith("CRYPT-"):
            kind = uuid.split("-")[1] if uuid.count("-") >= 2 else "dm-crypt"
            detail = f"{how}; {dev.name} is dm-crypt ({kind}) under {names[0]}"
            return Fact(True, True, f"{dev}/dm/uuid", detail)
    detail = f"{how}; stack {' -> '.join(names)} has no dm-crypt (CRYPT-) layer"
    return Fact(False, True, str(top), detail)


# --- firewall -----------------------------------------------------------------------------------

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETCHAIN = 4
NFT_MSG_GETRULE = 7
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_TYPE_MASK = 0x3FFF
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, NFTA_CHAIN_HOOK, NFTA_CHAIN_POLICY = 1, 3, 4, 5
NFTA_HOOK_HOOKNUM = 1
NFTA_RULE_TABLE, NFTA_RULE_CHAIN = 1, 2
NF_INET_LOCAL_IN = 1
NF_DROP = 0
INET_FAMILIES = {1: "inet", 2: "ip", 10: "ip6"}
NETLINK_RECV_BYTES = 1 << 16


def _attrs(buf: bytes) -> dict[int, bytes]:
    """Netlink attributes (type → payload) of one message body; nested flags stripped."""
    out: dict[int, bytes] = {}
    off = 0
    while off + 4 <= len(buf):
        length, kind = struct.unpack_from("=HH", buf, off)
        if length < 4:
            break
        out[kind & NLA_TYPE_MASK] = buf[off + 4 : off + length]
        off += (length + 3) & ~3
    return out


def _nft_dump(sock: socket.socket, msg: int, seq: int) -> list[tuple[int, dict[int, bytes]]]:
    """Every object of one nftables dump as (family, attributes); OSError on a netlink error."""
    nfgen = struct.pack("=BBH", 0, 0, 0)  # family UNSPEC: all families; version 0
    header = struct.pack(
        "=IHHII",
        16 + len(nfgen),
        (NFNL_SUBSYS_NFTABLES << 8) | msg,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        0,
    )
    sock.send(header + nfgen)
    objects = []
    while True:
        data = sock.recv(NETLINK_RECV_BYTES)
        if not data:
            raise OSError("netlink closed the dump early")
        off = 0
        while off + 16 <= len(data):
            length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, off)
            if length < 16:
                raise OSError("malformed netlink message")
            if kind == NLMSG_DONE:
                return objects
            if kind == NLMSG_ERROR:
                errno = -struct.unpack_from("=i", data, off + 16)[0]
                raise OSError(errno, os.strerror(errno))
            family = data[off + 16]
            objects.append((family, _attrs(data[off + 20 : off + length])))
            off += (length + 3) & ~3


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _nftables_input_filtering() -> tuple[bool, str]:
    """(filtering, detail) from the kernel's nftables ruleset; OSError when unreadable."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.settimeout(COMMAND_TIMEOUT_SECONDS)
        sock.bind((0, 0))
        chains = _nft_dump(sock, NFT_MSG_GETCHAIN, 1)
        rules = _nft_dump(sock, NFT_MSG_GETRULE, 2)
    input_chains: dict[tuple[int, str, str], bool] = {}
    for family, attrs in chains:
        hook = _attrs(attrs.get(NFTA_CHAIN_HOOK, b""))
        if family not in INET_FAMILIES or NFTA_HOOK_HOOKNUM not in hook:
            continue
        if struct.unpack("!I", hook[NFTA_HOOK_HOOKNUM][:4])[0] != NF_INET_LOCAL_IN:
            continue
        policy = attrs.get(NFTA_CHAIN_POLICY)
        drops = policy is not None and struct.unpack("!I", policy[:4])[0] == NF_DROP
        key = (
            family,
            _cstr(attrs.get(NFTA_CHAIN_TABLE, b"")),
            _cstr(attrs.get(NFTA_CHAIN_NAME, b"")),
        )
        input_chains[key] = drops
    counts = dict.fromkeys(input_chains, 0)
    for family, attrs in rules:
        key = (
            family,
            _cstr(attrs.get(NFTA_RULE_TABLE, b"")),
            _cstr(attrs.get(NFTA_RULE_CHAIN, b"")),
        )
        if key in counts:
            counts[key] += 1
    active = [
        f"{INET_FAMILIES[f]} {t} {c} ({counts[(f, t, c)]} rules"
        + (", policy drop)" if drops else ")")
        for (f, t, c), drops in input_chains.items()
        if drops or counts[(f, t, c)]
    ]
    if active:
        return True, "input filtering in " + "; ".join(sorted(active))
    return False, f"{len(chains)} chains, {len(rules)} rules, none filtering input"


def _legacy_tables() -> list[str]:
    names = []
    for path in LEGACY_TABLE_NAMES:
        try:
            names += [f"{path.name.split('_')[0]}:{n}" for n in path.read_text().split()]
        except OSError:
            continue
    return names


def _legacy_input_filtering() -> tuple[bool | None, str]:
    """Legacy (x_tables) iptables INPUT filtering: True/False, or None when it cannot tell."""
    tables = _legacy_tables()
    if not tables:
        return False, "no legacy iptables tables loaded"
    tool = shutil.which("iptables-legacy-save")
    if tool is None:
        return None, f"legacy tables {tables} loaded but iptables-legacy-save is not installed"
    try:
        out = subprocess.run(
            [tool, "-t", "filter"],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{tool} failed: {exc}"
    lines = out.splitlines()
    rules = sum(1 for line in lines if line.startswith("-A INPUT "))
    drops = any(line.startswith(":INPUT DROP") for line in lines)
    return bool(rules or drops), f"legacy filter INPUT: {rules} rules, policy drop={drops}"


def firewall_fact() -> Fact:
    """Whether inbound traffic is filtered by nftables or legacy iptables."""
    if not hasattr(socket, "AF_NETLINK"):
        return _unknown("netlink nf_tables", f"no netlink on {platform.system()}")
    try:
        nft_on, nft_detail = _nftables_input_filtering()
    except (OSError, struct.error) as exc:
        return _unknown("netlink nf_tables", f"cannot read the nftables ruleset: {exc}")
    if nft_on:
        return Fact(True, True, "netlink nf_tables", nft_detail)
    legacy_on, legacy_detail = _legacy_input_filtering()
    source = "netlink nf_tables, /proc/net/ip*_tables_names"
    if legacy_on is None:
        return _unknown(source, f"{nft_detail}; {legacy_detail}")
    return Fact(legacy_on, True, source, f"{nft_detail}; {legacy_detail}")


# --- screen lock --------------------------------------------------------------------------------


def _displays() -> list[str]:
    """Signs of a graphical session: display variables, X11 sockets, Wayland sockets."""
    found = [f"${var}" for var in ("DISPLAY", "WAYLAND_DISPLAY") if os.environ.get(var)]
    if X11_SOCKET_DIR.is_dir():
        found += [str(p) for p in X11_SOCKET_DIR.iterdir()]
    if RUN_USER_DIR.is_dir():
        found += [str(p) for p in RUN_USER_DIR.glob("*/wayland-*") if not p.name.endswith(".lock")]
    return found


def screen_lock_fact() -> Fact:
    """``not_applicable`` on a host without any display, else GNOME's lock setting if readable."""
    displays = _displays()
    if not displays:
        return Fact("not_applicable", True, "environment, /tmp/.X11-unix, /run/user", "no display")
    tool = shutil.which("gsettings")
    if tool is None:
        return _unknown("gsettings", f"display present ({displays[0]}) but gsettings is missing")
    try:
        out = subprocess.run(
            [tool, "get", "org.gnome.desktop.screensaver", "lock-enabled"],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return _unknown("gsettings", f"cannot read the lock setting: {exc}")
    if out not in ("true", "false"):
        return _unknown("gsettings", f"unexpected lock-enabled value {out!r}")
    value = "enabled" if out == "true" else "disabled"
    return Fact(value, True, "gsettings org.gnome.desktop.screensaver lock-enabled", out)


# --- all of it ------------------------------------------------------------------------------------


def collect_facts(*, now: float | None = None) -> dict[str, Fact]:
    """Every fact in :data:`FACT_NAMES`, read from this host now."""
    return {
        "os": os_fact(),
        "kernel": kernel_fact(),
        "days_since_update": days_since_update_fact(now=now),
        "disk_encrypted": disk_encryption_fact(),
        "firewall_on": firewall_fact(),
        "screen_lock": screen_lock_fact(),
        "agent_version": agent_version_fact(),
    }
