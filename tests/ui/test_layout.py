"""Every page at the issue's two viewports, 1280x800 and 390x844, in real Chromium: no page-wide horizontal
scrolling (wide tables scroll in their own box), every form control labelled, every button named, one h1,
and the first Tab lands on "Skip to content"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.deployments import Deployment, replica_set_at_goal
from tests.procs import ServerProcess
from tests.ui.uisupport import PASSWORD, login, screenshot

pytestmark = pytest.mark.e2e

HOSTS = [f"layout{i}.e2e.sim" for i in range(3)]
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}

# What the page itself may not do without: checked in the page, returns the problems found.
AUDIT = """() => {
  const problems = [];
  const root = document.documentElement;
  if (root.scrollWidth > window.innerWidth + 1) {
    problems.push(`page scrolls sideways: ${root.scrollWidth} > ${window.innerWidth}`);
  }
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || !visible(el)) continue;
    const named = (el.labels && el.labels.length) || el.getAttribute('aria-label')
      || el.getAttribute('aria-labelledby');
    if (!named) problems.push(`unlabelled ${el.tagName.toLowerCase()} name=${el.name}`);
  }
  for (const el of document.querySelectorAll('button')) {
    if (visible(el) && !(el.textContent.trim() || el.getAttribute('aria-label'))) {
      problems.push('unnamed button');
    }
  }
  const h1s = document.querySelectorAll('h1').length;
  if (h1s !== 1) problems.push(`${h1s} h1`);
  return problems;
}"""


@pytest.fixture(scope="module")
def deployment(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    server.create_user("looker", PASSWORD, "ORG_OWNER")
    with replica_set_at_goal(server, owner, tmp_path_factory.mktemp("layout"), "layout", HOSTS) as d:
        yield d


def pages(group_id: str) -> list[str]:
    project = f"/ui/projects/{group_id}"
    return [
        "/ui/",
        f"{project}/deployment",
        f"{project}/deployment/edit",
        f"{project}/maintenance",
        f"{project}/backup",
        f"{project}/alerts",
        "/ui/alerts",
        "/ui/backing",
        "/ui/admin",
    ]


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_every_page_fits_and_is_labelled(
    server: ServerProcess, deployment: Deployment, browser: Any, viewport: str
) -> None:
    width, height = VIEWPORTS[viewport]
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        login(page, server.url, "looker")
        problems = {}
        for path in pages(deployment.group_id):
            response = page.goto(f"{server.url}{path}")
            assert response is not None and response.status == 200, f"{path}: {response and response.status}"
            found = page.evaluate(AUDIT)
            if found:
                problems[path] = found
            page.keyboard.press("Tab")
            focused = page.evaluate("() => document.activeElement && document.activeElement.textContent")
            if "Skip to content" not in (focused or ""):
                problems.setdefault(path, []).append(f"first Tab went to {focused!r}")
            if viewport == "phone":
                screenshot(page, "phone-" + (path.rstrip("/").rsplit("/", 1)[-1] or "home"))
        assert not problems, problems
    finally:
        context.close()
