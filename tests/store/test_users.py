"""User accounts and sessions in a real SQLite application database."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmgr.errors import Conflict, InvalidInput, NotFound
from opsmgr.store import users as users_mod
from opsmgr.store.engine import Store
from opsmgr.store.users import SESSIONS, USERS, Users, hash_password, password_matches
from tests.clock import Clock


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'app.sqlite'}")
    yield s
    s.close()


ROLES = [{"orgId": "a" * 24, "roleName": "ORG_OWNER"}]


def test_passwords_are_scrypt_hashes_that_check_only_the_right_password() -> None:
    stored = hash_password("hunter2hunter2")
    assert stored.startswith("scrypt$") and "hunter2" not in stored
    assert password_matches("hunter2hunter2", stored)
    assert not password_matches("hunter2hunter3", stored)
    assert not password_matches("x", "md5$whatever")
    assert not password_matches("x", "scrypt$garbage")
    assert hash_password("same-password") != hash_password("same-password")  # salted


def test_create_authenticate_and_refuse(store: Store) -> None:
    users = Users(store)
    user = users.create("Ann", "long enough", ROLES)
    assert user.principal().kind == "User" and user.principal().public_key == "Ann"
    assert users.authenticate("ann", "long enough") == user
    assert users.authenticate("ann", "wrong password") is None
    assert users.authenticate("nobody", "long enough") is None
    assert users.authenticate("bad name!", "long enough") is None
    with pytest.raises(Conflict):
        users.create("ANN", "long enough", ROLES)
    with pytest.raises(InvalidInput):
        users.create("bob", "short", ROLES)
    with pytest.raises(InvalidInput):
        users.create("bob", "long enough", [])
    with pytest.raises(NotFound):
        users.delete("bob")
    doc = store.find(USERS)[0]
    assert "long enough" not in str(doc)


def test_sessions_are_stored_as_digests_and_end(store: Store) -> None:
    clock = Clock(1_700_000_000.0)
    users = Users(store, clock=clock)
    user = users.create("ann", "long enough", ROLES)
    session = users.open_session(user)
    assert session.token not in str(store.find(SESSIONS))
    assert users.session(session.token) is not None
    assert users.session(session.token + "x") is None
    assert users.session("") is None and users.session("y" * 500) is None
    # Idle too long: gone.
    clock.now += users_mod.SESSION_IDLE_S + 1
    assert users.session(session.token) is None
    assert store.find(SESSIONS) == []
    # Used regularly, it still ends at its maximum age.
    session = users.open_session(user)
    for _ in range(int(users_mod.SESSION_MAX_S // 3600)):
        clock.now += 3600
        found = users.session(session.token)
    assert found is None
    # Logout and deleting the user end sessions too.
    session = users.open_session(user)
    users.close_session(session.token)
    assert users.session(session.token) is None
    session = users.open_session(user)
    users.delete("ann")
    assert users.session(session.token) is None
