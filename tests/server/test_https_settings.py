"""The ``mms.https.*`` keys of conf-mms.properties: defaults, what goes together, the https:// central URL,
and the TLS context ``opsmgr.server.tls`` builds from them (every unusable file refused naming its key)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from opsmgr.server.settings import ClientCertificateMode, SettingsError, parse_settings
from opsmgr.server.tls import server_context, uvicorn_https
from opsmgr.tls import Setting, client_verify
from tests.server.settings_cases import BASE, MINIMAL
from tests.tlsca import TestCA


def problems_of(values: dict[str, str]) -> dict[str, str]:
    with pytest.raises(SettingsError) as info:
        parse_settings({**MINIMAL, **values}, base_dir=BASE)
    return dict(info.value.problems)


def test_http_by_default() -> None:
    s = parse_settings(MINIMAL, base_dir=BASE)
    assert not s.https and s.https_ca_file is None
    assert s.https_client_certificate_mode is ClientCertificateMode.NONE
    assert s.central_url == "http://127.0.0.1:8080"
    assert server_context(s) is None and uvicorn_https(s) == {}
    assert "HTTPS" in s.describe() and "off" in s.describe()


def test_a_pem_key_file_makes_the_central_url_https_and_paths_are_relative_to_the_conf() -> None:
    s = parse_settings(
        {
            **MINIMAL,
            "mms.https.PEMKeyFile": "tls/server.pem",
            "mms.https.PEMKeyFilePassword": "pw",
            "mms.https.CAFile": "tls/ca.pem",
            "mms.https.ClientCertificateMode": "AGENTS_ONLY",
        },
        base_dir=BASE,
    )
    assert s.https and s.central_url == "https://127.0.0.1:8080"
    assert (s.https_pem_key_file, s.https_ca_file) == (BASE / "tls/server.pem", BASE / "tls/ca.pem")
    assert s.https_pem_key_file_password == "pw"
    assert s.https_client_certificate_mode is ClientCertificateMode.AGENTS_ONLY
    assert "pw" not in s.describe()  # the password is never shown
    explicit = parse_settings(
        {**MINIMAL, "mms.https.PEMKeyFile": "s.pem", "mms.centralUrl": "https://om.example.net:8443"},
        base_dir=BASE,
    )
    assert explicit.central_url == "https://om.example.net:8443"


def test_keys_that_only_make_sense_together() -> None:
    lonely = problems_of(
        {
            "mms.https.PEMKeyFilePassword": "pw",
            "mms.https.CAFile": "ca.pem",
            "mms.https.ClientCertificateMode": "required",
        }
    )
    assert set(lonely) == {
        "mms.https.PEMKeyFilePassword",
        "mms.https.CAFile",
        "mms.https.ClientCertificateMode",
    }
    assert all("mms.https.PEMKeyFile" in p for p in lonely.values())
    for mode in ("agents_only", "required"):
        no_ca = problems_of({"mms.https.PEMKeyFile": "s.pem", "mms.https.ClientCertificateMode": mode})
        assert set(no_ca) == {"mms.https.CAFile"} and mode in no_ca["mms.https.CAFile"]
    bad_mode = problems_of({"mms.https.PEMKeyFile": "s.pem", "mms.https.ClientCertificateMode": "sometimes"})
    assert "none, agents_only, required" in bad_mode["mms.https.ClientCertificateMode"]
    clear = problems_of({"mms.https.PEMKeyFile": "s.pem", "mms.centralUrl": "http://om.example.net:8080"})
    assert "https://" in clear["mms.centralUrl"]


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA.create(tmp_path / "ca")


def test_the_context_follows_the_client_certificate_mode(tmp_path: Path, ca: TestCA) -> None:
    pem = ca.issue("server.pem", password="pw")
    base = {"mms.https.PEMKeyFile": str(pem), "mms.https.PEMKeyFilePassword": "pw"}
    plain = server_context(parse_settings({**MINIMAL, **base}, base_dir=tmp_path))
    assert plain is not None and plain.verify_mode == ssl.CERT_NONE
    assert plain.minimum_version >= ssl.TLSVersion.TLSv1_2
    with_ca = {**base, "mms.https.CAFile": str(ca.ca_file)}
    for mode, wanted in [
        ("none", ssl.CERT_OPTIONAL),
        ("agents_only", ssl.CERT_OPTIONAL),
        ("required", ssl.CERT_REQUIRED),
    ]:
        s = parse_settings({**MINIMAL, **with_ca, "mms.https.ClientCertificateMode": mode}, base_dir=tmp_path)
        ctx = server_context(s)
        assert ctx is not None and ctx.verify_mode == wanted
        # Only the configured CA vouches for clients, not the system's.
        assert len(ctx.get_ca_certs()) == 1
        options = uvicorn_https(s)
        assert options["ssl_context_factory"](None, None).verify_mode == wanted
        assert ("http" in options) == (mode == "agents_only")


@pytest.mark.parametrize(
    ("case", "key", "words"),
    [
        ("missing", "mms.https.PEMKeyFile", "cannot read"),
        ("no password", "mms.https.PEMKeyFilePassword", "encrypted"),
        ("wrong password", "mms.https.PEMKeyFilePassword", "does not decrypt"),
        ("no key", "mms.https.PEMKeyFile", "private key"),
        ("bad CA", "mms.https.CAFile", "no PEM certificate"),
    ],
)
def test_unusable_files_are_refused_naming_the_key(
    tmp_path: Path, ca: TestCA, case: str, key: str, words: str
) -> None:
    pem = ca.issue("server.pem", password="pw")
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    values = {
        "missing": {"mms.https.PEMKeyFile": "nope.pem"},
        "no password": {"mms.https.PEMKeyFile": str(pem)},
        "wrong password": {"mms.https.PEMKeyFile": str(pem), "mms.https.PEMKeyFilePassword": "nope"},
        "no key": {"mms.https.PEMKeyFile": str(ca.ca_file)},
        "bad CA": {
            "mms.https.PEMKeyFile": str(pem),
            "mms.https.PEMKeyFilePassword": "pw",
            "mms.https.CAFile": str(not_pem),
        },
    }[case]
    s = parse_settings({**MINIMAL, **values}, base_dir=tmp_path)
    with pytest.raises(SettingsError) as info:
        server_context(s)
    problems = dict(info.value.problems)
    assert list(problems) == [key] and words in problems[key]


def handshake(server: ssl.SSLContext, client: ssl.SSLContext | bool) -> ssl.SSLError | None:
    """A TLS handshake between the two contexts in memory; the server side's error, if any."""
    assert isinstance(client, ssl.SSLContext)
    wires = [ssl.MemoryBIO() for _ in range(4)]
    s_end = server.wrap_bio(wires[0], wires[1], server_side=True)
    c_end = client.wrap_bio(wires[2], wires[3], server_hostname="127.0.0.1")
    done = [False, False]
    for _ in range(20):
        for i, (end, out, into) in enumerate([(c_end, wires[3], wires[0]), (s_end, wires[1], wires[2])]):
            try:
                if not done[i]:
                    end.do_handshake()
                    done[i] = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                if end is s_end:
                    return exc
                raise
            into.write(out.read())
        if all(done):
            # TLS 1.3: the server checks the client's certificate when it reads the client's Finished.
            try:
                s_end.read(1)
            except ssl.SSLWantReadError:
                return None
            except ssl.SSLError as exc:
                return exc
    raise AssertionError("the handshake did not finish")


def test_client_certificates_are_checked_against_the_ca_file(tmp_path: Path, ca: TestCA) -> None:
    other = TestCA.create(tmp_path / "other", "someone else's CA")
    pem = ca.issue("server.pem")
    mine = ca.issue("client.pem", names=("agent",), client=True)
    stranger = other.issue("stranger.pem", names=("agent",), client=True)

    def client(cert: Path | None) -> ssl.SSLContext | bool:
        return client_verify(ca.ca_file, client_cert=cert, names=Setting("ca"))

    for mode in ("none", "agents_only", "required"):
        s = parse_settings(
            {
                **MINIMAL,
                "mms.https.PEMKeyFile": str(pem),
                "mms.https.CAFile": str(ca.ca_file),
                "mms.https.ClientCertificateMode": mode,
            },
            base_dir=tmp_path,
        )
        ctx = server_context(s)
        assert ctx is not None
        assert handshake(ctx, client(mine)) is None
        assert isinstance(handshake(ctx, client(stranger)), ssl.SSLCertVerificationError)
        without = handshake(ctx, client(None))
        assert (without is None) == (mode != "required"), (mode, without)
