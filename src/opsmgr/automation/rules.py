"""The automation config's rules in general: the limits and modes a config is held to, and the checks every
section's rules are written with (a field's JSON type, a required field, a choice among modes, a host name),
each failing with :class:`InvalidInput` naming the rule and the field's JSON path.

Pure functions over plain JSON values. May import ``opsmgr.errors`` only.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, NoReturn

from opsmgr.errors import InvalidInput

DEFAULT_PORT = 27017
MAX_MEMBERS = 50
MAX_VOTING_MEMBERS = 7
MAX_PRIORITY = 1000
MAX_MEMBER_ID = 255
# Oplog sizes are bounded by what mongod accepts at most (1 PB); the lower bound is left to mongod so that
# simulated deployments can use small oplogs to exercise the oplog-window preflight.
MAX_OPLOG_SIZE_MB = 1024 * 1024 * 1024

PROCESS_TYPES = ("mongod", "mongos")
TLS_MODES = ("disabled", "allowTLS", "preferTLS", "requireTLS")
SSL_MODES = ("disabled", "allowSSL", "preferSSL", "requireSSL")
CLIENT_CERTIFICATE_MODES = ("OPTIONAL", "REQUIRE")
CLUSTER_AUTH_MODES = ("keyFile", "sendKeyFile", "sendX509", "x509")
AUTH_MECHANISMS = ("SCRAM-SHA-1", "SCRAM-SHA-256", "MONGODB-CR", "MONGODB-X509", "PLAIN", "GSSAPI")
PASSWORD_MECHANISMS = frozenset({"SCRAM-SHA-1", "SCRAM-SHA-256", "MONGODB-CR"})
PROFILER_MODES = ("off", "slowOp", "all")
INDEX_KEY_TYPES = ("text", "2d", "2dsphere", "hashed", "geoHaystack")

KINDS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}
ARTICLES = {
    "string": "a string",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "object": "an object",
    "array": "an array",
}
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def fail(field: str, rule: str, detail: str) -> NoReturn:
    raise InvalidInput(detail, field=field, rule=rule)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind in ("boolean", "integer", "number", "string", "array", "object"):
        if KINDS[kind](value):
            return kind
    return type(value).__name__


def get(obj: Mapping[str, Any], dotted: str) -> Any:
    """The value at ``dotted`` below ``obj``, or None when any step is missing or not an object."""
    node: Any = obj
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def check_fields(obj: dict[str, Any], fields: Mapping[str, str], path: str) -> None:
    for dotted, kind in fields.items():
        node: Any = obj
        parts = dotted.split(".")
        for depth, part in enumerate(parts):
            if part not in node:
                break
            node = node[part]
            here = join(path, ".".join(parts[: depth + 1]))
            expected = kind if depth == len(parts) - 1 else "object"
            if not KINDS[expected](node):
                fail(here, "type", f"{here} must be {ARTICLES[expected]}, not {json_type(node)}")


def require(obj: dict[str, Any], key: str, path: str) -> None:
    if key not in obj:
        fail(join(path, key), "required", f"{join(path, key)} is required")


def objects(items: list[Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each element with its JSON path, after checking that it is an object."""
    for i, item in enumerate(items):
        here = f"{path}[{i}]"
        if not isinstance(item, dict):
            fail(here, "type", f"{here} must be an object, not {json_type(item)}")
        yield here, item


def one_of(value: Any, allowed: tuple[str, ...], field: str, rule: str) -> None:
    if not isinstance(value, str) or value not in allowed:
        fail(field, rule, f"{field} must be one of {', '.join(allowed)}, not {json.dumps(value)}")


def valid_hostname(hostname: Any) -> bool:
    """An RFC 1123 host name or an IP address: no scheme, no port, no path."""
    if not isinstance(hostname, str) or not hostname:
        return False
    if ":" in hostname:
        try:
            ipaddress.IPv6Address(hostname)
        except ValueError:
            return False
        return True
    return len(hostname) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in hostname.split("."))


_DB_NAME_FORBIDDEN = frozenset('/\\. "$*<>:|?\0')


def valid_db_name(name: Any) -> bool:
    """A MongoDB database name: 1 to 63 characters, none of ``/\\. "$*<>:|?`` or NUL."""
    return isinstance(name, str) and 0 < len(name) < 64 and not _DB_NAME_FORBIDDEN & set(name)


def valid_collection_name(name: Any) -> bool:
    """A collection name a deployment may be told to index or shard: no ``$`` or NUL, not a system one."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= 255
        and "$" not in name
        and "\0" not in name
        and not name.startswith("system.")
    )


def check_choice(obj: dict[str, Any], dotted: str, allowed: tuple[str, ...], path: str, rule: str) -> bool:
    """Check the value at ``dotted`` below ``obj`` against ``allowed`` if it is there; say whether it is."""
    parent_path, _, key = dotted.rpartition(".")
    parent = get(obj, parent_path) if parent_path else obj
    if not isinstance(parent, dict) or key not in parent:
        return False
    one_of(parent[key], allowed, f"{path}.{dotted}", rule)
    return True


def is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def canonical(value: Any) -> str:
    # JSON text tells true, 1 and 1.0 apart where Python's == does not, and sort_keys drops key order.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def is_electable(member: Mapping[str, Any]) -> bool:
    """Whether a member can become primary: priority > 0, votes 1, not an arbiter, not hidden."""
    return (
        member.get("priority", 1) > 0
        and member.get("votes", 1) == 1
        and not member.get("arbiterOnly", False)
        and not member.get("hidden", False)
    )
