"""``opsmgr agent --config automation-agent.config``: one host's agent as a process of its own.

Owns process-level concerns only: reading the config, logging to ``logFile`` and stderr, building the driver
the config names and the HTTP client (with the config's TLS settings), and stopping cleanly on
SIGTERM/SIGINT, which ends the loop and leaves every MongoDB process exactly as it is (an agent restart must
never disturb the deployment). May import ``opsmgr.errors``, ``opsmgr.logs``, ``opsmgr.drivers``,
``opsmgr.sim`` and ``opsmgr.agent``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from opsmgr.agent.backing import BackingStores, load_backing_config
from opsmgr.agent.loop import Agent
from opsmgr.agent.settings import MEMORY_WORLD, AgentSettings, DriverKind, load_settings
from opsmgr.drivers.base import Driver
from opsmgr.logs import setup_logging

if TYPE_CHECKING:
    from opsmgr.sim.world import SimWorld

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 30.0


def quiet_http_logs() -> None:
    """httpx logs every request at INFO; an agent polling every few seconds would drown its own log."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT end the loops; the simulated (or real) processes are left as they are."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def open_world(world: str) -> SimWorld:
    """The simulated world a ``sim.world`` value names: a SQLite file shared by agent processes, or
    :data:`MEMORY_WORLD` for a world private to this process."""
    from opsmgr.sim.world import SimWorld

    return SimWorld.in_memory() if world == MEMORY_WORLD else SimWorld.open(world)


def open_driver(settings: AgentSettings) -> tuple[Driver, Callable[[], None]]:
    """The driver the config names, and how to release it (the processes keep running either way).
    Imported here because each driver pulls in its own backend (pymongo, the simulated world)."""
    if settings.driver is DriverKind.MONGOD:
        from opsmgr.drivers.mongod import MongodDriver

        mongod = MongodDriver(settings.mongod_binary, settings.hostname, settings.state_dir)
        return mongod, mongod.close
    from opsmgr.drivers.sim import SimDriver

    assert settings.sim_world is not None  # settings refuse driver=sim without sim.world
    world = open_world(settings.sim_world)
    return SimDriver(world, settings.hostname), world.close


async def serve_agent(
    settings: AgentSettings,
    driver: Driver,
    *,
    config_path: Path | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run one agent until ``stop`` is set (or SIGTERM/SIGINT when no event is given)."""
    if stop is None:
        stop = asyncio.Event()
        install_stop_signals(stop)
    verify = settings.http_verify()
    if not settings.require_valid_server_certificates:
        log.warning(
            "sslRequireValidMMSServerCertificates=false: the server's TLS certificate is not verified, so "
            "anyone between this host and %s can read and answer this agent's requests",
            settings.base_url,
        )
    async with httpx.AsyncClient(timeout=httpx.Timeout(HTTP_TIMEOUT_S), verify=verify) as http:
        agent = Agent(settings, driver, http, config_path=config_path)
        # The agent on a primary's host may also back up that primary's backing databases (agent.backing).
        backing = load_backing_config(config_path) if config_path is not None else None
        if backing is None:
            await agent.run(stop)
            return
        agent.shipper.feeds.append(BackingStores(agent.runtime, backing, lambda: agent.work))
        # It also carries out the restores of those databases (loaded here only: it needs the stores).
        from opsmgr.agent.backing_restorer import BackingRestorer

        folder = backing.primary_conf.parent if backing.primary_conf is not None else settings.state_dir
        restorer = BackingRestorer(agent.runtime, backing, lambda: agent.work, agent.long, folder)
        await asyncio.gather(agent.run(stop), restorer.run(stop))


def run_agent(config_path: Path) -> None:
    """The ``opsmgr agent`` command. Raises ``InvalidInput`` (naming the keys) for a bad config file."""
    settings = load_settings(config_path)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(settings.log_level, settings.log_path)
    quiet_http_logs()
    log.info(
        "opsmgr agent for %s: project %s at %s, driver %s, polling every %ss",
        settings.hostname,
        settings.group_id,
        settings.base_url,
        settings.driver.value,
        settings.poll_interval_s,
    )
    driver, close = open_driver(settings)
    try:
        asyncio.run(serve_agent(settings, driver, config_path=config_path))
    finally:
        close()
