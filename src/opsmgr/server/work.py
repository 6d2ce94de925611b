"""What each agent has to do, delivered with the answer to its status report, so that an idle agent asks the
server nothing but its poll and its report.

Per project, :func:`project_work` gathers, once per change (cached by the server until a write announces a
change of the project's config or work, the cache's time to live bounding a lost announcement): the backed-up
replica sets and the processes that serve them, the automated restores still loading, the replica sets under
a rolling change, the unique index builds under way, and (on a secondary) the backing databases to ship and
the restores of them the backing agent carries out. An
agent's share of it (:meth:`ProjectWork.for_host`) comes with a version; the agent echoes the version it
holds in its report (``workVersion``) and the answer carries the work only when it changed.

Owns the composition only: what each list means belongs to backup (``services.clusters``,
``services.restores``), maintenance and the index builds. May import ``opsmgr.jsontypes``,
``opsmgr.automation.records`` and ``opsmgr.server.services`` (types only).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsmgr.automation.records import Process, processes, replica_sets
from opsmgr.jsontypes import JsonObject

if TYPE_CHECKING:
    from opsmgr.server.services import Services

# A replica set's or build's hosts, by process name.
_Members = tuple[str, ...]


@dataclass(frozen=True)
class ProjectWork:
    """A project's work, before it is split by host (process names are mapped to their hosts)."""

    host_of: dict[str, str] = field(default_factory=dict)  # process name -> host (lower-cased)
    sources: tuple[JsonObject, ...] = ()  # backup sources, with ``members``: the set's process names
    restores: tuple[JsonObject, ...] = ()  # restore jobs, with ``processes``: the pending ones
    maintenance: tuple[tuple[str, frozenset[str]], ...] = ()  # replica set, the hosts taking part
    index_builds: tuple[tuple[str, _Members], ...] = ()  # build id, its members
    backing: tuple[JsonObject, ...] = ()  # backing-database sources, with ``hostname`` (None: any)
    backing_restores: tuple[JsonObject, ...] = ()  # restores of them an agent carries out, with ``hostname``

    def _here(self, names: _Members, host: str) -> list[str]:
        return [n for n in names if self.host_of.get(n) == host]

    def for_host(self, hostname: str) -> JsonObject:
        """This host's share, with its ``version``."""
        host = hostname.lower()
        sources = []
        for s in self.sources:
            here = self._here(tuple(s["members"]), host)
            if here:
                sources.append({k: v for k, v in s.items() if k != "members"} | {"processes": here})
        restores = []
        for job in self.restores:
            here = [p for p in job["processes"] if self.host_of.get(p["name"]) == host]
            if here:
                restores.append({"jobId": job["jobId"], "processes": here})
        work: JsonObject = {
            "backup": {"sources": sources, "restores": restores},
            "maintenance": sorted(rs for rs, hosts in self.maintenance if host in hosts),
            "indexBuilds": sorted(b for b, names in self.index_builds if self._here(names, host)),
            "backing": _on(self.backing, hostname),
            "backingRestores": _on(self.backing_restores, hostname),
        }
        work["version"] = hashlib.sha256(json.dumps(work, sort_keys=True).encode()).hexdigest()[:32]
        return work


def _on(items: tuple[JsonObject, ...], hostname: str) -> list[JsonObject]:
    """The items for the agent on ``hostname`` (an item's ``hostname`` None: the agent of any host)."""
    return [
        {k: v for k, v in b.items() if k != "hostname"}
        for b in items
        if b.get("hostname") in (None, hostname)
    ]


def project_work(services: Services, group_id: str) -> ProjectWork:
    """Gathered from the services (a few reads of the project's documents)."""
    config = services.automation.config(group_id)
    procs = {p.name: p for p in processes(config)}
    host_of = {name: p.host for name, p in procs.items()}
    members = {rs.id: rs.hosts for rs in replica_sets(config)}
    maintenance = tuple(sorted(services.maintenance.active_hosts(group_id).items()))
    return ProjectWork(
        host_of=host_of,
        sources=tuple(_backed_up(services, group_id, members)),
        restores=tuple(_loading(services, group_id, procs)),
        maintenance=maintenance,
        index_builds=tuple(
            (str(b["id"]), tuple(b.get("members", []))) for b in services.index_builds.for_agent(group_id)
        ),
        backing=tuple(_backing(services, group_id)),
        backing_restores=tuple(_backing_restores(services, group_id)),
    )


def _backed_up(services: Services, group_id: str, members: dict[str, _Members]) -> list[JsonObject]:
    """The project's backed-up replica sets, each with its members' process names (``members``: the config's
    replica sets); the agent whose process is PRIMARY ships each."""
    return [
        {
            "sourceId": s.source_id,
            "clusterId": s.cluster_id,
            "replicaSetName": s.name,
            "members": list(members.get(s.name, ())),
        }
        for s in services.clusters.started_sources(group_id)
    ]


def _loading(services: Services, group_id: str, procs: dict[str, Process]) -> list[JsonObject]:
    """The automated restores into the project still loading, each with the processes (as the goal config
    runs them) that have not loaded yet."""
    return [
        {"jobId": job.job_id, "processes": [procs[n].to_doc() for n in job.pending if n in procs]}
        for job in services.restores.loading(group_id)
    ]


def _backing(services: Services, group_id: str) -> list[JsonObject]:
    """The backing-database sources with backup STARTED, each with the ``hostname`` that ships it (None: the
    agent of any host)."""
    return [
        {"sourceId": s.source_id, "clusterId": s.cluster_id, "name": s.name, "hostname": s.hostname}
        for s in services.clusters.started_backing_sources(group_id)
    ]


def _backing_restores(services: Services, group_id: str) -> list[JsonObject]:
    """The restores of backing databases the agent of their deployment's host carries out, not ended yet:
    what each restores (the store positions), and whether earlier metadata stores are accepted."""
    out: list[JsonObject] = []
    for job in services.backing_restores.agent_jobs(group_id):
        cluster = services.clusters.backing(group_id, job.cluster_id)
        out.append(
            {
                "jobId": job.id,
                "clusterId": job.cluster_id,
                "force": job.force,
                "stores": {name: entry.target_position for name, entry in job.stores.items()},
                "hostname": cluster.get("hostname"),
            }
        )
    return out


def with_work(
    services: Services, group_id: str, hostname: str, held: str | None, answer: JsonObject
) -> JsonObject:
    """``answer`` to an agent's status report, with the host's work when it differs from the version the
    agent ``held``."""
    work = services.caches.work.get(group_id, lambda g: project_work(services, g)).for_host(hostname)
    return answer if work["version"] == held else {**answer, "work": work}
