"""The rules of the automation config's indexConfigs: one case per rule, each naming its id and the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.automation.configs import (
    Case,
    check_case,
)

CASES: list[Case] = [
    ("index-db-name", ("indexConfigs[0].dbName", "shop.eu"), "index-db-name", None),
    (
        "index-collection-name",
        ("indexConfigs[0].collectionName", "system.users"),
        "index-collection-name",
        None,
    ),
    ("index-key-empty", ("indexConfigs[0].key", []), "index-key", None),
    ("index-key-object", ("indexConfigs[0].key", {"customer": 1}), "index-key", None),
    ("index-key-direction", ("indexConfigs[0].key[1]", ["created", 2]), "index-key", None),
    ("index-key-bool", ("indexConfigs[0].key[1]", ["created", True]), "index-key", None),
    ("index-key-triple", ("indexConfigs[0].key[1]", ["created", -1, 0]), "index-key", None),
    ("index-key-repeat", ("indexConfigs[0].key[1]", ["customer", -1]), "index-key", None),
    ("index-rs-name", ("indexConfigs[0].rsName", "rs9"), "index-rs-name", None),
    (
        "index-collation",
        ("indexConfigs[0].collation", {"strength": 2}),
        "index-collation",
        "indexConfigs[0].collation.locale",
    ),
    (
        "index-duplicate",
        lambda c: c["indexConfigs"].append(
            copy.deepcopy(c["indexConfigs"][0]) | {"options": {"name": "again"}}
        ),
        "index-duplicate",
        "indexConfigs[1]",
    ),
    ("index-unique", ("indexConfigs[0].options.unique", True), "index-unique-rolling", None),
]


@pytest.mark.parametrize(("mutation", "rule", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_names_its_id_and_field(mutation: Any, rule: str, field: str | None) -> None:
    check_case(mutation, rule, field)
