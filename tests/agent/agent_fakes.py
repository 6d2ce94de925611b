"""An in-memory stand-in for a driver's world and a scripted agent API server, for the loop tests.

The fake world is deliberately crude (elections are instant, data is not modelled) but keeps the rules the
agent depends on: replSetInitiate needs every named member up and not yet in a set, replSetReconfig is
accepted only by the primary, with a higher version and at most one voting member changed, and a member
adopts the set's config as soon as it runs in replSet mode and is named in it.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from opsmgr.drivers.base import (
    CommandConflict,
    MemberState,
    MemberStatus,
    OplogRecord,
    OplogWindow,
    ProcessObservation,
    ProcessSpec,
    RsStatus,
    RunMode,
    StorageSample,
)

MUTATING = ("start", "stop", "initiate", "reconfig", "step_down", "load")


@dataclass
class FakeProc:
    spec: ProcessSpec
    running: bool = True
    in_set: str | None = None  # the replica set whose config this process has on disk
    state: MemberState = MemberState.STARTUP

    @property
    def addr(self) -> str:
        return f"{self.spec.hostname}:{self.spec.port}"

    @property
    def mode(self) -> RunMode:
        return RunMode.REPLSET if self.spec.repl_set_name else RunMode.STANDALONE


@dataclass
class FakeWorld:
    procs: dict[str, FakeProc] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    stepped_down: set[str] = field(default_factory=set)
    loaded: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)

    def mutations(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] in MUTATING]

    def _up(self, rs_id: str) -> dict[str, FakeProc]:
        return {
            p.addr: p
            for p in self.procs.values()
            if p.running and p.mode is RunMode.REPLSET and p.spec.repl_set_name == rs_id
        }

    def settle(self) -> None:
        for rs_id, config in self.configs.items():
            members = {m["host"]: m for m in config["members"]}
            up = self._up(rs_id)
            for a, p in up.items():
                if a in members:
                    p.in_set = rs_id
                elif p.in_set == rs_id:
                    p.state = MemberState.REMOVED
            live = {a: p for a, p in up.items() if a in members}
            voters = [a for a, m in members.items() if m.get("votes", 1) == 1]
            majority = 2 * sum(1 for a in voters if a in live) > len(voters)
            primary = next((a for a, p in live.items() if p.state is MemberState.PRIMARY), None)
            if not majority or (primary is not None and not _electable(members[primary])):
                primary = None
            top = max((members[a].get("priority", 1) for a in live if _electable(members[a])), default=0)
            if primary is not None and members[primary].get("priority", 1) < top:
                primary = None  # priority takeover
            if primary is None and majority:
                candidates = [a for a in live if _electable(members[a])]
                fresh = [a for a in candidates if live[a].spec.name not in self.stepped_down] or candidates
                primary = max(fresh, key=lambda a: members[a].get("priority", 1), default=None)
                self.stepped_down.clear()
            for a, p in live.items():
                if members[a].get("arbiterOnly"):
                    p.state = MemberState.ARBITER
                else:
                    p.state = MemberState.PRIMARY if a == primary else MemberState.SECONDARY


def _electable(m: dict[str, Any]) -> bool:
    return (
        m.get("priority", 1) > 0
        and m.get("votes", 1) == 1
        and not m.get("hidden")
        and not m.get("arbiterOnly")
    )


class FakeDriver:
    """The driver of one host of a :class:`FakeWorld`."""

    def __init__(self, world: FakeWorld, hostname: str) -> None:
        self.world, self.hostname = world, hostname

    def _proc(self, name: str) -> FakeProc | None:
        self.world.settle()
        return self.world.procs.get(name)

    def observe(self, name: str) -> ProcessObservation:
        self.world.calls.append(("observe", name))
        p = self._proc(name)
        if p is None or not p.running:
            return ProcessObservation(name=name, running=False)
        return ProcessObservation(
            name=name, running=True, mode=p.mode, port=p.spec.port, version=p.spec.version, args=p.spec.args
        )

    def start(self, spec: ProcessSpec) -> None:
        self.world.calls.append(("start", spec.name))
        assert spec.hostname == self.hostname, "an agent starts processes of its own host only"
        old = self.world.procs.get(spec.name)
        self.world.procs[spec.name] = FakeProc(spec, in_set=old.in_set if old is not None else None)
        self.world.settle()

    def stop(self, name: str, *, force: bool = False) -> None:
        self.world.calls.append(("stop", name))
        p = self.world.procs[name]
        p.running, p.state = False, MemberState.DOWN
        self.world.settle()

    def rs_status(self, name: str) -> RsStatus | None:
        p = self._proc(name)
        if p is None or not p.running or p.mode is not RunMode.REPLSET or p.in_set is None:
            return None
        config = self.world.configs[p.in_set]
        up = self.world._up(p.in_set)
        members = tuple(
            MemberStatus(
                host=m["host"],
                state=up[m["host"]].state if m["host"] in up else MemberState.DOWN,
                health=m["host"] in up,
                optime_ts=(1000 << 32) if m["host"] in up else 0,
                self=m["host"] == p.addr,
            )
            for m in config["members"]
        )
        return RsStatus(p.in_set, p.state, 1, members, config["version"])

    def rs_config(self, name: str) -> dict[str, Any] | None:
        p = self._proc(name)
        if p is None or not p.running or p.in_set is None:
            return None
        return copy.deepcopy(self.world.configs[p.in_set])

    def initiate(self, name: str, config: dict[str, Any]) -> None:
        self.world.calls.append(("initiate", name))
        p = self.world.procs[name]
        if p.in_set is not None or config["_id"] in self.world.configs:
            raise CommandConflict("already initialized")
        up = self.world._up(config["_id"])
        missing = [m["host"] for m in config["members"] if m["host"] not in up or up[m["host"]].in_set]
        if missing:
            raise CommandConflict(
                f"replSetInitiate quorum check failed because not all proposed set members "
                f"responded affirmatively: {', '.join(missing)}"
            )
        self.world.configs[config["_id"]] = config
        self.world.settle()

    def reconfig(self, name: str, config: dict[str, Any], *, force: bool = False) -> None:
        self.world.calls.append(("reconfig", name))
        p = self.world.procs[name]
        current = self.world.configs[config["_id"]]
        if p.state is not MemberState.PRIMARY:
            raise CommandConflict("replSetReconfig should only be run on a writable PRIMARY")
        if config["version"] <= current["version"]:
            raise CommandConflict("version must be greater than the current one")

        def voters(c: dict[str, Any]) -> set[str]:
            return {m["host"] for m in c["members"] if m.get("votes", 1) == 1}

        if len(voters(current) ^ voters(config)) > 1:
            raise CommandConflict("only one voting member may be added or removed per reconfig")
        self.world.configs[config["_id"]] = config
        self.world.settle()

    def step_down(self, name: str, *, step_down_secs: int = 60, catch_up_secs: int = 10) -> None:
        self.world.calls.append(("step_down", name))
        p = self.world.procs[name]
        if p.state is not MemberState.PRIMARY:
            raise CommandConflict("not primary")
        p.state = MemberState.SECONDARY
        self.world.stepped_down.add(name)
        self.world.settle()

    def connections(self, name: str) -> int:
        return 5

    def server_sample(self, name: str) -> dict[str, float]:
        return {"OPCOUNTER_INSERT": 0.0}

    def storage_sample(self, name: str) -> StorageSample:
        return StorageSample()

    def freeze(self, name: str, secs: int) -> None:
        raise NotImplementedError

    def fsync_lock(self, name: str) -> None:
        raise NotImplementedError

    def fsync_unlock(self, name: str) -> None:
        raise NotImplementedError

    def create_index(self, name: str, ns: str, keys: list[tuple[str, int]], options: dict[str, Any]) -> None:
        raise NotImplementedError

    def list_indexes(self, name: str, ns: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def oplog_window(self, name: str) -> OplogWindow | None:
        return None  # the fake world keeps no oplog: a window is unknown, as on a member without writes

    def oplog_read(self, name: str, after_ts: int, limit: int = 1000) -> list[OplogRecord]:
        raise NotImplementedError

    def dump(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    def load(self, name: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
        self.world.calls.append(("load", name))
        self.world.loaded[name] = list(docs)


class FakeServer:
    """The agent API as the contract states it, scripted by the test (``httpx.MockTransport`` handler)."""

    def __init__(self, group_id: str = "g1", api_key: str = "k1") -> None:
        self.group_id, self.api_key = group_id, api_key
        self.config: dict[str, Any] | None = None
        self.version = 0
        self.down = False
        self.raw_config: bytes | None = None  # served as is instead of the config, to test bad answers
        self.polls: list[tuple[str, int]] = []
        self.statuses: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.work: dict[str, Any] | None = None  # the work list status answers carry, when set
        self.restored: list[dict[str, Any]] = []  # restore progress the agents reported

    def set_config(self, config: dict[str, Any]) -> int:
        self.version += 1
        self.config = {**config, "version": self.version}
        return self.version

    def last_status(self, hostname: str) -> dict[str, Any]:
        return next(s for s in reversed(self.statuses) if s["hostname"] == hostname)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if request.url.path.startswith(f"/agents/api/backup/v1/{self.group_id}/restores/"):
            return self._restore(request)
        kind, _, group = request.url.path.removeprefix("/agents/api/automation/").partition("/v1/")
        if group != self.group_id:
            return httpx.Response(404, json={"detail": f"no project {group}"})
        expected = "Basic " + base64.b64encode(f"{self.group_id}:{self.api_key}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return httpx.Response(401, json={"detail": "invalid agent API key", "error": 401})
        hostname = request.url.params["hostname"]
        if kind == "conf" and request.method == "GET":
            cv = int(request.url.params["cv"])
            self.polls.append((hostname, cv))
            if self.raw_config is not None:
                return httpx.Response(200, content=self.raw_config)
            if self.config is None or cv == self.version:
                return httpx.Response(304)
            return httpx.Response(200, json=self.config)
        if kind == "status" and request.method == "POST":
            self.statuses.append(json.loads(request.content))
            requests, self.requests = self.requests, []
            answer: dict[str, Any] = {"requests": requests} if requests else {}
            if self.work is not None:
                answer["work"] = self.work
            return httpx.Response(200, json=answer)
        return httpx.Response(404, json={"detail": "no such endpoint"})

    def _restore(self, request: httpx.Request) -> httpx.Response:
        """An automated restore's documents (two) and its progress reports."""
        if request.url.path.endswith("/documents"):
            lines = [json.dumps({"ns": "app.a", "doc": {"_id": i}}) for i in range(2)]
            return httpx.Response(200, text="\n".join(lines) + "\n")
        self.restored.append(json.loads(request.content))
        return httpx.Response(200, json={"statusName": "RUNNING"})
