"""A primary and its secondary for end-to-end tests, reusable by any test that needs to restore the primary's
backing databases (the seed's procedure, Restoration Mode after an app-DB rollback, ...).

:func:`primary_with_secondary` starts two real ``opsmgr server`` processes (each its own data dir and port),
makes the second the secondary of the first with the real ``opsmgr secondary attach``, and starts the
backing-database agent (``opsmgr agent`` with the config ``attach`` wrote) on the primary's stores. Then:

- :meth:`SecondaryPair.wait_snapshots` / :meth:`SecondaryPair.wait_caught_up`: the secondary has a snapshot
  of every store / has received every entry the primary's stores hold now (so a point in time taken before
  the call is restorable);
- :meth:`SecondaryPair.restore`: ``opsmgr backup restore-stores`` with the given options (the primary must be
  stopped, see :meth:`SecondaryPair.stop_primary`, and the backing agent running: it carries the restore
  out); :meth:`SecondaryPair.restore_to` restores all three
  stores (or ``app_only``) to an instant in milliseconds;
- :meth:`SecondaryPair.lose_stores`: the disaster: the primary's SQLite files deleted (conf and gen.key kept).

Every process it starts is stopped when the context ends.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from opsmgr.conf import backing_uris
from opsmgr.store import Store
from opsmgr.store.installation import read_fence
from tests.procs import OPSMGR, ServerProcess, free_port, run_cli, wait_for

STORE_FILES = {"app": "appdb.sqlite", "snapshot": "snapshotdb.sqlite", "oplog": "oplogdb.sqlite"}


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class SecondaryPair:
    primary: ServerProcess
    secondary: ServerProcess
    primary_key: dict[str, Any]
    secondary_key: dict[str, Any]
    group_id: str = ""
    cluster_id: str = ""
    agent_config: Path = Path()
    agent: subprocess.Popen[bytes] | None = None
    outputs: list[str] = field(default_factory=list)

    # The secondary.

    def secondary_api(self) -> httpx.Client:
        return self.secondary.client(self.secondary_key)

    def backing(self) -> dict[str, Any]:
        with self.secondary_api() as api:
            r = api.get(f"/groups/{self.group_id}/backingDatabases/{self.cluster_id}")
            assert r.status_code == 200, r.text
            return dict(r.json())

    def wait_snapshots(self, count: int = 1, timeout: float = 90) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            b = self.backing()
            return (
                b
                if len(b["stores"]) == 3 and all(len(s["snapshots"]) >= count for s in b["stores"])
                else None
            )

        return dict(
            wait_for(ready, timeout, interval=0.3, what=f"{count} snapshot(s) of each backing database")
        )

    def primary_uris(self) -> dict[str, str]:
        """The primary's three store URIs, as its configuration names them (SQLite or PostgreSQL)."""
        return backing_uris(self.primary.data_dir / "conf-mms.properties").by_name()

    def primary_positions(self) -> dict[str, int]:
        out = {}
        for name, uri in self.primary_uris().items():
            store = Store(uri)
            try:
                out[name] = store.oplog_bounds().last_ts or 0
            finally:
                store.close()
        return out

    def wait_caught_up(self, timeout: float = 60) -> None:
        """Every entry the primary's stores hold now has been received by the secondary."""
        wanted = self.primary_positions()

        def caught_up() -> bool:
            stores = {s["name"]: s for s in self.backing()["stores"]}
            return all(
                (tip := stores[n]["tip"]) is not None and tip["time"] * 1_000_000 + tip["increment"] >= pos
                for n, pos in wanted.items()
            )

        wait_for(caught_up, timeout, interval=0.2, what="the secondary to receive the primary's entries")

    # The backing agent.

    def start_agent(self, env: dict[str, str] | None = None) -> None:
        """The backing agent on the primary's host (``env``: its environment, e.g. a crash point)."""
        self.agent = subprocess.Popen(
            [*OPSMGR, "agent", "--config", str(self.agent_config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )

    def kill_agent(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.kill()
            self.agent.wait(10)

    def job(self, job_id: str) -> dict[str, Any]:
        with self.secondary_api() as api:
            r = api.get(f"/groups/{self.group_id}/backingDatabases/{self.cluster_id}/restoreJobs/{job_id}")
            assert r.status_code == 200, r.text
            return dict(r.json())

    def stop_agent(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            try:
                self.agent.wait(20)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait(10)

    # The primary.

    def stop_primary(self) -> None:
        self.primary.stop()

    def lose_stores(self) -> None:
        """The disaster: the primary's three SQLite databases are gone (its conf and gen.key are kept)."""
        for file in STORE_FILES.values():
            for suffix in ("", "-wal", "-shm"):
                (self.primary.data_dir / f"{file}{suffix}").unlink(missing_ok=True)

    def restore(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``opsmgr backup restore-stores`` against this pair with extra ``args`` (add ``--yes``)."""
        done = run_cli(*self.restore_args(*args), timeout=timeout)
        self.outputs.append(done.stdout + done.stderr)
        return done

    def restore_args(self, *args: str) -> list[str]:
        return [
            "backup",
            "restore-stores",
            "--url",
            self.secondary.url,
            "--public-key",
            self.secondary_key["publicKey"],
            "--private-key",
            self.secondary_key["privateKey"],
            "--group",
            self.group_id,
            "--cluster",
            self.cluster_id,
            "--primary-data-dir",
            str(self.primary.data_dir),
            *_ca_args(self.secondary),
            *args,
        ]

    def restore_to(self, at_ms: int, *, app_only: bool = False) -> dict[str, Any]:
        """Restores the stopped primary's stores (or only its app DB) to ``at_ms``; returns the outcome."""
        extra = ["--app-only"] if app_only else []
        done = self.restore("--point-in-time-ms", str(at_ms), "--yes", "--json", *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _ca_args(server: ServerProcess) -> list[str]:
    return ["--ca-file", str(server.ca_file)] if server.ca_file is not None else []


@contextmanager
def primary_with_secondary(
    root: Path,
    *,
    slice_seconds: float = 0.2,
    secondary_conf: dict[str, str] | None = None,
    secondary_ca: Path | None = None,
    primary_conf: dict[str, str] | None = None,
) -> Iterator[SecondaryPair]:
    """``secondary_conf`` keys go into the secondary's configuration (``mms.https.*`` makes it HTTPS, with
    ``secondary_ca`` the CA that signed its certificate, given to ``attach`` with ``--ca-file``);
    ``primary_conf`` keys into the primary's (its stores on PostgreSQL, say)."""
    primary = ServerProcess(root / "primary", free_port(), conf_keys=primary_conf or {})
    secondary = ServerProcess(
        root / "secondary", free_port(), conf_keys=secondary_conf or {}, ca_file=secondary_ca
    )
    pair: SecondaryPair | None = None
    try:
        primary.start()
        secondary.start()
        pair = SecondaryPair(primary, secondary, primary.create_key(), secondary.create_key())
        done = run_cli(
            "secondary",
            "attach",
            "--url",
            secondary.url,
            "--public-key",
            pair.secondary_key["publicKey"],
            "--private-key",
            pair.secondary_key["privateKey"],
            "--primary-data-dir",
            str(primary.data_dir),
            "--hostname",
            "primary.test",
            "--agent-dir",
            str(root / "backing-agent"),
            "--slice-seconds",
            str(slice_seconds),
            "--poll-interval",
            "0.5",
            "--json",
            *_ca_args(secondary),
        )
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        pair.group_id, pair.cluster_id = record["groupId"], record["clusterId"]
        pair.agent_config = Path(record["agentConfig"])
        pair.start_agent()
        yield pair
    finally:
        if pair is not None:
            pair.stop_agent()
        primary.stop()
        secondary.stop()


def fences(pair: SecondaryPair) -> dict[str, str | None]:
    """The restore job whose fence stands on each of the primary's stores (None: no fence, or no file)."""
    out: dict[str, str | None] = {}
    for name, file in STORE_FILES.items():
        path = pair.primary.data_dir / file
        if not path.exists():
            out[name] = None
            continue
        store = Store(f"sqlite:///{path}")
        try:
            fence = read_fence(store)
            out[name] = fence.restore_job_id if fence else None
        finally:
            store.close()
    return out
