"""Maintenance windows: Ops Manager's ``maintenanceWindows``, periods during which a project's alert
notifications of the named alert types are turned off, kept in the application database (collection
``maintenance_windows``).

A window is ``{id, groupId, created, updated, startDate, endDate, alertTypeNames, description}`` (ISO 8601
dates in UTC; ``description`` only when one was given), as Ops Manager shows it. It is **open** from
``startDate`` (inclusive) to ``endDate`` (exclusive); as in Ops Manager, a window whose end has passed is no
longer listed, read, changed or deleted (404). :func:`validated` checks a body sent to create or change one:
``alertTypeNames`` a non-empty list of Ops Manager's types (:class:`AlertType`), ``startDate`` before
``endDate``, ``endDate`` in the future, ``description`` at most :data:`MAX_DESCRIPTION` characters.

While a window is open the alerts of its types still open and close as usual (the API lists them), but their
notifications are not sent: ``opsmgr.alerts`` asks :func:`muting` in the transaction that records one (the
notification is kept, marked suppressed).
:func:`alert_type_of` says which type an alert is: its ``typeName`` when it carries one, else its event
type's (Ops Manager's names where it has them). ``MAINTENANCE_MEMBER_FAILED`` has none, so no window mutes
it: it is the report on the maintenance a window is opened for, and a stuck rolling change must be heard.

A rolling change can open a window covering itself (the ``mms.maintenance.alertWindowSeconds`` key):
:func:`window_for_change` decides it (pure), :func:`open_for_change` keeps it in the change's
transaction, :func:`extend_for_change` extends it when the change is recomputed and
:func:`close_for_change` ends it when the change ends.

May import ``opsmgr.errors`` and ``opsmgr.store``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from opsmgr.errors import InvalidInput, NotFound
from opsmgr.store.engine import Store, Txn, new_id

log = logging.getLogger(__name__)

WINDOWS = "maintenance_windows"
MAX_DESCRIPTION = 250  # this server's bound; Ops Manager states none
MAX_DATE_LEN = 64
FIELDS = ("alertTypeNames", "startDate", "endDate", "description")


class AlertType(StrEnum):
    """The alert types a window silences, as Ops Manager lists them."""

    AGENT = "AGENT"
    BACKUP = "BACKUP"
    CLUSTER = "CLUSTER"
    HOST = "HOST"
    REPLICA_SET = "REPLICA_SET"


# The types a rolling change's own window silences: its restarts take hosts down, elect new primaries
# and restart the agents' processes.
ROLLING_TYPES = (AlertType.HOST, AlertType.REPLICA_SET, AlertType.AGENT)

# Event types whose alert type their name does not say (see :func:`alert_type_of`).
_EVENT_TYPES: dict[str, AlertType | None] = {
    "RESYNC_REQUIRED": AlertType.BACKUP,
    "OPLOG_BEHIND": AlertType.BACKUP,
    "RESTORATION_MODE_AGENT_REFUSED": AlertType.AGENT,
    "MAINTENANCE_MEMBER_FAILED": None,
}


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_date(value: object, field: str) -> float:
    """An ISO 8601 date and time (UTC when it names no offset), as seconds since the epoch."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_DATE_LEN:
        raise InvalidInput(f"{field} must be an ISO 8601 date and time", field=field)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{field} {value!r} is not an ISO 8601 date and time", field=field) from None
    return (parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed).timestamp()


def parse_alert_types(value: object) -> list[str]:
    """A non-empty list of :class:`AlertType` names, each kept once, in the order given."""
    allowed = ", ".join(t.value for t in AlertType)
    if not isinstance(value, list) or not value or len(value) > 4 * len(AlertType):
        raise InvalidInput(f"alertTypeNames must be a non-empty list of {allowed}", field="alertTypeNames")
    wrong = [v for v in value if not isinstance(v, str) or v not in AlertType.__members__]
    if wrong:
        raise InvalidInput(
            f"alertTypeNames: {str(wrong[0])[:40]!r} is not one of {allowed}", field="alertTypeNames"
        )
    return list(dict.fromkeys(value))


def parse_description(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise InvalidInput(
            f"description must be a string of at most {MAX_DESCRIPTION} characters", field="description"
        )
    return value or None


@dataclass(frozen=True)
class WindowSpec:
    """What a window is, checked: when it opens and ends (seconds), what it silences, why."""

    start: float
    end: float
    alert_types: tuple[str, ...]
    description: str | None = None

    def fields(self) -> dict[str, Any]:
        """The stored fields (``startAt``/``endAt``, seconds, are what :func:`is_open` compares)."""
        return {
            "startDate": iso(self.start),
            "endDate": iso(self.end),
            "alertTypeNames": list(self.alert_types),
            "description": self.description,
            "startAt": self.start,
            "endAt": self.end,
        }


# Ops Manager's error code for each field a new window lacks.
MISSING = {
    "startDate": "MISSING_MAINTENANCE_WINDOW_START_DATE",
    "endDate": "MISSING_MAINTENANCE_WINDOW_END_DATE",
    "alertTypeNames": "MISSING_MAINTENANCE_WINDOW_ALERT_TYPE_NAME",
}


def validated(body: Mapping[str, Any], current: Mapping[str, Any] | None, now: float) -> WindowSpec:
    """The window ``body`` asks for: all of its fields to create one (``current`` None), at least one to
    change ``current``, whose other fields stay."""
    if current is None:
        missing = [f for f in FIELDS[:3] if body.get(f) is None]
        if missing:
            raise InvalidInput(f"{missing[0]} is required", field=missing[0], error_code=MISSING[missing[0]])
    elif not any(f in body for f in FIELDS):
        raise InvalidInput("give at least one of " + ", ".join(FIELDS), field=FIELDS[0])
    old = current or {}
    types = body["alertTypeNames"] if "alertTypeNames" in body else old.get("alertTypeNames")
    spec = WindowSpec(
        start=parse_date(body["startDate"], "startDate") if "startDate" in body else float(old["startAt"]),
        end=parse_date(body["endDate"], "endDate") if "endDate" in body else float(old["endAt"]),
        alert_types=tuple(parse_alert_types(types)),
        description=parse_description(
            body["description"] if "description" in body else old.get("description")
        ),
    )
    if spec.end <= spec.start:
        raise InvalidInput(
            f"endDate {iso(spec.end)} must be after startDate {iso(spec.start)}",
            field="endDate",
            error_code="MAINTENANCE_WINDOW_START_DATE_AFTER_END_DATE",
        )
    if spec.end <= now:
        raise InvalidInput(f"endDate {iso(spec.end)} is not in the future", field="endDate")
    return spec


def public_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The window as Ops Manager shows it (``description`` only when there is one)."""
    shown = {
        "id": doc["_id"],
        "groupId": doc["groupId"],
        "created": doc["created"],
        "updated": doc["updated"],
        "startDate": doc["startDate"],
        "endDate": doc["endDate"],
        "alertTypeNames": list(doc["alertTypeNames"]),
    }
    return shown | ({"description": doc["description"]} if doc.get("description") else {})


def is_open(doc: Mapping[str, Any], now: float) -> bool:
    return float(doc["startAt"]) <= now < float(doc["endAt"])


def alert_type_of(event_type: str, type_name: object = None) -> str | None:
    """The alert type of an alert: its ``typeName`` when it is one, else its event type's."""
    if isinstance(type_name, str) and type_name in AlertType.__members__:
        return type_name
    if event_type in _EVENT_TYPES:
        found = _EVENT_TYPES[event_type]
        return None if found is None else found.value
    if event_type.endswith("_AGENT_DOWN"):
        return AlertType.AGENT.value
    prefix = next((t for t in AlertType if event_type.startswith(t.value + "_")), None)
    return None if prefix is None else prefix.value


def muting(t: Txn, group_id: str, event_type: str, type_name: object, now: float) -> str | None:
    """The id of an open window of the project that silences alerts of this kind at ``now``, or None."""
    kind = alert_type_of(event_type, type_name)
    if kind is None:
        return None
    for doc in sorted(t.find(WINDOWS, groupId=group_id), key=lambda d: str(d["_id"])):
        if is_open(doc, now) and kind in doc["alertTypeNames"]:
            return str(doc["_id"])
    return None


def window_for_change(
    rs_id: str, change_id: str, version: int, reasons: Sequence[str], now: float, duration_s: float
) -> WindowSpec | None:
    """The window a rolling change of ``rs_id`` opens when it begins: from now for ``duration_s``
    (None: the policy opens none), silencing :data:`ROLLING_TYPES`, its description naming the change."""
    if duration_s <= 0:
        return None
    why = "; ".join(reasons)
    text = f"Rolling change {change_id} of replica set {rs_id} (automation config version {version}): {why}"
    cut = text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."
    return WindowSpec(now, now + duration_s, tuple(t.value for t in ROLLING_TYPES), cut)


def _new_doc(group_id: str, spec: WindowSpec, now: float, **extra: str) -> dict[str, Any]:
    doc = {"_id": new_id(), "groupId": group_id, "created": iso(now), "updated": iso(now), **extra}
    return doc | spec.fields()


def _change_windows(t: Txn, group_id: str, change_id: str) -> list[dict[str, Any]]:
    return t.find(WINDOWS, groupId=group_id, changeId=change_id)


def open_for_change(t: Txn, group_id: str, change_id: str, spec: WindowSpec, now: float) -> dict[str, Any]:
    """Open the window of a rolling change that begins, in its transaction ``t``."""
    doc = _new_doc(group_id, spec, now, changeId=change_id)
    t.insert(WINDOWS, doc)
    log.info("maintenance window %s opened in project %s for change %s", doc["_id"], group_id, change_id)
    return doc


def extend_for_change(t: Txn, group_id: str, change_id: str, end: float, now: float) -> None:
    """A recomputed rolling change's window ends at ``end`` if that is later (never shortened, nor reopened
    once the operator ended or deleted it)."""
    for doc in _change_windows(t, group_id, change_id):
        if now < float(doc["endAt"]) < end:
            doc.update(endDate=iso(end), endAt=end, updated=iso(now))
            t.put(WINDOWS, doc)


def close_for_change(t: Txn, group_id: str, change_id: str, now: float) -> None:
    """End the window of a rolling change that ended: its alerts are heard again."""
    for doc in _change_windows(t, group_id, change_id):
        if float(doc["endAt"]) > now:
            doc.update(endDate=iso(now), endAt=now, updated=iso(now))
            t.put(WINDOWS, doc)
            log.info("maintenance window %s of rolling change %s closed", doc["_id"], change_id)


class MaintenanceWindows:
    """A project's maintenance windows: what the ``maintenanceWindows`` routes do."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def _current(self, t: Txn, group_id: str, window_id: str, now: float) -> dict[str, Any]:
        doc = t.get(WINDOWS, window_id)
        if doc is None or doc.get("groupId") != group_id or float(doc["endAt"]) <= now:
            raise NotFound(
                f"No maintenance window with ID {window_id} exists in group {group_id}.",
                error_code="MAINTENANCE_WINDOW_NOT_FOUND",
            )
        return doc

    def of_group(self, group_id: str) -> list[dict[str, Any]]:
        """The project's windows whose end is in the future, by start."""
        now = self.clock()
        found = [d for d in self.store.find(WINDOWS, groupId=group_id) if float(d["endAt"]) > now]
        return [public_view(d) for d in sorted(found, key=lambda d: (d["startAt"], d["_id"]))]

    def get(self, group_id: str, window_id: str) -> dict[str, Any]:
        with self.store.read() as t:
            return public_view(self._current(t, group_id, window_id, self.clock()))

    def create(self, group_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        now = self.clock()
        spec = validated(body, None, now)
        doc = _new_doc(group_id, spec, now)
        self.store.insert(WINDOWS, doc)
        log.info("maintenance window %s created in project %s: %s", doc["_id"], group_id, spec.alert_types)
        return public_view(doc)

    def update(self, group_id: str, window_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        now = self.clock()
        with self.store.tx() as t:
            doc = self._current(t, group_id, window_id, now)
            spec = validated(body, doc, now)
            doc.update(updated=iso(now), **spec.fields())
            t.put(WINDOWS, doc)
        return public_view(doc)

    def delete(self, group_id: str, window_id: str) -> None:
        with self.store.tx() as t:
            self._current(t, group_id, window_id, self.clock())
            t.delete(WINDOWS, window_id)
        log.info("maintenance window %s of project %s deleted", window_id, group_id)
