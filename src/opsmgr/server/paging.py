"""Ops Manager's list envelope: ``results``, ``totalCount`` and ``links``, with the ``pageNum`` and
``itemsPerPage`` query parameters every list takes.

May import ``opsmgr.jsontypes``.
"""

from __future__ import annotations

from fastapi import Query, Request

from opsmgr.jsontypes import JsonObject

Page = Query(1, ge=1, le=100_000, alias="pageNum")
PerPage = Query(100, ge=1, le=500, alias="itemsPerPage")


def _links(request: Request) -> list[dict[str, str]]:
    return [{"href": str(request.url), "rel": "self"}]


def paginated(request: Request, items: list[JsonObject], page_num: int, items_per_page: int) -> JsonObject:
    start = (page_num - 1) * items_per_page
    return {
        "results": items[start : start + items_per_page],
        "totalCount": len(items),
        "links": _links(request),
    }


def unpaged(items: list[JsonObject], request: Request | None = None) -> JsonObject:
    """A whole list in the shape of a page (``links``: the self link when ``request`` is given)."""
    return {"results": items, "totalCount": len(items), "links": _links(request) if request else []}
