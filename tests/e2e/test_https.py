"""HTTPS end to end, with a throwaway CA: a real server serving ``mms.https.PEMKeyFile`` (an encrypted key and
its password), real agents that trust the CA through ``sslTrustedMMSServerCertificate`` reaching goal state,
and the CLI with ``--ca-file``. A CA that did not sign the server's certificate is refused clearly (the agent
logs why and leaves its processes alone; the CLI says why and exits 1); a PEM file that cannot be used stops
the server naming the key. Client certificates follow ``mms.https.ClientCertificateMode``; the secondary link
(``opsmgr secondary attach --ca-file``) carries the CA to the backing agent and to the primary's probe."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmgr.backup.secondaries import secondaries
from opsmgr.server.secondary_watch import http_probe
from opsmgr.server.settings import embedded_defaults
from opsmgr.sim.world import SimWorld
from opsmgr.store import Store
from opsmgr.tls import Setting, client_verify
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.procs import AgentProcess, ServerProcess, free_port, run_cli, wait_for
from tests.secondary_support import now_ms, primary_with_secondary
from tests.tlsca import TestCA

pytestmark = pytest.mark.e2e

HOSTS = [f"h{i}.https.sim" for i in range(3)]
PEM_PASSWORD = "pem-pass"


def https_server(root: Path, ca: TestCA, name: str, **conf: str) -> ServerProcess:
    pem = ca.issue(f"{name}.pem", password=PEM_PASSWORD)
    keys = {"mms.https.PEMKeyFile": str(pem), "mms.https.PEMKeyFilePassword": PEM_PASSWORD, **conf}
    return ServerProcess(root / name, free_port(), conf_keys=keys, ca_file=ca.ca_file)


def cli_builds(
    server: ServerProcess, key: dict[str, Any], group: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``opsmgr index builds``: one public API call through the CLI's client."""
    return run_cli(
        "index",
        "builds",
        "--url",
        server.url,
        "--group",
        group,
        "--public-key",
        key["publicKey"],
        "--private-key",
        key["privateKey"],
        *extra,
        env=env,
    )


def refused_clearly(done: subprocess.CompletedProcess[str], *words: str) -> str:
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert "Traceback" not in text, text
    for word in words:
        assert word in text, text
    return text


def test_agents_reach_goal_and_the_cli_works_over_https(tmp_path: Path) -> None:
    ca = TestCA.create(tmp_path / "ca")
    other = TestCA.create(tmp_path / "other-ca", "someone else's CA")
    server = https_server(tmp_path, ca, "server").start()
    d: Deployment | None = None
    try:
        # The URL to Access Ops Manager defaults to https://, and nothing answers in clear on the port.
        assert f"URL to Access Ops Manager: https://127.0.0.1:{server.port}" in server.log()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/health/ready", timeout=5)

        owner = server.create_key()
        d = Deployment(server, owner, tmp_path, "https")
        for host in HOSTS:
            d.agent(host)
        v1 = d.put(replica_set_config(HOSTS, rs="rs0"))
        d.wait_goal(v1, 3)

        # The CLI over HTTPS: the CA from --ca-file or OPSMGR_CA_FILE.
        ok = cli_builds(server, owner, d.group_id, "--ca-file", str(ca.ca_file))
        assert ok.returncode == 0, ok.stderr
        ok = cli_builds(server, owner, d.group_id, env={"OPSMGR_CA_FILE": str(ca.ca_file)})
        assert ok.returncode == 0, ok.stderr
        # Without the CA (the system's CAs) or with another CA, the server is not trusted, and it says so.
        refused_clearly(cli_builds(server, owner, d.group_id), "certificate", "--ca-file")
        refused_clearly(
            cli_builds(server, owner, d.group_id, "--ca-file", str(other.ca_file)), "certificate", "--ca-file"
        )
        refused_clearly(
            cli_builds(server, owner, d.group_id, "--ca-file", str(tmp_path / "missing.pem")),
            "--ca-file",
            "missing.pem",
        )

        # An agent that trusts another CA refuses the server, says why, and leaves its process as it is.
        world = SimWorld.open(tmp_path / "world.sqlite")
        try:
            before = world.observe(HOSTS[0], "rs0_0")
            agent = d.agents[HOSTS[0]]
            agent.stop()
            agent.extra["sslTrustedMMSServerCertificate"] = str(other.ca_file)
            agent.start()
            wait_for(
                lambda: "the server's TLS certificate was not accepted" in agent.log(),
                30,
                what="the agent to log the certificate it refused",
            )
            after = world.observe(HOSTS[0], "rs0_0")
        finally:
            world.close()
        assert before.running and after.running and after.pid == before.pid
    finally:
        if d is not None:
            d.close()
        server.stop()


@pytest.mark.parametrize(
    ("case", "key"),
    [
        ("missing PEM file", "mms.https.PEMKeyFile"),
        ("encrypted key without its password", "mms.https.PEMKeyFilePassword"),
        ("wrong password", "mms.https.PEMKeyFilePassword"),
        ("a certificate without its key", "mms.https.PEMKeyFile"),
        ("unreadable client CA file", "mms.https.CAFile"),
    ],
)
def test_the_server_refuses_to_start_naming_the_https_key(tmp_path: Path, case: str, key: str) -> None:
    ca = TestCA.create(tmp_path / "ca")
    pem = ca.issue("server.pem", password=PEM_PASSWORD)
    conf = {
        "missing PEM file": {"mms.https.PEMKeyFile": str(tmp_path / "nope.pem")},
        "encrypted key without its password": {"mms.https.PEMKeyFile": str(pem)},
        "wrong password": {"mms.https.PEMKeyFile": str(pem), "mms.https.PEMKeyFilePassword": "wrong"},
        "a certificate without its key": {"mms.https.PEMKeyFile": str(ca.ca_file)},
        "unreadable client CA file": {
            "mms.https.PEMKeyFile": str(pem),
            "mms.https.PEMKeyFilePassword": PEM_PASSWORD,
            "mms.https.CAFile": str(tmp_path / "nope-ca.pem"),
        },
    }[case]
    server = ServerProcess(tmp_path / "server", free_port(), conf_keys=conf)
    server.start(wait=False)
    try:
        assert server.proc is not None
        code = server.proc.wait(60)
    finally:
        server.stop()
    log = server.log()
    assert code != 0, log
    assert key in log and "Traceback" not in log, log


def test_an_agent_whose_ca_file_cannot_be_read_does_not_start(tmp_path: Path) -> None:
    agent = AgentProcess(
        root=tmp_path,
        hostname=HOSTS[0],
        base_url=f"https://127.0.0.1:{free_port()}",
        group_id="g",
        api_key="k",
        world=tmp_path / "world.sqlite",
        extra={"sslTrustedMMSServerCertificate": str(tmp_path / "missing-ca.pem")},
    )
    agent.write_config()
    done = run_cli("agent", "--config", str(agent.config_path), timeout=60)
    refused_clearly(done, "sslTrustedMMSServerCertificate", "missing-ca.pem", "cannot read")


def test_agents_only_client_certificates(tmp_path: Path) -> None:
    ca = TestCA.create(tmp_path / "ca")
    server = https_server(
        tmp_path,
        ca,
        "server",
        **{"mms.https.CAFile": str(ca.ca_file), "mms.https.ClientCertificateMode": "agents_only"},
    ).start()
    d: Deployment | None = None
    try:
        # The public API needs no client certificate in agents_only mode.
        d = Deployment(server, server.create_key(), tmp_path, "agents-only")
        v1 = d.put(replica_set_config(HOSTS[:1], rs="rs0"))

        # An agent without a certificate is refused, and its log says what to set.
        bare = d.agent(HOSTS[0])
        wait_for(
            lambda: "sslMMSServerClientCertificate" in bare.log() and "403" in bare.log(),
            30,
            what="the agent without a client certificate to be refused",
        )
        bare.stop()

        # With a certificate signed by mms.https.CAFile (its key encrypted), the agent reaches goal.
        cert = ca.issue("agent.pem", names=(HOSTS[0],), client=True, password="agent-pass")
        bare.extra |= {
            "sslMMSServerClientCertificate": str(cert),
            "sslMMSServerClientCertificatePassword": "agent-pass",
        }
        bare.start()
        d.wait_goal(v1, 1)
    finally:
        if d is not None:
            d.close()
        server.stop()


def test_required_client_certificates(tmp_path: Path) -> None:
    ca = TestCA.create(tmp_path / "ca")
    client_cert = ca.issue("operator.pem", names=("operator",), client=True)
    server = https_server(
        tmp_path,
        ca,
        "server",
        **{"mms.https.CAFile": str(ca.ca_file), "mms.https.ClientCertificateMode": "required"},
    )
    server.client_cert = client_cert
    server.start()
    try:
        owner = server.create_key()
        with server.client(owner) as api:
            group = api.post("/groups", json={"name": "required"}).json()["id"]
        # Every connection needs a certificate: without one the handshake fails, with one the CLI works.
        with pytest.raises(httpx.HTTPError):
            trust_only = client_verify(ca.ca_file, names=Setting("ca"))
            httpx.get(f"{server.url}/health/ready", verify=trust_only, timeout=5)
        ca_args = ("--ca-file", str(ca.ca_file))
        refused_clearly(
            cli_builds(server, owner, group, *ca_args), "client certificate", "OPSMGR_CLIENT_CERT"
        )
        ok = cli_builds(server, owner, group, *ca_args, env={"OPSMGR_CLIENT_CERT": str(client_cert)})
        assert ok.returncode == 0, ok.stderr
    finally:
        server.stop()


def test_the_secondary_link_over_https(tmp_path: Path) -> None:
    ca = TestCA.create(tmp_path / "ca")
    other = TestCA.create(tmp_path / "other-ca", "someone else's CA")
    pem = ca.issue("secondary.pem")
    conf = {"mms.https.PEMKeyFile": str(pem)}
    with primary_with_secondary(tmp_path, secondary_conf=conf, secondary_ca=ca.ca_file) as pair:
        assert pair.secondary.url.startswith("https://")
        # The backing agent trusts the CA attach gave it: the secondary receives the primary's stores.
        agent_config = pair.agent_config.read_text()
        assert f"sslTrustedMMSServerCertificate={ca.ca_file}" in agent_config
        pair.wait_snapshots()

        # The primary records the CA with its secondary and probes it through that CA.
        settings, _ = embedded_defaults(pair.primary.data_dir)
        store = Store(settings.app_db_uri)
        try:
            recorded = secondaries(store)
        finally:
            store.close()
        assert [(r["url"], r["caFile"]) for r in recorded] == [(pair.secondary.url, str(ca.ca_file))]
        cas = {pair.secondary.url: str(ca.ca_file)}
        assert http_probe(2.0, cas.get)(pair.secondary.url) is None
        refusal = http_probe(2.0, {pair.secondary.url: str(other.ca_file)}.get)(pair.secondary.url)
        assert refusal is not None and "certificate was not accepted" in refusal
        # restore-stores reaches the HTTPS secondary through --ca-file: it gets as far as the running-server
        # lock (the primary serves), where an untrusted certificate would have stopped it first.
        done = pair.restore("--point-in-time-ms", str(now_ms()), "--yes")
        text = done.stdout + done.stderr
        assert done.returncode != 0 and "the primary is running" in text, text
        assert "certificate" not in text, text
