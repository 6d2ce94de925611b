"""Backoff between cycles when the server cannot be reached."""

from __future__ import annotations

import random

from opsmgr.agent.pacing import Backoff


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(1.0, 8.0, random.Random(3))
    delays = [backoff.next() for _ in range(8)]
    assert all(0.5 * min(8, 2**n) <= d <= min(8, 2**n) for n, d in enumerate(delays))
    assert len({round(d, 6) for d in delays[4:]}) > 1  # jitter spreads agents that failed together
    backoff.reset()
    assert backoff.next() <= 1.0
