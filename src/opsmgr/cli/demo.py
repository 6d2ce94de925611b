"""``opsmgr demo``, the main job: a server on embedded defaults, a project, an API key, and a 3-member
simulated replica set brought to goal state by a fleet of real agent loops, and a secondary server backing up
the primary's three backing databases (through a backing-database agent), all on this machine.

Owns the orchestration of child processes (each started from the same ``opsmgr`` command an operator would
run, keys passed in their environment, never on their command line) and their clean shutdown; everything it
creates goes through the public API. The data dir (0700) and demo.json (0600) are for their owner only.

May import ``opsmgr.errors``, ``opsmgr.command``, ``opsmgr.agent.fleet``, ``opsmgr.agent.state``,
``opsmgr.automation.templates``, ``opsmgr.cli.api`` and ``opsmgr.cli.secondary``.
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

from opsmgr.agent.fleet import AGENT_KEY_ENV
from opsmgr.agent.state import atomic_write
from opsmgr.automation.templates import replica_set_config
from opsmgr.command import opsmgr_command
from opsmgr.errors import InvalidInput, OpsmgrError

if TYPE_CHECKING:
    from opsmgr.cli.api import PublicApi

DEMO_MARKER = "demo.json"
SIM_HOSTS = ["sim-host-1.opsmgr.sim", "sim-host-2.opsmgr.sim", "sim-host-3.opsmgr.sim"]

console = Console(stderr=True, soft_wrap=True)


def demo_automation_config() -> dict[str, Any]:
    return replica_set_config(SIM_HOSTS, "demo-rs", "7.0.14", oplog_size_mb=1024)


@dataclass
class Children:
    """The demo's child processes, stopped in reverse order of start."""

    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(
        self, name: str, args: list[str], log_path: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """``env`` adds to this process's environment: where a secret goes, never ``args`` (ps shows them)."""
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **env} if env else None,
            )
        self.procs.append((name, proc))
        return proc

    def check(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise OpsmgrError(f"the {name} exited with status {proc.returncode}; see its log")

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def prepare_data_dir(data_dir: Path) -> None:
    """A re-run replaces the previous demo's data dir cleanly; anything else in the way is left alone."""
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / DEMO_MARKER).exists() and not (data_dir / "primary").exists():
            raise InvalidInput(
                f"{data_dir} exists and is not an opsmgr demo directory; choose another --data-dir",
                field="--data-dir",
            )
        shutil.rmtree(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # also when it existed (empty): demo.json and the agents' configs hold keys


def wait_ready(url: str, children: Children, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children.check()
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


def start_server(children: Children, name: str, server_dir: Path, port: int, log_path: Path) -> str:
    """An ``opsmgr server`` on loopback, once it answers ready; returns its URL."""
    url = f"http://127.0.0.1:{port}"
    children.start(
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
    )
    wait_ready(url, children)
    return url


def start_fleet(
    api: httpx.Client, url: str, data_dir: Path, children: Children, poll_interval: float
) -> tuple[str, str, int]:
    """The demo project, its agent key and goal config, and the fleet that brings it to goal: returns the
    project id, the agent key and the goal version reached."""
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
            "--poll-interval",
            str(poll_interval),
        ],
        data_dir / "fleet.log",
        env={AGENT_KEY_ENV: agent_key},
    )
    return group_id, agent_key, wait_goal(api, group_id, children, timeout=120)


def run_demo(data_dir: Path, port: int, *, poll_interval: float = 1.0, exit_when_ready: bool = False) -> None:
    data_dir = data_dir.resolve()
    prepare_data_dir(data_dir)
    children = Children()

    def on_signal(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        console.print(f"[bold]opsmgr demo[/] in {data_dir}")
        primary_dir = data_dir / "primary"
        url = start_server(children, "server", primary_dir, port, data_dir / "server.log")
        console.print(f"server ready at {url}")
        key = create_key(primary_dir)
        ui_user = create_user(primary_dir)
        with httpx.Client(
            base_url=f"{url}/api/public/v1.0",
            auth=httpx.DigestAuth(key["publicKey"], key["privateKey"]),
            timeout=30,
        ) as api:
            group_id, agent_key, version = start_fleet(api, url, data_dir, children, poll_interval)
        record = {
            "url": url,
            "groupId": group_id,
            "publicKey": key["publicKey"],
            "privateKey": key["privateKey"],
            "agentApiKey": agent_key,
            "ui": {"url": f"{url}/ui/", **ui_user},
            "secondary": start_secondary(data_dir, primary_dir, children, poll_interval),
        }
        atomic_write(data_dir / DEMO_MARKER, (json.dumps(record, indent=2) + "\n").encode())
        print_welcome(record, version, data_dir)
        if exit_when_ready:
            return
        while True:
            children.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("\nstopping the demo...")
    finally:
        children.stop()
        console.print(f"demo stopped; its data stays in {data_dir}")


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

Press Ctrl-C to stop everything.""",
        highlight=False,
    )
