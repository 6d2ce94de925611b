"""The sharded-cluster rules of the automation config (``sharding[]``, cluster roles, mongos): one case per
rule on a valid sharded deployment, each naming its id and the field; what is accepted; and hostile input
that is refused with a 400, never anything else."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmgr.automation.config import validate
from opsmgr.automation.sharding import MAX_SHARDED_COLLECTIONS, MAX_SHARDS, MAX_TAGS
from opsmgr.errors import InvalidInput
from tests.automation.configs import DELETE, Case, _sharded_process, check_case, mongos, sharded

SHARD = "sharding[0].shards[1]"
COLL = "sharding[0].collections[0]"


def _lone_config_server(c: dict[str, Any]) -> None:
    proc = _sharded_process(7, "lone", 27030, "configsvr")
    del proc["args2_6"]["replication"]
    c["processes"].append(proc)


def _no_role(c: dict[str, Any], first: int) -> None:
    for proc in c["processes"][first : first + 3]:
        del proc["args2_6"]["sharding"]


def _second_cluster(c: dict[str, Any], **fields: Any) -> None:
    c["sharding"].append({"name": "c2", "configServerReplica": "cs", "shards": []} | fields)


CASES: list[Case] = [
    ("role-unknown", ("processes[3].args2_6.sharding.clusterRole", "router"), "cluster-role", None),
    ("role-not-string", ("processes[3].args2_6.sharding.clusterRole", 5), "type", None),
    ("sharding-args-not-object", ("processes[3].args2_6.sharding", "x"), "type", None),
    (
        "config-server-outside-replset",
        _lone_config_server,
        "config-server-replset",
        "processes[11].args2_6.sharding.clusterRole",
    ),
    (
        "mongos-storage",
        ("processes[9].args2_6.storage", {"dbPath": "/d"}),
        "mongos-options",
        "processes[9].args2_6.storage.dbPath",
    ),
    (
        "mongos-role",
        ("processes[10].args2_6.sharding", {"clusterRole": "shardsvr"}),
        "mongos-options",
        "processes[10].args2_6.sharding.clusterRole",
    ),
    (
        "replset-mixed-roles",
        ("processes[7].args2_6.sharding.clusterRole", "configsvr"),
        "replset-cluster-role",
        None,
    ),
    (
        "shard-without-role",
        lambda c: _no_role(c, 6),
        "sharding-cluster-role",
        "processes[6].args2_6.sharding.clusterRole",
    ),
    (
        "config-server-as-shardsvr",
        lambda c: [p["args2_6"]["sharding"].update(clusterRole="shardsvr") for p in c["processes"][3:6]],
        "sharding-cluster-role",
        "processes[3].args2_6.sharding.clusterRole",
    ),
    (
        "config-server-arbiter",
        lambda c: c["replicaSets"][1]["members"][2].update(arbiterOnly=True, priority=0),
        "config-server-arbiter",
        "replicaSets[1].members[2].arbiterOnly",
    ),
    ("no-config-server", ("sharding[0].configServerReplica", DELETE), "sharding-config-server", None),
    ("empty-config-server", ("sharding[0].configServerReplica", ""), "sharding-config-server", None),
    ("config-server-unknown", ("sharding[0].configServerReplica", "rs9"), "sharding-replset", None),
    ("config-server-not-string", ("sharding[0].configServerReplica", ["cs"]), "type", None),
    ("shard-rs-unknown", (f"{SHARD}.rs", "rs9"), "sharding-replset", None),
    ("shard-rs-twice", (f"{SHARD}.rs", "rs0"), "sharding-replset-once", None),
    ("config-server-as-shard", (f"{SHARD}.rs", "cs"), "sharding-replset-once", None),
    (
        "config-server-of-two-clusters",
        _second_cluster,
        "sharding-replset-once",
        "sharding[1].configServerReplica",
    ),
    (
        "name-duplicate",
        lambda c: c["sharding"].append(copy.deepcopy(c["sharding"][0])),
        "sharding-name-unique",
        "sharding[1].name",
    ),
    ("name-empty", ("sharding[0].name", ""), "sharding-name-unique", None),
    ("name-not-string", ("sharding[0].name", {"$gt": ""}), "sharding-name-unique", None),
    ("name-missing", ("sharding[0].name", DELETE), "required", None),
    ("cluster-not-object", ("sharding[0]", "c1"), "type", None),
    ("shard-id-duplicate", (f"{SHARD}._id", "s0"), "shard-id-unique", None),
    ("shard-id-empty", (f"{SHARD}._id", ""), "shard-id-unique", None),
    ("shard-id-missing", (f"{SHARD}._id", DELETE), "required", None),
    ("shard-rs-missing", (f"{SHARD}.rs", DELETE), "required", None),
    ("shard-not-object", (SHARD, "rs1"), "type", None),
    ("shards-not-array", ("sharding[0].shards", {"s0": "rs0"}), "type", None),
    ("shard-rs-not-string", (f"{SHARD}.rs", 1), "type", None),
    (
        "too-many-shards",
        ("sharding[0].shards", [{"_id": f"s{i}", "rs": "rs0"} for i in range(MAX_SHARDS + 1)]),
        "max-shards",
        None,
    ),
    (
        "draining-unknown-shard",
        ("sharding[0].draining", ["s9"]),
        "sharding-draining",
        "sharding[0].draining[0]",
    ),
    (
        "draining-twice",
        ("sharding[0].draining", ["s1", "s1"]),
        "sharding-draining",
        "sharding[0].draining[1]",
    ),
    ("draining-not-string", ("sharding[0].draining", [1]), "sharding-draining", "sharding[0].draining[0]"),
    ("draining-too-long", ("sharding[0].draining", ["s0", "s1", "s0"]), "sharding-draining", None),
    ("draining-not-array", ("sharding[0].draining", "s1"), "type", None),
    ("shard-tag-not-string", (f"{SHARD}.tags", [3]), "sharding-tag", f"{SHARD}.tags[0]"),
    ("cluster-tags-too-many", ("sharding[0].tags", ["t"] * (MAX_TAGS + 1)), "max-tags", None),
    ("ns-no-collection", (f"{COLL}._id", "orders"), "sharded-collection-ns", None),
    ("ns-bad-database", (f"{COLL}._id", "sh$op.orders"), "sharded-collection-ns", None),
    ("ns-system", (f"{COLL}._id", "shop.system.users"), "sharded-collection-ns", None),
    ("ns-local", (f"{COLL}._id", "local.oplog"), "sharded-collection-ns", None),
    ("ns-config", (f"{COLL}._id", "config.chunks"), "sharded-collection-ns", None),
    ("ns-not-string", (f"{COLL}._id", 7), "type", None),
    ("ns-missing", (f"{COLL}._id", DELETE), "required", None),
    (
        "collection-twice",
        lambda c: c["sharding"][0]["collections"].append(copy.deepcopy(c["sharding"][0]["collections"][0])),
        "sharded-collection-unique",
        "sharding[0].collections[1]._id",
    ),
    (
        "too-many-collections",
        lambda c: c["sharding"][0].update(
            collections=[{"_id": f"db.c{i}", "key": [["k", 1]]} for i in range(MAX_SHARDED_COLLECTIONS + 1)]
        ),
        "max-sharded-collections",
        "sharding[0].collections",
    ),
    ("key-empty", (f"{COLL}.key", []), "shard-key", None),
    ("key-missing", (f"{COLL}.key", DELETE), "required", None),
    ("key-not-array", (f"{COLL}.key", {"customer": 1}), "type", None),
    ("key-descending", (f"{COLL}.key", [["customer", -1]]), "shard-key", f"{COLL}.key[0]"),
    ("key-document", (f"{COLL}.key", [{"customer": 1}]), "shard-key", f"{COLL}.key[0]"),
    ("key-bool", (f"{COLL}.key", [["customer", True]]), "shard-key", f"{COLL}.key[0]"),
    ("key-operator", (f"{COLL}.key", [["$where", 1]]), "shard-key", f"{COLL}.key[0]"),
    ("key-field-twice", (f"{COLL}.key", [["a", 1], ["a", 1]]), "shard-key", f"{COLL}.key[1]"),
    ("key-two-hashed", (f"{COLL}.key", [["a", "hashed"], ["b", "hashed"]]), "shard-key", f"{COLL}.key"),
    (
        "key-hashed-unique",
        lambda c: c["sharding"][0]["collections"][0].update(key=[["a", "hashed"]], unique=True),
        "shard-key-unique-hashed",
        f"{COLL}.unique",
    ),
    ("unique-not-boolean", (f"{COLL}.unique", "yes"), "type", None),
    ("mongos-unknown-cluster", ("processes[9].cluster", "c2"), "mongos-cluster", None),
    ("mongos-no-cluster", ("processes[9].cluster", DELETE), "mongos-cluster", None),
]


@pytest.mark.parametrize(("mutation", "rule", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_names_its_id_and_field(mutation: Any, rule: str, field: str | None) -> None:
    check_case(mutation, rule, field, make=sharded)


def test_the_sharded_deployment_is_valid_and_kept_as_sent() -> None:
    config = sharded()
    accepted = validate(config)
    assert accepted["sharding"] == config["sharding"]
    assert [p["processType"] for p in accepted["processes"]].count("mongos") == 2


def test_what_a_sharded_deployment_may_also_hold() -> None:
    """A draining shard, hashed and compound keys, a replica set readied as a shard before it is added (its
    members already shardsvr), a second cluster with its own parts, and legacy fields kept as sent."""
    config = sharded()
    cluster = config["sharding"][0]
    cluster["draining"] = ["s1"]
    cluster["collections"] += [
        {"_id": "shop.carts", "key": [["user", "hashed"]], "unique": False},
        {"_id": "shop.items", "key": [["sku", 1], ["at", 1]], "unique": True},
    ]
    cluster["managedSharding"] = True
    readied = [_sharded_process(i, "rs2", 27021, "shardsvr") for i in range(3)]
    config["processes"] += readied
    config["replicaSets"].append(
        {"_id": "rs2", "members": [{"_id": i, "host": p["name"]} for i, p in enumerate(readied)]}
    )
    accepted = validate(config)
    assert accepted["sharding"][0]["draining"] == ["s1"]
    config["sharding"][0]["shards"].append({"_id": "s2", "rs": "rs2"})
    assert validate(config)["sharding"][0]["shards"][-1] == {"_id": "s2", "rs": "rs2"}


def test_a_mongos_needs_no_tls_or_log_settings_of_its_own() -> None:
    config = sharded()
    config["processes"][9] = mongos(0) | {"args2_6": {"net": {"port": 27016}}}
    config["tls"] = {}
    for proc in config["processes"]:
        proc["args2_6"]["net"].pop("tls", None)
    assert validate(config)["processes"][9]["args2_6"]["net"] == {"port": 27016}


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from(["", "c1", "cs", "rs0", "s0", "a.b", "$x"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["_id", "rs", "key"]), inner),
    max_leaves=12,
)
_FIELDS = st.sampled_from(
    ["name", "configServerReplica", "shards", "collections", "draining", "tags", "managedSharding"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(_FIELDS, _JSON, min_size=1, max_size=4))
def test_hostile_sharding_values_are_refused_or_accepted_never_crash(changes: dict[str, Any]) -> None:
    """Whatever a client puts in a cluster's fields, the validator accepts it or refuses it with an
    InvalidInput naming a field (a 400), never another exception (a 500)."""
    config = sharded()
    config["sharding"][0].update(changes)
    try:
        validate(config)
    except InvalidInput as refused:
        assert refused.field and refused.rule
