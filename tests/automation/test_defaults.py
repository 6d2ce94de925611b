"""Ops Manager's defaults of the automation config (opsmgr.automation.defaults): every default its GET
shows is filled, values given are kept, filling twice changes nothing, the defaults are the ones the
validator, the agent's replica set configs and rolling maintenance assume for an absent field, and what a
typed client sends for a field it has no value for is read as absent while zero values that are settings
keep their meaning.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from opsmgr.agent.rsconfig import desired_members
from opsmgr.automation.config import empty_config, same_content, validate
from opsmgr.automation.defaults import default_priority, drop_unset, with_defaults
from opsmgr.automation.templates import replica_set_config
from opsmgr.errors import InvalidInput
from opsmgr.maintenance.rolling import rolling_changes
from tests.automation.configs import base, mongos, sharded

AUTH_FIELDS = {
    "disabled",
    "authoritativeSet",
    "autoAuthMechanism",
    "autoAuthMechanisms",
    "autoAuthRestrictions",
    "deploymentAuthMechanisms",
    "usersWanted",
    "usersDeleted",
}
SECTIONS = {
    "options",
    "mongoDbVersions",
    "backupVersions",
    "monitoringVersions",
    "processes",
    "replicaSets",
    "sharding",
    "auth",
    "tls",
    "roles",
    "indexConfigs",
    "kerberos",
    "ldap",
    "balancer",
    "cpsModules",
    "mongosqlds",
    "mongots",
    "onlineArchiveModules",
}


def sparse() -> dict[str, Any]:
    """A valid replica set config that leaves every optional field out."""
    config = replica_set_config(["a.example.net", "b.example.net", "c.example.net"])
    for member in config["replicaSets"][0]["members"]:
        for key in ("priority", "votes", "arbiterOnly", "hidden"):
            del member[key]
    for proc in config["processes"]:
        del proc["disabled"]
    return config


def test_every_section_and_auth_default_is_filled() -> None:
    full = with_defaults({"processes": []})
    assert set(full) >= SECTIONS
    for key in ("cpsModules", "mongosqlds", "mongots", "onlineArchiveModules"):
        assert full[key] == []
    auth = full["auth"]
    assert set(auth) >= AUTH_FIELDS
    # No mechanism chosen: Ops Manager shows MONGODB-CR, as its GET of a new project does.
    assert auth["autoAuthMechanism"] == "MONGODB-CR"
    assert auth["autoAuthRestrictions"] == [] and auth["disabled"] is True
    assert with_defaults(empty_config())["version"] == 0


def test_processes_replica_sets_and_members_get_their_defaults() -> None:
    full = with_defaults(sparse())
    for proc in full["processes"]:
        assert proc["disabled"] is False and proc["manualMode"] is False
        assert proc["authSchemaVersion"] == 5
        assert proc["args2_6"]["net"]["port"] == 27017
    (rs,) = full["replicaSets"]
    assert rs["protocolVersion"] == "1" and rs["settings"] == {}
    for member in rs["members"]:
        assert member == member | {
            "arbiterOnly": False,
            "buildIndexes": True,
            "hidden": False,
            "priority": 1,
            "votes": 1,
            "tags": {},
            "secondaryDelaySecs": 0,
        }
        assert "slaveDelay" not in member


@pytest.mark.parametrize(
    ("version", "fcv", "key"),
    [
        ("4.4.18", None, "slaveDelay"),
        ("5.0.3", None, "secondaryDelaySecs"),
        ("7.0.5-ent", None, "secondaryDelaySecs"),
        ("5.0.3", "4.4", "slaveDelay"),  # the names follow the feature compatibility version
    ],
)
def test_the_delay_is_named_as_the_members_mongodb_names_it(version: str, fcv: str | None, key: str) -> None:
    config = replica_set_config(["a.example.net"], version=version)
    if fcv is not None:
        config["processes"][0]["featureCompatibilityVersion"] = fcv
    (member,) = with_defaults(config)["replicaSets"][0]["members"]
    other = {"slaveDelay", "secondaryDelaySecs"} - {key}
    assert member[key] == 0 and not other & set(member)


def test_values_given_are_kept() -> None:
    config = base()
    members = config["replicaSets"][0]["members"]
    members[2].update(
        priority=0, votes=0, hidden=True, slaveDelay=3600, tags={"dc": "east"}, buildIndexes=False
    )
    config["replicaSets"][0].update(protocolVersion="1", settings={"chainingAllowed": False})
    config["processes"][0].update(manualMode=True, authSchemaVersion=3)
    config["auth"]["autoAuthRestrictions"] = [{"clientSource": ["10.0.0.0/8"]}]
    full = with_defaults(config)
    assert full["replicaSets"][0]["members"][2] == members[2] | {"arbiterOnly": False}
    assert full["replicaSets"][0]["settings"] == {"chainingAllowed": False}
    assert (full["processes"][0]["manualMode"], full["processes"][0]["authSchemaVersion"]) == (True, 3)
    assert full["auth"]["autoAuthMechanism"] == "SCRAM-SHA-256"
    assert full["auth"]["autoAuthRestrictions"] == [{"clientSource": ["10.0.0.0/8"]}]
    assert full["ldap"] == config["ldap"] and full["indexConfigs"] == config["indexConfigs"]
    assert full["version"] == 4


def test_the_agents_mechanism_is_derived_from_the_mechanisms_it_may_use() -> None:
    config = base()
    del config["auth"]["autoAuthMechanism"]
    config["auth"]["autoAuthMechanisms"] = ["MONGODB-X509", "SCRAM-SHA-256"]
    assert with_defaults(config)["auth"]["autoAuthMechanism"] == "MONGODB-X509"


def test_users_and_sharded_clusters_get_their_list_defaults() -> None:
    config = sharded()
    cluster = config["sharding"][0]
    for key in ("collections", "draining", "tags"):
        del cluster[key]
    del cluster["shards"][1]["tags"]
    config["processes"][-1] = mongos(1) | {"args2_6": {"net": {"port": 27016}}}
    config["tls"] = {}
    for proc in config["processes"]:
        proc["args2_6"]["net"].pop("tls", None)
    full = with_defaults(config)
    assert full["auth"]["usersWanted"][0]["authenticationRestrictions"] == []
    (cluster,) = full["sharding"]
    assert (cluster["collections"], cluster["draining"], cluster["tags"]) == ([], [], [])
    assert cluster["managedSharding"] is False and cluster["shards"][1]["tags"] == []
    # A process without log settings shows none (what a typed client's struct writes back), not mongod's.
    assert full["processes"][-1]["args2_6"] == {"net": {"port": 27016}, "systemLog": {}}
    assert full["processes"][0]["args2_6"]["systemLog"] == config["processes"][0]["args2_6"]["systemLog"]
    assert not any(c.needs_roll for c in rolling_changes(validate(config), validate(full)).values())


@pytest.mark.parametrize("make", [sparse, base, empty_config])
def test_idempotent_and_pure(make: Any) -> None:
    config = make()
    before = copy.deepcopy(config)
    once = with_defaults(config)
    assert config == before, "with_defaults never changes its argument"
    assert with_defaults(once) == once


@pytest.mark.parametrize("make", [sparse, base])
def test_the_validator_accepts_the_full_document_as_the_same_content(make: Any) -> None:
    config = validate(make())
    full = with_defaults(config)
    assert validate(full) == full, "the full document needs nothing more filled"
    assert same_content(config, full) and same_content(full, config)
    changed = copy.deepcopy(full)
    changed["replicaSets"][0]["members"][0]["priority"] = 2
    assert not same_content(config, changed)


def test_a_delay_compares_the_same_under_either_name() -> None:
    """Older typed clients know only slaveDelay: putting back a 7.0 member's secondaryDelaySecs under that
    name is the same setting (the agent's replica set config reads it so)."""
    full = with_defaults(validate(sparse()))
    old_client = copy.deepcopy(full)
    for member in old_client["replicaSets"][0]["members"]:
        member["slaveDelay"] = member.pop("secondaryDelaySecs")
    assert same_content(full, validate(old_client))
    old_client["replicaSets"][0]["members"][0]["slaveDelay"] = 60
    assert not same_content(full, old_client)


def test_default_priority_is_the_validators() -> None:
    config = sparse()
    members = config["replicaSets"][0]["members"]
    members[1]["hidden"] = True
    members[2]["secondaryDelaySecs"] = 60
    members[2]["hidden"] = True
    validated = validate(config)["replicaSets"][0]["members"]
    assert [m["priority"] for m in validated] == [1, 0, 0]
    assert [m["priority"] for m in with_defaults(config)["replicaSets"][0]["members"]] == [1, 0, 0]
    assert default_priority({"votes": 0}) == 0 and default_priority({"buildIndexes": False}) == 0
    assert default_priority({"arbiterOnly": True}) == 0 and default_priority({}) == 1


def test_agents_and_rolling_maintenance_read_the_defaults_as_the_absent_fields() -> None:
    config = validate(sparse())
    full = with_defaults(config)
    rs, full_rs = config["replicaSets"][0], full["replicaSets"][0]
    assert desired_members(config, rs) == desired_members(full, full_rs)
    assert not any(change.needs_roll for change in rolling_changes(config, full).values())


def go_zero_values(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as a typed client sends it when it has no value for its list and object fields."""
    sent = copy.deepcopy(config)
    for key in ("backupVersions", "balancer", "cpsModules", "indexConfigs", "mongosqlds", "mongots", "roles"):
        sent[key] = None
    sent.update(onlineArchiveModules=None, sharding=None, options=None)
    sent["auth"].update(autoAuthMechanism="", autoAuthRestrictions=None, usersDeleted=None)
    return sent


def test_an_empty_config_server_replica_set_name_reads_as_none() -> None:
    """A typed client with no config server set sends "": absent, so refused as missing, not as a name."""
    config = sharded()
    config["sharding"][0]["configServerReplica"] = ""
    assert "configServerReplica" not in drop_unset(config)["sharding"][0]
    with pytest.raises(InvalidInput) as caught:
        validate(config)
    assert caught.value.rule == "sharding-config-server"
    config["sharding"][0]["configServerReplica"] = "rs9"
    with pytest.raises(InvalidInput) as caught:
        validate(config)
    assert caught.value.rule == "sharding-replset"


def test_a_typed_clients_unset_values_read_as_absent() -> None:
    config = validate(sparse())
    sent = go_zero_values(config)
    accepted = validate(sent)
    assert same_content(accepted, config)
    assert accepted["options"] == empty_config()["options"]
    assert "autoAuthMechanism" not in accepted["auth"]
    assert drop_unset(sent) != sent and sent["options"] is None, "drop_unset never changes its argument"


@pytest.mark.parametrize(
    ("path", "value", "rule"),
    [
        # Zero values that are settings keep their meaning: a member without a vote cannot have a priority.
        ("votes", 0, "non-voting-priority"),
        ("buildIndexes", False, "build-indexes-priority"),
        ("votes", None, "votes"),
        ("priority", None, "priority"),
    ],
)
def test_zero_values_that_are_settings_keep_their_meaning(path: str, value: Any, rule: str) -> None:
    config = base()
    config["replicaSets"][0]["members"][1][path] = value
    with pytest.raises(InvalidInput) as caught:
        validate(config)
    assert caught.value.rule == rule


def test_priority_zero_and_votes_zero_together_are_a_non_voting_member() -> None:
    config = base()
    config["replicaSets"][0]["members"][2].update(votes=0, priority=0)
    member = with_defaults(validate(config))["replicaSets"][0]["members"][2]
    assert (member["votes"], member["priority"], member["buildIndexes"]) == (0, 0, True)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: c.update(tls=None), "tls"),
        (lambda c: c.update(auth=None), "auth"),
        (lambda c: c["auth"].update(autoAuthMechanisms=None), "auth.autoAuthMechanisms"),
    ],
)
def test_null_stays_refused_where_a_typed_client_never_sends_it(mutate: Any, field: str) -> None:
    config = base()
    mutate(config)
    with pytest.raises(InvalidInput) as caught:
        validate(config)
    assert caught.value.field == field


def test_an_empty_agent_mechanism_with_auth_enabled_still_needs_a_mechanism() -> None:
    config = base()
    config["auth"].update(autoAuthMechanism="", autoAuthMechanisms=[])
    with pytest.raises(InvalidInput) as caught:
        validate(config)
    assert caught.value.rule == "auth-mechanism-required"
