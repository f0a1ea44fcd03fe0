"""An agent process: its own actor system, its AgentActor, and the link to the master.

``run_agent`` starts the agent's actor system and AgentActor, then follows the master
(a fixed URL, or the leader published in ZooKeeper): every second it reads the master's
``/api/v1/masterInfo`` and, when the scheduler's address changes (a master restart or
failover) or the master stops answering, tells the AgentActor.
``attach_agent`` does the same inside an existing actor system (simpleSystemBase tests
and the one-process mode), where the scheduler address is handed over directly.
"""
from __future__ import annotations

import logging
import os
import threading
import urllib.request

import ujson

from actors.actor_system import address_from_text, ask, start_actor_system
from actors.agent_actor import AgentActor
from actors.messages import AgentOfferInfo, ConnectMaster, StartAgent
from mantis.config import AgentConfig, Config
from mantis.ha import master_address
from mantis.ha.leader_election import LeaderFollower
from mantis.runtime.announcer import announce_target

log = logging.getLogger("mantis.agent")


def parse_port_ranges(text: str) -> list[tuple[int, int]]:
    """``"31000-31999,32100"`` -> [(31000, 31999), (32100, 32100)]; ValueError if malformed."""
    ranges = []
    for part in str(text).split(","):
        begin, _, end = part.strip().partition("-")
        lo, hi = int(begin), int(end or begin)
        if not 0 < lo <= hi < 65536:
            raise ValueError(f"bad port range {part!r}")
        ranges.append((lo, hi))
    return ranges


def machine_memory_mb() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 4096.0


def offer_from_config(agent: AgentConfig) -> AgentOfferInfo:
    """This agent's offer from the ``agent`` config section (0 cpus/mem = the machine's)."""
    return AgentOfferInfo(
        agent_id=agent.id, hostname=agent.hostname,
        cpus=float(agent.cpus or os.cpu_count() or 1),
        mem_mb=float(agent.mem_mb or machine_memory_mb()),
        disk_mb=float(agent.disk_mb), network_mbps=float(agent.network_mbps),
        ports=parse_port_ranges(agent.ports), attributes=dict(agent.attributes))


def start_agent_actor(asys, config: Config):
    """Create and start the AgentActor in ``asys``; returns its address."""
    address = asys.createActor(AgentActor, globalName=f"mantis-agent-{config.agent.id}")
    w = config.workers
    interval = float(w.heartbeat_interval_s)
    ask(asys, address, StartAgent(offer_from_config(config.agent), interval,
                                  max(3 * interval, float(w.heartbeat_timeout_s) / 2),
                                  announce_target(config)))
    return address


def attach_agent(asys, config: Config, scheduler) -> object:
    """An agent inside an existing actor system, connected straight to ``scheduler``."""
    address = start_agent_actor(asys, config)
    ask(asys, address, ConnectMaster(scheduler))
    return address


def master_scheduler_address(master_url: str, timeout: float = 2.0) -> str | None:
    """The scheduler's ``host:port`` from the master's masterInfo, or None if unreachable
    or if that master is a standby (it has no scheduler running)."""
    try:
        with urllib.request.urlopen(f"{master_url}/api/v1/masterInfo", timeout=timeout) as resp:
            info = ujson.loads(resp.read())
        return info.get("schedulerAddress") if info.get("leader", True) else None
    except (OSError, ValueError):
        return None


class MasterLocator:
    """Where the leading master's API is: a fixed URL, or the leader published in ZooKeeper.

    With ``leader_election.hosts`` configured, the URL comes from the leader's
    description (``apiUrl``) and follows failovers; ``fallback_url`` is used until a
    leader is known.
    """

    def __init__(self, config: Config, fallback_url: str):
        e = config.leader_election
        self.fallback_url = fallback_url
        self.follower = None
        if e.hosts:
            self.follower = LeaderFollower(e.hosts, e.path).start()

    def url(self) -> str | None:
        """The leader's API URL now; None while an election has no leader."""
        if self.follower is None:
            return self.fallback_url
        leader = self.follower.leader()
        return leader.get("apiUrl") if leader else None

    def close(self) -> None:
        """Stop following (closes the ZooKeeper session, if any)."""
        if self.follower is not None:
            self.follower.stop()


def stop_on_sigterm(stop: threading.Event | None = None) -> threading.Event:
    """``stop``, or a new Event, set by SIGTERM when called from the main thread."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        import signal

        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def follow_master(asys, agent, config: Config, master_url: str, stop: threading.Event, name: str,
                  every_poll=None) -> None:
    """Until ``stop`` is set: every second, find the master's scheduler (``master_url``, or
    the leader published in ZooKeeper) and tell ``agent`` with ConnectMaster whenever its
    address changes or the master stops answering.  ``name`` is for the logs;
    ``every_poll``, if given, is called after each poll."""
    locator = MasterLocator(config, master_url)
    current = None
    try:
        while not stop.is_set():
            url = locator.url()
            text = master_scheduler_address(url) if url else None
            if text != current:
                log.info("agent %s: master scheduler now %s (%s)", name, text or "unreachable", url or "no leader")
                target = address_from_text(text) if text else None
                try:
                    ask(asys, agent, ConnectMaster(target))
                    current = text
                except Exception as exc:  # keep following; the next poll retries
                    log.warning("agent %s: could not hand over the master address: %s", name, exc)
            if every_poll is not None:
                every_poll()
            stop.wait(1.0)
    finally:
        locator.close()


def run_agent(config: Config, master_url: str, stop: threading.Event | None = None) -> None:
    """Run an agent until ``stop`` is set (or forever): own actor system, follow the master.

    The master is ``master_url``, or, when ``leader_election.hosts`` is configured, the
    leader published in ZooKeeper: after a failover the agent registers, with the workers
    it runs, at the new leader's scheduler.
    """
    # A stopped agent takes its workers with it (its actor system shuts down below).
    stop = stop_on_sigterm(stop)
    a, e = config.agent, config.leader_election
    # Workers fork from this process and inherit these: how a job's code finds the master.
    os.environ[master_address.URL_VAR] = master_url
    if e.hosts:
        os.environ[master_address.ZOOKEEPER_VAR] = e.hosts
        os.environ[master_address.LEADER_PATH_VAR] = e.path
    asys = start_actor_system(config.master.actor_system_base, int(a.admin_port), config.master.host)
    try:
        agent = start_agent_actor(asys, config)
        log.info("agent %s up (admin port %s), following %s", a.id, a.admin_port,
                 f"the leader in ZooKeeper {e.hosts}{e.path}" if e.hosts else f"master at {master_url}")
        follow_master(asys, agent, config, master_url, stop, a.id)
    finally:
        asys.shutdown()
