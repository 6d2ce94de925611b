"""Conditional automation config edits through a real server: GET answers the version as the ``ETag``, a PUT
with ``If-Match`` naming another version is 412 (naming the current one) and changes nothing, so two editors
cannot lose each other's changes; without ``If-Match`` the later modification still wins, as in Ops Manager.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.configs import replica_set_config
from tests.procs import ServerProcess

HOSTS = ["h1.ifmatch.net", "h2.ifmatch.net", "h3.ifmatch.net"]


@pytest.fixture(scope="module")
def api(server: ServerProcess, owner: dict[str, Any]) -> Iterator[httpx.Client]:
    with server.client(owner) as c:
        yield c


@pytest.fixture
def project(api: httpx.Client) -> str:
    r = api.post("/groups", json={"name": f"ifm-{uuid.uuid4().hex[:12]}"})
    assert r.status_code == 201, r.text
    gid = str(r.json()["id"])
    assert api.put(f"/groups/{gid}/automationConfig", json=replica_set_config(HOSTS)).status_code == 200
    return gid


def config_path(gid: str) -> str:
    return f"/groups/{gid}/automationConfig"


def read(api: httpx.Client, gid: str) -> tuple[dict[str, Any], str]:
    r = api.get(config_path(gid))
    assert r.status_code == 200, r.text
    return r.json(), r.headers["etag"]


def with_priority(config: dict[str, Any], member: int, priority: float) -> dict[str, Any]:
    changed = copy.deepcopy(config)
    changed["replicaSets"][0]["members"][member]["priority"] = priority
    return changed


def test_get_answers_the_version_as_a_quoted_etag(api: httpx.Client, project: str) -> None:
    config, tag = read(api, project)
    assert tag == f'"{config["version"]}"'
    r = api.put(config_path(project), json=with_priority(config, 1, 2), headers={"If-Match": tag})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == config["version"] + 1
    assert r.headers["etag"] == f'"{config["version"] + 1}"'


def test_two_editors_cannot_lose_each_others_changes(api: httpx.Client, project: str) -> None:
    config, tag = read(api, project)
    first = api.put(config_path(project), json=with_priority(config, 1, 2), headers={"If-Match": tag})
    assert first.status_code == 200, first.text
    late = api.put(config_path(project), json=with_priority(config, 2, 3), headers={"If-Match": tag})
    assert late.status_code == 412, late.text
    body = late.json()
    assert body["error"] == 412 and body["reason"] == "Precondition Failed"
    assert body["parameters"]["version"] == first.json()["version"]
    assert f"version {first.json()['version']}" in body["detail"]
    now, now_tag = read(api, project)
    assert now == first.json(), "the refused edit changed nothing"
    # The second editor reads again and reapplies: both changes are kept.
    retry = api.put(config_path(project), json=with_priority(now, 2, 3), headers={"If-Match": now_tag})
    assert retry.status_code == 200, retry.text
    members = read(api, project)[0]["replicaSets"][0]["members"]
    assert (members[1]["priority"], members[2]["priority"]) == (2, 3)


def test_without_if_match_the_later_modification_wins(api: httpx.Client, project: str) -> None:
    config, _ = read(api, project)
    stale = {**with_priority(config, 1, 5), "version": config["version"] - 1}
    assert api.put(config_path(project), json=stale).status_code == 200
    assert read(api, project)[0]["replicaSets"][0]["members"][1]["priority"] == 5


@pytest.mark.parametrize(
    "header",
    ["*", 'W/"{v}"', '"{v}"', '"1000", "{v}"', '"abc" ,W/"{v}"'],
)
def test_if_match_forms_that_name_the_current_version(api: httpx.Client, project: str, header: str) -> None:
    config, _ = read(api, project)
    r = api.put(
        config_path(project),
        json=with_priority(config, 1, 4),
        headers={"If-Match": header.format(v=config["version"])},
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == config["version"] + 1


@pytest.mark.parametrize(
    "header", ['"{old}"', 'W/"{old}"', '"abc"', '"99999999999999999999999"', '"{old}", "0"']
)
def test_if_match_naming_another_version_is_412_and_changes_nothing(
    api: httpx.Client, project: str, header: str
) -> None:
    config, _ = read(api, project)
    r = api.put(
        config_path(project),
        json=with_priority(config, 1, 4),
        headers={"If-Match": header.format(old=config["version"] - 1)},
    )
    assert r.status_code == 412, r.text
    assert r.json()["parameters"]["version"] == config["version"]
    assert read(api, project)[0] == config


@pytest.mark.parametrize(
    "header",
    [b"", b"7", b'"7', b"W/7", b'w/"7"', b'"7" "8"', b'"\xd9\xa5"', b'"' + b"1" * 2000 + b'"'],
)
def test_a_malformed_if_match_is_400_and_changes_nothing(
    api: httpx.Client, project: str, header: bytes
) -> None:
    config, _ = read(api, project)
    r = api.put(config_path(project), json=with_priority(config, 1, 4), headers=[(b"If-Match", header)])
    assert r.status_code == 400, r.text
    assert r.json()["parameters"]["field"] == "If-Match", r.text
    assert read(api, project)[0] == config


def test_concurrent_conditional_edits_one_wins(
    api: httpx.Client, server: ServerProcess, owner: dict[str, Any], project: str
) -> None:
    config, tag = read(api, project)
    statuses: list[int] = []
    lock = threading.Lock()

    def edit(i: int) -> None:
        with server.client(owner) as c:
            r = c.put(config_path(project), json=with_priority(config, 1, 10 + i), headers={"If-Match": tag})
        with lock:
            statuses.append(r.status_code)

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [200] + [412] * 5, statuses
    assert read(api, project)[0]["version"] == config["version"] + 1


@pytest.mark.parametrize("role", ["GROUP_READ_ONLY", "GROUP_BACKUP_ADMIN"])
def test_roles_that_may_not_edit_are_refused_whatever_the_if_match(
    api: httpx.Client, server: ServerProcess, project: str, role: str
) -> None:
    key = api.post(f"/groups/{project}/apiKeys", json={"desc": role, "roles": [role]}).json()
    config, tag = read(api, project)
    with server.client(key) as c:
        assert c.get(config_path(project)).headers["etag"] == tag
        for header in (tag, "*", "bad"):
            r = c.put(config_path(project), json=with_priority(config, 1, 4), headers={"If-Match": header})
            assert r.status_code == 403, r.text
    assert read(api, project)[0] == config


def test_other_tenants_and_forged_projects(api: httpx.Client, server: ServerProcess, project: str) -> None:
    config, tag = read(api, project)
    org = api.post("/orgs", json={"name": "ifm-other"}).json()["id"]
    stranger = api.post(f"/orgs/{org}/apiKeys", json={"desc": "stranger", "roles": ["ORG_OWNER"]}).json()
    with server.client(stranger) as c:
        assert c.get(config_path(project)).status_code == 403
        r = c.put(config_path(project), json=with_priority(config, 1, 4), headers={"If-Match": tag})
        assert r.status_code == 403, r.text
        assert "etag" not in {k.lower() for k in r.headers}
    assert read(api, project)[0] == config
    for gid, status in (("0123456789abcdef01234567", 404), ("not-hex", 400), ("a" * 3000, 400)):
        r = api.put(config_path(gid), json=config, headers={"If-Match": tag})
        assert r.status_code == status, r.text
