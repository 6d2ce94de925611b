"""A drill's proof of reconciliation: shadow agents that present, to the sandbox, the configuration the live
primary serves now, and the check that the sandbox ends on exactly that configuration.

For every project the primary's key can read and the sandbox holds, one simulated ``opsmgr agent`` per host
of its live configuration is started against the sandbox: with an agent API key made in the sandbox's
application database (never a production key), an in-memory simulated world (never production's processes)
and, on disk, the live configuration at its live version as the one it last reached goal with. The sandbox,
armed by its restore, hears them: at the same version it disarms; where the restored configuration is older,
it enters Restoration Mode, verifies the claim of the agent it chooses and takes its upload. A project is
reconciled when the sandbox's public API (read with a project key made for the drill) says it is neither
armed nor in the mode and serves the live configuration (both as the public API shows them).

May import ``opsmgr.errors``, ``opsmgr.agent.settings``, ``opsmgr.agent.state``, ``opsmgr.properties``,
``opsmgr.store``, ``opsmgr.command``, ``opsmgr.cli.api`` and ``opsmgr.cli.demo`` (child processes).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsmgr.agent.settings import MEMORY_WORLD
from opsmgr.agent.state import AgentState, StateStore
from opsmgr.cli.api import PublicApi
from opsmgr.cli.demo import Children
from opsmgr.command import opsmgr_command
from opsmgr.errors import InvalidInput, OpsmgrError
from opsmgr.properties import dump_properties
from opsmgr.store.appdb import AppDB
from opsmgr.store.crypto import GenKey
from opsmgr.store.engine import Store

MAX_SHADOW_AGENTS = 64
SETTLED = "INACTIVE"


@dataclass(frozen=True)
class Shadow:
    group_id: str
    hostname: str
    config_path: Path


@dataclass(frozen=True)
class Sandbox:
    """What the drill made in the sandbox: its agents, and a read-only key per project to check it."""

    url: str
    shadows: list[Shadow]
    readers: dict[str, tuple[str, str]]  # project id -> (public key, private key)


def live_configs(primary: PublicApi) -> dict[str, dict[str, Any]]:
    """Each project the key reads, with the configuration the primary serves now (its ``version`` in it)."""
    groups = primary.get_all("/groups")["results"]
    return {str(g["id"]): dict(primary.get(f"/groups/{g['id']}/automationConfig")) for g in groups}


def _hosts(config: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for proc in config.get("processes") or []:
        out.setdefault(str(proc["hostname"]), []).append(proc)
    return out


def prepare(
    app_uri: str, genkey: GenKey, live: Mapping[str, Mapping[str, Any]], folder: Path, sandbox_url: str
) -> Sandbox:
    """Agent keys and read-only keys in the sandbox's application database (before its server starts), and
    one agent's configuration and state per host of each live project the sandbox holds."""
    store = Store(app_uri, name="the sandbox's application database")
    try:
        appdb = AppDB(store, genkey.encrypt, genkey.decrypt)
        held = {str(g["_id"]) for g in appdb.groups()}
        wanted = {gid: _hosts(cfg) for gid, cfg in live.items() if gid in held and cfg.get("processes")}
        count = sum(len(hosts) for hosts in wanted.values())
        if count > MAX_SHADOW_AGENTS:
            raise InvalidInput(f"{count} hosts: a drill starts at most {MAX_SHADOW_AGENTS} shadow agents")
        shadows = []
        readers = {}
        for gid, hosts in wanted.items():
            role = {"groupId": gid, "roleName": "GROUP_READ_ONLY"}
            doc, private = appdb.create_api_key("a restore drill's check", [role])
            readers[gid] = (str(doc["publicKey"]), private)
            _doc, key = appdb.create_agent_key(gid, "a restore drill's shadow agents")
            for hostname, procs in hosts.items():
                home = folder / "shadow" / gid / hostname
                shadows.append(_write_agent(home, gid, key, hostname, procs, live[gid], sandbox_url))
        return Sandbox(sandbox_url, shadows, readers)
    finally:
        store.close()


def _write_agent(
    home: Path,
    group_id: str,
    key: str,
    hostname: str,
    procs: Iterable[Mapping[str, Any]],
    config: Mapping[str, Any],
    url: str,
) -> Shadow:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    goal = {k: v for k, v in config.items() if k != "version"}
    names = frozenset(str(p["name"]) for p in procs)
    sets = frozenset(
        str(p["args2_6"]["replication"]["replSetName"])
        for p in procs
        if ((p.get("args2_6") or {}).get("replication") or {}).get("replSetName")
    )
    StateStore(home / "state").save(
        AgentState(int(config["version"]), goal, names, sets, int(time.time() * 1000))
    )
    values = {
        "mmsGroupId": group_id,
        "mmsApiKey": key,
        "mmsBaseUrl": url,
        "hostname": hostname,
        "stateDir": str(home / "state"),
        "logFile": str(home / "agent.log"),
        "driver": "sim",
        "sim.world": MEMORY_WORLD,
        "pollIntervalSeconds": "0.5",
    }
    path = home / "automation-agent.config"
    path.write_text(dump_properties(values, header="a restore drill's shadow agent"), encoding="utf-8")
    path.chmod(0o600)
    return Shadow(group_id, hostname, path)


def start(shadows: Iterable[Shadow], children: Children) -> None:
    for s in shadows:
        args = [*opsmgr_command(), "agent", "--config", str(s.config_path)]
        children.start(f"shadow agent of {s.hostname}", args, s.config_path.with_name("agent.out"))


def unreconciled(readers: Mapping[str, PublicApi], live: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Each project with shadow agents the sandbox has not reconciled yet, and why (empty: all are);
    ``readers``: a client of the sandbox per project, with its read-only key."""
    out = {}
    for gid, api in readers.items():
        state = str(api.get(f"/groups/{gid}/restorationMode").get("state"))
        if state != SETTLED:
            out[gid] = f"Restoration Mode is {state}"
            continue
        have = api.get(f"/groups/{gid}/automationConfig")
        if _comparable(have) != _comparable(live[gid]):
            out[gid] = (
                f"serves version {have.get('version')}, not the live version {live[gid].get('version')}"
            )
    return out


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "version"}


def wait_reconciled(
    sandbox: Sandbox, live: Mapping[str, Mapping[str, Any]], children: Children, timeout: float
) -> None:
    """Polls until every project is reconciled; raises naming the others. One client per project for the
    whole wait: its Digest session is kept, not renegotiated each poll."""
    deadline = time.monotonic() + timeout
    with ExitStack() as clients:
        readers = {
            gid: clients.enter_context(PublicApi(sandbox.url, public, private))
            for gid, (public, private) in sandbox.readers.items()
        }
        while True:
            children.check()
            left = unreconciled(readers, live)
            if not left:
                return
            if time.monotonic() > deadline:
                named = "; ".join(f"{gid}: {why}" for gid, why in sorted(left.items()))
                raise OpsmgrError(f"not reconciled within {timeout:.0f} s: {named}")
            time.sleep(0.5)
