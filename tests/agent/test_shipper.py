"""The agent's :class:`Shipper` against a fake member's driver (through the ``ReplicaSetMember`` adapter) and
a scripted backup API (httpx.MockTransport): initial sync, slices that abut the acknowledged position, gap
reports, only the primary's agent ships; slices cut by time, entries or bytes, whichever first; and an idle
source that costs the server one exchange per interval, not one per read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from opsmgr.agent.runtime import Runtime
from opsmgr.agent.shipper import Documents, OplogSource, ReplicaSets, Shipper, Slicing
from opsmgr.agent.work import WorkList
from tests.agent.backup_fakes import GROUP, Driver, Server, entry, ts

T = TypeVar("T")


def shipper(http: httpx.AsyncClient, feed: Callable[[Runtime], Any], clock: Callable[[], float]) -> Shipper:
    runtime = Runtime(http, "h0", "http://server", GROUP, "key", offload=False, clock=clock)
    return Shipper(runtime, [feed(runtime)], exchange_s=2.0)


def with_shipper(
    server: Server, feed: Callable[[Runtime], Any], use: Callable[[Shipper], Awaitable[T]], now: list[float]
) -> T:
    async def go() -> T:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
            ship = shipper(http, feed, lambda: now[0])
            try:
                return await use(ship)
            finally:
                ship.close()

    return asyncio.run(go())


def members(driver: Driver, server: Server, slicing: Slicing) -> Callable[[Runtime], ReplicaSets]:
    return lambda runtime: ReplicaSets(runtime, driver, server.work, slicing)  # type: ignore[arg-type]


def step(driver: Driver, server: Server, max_entries: int = 2) -> None:
    """One pass of a new shipper (as after an agent restart)."""

    async def use(ship: Shipper) -> None:
        await ship.step()

    with_shipper(server, members(driver, server, Slicing(max_entries=max_entries)), use, [0.0])


def test_initial_sync_then_slices_that_abut_the_acknowledged_position() -> None:
    driver = Driver(oplog=[entry(100, 1, 1)], docs=[("app.a", {"_id": 1, "v": 100})])
    server = Server()
    step(driver, server)
    assert server.synced == [["app.a", {"_id": 1, "v": 100}]]
    assert server.tip == ts(100, 1), "the sync's minValid is where slices start"

    driver.oplog += [entry(101, 1, 2), entry(101, 2, 3), entry(102, 1, 4)]
    step(driver, server)
    starts_ends = [(s, e) for s, e, _ in server.slices]
    assert starts_ends == [(ts(100, 1), ts(101, 2)), (ts(101, 2), ts(102, 1))], "cut at 2 entries, abutting"
    assert [x["o"]["_id"] for _, _, entries in server.slices for x in entries] == [2, 3, 4]
    assert server.tip == ts(102, 1)

    step(driver, server)
    assert len(server.slices) == 2, "nothing new, nothing shipped"


def test_only_the_primarys_agent_ships() -> None:
    driver = Driver(primary=False, oplog=[entry(100, 1, 1)])
    server = Server()
    step(driver, server)
    assert server.requests == [], "the work list came with the status answer: nothing to ask"


def test_a_gap_is_reported_and_the_next_step_resyncs() -> None:
    driver = Driver(oplog=[entry(100, 1, 1)], docs=[("app.a", {"_id": 1})])
    server = Server(tip=ts(50))
    driver.truncated_before = ts(90)
    step(driver, server)
    gaps = [b for _, p, b in server.requests if p.endswith("/gap")]
    assert gaps and gaps[0]["firstAvailable"] == ts(90)
    driver.truncated_before = 0
    step(driver, server)
    assert server.synced == [["app.a", {"_id": 1}]] and server.tip == ts(100, 1)


# --- when a slice is cut ------------------------------------------------------------------------------------


def sizes(server: Server) -> list[int]:
    return [len(entries) for _, _, entries in server.slices]


def test_a_full_batch_is_cut_at_max_entries_and_the_rest_follows_at_once() -> None:
    driver = Driver(oplog=[entry(100, 1, 0)])
    server = Server(tip=ts(100, 1))
    driver.oplog += [entry(101, i, i) for i in range(1, 8)]
    step(driver, server, max_entries=3)
    assert sizes(server) == [3, 3, 1], "one pass: every full batch goes at once, the rest after it"
    assert server.tip == ts(101, 7)


def test_a_batch_is_cut_at_about_max_bytes() -> None:
    driver = Driver(oplog=[entry(100, 1, 0)])
    server = Server(tip=ts(100, 1))
    driver.oplog += [entry(101, i, i) for i in range(1, 6)]
    for e in driver.oplog:
        e.o["pad"] = "x" * 1000
    slicing = Slicing(max_entries=1000, max_bytes=2500)

    async def use(ship: Shipper) -> dict[str, str]:
        return await ship.step()

    outcome = with_shipper(server, members(driver, server, slicing), use, [0.0])
    assert outcome == {"rs0": f"5 entries shipped, at {ts(101, 5)}"}
    assert sizes(server) == [2, 2, 1], "two 1 kB entries fit in 2.5 kB, a third does not"
    assert all(a[1] == b[0] for a, b in zip(server.slices, server.slices[1:], strict=False)), "they abut"

    one = Server(tip=ts(100, 1))
    with_shipper(one, members(driver, one, Slicing(max_entries=1000, max_bytes=10)), use, [0.0])
    assert sizes(one) == [1, 1, 1, 1, 1], "an entry larger than the limit still goes, alone"


def test_while_entries_arrive_a_slice_is_cut_every_slice_seconds() -> None:
    """Time: whatever arrived since the last cut goes when ``seconds`` have passed, not before, however few
    entries it holds (max_entries is 1000 here)."""
    driver = Driver(oplog=[entry(100, 1, 1)], docs=[("app.a", {"_id": 1})])
    server = Server()
    now = [0.0]

    async def use(ship: Shipper) -> list[list[int]]:
        seen = []
        await ship.tick()  # the initial sync, at 0
        driver.oplog += [entry(101, 1, 2), entry(101, 2, 3)]
        for t in (0.05, 0.099, 0.1, 0.15, 0.2):
            now[0] = t
            if t == 0.15:
                driver.oplog.append(entry(102, 1, 4))
            await ship.tick()
            seen.append(sizes(server))
        return seen

    seen = with_shipper(server, members(driver, server, Slicing(seconds=0.1, max_entries=1000)), use, now)
    assert seen == [[], [], [2], [2], [2, 1]]
    assert server.tip == ts(102, 1)


# --- an idle source -----------------------------------------------------------------------------------------


def test_an_idle_replica_set_costs_one_exchange_per_interval() -> None:
    """Read every 100 ms while busy, but with nothing new: reads back off to one a second (they are local),
    and the server hears from the source once per exchange interval (2 s here), not at every read."""
    driver = Driver(oplog=[entry(100, 1, 1)], docs=[("app.a", {"_id": 1})])
    server = Server()
    now = [0.0]

    async def use(ship: Shipper) -> None:
        while now[0] <= 10.0:
            await ship.tick()
            now[0] = round(now[0] + 0.05, 2)

    with_shipper(server, members(driver, server, Slicing(seconds=0.1)), use, now)
    paths = [p for _, p, _ in server.requests]
    assert paths[:4] == [
        "/sources/s1/acknowledged",
        "/sources/s1/sync",
        "/sources/s1/sync/sync1/documents",
        "/sources/s1/sync/sync1/finish",
    ]
    rest = paths[4:]
    assert set(rest) == {"/sources/s1/acknowledged"}, "nothing but keeping in touch"
    assert 4 <= len(rest) <= 5, f"one exchange per 2 s over 10 s, not {len(rest)}"
    assert driver.reads <= 16, f"reads back off to one a second, not {driver.reads} in 10 s"


@dataclass
class QuietStore:
    """An :class:`OplogSource` with no entries whose quiet position moves with the clock (as a backing store's
    does): an empty slice advances its window, at most once per ``slicing.seconds``."""

    now: list[float]
    slicing: Slicing = field(default_factory=lambda: Slicing(seconds=1.0))
    name: str = "quiet"
    label: str = "a quiet store"

    async def available(self) -> str | None:
        return None

    async def newest(self) -> int | None:
        return 1

    async def read_after(self, position: int, limit: int) -> list[dict[str, Any]]:
        return []

    async def quiet_position(self) -> int | None:
        return 1 + int(self.now[0] * 1000)

    async def documents(self) -> AsyncIterator[Documents]:
        yield [("app.a", {"_id": 1})]

    def close(self) -> None:
        pass


@dataclass
class OneSource:
    source: OplogSource

    def sources(self) -> dict[str, OplogSource]:
        return {"s1": self.source}

    def close(self) -> None:
        pass


def test_an_idle_store_gets_an_empty_slice_at_most_once_per_slice_seconds() -> None:
    server = Server()
    now = [0.0]

    async def use(ship: Shipper) -> None:
        while now[0] <= 10.0:
            await ship.tick()
            now[0] = round(now[0] + 0.05, 2)

    with_shipper(server, lambda runtime: OneSource(QuietStore(now)), use, now)
    after_sync = [p for _, p, _ in server.requests][4:]
    assert set(after_sync) == {"/sources/s1/slices"}, "the empty slices keep in touch: no other exchange"
    assert 9 <= len(after_sync) <= 11, f"one a second over 10 s, not {len(after_sync)}"
    assert all(entries == [] for _, _, entries in server.slices)
    assert server.tip == 1 + 10_000


def test_sources_follow_the_work_list() -> None:
    """A source the work list stops naming is dropped; one it names again starts by asking where to resume."""
    driver = Driver(oplog=[entry(100, 1, 1)])
    server = Server(tip=ts(100, 1))
    listed = [True]
    work = server.work

    def current() -> WorkList:
        return work() if listed[0] else WorkList("v2")

    async def use(ship: Shipper) -> list[dict[str, str]]:
        out = [await ship.step()]
        listed[0] = False
        out.append(await ship.step())
        listed[0] = True
        driver.oplog.append(entry(101, 1, 2))
        out.append(await ship.step())
        return out

    feed = lambda runtime: ReplicaSets(runtime, driver, current, Slicing())  # type: ignore[arg-type]  # noqa: E731
    outcomes = with_shipper(server, feed, use, [0.0])
    assert outcomes == [
        {"rs0": f"0 entries shipped, at {ts(100, 1)}"},
        {},
        {"rs0": f"1 entries shipped, at {ts(101, 1)}"},
    ]
    asks = [p for _, p, _ in server.requests if p.endswith("/acknowledged")]
    assert len(asks) == 2, "asked where to resume when first listed and when listed again"
    assert server.slices[0][:2] == (ts(100, 1), ts(101, 1))
