"""Live views and the browser's connection limit: a browser holds at most six HTTP/1.1 connections to one
server. When every live region of a page (the two banners, the page's own regions) held its own event stream,
two tabs of a deployment page took all six and a third tab of the UI did not load until a stream ended. A
page now holds one stream for all its regions (``ui.stream``), and none while its tab is hidden."""

from __future__ import annotations

import time
from typing import Any

from tests.procs import ServerProcess
from tests.ui.uisupport import PASSWORD, login


def test_a_third_tab_loads_while_two_project_pages_are_open(
    server: ServerProcess, owner: dict[str, Any], page: Any
) -> None:
    api = server.client(owner)
    org_id = api.get("/orgs").json()["results"][0]["id"]
    group_id = api.post("/groups", json={"name": "many-tabs", "orgId": org_id}).json()["id"]
    server.create_user("tabber", PASSWORD, "ORG_OWNER", org_id=org_id)
    login(page, server.url, "tabber")
    page.goto(f"{server.url}/ui/projects/{group_id}/deployment")
    second = page.context.new_page()
    second.goto(f"{server.url}/ui/projects/{group_id}/deployment")
    third = page.context.new_page()
    started = time.monotonic()
    third.goto(f"{server.url}/ui/", timeout=8_000)
    assert time.monotonic() - started < 8
