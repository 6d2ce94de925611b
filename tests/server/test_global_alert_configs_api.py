"""Global alert configurations through the real server: ``/globalAlertConfigs`` in Ops Manager's shapes
(disabled unless enabled, ``forAllGroups``/``groupIds``/``tags``, no ``groupId``, the webhook secret
masked), scoped to the organizations their creator owns (another organization's owner neither sees nor
changes them, nor names its projects), ORG_READ_ONLY reads but never writes, project keys are refused;
and an alert raised in a covered project reaches the configuration's webhook through the retried outbox,
signed with ``X-MMS-Signature`` and named by ``X-MMS-Event``, while alerts its matchers or its
organizations exclude do not."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.procs import ServerProcess, started_server, wait_for
from tests.refusals import malformed_bodies_are_4xx
from tests.server.test_alerts_ack import raiser
from tests.server.test_alerts_api import Receiver

BASE = "/globalAlertConfigs"
GROUP = {"typeName": "GROUP", "intervalMin": 60, "delayMin": 0, "emailEnabled": True}
SECRET = "s3cret-of-the-receiver"


def config(**more: Any) -> dict[str, Any]:
    return {"eventTypeName": "HOST_DOWN", "forAllGroups": True, "notifications": [GROUP]} | more


@dataclass
class Tenants:
    srv: ServerProcess
    a: dict[str, Any]  # owns org A and org B (it created B)
    b: dict[str, Any]  # owns org B only
    b_reader: dict[str, Any]
    a_group: str
    b_group: str
    b_group_key: dict[str, Any]


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    with started_server(tmp_path_factory.mktemp("globalconfigs") / "data") as srv:
        a = srv.create_key("ORG_OWNER")
        with srv.client(a) as api:
            a_group = api.post("/groups", json={"name": "gac-a"}).json()["id"]
            org_b = api.post("/orgs", json={"name": "gac-org-b"}).json()["id"]
            keys = {
                role: api.post(f"/orgs/{org_b}/apiKeys", json={"desc": role, "roles": [role]}).json()
                for role in ("ORG_OWNER", "ORG_READ_ONLY")
            }
        with srv.client(keys["ORG_OWNER"]) as api:
            b_group = api.post("/groups", json={"name": "gac-b", "orgId": org_b}).json()["id"]
            sent = {"desc": "project owner", "roles": ["GROUP_OWNER"]}
            group_key = api.post(f"/groups/{b_group}/apiKeys", json=sent).json()
        yield Tenants(srv, a, keys["ORG_OWNER"], keys["ORG_READ_ONLY"], a_group, b_group, group_key)


def test_a_global_configuration_is_created_read_replaced_toggled_and_deleted(tenants: Tenants) -> None:
    hook = {"typeName": "WEBHOOK", "intervalMin": 5, "delayMin": 0, "webhookUrl": "http://127.0.0.1:9/h"}
    with tenants.srv.client(tenants.b) as api:
        r = api.post(BASE, json=config(notifications=[hook | {"webhookSecret": SECRET}], tags=["prod"]))
        assert r.status_code == 201, r.text
        made = r.json()
        assert set(made) == {
            "id",
            "eventTypeName",
            "typeName",
            "enabled",
            "forAllGroups",
            "groupIds",
            "tags",
            "matchers",
            "notifications",
            "created",
            "updated",
        }
        assert made["enabled"] is False, (
            "a global configuration is disabled unless enabled, as in Ops Manager"
        )
        assert made["notifications"][0]["webhookSecret"] == "******" and SECRET not in r.text
        assert (made["forAllGroups"], made["groupIds"], made["tags"]) == (True, [], ["prod"])
        one = f"{BASE}/{made['id']}"
        assert api.get(BASE).json()["results"] == [made] and api.get(one).json() == made
        round_trip = api.put(one, json=made)
        assert round_trip.status_code == 200, round_trip.text
        assert {k: v for k, v in round_trip.json().items() if k != "updated"} == {
            k: v for k, v in made.items() if k != "updated"
        }
        narrowed = api.put(one, json=config(forAllGroups=False, groupIds=[tenants.b_group]))
        assert narrowed.json()["groupIds"] == [tenants.b_group]
        assert api.patch(one, json={"enabled": True}).json()["enabled"] is True
        listed = api.get(f"{one}/alerts")
        assert listed.status_code == 200 and listed.json()["totalCount"] == 0
        assert api.delete(one).status_code == 204
        gone = api.get(one)
        assert gone.status_code == 404 and gone.json()["errorCode"] == "ALERT_CONFIG_NOT_FOUND"


def test_another_organization_neither_sees_changes_nor_targets(tenants: Tenants) -> None:
    with tenants.srv.client(tenants.a) as api:
        mine = api.post(BASE, json=config()).json()
    with tenants.srv.client(tenants.b) as api:
        one = f"{BASE}/{mine['id']}"
        assert mine["id"] not in [c["id"] for c in api.get(BASE).json()["results"]]
        for r in (
            api.get(one),
            api.get(f"{one}/alerts"),
            api.put(one, json=config()),
            api.patch(one, json={"enabled": True}),
            api.delete(one),
        ):
            assert r.status_code == 404, r.text
        before = api.get(BASE).json()["totalCount"]
        r = api.post(BASE, json=config(forAllGroups=False, groupIds=[tenants.a_group]))
        assert r.status_code == 404 and r.json()["errorCode"] == "GROUP_NOT_FOUND"
        assert api.get(BASE).json()["totalCount"] == before
    with tenants.srv.client(tenants.a) as api:
        assert api.get(f"{BASE}/{mine['id']}").json()["enabled"] is False, "unchanged"


def test_read_only_reads_and_project_keys_are_refused(tenants: Tenants) -> None:
    with tenants.srv.client(tenants.b) as api:
        made = api.post(BASE, json=config()).json()
    one = f"{BASE}/{made['id']}"
    with tenants.srv.client(tenants.b_reader) as api:
        assert api.get(one).json() == made
        for r in (
            api.post(BASE, json=config()),
            api.put(one, json=config()),
            api.patch(one, json={"enabled": True}),
            api.delete(one),
        ):
            assert r.status_code == 403 and "ORG_OWNER" in r.json()["detail"]
    with tenants.srv.client(tenants.b_group_key) as api:
        for r in (api.get(BASE), api.get(one), api.post(BASE, json=config())):
            assert r.status_code == 403, r.text
    with tenants.srv.client(tenants.b) as api:
        assert api.get(one).json() == made


@pytest.mark.parametrize(
    ("sent", "field"),
    [
        ({"eventTypeName": "HOST_DOWN", "notifications": [GROUP]}, "forAllGroups"),
        (config(forAllGroups="yes"), "forAllGroups"),
        (config(forAllGroups=False), "groupIds"),
        (config(forAllGroups=False, groupIds=["x"] * 11), "groupIds"),
        (config(tags=[7]), "tags"),
        (config(eventTypeName="NO_SUCH"), "eventTypeName"),
        (
            config(matchers=[{"fieldName": "HOSTNAME", "operator": "REGEX", "value": "(a+)+"}]),
            "matchers[0].value",
        ),
        (config(bogus=1), "bogus"),
    ],
)
def test_wrong_bodies_are_400_and_keep_nothing(tenants: Tenants, sent: dict[str, Any], field: str) -> None:
    with tenants.srv.client(tenants.b) as api:
        before = api.get(BASE).json()["totalCount"]
        r = api.post(BASE, json=sent)
        assert r.status_code == 400 and field in r.text, r.text
        assert api.get(BASE).json()["totalCount"] == before
        malformed_bodies_are_4xx(api, BASE)


def test_a_project_configuration_refuses_the_global_fields(tenants: Tenants) -> None:
    with tenants.srv.client(tenants.b) as api:
        r = api.post(f"/groups/{tenants.b_group}/alertConfigs", json=config())
        assert r.status_code == 400 and "forAllGroups" in r.text


def _signature(headers: dict[str, str], raw: bytes) -> bool:
    want = base64.b64encode(hmac.new(SECRET.encode(), raw, hashlib.sha1).digest()).decode()
    return hmac.compare_digest(headers.get("X-MMS-Signature", ""), want)


def test_a_covered_alert_reaches_the_global_webhook_signed_and_others_do_not(tenants: Tenants) -> None:
    receiver = Receiver(failures=1)  # the first attempt fails: the outbox retries it
    try:
        hook = {"typeName": "WEBHOOK", "webhookUrl": receiver.url, "webhookSecret": SECRET}
        rs0 = [{"fieldName": "REPLICA_SET_NAME", "operator": "EQUALS", "value": "rs0"}]
        body = config(
            eventTypeName="BACKUP_SNAPSHOT_MISSED", enabled=True, matchers=rs0, notifications=[hook]
        )
        with tenants.srv.client(tenants.b) as api:
            made = api.post(BASE, json=body).json()
        alerts = raiser(tenants.srv)
        alerts.raise_alert(tenants.a_group, "BACKUP_SNAPSHOT_MISSED", "a:rs0", "A's", replicaSetName="rs0")
        alerts.raise_alert(tenants.b_group, "BACKUP_SNAPSHOT_MISSED", "b:rs1", "rs1", replicaSetName="rs1")
        alerts.raise_alert(tenants.b_group, "BACKUP_PITR_WINDOW_GAP", "b:gap", "gap", replicaSetName="rs0")
        covered = alerts.raise_alert(
            tenants.b_group, "BACKUP_SNAPSHOT_MISSED", "b:rs0", "B's", replicaSetName="rs0"
        )
        wait_for(lambda: receiver.received, 30, interval=0.1, what="the covered alert at the webhook")
        assert [a["id"] for a in receiver.received] == [covered["id"]] and receiver.attempts == 2
        headers, raw = receiver.signed[0]
        assert headers["X-MMS-Event"] == "alert.open" and _signature(headers, raw)
        with tenants.srv.client(tenants.b) as api:
            listed = api.get(f"{BASE}/{made['id']}/alerts").json()["results"]
            assert [a["id"] for a in listed] == [covered["id"]]
        alerts.resolve(tenants.b_group, "b:rs0")
        wait_for(lambda: len(receiver.received) == 2, 30, interval=0.1, what="the closing at the webhook")
        headers, raw = receiver.signed[1]
        assert headers["X-MMS-Event"] == "alert.close" and _signature(headers, raw)
        assert receiver.received[1]["notification"] == "CLOSED"
    finally:
        receiver.close()
