"""The ``mongod`` driver's pure half: the documents it writes and the replies it reads, no I/O.

Owns translating a process's ``args2_6`` into a mongod YAML config file, in replSet mode or in standalone
maintenance mode (``mongod_options``, ``render_config``), the address and TLS a local mongod is reached with,
and turning server replies (``replSetGetStatus``, the oplog's first and last entries, oplog entries, index
specs, ``listDatabases`` and ``dbStats``, ``listShards``, ``removeShard``, ``config.collections`` and
``balancerStatus``) into the ``drivers.base`` types and Ops Manager's measurements, and
naming a data directory's partition from the mount table's text. ``drivers.mongod`` sends and supervises.

May import ``opsmgr.errors``, ``opsmgr.drivers.base``, bson and the standard library.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bson.timestamp import Timestamp

from opsmgr.drivers.base import (
    BalancerState,
    MemberState,
    MemberStatus,
    OplogRecord,
    OplogWindow,
    ProcessSpec,
    RemoveShardProgress,
    RemoveShardState,
    RsStatus,
    ShardedCollection,
    ShardInfo,
)
from opsmgr.errors import InvalidInput

Doc = dict[str, Any]

# replSetGetStatus ``state`` numbers: ``stateStr`` is tried first, but a DOWN member's is
# "(not reachable/healthy)".
_STATE_CODES = {
    0: MemberState.STARTUP,
    1: MemberState.PRIMARY,
    2: MemberState.SECONDARY,
    3: MemberState.RECOVERING,
    5: MemberState.STARTUP2,
    6: MemberState.UNKNOWN,
    7: MemberState.ARBITER,
    8: MemberState.DOWN,
    9: MemberState.ROLLBACK,
    10: MemberState.REMOVED,
}
_STATE_STRS = {state.value: state for state in MemberState}


# ---------------------------------------------------------------------------------------------------------
# args2_6 -> mongod configuration (pure)


def mongod_options(spec: ProcessSpec, *, default_log_path: str) -> Doc:
    """The mongod (or, for a ``mongos`` spec, mongos) config-file document for ``spec``: its ``args2_6``
    with what the spec decides laid over.

    The spec's port, dbpath and log path win over ``args2_6``. ``fork`` is dropped because the driver
    supervises the process itself. In standalone mode the ``replication`` section goes (no ``replSetName``)
    and, as MongoDB's maintenance procedures say, ``disableLogicalSessionCacheRefresh`` is set; a shard
    member also loses ``sharding`` and gets ``skipShardingConfigurationChecks``. A router gets neither
    ``storage`` nor ``replication`` nor ``sharding.clusterRole``; its ``sharding.configDB`` stays.
    """
    options: Doc = copy.deepcopy(spec.args)
    options.setdefault("net", {})["port"] = spec.port
    if spec.process_type == "mongos":
        # A router keeps no data and is in no replica set: mongos refuses those sections, and a member's
        # clusterRole, as unrecognised options.
        options.pop("storage", None)
        options.pop("replication", None)
        (options.get("sharding") or {}).pop("clusterRole", None)
    else:
        options.setdefault("storage", {})["dbPath"] = spec.dbpath

    system_log: Doc = options.setdefault("systemLog", {})
    if spec.log_path is not None:
        system_log.update(destination="file", path=spec.log_path)
    elif system_log.get("destination") != "syslog" and not system_log.get("path"):
        system_log.update(destination="file", path=default_log_path)
    if system_log.get("destination") == "file":
        system_log.setdefault("logAppend", True)

    management = options.get("processManagement")
    if isinstance(management, dict):
        management.pop("fork", None)
        if not management:
            del options["processManagement"]

    if spec.process_type == "mongos":
        return options
    if spec.repl_set_name is not None:
        options.setdefault("replication", {})["replSetName"] = spec.repl_set_name
    else:
        options.pop("replication", None)
        parameters: Doc = options.setdefault("setParameter", {})
        parameters["disableLogicalSessionCacheRefresh"] = True
        if options.pop("sharding", None) is not None:
            parameters["skipShardingConfigurationChecks"] = True
    return options


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})


def render_config(options: Mapping[str, Any]) -> str:
    """``options`` as a block-style YAML mongod config file.

    Strings are written double-quoted with JSON escapes, which YAML reads the same way, so no value is
    misread (``"yes"``, ``"1.10"`` and ``"on"`` stay strings) and no YAML library is needed.
    """
    lines = ["# Written by opsmgr from the process's args2_6 on every start; edits here are lost."]

    def emit(mapping: Mapping[str, Any], depth: int) -> None:
        pad = "  " * depth
        for key, value in mapping.items():
            if isinstance(value, Mapping) and value:
                lines.append(f"{pad}{_yaml_key(key)}:")
                emit(value, depth + 1)
            else:
                lines.append(f"{pad}{_yaml_key(key)}: {_yaml_value(value)}")

    emit(options, 0)
    return "\n".join(lines) + "\n"


def _yaml_key(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML_WORDS else _yaml_value(key)


def _yaml_value(value: Any) -> str:
    if isinstance(value, str):
        # json.dumps leaves some non-printable characters raw; YAML readers refuse or fold those.
        return "".join(
            c if c.isprintable() else f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"
            for c in json.dumps(value, ensure_ascii=False)
        )
    if value is None or isinstance(value, bool | int):
        return json.dumps(value)
    if isinstance(value, float) and math.isfinite(value):
        text = repr(value)
        # A YAML 1.1 reader takes an exponent without a dot ("1e-05") for a string.
        return text if "." in text or "e" not in text else text.replace("e", ".0e", 1)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_yaml_key(k)}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    raise InvalidInput(f"args2_6 value {value!r} cannot go in a mongod config file", field="args2_6")


def admin_host(options: Mapping[str, Any]) -> str:
    """The address the agent uses to reach its local mongod: loopback unless ``bindIp`` leaves it out."""
    net = options.get("net") or {}
    bind = net.get("bindIp")
    if net.get("bindIpAll") or not bind:
        return "127.0.0.1"
    addresses = [a.strip() for a in str(bind).split(",") if a.strip()]
    if any(a in ("127.0.0.1", "localhost", "0.0.0.0") for a in addresses):
        return "127.0.0.1"
    return addresses[0]


def requires_tls(options: Mapping[str, Any]) -> bool:
    """Whether clients must use TLS: ``net.tls.mode`` (or the older ``net.ssl.mode``) is require*."""
    net = options.get("net") or {}
    mode = (net.get("tls") or {}).get("mode") or (net.get("ssl") or {}).get("mode")
    return mode in ("requireTLS", "requireSSL")


# ---------------------------------------------------------------------------------------------------------
# Server replies -> driver types (pure)


def ts_to_int(ts: Timestamp) -> int:
    return (ts.time << 32) | ts.inc


def int_to_ts(value: int) -> Timestamp:
    return Timestamp(value >> 32, value & 0xFFFFFFFF)


def member_state(state_str: str | None, state: int | None) -> MemberState:
    by_str = _STATE_STRS.get(state_str or "")
    return by_str or _STATE_CODES.get(state if state is not None else -1, MemberState.UNKNOWN)


def _optime(member: Mapping[str, Any]) -> int:
    optime = member.get("optime")
    if isinstance(optime, Mapping):  # protocol version 1: {ts, t}
        optime = optime.get("ts")
    if isinstance(optime, Timestamp):
        return ts_to_int(optime)
    date = member.get("optimeDate")
    return int(date.timestamp()) << 32 if isinstance(date, datetime) else 0


def parse_rs_status(reply: Mapping[str, Any]) -> RsStatus:
    """A ``replSetGetStatus`` reply as an :class:`RsStatus`."""
    members = tuple(
        MemberStatus(
            host=str(m["name"]),
            state=member_state(m.get("stateStr"), m.get("state")),
            health=bool(m.get("health", 0)),
            optime_ts=_optime(m),
            self=bool(m.get("self", False)),
            config_version=int(m["configVersion"]) if "configVersion" in m else None,
            sync_source=(m.get("syncSourceHost") or m.get("syncingTo")) or None,
        )
        for m in reply.get("members", [])
    )
    me = next((m for m in members if m.self), None)
    versions = [m.config_version for m in members if m.config_version is not None]
    config_version = me.config_version if me and me.config_version is not None else max(versions, default=0)
    return RsStatus(
        set_name=str(reply.get("set", "")),
        my_state=_STATE_CODES.get(int(reply.get("myState", 6)), MemberState.UNKNOWN),
        term=int(reply.get("term", 0)),
        members=members,
        config_version=config_version,
    )


def oplog_window(
    storage_stats: Mapping[str, Any], first: Mapping[str, Any], last: Mapping[str, Any]
) -> OplogWindow:
    """The oplog as ``rs.printReplicationInfo()`` computes it: configured and used size, first and last
    entry, and the time between them."""
    first_ts, last_ts = first["ts"], last["ts"]
    mb = 1024.0 * 1024.0
    return OplogWindow(
        size_mb=float(storage_stats.get("maxSize", 0)) / mb,
        used_mb=float(storage_stats.get("size", 0)) / mb,
        first_ts=ts_to_int(first_ts),
        last_ts=ts_to_int(last_ts),
        window_hours=(last_ts.time - first_ts.time) / 3600.0,
    )


def oplog_record(entry: Mapping[str, Any]) -> OplogRecord:
    wall = entry.get("wall")
    return OplogRecord(
        ts=ts_to_int(entry["ts"]),
        op=str(entry["op"]),
        ns=str(entry.get("ns", "")),
        o=dict(entry.get("o") or {}),
        o2=dict(entry["o2"]) if entry.get("o2") is not None else None,
        wall_ms=int(wall.timestamp() * 1000) if isinstance(wall, datetime) else 0,
    )


def shard_info(doc: Mapping[str, Any]) -> ShardInfo:
    """One document of a ``listShards`` reply's ``shards``."""
    return ShardInfo(id=str(doc["_id"]), host=str(doc["host"]), draining=bool(doc.get("draining", False)))


def remove_shard_progress(reply: Mapping[str, Any]) -> RemoveShardProgress:
    """A ``removeShard`` reply: ``state``, ``remaining.chunks`` (absent when draining just started) and
    ``dbsToMove``."""
    remaining = reply.get("remaining")
    chunks = remaining.get("chunks", 0) if isinstance(remaining, Mapping) else 0
    return RemoveShardProgress(
        state=RemoveShardState(str(reply["state"])),
        remaining_chunks=int(chunks),
        dbs_to_move=tuple(str(db) for db in reply.get("dbsToMove") or ()),
    )


def sharded_collection(doc: Mapping[str, Any]) -> ShardedCollection | None:
    """A ``config.collections`` document, or None for one that was dropped or is the cluster's own
    (``config.system.sessions``)."""
    ns = str(doc.get("_id", ""))
    if doc.get("dropped") or ns.startswith("config.") or not isinstance(doc.get("key"), Mapping):
        return None
    return ShardedCollection(ns=ns, key=plain(doc["key"]), unique=bool(doc.get("unique", False)))


def balancer_state(reply: Mapping[str, Any]) -> BalancerState:
    return BalancerState(
        mode=str(reply.get("mode", "off")), in_round=bool(reply.get("inBalancerRound", False))
    )


def index_name(keys: list[tuple[str, Any]]) -> str:
    """MongoDB's default index name: ``a_1_b_-1``."""
    return "_".join(f"{field}_{direction}" for field, direction in keys)


def split_namespace(ns: str) -> tuple[str, str]:
    db, sep, coll = ns.partition(".")
    if not (db and sep and coll):
        raise InvalidInput(f"namespace {ns!r} is not of the form <database>.<collection>", field="ns")
    return db, coll


def plain(doc: Mapping[str, Any]) -> Doc:
    """pymongo hands index specs back as SON; callers compare them with plain dicts."""
    return {k: plain(v) if isinstance(v, Mapping) else v for k, v in doc.items()}


# serverStatus paths of the Ops Manager host measurements it gives.
_SERVER_STATUS_MEASUREMENTS: dict[str, tuple[str, ...]] = {
    "OPCOUNTER_INSERT": ("opcounters", "insert"),
    "OPCOUNTER_QUERY": ("opcounters", "query"),
    "OPCOUNTER_UPDATE": ("opcounters", "update"),
    "OPCOUNTER_DELETE": ("opcounters", "delete"),
    "OPCOUNTER_CMD": ("opcounters", "command"),
    "OPCOUNTER_GETMORE": ("opcounters", "getmore"),
    "MEMORY_RESIDENT": ("mem", "resident"),
    "MEMORY_VIRTUAL": ("mem", "virtual"),
    "EXTRA_INFO_PAGE_FAULTS": ("extra_info", "page_faults"),
    "TICKETS_AVAILABLE_READS": ("wiredTiger", "concurrentTransactions", "read", "available"),
    "TICKETS_AVAILABLE_WRITE": ("wiredTiger", "concurrentTransactions", "write", "available"),
}


def db_stats_sample(stats: Mapping[str, Any]) -> dict[str, float]:
    """The disk of the data directory as ``dbStats`` gives it (``fsUsedSize``/``fsTotalSize``, bytes)."""
    used, total = stats.get("fsUsedSize"), stats.get("fsTotalSize")
    numbers = [v for v in (used, total) if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != 2 or not all(math.isfinite(v) and v >= 0 for v in numbers):
        return {}
    return {
        "DISK_PARTITION_SPACE_USED": float(numbers[0]),
        "DISK_PARTITION_SPACE_FREE": float(max(0, numbers[1] - numbers[0])),
    }


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# dbStats fields of the Ops Manager database measurements (sizes in bytes: dbStats is sent unscaled).
_DB_STATS_MEASUREMENTS = {
    "DATABASE_OBJECT_COUNT": "objects",
    "DATABASE_AVERAGE_OBJECT_SIZE": "avgObjSize",
    "DATABASE_DATA_SIZE": "dataSize",
    "DATABASE_STORAGE_SIZE": "storageSize",
    "DATABASE_INDEX_SIZE": "indexSize",
    "DATABASE_COLLECTION_COUNT": "collections",
    "DATABASE_INDEX_COUNT": "indexes",
    "DATABASE_VIEW_COUNT": "views",
}
_PARTITION_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def database_names(reply: Mapping[str, Any], limit: int) -> list[str]:
    """The first ``limit`` database names, by name, of a ``listDatabases`` reply."""
    listed = reply.get("databases")
    names = [d.get("name") for d in listed if isinstance(d, Mapping)] if isinstance(listed, list) else []
    return sorted(n for n in names if isinstance(n, str) and n)[:limit]


def database_sample(stats: Mapping[str, Any]) -> dict[str, float]:
    """The Ops Manager database measurements of one ``dbStats`` reply (a field it lacks is left out)."""
    sample = {m: _number(stats.get(field)) for m, field in _DB_STATS_MEASUREMENTS.items()}
    return {m: v for m, v in sample.items() if v is not None and v >= 0}


def partition_name(path: str, mounts: str) -> str:
    """The name Ops Manager gives the partition holding ``path`` (absolute, resolved): the device of the
    longest mount point above it in ``mounts`` (``/proc/mounts``' text), without ``/dev/``; ``root`` when
    none is found. Only letters, digits, ``_``, ``.`` and ``-`` are kept (the name is a URL's segment)."""
    best, device = "", "root"
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        point = fields[1].replace("\\040", " ")
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, device = point, fields[0].removeprefix("/dev/")
    return _PARTITION_CHARS.sub("_", device).lstrip(".")[:64] or "root"


def disk_space_sample(total: int, free: int) -> dict[str, float]:
    """A partition's ``DISK_PARTITION_SPACE_*`` measurements from its size and free bytes."""
    used = max(0, total - free)
    percent_used = 100.0 * used / total if total > 0 else 0.0
    return {
        "DISK_PARTITION_SPACE_USED": float(used),
        "DISK_PARTITION_SPACE_FREE": float(free),
        "DISK_PARTITION_SPACE_PERCENT_USED": round(percent_used, 3),
        "DISK_PARTITION_SPACE_PERCENT_FREE": round(100.0 - percent_used, 3),
    }


def server_status_sample(status: Mapping[str, Any]) -> dict[str, float]:
    """The measurements of a ``serverStatus`` reply; one it lacks (another storage engine, an older
    server) is left out rather than guessed."""
    sample: dict[str, float] = {}
    for measurement, path in _SERVER_STATUS_MEASUREMENTS.items():
        value: Any = status
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            sample[measurement] = float(value)
    return sample
