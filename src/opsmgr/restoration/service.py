"""Restoration Mode against the application database: the ``restoration_mode`` collection (one record per
project, so a restarted server resumes where it was at the next agent contact) and the side effects of the
pure decisions in ``restoration.mode``: answering polls, asking for and accepting an agent's config upload,
writing the authoritative config, enqueueing on-demand snapshots, retry and forced exit.

May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.automation`` and ``opsmgr.restoration``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from opsmgr.automation.config import fill_redacted, processes_by_name
from opsmgr.automation.protocol import UPLOAD_CONFIG_REQUEST
from opsmgr.automation.service import AutomationService
from opsmgr.errors import Conflict, InvalidInput, OpsmgrError
from opsmgr.restoration import mode
from opsmgr.restoration.mode import ACTIVE_STATES, AgentReport, Fail, ModeState, RequestUpload
from opsmgr.store.engine import Store, Txn

log = logging.getLogger("opsmgr.restoration")

RESTORATION = "restoration_mode"


def _now_ms() -> int:
    return int(time.time() * 1000)


class RestorationService:
    def __init__(
        self,
        store: Store,
        automation: AutomationService,
        *,
        enabled: bool,
        poll_interval_s: float,
        enqueue_snapshots: Callable[[str], list[str]] | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.store = store
        self.automation = automation
        self.enabled = enabled
        self.poll_interval_ms = max(int(poll_interval_s * 1000), 50)
        self.enqueue_snapshots = enqueue_snapshots
        self.clock = clock

    # Reading.

    def record(self, group_id: str) -> dict[str, Any]:
        return self.store.get(RESTORATION, group_id) or mode.new_record(group_id)

    def is_active(self, group_id: str) -> bool:
        return ModeState(self.record(group_id)["state"]) in ACTIVE_STATES

    def guard(self, group_id: str) -> None:
        """Refuse a deployment change while the project is in Restoration Mode."""
        if self.is_active(group_id):
            raise Conflict(
                f"Project {group_id} is in Restoration Mode: deployment changes are refused until "
                "reconciliation of the agents' automation configs completes. See "
                f"GET /api/public/v1.0/groups/{group_id}/restorationMode.",
                error_code="RESTORATION_MODE_ACTIVE",
            )

    def view(self, group_id: str) -> dict[str, Any]:
        """``GET /groups/{id}/restorationMode``."""
        rec = self.record(group_id)
        state = ModeState(rec["state"])
        expected = self._expected_hosts(group_id, rec) if state in ACTIVE_STATES else set()
        return {
            "groupId": group_id,
            "state": state.value,
            "inRestorationMode": state in ACTIVE_STATES,
            "enabled": self.enabled,
            "triggerReason": rec.get("triggerReason"),
            "triggeredAt": _iso(rec.get("triggeredAt")),
            "updatedAt": _iso(rec.get("updatedAt")),
            "exitedAt": _iso(rec.get("exitedAt")),
            "exitReason": rec.get("exitReason"),
            "failureCount": rec.get("failureCount", 0),
            "lastFailure": rec.get("lastFailure"),
            "nextAttemptAt": _iso(rec.get("nextAttemptAt")),
            "restoredConfigVersion": rec.get("restoredConfigVersion"),
            "authoritativeConfigVersion": rec.get("authoritativeVersion"),
            "chosenAgent": rec.get("chosenAgent"),
            "agentsHeard": [
                {
                    "hostname": h,
                    "configVersion": a["version"],
                    "timestamp": a.get("timestamp"),
                    "heardAt": _iso(a.get("heardAt")),
                }
                for h, a in sorted(rec.get("agents", {}).items())
            ],
            "missingHosts": rec.get("missingHosts", [])
            or [{"hostname": h, "reason": "not heard from yet"} for h in mode.missing(rec, expected)],
            "awaitingConvergence": rec.get("awaitingConvergence", []),
            "snapshotsQueued": rec.get("snapshotsQueued", []),
            "history": rec.get("history", []),
        }

    # Agent contact.

    def on_poll(self, group_id: str, hostname: str, cv: int) -> dict[str, Any] | None:
        """The config to serve an agent polling with ``cv``, or None for "unchanged"."""
        now = self.clock()
        version = self.automation.version(group_id)
        if cv <= version and ModeState(self.record(group_id)["state"]) is ModeState.INACTIVE:
            return None if cv == version else self.automation.config(group_id)
        with self.store.tx() as t:
            rec = t.get(RESTORATION, group_id) or mode.new_record(group_id)
            state = ModeState(rec["state"])
            if state in ACTIVE_STATES:
                previous = rec.get("agents", {}).get(hostname, {})
                mode.heard(rec, AgentReport(hostname, cv, int(previous.get("timestamp", 0))), now)
                self._advance(t, group_id, rec, now)
                return None
            if state is ModeState.FORCED_EXIT_CONVERGING:
                mode.converged(rec, hostname, cv, now)
                t.put(RESTORATION, rec)
            elif cv > version:
                if not self.enabled:
                    log.warning(
                        "RESTORATION MODE DISABLED: agent %s of project %s holds automation config "
                        "version %s, newer than this server's version %s; serving version %s anyway, and "
                        "the agent will act on it (processes absent from it will be stopped)",
                        hostname,
                        group_id,
                        cv,
                        version,
                        version,
                    )
                else:
                    mode.enter(rec, hostname=hostname, agent_version=cv, restored_version=version, now=now)
                    mode.heard(rec, AgentReport(hostname, cv, 0), now)
                    log.warning(
                        "project %s enters Restoration Mode: %s", group_id, rec["triggerReason"]["detail"]
                    )
                    self._advance(t, group_id, rec, now)
                    return None
        return None if cv == version else self.automation.config(group_id)

    def on_status(self, group_id: str, hostname: str, body: dict[str, Any]) -> dict[str, Any]:
        """Note an agent's report; the answer may ask it to upload its config."""
        now = self.clock()
        held = body.get("cv")
        if not isinstance(held, int):
            return {}
        stamp = body.get("cvTimestamp", body.get("timestamp", 0))
        with self.store.tx() as t:
            rec = t.get(RESTORATION, group_id)
            if rec is None:
                return {}
            state = ModeState(rec["state"])
            if state is ModeState.FORCED_EXIT_CONVERGING:
                mode.converged(rec, hostname, held, now)
                t.put(RESTORATION, rec)
                return {}
            if state not in ACTIVE_STATES:
                return {}
            mode.heard(rec, AgentReport(hostname, held, int(stamp) if isinstance(stamp, int) else 0), now)
            self._advance(t, group_id, rec, now)
            chosen = rec.get("chosenAgent") or {}
            if ModeState(rec["state"]) is ModeState.AWAITING_UPLOAD and chosen.get("hostname") == hostname:
                return {
                    "requests": [{"type": UPLOAD_CONFIG_REQUEST, "configVersion": chosen["configVersion"]}]
                }
        return {}

    def on_upload(self, group_id: str, hostname: str, body: Any) -> dict[str, Any]:
        """The chosen agent's config (secrets redacted) becomes the authoritative config; the mode ends."""
        now = self.clock()
        with self.store.tx() as t:
            rec = t.get(RESTORATION, group_id)
            chosen = (rec or {}).get("chosenAgent") or {}
            if rec is None or ModeState(rec["state"]) is not ModeState.AWAITING_UPLOAD:
                raise Conflict(
                    f"Project {group_id} is not waiting for a config upload.", error_code="NO_UPLOAD_EXPECTED"
                )
            if chosen.get("hostname") != hostname:
                raise Conflict(
                    f"The upload was asked of {chosen.get('hostname')}, not {hostname}.",
                    error_code="NO_UPLOAD_EXPECTED",
                )
        if not isinstance(body, dict):
            raise InvalidInput("the uploaded automation config must be a JSON object", field="body")
        try:
            restored = self.automation.config(group_id)
            config = fill_redacted(body, restored)
            written = self.automation.put_config(
                group_id,
                config,
                min_version=int(chosen["configVersion"]),
                allow_unique_indexes=True,
                check_transition=False,
            )
        except OpsmgrError as exc:
            self._fail(
                group_id,
                Fail(
                    f"the config uploaded by {hostname} was refused: {exc.detail}",
                    [{"hostname": hostname, "reason": f"uploaded config invalid: {exc.detail}"}],
                ),
            )
            raise
        queued = self.enqueue_snapshots(group_id) if self.enqueue_snapshots else []
        with self.store.tx() as t:
            rec = t.get(RESTORATION, group_id) or mode.new_record(group_id)
            mode.exit_mode(
                rec,
                reason=f"reconciled: {hostname}'s config v{chosen['configVersion']} is authoritative",
                version=int(written["version"]),
                now=now,
            )
            rec["snapshotsQueued"] = queued
            t.put(RESTORATION, rec)
        log.warning(
            "project %s leaves Restoration Mode: config version %s from %s is authoritative; "
            "%d snapshot(s) queued",
            group_id,
            written["version"],
            hostname,
            len(queued),
        )
        return {"version": written["version"]}

    # Operators.

    @staticmethod
    def _active(t: Txn, group_id: str) -> dict[str, Any]:
        rec = t.get(RESTORATION, group_id)
        if rec is None or ModeState(rec["state"]) not in ACTIVE_STATES:
            raise Conflict(
                f"Project {group_id} is not in Restoration Mode.", error_code="NOT_IN_RESTORATION_MODE"
            )
        return rec

    def retry(self, group_id: str) -> dict[str, Any]:
        now = self.clock()
        with self.store.tx() as t:
            rec = self._active(t, group_id)
            mode.restart_collection(rec, now, reset_failures=True)
            self._advance(t, group_id, rec, now)
        return self.view(group_id)

    def force_exit(self, group_id: str) -> dict[str, Any]:
        now = self.clock()
        with self.store.tx() as t:
            rec = self._active(t, group_id)
            heard_versions = [r.version for r in mode.reports(rec)]
            expected = self._expected_hosts(group_id, rec)
        # Served above every version heard, so that agents holding a later config adopt the restored one.
        served = max([self.automation.version(group_id), *heard_versions]) + 1
        restored = self.automation.config(group_id)
        written = self.automation.put_config(
            group_id, restored, min_version=served, allow_unique_indexes=True, check_transition=False
        )
        with self.store.tx() as t:
            rec = t.get(RESTORATION, group_id) or mode.new_record(group_id)
            mode.force_exit(rec, served_version=int(written["version"]), expected=expected, now=now)
            t.put(RESTORATION, rec)
        log.warning(
            "project %s forced out of Restoration Mode: the restored config is served as version %s",
            group_id,
            written["version"],
        )
        return self.view(group_id)

    def tick(self) -> None:
        """Advance every project whose reconciliation waits on time rather than on an agent."""
        now = self.clock()
        for rec in self.store.find(RESTORATION):
            if ModeState(rec["state"]) in ACTIVE_STATES:
                with self.store.tx() as t:
                    fresh = t.get(RESTORATION, rec["_id"])
                    if fresh is not None and ModeState(fresh["state"]) in ACTIVE_STATES:
                        self._advance(t, rec["_id"], fresh, now)

    # Internals.

    def _expected_hosts(self, group_id: str, rec: dict[str, Any]) -> set[str]:
        restored = self.automation.config(group_id)
        hosts = {str(p.get("hostname")) for p in processes_by_name(restored).values() if p.get("hostname")}
        return hosts | set(rec.get("agents", {}))

    def _advance(self, t: Txn, group_id: str, rec: dict[str, Any], now: int) -> None:
        if ModeState(rec["state"]) is ModeState.RETRY_WAIT and now >= int(rec.get("nextAttemptAt") or 0):
            mode.restart_collection(rec, now, reset_failures=False)
        decision = mode.decide(rec, self._expected_hosts(group_id, rec), now, self.poll_interval_ms)
        if isinstance(decision, RequestUpload):
            mode.request_upload(rec, decision.agent, now)
            log.info(
                "project %s: asking %s for its config (version %s)",
                group_id,
                decision.agent.hostname,
                decision.agent.version,
            )
        elif isinstance(decision, Fail):
            mode.record_failure(rec, decision, now, self.poll_interval_ms)
            log.warning(
                "project %s: reconciliation failed (%s): %s", group_id, rec["failureCount"], decision.reason
            )
        t.put(RESTORATION, rec)

    def _fail(self, group_id: str, failure: Fail) -> None:
        now = self.clock()
        with self.store.tx() as t:
            rec = t.get(RESTORATION, group_id) or mode.new_record(group_id)
            mode.record_failure(rec, failure, now, self.poll_interval_ms)
            t.put(RESTORATION, rec)


def _iso(ms: Any) -> str | None:
    if not isinstance(ms, int):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
