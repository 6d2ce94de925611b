"""Users, sessions and CSRF against a real server: login, the throttle, logout, refusals by role, forged
posts, and hostile input."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.procs import ServerProcess
from tests.ui.uisupport import PASSWORD, UiSession, csrf_of, error_detail, login, screenshot


def _login_form(client: httpx.Client) -> str:
    return csrf_of(client.get("/ui/login").text)


def test_root_and_pages_send_a_stranger_to_the_login_page(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/").headers["location"] == "/ui/"
        r = client.get("/ui/?x=1")
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/login?next=%2Fui%2F%3Fx%3D1"
        # A POST without a session is refused outright, not redirected.
        r = client.post("/ui/logout", data={"csrf_token": "x"})
        assert r.status_code == 403 and "log in again" in error_detail(r.text)


def test_login_sets_a_hardened_cookie_and_logout_ends_the_session(
    server: ServerProcess, ui_owner: Any
) -> None:
    server.create_user("leaver", PASSWORD, "ORG_READ_ONLY")
    with httpx.Client(base_url=server.url) as client:
        r = client.post(
            "/ui/login",
            data={
                "username": "leaver",
                "password": PASSWORD,
                "csrf_token": _login_form(client),
                "next": "/ui/",
            },
        )
        assert r.status_code == 303 and r.headers["location"] == "/ui/"
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("opsmgr_session="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        token = client.cookies["opsmgr_session"]
        home = client.get("/ui/")
        assert home.status_code == 200 and "leaver" in home.text
        assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
        assert home.headers["x-frame-options"] == "DENY" and home.headers["cache-control"] == "no-store"
        assert client.post("/ui/logout", data={"csrf_token": csrf_of(home.text)}).status_code == 303
    # The old cookie opens nothing any more.
    with httpx.Client(base_url=server.url, cookies={"opsmgr_session": token}) as stale:
        assert stale.get("/ui/").status_code == 303


def test_wrong_passwords_are_throttled_per_user(server: ServerProcess) -> None:
    server.create_user("guessed", PASSWORD, "ORG_READ_ONLY")
    with httpx.Client(base_url=server.url) as client:
        for _ in range(5):
            r = client.post(
                "/ui/login",
                data={"username": "guessed", "password": "nope-nope", "csrf_token": _login_form(client)},
            )
            assert r.status_code == 401 and "Wrong username or password" in r.text
        # Now even the right password waits: the guesser cannot tell.
        r = client.post(
            "/ui/login",
            data={"username": "guessed", "password": PASSWORD, "csrf_token": _login_form(client)},
        )
        assert r.status_code == 429 and "Too many failed logins" in error_detail(r.text)
        assert "opsmgr_session" not in client.cookies


def test_login_without_its_csrf_cookie_is_refused(server: ServerProcess, ui_owner: Any) -> None:
    with httpx.Client(base_url=server.url) as client:
        r = client.post("/ui/login", data={"username": "owner", "password": PASSWORD, "csrf_token": "forged"})
        assert r.status_code == 403 and "CSRF" in error_detail(r.text)
        assert "opsmgr_session" not in client.cookies


def test_next_never_leaves_the_ui(server: ServerProcess, ui_owner: Any) -> None:
    with httpx.Client(base_url=server.url) as client:
        for target in ("https://evil.example/", "//evil.example/ui/", "/api/public/v1.0/groups", "/ui\\\\x"):
            r = client.post(
                "/ui/login",
                data={
                    "username": "owner",
                    "password": PASSWORD,
                    "csrf_token": _login_form(client),
                    "next": target,
                },
            )
            assert r.status_code == 303 and r.headers["location"] == "/ui/", target


def test_create_project_needs_the_csrf_token_and_the_api_role(
    server: ServerProcess, owner: dict[str, Any], ui_owner: UiSession
) -> None:
    api = server.client(owner)
    org_id = api.get("/orgs").json()["results"][0]["id"]
    forged = ui_owner.post(f"/ui/orgs/{org_id}/projects", {"name": "forged-project"}, csrf=False)
    assert forged.status_code == 403 and "CSRF" in error_detail(forged.text)
    wrong = ui_owner.client.post(
        f"/ui/orgs/{org_id}/projects", data={"name": "forged-project", "csrf_token": "0" * 64}
    )
    assert wrong.status_code == 403
    names = [g["name"] for g in api.get("/groups").json()["results"]]
    assert "forged-project" not in names

    made = ui_owner.post(f"/ui/orgs/{org_id}/projects", {"name": "ui-made"})
    assert made.status_code == 201
    group = next(g for g in api.get("/groups").json()["results"] if g["name"] == "ui-made")
    assert f'href="/ui/projects/{group["id"]}/deployment"' in made.text
    # The project's first agent API key, shown this once, is one the agent API takes.
    agent_key = re.search(r'id="agent-api-key" readonly size="70" value="([0-9a-f]{64})"', made.text)
    assert agent_key is not None
    poll = httpx.get(
        f"{server.url}/agents/api/automation/conf/v1/{group['id']}",
        params={"hostname": "h.sim", "cv": "-1"},
        auth=(group["id"], agent_key.group(1)),
    )
    assert poll.status_code in (200, 304), poll.text

    # The API's refusals, with the API's message.
    again = ui_owner.post(f"/ui/orgs/{org_id}/projects", {"name": "ui-made"})
    assert again.status_code == 409 and "already exists" in error_detail(again.text)
    bad = ui_owner.post(f"/ui/orgs/{org_id}/projects", {"name": "<script>"})
    assert bad.status_code == 400 and "name must be" in error_detail(bad.text)
    huge = ui_owner.post(f"/ui/orgs/{org_id}/projects", {"name": "x" * 5000})
    assert huge.status_code == 400


def test_a_read_only_user_sees_no_create_button_and_a_forged_post_is_refused(
    server: ServerProcess, owner: dict[str, Any]
) -> None:
    server.create_user("reader", PASSWORD, "ORG_READ_ONLY")
    reader = UiSession(server.url, "reader")
    org_id = server.client(owner).get("/orgs").json()["results"][0]["id"]
    home = reader.get("/ui/")
    assert home.status_code == 200 and "Create project" not in home.text
    r = reader.post(f"/ui/orgs/{org_id}/projects", {"name": "by-reader"})
    assert r.status_code == 403
    assert error_detail(r.text) == f"User reader lacks role ORG_OWNER on organization {org_id}"
    reader.close()


def test_users_create_refuses_bad_input(server: ServerProcess) -> None:
    from tests.procs import run_cli

    args = ("users", "create", "--role", "ORG_OWNER", *server.setup_args())
    short = run_cli(*args, "--username", "shorty", stdin="short\n")
    assert short.returncode != 0 and "password must be" in short.stderr
    weird = run_cli(*args, "--username", "bad name!", stdin=PASSWORD + "\n")
    assert weird.returncode != 0 and "username must be" in weird.stderr
    role = run_cli(
        "users", "create", "--username", "r1", "--role", "GOD", *server.setup_args(), stdin=PASSWORD + "\n"
    )
    assert role.returncode != 0 and "role" in role.stderr
    server.create_user("twice", PASSWORD, "ORG_READ_ONLY")
    dup = run_cli(*args, "--username", "TWICE", stdin=PASSWORD + "\n")
    assert dup.returncode != 0 and "already exists" in dup.stderr


@pytest.mark.e2e
def test_login_in_a_browser(server: ServerProcess, ui_owner: Any, page: Any) -> None:
    page.goto(f"{server.url}/")
    assert "/ui/login" in page.url
    page.get_by_label("Username").fill("owner")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    assert "Wrong username or password" in page.locator("#login-error").inner_text()
    login(page, server.url, "owner")
    assert page.get_by_role("heading", name="Organizations and projects").is_visible()
    screenshot(page, "home")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/ui/login")


def test_users_list_and_delete_end_the_sessions(server: ServerProcess) -> None:
    from tests.procs import run_cli

    server.create_user("gone", PASSWORD, "ORG_READ_ONLY")
    session = UiSession(server.url, "gone")
    listed = run_cli("users", "list", *server.setup_args())
    assert listed.returncode == 0 and "gone  ORG_READ_ONLY on org " in listed.stdout
    assert run_cli("users", "delete", "--username", "gone", *server.setup_args()).returncode == 0
    assert session.get("/ui/").status_code == 303, "a deleted user's session ends at once"
    again = run_cli("users", "delete", "--username", "gone", *server.setup_args())
    assert again.returncode != 0 and "No user named" in again.stderr
    session.close()


def test_a_live_stream_ends_soon_after_its_session(server: ServerProcess, ui_owner: UiSession) -> None:
    import time

    viewer = UiSession(server.url, "owner")
    with viewer.client.stream(
        "GET", "/ui/live?r=/ui/restoration/banner", headers={"accept": "text/event-stream"}, timeout=30
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        ended = time.monotonic()
        viewer.post("/ui/logout")
        events = [line for line in lines if line.startswith(("event:", "data: {\"region\": 0, \"detail"))]
        assert events[0] == "event: gone" and "log in again" in events[1], events
        assert time.monotonic() - ended < 10, "the stream outlived its session"
    viewer.close()
