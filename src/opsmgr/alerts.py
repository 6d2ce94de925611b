"""Alerts: what the control plane tells an operator needs attention, kept in the application database, and
their delivery to a webhook.

An alert is identified by its project and a **key** the raiser chooses (``backup:<source>:snapshot-missed``,
``maintenance:<rs>:member-failed``...): raising a condition that is already OPEN refreshes that alert
instead of opening a second one, and resolving the key closes it. Raisers are the periodic loops that see
the condition (backup, maintenance); they call :meth:`AlertService.raise_alert` while it holds and
:meth:`AlertService.resolve` once it clears, so an alert never stays open after its cause is gone.

Every opening and closing puts **notifications** in an outbox (collection ``alert_notifications``) in the
same transaction as the alert, so a crash can delay a webhook call but never lose it: one for the
installation's webhook (``mms.alerts.webhook.url``) and one for each webhook of the alert configurations
that cover the alert (``store.alert_configs.covering``: the project's and the applicable global ones, their
matchers applied). :meth:`deliver` sends the due ones with the caller's ``post`` and retries failures with
exponential backoff, giving up (and saying so in the log and on the notification) after
:data:`MAX_ATTEMPTS`. The webhook receives the alert in its public shape plus ``"notification": "OPEN" |
"CLOSED"``, as Ops Manager's webhook sends the alert JSON. While a maintenance window of the project
silences the alert's type (``store.maintenance_windows``), the notifications are kept SUPPRESSED instead,
naming the window, and never sent: the alert itself opens and closes as usual, as in Ops Manager.
The outbox drops a notification a week after its last attempt (:data:`NOTIFICATION_KEEP_S`): one for the
installation's webhook waits that long for one to be configured.

An operator **acknowledges** an open alert until a future instant (:meth:`AlertService.acknowledge`, the
fields ``acknowledgedUntil``, ``acknowledgementComment`` and ``acknowledgingUsername`` of Ops Manager's
alert), the same rule for the API and the UI.

May import ``opsmgr.errors`` and ``opsmgr.store``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from opsmgr.errors import Conflict, InvalidInput, NotFound
from opsmgr.store.alert_configs import covering
from opsmgr.store.engine import Store, Txn, new_id
from opsmgr.store.job_leases import current_fence
from opsmgr.store.maintenance_windows import muting

log = logging.getLogger(__name__)

ALERTS = "alerts"
NOTIFICATIONS = "alert_notifications"
MAX_ATTEMPTS = 8
FIRST_RETRY_S = 2.0
MAX_RETRY_S = 300.0
CLAIM_S = 60.0  # a notification being posted is another server's again after this (its poster died)
NOTIFICATION_KEEP_S = 7 * 86400  # how long the outbox keeps a notification after its last attempt
MAX_ACK_COMMENT = 200  # Ops Manager's limit on acknowledgementComment


class AlertStatus(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


class DeliveryState(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    GAVE_UP = "GAVE_UP"
    SUPPRESSED = "SUPPRESSED"  # a maintenance window silenced it


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_until(value: object, now: float) -> datetime:
    """``acknowledgedUntil``: an ISO 8601 date and time (UTC when it names no offset) after ``now``."""
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise InvalidInput("acknowledgedUntil must be an ISO 8601 date and time", field="acknowledgedUntil")
    try:
        until = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"acknowledgedUntil {value!r} is not an ISO 8601 date and time", field="acknowledgedUntil"
        ) from None
    until = until.replace(tzinfo=UTC) if until.tzinfo is None else until.astimezone(UTC)
    if until.timestamp() <= now:
        raise InvalidInput(
            f"acknowledgedUntil {iso(until.timestamp())} is not in the future", field="acknowledgedUntil"
        )
    return until


def is_acknowledged(alert: dict[str, Any], now: float) -> bool:
    """Whether the alert's acknowledgement still holds at ``now``."""
    until = alert.get("acknowledgedUntil")
    return isinstance(until, str) and datetime.fromisoformat(until).timestamp() > now


def _claimed_by_lost_lease(note: dict[str, Any], fence: tuple[str, int] | None) -> bool:
    """Whether ``note`` is claimed by an earlier holder of the job this pass runs under (a lower token)."""
    claimed = note.get("claimedUnder")
    if fence is None or not isinstance(claimed, list) or len(claimed) != 2:
        return False
    job, token = claimed
    return bool(job == fence[0] and isinstance(token, int) and token < fence[1])


def retry_delay_s(attempts: int) -> float:
    """Wait before the next attempt after ``attempts`` failed ones: 2, 4, 8 ... seconds, capped."""
    return float(min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** max(0, attempts - 1)))


def public_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The alert as the API and the webhook show it (internal bookkeeping left out). A field without a
    value is left out, as Ops Manager does (``resolved`` until the alert closes, an acknowledgement's)."""
    return {k: v for k, v in doc.items() if k not in ("_id", "key") and v is not None} | {"id": doc["_id"]}


@dataclass(frozen=True)
class Delivery:
    """One notification to send: where, what, and the stored (encrypted) secret that signs it."""

    url: str
    payload: dict[str, Any]
    secret: str | None


class AlertService:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def _open(self, t: Txn, group_id: str, key: str) -> dict[str, Any] | None:
        found = t.find(ALERTS, groupId=group_id, key=key, status=AlertStatus.OPEN.value)
        return found[0] if found else None

    def _notify(self, t: Txn, alert: dict[str, Any], now: float) -> None:
        window = muting(t, alert["groupId"], alert["eventTypeName"], alert.get("typeName"), now)
        if window is not None:
            log.info(
                "alert %s %s: notification suppressed by maintenance window %s",
                alert["_id"],
                alert["status"],
                window,
            )
        payload = public_view(alert) | {"notification": alert["status"]}
        state = (DeliveryState.PENDING if window is None else DeliveryState.SUPPRESSED).value
        # The installation's webhook (url None) and each webhook of the configurations that cover the alert.
        for url, secret in [(None, None), *covering(t, payload)]:
            t.insert(
                NOTIFICATIONS,
                {
                    "_id": new_id(),
                    "alertId": alert["_id"],
                    "groupId": alert["groupId"],
                    "url": url,
                    "secret": secret,
                    "payload": payload,
                    "state": state,
                    "attempts": 0,
                    "nextAttemptAt": now,
                    "lastError": None,
                    "suppressedBy": window,
                },
            )

    def raise_alert(
        self, group_id: str, event_type: str, key: str, message: str, **details: Any
    ) -> dict[str, Any]:
        """Opens the alert ``key`` of the project, or refreshes it if it is already open."""
        with self.store.tx() as t:
            return self._raise(t, group_id, event_type, key, message, details)

    def raise_counted(
        self, group_id: str, event_type: str, key: str, message: str, **details: Any
    ) -> dict[str, Any]:
        """Like :meth:`raise_alert` for a condition that recurs: the alert's ``count`` goes up by one each
        time (in one transaction, so concurrent raisers never lose a count)."""
        with self.store.tx() as t:
            current = self._open(t, group_id, key)
            count = 1 if current is None else int(current.get("count", 1)) + 1
            return self._raise(t, group_id, event_type, key, message, {**details, "count": count})

    def _raise(
        self, t: Txn, group_id: str, event_type: str, key: str, message: str, details: dict[str, Any]
    ) -> dict[str, Any]:
        now = self.clock()
        current = self._open(t, group_id, key)
        if current is not None:
            if current["message"] == message and all(current.get(k) == v for k, v in details.items()):
                return public_view(current)
            refreshed = t.update(ALERTS, current["_id"], {"message": message, "updated": iso(now), **details})
            assert refreshed is not None  # read in this same transaction
            return public_view(refreshed)
        alert = {
            "_id": new_id(),
            "groupId": group_id,
            "key": key,
            "eventTypeName": event_type,
            "status": AlertStatus.OPEN.value,
            "created": iso(now),
            "updated": iso(now),
            "resolved": None,
            "message": message,
            **details,
        }
        t.insert(ALERTS, alert)
        self._notify(t, alert, now)
        log.warning("alert %s opened in project %s: %s", event_type, group_id, message)
        return public_view(alert)

    def raise_in(
        self, t: Txn, group_id: str, event_type: str, key: str, message: str, **details: Any
    ) -> dict[str, Any]:
        """:meth:`raise_alert` inside the caller's transaction (the alert opens with the state it reports)."""
        return self._raise(t, group_id, event_type, key, message, details)

    def resolve(self, group_id: str, key: str) -> bool:
        """Closes the open alert ``key``; False when none was open."""
        with self.store.tx() as t:
            return self.resolve_in(t, group_id, key)

    def resolve_in(self, t: Txn, group_id: str, key: str, message: str | None = None) -> bool:
        """:meth:`resolve` inside the caller's transaction; ``message`` says how it ended, when given."""
        now = self.clock()
        current = self._open(t, group_id, key)
        if current is None:
            return False
        ended = {"status": AlertStatus.CLOSED.value, "updated": iso(now), "resolved": iso(now)}
        closed = t.update(ALERTS, current["_id"], ended | ({"message": message} if message else {}))
        assert closed is not None
        self._notify(t, closed, now)
        log.info("alert %s closed in project %s", current["eventTypeName"], group_id)
        return True

    def is_open(self, group_id: str, key: str) -> bool:
        with self.store.read() as t:
            return self._open(t, group_id, key) is not None

    def of_group(self, group_id: str, status: AlertStatus | None = None) -> list[dict[str, Any]]:
        """The project's alerts, newest first."""
        eq = {"groupId": group_id} | ({"status": status.value} if status is not None else {})
        docs = self.store.find(ALERTS, **eq)
        return [public_view(d) for d in sorted(docs, key=lambda d: (d["created"], d["_id"]), reverse=True)]

    def get(self, group_id: str, alert_id: str) -> dict[str, Any]:
        doc = self.store.get(ALERTS, alert_id)
        if doc is None or doc.get("groupId") != group_id:
            raise NotFound(
                f"No alert with ID {alert_id} exists in group {group_id}.", error_code="ALERT_NOT_FOUND"
            )
        return public_view(doc)

    def acknowledge(
        self, group_id: str, alert_id: str, until: object, comment: object, username: str
    ) -> dict[str, Any]:
        """Acknowledges the open alert ``alert_id`` of the project until ``until`` (ISO 8601, future), by
        ``username`` with an optional ``comment``; a closed alert has nothing to acknowledge (409)."""
        if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_ACK_COMMENT):
            raise InvalidInput(
                f"acknowledgementComment must be a string of at most {MAX_ACK_COMMENT} characters",
                field="acknowledgementComment",
            )
        now = self.clock()
        until_iso = iso(parse_until(until, now).timestamp())
        with self.store.tx() as t:
            doc = t.get(ALERTS, alert_id)
            if doc is None or doc.get("groupId") != group_id:
                raise NotFound(
                    f"No alert with ID {alert_id} exists in group {group_id}.", error_code="ALERT_NOT_FOUND"
                )
            if doc["status"] != AlertStatus.OPEN.value:
                raise Conflict(
                    f"alert {alert_id} is closed: there is nothing to acknowledge", error_code="ALERT_CLOSED"
                )
            acked = t.update(
                ALERTS,
                alert_id,
                {
                    "acknowledgedUntil": until_iso,
                    "acknowledgementComment": comment or None,
                    "acknowledgingUsername": username,
                    "updated": iso(now),
                },
            )
            assert acked is not None  # read in this same transaction
        log.info(
            "alert %s of project %s acknowledged by %s until %s", alert_id, group_id, username, until_iso
        )
        return public_view(acked)

    def notifications(self, state: DeliveryState | None = None) -> list[dict[str, Any]]:
        eq = {"state": state.value} if state is not None else {}
        return self.store.find(NOTIFICATIONS, **eq)

    def _forget(self, ids: list[str]) -> None:
        """Drops outbox entries a week old: sent, given up, silenced, or waiting for an installation webhook
        that was never configured (the outbox is read whole on each delivery pass)."""
        if not ids:
            return
        with self.store.tx() as t:
            for note_id in ids:
                t.delete(NOTIFICATIONS, note_id)
        log.info("%d alert notifications a week old dropped from the outbox", len(ids))

    def _claim(self, note: dict[str, Any], now: float) -> bool:
        """Takes the notification for this pass, unless another server sharing the store took it since it
        was read (its claim moved ``nextAttemptAt``). A claimer that dies while posting leaves it to be taken
        again after :data:`CLAIM_S`, or at once by the next holder of the delivery job's lease (the claim
        records the claimer's fencing token: a lower one is a holder that lost the lease, whose writes the
        fence refuses anyway)."""
        with self.store.tx() as t:
            current = t.get(NOTIFICATIONS, note["_id"])
            if current is None or current["state"] != DeliveryState.PENDING.value:
                return False
            if current["nextAttemptAt"] != note["nextAttemptAt"]:
                return False
            fence = current_fence()
            claim = {"nextAttemptAt": now + CLAIM_S, "claimedUnder": list(fence) if fence else None}
            t.update(NOTIFICATIONS, note["_id"], claim)
        return True

    def deliver(self, post: Callable[[Delivery], None], default_url: str | None) -> int:
        """Sends every due notification with ``post`` (which raises on failure): to its configuration's
        webhook, or to ``default_url`` (the installation's; kept pending while there is none); returns how
        many were delivered. Each is claimed before it is posted (servers sharing the store post it once) and
        each outcome is written as soon as it is known: a crash resends at most one."""
        now = self.clock()
        due, old = [], []
        fence = current_fence()
        for n in self.store.find(NOTIFICATIONS):
            if n["state"] == DeliveryState.PENDING.value and (n.get("url") or default_url):
                due += [n] if n["nextAttemptAt"] <= now or _claimed_by_lost_lease(n, fence) else []
            elif n["nextAttemptAt"] < now - NOTIFICATION_KEEP_S:
                old.append(str(n["_id"]))
        self._forget(old)
        delivered = 0
        for note in sorted(due, key=lambda n: (n["nextAttemptAt"], n["_id"])):
            if not self._claim(note, now):
                continue
            try:
                post(Delivery(note.get("url") or str(default_url), note["payload"], note.get("secret")))
            except Exception as exc:  # any failure of the receiver is retried, none stops the others
                attempts = note["attempts"] + 1
                gave_up = attempts >= MAX_ATTEMPTS
                self.store.update(
                    NOTIFICATIONS,
                    note["_id"],
                    {
                        "attempts": attempts,
                        "lastError": str(exc)[:500],
                        "nextAttemptAt": self.clock() + retry_delay_s(attempts),
                        "claimedUnder": None,  # an outcome written: the retry's delay holds for every holder
                        "state": (DeliveryState.GAVE_UP if gave_up else DeliveryState.PENDING).value,
                    },
                )
                level = logging.ERROR if gave_up else logging.WARNING
                log.log(level, "webhook for alert %s failed (attempt %d): %s", note["alertId"], attempts, exc)
                continue
            self.store.update(
                NOTIFICATIONS,
                note["_id"],
                {"attempts": note["attempts"] + 1, "state": DeliveryState.DELIVERED.value},
            )
            delivered += 1
        return delivered
