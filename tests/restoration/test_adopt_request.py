"""The adoption request's checks (``restoration.adopt.parse_request``), without a server."""

from __future__ import annotations

import pytest

from opsmgr.errors import InvalidInput
from opsmgr.restoration.adopt import parse_request
from opsmgr.restoration.adoption import awaited

GID = "5f2b9c0e1a2b3c4d5e6f7a8b"
KEY = "ab" * 32


def test_hosts_are_kept_once_whatever_their_case_and_the_name_defaults() -> None:
    request = parse_request(GID, KEY, None, ["b.sim", "A.sim", "a.SIM", "b.sim"])
    assert request.hosts == ("A.sim", "b.sim")
    assert request.name == f"Adopted {GID}"


@pytest.mark.parametrize(
    ("group_id", "key", "hosts", "field"),
    [
        (GID.upper(), KEY, ["a.sim"], "groupId"),
        (GID, KEY[:31], ["a.sim"], "agentApiKey"),
        (GID, KEY + "-", ["a.sim"], "agentApiKey"),
        (GID, KEY, [], "hosts"),
        (GID, KEY, ["-a.sim"], "hosts[0]"),
        (GID, KEY, ["a.sim", "x" * 254], "hosts[1]"),
    ],
)
def test_malformed_requests_name_the_field(group_id: str, key: str, hosts: list[str], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_request(group_id, key, None, hosts)
    assert refused.value.parameters == [field] or field in refused.value.detail


def test_a_named_host_heard_in_another_case_is_not_awaited_twice() -> None:
    assert awaited(["A.sim", "b.sim", "c.sim"], ["a.SIM", "b.sim"]) == {"c.sim"}
    assert awaited(["a.sim"], []) == {"a.sim"}
