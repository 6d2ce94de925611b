"""Indexes of simulated members (``sim.indexes``): built on the primary and replicated, unique ones refused
while duplicates exist and refusing duplicate writes after, and one built standalone kept by that member
only."""

from __future__ import annotations

import pytest

from opsmgr.drivers.base import CommandConflict
from tests.sim.cluster import make_cluster


def test_indexes_replicate_and_unique_ones_refuse_duplicates() -> None:
    c = make_cluster(3)
    c.world.write(c.set_id, "shop.items", "i", {"_id": 1, "sku": "a"})
    c.world.write(c.set_id, "shop.items", "i", {"_id": 2, "sku": "a"})
    c.driver(0).create_index(c.name(0), "shop.items", [("sku", 1)], {})
    with pytest.raises(CommandConflict, match="E11000 duplicate key") as raised:
        c.driver(0).create_index(c.name(0), "shop.items", [("sku", -1)], {"unique": True, "name": "sku_u"})
    assert raised.value.code == 11000
    c.world.write(c.set_id, "shop.items", "u", {"_id": 2, "sku": "b"})
    c.driver(0).create_index(c.name(0), "shop.items", [("sku", -1)], {"unique": True, "name": "sku_u"})
    with pytest.raises(CommandConflict, match="E11000"):
        c.world.write(c.set_id, "shop.items", "i", {"_id": 3, "sku": "b"})
    c.run(1)
    names = [ix["name"] for ix in c.driver(2).list_indexes(c.name(2), "shop.items")]
    assert names == ["_id_", "sku_1", "sku_u"]
    with pytest.raises(CommandConflict, match="not primary"):
        c.driver(1).create_index(c.name(1), "shop.items", [("x", 1)], {})


def test_an_index_built_standalone_stays_on_that_member() -> None:
    c = make_cluster(3)
    c.driver(1).stop(c.name(1))
    c.start(1, standalone=True)
    c.driver(1).create_index(c.name(1), "app.t", [("k", 1)], {"unique": True})
    c.driver(1).stop(c.name(1))
    c.start(1)
    c.run(2)
    assert [ix["name"] for ix in c.driver(1).list_indexes(c.name(1), "app.t")] == ["_id_", "k_1"]
    assert [ix["name"] for ix in c.driver(0).list_indexes(c.name(0), "app.t")] == ["_id_"]
