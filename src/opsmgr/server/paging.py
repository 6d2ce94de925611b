"""Ops Manager's list envelope: ``results``, ``totalCount`` and ``links``, with the ``pageNum``,
``itemsPerPage`` and ``includeCount`` query parameters every list takes.

As Ops Manager builds them (the Go client's fixtures, ``opsmngr/*_test.go``, are its answers): the ``self``
link is the request's URL with ``pageNum`` and ``itemsPerPage`` always written (typed clients read the
current page from it: ``Response.CurrentPage`` parses ``pageNum`` out of ``self``), ``previous`` is there
from the second page on and ``next`` while items remain after this page, each the same URL with its
``pageNum``; every other query parameter (``pretty``, filters) is kept. ``includeCount=false`` leaves
``totalCount`` out of the answer ("whether Ops Manager returns the totalCount parameter in the response
body", the Go client's ``ListOptions.IncludeCount``).

May import ``opsmgr.errors`` and ``opsmgr.jsontypes``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Query, Request

from opsmgr.errors import InvalidInput
from opsmgr.jsontypes import JsonObject

PAGE_NUM = "pageNum"
ITEMS_PER_PAGE = "itemsPerPage"
INCLUDE_COUNT = "includeCount"

Page = Query(1, ge=1, le=100_000, alias=PAGE_NUM)
PerPage = Query(100, ge=1, le=500, alias=ITEMS_PER_PAGE)


def page_href(request: Request, page_num: int, items_per_page: int) -> str:
    """The request's URL at page ``page_num``: its other query parameters kept in their order, then
    ``pageNum`` and ``itemsPerPage``."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in (PAGE_NUM, ITEMS_PER_PAGE)]
    params = [*kept, (PAGE_NUM, str(page_num)), (ITEMS_PER_PAGE, str(items_per_page))]
    return str(request.url.replace(query=urlencode(params)))


def page_links(request: Request, page_num: int, items_per_page: int, total: int) -> list[dict[str, str]]:
    """``self``, and ``previous``/``next`` where there is such a page, in Ops Manager's order."""
    links = []
    if page_num > 1:
        links.append({"href": page_href(request, page_num - 1, items_per_page), "rel": "previous"})
    links.append({"href": page_href(request, page_num, items_per_page), "rel": "self"})
    if page_num * items_per_page < total:
        links.append({"href": page_href(request, page_num + 1, items_per_page), "rel": "next"})
    return links


def include_count(request: Request) -> bool:
    """The ``includeCount`` query parameter (true when absent); anything but a boolean is a 400."""
    raw = request.query_params.get(INCLUDE_COUNT)
    if raw is None or raw.lower() == "true":
        return True
    if raw.lower() == "false":
        return False
    raise InvalidInput(f"includeCount must be true or false, not {raw[:20]!r}", field=INCLUDE_COUNT)


def paginated(request: Request, items: list[JsonObject], page_num: int, items_per_page: int) -> JsonObject:
    """Page ``page_num`` of ``items`` in Ops Manager's envelope."""
    start = (page_num - 1) * items_per_page
    page: JsonObject = {
        "results": items[start : start + items_per_page],
        "links": page_links(request, page_num, items_per_page, len(items)),
    }
    if include_count(request):
        page["totalCount"] = len(items)
    return page


def unpaged(items: list[JsonObject], request: Request | None = None) -> JsonObject:
    """A whole list in the shape of a page, for what is not a list resource but answers as one (the jobs a
    POST created); ``links``: the self link when ``request`` is given."""
    links = [{"href": str(request.url), "rel": "self"}] if request else []
    return {"results": items, "totalCount": len(items), "links": links}
