"""Restoration Mode as data and pure decisions: the per-project state record and what to do on each agent
poll, status report, upload and tick.

A project enters the mode when an agent polls with a config version (``cv``) higher than the project's
(restored) goal version. While in it every poll is answered "unchanged", deployment changes are refused,
and reconciliation collects each expected agent's (version, timestamp, hostname), takes the highest (ties:
later timestamp, then hostname; but when the agent whose report completes collection claims the very same
config, by version and hash, as the highest, that agent: the answer to its report then asks for the upload,
a poll interval sooner), asks that agent to upload its config, writes it as the authoritative config
with a version at least the agent's, enqueues an on-demand snapshot of each backed-up deployment and exits.
Agents that do not report within the round's deadline (:func:`collection_deadline_ms`, which grows with the
agents the server expects to hear from) count as a failure: the counter goes up, the missing hosts and why
are recorded, and a new round starts after an exponential backoff. A failed round keeps the claims it heard
(only those of the hosts the failure names are dropped), so the next round waits only for the missing
agents, and the last missing claim completes collection at once, even during the backoff. A forced exit
serves the restored config with a version above every version heard, and the mode is not entered again
until every agent has converged on it.

Who decides what: an agent's report (poll, status, upload) only records what the agent said, plus the one
transition a report itself completes (every claim in: ask the latest agent for its upload), made in the
write transaction that records it (write transactions are serialised across servers), so it needs no
clock. Every transition that depends on time (a round's deadline, the upload's timeout, the next round
after a backoff) is :func:`decide`'s, called only by the periodic job that one server runs under its lease.

Only agents of the project take part: an agent speaks for a host that a process of the project's config
lives on (at any version the server has, or as the restore record names it); what it claims (the version
it holds and that config's hash) is what it must upload, and the upload must still describe what the
agents run (:func:`upload_problem`).

After a restore of the application database every project with processes is ARMED until each host of its
restored config has polled once: deployment changes are refused meanwhile, since a change accepted before
the agents are heard could later drive them backwards. A poll with a newer version enters the mode; once
every awaited host polled without one, the project is clear.

The decisions take the project's typed record (``restoration.state.ModeRecord``) and return the changed
copy. May import ``opsmgr.restoration.state``.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsmgr.restoration.state import (
    ArmedBy,
    ChosenAgent,
    Exit,
    Failure,
    HeardAgent,
    MissingHost,
    ModeRecord,
    ModeState,
    TriggerReason,
)

COLLECTION_TIMEOUT_POLLS = 3.0  # a round's deadline with few agents expected
AGENTS_PER_EXTRA_POLL = 100  # the deadline grows by one poll interval per this many agents expected
UPLOAD_TIMEOUT_POLLS = 4.0
BACKOFF_CAP_POLLS = 30.0  # also the longest an agent that lost its server waits between attempts
HEARD_REFRESH_POLLS = 5  # how stale an agent's heardAt may get while it only repeats what it said

__all__ = ["ModeRecord", "ModeState"]

ACTIVE_STATES = frozenset({ModeState.COLLECTING, ModeState.AWAITING_UPLOAD, ModeState.RETRY_WAIT})
# States in which deployment changes are refused.
GUARDED_STATES = ACTIVE_STATES | {ModeState.ARMED}

# The seed's warning, shown wherever an operator can force the exit (the CLI, the UI).
FORCE_EXIT_WARNING = (
    "When you force the primary Ops Manager to exit Restoration Mode, it accepts the restored configuration "
    "without reconciling later agent configurations. Use this endpoint only when reconciliation can't "
    "complete. After force-exit, the primary Ops Manager serves the restored configuration to all agents in "
    "the project and won't re-enter Restoration Mode until every agent has converged on it."
)


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


def choose(reports: list[AgentReport], reporter: str | None = None) -> AgentReport | None:
    """:func:`choose_latest`, unless ``reporter`` (the agent whose report completes collection) claims the
    same config as the latest, by version and hash (the usual case: every agent of a project got the same
    config). Its upload is then that very config, and the answer to its report carries the request, where
    any other agent learns of it only in the answer to its next report, up to a poll interval later."""
    latest = choose_latest(reports)
    if latest is None or reporter is None or latest.config_hash is None:
        return latest
    mine = next((r for r in reports if r.hostname == reporter), None)
    same = mine is not None and (mine.version, mine.config_hash) == (latest.version, latest.config_hash)
    return mine if same else latest


def new_record(group_id: str) -> ModeRecord:
    return ModeRecord.new(group_id)


def reports(record: ModeRecord) -> list[AgentReport]:
    return [
        AgentReport(hostname, a.version, a.timestamp, a.config_hash)
        for hostname, a in sorted(record.agents.items())
    ]


def known(hostname: str, hosts: set[str] | frozenset[str]) -> bool:
    """Whether an agent on ``hostname`` speaks for the project (host names compare case-insensitively)."""
    return hostname.lower() in {h.lower() for h in hosts}


def enter(
    record: ModeRecord, *, hostname: str, agent_version: int, restored_version: int, now: int
) -> ModeRecord:
    return record.changed(
        state=ModeState.COLLECTING,
        triggered_at=now,
        updated_at=now,
        collecting_since=now,
        trigger_reason=TriggerReason(
            hostname=hostname,
            agent_config_version=agent_version,
            restored_config_version=restored_version,
            detail=(
                f"agent {hostname} holds automation config version {agent_version}, higher than the "
                f"restored version {restored_version}"
            ),
        ),
        restored_config_version=restored_version,
        failure_count=0,
        agents={},
        missing_hosts=[],
        chosen_agent=None,
        exited_at=None,
        exit_reason=None,
        last_failure=None,
    )


def heard(record: ModeRecord, report: AgentReport, now: int) -> ModeRecord:
    previous = record.agents.get(report.hostname)
    same = previous is not None and previous.version == report.version
    # A poll carries no hash: the one the agent's status claimed for the same version still stands.
    config_hash = report.config_hash
    if config_hash is None and same and previous is not None:
        config_hash = previous.config_hash
    agent = HeardAgent(
        version=report.version, timestamp=report.timestamp, config_hash=config_hash, heard_at=now
    )
    if config_hash:
        # When the claim of this version first came in: what "the agent's first report" is measured from.
        first = previous.claimed_at if same and previous is not None and previous.config_hash else None
        agent = agent.changed(claimed_at=first or now)
    return record.changed(agents={**record.agents, report.hostname: agent}, updated_at=now)


def is_news(record: ModeRecord, report: AgentReport, now: int, poll_interval_ms: int) -> bool:
    """Whether an agent's poll or status report tells the record something: an agent heard at this version
    (and, for a status report, with this claim) less than ``HEARD_REFRESH_POLLS`` ago adds only a fresher
    ``heardAt``, not worth a write transaction (which every server's writers wait on) per poll of every
    agent of a project in the mode."""
    previous = record.agents.get(report.hostname)
    if previous is None or previous.version != report.version:
        return True
    if report.config_hash is not None and (report.config_hash, report.timestamp) != (
        previous.config_hash,
        previous.timestamp,
    ):
        return True
    return now - (previous.heard_at or 0) >= HEARD_REFRESH_POLLS * poll_interval_ms


def missing(record: ModeRecord, expected: set[str]) -> list[str]:
    """The expected agents whose claim is not in yet. A poll says which version an agent holds, but only its
    status report says since when and the config's hash, which the choice and the upload need."""
    claimed = {h for h, a in record.agents.items() if a.config_hash}
    return sorted(expected - claimed)


@dataclass(frozen=True)
class RequestUpload:
    agent: AgentReport


@dataclass(frozen=True)
class Fail:
    reason: str
    missing_hosts: list[MissingHost]


@dataclass(frozen=True)
class Wait:
    pass


Decision = RequestUpload | Fail | Wait


def collection_deadline_ms(agents_expected: int, poll_interval_ms: int) -> int:
    """How long a collection round waits for the claims it misses before it counts as failed.

    The rule: 3 poll intervals, plus one for every 100 agents the server expects to hear from (every agent
    of every project in the mode: after a restore they all come back at once, and a loaded server takes in
    their reports more slowly), at most 30 poll intervals (an agent that lost its server retries at least
    that often, so a longer wait hears nobody more). A failed round loses nothing it heard: the deadline
    only decides when the failure is reported and counted.
    """
    polls = COLLECTION_TIMEOUT_POLLS + max(agents_expected, 0) // AGENTS_PER_EXTRA_POLL
    return int(min(polls, BACKOFF_CAP_POLLS) * poll_interval_ms)


def completed(record: ModeRecord, expected: set[str], reporter: str | None = None) -> RequestUpload | None:
    """The upload to ask for once every expected agent's claim is in (while collecting, or waiting for the
    next round: the last missing claim completes collection at once); None otherwise. Needs no clock, so an
    agent's report may take it in the transaction that records the report; ``reporter``: that agent (see
    :func:`choose`)."""
    if record.state not in (ModeState.COLLECTING, ModeState.RETRY_WAIT) or missing(record, expected):
        return None
    chosen = choose(reports(record), reporter)
    return None if chosen is None else RequestUpload(chosen)


def next_round_due(record: ModeRecord, now: int) -> bool:
    """Whether a failed round's backoff is over."""
    return record.state is ModeState.RETRY_WAIT and now >= (record.next_attempt_at or 0)


def decide(
    record: ModeRecord, expected: set[str], now: int, poll_interval_ms: int, agents_expected: int = 0
) -> Decision:
    """What reconciliation does next, from the record alone; ``agents_expected``: every agent the server
    expects to hear from (at least ``expected``). Called by the periodic job only (see the module)."""
    state = record.state
    done = completed(record, expected)
    if done is not None:
        return done
    if state is ModeState.AWAITING_UPLOAD:
        asked_at = record.upload_requested_at if record.upload_requested_at is not None else now
        if now - asked_at > UPLOAD_TIMEOUT_POLLS * poll_interval_ms:
            host = str(record.chosen_agent.hostname if record.chosen_agent is not None else None)
            return Fail(
                f"agent {host} did not upload its automation config in time",
                [MissingHost(hostname=host, reason="asked to upload its config, no upload received")],
            )
        return Wait()
    if state is not ModeState.COLLECTING:
        return Wait()
    absent = missing(record, expected)
    if not absent:
        return Wait()  # every claim in, none to choose: nothing an agent claimed can be asked for
    since = record.collecting_since if record.collecting_since is not None else now
    if now - since > collection_deadline_ms(max(agents_expected, len(expected)), poll_interval_ms):
        return Fail(
            f"{len(absent)} agent(s) did not report: {', '.join(absent)}",
            [
                MissingHost(
                    hostname=h,
                    reason="no status report (its version, timestamp and config hash) received since "
                    "Restoration Mode began",
                )
                for h in absent
            ],
        )
    return Wait()


def backoff_ms(failures: int, poll_interval_ms: int) -> int:
    return int(min(2 ** max(failures - 1, 0), BACKOFF_CAP_POLLS) * poll_interval_ms)


def record_failure(record: ModeRecord, failure: Fail, now: int, poll_interval_ms: int) -> ModeRecord:
    """The round failed: RETRY_WAIT until the backoff is over. What was heard is kept, except the claims of
    the hosts the failure names (an agent that did not upload, or whose upload was refused, is heard
    again)."""
    failures = record.failure_count + 1
    named = {m.hostname for m in failure.missing_hosts}
    agents = {h: a.changed(config_hash=None) if h in named else a for h, a in record.agents.items()}
    return record.changed(
        agents=agents,
        state=ModeState.RETRY_WAIT,
        failure_count=failures,
        last_failure=Failure(at=now, reason=failure.reason),
        missing_hosts=failure.missing_hosts,
        next_attempt_at=now + backoff_ms(failures, poll_interval_ms),
        updated_at=now,
    )


def next_round(record: ModeRecord, now: int, *, reset_failures: bool) -> ModeRecord:
    """A new collection round (after a backoff or a retry request) without leaving the mode. It keeps the
    claims heard so far, so it waits only for the agents still missing."""
    restarted = record.changed(
        state=ModeState.COLLECTING,
        collecting_since=now,
        chosen_agent=None,
        next_attempt_at=None,
        updated_at=now,
    )
    if reset_failures:
        return restarted.changed(failure_count=0, missing_hosts=[], last_failure=None)
    return restarted


def request_upload(record: ModeRecord, chosen: AgentReport, now: int) -> ModeRecord:
    return record.changed(
        state=ModeState.AWAITING_UPLOAD,
        chosen_agent=ChosenAgent(
            hostname=chosen.hostname,
            config_version=chosen.version,
            timestamp=chosen.timestamp,
            config_hash=chosen.config_hash,
        ),
        upload_requested_at=now,
        updated_at=now,
    )


def exit_mode(record: ModeRecord, *, reason: str, version: int, now: int) -> ModeRecord:
    done = Exit(
        triggered_at=record.triggered_at,
        exited_at=now,
        exit_reason=reason,
        authoritative_version=version,
        failure_count=record.failure_count,
    )
    return record.changed(
        history=[*record.history[-9:], done],
        state=ModeState.INACTIVE,
        exited_at=now,
        exit_reason=reason,
        authoritative_version=version,
        updated_at=now,
    )


def force_exit(record: ModeRecord, *, served_version: int, expected: set[str], now: int) -> ModeRecord:
    """Accept the restored config; it is served as ``served_version``, above every version heard."""
    exited = exit_mode(
        record, reason="forced exit: restored configuration accepted", version=served_version, now=now
    )
    return exited.changed(
        state=ModeState.FORCED_EXIT_CONVERGING,
        forced_version=served_version,
        awaiting_convergence=sorted(expected),
    )


def converged(record: ModeRecord, hostname: str, version: int, now: int) -> ModeRecord:
    """Note that an agent holds ``version``; the record is INACTIVE once every awaited agent holds the forced
    version."""
    forced = record.forced_version if record.forced_version is not None else 0
    waiting = [h for h in record.awaiting_convergence if h != hostname or version < forced]
    noted = record.changed(awaiting_convergence=waiting, updated_at=now)
    return noted if waiting else noted.changed(state=ModeState.INACTIVE)


# The upload.


def claim_problem(chosen: ChosenAgent, version: object, config_hash: str) -> str | None:
    """Why an upload does not match what the chosen agent claimed (its version and config hash), or None."""
    if version != chosen.config_version:
        return (
            f"the uploaded config is version {version!r}, but {chosen.hostname} claimed to hold "
            f"version {chosen.config_version}"
        )
    if chosen.config_hash is None:
        return f"{chosen.hostname} never reported the hash of the config it holds"
    if config_hash != chosen.config_hash:
        return (
            f"the uploaded config's hash {config_hash[:12]}... is not the hash "
            f"{chosen.config_hash[:12]}... that {chosen.hostname} reported for version {version}"
        )
    return None


def upload_problem(processes: dict[str, str], running: dict[str, set[str]], chosen_host: str) -> str | None:
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


def arm(record: ModeRecord, *, hosts: list[str], restore: ArmedBy, now: int) -> ModeRecord:
    return record.changed(
        state=ModeState.ARMED,
        armed_at=now,
        updated_at=now,
        armed_by=restore,
        awaiting_hosts=sorted(hosts),
        agents={},
        missing_hosts=[],
    )


def heard_while_armed(record: ModeRecord, hostname: str, now: int) -> ModeRecord:
    """Note an awaited agent's first poll; the project clears (INACTIVE) once every awaited agent polled."""
    waiting = [h for h in record.awaiting_hosts if h.lower() != hostname.lower()]
    noted = record.changed(awaiting_hosts=waiting, updated_at=now)
    if waiting:
        return noted
    return clear_armed(
        noted, reason="every agent of the restored config polled; none holds a newer config", now=now
    )


def clear_armed(record: ModeRecord, *, reason: str, now: int) -> ModeRecord:
    return record.changed(state=ModeState.INACTIVE, disarmed_at=now, disarm_reason=reason, updated_at=now)


ENTERED_ALERT = "RESTORATION_MODE_ENTERED"
FAILED_ALERT = "RESTORATION_MODE_FAILED"


@dataclass(frozen=True)
class AlertFact:
    """An alert the mode's change of state opens (``open``) or closes: the exit closes ENTERED, which is
    the exit's notification; a reconciliation round that failed opens FAILED until the next round."""

    event_type: str
    open: bool
    message: str


def alert_facts(before: ModeRecord | None, after: ModeRecord) -> list[AlertFact]:
    """What a change of the record means for the mode's alerts (nothing while its state is unchanged)."""
    was = before.state if before is not None else ModeState.INACTIVE
    if was is after.state:
        return []
    in_mode = after.state in ACTIVE_STATES or after.state is ModeState.FORCED_EXIT_CONVERGING
    why = after.trigger_reason.detail if after.trigger_reason is not None else "a restored configuration"
    entered = (
        f"Project {after.id} entered Restoration Mode ({why}): configuration changes are refused until "
        "the agents' configurations are reconciled"
        if in_mode
        else f"Project {after.id} exited Restoration Mode: {after.exit_reason or after.state.value}"
    )
    failure = after.last_failure.reason if after.last_failure is not None else "no reason recorded"
    return [
        AlertFact(ENTERED_ALERT, in_mode, entered),
        AlertFact(
            FAILED_ALERT,
            after.state is ModeState.RETRY_WAIT,
            f"Restoration Mode's reconciliation of project {after.id} failed (attempt "
            f"{after.failure_count}) and is retried: {failure}",
        ),
    ]
