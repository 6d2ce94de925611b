"""Ops Manager's list envelope (``opsmgr.server.paging``): the ``self``/``previous``/``next`` links as Ops
Manager builds them (its Go client reads the current page out of ``self``), ``includeCount``, and a real
server's list walked to its end through ``next`` links.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from starlette.requests import Request

from opsmgr.errors import InvalidInput
from opsmgr.server.paging import page_href, paginated
from tests.procs import ServerProcess

ITEMS = [{"n": i} for i in range(7)]


def request(query: str = "", path: str = "/api/public/v1.0/groups") -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "server": ("127.0.0.1", 8080),
            "path": path,
            "query_string": query.encode(),
            "headers": [(b"host", b"127.0.0.1:8080")],
        }
    )


def rels(page: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {link["rel"]: dict(parse_qsl(urlsplit(link["href"]).query)) for link in page["links"]}


def test_the_first_page_links_itself_and_the_next_one() -> None:
    page = paginated(request("pageNum=1&itemsPerPage=3"), ITEMS, 1, 3)
    assert page["results"] == ITEMS[:3] and page["totalCount"] == 7
    assert [link["rel"] for link in page["links"]] == ["self", "next"]
    assert rels(page) == {
        "self": {"pageNum": "1", "itemsPerPage": "3"},
        "next": {"pageNum": "2", "itemsPerPage": "3"},
    }


def test_a_middle_page_has_previous_self_and_next() -> None:
    page = paginated(request("itemsPerPage=3&pageNum=2"), ITEMS, 2, 3)
    assert page["results"] == ITEMS[3:6]
    assert [link["rel"] for link in page["links"]] == ["previous", "self", "next"]
    assert {rel: q["pageNum"] for rel, q in rels(page).items()} == {"previous": "1", "self": "2", "next": "3"}


def test_the_last_page_has_no_next() -> None:
    page = paginated(request("pageNum=3&itemsPerPage=3"), ITEMS, 3, 3)
    assert page["results"] == ITEMS[6:] and [link["rel"] for link in page["links"]] == ["previous", "self"]


def test_the_self_link_names_the_page_even_when_the_request_did_not() -> None:
    """Typed clients parse ``pageNum`` out of ``self`` (the Go client's ``Response.CurrentPage``)."""
    page = paginated(request(), ITEMS, 1, 100)
    (self_link,) = page["links"]
    assert self_link == {
        "href": "http://127.0.0.1:8080/api/public/v1.0/groups?pageNum=1&itemsPerPage=100",
        "rel": "self",
    }


def test_other_query_parameters_are_kept_in_every_link() -> None:
    page = paginated(request("pretty=true&name=a%20b&pageNum=2&itemsPerPage=2"), ITEMS, 2, 2)
    for query in rels(page).values():
        assert query["pretty"] == "true" and query["name"] == "a b"
    href = page_href(request("pretty=true&pageNum=9"), 4, 2)
    assert href.endswith("/groups?pretty=true&pageNum=4&itemsPerPage=2")


def test_a_page_past_the_end_is_empty_and_points_back() -> None:
    page = paginated(request("pageNum=5&itemsPerPage=3"), ITEMS, 5, 3)
    assert page["results"] == [] and page["totalCount"] == 7
    assert [link["rel"] for link in page["links"]] == ["previous", "self"]


@pytest.mark.parametrize("value", ["true", "True", None])
def test_include_count_defaults_to_true(value: str | None) -> None:
    query = "" if value is None else f"includeCount={value}"
    assert paginated(request(query), ITEMS, 1, 3)["totalCount"] == 7


def test_include_count_false_leaves_the_count_out_but_not_the_links() -> None:
    page = paginated(request("includeCount=false&itemsPerPage=3"), ITEMS, 1, 3)
    assert "totalCount" not in page and len(page["results"]) == 3
    assert rels(page)["next"] == {"includeCount": "false", "pageNum": "2", "itemsPerPage": "3"}


def test_include_count_must_be_a_boolean() -> None:
    with pytest.raises(InvalidInput):
        paginated(request("includeCount=sometimes"), ITEMS, 1, 3)


def test_a_real_list_walked_through_its_next_links(server: ServerProcess, owner: dict[str, Any]) -> None:
    with server.client(owner) as api:
        org = api.get("/orgs").json()["results"][0]["id"]
        made = {api.post("/groups", json={"name": f"pg-{i}", "orgId": org}).json()["id"] for i in range(5)}
        first = api.get("/groups", params={"itemsPerPage": 2, "pretty": "true"})
        assert first.status_code == 200, first.text
        seen, pages, page = [], 0, first.json()
        total = page["totalCount"]
        while True:
            pages += 1
            seen += [g["id"] for g in page["results"]]
            following = [link["href"] for link in page["links"] if link["rel"] == "next"]
            if not following:
                break
            # The link is absolute; it must lead back to this server, with the other parameters kept.
            assert following[0].startswith(server.url) and "pretty=true" in following[0]
            answer = api.get(following[0])
            assert answer.status_code == 200, answer.text
            page = answer.json()
        assert made <= set(seen) and len(seen) == len(set(seen)) == total
        assert pages == -(-total // 2)
        uncounted = api.get("/groups", params={"includeCount": "false"}).json()
        assert "totalCount" not in uncounted and len(uncounted["results"]) == total
        refused = api.get("/groups", params={"includeCount": "maybe"})
        assert refused.status_code == 400 and refused.json()["errorCode"], refused.text
