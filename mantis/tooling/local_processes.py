"""Master and agent processes on this machine, for end-to-end tests and benchmarks.

``LocalCluster`` writes a config file, starts ``mantis master`` and ``mantis agent`` in
sessions of their own (so a test can kill -9 a whole master, actors included, while the
agent and its workers live on), and talks to the API with plain urllib.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, Literal


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
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: BinaryIO | None = None
        # Known before the start, so that a stop() interrupted by a signal between the fork
        # and the assignment of ``proc`` still finds the process by its command line.
        self.cmdline = "\0".join([sys.executable, "-m", "mantis.cli", *self.args]).encode() + b"\0"

    def start(self) -> Service:
        self.log = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "mantis.cli", *self.args], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True, env=env,
                                     cwd=self.cwd)
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
        self._kill_all()
        self._reap()

    def _kill_all(self, timeout_s: float = 10.0) -> None:
        deadline = time.time() + timeout_s
        while self.pids() and time.time() < deadline:
            # Again and again: a dying parent actor may fork a replacement child meanwhile.
            self._signal_all(signal.SIGKILL)
            time.sleep(0.1)

    def stop(self, grace_s: float = 10.0) -> None:
        """Ask the service to stop (SIGTERM to its main process, which shuts its actor
        system down), give it ``grace_s``, then SIGKILL whatever is left of it.

        Processes with the service's command line are killed even when this object holds
        no running process (never started, already killed, or started by an interrupted
        ``start``): stopping is how callers make sure nothing of it is left.
        """
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
            deadline = time.time() + 3
            while self.pids() and time.time() < deadline:
                time.sleep(0.1)
        self._kill_all()
        self._reap()

    def _reap(self) -> None:
        """Collect the main process's exit status and close the log (after a kill)."""
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None

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
    """A master process and an agent process sharing one config, under ``tmp``.

    ``agent_args`` are added to the agent's command line (e.g. ``["--simulate", "100"]``
    for one process of simulated agents); ``agents`` is how many registered agents
    ``start`` waits for.
    """

    def __init__(self, config: dict, tmp: Path, agent_args: list[str] | None = None, agents: int = 1):
        self.config, self.tmp = config, tmp
        self.config_path = write_config(config, tmp / "master.toml")
        self.url = f"http://127.0.0.1:{config['master']['api_port']}"
        self.agents = agents
        self.master = Service(["master", "--config", str(self.config_path)], tmp / "master.log")
        self.agent = Service(["agent", "--config", str(self.config_path), "--master", self.url,
                              *(agent_args or [])], tmp / "agent.log")

    def start_master(self, timeout: float = 30.0) -> None:
        self.master.start()
        wait_for(lambda: self._up(), timeout=timeout, what=f"master API at {self.url}")

    def _up(self) -> bool:
        try:
            return api(self.url, path="/api/v1/masterInfo", timeout=1)[0] == 200
        except OSError:
            return False

    def start(self, timeout: float = 30.0) -> LocalCluster:
        """Start the master, then the agent; on failure stop both (nothing is left running)."""
        try:
            self.start_master(timeout)
            self.agent.start()
            wait_for(lambda: len((api(self.url, path="/api/v1/agents")[1] or {}).get("list", [])) >= self.agents,
                     timeout=timeout, interval=0.2, what=f"{self.agents} agent(s) registered")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.agent.stop()
        self.master.stop()

    def kill9(self) -> None:
        """SIGKILL the agent (its workers with it) and the master (every actor): no grace,
        for when stopping must be quick rather than tidy."""
        self.agent.kill9()
        self.master.kill9()

    def call(self, method: str, path: str, body=None):
        return api(self.url, method, path, body)


class HaCluster:
    """Several masters electing a leader in ZooKeeper, and one agent following the leader.

    Every master and the agent share ``config`` (a ZooKeeper store and an election on
    ``zookeeper_hosts``); each master gets its own API and admin ports and its own config
    file, so that each service's processes are found by their command line.
    ``master_zookeeper`` gives master ``i`` its own way to ZooKeeper (a proxy a test cuts).
    """

    def __init__(self, config, tmp: Path, zookeeper_hosts: str, masters: int = 2,
                 ports: list[tuple[int, int]] | None = None, master_zookeeper: list[str] | None = None):
        self.tmp = tmp
        self.config = (config.replace("store", type="zookeeper", hosts=zookeeper_hosts)
                       .replace("leader_election", hosts=zookeeper_hosts))
        self.masters: list[Service] = []
        self.urls: list[str] = []
        for i in range(masters):
            api_port, admin_port = ports[i] if ports else (free_listen_port(), free_listen_port())
            c = self.config.replace("master", api_port=api_port, admin_port=admin_port)
            if master_zookeeper:  # e.g. a proxy a test can cut
                c = c.replace("store", hosts=master_zookeeper[i]).replace("leader_election", hosts=master_zookeeper[i])
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

    def start(self, timeout: float = 60.0) -> HaCluster:
        """Start master 0 first (so it leads), the other masters, then the agent; on failure
        stop them all."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> HaCluster:
        self.masters[0].start()
        self.wait_leader(timeout)
        for m in self.masters[1:]:
            m.start()
        wait_for(lambda: all(self.info(i) for i in range(len(self.masters))), timeout=timeout,
                 what="every master answering")
        self.agent.start()
        wait_for(lambda: self.call("GET", "/api/v1/agents")[1]["list"], timeout=timeout, what="agent registered")
        return self

    def call(self, method: str, path: str, body=None):
        """An API call to the current leader (whichever master leads)."""
        leader = self.wait_leader(timeout=30)
        return api(self.urls[leader], method, path, body)

    def stop(self) -> None:
        self.agent.stop()
        for m in self.masters:
            m.stop()

    def kill9(self) -> None:
        """SIGKILL the agent (its workers with it) and every master: no grace."""
        self.agent.kill9()
        for m in self.masters:
            m.kill9()


class StopOnExit:
    """Whatever way a script ends, stop every service it started and remove its temp dir.

    A context manager for benchmarks and demos that start processes::

        with StopOnExit(tmp) as guard:
            cluster = guard.add(LocalCluster(config, tmp))
            cluster.start()
            ...

    Inside the block SIGTERM raises ``SystemExit(143)`` and SIGINT ``KeyboardInterrupt``,
    so ``finally`` blocks run and the exit reaches this manager, which then calls
    ``stop()`` on everything registered with ``add`` (last registered first) and every
    callable registered with ``on_exit``, then removes ``tmp``.  By default Python dies
    of SIGTERM without running any of that, leaving the services orphaned: they run in
    sessions of their own (the master's actors even daemonize), so nothing else stops them.

    After a signal, whoever sent it wants the script gone now: ``add(x, on_signal=x.kill9)``
    makes that exit call ``x.kill9()`` instead of the graceful ``x.stop()`` (an agent
    asked to stop while it starts workers can take over ten seconds to give up).

    Only the first signal interrupts; later ones are recorded and otherwise ignored, so
    a second Ctrl-C cannot cut the (bounded) stopping short and leave processes behind.
    ``tmp`` is kept when the block ends in an ordinary exception or ``keep_tmp`` is set
    (the logs in it say what went wrong), and always removed after a signal.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, tmp: Path | None = None):
        self.tmp = tmp
        self.keep_tmp = False
        self.signalled: int | None = None
        self._stoppables: list = []
        self._previous: dict = {}

    def add(self, stoppable, on_signal=None):
        """Register something with a ``stop()`` method (Service, LocalCluster, ...); returns it.

        ``on_signal``, if given, is called instead of ``stop()`` when a signal ended the block.
        """
        self._stoppables.append((stoppable.stop, on_signal or stoppable.stop, stoppable))
        return stoppable

    def on_exit(self, callback):
        """Register a callable to run at exit, with the services (last registered first)."""
        self._stoppables.append((callback, callback, callback))
        return callback

    def _on_signal(self, signum, frame) -> None:
        if self.signalled is not None:
            return  # already stopping: let the cleanup finish
        self.signalled = signum
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    def __enter__(self) -> StopOnExit:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:  # never swallows the exception
        # From here on a signal only marks that one came (see _on_signal); nothing raises
        # in the middle of stopping.
        if self.signalled is None:
            self.signalled = 0
        try:
            for stop, on_signal, what in reversed(self._stoppables):
                try:
                    (on_signal if self.signalled else stop)()
                except Exception as error:  # stop the others all the same
                    print(f"stopping {what!r} failed: {error!r}", file=sys.stderr)
            failed = exc_type is not None and not issubclass(exc_type, (SystemExit, KeyboardInterrupt))
            if self.tmp is not None and not (self.signalled == 0 and (self.keep_tmp or failed)):
                shutil.rmtree(self.tmp, ignore_errors=True)
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
        return False


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
