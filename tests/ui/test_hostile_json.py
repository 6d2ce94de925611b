"""Hostile JSON in the deployment edit's raw-JSON fields and the review's config: what the API's JSON body
refuses (NaN, Infinity, nesting past 128 levels) the UI refuses too, with a 4xx page and nothing deployed."""

from __future__ import annotations

import html
from typing import Any

import pytest

from tests.procs import ServerProcess
from tests.ui.uisupport import UiSession


@pytest.fixture(scope="module")
def group_id(server: ServerProcess, owner: dict[str, Any], ui_owner: UiSession) -> str:
    api = server.client(owner)
    org_id = api.get("/orgs").json()["results"][0]["id"]
    assert ui_owner.post(f"/ui/orgs/{org_id}/projects", {"name": "hostile-json"}).status_code == 201
    return str(next(g["id"] for g in api.get("/groups").json()["results"] if g["name"] == "hostile-json"))


def _version(server: ServerProcess, owner: dict[str, Any], group_id: str) -> int:
    return int(server.client(owner).get(f"/groups/{group_id}/automationConfig").json()["version"])


@pytest.mark.parametrize(
    ("config", "said"),
    [
        ("[" * 5000, "nested deeper than 128 levels"),
        ('{"x": ' * 200 + "1" + "}" * 200, "nested deeper than 128 levels"),
        ('{"options": {"x": 1e999}}', "numbers must be finite"),
        ('{"options": {"x": NaN}}', "numbers must be finite"),
        ('{"options": {"x": 99999999999999999999999}}', "integers must fit in 64 bits"),
    ],
)
def test_deploy_refuses_what_the_api_json_body_refuses(
    server: ServerProcess, owner: dict[str, Any], ui_owner: UiSession, group_id: str, config: str, said: str
) -> None:
    before = _version(server, owner, group_id)
    r = ui_owner.post(
        f"/ui/projects/{group_id}/deployment/deploy", {"config": config, "base_version": str(before)}
    )
    assert r.status_code == 400, r.text[:300]
    assert said in html.unescape(r.text) and "Traceback" not in r.text
    assert _version(server, owner, group_id) == before


@pytest.mark.parametrize(
    ("other", "said"),
    [
        ("[" * 5000, "nested deeper than 128 levels"),
        ('{"options": {"x": Infinity}}', "numbers must be finite"),
    ],
)
def test_review_refuses_what_the_api_json_body_refuses(
    server: ServerProcess, owner: dict[str, Any], ui_owner: UiSession, group_id: str, other: str, said: str
) -> None:
    before = _version(server, owner, group_id)
    r = ui_owner.post(
        f"/ui/projects/{group_id}/deployment/review", {"other": other, "base_version": str(before)}
    )
    assert r.status_code == 400, r.text[:300]
    assert said in html.unescape(r.text) and "Traceback" not in r.text
