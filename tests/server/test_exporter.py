"""server.exporter: the per-process gauges (mongodb_exporter's names) from agent reports, fresh or stale, and
the Prometheus text they render to; a store that cannot be read is a comment, not a failed scrape."""

from __future__ import annotations

from types import SimpleNamespace

from opsmgr.automation.hosts import Hearing
from opsmgr.errors import StoreError
from opsmgr.server.exporter import DOWN, FAMILIES, Exporter, Sample, process_samples, render

NOW = 1_700_000_000_000


def _status(received_at: int, **observed: object) -> dict[str, object]:
    proc = {"name": "p1", "observed": {"hostname": "h1", "port": 27017, "running": True, **observed}}
    return {"hostname": "h1", "receivedAt": received_at, "processes": [proc]}


def _by_name(samples: list[Sample]) -> dict[str, float]:
    return {s.name: s.value for s in samples}


def test_a_fresh_secondary_is_up_with_its_state_and_lag() -> None:
    heard = Hearing(NOW, 10.0)
    status = _status(NOW - 1000, replicaSetName="rs0", replicaStateName="SECONDARY", lagSeconds=3)
    samples = process_samples("g1", [status], heard)
    assert _by_name(samples) == {
        "mongodb_up": 1.0,
        "mongodb_mongod_replset_member_state": 2,
        "mongodb_mongod_replset_member_replication_lag": 3.0,
    }
    assert samples[0].labels == (("group_id", "g1"), ("rs", "rs0"), ("host", "h1:27017"))


def test_a_stale_report_is_down_and_says_no_lag() -> None:
    heard = Hearing(NOW, 10.0)
    status = _status(NOW - 60_000, replicaSetName="rs0", replicaStateName="PRIMARY", lagSeconds=0)
    assert _by_name(process_samples("g1", [status], heard)) == {
        "mongodb_up": 0.0,
        "mongodb_mongod_replset_member_state": DOWN,
    }


def test_a_standalone_has_no_replica_set_gauges() -> None:
    samples = process_samples("g1", [_status(NOW)], Hearing(NOW, 10.0))
    assert [s.name for s in samples] == ["mongodb_up"] and samples[0].labels[1] == ("rs", "")


def test_render_writes_every_family_and_escapes_labels() -> None:
    text = render(
        [Sample("mongodb_up", (("host", 'a"b\\c'),), 1.0), Sample("opsmgr_backup_queue_depth", (), 2.5)]
    )
    for name, kind, _help in FAMILIES:
        assert f"# TYPE {name} {kind}\n" in text
    assert 'mongodb_up{host="a\\"b\\\\c"} 1\n' in text
    assert "opsmgr_backup_queue_depth 2.5\n" in text


def test_a_fresh_report_shows_connections_operations_and_memory_and_a_stale_one_none() -> None:
    sample = {"OPCOUNTER_INSERT": 120, "OPCOUNTER_CMD": 7, "MEMORY_RESIDENT": 512, "PAGE_FAULTS_X": 1}
    status = _status(
        NOW, replicaSetName="rs0", replicaStateName="PRIMARY", connections=9, measurements=sample
    )
    shown = {(s.name, s.labels[-1]): s.value for s in process_samples("g1", [status], Hearing(NOW, 10.0))}
    assert shown[("mongodb_connections", ("state", "current"))] == 9
    assert shown[("mongodb_op_counters_total", ("type", "insert"))] == 120
    assert shown[("mongodb_op_counters_total", ("type", "command"))] == 7
    assert shown[("mongodb_memory", ("type", "resident"))] == 512
    assert len([n for n, _ in shown if n == "mongodb_op_counters_total"]) == 2  # only what was sampled
    status["receivedAt"] = NOW - 60_000
    stale = process_samples("g1", [status], Hearing(NOW, 10.0))
    assert {s.name for s in stale} == {"mongodb_up", "mongodb_mongod_replset_member_state"}


class _BrokenAppDB:
    def groups(self) -> list[dict[str, object]]:
        raise StoreError("the application database is read-only", error_code="STORE_UNAVAILABLE")


def test_an_unreadable_store_is_a_comment_not_a_failed_scrape() -> None:
    services = SimpleNamespace(
        appdb=_BrokenAppDB(), automation=SimpleNamespace(hearing=lambda: Hearing(NOW, 10.0))
    )
    text = Exporter(services).text()  # type: ignore[arg-type]
    assert text.startswith("# ") and "read-only" in text and text.count("\n") == 1
