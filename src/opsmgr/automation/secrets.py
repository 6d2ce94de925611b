"""Where the automation config's secrets live, and how they are transformed (encrypted with gen.key for the
application database), redacted (what an agent uploads and what a hash covers), restored from another copy
of the config, and refused when still redacted.

Pure functions over plain JSON values that never mutate their arguments. May import ``opsmgr.errors`` and
``opsmgr.automation.rules``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opsmgr.automation.rules import fail, join, json_type

# What the agent writes in place of each secret when it uploads its config during Restoration Mode.
REDACTED = "**REDACTED**"

# Sensitive string fields, as dotted paths. ``name[f1,f2]`` steps into each element of the list ``name``;
# the bracketed fields identify an element, so a secret is matched to its counterpart in another copy of the
# config even when the lists are in a different order.
SECRET_PATHS: tuple[str, ...] = (
    "auth.key",
    "auth.autoPwd",
    "auth.usersWanted[db,user].initPwd",
    "auth.usersWanted[db,user].pwd",
    "auth.usersWanted[db,user].scramSha1Creds.storedKey",
    "auth.usersWanted[db,user].scramSha1Creds.serverKey",
    "auth.usersWanted[db,user].scramSha256Creds.storedKey",
    "auth.usersWanted[db,user].scramSha256Creds.serverKey",
    "ldap.bindQueryPassword",
    "tls.autoPEMKeyFilePwd",
    "ssl.autoPEMKeyFilePwd",
    # The restore delivery URL carries the token that authorises downloading the snapshot.
    "processes[name].backupRestoreUrl",
    "processes[name].args2_6.net.tls.certificateKeyFilePassword",
    "processes[name].args2_6.net.tls.clusterPassword",
    "processes[name].args2_6.net.ssl.PEMKeyPassword",
    "processes[name].args2_6.net.ssl.clusterPassword",
    "processes[name].args2_6.security.kmip.clientCertificatePassword",
    "processes[name].args2_6.security.ldap.bind.queryPassword",
)


@dataclass(frozen=True)
class _Step:
    key: str
    identity: tuple[str, ...] | None  # for a list: the fields that identify an element


@dataclass(frozen=True)
class _Slot:
    field: str  # JSON path with list indexes, as errors name it
    parent: dict[str, Any]
    key: str
    locator: tuple[Any, ...]  # dict keys, and ((field, value), ...) identities of list elements


def _parse_secret_path(path: str) -> tuple[_Step, ...]:
    steps = []
    for part in path.split("."):
        key, bracket, rest = part.partition("[")
        steps.append(_Step(key, tuple(rest.rstrip("]").split(",")) if bracket else None))
    return tuple(steps)


_SECRET_STEPS = tuple(_parse_secret_path(path) for path in SECRET_PATHS)


def slots(config: Any) -> Iterator[_Slot]:
    """Every secret present in ``config``."""
    for steps in _SECRET_STEPS:
        yield from _walk(config, steps, "", ())


def _walk(node: Any, steps: tuple[_Step, ...], field: str, locator: tuple[Any, ...]) -> Iterator[_Slot]:
    step, rest = steps[0], steps[1:]
    if not isinstance(node, dict) or step.key not in node:
        return
    field, locator = join(field, step.key), (*locator, step.key)
    child = node[step.key]
    if not rest:
        yield _Slot(field, node, step.key, locator)
    elif step.identity is None:
        yield from _walk(child, rest, field, locator)
    elif isinstance(child, list):
        for i, element in enumerate(child):
            if isinstance(element, dict):
                identity = tuple((name, element.get(name)) for name in step.identity)
                yield from _walk(element, rest, f"{field}[{i}]", (*locator, identity))


_MISSING = object()


def _resolve(doc: Any, locator: tuple[Any, ...]) -> Any:
    node = doc
    for item in locator:
        if isinstance(item, str):
            node = node.get(item, _MISSING) if isinstance(node, dict) else _MISSING
        elif isinstance(node, list):
            node = next(
                (e for e in node if isinstance(e, dict) and all(e.get(f) == v for f, v in item)),
                _MISSING,
            )
        else:
            node = _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def map_secrets(config: Mapping[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """A copy of ``config`` with ``fn`` applied to every secret present (encrypt or decrypt with gen.key)."""
    out = copy.deepcopy(dict(config))
    for slot in slots(out):
        value = slot.parent[slot.key]
        if isinstance(value, str):
            slot.parent[slot.key] = fn(value)
    return out


def redact(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with every secret replaced by :data:`REDACTED`."""
    return map_secrets(config, lambda _secret: REDACTED)


def fill_redacted(config: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` where each :data:`REDACTED` secret takes the value ``source`` has for it.

    List elements are matched by identity (process ``name``, user ``db`` and ``user``), not position.
    Markers ``source`` cannot fill stay; :func:`redacted_fields` lists them and :func:`validate` refuses them.
    """
    out = copy.deepcopy(dict(config))
    for slot in slots(out):
        if slot.parent[slot.key] == REDACTED:
            original = _resolve(source, slot.locator)
            if isinstance(original, str) and original != REDACTED:
                slot.parent[slot.key] = original
    return out


def redacted_fields(config: Mapping[str, Any]) -> list[str]:
    """The JSON paths of secrets in ``config`` that still hold :data:`REDACTED`."""
    return [slot.field for slot in slots(config) if slot.parent[slot.key] == REDACTED]


def check_secrets(config: dict[str, Any]) -> None:
    for slot in slots(config):
        value = slot.parent[slot.key]
        if not isinstance(value, str):
            fail(slot.field, "type", f"{slot.field} must be a string, not {json_type(value)}")
        if value == REDACTED:
            fail(
                slot.field,
                "secret-redacted",
                f"{slot.field} holds the redaction marker instead of the secret itself",
            )
