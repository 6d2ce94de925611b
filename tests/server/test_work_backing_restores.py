"""The backing agent's share of its project's work: the restores of backing databases it carries out, for the
agent of the deployment's host only (any host's when the deployment names none), and the agent's reading of
them (pure)."""

from __future__ import annotations

from opsmgr.agent.work import WorkList
from opsmgr.server.work import ProjectWork

JOB = {"jobId": "j1", "clusterId": "c1", "force": False, "stores": {"app": 5, "snapshot": 5}}


def test_a_restore_goes_to_the_agent_of_its_host_only() -> None:
    work = ProjectWork(backing_restores=({**JOB, "hostname": "primary.example"},))
    mine = work.for_host("primary.example")
    assert mine["backingRestores"] == [JOB]
    assert work.for_host("other.example")["backingRestores"] == []
    assert mine["version"] != work.for_host("other.example")["version"], "the agent learns of it"
    held = WorkList.from_json(mine)
    assert held.backing_restores == (JOB,) and not held.idle


def test_a_deployment_without_a_host_is_restored_by_any_agent_of_the_project() -> None:
    work = ProjectWork(backing_restores=({**JOB, "hostname": None},))
    assert work.for_host("anyone.example")["backingRestores"] == [JOB]


def test_a_malformed_list_is_not_taken() -> None:
    try:
        WorkList.from_json({"version": "v", "backingRestores": [{"clusterId": "no job id"}]})
    except ValueError as exc:
        assert "backingRestores" in str(exc)
    else:
        raise AssertionError("a restore without jobId was taken")
