"""A real HAProxy (Debian's ``haproxy``) in front of several ``opsmgr server`` processes, as an operator
deploys them: HTTP round robin over the servers, each checked on ``/health/ready`` every half second and
taken out after three failed checks (a refused connection fails at once; a slow answer has 3 s). Started in
the foreground on a free loopback port; stopped by its id."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.pgserver import PgServer
from tests.procs import STORE_KEYS, ServerProcess, free_port, servers_sharing, wait_for

BINARY = shutil.which("haproxy") or "/usr/sbin/haproxy"

_CONFIG = """\
global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A busy server answers its health check late, not never: a 500 ms check took every server out under load.
    timeout check 3s
    retries 2
    option redispatch
frontend opsmgr
    bind 127.0.0.1:{port}
    default_backend servers
backend servers
    balance roundrobin
    option httpchk GET /health/ready
{servers}
"""


class HAProxy:
    def __init__(self, root: Path, backends: list[int]) -> None:
        self.root = root
        self.port = free_port()
        self.backends = backends
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HAProxy:
        self.root.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(
            f"    server s{i} 127.0.0.1:{port} check inter 500ms fall 3 rise 1"
            for i, port in enumerate(self.backends)
        )
        config = self.root / "haproxy.cfg"
        config.write_text(_CONFIG.format(port=self.port, servers=servers))
        log = (self.root / "haproxy.log").open("wb")
        self.proc = subprocess.Popen([BINARY, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._answers, 20, 0.1, what="HAProxy answering")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"haproxy exited: {(self.root / 'haproxy.log').read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@contextmanager
def three_servers_behind_haproxy(
    root: Path, pg_server: PgServer, extra: dict[str, str]
) -> Iterator[tuple[list[ServerProcess], HAProxy]]:
    """Three servers on new databases of ``pg_server`` (conf keys ``extra``), started behind a HAProxy."""
    stores = {label: pg_server.create_database() for label in STORE_KEYS}
    servers = servers_sharing(root, stores, ["s0", "s1", "s2"], extra)
    proxy = HAProxy(root / "haproxy", [s.port for s in servers])
    try:
        for server in servers:
            server.start()
        yield servers, proxy.start()
    finally:
        proxy.stop()
        for server in servers:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()

