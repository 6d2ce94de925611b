"""The per-project Restoration Mode record as stored in the ``restoration_mode`` collection, typed.

Owns the record's shape: :class:`ModeRecord` and the parts it holds (the trigger, each agent heard, the
chosen agent, failures, the restore that armed the project, the history of exits). A stored document is
outside input (``store.records.Stored``): a malformed one is a StoreError naming the project and the field,
and a record writes back exactly the keys its document had. May import ``opsmgr.store.records``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from opsmgr.store.records import Stored


class ModeState(StrEnum):
    INACTIVE = "INACTIVE"  # not in Restoration Mode
    COLLECTING = "COLLECTING"  # gathering (version, timestamp, hostname) from every agent
    AWAITING_UPLOAD = "AWAITING_UPLOAD"  # the agent with the latest config was asked to upload it
    RETRY_WAIT = "RETRY_WAIT"  # reconciliation failed; it runs again after a backoff
    FORCED_EXIT_CONVERGING = "FORCED_EXIT_CONVERGING"  # forced out; waiting for every agent to converge
    ARMED = "ARMED"  # restored; waiting for each known agent's first poll before accepting changes


class TriggerReason(Stored):
    hostname: str
    agent_config_version: int
    restored_config_version: int
    detail: str


class HeardAgent(Stored):
    """What an agent said: the version it holds, since when, that config's hash, when it was heard, and when
    its claim (the hash, from its status report) of that version first came in."""

    version: int
    timestamp: int = 0
    config_hash: str | None = None
    heard_at: int | None = None
    claimed_at: int | None = None


class ChosenAgent(Stored):
    """The agent asked to upload its config, with what it claimed to hold."""

    hostname: str
    config_version: int
    timestamp: int = 0
    config_hash: str | None = None


class MissingHost(Stored):
    hostname: str
    reason: str


class Failure(Stored):
    at: int
    reason: str


class ArmedBy(Stored):
    """The restore that wrote the application database (``restoration.record.RestoreRecord.summary``)."""

    restore_job_id: str
    restored_at: int | None = None
    point: int | None = None


class Exit(Stored):
    triggered_at: int | None = None
    exited_at: int
    exit_reason: str
    authoritative_version: int
    failure_count: int = 0


class ModeRecord(Stored):
    """One project's Restoration Mode record (``_id`` is the project id)."""

    id: str = Field(alias="_id")
    state: ModeState = ModeState.INACTIVE
    failure_count: int = 0
    agents: dict[str, HeardAgent] = Field(default_factory=dict)
    missing_hosts: list[MissingHost] = Field(default_factory=list)
    history: list[Exit] = Field(default_factory=list)
    triggered_at: int | None = None
    trigger_reason: TriggerReason | None = None
    restored_config_version: int | None = None
    collecting_since: int | None = None
    updated_at: int | None = None
    chosen_agent: ChosenAgent | None = None
    upload_requested_at: int | None = None
    last_failure: Failure | None = None
    next_attempt_at: int | None = None
    exited_at: int | None = None
    exit_reason: str | None = None
    authoritative_version: int | None = None
    forced_version: int | None = None
    awaiting_convergence: list[str] = Field(default_factory=list)
    armed_at: int | None = None
    armed_by: ArmedBy | None = None
    awaiting_hosts: list[str] = Field(default_factory=list)
    disarmed_at: int | None = None
    disarm_reason: str | None = None
    snapshots_queued: list[str] = Field(default_factory=list)

    @classmethod
    def new(cls, group_id: str) -> ModeRecord:
        """A project's record before it ever entered the mode (the keys a first write has always had)."""
        return cls(
            id=group_id, state=ModeState.INACTIVE, failure_count=0, agents={}, missing_hosts=[], history=[]
        )

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ModeRecord:
        return cls.parse_stored(doc, f"the stored Restoration Mode record of project {doc.get('_id', '?')!r}")
