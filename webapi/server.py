"""The master process: actors, the embedded local agent, and the API server.

``run_master`` starts the master's actor system (recovering every cluster and job from
the store), starts the local agent as a separate process when configured (it must
outlive a master crash, so it runs in its own session), and serves the API until
stopped.  ``serve_api`` is the piece tests use with an in-process actor system.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import sys

import tornado.httpserver
import tornado.netutil

from webapi.app import make_app
from webapi.gateway import Gateway

log = logging.getLogger("mantis.master")


def serve_api(master, config: dict, port: int | None = None) -> tuple[tornado.httpserver.HTTPServer, Gateway, int]:
    """Listen with the API on the config's host and port (0 = any free port)."""
    gateway = Gateway(master, config)
    server = tornado.httpserver.HTTPServer(make_app(gateway))
    m = config["master"]
    sockets = tornado.netutil.bind_sockets(m["api_port"] if port is None else port, address=m["host"],
                                           family=socket.AF_INET)
    server.add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    return server, gateway, bound


def _agent_running(config: dict) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((config["master"]["host"], int(config["agent"]["admin_port"]))) == 0


def start_local_agent(config_path: str | None, overrides: list[str], master_url: str) -> subprocess.Popen | None:
    """Start ``mantis agent`` in its own session unless one already holds the agent port."""
    from mantis import config as config_module

    config = config_module.load(config_path, overrides)
    if _agent_running(config):
        log.info("local agent already running on admin port %s; reusing it", config["agent"]["admin_port"])
        return None
    cmd = [sys.executable, "-m", "mantis.cli", "agent", "--master", master_url]
    if config_path:
        cmd += ["--config", config_path]
    for item in overrides:
        cmd += ["--set", item]
    proc = subprocess.Popen(cmd, start_new_session=True)
    log.info("local agent started (pid %d)", proc.pid)
    return proc


def run_master(config: dict, config_path: str | None = None, overrides: list[str] | None = None,
               on_ready=None, stop_local_agent: bool = False) -> None:
    """Run a master until SIGINT/SIGTERM; ``on_ready(api_url, stop)`` is called once it serves.

    A local agent it started keeps running after the master stops (its workers must
    survive a master restart), unless ``stop_local_agent`` (``mantis up``: a demo that
    cleans up after itself).
    """
    from actors.actor_system import start_master_actors

    m = config["master"]
    master = start_master_actors(config)

    async def main():
        server, gateway, port = serve_api(master, config)
        url = f"http://{m['host']}:{port}"
        log.info("master API serving at %s", url)
        agent = start_local_agent(config_path, overrides or [], url) if m.get("local_agent") else None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            loop.call_soon(on_ready, url, stop)
        await stop.wait()
        server.stop()
        gateway.close()
        return agent

    agent = None
    try:
        agent = asyncio.run(main())
    finally:
        log.info("master stopping")
        master.system.shutdown()
        # After the master's actors: they would otherwise see the workers go and replace them.
        if agent is not None and stop_local_agent:
            log.info("stopping the local agent (pid %d) and its workers", agent.pid)
            agent.terminate()
            agent.wait(15)
