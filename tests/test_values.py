"""Rego values in Python: ordering, equality, and the value-text codec."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.values import (
    ObjectKey,
    RegoSet,
    compare,
    decode,
    decode_json_compatible,
    encode,
    freeze,
    rego_equal,
    sorted_values,
    to_json_compatible,
    type_name,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False, width=64).filter(lambda f: not f.is_integer()),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
        st.lists(inner, max_size=4).map(RegoSet),
    ),
    max_leaves=20,
)


def opa_style(value: Any) -> str:
    """Value text with the separators OPA's opa_value_dump writes (", " and ": ")."""
    if isinstance(value, list):
        return "[" + ", ".join(opa_style(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{opa_style(k)}: {opa_style(v)}" for k, v in value.items()) + "}"
    if isinstance(value, RegoSet):
        return "{" + ", ".join(opa_style(v) for v in value) + "}" if len(value) else "set()"
    return encode(value)


@settings(max_examples=400)
@given(values)
def test_encode_decode_round_trip(value: Any) -> None:
    assert rego_equal(decode(encode(value)), value)
    assert rego_equal(decode(opa_style(value)), value)


@settings(max_examples=400)
@given(values)
def test_fast_json_decoding_agrees_with_the_full_parser(value: Any) -> None:
    for text in (encode(value), opa_style(value)):
        assert decode_json_compatible(text) == to_json_compatible(decode(text))


def test_sets_sort_and_dedupe_in_rego_order() -> None:
    s = RegoSet(["b", 1, None, True, [1], {"a": 1}, "a", 1.0])
    assert list(s) == [None, True, 1, "a", "b", [1], {"a": 1}]
    assert 1.0 in s and 2 not in s


def test_booleans_are_not_numbers() -> None:
    assert not rego_equal(True, 1)
    assert freeze(True) != freeze(1)
    assert compare(True, 0) < 0  # booleans sort before numbers


def test_object_ordering_interleaves_keys_and_values() -> None:
    assert compare({"a": 2}, {"b": 1}) < 0
    assert compare({"a": 1, "b": 1}, {"a": 1}) > 0
    assert sorted_values([{"a": 2}, {"a": 1}]) == [{"a": 1}, {"a": 2}]


def test_non_string_keys_become_json_text() -> None:
    value = decode('{1: "x", [1, 2]: "y", {"k": 3}: "z", null: 0}')
    assert isinstance(next(k for k in value if isinstance(k, ObjectKey)), ObjectKey)
    assert to_json_compatible(value) == {"1": "x", "[1,2]": "y", '{"k":3}': "z", "null": 0}


@pytest.mark.parametrize("text", ["{1 2}", "[1,", "{", "set(", '"unterminated', "[1] 2"])
def test_bad_value_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        decode(text)


def test_lenient_accepts_trailing_commas() -> None:
    assert decode('{"a": [1, 2,], "s": {"x",},}', lenient=True) == {
        "a": [1, 2],
        "s": RegoSet(["x"]),
    }


def test_type_names() -> None:
    assert [type_name(v) for v in (None, True, 1, 1.5, "", [], {}, RegoSet())] == [
        "null",
        "boolean",
        "number",
        "number",
        "string",
        "array",
        "object",
        "set",
    ]


def test_json_compatible_output_is_json() -> None:
    value = {"s": RegoSet(["b", "a"]), 2: [RegoSet()]}
    assert json.loads(json.dumps(to_json_compatible(value))) == {"s": ["a", "b"], "2": [[]]}
