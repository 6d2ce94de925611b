"""``GET /groups/{id}/hosts/{hostId}/measurements`` in Ops Manager's shape: a host's measurements over a
``period`` (an ISO-8601 duration ending now) or from ``start`` to ``end`` (ISO-8601 instants), at a
``granularity`` of ``PT1M`` (kept 48 hours) or ``PT1H`` (kept 60 days), for the measurements named by
repeated ``m=`` (all that are kept when none is named). Reads need GROUP_READ_ONLY.

Refusals are Ops Manager's: ``INVALID_GRANULARITY``, ``INVALID_PERIOD`` (unparsable, not positive, both or
neither of a period and a start/end, or more than :data:`MAX_POINTS` points at the granularity),
``INVALID_METRIC_NAME``, and ``HOST_NOT_FOUND`` for a host that is not the project's. The points are
``automation.measurements``'s buckets: one per granularity step, ``value`` null where no sample arrived.
The answer's shape and the host lookup are shared with the partitions' and databases' measurements
(``server.measurement_resources_api``).

May import ``opsmgr.errors``, ``opsmgr.jsontypes``, ``opsmgr.timestamps``, ``opsmgr.automation.measurements``,
``opsmgr.server.auth``, ``opsmgr.server.deps`` and ``opsmgr.server.public_api``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from fastapi import APIRouter, Path, Query, Request

from opsmgr.automation.measurements import CATALOG, HOUR_S, MINUTE_S, Catalog, Point, bucket_start, series
from opsmgr.errors import InvalidInput, NotFound
from opsmgr.jsontypes import JsonObject
from opsmgr.server.auth import ProjectReader
from opsmgr.server.deps import ServicesDep
from opsmgr.server.public_api import PREFIX
from opsmgr.timestamps import epoch_ms, iso_utc

router = APIRouter(prefix=PREFIX, tags=["public"])

GRANULARITIES = {"PT1M": MINUTE_S, "PT1H": HOUR_S}
MAX_POINTS = 2880  # 48 hours of minutes, 120 days of hours: more than either granularity keeps
_DURATION = re.compile(
    r"^P(?:(\d{1,6})W)?(?:(\d{1,6})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,8})M)?(?:(\d{1,9})S)?)?$"
)
_UNITS_S = (7 * 86400, 86400, 3600, 60, 1)


@dataclass(frozen=True)
class Window:
    granularity_s: int
    start_s: int
    end_s: int


def duration_s(text: str) -> int:
    """Seconds of an ISO-8601 duration (``PT1H``, ``P1D``, ``P2DT12H``, ``P1W``); 0 when it is not one."""
    match = _DURATION.match(text)
    if match is None or text.endswith("T"):
        return 0
    return sum(int(part or 0) * unit for part, unit in zip(match.groups(), _UNITS_S, strict=True))


def _instant_s(text: str, field: str) -> int:
    try:
        return epoch_ms(text) // 1000
    except ValueError:
        raise InvalidInput(
            f"{field} {text[:64]!r} is not an ISO-8601 instant", error_code="INVALID_PERIOD", field=field
        ) from None


def window(granularity: str, period: str | None, start: str | None, end: str | None, now_s: float) -> Window:
    """The time span the request asks for, refused as Ops Manager refuses it."""
    step = GRANULARITIES.get(granularity)
    if step is None:
        raise InvalidInput(
            f"Invalid granularity {granularity[:32]!r}: use one of {', '.join(GRANULARITIES)}.",
            error_code="INVALID_GRANULARITY",
        )
    if (period is None) == (start is None and end is None) or (start is None) != (end is None):
        raise InvalidInput("Give either a period or both a start and an end.", error_code="INVALID_PERIOD")
    if period is not None:
        seconds = duration_s(period)
        if seconds <= 0:
            raise InvalidInput(f"Invalid period {period[:32]!r}.", error_code="INVALID_PERIOD")
        end_s = int(now_s)
        start_s = end_s - seconds
    else:
        assert start is not None and end is not None
        start_s, end_s = _instant_s(start, "start"), _instant_s(end, "end")
    if end_s <= start_s or (end_s - start_s) // step >= MAX_POINTS:
        raise InvalidInput(
            f"The period must be positive and hold at most {MAX_POINTS} points at granularity {granularity}.",
            error_code="INVALID_PERIOD",
        )
    return Window(step, start_s, end_s)


def metric_names(requested: list[str] | None, catalog: Catalog = CATALOG) -> list[str]:
    for name in requested or []:
        if name not in catalog:
            raise InvalidInput(f"Invalid metric name {name[:64]!r}.", error_code="INVALID_METRIC_NAME")
    return list(dict.fromkeys(requested)) if requested else list(catalog)


def project_host(hosts: list[JsonObject], group_id: str, host_id: str) -> JsonObject:
    """The host ``host_id`` of the project's ``hosts``; HOST_NOT_FOUND when it is not one of them."""
    host = next((h for h in hosts if h["id"] == host_id), None)
    if host is None:
        raise NotFound(f"No host with ID {host_id} exists in group {group_id}.", error_code="HOST_NOT_FOUND")
    return host


def host_href(request: Request, group_id: str, host_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}{PREFIX}/groups/{group_id}/hosts/{host_id}"


def measurements_body(
    request: Request,
    host: JsonObject,
    granularity: str,
    span: Window,
    points: dict[str, list[Point]],
    catalog: Catalog,
    suffix: str = "/measurements",
) -> JsonObject:
    """An answer in Ops Manager's measurements shape, of the resource at ``suffix`` under the host (the
    caller adds a sub-resource's name)."""
    group_id, host_id = str(host["groupId"]), str(host["id"])
    base = host_href(request, group_id, host_id)
    return {
        "groupId": group_id,
        "hostId": host_id,
        "processId": f"{host['hostname']}:{host['port']}",
        "granularity": granularity,
        "start": iso_utc(bucket_start(span.start_s, span.granularity_s) * 1000),
        "end": iso_utc(span.end_s * 1000),
        "measurements": [
            {
                "name": name,
                "units": catalog[name].units,
                "dataPoints": [{"timestamp": iso_utc(t * 1000), "value": v} for t, v in values],
            }
            for name, values in points.items()
        ],
        "links": [
            {"href": f"{base}{suffix}", "rel": "self"},
            {"href": base, "rel": "http://mms.mongodb.com/host"},
        ],
    }


@router.get("/groups/{group_id}/hosts/{host_id}/measurements")
def host_measurements(
    request: Request,
    caller: ProjectReader,
    services: ServicesDep,
    host_id: str = Path(max_length=64),
    granularity: str = Query(max_length=16),
    period: str | None = Query(None, max_length=32),
    start: str | None = Query(None, max_length=40),
    end: str | None = Query(None, max_length=40),
    m: list[str] | None = Query(None, max_length=64),
) -> JsonObject:
    span = window(granularity, period, start, end, time.time())
    names = metric_names(m)
    host = project_host(services.automation.hosts(caller.group_id), caller.group_id, host_id)
    store = services.automation.measurements
    buckets = store.buckets(caller.group_id, host_id, span.granularity_s, span.start_s, span.end_s)
    points = series(buckets, names, span.granularity_s, span.start_s, span.end_s)
    return measurements_body(request, host, granularity, span, points, CATALOG)
