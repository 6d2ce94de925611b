"""The CLI's --cluster in a project holding a sharded cluster: the cluster by its name or id, a part by its
replica set's name, and an unknown name refused listing them all (it was a KeyError on the cluster's missing
replicaSetName)."""

from __future__ import annotations

from typing import Any

import pytest

from opsmgr.cli.backup import _cluster_id
from opsmgr.errors import InvalidInput

CLUSTERS = [
    {"id": "c" * 24, "typeName": "SHARDED_REPLICA_SET", "clusterName": "c1"},
    {"id": "a" * 24, "typeName": "CONFIG_SERVER_REPLICA_SET", "clusterName": "c1", "replicaSetName": "csrs"},
    {
        "id": "b" * 24,
        "typeName": "REPLICA_SET",
        "clusterName": "c1",
        "replicaSetName": "sh0",
        "shardName": "sh0",
    },
    {"id": "d" * 24, "typeName": "REPLICA_SET", "clusterName": "rs9", "replicaSetName": "rs9"},
]


class Api:
    def get_all(self, _path: str) -> dict[str, Any]:
        return {"results": CLUSTERS}


def test_a_sharded_cluster_and_its_parts_are_found_by_name_or_id() -> None:
    api: Any = Api()
    assert _cluster_id(api, "g", "c1") == "c" * 24
    assert _cluster_id(api, "g", "c" * 24) == "c" * 24
    assert _cluster_id(api, "g", "sh0") == "b" * 24
    assert _cluster_id(api, "g", "csrs") == "a" * 24
    assert _cluster_id(api, "g", "rs9") == "d" * 24
    with pytest.raises(InvalidInput) as refused:
        _cluster_id(api, "g", "nope")
    assert f"c1 ({'c' * 24})" in refused.value.detail and "sh0" in refused.value.detail
