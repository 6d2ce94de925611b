"""The automation config: one case per validation rule of every section, normalisation, content equality,
accessors."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmgr.automation import config as ac
from opsmgr.automation import indexes, secrets, security, topology
from opsmgr.automation import rules as shared_rules
from opsmgr.errors import InvalidInput
from tests.automation.configs import (
    DELETE,
    _add_mongos,
    _add_sharding,
    _member,
    _members,
    _process,
    _set,
    base,
)

Mutation = Callable[[dict[str, Any]], None] | tuple[str, Any]

# (case id, mutation, rule, field). A tuple mutation sets one path; the field is then that path unless given.
CASES: list[tuple[str, Mutation, str, str | None]] = [
    ("version-negative", ("version", -1), "config-version", None),
    ("version-string", ("version", "3"), "config-version", "version"),
    ("processes-not-array", ("processes", {}), "type", None),
    ("process-not-object", ("processes[0]", "rs0-0"), "type", None),
    ("auth-not-object", ("auth", []), "type", None),
    ("disabled-not-boolean", ("processes[0].disabled", "yes"), "type", None),
    ("net-not-object", ("processes[0].args2_6.net", 27017), "type", None),
    ("hostname-missing", ("processes[1].hostname", DELETE), "required", None),
    ("args-missing", ("processes[1].args2_6", DELETE), "required", None),
    ("name-empty", ("processes[1].name", ""), "process-name", None),
    ("name-not-string", ("processes[1].name", 7), "process-name", None),
    ("name-duplicate", ("processes[2].name", "rs0-0"), "process-name-unique", None),
    ("process-type", ("processes[0].processType", "mongodx"), "process-type", None),
    ("hostname-scheme", ("processes[0].hostname", "mongodb://host0"), "hostname", None),
    ("hostname-port", ("processes[0].hostname", "host0.example.net:27017"), "hostname", None),
    ("hostname-label", ("processes[0].hostname", "-bad-.example.net"), "hostname", None),
    ("hostname-underscore", ("processes[0].hostname", "bad_host"), "hostname", None),
    ("hostname-empty", ("processes[0].hostname", ""), "hostname", None),
    ("port-zero", ("processes[0].args2_6.net.port", 0), "port", None),
    ("port-too-big", ("processes[0].args2_6.net.port", 65536), "port", None),
    ("port-string", ("processes[0].args2_6.net.port", "27017"), "port", None),
    ("port-bool", ("processes[0].args2_6.net.port", True), "port", None),
    (
        "host-port-duplicate",
        ("processes[1].hostname", "HOST0.example.net"),
        "host-port-unique",
        "processes[1].args2_6.net.port",
    ),
    ("mongodb-version-short", ("processes[0].version", "7.0"), "mongodb-version", None),
    ("mongodb-version-word", ("processes[0].version", "latest"), "mongodb-version", None),
    ("fcv", ("processes[0].featureCompatibilityVersion", "7"), "fcv", None),
    ("auth-schema-version", ("processes[0].authSchemaVersion", 4), "auth-schema-version", None),
    (
        "auth-schema-version-float",
        ("processes[0].authSchemaVersion", 5.0),
        "auth-schema-version",
        "processes[0].authSchemaVersion",
    ),
    (
        "cluster-auth-mode-null",
        ("processes[0].args2_6.security.clusterAuthMode", None),
        "cluster-auth-mode",
        None,
    ),
    (
        "profiler-mode-null",
        ("processes[0].args2_6.operationProfiling", {"mode": None}),
        "profiler-mode",
        "processes[0].args2_6.operationProfiling.mode",
    ),
    ("tls-mode-null", ("processes[0].args2_6.net.tls.mode", None), "tls-mode", None),
    ("last-restart", ("processes[0].lastRestart", "yesterday"), "timestamp", None),
    ("kmip-rotation", ("processes[0].lastKmipMasterKeyRotation", 1700000000), "timestamp", None),
    ("oplog-size", ("processes[0].args2_6.replication.oplogSizeMB", 0), "oplog-size", None),
    (
        "profiler-mode",
        ("processes[0].args2_6.operationProfiling", {"mode": "verbose"}),
        "profiler-mode",
        "processes[0].args2_6.operationProfiling.mode",
    ),
    (
        "cluster-auth-mode",
        ("processes[0].args2_6.security.clusterAuthMode", "password"),
        "cluster-auth-mode",
        None,
    ),
    ("tls-mode", ("processes[0].args2_6.net.tls.mode", "requireSSL"), "tls-mode", None),
    (
        "ssl-mode",
        ("processes[0].args2_6.net.ssl", {"mode": "requireTLS"}),
        "tls-mode",
        "processes[0].args2_6.net.ssl.mode",
    ),
    ("tls-certificate", ("processes[0].args2_6.net.tls.certificateKeyFile", DELETE), "tls-certificate", None),
    ("replset-name-other", ("processes[1].args2_6.replication.replSetName", "rs1"), "replset-name", None),
    (
        "replset-name-missing",
        ("processes[1].args2_6.replication", {}),
        "replset-name",
        "processes[1].args2_6.replication.replSetName",
    ),
    (
        "replset-name-not-member",
        ("replicaSets[0].members[2]", DELETE),
        "replset-name",
        "processes[2].args2_6.replication.replSetName",
    ),
    ("replset-id-empty", ("replicaSets[0]._id", ""), "replset-id", None),
    ("replset-id-slash", ("replicaSets[0]._id", "rs/0"), "replset-id", None),
    (
        "replset-id-duplicate",
        ("replicaSets[1]", {"_id": "rs0", "members": []}),
        "replset-id-unique",
        "replicaSets[1]._id",
    ),
    ("members-missing", ("replicaSets[0].members", DELETE), "required", None),
    ("member-host-unknown", ("replicaSets[0].members[2].host", "nope"), "member-host", None),
    ("member-host-twice", ("replicaSets[0].members[2].host", "rs0-0"), "member-host-unique", None),
    (
        "process-in-two-sets",
        lambda c: c["replicaSets"].append({"_id": "rs1", "members": [_member(0)]}),
        "process-in-one-replset",
        "replicaSets[1].members[0].host",
    ),
    ("member-id-duplicate", ("replicaSets[0].members[2]._id", 0), "member-id-unique", None),
    ("member-id-negative", ("replicaSets[0].members[2]._id", -1), "member-id", None),
    ("member-id-string", ("replicaSets[0].members[2]._id", "2"), "member-id", None),
    ("member-id-too-big", ("replicaSets[0].members[2]._id", 256), "member-id", None),
    ("votes-two", ("replicaSets[0].members[1].votes", 2), "votes", None),
    ("votes-bool", ("replicaSets[0].members[1].votes", True), "votes", None),
    ("votes-float", ("replicaSets[0].members[1].votes", 1.0), "votes", None),
    ("priority-too-high", ("replicaSets[0].members[1].priority", 1001), "priority", None),
    ("priority-negative", ("replicaSets[0].members[1].priority", -0.5), "priority", None),
    ("priority-string", ("replicaSets[0].members[1].priority", "1"), "priority", None),
    ("hidden-not-boolean", ("replicaSets[0].members[1].hidden", 1), "type", None),
    (
        "arbiter-priority",
        lambda c: c["replicaSets"][0]["members"][2].update(arbiterOnly=True),
        "arbiter-priority",
        "replicaSets[0].members[2].priority",
    ),
    (
        "arbiter-votes",
        lambda c: c["replicaSets"][0]["members"][2].update(arbiterOnly=True, priority=0, votes=0),
        "arbiter-votes",
        "replicaSets[0].members[2].votes",
    ),
    (
        "non-voting-priority",
        ("replicaSets[0].members[2].votes", 0),
        "non-voting-priority",
        "replicaSets[0].members[2].priority",
    ),
    (
        "hidden-priority",
        ("replicaSets[0].members[2].hidden", True),
        "hidden-priority",
        "replicaSets[0].members[2].priority",
    ),
    (
        "delayed-priority",
        ("replicaSets[0].members[2].secondaryDelaySecs", 3600),
        "delayed-priority",
        "replicaSets[0].members[2].priority",
    ),
    ("delay-negative", ("replicaSets[0].members[2].slaveDelay", -1), "member-delay", None),
    (
        "build-indexes-priority",
        ("replicaSets[0].members[2].buildIndexes", False),
        "build-indexes-priority",
        "replicaSets[0].members[2].priority",
    ),
    (
        "no-electable-member",
        lambda c: [m.update(priority=0) for m in c["replicaSets"][0]["members"]],
        "electable-member",
        "replicaSets[0].members",
    ),
    ("no-members", ("replicaSets[0].members", []), "electable-member", None),
    ("max-members", lambda c: _members(c, 51, voting=7), "max-members", "replicaSets[0].members"),
    (
        "max-voting-members",
        lambda c: _members(c, 8, voting=8),
        "max-voting-members",
        "replicaSets[0].members",
    ),
    (
        "mongos-member",
        lambda c: (_add_sharding(c), c["processes"][2].update(processType="mongos", cluster="c1")),
        "member-process-type",
        "replicaSets[0].members[2].host",
    ),
    (
        "mongos-cluster",
        lambda c: (_add_sharding(c), _add_mongos(c, "c2")),
        "mongos-cluster",
        "processes[3].cluster",
    ),
    ("mongos-no-cluster", lambda c: _add_mongos(c, "c1"), "mongos-cluster", "processes[3].cluster"),
    (
        "sharding-name-duplicate",
        lambda c: (_add_sharding(c), _add_sharding(c)),
        "sharding-name-unique",
        "sharding[1].name",
    ),
    (
        "sharding-shard-rs",
        lambda c: _add_sharding(c, shard_rs="rs9"),
        "sharding-replset",
        "sharding[0].shards[0].rs",
    ),
    (
        "sharding-csrs",
        lambda c: _add_sharding(c, csrs="rs9"),
        "sharding-replset",
        "sharding[0].configServerReplica",
    ),
    ("index-db-missing", ("indexConfigs[0].dbName", DELETE), "required", None),
    ("index-options-missing", ("indexConfigs[0].options", DELETE), "required", None),
    ("index-options-not-object", ("indexConfigs[0].options", []), "type", None),
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
    ("index-rs-name-type", ("indexConfigs[0].rsName", ["rs0"]), "type", None),
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
    ("auth-disabled-type", ("auth.disabled", "no"), "type", None),
    ("auth-mechanism", ("auth.autoAuthMechanisms[0]", "SCRAM-SHA-512"), "auth-mechanism", None),
    ("auth-mechanism-single", ("auth.autoAuthMechanism", "NONE"), "auth-mechanism", None),
    ("deployment-mechanism", ("auth.deploymentAuthMechanisms[1]", 1), "auth-mechanism", None),
    (
        "auth-mechanism-required",
        lambda c: (c["auth"].update(autoAuthMechanisms=[]), c["auth"].pop("autoAuthMechanism")),
        "auth-mechanism-required",
        "auth.autoAuthMechanisms",
    ),
    ("auth-keyfile-relative", ("auth.keyfile", "keyfile"), "auth-keyfile", None),
    ("auth-keyfile-null", ("auth.keyfile", None), "auth-keyfile", None),
    ("auth-key-short", ("auth.key", "abc"), "auth-key", None),
    ("auth-key-charset", ("auth.key", "not base64 at all!"), "auth-key", None),
    ("auth-key-missing", ("auth.key", DELETE), "auth-keyfile-required", None),
    ("auth-keyfile-missing", ("auth.keyfile", DELETE), "auth-keyfile-required", None),
    ("auth-auto-user", ("auth.autoUser", DELETE), "auth-auto-user", None),
    ("auth-auto-pwd", ("auth.autoPwd", ""), "auth-auto-user", None),
    ("user-missing-db", ("auth.usersWanted[0].db", DELETE), "required", None),
    ("user-not-object", ("auth.usersWanted[0]", "app"), "type", None),
    (
        "tls-client-certificate-mode",
        ("tls.clientCertificateMode", "MAYBE"),
        "tls-client-certificate-mode",
        None,
    ),
    (
        "tls-ca-file",
        lambda c: c["tls"].update(clientCertificateMode="REQUIRE", CAFilePath=""),
        "tls-ca-file",
        "tls.CAFilePath",
    ),
    ("secret-type", ("auth.autoPwd", 5), "type", None),
    ("process-secret-type", ("processes[1].args2_6.net.tls.certificateKeyFilePassword", 1), "type", None),
    ("ldap-secret-type", ("ldap.bindQueryPassword", ["x"]), "type", None),
    ("secret-redacted", ("auth.usersWanted[0].initPwd", secrets.REDACTED), "secret-redacted", None),
    ("keyfile-redacted", ("auth.key", secrets.REDACTED), "secret-redacted", None),
]


def _apply(config: dict[str, Any], mutation: Mutation) -> None:
    if isinstance(mutation, tuple):
        _set(config, *mutation)
    else:
        mutation(config)


def test_base_is_valid() -> None:
    config = base()
    assert ac.validate(config) == config


@pytest.mark.parametrize(("mutation", "rule", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_names_its_id_and_field(mutation: Mutation, rule: str, field: str | None) -> None:
    config = base()
    _apply(config, mutation)
    if field is None:
        assert isinstance(mutation, tuple)
        field = mutation[0]
    with pytest.raises(InvalidInput) as caught:
        ac.validate(config)
    assert (caught.value.rule, caught.value.field) == (rule, field), caught.value.detail
    body = caught.value.to_json()
    assert body["error"] == 400
    assert body["parameters"] == {"field": field, "rule": rule}


def test_every_rule_has_a_case() -> None:
    source = ""
    for module in (ac, shared_rules, topology, indexes, security, secrets):
        with open(module.__file__ or "", encoding="utf-8") as f:
            source += f.read()
    # Rule ids are the kebab-case literals of the module, plus a few one-word ones.
    rules = set(re.findall(r'"([a-z0-9]+(?:-[a-z0-9]+)+)"', source))
    rules |= {"type", "required", "port", "votes", "priority", "hostname", "fcv", "timestamp"}
    assert rules == {case[2] for case in CASES} | {"config-object"}  # see test_not_an_object


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
    assert ac.is_electable({"priority": 2}) and not ac.is_electable({"priority": 1, "hidden": True})
    assert not ac.is_electable({"priority": 1, "votes": 0}) and not ac.is_electable({"arbiterOnly": True})


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
