"""The specs a member of a set under rolling maintenance restarts with."""

from __future__ import annotations

from opsmgr.agent.maintenance_driver import standalone_spec
from opsmgr.agent.plan import process_spec
from opsmgr.maintenance.snapshot import Policy


def test_the_standalone_spec_leaves_the_set_for_the_maintenance_port() -> None:
    from tests.configs import replica_set_config

    spec = process_spec(replica_set_config(["h0.sim"], oplog_size_mb=100)["processes"][0])
    out = standalone_spec(spec, Policy(), {"security": {"kmip": {"rotateMasterKey": True}}})
    assert out.repl_set_name is None and out.port == 37017 and out.args["net"]["port"] == 37017
    assert out.args["replication"] == {"oplogSizeMB": 100}
    assert out.args["security"]["kmip"]["rotateMasterKey"] is True
    assert spec.args["net"]["port"] == 27017, "the goal spec is left as it was"


def test_standalone_spec_leaves_the_set_and_moves_port() -> None:
    from opsmgr.automation.templates import replica_set_config

    spec = process_spec(replica_set_config(["h"])["processes"][0])
    out = standalone_spec(spec, Policy())
    assert (out.port, out.repl_set_name, out.args["net"]["port"]) == (37017, None, 37017)
    assert "replication" not in out.args and spec.args["replication"] == {"replSetName": "rs0"}
