"""Rolling changes registered from config changes: the server's answer to an automation config PUT.

:meth:`Registrar.register` runs inside the transaction of an automation config PUT (a hook of
``AutomationService.put_config``): one rolling change per replica set that needs a roll. If one is already
under way for that set, the change is recomputed from the config it started from and members whose tasks
are unchanged keep their progress; a set the new config drops ends its change. While a unique index build's
member step holds the set, the config's change is queued behind it, begun when the step ends. With
``alert_window_s`` (``mms.maintenance.alertWindowSeconds``), a change registered opens a maintenance window
of its project covering it (``store.maintenance_windows.window_for_change``), a recomputed one extends it.
May import ``opsmgr.automation.records``, ``opsmgr.automation.secrets``, ``opsmgr.store`` and
``opsmgr.maintenance`` modules.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from opsmgr.automation import records
from opsmgr.automation.secrets import map_secrets
from opsmgr.maintenance import changes
from opsmgr.maintenance.changes import active
from opsmgr.maintenance.leases import LEASES, ROLLING
from opsmgr.maintenance.moves import Progress
from opsmgr.maintenance.rolling import RollingChange, rolling_changes
from opsmgr.store.engine import Txn, new_id
from opsmgr.store.maintenance_windows import extend_for_change, open_for_change, window_for_change

log = logging.getLogger(__name__)


class Registrar:
    """Registers the rolling changes of config changes; ``encrypt``/``decrypt`` protect the secrets of the
    config a change started from, as the automation config's own are; ``alert_window_s``: how long the
    maintenance window a change opens lasts (0: none)."""

    def __init__(
        self,
        *,
        encrypt: Callable[[str], str],
        decrypt: Callable[[str], str],
        alert_window_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.encrypt = encrypt
        self.decrypt = decrypt
        self.alert_window_s = alert_window_s
        self.clock = clock

    def register(
        self, t: Txn, group_id: str, old: Mapping[str, Any], new: Mapping[str, Any], version: int
    ) -> list[str]:
        """Record the rolling changes going from ``old`` to ``new`` needs, inside the PUT's transaction
        ``t``; returns the replica sets whose change was registered or recomputed."""
        now = self.clock()
        touched = self._drop_missing(t, group_id, new, version, now)
        for rs_id, fresh in rolling_changes(old, new).items():
            doc = t.get(LEASES, changes.doc_id(group_id, rs_id)) or changes.blank(group_id, rs_id)
            if active(doc) and changes.owner(doc) != ROLLING:
                self._queue(doc, old, new, rs_id, version, now)
            elif active(doc):
                if not self._recompute(doc, new, rs_id, version, now):
                    superseded = f"version {version} needs no rolling restart any more: superseded"
                    changes.end(t, doc, now, superseded)
                    t.put(LEASES, doc)
                    touched.append(rs_id)
                    continue
                self._window(t, doc, version, now, opens=False)
            elif fresh.needs_roll:
                started = map_secrets(copy.deepcopy(dict(old)), self.encrypt)
                changes.begin(doc, fresh, started, version, now)
                log.info("rolling change of %s registered for version %s: %s", rs_id, version, fresh.reasons)
                self._window(t, doc, version, now, opens=True)
            else:
                continue
            doc["updatedAt"] = now
            t.put(LEASES, doc)
            touched.append(rs_id)
        return touched

    def _window(self, t: Txn, doc: Mapping[str, Any], version: int, now: float, *, opens: bool) -> None:
        """Open the maintenance window of the change under way in ``doc`` (``opens``), or extend it."""
        change = RollingChange.from_json(doc["change"])
        group_id, change_id = str(doc["groupId"]), str(doc["changeId"])
        spec = window_for_change(change.rs_id, change_id, version, change.reasons, now, self.alert_window_s)
        if spec is not None and opens:
            open_for_change(t, group_id, change_id, spec, now)
        elif spec is not None:
            extend_for_change(t, group_id, change_id, spec.end, now)

    @staticmethod
    def _drop_missing(t: Txn, group_id: str, new: Mapping[str, Any], version: int, now: float) -> list[str]:
        """End the changes of the sets ``new`` no longer has; returns those sets."""
        sets = {rs.id for rs in records.replica_sets(new)}
        dropped = []
        for doc in t.find(LEASES, groupId=group_id):
            if doc["rsId"] not in sets and active(doc):
                doc["queued"] = None
                dropped_by = f"version {version} no longer has replica set {doc['rsId']}: dropped"
                changes.end(t, doc, now, dropped_by)
                t.put(LEASES, doc)
                dropped.append(doc["rsId"])
        return dropped

    def _recompute(
        self, doc: dict[str, Any], new: Mapping[str, Any], rs_id: str, version: int, now: float
    ) -> bool:
        """Recompute the change under way in ``doc`` from the config it started from to ``new``, keeping the
        members whose tasks did not change done; False when nothing needs a roll any more."""
        start = map_secrets(copy.deepcopy(doc["startedFrom"]), self.decrypt)
        change = rolling_changes(start, new).get(rs_id)
        if change is None or not change.needs_roll:
            return False
        before = RollingChange.from_json(doc["change"])
        progress = Progress.from_json(doc["progress"])
        kept = tuple(m for m in progress.done if change.tasks.get(m) == before.tasks.get(m))
        doc.update(
            change=change.to_json(),
            progress=replace(progress, done=kept).to_json(),
            goalVersion=version,
            revision=int(doc.get("revision", 0)) + 1,
        )
        log.info("rolling change of %s recomputed for version %s", rs_id, version)
        return True

    def _queue(
        self,
        doc: dict[str, Any],
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        rs_id: str,
        version: int,
        now: float,
    ) -> None:
        """A config's change of a set whose build step is under way waits for the step to end; a later PUT
        recomputes it from the config it first started from (None once nothing needs a roll)."""
        queued = doc.get("queued")
        started = queued["startedFrom"] if queued else map_secrets(copy.deepcopy(dict(old)), self.encrypt)
        change = rolling_changes(map_secrets(copy.deepcopy(started), self.decrypt), new).get(rs_id)
        if change is None or not change.needs_roll:
            doc["queued"] = None
            return
        doc["queued"] = {
            "changeId": queued["changeId"] if queued else new_id(),
            "change": change.to_json(),
            "startedFrom": started,
            "goalVersion": version,
            "createdAt": queued["createdAt"] if queued else now,
        }
        log.info("rolling change of %s for version %s queued behind %s", rs_id, version, changes.purpose(doc))
