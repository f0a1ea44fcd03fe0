"""Master and agent processes on this machine, for end-to-end tests and benchmarks.

``LocalCluster`` writes a config file, starts ``mantis master`` and ``mantis agent`` in
sessions of their own (so a test can kill -9 a whole master, actors included, while the
agent and its workers live on), and talks to the API with plain urllib.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path



def write_config(config: dict, path: Path) -> Path:
    """Write ``config`` as TOML (our configs hold only scalars, lists and flat tables)."""
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f"{key} = {{{inner}}}")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


class Service:
    """A `mantis` service process in its own session, logging to a file."""

    def __init__(self, args: list[str], log_path: Path, cwd: Path | None = None):
        self.args, self.log_path = args, log_path
        self.cwd = cwd or Path.cwd()
        self.proc = None

    def start(self) -> "Service":
        self.log = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "mantis.cli", *self.args], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True, env=env,
                                     cwd=self.cwd)
        self.cmdline = "\0".join([sys.executable, "-m", "mantis.cli", *self.args]).encode() + b"\0"
        return self

    def pids(self) -> list[int]:
        """The service's processes: its main process and every actor process forked from it.

        Thespian's admin daemonizes into a session of its own, so neither the process group
        nor the parent chain finds the actors; forked processes keep the exact command
        line, and each service here has its own (its own config file), so that does.
        """
        return pids_with_cmdline(self.cmdline)

    def kill9(self) -> None:
        """SIGKILL the service and every actor process it forked, as a machine crash would."""
        if self.proc is None:
            return
        self._kill_all()
        self.proc.wait(10)
        self.proc = None

    def _kill_all(self, timeout_s: float = 10.0) -> None:
        deadline = time.time() + timeout_s
        while self.pids() and time.time() < deadline:
            # Again and again: a dying parent actor may fork a replacement child meanwhile.
            self._signal_all(signal.SIGKILL)
            time.sleep(0.1)

    def stop(self, grace_s: float = 10.0) -> None:
        """Ask the service to stop (SIGTERM to its main process, which shuts its actor
        system down), give it ``grace_s``, then SIGKILL whatever is left of it."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.time() + 3
        while self.pids() and time.time() < deadline:
            time.sleep(0.1)
        self._kill_all()
        self.proc.wait(10)
        self.proc = None

    def _signal_all(self, sig) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def pids_with_cmdline(cmdline: bytes) -> list[int]:
    """Pids of the live processes whose /proc cmdline is exactly ``cmdline``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read() == cmdline:
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value (returned); AssertionError after ``timeout``."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def pss_mb(pids: list[int]) -> float:
    """Proportional set size of ``pids`` together, in MB (shared pages counted once)."""
    total_kb = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total_kb += int(line.split()[1])
                        break
        except OSError:
            pass
    return total_kb / 1024


def api(url: str, method: str = "GET", path: str = "", body=None, timeout: float = 15.0):
    """(status, decoded JSON) of one API call; never raises on HTTP errors."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class LocalCluster:
    """A master process and an agent process sharing one config, under ``tmp``."""

    def __init__(self, config: dict, tmp: Path):
        self.config, self.tmp = config, tmp
        self.config_path = write_config(config, tmp / "master.toml")
        self.url = f"http://127.0.0.1:{config['master']['api_port']}"
        self.master = Service(["master", "--config", str(self.config_path)], tmp / "master.log")
        self.agent = Service(["agent", "--config", str(self.config_path), "--master", self.url],
                             tmp / "agent.log")

    def start_master(self) -> None:
        self.master.start()
        wait_for(lambda: self._up(), timeout=30, what=f"master API at {self.url}")

    def _up(self) -> bool:
        try:
            return api(self.url, path="/api/v1/masterInfo", timeout=1)[0] == 200
        except OSError:
            return False

    def start(self) -> "LocalCluster":
        """Start the master, then the agent; on failure stop both (nothing is left running)."""
        try:
            self.start_master()
            self.agent.start()
            wait_for(lambda: api(self.url, path="/api/v1/agents")[1], timeout=30, what="agent registered")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.agent.stop()
        self.master.stop()

    def call(self, method: str, path: str, body=None):
        return api(self.url, method, path, body)


class HaCluster:
    """Several masters electing a leader in ZooKeeper, and one agent following the leader.

    Every master and the agent share ``config`` (a ZooKeeper store and an election on
    ``zookeeper_hosts``); each master gets its own API and admin ports and its own config
    file, so that each service's processes are found by their command line.
    ``master_zookeeper`` gives master ``i`` its own way to ZooKeeper (a proxy a test cuts).
    """

    def __init__(self, config: dict, tmp: Path, zookeeper_hosts: str, masters: int = 2,
                 ports: list[tuple[int, int]] | None = None, master_zookeeper: list[str] | None = None):
        self.tmp = tmp
        self.config = json.loads(json.dumps(config))
        self.config["store"].update(type="zookeeper", hosts=zookeeper_hosts)
        self.config["leader_election"]["hosts"] = zookeeper_hosts
        self.masters: list[Service] = []
        self.urls: list[str] = []
        for i in range(masters):
            c = json.loads(json.dumps(self.config))
            api_port, admin_port = ports[i] if ports else (free_listen_port(), free_listen_port())
            c["master"].update(api_port=api_port, admin_port=admin_port)
            if master_zookeeper:  # e.g. a proxy a test can cut
                c["store"]["hosts"] = c["leader_election"]["hosts"] = master_zookeeper[i]
            path = write_config(c, tmp / f"master-{i}.toml")
            self.masters.append(Service(["master", "--config", str(path)], tmp / f"master-{i}.log"))
            self.urls.append(f"http://{c['master']['host']}:{api_port}")
        agent_path = write_config(self.config, tmp / "agent.toml")
        self.agent = Service(["agent", "--config", str(agent_path), "--master", self.urls[0]], tmp / "agent.log")

    def info(self, i: int) -> dict | None:
        """Master ``i``'s masterInfo, or None when it does not answer."""
        try:
            status, body = api(self.urls[i], path="/api/v1/masterInfo", timeout=2)
        except OSError:
            return None
        return body if status == 200 else None

    def leaders(self) -> list[int]:
        """Indexes of the masters that say they lead right now."""
        return [i for i in range(len(self.masters)) if (self.info(i) or {}).get("leader")]

    def wait_leader(self, timeout: float = 60.0, among: list[int] | None = None) -> int:
        """The index of the leading master once exactly one leads (among ``among``)."""
        def one():
            found = [i for i in self.leaders() if among is None or i in among]
            return found[0] + 1 if len(found) == 1 else 0
        return wait_for(one, timeout=timeout, interval=0.2, what="one leading master") - 1

    def start(self, timeout: float = 60.0) -> "HaCluster":
        """Start master 0 first (so it leads), the other masters, then the agent; on failure
        stop them all."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> "HaCluster":
        self.masters[0].start()
        self.wait_leader(timeout)
        for m in self.masters[1:]:
            m.start()
        wait_for(lambda: all(self.info(i) for i in range(len(self.masters))), timeout=timeout,
                 what="every master answering")
        self.agent.start()
        wait_for(lambda: self.call("GET", "/api/v1/agents")[1], timeout=timeout, what="agent registered")
        return self

    def call(self, method: str, path: str, body=None):
        """An API call to the current leader (whichever master leads)."""
        leader = self.wait_leader(timeout=30)
        return api(self.urls[leader], method, path, body)

    def stop(self) -> None:
        self.agent.stop()
        for m in self.masters:
            m.stop()


def free_listen_port() -> int:
    """A loopback port free now, for a service to listen on, from 10000-19999.

    Not from the kernel's ephemeral range (32768+): outgoing connections take their
    local ports there, so a port picked there can be taken by any client before the
    service binds it.  (Worker port ranges in tests come from 20000-32767.)
    """
    import random
    import socket

    for _ in range(500):
        port = random.randrange(10000, 20000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 10000-19999")
