"""A Mesos master double process and a real master whose resource manager is Mesos."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mantis.tooling.local_processes import LocalCluster, api, wait_for
from tests.support import free_port, free_port_range, make_config

pytest.importorskip("avmesos", reason="the Mesos client (pip install '.[mesos]')")


class MesosDoubleProcess:
    """``python -m mantis.tooling.mesos_double`` on a free loopback port, in its own session."""

    # Heartbeats every 15 s as a real master sends them: nothing may depend on a record
    # arriving soon after another (a client reading lines would hold events back).
    def __init__(self, tmp: Path, agents: list[str], kill_grace_s: float = 2.0, heartbeat_s: float = 15.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.sandbox = tmp / "mesos-sandbox"
        self.log_path = tmp / "mesos-double.log"
        self.args = [sys.executable, "-m", "mantis.tooling.mesos_double", "--port", str(self.port),
                     "--sandbox", str(self.sandbox), "--heartbeat-s", str(heartbeat_s), "--allocation-s", "0.1",
                     "--kill-grace-s", str(kill_grace_s)]
        for a in agents:
            self.args += ["--agent", a]
        self.proc: subprocess.Popen | None = None

    def start(self) -> MesosDoubleProcess:
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._up, timeout=20, what="the Mesos double")
        return self

    def _up(self) -> bool:
        try:
            return api(self.url, path="/double/state", timeout=1)[0] == 200
        except OSError:
            return False

    def state(self) -> dict:
        return api(self.url, path="/double/state")[1]

    def admin(self, path: str, body=None) -> int:
        return api(self.url, "POST", path, body if body is not None else {})[0]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None
            self.log.close()


def agent_spec(agent_id: str, cpus: int = 4, mem: int = 4096, **attributes) -> str:
    begin, _, end = free_port_range(20).partition("-")
    attrs = "".join(f",attr.{k}={v}" for k, v in attributes.items())
    return f"id={agent_id},cpus={cpus},mem={mem},disk=10000,ports={begin}-{end}{attrs}"


def mesos_cluster(tmp_path, double: MesosDoubleProcess, **extra) -> LocalCluster:
    """A master (no agent of ours) whose resource manager is the double."""
    config = make_config(tmp_path, **{"scheduler.resource_manager": '"mesos"',
                                      "mesos.master": f'"{double.url}"',
                                      "mesos.failover_timeout_s": 120.0, "mesos.offer_hold_s": 2.0,
                                      "mesos.refuse_s": 5.0, "mesos.role": '"mantis"',
                                      "mesos.principal": '"mantis-test"', **extra})
    return LocalCluster(config.to_dict(), tmp_path)


@pytest.fixture
def double(tmp_path):
    d = MesosDoubleProcess(tmp_path, [agent_spec("agent-a", zone="a"), agent_spec("agent-b", zone="b")]).start()
    yield d
    d.stop()


@pytest.fixture
def mesos_master(tmp_path, double):
    c = mesos_cluster(tmp_path, double)
    try:
        c.start_master()
        # Subscribed (and its framework id stored) once it reconciles; with no worker
        # waiting it may suppress offers at once, so no agent need be registered yet.
        wait_for(lambda: any(call["type"] == "RECONCILE" for call in double.state()["calls"]), timeout=30,
                 interval=0.2, what="the master subscribed to the double")
        yield c
    finally:
        c.master.stop()


def task_pids(double: MesosDoubleProcess) -> dict:
    return {tid: t["pid"] for tid, t in double.state()["tasks"].items() if t["state"] == "TASK_RUNNING"}

