"""Faults injected into the simulated world: a host cut off the network (its processes, and clients, cannot
reach the rest and vice versa; processes on the same host still see each other), replication stalled or
slowed on a member, a process that fails to start; all undone at once by healing (crashed processes stay
down). The faults live in the world's meta record, so every agent process sharing the world sees them. May
import ``opsmgr.sim`` modules.
"""

from __future__ import annotations

from opsmgr.sim.ctx import Ctx


def cut(ctx: Ctx, hostname: str) -> None:
    if hostname not in ctx.meta.cut_hosts:
        ctx.meta.cut_hosts.append(hostname)
    ctx.cut.add(hostname)


def reconnect(ctx: Ctx, hostname: str) -> None:
    if hostname in ctx.meta.cut_hosts:
        ctx.meta.cut_hosts.remove(hostname)
    ctx.cut.discard(hostname)


def stall(ctx: Ctx, key: str, rate: float) -> None:
    """The member applies at most ``rate`` oplog entries per second (0: not at all)."""
    ctx.meta.stalled[key] = rate


def fail_start(ctx: Ctx, key: str) -> None:
    if key not in ctx.meta.fail_start:
        ctx.meta.fail_start.append(key)


def faulty_hosts(ctx: Ctx) -> list[str]:
    """The hosts whose replica sets a heal changes (cut, or running a stalled member)."""
    return sorted(set(ctx.meta.cut_hosts) | {k.split("/", 1)[0] for k in ctx.meta.stalled})


def clear(ctx: Ctx) -> None:
    ctx.meta.cut_hosts.clear()
    ctx.meta.stalled.clear()
    ctx.meta.fail_start.clear()
    ctx.cut.clear()
