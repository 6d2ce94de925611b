"""Automation configs for the tests of opsmgr.automation: a valid base every case breaks one rule of, and the
helpers that edit one by JSON path."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from opsmgr.automation.config import empty_config, validate
from opsmgr.errors import InvalidInput

DELETE = object()


def _process(i: int, rs: str = "rs0") -> dict[str, Any]:
    return {
        "name": f"{rs}-{i}",
        "processType": "mongod",
        "hostname": f"host{i}.example.net",
        "version": "7.0.5-ent",
        "featureCompatibilityVersion": "7.0",
        "authSchemaVersion": 5,
        "disabled": False,
        "args2_6": {
            "net": {
                "port": 27017,
                "tls": {
                    "mode": "requireTLS",
                    "certificateKeyFile": "/etc/ssl/host.pem",
                    "certificateKeyFilePassword": f"pem-{i}",
                },
            },
            "replication": {"replSetName": rs},
            "storage": {"dbPath": f"/data/{rs}-{i}"},
            "systemLog": {"destination": "file", "path": f"/data/{rs}-{i}/mongod.log"},
            "security": {"clusterAuthMode": "keyFile"},
        },
    }


def _member(i: int, rs: str = "rs0", **extra: Any) -> dict[str, Any]:
    return {
        "_id": i,
        "host": f"{rs}-{i}",
        "priority": 1,
        "votes": 1,
        "arbiterOnly": False,
        "hidden": False,
    } | extra


def base() -> dict[str, Any]:
    """A valid three-member deployment with auth, TLS, a user and an index: every case breaks one rule."""
    config = empty_config()
    config.update(
        version=4,
        processes=[_process(i) for i in range(3)],
        replicaSets=[{"_id": "rs0", "protocolVersion": "1", "members": [_member(i) for i in range(3)]}],
        auth={
            "disabled": False,
            "autoUser": "mms-automation",
            "autoPwd": "agent-password",
            "autoAuthMechanisms": ["SCRAM-SHA-256"],
            "autoAuthMechanism": "SCRAM-SHA-256",
            "deploymentAuthMechanisms": ["SCRAM-SHA-256"],
            "key": "c2VjcmV0a2V5ZmlsZWNvbnRlbnRz",
            "keyfile": "/var/lib/mongodb-mms-automation/keyfile",
            "usersWanted": [{"db": "admin", "user": "app", "roles": [], "initPwd": "app-password"}],
            "usersDeleted": [],
        },
        tls={"clientCertificateMode": "OPTIONAL", "CAFilePath": "/etc/ssl/ca.pem"},
        ldap={"bindQueryUser": "cn=om", "bindQueryPassword": "ldap-password"},
        indexConfigs=[
            {
                "dbName": "shop",
                "collectionName": "orders",
                "key": [["customer", 1], ["created", -1]],
                "rsName": "rs0",
                "options": {"name": "customer_created"},
            }
        ],
    )
    return config


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _set(config: Any, path: str, value: Any) -> None:
    """Set (or, with DELETE, remove) the value at a JSON path like ``processes[1].args2_6.net.port``."""
    steps: list[str | int] = [name or int(index) for name, index in _STEP.findall(path)]
    node = config
    for step in steps[:-1]:
        node = node[step]
    if value is DELETE:
        del node[steps[-1]]
    elif isinstance(node, list) and steps[-1] == len(node):
        node.append(value)
    else:
        node[steps[-1]] = value


def _sharded_process(i: int, rs: str, port: int, role: str) -> dict[str, Any]:
    proc = _process(i, rs)
    proc["args2_6"]["net"]["port"] = port
    proc["args2_6"]["sharding"] = {"clusterRole": role}
    return proc


def mongos(i: int, cluster: str = "c1") -> dict[str, Any]:
    """A mongos of ``cluster`` on host{i}, port 27016: no storage, no replica set, no cluster role."""
    proc = _process(i, rs="mongos")
    del proc["args2_6"]["replication"], proc["args2_6"]["storage"]
    proc["args2_6"]["net"]["port"] = 27016
    proc["args2_6"]["systemLog"]["path"] = f"/var/log/mongos-{i}.log"
    return proc | {"processType": "mongos", "cluster": cluster}


def sharded() -> dict[str, Any]:
    """:func:`base` as the sharded cluster ``c1``: config server set ``cs`` (processes 3-5, port 27019),
    shards ``s0`` (rs0, processes 0-2) and ``s1`` (rs1, processes 6-8, port 27018), a sharded collection, and
    two mongos (processes 9-10). Every sharding case breaks one rule of it."""
    config = base()
    for proc in config["processes"]:
        proc["args2_6"]["sharding"] = {"clusterRole": "shardsvr"}
    for rs, port, role in (("cs", 27019, "configsvr"), ("rs1", 27018, "shardsvr")):
        config["processes"] += [_sharded_process(i, rs, port, role) for i in range(3)]
        members = [_member(i, rs) for i in range(3)]
        config["replicaSets"].append({"_id": rs, "protocolVersion": "1", "members": members})
    config["processes"] += [mongos(0), mongos(1)]
    config["sharding"] = [
        {
            "name": "c1",
            "configServerReplica": "cs",
            "shards": [{"_id": "s0", "rs": "rs0", "tags": []}, {"_id": "s1", "rs": "rs1", "tags": ["east"]}],
            "collections": [{"_id": "shop.orders", "key": [["customer", 1]], "unique": False}],
            "draining": [],
            "tags": [],
        }
    ]
    return config


def _members(config: dict[str, Any], n: int, voting: int) -> None:
    """Replace rs0 by an n-member set whose first ``voting`` members vote."""
    config["processes"] = [_process(i) for i in range(n)]
    for proc in config["processes"]:
        proc["args2_6"]["net"]["tls"] = {"mode": "disabled"}
    config["replicaSets"][0]["members"] = [
        _member(i) if i < voting else _member(i, votes=0, priority=0) for i in range(n)
    ]


Mutation = Callable[[dict[str, Any]], None] | tuple[str, Any]
# A rule's case: (case id, mutation, rule, field). A tuple mutation sets one path; the field is then that path
# unless given.
Case = tuple[str, Mutation, str, str | None]


def _apply(config: dict[str, Any], mutation: Mutation) -> None:
    if isinstance(mutation, tuple):
        _set(config, *mutation)
    else:
        mutation(config)


def check_case(
    mutation: Mutation, rule: str, field: str | None, make: Callable[[], dict[str, Any]] = base
) -> None:
    """The config ``make`` builds, broken by ``mutation``, is refused with ``rule`` naming ``field``."""
    config = make()
    _apply(config, mutation)
    if field is None:
        assert isinstance(mutation, tuple)
        field = mutation[0]
    with pytest.raises(InvalidInput) as caught:
        validate(config)
    assert (caught.value.rule, caught.value.field) == (rule, field), caught.value.detail
    body = caught.value.to_json()
    assert body["error"] == 400
    assert body["parameters"] == {"field": field, "rule": rule}
