"""Unit tests for ``uuid.parse``, ``uuid.rfc4122`` and ``rand.intn``."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pdp.builtins.base import UNDEFINED, EvalContext, OperandError
from pdp.builtins.identifiers import BUILTINS, rand_intn, uuid_parse, uuid_rfc4122

V2 = {
    "clocksequence": 12800,
    "domain": "Person",
    "id": 1000,
    "macvariables": "local:unicast",
    "nodeid": "32-50-96-b3-9f-47",
    "time": 1693566990121469600,
    "variant": "RFC4122",
    "version": 2,
}
V4 = {"variant": "RFC4122", "version": 4}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00000000-0000-4000-8000-000000000000", V4),
        ("{00000000-0000-4000-8000-000000000000}", V4),
        ("(00000000-0000-4000-8000-000000000000!", V4),
        ("urn:uuid:000003e8-48b9-21ee-b200-325096b39f47", V2),
        ("URN:UUID:000003E8-48B9-21EE-B200-325096B39F47", V2),
        ("000003e8-48b9-21ee-b200-325096b39f47", V2),
        ("6bea8ef2d3d33cd184e09bab06a52ece", {"variant": "RFC4122", "version": 3}),
        ("c232ab00-9414-11ec-f3c8-0f6bdeced846", {
            "clocksequence": 13256,
            "macvariables": "local:multicast",
            "nodeid": "0f-6b-de-ce-d8-46",
            "time": 1645557742000000000,
            "variant": "Future",
            "version": 1,
        }),
        # Far-future timestamps wrap around in Go's int64 arithmetic.
        ("000003e8-48b9-2fff-b207-325096b39f47", {
            **V2,
            "clocksequence": 12807,
            "domain": "Domain7",
            "time": -7627758338628614496,
        }),
        ("ffffffff-ffff-1fff-bfff-ffffffffffff", {
            "clocksequence": 16383,
            "macvariables": "local:multicast",
            "nodeid": "ff-ff-ff-ff-ff-ff",
            "time": -7607606781572612196,
            "variant": "RFC4122",
            "version": 1,
        }),
        ("00000000-0000-4000-8000-00000000000g", UNDEFINED),
        ("00000000x0000-4000-8000-000000000000", UNDEFINED),
        ("urn:uuix:000003e8-48b9-21ee-b200-325096b39f47", UNDEFINED),
        ("", UNDEFINED),
    ],
)  # fmt: skip
def test_uuid_parse(text: str, expected: Any) -> None:
    assert uuid_parse(EvalContext(), text) == expected


def test_uuid_parse_type_error() -> None:
    with pytest.raises(OperandError, match="operand 1 must be string but got number"):
        uuid_parse(EvalContext(), 123)


def test_uuid_rfc4122_is_cached_per_evaluation() -> None:
    ctx = EvalContext()
    first = uuid_rfc4122(ctx, "key")
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", first
    )
    assert uuid_rfc4122(ctx, "key") == first
    assert uuid_rfc4122(ctx, "other") != first
    assert uuid_rfc4122(EvalContext(), "key") != first
    # OPA keys the cache on the value's hash, so any value is accepted.
    assert uuid_rfc4122(ctx, [1, {"a": 1}]) == uuid_rfc4122(ctx, [1.0, {"a": 1}])


def test_rand_intn_is_cached_and_in_range() -> None:
    ctx = EvalContext()
    values = {rand_intn(ctx, "key", 100) for _ in range(50)}
    assert len(values) == 1
    assert 0 <= values.pop() < 100
    assert rand_intn(ctx, "key", -100) == rand_intn(ctx, "key", 100)
    assert rand_intn(ctx, "key", 0) == 0
    assert rand_intn(ctx, "key", 1) == 0
    assert {rand_intn(EvalContext(), "k", 2**62) for _ in range(5)} != {0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1, 5), "operand 1 must be string but got number"),
        (("x", "5"), "operand 2 must be number but got string"),
        (("x", 1.5), "operand 2 must be integer number but got floating-point number"),
        (("x", 2**63), "operand 2 must be integer number but got floating-point number"),
    ],
)
def test_rand_intn_operand_errors(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(OperandError) as exc:
        rand_intn(EvalContext(), *args)
    assert exc.value.message == message


def test_random_builtins_are_not_deterministic() -> None:
    flags = {spec.name: spec.deterministic for spec in BUILTINS}
    assert flags == {"uuid.parse": True, "uuid.rfc4122": False, "rand.intn": False}
