"""The public API's protocol details against a real server with Digest clients: ``envelope=true``,
``pretty=true``, the ``X-MongoDB-Service-Version`` header, trailing slashes, and that the agent API and the
UI are left as they are."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsmgr import __version__
from tests.agent_protocol import agent_http
from tests.procs import ServerProcess

VERSION_HEADER = re.compile(r"gitHash=[0-9A-Za-z]+; versionString=(\S+)")
# The challenge parameters the Go client's parser (mongodb-forks/digest) knows; any other fails its request.
GO_CHALLENGE_KEYS = {"realm", "domain", "nonce", "opaque", "stale", "algorithm", "qop"}


@pytest.fixture(scope="module")
def api(server: ServerProcess, owner: dict[str, Any]) -> Iterator[httpx.Client]:
    with server.client(owner) as c:
        yield c


@pytest.fixture(scope="module")
def org_id(api: httpx.Client) -> str:
    return str(api.get("/orgs").json()["results"][0]["id"])


def new_group(api: httpx.Client, name: str) -> str:
    r = api.post("/groups", json={"name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def versioned(r: httpx.Response) -> str:
    """The version string a client (the Kubernetes operator's ``GetVersionFromOpsManagerApiHeader``) reads."""
    header = r.headers.get("x-mongodb-service-version", "")
    match = VERSION_HEADER.fullmatch(header)
    assert match, header
    return match.group(1)


def test_plain_answers_are_compact_and_carry_the_service_version(api: httpx.Client) -> None:
    r = api.get("/groups")
    assert r.status_code == 200
    assert versioned(r) == __version__
    assert "status" not in r.json() and "\n" not in r.text


def test_envelope_on_get_single_and_list(api: httpx.Client) -> None:
    gid = new_group(api, "envelope-get")
    plain = api.get(f"/groups/{gid}").json()
    r = api.get(f"/groups/{gid}", params={"envelope": "true"})
    assert r.status_code == 200
    assert r.json() == {"status": 200, "content": plain}
    # A list answer is itself the envelope: Ops Manager adds ``status`` beside ``results``.
    listed = api.get("/groups", params={"envelope": "TRUE"})
    assert listed.status_code == 200
    body = listed.json()
    assert body["status"] == 200 and gid in [g["id"] for g in body["results"]] and "content" not in body
    assert versioned(listed) == __version__


def test_envelope_on_post_patch_delete(api: httpx.Client, org_id: str) -> None:
    r = api.post("/groups", params={"envelope": "true"}, json={"name": "envelope-post"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == 201 and r.json()["content"]["name"] == "envelope-post"
    gid = r.json()["content"]["id"]
    made = api.post(f"/orgs/{org_id}/apiKeys", json={"desc": "assigned", "roles": ["ORG_READ_ONLY"]})
    assert made.status_code == 201, made.text
    key_id = made.json()["id"]
    patched = api.patch(
        f"/groups/{gid}/apiKeys/{key_id}", params={"envelope": "true"}, json={"roles": ["GROUP_READ_ONLY"]}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == 200 and patched.json()["content"]["id"] == key_id
    deleted = api.delete(f"/groups/{gid}/apiKeys/{key_id}", params={"envelope": "true"})
    # 204 answers no body; inside an envelope the content is null, and the answer itself a 200.
    assert deleted.status_code == 200
    assert deleted.json() == {"status": 204, "content": None}
    assert versioned(deleted) == __version__
    plain_delete = api.delete(f"/orgs/{org_id}/apiKeys/{key_id}")
    assert plain_delete.status_code == 204 and plain_delete.content == b""
    assert versioned(plain_delete) == __version__


def test_errors_inside_an_envelope(api: httpx.Client) -> None:
    missing = api.get("/groups/0123456789abcdef01234567", params={"envelope": "true"})
    assert missing.status_code == 200
    assert missing.json()["status"] == 404 and missing.json()["content"]["error"] == 404
    invalid = api.post("/groups", params={"envelope": "true"}, json={"nom": "x"})
    assert invalid.status_code == 200
    assert invalid.json()["status"] == 400 and invalid.json()["content"]["errorCode"]
    not_allowed = api.put("/groups", params={"envelope": "true"}, json={})
    assert not_allowed.json()["status"] == 405 and not_allowed.status_code == 200
    # Refused by the pipeline before any route saw it: enveloped too.
    malformed = api.post(
        "/groups",
        params={"envelope": "true"},
        content=b'{"name": NaN}',
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 200 and malformed.json()["status"] == 400
    assert versioned(malformed) == __version__


def test_unauthenticated_envelope_keeps_the_401_and_its_challenges(server: ServerProcess) -> None:
    r = httpx.get(f"{server.url}/api/public/v1.0/groups?envelope=true&pretty=true")
    assert r.status_code == 401
    assert r.headers.get_list("www-authenticate")
    assert r.json()["status"] == 401 and r.json()["content"]["error"] == 401
    assert versioned(r) == __version__


def test_pretty_indents_the_same_json(api: httpx.Client) -> None:
    gid = new_group(api, "pretty")
    plain = api.get(f"/groups/{gid}")
    pretty = api.get(f"/groups/{gid}", params={"pretty": "true"})
    assert pretty.status_code == 200
    assert pretty.json() == plain.json()
    assert pretty.text == json.dumps(plain.json(), indent=2, ensure_ascii=False)
    both = api.get(f"/groups/{gid}", params={"pretty": "true", "envelope": "true"})
    assert both.text.startswith('{\n  "status": 200,\n  "content": {\n')
    assert both.json() == {"status": 200, "content": plain.json()}
    # Anything but "true" is false, as Ops Manager reads its boolean flags.
    assert api.get(f"/groups/{gid}", params={"pretty": "1", "envelope": "yes"}).text == plain.text


def test_trailing_slash_is_the_same_resource_with_digest(api: httpx.Client, server: ServerProcess) -> None:
    # httpx signs the URI it sends, slash included.
    listed = api.get("/groups/")
    assert listed.status_code == 200, listed.text
    assert listed.json() == api.get("/groups").json()
    created = api.post("/groups/", json={"name": "slashed"})
    assert created.status_code == 201, created.text
    gid = created.json()["id"]
    one = api.get(f"/groups/{gid}/", params={"envelope": "true"})
    assert one.json() == {"status": 200, "content": api.get(f"/groups/{gid}").json()}
    bare = httpx.get(f"{server.url}/api/public/v1.0/groups/", follow_redirects=False)
    assert bare.status_code == 401 and "location" not in bare.headers


def test_oversized_flags_and_paths_are_refused_not_crashed(api: httpx.Client) -> None:
    r = api.get("/groups", params={"envelope": "true" * 500, "pretty": "x" * 1500})
    assert r.status_code == 200 and "status" not in r.json()
    doubled = api.get("/groups//", params={"envelope": "true"})
    assert doubled.status_code == 200 and doubled.json()["status"] == 200
    inner = api.get("/groups//x/", params={"envelope": "true"})
    assert inner.status_code == 200 and inner.json()["status"] == 404
    # No resource at the API's root: its slashed form is the same 404, not a redirect.
    root = api.get("/", params={"envelope": "true"})
    assert root.status_code == 200 and root.json()["status"] == 404


def test_agent_api_and_ui_are_unaffected(api: httpx.Client, server: ServerProcess) -> None:
    gid = new_group(api, "agents-untouched")
    key = api.post(f"/groups/{gid}/agentapikeys", json={"desc": "a"}).json()["key"]
    with agent_http(server.url, gid, key) as agent:
        r = agent.get(
            f"/agents/api/automation/conf/v1/{gid}",
            params={"hostname": "h1", "cv": "-1", "envelope": "true", "pretty": "true"},
        )
    assert r.status_code in (200, 304), r.text
    assert "x-mongodb-service-version" not in r.headers
    if r.status_code == 200:
        assert "status" not in r.json() and "\n" not in r.text
    page = httpx.get(f"{server.url}/ui/login", params={"envelope": "true", "pretty": "true"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "x-mongodb-service-version" not in page.headers
    health = httpx.get(f"{server.url}/health/ready", params={"envelope": "true"})
    assert health.status_code == 200 and "content" not in health.json()
    assert "x-mongodb-service-version" not in health.headers


def go_client_authorization(challenge: str, method: str, uri: str, key: dict[str, Any]) -> str:
    """What the Go client (``mongodb-forks/digest``) sends for the first ``WWW-Authenticate`` header it got:
    it splits the parameters on ``", "``, refuses unknown ones and answers with the challenge's algorithm."""
    assert challenge.startswith("Digest ")
    fields = dict(p.split("=", 1) for p in challenge[len("Digest ") :].split(", "))
    assert set(fields) <= GO_CHALLENGE_KEYS, fields
    c = {k: v.strip('"') for k, v in fields.items()}
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[c.get("algorithm", "MD5")]

    def hexdigest(text: str) -> str:
        return h(text.encode()).hexdigest()

    cnonce = os.urandom(8).hex()
    ha1 = hexdigest(f"{key['publicKey']}:{c['realm']}:{key['privateKey']}")
    ha2 = hexdigest(f"{method}:{uri}")
    response = hexdigest(f"{ha1}:{c['nonce']}:00000001:{cnonce}:{c['qop']}:{ha2}")
    return (
        f'Digest username="{key["publicKey"]}", realm="{c["realm"]}", nonce="{c["nonce"]}", uri="{uri}", '
        f'response="{response}", algorithm="{c["algorithm"]}", qop={c["qop"]}, nc=00000001, cnonce="{cnonce}"'
    )


def test_digest_challenge_md5_first_for_the_go_client(server: ServerProcess, owner: dict[str, Any]) -> None:
    uri = "/api/public/v1.0/groups/?envelope=true"
    first = httpx.get(f"{server.url}{uri}")
    challenges = first.headers.get_list("www-authenticate")
    assert [re.findall(r"algorithm=([\w-]+)", c) for c in challenges] == [["MD5"], ["SHA-256"]]
    authorization = go_client_authorization(challenges[0], "GET", uri, owner)
    r = httpx.get(f"{server.url}{uri}", headers={"Authorization": authorization})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == 200 and "results" in r.json()


def test_python_requests_digest_takes_sha256_from_the_joined_challenges(
    server: ServerProcess, owner: dict[str, Any]
) -> None:
    requests = pytest.importorskip("requests")
    auth = requests.auth.HTTPDigestAuth(owner["publicKey"], owner["privateKey"])
    r = requests.get(
        f"{server.url}/api/public/v1.0/groups/", params={"pretty": "true"}, auth=auth, timeout=10
    )
    assert r.status_code == 200, r.text
    assert r.text.startswith("{\n  ")
    # requests joins both headers into one and keeps the last algorithm named: SHA-256, on the shared nonce.
    assert 'algorithm="SHA-256"' in r.request.headers["Authorization"]
