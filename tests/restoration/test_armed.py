"""ARMED after a restore: a server that starts on an application database a restore wrote (its restore record
says so) refuses deployment changes in every project until each host of the restored config has polled
once, so a change accepted before the agents are heard cannot drive them backwards. Through a real server
and the agent API; the record is written the way the restore of the backing databases writes it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsmgr.restoration import record
from opsmgr.restoration.record import RestoreRecord
from opsmgr.store.engine import Store
from tests.agent_protocol import AgentProject, FakeAgent
from tests.configs import replica_set_config
from tests.procs import ServerProcess, free_port

HOSTS = ["a.armed.sim", "b.armed.sim", "c.armed.sim"]
LATER_HOST = "d.armed.sim"  # a host the restore knows of from a later config than the restored one


@pytest.fixture
def restored(tmp_path: Path) -> Iterator[tuple[ServerProcess, httpx.Client, str, list[FakeAgent]]]:
    server = ServerProcess(tmp_path / "data", free_port()).start()
    api = server.client(server.create_key())
    project = AgentProject(server.url, api, "restored", replica_set_config(HOSTS))
    group_id = project.gid
    agents = [FakeAgent(server.url, group_id, project.agent_key, h) for h in HOSTS]
    for a in agents:
        assert a.poll() == 200
    server.stop()
    app = Store(f"sqlite:///{server.data_dir / 'appdb.sqlite'}")
    try:
        with app.tx() as t:
            record.write(
                t,
                RestoreRecord(
                    restore_job_id="job-1",
                    restored_at_ms=int(time.time() * 1000),
                    point_us=1,
                    hostnames={group_id: [*HOSTS, LATER_HOST]},
                ),
            )
    finally:
        app.close()
    server.start()
    try:
        yield server, api, group_id, agents
    finally:
        api.close()
        server.stop()


def _view(api: httpx.Client, group_id: str) -> dict[str, object]:
    return dict(api.get(f"/groups/{group_id}/restorationMode").json())


def test_changes_wait_until_every_agent_polled(
    restored: tuple[ServerProcess, httpx.Client, str, list[FakeAgent]],
) -> None:
    server, api, group_id, agents = restored
    view = _view(api, group_id)
    assert view["state"] == "ARMED" and view["armed"] and not view["inRestorationMode"]
    assert view["awaitingHosts"] == HOSTS and view["armedBy"]["restoreJobId"] == "job-1"  # type: ignore[index]
    change = replica_set_config(HOSTS[:1])
    refused = api.put(f"/groups/{group_id}/automationConfig", json=change)
    assert refused.status_code == 409 and refused.json()["errorCode"] == "RESTORATION_MODE_ARMED"
    assert HOSTS[1] in refused.json()["detail"]

    assert agents[0].poll() == 304 and agents[1].poll() == 304
    assert _view(api, group_id)["awaitingHosts"] == [HOSTS[2]]
    assert api.put(f"/groups/{group_id}/automationConfig", json=change).status_code == 409
    assert agents[2].poll() == 304
    view = _view(api, group_id)
    assert view["state"] == "INACTIVE" and view["disarmReason"]
    assert api.put(f"/groups/{group_id}/automationConfig", json=change).status_code == 200

    server.stop()  # the record was acted on: a restart does not arm again
    server.start()
    assert _view(api, group_id)["state"] == "INACTIVE"


def test_an_agent_with_a_newer_config_enters_the_mode(
    restored: tuple[ServerProcess, httpx.Client, str, list[FakeAgent]],
) -> None:
    _server, api, group_id, agents = restored
    newer = FakeAgent(str(agents[0].http.base_url), group_id, agents[0].key, LATER_HOST)
    newer.held = dict(agents[0].held, version=5)
    assert newer.poll() == 304, "a host named by the restore record speaks for the project"
    view = _view(api, group_id)
    assert view["state"] == "COLLECTING" and view["triggerReason"]["hostname"] == LATER_HOST  # type: ignore[index]
    stranger = FakeAgent(str(agents[0].http.base_url), group_id, agents[0].key, "e.armed.sim")
    stranger.held = dict(agents[0].held, version=6)
    assert stranger.poll() == 403


def test_a_project_owner_clears_it(
    restored: tuple[ServerProcess, httpx.Client, str, list[FakeAgent]],
) -> None:
    server, api, group_id, _agents = restored
    read_only = api.post(
        f"/groups/{group_id}/apiKeys", json={"desc": "ro", "roles": ["GROUP_READ_ONLY"]}
    ).json()
    with server.client(read_only) as ro:
        assert ro.delete(f"/groups/{group_id}/restorationMode").status_code == 403
    assert api.post(f"/groups/{group_id}/restorationMode/retry").status_code == 409
    cleared = api.delete(f"/groups/{group_id}/restorationMode")
    assert cleared.status_code == 200 and cleared.json()["state"] == "INACTIVE"
    assert "project owner" in cleared.json()["disarmReason"]
    assert api.delete(f"/groups/{group_id}/restorationMode").status_code == 409
    assert (
        api.put(f"/groups/{group_id}/automationConfig", json=replica_set_config(HOSTS[:1])).status_code == 200
    )
