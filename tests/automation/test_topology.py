"""The topology rules of the automation config (processes, replica sets, members): one case per rule, each
naming its id and the field. Sharded clusters' are in test_sharding."""

from __future__ import annotations

from typing import Any

import pytest

from tests.automation.configs import (
    DELETE,
    Case,
    _member,
    _members,
    check_case,
)

CASES: list[Case] = [
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
        lambda c: c["processes"][2].update(processType="mongos", cluster="c1"),
        "member-process-type",
        "replicaSets[0].members[2].host",
    ),
]


@pytest.mark.parametrize(("mutation", "rule", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_names_its_id_and_field(mutation: Any, rule: str, field: str | None) -> None:
    check_case(mutation, rule, field)
