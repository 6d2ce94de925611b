"""Paths of the UI that do not exist, or exist for another method, answer with the UI's own error page (the
layout, the status, a message naming what was asked), not the API's JSON; they change nothing."""

from __future__ import annotations

import httpx

from tests.procs import ServerProcess
from tests.ui.uisupport import UiSession, error_detail


def test_an_unknown_ui_path_is_a_404_page(server: ServerProcess, ui_owner: UiSession) -> None:
    for path in ("/ui/no-such-page", "/ui/projects", "/ui/projects/x/y/z/w"):
        r = ui_owner.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert f"GET {path}" in error_detail(r.text)
        assert r.headers["x-frame-options"] == "DENY"
    forged = ui_owner.post("/ui/no-such-action", {"x": "1"})
    assert forged.status_code == 404 and "POST /ui/no-such-action" in error_detail(forged.text)
    huge = ui_owner.get("/ui/" + "z" * 5000)
    assert huge.status_code == 404 and len(error_detail(huge.text)) < 400
    with httpx.Client(base_url=server.url) as stranger:  # no session: the same page, nothing more
        r = stranger.get("/ui/no-such-page")
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")


def test_logout_by_get_is_a_page_and_logs_nobody_out(ui_owner: UiSession) -> None:
    r = ui_owner.get("/ui/logout")
    assert r.status_code in (404, 405) and r.headers["content-type"].startswith("text/html")
    assert ui_owner.get("/ui/").status_code == 200  # still logged in
