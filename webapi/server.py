"""The master process: actors, the embedded local agent, the API server, the election.

``run_master`` serves the API, then either leads at once (one master) or joins the
leader election in ZooKeeper and serves redirects to the leader until elected.  Leading
means running the master's actor system (which recovers every cluster and job from the
store); losing ZooKeeper means shutting it down at once.  The local agent, when
configured, is a separate process in its own session (it must outlive a master crash).
``serve_api`` is the piece tests use with an in-process actor system.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import tornado.httpserver
import tornado.netutil
import tornado.web

from actors.actor_system import MasterActors, start_master_actors
from mantis import config as config_module
from mantis.config import Config
from mantis.ha.leader_election import LeaderElection
from mantis.ha.master_role import STOPPED, MasterRole
from webapi import views
from webapi.access import AccessPolicy, public_config
from webapi.app import make_app
from webapi.gateway import Gateway
from webapi.standby import RoleRouter, make_standby_app

log = logging.getLogger("mantis.master")


def serve_api(master, config: Config, port: int | None = None) -> tuple[tornado.httpserver.HTTPServer, Gateway, int]:
    """Listen with the API on the config's host and port (0 = any free port)."""
    gateway = Gateway(master, public_config(config.to_dict()))  # the JSON view, as masterConfigs answers it
    server = tornado.httpserver.HTTPServer(make_app(gateway, access=AccessPolicy.from_config(config)))
    m = config.master
    sockets = tornado.netutil.bind_sockets(m.api_port if port is None else port, address=m.host,
                                           family=socket.AF_INET)
    server.add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    return server, gateway, bound


def _agent_running(config: Config) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((config.master.host, int(config.agent.admin_port))) == 0


def start_local_agent(config_path: str | None, overrides: list[str], master_url: str,
                      log_path=None) -> subprocess.Popen | None:
    """Start ``mantis agent`` in its own session unless one already holds the agent port;
    its output (and its workers') goes to ``log_path`` when given."""
    config = config_module.load(config_path, overrides)
    if _agent_running(config):
        log.info("local agent already running on admin port %s; reusing it", config.agent.admin_port)
        return None
    cmd = [sys.executable, "-m", "mantis.cli", "agent", "--master", master_url]
    if config_path:
        cmd += ["--config", config_path]
    for item in overrides:
        cmd += ["--set", item]
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115  the child holds it from here
    try:
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=out, stderr=subprocess.STDOUT if out else None)
    finally:
        if out is not None:
            out.close()
    log.info("local agent started (pid %d)", proc.pid)
    return proc


def lease_config(config: Config, lease) -> Config:
    """``config`` with the store fenced by ``lease`` (a ZooKeeper store only), for the actors.

    The actors open the store in their own processes from the config they are given, so
    the term travels as the lease's znode and version: writes from this term fail once a
    newer leader holds the election.  ``config`` itself is frozen and stays as it was.
    """
    if lease is None or config.store.type != "zookeeper":
        return config
    return config.replace("store", lease_node=lease.node_path, lease_version=lease.node_version)


class MasterService:
    """The serving half of one master process: the API under its role, actors while leading.

    ``lead(lease)`` starts the actors (which load every cluster and job from the store and
    reattach the workers agents report) and switches the API to the full application;
    ``stand_by()`` switches the API to redirects at once and then shuts the actors down
    (workers live on their agents and are not touched).  Both block; with an election they
    run on its thread, strictly alternating.  ``loop`` is the IOLoop serving ``router``.
    """

    def __init__(self, config: Config, loop: asyncio.AbstractEventLoop, router: RoleRouter, url: str,
                 election=None):
        self.config, self.loop, self.router, self.url = config, loop, router, url
        self.election = election
        self.started_at = time.time()
        self.role = MasterRole()
        self.access = AccessPolicy.from_config(config)
        self.master: MasterActors | None = None
        self.gateway: Gateway | None = None
        self.leading_event = threading.Event()
        self.standby_app = make_standby_app(self.info, self.leader_url)

    def description(self) -> dict:
        """What this master publishes in ZooKeeper while it leads."""
        m = self.config.master
        return {"host": m.host, "apiPort": int(self.url.rpartition(":")[2]), "apiUrl": self.url,
                "actorSystem": f"{m.host}:{m.admin_port}", "pid": os.getpid()}

    def info(self) -> dict:
        """This master's own part of masterInfo (role, terms, where it serves)."""
        m = self.config.master
        return dict(views.master_description(m.host, self.description()["apiPort"], self.started_at),
                    **self.role.describe(), apiUrl=self.url, adminPort=m.admin_port,
                    actorSystemBase=m.actor_system_base)

    def leader_url(self) -> str | None:
        """The leader's API URL (this master's own while it leads), None when nobody leads."""
        if self.role.leading:
            return self.url
        if self.election is None:
            return None  # a single master that is not up yet (or stopping)
        if not self.election.client.connected:
            return None  # cut off from ZooKeeper: nobody is known to lead, answer at once
        try:
            leader = self.election.current_leader(timeout=2.0)
        except Exception as exc:  # ZooKeeper unreachable: nobody known to lead
            log.warning("cannot read the leader from ZooKeeper: %s", exc)
            return None
        url = leader.get("apiUrl") if leader else None
        # Our own URL is a stale description from before a restart on the same port: its
        # session has not expired yet, so nobody leads for now.
        return None if url == self.url else url

    def lead(self, lease=None) -> None:
        """Become the serving leader; on failure, stay standby and re-raise."""
        log.info("elected leader (lease %s); starting the master's actors", getattr(lease, "node_path", "-"))
        self.role.change("elected")
        try:
            self.master = start_master_actors(lease_config(self.config, lease))
        except Exception:
            self.role.change("lost")
            raise
        # The API layer is given the config's JSON view: masterConfigs answers it as is.
        self.gateway = Gateway(self.master, public_config(lease_config(self.config, lease).to_dict()))
        app = make_app(self.gateway, role=self.role, api_url=self.url, access=self.access)
        self.loop.call_soon_threadsafe(self.router.switch, app)
        self.leading_event.set()
        log.info("leading: API serving the actors at %s", self.url)

    def stand_by(self) -> None:
        """Stop acting as leader now: redirect the API, then shut the actors down."""
        if not self.role.leading:
            return
        self.role.change("lost")
        self.leading_event.clear()
        log.warning("leadership lost: API now redirects to the leader; shutting the actors down")
        try:
            self.loop.call_soon_threadsafe(self.router.switch, self.standby_app)
        except RuntimeError:
            pass  # the loop has closed: the process is exiting and serves nothing
        self._shutdown_actors()
        log.info("standing by")

    def stop(self) -> None:
        """Leave the election (if any) and shut the actors down, for a clean exit."""
        if self.election is not None:
            self.election.stop()  # calls stand_by through on_lost when leading
        if self.role.state != STOPPED:
            self._shutdown_actors()
            self.role.change("stop")

    def _shutdown_actors(self) -> None:
        gateway, master, self.gateway, self.master = self.gateway, self.master, None, None
        if gateway is not None:
            gateway.close()
        if master is not None:
            master.system.shutdown()


def _start_election(service: MasterService, config: Config) -> None:
    e = config.leader_election

    def on_elected(lease):
        try:
            service.lead(lease)
        except Exception as exc:
            # Leading with no actors would block every other master: leave and join again.
            log.error("could not start leading (%s); rejoining the election", exc)
            threading.Thread(target=_rejoin, args=(service, config), daemon=True).start()

    service.election = LeaderElection(e.hosts, e.path, service.description(), on_elected=on_elected,
                                      on_lost=service.stand_by, session_timeout=float(e.session_timeout_s))
    log.info("joining the leader election at %s%s as a standby", e.hosts, e.path)
    service.election.start()


def _rejoin(service: MasterService, config: Config) -> None:
    service.election.stop()
    time.sleep(1.0)
    _start_election(service, config)


def run_master(config: Config, config_path: str | None = None, overrides: list[str] | None = None,
               on_ready=None, stop_local_agent: bool = False, agent_log=None) -> None:
    """Run a master until SIGINT/SIGTERM; ``on_ready(api_url, stop)`` is called once it leads.

    With ``leader_election.hosts`` set, the master joins the election and serves
    redirects until elected; otherwise it leads at once.  A local agent it started keeps
    running after the master stops (its workers must survive a master restart), unless
    ``stop_local_agent`` (``mantis up``: a demo that cleans up after itself), whose output
    goes to ``agent_log`` when given.
    """
    m = config.master
    AccessPolicy.from_config(config)  # refuse to start an API beyond loopback without a token
    elect = bool(config.leader_election.hosts)
    holder: dict = {}

    async def main():
        loop = asyncio.get_running_loop()
        placeholder = tornado.web.Application()
        router = RoleRouter(placeholder)
        server = tornado.httpserver.HTTPServer(router)
        sockets = tornado.netutil.bind_sockets(m.api_port, address=m.host, family=socket.AF_INET)
        url = f"http://{m.host}:{sockets[0].getsockname()[1]}"
        service = holder["service"] = MasterService(config, loop, router, url)
        router.switch(service.standby_app)
        if elect:
            _start_election(service, config)
        else:
            # A single master serves once its actors are up; meanwhile clients wait in the
            # listen backlog rather than meet a master that cannot answer yet.
            await loop.run_in_executor(None, service.lead, None)
        server.add_sockets(sockets)
        log.info("master API listening at %s", url)
        agent = start_local_agent(config_path, overrides or [], url, agent_log) if m.local_agent else None
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            async def ready_when_leading():
                while not service.leading_event.is_set():
                    await asyncio.sleep(0.1)
                on_ready(url, stop)
            loop.create_task(ready_when_leading())
        await stop.wait()
        server.stop()
        return agent

    agent = None
    try:
        agent = asyncio.run(main())
    finally:
        log.info("master stopping")
        if "service" in holder:
            holder["service"].stop()
        # After the master's actors: they would otherwise see the workers go and replace them.
        if agent is not None and stop_local_agent:
            log.info("stopping the local agent (pid %d) and its workers", agent.pid)
            agent.terminate()
            agent.wait(15)
