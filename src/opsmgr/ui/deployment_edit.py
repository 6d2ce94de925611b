"""The edit form of a deployment and its review: the goal config as form fields (MongoDB version, the common
``args2_6`` options, each process's port, data path and other options as raw JSON, each member's priority,
votes and hidden flag, remove and add a member, the replica set's name, the config's other sections as raw
JSON), the new config those fields make, and the review of going there: the diff of the two configs and
which changes roll through rolling maintenance and which apply without a restart.

Nothing here decides a rule: the new config is checked by ``automation.config.validate`` and
``maintenance.rolling.validate_transition`` (the checks the API's PUT runs), and what rolls is
``maintenance.rolling.rolling_changes``, the decision the maintenance procedure acts on.
May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.strictjson``, ``opsmgr.automation.config``,
``opsmgr.automation.rules`` and ``opsmgr.maintenance.rolling``.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsmgr import strictjson
from opsmgr.automation.config import validate
from opsmgr.automation.rules import CLUSTER_AUTH_MODES, PROFILER_MODES, TLS_MODES, get
from opsmgr.errors import InvalidInput
from opsmgr.jsontypes import JsonObject
from opsmgr.maintenance.rolling import rolling_changes, validate_transition

# The sections the form edits field by field; every other top-level section is raw JSON.
FORM_SECTIONS = ("version", "processes", "replicaSets")
MAX_JSON = 200_000


@dataclass(frozen=True)
class Option:
    """One ``args2_6`` option the form edits for every process at once."""

    path: str
    label: str
    kind: str  # "int", "text" or "choice"
    choices: tuple[str, ...] = ()

    @property
    def field(self) -> str:
        return "args." + self.path


COMMON_OPTIONS = (
    Option("replication.oplogSizeMB", "Oplog size (MB)", "int"),
    Option("net.tls.mode", "TLS mode (net.tls.mode)", "choice", TLS_MODES),
    Option("security.clusterAuthMode", "Cluster authentication mode", "choice", CLUSTER_AUTH_MODES),
    Option("operationProfiling.mode", "Profiler mode", "choice", PROFILER_MODES),
    Option("operationProfiling.slowOpThresholdMs", "Slow operation threshold (ms)", "int"),
    *(
        Option(f"setParameter.{key}", f"setParameter {key}", "int")
        for key in ("logLevel", "cursorTimeoutMillis")
    ),
    Option("setParameter.ttlMonitorEnabled", "setParameter ttlMonitorEnabled", "choice", ("true", "false")),
)
# Options of each process edited in its own fields.
PROCESS_OPTIONS = (Option("net.port", "Port", "int"), Option("storage.dbPath", "Data path", "text"))
MANAGED = tuple(o.path for o in COMMON_OPTIONS + PROCESS_OPTIONS)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _set(obj: dict[str, Any], dotted: str, value: Any) -> None:
    """Set (or, for None, remove) ``dotted`` below ``obj``, dropping objects left empty."""
    head, _, rest = dotted.partition(".")
    if not rest:
        if value is None:
            obj.pop(head, None)
        else:
            obj[head] = value
        return
    child = obj.get(head)
    if not isinstance(child, dict):
        if value is None:
            return
        child = obj[head] = {}
    _set(child, rest, value)
    if not child:
        obj.pop(head)


def _without_managed(args: Mapping[str, Any]) -> dict[str, Any]:
    rest = copy.deepcopy(dict(args))
    for path in MANAGED:
        _set(rest, path, None)
    return rest


def _common_value(processes: list[JsonObject], path: str) -> tuple[str, bool]:
    """The value every process has for ``path`` (as text) and whether they differ."""
    values = {_text(get(p.get("args2_6") or {}, path)) for p in processes}
    return (values.pop(), False) if len(values) == 1 else ("", True)


def form_fields(config: JsonObject) -> JsonObject:
    """The edit form's fields for ``config`` (the current goal config, with its ``version``)."""
    processes = [p for p in config.get("processes", []) if isinstance(p, dict)]
    member_of: dict[str, tuple[int, JsonObject]] = {}
    for i, rs in enumerate(config.get("replicaSets", [])):
        for m in rs.get("members", []):
            member_of[str(m.get("host"))] = (i, m)
    versions = {str(p.get("version", "")) for p in processes}
    common = []
    for option in COMMON_OPTIONS:
        value, mixed = _common_value(processes, option.path)
        common.append({"option": option, "value": value, "mixed": mixed})
    rows = []
    for i, p in enumerate(processes):
        rs_index, member = member_of.get(str(p.get("name")), (None, None))
        args = p.get("args2_6") or {}
        rows.append(
            {
                "index": i,
                "name": p.get("name"),
                "hostname": p.get("hostname"),
                "port": _text(get(args, "net.port")),
                "dbPath": _text(get(args, "storage.dbPath")),
                "args": json.dumps(_without_managed(args), indent=2, sort_keys=True),
                "rs": config["replicaSets"][rs_index]["_id"] if rs_index is not None else "",
                "member": member,
            }
        )
    other = {k: v for k, v in config.items() if k not in FORM_SECTIONS}
    return {
        "base_version": config.get("version", 0),
        "version": versions.pop() if len(versions) == 1 else "",
        "version_mixed": len(versions) > 1,
        "common": common,
        "rows": rows,
        "replica_sets": [rs.get("_id") for rs in config.get("replicaSets", [])],
        "other": json.dumps(other, indent=2, sort_keys=True),
    }


def _json_object(text: str, what: str, max_chars: int | None = MAX_JSON) -> dict[str, Any]:
    if max_chars is not None and len(text) > max_chars:
        raise InvalidInput(f"{what} is longer than {max_chars} characters")
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (RecursionError, ValueError) as exc:  # nested too deep, a number literal too long
        raise strictjson.parse_error(exc, what) from None
    # What the API's JSON body refuses (NaN, Infinity, integers past 64 bits, deep nesting), refused here too.
    strictjson.check(value, what)
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _typed(text: str, kind: str) -> Any:
    """A form value as the config holds it; a value that is not what ``kind`` needs goes through as text,
    for the validator to refuse with its own message."""
    text = text.strip()
    if text == "":
        return None
    if kind in ("int", "number"):
        for parse in (int, float) if kind == "number" else (int,):
            try:
                return parse(text)
            except ValueError:
                continue
        return text
    if text in ("true", "false") and kind == "choice":
        return text == "true"
    return text


def parse_json(text: str, what: str) -> dict[str, Any]:
    """A JSON object posted by a form (the review's config), or a 400 naming what is wrong with it. A whole
    config is bounded by the request's body limit only, the API PUT's own: any config the API takes, the
    review's Deploy takes."""
    return _json_object(text, what, max_chars=None)


@dataclass
class _Form:
    values: Mapping[str, str]

    def __call__(self, key: str) -> str:
        return self.values.get(key, "")


def config_from_form(current: JsonObject, values: Mapping[str, str]) -> JsonObject:
    """The config the edit form's ``values`` make of ``current`` (without its ``version``)."""
    form = _Form(values)
    new = _json_object(form("other"), "Other sections (raw JSON)")
    for key in FORM_SECTIONS:
        new.pop(key, None)
    processes = copy.deepcopy([p for p in current.get("processes", []) if isinstance(p, dict)])
    replica_sets = copy.deepcopy(list(current.get("replicaSets", [])))
    removed: set[str] = set()
    for i, p in enumerate(processes):
        _apply_process(p, i, form)
        if form(f"p{i}.remove"):
            removed.add(str(p["name"]))
    for j, rs in enumerate(replica_sets):
        _apply_members(rs, processes, form, removed)
        renamed = form(f"rs{j}.name").strip()
        if renamed and renamed != rs["_id"]:
            _rename(rs, renamed, processes)
    added = _added(processes, replica_sets, form)
    processes = [p for p in processes if p["name"] not in removed] + added
    return {"processes": processes, "replicaSets": replica_sets, **new}


def _apply_process(p: JsonObject, i: int, form: _Form) -> None:
    name = p.get("name")
    args = _json_object(form(f"p{i}.args"), f"Other options of {name} (raw JSON)")
    for option in PROCESS_OPTIONS:
        _set(args, option.path, _typed(form(f"p{i}.{option.path}"), option.kind))
    for option in COMMON_OPTIONS:
        value = form(option.field)
        if form(f"mixed.{option.path}") and not value.strip():
            _set(args, option.path, get(p.get("args2_6") or {}, option.path))  # left as each process has it
        else:
            _set(args, option.path, _typed(value, option.kind))
    p["args2_6"] = args
    version = form("version").strip()
    if version or not form("version_mixed"):
        p["version"] = version


def _apply_members(rs: JsonObject, processes: list[JsonObject], form: _Form, removed: set[str]) -> None:
    index = {p["name"]: i for i, p in enumerate(processes)}
    kept = []
    for m in rs.get("members", []):
        i = index.get(m.get("host"))
        if i is None:
            kept.append(m)
            continue
        if m.get("host") in removed:
            continue
        for key, kind in (("priority", "number"), ("votes", "int")):
            if f"p{i}.{key}" in form.values:
                m[key] = _typed(form(f"p{i}.{key}"), kind)
        if f"p{i}.priority" in form.values:
            m["hidden"] = bool(form(f"p{i}.hidden"))
        kept.append(m)
    rs["members"] = kept


def _rename(rs: JsonObject, renamed: str, processes: list[JsonObject]) -> None:
    members = {m.get("host") for m in rs.get("members", [])}
    for p in processes:
        if p["name"] in members and get(p.get("args2_6") or {}, "replication.replSetName") == rs["_id"]:
            _set(p["args2_6"], "replication.replSetName", renamed)
    rs["_id"] = renamed


def _added(processes: list[JsonObject], replica_sets: list[JsonObject], form: _Form) -> list[JsonObject]:
    """The member the form's "add a member" fields describe (none when no host name is given)."""
    hostname = form("add.hostname").strip()
    if not hostname:
        return []
    rs = next(
        (r for r in replica_sets if r["_id"] == form("add.rs")), replica_sets[0] if replica_sets else None
    )
    if rs is None:
        raise InvalidInput("a member can only be added to a replica set: this deployment has none")
    names = {p["name"] for p in processes}
    name = form("add.name").strip() or next(
        f"{rs['_id']}_{n}" for n in range(len(names) + 1) if f"{rs['_id']}_{n}" not in names
    )
    template = next((p for p in processes if any(m.get("host") == p["name"] for m in rs["members"])), None)
    args: dict[str, Any] = copy.deepcopy(template["args2_6"]) if template else {}
    old_path = get(args, "storage.dbPath")
    db_path = form("add.dbPath").strip() or f"/data/{name}"
    _set(args, "storage.dbPath", db_path)
    log_path = get(args, "systemLog.path")
    if isinstance(old_path, str) and isinstance(log_path, str) and log_path.startswith(old_path):
        _set(args, "systemLog.path", db_path + log_path[len(old_path) :])
    _set(args, "net.port", _typed(form("add.port"), "int") or get(args, "net.port"))
    _set(args, "replication.replSetName", rs["_id"])
    process: JsonObject = {
        "name": name,
        "hostname": hostname,
        "processType": "mongod",
        "version": template["version"] if template else form("version").strip(),
        "disabled": False,
        "args2_6": args,
    }
    ids = [m.get("_id") for m in rs["members"] if isinstance(m.get("_id"), int)]
    rs["members"].append(
        {
            "_id": max(ids, default=-1) + 1,
            "host": name,
            "priority": _typed(form("add.priority") or "1", "number"),
            "votes": _typed(form("add.votes") or "1", "int"),
            "hidden": bool(form("add.hidden")),
            "arbiterOnly": False,
        }
    )
    return [process]


# --- the review ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetChange:
    """What one replica set goes through: members restarted one at a time, and what applies in place."""

    rs_id: str
    rolls: bool
    offline: bool
    members: list[tuple[str, list[str]]]  # (member, its tasks) of those that roll
    reasons: list[str]
    in_place: list[str]  # reconfig notes and runtime setParameter values


@dataclass(frozen=True)
class Review:
    diff: list[tuple[str, str]]  # (kind: "add", "del", "same" or "hunk", line)
    changes: list[SetChange] = field(default_factory=list)
    unchanged: bool = False


def _lines(config: Mapping[str, Any]) -> list[str]:
    shown = {k: v for k, v in config.items() if k != "version"}
    return json.dumps(shown, indent=2, sort_keys=True).splitlines()


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The two configs' lines that differ, with three lines of context, each marked."""
    marked = []
    for line in difflib.unified_diff(_lines(old), _lines(new), "current", "new", n=3, lineterm=""):
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        marked.append((kind, line))
    return marked


def review(current: JsonObject, body: JsonObject) -> Review:
    """The review of replacing ``current`` by ``body``: refused as the API's PUT refuses it (its checks, its
    message), else the diff and what rolls."""
    new = validate(body, current=current)
    validate_transition(current, new)
    diff = config_diff(current, new)
    changes = []
    for rs_id, change in rolling_changes(current, new).items():
        in_place = list(change.reconfig)
        for member, params in change.runtime_parameters.items():
            in_place += [
                f"setParameter {k}={json.dumps(v)} on {member} (at runtime)" for k, v in params.items()
            ]
        if not change.needs_roll and not in_place:
            continue
        changes.append(
            SetChange(
                rs_id=rs_id,
                rolls=change.needs_roll,
                offline=change.offline,
                members=[(m, sorted(str(t) for t in tasks)) for m, tasks in change.tasks.items()],
                reasons=list(change.reasons),
                in_place=in_place,
            )
        )
    return Review(diff=diff, changes=changes, unchanged=not diff)
