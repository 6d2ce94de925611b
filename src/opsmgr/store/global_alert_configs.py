"""Global alert configurations: Ops Manager's ``globalAlertConfigs``, configurations that apply to many
projects at once, kept in the application database (collection ``global_alert_configs``).

A global configuration has the fields of a project's (``store.alert_configs``, the same validation) without
``groupId``, plus ``forAllGroups`` (required), ``groupIds`` (the projects it applies to when not for all;
at least one then) and ``tags`` (kept). Unlike a project's, it is disabled unless the body enables it, as
in Ops Manager.

Tenancy: opsmgr has no installation-wide administrator role, so a global configuration belongs to the
organizations its creator owns (``orgIds``, fixed at creation). It applies only to those organizations'
projects (all of them with ``forAllGroups``, else the ``groupIds`` named, each of which must be one of
them, and only while it is: a project deleted and adopted under its id by another organization is not
reached; one deleted since is dropped when the configuration is next replaced), is seen only by a caller
holding a role on each of them and changed only by one owning each of them, so no key routes another
tenant's alerts to itself.

May import ``opsmgr.errors`` and ``opsmgr.store``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opsmgr.errors import Forbidden, InvalidInput, NotFound
from opsmgr.store import alert_rules
from opsmgr.store.alert_configs import (
    GLOBAL_CONFIGS,
    GROUPS,
    Cipher,
    applies,
    flag,
    iso,
    listed,
    not_found,
    sealed,
    shown_notifications,
    text,
    validated,
)
from opsmgr.store.engine import Store, new_id

log = logging.getLogger(__name__)


def belongs(doc: Mapping[str, Any], orgs: frozenset[str]) -> bool:
    """Whether each organization the configuration belongs to is one of ``orgs``: one of no organization
    (never made so, but it would be everyone's) is nobody's."""
    return bool(doc["orgIds"]) and set(doc["orgIds"]) <= orgs


def public_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    shown = {
        "id": doc["_id"],
        "eventTypeName": doc["eventTypeName"],
        "typeName": doc["typeName"],
        "enabled": doc["enabled"],
        "forAllGroups": doc["forAllGroups"],
        "groupIds": list(doc["groupIds"]),
        "tags": list(doc["tags"]),
        "matchers": list(doc["matchers"]),
        "notifications": shown_notifications(doc["notifications"]),
        "created": doc["created"],
        "updated": doc["updated"],
    }
    return shown | {k: doc[k] for k in ("metricThreshold", "threshold") if doc.get(k) is not None}


class GlobalAlertConfigs:
    """The ``globalAlertConfigs`` of the organizations a caller holds roles on (``readable``: any role,
    ``owned``: ORG_OWNER)."""

    def __init__(
        self, store: Store, *, encrypt: Cipher = lambda s: s, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.encrypt = encrypt
        self.clock = clock

    def _doc(self, config_id: str, orgs: frozenset[str]) -> dict[str, Any]:
        doc = self.store.get(GLOBAL_CONFIGS, config_id)
        if doc is None or not belongs(doc, orgs):
            raise not_found(config_id, "")
        return doc

    def _scope(
        self, body: Mapping[str, Any], owned: frozenset[str], named: Sequence[str] = ()
    ) -> dict[str, Any]:
        """``forAllGroups``, ``groupIds`` and ``tags`` of a body, each project one of ``owned``'s; one the
        configuration already ``named`` that was deleted since is dropped (a GET-then-PUT round trip)."""
        for_all = flag(body.get("forAllGroups"), "forAllGroups")
        ids = []
        for group_id in [text(g, "groupIds") for g in listed(body.get("groupIds") or [], "groupIds")]:
            group = self.store.get(GROUPS, group_id)
            if group is None and group_id in named:
                continue
            if group is None or group.get("orgId") not in owned:
                raise NotFound(f"No group with ID {group_id} exists.", error_code="GROUP_NOT_FOUND")
            ids.append(group_id)
        if not for_all and not ids:
            raise InvalidInput(
                "groupIds must name at least one project when forAllGroups is false", field="groupIds"
            )
        tags = [text(tag, "tags") for tag in listed(body.get("tags") or [], "tags")]
        return {"forAllGroups": for_all, "groupIds": [] if for_all else ids, "tags": tags}

    def listed(self, readable: frozenset[str]) -> list[dict[str, Any]]:
        docs = [d for d in self.store.find(GLOBAL_CONFIGS) if belongs(d, readable)]
        return [public_view(d) for d in sorted(docs, key=lambda d: (d["created"], d["_id"]))]

    def get(self, config_id: str, readable: frozenset[str]) -> dict[str, Any]:
        return public_view(self._doc(config_id, readable))

    def create(self, body: Mapping[str, Any], owned: frozenset[str]) -> dict[str, Any]:
        if not owned:  # a configuration of no organization would be everyone's
            raise Forbidden("a global alert configuration needs ORG_OWNER on an organization")
        fields = validated(body, enabled_by_default=False) | self._scope(body, owned)
        fields["notifications"] = sealed(fields["notifications"], [], self.encrypt)
        now = iso(self.clock())
        doc = {"_id": new_id(), "orgIds": sorted(owned), "created": now, "updated": now, **fields}
        self.store.insert(GLOBAL_CONFIGS, doc)
        log.info("global alert configuration %s (%s) created", doc["_id"], fields["eventTypeName"])
        return public_view(doc)

    def replace(self, config_id: str, body: Mapping[str, Any], owned: frozenset[str]) -> dict[str, Any]:
        fields = validated(body, enabled_by_default=False)
        with self.store.tx() as t:
            doc = t.get(GLOBAL_CONFIGS, config_id)
            if doc is None or not belongs(doc, owned):
                raise not_found(config_id, "")
            fields |= self._scope(body, frozenset(doc["orgIds"]), doc["groupIds"])
            fields["notifications"] = sealed(fields["notifications"], doc["notifications"], self.encrypt)
            doc.update(updated=iso(self.clock()), **fields)
            t.put(GLOBAL_CONFIGS, doc)
        return public_view(doc)

    def set_enabled(self, config_id: str, enabled: object, owned: frozenset[str]) -> dict[str, Any]:
        enabled = flag(enabled, "enabled")
        self._doc(config_id, owned)
        doc = self.store.update(GLOBAL_CONFIGS, config_id, {"enabled": enabled, "updated": iso(self.clock())})
        if doc is None:
            raise not_found(config_id, "")
        return public_view(doc)

    def delete(self, config_id: str, owned: frozenset[str]) -> None:
        self._doc(config_id, owned)
        self.store.delete(GLOBAL_CONFIGS, config_id)
        log.info("global alert configuration %s deleted", config_id)

    def open_alerts(
        self, config_id: str, readable: frozenset[str], alerts: Sequence[Mapping[str, Any]]
    ) -> list[Any]:
        """Of the open ``alerts`` (of any project), those of the projects it applies to that it covers."""
        doc = self._doc(config_id, readable)
        orgs = {g["_id"]: g.get("orgId") for g in self.store.find(GROUPS)}
        return [
            a
            for a in alerts
            if applies(doc, str(a.get("groupId")), orgs.get(str(a.get("groupId"))))
            and alert_rules.covers(doc, a)
        ]
