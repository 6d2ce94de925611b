"""The rules every section of the automation config shares."""

from __future__ import annotations

from typing import Any

import pytest

from opsmgr.automation import rules
from tests.automation.configs import (
    DELETE,
    Case,
    check_case,
)


def test_hostnames() -> None:
    for good in ("localhost", "db-1.example.net", "10.0.0.7", "::1", "a" * 63 + ".example"):
        assert rules.valid_hostname(good), good
    for bad in ("a" * 64 + ".example", "host.", "http://h", "h:1", "h/x", "", "h h", None, 5):
        assert not rules.valid_hostname(bad), bad


CASES: list[Case] = [
    ("processes-not-array", ("processes", {}), "type", None),
    ("process-not-object", ("processes[0]", "rs0-0"), "type", None),
    ("auth-not-object", ("auth", []), "type", None),
    ("disabled-not-boolean", ("processes[0].disabled", "yes"), "type", None),
    ("net-not-object", ("processes[0].args2_6.net", 27017), "type", None),
    ("hostname-missing", ("processes[1].hostname", DELETE), "required", None),
    ("args-missing", ("processes[1].args2_6", DELETE), "required", None),
    ("members-missing", ("replicaSets[0].members", DELETE), "required", None),
    ("hidden-not-boolean", ("replicaSets[0].members[1].hidden", 1), "type", None),
    ("index-db-missing", ("indexConfigs[0].dbName", DELETE), "required", None),
    ("index-options-missing", ("indexConfigs[0].options", DELETE), "required", None),
    ("index-options-not-object", ("indexConfigs[0].options", []), "type", None),
    ("index-rs-name-type", ("indexConfigs[0].rsName", ["rs0"]), "type", None),
    ("auth-disabled-type", ("auth.disabled", "no"), "type", None),
    ("user-missing-db", ("auth.usersWanted[0].db", DELETE), "required", None),
    ("user-not-object", ("auth.usersWanted[0]", "app"), "type", None),
    ("secret-type", ("auth.autoPwd", 5), "type", None),
    ("process-secret-type", ("processes[1].args2_6.net.tls.certificateKeyFilePassword", 1), "type", None),
    ("ldap-secret-type", ("ldap.bindQueryPassword", ["x"]), "type", None),
]


@pytest.mark.parametrize(("mutation", "rule", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_names_its_id_and_field(mutation: Any, rule: str, field: str | None) -> None:
    check_case(mutation, rule, field)


def test_is_electable() -> None:
    assert rules.is_electable({"priority": 2}) and not rules.is_electable({"priority": 1, "hidden": True})
    assert not rules.is_electable({"priority": 1, "votes": 0})
    assert not rules.is_electable({"arbiterOnly": True})
