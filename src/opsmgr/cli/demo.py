"""``opsmgr demo``, the main job: a server on embedded defaults, a project, an API key, and a 3-member
simulated replica set brought to goal state by a fleet of real agent loops, backed up (snapshots and a PITR
window from the start, an application writing to it), and a secondary server backing up the primary's three
backing databases (through a backing-database agent), all on this machine.

Owns the orchestration of child processes (each started from the same ``opsmgr`` command an operator would
run, keys passed in their environment, never on their command line) and their clean shutdown; everything it
creates goes through the public API. The demo outlives its primary server: the simulated deployment lives in
a world file in the data dir (not in the fleet's memory), the agents retry with backoff while the server is
unreachable, and the supervisor stops and starts the primary (same port, same data) on the requests of
``opsmgr demo primary stop|start`` (``cli.demo_control``), so the seed's restore can be walked on it. The
data dir (0700) and demo.json (0600) are for their owner only.

May import ``opsmgr.errors``, ``opsmgr.command``, ``opsmgr.agent.fleet``, ``opsmgr.agent.state``,
``opsmgr.automation.templates``, ``opsmgr.sim`` (the demo's write load), ``opsmgr.cli.api``,
``opsmgr.cli.demo_control`` and ``opsmgr.cli.secondary``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from opsmgr.automation.templates import replica_set_config
from opsmgr.cli.demo_control import DEMO_MARKER, pending_request, running_record, write_record
from opsmgr.command import opsmgr_command
from opsmgr.errors import InvalidInput, OpsmgrError

if TYPE_CHECKING:
    from opsmgr.cli.api import PublicApi

SIM_HOSTS = ["sim-host-1.opsmgr.sim", "sim-host-2.opsmgr.sim", "sim-host-3.opsmgr.sim"]
REPLICA_SET = "demo-rs"
WORLD_FILE = "world.sqlite"
PRIMARY = "server"

console = Console(stderr=True, soft_wrap=True)


def demo_automation_config() -> dict[str, Any]:
    return replica_set_config(SIM_HOSTS, REPLICA_SET, "7.0.14", oplog_size_mb=1024)


@dataclass
class Children:
    """The demo's child processes, stopped in reverse order of start. An essential child's exit ends the
    demo; another's (the primary server, which the walk stops) is the caller's to notice."""

    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    optional: set[str] = field(default_factory=set)

    def start(
        self,
        name: str,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        *,
        essential: bool = True,
    ) -> subprocess.Popen[bytes]:
        """``env`` adds to this process's environment: where a secret goes, never ``args`` (ps shows them).
        A child of the same name that ended before is forgotten."""
        self.procs = [(n, p) for n, p in self.procs if n != name or p.poll() is None]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **env} if env else None,
            )
        self.procs.append((name, proc))
        if not essential:
            self.optional.add(name)
        return proc

    def get(self, name: str) -> subprocess.Popen[bytes] | None:
        return next((p for n, p in reversed(self.procs) if n == name), None)

    def check(self) -> None:
        for name, proc in self.procs:
            if name not in self.optional and proc.poll() is not None:
                raise OpsmgrError(f"the {name} exited with status {proc.returncode}; see its log")

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(self.procs):
            _reap(proc)

    def stop_one(self, name: str) -> None:
        proc = self.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            _reap(proc, timeout=60)  # a server's clean stop checkpoints its stores into their files


def _reap(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def prepare_data_dir(data_dir: Path) -> None:
    """A re-run replaces the previous demo's data dir cleanly; anything else in the way is left alone, and so
    is the dir of a demo that still runs (its servers hold their stores there)."""
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / DEMO_MARKER).exists() and not (data_dir / "primary").exists():
            raise InvalidInput(
                f"{data_dir} exists and is not an opsmgr demo directory; choose another --data-dir",
                field="--data-dir",
            )
        if (running := still_running(data_dir)) is not None:
            raise InvalidInput(
                f"a demo runs in {data_dir} (pid {running['pid']}); stop it first", field="--data-dir"
            )
        shutil.rmtree(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # also when it existed (empty): demo.json and the agents' configs hold keys


def still_running(data_dir: Path) -> dict[str, Any] | None:
    try:
        return running_record(data_dir)
    except OpsmgrError:  # no readable record, or its demo has ended
        return None


def wait_ready(
    url: str, children: Children, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children.check()
        if proc.poll() is not None:
            raise OpsmgrError(f"the server for {url} exited with status {proc.returncode}; see {log_path}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise OpsmgrError(f"the server at {url} did not become ready within {timeout:.0f}s")


def create_key(data_dir: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            *opsmgr_command(),
            "keys",
            "create",
            "--role",
            "ORG_OWNER",
            "--json",
            "--data-dir",
            str(data_dir),
            "--desc",
            "opsmgr demo",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise OpsmgrError(f"could not create the demo's API key: {done.stderr.strip()}")
    return dict(json.loads(done.stdout))


DEMO_USER = "admin"


def create_user(data_dir: Path) -> dict[str, str]:
    """The demo's web UI user, an Organization Owner with a new random password (on stdin, never argv)."""
    password = secrets.token_urlsafe(12)
    done = subprocess.run(
        [
            *opsmgr_command(),
            "users",
            "create",
            "--username",
            DEMO_USER,
            "--role",
            "ORG_OWNER",
            "--data-dir",
            str(data_dir),
        ],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise OpsmgrError(f"could not create the demo's UI user: {done.stderr.strip()}")
    return {"username": DEMO_USER, "password": password}


def checked(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise OpsmgrError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return dict(response.json())


def wait_goal(api: httpx.Client, group_id: str, children: Children, timeout: float) -> int:
    """Poll automationStatus with a progress bar until every process has reached the goal version."""
    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("[bold]agents converging[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} processes at goal"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("goal", total=len(SIM_HOSTS))
        while time.monotonic() < deadline:
            children.check()
            status = checked(api.get(f"/groups/{group_id}/automationStatus"))
            done = sum(
                1 for p in status["processes"] if p["lastGoalVersionAchieved"] == status["goalVersion"]
            )
            progress.update(task, completed=done, total=len(status["processes"]))
            if status["processes"] and done == len(status["processes"]):
                return int(status["goalVersion"])
            time.sleep(0.3)
    raise OpsmgrError(f"the simulated replica set did not reach goal state within {timeout:.0f}s")


def start_server(
    children: Children, name: str, server_dir: Path, port: int, log_path: Path, *, essential: bool = True
) -> str:
    """An ``opsmgr server`` on loopback, once it answers ready; returns its URL."""
    url = f"http://127.0.0.1:{port}"
    proc = children.start(
        name,
        [
            *opsmgr_command(),
            "server",
            "--data-dir",
            str(server_dir),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        log_path,
        essential=essential,
    )
    wait_ready(url, children, proc, log_path)
    return url


def start_fleet(
    api: httpx.Client, url: str, data_dir: Path, children: Children, poll_interval: float
) -> tuple[str, str, int]:
    """The demo project, its agent key and goal config, and the fleet that brings it to goal: returns the
    project id, the agent key and the goal version reached. The simulated hosts live in a world file, so
    they (and their data) outlive any of the demo's processes but the fleet's own host."""
    from opsmgr.agent.fleet import AGENT_KEY_ENV  # here: the agent loop is heavy and every CLI command
    # imports this module (a drill reuses its process handling)

    group_id = checked(api.post("/groups", json={"name": "demo"}))["id"]
    agent_key = checked(api.post(f"/groups/{group_id}/agentapikeys", json={"desc": "demo fleet"}))["key"]
    checked(api.put(f"/groups/{group_id}/automationConfig", json=demo_automation_config()))
    children.start(
        "fleet",
        [
            *opsmgr_command(),
            "fleet",
            "--url",
            url,
            "--group-id",
            group_id,
            "--hosts",
            ",".join(SIM_HOSTS),
            "--state-dir",
            str(data_dir / "fleet"),
            "--world",
            str(data_dir / WORLD_FILE),
            "--poll-interval",
            str(poll_interval),
        ],
        data_dir / "fleet.log",
        env={AGENT_KEY_ENV: agent_key},
    )
    return group_id, agent_key, wait_goal(api, group_id, children, timeout=120)


def start_backup(api: httpx.Client, group_id: str, world: Path, children: Children) -> str:
    """An application writing to the replica set, and its backup started as an operator starts it (the
    cluster's backupConfig set to STARTED); returns the cluster id. The first snapshot comes later
    (:func:`wait_first_snapshot`)."""
    from opsmgr.sim.model import WriteLoad
    from opsmgr.sim.world import SimWorld

    sim = SimWorld.open(world)
    try:
        set_id = sim.set_id_of(SIM_HOSTS[0], f"{REPLICA_SET}_0")
        if set_id is None:
            raise OpsmgrError(f"the simulated replica set {REPLICA_SET} is not in {world}")
        sim.set_write_load(set_id, WriteLoad(rate=2, keys=100, payload_bytes=64))
    finally:
        sim.close()
    deadline = time.monotonic() + 60
    while not (clusters := checked(api.get(f"/groups/{group_id}/clusters"))["results"]):
        children.check()
        if time.monotonic() > deadline:
            raise OpsmgrError(f"the project shows no cluster for {REPLICA_SET} within 60s")
        time.sleep(0.3)
    cluster_id = str(clusters[0]["id"])
    checked(api.patch(f"/groups/{group_id}/backupConfigs/{cluster_id}", json={"statusName": "STARTED"}))
    return cluster_id


def wait_first_snapshot(api: httpx.Client, group_id: str, cluster_id: str, children: Children) -> None:
    deadline = time.monotonic() + 120
    while True:
        children.check()
        listing = checked(api.get(f"/groups/{group_id}/clusters/{cluster_id}/snapshots"))
        if listing["totalCount"] >= 1 and listing.get("pitrWindow"):
            return
        if time.monotonic() > deadline:
            raise OpsmgrError(f"no snapshot of {REPLICA_SET} in 120 s")
        time.sleep(0.3)


@dataclass
class PrimaryServer:
    """The demo's primary ``opsmgr server``, stopped and started again (same port, same data) on request."""

    children: Children
    data_dir: Path
    port: int
    log_path: Path

    def start(self) -> str:
        proc = self.children.get(PRIMARY)
        if proc is not None and proc.poll() is None:
            return f"http://127.0.0.1:{self.port}"
        return start_server(self.children, PRIMARY, self.data_dir, self.port, self.log_path, essential=False)

    def stop(self) -> None:
        self.children.stop_one(PRIMARY)

    def view(self) -> dict[str, Any]:
        """What demo.json says of it: where it keeps its data and logs, and whether it runs."""
        proc = self.children.get(PRIMARY)
        running = proc is not None and proc.poll() is None
        return {
            "dataDir": str(self.data_dir),
            "port": self.port,
            "log": str(self.log_path),
            "state": "running" if running else "stopped",
            "pid": proc.pid if running and proc is not None else None,
            "exitStatus": None if running or proc is None else proc.returncode,
        }


def act(primary: PrimaryServer, action: str) -> dict[str, Any]:
    """One request of ``opsmgr demo primary stop|start``: the primary's view after it, with the error that
    stopped it (a start the server refused, e.g. its preflight after a restore) or None."""
    try:
        if action == "primary stop":
            primary.stop()
            console.print("primary server stopped (the agents keep retrying; the deployment runs on)")
        elif action == "primary start":
            console.print(f"primary server ready again at {primary.start()}")
        else:
            return {**primary.view(), "error": f"the demo does not know the request {action!r}"}
    except OpsmgrError as exc:
        console.print(f"[red]{exc}[/]", highlight=False)
        return {**primary.view(), "error": str(exc)}
    return {**primary.view(), "error": None}


def supervise(data_dir: Path, record: dict[str, Any], children: Children, primary: PrimaryServer) -> None:
    """Until Ctrl-C/SIGTERM: any essential child's exit ends the demo; the primary's does not (it is noted
    in demo.json); requests from ``opsmgr demo primary stop|start`` are carried out in turn."""
    handled: str | None = None
    while True:
        children.check()
        request = pending_request(data_dir, handled)
        if request is not None:
            handled = request["id"]
            record.update(primary=act(primary, request["action"]), handled=handled)
            write_record(data_dir, record)
        elif primary.view()["state"] != record["primary"]["state"]:
            record["primary"] = {**primary.view(), "error": None}
            console.print(f"the primary server exited (status {record['primary']['exitStatus']})")
            write_record(data_dir, record)
        time.sleep(0.2)


def run_demo(data_dir: Path, port: int, *, poll_interval: float = 1.0) -> None:
    data_dir = data_dir.resolve()
    prepare_data_dir(data_dir)
    children = Children()

    def on_signal(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        console.print(f"[bold]opsmgr demo[/] in {data_dir}")
        primary = PrimaryServer(children, data_dir / "primary", port, data_dir / "server.log")
        url = primary.start()
        console.print(f"server ready at {url}")
        record, version = set_up(data_dir, url, primary, children, poll_interval)
        write_record(data_dir, record)
        print_welcome(record, version, data_dir)
        supervise(data_dir, record, children, primary)
    except KeyboardInterrupt:
        console.print("\nstopping the demo...")
    finally:
        children.stop()
        console.print(f"demo stopped; its data stays in {data_dir}")


def set_up(
    data_dir: Path, url: str, primary: PrimaryServer, children: Children, poll_interval: float
) -> tuple[dict[str, Any], int]:
    """Everything the demo creates, once the primary runs: demo.json's record and the goal version."""
    key = create_key(primary.data_dir)
    ui_user = create_user(primary.data_dir)
    with httpx.Client(
        base_url=f"{url}/api/public/v1.0",
        auth=httpx.DigestAuth(key["publicKey"], key["privateKey"]),
        timeout=30,
    ) as api:
        group_id, agent_key, version = start_fleet(api, url, data_dir, children, poll_interval)
        cluster_id = start_backup(api, group_id, data_dir / WORLD_FILE, children)
        secondary = start_secondary(data_dir, primary.data_dir, children, poll_interval)
        wait_first_snapshot(api, group_id, cluster_id, children)
    record = {
        "url": url,
        "groupId": group_id,
        "clusterId": cluster_id,
        "publicKey": key["publicKey"],
        "privateKey": key["privateKey"],
        "agentApiKey": agent_key,
        "ui": {"url": f"{url}/ui/", **ui_user},
        "secondary": secondary,
        "pid": os.getpid(),
        "primary": {**primary.view(), "error": None},
        "handled": None,
    }
    return record, version


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_secondary(
    data_dir: Path, primary_dir: Path, children: Children, poll_interval: float
) -> dict[str, Any]:
    """A second server, made the primary's secondary: it backs up the primary's three backing databases
    through the agent on the primary's host (here), up to a first snapshot of each."""
    from opsmgr.cli.api import PublicApi
    from opsmgr.cli.secondary import attach_secondary

    secondary_dir = data_dir / "secondary"
    url = start_server(
        children, "secondary server", secondary_dir, free_port(), data_dir / "secondary-server.log"
    )
    key = create_key(secondary_dir)
    with PublicApi(url, key["publicKey"], key["privateKey"]) as api:
        attached = attach_secondary(
            api,
            url,
            primary_dir / "conf-mms.properties",
            group_name="primary-backing-databases",
            hostname=socket.gethostname(),
            agent_dir=data_dir / "backing-agent",
            poll_interval=poll_interval,
        )
        children.start(
            "backing-database agent",
            [*opsmgr_command(), "agent", "--config", attached["agentConfig"]],
            data_dir / "backing-agent.log",
        )
        path = f"/groups/{attached['groupId']}/backingDatabases/{attached['clusterId']}"
        wait_first_snapshots(api, path, children)
    console.print(f"secondary ready at {url}, backing up the primary's stores")
    return {
        "url": url,
        "groupId": attached["groupId"],
        "publicKey": key["publicKey"],
        "privateKey": key["privateKey"],
        "clusterId": attached["clusterId"],
    }


def wait_first_snapshots(api: PublicApi, path: str, children: Children) -> None:
    """Until the secondary holds a snapshot of each of the primary's three backing databases."""
    deadline = time.monotonic() + 120
    while True:
        children.check()
        stores = api.get(path)["stores"]
        if len(stores) == 3 and all(s["snapshots"] for s in stores):
            return
        if time.monotonic() > deadline:
            raise OpsmgrError("the secondary took no snapshot of the primary's backing databases in 120 s")
        time.sleep(0.3)


def print_welcome(record: dict[str, Any], version: int, data_dir: Path) -> None:
    base = f"{record['url']}/api/public/v1.0"
    auth = f"--digest -u {record['publicKey']}:{record['privateKey']}"
    console.print(
        f"""
[bold green]Ready.[/] A 3-member simulated replica set (demo-rs) reached goal state
at config version {version}.

  URL          {record["url"]}
  web UI       {record["ui"]["url"]}  (user {record["ui"]["username"]}, password {record["ui"]["password"]})
  public key   {record["publicKey"]}
  private key  {record["privateKey"]}
  project id   {record["groupId"]}
  written to   {data_dir / DEMO_MARKER}
  secondary    {record["secondary"]["url"]} (backs up this server's backing databases; see demo.json)

Try next:
  curl {auth} {base}/groups/{record["groupId"]}/automationStatus
  curl {auth} {base}/groups/{record["groupId"]}/hosts
  curl {auth} {base}/groups/{record["groupId"]}/automationConfig
  curl {record["url"]}/metrics

demo-rs is backed up (snapshots and a PITR window); walk the seed's restore of this server from its
secondary with `opsmgr demo status | env | point | upgrade | primary stop | primary start --data-dir
{data_dir}` (README.md, "Walking a restore with the demo").

Press Ctrl-C to stop everything.""",
        highlight=False,
    )
