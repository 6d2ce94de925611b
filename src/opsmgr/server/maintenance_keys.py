"""The ``mms.maintenance.*`` keys of ``conf-mms.properties``: one per field of the rolling maintenance
procedure's :class:`~opsmgr.maintenance.snapshot.Policy`, whose default is the key's, with its bounds, and
the sharded clusters' ``parallelShards``.

``server.settings`` reads them with its other keys and documents them in its table. May import
``opsmgr.conf`` and ``opsmgr.maintenance.snapshot`` (the policy, a pure value).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from opsmgr import conf
from opsmgr.conf import Key
from opsmgr.maintenance.snapshot import Policy


def _policy_key(name: str, attr: str, description: str, parse: Callable[[str, Path], object]) -> Key:
    """A ``mms.maintenance.*`` key; ``attr`` is the :class:`Policy` field, whose default is the key's."""
    default = Policy.__dataclass_fields__[attr].default
    return Key(f"mms.maintenance.{name}", f"maintenance_{attr}", description, f"{default:g}", parse)


MAINTENANCE_KEYS: tuple[Key, ...] = (
    _policy_key(
        "leaseTtlSeconds",
        "lease_ttl_s",
        "Seconds a maintenance lease lives between its holder's renewals; an agent that dies lets it expire "
        "(no other member goes down while the member it held is unhealthy).",
        conf.float_in(1, 3600),
    ),
    _policy_key(
        "memberTimeoutSeconds",
        "member_timeout_s",
        "Seconds a member may take to be healthy again after its restart in replSet mode; past it the "
        "rolling change stops with MAINTENANCE_MEMBER_FAILED until the member recovers.",
        conf.float_in(1, 86400),
    ),
    _policy_key(
        "electionTimeoutSeconds",
        "election_timeout_s",
        "Seconds to wait for another member's election after a step-down.",
        conf.float_in(1, 3600),
    ),
    _policy_key(
        "catchUpLagSeconds",
        "catch_up_lag_s",
        "A secondary this many seconds (or fewer) behind the primary is caught up.",
        conf.float_in(0, 3600),
    ),
    _policy_key(
        "oplogMargin",
        "oplog_margin",
        "Factor by which the oplog window must exceed the estimated time a member is out.",
        conf.float_in(1, 100),
    ),
    _policy_key(
        "defaultOutSeconds",
        "default_out_s",
        "Estimated seconds a member is out for maintenance before any of its restarts was observed.",
        conf.float_in(1, 7 * 86400),
    ),
    _policy_key(
        "stepDownSeconds",
        "step_down_secs",
        "stepDownSecs of replSetStepDown: how long the former primary may not be elected again.",
        conf.int_in(1, 86400),
    ),
    _policy_key(
        "secondaryCatchUpPeriodSeconds",
        "secondary_catch_up_period_secs",
        "secondaryCatchUpPeriodSecs of replSetStepDown: how long the primary waits for an electable "
        "secondary to catch up; less than mms.maintenance.stepDownSeconds.",
        conf.int_in(0, 86400),
    ),
    _policy_key(
        "portOffset",
        "maintenance_port_offset",
        "A member restarted standalone for maintenance listens on its port plus this (minus it, past 65535), "
        "away from its clients and its set.",
        conf.int_in(1, 55535),
    ),
    _policy_key(
        "alertWindowSeconds",
        "alert_window_s",
        "A rolling change that begins opens a maintenance window of its project this long, silencing the "
        "HOST, REPLICA_SET and AGENT alert notifications its restarts cause; it closes when the change ends. "
        "0: no window.",
        conf.float_in(0, 7 * 86400),
    ),
    # Not a Policy field: how a sharded cluster's change orders its sets (maintenance.sharded).
    Key(
        "mms.maintenance.sharded.parallelShards",
        "maintenance_sharded_parallel_shards",
        "How many shards of a sharded cluster roll at once during rolling maintenance (the config servers "
        "always alone and first, the mongos last).",
        "1",
        conf.int_in(1, 64),
    ),
)
