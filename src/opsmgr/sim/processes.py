"""Simulated ``mongod`` processes: starting (on a free port, taking a moment, failing when told to), stopping
(a primary steps down first and waits for a secondary to catch up, or is forced), crashing, what a process
shows of itself, and its client connections.

Each command is a function ``(ctx, n, t, ...)`` over the process's record ``n`` (None when the host never
ran it) at the world's time ``t``, called by :class:`~opsmgr.sim.world.SimWorld` inside its transaction. A
command MongoDB would refuse raises the ``DriverError`` it would (:func:`refuse` builds the ones with a
MongoDB code); :func:`up` is the check every command on a running process starts with. May import
``opsmgr.errors``, ``opsmgr.drivers.base`` and ``opsmgr.sim`` modules.
"""

from __future__ import annotations

import copy
from typing import Any

from opsmgr.drivers.base import (
    CommandConflict,
    DriverError,
    ProcessObservation,
    ProcessSpec,
    ProcessUnreachable,
    RunMode,
)
from opsmgr.errors import InvalidInput
from opsmgr.sim import rsconfig
from opsmgr.sim.ctx import Ctx, due
from opsmgr.sim.elections import halt, hand_off, handoff_candidates, step_down
from opsmgr.sim.members import up_members
from opsmgr.sim.model import MB, NodeRec, Role
from opsmgr.sim.replication import cap_oplog

NOT_PRIMARY = 10107


def refuse(detail: str, code: int, code_name: str) -> CommandConflict:
    return CommandConflict(detail, code=code, code_name=code_name)


def up(n: NodeRec | None, name: str, t: float) -> NodeRec:
    """``n`` if it runs and accepts connections at ``t``; else the driver's "cannot connect"."""
    if n is None or not n.running:
        raise ProcessUnreachable(
            f"{name}: not running (connection refused)", code=6, code_name="HostUnreachable"
        )
    if not due(t, n.ready_at):
        raise ProcessUnreachable(
            f"{name}: still starting, not accepting connections yet", code=6, code_name="HostUnreachable"
        )
    return n


def oplog_mb(args: dict[str, Any], default: float) -> float:
    """The oplog size a process's arguments ask for (MB)."""
    value = (args.get("replication") or {}).get("oplogSizeMB", default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidInput("replication.oplogSizeMB must be a positive number", field="args2_6.replication")
    return float(value)


def observe(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> ProcessObservation:
    if n is None or not n.running:
        return ProcessObservation(name=name, running=False)
    return ProcessObservation(
        name=name,
        running=True,
        mode=RunMode(n.mode),
        port=n.port,
        version=n.version,
        args=copy.deepcopy(n.args),
        pid=n.pid,
        uptime_s=max(0.0, t - n.started_at),
        process_type=n.process_type,
    )


def start(ctx: Ctx, n: NodeRec | None, t: float, spec: ProcessSpec, cap_mb: float) -> float:
    """Start the process (it accepts connections at the returned time); a no-op if it already runs so."""
    mode = RunMode.REPLSET if spec.repl_set_name is not None else RunMode.STANDALONE
    if n is not None and n.running:
        if (n.port, n.mode, n.args) == (spec.port, mode.value, spec.args):
            return n.ready_at
        raise CommandConflict(f"{spec.name} already runs on port {n.port} in {n.mode} mode; stop it first")
    _check_port_free(ctx, spec)
    if n is None:
        n = NodeRec(spec.hostname, spec.name, cap_bytes=int(cap_mb * MB), dbpath=spec.dbpath)
        ctx.add_node(n)
    if n.key in ctx.meta.fail_start:
        raise DriverError(
            f"{spec.name}: exited with code 1 during startup (simulated fault: fails to start)",
            code=1,
            code_name="ProcessExited",
        )
    if n.dbpath != spec.dbpath:
        forget_data(ctx, n)
        n.dbpath = spec.dbpath
    n.running = True
    n.port, n.mode, n.version, n.process_type = spec.port, mode.value, spec.version, spec.process_type
    ctx.ports_changed()
    n.args = copy.deepcopy(spec.args)
    n.repl_set_name = spec.repl_set_name
    n.cap_bytes = int(cap_mb * MB)
    n.pid = ctx.meta.next_pid
    ctx.meta.next_pid += 1
    n.started_at, n.ready_at = t, t + ctx.params.startup_s
    n.role = Role.SECONDARY
    n.stepdown_until = n.frozen_until = 0.0
    cap_oplog(ctx, n)
    return n.ready_at


def _check_port_free(ctx: Ctx, spec: ProcessSpec) -> None:
    busy = next((o for o in ctx.host_nodes(spec.hostname) if o.running and o.port == spec.port), None)
    if busy is not None:
        raise DriverError(
            f"{spec.name}: Failed to set up listener: SocketException: Address already in use "
            f"({spec.hostname}:{spec.port} is used by {busy.name})",
            code=9001,
            code_name="SocketException",
        )


def forget_data(ctx: Ctx, n: NodeRec) -> None:
    """A different (empty) data directory: no replica set, no oplog, no documents, no indexes."""
    g = ctx.group(n.gid)
    if g is not None and n.key in g.bound:
        g.bound.remove(n.key)
    ctx.set_lineage(n, None)
    n.gid, n.cfg_version, n.term = None, 0, 0
    n.applied_ts = n.applied_cum = n.trunc_ts = n.trunc_cum = 0
    n.indexes = {}


def stop(ctx: Ctx, n: NodeRec | None, t: float, force: bool) -> str | None:
    """Stop the process. A primary first steps down: this returns a request id to poll with
    :func:`request_result` while it waits (up to the shutdown timeout) for a secondary to catch up."""
    if n is None or not n.running:
        return None
    g = ctx.group(n.gid)
    others = [m for m in g.config["members"] if m["host"] != n.addr] if g is not None else []
    if g is None or n.role != Role.PRIMARY or not any(rsconfig.electable(m) for m in others):
        # Nothing to step down to (a secondary, a standalone, a one-electable-member set).
        halt(ctx, g, n, t, "shutdown")
        return None
    if force:
        caught = handoff_candidates(ctx, g, n, t, up_members(ctx, g, t))
        step_down(ctx, g, n, t, "forced shutdown")
        if caught:
            hand_off(ctx, g, t, caught[0][1])
        halt(ctx, g, n, t, "shutdown")
        return None
    return request(ctx, n, t, catch_up_s=_shutdown_timeout(n), until=t, shutdown=True)


def _shutdown_timeout(n: NodeRec) -> float:
    major = n.version.split(".")[0]
    return 15.0 if major.isdigit() and int(major) >= 5 else 10.0


def request(ctx: Ctx, n: NodeRec, t: float, *, catch_up_s: float, until: float, shutdown: bool) -> str:
    """A pending step-down (``shutdown``: before stopping) of primary ``n``; its id."""
    if n.stepdown is not None:
        raise refuse(f"{n.name}: a step-down is already in progress", 117, "ConflictingOperationInProgress")
    req = ctx.new_req()
    n.stepdown = {"req": req, "deadline": t + catch_up_s, "until": until, "shutdown": shutdown}
    return req


def request_result(ctx: Ctx, n: NodeRec | None, t: float, hostname: str, name: str, req: str) -> str | None:
    """None while a step-down or shutdown request is pending; then "ok" or "CodeName: message"."""
    if n is None:
        return f"NotFound: no process {name} on {hostname}"
    if n.stepdown is not None and str(n.stepdown["req"]) == req:
        return None
    return n.results.get(req, "ok" if not n.running else f"NoSuchRequest: request {req} is not known")


def kill(ctx: Ctx, n: NodeRec | None, t: float) -> bool:
    """Crash the process (no step-down, no handoff); False if it was not running."""
    if n is None or not n.running:
        return False
    halt(ctx, ctx.group(n.gid), n, t, "crash")
    return True


def connections(ctx: Ctx, n: NodeRec | None, t: float, name: str) -> int:
    """The client connections a primary holds (none on any other member)."""
    n = up(n, name, t)
    g = ctx.group(n.gid)
    return g.connected if g is not None and g.primary == n.key and n.role == Role.PRIMARY else 0
