"""The mongod driver's sharding commands, sent to a mongos: the command documents it sends and the replies it
reads (shaped like the examples of MongoDB's reference pages), checked against a wire-protocol peer; and a
``mongos`` started from its own binary with a router's config file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from bson.int64 import Int64

from opsmgr.drivers.base import (
    BalancerState,
    CommandConflict,
    DriverError,
    ProcessSpec,
    RemoveShardProgress,
    RemoveShardState,
    RunMode,
    ShardedCollection,
    ShardInfo,
)
from opsmgr.drivers.mongod import MongodDriver
from opsmgr.drivers.mongod_commands import mongod_options
from tests.drivers.specs import NAME, error, spec
from tests.drivers.test_mongod_driver import fake_mongod, local_spec
from tests.drivers.wirepeer import WirePeer

SHARD = "shard01/host1:27018,host2:27018,host3:27018"
LIST_SHARDS = {
    "shards": [
        {"_id": "shard01", "host": SHARD, "state": 1, "topologyTime": None},
        {"_id": "shard02", "host": "shard02/host4:27018", "state": 1, "draining": True},
    ]
}


def cursor(*docs: dict[str, object]) -> dict[str, object]:
    return {"cursor": {"firstBatch": list(docs), "id": Int64(0), "ns": "config.collections"}}


def test_list_shards(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("listShards", LIST_SHARDS)
    assert driver.list_shards(NAME) == [
        ShardInfo("shard01", SHARD, False),
        ShardInfo("shard02", "shard02/host4:27018", True),
    ]
    assert peer.last("listShards") == {"listShards": 1}
    assert peer.received("listShards")[-1].db == "admin"


def test_add_shard_sends_addshard_once(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("listShards", {"shards": []}, LIST_SHARDS)
    peer.script("addShard", {"shardAdded": "shard01"})
    driver.add_shard(NAME, "shard01", SHARD)
    assert peer.last("addShard") == {"addShard": SHARD, "name": "shard01"}
    driver.add_shard(NAME, "shard01", "shard01/host1:27018")  # already there with that set: nothing sent
    assert len(peer.received("addShard")) == 1


def test_an_add_shard_refusal_carries_the_servers_code(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("listShards", {"shards": []})
    peer.script("addShard", error(96, "OperationFailed", "failed to connect to shard01/host1:27018"))
    with pytest.raises(DriverError, match="failed to connect") as refused:
        driver.add_shard(NAME, "shard01", SHARD)
    assert refused.value.code == 96


def test_remove_shard_reports_each_phase(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script(
        "removeShard",
        {
            "msg": "draining started successfully",
            "state": "started",
            "shard": "shard02",
            "note": "you need to drop or movePrimary these databases",
            "dbsToMove": ["fizz", "buzz"],
        },
        {
            "msg": "draining ongoing",
            "state": "ongoing",
            "remaining": {"chunks": Int64(42), "dbs": Int64(1), "jumboChunks": Int64(0)},
            "note": "you need to drop or movePrimary these databases",
            "dbsToMove": ["fizz"],
        },
        {"msg": "removeshard completed successfully", "state": "completed", "shard": "shard02"},
    )
    assert driver.remove_shard(NAME, "shard02") == RemoveShardProgress(
        RemoveShardState.STARTED, 0, ("fizz", "buzz")
    )
    assert driver.remove_shard(NAME, "shard02") == RemoveShardProgress(
        RemoveShardState.ONGOING, 42, ("fizz",)
    )
    assert driver.remove_shard(NAME, "shard02") == RemoveShardProgress(RemoveShardState.COMPLETED, 0, ())
    assert peer.last("removeShard") == {"removeShard": "shard02"}


def test_sharded_collections_leave_out_dropped_and_the_clusters_own(
    peer: WirePeer, driver: MongodDriver
) -> None:
    peer.script(
        "find",
        cursor(
            {"_id": "config.system.sessions", "key": {"_id": 1}, "unique": False},
            {"_id": "app.orders", "key": {"_id": "hashed"}, "unique": False},
            {"_id": "app.users", "key": {"email": 1}, "unique": True},
            {"_id": "app.gone", "key": {"_id": 1}, "dropped": True},
        ),
    )
    assert driver.sharded_collections(NAME) == [
        ShardedCollection("app.orders", {"_id": "hashed"}, False),
        ShardedCollection("app.users", {"email": 1}, True),
    ]
    found = peer.received("find")[-1]
    assert found.db == "config" and found.command["find"] == "collections"


def test_shard_collection_enables_sharding_then_shards(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("find", cursor())
    peer.script(
        "enableSharding", error(23, "AlreadyInitialized", "sharding already enabled for database app")
    )
    peer.script("shardCollection", {"collectionsharded": "app.orders"})
    driver.shard_collection(NAME, "app.orders", {"_id": "hashed"})
    assert peer.last("enableSharding") == {"enableSharding": "app"}
    assert peer.last("shardCollection") == {
        "shardCollection": "app.orders",
        "key": {"_id": "hashed"},
        "unique": False,
    }


def test_shard_collection_of_a_sharded_collection(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("find", cursor({"_id": "app.orders", "key": {"_id": "hashed"}, "unique": False}))
    driver.shard_collection(NAME, "app.orders", {"_id": "hashed"})
    with pytest.raises(CommandConflict, match="already sharded"):
        driver.shard_collection(NAME, "app.orders", {"customer": 1})
    assert not peer.received("shardCollection") and not peer.received("enableSharding")


def test_balancer_status_start_and_stop(peer: WirePeer, driver: MongodDriver) -> None:
    peer.script("balancerStatus", {"mode": "full", "inBalancerRound": False, "numBalancerRounds": Int64(1)})
    peer.script("balancerStop", {})
    peer.script("balancerStart", {})
    assert driver.balancer_status(NAME) == BalancerState(mode="full", in_round=False)
    assert peer.last("balancerStatus") == {"balancerStatus": 1}
    driver.set_balancer(NAME, running=False)
    assert peer.last("balancerStop") == {"balancerStop": 1, "maxTimeMS": 60000}
    driver.set_balancer(NAME, running=True)
    assert peer.last("balancerStart") == {"balancerStart": 1, "maxTimeMS": 60000}


def router_spec(**overrides: object) -> ProcessSpec:
    args = {
        "net": {"port": 27017},
        "storage": {"dbPath": "/data/x"},
        "replication": {"replSetName": "x"},
        "sharding": {"configDB": "csrs/cfg1:27019,cfg2:27019", "clusterRole": "shardsvr"},
    }
    return spec(
        **{
            "name": "mongos_0",
            "args": args,
            "repl_set_name": None,
            "dbpath": "",
            "process_type": "mongos",
            **overrides,
        }
    )


def test_a_routers_config_has_no_data_nor_replication() -> None:
    options = mongod_options(router_spec(), default_log_path="/var/log/mongos.log")
    assert "storage" not in options and "replication" not in options and "setParameter" not in options
    assert options["sharding"] == {"configDB": "csrs/cfg1:27019,cfg2:27019"}
    assert options["net"]["port"] == 27017 and options["systemLog"]["path"] == "/var/log/mongos.log"


def test_a_mongos_starts_from_the_mongos_binary(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin" / "7.0.14"
    fake_mongod(bin_dir).rename(bin_dir / "mongos")
    d = MongodDriver(
        str(tmp_path / "bin" / "{version}" / "mongod"), "127.0.0.1", tmp_path / "state", connect_timeout_s=0.5
    )
    assert d.mongos_binary == str(tmp_path / "bin" / "{version}" / "mongos")
    router = local_spec(
        tmp_path, **{k: v for k, v in router_spec().__dict__.items() if k not in ("port", "hostname")}
    )
    try:
        d.start(router)
        seen = d.observe("mongos_0")
        assert seen.running and seen.process_type == "mongos" and seen.mode is RunMode.STANDALONE
        config = yaml.safe_load((tmp_path / "state" / "mongod" / "mongos_0.conf").read_text())
        assert config["sharding"] == {"configDB": "csrs/cfg1:27019,cfg2:27019"} and "storage" not in config
        assert not (tmp_path / "db").exists()
    finally:
        d.stop("mongos_0", force=True)
        d.close()


def batch(ns: str, docs: list[dict[str, object]]) -> dict[str, object]:
    return {"cursor": {"firstBatch": docs, "id": Int64(0), "ns": ns}}


def test_a_config_servers_dump_and_load_carry_the_cluster_metadata(
    peer: WirePeer, driver: MongodDriver
) -> None:
    listed = {
        "config": ["chunks", "shards", "system.sessions", "transactions"],
        "shop": ["orders"],
    }
    found = {"config.chunks": [{"_id": "app.orders-0", "shard": "sh0"}], "config.shards": [{"_id": "sh0"}]}
    peer.script("listDatabases", {"databases": [{"name": n} for n in ("admin", "config", "local", "shop")]})
    peer.script(
        "listCollections",
        lambda body: batch(
            f"{body['$db']}.$cmd.listCollections",
            [{"name": c, "type": "collection"} for c in listed[body["$db"]]],
        ),
    )
    peer.script(
        "find",
        lambda body: batch(
            f"{body['$db']}.{body['find']}",
            found.get(f"{body['$db']}.{body['find']}", [{"_id": 1}]),
        ),
    )
    dumped = driver.dump(NAME)
    assert dumped == [
        ("shop.orders", {"_id": 1}),
        ("config.chunks", {"_id": "app.orders-0", "shard": "sh0"}),
        ("config.shards", {"_id": "sh0"}),
    ]
    peer.script("listDatabases", {"databases": [{"name": "config"}, {"name": "shop"}]})
    peer.script("dropDatabase", {})
    peer.script("delete", {"n": 1})
    peer.script("insert", lambda body: {"n": len(body["documents"])})
    driver.load(NAME, dumped)
    assert [r.db for r in peer.received("dropDatabase")] == ["shop"], "the config database is not dropped"
    cleared = sorted(r.command["delete"] for r in peer.received("delete"))
    assert cleared == ["chunks", "collections", "databases", "settings", "shards", "tags", "version"]
    assert all(
        r.db == "config" and r.command["deletes"] == [{"q": {}, "limit": 0}] for r in peer.received("delete")
    )
    inserted = [(r.db, r.command["insert"]) for r in peer.received("insert")]
    assert inserted == [("shop", "orders"), ("config", "chunks"), ("config", "shards")]
