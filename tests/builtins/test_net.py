"""Tests for the network builtins (``net.cidr_*`` on the host, ``net.lookup_ip_addr``)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from opa_oracle import OPA, Outcome, eval_calls, mismatches

from pdp.builtins.base import BuiltinError, EvalContext, OperandError
from pdp.builtins.net import (
    CancelError,
    format_ip,
    net_cidr_contains_matches,
    net_cidr_expand,
    net_cidr_is_valid,
    net_cidr_merge,
    net_lookup_ip_addr,
    parse_addr,
)
from pdp.values import RegoSet, rego_equal

CTX = EvalContext()

FNS = {
    "net.cidr_contains_matches": net_cidr_contains_matches,
    "net.cidr_expand": net_cidr_expand,
    "net.cidr_is_valid": net_cidr_is_valid,
    "net.cidr_merge": net_cidr_merge,
    "net.lookup_ip_addr": net_lookup_ip_addr,
}


# --- parsing and formatting ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("::", "::"),
        ("::1", "::1"),
        ("1:0:0:0:0:0:0:1", "1::1"),
        ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),
        ("1:0:0:1:0:0:1:1", "1::1:0:0:1:1"),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("::1.2.3.4", "::102:304"),
        ("FE80::ABCD", "fe80::abcd"),
        ("2001:db8::", "2001:db8::"),
    ],
)
def test_addresses_print_like_go(text: str, expected: str) -> None:
    addr = parse_addr(text)
    assert addr is not None
    assert format_ip(addr.value) == expected


@pytest.mark.parametrize(
    "text",
    ["", "1.2.3", "1.2.3.4.5", "01.2.3.4", "256.1.1.1", "1..2.3", "1:2", "1::2::3", ":1", "1:",
     "12345::", "::g", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", "fe80::1%", "1.2.3.4%eth0",
     "::1.2.3", "1:2:3:4:5:6:7:1.2.3.4", " 1.2.3.4"],
)  # fmt: skip
def test_invalid_addresses(text: str) -> None:
    assert parse_addr(text) is None


def test_zone_is_kept_for_literals_only() -> None:
    addr = parse_addr("fe80::1%eth0")
    assert addr is not None and addr.zone == "eth0"
    assert net_cidr_is_valid(CTX, "fe80::1%eth0/64") is False


# --- net.cidr_is_valid / net.cidr_expand -----------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("192.168.1.0/24", True),
        ("192.168.1.7/024", True),
        ("192.168.1.7/33", False),
        ("2002::1234:abcd:ffff:c0a8:101/64", True),
        ("::/129", False),
        ("10.0.0.0/+8", False),
        ("10.0.0.0", False),
        ("", False),
        (1, False),
        (None, False),
    ],
)
def test_cidr_is_valid(value: Any, expected: bool) -> None:
    assert net_cidr_is_valid(CTX, value) is expected


def test_cidr_expand() -> None:
    assert list(net_cidr_expand(CTX, "192.168.1.1/30")) == [
        "192.168.1.0", "192.168.1.1", "192.168.1.2", "192.168.1.3"
    ]  # fmt: skip
    assert list(net_cidr_expand(CTX, "::ffff:10.0.0.0/127")) == ["10.0.0.0", "10.0.0.1"]
    assert list(net_cidr_expand(CTX, "2001:db8::/127")) == ["2001:db8::", "2001:db8::1"]
    assert len(net_cidr_expand(CTX, "10.0.0.0/16")) == 65536


def test_cidr_expand_errors() -> None:
    with pytest.raises(BuiltinError) as info:
        net_cidr_expand(CTX, "192.168.1.1/33")
    assert info.value.message == "invalid CIDR address: 192.168.1.1/33"
    with pytest.raises(OperandError, match="operand 1 must be string but got number"):
        net_cidr_expand(CTX, 1)


def test_cidr_expand_of_a_huge_network_is_cancelled() -> None:
    # OPA expands until the evaluation is cancelled; the host gives up up front.
    with pytest.raises(CancelError) as info:
        net_cidr_expand(CTX, "10.0.0.0/8")
    assert info.value.code == "eval_cancel_error"
    assert info.value.message == "net.cidr_expand: timed out before generating all IP addresses"
    assert info.value.prefix is False


# --- net.cidr_contains_matches ---------------------------------------------------------


def test_cidr_contains_matches_keys() -> None:
    result = net_cidr_contains_matches(
        CTX, {"k1": "1.1.1.1/24", "k2": ["1.1.1.2/24", 1]}, RegoSet(["1.1.1.128", "2.2.2.2"])
    )
    assert result == RegoSet([["k1", "1.1.1.128"], ["k2", "1.1.1.128"]])
    assert net_cidr_contains_matches(CTX, [["10.0.0.0/8", "x"]], "10.1.0.0/16") == RegoSet(
        [[0, "10.1.0.0/16"]]
    )
    assert net_cidr_contains_matches(CTX, 5, "x") == RegoSet()


@pytest.mark.parametrize(
    ("a", "b", "error", "message"),
    [
        (["1.0.0.0/8"], [1], BuiltinError, "operand 2: element must be string or non-empty array"),
        ([[]], "1.2.3.4", BuiltinError, "operand 1: element must be string or non-empty array"),
        ([[1]], "1.2.3.4", OperandError, "operand 1 must be string but got number"),
        ("x", "1.2.3.4", BuiltinError, "invalid CIDR address: x"),
        ("1.0.0.0/8", "y", BuiltinError,
         "not a valid textual representation of an IP address or CIDR: y"),
    ],
)  # fmt: skip
def test_cidr_contains_matches_errors(a: Any, b: Any, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        net_cidr_contains_matches(CTX, a, b)
    assert type(info.value) is error
    assert info.value.message == message


# --- net.cidr_merge --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addrs", "expected"),
    [
        ([], []),
        (["192.0.128.0/24", "192.0.129.0/24"], ["192.0.128.0/23"]),
        (["192.0.2.112/30", "192.0.2.116/32", "192.0.2.118/31"],
         ["192.0.2.112/30", "192.0.2.116/32", "192.0.2.118/31"]),
        (["fe80::/120", "192.0.2.0/24", "192.0.3.0/24"], ["192.0.2.0/23", "fe80::/120"]),
        # A bare IPv4 address takes its classful mask and keeps its host bits if unmerged.
        (["10.1.2.3"], ["10.1.2.3/8"]),
        (["192.0.2.112", "192.0.2.112"], ["192.0.2.0/24"]),
        (["::ffff:1.2.3.0/120"], ["1.2.3.0/24"]),
        # OPA lays IPv4-mapped networks out oddly, so they neither merge nor get swallowed.
        (["::ffff:1.2.3.0/120", "1.2.3.0/25"], ["1.2.3.0/24", "1.2.3.0/25"]),
        (["::/0", "1.2.3.0/24"], ["::/0"]),
        (["1.2.3.0/24", "1.2.4.0/24", "1.2.5.0/24", "1.2.6.0/23", "1.2.8.0/21"],
         ["1.2.3.0/24", "1.2.4.0/22", "1.2.8.0/21"]),
        (RegoSet(["192.0.2.112/30", "192.0.2.116/31", "192.0.2.118/31"]), ["192.0.2.112/29"]),
        # OPA crashes on these (ranges whose spanning network starts with a zero byte);
        # the host answers with the true merge.
        (["64:ff9b::1/128", "64:ff9b::2/127"], ["64:ff9b::1/128", "64:ff9b::2/127"]),
        (["::2/128", "::3/128"], ["::2/127"]),
        (["::ffff:1.2.3.0/120", "::ffff:1.2.4.0/120"], ["1.2.3.0/24", "1.2.4.0/24"]),
    ],
)  # fmt: skip
def test_cidr_merge(addrs: Any, expected: list[str]) -> None:
    assert net_cidr_merge(CTX, addrs) == RegoSet(expected)


@pytest.mark.parametrize(
    ("addrs", "message"),
    [
        (["2601:600::1"], "IPv6 invalid: needs prefix length"),
        (["foo"], "invalid CIDR address: foo"),
        ([1], "element must be string"),
        ("1.2.3.4", "operand must be an array"),
    ],
)
def test_cidr_merge_errors(addrs: Any, message: str) -> None:
    with pytest.raises(BuiltinError) as info:
        net_cidr_merge(CTX, addrs)
    assert type(info.value) is BuiltinError
    assert info.value.message == message


# --- net.lookup_ip_addr ----------------------------------------------------------------


def test_lookup_literals_and_localhost() -> None:
    ctx = EvalContext()
    assert net_lookup_ip_addr(ctx, "10.0.0.0") == RegoSet(["10.0.0.0"])
    assert net_lookup_ip_addr(ctx, "::ffff:10.0.0.1") == RegoSet(["10.0.0.1"])
    assert net_lookup_ip_addr(ctx, "fe80::1%lo") == RegoSet(["fe80::1%lo"])
    localhost = net_lookup_ip_addr(ctx, "localhost")
    assert localhost in (RegoSet(["127.0.0.1"]), RegoSet(["127.0.0.1", "::1"]), RegoSet(["::1"]))
    assert ctx.cache[("net.lookup_ip_addr", "localhost")] is localhost


def test_lookup_errors() -> None:
    with pytest.raises(BuiltinError) as info:
        net_lookup_ip_addr(EvalContext(), "")
    assert info.value.message == "lookup : no such host"
    with pytest.raises(OperandError, match="operand 1 must be string but got number"):
        net_lookup_ip_addr(EvalContext(), 1)


# --- differential ----------------------------------------------------------------------


def _random_cidr(rnd: random.Random) -> str:
    if rnd.random() < 0.7:
        head = rnd.choice(["10.0", "192.0", "172.16", "1.2", "0.0", "255.255", "128.0"])
        ip = f"{head}.{rnd.choice([0, 1, 2, 3, 4, 128, 254, 255])}.{rnd.randrange(256)}"
        if rnd.random() < 0.2:
            return ip
        return f"{ip}/{rnd.choice([0, 1, 8, 15, 16, 22, 23, 24, 25, 28, 29, 30, 31, 32])}"
    head = rnd.choice(["2001:db8", "fe80", "2001:db8:0:1"])
    tail = ":".join(str(rnd.choice([0, 1, 2, 3, "fffe", "ffff"])) for _ in range(2))
    return f"{head}::{tail}/{rnd.choice([0, 1, 16, 32, 64, 112, 120, 126, 127, 128])}"


def _differential_cases() -> list[tuple[str, list[Any]]]:
    rnd = random.Random(20240601)
    cases: list[tuple[str, list[Any]]] = []
    for _ in range(150):
        cases.append(("net.cidr_merge", [[_random_cidr(rnd) for _ in range(rnd.randrange(7))]]))
    cases.append(("net.cidr_merge", [RegoSet(["10.0.0.0/25", "10.0.0.128/25", "10.0.1.1"])]))
    pool = ["10.0.0.0/8", "10.1.2.0/24", "0.0.0.0/0", "::/0", "::/80", "::ffff:10.0.0.0/104",
            "2001:db8::/32", "2001:db8::1/128", "::10.1.2.3/128", "::ffff:a01:0/112"]  # fmt: skip
    ips = [*pool, "10.1.2.3", "::ffff:10.1.2.3", "2001:db8::1", "::", "::1", "::10.1.2.3"]
    for _ in range(60):
        cases.append(
            (
                "net.cidr_contains_matches",
                [rnd.sample(pool, rnd.randrange(1, 4)), rnd.sample(ips, rnd.randrange(1, 4))],
            )
        )
    cases.append(("net.cidr_contains_matches", [RegoSet([["10.0.0.0/8", "a"]]), {"k": "10.1.1.1"}]))
    for cidr in ["10.1.2.0/30", "::ffff:10.1.2.0/126", "2001:db8::/126", "::/126",
                 "255.255.255.255/32", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127",
                 "10.1.2.3/28", "::ffff:0:0/120", "1.2.3.4/33", "x"]:  # fmt: skip
        cases.append(("net.cidr_expand", [cidr]))
    for text in ["1.2.3.4/32", "01.2.3.4/8", "::1/128", "::1%eth0/128", "1.2.3.4", "/8", "1::/",
                 "1::/0129", "1.2.3.4/-1", "::ffff:1.2.3.4/97", 5]:  # fmt: skip
        cases.append(("net.cidr_is_valid", [text]))
    for text in ["10.0.0.0", "::", "::ffff:1.2.3.4", "fe80::1%eth0", "", 7]:
        cases.append(("net.lookup_ip_addr", [text]))
    # Errors, reported in batch by --show-builtin-errors.
    cases += [
        ("net.cidr_merge", [["2601:600::1"]]),
        ("net.cidr_merge", [["foo"]]),
        ("net.cidr_merge", [[1]]),
        ("net.cidr_merge", ["1.2.3.4"]),
        ("net.cidr_contains_matches", [[[1, "x"]], "1.2.3.4"]),
        ("net.cidr_contains_matches", [["1.0.0.0/8"], [[], "1.2.3.4"]]),
        ("net.cidr_contains_matches", ["1.0.0.0/8", "y"]),
        ("net.cidr_expand", [3]),
    ]
    return cases


def _our_result(name: str, args: list[Any]) -> tuple[Any, ...]:
    try:
        value = FNS[name](EvalContext(), *args)
    except BuiltinError as exc:
        return ("error", exc.code, f"{name}: {exc.message}" if exc.prefix else exc.message)
    return ("ok", list(value) if isinstance(value, RegoSet) else value)


def _same(ours: Outcome, theirs: Outcome) -> bool:
    """Outcomes agree; sets of CIDRs come back as arrays whose order may differ."""
    if ours[0] == "ok" and theirs[0] == "ok":
        if isinstance(ours[1], list):
            return rego_equal(RegoSet(ours[1]), RegoSet(theirs[1]))
        return rego_equal(ours[1], theirs[1])
    return ours == theirs


@pytest.mark.differential
def test_agrees_with_opa_eval() -> None:
    if not OPA.exists():
        pytest.skip("pinned opa binary not installed")
    cases = _differential_cases()
    found = mismatches(cases, eval_calls(cases, timeout=60), _our_result, _same)
    assert not found, "\n".join(found[:20])
