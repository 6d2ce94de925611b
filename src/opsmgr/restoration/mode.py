"""Restoration Mode as data and pure decisions: the per-project state record and what to do on each agent
poll, status report, upload and tick.

A project enters the mode when an agent polls with a config version (``cv``) higher than the project's
(restored) goal version. While in it every poll is answered "unchanged", deployment changes are refused,
and reconciliation collects each expected agent's (version, timestamp, hostname), takes the highest (ties:
later timestamp, then hostname), asks that agent to upload its config, writes it as the authoritative config
with a version at least the agent's, enqueues an on-demand snapshot of each backed-up deployment and exits.
Agents that do not report in time count as a failure: the counter goes up, the missing hosts and why are
recorded, and collection is retried with exponential backoff. A forced exit serves the restored config with
a version above every version heard, and the mode is not entered again until every agent has converged on
it.

Only agents of the project take part: an agent speaks for a host that a process of the project's config
lives on (at any version the server has, or as the restore record names it); what it claims (the version
it holds and that config's hash) is what it must upload, and the upload must still describe what the
agents run (:func:`upload_problem`).

After a restore of the application database every project with processes is ARMED until each host of its
restored config has polled once: deployment changes are refused meanwhile, since a change accepted before
the agents are heard could later drive them backwards. A poll with a newer version enters the mode; once
every awaited host polled without one, the project is clear. May import the standard
library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

COLLECTION_TIMEOUT_POLLS = 3.0
UPLOAD_TIMEOUT_POLLS = 4.0
BACKOFF_CAP_POLLS = 30.0


class ModeState(StrEnum):
    INACTIVE = "INACTIVE"  # not in Restoration Mode
    COLLECTING = "COLLECTING"  # gathering (version, timestamp, hostname) from every agent
    AWAITING_UPLOAD = "AWAITING_UPLOAD"  # the agent with the latest config was asked to upload it
    RETRY_WAIT = "RETRY_WAIT"  # reconciliation failed; it runs again after a backoff
    FORCED_EXIT_CONVERGING = "FORCED_EXIT_CONVERGING"  # forced out; waiting for every agent to converge
    ARMED = "ARMED"  # restored; waiting for each known agent's first poll before accepting changes


ACTIVE_STATES = frozenset({ModeState.COLLECTING, ModeState.AWAITING_UPLOAD, ModeState.RETRY_WAIT})
# States in which deployment changes are refused.
GUARDED_STATES = ACTIVE_STATES | {ModeState.ARMED}


@dataclass(frozen=True)
class AgentReport:
    hostname: str
    version: int
    timestamp: int  # epoch ms at which the agent took that version (or last reported it)
    config_hash: str | None = None  # the hash of that config, as the agent's status report claims it

    def rank(self) -> tuple[int, int, str]:
        return (self.version, self.timestamp, self.hostname)


def choose_latest(reports: list[AgentReport]) -> AgentReport | None:
    """The agent whose config wins: highest version, then later timestamp, then hostname."""
    return max(reports, key=AgentReport.rank, default=None)


def new_record(group_id: str) -> dict[str, Any]:
    return {
        "_id": group_id,
        "state": ModeState.INACTIVE.value,
        "failureCount": 0,
        "agents": {},
        "missingHosts": [],
        "history": [],
    }


def reports(record: dict[str, Any]) -> list[AgentReport]:
    return [
        AgentReport(hostname, int(a["version"]), int(a.get("timestamp", 0)), a.get("configHash"))
        for hostname, a in sorted(record.get("agents", {}).items())
    ]


def known(hostname: str, hosts: set[str] | frozenset[str]) -> bool:
    """Whether an agent on ``hostname`` speaks for the project (host names compare case-insensitively)."""
    return hostname.lower() in {h.lower() for h in hosts}


def enter(
    record: dict[str, Any], *, hostname: str, agent_version: int, restored_version: int, now: int
) -> None:
    record.update(
        state=ModeState.COLLECTING.value,
        triggeredAt=now,
        updatedAt=now,
        collectingSince=now,
        triggerReason={
            "hostname": hostname,
            "agentConfigVersion": agent_version,
            "restoredConfigVersion": restored_version,
            "detail": (
                f"agent {hostname} holds automation config version {agent_version}, higher than the "
                f"restored version {restored_version}"
            ),
        },
        restoredConfigVersion=restored_version,
        failureCount=0,
        agents={},
        missingHosts=[],
        chosenAgent=None,
        exitedAt=None,
        exitReason=None,
        lastFailure=None,
    )


def heard(record: dict[str, Any], report: AgentReport, now: int) -> None:
    agents = record.setdefault("agents", {})
    previous = agents.get(report.hostname, {})
    # A poll carries no hash: the one the agent's status claimed for the same version still stands.
    config_hash = report.config_hash
    if config_hash is None and previous.get("version") == report.version:
        config_hash = previous.get("configHash")
    agents[report.hostname] = {
        "version": report.version,
        "timestamp": report.timestamp,
        "configHash": config_hash,
        "heardAt": now,
    }
    record["updatedAt"] = now


def missing(record: dict[str, Any], expected: set[str]) -> list[str]:
    """The expected agents whose claim is not in yet. A poll says which version an agent holds, but only its
    status report says since when and the config's hash, which the choice and the upload need."""
    claimed = {h for h, a in record.get("agents", {}).items() if a.get("configHash")}
    return sorted(expected - claimed)


@dataclass(frozen=True)
class RequestUpload:
    agent: AgentReport


@dataclass(frozen=True)
class Fail:
    reason: str
    missing_hosts: list[dict[str, str]]


@dataclass(frozen=True)
class Wait:
    pass


Decision = RequestUpload | Fail | Wait


def decide(record: dict[str, Any], expected: set[str], now: int, poll_interval_ms: int) -> Decision:
    """What reconciliation does next, from the record alone (called on every agent contact and tick)."""
    state = ModeState(record["state"])
    if state is ModeState.RETRY_WAIT:
        return Wait()
    if state is ModeState.AWAITING_UPLOAD:
        if now - int(record.get("uploadRequestedAt", now)) > UPLOAD_TIMEOUT_POLLS * poll_interval_ms:
            chosen = record.get("chosenAgent") or {}
            host = str(chosen.get("hostname"))
            return Fail(
                f"agent {host} did not upload its automation config in time",
                [{"hostname": host, "reason": "asked to upload its config, no upload received"}],
            )
        return Wait()
    if state is not ModeState.COLLECTING:
        return Wait()
    absent = missing(record, expected)
    if not absent:
        chosen = choose_latest(reports(record))
        return Wait() if chosen is None else RequestUpload(chosen)
    if now - int(record.get("collectingSince", now)) > COLLECTION_TIMEOUT_POLLS * poll_interval_ms:
        return Fail(
            f"{len(absent)} agent(s) did not report: {', '.join(absent)}",
            [
                {
                    "hostname": h,
                    "reason": "no status report (its version, timestamp and config hash) received since "
                    "Restoration Mode began",
                }
                for h in absent
            ],
        )
    return Wait()


def backoff_ms(failures: int, poll_interval_ms: int) -> int:
    return int(min(2 ** max(failures - 1, 0), BACKOFF_CAP_POLLS) * poll_interval_ms)


def record_failure(record: dict[str, Any], failure: Fail, now: int, poll_interval_ms: int) -> None:
    failures = int(record.get("failureCount", 0)) + 1
    record.update(
        state=ModeState.RETRY_WAIT.value,
        failureCount=failures,
        lastFailure={"at": now, "reason": failure.reason},
        missingHosts=failure.missing_hosts,
        nextAttemptAt=now + backoff_ms(failures, poll_interval_ms),
        updatedAt=now,
    )


def restart_collection(record: dict[str, Any], now: int, *, reset_failures: bool) -> None:
    """Collect again from scratch (after a backoff or a retry request) without leaving the mode."""
    record.update(
        state=ModeState.COLLECTING.value,
        collectingSince=now,
        agents={},
        chosenAgent=None,
        nextAttemptAt=None,
        updatedAt=now,
    )
    if reset_failures:
        record.update(failureCount=0, missingHosts=[], lastFailure=None)


def request_upload(record: dict[str, Any], chosen: AgentReport, now: int) -> None:
    record.update(
        state=ModeState.AWAITING_UPLOAD.value,
        chosenAgent={
            "hostname": chosen.hostname,
            "configVersion": chosen.version,
            "timestamp": chosen.timestamp,
            "configHash": chosen.config_hash,
        },
        uploadRequestedAt=now,
        updatedAt=now,
    )


def exit_mode(record: dict[str, Any], *, reason: str, version: int, now: int) -> None:
    record["history"] = [
        *record.get("history", [])[-9:],
        {
            "triggeredAt": record.get("triggeredAt"),
            "exitedAt": now,
            "exitReason": reason,
            "authoritativeVersion": version,
            "failureCount": record.get("failureCount", 0),
        },
    ]
    record.update(
        state=ModeState.INACTIVE.value,
        exitedAt=now,
        exitReason=reason,
        authoritativeVersion=version,
        updatedAt=now,
    )


def force_exit(record: dict[str, Any], *, served_version: int, expected: set[str], now: int) -> None:
    """Accept the restored config; it is served as ``served_version``, above every version heard."""
    exit_mode(record, reason="forced exit: restored configuration accepted", version=served_version, now=now)
    record.update(
        state=ModeState.FORCED_EXIT_CONVERGING.value,
        forcedVersion=served_version,
        awaitingConvergence=sorted(expected),
    )


def converged(record: dict[str, Any], hostname: str, version: int, now: int) -> bool:
    """Note that an agent holds ``version``; True once every awaited agent holds the forced version."""
    waiting = [
        h for h in record.get("awaitingConvergence", []) if h != hostname or version < record["forcedVersion"]
    ]
    record["awaitingConvergence"] = waiting
    record["updatedAt"] = now
    if not waiting:
        record["state"] = ModeState.INACTIVE.value
        return True
    return False


# The upload.


def claim_problem(chosen: dict[str, Any], version: Any, config_hash: str) -> str | None:
    """Why an upload does not match what the chosen agent claimed (its version and config hash), or None."""
    if version != chosen.get("configVersion"):
        return (
            f"the uploaded config is version {version!r}, but {chosen.get('hostname')} claimed to hold "
            f"version {chosen.get('configVersion')}"
        )
    if chosen.get("configHash") is None:
        return f"{chosen.get('hostname')} never reported the hash of the config it holds"
    if config_hash != chosen["configHash"]:
        return (
            f"the uploaded config's hash {config_hash[:12]}... is not the hash "
            f"{str(chosen['configHash'])[:12]}... that {chosen.get('hostname')} reported for version "
            f"{version}"
        )
    return None


def upload_problem(
    processes: dict[str, str], running: dict[str, set[str]], chosen_host: str
) -> str | None:
    """Why an uploaded config cannot be what the agents run, or None.

    ``processes`` maps the config's process names to their hosts; ``running`` maps each reporting host to
    the processes it reports running. The chosen agent reached goal with the config, so every process it
    runs is in it, on its host; and a config without processes cannot be current while agents run some.
    """
    if not processes and any(running.values()):
        hosts = sorted(h for h, names in running.items() if names)
        return (
            "rule no-processes: the uploaded config has no processes while the agents of "
            f"{', '.join(hosts)} run some"
        )
    mine = {name for name, host in processes.items() if host.lower() == chosen_host.lower()}
    missing = sorted(running.get(chosen_host, set()) - mine)
    if missing:
        return (
            f"rule running-processes: {chosen_host} runs {', '.join(missing)}, which the config it uploaded "
            "does not have on that host"
        )
    return None


# ARMED after a restore.


def arm(record: dict[str, Any], *, hosts: list[str], restore: dict[str, Any], now: int) -> None:
    record.update(
        state=ModeState.ARMED.value,
        armedAt=now,
        updatedAt=now,
        armedBy=restore,
        awaitingHosts=sorted(hosts),
        agents={},
        missingHosts=[],
    )


def heard_while_armed(record: dict[str, Any], hostname: str, now: int) -> bool:
    """Note an awaited agent's first poll; True once every awaited agent has polled (the project clears)."""
    waiting = [h for h in record.get("awaitingHosts", []) if h.lower() != hostname.lower()]
    record["awaitingHosts"] = waiting
    record["updatedAt"] = now
    if waiting:
        return False
    clear_armed(
        record, reason="every agent of the restored config polled; none holds a newer config", now=now
    )
    return True


def clear_armed(record: dict[str, Any], *, reason: str, now: int) -> None:
    record.update(state=ModeState.INACTIVE.value, disarmedAt=now, disarmReason=reason, updatedAt=now)
