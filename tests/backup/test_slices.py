"""Oplog slices: the wire format, and a chain that abuts exactly, refuses gaps and takes resends."""

from __future__ import annotations

from typing import Any

import pytest

from opsmgr.backup.daemon import BackupDaemon, Source
from opsmgr.backup.positions import POSITION_LIMITS, PositionKind
from opsmgr.backup.slices import SliceCatalog, SliceStatus, decode_slice, encode_slice, normalise
from opsmgr.errors import InvalidInput
from opsmgr.store import Store
from tests.backup.backuptest import StoreAgent


def entry(ts: int, doc_id: str = "a", n: int = 0) -> dict[str, Any]:
    return {"ts": ts, "op": "i", "ns": "things", "_id": doc_id, "doc": {"_id": doc_id, "n": n}}


def test_the_wire_format_round_trips_and_refuses_damage() -> None:
    data = encode_slice(10, 20, [entry(11), entry(15, "b")])
    upload = decode_slice(data)
    assert (upload.start, upload.end, upload.entries) == (10, 20, [entry(11), entry(15, "b")])
    damaged = bytearray(data)
    damaged[-3] ^= 0x10
    with pytest.raises(InvalidInput, match="checksum"):
        decode_slice(bytes(damaged))
    with pytest.raises(InvalidInput, match="magic"):
        decode_slice(b"garbage")
    with pytest.raises(InvalidInput):
        decode_slice(data[:40])


def test_a_slice_before_any_initial_sync_asks_for_one(daemon: BackupDaemon, source: Source) -> None:
    result = daemon.ingest_slice(source.id, 0, 5, [entry(3)])
    assert result.status is SliceStatus.SYNC_REQUIRED
    assert daemon.acknowledged(source.id).status is SliceStatus.SYNC_REQUIRED


def test_slices_must_abut_gaps_are_refused_and_resends_are_acknowledged_again(
    daemon: BackupDaemon, source: Source
) -> None:
    p0 = daemon.initial_sync(source.id, 100, [], 100).acknowledged
    assert p0 == 100
    first = daemon.ingest_slice(source.id, 100, 110, [entry(105)])
    assert (first.status, first.acknowledged) == (SliceStatus.ACCEPTED, 110)
    resend = daemon.ingest_slice(source.id, 100, 110, [entry(105)])
    assert (resend.status, resend.acknowledged) == (SliceStatus.DUPLICATE, 110)
    gap = daemon.ingest_slice(source.id, 120, 130, [entry(125)])
    assert (gap.status, gap.acknowledged) == (SliceStatus.GAP, 110)
    assert "missing" in gap.detail
    assert daemon.status(source.id)["gap"]["afterTs"] == 110
    assert daemon.acknowledged(source.id).acknowledged == 110
    # An agent that lost the acknowledgement re-cuts from its last known position: the overlap is trimmed.
    straddling = daemon.ingest_slice(source.id, 100, 130, [entry(105), entry(125, "b")])
    assert (straddling.status, straddling.acknowledged) == (SliceStatus.ACCEPTED, 130)
    slices = daemon.slice_catalog.slices(source.id)
    assert [(s.start, s.end, s.count) for s in slices] == [(100, 110, 1), (110, 130, 1)]


@pytest.mark.parametrize(
    ("start", "end", "entries"),
    [
        (100, 110, [entry(100)]),  # start is exclusive
        (100, 110, [entry(111)]),  # past the end
        (100, 110, [entry(105), entry(104, "b")]),  # out of order
        (100, 110, [entry(105), entry(105, "b")]),  # not strictly increasing
        (110, 100, []),
    ],
)
def test_entries_outside_the_range_or_out_of_order_are_invalid(
    daemon: BackupDaemon, source: Source, start: int, end: int, entries: list[dict[str, Any]]
) -> None:
    daemon.initial_sync(source.id, 100, [], 100)
    with pytest.raises(InvalidInput):
        daemon.ingest_slice(source.id, start, end, entries)
    assert daemon.acknowledged(source.id).acknowledged == 100


def test_idle_heartbeats_extend_one_empty_slice(daemon: BackupDaemon, source: Source) -> None:
    daemon.initial_sync(source.id, 100, [], 100)
    daemon.ingest_slice(source.id, 100, 105, [entry(101)])
    for start, end in ((105, 110), (110, 120), (120, 130)):
        assert daemon.ingest_slice(source.id, start, end, []).acknowledged == end
    slices = daemon.slice_catalog.slices(source.id)
    assert [(s.start, s.end, s.count) for s in slices] == [(100, 105, 1), (105, 130, 0)]


def test_a_crash_between_data_and_metadata_leaves_nothing_visible(
    daemon: BackupDaemon, source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon.initial_sync(source.id, 100, [], 100)

    def crash(*_args: object) -> None:
        raise KeyboardInterrupt("killed after the data, before the metadata")

    with monkeypatch.context() as m:
        m.setattr(SliceCatalog, "_commit", crash)
        with pytest.raises(KeyboardInterrupt):
            daemon.ingest_slice(source.id, 100, 110, [entry(105)])
    assert daemon.slice_catalog.slices(source.id) == []
    assert daemon.acknowledged(source.id).acknowledged == 100
    assert len(list(daemon.blockstore)) == 1  # the data block, referenced by nothing
    assert daemon.ingest_slice(source.id, 100, 110, [entry(105)]).status is SliceStatus.ACCEPTED
    daemon.groom()
    assert daemon.blockstore.exists(daemon.slice_catalog.slices(source.id)[0].blockId or "")


def test_a_reported_gap_requires_a_new_sync_which_starts_a_new_chain(
    daemon: BackupDaemon, source: Source, agent: StoreAgent, source_store: Store
) -> None:
    source_store.insert("things", {"_id": "a"})
    agent.sync()
    first_chain = daemon.acknowledged(source.id).chain
    daemon.report_gap(source.id, first_available=10**18)
    refused = daemon.ingest_slice(source.id, agent.acked or 0, (agent.acked or 0) + 5, [])
    assert refused.status is SliceStatus.SYNC_REQUIRED
    assert "no longer holds" in (daemon.status(source.id)["syncRequired"] or "")
    source_store.insert("things", {"_id": "b"})
    result = agent.sync()
    assert result.status is SliceStatus.ACCEPTED and result.chain != first_chain
    status = daemon.status(source.id)
    assert status["syncRequired"] is None and status["gap"] is None


def test_the_head_follows_a_heartbeat_extended_after_it_applied_part_of_it(
    daemon: BackupDaemon, source: Source
) -> None:
    chain = daemon.initial_sync(source.id, 100, [], 100).chain
    daemon.ingest_slice(source.id, 100, 105, [entry(101)])
    daemon.ingest_slice(source.id, 105, 110, [])
    assert daemon.apply_pending(source.id) == 1
    daemon.ingest_slice(
        source.id, 110, 120, []
    )  # extends the empty (105, 110] the head applied to (105, 120]
    daemon.ingest_slice(source.id, 120, 130, [entry(125, "b")])
    assert daemon.apply_pending(source.id) == 1
    snap = daemon.take_snapshot(source.id)
    assert (snap.position, snap.records) == (130, 2)
    assert [(r.chain, r.start, r.end) for r in daemon.slice_catalog.runs(source.id)] == [(chain, 100, 130)]


def test_runs_follow_the_slices_through_gaps_resyncs_and_deletions(
    daemon: BackupDaemon, source: Source
) -> None:
    first = daemon.initial_sync(source.id, 100, [], 100).chain
    daemon.ingest_slice(source.id, 100, 110, [entry(105)])
    daemon.ingest_slice(source.id, 110, 120, [entry(115)])
    daemon.ingest_slice(source.id, 130, 140, [entry(135)])  # a gap: refused
    second = daemon.initial_sync(source.id, 200, [], 200).chain
    daemon.ingest_slice(source.id, 200, 210, [entry(205)])
    runs = [(r.chain, r.start, r.end) for r in daemon.slice_catalog.runs(source.id)]
    assert runs == [(first, 100, 120), (second, 200, 210)]
    oldest = daemon.slice_catalog.slices(source.id)[0]
    assert (oldest.chain, oldest.start) == (first, 100)
    daemon.slice_catalog.delete(source.id, [oldest.id])
    runs = sorted((r.chain, r.start, r.end) for r in daemon.slice_catalog.runs(source.id))
    assert runs == sorted([(first, 110, 120), (second, 200, 210)])


def _nested(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (float("nan"), "finite"),
        (float("-inf"), "finite"),
        (2**63, "64 bits"),
        ("\udfff", "surrogate"),
        (_nested(130), "deeper than 128"),
    ],
)
def test_the_wire_format_refuses_json_a_later_reader_would_choke_on(value: Any, words: str) -> None:
    with pytest.raises(InvalidInput, match=words) as refused:
        decode_slice(encode_slice(10, 20, [entry(11), {**entry(15, "b"), "doc": {"_id": "b", "v": value}}]))
    assert "entry 2" in refused.value.detail


@pytest.mark.parametrize(
    ("kind", "end"), [(PositionKind.BSON, 2**63), (PositionKind.STORE, 253_402_300_800_000_000)]
)
def test_a_slice_ending_past_what_a_position_of_its_kind_can_be_is_invalid(
    kind: PositionKind, end: int
) -> None:
    limit = POSITION_LIMITS[kind]
    assert normalise(kind, limit - 1, limit, []) == []
    with pytest.raises(InvalidInput, match="start <= end"):
        normalise(kind, limit, end, [])
