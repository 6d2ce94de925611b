"""The web UI's user accounts and their sessions, in the application database.

Owns the collections ``users`` and ``ui_sessions``. A user holds roles in the very shape an API key does
(``[{orgId|groupId, roleName}]``), so the UI's role checks are the API's (``store.appdb.Principal``).
Passwords are stored as scrypt hashes (``cryptography``'s, with a random salt and the cost parameters kept
beside the hash so they can be raised later); a session is stored as the SHA-256 digest of its token, so a
copy of the application database (the secondary's backup, a drill's sandbox) holds no usable session.

May import ``opsmgr.errors`` and ``opsmgr.store``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from opsmgr.errors import Conflict, InvalidInput, NotFound
from opsmgr.store.appdb import Principal, check_id
from opsmgr.store.engine import Store

USERS = "users"
SESSIONS = "ui_sessions"

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+\-]{0,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256
# scrypt's cost: about 50 ms on this class of machine, 16 MiB of memory (OWASP's floor is N=2**15, r=8).
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SESSION_IDLE_S = 8 * 3600.0
SESSION_MAX_S = 24 * 3600.0
# A session's last use is written at most this often: not every page view becomes an application-database
# write (and an oplog entry the secondary copies).
TOUCH_EVERY_S = 300.0


def check_username(value: str) -> str:
    if not _USERNAME.fullmatch(value):  # not match: its "$" also matches before a final line end
        raise InvalidInput(
            "username must be 1-64 characters of letters, digits, '_', '.', '@', '+' or '-', starting with a "
            "letter or digit",
            field="username",
        )
    return value


def check_password(value: str) -> str:
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise InvalidInput(
            f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long", field="password"
        )
    return value


def _scrypt(salt: bytes, n: int, r: int, p: int) -> Scrypt:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(salt, SCRYPT_N, SCRYPT_R, SCRYPT_P).derive(password.encode())
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        _scrypt(base64.b64decode(salt), int(n), int(r), int(p)).verify(
            password.encode(), base64.b64decode(digest)
        )
    except (InvalidKey, ValueError):
        return False
    return True


@functools.cache
def _decoy() -> str:
    """A hash of nothing anyone knows: a login for a missing user costs what one for a real user does, so the
    time it takes does not tell which usernames exist."""
    return hash_password(secrets.token_hex(16))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    id: str
    username: str
    roles: tuple[tuple[str, str, str], ...]  # (scope "orgId"|"groupId", id, roleName)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> User:
        roles = []
        for role in doc.get("roles", []):
            scope = "groupId" if "groupId" in role else "orgId"
            roles.append((scope, str(role[scope]), str(role["roleName"])))
        return cls(str(doc["_id"]), str(doc["username"]), tuple(roles))

    def role_docs(self) -> list[dict[str, str]]:
        return [{scope: ident, "roleName": name} for scope, ident, name in self.roles]

    def principal(self) -> Principal:
        """The user as the API's role model sees a caller: refusals name the user."""
        return Principal({"_id": self.id, "publicKey": self.username, "roles": self.role_docs()}, kind="User")


@dataclass(frozen=True)
class Session:
    token: str  # only in the caller's hands; the store keeps its digest
    user: User
    created: float
    expires: float


class Users:
    """User accounts and sessions over the application database's store."""

    def __init__(self, store: Store, clock: Any = time.time) -> None:
        self.store = store
        self.clock = clock

    def create(self, username: str, password: str, roles: list[dict[str, str]]) -> User:
        check_username(username)
        check_password(password)
        if not roles:
            raise InvalidInput("a user needs at least one role", field="roles")
        doc = {
            "username": username,
            "usernameKey": username.lower(),
            "passwordHash": hash_password(password),
            "roles": roles,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock())),
        }
        with self.store.tx() as t:
            if t.find(USERS, usernameKey=username.lower()):
                raise Conflict(f"A user named {username!r} already exists.", error_code="USER_ALREADY_EXISTS")
            return User.from_doc(t.insert(USERS, doc))

    def all(self) -> list[User]:
        return [User.from_doc(d) for d in self.store.find(USERS)]

    def by_username(self, username: str) -> User | None:
        found = self.store.find(USERS, usernameKey=username.lower())
        return User.from_doc(found[0]) if found else None

    def delete(self, username: str) -> None:
        with self.store.tx() as t:
            found = t.find(USERS, usernameKey=username.lower())
            if not found:
                raise NotFound(f"No user named {username!r} exists.", error_code="USER_NOT_FOUND")
            for session in t.find(SESSIONS, userId=found[0]["_id"]):
                t.delete(SESSIONS, session["_id"])
            t.delete(USERS, found[0]["_id"])

    def authenticate(self, username: str, password: str) -> User | None:
        """The user whose password this is, or None (the same time spent either way)."""
        found = self.store.find(USERS, usernameKey=username.lower()) if _USERNAME.fullmatch(username) else []
        if not found:
            password_matches(password, _decoy())
            return None
        if not password_matches(password, str(found[0]["passwordHash"])):
            return None
        return User.from_doc(found[0])

    def open_session(self, user: User) -> Session:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        doc = {
            "_id": _token_digest(token)[:24],
            "tokenHash": _token_digest(token),
            "userId": user.id,
            "created": now,
            "lastUsed": now,
            "expires": now + SESSION_MAX_S,
        }
        self.store.insert(SESSIONS, doc)
        self._forget_expired()
        return Session(token, user, now, now + SESSION_MAX_S)

    def session(self, token: str) -> Session | None:
        """The live session ``token`` opens, or None (unknown, idle too long, or past its end)."""
        if not token or len(token) > 128:
            return None
        digest = _token_digest(token)
        doc = self.store.get(SESSIONS, digest[:24])
        if doc is None or not hmac.compare_digest(str(doc["tokenHash"]), digest):
            return None
        now = self.clock()
        if now >= float(doc["expires"]) or now - float(doc["lastUsed"]) >= SESSION_IDLE_S:
            self.store.delete(SESSIONS, doc["_id"])
            return None
        user_doc = self.store.get(USERS, check_id(str(doc["userId"]), "userId"))
        if user_doc is None:
            return None
        if now - float(doc["lastUsed"]) >= TOUCH_EVERY_S:
            self.store.update(SESSIONS, doc["_id"], {"lastUsed": now})
        return Session(token, User.from_doc(user_doc), float(doc["created"]), float(doc["expires"]))

    def close_session(self, token: str) -> None:
        digest = _token_digest(token)
        doc = self.store.get(SESSIONS, digest[:24])
        if doc is not None and hmac.compare_digest(str(doc["tokenHash"]), digest):
            self.store.delete(SESSIONS, doc["_id"])

    def _forget_expired(self) -> None:
        now = self.clock()
        with self.store.tx() as t:
            for doc in t.find(SESSIONS):
                if now >= float(doc["expires"]) or now - float(doc["lastUsed"]) >= SESSION_IDLE_S:
                    t.delete(SESSIONS, doc["_id"])
