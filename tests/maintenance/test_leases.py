"""The maintenance lease: the grant decision (table), health from agent reports, and the service on a real
SQLite application database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from opsmgr.errors import StoreError
from opsmgr.maintenance.leases import (
    LEASES,
    MAX_TTL_S,
    ROLLING,
    Deny,
    Grant,
    Lease,
    LeaseRequest,
    LeaseService,
    LeaseState,
    MemberHealth,
    StoredLeaseFields,
    decide_grant,
    lease_fields,
    lease_state,
    members_health,
    released,
)
from opsmgr.maintenance.moves import Progress
from opsmgr.maintenance.rolling import RollingChange, Task
from opsmgr.store.engine import Store


def healthy(
    *names: str, primary: str = "c", down: tuple[str, ...] = (), votes0: tuple[str, ...] = ()
) -> list[MemberHealth]:
    return [
        MemberHealth(
            n,
            n not in down,
            "DOWN" if n in down else ("PRIMARY" if n == primary else "SECONDARY"),
            0 if n in votes0 else 1,
            primary=n == primary and n not in down,
        )
        for n in names
    ]


ABC = healthy("a", "b", "c")
LIVE_A = LeaseState(Lease("a", 0.0, 200.0), "a")
EXPIRED_A = LeaseState(Lease("a", 0.0, 50.0), "a")


@dataclass
class G:
    id: str
    state: LeaseState
    member: str
    health: list[MemberHealth]
    denied: str | None = None  # a fragment of the reason; None: granted
    pending: tuple[str, ...] = ("a", "b", "c")
    renewed: bool = False
    ttl: float = 120.0
    expires: float | None = None


NOW = 100.0
GRANTS = [
    G("free lease, everyone healthy", LeaseState(), "a", ABC, expires=NOW + 120),
    G("held by another", LIVE_A, "b", ABC, "a holds the maintenance lease for 100 s"),
    G("renewed by its holder", LIVE_A, "a", ABC, renewed=True, expires=NOW + 120),
    G(
        "expired, holder still down",
        EXPIRED_A,
        "b",
        healthy("a", "b", "c", down=("a",)),
        "a, whose lease expired",
    ),
    G("expired, holder healthy again", EXPIRED_A, "b", ABC),
    G(
        "expired, taken again by its holder",
        EXPIRED_A,
        "a",
        healthy("a", "b", "c", down=("a",)),
        renewed=True,
    ),
    G(
        "released, last holder not yet reported healthy",
        LeaseState(None, "a"),
        "b",
        healthy("a", "b", "c", down=("a",)),
        "which held the lease last",
    ),
    G("the primary goes last", LeaseState(), "c", ABC, "the primary c goes last: a, b"),
    G("the primary when only it is left", LeaseState(None, "b"), "c", ABC, pending=("c",)),
    G("another voting member down", LeaseState(), "a", healthy("a", "b", "c", down=("b",)), "b (DOWN)"),
    G("a non-voting member down", LeaseState(), "a", healthy("a", "b", "c", "d", down=("d",), votes0=("d",))),
    G("two voters: no majority left", LeaseState(), "a", healthy("a", "c"), "not a majority"),
    G("not a member", LeaseState(), "z", ABC, "not a member"),
    G("last holder left the set", LeaseState(None, "gone"), "a", ABC),
    G("ttl is bounded", LeaseState(), "a", ABC, ttl=1e9, expires=NOW + MAX_TTL_S),
]


@pytest.mark.parametrize("case", GRANTS, ids=lambda c: c.id)
def test_decide_grant(case: G) -> None:
    decision = decide_grant(case.state, LeaseRequest(case.member, case.ttl, case.pending), case.health, NOW)
    if case.denied is not None:
        assert isinstance(decision, Deny) and case.denied in decision.reason
        return
    assert isinstance(decision, Grant) and decision.lease.holder == case.member
    assert decision.renewed is case.renewed
    if case.expires is not None:
        assert decision.lease.expires_at == case.expires
    if case.renewed:
        assert decision.lease.granted_at == 0.0


def test_release_only_by_the_holder() -> None:
    assert released(LIVE_A, "b") is None and released(LeaseState(), "a") is None
    assert released(LIVE_A, "a") == LeaseState(None, "a")


def test_health_from_agent_reports() -> None:
    statuses = [
        {
            "receivedAt": 10_000,
            "processes": [
                {"name": "a", "observed": {"running": True, "replicaStateName": "PRIMARY"}},
                {"name": "b", "observed": {"running": True, "replicaStateName": None}},
            ],
        },
        {
            "receivedAt": 1_000,
            "processes": [{"name": "c", "observed": {"running": True, "replicaStateName": "SECONDARY"}}],
        },
        {"receivedAt": 10_000, "processes": [{"name": "d", "observed": {"running": False}}]},
    ]
    health = {
        h.name: h for h in members_health(statuses, {"a": 1, "b": 1, "c": 1, "d": 1, "e": 0}, 10_500, 5_000)
    }
    assert health["a"].healthy and health["a"].primary
    assert (health["b"].healthy, health["b"].state) == (False, "UNKNOWN")  # standalone: no replica set state
    assert (health["c"].healthy, health["c"].state) == (False, "SECONDARY, report stale")
    assert (health["d"].healthy, health["d"].state) == (False, "DOWN")
    assert (health["e"].healthy, health["e"].state, health["e"].votes) == (False, "unreported", 0)


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Env:
    service: LeaseService
    clock: Clock
    store: Store = field(repr=False)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    store = Store(f"sqlite:///{tmp_path / 'app.db'}", name="application database")
    clock = Clock()
    try:
        yield Env(LeaseService(store, clock=clock), clock, store)
    finally:
        store.close()


def test_service_acquire_renew_release(env: Env) -> None:
    svc, clock = env.service, env.clock
    grant = svc.acquire("g1", "rs0", "a", health=ABC, pending=("a", "b", "c"), ttl_s=60)
    assert isinstance(grant, Grant) and grant.lease.expires_at == 1_060.0
    denied = svc.acquire("g1", "rs0", "b", health=ABC, pending=("b", "c"))
    assert isinstance(denied, Deny) and "a holds" in denied.reason
    assert isinstance(svc.acquire("g2", "rs0", "b", health=ABC), Grant)  # another project, another lease
    clock.t = 1_050.0
    renewed = svc.renew("g1", "rs0", "a", ttl_s=60)
    assert isinstance(renewed, Grant) and renewed.lease.expires_at == 1_110.0
    assert isinstance(svc.renew("g1", "rs0", "b"), Deny)
    assert svc.view("g1", "rs0")["holder"] == "a"
    assert svc.release("g1", "rs0", "b") is False
    assert svc.release("g1", "rs0", "a") is True and svc.release("g1", "rs0", "a") is False
    assert svc.state("g1", "rs0") == LeaseState(None, "a")
    assert isinstance(svc.acquire("g1", "rs0", "b", health=ABC, pending=("b", "c")), Grant)


def test_service_dead_agent_lease_expires_but_blocks_while_its_member_is_down(env: Env) -> None:
    svc, clock = env.service, env.clock
    assert isinstance(svc.acquire("g1", "rs0", "a", health=ABC, ttl_s=30), Grant)
    clock.t += 31  # a's agent died: no renewal
    a_down = healthy("a", "b", "c", down=("a",))
    view = svc.view("g1", "rs0")
    assert view["holder"] is None and view["expiredHolder"] == "a"
    denied = svc.acquire("g1", "rs0", "b", health=a_down)
    assert isinstance(denied, Deny) and "a, whose lease expired, is still DOWN" in denied.reason
    assert isinstance(svc.acquire("g1", "rs0", "b", health=ABC), Grant)


def test_service_one_winner_when_two_ask_at_once(env: Env) -> None:
    results: dict[str, Grant | Deny] = {}
    barrier = threading.Barrier(2)

    def ask(member: str) -> None:
        barrier.wait()
        results[member] = env.service.acquire("g1", "rs0", member, health=ABC)

    threads = [threading.Thread(target=ask, args=(m,)) for m in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(type(r).__name__ for r in results.values()) == ["Deny", "Grant"]
    winner = next(m for m, r in results.items() if isinstance(r, Grant))
    lease = env.service.state("g1", "rs0").lease
    assert lease is not None and lease.holder == winner


def test_service_progress_is_kept_per_change_and_never_goes_back(env: Env) -> None:
    svc = env.service
    change = RollingChange("rs0", "rs0", tasks={"a": frozenset({Task.RESTART})})
    assert svc.progress("g1", "rs0", "3->4") == Progress()
    second = Progress(done=("a",), seq=2)
    assert svc.save_progress("g1", "rs0", "3->4", change, second)
    assert svc.save_progress("g1", "rs0", "3->4", change, Progress(seq=1)) is False
    assert svc.progress("g1", "rs0", "3->4") == second
    assert svc.progress("g1", "rs0", "4->5") == Progress()
    assert svc.save_progress("g1", "rs0", "4->5", change, Progress(seq=1))
    (doc,) = svc.documents("g1")
    assert doc["changeId"] == "4->5" and RollingChange.from_json(doc["change"]) == change
    assert env.store.get(LEASES, "g1:rs0") == doc


# The lease part of the stored document (the rest is the rolling change's).

STORED = {"_id": "g1:rs0", "groupId": "g1", "rsId": "rs0", "updatedAt": 1000.0, "changeId": "4->5"}
LIVE = {"holder": "a", "grantedAt": 1000.0, "expiresAt": 1060.0, "owner": "rolling", "purpose": ""}


@pytest.mark.parametrize(
    "lease_part",
    [
        {"lease": LIVE, "lastHolder": "a"},
        {"lease": None, "lastHolder": "a"},
        {"lease": None},  # a replica set's first document
        {"lease": {"holder": "b", "grantedAt": 5.0, "expiresAt": 9.0}, "lastHolder": "b"},  # before owners
    ],
)
def test_a_stored_lease_part_round_trips_unchanged(lease_part: dict[str, object]) -> None:
    stored = StoredLeaseFields.parse_stored({**STORED, **lease_part}, "lease")
    assert stored.to_doc() == lease_part
    assert StoredLeaseFields.parse_stored(stored.to_doc(), "lease") == stored


def test_a_lease_reads_back_as_it_was_granted() -> None:
    lease = Lease("a", 1000.0, 1060.0, "uniqueIndexBuild:b1", "a unique index build b1 on d.c is under way")
    assert lease_state({**STORED, "lease": lease.to_json(), "lastHolder": "a"}) == LeaseState(lease, "a")
    old = lease_state({**STORED, "lease": {"holder": "b", "grantedAt": 5, "expiresAt": 9}})
    assert old.lease == Lease("b", 5.0, 9.0, ROLLING, "") and old.last_holder is None


@pytest.mark.parametrize(
    ("lease_part", "field"),
    [
        ({"lease": {"grantedAt": 5.0, "expiresAt": 9.0}}, "lease.holder"),
        ({"lease": {"holder": "a", "grantedAt": 5.0, "expiresAt": "soon"}}, "lease.expiresAt"),
        ({"lease": "a"}, "lease"),
        ({"lease": None, "lastHolder": ["a"]}, "lastHolder"),
    ],
)
def test_a_malformed_stored_lease_is_a_store_error_naming_the_field(
    env: Env, lease_part: dict[str, object], field: str
) -> None:
    env.store.put(LEASES, {**STORED, **lease_part})
    for read in (lambda: env.service.state("g1", "rs0"), lambda: env.service.view("g1", "rs0")):
        with pytest.raises(StoreError) as raised:
            read()
        assert raised.value.http_status == 503
        assert (
            "maintenance lease of 'g1:rs0' is malformed" in raised.value.detail
            and field in raised.value.detail
        )
    with pytest.raises(StoreError):
        env.service.acquire("g1", "rs0", "a", health=ABC)
    assert env.store.get(LEASES, "g1:rs0") == {**STORED, **lease_part}


@pytest.mark.parametrize(
    "state",
    [
        LeaseState(Lease("a", 1000.0, 1060.0), "a"),
        LeaseState(Lease("b", 5.0, 9.0, "uniqueIndexBuild:b1", "a unique index build"), "b"),
        LeaseState(None, "a"),
        LeaseState(None, None),
    ],
)
def test_the_lease_fields_written_read_back_as_the_state(state: LeaseState) -> None:
    written = lease_fields(state)
    assert lease_state({**STORED, **written}) == state
    assert StoredLeaseFields.parse_stored(written, "lease").to_doc() == written
