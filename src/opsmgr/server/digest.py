"""HTTP Digest authentication, server side (RFC 7616), as Ops Manager's programmatic API keys use it: the
username is the public key, the password the private key, the realm ``MMS Public API``, ``qop="auth"``.

Owns the ``WWW-Authenticate`` challenges (one per algorithm, sharing one nonce so that clients which merge
the headers still compute a valid answer). MD5 comes first by default, as Ops Manager sends only MD5 and its
clients answer the first challenge: the Go client (``mongodb-forks/digest``) reads only the first header,
rejects any parameter it does not know and, in older versions, MD5 alone; httpx answers the first Digest
header. SHA-256 follows for the clients that can use it (Python ``requests`` joins the headers and keeps
the last ``algorithm``, hence the shared nonce). Also owns stateless nonces (a timestamp
and random bytes authenticated with an HMAC under a server secret, so any server holding the secret accepts
them and a restart forgets nothing; past their lifetime they are answered with ``stale=true``), the parser
of ``Authorization: Digest ...`` headers, which turns any malformed input into
:class:`~opsmgr.errors.Unauthorized` and nothing else, and the verification of a response given the
request method and target and a lookup of the private key (or of HA1) for a username. A bounded in-memory
record of the nonce counts seen rejects replays of a (nonce, nc) pair while the nonce is alive.

Pure: no web framework. May import ``opsmgr.errors`` only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from opsmgr.errors import Unauthorized

REALM = "MMS Public API"
# Ops Manager's own algorithm first: see the module docstring for which client answers which challenge.
DEFAULT_ALGORITHMS = ("MD5", "SHA-256")
NONCE_TTL_S = 300.0
MAX_HEADER_CHARS = 8192

_HASHES = {"MD5": "md5", "SHA-256": "sha256"}
# Canonical spelling of every algorithm by its upper-cased name; "-sess" variants hash HA1 once more.
_ALGORITHMS = {a.upper(): a for base in _HASHES for a in (base, f"{base}-sess")}
_NONCE_LABEL = b"opsmgr digest nonce v1\0"
_NONCE_MAC_SIZE = 16
_NONCE_FORMAT = struct.Struct(">Q8s")
_NONCE_BYTES = _NONCE_FORMAT.size + _NONCE_MAC_SIZE
# How far ahead of our clock a nonce's timestamp may be (another server's clock) before it is a forgery.
_CLOCK_SKEW_S = 60.0

# RFC 9110 token and the pieces of an auth-param list.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)")
_WINDOW = 1024
_WINDOW_MASK = (1 << _WINDOW) - 1
_NC = re.compile(r"[0-9a-fA-F]{8}")
_HEX = re.compile(r"[0-9a-fA-F]+")


class DigestChallenge(Unauthorized):
    """A 401 whose answer must carry ``challenges``, one ``WWW-Authenticate`` header each."""

    def __init__(self, detail: str, *, challenges: tuple[str, ...], stale: bool = False) -> None:
        super().__init__(detail)
        self.challenges = challenges
        self.stale = stale


class StaleNonce(DigestChallenge):
    """The credentials were right but the nonce has expired; the client may retry with the new one."""


class NonceState(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """The parameters of an ``Authorization: Digest`` header that verification uses."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str
    qop: str
    nc: str
    cnonce: str


def parse_auth_params(header: str) -> dict[str, str]:
    """The auth-params of a ``Digest`` credentials header, names lower-cased.

    Raises :class:`Unauthorized` on anything that is not a well-formed, reasonably sized Digest header.
    """
    if len(header) > MAX_HEADER_CHARS:
        raise Unauthorized(f"Digest authorization header longer than {MAX_HEADER_CHARS} characters")
    scheme = _TOKEN.match(header)
    if scheme is None or scheme.group().lower() != "digest" or header[scheme.end() : scheme.end() + 1] != " ":
        raise Unauthorized("authorization header is not of the Digest scheme")
    params: dict[str, str] = {}
    i, n = scheme.end(), len(header)
    while True:
        while i < n and header[i] in " \t,":
            i += 1
        if i == n:
            break
        name = _TOKEN.match(header, i)
        if name is None:
            raise Unauthorized(f"malformed Digest header: expected a parameter name at character {i}")
        i = _skip_blanks(header, name.end())
        if header[i : i + 1] != "=":
            raise Unauthorized(f"malformed Digest header: expected '=' after {name.group()!r}")
        i = _skip_blanks(header, i + 1)
        quoted = _QUOTED.match(header, i)
        if quoted is not None:
            value = _QUOTED_PAIR.sub(r"\1", quoted.group(1))
            i = quoted.end()
        else:
            token = _TOKEN.match(header, i)
            if token is None:
                raise Unauthorized(f"malformed Digest header: bad value for {name.group()!r}")
            value, i = token.group(), token.end()
        key = name.group().lower()
        if key in params:
            raise Unauthorized(f"malformed Digest header: {key!r} given twice")
        params[key] = value
        i = _skip_blanks(header, i)
        if i < n and header[i] != ",":
            raise Unauthorized(f"malformed Digest header: expected ',' at character {i}")
    return params


def _skip_blanks(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def parse_credentials(header: str) -> DigestCredentials:
    """Parse and check the shape of an ``Authorization: Digest`` header (RFC 7616 with ``qop=auth``)."""
    params = parse_auth_params(header)
    missing = [
        p for p in ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce") if p not in params
    ]
    if missing:
        raise Unauthorized(f"Digest header lacks {', '.join(missing)}")
    if "username*" in params or params.get("userhash", "false").lower() != "false":
        raise Unauthorized("Digest userhash and extended usernames are not supported")
    if params["qop"] != "auth":
        raise Unauthorized('Digest qop must be "auth"')
    if not _NC.fullmatch(params["nc"]):
        raise Unauthorized("Digest nc must be 8 hexadecimal digits")
    if not params["cnonce"]:
        raise Unauthorized("Digest cnonce must not be empty")
    algorithm = _ALGORITHMS.get(params.get("algorithm", "MD5").upper())
    if algorithm is None:
        raise Unauthorized("unsupported Digest algorithm")
    response = params["response"].lower()
    if (
        not _HEX.fullmatch(response)
        or len(response) != hashlib.new(_HASHES[_base(algorithm)]).digest_size * 2
    ):
        raise Unauthorized(f"Digest response is not a {algorithm} digest")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=response,
        algorithm=algorithm,
        qop=params["qop"],
        nc=params["nc"].lower(),
        cnonce=params["cnonce"],
    )


def _base(algorithm: str) -> str:
    return algorithm.removesuffix("-sess")


def _hash(algorithm: str, *parts: str) -> str:
    return hashlib.new(_HASHES[_base(algorithm)], ":".join(parts).encode("utf-8")).hexdigest()


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """``H(username:realm:password)``, what a server may store instead of the password (``-sess``: base)."""
    return _hash(algorithm, username, realm, password)


def expected_response(creds: DigestCredentials, method: str, stored_ha1: str) -> str:
    """The ``response`` a client knowing the secret behind ``stored_ha1`` sends for this request."""
    a1 = stored_ha1
    if creds.algorithm.endswith("-sess"):
        a1 = _hash(creds.algorithm, stored_ha1, creds.nonce, creds.cnonce)
    ha2 = _hash(creds.algorithm, method, creds.uri)
    return _hash(creds.algorithm, a1, creds.nonce, creds.nc, creds.cnonce, creds.qop, ha2)


def _target(uri: str) -> str | None:
    """The origin-form (path and query) of a request target that may be in absolute form; None if garbled."""
    if uri.startswith("/"):
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _encode_nonce(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class _CountWindow:
    """The nonce counts seen for one nonce: the highest, and which of the ``_WINDOW`` below it."""

    __slots__ = ("bits", "expires", "highest")

    def __init__(self, expires: float) -> None:
        self.expires = expires
        self.highest = -1
        self.bits = 0

    def first_use(self, nc: int) -> bool:
        if nc > self.highest:
            shift = nc - self.highest
            self.bits = 1 if shift >= _WINDOW else ((self.bits << shift) | 1) & _WINDOW_MASK
            self.highest = nc
            return True
        offset = self.highest - nc
        # Counts further back than the window cannot be told apart from replays; real clients stay close.
        if offset >= _WINDOW or (self.bits >> offset) & 1:
            return False
        self.bits |= 1 << offset
        return True


class DigestAuthenticator:
    """Issues challenges and verifies Digest credentials for one realm under one server secret.

    ``secret`` must be the same on every server that may receive a client's next request (derive it from
    gen.key). Thread-safe.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        realm: str = REALM,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        nonce_ttl_s: float = NONCE_TTL_S,
        clock: Callable[[], float] = time.time,
        max_tracked_nonces: int = 50_000,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the Digest nonce secret must be at least 16 bytes")
        canonical = [_ALGORITHMS.get(a.upper()) for a in algorithms]
        if not canonical or None in canonical:
            raise ValueError(f"algorithms must be among {sorted(_ALGORITHMS.values())}")
        self.algorithms: tuple[str, ...] = tuple(a for a in canonical if a is not None)
        self.realm = realm
        self.nonce_ttl_s = nonce_ttl_s
        self._secret = secret
        self._clock = clock
        self._max_tracked = max_tracked_nonces
        self._seen: OrderedDict[str, _CountWindow] = OrderedDict()
        self._lock = threading.Lock()

    # Nonces.

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, _NONCE_LABEL + self.realm.encode() + body, hashlib.sha256).digest()

    def new_nonce(self) -> str:
        body = _NONCE_FORMAT.pack(int(self._clock() * 1000), os.urandom(8))
        return _encode_nonce(body + self._mac(body)[:_NONCE_MAC_SIZE])

    def nonce_state(self, nonce: str) -> NonceState:
        if len(nonce) > 64:
            return NonceState.INVALID
        try:
            raw = base64.b64decode(nonce + "=" * (-len(nonce) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            return NonceState.INVALID
        if len(raw) != _NONCE_BYTES or _encode_nonce(raw) != nonce:
            return NonceState.INVALID
        body, mac = raw[: _NONCE_FORMAT.size], raw[_NONCE_FORMAT.size :]
        if not hmac.compare_digest(mac, self._mac(body)[:_NONCE_MAC_SIZE]):
            return NonceState.INVALID
        age = self._clock() - _NONCE_FORMAT.unpack(body)[0] / 1000
        if age < -_CLOCK_SKEW_S:
            return NonceState.INVALID
        return NonceState.EXPIRED if age > self.nonce_ttl_s else NonceState.VALID

    # Challenges.

    def challenges(self, *, stale: bool = False) -> tuple[str, ...]:
        """The ``WWW-Authenticate`` values of a 401, most preferred algorithm first, sharing one nonce."""
        nonce = self.new_nonce()
        realm = self.realm.replace("\\", "\\\\").replace('"', '\\"')
        return tuple(
            f'Digest realm="{realm}", nonce="{nonce}", algorithm={a}, qop="auth", '
            f"stale={'true' if stale else 'false'}"
            for a in self.algorithms
        )

    def _reject(self, detail: str, *, stale: bool = False) -> DigestChallenge:
        cls = StaleNonce if stale else DigestChallenge
        return cls(detail, challenges=self.challenges(stale=stale), stale=stale)

    # Verification.

    def verify(
        self,
        method: str,
        uri: str,
        authorization: str | None,
        *,
        password_for: Callable[[str], str | None] | None = None,
        ha1_for: Callable[[str, str], str | None] | None = None,
    ) -> str:
        """The username of valid credentials for ``method`` on request target ``uri`` (path and query).

        Give ``password_for(username)`` (the private key) or ``ha1_for(username, "MD5" | "SHA-256")``; either
        returns None for an unknown user. Every rejection is a :class:`DigestChallenge` carrying fresh
        challenges; an expired nonce with otherwise valid credentials is its subclass :class:`StaleNonce`.
        """
        if (password_for is None) == (ha1_for is None):
            raise TypeError("give exactly one of password_for and ha1_for")
        if not authorization:
            raise self._reject("Authentication required: send HTTP Digest credentials (API key).")
        try:
            creds = parse_credentials(authorization)
        except Unauthorized as exc:
            raise self._reject(exc.detail) from None
        if creds.realm != self.realm:
            raise self._reject(f'Digest realm must be "{self.realm}"')
        if creds.algorithm not in self.algorithms:
            raise self._reject(f"Digest algorithm {creds.algorithm} is not offered here")
        target = _target(creds.uri)
        if target is None or target != _target(uri):
            raise self._reject("Digest uri does not match the request target")
        state = self.nonce_state(creds.nonce)
        if state is NonceState.INVALID:
            raise self._reject("Digest nonce was not issued by this server")
        if password_for is not None:
            password = password_for(creds.username)
            stored = None if password is None else ha1(creds.algorithm, creds.username, self.realm, password)
        else:
            assert ha1_for is not None
            stored = ha1_for(creds.username, _base(creds.algorithm))
        if stored is None or not hmac.compare_digest(
            expected_response(creds, method, stored.lower()), creds.response
        ):
            raise self._reject("Invalid API key or Digest response.")
        if state is NonceState.EXPIRED:
            raise self._reject("Digest nonce has expired; retry with the new one.", stale=True)
        if not self._first_use(creds.nonce, int(creds.nc, 16)):
            raise self._reject("Digest nonce count already used (replayed request).")
        return creds.username

    def _first_use(self, nonce: str, nc: int) -> bool:
        now = self._clock()
        with self._lock:
            window = self._seen.get(nonce)
            if window is None:
                # Oldest first: expired nonces are rejected before they get here, so forgetting them is free;
                # past the bound, forgetting live ones only reopens replays of their requests.
                while self._seen and (
                    len(self._seen) >= self._max_tracked or next(iter(self._seen.values())).expires < now
                ):
                    self._seen.popitem(last=False)
                window = self._seen[nonce] = _CountWindow(now + self.nonce_ttl_s + _CLOCK_SKEW_S)
            return window.first_use(nc)
