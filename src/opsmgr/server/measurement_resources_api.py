"""A host's disk partitions and databases, and their measurements, in Ops Manager's shapes:

- ``GET /groups/{id}/hosts/{hostId}/disks`` and ``.../databases``: the partitions (``partitionName``) and
  databases (``databaseName``) the host's agent has reported in its current minute, that minute's hour and
  the hour before, each with its ``self`` link, in the list envelope (``results``, ``totalCount``, ``links``);
- ``.../disks/{partitionName}`` and ``.../databases/{databaseName}``: one of them;
- ``.../disks/{partitionName}/measurements`` and ``.../databases/{databaseName}/measurements``: its
  measurements (``automation.measurements.DISK_CATALOG``, ``DATABASE_CATALOG``) with the host
  measurements' parameters and refusals (``granularity``, ``period`` or ``start``/``end``, ``m``), and the
  partition's or database's name in the answer.

Reads need GROUP_READ_ONLY. A host that is not the project's is ``HOST_NOT_FOUND``; a partition or database
the host has not reported is a 404 ``PARTITION_NOT_FOUND`` or ``DATABASE_NOT_FOUND``. A name that is not one
(path tricks, over-long) is a 400 before any lookup.

May import ``opsmgr.errors``, ``opsmgr.jsontypes``, ``opsmgr.automation.measurements``,
``opsmgr.server.auth``, ``opsmgr.server.deps``, ``opsmgr.server.measurements_api``,
``opsmgr.server.paging`` and ``opsmgr.server.public_api``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import APIRouter, Path, Query, Request

from opsmgr.automation.measurements import (
    DATABASE_CATALOG,
    DATABASES,
    DISK_CATALOG,
    DISKS,
    Catalog,
    series,
    sub_buckets,
)
from opsmgr.errors import NotFound
from opsmgr.jsontypes import JsonObject
from opsmgr.server.auth import ProjectReader
from opsmgr.server.deps import ServicesDep
from opsmgr.server.measurements_api import host_href, measurements_body, metric_names, project_host, window
from opsmgr.server.paging import Page, PerPage, paginated
from opsmgr.server.public_api import PREFIX

router = APIRouter(prefix=PREFIX, tags=["public"])

HOST = "/groups/{group_id}/hosts/{host_id}"


@dataclass(frozen=True)
class Kind:
    """One kind of a host's sub-resource: its path segment, field, bucket field, catalogue, error code."""

    segment: str
    field: str
    bucket: str
    catalog: Catalog
    missing: str


PARTITIONS = Kind("disks", "partitionName", DISKS, DISK_CATALOG, "PARTITION_NOT_FOUND")
DBS = Kind("databases", "databaseName", DATABASES, DATABASE_CATALOG, "DATABASE_NOT_FOUND")

# The agent's report admits no other names (automation.status): anything else cannot be one.
PartitionName = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
DatabaseName = Path(min_length=1, max_length=63, pattern=r'^[^/\\. "$]{1,63}$')
HostId = Path(max_length=64)


def _host_names(
    services: ServicesDep, group_id: str, host_id: str, kind: Kind
) -> tuple[JsonObject, list[str]]:
    """The project's host and the partitions or databases it has reported."""
    host = project_host(services.automation.hosts(group_id), group_id, host_id)
    return host, services.automation.measurements.names(group_id, host_id, kind.bucket)


def _item(request: Request, group_id: str, host_id: str, kind: Kind, name: str) -> JsonObject:
    href = f"{host_href(request, group_id, host_id)}/{kind.segment}/{name}"
    return {kind.field: name, "links": [{"href": href, "rel": "self"}]}


def _one(services: ServicesDep, group_id: str, host_id: str, kind: Kind, name: str) -> JsonObject:
    """The host, once ``name`` is known to be one of its partitions or databases."""
    host, names = _host_names(services, group_id, host_id, kind)
    if name not in names:
        raise NotFound(
            f"No {kind.field[:-4]} named {name!r} on host {host_id} in group {group_id}.",
            error_code=kind.missing,
        )
    return host


def _listed(
    request: Request, services: ServicesDep, group_id: str, host_id: str, kind: Kind, page: int, per: int
) -> JsonObject:
    _, names = _host_names(services, group_id, host_id, kind)
    items = [_item(request, group_id, host_id, kind, n) for n in names]
    return paginated(request, items, page, per)


def _measured(
    request: Request,
    services: ServicesDep,
    group_id: str,
    host_id: str,
    kind: Kind,
    name: str,
    query: tuple[str, str | None, str | None, str | None, list[str] | None],
) -> JsonObject:
    granularity, period, start, end, m = query
    span = window(granularity, period, start, end, time.time())
    names = metric_names(m, kind.catalog)
    host = _one(services, group_id, host_id, kind, name)
    store = services.automation.measurements
    buckets = store.buckets(group_id, host_id, span.granularity_s, span.start_s, span.end_s)
    mine = sub_buckets(buckets, kind.bucket, name)
    points = series(mine, names, span.granularity_s, span.start_s, span.end_s, kind.catalog)
    suffix = f"/{kind.segment}/{name}/measurements"
    return {
        **measurements_body(request, host, granularity, span, points, kind.catalog, suffix),
        kind.field: name,
    }


@router.get(f"{HOST}/disks")
def list_disks(
    request: Request,
    caller: ProjectReader,
    services: ServicesDep,
    host_id: str = HostId,
    page_num: int = Page,
    items_per_page: int = PerPage,
) -> JsonObject:
    return _listed(request, services, caller.group_id, host_id, PARTITIONS, page_num, items_per_page)


@router.get(f"{HOST}/disks/{{partition_name}}")
def get_disk(
    request: Request,
    caller: ProjectReader,
    services: ServicesDep,
    host_id: str = HostId,
    partition_name: str = PartitionName,
) -> JsonObject:
    _one(services, caller.group_id, host_id, PARTITIONS, partition_name)
    return _item(request, caller.group_id, host_id, PARTITIONS, partition_name)


@router.get(f"{HOST}/disks/{{partition_name}}/measurements")
def disk_measurements(
    request: Request,
    caller: ProjectReader,
    services: ServicesDep,
    host_id: str = HostId,
    partition_name: str = PartitionName,
    granularity: str = Query(max_length=16),
    period: str | None = Query(None, max_length=32),
    start: str | None = Query(None, max_length=40),
    end: str | None = Query(None, max_length=40),
    m: list[str] | None = Query(None, max_length=64),
) -> JsonObject:
    query = (granularity, period, start, end, m)
    return _measured(request, services, caller.group_id, host_id, PARTITIONS, partition_name, query)


@router.get(f"{HOST}/databases")
def list_databases(
    request: Request,
    caller: ProjectReader,
    services: ServicesDep,
    host_id: str = HostId,
    page_num: int = Page,
    items_per_page: int = PerPage,
) -> JsonObject:
    return _listed(request, services, caller.group_id, host_id, DBS, page_num, items_per_page)


@router.get(f"{HOST}/databases/{{database_name}}")
def get_database(
    request: Request,
    caller: ProjectReader,
    services: ServicesDep,
    host_id: str = HostId,
    database_name: str = DatabaseName,
) -> JsonObject:
    _one(services, caller.group_id, host_id, DBS, database_name)
    return _item(request, caller.group_id, host_id, DBS, database_name)


@router.get(f"{HOST}/databases/{{database_name}}/measurements")
def database_measurements(
    request: Request,
    caller: ProjectReader,
    services: ServicesDep,
    host_id: str = HostId,
    database_name: str = DatabaseName,
    granularity: str = Query(max_length=16),
    period: str | None = Query(None, max_length=32),
    start: str | None = Query(None, max_length=40),
    end: str | None = Query(None, max_length=40),
    m: list[str] | None = Query(None, max_length=64),
) -> JsonObject:
    query = (granularity, period, start, end, m)
    return _measured(request, services, caller.group_id, host_id, DBS, database_name, query)
