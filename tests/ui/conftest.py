"""Fixtures of the UI tests: one headless Chromium per module, pages that close after each test, and a
module's server with an Organization Owner user (``owner``) and the API key of that organization."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.procs import ServerProcess
from tests.ui.uisupport import PASSWORD, UiSession, launch


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Per module, not per session: Playwright's sync API keeps an event loop running in the test thread
    while it is open, so a session-wide browser breaks every later test that runs its own loop
    (``asyncio.run``) on the same worker once the tests run in parallel workers."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) at 1280x800 for one test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def ui_owner(server: ServerProcess) -> Iterator[UiSession]:
    """The Organization Owner user ``owner``, logged in over HTTP."""
    server.create_user("owner", PASSWORD, "ORG_OWNER")
    session = UiSession(server.url, "owner")
    yield session
    session.close()
