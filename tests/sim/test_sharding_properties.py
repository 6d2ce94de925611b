"""Property tests of a sharded cluster under random chunk migrations and shard failures.

Three shards and a config server set (one member each, so that what a set holds is what its one member
holds: a secondary's data legitimately trails its primary's), a collection sharded on ``_id``, and up to 25
random actions on a fake clock: writes and deletes through a router, time passing (the balancer's rounds and
migrations), a shard or the config servers going down and coming back or cut off the network and healed,
the balancer stopped and started,
a shard added back to the balance by a ``removeShard`` that drains it. After every action:

- no document is on two shards, and every document a running shard holds is in a chunk the map gives it
  (a committed migration leaves nothing behind, an aborted one copies nothing);
- a count through the router equals the sum, over the shards it reaches, of the documents they own, and
  the shards it says it could not reach are exactly those holding chunks without a primary it reaches
  (down, restarted and not yet elected, or cut off);
- once everything runs again, the count is the number of documents written and not deleted.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from opsmgr.errors import OpsmgrError
from opsmgr.sim.model import SimParams
from opsmgr.sim.shardmodel import ChunkMap
from tests.sim.sharded import CSRS, Sharded, make_sharded

NS = "app.orders"
SHARDS = ("sh0", "sh1", "sh2")

ACTION = st.one_of(
    st.tuples(st.just("write"), st.integers(1, 40)),
    st.tuples(st.just("delete"), st.integers(0, 200)),
    st.tuples(st.just("run"), st.sampled_from([0.2, 0.5, 1.0, 3.0, 10.0])),
    st.tuples(st.just("down"), st.sampled_from([*SHARDS, CSRS])),
    st.tuples(st.just("up"), st.sampled_from([*SHARDS, CSRS])),
    st.tuples(st.just("cut"), st.sampled_from([*SHARDS, CSRS])),
    st.tuples(st.just("heal"), st.just(0)),
    st.tuples(st.just("balancer"), st.booleans()),
    st.tuples(st.just("drain"), st.sampled_from(SHARDS)),
)


class Model:
    """What the test did and must find: the ids written and not deleted, the sets it stopped."""

    def __init__(self, s: Sharded) -> None:
        self.s = s
        self.ids: set[int] = set()
        self.next_id = 0
        self.down: set[str] = set()
        self.cut: set[str] = set()  # sets whose (one) host is cut off from the router and the others
        self.drained: set[str] = set()
        self.cmap = ChunkMap()

    def router(self) -> tuple[str, str]:
        d, name = self.s.router()
        return d.hostname, name

    def apply(self, action: tuple[str, object]) -> None:
        kind, arg = action
        host, router = self.router()
        if kind == "write":
            assert isinstance(arg, int)
            for _ in range(arg):
                self.next_id += 1
                try:
                    self.s.world.mongos_write(host, router, NS, "i", {"_id": self.next_id})
                except OpsmgrError:
                    continue
                self.ids.add(self.next_id)
        elif kind == "delete" and isinstance(arg, int) and arg in self.ids:
            try:
                self.s.world.mongos_write(host, router, NS, "d", {"_id": arg})
            except OpsmgrError:
                return
            self.ids.discard(arg)
        elif kind == "run":
            assert isinstance(arg, float)
            self.s.clock.advance(arg)
        elif kind in ("down", "up"):
            self.toggle(kind, str(arg))
        elif kind == "cut":
            self.s.world.cut_host(self.s.host(str(arg), 0))
            self.cut.add(str(arg))
        elif kind == "heal":
            self.s.world.heal()
            self.cut.clear()
        elif kind == "balancer":
            self.attempt(lambda: self.s.router()[0].set_balancer(router, running=bool(arg)))
        elif kind == "drain" and len(self.drained) < len(SHARDS) - 1:
            self.attempt(lambda: self.s.router()[0].remove_shard(router, str(arg)))

    def toggle(self, kind: str, rs: str) -> None:
        role = "configsvr" if rs == CSRS else "shardsvr"
        if kind == "down" and rs not in self.down:
            self.s.stop_set(rs)
            self.down.add(rs)
        elif kind == "up" and rs in self.down:
            self.s.restart_set(rs, role)
            self.down.discard(rs)

    def attempt(self, command: Callable[[], object]) -> None:
        try:
            command()
        except OpsmgrError:
            return  # refused (no config server primary, last shard...): the property holds either way
        self.drained = {x.id for x in self.s.router()[0].list_shards(self.router()[1]) if x.draining}

    def chunk_map(self) -> ChunkMap:
        """The map on the config servers (it cannot change while they are down: the last one read)."""
        if CSRS not in self.down:
            host, name = self.s.host(CSRS, 0), f"{CSRS}_0"
            self.cmap = ChunkMap.of(
                [(ns, d) for ns, d in self.s.world.dump(host, name) if ns.startswith("config.")]
            )
        return self.cmap

    def check(self) -> None:
        cmap = self.chunk_map()
        seen: dict[tuple[str, object], str] = {}
        owned: dict[str, int] = {}
        for shard in SHARDS:
            docs = self.s.documents(shard)
            if docs is None:
                continue
            owned[shard] = len(docs)
            for ns, doc_id in docs:
                assert (ns, doc_id) not in seen, f"{doc_id} is on {seen[(ns, doc_id)]} and on {shard}"
                seen[(ns, doc_id)] = shard
                owner = cmap.owner(ns, {"_id": doc_id})
                assert owner == shard, f"{doc_id} is on {shard}, its chunk is {owner}'s"
        host, router = self.router()
        counted = self.s.world.mongos_count(host, router, NS)
        holders = {c["shard"] for c in cmap.chunks[NS]}
        without_primary = {shard for shard in SHARDS if self.s.primary(shard) is None}
        assert self.down & set(SHARDS) <= without_primary
        assert set(counted.unreachable) == holders & (without_primary | self.cut)
        assert counted.count == sum(n for shard, n in owned.items() if shard not in counted.unreachable)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACTION, max_size=25), st.integers(0, 2**16))
def test_migrations_and_failures_never_put_a_document_on_two_shards_nor_lose_one(
    actions: list[tuple[str, object]], seed: int
) -> None:
    s = make_sharded(3, members=1, params=SimParams(seed=seed, noop_interval_s=0, migration_s=1.0))
    d, router = s.router()
    d.shard_collection(router, NS, {"_id": 1})
    model = Model(s)
    model.check()
    for action in actions:
        model.apply(action)
        model.check()
    model.apply(("heal", 0))
    for rs in sorted(model.down):
        model.toggle("up", rs)
    s.clock.advance(30)
    model.check()
    counted = s.world.mongos_count(d.hostname, router, NS)
    assert counted.unreachable == () and counted.count == len(model.ids)
    view = s.view()
    event(f"migrations committed: {min(view.migrations, 3)}+, aborted: {min(view.migrations_aborted, 1)}+")
