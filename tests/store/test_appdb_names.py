"""Ids and names are checked whole: a trailing line end (which a regex's ``$`` lets through) is refused."""

from __future__ import annotations

import pytest

from opsmgr.errors import InvalidInput
from opsmgr.store.appdb import check_id, check_name


def test_a_valid_id_and_name_pass() -> None:
    assert check_id("a" * 24, "groupId") == "a" * 24
    assert check_name("Project (prod) 1.2") == "Project (prod) 1.2"


@pytest.mark.parametrize("value", ["a" * 24 + "\n", "a" * 23, "A" * 24, "a" * 24 + " "])
def test_an_id_with_anything_more_or_less_is_refused(value: str) -> None:
    with pytest.raises(InvalidInput):
        check_id(value, "groupId")


@pytest.mark.parametrize("value", ["prod\n", "prod\r\n", "", " prod", "x" * 65, 7])
def test_a_name_with_a_line_end_or_out_of_shape_is_refused(value: object) -> None:
    with pytest.raises(InvalidInput):
        check_name(value)
