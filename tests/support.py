"""Helpers shared by the tests: free ports, bounded waiting, test configs."""
from __future__ import annotations

import os
import signal
import socket
import time

from mantis import config as config_module
from mantis.tooling.api_answers import (  # noqa: F401  (re-exported for the tests)
    job_id_of,
    job_state,
    job_workers,
    listed,
    started_workers,
)
from mantis.tooling.local_processes import free_listen_port, pids_with_cmdline, wait_for  # noqa: F401  (wait_for re-exported)


def reap_forked_leftovers(grace_s: float = 3.0) -> list[int]:
    """Kill processes forked from this one (same command line) that outlive a shutdown.

    Thespian's multiprocTCPBase can leave an actor behind when the system shuts down while
    a child is still being created; in tests such a process would hold the runner's
    output open forever.  Returns the pids that had to be killed.
    """
    me = os.getpid()
    with open(f"/proc/{me}/cmdline", "rb") as f:
        mine = f.read()

    def forked():
        return [pid for pid in pids_with_cmdline(mine) if pid != me]

    deadline = time.time() + grace_s
    while forked() and time.time() < deadline:
        time.sleep(0.1)
    left = forked()
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def free_port() -> int:
    """A loopback port to listen on, outside the ephemeral range (see ``free_listen_port``)."""
    return free_listen_port()


def free_port_range(size: int = 20) -> str:
    """A range of ``size`` ports that are free now, below Linux's ephemeral range (32768+)
    so that no actor's own outgoing socket can take one of them later."""
    import random

    for _ in range(200):
        base = random.randrange(20000, 32700 - size)
        if all(_free(p) for p in range(base, base + size)):
            return f"{base}-{base + size - 1}"
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def make_config(tmp_path, base: str = "multiprocTCPBase", **extra) -> config_module.Config:
    """A config on free loopback ports with short timeouts, store under ``tmp_path``;
    ``extra`` are more overrides (``**{"master.shards": 2}``)."""
    overrides = [
        f'store.path="{tmp_path / "store"}"', f"master.actor_system_base=\"{base}\"",
        f"master.admin_port={free_port()}", f"master.api_port={free_port()}",
        f"agent.admin_port={free_port()}", f'agent.ports="{free_port_range()}"',
        "agent.cpus=8", "agent.mem_mb=8192", "master.local_agent=false",
        "workers.heartbeat_interval_s=0.5", "workers.heartbeat_timeout_s=4",
        "workers.check_interval_s=0.5", "workers.backoff_steps_s=[0, 1, 2]",
        "scheduler.agent_timeout_s=3", "scheduler.tick_s=0.5", "scheduler.orphan_grace_s=6",
        "master.entry_point_check_timeout_s=5", 'access.allowed_packages="tests.job_fixtures"',
    ]
    overrides += [f"{k}={v}" for k, v in extra.items()]
    return config_module.load(None, overrides)


def file_size_limit(limit: int):
    """No file of this process may grow past ``limit`` bytes inside the block (Python
    ignores SIGXFSZ, so a write past it fails with EFBIG, as a full disk would)."""
    import contextlib
    import resource

    @contextlib.contextmanager
    def limited():
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    return limited()


def keep_asking(ask, seconds: float, interval: float = 0.2) -> list:
    """Call ``ask`` every ``interval`` for ``seconds`` and return its answers: a test that
    must see something NOT happen for a while keeps the actors busy meanwhile (a
    simpleSystemBase system runs only while someone asks it something)."""
    answers = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answers.append(ask())
        time.sleep(interval)
    return answers
