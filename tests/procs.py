"""Real processes for end-to-end tests: ``opsmgr server`` on a free loopback port, keys made with the real
CLI, and HTTP clients that authenticate the way Ops Manager clients do (Digest for the public API, Basic for
the agent API). Every process started here is stopped by the fixture that started it.

A server given ``conf_keys`` gets them in its embedded ``conf-mms.properties`` before it starts; with
``mms.https.PEMKeyFile`` among them it serves HTTPS, its ``url`` is ``https://`` and the test's clients
trust ``ca_file`` (and present ``client_cert`` when the server asks for one).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from opsmanager import OpsManagerClient

from opsmgr.server.settings import CONF_NAME, embedded_defaults
from opsmgr.tls import Setting, client_verify

_SCRIPT = Path(sys.executable).with_name("opsmgr")
# The installed console script is what an operator runs; fall back to the module when it is not installed.
OPSMGR = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "opsmgr.cli.main"]


@contextmanager
def started_server(data_dir: Path, conf_keys: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """A real ``opsmgr server`` on a free loopback port (``conf_keys`` in its embedded configuration), stopped
    when the context ends."""
    srv = ServerProcess(data_dir, free_port(), conf_keys=dict(conf_keys or {})).start()
    try:
        yield srv
    finally:
        srv.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the condition may fail while things start up
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or condition}: last error {last_exc!r}"
    )


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OPSMGR, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=stdin,
    )


@dataclass
class ServerProcess:
    data_dir: Path
    port: int
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    conf: Path | None = None  # a conf-mms.properties to run with instead of the embedded setup in data_dir
    conf_keys: dict[str, str] = field(default_factory=dict)  # set in the embedded setup before each start
    ca_file: Path | None = None  # what the test's clients trust for an HTTPS server
    client_cert: Path | None = None  # what they present when it asks

    def setup_args(self) -> list[str]:
        """How the CLI finds this server's configuration: ``--conf FILE`` or ``--data-dir DIR``."""
        return ["--conf", str(self.conf)] if self.conf is not None else ["--data-dir", str(self.data_dir)]

    @property
    def url(self) -> str:
        scheme = "https" if self.conf_keys.get("mms.https.PEMKeyFile") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> Any:
        """``httpx``'s ``verify=`` for the test's own requests to this server."""
        return client_verify(
            self.ca_file, client_cert=self.client_cert, names=Setting("ServerProcess.ca_file")
        )

    def start(self, wait: bool = True) -> ServerProcess:
        if self.conf_keys:
            if not (self.data_dir / CONF_NAME).exists():
                embedded_defaults(self.data_dir, self.port)
            self.set_conf(self.conf_keys)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server-{self.port}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *OPSMGR,
                    "server",
                    *self.setup_args(),
                    "--port",
                    str(self.port),
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()  # a server that never became ready must not outlive the test
                raise
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            return httpx.get(f"{self.url}/health/ready", timeout=2, verify=self.verify).status_code == 200

        try:
            wait_for(ready, timeout, what="server readiness")
        except RuntimeError as exc:
            raise AssertionError(str(exc)) from None

    def held_jobs(self) -> set[str]:
        """The periodic jobs this server holds, from its ``/metrics`` (none when it does not answer)."""
        try:
            text = httpx.get(f"{self.url}/metrics", timeout=5).text
        except httpx.HTTPError:
            return set()
        return set(re.findall(r'opsmgr_job_held\{job="([^"]+)"\} 1', text))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def set_conf(self, values: dict[str, str]) -> None:
        """Set keys of the data dir's ``conf-mms.properties`` (created by a first start), replacing earlier
        lines for the same keys; takes effect at the next start."""
        conf = self.data_dir / CONF_NAME
        kept = [line for line in conf.read_text().splitlines() if line.split("=", 1)[0].strip() not in values]
        conf.write_text("\n".join([*kept, *(f"{k}={v}" for k, v in values.items())]) + "\n")

    def create_key(self, role: str = "ORG_OWNER", **opts: str) -> dict[str, Any]:
        extra = [x for k, v in opts.items() for x in (f"--{k.replace('_', '-')}", v)]
        done = run_cli("keys", "create", "--role", role, "--json", *self.setup_args(), *extra)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def create_user(self, username: str, password: str, role: str = "ORG_OWNER", **opts: str) -> None:
        """A web UI user made with the real ``opsmgr users create`` (the password on stdin)."""
        extra = [x for k, v in opts.items() for x in (f"--{k.replace('_', '-')}", v)]
        args = ("users", "create", "--username", username, "--role", role, *self.setup_args(), *extra)
        done = run_cli(*args, stdin=password + "\n")
        assert done.returncode == 0, done.stderr

    def ops_manager_client(self, key: dict[str, Any]) -> OpsManagerClient:
        """The published ``opsmanager`` client on this server, unthrottled and without retries (a test
        wants each answer as it is)."""
        return OpsManagerClient(
            base_url=self.url,
            public_key=key["publicKey"],
            private_key=key["privateKey"],
            rate_limit=0,
            retry_count=0,
            verify_ssl=self.verify,
        )

    def client(self, key: dict[str, Any]) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/public/v1.0",
            auth=httpx.DigestAuth(key["publicKey"], key["privateKey"]),
            timeout=10,
            verify=self.verify,
        )


@dataclass
class AgentProcess:
    """One ``opsmgr agent`` process managing one simulated host of a shared sim world file."""

    root: Path
    hostname: str
    base_url: str
    group_id: str
    api_key: str
    world: Path
    poll_interval: float = 0.2
    proc: subprocess.Popen[bytes] | None = None
    extra: dict[str, str] = field(default_factory=dict)  # more automation-agent.config keys (TLS, ...)

    @property
    def config_path(self) -> Path:
        return self.root / self.hostname / "automation-agent.config"

    @property
    def log_path(self) -> Path:
        return self.root / self.hostname / "agent.log"

    def write_config(self) -> None:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "\n".join(
                [
                    f"mmsGroupId={self.group_id}",
                    f"mmsApiKey={self.api_key}",
                    f"mmsBaseUrl={self.base_url}",
                    f"hostname={self.hostname}",
                    "stateDir=state",
                    f"logFile={self.log_path}",
                    "driver=sim",
                    f"sim.world={self.world}",
                    f"pollIntervalSeconds={self.poll_interval}",
                    *(f"{k}={v}" for k, v in self.extra.items()),
                ]
            )
            + "\n"
        )

    def start(self) -> AgentProcess:
        self.write_config()
        self.proc = subprocess.Popen(
            [*OPSMGR, "agent", "--config", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


STORE_KEYS = {
    "application database": "mongo.mongoUri",
    "snapshot metadata store": "mms.snapshotMetadataStore.uri",
    "oplog metadata store": "mms.oplogMetadataStore.uri",
}


def write_conf(
    folder: Path,
    stores: dict[str, str],
    gen_key: Path,
    blockstore: Path,
    port: int,
    extra: dict[str, str] | None = None,
) -> Path:
    """A ``conf-mms.properties`` in ``folder`` naming the three stores (by label, as in STORE_KEYS), gen.key,
    the blockstore and the port, plus ``extra`` keys."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{STORE_KEYS[label]}={uri}" for label, uri in stores.items()]
    lines += [f"mms.blockstore.path={blockstore}", f"mms.genKeyPath={gen_key}", f"mms.port={port}"]
    lines += [f"{key}={value}" for key, value in (extra or {}).items()]
    conf = folder / "conf-mms.properties"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def servers_sharing(
    root: Path, stores: dict[str, str], names: list[str], extra: dict[str, str] | None = None
) -> list[ServerProcess]:
    """Servers (not started) that share ``stores`` and one gen.key, each with its own conf and blockstore."""
    from opsmgr.store.crypto import GenKey

    gen_key = root / "gen.key"
    GenKey.create(gen_key)
    servers = []
    for name in names:
        port = free_port()
        conf = write_conf(root / name, stores, gen_key, root / name / "blockstore", port, extra)
        servers.append(ServerProcess(root / name / "data", port, conf=conf))
    return servers
