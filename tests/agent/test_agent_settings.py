"""automation-agent.config: keys, defaults, problems reported by key name, and round trips."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from opsmgr.agent.settings import (
    MEMORY_WORLD,
    AgentSettings,
    DriverKind,
    load_settings,
    parse_settings,
    render_settings,
)
from opsmgr.errors import InvalidInput
from tests.tlsca import TestCA

REAL_AGENT_STYLE = """\
# written by hand, as for the real agent
mmsGroupId=5f0c1a2b3c4d5e6f7a8b9c0d
mmsApiKey=abcdef0123456789
mmsBaseUrl=http://opsmgr.example.net:8080/
logFile=/var/log/mongodb-mms-automation/automation-agent.log
logLevel=WARN
# opsmgr's own keys
hostname = db1.example.net
stateDir : state
driver=sim
sim.world=world.sqlite
pollIntervalSeconds=0.2
"""


def test_every_key(tmp_path: Path) -> None:
    path = tmp_path / "automation-agent.config"
    path.write_text(REAL_AGENT_STYLE)
    s = load_settings(path)
    assert (s.group_id, s.api_key, s.base_url) == (
        "5f0c1a2b3c4d5e6f7a8b9c0d",
        "abcdef0123456789",
        "http://opsmgr.example.net:8080",
    )
    assert s.hostname == "db1.example.net" and s.driver is DriverKind.SIM and s.poll_interval_s == 0.2
    assert s.state_dir == tmp_path / "state"  # relative paths are relative to the config file
    assert s.sim_world == str(tmp_path / "world.sqlite")
    assert s.log_file == Path("/var/log/mongodb-mms-automation/automation-agent.log")
    assert s.log_level == "WARNING"


def test_defaults() -> None:
    s = parse_settings({"mmsGroupId": "g", "mmsApiKey": "k", "mmsBaseUrl": "https://om", "stateDir": "/s"})
    assert s.hostname == socket.gethostname()
    assert s.driver is DriverKind.MONGOD and s.mongod_binary == "mongod"
    assert s.poll_interval_s == 10.0 and s.log_file is None and s.log_path == Path("/s/automation-agent.log")


def test_problems_are_reported_together_by_key_name() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_settings({"mmsBaseUrl": "opsmgr:8080", "driver": "docker", "pollIntervalSeconds": "soon"})
    detail = err.value.detail
    for fragment in (
        "mmsGroupId is missing",
        "mmsApiKey is missing",
        "mmsBaseUrl must be an http://",
        "stateDir is missing",
        "driver must be one of sim, mongod, not 'docker'",
        "pollIntervalSeconds must be a number",
    ):
        assert fragment in detail
    assert err.value.field == "mmsGroupId"


@pytest.mark.parametrize("poll", ["0", "-1", "nan", "inf", "7200"])
def test_poll_interval_bounds(poll: str) -> None:
    values = {
        "mmsGroupId": "g",
        "mmsApiKey": "k",
        "mmsBaseUrl": "http://om",
        "stateDir": "/s",
        "pollIntervalSeconds": poll,
    }
    with pytest.raises(InvalidInput, match="pollIntervalSeconds"):
        parse_settings(values)


def test_sim_needs_a_world() -> None:
    values = {
        "mmsGroupId": "g",
        "mmsApiKey": "k",
        "mmsBaseUrl": "http://om",
        "stateDir": "/s",
        "driver": "sim",
    }
    with pytest.raises(InvalidInput, match=r"sim\.world is missing"):
        parse_settings(values)
    assert parse_settings({**values, "sim.world": MEMORY_WORLD}).sim_world == MEMORY_WORLD


def test_missing_file_is_reported() -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        load_settings(Path("/nonexistent/automation-agent.config"))


def test_render_round_trips(tmp_path: Path) -> None:
    original = AgentSettings(
        group_id="g1",
        api_key="k=with:odd chars#",
        base_url="http://127.0.0.1:9",
        hostname="h1.example.net",
        state_dir=tmp_path / "st",
        driver=DriverKind.SIM,
        poll_interval_s=0.25,
        sim_world=MEMORY_WORLD,
        log_file=tmp_path / "a.log",
    )
    path = tmp_path / "automation-agent.config"
    path.write_text(render_settings(original))
    assert load_settings(path) == original


# HTTPS to the server: the real agent's ssl* keys.

BASE = {"mmsGroupId": "g", "mmsApiKey": "k", "mmsBaseUrl": "https://om:8443", "stateDir": "/s"}


def test_tls_keys_default_to_the_systems_cas_and_verification() -> None:
    s = parse_settings(BASE)
    assert s.trusted_server_ca is None and s.require_valid_server_certificates is True
    assert s.client_certificate is None and s.client_certificate_password is None
    assert s.http_verify() is True  # httpx: the system's trusted CAs, certificate and name checked


def test_tls_keys_and_relative_paths(tmp_path: Path) -> None:
    ca = TestCA.create(tmp_path / "ca")
    cert = ca.issue("agent.pem", names=("agent",), client=True, password="pw")
    path = tmp_path / "automation-agent.config"
    path.write_text(
        "\n".join(
            [
                *(f"{k}={v}" for k, v in BASE.items()),
                "sslTrustedMMSServerCertificate=ca/ca.pem",
                "sslRequireValidMMSServerCertificates=TRUE",
                "sslMMSServerClientCertificate=ca/agent.pem",
                "sslMMSServerClientCertificatePassword=pw",
            ]
        )
    )
    s = load_settings(path)
    assert s.trusted_server_ca == ca.ca_file and s.client_certificate == cert
    assert s.require_valid_server_certificates and s.client_certificate_password == "pw"
    ctx = s.http_verify()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    # Only the configured CA is trusted: a private CA does not widen trust to anything else.
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "opsmgr test CA"),),)]
    again = tmp_path / "again.config"
    again.write_text(render_settings(s))
    assert load_settings(again) == s


def test_unverified_server_certificates_only_when_asked(tmp_path: Path) -> None:
    ca = TestCA.create(tmp_path / "ca")
    values = {**BASE, "sslTrustedMMSServerCertificate": str(ca.ca_file)}
    ctx = parse_settings({**values, "sslRequireValidMMSServerCertificates": "false"}).http_verify()
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    with pytest.raises(InvalidInput, match="sslRequireValidMMSServerCertificates must be true or false"):
        parse_settings({**values, "sslRequireValidMMSServerCertificates": "maybe"})
    with pytest.raises(InvalidInput, match="sslMMSServerClientCertificatePassword is set but"):
        parse_settings({**values, "sslMMSServerClientCertificatePassword": "pw"})


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"sslTrustedMMSServerCertificate": "missing.pem"}, "sslTrustedMMSServerCertificate", "cannot read"),
        ({"sslTrustedMMSServerCertificate": "notes.txt"}, "sslTrustedMMSServerCertificate", "no PEM"),
        (
            {"sslMMSServerClientCertificate": "ca/locked.pem"},
            "sslMMSServerClientCertificatePassword",
            "encrypted",
        ),
        (
            {"sslMMSServerClientCertificate": "ca/locked.pem", "sslMMSServerClientCertificatePassword": "no"},
            "sslMMSServerClientCertificatePassword",
            "does not decrypt",
        ),
    ],
)
def test_unusable_tls_files_name_their_key(
    tmp_path: Path, values: dict[str, str], key: str, words: str
) -> None:
    ca = TestCA.create(tmp_path / "ca")
    ca.issue("locked.pem", names=("agent",), client=True, password="pw")
    (tmp_path / "notes.txt").write_text("not a certificate\n")
    s = parse_settings({**BASE, **values}, base_dir=tmp_path)
    with pytest.raises(InvalidInput) as err:
        s.http_verify()
    assert err.value.field == key and words in err.value.detail and key in err.value.detail
