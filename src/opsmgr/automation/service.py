"""The automation side of the application database: each project's automation config and what its agents
report.

Owns the collections ``automation_configs`` (one document per project: the config with its secrets encrypted
by gen.key, and its ``version``) and ``agent_status`` (one document per project and agent hostname). Records
intent (a new goal config) and observations (agent status); agents act on them. Builds the
``automationStatus`` view in Ops Manager's shape (``hosts`` come from :mod:`opsmgr.automation.hosts`); both
judge a report's freshness by the poll interval the server tells agents and from the instant this service
was built (the server's start: reports restored with the application database are not news).
May import ``opsmgr.errors``, ``opsmgr.store`` and ``opsmgr.automation``; the rolling-maintenance
transition rules come in as a callable from the composition root, since maintenance itself reads automation
configs.

The config document also keeps ``hostnames``: every host a process of the project's config has lived on at
any version this database has seen, which is who may speak for the project as its agent.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from typing import Any

from opsmgr.automation.config import empty_config, hostnames, same_content, validate

# The public API shows configs with Ops Manager's defaults filled and reads the function from here.
from opsmgr.automation.defaults import with_defaults as with_defaults
from opsmgr.automation.hosts import Freshness, Hearing, first_seen, host_views, reported_at
from opsmgr.automation.measurements import Measurements
from opsmgr.automation.records import processes
from opsmgr.automation.secrets import map_secrets
from opsmgr.automation.status import StatusReport
from opsmgr.errors import Conflict
from opsmgr.store.engine import Store, Txn

# Called inside the transaction of a public config change that differs: (txn, group id, old, new, version).
ConfigChangeHook = Callable[[Txn, str, dict[str, Any], dict[str, Any], int], object]
# Refuses (raises an ``opsmgr.errors`` error) a new config that cannot be reached safely from the current one.
TransitionCheck = Callable[[Mapping[str, Any], Mapping[str, Any]], None]

CONFIGS = "automation_configs"
# The change a new goal config announces (Txn.notify), keyed by project id: servers cache goal versions.
CONFIG_CHANGED = "automation_config"
AGENT_STATUS = "agent_status"


def status_id(group_id: str, hostname: str) -> str:
    return f"{group_id}:{hostname}"


class ConfigVersionConflict(Conflict):
    error_code = "AUTOMATION_CONFIG_VERSION_CONFLICT"


class AutomationService:
    def __init__(
        self,
        store: Store,
        encrypt: Callable[[str], str],
        decrypt: Callable[[str], str],
        *,
        validate_transition: TransitionCheck,
        poll_interval_s: float = 10.0,
    ) -> None:
        self.store = store
        self.poll_interval_s = poll_interval_s
        self.started_at_ms = int(time.time() * 1000)
        self._validate_transition = validate_transition
        self._encrypt = encrypt
        self._decrypt = decrypt
        self.on_config_change: list[ConfigChangeHook] = []
        # Extra sections of automationStatus (e.g. "maintenance"), each a function of the project id.
        self.status_sections: dict[str, Callable[[str], Any]] = {}
        self.measurements = Measurements(store)

    def _stored(self, group_id: str) -> dict[str, Any]:
        doc = self.store.get(CONFIGS, group_id)
        return doc if doc is not None else {"_id": group_id, "config": empty_config(), "version": 0}

    def version(self, group_id: str) -> int:
        return int(self._stored(group_id)["version"])

    def config(self, group_id: str) -> dict[str, Any]:
        """The current goal config with its secrets in the clear and its ``version``."""
        doc = self._stored(group_id)
        config = map_secrets(copy.deepcopy(doc["config"]), self._decrypt)
        config["version"] = doc["version"]
        return config

    def put_config(
        self,
        group_id: str,
        body: Any,
        *,
        min_version: int | None = None,
        allow_unique_indexes: bool = False,
        check_transition: bool = True,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """Replace the goal config; ``version`` goes up by one only when the content differs.

        ``min_version`` lets Restoration Mode write a config whose version is at least an agent's.
        ``check_transition=False`` skips the rolling-maintenance transition rules: Restoration Mode adopts a
        config agents already run, which is no step the maintenance procedure has to take.
        ``expected_version``: a compare-and-set, refused (:class:`ConfigVersionConflict`) when the stored
        version is another, so an edit made from a config read earlier never loses a change made since.
        """
        with self.store.tx() as t:
            return self.write_config(
                t,
                group_id,
                body,
                min_version=min_version,
                allow_unique_indexes=allow_unique_indexes,
                check_transition=check_transition,
                expected_version=expected_version,
            )

    def write_config(
        self,
        t: Txn,
        group_id: str,
        body: Any,
        *,
        min_version: int | None = None,
        allow_unique_indexes: bool = False,
        check_transition: bool = True,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """:meth:`put_config` written by the caller's transaction ``t``, so that the change commits with what
        it is part of (a restore job disabling its target's processes)."""
        doc = t.get(CONFIGS, group_id) or {"_id": group_id, "config": empty_config(), "version": 0}
        if expected_version is not None and int(doc["version"]) != expected_version:
            raise ConfigVersionConflict(
                f"the automation config of {group_id} is at version {doc['version']}, not "
                f"{expected_version}: it changed meanwhile",
                version=int(doc["version"]),
            )
        current = map_secrets(copy.deepcopy(doc["config"]), self._decrypt)
        new = validate(body, current=current, allow_unique_indexes=allow_unique_indexes)
        if check_transition:
            self._validate_transition(current, new)
        new.pop("version", None)
        version = int(doc["version"])
        if not same_content(current, new) or (min_version is not None and version < min_version):
            version = max(version + 1, min_version or 0)
            t.put(
                CONFIGS,
                {
                    "_id": group_id,
                    "config": map_secrets(copy.deepcopy(new), self._encrypt),
                    "version": version,
                    "updated": int(time.time() * 1000),
                    "hostnames": sorted(_known(doc) | hostnames(new)),
                },
            )
            t.notify(CONFIG_CHANGED, group_id)
            if check_transition:
                for hook in self.on_config_change:
                    hook(t, group_id, current, new, version)
        result = copy.deepcopy(new)
        result["version"] = version
        return result

    def known_hostnames(self, group_id: str) -> frozenset[str]:
        """The hosts whose agents speak for the project: of its config at any version this database has."""
        return frozenset(_known(self._stored(group_id)))

    def record_status(self, group_id: str, hostname: str, report: StatusReport) -> None:
        """Keep an agent's latest report; the caller has checked that the host is the project's."""
        doc = report.stored()
        doc["_id"] = status_id(group_id, hostname)
        doc["groupId"] = group_id
        doc["hostname"] = hostname
        doc["receivedAt"] = int(time.time() * 1000)
        # One transaction: one commit and one take of the writer's lock per report, measurements included.
        with self.store.tx() as t:
            t.put(AGENT_STATUS, doc)
            self.measurements.record_in(t, group_id, report, doc["receivedAt"] / 1000)

    def agent_statuses(self, group_id: str) -> list[dict[str, Any]]:
        return self.store.find_prefix(AGENT_STATUS, status_id(group_id, ""), groupId=group_id)

    def automation_status(self, group_id: str) -> dict[str, Any]:
        """``GET /groups/{id}/automationStatus`` as Ops Manager shapes it."""
        goal = self.config(group_id)
        reported = {p["name"]: (s, p) for s in self.agent_statuses(group_id) for p in s.get("processes", [])}
        heard = self.hearing()
        views = []
        for proc in processes(goal):
            status, entry = reported.get(proc.name, ({}, {}))
            views.append(
                {
                    "name": proc.name,
                    "hostname": proc.hostname,
                    "lastGoalVersionAchieved": entry.get("lastGoalVersionAchieved", -1),
                    "plan": entry.get("plan", []),
                    "currentStep": entry.get("currentStep"),
                    "blockedReason": entry.get("blockedReason"),
                    "errorText": entry.get("errorText"),
                    "agentStatus": status.get("statusSentence"),
                    "lastReport": status.get("receivedAt"),
                    # Its agent has not reported lately (or never): what it says above may be over.
                    "stale": heard.of(status.get("receivedAt")) is Freshness.STALE,
                }
            )
        view: dict[str, Any] = {"goalVersion": goal["version"], "processes": views}
        for key, section in self.status_sections.items():
            view[key] = section(group_id)
        return view

    def hosts(self, group_id: str, cluster_ids: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """``GET /groups/{id}/hosts``: each process as monitoring sees it, from what the agents observe;
        ``cluster_ids``: each replica set's cluster id (backup's clusters: automation cannot read them)."""
        statuses = self.agent_statuses(group_id)
        created = first_seen(self.store, group_id, reported_at(statuses))
        config = self.config(group_id)
        return host_views(
            group_id, config, statuses, created=created, cluster_ids=cluster_ids or {}, heard=self.hearing()
        )

    def hearing(self) -> Hearing:
        """Which agent reports are fresh now."""
        return Hearing(int(time.time() * 1000), self.poll_interval_s, self.started_at_ms)


def _known(doc: dict[str, Any]) -> set[str]:
    # A document written before ``hostnames`` was kept knows the hosts of its current config.
    return set(doc.get("hostnames") or hostnames(doc.get("config") or {}))
