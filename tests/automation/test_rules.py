"""The rules every section of the automation config shares."""

from __future__ import annotations

from opsmgr.automation import rules


def test_hostnames() -> None:
    for good in ("localhost", "db-1.example.net", "10.0.0.7", "::1", "a" * 63 + ".example"):
        assert rules.valid_hostname(good), good
    for bad in ("a" * 64 + ".example", "host.", "http://h", "h:1", "h/x", "", "h h", None, 5):
        assert not rules.valid_hostname(bad), bad
