"""Restoration Mode against the application database: the ``restoration_mode`` collection (one record per
project, so a restarted server resumes where it was at the next agent contact) and the side effects of the
pure decisions in ``restoration.mode``: answering polls, asking for and accepting an agent's config upload,
writing the authoritative config, enqueueing on-demand snapshots, retry and forced exit, and arming every
project after a restore of the application database.

Agent contact (polls, status reports, uploads, on whichever server the agent reaches) only records what
the agent said and takes the one transition a report completes (``mode.completed``), in the serialised write
transaction that records it. Every transition that waits on time (``mode.decide``: a round's deadline, the
upload's timeout, the next round after a backoff) is made by :meth:`RestorationService.tick`, the periodic
job "restoration" that one server runs under its lease and fencing token, so two servers never both drive a
project's reconciliation.

An agent that does not speak for the project (no process of its config, at any version this database has
or that the restore record names, lives on its host) is refused (403) whenever its word would count: it
cannot trigger the mode, be heard in it or upload; each refusal is counted in an alert. A change of a
project's state is announced (:data:`RESTORATION_CHANGED`) so that poll caches stop short-cutting polls the
mode must see.

May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.alerts``, ``opsmgr.automation``,
``opsmgr.timestamps`` and ``opsmgr.restoration``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from opsmgr.alerts import AlertService
from opsmgr.automation.config import config_hash, fill_redacted, hostnames, processes_by_name
from opsmgr.automation.protocol import UPLOAD_CONFIG_REQUEST
from opsmgr.automation.service import CONFIGS, AutomationService
from opsmgr.automation.status import StatusReport
from opsmgr.errors import Conflict, Forbidden, InvalidInput, OpsmgrError
from opsmgr.restoration import adoption, mode, record
from opsmgr.restoration.mode import (
    ACTIVE_STATES,
    GUARDED_STATES,
    AgentReport,
    Fail,
    ModeState,
    RequestUpload,
)
from opsmgr.restoration.state import ArmedBy, ChosenAgent, MissingHost, ModeRecord
from opsmgr.store.engine import Store, Txn
from opsmgr.store.records import Stored
from opsmgr.store.writers import urgent_writes
from opsmgr.timestamps import iso_utc

log = logging.getLogger("opsmgr.restoration")

RESTORATION = "restoration_mode"
# Announced (Txn.notify, keyed by project id) when a project's Restoration Mode state changes.
RESTORATION_CHANGED = "restoration_mode"
REFUSED_ALERT = "RESTORATION_MODE_AGENT_REFUSED"
REFUSED_KEY = "restoration:agent-refused"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _stored(source: Store | Txn, group_id: str) -> ModeRecord | None:
    doc = source.get(RESTORATION, group_id)
    return None if doc is None else ModeRecord.from_doc(doc)


def _current(source: Store | Txn, group_id: str) -> ModeRecord:
    return _stored(source, group_id) or mode.new_record(group_id)


class RestorationService:
    def __init__(
        self,
        store: Store,
        automation: AutomationService,
        *,
        enabled: bool,
        poll_interval_s: float,
        enqueue_snapshots: Callable[[str], list[str]] | None = None,
        alerts: AlertService | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.store = store
        self.automation = automation
        self.enabled = enabled
        self.poll_interval_ms = max(int(poll_interval_s * 1000), 50)
        self.enqueue_snapshots = enqueue_snapshots
        self.alerts = alerts
        self.clock = clock

    # Reading.

    def record(self, group_id: str) -> ModeRecord:
        return _current(self.store, group_id)

    def state(self, group_id: str) -> ModeState:
        return self.record(group_id).state

    def is_active(self, group_id: str) -> bool:
        return self.state(group_id) in ACTIVE_STATES

    def guard(self, group_id: str) -> None:
        """Refuse a deployment change while the project is in Restoration Mode or armed after a restore."""
        rec = self.record(group_id)
        state = rec.state
        if state is ModeState.ARMED:
            raise Conflict(
                f"Project {group_id} was restored and is ARMED: deployment changes are refused until every "
                "agent of the restored config has polled once (not heard yet: "
                f"{', '.join(rec.awaiting_hosts)}), so that a change cannot drive agents that "
                "hold a newer config backwards. A Project Owner can clear it with DELETE "
                f"/api/public/v1.0/groups/{group_id}/restorationMode.",
                error_code="RESTORATION_MODE_ARMED",
            )
        if state in ACTIVE_STATES:
            raise Conflict(
                f"Project {group_id} is in Restoration Mode: deployment changes are refused until "
                "reconciliation of the agents' automation configs completes. See "
                f"GET /api/public/v1.0/groups/{group_id}/restorationMode.",
                error_code="RESTORATION_MODE_ACTIVE",
            )

    def _put(self, t: Txn, rec: ModeRecord) -> None:
        """Writes the record; a change of state opens or closes the mode's alerts in the same transaction."""
        facts = mode.alert_facts(_stored(t, rec.id), rec) if self.alerts is not None else []
        t.put(RESTORATION, rec.to_doc())
        for fact in facts:
            assert self.alerts is not None
            key = f"restoration:{fact.event_type}"
            if fact.open:
                self.alerts.raise_in(t, rec.id, fact.event_type, key, fact.message, typeName="GROUP")
            else:
                self.alerts.resolve_in(
                    t, rec.id, key, fact.message if fact.event_type == mode.ENTERED_ALERT else None
                )

    def known_hosts(self, group_id: str) -> frozenset[str]:
        """The hosts whose agents speak for the project: of its config at any version this database has,
        or named by the record of the restore that wrote it, or by the project's adoption."""
        restored = record.read(self.store)
        named = restored.hostnames.get(group_id, []) if restored is not None else []
        adopted = adoption.named_hosts(self.store, group_id)
        return self.automation.known_hostnames(group_id) | {h.lower() for h in [*named, *adopted]}

    def refuse_unknown(self, group_id: str, hostname: str, what: str) -> None:
        """Refuse (403) and count an agent whose host is not the project's."""
        reason = (
            f"agent host {hostname!r} is not a host of project {group_id}: no process of its automation "
            f"config (at any version this server has, or that its restore record names) lives there, so "
            f"it cannot {what}"
        )
        log.warning("project %s: %s", group_id, reason)
        if self.alerts is not None:
            self.alerts.raise_counted(
                group_id,
                REFUSED_ALERT,
                REFUSED_KEY,
                "Agents of hosts that are not the project's were refused by Restoration Mode",
                lastHostname=hostname,
                lastReason=reason,
            )
        raise Forbidden(reason, error_code="AGENT_HOST_NOT_IN_PROJECT", hostname=hostname)

    def view(self, group_id: str) -> dict[str, Any]:
        """``GET /groups/{id}/restorationMode``."""
        return self._view(group_id, self.record(group_id))

    def _view(self, group_id: str, rec: ModeRecord) -> dict[str, Any]:
        state = rec.state
        expected = self._expected_hosts(group_id, rec) if state in ACTIVE_STATES else set()
        missing_hosts = rec.missing_hosts or [
            MissingHost(hostname=h, reason="not heard from yet") for h in mode.missing(rec, expected)
        ]
        return {
            "groupId": group_id,
            "state": state.value,
            "inRestorationMode": state in ACTIVE_STATES,
            "enabled": self.enabled,
            "triggerReason": _doc(rec.trigger_reason),
            "triggeredAt": _iso(rec.triggered_at),
            "updatedAt": _iso(rec.updated_at),
            "exitedAt": _iso(rec.exited_at),
            "exitReason": rec.exit_reason,
            "failureCount": rec.failure_count,
            "lastFailure": _doc_at(rec.last_failure, "at"),
            "nextAttemptAt": _iso(rec.next_attempt_at),
            "restoredConfigVersion": rec.restored_config_version,
            "authoritativeConfigVersion": rec.authoritative_version,
            "chosenAgent": _doc_at(rec.chosen_agent, "timestamp"),
            "agentsHeard": [
                {
                    "hostname": h,
                    "configVersion": a.version,
                    "timestamp": _iso(a.timestamp),
                    "heardAt": _iso(a.heard_at),
                }
                for h, a in sorted(rec.agents.items())
            ],
            "missingHosts": [m.to_doc() for m in missing_hosts],
            "awaitingConvergence": rec.awaiting_convergence,
            "armed": state is ModeState.ARMED,
            "armedAt": _iso(rec.armed_at),
            "armedBy": _doc_at(rec.armed_by, "restoredAt"),
            "awaitingHosts": rec.awaiting_hosts if state is ModeState.ARMED else [],
            "disarmedAt": _iso(rec.disarmed_at),
            "disarmReason": rec.disarm_reason,
            "snapshotsQueued": rec.snapshots_queued,
            "history": [_doc_at(e, "triggeredAt", "exitedAt") for e in rec.history],
        }

    # Agent contact.

    def on_poll(self, group_id: str, hostname: str, cv: int) -> dict[str, Any] | None:
        """The config to serve an agent polling with ``cv``, or None for "unchanged"."""
        now = self.clock()
        version = self.automation.version(group_id)
        seen = self.record(group_id)
        state = seen.state
        if cv <= version and state is ModeState.INACTIVE:
            return None if cv == version else self.automation.config(group_id)
        if not mode.known(hostname, self.known_hosts(group_id)):
            # With the mode disabled nothing is guarded: the agent gets the goal, as any agent would.
            if (cv > version and self.enabled) or state in ACTIVE_STATES:
                self.refuse_unknown(group_id, hostname, "take part in Restoration Mode")
            if cv > version:
                self._warn_disabled(group_id, hostname, cv, version)
            return None if cv == version else self.automation.config(group_id)
        if state in ACTIVE_STATES and not mode.is_news(
            seen, AgentReport(hostname, cv, 0), now, self.poll_interval_ms
        ):
            return None
        with self.store.tx() as t:
            rec = _current(t, group_id)
            state = rec.state
            if state in ACTIVE_STATES:
                previous = rec.agents.get(hostname)
                stamp = previous.timestamp if previous is not None else 0
                self._hear(t, group_id, mode.heard(rec, AgentReport(hostname, cv, stamp), now), now)
                return None
            if state is ModeState.FORCED_EXIT_CONVERGING:
                self._converged(t, rec, hostname, cv, now)
            elif cv > version:
                if self._enter(t, group_id, rec, hostname, cv, version, now):
                    return None
            elif state is ModeState.ARMED:
                rec = mode.heard_while_armed(rec, hostname, now)
                if rec.state is ModeState.INACTIVE:
                    t.notify(RESTORATION_CHANGED, group_id)
                    log.info("project %s is no longer armed: %s", group_id, rec.disarm_reason)
                self._put(t, rec)
        return None if cv == version else self.automation.config(group_id)

    def _converged(self, t: Txn, rec: ModeRecord, hostname: str, held: int, now: int) -> None:
        """Note that a forced-out project's agent holds ``held``; the project is announced once all do."""
        noted = mode.converged(rec, hostname, held, now)
        if noted.state is ModeState.INACTIVE:
            t.notify(RESTORATION_CHANGED, rec.id)
        self._put(t, noted)

    def _enter(
        self, t: Txn, group_id: str, rec: ModeRecord, hostname: str, cv: int, version: int, now: int
    ) -> bool:
        """Enter the mode for an agent holding ``cv`` above ``version``; False when it is disabled."""
        if not self.enabled:
            self._warn_disabled(group_id, hostname, cv, version)
            if rec.state is ModeState.ARMED:
                self._put(t, mode.clear_armed(rec, reason="Restoration Mode is disabled", now=now))
                t.notify(RESTORATION_CHANGED, group_id)
            return False
        rec = mode.enter(rec, hostname=hostname, agent_version=cv, restored_version=version, now=now)
        rec = mode.heard(rec, AgentReport(hostname, cv, 0), now)
        detail = rec.trigger_reason.detail if rec.trigger_reason is not None else ""
        log.warning("project %s enters Restoration Mode: %s", group_id, detail)
        t.notify(RESTORATION_CHANGED, group_id)
        self._hear(t, group_id, rec, now)
        return True

    @staticmethod
    def _warn_disabled(group_id: str, hostname: str, cv: int, version: int) -> None:
        log.warning(
            "RESTORATION MODE DISABLED: agent %s of project %s holds automation config version %s, newer "
            "than this server's version %s; serving version %s anyway, and the agent will act on it "
            "(processes absent from it will be stopped)",
            hostname,
            group_id,
            cv,
            version,
            version,
        )

    def on_status(self, group_id: str, hostname: str, report: StatusReport) -> dict[str, Any]:
        """Note an agent's report; the answer may ask it to upload its config."""
        now = self.clock()
        held = report.cv
        rec = _stored(self.store, group_id)
        state = rec.state if rec is not None else ModeState.INACTIVE
        if state is ModeState.INACTIVE or held is None:
            return {}
        if not mode.known(hostname, self.known_hosts(group_id)):
            if state in ACTIVE_STATES:
                self.refuse_unknown(group_id, hostname, "take part in Restoration Mode")
            return {}
        stamp = report.cvTimestamp or 0
        claim = AgentReport(hostname, held, stamp, report.cvHash)
        if (
            rec is not None
            and state in ACTIVE_STATES
            and not mode.is_news(rec, claim, now, self.poll_interval_ms)
        ):
            return _upload_request(rec, hostname)
        with self.store.tx() as t:
            rec = _stored(t, group_id)
            if rec is None:
                return {}
            if rec.state is ModeState.FORCED_EXIT_CONVERGING:
                self._converged(t, rec, hostname, held, now)
                return {}
            if rec.state not in ACTIVE_STATES:
                return {}
            heard = mode.heard(rec, claim, now)
            return _upload_request(self._hear(t, group_id, heard, now, reporter=hostname), hostname)

    def on_upload(self, group_id: str, hostname: str, body: Any) -> dict[str, Any]:
        """The chosen agent's config (secrets redacted) becomes the authoritative config; the mode ends.

        Refused unless it is the config the agent claimed (its version and hash) and it still describes what
        the agents run; a refusal counts as a failed reconciliation, retried after the backoff. Its writes go
        before the status reports waiting for the store: this one ends the mode for a whole project.
        """
        with urgent_writes():
            return self._upload(group_id, hostname, body)

    def _upload(self, group_id: str, hostname: str, body: Any) -> dict[str, Any]:
        now = self.clock()
        chosen = self._asked(group_id, hostname)
        if not isinstance(body, dict):
            raise InvalidInput("the uploaded automation config must be a JSON object", field="body")
        try:
            problem = mode.claim_problem(chosen, body.get("version"), config_hash(body))
            if problem is not None:
                raise Conflict(problem, error_code="UPLOAD_DOES_NOT_MATCH_CLAIM")
            self._check_running(group_id, hostname, body)
            restored = self.automation.config(group_id)
            written = self.automation.put_config(
                group_id,
                fill_redacted(body, restored),
                min_version=chosen.config_version,
                allow_unique_indexes=True,
                check_transition=False,
            )
        except OpsmgrError as exc:
            self._fail(
                group_id,
                chosen,
                Fail(
                    f"the config uploaded by {hostname} was refused: {exc.detail}",
                    [MissingHost(hostname=hostname, reason=f"uploaded config refused: {exc.detail}")],
                ),
            )
            raise
        if not _still_asked(self.record(group_id), chosen):
            # The same upload already ended the round (a retry that reached another server).
            return {"version": written["version"]}
        queued = self.enqueue_snapshots(group_id) if self.enqueue_snapshots else []
        with self.store.tx() as t:
            rec = _current(t, group_id)
            if not _still_asked(rec, chosen):
                return {"version": written["version"]}
            rec = mode.exit_mode(
                rec,
                reason=f"reconciled: {hostname}'s config v{chosen.config_version} is authoritative",
                version=int(written["version"]),
                now=now,
            )
            self._put(t, rec.changed(snapshots_queued=queued))
            t.notify(RESTORATION_CHANGED, group_id)
        log.warning(
            "project %s leaves Restoration Mode: config version %s from %s is authoritative; "
            "%d snapshot(s) queued",
            group_id,
            written["version"],
            hostname,
            len(queued),
        )
        return {"version": written["version"]}

    def _asked(self, group_id: str, hostname: str) -> ChosenAgent:
        """The agent asked for its config, if it is ``hostname`` (409 otherwise)."""
        rec = _stored(self.store, group_id)
        chosen = rec.chosen_agent if rec is not None else None
        if rec is None or rec.state is not ModeState.AWAITING_UPLOAD or chosen is None:
            raise Conflict(
                f"Project {group_id} is not waiting for a config upload.", error_code="NO_UPLOAD_EXPECTED"
            )
        if chosen.hostname != hostname:
            raise Conflict(
                f"The upload was asked of {chosen.hostname}, not {hostname}.", error_code="NO_UPLOAD_EXPECTED"
            )
        return chosen

    def _check_running(self, group_id: str, hostname: str, body: dict[str, Any]) -> None:
        """Refuse an upload that cannot be what the agents run (see ``mode.upload_problem``)."""
        running: dict[str, set[str]] = {}
        for status in self.automation.agent_statuses(group_id):
            names = {
                str(p.get("name"))
                for p in status.get("processes", [])
                if (p.get("observed") or {}).get("running")
            }
            running[str(status.get("hostname"))] = names
        processes = body.get("processes")
        by_name = {
            str(p.get("name")): str(p.get("hostname", ""))
            for p in (processes if isinstance(processes, list) else [])
            if isinstance(p, dict)
        }
        problem = mode.upload_problem(by_name, running, hostname)
        if problem is not None:
            raise InvalidInput(problem, field="processes", rule="restoration-upload")

    # Operators.

    @staticmethod
    def _guarded(t: Txn, group_id: str) -> ModeRecord:
        rec = _stored(t, group_id)
        if rec is None or rec.state not in GUARDED_STATES:
            raise Conflict(
                f"Project {group_id} is not in Restoration Mode.", error_code="NOT_IN_RESTORATION_MODE"
            )
        return rec

    def retry(self, group_id: str) -> dict[str, Any]:
        now = self.clock()
        with self.store.tx() as t:
            rec = self._guarded(t, group_id)
            if rec.state is ModeState.ARMED:
                raise Conflict(
                    f"Project {group_id} is armed after a restore, not reconciling: there is nothing to "
                    "retry. It clears once every agent of the restored config has polled.",
                    error_code="NOT_IN_RESTORATION_MODE",
                )
            self._hear(t, group_id, mode.next_round(rec, now, reset_failures=True), now)
        return self.view(group_id)

    def force_exit(self, group_id: str) -> dict[str, Any]:
        """Leave the mode accepting the restored config, or clear a project armed after a restore."""
        now = self.clock()
        with self.store.tx() as t:
            rec = self._guarded(t, group_id)
            if rec.state is ModeState.ARMED:
                rec = mode.clear_armed(rec, reason="cleared by a project owner", now=now)
                self._put(t, rec)
                t.notify(RESTORATION_CHANGED, group_id)
                log.warning("project %s: armed state cleared by a project owner", group_id)
                return self._view(group_id, rec)
            adoption.refuse_empty_exit(t, group_id, self.automation.version(group_id))
            heard_versions = [r.version for r in mode.reports(rec)]
            expected = self._expected_hosts(group_id, rec)
        # Served above every version heard, so that agents holding a later config adopt the restored one.
        served = max([self.automation.version(group_id), *heard_versions]) + 1
        restored = self.automation.config(group_id)
        written = self.automation.put_config(
            group_id, restored, min_version=served, allow_unique_indexes=True, check_transition=False
        )
        with self.store.tx() as t:
            rec = mode.force_exit(
                _current(t, group_id), served_version=int(written["version"]), expected=expected, now=now
            )
            self._put(t, rec)
            t.notify(RESTORATION_CHANGED, group_id)
        log.warning(
            "project %s forced out of Restoration Mode: the restored config is served as version %s",
            group_id,
            written["version"],
        )
        return self.view(group_id)

    def arm_after_restore(self) -> list[str]:
        """Arm every project with processes if a restore wrote this database and no server has acted on
        it yet; returns the projects armed. Called once at start, before anything is served."""
        restored = record.read(self.store)
        if restored is None or restored.armed_at_ms is not None:
            return []
        now = self.clock()
        armed = []
        with self.store.tx() as t:
            for config in t.find(CONFIGS):
                group_id = str(config["_id"])
                hosts = sorted(hostnames(config.get("config") or {}))
                if not hosts:
                    continue
                rec = _current(t, group_id)
                if rec.state in ACTIVE_STATES:
                    continue  # already reconciling: the mode itself guards the project
                armed_by = ArmedBy.model_validate(restored.summary())
                self._put(t, mode.arm(rec, hosts=hosts, restore=armed_by, now=now))
                t.notify(RESTORATION_CHANGED, group_id)
                armed.append(group_id)
            record.write(t, replace(restored, armed_at_ms=now))
        if armed:
            log.warning(
                "restore %s wrote this application database: %d project(s) ARMED until their agents poll",
                restored.restore_job_id,
                len(armed),
            )
        return armed

    def tick(self) -> None:
        """Advance every project whose reconciliation waits on time rather than on an agent: the periodic
        job "restoration", the only caller of ``mode.decide`` (one server runs it, fenced by its lease)."""
        now = self.clock()
        records = map(ModeRecord.from_doc, self.store.find(RESTORATION))
        active = [rec for rec in records if rec.state in ACTIVE_STATES]
        # Read outside the write transactions, which every server's requests wait on.
        expected = {rec.id: self._expected_hosts(rec.id, rec) for rec in active}
        agents_expected = sum(len(hosts) for hosts in expected.values())
        for rec in active:
            with self.store.tx() as t:
                fresh = _stored(t, rec.id)
                if fresh is not None and fresh.state in ACTIVE_STATES:
                    self._advance(t, fresh, expected[rec.id] | set(fresh.agents), now, agents_expected)

    # Internals.

    def _expected_hosts(self, group_id: str, rec: ModeRecord) -> set[str]:
        restored = self.automation.config(group_id)
        hosts = {str(p.get("hostname")) for p in processes_by_name(restored).values() if p.get("hostname")}
        # An adopted project's named hosts are awaited while its config names none (before the upload).
        adopted = set() if hosts else adoption.awaited(adoption.named_hosts(self.store, group_id), rec.agents)
        return hosts | set(rec.agents) | adopted

    def _hear(
        self, t: Txn, group_id: str, rec: ModeRecord, now: int, *, reporter: str | None = None
    ) -> ModeRecord:
        """Write what an agent (or an operator's retry) brought, asking for the upload if it completed
        collection (of ``reporter``, the agent whose status report did, when it claims the latest config:
        the answer to that report asks it); no decision that waits on time (those are :meth:`tick`'s).
        Returns the record."""
        done = mode.completed(rec, self._expected_hosts(group_id, rec), reporter)
        if done is not None:
            rec = self._ask(group_id, rec, done, now)
        self._put(t, rec)
        return rec

    def _advance(
        self, t: Txn, rec: ModeRecord, expected: set[str], now: int, agents_expected: int
    ) -> ModeRecord:
        """Act on the periodic job's decision for ``rec`` and write the record; returns it as written."""
        if mode.next_round_due(rec, now):
            rec = mode.next_round(rec, now, reset_failures=False)
        decision = mode.decide(rec, expected, now, self.poll_interval_ms, agents_expected)
        if isinstance(decision, RequestUpload):
            rec = self._ask(rec.id, rec, decision, now)
        elif isinstance(decision, Fail):
            rec = mode.record_failure(rec, decision, now, self.poll_interval_ms)
            log.warning(
                "project %s: reconciliation failed (%s): %s", rec.id, rec.failure_count, decision.reason
            )
        self._put(t, rec)
        return rec

    @staticmethod
    def _ask(group_id: str, rec: ModeRecord, request: RequestUpload, now: int) -> ModeRecord:
        log.info(
            "project %s: asking %s for its config (version %s)",
            group_id,
            request.agent.hostname,
            request.agent.version,
        )
        return mode.request_upload(rec, request.agent, now)

    def _fail(self, group_id: str, chosen: ChosenAgent, failure: Fail) -> None:
        """A refused upload fails the round it answered (not a later one another server moved on to)."""
        now = self.clock()
        with self.store.tx() as t:
            rec = _current(t, group_id)
            if _still_asked(rec, chosen):
                self._put(t, mode.record_failure(rec, failure, now, self.poll_interval_ms))


def _upload_request(rec: ModeRecord, hostname: str) -> dict[str, Any]:
    """A status report's answer: the upload request, if ``hostname``'s agent is the one asked."""
    chosen = rec.chosen_agent
    if rec.state is ModeState.AWAITING_UPLOAD and chosen is not None and chosen.hostname == hostname:
        return {"requests": [{"type": UPLOAD_CONFIG_REQUEST, "configVersion": chosen.config_version}]}
    return {}


def _still_asked(rec: ModeRecord, chosen: ChosenAgent) -> bool:
    """Whether ``rec`` still waits for the upload ``chosen`` was asked for."""
    return rec.state is ModeState.AWAITING_UPLOAD and rec.chosen_agent == chosen


def _doc(part: Stored | None) -> dict[str, Any] | None:
    return None if part is None else part.to_doc()


def _iso(ms: int | None) -> str | None:
    # Restoration Mode is opsmgr's own resource; its instants are written as Ops Manager writes its own
    # (ISO-8601 strings). An agent's config ``timestamp`` of 0 is one it did not report.
    return iso_utc(ms) if ms else None


def _doc_at(part: Stored | None, *instants: str) -> dict[str, Any] | None:
    """``part``'s document with its ``instants`` (epoch milliseconds when stored) as ISO-8601 strings."""
    doc = _doc(part)
    return None if doc is None else doc | {k: _iso(doc.get(k)) for k in instants if k in doc}
