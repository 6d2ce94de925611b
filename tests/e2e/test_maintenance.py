"""Rolling maintenance end to end: a real server, one real ``opsmgr agent`` process per simulated host, every
task of the seed's list carried out as a rolling change on one replica set, watched from the simulated world
(never two members out at once, never a lost majority) and through the public API (the change's state,
reason and figures in ``/maintenance`` and ``automationStatus``, the alert of a member that does not come
back).

One module-scoped deployment carries the whole file: each task starts from the config the previous one left.
The server runs with a short maintenance policy (``mms.maintenance.*`` in its ``conf-mms.properties``) so
that failures show in seconds; the sim's restarts take half a second.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opsmgr.sim.model import WriteLoad
from opsmgr.sim.world import SimWorld
from opsmgr.timestamps import epoch_ms
from tests.configs import replica_set_config
from tests.deployments import QUICK_MAINTENANCE, Deployment
from tests.procs import ServerProcess, started_server, wait_for

pytestmark = pytest.mark.e2e

HOSTS = [f"m{i}.e2e.sim" for i in range(5)]
RS = "rs0"
HEALTHY = {"PRIMARY", "SECONDARY", "ARBITER"}
AUTH_KEY = "c2VjcmV0a2V5ZmlsZWNvbnRlbnQ="


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with started_server(tmp_path_factory.mktemp("server") / "data", QUICK_MAINTENANCE) as srv:
        yield srv


@dataclass
class Watch:
    """Samples the simulated replica set while a change runs: the most members of the set out at once and
    whether a majority of votes was ever missing."""

    world: SimWorld
    status: Callable[[], dict[str, Any]]
    most_out: int = 0
    lost_majority: list[str] = field(default_factory=list)
    samples: int = 0
    steps: set[str] = field(default_factory=set)  # currentStep of the processes in automationStatus
    sentences: set[str] = field(default_factory=set)  # the agents' status sentences
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        for view in self.world.replica_sets():
            if view.name != RS:
                continue
            members = [m for m in view.members if not m.arbiter]
            out = [m for m in members if m.state.value not in HEALTHY]
            self.most_out = max(self.most_out, len(out))
            votes = sum(m.votes for m in view.members)
            up = sum(m.votes for m in view.members if m.state.value in HEALTHY)
            if up < votes // 2 + 1:
                self.lost_majority.append(f"{up}/{votes} at {time.time():.1f}")
            self.samples += 1

    def read_status(self) -> None:
        for p in self.status()["processes"]:
            self.steps.add(p["currentStep"] or "")
            self.sentences.add(p["agentStatus"] or "")

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                self.sample()
                if self.samples % 3 == 0:
                    self.read_status()
            except Exception:  # a busy world file or server: the next sample will do
                continue


class Maintained:
    """The module's deployment: a 3-member set on the first three hosts, plus helpers to change it and to
    follow its rolling changes."""

    def __init__(self, deployment: Deployment, root: Path) -> None:
        self.d = deployment
        self.world = SimWorld.open(root / "world.sqlite")
        self.config = replica_set_config(HOSTS[:3], RS, "7.0.5")

    def set_view(self) -> Any:
        return next(v for v in self.world.replica_sets() if v.name == RS)

    def changes(self) -> list[dict[str, Any]]:
        r = self.d.api.get(f"/groups/{self.d.group_id}/maintenance")
        assert r.status_code == 200, r.text
        return list(r.json()["results"])

    def latest(self) -> dict[str, Any] | None:
        changes = [c for c in self.changes() if c["replicaSet"] == RS]
        return max(changes, key=lambda c: epoch_ms(c["created"] or "1970-01-01")) if changes else None

    def put(self, mutate: Callable[[dict[str, Any]], None]) -> int:
        config = copy.deepcopy(self.config)
        mutate(config)
        version = self.d.put(config)
        self.config = config
        return version

    def roll(
        self, mutate: Callable[[dict[str, Any]], None], members: int = 3
    ) -> tuple[dict[str, Any], Watch]:
        """PUT the change and watch it until the rolling change is DONE and the deployment at goal."""
        before = {c["id"] for c in self.changes()}
        watcher = self.d.server.client(self.d.api_owner)
        watch = Watch(
            self.world, lambda: dict(watcher.get(f"/groups/{self.d.group_id}/automationStatus").json())
        )
        thread = threading.Thread(target=watch.run, daemon=True)
        thread.start()
        try:
            version = self.put(mutate)
            change = wait_for(
                lambda: next((c for c in self.changes() if c["id"] not in before), None), 10, what="a change"
            )
            done = self.wait_state(change["id"], "DONE", 60)
            self.d.wait_goal(version, members)
        finally:
            watch.stop.set()
            thread.join(5)
            watcher.close()
        return done, watch

    def change(self, change_id: str) -> dict[str, Any]:
        r = self.d.api.get(f"/groups/{self.d.group_id}/maintenance/{change_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait_state(self, change_id: str, state: str, timeout: float = 60) -> dict[str, Any]:
        try:
            return dict(wait_for(lambda: (c := self.change(change_id))["state"] == state and c, timeout, 0.2))
        except AssertionError:
            logs = "\n".join(f"--- {h}\n{a.log()[-4000:]}" for h, a in self.d.agents.items())
            raise AssertionError(f"change not {state}: {self.change(change_id)}\n{logs}") from None


@pytest.fixture(scope="module")
def rs(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Maintained]:
    root = tmp_path_factory.mktemp("fleet")
    d = Deployment(server, owner, root, "maintenance")
    try:
        for host in HOSTS:
            d.agent(host)
        m = Maintained(d, root)
        d.wait_goal(d.put(m.config), 3)
        yield m
    finally:
        d.close()


def _all(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        for p in config["processes"]:
            p[key] = value

    return mutate


def _args(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        for p in config["processes"]:
            node = p["args2_6"]
            *parents, leaf = path.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value

    return mutate


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()).replace("Z", f".{time.time_ns() % 10**9:09d}Z")


def _tls(config: dict[str, Any]) -> None:
    _args("net.tls", {"mode": "allowTLS", "certificateKeyFile": "/etc/ssl/mongod.pem"})(config)


def _auth(config: dict[str, Any]) -> None:
    config["auth"] = {
        "disabled": False,
        "autoUser": "mms-automation",
        "autoPwd": "automation-password",
        "autoAuthMechanisms": ["SCRAM-SHA-256"],
        "deploymentAuthMechanisms": ["SCRAM-SHA-256"],
        "key": AUTH_KEY,
        "keyfile": "/var/lib/mongodb-mms-automation/keyfile",
        "usersWanted": [],
        "usersDeleted": [],
    }
    _args("security.transitionToAuth", True)(config)


def _keyfile(config: dict[str, Any]) -> None:
    config["auth"]["key"] = "bmV3a2V5ZmlsZWNvbnRlbnRyb3RhdGVk"


def _member(config: dict[str, Any], name: str, host: str, port: int, member_id: int) -> None:
    proc = copy.deepcopy(config["processes"][0])
    proc.update(name=name, hostname=host)
    proc["args2_6"]["net"]["port"] = port
    proc["args2_6"]["storage"]["dbPath"] = f"/data/{name}"
    proc["args2_6"]["systemLog"]["path"] = f"/data/{name}/mongod.log"
    config["processes"].append(proc)
    config["replicaSets"][0]["members"].append(
        {"_id": member_id, "host": name, "priority": 1, "votes": 1, "arbiterOnly": False, "hidden": False}
    )


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        config["processes"] = [p for p in config["processes"] if p["name"] != name]
        members = config["replicaSets"][0]["members"]
        config["replicaSets"][0]["members"] = [m for m in members if m["host"] != name]

    return mutate


def _cancel_restore(config: dict[str, Any]) -> None:
    for p in config["processes"]:
        p.pop("backupRestoreUrl", None)


def _with_restore_url(config: dict[str, Any]) -> None:
    config["processes"][1]["backupRestoreUrl"] = "https://backup.e2e.sim/restore/0123456789abcdef"


def _grow(config: dict[str, Any]) -> None:
    # Two members on one host: removing one of them leaves the host in the deployment, removing the other
    # decommissions it.
    _member(config, f"{RS}_3", HOSTS[3], 27017, 3)
    _member(config, f"{RS}_4", HOSTS[3], 27018, 4)


@dataclass(frozen=True)
class Task:
    mutate: Callable[[dict[str, Any]], None]
    members: int = 3  # at goal afterwards
    before: Callable[[dict[str, Any]], None] | None = None  # a non-rolling change that sets the task up
    members_before: int = 3
    tasks: frozenset[str] = frozenset()  # the task names the change must carry


TASKS: dict[str, Task] = {
    "version": Task(_all("version", "7.0.6"), tasks=frozenset({"changeVersion"})),
    "args2_6": Task(_args("net.maxIncomingConnections", 2000), tasks=frozenset({"changeArgs"})),
    "oplogSize": Task(_args("replication.oplogSizeMB", 2048), tasks=frozenset({"changeOplogSize"})),
    "tlsOneStep": Task(_tls, tasks=frozenset({"changeTlsMode"})),
    "authModeStep": Task(_auth, tasks=frozenset({"changeAuthMode"})),
    "keyfileRotation": Task(_keyfile, tasks=frozenset({"rotateKeyfile"})),
    "kmipRotation": Task(
        lambda c: _all("lastKmipMasterKeyRotation", _stamp())(c), tasks=frozenset({"rotateKmipMasterKey"})
    ),
    "profiler": Task(
        _args("operationProfiling", {"mode": "slowOp", "slowOpThresholdMs": 50}),
        tasks=frozenset({"changeProfiler"}),
    ),
    "explicitRestart": Task(lambda c: _all("lastRestart", _stamp())(c), tasks=frozenset({"restart"})),
    "cancelRestore": Task(_cancel_restore, before=_with_restore_url, tasks=frozenset({"cancelRestore"})),
    "removeProcess": Task(
        _drop(f"{RS}_3"), members=4, before=_grow, members_before=5, tasks=frozenset({"removeProcess"})
    ),
    "decommissionHost": Task(
        _drop(f"{RS}_4"), members=3, members_before=4, tasks=frozenset({"removeProcess", "decommissionHost"})
    ),
}


def _primary_process(rs: Maintained) -> str | None:
    view = rs.set_view()
    hosts = {f"{p['hostname']}:{p['args2_6']['net']['port']}": p["name"] for p in rs.config["processes"]}
    return hosts.get(view.primary) if view.primary else None


@pytest.mark.parametrize("name", list(TASKS))
def test_each_task_rolls_one_member_at_a_time_with_one_election(rs: Maintained, name: str) -> None:
    task = TASKS[name]
    if task.before is not None:
        rs.d.wait_goal(rs.put(task.before), task.members_before)
    primary = _primary_process(rs)
    elections = rs.set_view().elections
    done, watch = rs.roll(task.mutate, task.members)

    assert set().union(*map(set, done["tasks"].values())) >= task.tasks, done["tasks"]
    assert watch.samples > 5
    # A leaving member is removed from the set's config before it is shut down: it is never out of it.
    leaving = bool(task.tasks & {"removeProcess", "decommissionHost"})
    assert watch.most_out == (0 if leaving else 1), "never more than one member out for maintenance at a time"
    assert watch.lost_majority == [], "the set never lost its majority"
    expected = 1 if primary in done["tasks"] else 0
    assert rs.set_view().elections - elections == expected, "one planned election when the primary rolls"
    report = done["report"]
    assert report["plannedElections"] == expected and report["elections"] == expected, report
    assert done["progress"]["stepsDone"] == done["progress"]["stepsTotal"] > 0
    assert set(report["memberSecsOut"]) == set(done["tasks"]), "each maintained member's time out"
    if not leaving:
        # Each step is a plan move in automationStatus, and the agents' sentences name it.
        assert watch.steps & {"RestartStandalone", "PerformTask", "RestartReplSet", "WaitSecondaryCaughtUp"}
        named = [s for s in watch.sentences if re.match(rf"{RS}: \w+ m\d\.e2e\.sim:\d+ \(.+\)", s)]
        assert named, watch.sentences
    if expected:
        step_down = report["stepDowns"][0]
        assert step_down["connectionsDropped"] is not None
        assert 0 <= step_down["noWritablePrimarySecs"] < 10
    entry = next(m for m in rs.d.status()["maintenance"] if m["replicaSet"] == RS)
    assert entry["state"] == "DONE" and entry["changeId"] == done["id"]


def _secondaries(rs: Maintained) -> list[tuple[str, str]]:
    """(process, host) of the members that are not primary, in config order (the procedure's order when
    priorities are equal)."""
    primary = _primary_process(rs)
    return [(p["name"], p["hostname"]) for p in rs.config["processes"] if p["name"] != primary]


def _pids(rs: Maintained, names: list[tuple[str, str]]) -> dict[str, int | None]:
    return {name: rs.world.observe(host, name).pid for name, host in names}


def _open_alerts(rs: Maintained) -> list[dict[str, Any]]:
    r = rs.d.api.get(f"/groups/{rs.d.group_id}/alerts", params={"status": "OPEN"})
    assert r.status_code == 200, r.text
    return [a for a in r.json()["results"] if a["eventTypeName"] == "MAINTENANCE_MEMBER_FAILED"]


def _new_change(rs: Maintained, before: set[str]) -> dict[str, Any]:
    return dict(wait_for(lambda: next((c for c in rs.changes() if c["id"] not in before), None), 10))


def _maintenance_entry(rs: Maintained) -> dict[str, Any]:
    return dict(next(m for m in rs.d.status()["maintenance"] if m["replicaSet"] == RS))


def test_a_member_that_does_not_come_back_stops_the_change_raises_an_alert_and_resumes(
    rs: Maintained,
) -> None:
    (first, host), *others = _secondaries(rs)
    rs.world.fail_start(host, first)
    before = {c["id"] for c in rs.changes()}
    try:
        version = rs.put(_all("lastRestart", _stamp()))
        change = _new_change(rs, before)
        failed = rs.wait_state(change["id"], "FAILED", 60)
        assert first in failed["reason"]
        untouched = _pids(rs, others)
        assert all(untouched.values())
        wait_for(lambda: _open_alerts(rs), 15, what="the alert")
        alert = _open_alerts(rs)[0]
        assert alert["replicaSetName"] == RS and first in alert["message"]
        entry = _maintenance_entry(rs)
        assert entry["state"] == "FAILED" and first in entry["reason"], entry
        agent_of_first = next(p for p in rs.d.status()["processes"] if p["name"] == first)
        assert "rs0" in (agent_of_first["agentStatus"] or "")
        # The change stops there: the other members stay as they were while it is failed.
        assert _pids(rs, others) == untouched
    finally:
        rs.world.heal()
    rs.wait_state(change["id"], "DONE", 90)
    rs.d.wait_goal(version, 3)
    assert _open_alerts(rs) == [], "the alert closes once the member is back"
    assert any(e["state"] == "DONE" for e in rs.changes() if e["id"] == change["id"])


def test_another_member_down_blocks_the_change_until_it_heals(rs: Maintained) -> None:
    victim, host = _secondaries(rs)[-1]
    rs.world.cut_host(host)
    before = {c["id"] for c in rs.changes()}
    try:
        version = rs.put(_all("lastRestart", _stamp()))
        change = _new_change(rs, before)

        def blocked() -> bool:
            c = rs.change(change["id"])
            return c["state"] == "BLOCKED" and victim in (c["reason"] or "")

        wait_for(blocked, 30, 0.2, what="blocked by the fault tolerance check")
        entry = _maintenance_entry(rs)
        assert entry["state"] == "BLOCKED" and "unavailable" in entry["reason"], entry
        assert rs.change(change["id"])["progress"]["membersDone"] == []
    finally:
        rs.world.reconnect_host(host)
    rs.wait_state(change["id"], "DONE", 90)
    rs.d.wait_goal(version, 3)


def test_an_oplog_window_too_small_blocks_naming_oplog_size(rs: Maintained) -> None:
    rs.roll(_args("replication.oplogSizeMB", 1))
    set_id = rs.set_view().id
    rs.world.set_write_load(set_id, WriteLoad(rate=200, payload_bytes=2000, keys=5000))
    try:
        wait_for(lambda: (rs.set_view().writes or 0) > 1000, 30, what="the oplog filling up")
        before = {c["id"] for c in rs.changes()}
        rs.put(_all("lastRestart", _stamp()))
        change = _new_change(rs, before)

        def blocked() -> dict[str, Any] | None:
            c = rs.change(change["id"])
            return c if c["state"] == "BLOCKED" and "oplogSizeMB" in (c["reason"] or "") else None

        c = wait_for(blocked, 30, 0.2, what="blocked by the oplog window check")
        assert "replication.oplogSizeMB" in c["reason"]
        assert c["progress"]["membersDone"] == [] and c["progress"]["currentMember"] is None
    finally:
        rs.world.set_write_load(set_id, WriteLoad())


def test_a_rename_with_accepted_downtime_comes_back_under_the_new_name(rs: Maintained) -> None:
    def rename(config: dict[str, Any]) -> None:
        config["replicaSets"][0]["_id"] = "rs9"
        config["replicaSets"][0]["maintenance"] = {"acceptDowntime": True}
        _args("replication.replSetName", "rs9")(config)

    before = {c["id"] for c in rs.changes()}
    version = rs.put(rename)
    change = _new_change(rs, before)
    assert change["replicaSet"] == "rs9" and change["previousName"] == RS
    rs.wait_state(change["id"], "DONE", 90)
    rs.d.wait_goal(version, 3)
    view = next(v for v in rs.world.replica_sets() if v.name == "rs9")
    assert view.primary is not None and len(view.members) == 3
