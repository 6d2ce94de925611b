"""The UI as its users reach it: a logged-in HTTP session (cookies and the page's CSRF token, for tests of
every route's refusals) and real headless Chromium from Debian's package driven by Playwright (never a
browser Playwright downloads). Screenshots go to ``test-artifacts/ui`` (``OPSMGR_UI_ARTIFACTS`` moves it)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ARTIFACTS = Path(
    os.environ.get("OPSMGR_UI_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts" / "ui")
)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium's own network traffic (updates, sync, safe browsing) is refused on a closed machine: off.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_DETAIL = re.compile(r'id="error-detail">([^<]*)<')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def error_detail(html: str) -> str:
    import html as htmllib

    found = _DETAIL.search(html)
    assert found, f"not an error page: {html[:300]}"
    return htmllib.unescape(found.group(1))


class UiSession:
    """A logged-in user over plain HTTP: ``get`` pages, ``post`` forms with the session's CSRF token."""

    def __init__(self, base_url: str, username: str, password: str = PASSWORD, verify: Any = True) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=15, verify=verify)
        page = self.client.get("/ui/login")
        done = self.client.post(
            "/ui/login",
            data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        )
        assert done.status_code == 303, f"login of {username} failed: {done.status_code} {done.text[:300]}"
        self.csrf = csrf_of(self.client.get("/ui/").text)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.csrf
        return self.client.post(path, data=form)

    def close(self) -> None:
        self.client.close()


@contextmanager
def read_only_session(server: Any, username: str, group_id: str) -> Iterator[UiSession]:
    """A GROUP_READ_ONLY user of project ``group_id``, made with the CLI and logged in."""
    server.create_user(username, PASSWORD, "GROUP_READ_ONLY", group_id=group_id)
    session = UiSession(server.url, username)
    try:
        yield session
    finally:
        session.close()


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def login(page: Any, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/ui/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/ui/(?!login).*"))


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
