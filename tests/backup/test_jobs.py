"""Restore jobs as a state machine: the transition table move by move (a refused move raises a Conflict and
writes nothing), creation, and the lifecycles of both kinds, with what each move does beside the job (the
target's processes disabled and enabled, the agents' work announced) committed in the same transaction or
not at all."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest

from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.backup.backing_jobs import BackingRestores
from opsmgr.backup.clusters import Clusters
from opsmgr.backup.daemon import BackupDaemon, SourceKind
from opsmgr.backup.jobs import (
    BACKING_JOBS,
    DEPLOYMENT_JOBS,
    DeploymentRestores,
    Download,
    IntoDeployment,
    JobLog,
    JobState,
    parse_delivery,
    target_fields,
)
from opsmgr.backup.slices import SliceStatus
from opsmgr.errors import Conflict, InvalidInput, NotFound, StoreError
from opsmgr.store import Store
from opsmgr.store.engine import Change, Txn
from tests.backup.backuptest import FakeClock, StoreAgent, Stores

Q, R, F, X, C = JobState.QUEUED, JobState.RUNNING, JobState.FINISHED, JobState.FAILED, JobState.CANCELLED
# Spelled out rather than read from the module: the table under test.
ALLOWED = {(Q, R), (Q, F), (Q, X), (Q, C), (R, F), (R, X), (R, C)}
GOAL = "goal"  # the fake targets' stand-in for the goal configs
PROCESSES = ["rs0_0", "rs0_1", "rs0_2"]


def last_ts(store: Store) -> int | None:
    return store.oplog_bounds().last_ts


@pytest.mark.parametrize(("current", "to"), list(itertools.product(JobState, JobState)))
def test_every_move_of_the_table(stores: Stores, current: JobState, to: JobState) -> None:
    log = JobLog(stores.app, DEPLOYMENT_JOBS)
    stores.app.put(DEPLOYMENT_JOBS, {"_id": "j1", "statusName": current.value})
    before = last_ts(stores.app)
    if (current, to) in ALLOWED:
        moved = log.transition("j1", to, finished=7)
        assert moved == {"_id": "j1", "statusName": to.value, "finished": 7}
        assert stores.app.get(DEPLOYMENT_JOBS, "j1") == moved
        return
    with pytest.raises(Conflict) as refused:
        log.transition("j1", to, finished=7)
    assert refused.value.parameters == {"jobId": "j1"}
    expected = f"already {current.value}" if current in (F, X, C) else f"from {current.value} to {to.value}"
    assert expected in refused.value.detail
    assert stores.app.get(DEPLOYMENT_JOBS, "j1") == {"_id": "j1", "statusName": current.value}
    assert last_ts(stores.app) == before  # nothing written


@pytest.mark.parametrize("state", list(JobState))
def test_a_job_begins_queued_or_finished(stores: Stores, state: JobState) -> None:
    log = JobLog(stores.app, BACKING_JOBS)
    if state in (Q, F):
        log.create({"_id": "j1", "statusName": state.value})
        assert stores.app.get(BACKING_JOBS, "j1") == {"_id": "j1", "statusName": state.value}
        return
    with pytest.raises(Conflict):
        log.create({"_id": "j1", "statusName": state.value})
    assert stores.app.get(BACKING_JOBS, "j1") is None


def test_a_missing_job_is_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound):
        JobLog(stores.app, DEPLOYMENT_JOBS).transition("nope", R)


@pytest.mark.parametrize(
    ("delivery", "field"),
    [
        (None, "delivery"),
        ({"methodName": "FTP"}, "delivery.methodName"),
        ({"methodName": "HTTP", "expirationHours": 169}, "delivery.expirationHours"),
        ({"methodName": "HTTP", "maxDownloads": 0}, "delivery.maxDownloads"),
        ({"methodName": "HTTP", "maxDownloads": True}, "delivery.maxDownloads"),
        ({"methodName": "AUTOMATED_RESTORE", "targetGroupId": "g"}, "delivery.targetClusterId"),
    ],
)
def test_a_delivery_is_parsed_or_refused_naming_the_field(delivery: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_delivery({"delivery": delivery})
    assert refused.value.field == field


def test_deliveries_parse() -> None:
    assert parse_delivery({"delivery": {"methodName": "HTTP"}}) == Download(1, 1)
    automated = {"methodName": "AUTOMATED_RESTORE", "targetGroupId": "g2", "targetClusterId": "c2"}
    assert parse_delivery({"delivery": automated}) == IntoDeployment("g2", "c2")


class FakeTargets:
    """Goal configs as one document per project in the application database: which processes are
    disabled. ``fail`` refuses every change after writing it (a config write that fails midway)."""

    def __init__(self) -> None:
        self.fail = False
        self.refused: set[str] = set()

    def guard(self, group_id: str) -> None:
        if group_id in self.refused:
            raise Conflict(f"project {group_id} is in Restoration Mode")

    def processes(self, group_id: str, replica_set: str) -> list[dict[str, Any]]:
        return [{"name": n, "hostname": f"{n}.example"} for n in PROCESSES]

    def set_disabled(self, t: Txn, group_id: str, names: Sequence[str], disabled: bool) -> None:
        t.put(GOAL, {"_id": group_id, "disabled": sorted(names) if disabled else []})
        if self.fail:
            raise Conflict("the goal config changed meanwhile")


class Grants:
    def __call__(self, job_id: str, expires_ms: int, downloads: int) -> dict[str, Any]:
        return {"for": job_id, "expiresMs": expires_ms, "maxDownloads": downloads}


@pytest.fixture
def cluster_id(daemon: BackupDaemon, stores: Stores, source_store: Store) -> str:
    """A cluster of project g1 with one snapshot of its source."""
    (cluster,) = Clusters(stores.app, daemon).ensure("g1", ["rs0"])
    src = daemon.register_source("g1", cluster["_id"], "rs0", SourceKind.BACKING_DATABASE)
    source_store.insert("things", {"_id": "a"})
    StoreAgent(daemon, src.id, source_store).sync()
    daemon.take_snapshot(src.id)
    return str(cluster["_id"])


@pytest.fixture
def changes(stores: Stores) -> list[Change]:
    seen: list[Change] = []
    stores.app.on_change(seen.append)
    return seen


@pytest.fixture
def targets() -> FakeTargets:
    return FakeTargets()


@pytest.fixture
def restores(
    stores: Stores, daemon: BackupDaemon, targets: FakeTargets, clock: FakeClock
) -> DeploymentRestores:
    return DeploymentRestores(stores.app, daemon, targets, Grants(), clock.now)


def snapshot_of(daemon: BackupDaemon, source_id: str) -> dict[str, str]:
    return {"snapshotId": daemon.snapshots(source_id)[0].id}


def automated(restores: DeploymentRestores, cluster_id: str) -> dict[str, Any]:
    target = snapshot_of(restores.daemon, restores.daemon.sources("g1", cluster_id)[0].id)
    return restores.create("g1", cluster_id, target, IntoDeployment("g1", cluster_id))


def test_an_automated_restore_is_created_with_its_target_disabled(
    restores: DeploymentRestores, cluster_id: str, stores: Stores, changes: list[Change]
) -> None:
    job = automated(restores, cluster_id)
    assert job["statusName"] == "QUEUED" and job["pending"] == PROCESSES
    assert job["delivery"]["targetReplicaSetName"] == "rs0"
    assert stores.app.get(DEPLOYMENT_JOBS, job["_id"]) == job
    assert stores.app.get(GOAL, "g1") == {"_id": "g1", "disabled": PROCESSES}
    assert Change(WORK_CHANGED, "g1") in changes
    assert [j.job_id for j in restores.loading("g1")] == [job["_id"]]


def test_a_failure_between_insert_and_disable_leaves_neither(
    restores: DeploymentRestores, targets: FakeTargets, cluster_id: str, stores: Stores, changes: list[Change]
) -> None:
    targets.fail = True
    before = last_ts(stores.app)
    with pytest.raises(Conflict):
        automated(restores, cluster_id)
    assert stores.app.find(DEPLOYMENT_JOBS) == [] and stores.app.get(GOAL, "g1") is None
    assert last_ts(stores.app) == before and changes == []


def test_restoration_mode_refuses_a_restore_job(
    restores: DeploymentRestores, targets: FakeTargets, cluster_id: str, stores: Stores
) -> None:
    targets.refused.add("g1")
    with pytest.raises(Conflict):
        automated(restores, cluster_id)
    assert stores.app.find(DEPLOYMENT_JOBS) == [] and stores.app.get(GOAL, "g1") is None


def test_an_automated_restore_loads_host_by_host_and_ends_with_its_target_enabled(
    restores: DeploymentRestores, cluster_id: str, stores: Stores, clock: FakeClock
) -> None:
    job = automated(restores, cluster_id)
    resolved = restores.open_for_loading("g1", job["_id"])
    assert len(list(restores.documents(resolved, job["_id"]))) == 1
    assert restores.get("g1", cluster_id, job["_id"])["statusName"] == "RUNNING"
    restores.open_for_loading("g1", job["_id"])  # a second host's download: still RUNNING
    partial = restores.report("g1", job["_id"], "h0", ["rs0_0", "rs0_1"], "DONE", "")
    assert partial["statusName"] == "RUNNING" and partial["pending"] == ["rs0_2"]
    assert stores.app.get(GOAL, "g1") == {"_id": "g1", "disabled": PROCESSES}
    done = restores.report("g1", job["_id"], "h2", ["rs0_2"], "DONE", "")
    assert done["statusName"] == "FINISHED" and done["finished"] == int(clock.now() * 1000)
    assert stores.app.get(GOAL, "g1") == {"_id": "g1", "disabled": []}
    assert restores.loading("g1") == []
    before = last_ts(stores.app)
    with pytest.raises(Conflict, match="already FINISHED"):
        restores.report("g1", job["_id"], "h2", ["rs0_2"], "FAILED", "late")
    assert last_ts(stores.app) == before


def test_a_failed_load_fails_the_job_and_enables_the_target(
    restores: DeploymentRestores, cluster_id: str, stores: Stores
) -> None:
    job = automated(restores, cluster_id)
    failed = restores.report("g1", job["_id"], "h1", ["rs0_1"], "FAILED", "disk full")
    assert failed["statusName"] == "FAILED" and failed["failure"] == "h1: disk full"
    assert stores.app.get(GOAL, "g1") == {"_id": "g1", "disabled": []}


def test_an_end_whose_target_cannot_be_enabled_changes_nothing(
    restores: DeploymentRestores, targets: FakeTargets, cluster_id: str, stores: Stores
) -> None:
    job = automated(restores, cluster_id)
    targets.fail = True
    with pytest.raises(Conflict):
        restores.report("g1", job["_id"], "h0", PROCESSES, "DONE", "")
    assert stores.app.get(DEPLOYMENT_JOBS, job["_id"]) == job  # still QUEUED, every process pending
    assert stores.app.get(GOAL, "g1") == {"_id": "g1", "disabled": PROCESSES}


def test_reports_are_refused_for_bad_input_and_other_projects(
    restores: DeploymentRestores, cluster_id: str
) -> None:
    job = automated(restores, cluster_id)
    with pytest.raises(InvalidInput):
        restores.report("g1", job["_id"], "h0", "rs0_0", "DONE", "")
    with pytest.raises(InvalidInput):
        restores.report("g1", job["_id"], "h0", ["rs0_0"], "LOADED", "")
    with pytest.raises(NotFound):
        restores.report("g2", job["_id"], "h0", ["rs0_0"], "DONE", "")
    with pytest.raises(NotFound):
        restores.open_for_loading("g2", job["_id"])


def test_a_download_job_is_finished_at_once_and_its_grant_used_in_one_transaction(
    restores: DeploymentRestores, cluster_id: str, stores: Stores, clock: FakeClock
) -> None:
    target = snapshot_of(restores.daemon, restores.daemon.sources("g1", cluster_id)[0].id)
    job = restores.create("g1", cluster_id, target, Download(2, 3))
    assert job["statusName"] == "FINISHED" and "pending" not in job
    now_ms = int(clock.now() * 1000)
    assert job["download"] == {"for": job["_id"], "expiresMs": now_ms + 2 * 3600_000, "maxDownloads": 3}
    assert stores.app.get(GOAL, "g1") is None

    def spend(found: dict[str, Any] | None) -> dict[str, Any]:
        assert found is not None
        return {**found, "download": {**found["download"], "used": found["download"].get("used", 0) + 1}}

    used, resolved = restores.use_download(job["_id"], spend)
    assert used["download"]["used"] == 1 == stores.app.get(DEPLOYMENT_JOBS, job["_id"])["download"]["used"]
    assert [doc["_id"] for _, doc in restores.documents(resolved, job["_id"])] == ["a"]

    def refuse(found: dict[str, Any] | None) -> dict[str, Any]:
        raise NotFound("no such download")

    with pytest.raises(NotFound):
        restores.use_download(job["_id"], refuse)
    assert stores.app.get(DEPLOYMENT_JOBS, job["_id"])["download"]["used"] == 1


# Restore jobs of backing databases.


@pytest.fixture
def backing(daemon: BackupDaemon, stores: Stores, source_store: Store) -> dict[str, Any]:
    """A deployment of backing databases whose application database has a snapshot."""
    cluster = Clusters(stores.app, daemon).create_backing("g1", "stores", "primary.example")
    app = next(s for s in daemon.sources("g1", cluster["_id"]) if s.name == "app")
    source_store.insert("things", {"_id": "a"})
    StoreAgent(daemon, app.id, source_store).sync()
    daemon.take_snapshot(app.id)
    return cluster


def test_a_backing_restore_runs_from_its_first_download_and_ends_once(
    daemon: BackupDaemon, stores: Stores, backing: dict[str, Any], clock: FakeClock
) -> None:
    jobs = BackingRestores(stores.app, daemon, lambda _g: None, clock.now)
    app = next(s for s in daemon.sources("g1", backing["_id"]) if s.name == "app")
    job = jobs.create("g1", backing["_id"], {"app": snapshot_of(daemon, app.id)})
    assert job["statusName"] == "QUEUED" and set(job["stores"]) == {"app"}
    with pytest.raises(NotFound):
        jobs.open_store("g1", backing["_id"], job["_id"], "oplog")
    jobs.open_store("g1", backing["_id"], job["_id"], "app")
    assert jobs.get("g1", backing["_id"], job["_id"])["statusName"] == "RUNNING"
    with pytest.raises(InvalidInput):
        jobs.finish("g1", backing["_id"], job["_id"], "RUNNING", "")
    done = jobs.finish("g1", backing["_id"], job["_id"], "FINISHED", "ok")
    assert done["statusName"] == "FINISHED" and done["detail"] == "ok"
    app_source = job["stores"]["app"]["sourceId"]
    assert daemon.acknowledged(app_source).status is SliceStatus.SYNC_REQUIRED  # restored: a new history
    for again in (
        lambda: jobs.finish("g1", backing["_id"], job["_id"], "FAILED", ""),
        lambda: jobs.open_store("g1", backing["_id"], job["_id"], "app"),
    ):
        with pytest.raises(Conflict, match="already FINISHED"):
            again()
    assert jobs.get("g1", backing["_id"], job["_id"]) == done


def test_a_drills_restore_leaves_the_production_backup_as_it_was(
    daemon: BackupDaemon, stores: Stores, backing: dict[str, Any], clock: FakeClock
) -> None:
    jobs = BackingRestores(stores.app, daemon, lambda _g: None, clock.now)
    app = next(s for s in daemon.sources("g1", backing["_id"]) if s.name == "app")
    before = daemon.acknowledged(app.id).status
    job = jobs.create("g1", backing["_id"], {"app": snapshot_of(daemon, app.id)}, "DRILL")
    assert job["purpose"] == "DRILL"
    jobs.open_store("g1", backing["_id"], job["_id"], "app")
    done = jobs.finish("g1", backing["_id"], job["_id"], "FINISHED", "sandbox restored")
    assert done["statusName"] == "FINISHED" and done["purpose"] == "DRILL"
    after = daemon.acknowledged(app.id).status
    assert after is before and after is not SliceStatus.SYNC_REQUIRED, "no new history: no window hole"
    with pytest.raises(InvalidInput) as refused:
        jobs.create("g1", backing["_id"], {"app": snapshot_of(daemon, app.id)}, "PRACTICE")
    assert refused.value.field == "purpose"
    assert jobs.create("g1", backing["_id"], {"app": snapshot_of(daemon, app.id)})["purpose"] == "RESTORE"


def test_a_backing_restore_is_planned_whole_before_it_is_recorded(
    daemon: BackupDaemon, stores: Stores, backing: dict[str, Any]
) -> None:
    jobs = BackingRestores(stores.app, daemon, lambda _g: None)
    for targets, field in (
        ({}, "stores"),
        ({"nope": {}}, "stores.nope"),
        ({"app": 5}, "stores.app"),
        ({"app": {"pointInTimeUTCMillis": 0}}, "pointInTimeUTCMillis"),
    ):
        with pytest.raises(InvalidInput) as refused:
            jobs.create("g1", backing["_id"], targets)
        assert refused.value.field == field, refused.value.detail
    assert stores.app.find(BACKING_JOBS) == []


def test_restoration_mode_refuses_a_backing_restore(
    daemon: BackupDaemon, stores: Stores, backing: dict[str, Any]
) -> None:
    def guard(group_id: str) -> None:
        raise Conflict(f"{group_id} is in Restoration Mode")

    with pytest.raises(Conflict):
        BackingRestores(stores.app, daemon, guard).create("g1", backing["_id"], {"app": {}})
    assert stores.app.find(BACKING_JOBS) == []


def test_a_malformed_stored_job_is_a_store_error_not_a_key_error(
    restores: DeploymentRestores, cluster_id: str, stores: Stores
) -> None:
    job = automated(restores, cluster_id)
    broken = {k: v for k, v in job.items() if k != "delivery"}
    stores.app.put(DEPLOYMENT_JOBS, broken)
    before = last_ts(stores.app)
    with pytest.raises(StoreError, match=r"restore job .* is malformed \(delivery: Field required"):
        restores.loading("g1")
    with pytest.raises(StoreError):
        restores.report("g1", job["_id"], "h0", PROCESSES, "DONE", "")
    with pytest.raises(StoreError):
        restores.get("g1", cluster_id, job["_id"])
    assert last_ts(stores.app) == before and stores.app.get(DEPLOYMENT_JOBS, job["_id"]) == broken


@pytest.mark.parametrize(
    ("sent", "taken"),
    [
        ({"pointInTimeUTCMillis": 1.7e12}, {"pointInTimeUTCMillis": 1_700_000_000_000}),
        ({"oplogTs": 1_700_000_000.0, "oplogInc": 3.0}, {"oplogTs": 1_700_000_000, "oplogInc": 3}),
        ({"pointInTimeUTCMillis": 1.5}, {"pointInTimeUTCMillis": 1.5}),  # not whole: the plan refuses it
        ({"pointInTimeUTCMillis": float("inf")}, {"pointInTimeUTCMillis": float("inf")}),
        ({"pointInTimeUTCMillis": True}, {"pointInTimeUTCMillis": True}),
        ({"snapshotId": "abc", "delivery": {}}, {"snapshotId": "abc"}),
    ],
)
def test_a_whole_number_sent_as_a_float_is_that_integer(sent: dict[str, Any], taken: dict[str, Any]) -> None:
    fields = target_fields(sent)
    assert fields == taken
    assert [type(v) for v in fields.values()] == [type(v) for v in taken.values()]
