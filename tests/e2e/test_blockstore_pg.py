"""A server whose blockstore is a PostgreSQL database (``mms.blockstore.uri``), as several servers would share
it: a sim replica set under a write load is backed up by a real agent process, the snapshot's blocks land in
the database and none in the folder, and a point-in-time restore read from the database gives the source's
documents at that instant."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.e2e.simbackup import listing, restore_matches_now, set_load, start_backup
from tests.pgserver import PgServer
from tests.procs import STORE_KEYS, started_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

HOSTS = ["pgb0.blocks.sim"]


def test_snapshots_and_restores_go_through_a_database_blockstore(tmp_path: Path, pg_server: PgServer) -> None:
    blocks_uri = pg_server.create_database()
    conf = {key: pg_server.create_database() for key in STORE_KEYS.values()}
    conf["mms.blockstore.uri"] = blocks_uri
    with started_server(tmp_path / "server", conf) as server:
        d = Deployment(server, server.create_key("ORG_OWNER"), tmp_path, "pg-blocks")
        world: SimWorld | None = None
        try:
            d.agent(HOSTS[0])
            d.wait_goal(d.put(replica_set_config(HOSTS, rs="pgb")), 1)
            world = SimWorld.open(d.root / "world.sqlite")
            set_load(world, HOSTS, "pgb", WriteLoad(rate=40, keys=60, payload_bytes=32))
            base = start_backup(d)
            wait_for(lambda: listing(d, base)["totalCount"] >= 1, 60, what="a first snapshot")
            with psycopg.connect(blocks_uri) as conn:
                (rows,) = conn.execute("SELECT count(*) FROM blocks").fetchone() or (0,)
            assert rows >= 1
            assert not any(p.is_file() for p in (tmp_path / "server").rglob("blocks/*/*/*"))
            restore_matches_now(d, base, world, HOSTS, "pgb")
        finally:
            if world is not None:
                world.close()
            d.close()
