"""Starting the master's and an agent's Thespian actor systems, and naming addresses.

The master and each agent run separate actor systems (separate process trees), so a
master crash leaves the agents and their workers running.  Under multiprocTCPBase all
addresses are pinned to loopback or the configured host via THESPIAN_BASE_IPADDR,
because Thespian otherwise advertises the machine's outward address.  Under
simpleSystemBase (tests) everything shares one in-process system.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from thespian.actors import ActorAddress, ActorSystem

from actors.job_clusters_manager_actor import GLOBAL_NAME as MANAGER
from actors.job_clusters_manager_actor import JobClustersManagerActor
from actors.messages import Done, InitMaster, InitScheduler, Rejected
from actors.scheduler_actor import GLOBAL_NAME as SCHEDULER
from actors.scheduler_actor import SchedulerActor
from mantis.config import Config

log = logging.getLogger("mantis.system")

ASK_TIMEOUT_S = 10.0
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Actor processes log through Thespian's logger process; this is its configuration:
# our loggers at INFO, one line per event, everything else at WARNING.
LOG_DEFS = {
    "version": 1,
    "formatters": {"line": {"format": LOG_FORMAT}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "line", "level": "INFO"}},
    "loggers": {"mantis": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}


class StartupError(RuntimeError):
    """An actor system or a top-level actor did not come up; the message says which."""


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def start_actor_system(base: str, admin_port: int, host: str = "127.0.0.1") -> ActorSystem:
    """A fresh actor system of ``base`` owned by this process.

    A leftover multiprocTCPBase admin on ``admin_port`` (from a crashed run) is shut
    down first: a master or agent must not adopt actors holding stale state.
    """
    if base == "simpleSystemBase":
        return ActorSystem("simpleSystemBase", transientUnique=True)
    if base != "multiprocTCPBase":
        raise StartupError(f"unsupported actor system base {base!r} (multiprocTCPBase, simpleSystemBase)")
    os.environ["THESPIAN_BASE_IPADDR"] = host
    capabilities = {"Admin Port": admin_port}
    if _port_in_use(host, admin_port):
        log.warning("an old actor system holds port %d; shutting it down", admin_port)
        ActorSystem(base, capabilities, logDefs=LOG_DEFS).shutdown()
        deadline = time.time() + 10
        while _port_in_use(host, admin_port) and time.time() < deadline:
            time.sleep(0.1)
    return ActorSystem(base, capabilities, logDefs=LOG_DEFS)


def ask(asys: ActorSystem, target: Any, message: Any, timeout: float = ASK_TIMEOUT_S) -> Any:
    """Ask and return the answer's body; raise StartupError on no answer or a rejection."""
    reply = asys.ask(target, message, timeout)
    if reply is None:
        raise StartupError(f"no answer to {type(message).__name__} within {timeout}s")
    if isinstance(reply, Rejected):
        raise StartupError(reply.reason)
    return reply.body if isinstance(reply, Done) else reply


@dataclass
class MasterActors:
    """The master's actor system and its two top-level actors."""

    system: ActorSystem
    manager: Any
    scheduler: Any
    base: str
    mesos: Any = None  # the MesosFrameworkActor, when Mesos is the resource manager


def start_master_actors(config: Config) -> MasterActors:
    """Start the master's actor system, the scheduler and the clusters manager (which
    recovers every cluster and job from the store)."""
    m = config["master"]
    if config.scheduler.resource_manager not in ("agents", "mesos"):
        raise StartupError(f"unknown scheduler.resource_manager {config.scheduler.resource_manager!r} "
                           "(agents, mesos)")
    asys = start_actor_system(m["actor_system_base"], int(m["admin_port"]), m["host"])
    scheduler = asys.createActor(SchedulerActor, globalName=SCHEDULER)
    ask(asys, scheduler, InitScheduler(config))
    manager = asys.createActor(JobClustersManagerActor, globalName=MANAGER)
    ask(asys, manager, InitMaster(config, scheduler), timeout=60)
    mesos = None
    if config.scheduler.resource_manager == "mesos":
        from actors.mesos_actor import GLOBAL_NAME as MESOS
        from actors.mesos_actor import MesosFrameworkActor
        from actors.messages import InitMesos

        mesos = asys.createActor(MesosFrameworkActor, globalName=MESOS)
        ask(asys, mesos, InitMesos(config, scheduler))
    log.info("master actors up on %s (admin port %s)", m["actor_system_base"], m["admin_port"])
    return MasterActors(asys, manager, scheduler, m["actor_system_base"], mesos)


def address_to_text(address: ActorAddress) -> str | None:
    """``host:port`` of a multiprocTCPBase address, for agents in other processes to find it."""
    details = getattr(address, "addressDetails", None)
    sockname = getattr(details, "sockname", None)
    if not sockname:
        return None
    return f"{sockname[0]}:{sockname[1]}"


def address_from_text(text: str) -> ActorAddress:
    """The multiprocTCPBase address named by ``host:port``."""
    from thespian.system.transport.IPBase import TCPv4ActorAddress

    host, _, port = text.rpartition(":")
    return ActorAddress(TCPv4ActorAddress(host, int(port), external=True))
