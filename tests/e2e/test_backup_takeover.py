"""The backup job taken over (issue 18): three real servers on one real PostgreSQL set, their blockstore a
PostgreSQL database (``mms.blockstore.uri``), behind a real HAProxy that the API and a real sim agent go
through (round robin: an initial sync's and the slices' requests reach every server). The server owning
the backup job is stopped with every block of an on-demand snapshot written and its metadata not committed
(``backup.crashpoints``) and killed there (SIGKILL).

Then: another server owns the job within two lease periods; the half-taken snapshot was never listed and is
taken whole by the new owner (its head rebuilt from the shared catalog: the latest snapshot and the slices
after it); every listed snapshot is complete; the stored slices of each chain abut (none lost, none stored
twice); the PITR window is one range (no new hole) reaching past what was acknowledged before the kill;
and a restore to a point after the kill equals the source's documents at that point.

Mid-ingest: the job's owner is killed while it handles one of the agent's slice uploads, the slice's block
written and its record not committed. The agent's upload fails, it sends the entries again and another
server records them; the same guarantees hold, and the killed upload's block is referenced by nothing, so
grooming frees it (after its grace period).
"""

from __future__ import annotations

import itertools
import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opsmgr.backup import policy
from opsmgr.backup.crashpoints import ENV
from opsmgr.backup.slices import SliceCatalog
from opsmgr.backup.snapshots import SnapshotCatalog
from opsmgr.backup.syncs import SyncCatalog
from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from opsmgr.store.engine import Store
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.e2e.simbackup import listing, restore_matches_now, set_load, start_backup
from tests.haproxy import HAProxy
from tests.pgserver import PgServer
from tests.procs import STORE_KEYS, ServerProcess, servers_sharing, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

HOSTS = ["t0.takeover.sim"]
RS = "tk"
LEASE_S = 2.0
# Metrics are read every 0.1 s and the jobs turn every 0.5 s (half the poll interval).
SLACK_S = 1.0


class Fleet:
    def __init__(
        self, servers: list[ServerProcess], proxy: HAProxy, stores: dict[str, str], marker: Path
    ) -> None:
        self.servers = servers
        self.proxy = proxy
        self.stores = stores
        self.oplog_uri = stores["oplog metadata store"]
        self.blockstore_uri = stores["blockstore"]
        self.marker = marker

    def slice_marker(self, server: ServerProcess) -> Path:
        """The marker of ``server``'s own slice commit point (armed for it alone)."""
        return self.marker.with_name(f"slice-crash-{self.servers.index(server)}")


@pytest.fixture
def fleet(tmp_path: Path, pg_server: PgServer) -> Iterator[Fleet]:
    stores = {label: pg_server.create_database() for label in STORE_KEYS}
    blockstore = pg_server.create_database()
    extra = {
        "mms.agent.pollIntervalSeconds": "1",
        "mms.server.jobLeaseSeconds": str(LEASE_S),
        "mms.blockstore.uri": blockstore,
    }
    marker = tmp_path / "snapshot-crash"
    servers = servers_sharing(tmp_path, stores, ["s0", "s1", "s2"], extra)
    for i, server in enumerate(servers):  # each point stops only while the test arms it
        slice_marker = marker.with_name(f"slice-crash-{i}")
        server.env = {ENV: f"daemon-snapshot-commit:{marker},daemon-slice-commit:{slice_marker}"}
    proxy = HAProxy(tmp_path / "haproxy", [s.port for s in servers])
    try:
        for server in servers:
            server.start()
        yield Fleet(servers, proxy.start(), {**stores, "blockstore": blockstore}, marker)
    finally:
        for armed in tmp_path.glob("*.armed"):
            armed.unlink()
        proxy.stop()
        for server in servers:
            server.stop()


def _end(window: list[dict[str, Any]]) -> tuple[int, int]:
    return window[-1]["end"]["time"], window[-1]["end"]["increment"]


def _slices_abut(oplog_uri: str) -> int:
    """Asserts each chain's stored slices follow one another exactly; returns how many there are."""
    with psycopg.connect(oplog_uri) as conn:
        rows = conn.execute("SELECT doc FROM documents WHERE coll LIKE 'backup_slices.%'").fetchall()
    spans: dict[str, list[tuple[int, int]]] = {}
    for (doc,) in rows:
        s = json.loads(doc)
        spans.setdefault(s["chain"], []).append((s["start"], s["end"]))
    for chain, ranges in spans.items():
        ranges.sort()
        for (_, end), (start, _) in itertools.pairwise(ranges):
            assert start == end, f"chain {chain}: a slice lost or stored twice between {end} and {start}"
    return len(rows)


@contextmanager
def _backed_up(fleet: Fleet, root: Path) -> Iterator[tuple[Deployment, SimWorld, str]]:
    """A replica set under a write load backed up through HAProxy, its window advancing."""
    front = ServerProcess(root / "front", fleet.proxy.port)  # HAProxy's address, as agents are given
    d = Deployment(front, fleet.servers[0].create_key("ORG_OWNER"), root, "takeover")
    world: SimWorld | None = None
    try:
        d.agent(HOSTS[0])
        d.wait_goal(d.put(replica_set_config(HOSTS, rs=RS)), 1)
        world = SimWorld.open(d.root / "world.sqlite")
        set_load(world, HOSTS, RS, WriteLoad(rate=40, keys=60, payload_bytes=32))
        base = start_backup(d)  # the initial sync's requests go round the servers
        wait_for(lambda: listing(d, base)["totalCount"] >= 1, 90, what="a first snapshot")
        first = _end(listing(d, base)["pitrWindow"])
        wait_for(lambda: _end(listing(d, base)["pitrWindow"]) > first, 30, what="the window advancing")
        yield d, world, base
    finally:
        if world is not None:
            world.close()
        d.close()


def _stopped_mid_snapshot(
    fleet: Fleet, d: Deployment, base: str
) -> tuple[ServerProcess, str, tuple[int, int]]:
    """The job's owner held with an on-demand snapshot's blocks written, its metadata not: the owner, the
    snapshot's id and the window's end then."""
    Path(f"{fleet.marker}.armed").touch()
    r = d.api.post(f"{base}/snapshots")
    assert r.status_code == 200, r.text
    (pending,) = r.json()["snapshotIds"]
    wait_for(fleet.marker.exists, 60, what="the job's owner stopped before the snapshot's metadata commit")
    pid = int(fleet.marker.read_text().split()[1])
    (owner,) = [s for s in fleet.servers if s.proc is not None and s.proc.pid == pid]
    assert "backup" in owner.held_jobs()
    seen = listing(d, base)
    assert pending not in {s["id"] for s in seen["results"]}, "a partial snapshot is listed"
    return owner, pending, _end(seen["pitrWindow"])


def _taken_over(fleet: Fleet, victim: ServerProcess, since: float) -> ServerProcess:
    """The server that owns the backup job after ``victim``, within two lease periods of ``since``."""
    survivors = [s for s in fleet.servers if s is not victim]
    wait_for(
        lambda: any("backup" in s.held_jobs() for s in survivors),
        max(2 * LEASE_S + SLACK_S - (time.monotonic() - since), 0.1),
        0.1,
        what="the backup job owned by another server within two lease periods",
    )
    print(f"backup job taken over {time.monotonic() - since:.2f} s after the owner stopped")

    def one_owner() -> list[ServerProcess]:
        # Each server's /metrics is read in turn: on a loaded machine the lease may move between two reads
        # (a starved keeper lets it lapse), and both servers then say they hold it.
        owners = [s for s in survivors if "backup" in s.held_jobs()]
        return owners if len(owners) == 1 else []

    (owner,) = wait_for(one_owner, 30, 0.1, what="one server owning the backup job")
    return owner


def _listed(d: Deployment, base: str, snapshot_id: str) -> dict[str, Any]:
    """The snapshot once listed. Read through HAProxy, which routes to a paused server until three health
    checks fail: a request that times out there is polled again like one that does not list it yet."""

    def retaken() -> dict[str, Any] | None:
        return next((s for s in listing(d, base)["results"] if s["id"] == snapshot_id), None)

    return dict(wait_for(retaken, 60, what="the retaken snapshot"))


def test_the_backup_job_taken_over_mid_snapshot_completes_it_and_loses_nothing(
    fleet: Fleet, tmp_path: Path
) -> None:
    with _backed_up(fleet, tmp_path) as (d, world, base):
        victim, pending, acknowledged = _stopped_mid_snapshot(fleet, d, base)
        victim.kill()
        killed_at = time.monotonic()
        Path(f"{fleet.marker}.armed").unlink()
        owner = _taken_over(fleet, victim, killed_at)

        _listed(d, base, pending)
        assert "rebuilt from snapshot:" in owner.log(), "the new owner did not rebuild its head"
        after = listing(d, base)
        assert all(s["complete"] for s in after["results"]), after["results"]
        assert _end(after["pitrWindow"]) >= acknowledged, "an acknowledged slice was lost"
        wait_for(
            lambda: _end(listing(d, base)["pitrWindow"]) > acknowledged, 60, what="the window past the kill"
        )
        assert len(listing(d, base)["pitrWindow"]) == 1, "a new hole in the window"
        assert _slices_abut(fleet.oplog_uri) > 0
        restore_matches_now(d, base, world, HOSTS, RS)


def test_a_paused_owner_resumed_after_the_takeover_commits_nothing(fleet: Fleet, tmp_path: Path) -> None:
    """SIGSTOP instead of a kill: once resumed, the former owner's snapshot commit is refused by the fence
    (another server took the job and wrote first), so the snapshot stays the new owner's, listed once."""
    with _backed_up(fleet, tmp_path) as (d, _world, base):
        paused, pending, _ = _stopped_mid_snapshot(fleet, d, base)
        assert paused.proc is not None
        paused.proc.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        Path(f"{fleet.marker}.armed").unlink()  # read once resumed: the paused thread then goes on
        try:
            _taken_over(fleet, paused, stopped_at)
            retaken = _listed(d, base, pending)
        finally:
            paused.proc.send_signal(signal.SIGCONT)
        wait_for(
            lambda: "another server holds its lease" in paused.log(), 30, what="the resumed commit refused"
        )
        after = listing(d, base)
        assert [s for s in after["results"] if s["id"] == pending] == [retaken]
        assert all(s["complete"] for s in after["results"]), after["results"]
        # Its job's turn after the refused run finds the lease another server's.
        wait_for(
            lambda: "backup" not in paused.held_jobs(), 5, 0.1, what="the resumed server not holding the job"
        )
        assert sum("backup" in s.held_jobs() for s in fleet.servers) == 1


def _unreferenced(fleet: Fleet, block_id: str) -> bool:
    """Whether grooming's reckoning (the blocks of every snapshot, slice and sync) leaves the block free."""
    snapshots = Store(fleet.stores["snapshot metadata store"])
    oplog = Store(fleet.oplog_uri)
    try:
        referenced = (
            SnapshotCatalog(snapshots).referenced_blocks()
            | SliceCatalog(oplog).referenced_blocks()
            | set(SyncCatalog(oplog).referenced_blocks())
        )
    finally:
        snapshots.close()
        oplog.close()
    return policy.unreferenced([block_id], referenced) == [block_id]


def test_the_owner_killed_mid_ingest_loses_no_slice_and_stores_none_twice(
    fleet: Fleet, tmp_path: Path
) -> None:
    with _backed_up(fleet, tmp_path) as (d, world, base):

        def owned() -> bool:
            return any("backup" in s.held_jobs() for s in fleet.servers)

        wait_for(owned, 10, 0.1, what="a backup job owner")
        (owner,) = [s for s in fleet.servers if "backup" in s.held_jobs()]
        marker = fleet.slice_marker(owner)
        # The owner's next slice upload stops before its record's commit.
        Path(f"{marker}.armed").touch()
        wait_for(marker.exists, 30, 0.05, what="the owner stopped with a slice's block written")
        point, pid, orphan = marker.read_text().split()
        assert (point, pid) == ("daemon-slice-commit", str(owner.proc.pid if owner.proc else None))
        owner.kill()
        killed_at = time.monotonic()
        Path(f"{marker}.armed").unlink()
        acknowledged = _end(listing(d, base)["pitrWindow"])  # the killed slice was never acknowledged
        _taken_over(fleet, owner, killed_at)

        # The agent's failed upload is sent again (with what arrived meanwhile) and recorded elsewhere.
        wait_for(
            lambda: _end(listing(d, base)["pitrWindow"]) > acknowledged, 30, what="the window past the kill"
        )
        assert len(listing(d, base)["pitrWindow"]) == 1, "a new hole in the window"
        assert _slices_abut(fleet.oplog_uri) > 0
        with psycopg.connect(fleet.blockstore_uri) as conn:
            assert conn.execute("SELECT 1 FROM blocks WHERE id = %s", (orphan,)).fetchone() is not None
        assert _unreferenced(fleet, orphan), "the killed upload's block is referenced"
        restore_matches_now(d, base, world, HOSTS, RS)
