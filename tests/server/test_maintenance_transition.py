"""PUT-time transition rules of rolling maintenance through a real ``opsmgr server``: a jump the procedure
cannot take safely is a 400 naming the allowed next step, and changes nothing."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.configs import replica_set_config
from tests.procs import ServerProcess

HOSTS = ["h1.example.net", "h2.example.net", "h3.example.net"]


@pytest.fixture(scope="module")
def api(server: ServerProcess, owner: dict[str, Any]) -> Iterator[httpx.Client]:
    with server.client(owner) as c:
        yield c


def tls_config(mode: str) -> dict[str, Any]:
    config = replica_set_config(HOSTS)
    for proc in config["processes"]:
        proc["args2_6"].setdefault("net", {})["tls"] = {"mode": mode, "certificateKeyFile": "/etc/ssl/s.pem"}
    return config


def test_tls_mode_jump_is_400_naming_the_next_step_and_one_step_is_accepted(api: httpx.Client) -> None:
    r = api.post("/groups", json={"name": "tls-steps"})
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    version = api.put(f"/groups/{gid}/automationConfig", json=tls_config("disabled")).json()["version"]

    jump = api.put(f"/groups/{gid}/automationConfig", json=tls_config("requireTLS"))
    assert jump.status_code == 400, jump.text
    text = str(jump.json())
    assert "processes[0].args2_6.net.tls.mode" in text
    assert "allowTLS" in text
    assert api.get(f"/groups/{gid}/automationConfig").json()["version"] == version

    step = api.put(f"/groups/{gid}/automationConfig", json=tls_config("allowTLS"))
    assert step.status_code == 200, step.text
    assert step.json()["version"] == version + 1


def test_replica_set_rename_without_accepted_downtime_is_400(api: httpx.Client) -> None:
    r = api.post("/groups", json={"name": "rename"})
    gid = r.json()["id"]
    config = replica_set_config(HOSTS)
    assert api.put(f"/groups/{gid}/automationConfig", json=config).status_code == 200
    renamed = copy.deepcopy(config)
    old = renamed["replicaSets"][0]["_id"]
    renamed["replicaSets"][0]["_id"] = old + "x"
    for proc in renamed["processes"]:
        proc["args2_6"]["replication"]["replSetName"] = old + "x"
    r = api.put(f"/groups/{gid}/automationConfig", json=renamed)
    assert r.status_code == 400, r.text
    assert "acceptDowntime" in r.text
