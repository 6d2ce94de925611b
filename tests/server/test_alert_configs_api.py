"""Alert configurations through the real server: ``/groups/{id}/alertConfigs`` in Ops Manager's shapes and
status codes (201, 200, 204), its roles (Project Owner writes, any project role reads, another project's key
is refused), and wrong, forged or oversized bodies refused with a 400 naming the field and Ops Manager's
error code where it has one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.procs import ServerProcess, started_server
from tests.refusals import malformed_bodies_are_4xx, refused_naming

BASE = "/groups/{}/alertConfigs"
LAG = {
    "metricName": "OPLOG_SLAVE_LAG_MASTER_TIME",
    "operator": "GREATER_THAN",
    "threshold": 30,
    "units": "SECONDS",
}
HOOK = {"typeName": "WEBHOOK", "intervalMin": 5, "delayMin": 0, "webhookUrl": "http://127.0.0.1:9/hook"}
GROUP = {
    "typeName": "GROUP",
    "intervalMin": 60,
    "delayMin": 0,
    "emailEnabled": True,
    "roles": ["GROUP_OWNER"],
}


def config(event: str = "HOST_DOWN", **more: Any) -> dict[str, Any]:
    return {"eventTypeName": event, "enabled": True, "notifications": [GROUP]} | more


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with started_server(tmp_path_factory.mktemp("alertconfigs") / "data") as s:
        yield s


@pytest.fixture(scope="module")
def owner(srv: ServerProcess) -> dict[str, Any]:
    return srv.create_key("ORG_OWNER")


def test_configs_are_created_read_replaced_toggled_and_deleted_in_ops_managers_shape(
    srv: ServerProcess, owner: dict[str, Any]
) -> None:
    with srv.client(owner) as api:
        group = api.post("/groups", json={"name": "ac-crud"}).json()["id"]
        path = BASE.format(group)
        assert api.get(path).json()["totalCount"] == 0
        r = api.post(path, json=config("OUTSIDE_METRIC_THRESHOLD", metricThreshold=LAG, notifications=[HOOK]))
        assert r.status_code == 201, r.text
        made = r.json()
        assert set(made) == {
            "id",
            "groupId",
            "eventTypeName",
            "typeName",
            "enabled",
            "matchers",
            "notifications",
            "created",
            "updated",
            "metricThreshold",
        }
        assert (made["groupId"], made["enabled"], made["typeName"]) == (group, True, "HOST_METRIC")
        assert made["metricThreshold"] == LAG | {"threshold": 30.0, "mode": "AVERAGE"}
        assert made["notifications"] == [HOOK] and made["created"].endswith("Z")
        listed = api.get(path).json()
        assert listed["totalCount"] == 1 and listed["results"] == [made]
        one = f"{path}/{made['id']}"
        assert api.get(one).json() == made

        matcher = {"fieldName": "HOSTNAME", "operator": "STARTS_WITH", "value": "db"}
        r = api.put(one, json=config("NO_PRIMARY", matchers=[matcher]))
        assert r.status_code == 200, r.text
        replaced = r.json()
        assert replaced["eventTypeName"] == "NO_PRIMARY" and replaced["typeName"] == "REPLICA_SET"
        assert replaced["matchers"] == [matcher] and "metricThreshold" not in replaced
        assert replaced["id"] == made["id"] and replaced["created"] == made["created"]

        off = api.patch(one, json={"enabled": False})
        assert off.status_code == 200 and off.json()["enabled"] is False
        assert api.get(one).json()["enabled"] is False
        assert api.delete(one).status_code == 204
        gone = api.get(one)
        assert gone.status_code == 404 and gone.json()["errorCode"] == "ALERT_CONFIG_NOT_FOUND"
        assert api.delete(one).status_code == 404
        assert api.get(path).json()["totalCount"] == 0


@pytest.fixture(scope="module")
def quiet_group(srv: ServerProcess, owner: dict[str, Any]) -> str:
    with srv.client(owner) as api:
        return str(api.post("/groups", json={"name": "ac-wrong"}).json()["id"])


@pytest.mark.parametrize(
    ("sent", "field", "code"),
    [
        (config("NOT_AN_EVENT"), "eventTypeName", "INVALID_EVENT_TYPE_FOR_ALERT"),
        ({"eventTypeName": "HOST_DOWN"}, "notifications", "MISSING_NOTIFICATIONS"),
        (config(notifications=[]), "notifications", "MISSING_NOTIFICATIONS"),
        (config(enabled="yes"), "enabled", "INVALID_ATTRIBUTE"),
        (config(notifications=[{"typeName": "WEBHOOK"}]), "notifications[0].webhookUrl", "INVALID_ATTRIBUTE"),
        (config(notifications=[GROUP] * 11), "notifications", "INVALID_ATTRIBUTE"),
        (
            config(notifications=[GROUP | {"emailAddress": "x" * 5000}]),
            "notifications[0].emailAddress",
            "INVALID_ATTRIBUTE",
        ),
        (config("OUTSIDE_METRIC_THRESHOLD"), "metricThreshold", "INVALID_ATTRIBUTE"),
        (config(matchers="all"), "matchers", "INVALID_ATTRIBUTE"),
    ],
)
def test_wrong_bodies_are_400_naming_the_field(
    srv: ServerProcess, owner: dict[str, Any], quiet_group: str, sent: dict[str, Any], field: str, code: str
) -> None:
    with srv.client(owner) as api:
        refused_naming(api, BASE.format(quiet_group), sent, field, code)


def test_forged_bodies_and_ids_are_4xx(srv: ServerProcess, owner: dict[str, Any]) -> None:
    with srv.client(owner) as api:
        group = api.post("/groups", json={"name": "ac-forged"}).json()["id"]
        path = BASE.format(group)
        malformed_bodies_are_4xx(api, path)
        assert api.post(path, json=config(bogus=1)).status_code == 400
        made = api.post(path, json=config()).json()
        one = f"{path}/{made['id']}"
        assert api.patch(one, json={"enabled": "no"}).status_code == 400
        assert api.patch(one, json={"eventTypeName": "NO_PRIMARY"}).status_code == 400
        assert api.patch(f"{path}/{'f' * 5000}", json={"enabled": False}).status_code == 404
        assert api.put(f"{path}/nope", json=config()).status_code == 404
        assert api.get(one).json() == made


def test_owner_writes_reader_reads_stranger_is_refused(srv: ServerProcess, owner: dict[str, Any]) -> None:
    with srv.client(owner) as api:
        group = api.post("/groups", json={"name": "ac-roles"}).json()["id"]
        other = api.post("/groups", json={"name": "ac-roles-other"}).json()["id"]
        made = api.post(BASE.format(group), json=config()).json()
        theirs = api.post(BASE.format(other), json=config()).json()
        assert api.get(f"{BASE.format(other)}/{made['id']}").status_code == 404  # the project's own
    reader = srv.create_key("GROUP_READ_ONLY", group_id=group)
    with srv.client(reader) as api:
        path = BASE.format(group)
        assert api.get(path).json()["results"] == [made]
        assert api.get(f"{path}/{made['id']}").status_code == 200
        for r in (
            api.post(path, json=config("NO_PRIMARY")),
            api.put(f"{path}/{made['id']}", json=config("NO_PRIMARY")),
            api.patch(f"{path}/{made['id']}", json={"enabled": False}),
            api.delete(f"{path}/{made['id']}"),
        ):
            assert r.status_code == 403 and "GROUP_OWNER" in r.json()["detail"]
        stranger = api.get(BASE.format(other))
        assert stranger.status_code == 403 and stranger.json()["errorCode"]
        assert api.get(f"{BASE.format(other)}/{theirs['id']}").status_code == 403
        assert api.get(f"{path}/{made['id']}").json() == made
