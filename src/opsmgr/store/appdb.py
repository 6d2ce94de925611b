"""The identity records of the application database: organizations, projects (groups), programmatic API
keys with their roles and the organization each belongs to, and project agent API keys.

Owns the collections ``orgs``, ``groups``, ``api_keys`` and ``agent_api_keys`` and the role model. Secrets
are never stored in the clear: a programmatic key's private part is encrypted with gen.key (HTTP Digest needs
it to recompute the response), an agent API key is stored as a SHA-256 digest (HTTP Basic only compares).
May import ``opsmgr.errors`` and ``opsmgr.store``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Set
from enum import StrEnum
from typing import Any

from opsmgr.errors import Conflict, Forbidden, InvalidInput, NotFound
from opsmgr.store.engine import Store, new_id

ORGS = "orgs"
GROUPS = "groups"
API_KEYS = "api_keys"
AGENT_API_KEYS = "agent_api_keys"
# The change a write of a project's agent API keys announces (Txn.notify), keyed by project id: servers
# cache the key digests on the agent poll path.
AGENT_KEYS_CHANGED = "agent_api_keys"

_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-()]{0,63}$")


class Role(StrEnum):
    ORG_OWNER = "ORG_OWNER"
    ORG_READ_ONLY = "ORG_READ_ONLY"
    GROUP_OWNER = "GROUP_OWNER"
    GROUP_AUTOMATION_ADMIN = "GROUP_AUTOMATION_ADMIN"
    GROUP_BACKUP_ADMIN = "GROUP_BACKUP_ADMIN"
    GROUP_READ_ONLY = "GROUP_READ_ONLY"


ORG_ROLES = frozenset({Role.ORG_OWNER, Role.ORG_READ_ONLY})
GROUP_ROLES = frozenset(
    {Role.GROUP_OWNER, Role.GROUP_AUTOMATION_ADMIN, Role.GROUP_BACKUP_ADMIN, Role.GROUP_READ_ONLY}
)

# Which held project roles satisfy a required one. An ORG_OWNER holds GROUP_OWNER on the org's projects and
# an ORG_READ_ONLY holds GROUP_READ_ONLY on them, as in Ops Manager.
_IMPLIED: dict[Role, frozenset[Role]] = {
    Role.GROUP_OWNER: frozenset(GROUP_ROLES),
    Role.GROUP_AUTOMATION_ADMIN: frozenset({Role.GROUP_AUTOMATION_ADMIN, Role.GROUP_READ_ONLY}),
    Role.GROUP_BACKUP_ADMIN: frozenset({Role.GROUP_BACKUP_ADMIN, Role.GROUP_READ_ONLY}),
    Role.GROUP_READ_ONLY: frozenset({Role.GROUP_READ_ONLY}),
    Role.ORG_OWNER: frozenset({Role.ORG_OWNER, Role.ORG_READ_ONLY}),
    Role.ORG_READ_ONLY: frozenset({Role.ORG_READ_ONLY}),
}


def check_id(value: str, what: str) -> str:
    if not _OBJECT_ID.fullmatch(value):
        raise InvalidInput(f"{what} {value!r} is not a valid id (24 hexadecimal characters)", field=what)
    return value


def check_name(value: Any, field: str = "name") -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInput(
            f"{field} must be 1-64 characters of letters, digits, spaces, '_', '-', '.', '(' or ')'",
            field=field,
            rule="name-format",
        )
    return value


def parse_roles(raw: Any, allowed: frozenset[Role], field: str = "roles") -> list[Role]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(f"{field} must be a non-empty list of role names", field=field)
    roles: list[Role] = []
    for i, name in enumerate(raw):
        try:
            role = Role(name)
        except ValueError:
            role = None
        if role is None or role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise InvalidInput(f"{field}[{i}] must be one of {names}", field=f"{field}[{i}]", rule="role")
        if role not in roles:
            roles.append(role)
    return roles


def hash_agent_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Principal:
    """An authenticated caller and the roles it holds: a programmatic API key, or a UI user (``kind``
    "User", ``public_key`` its username), so that a refusal names who was refused."""

    def __init__(self, key: dict[str, Any], *, kind: str = "API key") -> None:
        self.key_id: str = key["_id"]
        self.public_key: str = key["publicKey"]
        self.roles: list[dict[str, str]] = key.get("roles", [])
        self.kind = kind

    def org_roles(self, org_id: str) -> set[Role]:
        held = {Role(r["roleName"]) for r in self.roles if r.get("orgId") == org_id}
        return {implied for r in held for implied in _IMPLIED[r]}

    def group_roles(self, group: dict[str, Any]) -> set[Role]:
        held = {Role(r["roleName"]) for r in self.roles if r.get("groupId") == group["_id"]}
        org = self.org_roles(group["orgId"])
        if Role.ORG_OWNER in org:
            held.add(Role.GROUP_OWNER)
        if Role.ORG_READ_ONLY in org:
            held.add(Role.GROUP_READ_ONLY)
        return {implied for r in held for implied in _IMPLIED[r]}

    def require_org(self, org_id: str, role: Role) -> None:
        held = self.org_roles(org_id)
        if role not in held:
            raise Forbidden(
                f"{self.kind} {self.public_key} lacks role {role.value} on organization {org_id}",
                error_code="USER_UNAUTHORIZED" if held else "NOT_ORG_ADMIN",
            )

    def require_group(self, group: dict[str, Any], role: Role) -> None:
        held = self.group_roles(group)
        if role not in held:
            raise Forbidden(
                f"{self.kind} {self.public_key} lacks role {role.value} on project {group['_id']}",
                error_code="USER_UNAUTHORIZED" if held else "NOT_IN_GROUP",
            )

    def can_see_group(self, group: dict[str, Any]) -> bool:
        return bool(self.group_roles(group))

    def can_see_org(self, org_id: str) -> bool:
        return bool(self.org_roles(org_id)) or any(
            r.get("orgId") == org_id for r in self.roles if "groupId" in r
        )


class AppDB:
    """Typed access to the identity collections of one application database."""

    def __init__(self, store: Store, encrypt: Callable[[str], str], decrypt: Callable[[str], str]) -> None:
        self.store = store
        self._encrypt = encrypt
        self._decrypt = decrypt

    # Organizations and projects.

    def create_org(self, name: Any) -> dict[str, Any]:
        return self.store.insert(ORGS, {"name": check_name(name), "created": _now_iso()})

    def org(self, org_id: str) -> dict[str, Any]:
        doc = self.store.get(ORGS, check_id(org_id, "orgId"))
        if doc is None:
            raise NotFound(f"No organization with ID {org_id} exists.", error_code="ORG_NOT_FOUND")
        return doc

    def orgs(self) -> list[dict[str, Any]]:
        return self.store.find(ORGS)

    def create_group_as(self, principal: Principal, name: Any, org_id: str) -> tuple[dict[str, Any], str]:
        """A new project of organization ``org_id``, which ``principal`` must own (the API's and the UI's one
        rule), with its first agent API key, in one transaction: the project and the key in the clear (shown
        this once: Ops Manager answers it as the new project's ``agentApiKey``)."""
        check_id(org_id, "orgId")
        self.org(org_id)
        principal.require_org(org_id, Role.ORG_OWNER)
        check_name(name)
        group_id = new_id()
        key_doc, plain = _agent_key_doc(group_id, "Initial agent API key")
        with self.store.tx() as t:
            if t.find(GROUPS, name=name, orgId=org_id):
                raise Conflict(
                    f"A project named {name!r} already exists in organization {org_id}",
                    error_code="GROUP_ALREADY_EXISTS",
                )
            group = t.insert(GROUPS, {"_id": group_id, "name": name, "orgId": org_id, "created": _now_iso()})
            t.insert(AGENT_API_KEYS, key_doc)
            t.notify(AGENT_KEYS_CHANGED, group_id)
        return group, plain

    def group(self, group_id: str) -> dict[str, Any]:
        doc = self.store.get(GROUPS, check_id(group_id, "groupId"))
        if doc is None:
            raise NotFound(f"No group with ID {group_id} exists.", error_code="GROUP_NOT_FOUND")
        return doc

    def groups(self) -> list[dict[str, Any]]:
        return self.store.find(GROUPS)

    def delete_group(self, group_id: str) -> None:
        self.group(group_id)
        with self.store.tx() as t:
            for key in t.find(AGENT_API_KEYS, groupId=group_id):
                t.delete(AGENT_API_KEYS, key["_id"])
            t.delete(GROUPS, group_id)
            t.notify(AGENT_KEYS_CHANGED, group_id)

    # Programmatic API keys. Each key belongs to one organization (``orgId``, as in Ops Manager): its org
    # routes reach only that organization's keys, and a project can be given only its organization's keys.

    def create_api_key(self, desc: Any, roles: Iterable[dict[str, str]]) -> tuple[dict[str, Any], str]:
        """Returns the stored record and the private key, which is shown this once and never again. The key
        belongs to the organization its roles are in (an org role's, or the organization of a project's)."""
        if not isinstance(desc, str) or not 1 <= len(desc) <= 250:
            raise InvalidInput("desc must be a string of 1 to 250 characters", field="desc")
        roles = list(roles)
        public = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))
        private = str(uuid.uuid4())
        doc = {
            "publicKey": public,
            "privateKeyEnc": self._encrypt(private),
            "desc": desc,
            "orgId": _owner_of(self.store, {"roles": roles}),
            "roles": roles,
            "created": _now_iso(),
        }
        return self.store.insert(API_KEYS, doc), private

    def org_api_keys(self, org_id: str) -> list[dict[str, Any]]:
        """The keys of organization ``org_id``."""
        return [k for k in self.store.find(API_KEYS) if _owner_of(self.store, k) == org_id]

    def org_api_key(self, org_id: str, key_id: str) -> dict[str, Any]:
        """Key ``key_id`` of organization ``org_id``; a key of another organization is as missing."""
        return _key(self.store, key_id, lambda k, r: _owner_of(r, k) == org_id)

    def project_api_keys(self, group_id: str) -> list[dict[str, Any]]:
        """The keys holding a role on project ``group_id``."""
        return [k for k in self.store.find(API_KEYS) if _holds_project_role(k, group_id)]

    def api_key_by_public(self, public_key: str) -> dict[str, Any] | None:
        found = self.store.find(API_KEYS, publicKey=public_key)
        return found[0] if found else None

    def private_key(self, key: dict[str, Any]) -> str:
        return self._decrypt(key["privateKeyEnc"])

    def add_roles(self, key_id: str, roles: list[dict[str, str]]) -> dict[str, Any]:
        """Roles added to a key its caller already holds (an organization it has just created)."""
        with self.store.tx() as t:
            key = _key(t, key_id, lambda _k, _r: True)
            key["roles"] = [*key.get("roles", []), *roles]
            return t.put(API_KEYS, key)

    def assign_api_key(self, group: dict[str, Any], key_id: str, roles: list[Role]) -> dict[str, Any]:
        """Key ``key_id`` of the project's organization gets exactly ``roles`` on the project."""
        with self.store.tx() as t:
            key = _key(t, key_id, lambda k, r: _owner_of(r, k) == group["orgId"])
            kept = [r for r in key.get("roles", []) if r.get("groupId") != group["_id"]]
            key["roles"] = kept + [{"groupId": group["_id"], "roleName": r.value} for r in roles]
            return t.put(API_KEYS, key)

    def unassign_api_key(self, group_id: str, key_id: str) -> None:
        """Key ``key_id``, which holds roles on the project, loses them; any other key is as missing. Any
        key: the grant is the project's own, so a project can always withdraw what it gave."""
        with self.store.tx() as t:
            key = _key(t, key_id, lambda k, _r: _holds_project_role(k, group_id))
            key["roles"] = [r for r in key["roles"] if r.get("groupId") != group_id]
            t.put(API_KEYS, key)

    def delete_org_api_key(self, org_id: str, key_id: str) -> None:
        with self.store.tx() as t:
            _key(t, key_id, lambda k, r: _owner_of(r, k) == org_id)
            t.delete(API_KEYS, key_id)

    # Agent API keys.

    def create_agent_key(self, group_id: str, desc: str) -> tuple[dict[str, Any], str]:
        self.group(group_id)
        doc, key = _agent_key_doc(group_id, desc)
        with self.store.tx() as t:
            t.notify(AGENT_KEYS_CHANGED, group_id)
            return t.insert(AGENT_API_KEYS, doc), key

    def agent_keys(self, group_id: str) -> list[dict[str, Any]]:
        return self.store.find(AGENT_API_KEYS, groupId=group_id)

    def delete_agent_key(self, group_id: str, key_id: str) -> None:
        with self.store.tx() as t:
            doc = t.get(AGENT_API_KEYS, check_id(key_id, "agentApiKeyId"))
            if doc is None or doc["groupId"] != group_id:
                raise NotFound(
                    f"No agent API key with ID {key_id} exists in project {group_id}.",
                    error_code="INVALID_KEY_ID",
                )
            t.delete(AGENT_API_KEYS, key_id)
            t.notify(AGENT_KEYS_CHANGED, group_id)

    def agent_key_hashes_by_group(self) -> dict[str, frozenset[str]]:
        """Every project's agent key digests, in one read of the collection (the agent poll path's table)."""
        table: dict[str, set[str]] = {}
        for key in self.store.find(AGENT_API_KEYS):
            table.setdefault(str(key["groupId"]), set()).add(str(key["keyHash"]))
        return {group: frozenset(hashes) for group, hashes in table.items()}


def _agent_key_doc(group_id: str, desc: str) -> tuple[dict[str, Any], str]:
    """A new agent API key of project ``group_id``: the document to store (its digest) and the key itself."""
    key = secrets.token_hex(32)
    doc = {
        "groupId": group_id,
        "desc": desc,
        "keyHash": hash_agent_key(key),
        "maskedKey": f"********{key[-8:]}",
        "createdTime": _now_iso(),
        "createdBy": "PUBLIC_API",
    }
    return doc, key


def _key(reader: Any, key_id: str, belongs: Callable[[dict[str, Any], Any], bool]) -> dict[str, Any]:
    """Key ``key_id`` read through ``reader`` (a store or a transaction) when ``belongs(key, reader)``; a key
    that does not belong gets the very answer a missing one does, so ids of other tenants reveal nothing."""
    key = reader.get(API_KEYS, check_id(key_id, "apiKeyId"))
    if key is None or not belongs(key, reader):
        raise NotFound(f"No API key with ID {key_id} exists.", error_code="API_KEY_NOT_FOUND")
    return dict(key)


def _owner_of(reader: Any, key: dict[str, Any]) -> str | None:
    """The organization a key belongs to: its ``orgId``, or for a key stored before keys recorded one, the
    organization of its first role (the one it was created with)."""
    if key.get("orgId"):
        return str(key["orgId"])
    for role in key.get("roles", []):
        if "orgId" in role:
            return str(role["orgId"])
        group = reader.get(GROUPS, role["groupId"]) if "groupId" in role else None
        if group is not None:
            return str(group["orgId"])
    return None


def _holds_project_role(key: dict[str, Any], group_id: str) -> bool:
    return any(r.get("groupId") == group_id for r in key.get("roles", []))


def agent_key_matches(presented: str, hashes: Set[str]) -> bool:
    digest = hash_agent_key(presented)
    return any(hmac.compare_digest(digest, h) for h in hashes)


__all__ = [
    "AGENT_API_KEYS",
    "AGENT_KEYS_CHANGED",
    "API_KEYS",
    "GROUPS",
    "GROUP_ROLES",
    "ORGS",
    "ORG_ROLES",
    "AppDB",
    "Principal",
    "Role",
    "agent_key_matches",
    "check_id",
    "check_name",
    "new_id",
    "parse_roles",
]
