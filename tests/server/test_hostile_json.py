"""Hostile JSON through a real server: wherever JSON enters (a public route, the agent's status report and
config upload, the maintenance lease and progress routes, an initial sync's documents, the compressed JSON
lines of an oplog slice) NaN and Infinity, numbers past 64 bits, lone surrogates and nesting past 128 levels
are a 400 that names the problem and where; nothing is changed, agents polling go on, and the server answers
no 5xx and logs no error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsmgr.backup.slices import encode_slice
from tests.agent_protocol import AgentProject
from tests.configs import replica_set_config
from tests.procs import ServerProcess

HOSTS = ["h0.example.net", "h1.example.net", "h2.example.net"]
PLACEHOLDER = "__HOSTILE__"
# Each raw JSON value with the words the 400 must use about it.
HOSTILE = {
    "NaN": (b"NaN", "finite"),
    "Infinity": (b"Infinity", "finite"),
    "-Infinity": (b"-Infinity", "finite"),
    "1e999": (b"1e999", "finite"),
    "2**64": (str(2**64).encode(), "64 bits"),
    "-(2**63)-1": (str(-(2**63) - 1).encode(), "64 bits"),
    "lone surrogate": (b'"\\ud800"', "surrogate"),
    "200 levels": (b"[" * 200 + b"]" * 200, "deeper than 128"),
    "100000 levels": (b"[" * 100_000 + b"]" * 100_000, "deeper than 128"),
}
JSON = {"content-type": "application/json"}


def with_hostile(template: Any, raw: bytes) -> bytes:
    """``template`` as JSON with its PLACEHOLDER string replaced by the raw value."""
    return json.dumps(template).replace(json.dumps(PLACEHOLDER), raw.decode()).encode()


class Project(AgentProject):
    def __init__(self, server: ServerProcess, api: httpx.Client) -> None:
        super().__init__(server.url, api, "hostile", replica_set_config(HOSTS))
        r = api.post(f"/groups/{self.gid}/backingDatabases", json={"clusterName": "stores"})
        assert r.status_code == 201, r.text
        self.source = r.json()["stores"][0]["sourceId"]  # a STORE source: positions are microseconds

    def backup(self, path: str) -> str:
        return f"/agents/api/backup/v1/{self.gid}/sources/{self.source}{path}"

    def chain_tip(self) -> int:
        """Starts a new chain (an empty initial sync at a fixed position) and returns its tip."""
        sync = self.agent.post(self.backup("/sync"), json={"position": 1_700_000_000_000_000})
        assert sync.status_code == 200, sync.text
        done = self.agent.post(self.backup(f"/sync/{sync.json()['syncId']}/finish"), json={"minValid": 0})
        assert done.status_code == 200, done.text
        return int(done.json()["acknowledged"])


@pytest.fixture(scope="module")
def project(server: ServerProcess, owner: dict[str, Any]) -> Iterator[Project]:
    with server.client(owner) as api:
        p = Project(server, api)
        yield p
        p.agent.close()


def refused(response: httpx.Response, words: str) -> dict[str, Any]:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    body = dict(response.json())
    assert body["errorCode"] == "INVALID_ATTRIBUTE" and words in body["detail"], body
    return body


@pytest.mark.parametrize("name", HOSTILE)
def test_a_config_put_with_a_hostile_value_is_refused_and_agents_still_get_the_config(
    project: Project, name: str
) -> None:
    raw, words = HOSTILE[name]
    config = json.loads(json.dumps(project.config))
    config["processes"][1]["args2_6"]["setParameter"] = {"x": PLACEHOLDER}
    body = with_hostile(config, raw)
    refusal = refused(
        project.api.put(f"/groups/{project.gid}/automationConfig", content=body, headers=JSON), words
    )
    if "levels" not in name:
        assert refusal["parameters"]["field"] == "processes[1].args2_6.setParameter.x"
    assert project.api.get(f"/groups/{project.gid}/automationConfig").json()["version"] == project.version
    poll = project.agent.get(
        f"/agents/api/automation/conf/v1/{project.gid}", params={"hostname": HOSTS[0], "cv": -1}
    )
    assert poll.status_code == 200 and poll.json()["version"] == project.version


@pytest.mark.parametrize("name", ["NaN", "2**64", "lone surrogate", "200 levels"])
def test_agent_reports_and_uploads_with_a_hostile_value_are_refused(project: Project, name: str) -> None:
    raw, words = HOSTILE[name]
    status = {"processes": [{"name": "rs0_0", "observed": {"running": True, "optimeTs": PLACEHOLDER}}]}
    for path in (
        f"/agents/api/automation/status/v1/{project.gid}",
        f"/agents/api/automation/restoration/v1/{project.gid}/config",
    ):
        body = with_hostile(status, raw)
        refused(project.agent.post(path, params={"hostname": HOSTS[0]}, content=body, headers=JSON), words)


@pytest.mark.parametrize(
    ("route", "template"),
    [
        ("/lease", {"member": "rs0_0", "seq": PLACEHOLDER}),
        ("/progress", {"changeId": "c", "move": {"name": "Start"}, "at": PLACEHOLDER}),
        ("/progress", {"changeId": "c", "move": {"name": "Start"}, "connections": PLACEHOLDER}),
        ("/events", {"changeId": "c", "events": [{"measured": PLACEHOLDER}]}),
    ],
)
@pytest.mark.parametrize("name", ["NaN", "-Infinity", "1e999"])
def test_maintenance_routes_refuse_non_finite_numbers(
    project: Project, route: str, template: dict[str, Any], name: str
) -> None:
    raw, words = HOSTILE[name]
    path = f"/agents/api/automation/maintenance/v1/{project.gid}/rs0{route}"
    refused(project.agent.post(path, content=with_hostile(template, raw), headers=JSON), words)


def test_initial_sync_documents_with_a_hostile_value_are_refused_and_a_deep_mongodb_document_is_not(
    project: Project,
) -> None:
    sync = project.agent.post(project.backup("/sync"), json={"position": 1_700_000_000_000_000})
    documents = project.backup(f"/sync/{sync.json()['syncId']}/documents")
    for name in ("NaN", "1e999", "2**64", "lone surrogate", "100000 levels"):
        raw, words = HOSTILE[name]
        body = with_hostile({"docs": [["app.things", {"_id": "a", "v": PLACEHOLDER}]]}, raw)
        refused(project.agent.post(documents, content=body, headers=JSON), words)
    # MongoDB nests documents up to 100 levels: such a document, inside the batch, is taken.
    deep: Any = 1
    for _ in range(99):
        deep = {"d": deep}
    r = project.agent.post(documents, json={"docs": [["app.things", {"_id": "deep", "d": deep}]]})
    assert r.status_code == 200 and r.json()["loaded"] == 1, r.text


def _upload(project: Project, data: bytes) -> httpx.Response:
    return project.agent.post(
        project.backup("/slices"), content=data, headers={"content-type": "application/octet-stream"}
    )


def test_slices_carrying_hostile_json_in_their_compressed_lines_are_refused(project: Project) -> None:
    tip = project.chain_tip()

    def entry(value: Any) -> dict[str, Any]:
        return {"ts": tip + 1, "op": "i", "ns": "things", "_id": "a", "doc": {"_id": "a", "v": value}}

    deep: Any = []
    for _ in range(300):
        deep = [deep]
    # encode_slice writes what json.dumps writes: NaN and Infinity as such, any integer, any nesting.
    for value, words in [
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (2**64, "64 bits"),
        ("\ud800", "surrogate"),
        (deep, "deeper than 128"),
    ]:
        refused(_upload(project, encode_slice(tip, tip + 10, [entry(value)])), words)
    refused(_upload(project, encode_slice(tip, 2**64, [])), "64 bits")
    assert project.agent.get(project.backup("/acknowledged")).json()["acknowledged"] == tip
    ok = _upload(project, encode_slice(tip, tip + 10, [entry(1.5)]))
    assert ok.status_code == 200 and ok.json()["acknowledged"] == tip + 10, ok.text


def test_a_json_body_on_a_route_without_a_body_model_is_checked_too(project: Project) -> None:
    """Routes that take no body still see the check: nothing JSON enters unchecked."""
    r = project.api.post(f"/groups/{project.gid}/restorationMode/retry", content=b'{"x": NaN}', headers=JSON)
    refused(r, "finite")


def test_nothing_hostile_reached_a_5xx_or_the_error_log(server: ServerProcess, project: Project) -> None:
    assert project.api.get(f"/groups/{project.gid}/automationStatus").status_code == 200
    assert '"level": "ERROR"' not in server.log(), server.log()[-3000:]
