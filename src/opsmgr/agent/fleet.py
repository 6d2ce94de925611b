"""``opsmgr fleet``: many simulated hosts, each with a full agent loop, in one asyncio process.

Owns the fleet's layout (one directory per host under ``state_root`` with its own ``automation-agent.config``
and agent state, readable by their owner only: they hold the agent API key) and the sharing that lets one
process carry thousands of agents: one ``httpx.AsyncClient`` with a sized connection pool, one simulated
world, and first polls spread over one poll interval so that the agents do not hit the server in one burst.
Every agent is the same ``agent.loop.Agent`` that ``opsmgr agent`` runs; only the driver (``sim``, called
inline: it never blocks) differs from a real host.
May import ``opsmgr.errors``, ``opsmgr.drivers``, ``opsmgr.sim``, ``opsmgr.logs`` and ``opsmgr.agent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from opsmgr.agent.loop import Agent
from opsmgr.agent.main import install_stop_signals, open_world, quiet_http_logs
from opsmgr.agent.settings import MEMORY_WORLD, AgentSettings, DriverKind, render_settings
from opsmgr.agent.state import atomic_write
from opsmgr.drivers.base import Driver
from opsmgr.errors import InvalidInput
from opsmgr.logs import setup_logging

log = logging.getLogger(__name__)

CONFIG_FILE = "automation-agent.config"
# Where ``opsmgr fleet`` reads the agent API key when no key file is given: never the command line, which
# every user of the host can read (ps).
AGENT_KEY_ENV = "OPSMGR_AGENT_KEY"
# httpx's pool looks at every pooled connection (a getpeername each) and every queued request for each
# request it sends: one pool of 256 for a fleet was most of a 600-agent fleet's CPU (stack samples) and
# produced 35 of 60 nominal polls a second. So the agents share small pools instead: one client per
# AGENTS_PER_CLIENT agents, each with its share of the fleet's connections.
MAX_POOL = 128
AGENTS_PER_CLIENT = 64
MAX_DRIVER_THREADS = 128
# Spreading first polls 5 ms apart starts 200 agents a second; never longer than one poll interval.
STAGGER_PER_AGENT_S = 0.005

DriverFactory = Callable[[str], Driver]  # hostname -> the driver of that simulated host


@dataclass(frozen=True)
class FleetHost:
    hostname: str
    group_id: str
    api_key: str


def fleet_hostnames(count: int, *, prefix: str = "sim") -> list[str]:
    """Host names for ``count`` simulated hosts: ``sim000.fleet.internal``, ``sim001...``."""
    width = max(3, len(str(count - 1)))
    return [f"{prefix}{i:0{width}d}.fleet.internal" for i in range(count)]


def host_settings(
    host: FleetHost,
    base_url: str,
    state_root: Path,
    world: str,
    poll_interval_s: float,
    log_level: str = "INFO",
) -> AgentSettings:
    state_dir = state_root / host.hostname
    return AgentSettings(
        group_id=host.group_id,
        api_key=host.api_key,
        base_url=base_url,
        hostname=host.hostname,
        state_dir=state_dir,
        driver=DriverKind.SIM,
        poll_interval_s=poll_interval_s,
        log_file=state_root / "fleet.log",
        log_level=log_level,
        sim_world=world,
    )


def write_host_config(settings: AgentSettings) -> Path:
    path = settings.state_dir / CONFIG_FILE
    atomic_write(path, render_settings(settings).encode())
    return path


async def serve_fleet(
    base_url: str,
    hosts: Sequence[FleetHost],
    state_root: Path,
    driver_for: DriverFactory,
    stop: asyncio.Event,
    *,
    world: str = MEMORY_WORLD,
    poll_interval_s: float = 10.0,
    max_connections: int | None = None,
    driver_threads: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    started: Callable[[list[Agent]], None] | None = None,
) -> list[Agent]:
    """Run one agent per host until ``stop`` is set; returns the agents (for inspection) once all stopped.

    Driver calls run on ``driver_threads`` worker threads (they block: a start waits for the process to
    accept connections). ``transport`` replaces the network (tests); ``started`` gets the agents once they
    exist.
    """
    pool = max_connections or min(MAX_POOL, max(8, len(hosts)))
    shards = max(1, min(pool, -(-len(hosts) // AGENTS_PER_CLIENT)))
    limits = httpx.Limits(max_connections=pool // shards, max_keepalive_connections=pool // shards)
    # A poll waiting for a free pooled connection is not a sign of a dead server: give it a long pool timeout.
    timeout = httpx.Timeout(30.0, pool=120.0)
    threads = driver_threads or min(MAX_DRIVER_THREADS, max(4, len(hosts)))
    with ThreadPoolExecutor(threads, thread_name_prefix="fleet-driver") as executor:
        async with contextlib.AsyncExitStack() as clients:
            http = [
                await clients.enter_async_context(
                    httpx.AsyncClient(limits=limits, timeout=timeout, transport=transport)
                )
                for _ in range(shards)
            ]
            return await _run_agents(
                base_url,
                hosts,
                state_root,
                driver_for,
                stop,
                world,
                poll_interval_s,
                http,
                executor,
                pool,
                started,
            )


async def _run_agents(
    base_url: str,
    hosts: Sequence[FleetHost],
    state_root: Path,
    driver_for: DriverFactory,
    stop: asyncio.Event,
    world: str,
    poll_interval_s: float,
    http: list[httpx.AsyncClient],
    executor: Executor,
    pool: int,
    started: Callable[[list[Agent]], None] | None,
) -> list[Agent]:
    agents = []
    for i, host in enumerate(hosts):
        settings = host_settings(host, base_url, state_root, world, poll_interval_s)
        config_path = write_host_config(settings)
        client = http[i % len(http)]
        agents.append(
            Agent(settings, driver_for(host.hostname), client, executor=executor, config_path=config_path)
        )
    log.info(
        "fleet of %d simulated hosts against %s (state in %s, %d pooled connections in %d clients)",
        len(agents),
        base_url,
        state_root,
        pool,
        len(http),
    )
    if started is not None:
        started(agents)
    spread = min(poll_interval_s, STAGGER_PER_AGENT_S * len(agents))
    await asyncio.gather(*(a.run(stop, first_delay_s=spread * i / len(agents)) for i, a in enumerate(agents)))
    return agents


async def fleet_main(
    base_url: str,
    hosts: Sequence[FleetHost],
    state_root: Path,
    *,
    world: str = MEMORY_WORLD,
    poll_interval_s: float = 10.0,
    stop: asyncio.Event | None = None,
    started: Callable[[list[Agent]], None] | None = None,
) -> list[Agent]:
    """A fleet on one simulated world (a SQLite file, or in memory), until ``stop`` or SIGTERM/SIGINT."""
    from opsmgr.drivers.sim import SimDriver

    if stop is None:
        stop = asyncio.Event()
        install_stop_signals(stop)
    sim = open_world(world)
    try:
        return await serve_fleet(
            base_url,
            hosts,
            state_root,
            lambda h: SimDriver(sim, h),
            stop,
            world=world,
            poll_interval_s=poll_interval_s,
            started=started,
        )
    finally:
        sim.close()


def run_fleet(
    base_url: str,
    group_id: str,
    api_key: str,
    state_root: Path,
    *,
    hostnames: Sequence[str] | None = None,
    count: int = 0,
    world_path: Path | None = None,
    poll_interval: float = 10.0,
    log_level: str = "INFO",
) -> None:
    """The ``opsmgr fleet`` command: the simulated hosts are ``hostnames``, or else ``count`` generated ones
    (:func:`fleet_hostnames`), all agents of project ``group_id``, on one simulated world (``world_path``, or
    in memory). Logs go to stderr and ``state_root/fleet.log``; SIGTERM/SIGINT stop the loops and leave the
    simulated processes as they are."""
    names = list(hostnames) if hostnames else fleet_hostnames(count)
    if not names:
        raise InvalidInput("a fleet needs hostnames or a count above 0", field="hostnames")
    state_root.mkdir(mode=0o700, parents=True, exist_ok=True)  # the hosts' configs hold the agent API key
    setup_logging(log_level, state_root / "fleet.log")
    quiet_http_logs()
    fleet = [FleetHost(h, group_id, api_key) for h in names]
    world = str(world_path.resolve()) if world_path else MEMORY_WORLD
    asyncio.run(fleet_main(base_url, fleet, state_root, world=world, poll_interval_s=poll_interval))
