"""The automation config: the whole-document rules, that every rule of every section has a case (each
section's cases are in its module's tests), normalisation, content equality, accessors."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmgr.automation import config as ac
from opsmgr.automation import indexes, secrets, security, sharding, topology
from opsmgr.automation import rules as shared_rules
from opsmgr.errors import InvalidInput
from tests.automation import (
    test_indexes,
    test_rules,
    test_secrets,
    test_security,
    test_sharding,
    test_topology,
)
from tests.automation.configs import (
    DELETE,
    Case,
    _members,
    _process,
    _set,
    base,
    check_case,
)

CASES: list[Case] = [
    ("version-negative", ("version", -1), "config-version", None),
    ("version-string", ("version", "3"), "config-version", "version"),
]


def test_base_is_valid() -> None:
    config = base()
    assert ac.validate(config) == config


@pytest.mark.parametrize(("mutation", "rule", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_names_its_id_and_field(mutation: Any, rule: str, field: str | None) -> None:
    check_case(mutation, rule, field)


def test_every_rule_has_a_case() -> None:
    source = ""
    for module in (ac, shared_rules, topology, sharding, indexes, security, secrets):
        with open(module.__file__ or "", encoding="utf-8") as f:
            source += f.read()
    # Rule ids are the kebab-case literals of the module, plus a few one-word ones.
    rules = set(re.findall(r'"([a-z0-9]+(?:-[a-z0-9]+)+)"', source))
    rules |= {"type", "required", "port", "votes", "priority", "hostname", "fcv", "timestamp"}
    cases = [*CASES, *test_rules.CASES, *test_topology.CASES, *test_indexes.CASES, *test_security.CASES]
    cases += [*test_secrets.CASES, *test_sharding.CASES]
    assert rules == {case[2] for case in cases} | {"config-object"}  # see test_not_an_object


def test_not_an_object() -> None:
    for body in ([], "config", None, 3):
        with pytest.raises(InvalidInput) as caught:
            ac.validate(body)
        assert (caught.value.rule, caught.value.field) == ("config-object", "$")


def test_empty_config_is_valid_and_stable() -> None:
    empty = ac.empty_config()
    assert ac.validate(empty) == empty
    assert empty["processes"] == [] and empty["replicaSets"] == [] and empty["auth"]["disabled"] is True
    assert ac.empty_config() is not ac.empty_config()


def test_normalisation_fills_defaults_and_keeps_unknown_fields() -> None:
    body = {
        "processes": [
            {
                "name": "a",
                "processType": "mongod",
                "hostname": "h1",
                "version": "7.0.5",
                "args2_6": {"replication": {"replSetName": "rs"}},
                "someFutureField": {"x": 1},
            }
        ],
        "replicaSets": [{"_id": "rs", "members": [{"_id": 0, "host": "a"}]}],
        "uiBaseUrl": None,
    }
    before = copy.deepcopy(body)
    out = ac.validate(body)
    assert body == before, "validate must not mutate its argument"
    proc = out["processes"][0]
    assert proc["disabled"] is False and proc["args2_6"]["net"]["port"] == shared_rules.DEFAULT_PORT
    assert proc["someFutureField"] == {"x": 1} and out["uiBaseUrl"] is None
    assert out["replicaSets"][0]["members"][0] == {
        "_id": 0,
        "host": "a",
        "votes": 1,
        "arbiterOnly": False,
        "hidden": False,
        "priority": 1,
    }
    assert out["auth"] == ac.empty_config()["auth"] and out["indexConfigs"] == []
    assert "version" not in out


def test_priority_defaults_to_zero_for_members_that_cannot_be_electable() -> None:
    config = base()
    for member in config["replicaSets"][0]["members"][1:]:
        del member["priority"]
    config["replicaSets"][0]["members"][1]["hidden"] = True
    config["replicaSets"][0]["members"][2].update(arbiterOnly=True)
    members = ac.validate(config)["replicaSets"][0]["members"]
    assert [m["priority"] for m in members] == [1, 0, 0]


def test_limits_are_inclusive() -> None:
    config = base()
    _members(config, 50, voting=7)
    config["replicaSets"][0]["members"][0]["priority"] = shared_rules.MAX_PRIORITY
    config["processes"][0]["args2_6"]["net"]["port"] = 65535
    assert len(ac.validate(config)["replicaSets"][0]["members"]) == 50


def test_same_host_different_ports_is_fine() -> None:
    config = base()
    for proc in config["processes"]:
        proc["hostname"] = "shared.example.net"
    for i, proc in enumerate(config["processes"]):
        proc["args2_6"]["net"]["port"] = 27017 + i
    ac.validate(config)


def test_unique_index_passes_when_current_has_it_or_when_allowed() -> None:
    config = base()
    config["indexConfigs"][0]["options"]["unique"] = True
    with pytest.raises(InvalidInput) as caught:
        ac.validate(config, current=base())
    assert "supervised" in caught.value.detail and "writes" in caught.value.detail
    assert ac.validate(config, current=copy.deepcopy(config))["indexConfigs"][0]["options"]["unique"] is True
    assert ac.validate(config, allow_unique_indexes=True)["indexConfigs"] == config["indexConfigs"]
    config["indexConfigs"][0]["options"]["unique"] = False
    ac.validate(config)


def test_auth_disabled_needs_no_credentials() -> None:
    config = base()
    config["auth"] = {"disabled": True}
    assert ac.validate(config)["auth"] == {"disabled": True}


def test_x509_only_needs_no_agent_password() -> None:
    config = base()
    config["auth"].update(autoAuthMechanisms=["MONGODB-X509"], autoAuthMechanism="MONGODB-X509")
    del config["auth"]["autoUser"], config["auth"]["autoPwd"]
    ac.validate(config)


def test_accessors() -> None:
    config = ac.validate(base())
    config["processes"].append(_process(7, rs="other") | {"hostname": "HOST0.example.net"})
    assert list(ac.processes_by_name(config)) == ["rs0-0", "rs0-1", "rs0-2", "other-7"]
    assert [p["name"] for p in ac.processes_on_host(config, "host0.EXAMPLE.net")] == ["rs0-0", "other-7"]
    assert ac.process_port(config["processes"][0]) == 27017
    assert ac.process_port({"args2_6": {}}) == shared_rules.DEFAULT_PORT
    rs = ac.replica_set_of(config, "rs0-1")
    assert rs is not None and rs["_id"] == "rs0" and ac.replica_set(config, "rs0") is rs
    assert ac.replica_set_of(config, "other-7") is None and ac.replica_set(config, "nope") is None
    assert [m["host"] for m in ac.members_of(config, "rs0")] == ["rs0-0", "rs0-1", "rs0-2"]
    assert ac.members_of(config, "nope") == []


# --- content equality ---------------------------------------------------------------------------------------


def test_same_content_ignores_version_and_key_order_but_not_values() -> None:
    a = base()
    b = json.loads(json.dumps(a, sort_keys=True))
    b["version"] = 99
    assert ac.same_content(a, b)
    b["replicaSets"][0]["members"][1]["priority"] = 2
    assert not ac.same_content(a, b)
    c = base()
    c["replicaSets"][0]["members"][0]["votes"] = True
    assert not ac.same_content(base(), c), "true and 1 are different JSON"


# --- properties ---------------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _paths(node: Any, prefix: str = "") -> list[str]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, f"{prefix}[{i}]")
    return found


_BASE_PATHS = _paths(base())
_FIELD_NAMES = sorted({p.rsplit(".", 1)[-1] for p in _BASE_PATHS if not p.endswith("]")})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, st.dictionaries(st.sampled_from([*_FIELD_NAMES, "version"]), json_values)))
def test_validate_only_raises_invalid_input_on_arbitrary_json(body: Any) -> None:
    try:
        out = ac.validate(body)
    except InvalidInput as exc:
        assert exc.rule and exc.field is not None
    else:
        assert isinstance(out, dict)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_BASE_PATHS), json_values, st.booleans())
def test_validate_only_raises_invalid_input_on_a_broken_valid_config(
    path: str, value: Any, delete: bool
) -> None:
    config = base()
    _set(config, path, DELETE if delete else value)
    try:
        out = ac.validate(config)
    except InvalidInput as exc:
        assert exc.rule and exc.field is not None
    else:
        assert ac.same_content(ac.validate(out), out), "normalising twice changes nothing"


def _shuffled(value: Any, rnd: Any) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: _shuffled(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rnd) for v in value]
    return value


finite_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), finite_json, max_size=6), st.randoms(), st.integers(0, 10**6))
def test_same_content_is_reflexive_and_ignores_version_and_key_order(
    config: dict[str, Any], rnd: Any, version: int
) -> None:
    assert ac.same_content(config, config)
    other = _shuffled(config, rnd)
    other["version"] = version
    assert ac.same_content(config, other)
    assert not ac.same_content(config, other | {"__extra__": None}), "keys are at most 8 characters"
    for key in config.keys() - ac.SERVER_MANAGED_FIELDS:
        assert not ac.same_content(config, other | {key: [config[key]]})
