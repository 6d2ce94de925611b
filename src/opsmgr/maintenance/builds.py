"""Supervised unique index builds kept in the application database (collection ``unique_index_builds``).

One document per build: the :class:`~opsmgr.maintenance.unique_index.UniqueIndexBuild` as JSON plus its
project. Every event is applied in one write transaction (read, apply the pure transition, write), so the
operator's confirmation, the executor's reports and the oplog watch never overwrite one another. At most one
build per replica set is under way. May import ``opsmgr.errors``, ``opsmgr.store``,
``opsmgr.automation.protocol`` and ``opsmgr.maintenance``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opsmgr.automation.protocol import WORK_CHANGED
from opsmgr.errors import Conflict, NotFound
from opsmgr.maintenance.unique_index import FINAL_STATES, BuildState, UniqueIndexBuild, new_build
from opsmgr.store.engine import Store, new_id

BUILDS = "unique_index_builds"


class UniqueIndexBuilds:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(
        self,
        group_id: str,
        index_config: Mapping[str, Any],
        members: Sequence[str],
        *,
        lock_primary: bool = False,
    ) -> UniqueIndexBuild:
        """Start a build AWAITING_CONFIRMATION; a replica set has one build under way at a time."""
        build = new_build(new_id(), index_config, members, lock_primary=lock_primary)
        with self.store.tx() as t:
            for doc in t.find(BUILDS, groupId=group_id):
                other = UniqueIndexBuild.from_json(doc["build"])
                if other.rs_id == build.rs_id and other.state not in FINAL_STATES:
                    raise Conflict(
                        f"unique index build {other.build_id} on {other.ns} is {other.state.value} in "
                        f"{other.rs_id}: one build per replica set at a time",
                        error_code="UNIQUE_INDEX_BUILD_IN_PROGRESS",
                    )
            t.insert(BUILDS, {"_id": build.build_id, "groupId": group_id, "build": build.to_json()})
            t.notify(WORK_CHANGED, group_id)
        return build

    def get(self, group_id: str, build_id: str) -> UniqueIndexBuild:
        doc = self.store.get(BUILDS, build_id)
        if doc is None or doc.get("groupId") != group_id:
            raise NotFound(f"no unique index build {build_id} in project {group_id}")
        return UniqueIndexBuild.from_json(doc["build"])

    def of_group(self, group_id: str, *, active_only: bool = False) -> list[UniqueIndexBuild]:
        builds = [UniqueIndexBuild.from_json(d["build"]) for d in self.store.find(BUILDS, groupId=group_id)]
        return [b for b in builds if not active_only or b.state not in FINAL_STATES]

    def apply(
        self, group_id: str, build_id: str, event: Callable[[UniqueIndexBuild], UniqueIndexBuild]
    ) -> UniqueIndexBuild:
        """Apply one transition (``lambda b: confirm(b, user, ts)``...) atomically; its errors propagate
        and leave the build as it was."""
        with self.store.tx() as t:
            doc = t.get(BUILDS, build_id)
            if doc is None or doc.get("groupId") != group_id:
                raise NotFound(f"no unique index build {build_id} in project {group_id}")
            build = event(UniqueIndexBuild.from_json(doc["build"]))
            t.put(BUILDS, {**doc, "build": build.to_json()})
        return build

    def done(self, group_id: str) -> list[UniqueIndexBuild]:
        """Builds that are DONE, whose ``index_config()`` the automation config should list."""
        return [b for b in self.of_group(group_id) if b.state is BuildState.DONE]
