"""Strict JSON: every document JSON can carry in opsmgr (finite numbers, 64-bit integers, text, up to 128
levels) is taken as it is; anything else is InvalidInput naming where, never another exception."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmgr.errors import InvalidInput
from opsmgr.strictjson import INT_MAX, INT_MIN, MAX_DEPTH, check, loads

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(INT_MIN, INT_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
DOCUMENTS = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
)


@settings(max_examples=300)
@given(DOCUMENTS)
def test_what_json_can_carry_is_taken_as_it_is(document: Any) -> None:
    assert loads(json.dumps(document)) == document


@settings(max_examples=300)
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_anything_else_is_invalid_input_and_nothing_worse(data: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        loads(data)


def _nested(levels: int) -> Any:
    """Arrays and objects in turn, ``levels`` of them."""
    value: Any = []
    for i in range(levels - 1):
        value = {"a": value} if i % 2 else [value]
    return value


def test_the_depth_limit_is_exact() -> None:
    assert check(_nested(MAX_DEPTH)) == _nested(MAX_DEPTH)
    with pytest.raises(InvalidInput, match=f"deeper than {MAX_DEPTH}"):
        check(_nested(MAX_DEPTH + 1))
    with pytest.raises(InvalidInput, match=f"deeper than {MAX_DEPTH}"):
        loads("[" * 50_000 + "]" * 50_000)


@pytest.mark.parametrize(
    ("text", "words", "field"),
    [
        ('{"a": {"b": [1, NaN]}}', "finite", "a.b[1]"),
        ('{"a": -Infinity}', "finite", "a"),
        ('[{"x": 1e400}]', "finite", "[0].x"),
        (f'{{"n": {INT_MAX + 1}}}', "64 bits", "n"),
        (f'{{"n": {INT_MIN - 1}}}', "64 bits", "n"),
        ('{"s": ["ok", "\\udc00"]}', "surrogate", "s[1]"),
        ('{"k": {"\\ud800": 1}}', "surrogate", "k"),
        ("NaN", "finite", "body"),
        ('{"a": 1', "malformed", "body"),
        ("1" * 5000, "too long", "body"),
    ],
)
def test_a_refusal_names_the_problem_and_where(text: str, words: str, field: str) -> None:
    with pytest.raises(InvalidInput, match=words) as refused:
        loads(text)
    assert refused.value.parameters["field"] == field
