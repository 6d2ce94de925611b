"""Hostile forms: a CSRF token that is not ASCII (in the form, in the header, on the login form) and a form of
more fields than the server parses are refused with a page naming the problem (4xx), never a 500, and change
nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.procs import ServerProcess
from tests.ui.uisupport import PASSWORD, UiSession, csrf_of, error_detail

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def group_id(server: ServerProcess, owner: dict[str, Any], ui_owner: UiSession) -> str:
    api = server.client(owner)
    org_id = api.get("/orgs").json()["results"][0]["id"]
    return str(api.post("/groups", json={"name": "hostile-forms", "orgId": org_id}).json()["id"])


def _groups(server: ServerProcess, owner: dict[str, Any]) -> set[str]:
    return {g["name"] for g in server.client(owner).get("/groups").json()["results"]}


def test_a_csrf_token_that_is_not_ascii_is_refused_not_a_crash(
    server: ServerProcess, owner: dict[str, Any], ui_owner: UiSession
) -> None:
    org_id = server.client(owner).get("/orgs").json()["results"][0]["id"]
    path = f"/ui/orgs/{org_id}/projects"
    in_form = ui_owner.client.post(path, data={"name": "sneaked-in", "csrf_token": "é" * 64})
    assert in_form.status_code == 403 and "CSRF" in error_detail(in_form.text)
    in_header = ui_owner.client.post(
        path, data={"name": "sneaked-in"}, headers={"x-csrf-token": b"\xe9" * 64}
    )
    assert in_header.status_code == 403 and "CSRF" in error_detail(in_header.text)
    assert "sneaked-in" not in _groups(server, owner)


def test_a_login_csrf_token_that_is_not_ascii_is_refused_not_a_crash(server: ServerProcess) -> None:
    server.create_user("ascii-only", PASSWORD, "ORG_READ_ONLY")
    with httpx.Client(base_url=server.url) as client:
        csrf_of(client.get("/ui/login").text)  # the login form's cookie is set
        r = client.post(
            "/ui/login", data={"username": "ascii-only", "password": PASSWORD, "csrf_token": "ü" * 32}
        )
        assert r.status_code == 403 and "CSRF" in error_detail(r.text)
        assert "opsmgr_session" not in client.cookies


def test_a_form_of_too_many_fields_is_a_page_not_json(
    ui_owner: UiSession, server: ServerProcess, owner: dict[str, Any], group_id: str
) -> None:
    before = server.client(owner).get(f"/groups/{group_id}/automationConfig").json()["version"]
    body = "&".join(f"f{i}=1" for i in range(20_500)) + f"&base_version={before}&csrf_token={ui_owner.csrf}"
    r = ui_owner.client.post(f"/ui/projects/{group_id}/deployment/review", content=body, headers=FORM)
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    assert "fields" in error_detail(r.text)
    assert server.client(owner).get(f"/groups/{group_id}/automationConfig").json()["version"] == before
