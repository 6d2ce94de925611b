"""The public API's hosts in Ops Manager's shape: ``GET /groups/{id}/hosts`` (``?clusterId=`` keeps one
cluster's; a sharded cluster's are its mongos and its shards' and config servers' members),
``GET /groups/{id}/hosts/{hostId}`` and ``GET /groups/{id}/hosts/byName/{hostname}:{port}``.
Reads need GROUP_READ_ONLY.

The documents are ``automation.hosts``'s, with a rolling change's temporary arbiter (in no automation config)
from the maintenance service while it exists; here they get the cluster ids of ``GET /groups/{id}/clusters``
(the same function makes both), their instants as ISO-8601 strings and their ``links``.

May import ``opsmgr.automation.clusters``, ``opsmgr.errors``, ``opsmgr.jsontypes``, ``opsmgr.timestamps``,
``opsmgr.server.auth``, ``opsmgr.server.backup_api``, ``opsmgr.server.deps``, ``opsmgr.server.paging`` and
``opsmgr.server.public_api``.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request

from opsmgr.automation.clusters import members_of_cluster
from opsmgr.errors import InvalidInput, NotFound
from opsmgr.jsontypes import JsonObject
from opsmgr.server.auth import ProjectReader
from opsmgr.server.backup_api import ProjectClusters, project_cluster_views
from opsmgr.server.deps import ServicesDep
from opsmgr.server.paging import Page, PerPage, paginated
from opsmgr.server.public_api import PREFIX
from opsmgr.timestamps import iso_utc

router = APIRouter(prefix=PREFIX, tags=["public"])

_INSTANTS = ("lastPing", "created")  # epoch milliseconds in automation's documents, ISO strings on the wire


def _hosts(request: Request, services: ServicesDep, found: ProjectClusters) -> list[JsonObject]:
    # A rolling change's temporary arbiter is in no automation config.
    hosts = found.hosts + services.maintenance.arbiter_hosts(found.group_id, found.replica_set_ids)
    return [_wire(request, h) for h in sorted(hosts, key=lambda h: (h["hostname"] or "", h["port"] or 0))]


def _wire(request: Request, host: JsonObject) -> JsonObject:
    out = dict(host)
    for key in _INSTANTS:
        if isinstance(out.get(key), int):
            out[key] = iso_utc(out[key])
    base = f"{str(request.base_url).rstrip('/')}{PREFIX}/groups/{host['groupId']}"
    out["links"] = [{"href": f"{base}/hosts/{host['id']}", "rel": "self"}]
    return out


@router.get("/groups/{group_id}/hosts")
def list_hosts(
    request: Request,
    caller: ProjectReader,
    services: ServicesDep,
    page: int = Page,
    per: int = PerPage,
    cluster_id: str | None = Query(None, alias="clusterId", max_length=64),
) -> JsonObject:
    found = project_cluster_views(services, caller.group_id)
    hosts = _hosts(request, services, found)
    if cluster_id is not None:
        # A sharded cluster's hosts are its mongos and its shards' and config servers' members.
        ids = members_of_cluster(found.views, cluster_id)
        hosts = [h for h in hosts if h.get("clusterId") in ids]
    return paginated(request, hosts, page, per)


@router.get("/groups/{group_id}/hosts/byName/{host_port}")
def get_host_by_name(
    request: Request,
    caller: ProjectReader,
    services: ServicesDep,
    host_port: str = Path(max_length=300),
) -> JsonObject:
    hostname, _, port = host_port.rpartition(":")
    if not hostname or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(
            f"{host_port[:64]!r} is not a host name and port (HOSTNAME:PORT)", field="hostname:port"
        )
    for host in _hosts(request, services, project_cluster_views(services, caller.group_id)):
        if str(host["hostname"]).lower() == hostname.lower() and host["port"] == int(port):
            return host
    raise NotFound(
        f"No host with hostname and port {host_port[:300]} exists in group {caller.group_id}.",
        error_code="HOSTNAME_AND_PORT_NOT_FOUND",
    )


@router.get("/groups/{group_id}/hosts/{host_id}")
def get_host(request: Request, caller: ProjectReader, services: ServicesDep, host_id: str) -> JsonObject:
    for host in _hosts(request, services, project_cluster_views(services, caller.group_id)):
        if host["id"] == host_id:
            return host
    raise NotFound(
        f"No host with ID {host_id[:64]} exists in group {caller.group_id}.", error_code="HOST_NOT_FOUND"
    )
