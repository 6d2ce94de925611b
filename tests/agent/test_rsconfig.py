"""The replSetReconfig sequence from a set's current config to its goal members. No processes, no I/O."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from opsmgr.agent.rsconfig import reconfig_plan
from tests.agent.agent_helpers import addr, rs_config


def test_replacing_a_member_that_reuses_an_id_removes_it_first() -> None:
    current = rs_config([0, 1, 2])
    wanted = [dict(m) for m in current["members"]]
    wanted[2] = {**wanted[2], "host": "h9.example.net:27017"}
    rp = reconfig_plan(current, wanted, None, None)
    assert [note for _, note in rp.configs] == [f"remove {addr(2)}", "add h9.example.net:27017"]


def _voters(config: dict[str, Any]) -> set[str]:
    return {m["host"] for m in config["members"] if m["votes"] == 1}


member_st = st.fixed_dictionaries({"votes": st.sampled_from([0, 1]), "priority": st.sampled_from([0, 1, 2])})


@settings(max_examples=150, deadline=None)
@given(
    before=st.dictionaries(st.integers(0, 6), member_st, min_size=1, max_size=7),
    after=st.dictionaries(st.integers(0, 6), member_st, min_size=1, max_size=7),
)
def test_reconfig_steps_change_one_voter_at_a_time_and_reach_the_goal(
    before: dict[int, dict[str, int]], after: dict[int, dict[str, int]]
) -> None:
    def members(spec: dict[int, dict[str, int]]) -> list[dict[str, Any]]:
        return [
            {"_id": i, "host": addr(i), "votes": m["votes"], "priority": m["priority"] if m["votes"] else 0}
            for i, m in spec.items()
        ]

    current: dict[str, Any] = {"_id": "rs0", "version": 1, "members": members(before)}
    rp = reconfig_plan(current, members(after), None, None)
    previous = current
    for config, _ in rp.configs:
        assert len(_voters(previous) ^ _voters(config)) <= 1
        assert config["version"] == previous["version"] + 1
        previous = config
    final = {m["host"]: (m["votes"], m["priority"]) for m in previous["members"]}
    assert final == {m["host"]: (m["votes"], float(m["priority"])) for m in members(after)}
