"""The deployment edit's limits are the API's: a config the API's PUT takes (its body may be 8 MiB) is one the
review's Deploy takes too, and the edit form of a project of several hundred processes (five fields or so
each, past the form parser's default 1,000) reviews; such a project is not left without a working edit."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

from opsmgr.automation.templates import replica_set_config
from tests.procs import ServerProcess
from tests.ui.uisupport import UiSession

SETS = 13
MEMBERS = 45


def _big_config() -> dict[str, Any]:
    config: dict[str, Any] = {"processes": [], "replicaSets": []}
    for s in range(SETS):
        part = replica_set_config([f"h{s}-{i}.big.sim" for i in range(MEMBERS)], f"rs{s}")
        for rs in part["replicaSets"]:
            for member in rs["members"]:
                member["votes"] = 1 if member["_id"] < 7 else 0  # MongoDB: at most 7 voting members
                member["priority"] = 1 if member["_id"] < 7 else 0
        config["processes"] += part["processes"]
        config["replicaSets"] += part["replicaSets"]
    return config


def test_deploy_takes_a_config_of_hundreds_of_processes_as_the_api_does(
    server: ServerProcess, owner: dict[str, Any], ui_owner: UiSession
) -> None:
    api = server.client(owner)
    org_id = api.get("/orgs").json()["results"][0]["id"]
    group_id = api.post("/groups", json={"name": "big-project", "orgId": org_id}).json()["id"]
    put = api.put(f"/groups/{group_id}/automationConfig", json=_big_config())
    assert put.status_code == 200, put.text[:300]
    current = api.get(f"/groups/{group_id}/automationConfig").json()
    sent = dict(current, options={**current.get("options", {}), "downloadBase": "/var/lib/big"})
    body = json.dumps(sent, separators=(",", ":"))
    assert len(body) > 200_000  # past the review's old limit, far below the API's
    r = ui_owner.post(
        f"/ui/projects/{group_id}/deployment/deploy",
        {"config": body, "base_version": str(current["version"])},
    )
    assert r.status_code == 303, r.text[:500]
    after = api.get(f"/groups/{group_id}/automationConfig").json()
    assert after["version"] == current["version"] + 1
    assert after["options"]["downloadBase"] == "/var/lib/big"


class _Form(HTMLParser):
    """The fields a browser would post from the page's forms (inputs, ticked boxes, selects, textareas)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._first: tuple[str, str] | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name", "")
        if tag == "input" and name and (a.get("type") != "checkbox" or "checked" in a):
            self.fields.append((name, a.get("value", "")))
        elif tag == "select":
            self._select, self._first = name, None
        elif tag == "option" and self._select is not None:
            if self._first is None or "selected" in a:
                self._first = (self._select, a.get("value", ""))
        elif tag == "textarea":
            self._textarea, self._text = name, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._first is not None:
            self.fields.append(self._first)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, "".join(self._text).removeprefix("\n")))
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)


def test_review_takes_the_edit_form_of_hundreds_of_processes(
    server: ServerProcess, owner: dict[str, Any], ui_owner: UiSession
) -> None:
    api = server.client(owner)
    org_id = api.get("/orgs").json()["results"][0]["id"]
    group_id = api.post("/groups", json={"name": "big-edit", "orgId": org_id}).json()["id"]
    assert api.put(f"/groups/{group_id}/automationConfig", json=_big_config()).status_code == 200
    page = ui_owner.get(f"/ui/projects/{group_id}/deployment/edit")
    assert page.status_code == 200
    form = _Form()
    form.feed(page.text)
    fields = [(k, v) for k, v in form.fields if k != "version"] + [("version", "7.0.6")]
    assert len(fields) > 1000  # past the form parser's default limit
    r = ui_owner.client.post(
        f"/ui/projects/{group_id}/deployment/review",
        content=urlencode(fields),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text[:500]
    assert "7.0.6" in r.text
