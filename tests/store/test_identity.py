"""Which installation the stores belong to: the first-start decision's rules one by one (a first start only
when everything is new; any other mix, a store of another installation, an application database without its
record and snapshots without their blocks refused; an installation from before ids adopts one), the id
stamped on every store by the preflight, and two servers starting together on one fresh PostgreSQL set
agreeing on one installation."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from opsmgr.errors import PreflightFailure
from opsmgr.store.crypto import GenKey
from opsmgr.store.engine import Store
from opsmgr.store.identity import (
    Role,
    StoreFacts,
    Surroundings,
    bind_key,
    decide,
    read_binding,
    sqlite_absent,
)
from opsmgr.store.installation import preflight, read_installation_id
from tests.pgserver import PgServer


def fresh_id() -> str:
    return "new-id"


def facts(
    app: StoreFacts | None = None, snap: StoreFacts | None = None, oplog: StoreFacts | None = None
) -> list[StoreFacts]:
    return [
        app or StoreFacts(Role.APP, "app", 3, "X", has_record=True),
        snap or StoreFacts(Role.SNAPSHOT, "snap", 1, "X", has_record=True),
        oplog or StoreFacts(Role.OPLOG, "oplog", 1, "X", has_record=True),
    ]


def new_facts() -> list[StoreFacts]:
    return [StoreFacts.missing(r, r.value) for r in Role]


def test_everything_new_is_a_first_start_with_a_new_id_for_every_store() -> None:
    decision = decide(new_facts(), Surroundings(), fresh_id)
    assert decision.first_start and decision.installation_id == "new-id"
    assert decision.stamp == (Role.APP, Role.SNAPSHOT, Role.OPLOG)


@pytest.mark.parametrize(
    ("around", "named"),
    [
        (Surroundings(key_path=Path("/k/gen.key"), key_bound_to="X"), "has served installation X"),
        (Surroundings(blockstore=Path("/b"), blockstore_holds_blocks=True), "the blockstore at /b holds"),
    ],
)
def test_new_stores_beside_an_earlier_installation_are_no_first_start(
    around: Surroundings, named: str
) -> None:
    with pytest.raises(PreflightFailure) as refused:
        decide(new_facts(), around, fresh_id)
    assert refused.value.error_code == "NOT_A_FIRST_START"
    assert named in refused.value.detail and "restore-stores" in refused.value.detail


def test_the_installation_the_stores_carry_starts_with_nothing_to_stamp() -> None:
    decision = decide(facts(), Surroundings(key_bound_to="X"), fresh_id)
    assert (decision.installation_id, decision.first_start, decision.stamp) == ("X", False, ())


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("absent", [True, False])
def test_one_new_store_beside_others_holding_data_is_refused(role: Role, absent: bool) -> None:
    new = StoreFacts(role, role.value, 0, absent=absent)
    given = [new if f.role is role else f for f in facts()]
    with pytest.raises(PreflightFailure) as refused:
        decide(given, Surroundings(), fresh_id)
    assert refused.value.error_code == "STORES_INCONSISTENT"
    assert f"the {role} is {'missing' if absent else 'empty'}" in refused.value.detail
    assert "holds installation X" in refused.value.detail


def test_a_store_of_another_installation_is_refused_naming_both_ids() -> None:
    given = facts(oplog=StoreFacts(Role.OPLOG, "oplog", 4, "Y", has_record=True))
    with pytest.raises(PreflightFailure) as refused:
        decide(given, Surroundings(), fresh_id)
    assert refused.value.error_code == "STORE_OF_ANOTHER_INSTALLATION"
    assert "the oplog metadata store belongs to installation Y, not to installation X" in refused.value.detail


def test_metadata_stores_of_two_installations_beside_an_app_without_id_are_refused() -> None:
    app = StoreFacts(Role.APP, "app", 3, None, has_record=True)
    given = facts(app=app, oplog=StoreFacts(Role.OPLOG, "oplog", 4, "Y", has_record=True))
    with pytest.raises(PreflightFailure, match="installation Y, not to installation X"):
        decide(given, Surroundings(), fresh_id)


def test_an_application_database_with_documents_but_no_record_is_damaged() -> None:
    with pytest.raises(PreflightFailure) as refused:
        decide(facts(app=StoreFacts(Role.APP, "app", 7)), Surroundings(), fresh_id)
    assert refused.value.error_code == "STORE_DAMAGED"


def test_an_installation_from_before_ids_adopts_one_even_with_unused_metadata_stores() -> None:
    legacy_app = StoreFacts(Role.APP, "app", 9, None, has_record=True)
    unused = StoreFacts(Role.OPLOG, "oplog", 0)
    decision = decide(
        facts(app=legacy_app, snap=StoreFacts(Role.SNAPSHOT, "s", 5), oplog=unused), Surroundings(), fresh_id
    )
    assert (decision.installation_id, decision.first_start) == ("new-id", False)
    assert decision.stamp == (Role.APP, Role.SNAPSHOT, Role.OPLOG)
    # A restored application database from before ids takes the id its metadata stores carry.
    decision = decide(facts(app=legacy_app), Surroundings(), fresh_id)
    assert (decision.installation_id, decision.stamp) == ("X", (Role.APP,))


def test_an_installation_from_before_ids_whose_store_file_is_gone_is_refused() -> None:
    legacy_app = StoreFacts(Role.APP, "app", 9, None, has_record=True)
    with pytest.raises(PreflightFailure, match="the snapshot metadata store is missing"):
        decide(facts(app=legacy_app, snap=StoreFacts.missing(Role.SNAPSHOT, "s")), Surroundings(), fresh_id)


def test_snapshots_whose_blockstore_holds_no_block_are_refused() -> None:
    around = Surroundings(blockstore=Path("/b"), blockstore_holds_blocks=False, snapshot_blocks=12)
    with pytest.raises(PreflightFailure) as refused:
        decide(facts(), around, fresh_id)
    assert refused.value.error_code == "BLOCKSTORE_MISSING" and "12 blocks" in refused.value.detail
    decide(
        facts(),
        Surroundings(blockstore=Path("/b"), blockstore_holds_blocks=True, snapshot_blocks=12),
        fresh_id,
    )


def test_a_database_file_lost_beside_its_log_is_damage(tmp_path: Path) -> None:
    db = tmp_path / "appdb.sqlite"
    assert sqlite_absent(Role.APP, db)
    db.write_bytes(b"")
    assert sqlite_absent(Role.APP, db)
    (tmp_path / "appdb.sqlite-wal").write_bytes(b"x" * 100)
    with pytest.raises(PreflightFailure, match=r"appdb\.sqlite-wal holds 100 bytes"):
        sqlite_absent(Role.APP, db)


def test_the_binding_beside_gen_key(tmp_path: Path) -> None:
    key = tmp_path / "gen.key"
    assert read_binding(key) is None
    bind_key(key, "abc")
    assert read_binding(key) == "abc" and (tmp_path / "gen.key.installation").read_text() == "abc\n"


def test_preflight_stamps_one_id_on_every_store_and_binds_the_key(tmp_path: Path) -> None:
    stores = [Store(f"sqlite:///{tmp_path / n}.sqlite", name=n) for n in ("app", "snap", "oplog")]
    key_path = tmp_path / "gen.key"
    try:
        decision = preflight(
            *stores, GenKey.create(key_path), "0.1.0", around=Surroundings(key_path=key_path)
        )
        assert decision.first_start
        assert {read_installation_id(s) for s in stores} == {decision.installation_id}
        assert read_binding(key_path) == decision.installation_id
        again = preflight(*stores, GenKey.load(key_path), "0.1.0")
        assert (again.installation_id, again.first_start, again.stamp) == (
            decision.installation_id,
            False,
            (),
        )
    finally:
        for s in stores:
            s.close()


@pytest.mark.postgres
def test_two_servers_starting_together_on_a_fresh_postgres_set_agree(pg_server: PgServer) -> None:
    uris = [pg_server.create_database() for _ in range(3)]
    key = GenKey.generate()
    outcomes: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    go = threading.Barrier(2)

    def start() -> None:
        stores = [Store(u, name=f"s{i}") for i, u in enumerate(uris)]
        try:
            go.wait()
            decision = preflight(*stores, key, "0.1.0")
            outcomes.append((decision.installation_id, decision.first_start))
        except BaseException as exc:
            errors.append(exc)
        finally:
            for s in stores:
                s.close()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len({i for i, _ in outcomes}) == 1, outcomes
    assert sorted(first for _, first in outcomes) == [False, True]
