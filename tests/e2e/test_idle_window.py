"""An idle simulated replica set's point-in-time window advances end to end: a real server, three real
``opsmgr agent`` processes on the sim driver, backup started, NO write load. The sim's primary writes
MongoDB's periodic no-op (every ``SimParams.noop_interval_s``), the backup agent ships it, the daemon ingests
it, and the PITR window's end moves past where it stood; ``GET /hosts`` says every host is simulated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.sim.model import SimParams
from opsmgr.sim.world import SimWorld
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.e2e.simbackup import listing, primary, start_backup
from tests.procs import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

HOSTS = [f"idle{i}.noop.sim" for i in range(3)]
NOOP_S = 2.0  # short, so that two intervals fit well inside the test's time


@pytest.fixture
def idle(
    server: ServerProcess, owner: dict[str, Any], tmp_path: Path
) -> Iterator[tuple[Deployment, SimWorld]]:
    # The world is created before the agents open it: its parameters apply to a new file only.
    world = SimWorld.open(tmp_path / "world.sqlite", params=SimParams(noop_interval_s=NOOP_S))
    d = Deployment(server, owner, tmp_path, "idle-window")
    try:
        for host in HOSTS:
            d.agent(host)
        d.wait_goal(d.put(replica_set_config(HOSTS, rs="idle")), 3)
        yield d, world
    finally:
        d.close()
        world.close()


def _end_millis(d: Deployment, base: str) -> int | None:
    window = listing(d, base)["pitrWindow"]
    return window[-1]["endUTCMillis"] if window else None


def test_an_idle_sets_window_advances_and_its_hosts_say_simulated(idle: tuple[Deployment, SimWorld]) -> None:
    d, world = idle
    found = primary(world, HOSTS, "idle")
    assert found is not None
    set_id = world.set_id_of(*found)
    assert set_id is not None
    assert world.write_load(set_id).rate == 0, "the set must be idle"

    hosts = d.hosts()
    assert len(hosts) == 3 and all(h["simulated"] is True for h in hosts), hosts
    one = d.api.get(f"/groups/{d.group_id}/hosts/{hosts[0]['id']}").json()
    by_name = d.api.get(f"/groups/{d.group_id}/hosts/byName/{hosts[1]['hostname']}:{hosts[1]['port']}").json()
    assert one["simulated"] is True and by_name["simulated"] is True, (one, by_name)

    base = start_backup(d)
    wait_for(lambda: _end_millis(d, base) is not None, 60, what="a first snapshot and a window past it")
    first = _end_millis(d, base)
    assert first is not None
    since = time.monotonic()
    wait_for(
        lambda: (_end_millis(d, base) or 0) > first, 2 * NOOP_S + 10, what="the idle set's window advancing"
    )
    assert time.monotonic() - since < 2 * NOOP_S + 10
    last_ts = world.oplog_window(*found)
    assert last_ts is not None
    entry = world.oplog_read(*found, last_ts.last_ts - 1, limit=10)
    assert entry and entry[-1].op == "n" and entry[-1].o == {"msg": "periodic noop"}, entry
