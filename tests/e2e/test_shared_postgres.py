"""Two real servers on one real PostgreSQL set: what one writes, agents polling the other see within 2 s
(a change notification invalidates the other's poll caches; their time to live bounds a lost one)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.agent_protocol import AgentProject, FakeAgent
from tests.configs import replica_set_config
from tests.pgserver import PgServer
from tests.procs import STORE_KEYS, ServerProcess, servers_sharing, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

HOSTS = ["a.shared.sim", "b.shared.sim", "c.shared.sim"]
PROPAGATION_S = 2.0


@pytest.fixture
def two_servers(tmp_path: Path, pg_server: PgServer) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    stores = {label: pg_server.create_database() for label in STORE_KEYS}
    servers = servers_sharing(tmp_path, stores, ["one", "two"], {"mms.agent.pollIntervalSeconds": "1"})
    try:
        for server in servers:
            server.start()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def _within(seconds: float, condition: Callable[[], Any], what: str) -> float:
    """Seconds until ``condition()`` holds, failing after ``seconds``."""
    started = time.monotonic()
    wait_for(condition, seconds, 0.02, what=what)
    elapsed = time.monotonic() - started
    print(f"{what}: {elapsed * 1000:.0f} ms")
    return elapsed


def test_a_change_on_one_server_reaches_agents_polling_the_other(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    one, two = two_servers
    key = one.create_key()
    with one.client(key) as api:
        project = AgentProject(one.url, api, "shared")
        group_id, agent_key = project.gid, project.agent_key
        config = replica_set_config(HOSTS)
        assert api.put(f"/groups/{group_id}/automationConfig", json=config).json()["version"] == 1

        agent = FakeAgent(two.url, group_id, agent_key, HOSTS[0])
        _within(PROPAGATION_S, lambda: agent.poll() == 200 and agent.cv == 1, "version 1 on the other server")
        for _ in range(3):  # the other server now caches version 1
            assert agent.poll() == 304

        config["processes"][0]["version"] = "7.0.6"
        assert api.put(f"/groups/{group_id}/automationConfig", json=config).json()["version"] == 2
        _within(PROPAGATION_S, lambda: agent.poll() == 200 and agent.cv == 2, "version 2 on the other server")

        # An agent API key revoked on one server is refused by the other; a new one is accepted.
        keys = api.get(f"/groups/{group_id}/agentapikeys").json()
        fresh = api.post(f"/groups/{group_id}/agentapikeys", json={"desc": "b"}).json()["key"]
        newcomer = FakeAgent(two.url, group_id, fresh, HOSTS[1])
        _within(PROPAGATION_S, lambda: newcomer.poll() == 200, "the new key accepted by the other server")
        for k in keys:
            assert api.delete(f"/groups/{group_id}/agentapikeys/{k['id']}").status_code == 204
        _within(PROPAGATION_S, lambda: agent.poll() == 401, "the revoked key refused by the other server")
        assert newcomer.poll() == 304


def test_servers_reload_after_their_ttl_even_without_notifications(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    """The same path with the notification lost: a write made straight into the shared database (as a
    server that crashed before NOTIFY, or a notification dropped while not listening, would leave it)."""
    one, two = two_servers
    key = one.create_key()
    with one.client(key) as api:
        project = AgentProject(one.url, api, "ttl")
        group_id, agent_key = project.gid, project.agent_key
        api.put(f"/groups/{group_id}/automationConfig", json=replica_set_config(HOSTS))
        agent = FakeAgent(two.url, group_id, agent_key, HOSTS[0])
        _within(PROPAGATION_S, lambda: agent.poll() == 200 and agent.cv == 1, "version 1")
        assert agent.poll() == 304

    conf = two.conf
    assert conf is not None
    app_uri = next(
        line.split("=", 1)[1] for line in conf.read_text().splitlines() if line.startswith("mongo.mongoUri=")
    )
    with psycopg.connect(app_uri, autocommit=True) as conn:
        row = conn.execute(
            "SELECT doc FROM documents WHERE coll = 'automation_configs' AND id = %s", (group_id,)
        ).fetchone()
        assert row is not None
        doc = json.loads(row[0])
        doc["version"] = 7
        # No NOTIFY: only the cache's time to live can bring this to the agents.
        conn.execute(
            "UPDATE documents SET doc = %s WHERE coll = 'automation_configs' AND id = %s",
            (json.dumps(doc), group_id),
        )
    _within(PROPAGATION_S + 1, lambda: agent.poll() == 200 and agent.cv == 7, "the reload after the TTL")
