"""Which changes between two automation configs need a rolling restart, and which are refused outright.

Owns the maintenance task names (:class:`Task`, and :class:`UniqueIndexTask` for a unique index build's
member steps), the per-replica-set decision :func:`rolling_changes`, the PUT-time check
:func:`validate_transition` (modes move one legal step at a time, see ``maintenance.mode_steps``; a rename
needs accepted downtime; the ``maintenance`` options of a replica set entry are well formed) and those options
(:class:`MaintenanceOptions`). Pure functions over plain JSON configs; they never mutate their arguments.
May import ``opsmgr.errors``, ``opsmgr.automation.config``, ``opsmgr.automation.rules`` and
``opsmgr.maintenance.mode_steps``.

What rolls (each member is restarted standalone, the task performed, and restarted in its set):

- ``lastKmipMasterKeyRotation`` or ``lastRestart`` of a process set or changed: that process only.
- ``auth.key`` or ``auth.keyfile`` changed while authentication is on: every member (keyfile rotation).
- ``auth.disabled`` flipped, ``security.transitionToAuth`` or ``security.authorization`` changed: auth mode.
- ``net.tls.mode`` / ``net.ssl.mode``: TLS mode; ``security.clusterAuthMode``: cluster auth mode.
- the process ``version``; ``replication.oplogSizeMB``; anything under ``operationProfiling`` (the profiler
  level in the configuration file only takes effect at start-up).
- any other ``args2_6`` difference (mongod configuration arguments), and the deployment-wide ``tls``/``ssl``
  sections the agent turns into every member's start-up options.
- ``backupRestoreUrl`` removed from a process (a restore cancelled: it restarts on its own data).
- a new non-unique ``indexConfigs`` entry: every data-bearing member builds it while standalone. Unique
  indexes never roll with a config: ``automation.config.validate`` refuses them; ``maintenance.unique_index``
  builds them, one member at a time, each member's turn a one-member change of its own
  (a :class:`UniqueIndexTask`, with the build's id) carried out by this same procedure.
- a member removed from its set (``REMOVE_PROCESS``), or whose host no longer runs any process of the config
  (``DECOMMISSION_HOST``, the agent there is shut down): the member leaves, stepping down first if primary.
- a replica set renamed (same member processes, another ``_id``): MongoDB binds the set name into each
  member's ``local`` database and members of differently named sets do not replicate, so a rename cannot keep
  the set available; it is an *offline* change that needs ``maintenance.acceptDowntime``.

A mongos is in no replica set: :func:`process_tasks` gives its tasks by the same rules, and
``maintenance.sharded`` restarts it in its cluster's change, after every set.

What does not roll: member priority, votes, hidden, tags, delays and settings (``replSetReconfig`` only);
added members (initial sync); processes disabled or enabled (stop/start); and the ``setParameter`` keys in
:data:`RUNTIME_PARAMETERS`, which the agent applies with ``setParameter`` on the running process. That list
is deliberately small: each one is documented by MongoDB as settable at runtime and has no start-up-only
side effect. Removing such a key still rolls, because the running value can only fall back to the default
by a restart.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NoReturn

from opsmgr.automation.config import processes_by_name
from opsmgr.automation.rules import canonical, get, valid_hostname
from opsmgr.errors import InvalidInput
from opsmgr.maintenance.mode_steps import auth_enabled, check_mode_steps

# setParameter keys MongoDB documents as settable on a running mongod; a change to them needs no restart.
RUNTIME_PARAMETERS = frozenset(
    {
        "logLevel",
        "logComponentVerbosity",
        "cursorTimeoutMillis",
        "ttlMonitorEnabled",
        "notablescan",
        "transactionLifetimeLimitSeconds",
    }
)


class Task(StrEnum):
    """A maintenance task performed on a member while it is out of its set."""

    ROTATE_KMIP_KEY = "rotateKmipMasterKey"
    ROTATE_KEYFILE = "rotateKeyfile"
    CHANGE_ARGS = "changeArgs"
    CHANGE_TLS_MODE = "changeTlsMode"
    CHANGE_AUTH_MODE = "changeAuthMode"
    CHANGE_CLUSTER_AUTH_MODE = "changeClusterAuthMode"
    CHANGE_VERSION = "changeVersion"
    CHANGE_OPLOG_SIZE = "changeOplogSize"
    RENAME_REPLICA_SET = "renameReplicaSet"
    REMOVE_PROCESS = "removeProcess"
    CANCEL_RESTORE = "cancelRestore"
    CHANGE_PROFILER = "changeProfiler"
    DECOMMISSION_HOST = "decommissionHost"
    RESTART = "restart"
    BUILD_INDEX = "buildIndex"


class UniqueIndexTask(StrEnum):
    """The task of a unique index build's member step (``maintenance.unique_index``): no config asks for
    it, the build does, one member at a time."""

    BUILD_UNIQUE_INDEX = "buildUniqueIndex"
    DROP_UNIQUE_INDEX = "dropUniqueIndex"


MemberTask = Task | UniqueIndexTask


LEAVING_TASKS = frozenset({Task.REMOVE_PROCESS, Task.DECOMMISSION_HOST})
OFFLINE_TASKS = frozenset({Task.RENAME_REPLICA_SET})
UNIQUE_INDEX_TASKS: frozenset[MemberTask] = frozenset(UniqueIndexTask)


def member_task(value: str) -> MemberTask:
    """A task by its JSON name."""
    return UniqueIndexTask(value) if value in UniqueIndexTask._value2member_map_ else Task(value)


# args2_6 paths whose change is a task of its own; any other difference is CHANGE_ARGS. None: decided at the
# replica set level (the set name follows the replica set's _id, which validate() enforces).
_OWNED_ARGS: tuple[tuple[str, Task | None], ...] = (
    ("replication.oplogSizeMB", Task.CHANGE_OPLOG_SIZE),
    ("replication.replSetName", None),
    ("net.tls.mode", Task.CHANGE_TLS_MODE),
    ("net.ssl.mode", Task.CHANGE_TLS_MODE),
    ("security.clusterAuthMode", Task.CHANGE_CLUSTER_AUTH_MODE),
    ("security.transitionToAuth", Task.CHANGE_AUTH_MODE),
    ("security.authorization", Task.CHANGE_AUTH_MODE),
    ("security.keyFile", Task.ROTATE_KEYFILE),
    ("operationProfiling", Task.CHANGE_PROFILER),
)
# Process fields whose change (to a value that is set) asks for one task on that process.
_PROCESS_STAMPS = (("lastKmipMasterKeyRotation", Task.ROTATE_KMIP_KEY), ("lastRestart", Task.RESTART))
_MEMBER_RECONFIG_FIELDS = ("priority", "votes", "hidden", "arbiterOnly", "tags", "secondaryDelaySecs")


# --- maintenance options of a replica set entry -------------------------------------------------------------


def temporary_arbiter_name(rs_id: str) -> str:
    """The process name of the temporary arbiter of ``rs_id`` (it is in no automation config)."""
    return f"{rs_id}_maintenance_arbiter"


@dataclass(frozen=True)
class ArbiterSpec:
    """Where the temporary arbiter of a maintenance runs: an agent must manage ``hostname``."""

    hostname: str
    port: int


@dataclass(frozen=True)
class MaintenanceOptions:
    """``replicaSets[i].maintenance``: ``{"acceptDowntime": bool, "temporaryArbiter": {hostname, port}}``.

    ``acceptDowntime`` lets maintenance proceed where availability cannot be kept (a rename, a set of one or
    two voting members). ``temporaryArbiter`` asks for an arbiter added before the rolling change and
    removed after it; each member hands its vote to it while out (see ``maintenance.procedure``).
    """

    accept_downtime: bool = False
    temporary_arbiter: ArbiterSpec | None = None


def maintenance_options(rs: Mapping[str, Any]) -> MaintenanceOptions:
    """The options of a replica set entry that :func:`validate_transition` accepted (absent: defaults)."""
    raw = rs.get("maintenance")
    if not isinstance(raw, Mapping):
        return MaintenanceOptions()
    arbiter = raw.get("temporaryArbiter")
    spec = ArbiterSpec(arbiter["hostname"], int(arbiter["port"])) if isinstance(arbiter, Mapping) else None
    return MaintenanceOptions(bool(raw.get("acceptDowntime", False)), spec)


def _fail(field: str, rule: str, detail: str) -> NoReturn:
    raise InvalidInput(detail, field=field, rule=rule)


def _check_options(rs: Mapping[str, Any], here: str) -> None:
    raw = rs.get("maintenance")
    if raw is None:
        return
    if not isinstance(raw, Mapping):
        _fail(f"{here}.maintenance", "maintenance-options", f"{here}.maintenance must be an object")
    unknown = sorted(set(raw) - {"acceptDowntime", "temporaryArbiter"})
    if unknown:
        _fail(
            f"{here}.maintenance.{unknown[0]}",
            "maintenance-options",
            f"{here}.maintenance accepts acceptDowntime and temporaryArbiter, not {unknown[0]!r}",
        )
    if "acceptDowntime" in raw and not isinstance(raw["acceptDowntime"], bool):
        _fail(f"{here}.maintenance.acceptDowntime", "maintenance-options", "acceptDowntime must be a boolean")
    arbiter = raw.get("temporaryArbiter")
    if arbiter is None:
        return
    at = f"{here}.maintenance.temporaryArbiter"
    port = arbiter.get("port") if isinstance(arbiter, Mapping) else None
    if not (isinstance(arbiter, Mapping) and valid_hostname(arbiter.get("hostname"))):
        _fail(f"{at}.hostname", "temporary-arbiter", f"{at} needs the hostname of a host an agent manages")
    if not (isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535):
        _fail(f"{at}.port", "temporary-arbiter", f"{at}.port must be an integer 1..65535")


# --- the PUT-time check -------------------------------------------------------------------------------------


def validate_transition(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Refuse a new automation config that cannot be reached safely from the current one.

    Called on ``PUT /groups/{id}/automationConfig`` after :func:`opsmgr.automation.config.validate`, with the
    stored config as ``old``. Raises :class:`InvalidInput` naming the field and the rule when a mode moves
    more than one step (``maintenance.mode_steps.check_mode_steps``), when ``maintenance`` options are
    malformed, or when a replica set is renamed without ``maintenance.acceptDowntime``.
    """
    check_mode_steps(old, new)
    for i, rs in enumerate(new.get("replicaSets", [])):
        _check_options(rs, f"replicaSets[{i}]")
    for rs_id, change in rolling_changes(old, new).items():
        if change.offline and not maintenance_options(_replica_set(new, rs_id)).accept_downtime:
            i = next(i for i, rs in enumerate(new["replicaSets"]) if rs["_id"] == rs_id)
            _fail(
                f"replicaSets[{i}]._id",
                "rename-needs-downtime",
                f"renaming replica set {change.old_rs_id!r} to {rs_id!r} needs every member down at once "
                "(MongoDB keeps the set name in each member's local database, and differently named members "
                f"do not replicate); set replicaSets[{i}].maintenance.acceptDowntime to true to accept it",
            )


# --- what rolls ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollingChange:
    """What one replica set needs between two configs.

    ``tasks`` names, per member process, the tasks it needs while out of its set (members without tasks are
    not touched); members with a task of :data:`LEAVING_TASKS` leave the set instead of coming back.
    ``reconfig`` lists changes carried out by ``replSetReconfig`` alone, ``runtime_parameters`` the
    ``setParameter`` values to apply on running processes, ``index_builds`` the ``indexConfigs`` entries the
    ``BUILD_INDEX`` task builds (or the one unique index a :class:`UniqueIndexTask` builds or drops), and
    ``reasons`` says why each task is there, one sentence each. ``build_id``: the unique index build whose
    one-member step this change is (None: a config's change).
    """

    rs_id: str
    old_rs_id: str | None = None
    tasks: dict[str, frozenset[MemberTask]] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    reconfig: tuple[str, ...] = ()
    runtime_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    index_builds: tuple[dict[str, Any], ...] = ()
    build_id: str | None = None

    @property
    def needs_roll(self) -> bool:
        return bool(self.tasks)

    @property
    def offline(self) -> bool:
        return any(t & OFFLINE_TASKS for t in self.tasks.values())

    @property
    def all_tasks(self) -> frozenset[MemberTask]:
        return frozenset().union(*self.tasks.values()) if self.tasks else frozenset()

    def leaving(self, member: str) -> bool:
        return bool(self.tasks.get(member, frozenset()) & LEAVING_TASKS)

    def to_json(self) -> dict[str, Any]:
        return {
            "rsId": self.rs_id,
            "oldRsId": self.old_rs_id,
            "tasks": {name: sorted(t.value for t in tasks) for name, tasks in self.tasks.items()},
            "reasons": list(self.reasons),
            "reconfig": list(self.reconfig),
            "runtimeParameters": self.runtime_parameters,
            "indexBuilds": list(self.index_builds),
            "buildId": self.build_id,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RollingChange:
        return cls(
            rs_id=raw["rsId"],
            old_rs_id=raw.get("oldRsId"),
            tasks={
                name: frozenset(member_task(t) for t in tasks) for name, tasks in raw.get("tasks", {}).items()
            },
            reasons=tuple(raw.get("reasons", ())),
            reconfig=tuple(raw.get("reconfig", ())),
            runtime_parameters={k: dict(v) for k, v in raw.get("runtimeParameters", {}).items()},
            index_builds=tuple(raw.get("indexBuilds", ())),
            build_id=raw.get("buildId"),
        )


class _Collector:
    """Accumulates tasks and reasons for one replica set."""

    def __init__(self) -> None:
        self.tasks: dict[str, set[Task]] = {}
        self.reasons: list[str] = []

    def add(self, member: str, task: Task, reason: str) -> None:
        self.tasks.setdefault(member, set()).add(task)
        if reason not in self.reasons:
            self.reasons.append(reason)


def _replica_set(config: Mapping[str, Any], rs_id: str) -> dict[str, Any]:
    return next(rs for rs in config.get("replicaSets", []) if rs["_id"] == rs_id)


def _member_names(rs: Mapping[str, Any]) -> set[str]:
    return {m["host"] for m in rs.get("members", [])}


def _matching_old_set(old: Mapping[str, Any], new: Mapping[str, Any], rs: Mapping[str, Any]) -> str | None:
    """The old replica set ``rs`` continues: the same ``_id``, or else (a rename) an old set no longer in the
    new config that shares the most member processes with it."""
    old_ids = [r["_id"] for r in old.get("replicaSets", [])]
    if rs["_id"] in old_ids:
        return str(rs["_id"])
    new_ids = {r["_id"] for r in new.get("replicaSets", [])}
    overlap = [
        (len(_member_names(r) & _member_names(rs)), r["_id"])
        for r in old.get("replicaSets", [])
        if r["_id"] not in new_ids
    ]
    best = max(overlap, default=(0, None))
    return best[1] if best[0] else None


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every non-object value below ``node`` by dotted path (an empty object is the same as none)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def _args_changes(
    name: str, old_args: Mapping[str, Any], new_args: Mapping[str, Any], out: _Collector
) -> dict[str, Any]:
    """Classify every differing ``args2_6`` leaf; return the runtime ``setParameter`` values to apply."""
    before, after = dict(_leaves(old_args)), dict(_leaves(new_args))
    runtime: dict[str, Any] = {}
    for path in sorted(set(before) | set(after)):
        if path in before and path in after and canonical(before[path]) == canonical(after[path]):
            continue
        owner = next((t for p, t in _OWNED_ARGS if path == p or path.startswith(p + ".")), Task.CHANGE_ARGS)
        parts = path.split(".")
        runtime_key = parts[1] if parts[0] == "setParameter" and len(parts) > 1 else None
        if runtime_key in RUNTIME_PARAMETERS and get(new_args, f"setParameter.{runtime_key}") is not None:
            runtime[str(runtime_key)] = new_args["setParameter"][runtime_key]
            continue
        if owner is not None:
            out.add(name, owner, f"{name}: args2_6.{path} changed ({owner.value})")
    return runtime


def _process_tasks(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    out: _Collector,
) -> dict[str, Any]:
    """Add the tasks of one member process to ``out``; return its runtime ``setParameter`` values."""
    name = after["name"]
    if before.get("version") != after.get("version"):
        out.add(
            name,
            Task.CHANGE_VERSION,
            f"{name}: version {before.get('version')} -> {after.get('version')}",
        )
    for key, task in _PROCESS_STAMPS:
        if after.get(key) is not None and after.get(key) != before.get(key):
            out.add(name, task, f"{name}: {key} set to {after[key]}")
    if before.get("backupRestoreUrl") and not after.get("backupRestoreUrl"):
        out.add(name, Task.CANCEL_RESTORE, f"{name}: backupRestoreUrl removed, the restore is cancelled")
    runtime = _args_changes(name, before.get("args2_6", {}), after.get("args2_6", {}), out)
    if auth_enabled(old) != auth_enabled(new):
        state = "enabled" if auth_enabled(new) else "disabled"
        out.add(name, Task.CHANGE_AUTH_MODE, f"authentication {state} (auth.disabled changed)")
    if auth_enabled(new) and any(get(old, f"auth.{k}") != get(new, f"auth.{k}") for k in ("key", "keyfile")):
        out.add(name, Task.ROTATE_KEYFILE, "auth.key or auth.keyfile changed: the keyfile is rotated")
    for section in ("tls", "ssl"):
        if canonical(old.get(section) or {}) != canonical(new.get(section) or {}):
            out.add(name, Task.CHANGE_ARGS, f"the deployment-wide {section} section changed")
    return runtime


def process_tasks(
    old: Mapping[str, Any], new: Mapping[str, Any], before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[frozenset[Task], tuple[str, ...]]:
    """The tasks (and their reasons) a process outside any replica set (a mongos) needs between two configs:
    the same rules as a member's; a runtime ``setParameter`` change needs none."""
    out = _Collector()
    _process_tasks(old, new, before, after, out)
    return frozenset(out.tasks.get(after["name"], set())), tuple(out.reasons)


def _reconfig_notes(old_rs: Mapping[str, Any], rs: Mapping[str, Any]) -> list[str]:
    notes: list[str] = []
    old_members = {m["host"]: m for m in old_rs.get("members", [])}
    for m in rs.get("members", []):
        before = old_members.get(m["host"])
        if before is None:
            notes.append(f"add {m['host']}")
            continue
        for key in _MEMBER_RECONFIG_FIELDS:
            if key in m and canonical(before.get(key)) != canonical(m.get(key)):
                notes.append(f"{key} of {m['host']}: {before.get(key)} -> {m.get(key)}")
    if canonical(old_rs.get("settings") or {}) != canonical(rs.get("settings") or {}):
        notes.append("settings changed")
    return notes


def _index_identity(entry: Mapping[str, Any], rs_id: str) -> str:
    return canonical([rs_id, entry.get("dbName"), entry.get("collectionName"), entry.get("key")])


def _new_rolling_indexes(
    old: Mapping[str, Any], new: Mapping[str, Any], rs_id: str, old_rs_id: str | None
) -> list[dict[str, Any]]:
    olds = [e for e in old.get("indexConfigs", []) if e.get("rsName") in (old_rs_id, rs_id)]
    known = {_index_identity(e, rs_id) for e in olds}
    return [
        dict(e)
        for e in new.get("indexConfigs", [])
        if e.get("rsName") == rs_id
        and not (e.get("options") or {}).get("unique")
        and _index_identity(e, rs_id) not in known
    ]


def rolling_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, RollingChange]:
    """Per replica set of ``new`` (by ``_id``, in config order): whether going from ``old`` to ``new`` needs a
    rolling restart, of which members, for which tasks. Sets that are new in ``new`` need none (they are
    initiated), and neither do sets ``new`` drops entirely (their processes are stopped)."""
    old_procs, new_procs = processes_by_name(old), processes_by_name(new)
    new_hosts = {p["hostname"].lower() for p in new.get("processes", [])}
    result: dict[str, RollingChange] = {}
    for rs in new.get("replicaSets", []):
        rs_id = rs["_id"]
        old_id = _matching_old_set(old, new, rs)
        if old_id is None:
            result[rs_id] = RollingChange(rs_id, reconfig=(f"initiate {rs_id}",))
            continue
        old_rs = _replica_set(old, old_id)
        out = _Collector()
        runtime: dict[str, dict[str, Any]] = {}
        current = _member_names(rs)
        data_bearing = []
        for m in rs["members"]:
            name = m["host"]
            before, after = old_procs.get(name), new_procs[name]
            if before is None or name not in _member_names(old_rs) or after.get("disabled", False):
                continue
            if before.get("disabled", False):
                continue
            if before["hostname"].lower() != after["hostname"].lower():
                _leave(out, name, before, new_hosts, f"{name} moves to {after['hostname']}")
                continue
            params = _process_tasks(old, new, before, after, out)
            if params:
                runtime[name] = params
            if not m.get("arbiterOnly", False) and m.get("buildIndexes", True) is not False:
                data_bearing.append(name)
        for m in old_rs["members"]:
            name = m["host"]
            before = old_procs.get(name)
            if name in current or before is None or before.get("disabled", False):
                continue
            _leave(out, name, before, new_hosts, f"{name} is removed from {old_id}")
        if old_id != rs_id:
            for name in current & _member_names(old_rs):
                if name in old_procs and not old_procs[name].get("disabled", False):
                    out.add(name, Task.RENAME_REPLICA_SET, f"replica set {old_id!r} renamed to {rs_id!r}")
        indexes = _new_rolling_indexes(old, new, rs_id, old_id)
        for entry in indexes:
            ns = f"{entry['dbName']}.{entry['collectionName']}"
            for name in data_bearing:
                out.add(name, Task.BUILD_INDEX, f"build index {canonical(entry['key'])} on {ns}")
        result[rs_id] = RollingChange(
            rs_id=rs_id,
            old_rs_id=old_id,
            tasks={n: frozenset(t) for n, t in out.tasks.items()},
            reasons=tuple(out.reasons),
            reconfig=tuple(_reconfig_notes(old_rs, rs)),
            runtime_parameters=runtime,
            index_builds=tuple(indexes),
        )
    return result


def _leave(out: _Collector, name: str, before: Mapping[str, Any], new_hosts: set[str], why: str) -> None:
    out.add(name, Task.REMOVE_PROCESS, why)
    if before["hostname"].lower() not in new_hosts:
        out.add(
            name,
            Task.DECOMMISSION_HOST,
            f"{before['hostname']} runs no process of the new config: its agent is shut down",
        )
