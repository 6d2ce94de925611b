"""Carrying out a sharded cluster's moves (AddShard, ShardCollection, RemoveShard) through a local mongos: the
step's command document becomes the driver's sharding call, and what MongoDB answers becomes the sentence
(``removeShard`` reports the draining at every call).

Runs on the driver's thread like every driver call of the loop's move runner. May import ``opsmgr.errors``,
``opsmgr.drivers.base``, ``opsmgr.agent.moves`` and ``opsmgr.agent.sharding``.
"""

from __future__ import annotations

from opsmgr.agent.moves import Move, Step
from opsmgr.agent.sharding import sharding_driver
from opsmgr.drivers.base import DriverError, RemoveShardProgress, RemoveShardState
from opsmgr.errors import OpsmgrError


def run_cluster_move(driver: object, name: str, step: Step) -> str:
    """Send ``step``'s command through the mongos ``name``; the sentence of what was done."""
    sharding = sharding_driver(driver)
    if sharding is None:
        raise DriverError(f"the driver of this host cannot send {step.move.value} to {name}")
    command = step.command or {}
    if step.move is Move.ADD_SHARD:
        sharding.add_shard(name, str(command["name"]), str(command["addShard"]))
    elif step.move is Move.SHARD_COLLECTION:
        ns = str(command["shardCollection"])
        sharding.shard_collection(name, ns, dict(command["key"]), unique=bool(command.get("unique")))
    elif step.move is Move.REMOVE_SHARD:
        shard = str(command["removeShard"])
        return f"{step.note}: {draining_note(shard, sharding.remove_shard(name, shard))}"
    else:
        raise OpsmgrError(f"{step.move.value} is not a sharded cluster's move")
    return step.note


def draining_note(shard: str, progress: RemoveShardProgress) -> str:
    if progress.state is RemoveShardState.COMPLETED:
        return f"shard {shard} removed"
    left = f"{progress.remaining_chunks} chunk{'s' if progress.remaining_chunks != 1 else ''} left"
    if progress.dbs_to_move:
        left += ", databases to move: " + ", ".join(progress.dbs_to_move)
    return f"draining {progress.state.value}, {left}"
