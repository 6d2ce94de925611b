"""The vocabulary of the agent's plans: the named moves (Ops Manager's names where it has one) and one step
of a plan, shared by the planner (``agent.plan``) and its sub-planners (``agent.sharding``), which the loop
carries out.

Pure types, no behaviour. May import ``opsmgr.drivers.base`` (types only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from opsmgr.drivers.base import ProcessSpec


class Move(StrEnum):
    START = "Start"
    STOP = "Stop"
    RS_INIT = "RsInit"
    WAIT_RS_INIT = "WaitRsInit"
    RS_RECONFIG = "RsReconfig"
    WAIT_ALL_RS_MEMBERS_UP = "WaitAllRsMembersUp"
    WAIT_PRIMARY = "WaitPrimary"
    STEP_DOWN = "StepDown"
    WAIT_HEALTHY = "WaitHealthy"
    CHANGE_VERSION = "ChangeVersion"
    ROLLING_CHANGE_ARGS = "RollingChangeArgs"
    SET_PARAMETER = "SetParameter"
    ROLLING_MAINTENANCE = "RollingMaintenance"
    LONG_ACTION = "LongActionInProgress"
    # Sharded clusters: a mongos waits for its config server replica set; the cluster's moves are made
    # through one mongos (the cluster's coordinator) while the other mongos' agents wait for it.
    WAIT_FOR_CONFIG_SERVER = "WaitForConfigServer"
    ADD_SHARD = "AddShard"
    SHARD_COLLECTION = "ShardCollection"
    REMOVE_SHARD = "RemoveShard"
    WAIT_CLUSTER_COORDINATOR = "WaitClusterCoordinator"
    GOAL = "Goal"


# The moves that are sharding commands sent through a mongos (their ``command`` is MongoDB's document).
CLUSTER_MOVES = frozenset({Move.ADD_SHARD, Move.SHARD_COLLECTION, Move.REMOVE_SHARD})


@dataclass(frozen=True)
class Step:
    """One move of a plan. ``note`` says what it does, or, when ``blocked``, what it waits for."""

    move: Move
    note: str
    blocked: bool = False
    spec: ProcessSpec | None = None  # Start
    rs_config: Mapping[str, Any] | None = None  # RsInit, RsReconfig
    parameters: Mapping[str, Any] | None = None  # SetParameter
    # AddShard, ShardCollection, RemoveShard: the command as MongoDB names it ({"addShard": ..., ...}).
    command: Mapping[str, Any] | None = None


WAIT = True  # readability for Step(..., blocked=WAIT)
