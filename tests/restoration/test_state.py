"""The typed Restoration Mode record: documents as stored before it existed read and write back unchanged, the
decisions write exactly the documents the dict-based code wrote, and a malformed stored record is a
StoreError naming the project and the field, also through the service."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from opsmgr.automation.service import AutomationService
from opsmgr.errors import StoreError
from opsmgr.restoration import mode
from opsmgr.restoration.mode import AgentReport, Fail, ModeState
from opsmgr.restoration.service import RESTORATION, RestorationService
from opsmgr.restoration.state import ArmedBy, MissingHost, ModeRecord
from opsmgr.store.engine import Store

HASH = "ab" * 32
TRIGGER = {
    "hostname": "a.rm.sim",
    "agentConfigVersion": 3,
    "restoredConfigVersion": 1,
    "detail": "agent a.rm.sim holds automation config version 3, higher than the restored version 1",
}
# Written by the dict-based code (before the typed record) for the same steps as the tests below take.
NEW = {"_id": "g1", "state": "INACTIVE", "failureCount": 0, "agents": {}, "missingHosts": [], "history": []}
AWAITING_UPLOAD = {
    **NEW,
    "state": "AWAITING_UPLOAD",
    "agents": {
        "a.rm.sim": {"version": 3, "timestamp": 0, "configHash": None, "heardAt": 1000},
        "b.rm.sim": {"version": 3, "timestamp": 900, "configHash": HASH, "heardAt": 1100, "claimedAt": 1100},
    },
    "triggeredAt": 1000,
    "updatedAt": 1200,
    "collectingSince": 1000,
    "triggerReason": TRIGGER,
    "restoredConfigVersion": 1,
    "chosenAgent": {"hostname": "b.rm.sim", "configVersion": 3, "timestamp": 900, "configHash": HASH},
    "exitedAt": None,
    "exitReason": None,
    "lastFailure": None,
    "uploadRequestedAt": 1200,
}
FORCED = {
    **NEW,
    "state": "FORCED_EXIT_CONVERGING",
    "failureCount": 1,
    # A failed round keeps what it heard (issue 18), but not the claim of the host the failure names.
    "agents": {
        "a.rm.sim": {"version": 3, "timestamp": 0, "configHash": None, "heardAt": 1000},
        "b.rm.sim": {"version": 3, "timestamp": 900, "configHash": None, "heardAt": 1100, "claimedAt": 1100},
    },
    "missingHosts": [{"hostname": "b.rm.sim", "reason": "no"}],
    "history": [
        {
            "triggeredAt": 1000,
            "exitedAt": 4000,
            "exitReason": "forced exit: restored configuration accepted",
            "authoritativeVersion": 5,
            "failureCount": 1,
        }
    ],
    "triggeredAt": 1000,
    "updatedAt": 4000,
    "collectingSince": 3000,
    "triggerReason": TRIGGER,
    "restoredConfigVersion": 1,
    "chosenAgent": None,
    "exitedAt": 4000,
    "exitReason": "forced exit: restored configuration accepted",
    "lastFailure": {"at": 2000, "reason": "x"},
    "uploadRequestedAt": 1200,
    "nextAttemptAt": None,
    "authoritativeVersion": 5,
    "forcedVersion": 5,
    "awaitingConvergence": ["a.rm.sim", "b.rm.sim"],
    "snapshotsQueued": ["s1"],
}
DISARMED = {
    **NEW,
    "_id": "g2",
    "armedAt": 9,
    "updatedAt": 11,
    "armedBy": {"restoreJobId": "j1", "restoredAt": 5, "point": 7},
    "awaitingHosts": [],
    "disarmedAt": 11,
    "disarmReason": "every agent of the restored config polled; none holds a newer config",
}


@pytest.mark.parametrize("doc", [NEW, AWAITING_UPLOAD, FORCED, DISARMED], ids=lambda d: str(d["state"]))
def test_a_stored_document_round_trips_unchanged(doc: dict[str, Any]) -> None:
    rec = ModeRecord.from_doc(copy.deepcopy(doc))
    assert rec.to_doc() == doc
    assert ModeRecord.from_doc(rec.to_doc()) == rec


def test_the_decisions_write_the_documents_the_dict_based_code_wrote() -> None:
    rec = mode.enter(
        mode.new_record("g1"), hostname="a.rm.sim", agent_version=3, restored_version=1, now=1000
    )
    rec = mode.heard(rec, AgentReport("a.rm.sim", 3, 0), 1000)
    rec = mode.heard(rec, AgentReport("b.rm.sim", 3, 900, HASH), 1100)
    rec = mode.request_upload(rec, AgentReport("b.rm.sim", 3, 900, HASH), 1200)
    assert rec.to_doc() == AWAITING_UPLOAD
    rec = mode.record_failure(rec, Fail("x", [MissingHost(hostname="b.rm.sim", reason="no")]), 2000, 1000)
    rec = mode.next_round(rec, 3000, reset_failures=False)
    rec = mode.force_exit(rec, served_version=5, expected={"a.rm.sim", "b.rm.sim"}, now=4000)
    assert rec.changed(snapshots_queued=["s1"]).to_doc() == FORCED
    armed = mode.arm(
        mode.new_record("g2"),
        hosts=["b", "a"],
        restore=ArmedBy(restore_job_id="j1", restored_at=5, point=7),
        now=9,
    )
    armed = mode.heard_while_armed(mode.heard_while_armed(armed, "a", 10), "b", 11)
    assert armed.state is ModeState.INACTIVE and armed.to_doc() == DISARMED


def test_a_change_names_a_field_the_record_has() -> None:
    with pytest.raises(TypeError, match="no field"):
        mode.new_record("g").changed(stat=ModeState.ARMED)


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({**NEW, "state": "SLEEPING"}, "state"),
        ({**NEW, "failureCount": "many"}, "failureCount"),
        ({**NEW, "agents": {"a": {"timestamp": 1}}}, "agents.a.version"),
        ({**AWAITING_UPLOAD, "chosenAgent": {"hostname": "b"}}, "chosenAgent.configVersion"),
        ({**NEW, "stat": "INACTIVE"}, "stat"),
        ({"state": "INACTIVE"}, "_id"),
    ],
)
def test_a_malformed_stored_record_is_a_store_error_naming_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(StoreError) as raised:
        ModeRecord.from_doc(doc)
    assert raised.value.http_status == 503 and raised.value.error_code == "STORED_RECORD_MALFORMED"
    assert "Restoration Mode record of project" in raised.value.detail and field in raised.value.detail


def test_the_service_reports_a_malformed_stored_record(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'appdb.sqlite'}")
    automation = AutomationService(store, str, str, validate_transition=lambda old, new: None)
    service = RestorationService(store, automation, enabled=True, poll_interval_s=1.0)
    with store.tx() as t:
        t.put(RESTORATION, {**NEW, "_id": "g9", "agents": {"a": {"version": "three"}}})
    with pytest.raises(StoreError, match=r"project 'g9' is malformed.*agents\.a\.version"):
        service.guard("g9")
    with pytest.raises(StoreError, match="project 'g9'"):
        service.tick()
