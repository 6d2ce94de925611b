"""The rules of the automation config's ``indexConfigs``: the rolling index builds a config asks for (database
and collection names, the key, the replica set), and the refusal of a new unique index, which needs the
supervised build instead.

Pure functions over plain JSON values. May import ``opsmgr.errors`` and ``opsmgr.automation.rules``.
"""

from __future__ import annotations

import json
from typing import Any

from opsmgr.automation.rules import (
    INDEX_KEY_TYPES,
    KINDS,
    canonical,
    check_fields,
    fail,
    objects,
    require,
    valid_collection_name,
    valid_db_name,
)

UNIQUE_INDEX_BUILDS_API = "POST /api/public/v1.0/groups/{groupId}/uniqueIndexBuilds"
UNIQUE_INDEX_BUILD_CLI = "opsmgr index build-unique"
UNIQUE_INDEX_PROCEDURE = (
    "a unique index cannot be built in the rolling way while writes continue, because each member builds "
    "it independently and a write accepted meanwhile can break uniqueness; stop writes to the collection and "
    f"use the supervised unique index build instead ({UNIQUE_INDEX_BUILDS_API}, or "
    f"{UNIQUE_INDEX_BUILD_CLI}): it has you confirm writes are stopped, builds the index member by member, "
    "watches the oplog for any write to the collection and undoes the build if one appears, then adds the "
    "entry to indexConfigs"
)

_INDEX_FIELDS = {
    "rsName": "string",
    "options": "object",
    "options.unique": "boolean",
    "collation": "object",
    "collation.locale": "string",
}


def check_index_configs(
    index_configs: list[Any], rs_ids: set[str], existing: Any, allow_unique: bool
) -> None:
    seen: set[str] = set()
    known = {canonical(entry) for entry in existing} if isinstance(existing, list) else set()
    for here, entry in objects(index_configs, "indexConfigs"):
        for key in ("dbName", "collectionName", "key", "rsName", "options"):
            require(entry, key, here)
        check_fields(entry, _INDEX_FIELDS, here)
        db = entry["dbName"]
        if not valid_db_name(db):
            fail(
                f"{here}.dbName", "index-db-name", f'{here}.dbName must be a database name (no /\\. "$*<>:|?)'
            )
        coll = entry["collectionName"]
        if not valid_collection_name(coll):
            fail(f"{here}.collectionName", "index-collection-name", f"{here}.collectionName is not valid")
        _check_index_key(entry["key"], f"{here}.key")
        if entry["rsName"] not in rs_ids:
            fail(f"{here}.rsName", "index-rs-name", f"{here}.rsName must name a replica set in replicaSets[]")
        if "collation" in entry and "locale" not in entry["collation"]:
            fail(f"{here}.collation.locale", "index-collation", "a collation needs a locale")
        identity = json.dumps([entry["rsName"], db, coll, entry["key"]])
        if identity in seen:
            fail(
                here, "index-duplicate", f"the same index on {db}.{coll} in {entry['rsName']} is listed twice"
            )
        seen.add(identity)
        if entry["options"].get("unique") and not allow_unique and canonical(entry) not in known:
            fail(f"{here}.options.unique", "index-unique-rolling", UNIQUE_INDEX_PROCEDURE)


def _check_index_key(key: Any, field: str) -> None:
    if not isinstance(key, list) or not key:
        fail(field, "index-key", f"{field} must be a non-empty array of [field, direction or type] pairs")
    names: set[str] = set()
    for i, pair in enumerate(key):
        ok = isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and pair[0] != ""
        value = pair[1] if ok else None
        ok = ok and (value in INDEX_KEY_TYPES or (KINDS["integer"](value) and value in (1, -1)))
        if not ok or pair[0] in names:
            fail(
                f"{field}[{i}]",
                "index-key",
                f"{field}[{i}] must be a [field, 1 | -1 | {' | '.join(INDEX_KEY_TYPES)}] pair with a field "
                "not already in the key",
            )
        names.add(pair[0])
