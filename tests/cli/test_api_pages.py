"""The command line reads a list whole (``PublicApi.get_all``): it follows the ``next`` links of Ops Manager's
envelope to the last page, keeps the first page's other fields (a snapshot list's ``pitrWindow``), and never
sends the key to a host a link names that is not the server's, nor follows links without end.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from opsmgr.cli.api import MAX_PAGES, PublicApi
from opsmgr.errors import OpsmgrError

SERVER = "http://127.0.0.1:9"
LIST = "/api/public/v1.0/groups/g/clusters/c/snapshots"


def serving(pages: int, per: int = 2, next_host: str = SERVER) -> tuple[PublicApi, list[str]]:
    """A client whose server answers ``pages`` pages of ``per`` items, each linking the next."""
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        query = parse_qs(urlsplit(str(request.url)).query)
        page = int(query.get("pageNum", ["1"])[0])
        links = [{"href": f"{SERVER}{LIST}?pageNum={page}&itemsPerPage={per}", "rel": "self"}]
        if page < pages:
            links.append({"href": f"{next_host}{LIST}?pageNum={page + 1}&itemsPerPage={per}", "rel": "next"})
        body = {
            "results": [{"id": f"{page}.{i}"} for i in range(per)],
            "totalCount": pages * per,
            "links": links,
            "pitrWindow": [{"page": page}],
        }
        return httpx.Response(200, content=json.dumps(body), headers={"Content-Type": "application/json"})

    api = PublicApi(SERVER, "public", "private")
    api.client = httpx.Client(base_url=f"{SERVER}/api/public/v1.0", transport=httpx.MockTransport(answer))
    return api, asked


def test_every_page_is_read_through_the_next_links() -> None:
    api, asked = serving(pages=3)
    with api:
        listed = api.get_all("/groups/g/clusters/c/snapshots")
    assert [r["id"] for r in listed["results"]] == ["1.0", "1.1", "2.0", "2.1", "3.0", "3.1"]
    assert listed["pitrWindow"] == [{"page": 1}], "the first page's other fields"
    assert len(asked) == 3 and "itemsPerPage=500" in asked[0]


def test_a_single_page_is_one_request() -> None:
    api, asked = serving(pages=1)
    with api:
        assert len(api.get_all("/groups/g/clusters/c/snapshots")["results"]) == 2
    assert len(asked) == 1


def test_a_next_link_to_another_host_is_not_followed() -> None:
    api, asked = serving(pages=2, next_host="http://elsewhere.example")
    with api, pytest.raises(OpsmgrError, match="not one to follow"):
        api.get_all("/groups/g/clusters/c/snapshots")
    assert len(asked) == 1 and all(u.startswith(SERVER) for u in asked)


def test_links_without_end_stop_at_the_bound() -> None:
    api, asked = serving(pages=MAX_PAGES + 5, per=1)
    with api, pytest.raises(OpsmgrError, match="not one to follow"):
        api.get_all("/groups/g/clusters/c/snapshots")
    assert len(asked) == MAX_PAGES
