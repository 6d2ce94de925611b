"""A simulated member's oplog as the backup agent reads it (``sim.oplog``): its window follows the write rate
within its size, and reading after a position already truncated is a gap that names the first entry
left."""

from __future__ import annotations

import pytest

from opsmgr.errors import OplogGap
from tests.sim.cluster import last_ts, make_cluster


def test_oplog_window_depends_on_the_write_rate() -> None:
    c = make_cluster(3, oplog_mb=0.25)

    def window_s(rate: float) -> float:
        c.set_load(rate=rate, payload_bytes=200)
        c.run(0.25 * 1024 * 1024 / rate / 200 * 3)  # long enough to fill the oplog several times
        window = c.driver(0).oplog_window(c.name(0))
        assert window is not None
        assert window.size_mb == 0.25 and 0.24 <= window.used_mb <= 0.25
        return window.window_hours * 3600

    slow, fast = window_s(20), window_s(80)
    assert slow == pytest.approx(4 * fast, rel=0.1)


def test_reading_after_a_truncated_position_is_a_gap() -> None:
    c = make_cluster(3, oplog_mb=0.05)
    c.set_load(rate=100)
    early = last_ts(c, 0)
    c.run(2)
    assert c.driver(0).oplog_read(c.name(0), early, limit=5)
    c.run(30)
    with pytest.raises(OplogGap) as raised:
        c.driver(0).oplog_read(c.name(0), early)
    window = c.driver(0).oplog_window(c.name(0))
    assert window is not None
    assert raised.value.first_available_ts == window.first_ts
    assert c.driver(0).oplog_read(c.name(0), window.first_ts, limit=1)[0].ts > window.first_ts
