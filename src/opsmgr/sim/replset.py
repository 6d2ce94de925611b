"""Replica set commands on a simulated member: ``replSetGetStatus`` and ``replSetGetConfig`` as the asked
member sees them, ``replSetInitiate`` (validation, quorum check, one initiation), ``replSetReconfig``
(version, validation of the change, quorum; ``force`` from any member), ``replSetStepDown`` (a pending
request whose outcome ``processes.request_result`` tells), ``replSetFreeze``, ``setParameter`` and the
offline rename of a set.

Each command is a function ``(ctx, n, t, ...)`` as in ``sim.processes``; refusals carry MongoDB's codes. The
elections and step-downs these commands set in motion are ``sim.elections``'. May import
``opsmgr.drivers.base`` and ``opsmgr.sim`` modules.
"""

from __future__ import annotations

import copy
from typing import Any

from opsmgr.drivers.base import CommandConflict, CommandInvalid, MemberState, MemberStatus, RsStatus, RunMode
from opsmgr.sim import rsconfig
from opsmgr.sim.ctx import Ctx, due, mix
from opsmgr.sim.elections import step_down
from opsmgr.sim.members import election_timeout_s, own_state, up_members
from opsmgr.sim.model import AddrRec, GroupRec, NodeRec, Role, WriteLoad
from opsmgr.sim.processes import NOT_PRIMARY, refuse, request, up
from opsmgr.sim.restore import own_lineage

_INVALID = "InvalidReplicaSetConfig"


def _initiated(ctx: Ctx, n: NodeRec) -> GroupRec | None:
    """The set of a member running in replSet mode that has its config; None otherwise."""
    g = ctx.group(n.gid)
    return g if n.mode == RunMode.REPLSET.value and g is not None and n.cfg_version != 0 else None


def rs_status(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> RsStatus | None:
    n = up(n, name, t)
    g = _initiated(ctx, n)
    if g is None:
        return None
    me = rsconfig.member_for(g.config, n.addr)
    if me is None or n.repl_set_name != g.set_name:
        return RsStatus(
            set_name=g.set_name, my_state=MemberState.REMOVED, term=0, members=(), config_version=0
        )
    up_now = {o.addr: (m, o) for m, o in up_members(ctx, g, t)}
    members = []
    for m in g.config["members"]:
        found = up_now.get(m["host"])
        if found is None or not ctx.reach(n, found[1]):
            members.append(MemberStatus(host=m["host"], state=MemberState.DOWN, health=False, optime_ts=0))
            continue
        o = found[1]
        state = own_state(g, m, o)
        members.append(
            MemberStatus(
                host=m["host"],
                state=state,
                health=True,
                optime_ts=0 if m["arbiterOnly"] else o.applied_ts,
                self=o is n,
                config_version=o.cfg_version,
                sync_source=o.sync_source if state is MemberState.SECONDARY else None,
            )
        )
    return RsStatus(
        set_name=g.set_name,
        my_state=own_state(g, me, n),
        term=n.term,
        members=tuple(members),
        config_version=n.cfg_version,
    )


def rs_config(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> dict[str, Any] | None:
    g = _initiated(ctx, up(n, name, t))
    return {**copy.deepcopy(g.config), "term": g.term} if g is not None else None


def set_parameter(ctx: Ctx, n: NodeRec | None, t: float, name: str, parameters: dict[str, Any]) -> None:
    """``setParameter`` on a running process: its options show the new values from now on."""
    n = up(n, name, t)
    current = dict(n.args.get("setParameter") or {})
    n.args = {**n.args, "setParameter": {**current, **copy.deepcopy(parameters)}}


def rename(ctx: Ctx, n: NodeRec | None, t: float, name: str, new_name: str) -> None:
    """Rename the set in the data of a standalone process (its ``local.system.replset``). The set's config
    is shared in this model, so its other members, still under the old name, drop out of it (REMOVED) until
    they are restarted under the new one, as the offline rename procedure does."""
    n = up(n, name, t)
    if n.mode != RunMode.STANDALONE.value:
        raise refuse(f"{name}: rename the replica set while standalone", 20, "IllegalOperation")
    g = ctx.group(n.gid)
    if g is None:
        raise refuse(f"{name}: has no replica set config to rename", 76, "NoReplicationEnabled")
    if g.set_name == new_name:
        return
    g.set_name = new_name
    g.config = {**g.config, "_id": new_name}
    ctx.event(g, t, "rename", host=n.addr, name=new_name)
    # A primary still under the old name is no member of the set any more: it steps down.
    for key in list(g.bound):
        o = ctx.node(key)
        if o is not None and o.running and o.role == Role.PRIMARY and o.repl_set_name != new_name:
            step_down(ctx, g, o, t, "is no longer a member of the renamed set")


def initiate(ctx: Ctx, n: NodeRec | None, t: float, name: str, config: dict[str, Any]) -> None:
    n = up(n, name, t)
    if n.mode != RunMode.REPLSET.value:
        raise refuse(
            f"{name}: This node was not started with replication enabled.", 76, "NoReplicationEnabled"
        )
    if ctx.group(n.gid) is not None and n.cfg_version:
        raise refuse(f"{name}: already initialized", 23, "AlreadyInitialized")
    cfg = rsconfig.normalize(config)
    rsconfig.validate(cfg)
    if cfg["_id"] != n.repl_set_name:
        raise CommandInvalid(
            f"Attempting to initiate a replica set with name {cfg['_id']}, but command line reports "
            f"{n.repl_set_name}; rejecting",
            code=93,
            code_name=_INVALID,
        )
    version = cfg.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CommandInvalid("version must be a positive integer", code=93, code_name=_INVALID)
    me = rsconfig.member_for(cfg, n.addr)
    if me is None:
        raise CommandInvalid(
            f"No host described in new configuration with {{version: {version}, term: 0}} for "
            f"replica set {cfg['_id']} maps to this node",
            code=74,
            code_name="NodeNotFound",
        )
    if me["arbiterOnly"]:
        raise CommandInvalid("an arbiter cannot initiate the replica set", code=93, code_name=_INVALID)
    for m in cfg["members"]:
        if m is not me:
            _check_initiate_peer(ctx, n, m["host"], cfg["_id"], t)
    _create_set(ctx, n, cfg, version, t)


def _check_initiate_peer(ctx: Ctx, n: NodeRec, host: str, set_name: str, t: float) -> None:
    def fail(why: str) -> CommandConflict:
        return refuse(
            "replSetInitiate quorum check failed because not all proposed set members responded "
            f"affirmatively: {host} failed with {why}",
            74,
            "NodeNotFound",
        )

    o = ctx.listening(host)
    if o is None or not due(t, o.ready_at) or not ctx.reach(n, o):
        raise fail("Connection refused")
    if o.mode != RunMode.REPLSET.value:
        raise fail("not running with --replSet")
    if o.repl_set_name != set_name:
        raise fail(f"replica set name {o.repl_set_name} does not match {set_name}")
    if ctx.group(o.gid) is not None and o.cfg_version:
        raise fail("already initialized")
    if o.lineage is not None and ctx.data.count_docs(o.lineage, o.applied_ts):
        raise fail("has data already, cannot initiate set")


def _create_set(ctx: Ctx, n: NodeRec, cfg: dict[str, Any], version: int, t: float) -> None:
    gid = ctx.meta.next_gid
    ctx.meta.next_gid += 1
    cfg["version"] = version
    cfg["settings"].setdefault("replicaSetId", f"{mix(ctx.params.seed, gid) & ((1 << 96) - 1):024x}")
    load = ctx.params.default_write_load or WriteLoad()
    g = GroupRec(gid=gid, set_name=cfg["_id"], config=cfg, t=t, load=load.to_json(), bound=[n.key])
    ctx.tx.put(g)
    for m in cfg["members"]:
        ctx.tx.put(AddrRec(m["host"], gid))
    if n.gid is not None and n.gid != gid:
        old = ctx.group(n.gid)
        if old is not None and n.key in old.bound:
            old.bound.remove(n.key)
    n.gid, n.cfg_version, n.role = gid, version, Role.SECONDARY
    own_lineage(ctx, n, t, "initiating set")
    # The initiator calls an election straight away, as a freshly initiated mongod does.
    n.no_primary_since = t - election_timeout_s(g)
    ctx.event(g, t, "initiate", host=n.addr, version=version)


def reconfig(ctx: Ctx, n: NodeRec | None, t: float, name: str, config: dict[str, Any], force: bool) -> None:
    n = up(n, name, t)
    g = _initiated(ctx, n)
    if g is None:
        raise refuse(f"{name}: no replset config has been received", 94, "NotYetInitialized")
    if not force and n.role != Role.PRIMARY:
        raise refuse(
            f"{name}: replSetReconfig should only be run on a writable PRIMARY",
            NOT_PRIMARY,
            "NotWritablePrimary",
        )
    cfg = rsconfig.normalize(config)
    rsconfig.validate(cfg)
    rsconfig.validate_change(g.config, cfg, force=force)
    version = _new_version(ctx, g, cfg, t, force)
    if rsconfig.member_for(cfg, n.addr) is None and not force:
        raise CommandInvalid(
            f"No host described in new configuration with {{version: {version}}} for replica set "
            f"{g.set_name} maps to this node",
            code=74,
            code_name="NodeNotFound",
        )
    if not force:
        _check_reconfig_quorum(ctx, g, n, cfg, t)
    cfg["version"] = version
    cfg["settings"]["replicaSetId"] = g.config["settings"].get("replicaSetId")
    cfg.pop("term", None)
    _readdress(ctx, g, cfg)
    g.config = cfg
    n.cfg_version = version
    ctx.event(g, t, "reconfig", host=n.addr, version=version, force=force)


def _new_version(ctx: Ctx, g: GroupRec, cfg: dict[str, Any], t: float, force: bool) -> int:
    """The version the new config takes: past the old one, by a random jump when forced (as MongoDB does)."""
    old_version = int(g.config["version"])
    version = cfg.get("version", old_version + 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CommandInvalid("version must be an integer", code=93, code_name=_INVALID)
    if force:
        return max(version, old_version) + 10_000 + mix(ctx.params.seed, g.gid, int(t * 1000)) % 90_000
    if version <= old_version:
        raise CommandInvalid(
            f"New config version {version} must be greater than old version {old_version}",
            code=103,
            code_name="NewReplicaSetConfigurationIncompatible",
        )
    return version


def _readdress(ctx: Ctx, g: GroupRec, cfg: dict[str, Any]) -> None:
    """The set is found at the addresses of the new config's members, and no longer at the others'."""
    old_hosts = {m["host"] for m in g.config["members"]}
    new_hosts = {m["host"] for m in cfg["members"]}
    for host in old_hosts - new_hosts:
        rec = ctx.tx.get(AddrRec, host)
        if rec is not None and rec.gid == g.gid:
            ctx.tx.delete(rec)
    for host in new_hosts - old_hosts:
        ctx.tx.put(AddrRec(host, g.gid))


def _check_reconfig_quorum(ctx: Ctx, g: GroupRec, n: NodeRec, cfg: dict[str, Any], t: float) -> None:
    votes_up = 0
    for m in cfg["members"]:
        o = ctx.listening(m["host"])
        if o is None or o.mode != "replset" or o.repl_set_name != g.set_name or not due(t, o.ready_at):
            continue
        other = ctx.group(o.gid)
        if other is not None and other.gid != g.gid and rsconfig.member_for(other.config, o.addr):
            raise refuse(
                f"{m['host']} is a member of another replica set (id {other.gid})",
                103,
                "NewReplicaSetConfigurationIncompatible",
            )
        if m["votes"] == 1 and ctx.reach(n, o):
            votes_up += 1
    if votes_up < rsconfig.majority(cfg):
        raise refuse(
            "replSetReconfig quorum check failed: not enough voting members of the new config are up "
            f"({votes_up} of the {rsconfig.majority(cfg)} needed)",
            74,
            "NodeNotFound",
        )


def request_step_down(
    ctx: Ctx, n: NodeRec | None, t: float, name: str, step_down_secs: float, catch_up_secs: float
) -> str:
    """Start ``replSetStepDown``; poll ``processes.request_result`` with the returned id for the outcome."""
    n = up(n, name, t)
    if n.mode != RunMode.REPLSET.value or n.role != Role.PRIMARY or ctx.group(n.gid) is None:
        raise refuse(f"{name}: not primary so can't step down", NOT_PRIMARY, "NotWritablePrimary")
    if step_down_secs <= catch_up_secs:
        raise CommandInvalid(
            "stepdown period must be longer than secondaryCatchUpPeriodSecs", code=2, code_name="BadValue"
        )
    return request(ctx, n, t, catch_up_s=catch_up_secs, until=t + step_down_secs, shutdown=False)


def freeze(ctx: Ctx, n: NodeRec | None, t: float, name: str, secs: float) -> None:
    n = up(n, name, t)
    g = _initiated(ctx, n)
    if g is None:
        raise refuse(f"{name}: no replset config has been received", 94, "NotYetInitialized")
    if secs < 0:
        raise CommandInvalid(
            "replSetFreeze needs a non-negative number of seconds", code=2, code_name="BadValue"
        )
    running_for = g.election is not None and g.election["candidate"] == n.key
    if n.role == Role.PRIMARY or running_for:
        state = "Primary" if n.role == Role.PRIMARY else "Secondary (running for election)"
        raise refuse(
            f"{name}: cannot freeze node when primary or running for election. state: {state}",
            95,
            "NotSecondary",
        )
    n.frozen_until = t + secs
