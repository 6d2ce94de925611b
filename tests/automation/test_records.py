"""The typed records of the automation config: each reads its document and writes back the same document,
unknown fields included, and a malformed document is an InvalidInput naming the field."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmgr.automation.config import validate
from opsmgr.automation.records import Member, Process, ReplicaSet, processes, replica_set, replica_sets
from opsmgr.errors import InvalidInput
from tests.automation.configs import base


def _rewritten(config: dict[str, Any]) -> dict[str, Any]:
    return {
        **config,
        "processes": [p.to_doc() for p in processes(config)],
        "replicaSets": [rs.to_doc() for rs in replica_sets(config)],
    }


def test_a_config_read_into_records_and_written_back_is_the_same_document() -> None:
    config = validate(base())
    config["processes"][0]["futureField"] = {"kept": [1, 2]}
    config["replicaSets"][0]["members"][1]["tags"] = {"dc": "east"}
    config["replicaSets"][0]["protocolVersion"] = "1"
    original = copy.deepcopy(config)
    assert _rewritten(config) == original
    assert config == original, "reading never mutates the document"


def test_fields_the_document_leaves_out_stay_out() -> None:
    doc = {
        "name": "a",
        "processType": "mongod",
        "hostname": "H1.example.net",
        "version": "7.0.5",
        "args2_6": {},
    }
    proc = Process.from_doc(doc)
    assert proc.disabled is False and proc.to_doc() == doc
    assert (proc.port, proc.host) == (27017, "h1.example.net")
    member = Member.from_doc({"_id": 0, "host": "a"})
    assert (member.votes, member.priority, member.arbiter_only, member.hidden) == (1, 1, False, False)
    assert member.to_doc() == {"_id": 0, "host": "a"}
    assert replace(member, votes=0, priority=0).to_doc() == {"_id": 0, "host": "a", "votes": 0, "priority": 0}
    assert replace(proc, disabled=False).to_doc() == doc
    assert replace(proc, disabled=True).to_doc() == {**doc, "disabled": True}


def test_the_records_read_what_the_document_says() -> None:
    config = validate(base())
    procs = processes(config)
    assert [p.name for p in procs] == [p["name"] for p in config["processes"]]
    assert procs[0].port == config["processes"][0]["args2_6"]["net"]["port"]
    (rs,) = replica_sets(config)
    assert rs.id == "rs0"
    assert rs.hosts == tuple(m["host"] for m in config["replicaSets"][0]["members"])
    assert [m.electable for m in rs.members] == [True] * len(rs.members)
    assert not replace(rs.members[0], hidden=True, priority=0).electable
    assert replica_set(config, "rs0") == rs
    assert replica_set(config, "rs9") is None


@pytest.mark.parametrize(
    ("read", "doc", "field", "rule"),
    [
        (Process.from_doc, ["not", "an", "object"], "process", "type"),
        (
            Process.from_doc,
            {"name": "a", "processType": "mongod", "hostname": "h"},
            "process.version",
            "required",
        ),
        (
            Process.from_doc,
            {"name": "a", "processType": "mongod", "hostname": 5, "version": "7.0.5", "args2_6": {}},
            "process.hostname",
            "type",
        ),
        (Member.from_doc, {"_id": "0", "host": "a"}, "member._id", "type"),
        (Member.from_doc, {"_id": 0, "host": "a", "votes": True}, "member.votes", "type"),
        (ReplicaSet.from_doc, {"_id": "rs0"}, "replicaSet.members", "required"),
        (
            ReplicaSet.from_doc,
            {"_id": "rs0", "members": [{"host": "a"}]},
            "replicaSet.members[0]._id",
            "required",
        ),
        (lambda doc: processes(doc), {"processes": {"a": 1}}, "processes", "type"),
        (
            lambda doc: replica_sets(doc),
            {"replicaSets": [{"_id": "rs0", "members": [3]}]},
            "replicaSets[0].members[0]",
            "type",
        ),
    ],
)
def test_a_malformed_document_names_its_field(read: Any, doc: Any, field: str, rule: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        read(doc)
    assert (caught.value.field, caught.value.rule) == (field, rule), caught.value.detail
    assert field in caught.value.detail
    assert caught.value.to_json()["error"] == 400


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    st.dictionaries(st.text(max_size=10), json_values, max_size=5),
)
def test_any_extra_fields_survive_the_round_trip(
    process_extra: dict[str, Any], member_extra: dict[str, Any]
) -> None:
    config = validate(base())
    proc, member = config["processes"][0], config["replicaSets"][0]["members"][0]
    config["processes"][0] = {**process_extra, **proc}
    config["replicaSets"][0]["members"][0] = {**member_extra, **member}
    assert _rewritten(config) == config
