import hashlib
import re

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmgr.errors import Unauthorized
from opsmgr.server.digest import (
    REALM,
    DigestAuthenticator,
    DigestChallenge,
    NonceState,
    StaleNonce,
    ha1,
    parse_auth_params,
    parse_credentials,
)
from tests.clock import Clock

SECRET = b"s" * 32
KEYS = {"PUBKEY01": "11111111-2222-3333-4444-555555555555", "PUBKEY02": "pässwörd ✓"}


@pytest.fixture
def clock():
    return Clock(1_700_000_000.0)


def make(clock, **kw):
    return DigestAuthenticator(SECRET, clock=clock, **kw)


class Server:
    """A fake HTTP endpoint protected by ``auth``; records the Authorization headers it saw."""

    def __init__(self, auth: DigestAuthenticator) -> None:
        self.auth = auth
        self.seen: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        header = request.headers.get("authorization")
        self.seen.append(header)
        try:
            user = self.auth.verify(
                request.method, request.url.raw_path.decode(), header, password_for=KEYS.get
            )
        except DigestChallenge as exc:
            return httpx.Response(
                401, headers=[("WWW-Authenticate", c) for c in exc.challenges], json={"detail": exc.detail}
            )
        return httpx.Response(200, json={"user": user})

    def client(self, user: str, password: str) -> httpx.Client:
        return httpx.Client(
            transport=httpx.MockTransport(self),
            auth=httpx.DigestAuth(user, password),
            base_url="http://opsmgr",
        )


def algorithm_of(header: str) -> str:
    return parse_auth_params(header)["algorithm"]


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
def test_httpx_round_trip(clock, algorithm):
    server = Server(make(clock, algorithms=[algorithm]))
    with server.client("PUBKEY01", KEYS["PUBKEY01"]) as client:
        r = client.get("/api/public/v1.0/groups?pretty=true&itemsPerPage=5")
        assert r.status_code == 200
        assert r.json() == {"user": "PUBKEY01"}
        assert server.seen[0] is None
        assert algorithm_of(server.seen[1]) == algorithm
        # The client then answers the same nonce with a rising nc and no extra 401.
        for path in ("/api/public/v1.0/groups/abc", "/api/public/v1.0/orgs"):
            assert client.post(path, json={"name": "x"}).status_code == 200
        assert len(server.seen) == 4
        assert [parse_auth_params(h)["nc"] for h in server.seen[1:]] == ["00000001", "00000002", "00000003"]


def test_default_challenges_put_md5_first_as_ops_manager_and_httpx_takes_it(clock):
    server = Server(make(clock))
    with server.client("PUBKEY01", KEYS["PUBKEY01"]) as client:
        assert client.get("/x").status_code == 200
    assert algorithm_of(server.seen[1]) == "MD5"


def test_non_ascii_private_key(clock):
    server = Server(make(clock))
    with server.client("PUBKEY02", "pässwörd ✓") as client:
        assert client.get("/x").json() == {"user": "PUBKEY02"}


def test_challenge_headers(clock):
    values = make(clock).challenges()
    assert len(values) == 2
    assert [re.search(r"algorithm=([\w-]+)", v).group(1) for v in values] == ["MD5", "SHA-256"]
    params = [parse_auth_params(v) for v in values]
    assert {p["nonce"] for p in params} == {params[0]["nonce"]}, "one nonce for both"
    for p in params:
        assert p["realm"] == REALM == "MMS Public API"
        assert p["qop"] == "auth"
        assert p["stale"] == "false"
    assert all("stale=true" in v for v in make(clock).challenges(stale=True))


def test_merged_challenge_headers_still_work(clock):
    """Clients that join both headers and keep the last value of each parameter end up with SHA-256."""
    auth = make(clock)
    merged = ", ".join(auth.challenges())
    fields = dict(re.findall(r'(\w+)="?([^",]+)"?', merged.replace("Digest ", "")))
    assert fields["algorithm"] == "SHA-256"
    header = client_header(fields["nonce"], "SHA-256", "GET", "/x", "PUBKEY01", KEYS["PUBKEY01"])
    assert auth.verify("GET", "/x", header, password_for=KEYS.get) == "PUBKEY01"


def test_wrong_password_is_refused(clock):
    server = Server(make(clock))
    with server.client("PUBKEY01", "not-the-private-key") as client:
        r = client.get("/x")
    assert r.status_code == 401
    assert "Invalid API key" in r.json()["detail"]
    assert len(r.headers.get_list("www-authenticate")) == 2


def test_unknown_user_is_refused_like_a_wrong_password(clock):
    server = Server(make(clock))
    with server.client("NOBODY", "x") as client:
        r = client.get("/x")
    assert r.status_code == 401
    assert "Invalid API key" in r.json()["detail"]


def client_header(nonce, algorithm, method, uri, user, password, *, nc="00000001", cnonce="abc", realm=REALM):
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algorithm.removesuffix("-sess")]

    def hx(s: str) -> str:
        return h(s.encode()).hexdigest()

    a1 = hx(f"{user}:{realm}:{password}")
    if algorithm.endswith("-sess"):
        a1 = hx(f"{a1}:{nonce}:{cnonce}")
    response = hx(f"{a1}:{nonce}:{nc}:{cnonce}:auth:{hx(f'{method}:{uri}')}")
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm={algorithm}, qop=auth, nc={nc}, cnonce="{cnonce}"'
    )


def test_replayed_request_is_refused(clock):
    auth = make(clock)
    header = client_header(auth.new_nonce(), "SHA-256", "GET", "/x", "PUBKEY01", KEYS["PUBKEY01"])
    assert auth.verify("GET", "/x", header, password_for=KEYS.get) == "PUBKEY01"
    with pytest.raises(DigestChallenge, match="replayed") as info:
        auth.verify("GET", "/x", header, password_for=KEYS.get)
    assert not info.value.stale


def test_nonce_counts_may_arrive_out_of_order_but_not_twice(clock):
    auth = make(clock)
    nonce = auth.new_nonce()

    def verify(nc: int) -> bool:
        header = client_header(nonce, "MD5", "GET", "/x", "PUBKEY01", KEYS["PUBKEY01"], nc=f"{nc:08x}")
        try:
            auth.verify("GET", "/x", header, password_for=KEYS.get)
        except DigestChallenge:
            return False
        return True

    assert [verify(n) for n in (1, 3, 2, 3, 2000, 1500, 977, 976, 0xFFFFFFFF, 2001)] == [
        True,
        True,
        True,
        False,
        True,
        True,
        True,
        False,  # more than the window below the highest count seen
        True,
        False,
    ]


def test_expired_nonce_is_stale_and_httpx_recovers(clock):
    server = Server(make(clock, nonce_ttl_s=300))
    with server.client("PUBKEY01", KEYS["PUBKEY01"]) as client:
        assert client.get("/x").status_code == 200
        clock.now += 301
        assert client.get("/x").status_code == 200, "the client retries with the new nonce"
    assert len(server.seen) == 4
    assert parse_auth_params(server.seen[2])["nonce"] != parse_auth_params(server.seen[3])["nonce"]


def test_expired_nonce_with_right_credentials_says_stale(clock):
    auth = make(clock)
    header = client_header(auth.new_nonce(), "SHA-256", "GET", "/x", "PUBKEY01", KEYS["PUBKEY01"])
    clock.now += 301
    with pytest.raises(StaleNonce) as info:
        auth.verify("GET", "/x", header, password_for=KEYS.get)
    assert info.value.stale
    assert all("stale=true" in c for c in info.value.challenges)
    fresh = parse_auth_params(info.value.challenges[0])["nonce"]
    assert auth.nonce_state(fresh) is NonceState.VALID


def test_expired_nonce_with_wrong_credentials_is_not_stale(clock):
    auth = make(clock)
    header = client_header(auth.new_nonce(), "SHA-256", "GET", "/x", "PUBKEY01", "wrong")
    clock.now += 301
    with pytest.raises(DigestChallenge) as info:
        auth.verify("GET", "/x", header, password_for=KEYS.get)
    assert not isinstance(info.value, StaleNonce)
    assert all("stale=false" in c for c in info.value.challenges)


def test_nonce_states(clock):
    auth = make(clock)
    nonce = auth.new_nonce()
    assert auth.nonce_state(nonce) is NonceState.VALID
    assert make(clock, realm="other").nonce_state(nonce) is NonceState.INVALID, "bound to the realm"
    assert DigestAuthenticator(b"t" * 32, clock=clock).nonce_state(nonce) is NonceState.INVALID
    tampered = nonce[:-2] + ("AA" if nonce[-2:] != "AA" else "BB")
    assert auth.nonce_state(tampered) is NonceState.INVALID
    assert auth.nonce_state(nonce + "=") is NonceState.INVALID
    assert auth.nonce_state("!" * 43) is NonceState.INVALID
    assert auth.nonce_state("x" * 100) is NonceState.INVALID
    future = make(Clock(1_700_000_000.0)).new_nonce()
    clock.now -= 120
    assert auth.nonce_state(future) is NonceState.INVALID, "from too far in the future"


def test_forged_nonce_is_refused(clock):
    auth = make(clock)
    header = client_header("Zm9yZ2Vk", "MD5", "GET", "/x", "PUBKEY01", KEYS["PUBKEY01"])
    with pytest.raises(DigestChallenge, match="not issued by this server"):
        auth.verify("GET", "/x", header, password_for=KEYS.get)


def test_uri_must_match_the_request(clock):
    auth = make(clock)
    header = client_header(auth.new_nonce(), "MD5", "GET", "/a", "PUBKEY01", KEYS["PUBKEY01"])
    with pytest.raises(DigestChallenge, match="uri does not match"):
        auth.verify("GET", "/b", header, password_for=KEYS.get)
    absolute = client_header(auth.new_nonce(), "MD5", "GET", "http://h:1/a?q=1", "PUBKEY01", KEYS["PUBKEY01"])
    assert auth.verify("GET", "/a?q=1", absolute, password_for=KEYS.get) == "PUBKEY01"


def test_method_is_part_of_the_response(clock):
    auth = make(clock)
    header = client_header(auth.new_nonce(), "MD5", "GET", "/a", "PUBKEY01", KEYS["PUBKEY01"])
    with pytest.raises(DigestChallenge, match="Invalid API key"):
        auth.verify("DELETE", "/a", header, password_for=KEYS.get)


def test_realm_and_algorithm_must_be_ours(clock):
    auth = make(clock, algorithms=["SHA-256"])
    other_realm = client_header(auth.new_nonce(), "SHA-256", "GET", "/", "PUBKEY01", "p", realm="Other")
    with pytest.raises(DigestChallenge, match="realm"):
        auth.verify("GET", "/", other_realm, password_for=KEYS.get)
    md5 = client_header(auth.new_nonce(), "MD5", "GET", "/", "PUBKEY01", KEYS["PUBKEY01"])
    with pytest.raises(DigestChallenge, match="MD5 is not offered"):
        auth.verify("GET", "/", md5, password_for=KEYS.get)


def test_ha1_lookup(clock):
    auth = make(clock)
    stored = {alg: ha1(alg, "PUBKEY01", REALM, KEYS["PUBKEY01"]) for alg in ("MD5", "SHA-256")}
    for alg in ("MD5", "SHA-256"):
        header = client_header(auth.new_nonce(), alg, "GET", "/", "PUBKEY01", KEYS["PUBKEY01"])
        user = auth.verify("GET", "/", header, ha1_for=lambda u, a: stored[a] if u == "PUBKEY01" else None)
        assert user == "PUBKEY01"


def test_missing_header_gets_a_challenge(clock):
    with pytest.raises(DigestChallenge, match="Authentication required") as info:
        make(clock).verify("GET", "/", None, password_for=KEYS.get)
    assert len(info.value.challenges) == 2
    assert info.value.http_status == 401


def test_exactly_one_lookup_is_required(clock):
    with pytest.raises(TypeError):
        make(clock).verify("GET", "/", "Digest x=y")


def test_bad_configuration():
    with pytest.raises(ValueError, match="at least 16 bytes"):
        DigestAuthenticator(b"short")
    with pytest.raises(ValueError, match="algorithms"):
        DigestAuthenticator(SECRET, algorithms=["SHA-512"])


def test_tracked_nonces_are_bounded(clock):
    auth = make(clock, max_tracked_nonces=3)
    for _ in range(10):
        header = client_header(auth.new_nonce(), "MD5", "GET", "/", "PUBKEY01", KEYS["PUBKEY01"])
        auth.verify("GET", "/", header, password_for=KEYS.get)
    assert len(auth._seen) == 3


def test_expired_nonces_are_forgotten(clock):
    auth = make(clock)
    header = client_header(auth.new_nonce(), "MD5", "GET", "/", "PUBKEY01", KEYS["PUBKEY01"])
    auth.verify("GET", "/", header, password_for=KEYS.get)
    clock.now += 3600
    header = client_header(auth.new_nonce(), "MD5", "GET", "/", "PUBKEY01", KEYS["PUBKEY01"])
    auth.verify("GET", "/", header, password_for=KEYS.get)
    assert len(auth._seen) == 1


def test_parser_accepts_rfc_syntax():
    params = parse_auth_params(
        'Digest username="a\\"b", realm="MMS Public API",nonce=abc ,  uri="/x?y=1,2", '
        'QOP=auth, nc=00000001, cnonce="c", response="d", algorithm=SHA-256, ,'
    )
    assert params == {
        "username": 'a"b',
        "realm": "MMS Public API",
        "nonce": "abc",
        "uri": "/x?y=1,2",
        "qop": "auth",
        "nc": "00000001",
        "cnonce": "c",
        "response": "d",
        "algorithm": "SHA-256",
    }


MALFORMED = [
    "",
    "Digest",
    "Basic dXNlcjpwYXNz",
    "Digestusername=a",
    'Digest username="unterminated',
    "Digest username",
    "Digest =value",
    "Digest username=a b=c",
    'Digest username="a", username="b"',
    "Digest username=@",
    'Digest username="a\x00b"',
    "Digest " + "a=b, " * 3000,
]


@pytest.mark.parametrize("header", MALFORMED)
def test_malformed_headers(header):
    with pytest.raises(Unauthorized):
        parse_auth_params(header)


VALID = (
    'Digest username="PUBKEY01", realm="MMS Public API", nonce="n", uri="/", qop=auth, nc=00000001, '
    'cnonce="c", algorithm=MD5, response="' + "0" * 32 + '"'
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("qop=auth", "qop=auth-int"), "qop"),
        (("nc=00000001", "nc=1"), "nc"),
        (('cnonce="c"', 'cnonce=""'), "cnonce"),
        (("algorithm=MD5", "algorithm=SHA-512"), "unsupported"),
        (("algorithm=MD5", "algorithm=SHA-256"), "not a SHA-256 digest"),
        (('response="' + "0" * 32, 'response="' + "g" * 32), "not a MD5 digest"),
        (('uri="/", ', ""), "lacks uri"),
        (("qop=auth", "qop=auth, userhash=true"), "userhash"),
    ],
)
def test_bad_credentials_shape(change, message):
    assert parse_credentials(VALID).algorithm == "MD5"
    with pytest.raises(Unauthorized, match=message):
        parse_credentials(VALID.replace(*change))


def test_algorithm_defaults_to_md5_and_is_case_insensitive():
    assert parse_credentials(VALID.replace("algorithm=MD5, ", "")).algorithm == "MD5"
    assert parse_credentials(VALID.replace("algorithm=MD5", "algorithm=md5-SESS")).algorithm == "MD5-sess"


_fuzz_auth = DigestAuthenticator(SECRET)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_raw_text(text):
    for header in (text, "Digest " + text):
        with pytest.raises(Unauthorized):
            _fuzz_auth.verify("GET", "/", header, password_for=KEYS.get)


_names = st.sampled_from(
    ["username", "realm", "nonce", "uri", "response", "algorithm", "qop", "nc", "cnonce", "userhash", "x"]
)
_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["auth", "MD5", "SHA-256", "00000001", "MMS Public API", "/", "http://[", "0" * 32, "0" * 64]
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_names, _values, st.booleans()), max_size=12), st.sampled_from([",", ", ", " ,", ""])
)
def test_fuzz_structured(params, separator):
    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    header = "Digest " + separator.join(f"{n}={quote(v) if q else v}" for n, v, q in params)
    try:
        parsed = parse_auth_params(header)
    except Unauthorized:
        pass
    else:
        assert set(parsed) <= {n for n, _, _ in params}
    with pytest.raises(Unauthorized):
        _fuzz_auth.verify("GET", "/", header, password_for=KEYS.get)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0), st.text(max_size=6), st.integers(min_value=0, max_value=6))
def test_fuzz_mutated_valid_header(position, insert, delete):
    """Mutations of a valid header reach every check; each either still verifies or is a 401."""
    header = client_header(_fuzz_auth.new_nonce(), "SHA-256", "GET", "/x", "PUBKEY01", KEYS["PUBKEY01"])
    position %= len(header) + 1
    mutated = header[:position] + insert + header[position + delete :]
    try:
        user = _fuzz_auth.verify("GET", "/x", mutated, password_for=KEYS.get)
    except Unauthorized:
        return
    assert user == "PUBKEY01"
