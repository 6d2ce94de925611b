"""Tenant isolation of programmatic and agent API keys through a real server: two organizations with two
projects each, keys of every kind in each, and every key route tried by one tenant on the other's keys. A
key of another tenant is answered exactly as a missing one (404, same body), and the application database
is read after every refused call to prove that nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from opsmgr.store.appdb import AGENT_API_KEYS, API_KEYS
from opsmgr.store.engine import Store
from tests.procs import ServerProcess

MISSING = "0123456789abcdef01234567"
ROLES = ["GROUP_READ_ONLY", "GROUP_AUTOMATION_ADMIN", "GROUP_BACKUP_ADMIN", "GROUP_OWNER"]


@dataclass
class Tenant:
    org: str
    owner: dict[str, Any]  # an ORG_OWNER key of the organization
    reader: dict[str, Any]  # an ORG_READ_ONLY key of the organization
    projects: list[str]
    # Per project: one key per project role, created through the project ("create and assign").
    project_keys: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    agent_keys: dict[str, str] = field(default_factory=dict)  # per project: an agent API key id

    def all_keys(self) -> list[dict[str, Any]]:
        return [self.owner, self.reader, *(k for p in self.project_keys.values() for k in p.values())]


@dataclass
class World:
    server: ServerProcess
    store: Store
    a: Tenant
    b: Tenant

    def client(self, key: dict[str, Any]) -> httpx.Client:
        return self.server.client(key)

    def snapshot(self) -> list[dict[str, Any]]:
        return sorted(
            self.store.find(API_KEYS) + self.store.find(AGENT_API_KEYS), key=lambda d: str(d["_id"])
        )

    def refused(self, c: httpx.Client, method: str, path: str, status: int, **kw: Any) -> httpx.Response:
        """The request answers ``status`` with an Ops Manager JSON error and leaves every key as it was."""
        before = self.snapshot()
        response = c.request(method, path, **kw)
        assert response.status_code == status, (response.request.method, response.request.url, response.text)
        assert {"detail", "error", "errorCode", "reason"} <= response.json().keys(), response.text
        assert self.snapshot() == before, f"{response.request.method} {response.request.url} changed keys"
        return response


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def _tenant(api: httpx.Client, server: ServerProcess, name: str) -> Tenant:
    org = _created(api.post("/orgs", json={"name": name}))["id"]
    owner = _created(api.post(f"/orgs/{org}/apiKeys", json={"desc": "owner", "roles": ["ORG_OWNER"]}))
    reader = _created(api.post(f"/orgs/{org}/apiKeys", json={"desc": "reader", "roles": ["ORG_READ_ONLY"]}))
    with server.client(owner) as c:
        projects = [
            _created(c.post("/groups", json={"name": f"{name}-p{i}", "orgId": org}))["id"] for i in (1, 2)
        ]
        tenant = Tenant(org, owner, reader, projects)
        for p in projects:
            tenant.project_keys[p] = {
                role: _created(c.post(f"/groups/{p}/apiKeys", json={"desc": role, "roles": [role]}))
                for role in ROLES
            }
            tenant.agent_keys[p] = _created(c.post(f"/groups/{p}/agentapikeys", json={"desc": "a"}))["id"]
    return tenant


@pytest.fixture(scope="module")
def world(server: ServerProcess, owner: dict[str, Any]) -> Iterator[World]:
    with server.client(owner) as api:
        a = _tenant(api, server, "tenant-a")
        b = _tenant(api, server, "tenant-b")
    store = Store(f"sqlite:///{server.data_dir / 'appdb.sqlite'}")
    try:
        yield World(server, store, a, b)
    finally:
        store.close()


def _as_missing(response: httpx.Response, key_id: str) -> Any:
    """The body with the id asked for masked, to compare with the body for a missing id."""

    def masked(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: masked(v) for k, v in value.items()}
        return value.replace(key_id, "<id>") if isinstance(value, str) else value

    return masked(response.json())


# Every route that acts on one key, as (method, path template, body): key ``{key}`` under project ``{p}`` or
# organization ``{org}``.
Route = tuple[str, str, dict[str, Any] | None]
KEY_ROUTES: list[Route] = [
    ("GET", "/orgs/{org}/apiKeys/{key}", None),
    ("DELETE", "/orgs/{org}/apiKeys/{key}", None),
    ("PATCH", "/groups/{p}/apiKeys/{key}", {"roles": ["GROUP_OWNER"]}),
    ("DELETE", "/groups/{p}/apiKeys/{key}", None),
]
AGENT_KEY_ROUTE: Route = ("DELETE", "/groups/{p}/agentapikeys/{key}", None)


def on_key(world: World, c: httpx.Client, route: Route, status: int, **where: str) -> httpx.Response:
    method, template, body = route
    return world.refused(c, method, template.format(**where), status, json=body)


@pytest.mark.parametrize("home", ["a", "b"])
def test_no_key_route_reaches_a_key_of_another_tenant(world: World, home: str) -> None:
    mine, theirs = (world.a, world.b) if home == "a" else (world.b, world.a)
    with world.client(mine.owner) as c:
        for p in mine.projects:
            missing = {
                route[:2]: _as_missing(on_key(world, c, route, 404, org=mine.org, p=p, key=MISSING), MISSING)
                for route in [*KEY_ROUTES, AGENT_KEY_ROUTE]
            }
            for key in theirs.all_keys():
                for route in KEY_ROUTES:
                    r = on_key(world, c, route, 404, org=mine.org, p=p, key=key["id"])
                    assert _as_missing(r, key["id"]) == missing[route[:2]], r.text
            for agent_key in theirs.agent_keys.values():
                r = on_key(world, c, AGENT_KEY_ROUTE, 404, p=p, key=agent_key)
                assert _as_missing(r, agent_key) == missing[AGENT_KEY_ROUTE[:2]], r.text
        listed = {k["id"] for k in c.get(f"/orgs/{mine.org}/apiKeys").json()["results"]}
        assert listed == {k["id"] for k in mine.all_keys()}, "an organization lists its own keys, only"
        for p in mine.projects:
            assigned = {k["id"] for k in c.get(f"/groups/{p}/apiKeys").json()["results"]}
            assert assigned == {k["id"] for k in mine.project_keys[p].values()}
        # The other tenant's paths are refused outright, whoever's key they name.
        there = {"org": theirs.org, "p": theirs.projects[0]}
        for key in [*mine.all_keys(), *theirs.all_keys()]:
            for route in KEY_ROUTES:
                on_key(world, c, route, 403, **there, key=key["id"])
        for agent_key in theirs.agent_keys.values():
            on_key(world, c, AGENT_KEY_ROUTE, 403, **there, key=agent_key)
        world.refused(c, "GET", f"/orgs/{theirs.org}/apiKeys", 403)
        world.refused(c, "GET", f"/groups/{theirs.projects[0]}/apiKeys", 403)
        world.refused(c, "GET", f"/groups/{theirs.projects[0]}/agentapikeys", 403)


def test_a_project_reaches_only_its_own_grants_and_its_organizations_keys(world: World) -> None:
    t = world.a
    p1, p2 = t.projects
    other = t.project_keys[p2]["GROUP_READ_ONLY"]
    with world.client(t.owner) as c:
        # Not assigned to p1: nothing to unassign there; p2's agent key is not p1's either.
        world.refused(c, "DELETE", f"/groups/{p1}/apiKeys/{other['id']}", 404)
        world.refused(c, "DELETE", f"/groups/{p1}/agentapikeys/{t.agent_keys[p2]}", 404)
        # A key of the same organization may be assigned to p1 (Ops Manager's assign), then unassigned.
        r = c.patch(f"/groups/{p1}/apiKeys/{other['id']}", json={"roles": ["GROUP_READ_ONLY"]})
        assert r.status_code == 200, r.text
        assert {"groupId": p1, "roleName": "GROUP_READ_ONLY"} in r.json()["roles"]
        assert {"groupId": p2, "roleName": "GROUP_READ_ONLY"} in r.json()["roles"]
        assert c.delete(f"/groups/{p1}/apiKeys/{other['id']}").status_code == 204
        roles = c.get(f"/orgs/{t.org}/apiKeys/{other['id']}").json()["roles"]
        assert roles == [{"groupId": p2, "roleName": "GROUP_READ_ONLY"}]


@pytest.mark.parametrize("role", ["GROUP_READ_ONLY", "GROUP_AUTOMATION_ADMIN", "GROUP_BACKUP_ADMIN"])
def test_project_roles_below_owner_touch_no_key(world: World, role: str) -> None:
    t = world.a
    p1 = t.projects[0]
    here = {"org": t.org, "p": p1}
    with world.client(t.project_keys[p1][role]) as c:
        for route in KEY_ROUTES:
            on_key(world, c, route, 403, **here, key=t.project_keys[p1]["GROUP_OWNER"]["id"])
        on_key(world, c, AGENT_KEY_ROUTE, 403, **here, key=t.agent_keys[p1])
        world.refused(c, "GET", f"/groups/{p1}/apiKeys", 403)
        world.refused(c, "GET", f"/groups/{p1}/agentapikeys", 403)
        world.refused(c, "POST", f"/groups/{p1}/apiKeys", 403, json={"desc": "x", "roles": ["GROUP_OWNER"]})
        world.refused(c, "POST", f"/groups/{p1}/agentapikeys", 403, json={"desc": "x"})
        world.refused(c, "GET", f"/orgs/{t.org}/apiKeys", 403)


def test_a_project_owner_and_an_org_reader_stay_in_their_place(world: World) -> None:
    t = world.a
    p1, p2 = t.projects
    p2_key = t.project_keys[p2]["GROUP_READ_ONLY"]["id"]
    with world.client(t.project_keys[p1]["GROUP_OWNER"]) as c:
        world.refused(c, "PATCH", f"/groups/{p2}/apiKeys/{p2_key}", 403, json={"roles": ["GROUP_OWNER"]})
        world.refused(c, "DELETE", f"/groups/{p2}/agentapikeys/{t.agent_keys[p2]}", 403)
        world.refused(c, "DELETE", f"/orgs/{t.org}/apiKeys/{p2_key}", 403)
    with world.client(t.reader) as c:
        world.refused(c, "GET", f"/orgs/{t.org}/apiKeys/{p2_key}", 403)
        world.refused(c, "DELETE", f"/orgs/{t.org}/apiKeys/{p2_key}", 403)
        world.refused(c, "POST", f"/orgs/{t.org}/apiKeys", 403, json={"desc": "x", "roles": ["ORG_OWNER"]})


@pytest.mark.parametrize(
    "key_id,status",
    [("not-hex", 400), ("0123456789ABCDEF0123456G", 400), ("a" * 5000, 400), (MISSING, 404)],
)
def test_forged_key_ids_are_refused(world: World, key_id: str, status: int) -> None:
    t = world.b
    here = {"org": t.org, "p": t.projects[0]}
    with world.client(t.owner) as c:
        for route in [*KEY_ROUTES, AGENT_KEY_ROUTE]:
            on_key(world, c, route, status, **here, key=key_id)


def test_oversized_key_requests_are_refused(world: World) -> None:
    t = world.b
    p1 = t.projects[0]
    path = f"/groups/{p1}/apiKeys/{t.project_keys[p1]['GROUP_READ_ONLY']['id']}"
    with world.client(t.owner) as c:
        world.refused(c, "PATCH", path, 400, json={"roles": ["GROUP_OWNER"] * 17})
        world.refused(
            c, "POST", f"/groups/{p1}/apiKeys", 400, json={"desc": "x" * 251, "roles": ["GROUP_OWNER"]}
        )
        world.refused(
            c, "POST", f"/orgs/{t.org}/apiKeys", 400, json={"desc": "x", "roles": ["ORG_OWNER"] * 17}
        )
        world.refused(c, "POST", f"/groups/{p1}/agentapikeys", 400, json={"desc": "x" * 251})
        huge = b'{"roles": ["GROUP_OWNER"], "pad": "' + b"x" * (9 * 1024 * 1024) + b'"}'
        world.refused(c, "PATCH", path, 413, content=huge, headers={"content-type": "application/json"})


def test_an_organization_deletes_its_own_key(world: World) -> None:
    t = world.b
    with world.client(t.owner) as c:
        victim = _created(
            c.post(f"/orgs/{t.org}/apiKeys", json={"desc": "victim", "roles": ["ORG_READ_ONLY"]})
        )
        assert c.get(f"/orgs/{t.org}/apiKeys/{victim['id']}").json()["publicKey"] == victim["publicKey"]
        assert c.delete(f"/orgs/{t.org}/apiKeys/{victim['id']}").status_code == 204
        assert c.get(f"/orgs/{t.org}/apiKeys/{victim['id']}").status_code == 404
    assert all(k["_id"] != victim["id"] for k in world.store.find(API_KEYS))
    with world.client(victim) as gone:
        assert gone.get(f"/orgs/{t.org}").status_code == 401


def test_a_key_stored_before_keys_named_their_organization_belongs_to_its_first_roles(world: World) -> None:
    a, b = world.a, world.b
    legacy = world.store.insert(
        API_KEYS,
        {
            "publicKey": "legacykey",
            "privateKeyEnc": "unused",
            "desc": "legacy",
            "roles": [{"groupId": a.projects[0], "roleName": "GROUP_OWNER"}],
        },
    )
    with world.client(b.owner) as c:
        for route in KEY_ROUTES:
            on_key(world, c, route, 404, org=b.org, p=b.projects[0], key=legacy["_id"])
    with world.client(a.owner) as c:
        assert c.get(f"/orgs/{a.org}/apiKeys/{legacy['_id']}").json()["publicKey"] == "legacykey"
        r = c.patch(f"/groups/{a.projects[1]}/apiKeys/{legacy['_id']}", json={"roles": ["GROUP_READ_ONLY"]})
        assert r.status_code == 200, r.text
        assert c.delete(f"/orgs/{a.org}/apiKeys/{legacy['_id']}").status_code == 204
    assert world.store.get(API_KEYS, legacy["_id"]) is None
