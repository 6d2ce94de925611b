"""The restore of the primary's backing databases carried out by the backing agent on the primary's host, as a
restore job of the secondary (``delivery: AGENT``), through real servers, a real backing agent and the CLI:

- refused while the primary runs: the front-end fails early naming the running server (no job created),
  and a job created through the API ends FAILED with the agent's reason, the stores untouched;
- the routes' rules: a read-only key or another project's key cannot create one; a forged delivery, force
  or an oversized body is a 400; the agent routes serve only a job an agent carries out, to the project's
  agent key, and refuse forged or oversized reports; a public PATCH of an agent's job is refused;
- the seed's rules: metadata earlier than the app DB refused (naming the jobs that would answer 409) unless
  forced; the app DB alone restored with its warning;
- lost PostgreSQL stores provisioned again empty, with the same names, and restored by the agent.

Killed mid-way and resumed: ``tests/cli/test_restore_stores_abort.py``; the seed's whole procedure:
``tests/e2e/test_secondary.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from opsmgr.conf import read_properties_file
from opsmgr.timestamps import iso_utc
from tests.pgserver import PgServer
from tests.procs import STORE_KEYS, wait_for
from tests.secondary_support import SecondaryPair, fences, now_ms, primary_with_secondary

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecondaryPair, int]]:
    """A running primary backed up by its secondary, its backing agent running, and an instant to restore."""
    with primary_with_secondary(tmp_path_factory.mktemp("agent-restore")) as pair:
        pair.wait_snapshots()
        at = now_ms()
        pair.wait_caught_up()
        yield pair, at


def jobs_path(pair: SecondaryPair, group_id: str | None = None) -> str:
    return f"/groups/{group_id or pair.group_id}/backingDatabases/{pair.cluster_id}/restoreJobs"


def body(at: int, **more: Any) -> dict[str, Any]:
    return {"stores": {n: {"pointInTimeUTCMillis": at} for n in ("app", "snapshot", "oplog")}} | more


def agent_client(pair: SecondaryPair, group_id: str | None = None, key: str | None = None) -> httpx.Client:
    config = read_properties_file(pair.agent_config)
    gid = group_id or config["mmsGroupId"]
    return httpx.Client(
        base_url=f"{pair.secondary.url}/agents/api/backup/v1/{gid}",
        auth=httpx.BasicAuth(gid, key or config["mmsApiKey"]),
        timeout=10,
    )


def test_refused_while_the_primary_runs(running: tuple[SecondaryPair, int]) -> None:
    pair, at = running
    with pair.secondary_api() as api:
        before = api.get(jobs_path(pair)).json()["totalCount"]
    refused = pair.restore("--point-in-time-ms", str(at), "--yes")
    assert refused.returncode != 0
    assert "the primary is running" in refused.stderr and pair.primary.url in refused.stderr
    with pair.secondary_api() as api:
        assert api.get(jobs_path(pair)).json()["totalCount"] == before, "the front-end created no job"
        made = api.post(jobs_path(pair), json=body(at, delivery="AGENT"))
        assert made.status_code == 200, made.text
        job = made.json()
        assert job["delivery"] == "AGENT" and job["statusName"] == "QUEUED"

    # The agent takes it up and refuses: the job ends FAILED with its reason.
    ended = wait_for(
        lambda: (j := pair.job(job["id"]))["statusName"] == "FAILED" and j, 60, what="the agent's refusal"
    )
    assert "the primary is running" in ended["detail"], ended
    assert (
        ended["outcome"]["errorCode"] == "SERVER_RUNNING" and pair.primary.url in ended["outcome"]["reason"]
    )
    assert fences(pair) == {"app": None, "snapshot": None, "oplog": None}
    with pair.primary.client(pair.primary_key) as api:
        assert api.get("/groups").status_code == 200, "the primary went on serving"


def _refused(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()
    assert error["errorCode"] and error["detail"], error
    return dict(error)


def test_who_may_create_one_and_forged_or_oversized_bodies(running: tuple[SecondaryPair, int]) -> None:
    pair, at = running
    gid = pair.group_id
    with pair.secondary_api() as api:
        other = api.post("/groups", json={"name": "not-the-backing-one"}).json()["id"]
    reader = pair.secondary.create_key("GROUP_READ_ONLY", group_id=gid)
    stranger = pair.secondary.create_key("GROUP_OWNER", group_id=other)
    with pair.secondary.client(reader) as api:
        assert api.post(jobs_path(pair), json=body(at, delivery="AGENT")).status_code == 403
        assert api.get(jobs_path(pair)).status_code == 200
    with pair.secondary.client(stranger) as api:
        assert api.post(jobs_path(pair), json=body(at, delivery="AGENT")).status_code == 403
        assert api.get(jobs_path(pair)).status_code == 403
    with pair.secondary_api() as api:
        before = api.get(jobs_path(pair)).json()["totalCount"]
        assert _refused(api.post(jobs_path(pair), json=body(at, delivery="BOGUS")), 400)
        assert _refused(api.post(jobs_path(pair), json=body(at, delivery="AGENT", force="yes")), 400)
        assert _refused(api.post(jobs_path(pair), json=body(at, delivery="AGENT", purpose="DRILL")), 400)
        assert _refused(api.post(jobs_path(pair), json=body(at, force=True)), 400)
        huge = api.post(jobs_path(pair), json=body(at, delivery="AGENT" * 500_000))
        assert 400 <= huge.status_code < 500, huge.text
        assert api.get(jobs_path(pair)).json()["totalCount"] == before, "nothing was created"


def test_the_agent_routes_serve_only_an_agents_job_to_its_project(running: tuple[SecondaryPair, int]) -> None:
    pair, at = running
    with pair.secondary_api() as api:
        cli_job = api.post(jobs_path(pair), json=body(at)).json()  # carried out by the asking host
        results = api.get(jobs_path(pair)).json()["results"]
        other = api.post("/groups", json={"name": "agents-elsewhere"}).json()["id"]
        other_key = api.post(f"/groups/{other}/agentapikeys", json={"desc": "elsewhere"}).json()["key"]
    agent_job = next(j for j in results if j.get("delivery") == "AGENT")  # the refused one, FAILED
    with agent_client(pair) as agent:
        assert _refused(agent.post(f"/backingRestores/{cli_job['id']}/progress", json={}), 404)
        assert _refused(agent.get(f"/backingRestores/{cli_job['id']}/stores/app/documents"), 404)
        assert _refused(agent.post("/backingRestores/nosuchjob/progress", json={}), 404)
        progress = {"phase": "WRITING", "fraction": 0.5}
        for forged in (
            {"progress": {"phase": "WRITING", "fraction": 7}},
            {"progress": {"phase": "NAPPING"}},
            {"progress": progress, "owner": "me"},
            {"statusName": "FINISHED", "outcome": {"pad": "x" * 20_000}},
            {"statusName": "FINISHED", "outcome": "done"},
        ):
            assert _refused(agent.post(f"/backingRestores/{agent_job['id']}/progress", json=forged), 400)
        ended = agent.post(f"/backingRestores/{agent_job['id']}/progress", json={"progress": progress})
        assert _refused(ended, 409)["detail"].endswith("already FAILED")
    # Another project's agent key: refused on this project's path, and this job is not its project's.
    with agent_client(pair, key=other_key) as stranger:
        assert stranger.post(f"/backingRestores/{agent_job['id']}/progress", json={}).status_code in (
            401,
            403,
        )
    with agent_client(pair, group_id=other, key=other_key) as stranger:
        assert _refused(stranger.post(f"/backingRestores/{agent_job['id']}/progress", json={}), 404)
    # The public PATCH is the asking host's report: refused for an agent's job.
    with pair.secondary_api() as api:
        patched = api.patch(f"{jobs_path(pair)}/{agent_job['id']}", json={"statusName": "FINISHED"})
        assert _refused(patched, 409)["errorCode"] == "RESTORE_BY_AGENT"
        assert pair.job(agent_job["id"])["statusName"] == "FAILED"


def test_the_seeds_rules_through_the_agent(running: tuple[SecondaryPair, int]) -> None:
    """Metadata earlier than the app DB refused (the job FAILED naming the jobs that would answer 409, the
    stores untouched) unless forced; the app DB alone restored with its warning."""
    pair, at = running
    with pair.primary.client(pair.primary_key) as api:
        assert api.post("/groups", json={"name": "between"}).status_code == 201
    later = now_ms()
    pair.wait_caught_up()
    pair.stop_primary()
    earlier_metadata = ("--point-in-time-ms", str(later), "--metadata-at", iso_utc(at), "--yes", "--json")
    refused = pair.restore(*earlier_metadata)
    assert refused.returncode != 0
    assert "earlier point than the application database" in refused.stderr, refused.stderr
    assert "--force" in refused.stderr
    outcome = json.loads(refused.stdout.strip().splitlines()[-1])
    assert outcome["statusName"] == "FAILED" and outcome["jobsAnswering409"] == []
    assert outcome["errorCode"] == "STORE_RESTORE_REFUSED"
    assert fences(pair) == {"app": None, "snapshot": None, "oplog": None}

    forced = pair.restore(*earlier_metadata, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "warning: forced:" in forced.stderr, forced.stderr
    assert json.loads(forced.stdout.strip().splitlines()[-1])["warnings"][0].startswith("forced")

    app_only = pair.restore("--point-in-time-ms", str(at), "--app-only", "--yes")
    assert app_only.returncode == 0, app_only.stdout + app_only.stderr
    assert "only the application database is restored" in app_only.stderr
    assert "Start the primary now." in app_only.stdout
    pair.primary.start()
    with pair.primary.client(pair.primary_key) as api:
        assert "between" not in [g["name"] for g in api.get("/groups").json()["results"]]


@pytest.mark.postgres
def test_lost_postgres_stores_provisioned_empty_are_restored_by_the_agent(
    tmp_path: Path, pg_server: PgServer
) -> None:
    uris = {label: pg_server.create_database() for label in STORE_KEYS}
    conf = {key: uris[label] for label, key in STORE_KEYS.items()}
    with primary_with_secondary(tmp_path, primary_conf=conf) as pair:
        with pair.primary.client(pair.primary_key) as api:
            assert api.post("/groups", json={"name": "before-T"}).status_code == 201
        pair.wait_snapshots()
        at = now_ms()
        pair.wait_caught_up()
        with pair.primary.client(pair.primary_key) as api:
            assert api.post("/groups", json={"name": "after-T"}).status_code == 201

        # The disaster: the primary and its host lost with the databases; they are provisioned again,
        # empty, with the same names, and the host with the backing agent's config.
        pair.stop_primary()
        pair.stop_agent()
        names = [uri.rsplit("/", 1)[1].split("?")[0] for uri in uris.values()]
        with psycopg.connect(pg_server.uri, autocommit=True) as db:
            for name in names:
                db.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        pair.start_agent()
        # Not provisioned yet: refused, naming the databases to provision.
        lost = pair.restore("--point-in-time-ms", str(at), "--yes")
        assert lost.returncode != 0
        assert "provision an empty one with the same name" in lost.stderr and names[0] in lost.stderr
        with psycopg.connect(pg_server.uri, autocommit=True) as db:
            for name in names:
                db.execute(f'CREATE DATABASE "{name}"')
        done = pair.restore("--point-in-time-ms", str(at), "--yes", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["statusName"] == "FINISHED" and set(result["stores"]) == {"app", "snapshot", "oplog"}

        pair.primary.start()
        with pair.primary.client(pair.primary_key) as api:
            names = [g["name"] for g in api.get("/groups").json()["results"]]
        assert "before-T" in names and "after-T" not in names
