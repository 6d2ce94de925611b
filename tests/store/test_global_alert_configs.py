"""Global alert configurations' tenancy on a real SQLite store: a configuration reaches only the projects of
the organizations it belongs to, whatever became of the projects it named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsmgr.errors import NotFound
from opsmgr.store.alert_configs import GLOBAL_CONFIGS, GROUPS, AlertConfigs, covering
from opsmgr.store.alert_rules import DEFAULT_RULES, Rule
from opsmgr.store.crypto import TOKEN_PREFIX
from opsmgr.store.engine import Store, Txn, new_id
from opsmgr.store.global_alert_configs import GlobalAlertConfigs

HOOK = "http://127.0.0.1:9/org-a"
ORG_A, ORG_B = new_id(), new_id()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'app.db'}")


def body(**scope: Any) -> dict[str, Any]:
    notification = {"typeName": "WEBHOOK", "webhookUrl": HOOK}
    return {"eventTypeName": "HOST_DOWN", "enabled": True, "notifications": [notification], **scope}


def down(group_id: str) -> dict[str, Any]:
    return {"groupId": group_id, "eventTypeName": "HOST_DOWN", "status": "OPEN", "hostnameAndPort": "h:1"}


def test_a_named_project_that_now_belongs_to_another_organization_is_not_reached(store: Store) -> None:
    """A project deleted and adopted under its id by another organization (adoptedGroups takes the id the
    agents hold) keeps its id: org A's configuration naming it must not reach org B's alerts."""
    group_id = new_id()
    store.insert(GROUPS, {"_id": group_id, "name": "p", "orgId": ORG_A})
    configs = GlobalAlertConfigs(store)
    made = configs.create(body(forAllGroups=False, groupIds=[group_id]), frozenset({ORG_A}))
    with store.read() as t:
        assert covering(t, down(group_id)) == [(HOOK, None)]
    store.delete(GROUPS, group_id)
    store.insert(GROUPS, {"_id": group_id, "name": "p", "orgId": ORG_B})
    with store.read() as t:
        assert covering(t, down(group_id)) == [], "org B's alert would go to org A's webhook"
    assert configs.open_alerts(made["id"], frozenset({ORG_A}), [down(group_id)]) == []


def test_a_configuration_of_no_organization_is_nobodys(store: Store) -> None:
    group_id = new_id()
    store.insert(GROUPS, {"_id": group_id, "name": "p", "orgId": ORG_B})
    configs = GlobalAlertConfigs(store)
    made = configs.create(body(forAllGroups=False, groupIds=[group_id]), frozenset({ORG_B}))
    store.update(GLOBAL_CONFIGS, made["id"], {"orgIds": []})
    stranger = frozenset({ORG_A})
    assert configs.listed(stranger) == []
    with pytest.raises(NotFound):
        configs.get(made["id"], stranger)
    with pytest.raises(NotFound):
        configs.replace(made["id"], body(forAllGroups=True), stranger)
    with pytest.raises(NotFound):
        configs.delete(made["id"], stranger)
    with store.read() as t:
        assert covering(t, down(group_id)) == []


def test_every_projects_rules_come_from_one_read(store: Store) -> None:
    """The deployment alerts' pass over 1,000 projects reads the configurations once, not once a project."""
    mine, theirs = new_id(), new_id()
    store.insert(GROUPS, {"_id": mine, "name": "a", "orgId": ORG_A})
    store.insert(GROUPS, {"_id": theirs, "name": "b", "orgId": ORG_B})
    own = AlertConfigs(store)
    own.create(mine, {"eventTypeName": "NO_PRIMARY", "notifications": [{"typeName": "GROUP"}]})
    GlobalAlertConfigs(store).create(body(forAllGroups=True), frozenset({ORG_A}))
    every = own.rules_by_group()
    assert set(every) == {mine, theirs}
    assert every[mine] == [Rule("NO_PRIMARY"), Rule("HOST_DOWN")]
    assert every[theirs] == list(DEFAULT_RULES)


def test_a_get_then_put_round_trip_survives_a_deleted_project(store: Store) -> None:
    """A 3 a.m. edit of a configuration must not fail because a project it named was deleted since; a
    project it never named must still exist and be one of its organizations'."""
    kept, gone = new_id(), new_id()
    for group_id in (kept, gone):
        store.insert(GROUPS, {"_id": group_id, "name": group_id, "orgId": ORG_A})
    configs = GlobalAlertConfigs(store)
    owner = frozenset({ORG_A})
    made = configs.create(body(forAllGroups=False, groupIds=[kept, gone]), owner)
    store.delete(GROUPS, gone)
    shown = configs.get(made["id"], owner)
    assert configs.replace(made["id"], shown, owner)["groupIds"] == [kept]
    with pytest.raises(NotFound):
        configs.replace(made["id"], shown | {"groupIds": [kept, new_id()]}, owner)


def test_an_alerts_webhooks_are_read_from_its_projects_configurations_only(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside each alert's transaction (the writer lock held): reading every project's configurations made
    an alert cost 50 ms at 3,000 configurations."""
    mine, other = new_id(), new_id()
    own = AlertConfigs(store)
    hook = {"typeName": "WEBHOOK", "webhookUrl": HOOK}
    made = own.create(mine, {"eventTypeName": "HOST_DOWN", "notifications": [hook]})
    theirs = own.create(
        other, {"eventTypeName": "HOST_DOWN", "notifications": [hook | {"webhookUrl": "http://o/"}]}
    )
    scanned: list[str] = []
    find = Txn.find
    monkeypatch.setattr(Txn, "find", lambda self, coll, **eq: scanned.append(coll) or find(self, coll, **eq))
    with store.tx() as t:
        assert covering(t, down(mine)) == [(HOOK, None)]
    assert "alert_configs" not in scanned
    assert own.get(mine, made["id"])["id"] == made["id"]
    assert [c["id"] for c in own.of_group(mine)] == [made["id"]]
    with pytest.raises(NotFound):  # another project's document id, as a configuration id of mine
        own.get(mine, f"{other}:{theirs['id']}")


def test_a_configuration_stored_before_keys_named_the_project_is_rekeyed(store: Store) -> None:
    group_id, config_id = new_id(), new_id()
    hook = {"typeName": "WEBHOOK", "webhookUrl": HOOK}
    fields = {"eventTypeName": "HOST_DOWN", "typeName": "HOST", "enabled": True, "matchers": []}
    legacy = {"_id": config_id, "groupId": group_id, "created": "t", "updated": "t", "notifications": [hook]}
    store.insert("alert_configs", legacy | fields)
    own = AlertConfigs(store)
    assert own.get(group_id, config_id)["id"] == config_id, "read before it is rekeyed"
    assert own.rekey_legacy() == 1 and own.rekey_legacy() == 0
    with store.read() as t:
        assert covering(t, down(group_id)) == [(HOOK, None)]
    assert own.set_enabled(group_id, config_id, False)["enabled"] is False
    own.delete(group_id, config_id)
    assert own.of_group(group_id) == []


def test_a_secret_an_earlier_version_kept_in_the_clear_is_sealed_when_rekeyed(store: Store) -> None:
    """Before secrets were sealed they were stored as sent: the signer's decryption refused them, so the
    webhook gave up on every alert, and the secret lay in the clear in the database."""
    group_id = new_id()
    fields = {"eventTypeName": "HOST_DOWN", "typeName": "HOST", "enabled": True, "matchers": []}
    for config_id, secret in ((new_id(), "in-the-clear"), (new_id(), TOKEN_PREFIX + "sealed")):
        hook = {"typeName": "WEBHOOK", "webhookUrl": f"http://h/{config_id}", "webhookSecret": secret}
        doc = {"_id": config_id, "groupId": group_id, "created": "t", "updated": "t", "notifications": [hook]}
        store.insert("alert_configs", doc | fields)
    AlertConfigs(store, encrypt=lambda s: TOKEN_PREFIX + s).rekey_legacy()
    with store.read() as t:
        secrets = sorted(str(s) for _, s in covering(t, down(group_id)))
    assert secrets == [TOKEN_PREFIX + "in-the-clear", TOKEN_PREFIX + "sealed"]


def test_a_project_owner_cannot_resign_the_organizations_webhook(store: Store) -> None:
    """A project configuration naming the URL of its organization's global one, with a secret of its own:
    the URL is posted once, and signed with the organization's secret (else its receiver would reject the
    organization's own alert as forged)."""
    group_id = new_id()
    store.insert(GROUPS, {"_id": group_id, "name": "p", "orgId": ORG_A})

    def seal(secret: str) -> str:
        return TOKEN_PREFIX + secret

    org_hook = {"typeName": "WEBHOOK", "webhookUrl": HOOK, "webhookSecret": "org"}
    GlobalAlertConfigs(store, encrypt=seal).create(
        body(forAllGroups=True, notifications=[org_hook]), frozenset({ORG_A})
    )
    AlertConfigs(store, encrypt=seal).create(
        group_id, {"eventTypeName": "HOST_DOWN", "notifications": [org_hook | {"webhookSecret": "mine"}]}
    )
    with store.read() as t:
        assert covering(t, down(group_id)) == [(HOOK, TOKEN_PREFIX + "org")]


def test_a_malformed_stored_configuration_does_not_stop_the_rekeying(store: Store) -> None:
    """The deployment alerts' job rekeys on its first pass: a document it cannot read must not fail every
    pass (and so every project's alerting)."""
    group_id, config_id = new_id(), new_id()
    fields = {"eventTypeName": "HOST_DOWN", "typeName": "HOST", "enabled": True, "matchers": []}
    store.insert("alert_configs", {"_id": new_id(), "notifications": "not a list"})
    legacy = {"_id": config_id, "groupId": group_id, "created": "t", "updated": "t", "notifications": []}
    store.insert("alert_configs", legacy | fields)
    own = AlertConfigs(store)
    assert own.rekey_legacy() == 1
    assert own.get(group_id, config_id)["id"] == config_id


def test_malformed_stored_documents_stop_neither_the_pass_nor_an_alert(store: Store) -> None:
    group_id = new_id()
    store.insert(GROUPS, {"_id": group_id, "name": "p", "orgId": ORG_A})
    store.insert("alert_configs", {"_id": new_id(), "eventTypeName": "HOST_DOWN"})
    store.insert(GLOBAL_CONFIGS, {"_id": new_id(), "eventTypeName": "HOST_DOWN", "enabled": True})
    GlobalAlertConfigs(store).create(body(forAllGroups=True), frozenset({ORG_A}))
    assert AlertConfigs(store).rules_by_group()[group_id] == [*DEFAULT_RULES, Rule("HOST_DOWN")]
    with store.read() as t:
        assert covering(t, down(group_id)) == [(HOOK, None)]
