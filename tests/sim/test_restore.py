"""A simulated member's data replaced as a whole (``sim.restore``): loaded only while stopped or standalone,
and then exactly what was loaded."""

from __future__ import annotations

import pytest

from opsmgr.drivers.base import CommandConflict
from tests.sim.cluster import make_cluster


def test_load_replaces_a_standalone_members_data() -> None:
    c = make_cluster(1)
    c.set_load(rate=20)
    c.run(5)
    docs = [("app.x", {"_id": i, "v": i * i}) for i in range(10)]
    with pytest.raises(CommandConflict, match="standalone"):
        c.driver(0).load(c.name(0), docs)
    c.driver(0).stop(c.name(0))
    c.start(0, standalone=True)
    c.driver(0).load(c.name(0), docs)
    assert c.driver(0).dump(c.name(0)) == docs
